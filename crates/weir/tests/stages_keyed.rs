//! Keyed async stages, rate limiting, throttling and per-item timeouts
//! (paused clock: delays are exact and cost no real time).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Ledger;
use futures::StreamExt;
use tokio::time::Instant;
use weir::{ErrorKind, ErrorPolicy, EventKind, Outcome, Pipeline, PipelineBuilder, Shutdown, Status};

/// A deterministic pseudo-random delay per item (a small LCG), 0–49 ms.
fn delay(i: u64) -> Duration {
    Duration::from_millis(
        (i.wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 33)
            % 50,
    )
}

// ---- key_by ----------------------------------------------------------------

/// Every item of `0..n` came out exactly once.
fn assert_each_once(out: &[u64], n: u64) {
    let mut sorted = out.to_vec();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "every item, once");
}

/// Items of each key (`x % keys`) left in input order.
fn assert_per_key_order(out: &[u64], keys: u64) {
    let mut last: HashMap<u64, u64> = HashMap::new();
    for x in out {
        if let Some(prev) = last.insert(x % keys, *x) {
            assert!(prev < *x, "key {}: {x} emitted after {prev}", x % keys);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn keyed_keeps_per_key_order_under_random_delays() {
    let ledger = Ledger::default();
    let out = Pipeline::from_acked(ledger.source(2000))
        .key_by(|x| x % 97)
        .then(|x| async move {
            tokio::time::sleep(delay(x)).await;
            x
        })
        .concurrency(8)
        .collect()
        .await
        .unwrap();
    assert_each_once(&out, 2000);
    assert_per_key_order(&out, 97);
    assert!(!out.is_sorted(), "different keys overtake each other");
    let statuses = ledger.assert_exactly_once();
    assert!(statuses.values().all(|s| *s == Status::Delivered));
}

/// Guards the keyed driver's fast path (work ready when first polled never
/// enters the set of running futures): with ready and pending items mixed,
/// a ready item still waits for its key's pending one, and ready items of
/// free keys overtake pending ones of other keys.
#[tokio::test(start_paused = true)]
async fn keyed_ready_work_keeps_per_key_order_behind_pending_work() {
    use futures::future::{ready, Either};
    let ledger = Ledger::default();
    let out = Pipeline::from_acked(ledger.source(3000))
        .key_by(|x| x % 7)
        .then(|x| {
            // Every third item waits; the others are ready at once.
            if x % 3 == 0 {
                Either::Left(async move {
                    tokio::time::sleep(delay(x) + Duration::from_millis(1)).await;
                    x
                })
            } else {
                Either::Right(ready(x))
            }
        })
        .concurrency(16)
        .collect()
        .await
        .unwrap();
    assert_each_once(&out, 3000);
    assert_per_key_order(&out, 7);
    // Item 0 (key 0) waits; item 1 (key 1) is ready at once: it leaves first.
    assert_eq!(out[0], 1);
    assert!(!out.is_sorted(), "ready keys overtake pending ones");
    let statuses = ledger.assert_exactly_once();
    assert!(statuses.values().all(|s| *s == Status::Delivered));
}

#[tokio::test(start_paused = true)]
async fn keyed_never_runs_two_items_of_one_key_at_once() {
    let active = Arc::new(Mutex::new(HashSet::new()));
    let overlapped = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (a, o, r, p) = (active.clone(), overlapped.clone(), running.clone(), peak.clone());
    let report = Pipeline::from_iter(0..1000u64)
        .key_by(|x| x % 13)
        .then(move |x| {
            let (a, o, r, p) = (a.clone(), o.clone(), r.clone(), p.clone());
            async move {
                if !a.lock().unwrap().insert(x % 13) {
                    o.store(true, Ordering::SeqCst);
                }
                p.fetch_max(r.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                tokio::time::sleep(delay(x)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                a.lock().unwrap().remove(&(x % 13));
            }
        })
        .concurrency(8)
        .run()
        .await
        .unwrap();
    assert_eq!(report.delivered, 1000);
    assert!(
        !overlapped.load(Ordering::SeqCst),
        "two items of one key ran at once"
    );
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 8, "at most `concurrency` in flight, saw {peak}");
    assert!(peak > 1, "different keys run concurrently");
}

#[tokio::test(start_paused = true)]
async fn different_keys_run_concurrently_and_one_key_serially() {
    // 8 keys × 8 items × 10 ms: keys in parallel, each key's items in turn.
    let started = Instant::now();
    let report = Pipeline::from_iter(0..64u64)
        .key_by(|x| x % 8)
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            x
        })
        .concurrency(8)
        .run()
        .await
        .unwrap();
    assert_eq!(report.delivered, 64);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(640),
        "sum of delays, so serial: {elapsed:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(80),
        "8 items per key, one at a time: {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn one_hot_key_runs_one_item_at_a_time_whatever_the_concurrency() {
    let started = Instant::now();
    let out = Pipeline::from_iter(0..10u64)
        .key_by(|_| "hot")
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            x
        })
        .concurrency(16)
        .collect()
        .await
        .unwrap();
    assert_eq!(out, (0..10).collect::<Vec<_>>());
    assert_eq!(started.elapsed(), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn items_parked_behind_a_busy_key_count_against_the_window() {
    // Item 0 of the only key never finishes: the stage holds at most
    // `concurrency` items, and the source stops after the channels fill.
    let ledger = Ledger::default();
    let handle = PipelineBuilder::new()
        .capacity(32)
        .chunk_size(8)
        .from_acked(ledger.source(100_000))
        .key_by(|_| 0u8)
        .then(|x| async move {
            if x == 0 {
                std::future::pending::<()>().await;
            }
            x
        })
        .concurrency(4)
        .start();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pulled = ledger.pulled();
    // window 4 + input chunk in hand 8 + channel 32 + source chunk 8 (+1
    // the source may hold while waiting).
    assert!(pulled <= 4 + 8 + 32 + 8 + 1, "bounded memory: pulled {pulled}");
    let report = handle
        .shutdown(Shutdown::Abort, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Aborted);
    assert_eq!(report.delivered, 0);
}

#[tokio::test(start_paused = true)]
async fn keyed_failures_and_key_panics_are_routed_and_the_key_goes_on() {
    let ledger = Ledger::default();
    let report = Pipeline::from_acked(ledger.source(30))
        .key_by(|x| {
            assert!(*x != 7, "no key for 7");
            x % 3
        })
        .try_then(|x| async move {
            tokio::time::sleep(delay(x)).await;
            if x % 5 == 0 {
                Err(format!("bad {x}"))
            } else {
                Ok(x)
            }
        })
        .concurrency(4)
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    // Failed: 0, 5, 10, 15, 20, 25 (Err) and 7 (key panic).
    assert_eq!((report.delivered, report.failed), (23, 7));
    let statuses = ledger.assert_exactly_once();
    assert_eq!(ledger.count(Status::Failed), 7);
    assert_eq!(statuses[&7], Status::Failed);
    assert_eq!(statuses[&25], Status::Failed);
}

#[tokio::test(start_paused = true)]
async fn keyed_fail_fast_stops_the_run_with_the_error() {
    let err = Pipeline::from_iter(0..100u64)
        .key_by(|x| x % 4)
        .try_then(|x| async move {
            if x == 10 {
                Err("ten")
            } else {
                Ok(x)
            }
        })
        .concurrency(4)
        .name("keyed")
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.stage(), Some("keyed"));
    assert_eq!(err.item(), Some(10));
}

#[tokio::test(start_paused = true)]
async fn keyed_panics_in_the_work_fail_only_that_item() {
    let ledger = Ledger::default();
    let out = Pipeline::from_acked(ledger.source(6))
        .key_by(|x| x % 2)
        .then(|x| async move {
            assert!(x != 2, "boom");
            x
        })
        .concurrency(2)
        .on_error(ErrorPolicy::Skip)
        .collect()
        .await
        .unwrap();
    let mut out = out;
    out.sort_unstable();
    assert_eq!(out, [0, 1, 3, 4, 5]);
    assert_eq!(ledger.assert_exactly_once()[&2], Status::Failed);
}

#[tokio::test(start_paused = true)]
async fn keyed_empty_and_single_item_and_concurrency_one() {
    let empty = Pipeline::from_iter(std::iter::empty::<u64>())
        .key_by(|x| *x)
        .then(|x| async move { x })
        .concurrency(8)
        .collect()
        .await
        .unwrap();
    assert!(empty.is_empty());
    let one = Pipeline::from_iter([42u64])
        .key_by(|x| *x)
        .then(|x| async move { x + 1 })
        .collect()
        .await
        .unwrap();
    assert_eq!(one, [43]);
    // Concurrency 1 (the default): input order, one at a time.
    let serial = Pipeline::from_iter(0..20u64)
        .key_by(|x| x % 3)
        .then(|x| async move {
            tokio::time::sleep(delay(x)).await;
            x
        })
        .collect()
        .await
        .unwrap();
    assert_eq!(serial, (0..20).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn keyed_output_flows_into_fused_stages_and_is_counted() {
    let r = Pipeline::from_iter(0..100u64)
        .key_by(|x| x % 10)
        .then(|x| async move { x * 2 })
        .concurrency(8)
        .name("keyed")
        .filter(|x| x % 4 == 0)
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.dropped), (50, 50));
    let keyed = r.stage("keyed").unwrap();
    assert_eq!((keyed.items_in, keyed.items_out), (100, 100));
}

#[tokio::test(start_paused = true)]
async fn keyed_drain_mid_way_finalizes_everything_pulled() {
    let ledger = Ledger::default();
    let handle = Pipeline::from_acked(ledger.source(u64::MAX))
        .key_by(|x| x % 5)
        .then(|x| async move {
            tokio::time::sleep(delay(x)).await;
            x
        })
        .concurrency(4)
        .start();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = handle
        .shutdown(Shutdown::Drain, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.unfinalized, 0);
    assert!(report.delivered > 0);
    let statuses = ledger.assert_exactly_once();
    assert!(statuses.values().all(|s| *s == Status::Delivered));
    assert_eq!(report.delivered, ledger.pulled());
}

#[test]
#[should_panic(expected = "at least 1")]
fn keyed_concurrency_zero_is_refused_when_building() {
    let _ = Pipeline::from_iter(0..1)
        .key_by(|x| *x)
        .then(|x| async move { x })
        .concurrency(0);
}

// ---- rate_limit ------------------------------------------------------------

/// Runs `n` items through `rate_limit(per_second, burst)` and returns when
/// each passed, relative to the start.
async fn pass_times(n: u64, per_second: u32, burst: u32) -> (Vec<Duration>, Ledger) {
    let ledger = Ledger::default();
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    let started = Instant::now();
    let report = Pipeline::from_acked(ledger.source(n))
        .rate_limit(per_second, burst)
        .inspect(move |_| t.lock().unwrap().push(started.elapsed()))
        .run()
        .await
        .unwrap();
    assert_eq!(report.delivered, n, "rate_limit never drops");
    let times = times.lock().unwrap().clone();
    (times, ledger)
}

#[tokio::test(start_paused = true)]
async fn rate_limit_spaces_items_out() {
    let (times, ledger) = pass_times(20, 10, 1).await;
    assert_eq!(times.len(), 20);
    assert_eq!(times[0], Duration::ZERO);
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(100), "{pair:?}");
    }
    assert!(times[19] >= Duration::from_millis(1900), "{:?}", times[19]);
    assert!(times[19] < Duration::from_millis(2000), "{:?}", times[19]);
    assert!(ledger
        .assert_exactly_once()
        .values()
        .all(|s| *s == Status::Delivered));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_lets_a_burst_through_at_once() {
    let (times, _) = pass_times(8, 10, 5).await;
    assert!(times[..5].iter().all(|t| *t == Duration::ZERO), "{times:?}");
    assert_eq!(times[5], Duration::from_millis(100));
    assert_eq!(times[7], Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_empty_and_one_item() {
    let (times, _) = pass_times(0, 1, 1).await;
    assert!(times.is_empty());
    let (times, _) = pass_times(1, 1, 1).await;
    assert_eq!(times, [Duration::ZERO]);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_backpressures_the_source() {
    let ledger = Ledger::default();
    let handle = PipelineBuilder::new()
        .capacity(16)
        .chunk_size(4)
        .from_acked(ledger.source(u64::MAX))
        .rate_limit(10, 1)
        .start();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pulled = ledger.pulled();
    // ~100 passed in 10 s, plus what the channel and chunks hold.
    assert!(
        pulled <= 101 + 16 + 4 + 4 + 1,
        "the source was not slowed: {pulled}"
    );
    let report = handle
        .shutdown(Shutdown::Drain, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.dropped, 0);
    assert_eq!(
        report.delivered,
        ledger.pulled(),
        "a drain delivers everything pulled"
    );
    ledger.assert_exactly_once();
}

#[test]
#[should_panic(expected = "at least 1")]
fn rate_limit_of_zero_is_refused_when_building() {
    let _ = Pipeline::from_iter(0..1).rate_limit(0, 1);
}

// ---- throttle_first ----------------------------------------------------------

/// Items `0..n`, item `i` arriving at `i × every`.
fn ticks(ledger: &Ledger, n: u64, every: Duration) -> impl futures::Stream<Item = weir::Acked<u64>> + Send {
    ledger.source(n).then(move |item| async move {
        tokio::time::sleep(every).await;
        item
    })
}

#[tokio::test(start_paused = true)]
async fn throttle_passes_one_item_per_interval_and_drops_the_rest() {
    let ledger = Ledger::default();
    let out = Arc::new(Mutex::new(Vec::new()));
    let o = out.clone();
    let r = Pipeline::from_acked(ticks(&ledger, 20, Duration::from_millis(30)))
        .throttle_first(Duration::from_millis(100))
        .name("throttle")
        .for_each(move |x| o.lock().unwrap().push(x))
        .run()
        .await
        .unwrap();
    // Item i arrives at 30(i + 1) ms: 0 (30 ms) passes, then 4 (150), 8
    // (270), 12 (390), 16 (510).
    assert_eq!(*out.lock().unwrap(), [0, 4, 8, 12, 16]);
    assert_eq!((r.delivered, r.dropped), (5, 15));
    assert_eq!(r.stage("throttle").unwrap().dropped, 15);
    let statuses = ledger.assert_exactly_once();
    assert_eq!(ledger.count(Status::Dropped), 15);
    assert_eq!(statuses[&1], Status::Dropped);
    assert_eq!(statuses[&4], Status::Delivered);
}

#[tokio::test(start_paused = true)]
async fn throttle_drops_a_burst_but_not_spaced_items() {
    // All at once: only the first passes.
    let r = Pipeline::from_iter(0..100)
        .throttle_first(Duration::from_secs(1))
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.dropped), (1, 99));
    // Spaced wider than the interval: all pass.
    let ledger = Ledger::default();
    let r = Pipeline::from_acked(ticks(&ledger, 5, Duration::from_millis(200)))
        .throttle_first(Duration::from_millis(100))
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.dropped), (5, 0));
    // Empty input, and an interval past the clock's range.
    let r = Pipeline::from_iter(0..0)
        .throttle_first(Duration::from_secs(1))
        .run()
        .await
        .unwrap();
    assert_eq!(r.delivered, 0);
    let r = Pipeline::from_iter(0..3)
        .throttle_first(Duration::MAX)
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.dropped), (1, 2));
}

// ---- timeout ---------------------------------------------------------------

/// The `error_type` and item of every failure event of a run.
async fn failures(p: impl futures::Stream<Item = weir::Event>) -> Vec<(String, u64)> {
    p.filter_map(|e| async move {
        match e.kind {
            EventKind::ItemFailed { error_type, item, .. } => Some((error_type, item)),
            _ => None,
        }
    })
    .collect()
    .await
}

#[tokio::test(start_paused = true)]
async fn timeout_fails_exactly_the_slow_items() {
    let ledger = Ledger::default();
    let events = PipelineBuilder::new()
        .error_policy(ErrorPolicy::Skip)
        .from_acked(ledger.source(100))
        .then(|x| async move {
            let ms = if x % 10 == 3 { 500 } else { x % 50 };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            x
        })
        .concurrency(8)
        .timeout(Duration::from_millis(100))
        .events();
    let mut failed = failures(events).await;
    failed.sort_unstable();
    let expected: Vec<_> = (0..100)
        .filter(|x| x % 10 == 3)
        .map(|x| ("timeout".to_owned(), x))
        .collect();
    assert_eq!(failed, expected);
    ledger.assert_each(|id| id % 10 == 3, Status::Failed);
}

#[tokio::test(start_paused = true)]
async fn timeout_counts_from_the_start_of_the_work_not_the_arrival() {
    // Serial: each item waits its turn, 80 ms each, under a 100 ms limit.
    let r = Pipeline::from_iter(0..5u64)
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(80)).await;
            x
        })
        .timeout(Duration::from_millis(100))
        .run()
        .await
        .unwrap();
    assert_eq!(r.delivered, 5);
}

#[tokio::test(start_paused = true)]
async fn timeout_fail_fast_reports_a_timeout_error() {
    let err = Pipeline::from_iter([1u64, 2])
        .then(|x| async move {
            tokio::time::sleep(Duration::from_secs(x)).await;
            x
        })
        .timeout(Duration::from_millis(1500))
        .name("slow")
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!((err.stage(), err.item()), (Some("slow"), Some(1)));
}

#[tokio::test(start_paused = true)]
async fn keyed_timeout_fails_the_slow_item_and_frees_its_key() {
    let ledger = Ledger::default();
    let events = PipelineBuilder::new()
        .error_policy(ErrorPolicy::Skip)
        .from_acked(ledger.source(40))
        .key_by(|x| x % 4)
        .then(|x| async move {
            if x == 6 {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            x
        })
        .concurrency(8)
        .timeout(Duration::from_secs(1))
        .events();
    assert_eq!(failures(events).await, [("timeout".to_owned(), 6)]);
    let statuses = ledger.assert_exactly_once();
    assert_eq!(ledger.count(Status::Delivered), 39);
    assert_eq!(statuses[&6], Status::Failed);
}

#[tokio::test(start_paused = true)]
async fn blocking_timeout_fails_the_item_while_the_call_runs_on() {
    // A running blocking call holds back tokio's auto-advance of the paused
    // clock, so the test moves the clock itself once item 1 is stuck.
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let stuck = Arc::new(AtomicBool::new(false));
    let s = stuck.clone();
    let run = tokio::spawn(
        Pipeline::from_iter([0u64, 1, 2])
            .blocking(move |x| {
                if x == 1 {
                    s.store(true, Ordering::SeqCst);
                    let _ = wait.lock().unwrap().recv();
                }
                x
            })
            .timeout(Duration::from_millis(100))
            .on_error(ErrorPolicy::Skip)
            .run(),
    );
    let mut spins = 0u64;
    while !stuck.load(Ordering::SeqCst) {
        tokio::task::yield_now().await;
        spins += 1;
        assert!(spins < 100_000_000, "item 1 never started");
    }
    tokio::time::advance(Duration::from_millis(150)).await;
    let report = run.await.unwrap().unwrap();
    assert_eq!((report.delivered, report.failed), (2, 1));
    release.send(()).unwrap();
}
