//! The fused synchronous stages of the catalogue: take, skip, take_while,
//! skip_while, scan, validate, tap, tap_async, dedup, map_batch.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Ledger;
use futures::StreamExt;
use weir::{ErrorKind, ErrorPolicy, Outcome, Pipeline, PipelineBuilder, Shutdown, Status};

/// Every pulled item finalized exactly once; returns (delivered, dropped,
/// failed) as the source saw them.
#[track_caller]
fn statuses(ledger: &Ledger) -> (usize, usize, usize) {
    let seen = ledger.assert_exactly_once();
    let count = |s: Status| seen.values().filter(|v| **v == s).count();
    (
        count(Status::Delivered),
        count(Status::Dropped),
        count(Status::Failed),
    )
}

// ---- take ----

#[tokio::test]
async fn take_passes_the_first_n() {
    let out = Pipeline::from_iter(0..10).take(3).collect().await.unwrap();
    assert_eq!(out, [0, 1, 2]);
}

#[tokio::test]
async fn take_zero_pulls_nothing() {
    let pulled = Arc::new(AtomicU64::new(0));
    let r = Pipeline::from_iter(common::counted(u64::MAX, pulled.clone()))
        .take(0)
        .run()
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!((r.pulled, r.delivered), (0, 0));
    assert_eq!(pulled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn take_boundaries_empty_one_exact_and_beyond() {
    let empty = Pipeline::from_iter(Vec::<u8>::new())
        .take(3)
        .collect()
        .await
        .unwrap();
    assert!(empty.is_empty());
    let one = Pipeline::from_iter([7]).take(1).collect().await.unwrap();
    assert_eq!(one, [7]);
    let exact = Pipeline::from_iter(0..5).take(5).run().await.unwrap();
    assert_eq!((exact.delivered, exact.dropped), (5, 0));
    let beyond = Pipeline::from_iter(0..3).take(10).collect().await.unwrap();
    assert_eq!(beyond, [0, 1, 2]);
}

/// Guards against `take` over an endless iterator never ending.
#[tokio::test]
async fn take_ends_an_endless_iterator_and_completes() {
    let r = PipelineBuilder::new()
        .chunk_size(16)
        .from_iter(0u64..)
        .take(5)
        .run()
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(r.delivered, 5);
    assert_eq!(
        r.dropped,
        r.pulled - 5,
        "items pulled after the fifth are dropped"
    );
    // A satisfied `take` ends the pull at once (`wants_flush`), not at
    // the end of the chunk.
    assert_eq!(r.pulled, 5, "the source stops as soon as take has its items");
    assert_eq!(r.unfinalized, 0);
}

/// Guards against lost or doubly finalized items after `take` is satisfied.
#[tokio::test]
async fn take_ends_an_endless_stream_and_finalizes_the_rest_as_dropped() {
    let ledger = Ledger::default();
    let r = PipelineBuilder::new()
        .chunk_size(8)
        .from_acked(ledger.source(u64::MAX))
        .take(5)
        .run()
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Completed);
    let (delivered, dropped, failed) = statuses(&ledger);
    assert_eq!((delivered, failed), (5, 0));
    assert_eq!(dropped as u64, ledger.pulled() - 5);
    assert_eq!(r.delivered, 5);
}

/// Guards against a satisfied `take` behind a task boundary not reaching
/// the source, and against a source waiting on a silent stream forever.
#[tokio::test(start_paused = true)]
async fn take_behind_an_async_stage_stops_a_source_waiting_for_items() {
    let ledger = Ledger::default();
    let source = ledger.source(4).chain(futures::stream::pending());
    let r = PipelineBuilder::new()
        .chunk_size(2)
        .from_acked(source)
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        })
        .take(4)
        .run()
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(statuses(&ledger), (4, 0, 0));
}

#[tokio::test]
async fn take_closes_an_intake_once_satisfied() {
    let handle = Pipeline::intake::<u32>().take(2).start();
    handle.push(1).await.unwrap();
    handle.push(2).await.unwrap();
    let pusher = handle.pusher();
    let r = handle.wait().await.unwrap();
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(r.delivered, 2);
    assert!(
        pusher.push(3).await.is_err(),
        "a satisfied pipeline takes no more items"
    );
}

// ---- skip ----

#[tokio::test]
async fn skip_drops_the_first_n() {
    let out = Pipeline::from_iter(0..6).skip(4).collect().await.unwrap();
    assert_eq!(out, [4, 5]);
    let none = Pipeline::from_iter(0..6).skip(0).collect().await.unwrap();
    assert_eq!(none, [0, 1, 2, 3, 4, 5]);
    let one = Pipeline::from_iter([9]).skip(1).collect().await.unwrap();
    assert!(one.is_empty());
    let empty = Pipeline::from_iter(Vec::<u8>::new())
        .skip(1)
        .collect()
        .await
        .unwrap();
    assert!(empty.is_empty());
}

#[tokio::test]
async fn skip_beyond_len_drops_everything() {
    let ledger = Ledger::default();
    let r = Pipeline::from_acked(ledger.source(3))
        .skip(5)
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.dropped), (0, 3));
    assert_eq!(statuses(&ledger), (0, 3, 0));
}

// ---- take_while / skip_while ----

#[tokio::test]
async fn take_while_stops_at_the_first_false() {
    let ledger = Ledger::default();
    let r = PipelineBuilder::new()
        .chunk_size(4)
        .from_acked(ledger.source(u64::MAX))
        .take_while(|x| *x != 6)
        .run()
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(r.delivered, 6);
    let (delivered, dropped, _) = statuses(&ledger);
    assert_eq!((delivered as u64, dropped as u64), (6, ledger.pulled() - 6));
    assert!(ledger.calls().contains(&(6, Status::Dropped)));
}

#[tokio::test]
async fn take_while_boundaries() {
    let empty = Pipeline::from_iter(Vec::<u8>::new())
        .take_while(|_| true)
        .collect()
        .await
        .unwrap();
    assert!(empty.is_empty());
    let first_false = Pipeline::from_iter([1, 2])
        .take_while(|_| false)
        .collect()
        .await
        .unwrap();
    assert!(first_false.is_empty());
    let all = Pipeline::from_iter([1, 2])
        .take_while(|_| true)
        .collect()
        .await
        .unwrap();
    assert_eq!(all, [1, 2]);
}

/// Guards against a panicking predicate taking down more than its item.
#[tokio::test]
async fn take_while_panic_fails_one_item_and_keeps_taking() {
    let ledger = Ledger::default();
    let r = Pipeline::from_acked(ledger.source(6))
        .take_while(|x| {
            assert_ne!(*x, 2, "boom");
            *x < 4
        })
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.failed, r.dropped), (3, 1, 2));
    assert_eq!(statuses(&ledger), (3, 2, 1));
    assert!(ledger.calls().contains(&(2, Status::Failed)));
}

#[tokio::test]
async fn skip_while_passes_everything_from_the_first_false() {
    let out = Pipeline::from_iter([1, 2, 5, 1, 7])
        .skip_while(|x| *x < 3)
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [5, 1, 7]);
    let all = Pipeline::from_iter([1, 2])
        .skip_while(|_| true)
        .collect()
        .await
        .unwrap();
    assert!(all.is_empty());
    let empty = Pipeline::from_iter(Vec::<u8>::new())
        .skip_while(|_| true)
        .collect()
        .await
        .unwrap();
    assert!(empty.is_empty());
}

#[tokio::test]
async fn skip_while_panic_fails_one_item() {
    let ledger = Ledger::default();
    let r = Pipeline::from_acked(ledger.source(5))
        .skip_while(|x| {
            assert_ne!(*x, 1, "boom");
            *x < 3
        })
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.failed, r.dropped), (2, 1, 2));
    assert_eq!(statuses(&ledger), (2, 2, 1));
}

// ---- scan ----

#[tokio::test]
async fn scan_threads_state_and_none_ends_an_endless_source() {
    let ledger = Ledger::default();
    let out = PipelineBuilder::new()
        .chunk_size(4)
        .from_acked(ledger.source(u64::MAX))
        .scan(0u64, |total, x| {
            *total += x;
            (*total < 10).then_some(*total)
        })
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [0, 1, 3, 6]);
    let (delivered, dropped, _) = statuses(&ledger);
    assert_eq!((delivered as u64, dropped as u64), (4, ledger.pulled() - 4));
}

#[tokio::test]
async fn scan_boundaries_and_panics() {
    let empty = Pipeline::from_iter(Vec::<u8>::new())
        .scan((), |_, x| Some(x))
        .collect()
        .await
        .unwrap();
    assert!(empty.is_empty());
    let one = Pipeline::from_iter([5])
        .scan(1, |s, x| Some(*s + x))
        .collect()
        .await
        .unwrap();
    assert_eq!(one, [6]);
    let ledger = Ledger::default();
    let r = Pipeline::from_acked(ledger.source(4))
        .scan(0, |n, x| {
            *n += 1;
            assert_ne!(x, 1, "boom");
            Some(*n)
        })
        .on_error(ErrorPolicy::Skip)
        .collect()
        .await
        .unwrap();
    assert_eq!(r, [1, 3, 4], "the state keeps what f did before it panicked");
    assert_eq!(statuses(&ledger), (3, 0, 1));
}

// ---- drain ----

/// Guards against the sync stages losing items taken in before a drain.
#[tokio::test(start_paused = true)]
async fn drain_mid_way_finalizes_everything_exactly_once() {
    let ledger = Ledger::default();
    let handle = PipelineBuilder::new()
        .chunk_size(8)
        .from_acked(ledger.source(u64::MAX))
        .skip(3)
        .skip_while(|x| *x < 5)
        .take_while(|_| true)
        .take(usize::MAX)
        .scan(0u64, |s, x| {
            *s += 1;
            Some(x)
        })
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        })
        .start();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = handle
        .shutdown(Shutdown::Drain, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Drained);
    assert_eq!(r.unfinalized, 0);
    let (delivered, dropped, failed) = statuses(&ledger);
    assert_eq!((dropped, failed), (5, 0));
    assert_eq!(delivered as u64, r.delivered);
    assert!(r.delivered > 0);
}

// ---- validate ----

#[tokio::test]
async fn validate_fails_bad_items_with_the_validation_kind() {
    let ledger = Ledger::default();
    let r = Pipeline::from_acked(ledger.source(6))
        .validate(|x| {
            if x % 3 == 0 {
                Err(format!("{x} is a multiple of 3"))
            } else {
                Ok(())
            }
        })
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.failed), (4, 2));
    assert_eq!(statuses(&ledger), (4, 0, 2));

    let err = Pipeline::from_iter(["ok", "", "ok"])
        .validate(|s| if s.is_empty() { Err("empty") } else { Ok(()) })
        .name("check")
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.kind().as_str(), "validation");
    assert_eq!((err.stage(), err.item()), (Some("check"), Some(1)));
    assert_eq!(
        err.to_string(),
        "stage `check` failed on item 1 (attempt 1): empty"
    );
}

#[tokio::test]
async fn validate_boundaries_and_panics() {
    let empty = Pipeline::from_iter(Vec::<u8>::new())
        .validate(|_| Err("never called"))
        .collect()
        .await
        .unwrap();
    assert!(empty.is_empty());
    let one = Pipeline::from_iter([1])
        .validate(|_| Ok::<_, String>(()))
        .collect()
        .await
        .unwrap();
    assert_eq!(one, [1]);
    let ledger = Ledger::default();
    let r = Pipeline::from_acked(ledger.source(3))
        .validate(|x| {
            assert_ne!(*x, 1, "boom");
            Ok::<_, &str>(())
        })
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.failed), (2, 1));
    assert_eq!(statuses(&ledger), (2, 0, 1));
}

// ---- tap / tap_async ----

#[tokio::test]
async fn tap_sees_each_item_and_is_its_own_stage() {
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let r = Pipeline::from_iter(1..=4u64)
        .tap(move |x| {
            s.fetch_add(*x, Ordering::SeqCst);
        })
        .run()
        .await
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 10);
    assert_eq!(r.stages[1].name, "tap#1");
    let ledger = Ledger::default();
    let r = Pipeline::from_acked(ledger.source(3))
        .tap(|x| assert_ne!(*x, 0, "boom"))
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.failed), (2, 1));
    assert_eq!(statuses(&ledger), (2, 0, 1));
}

/// Guards against an item passing on before its side effect finished.
#[tokio::test(start_paused = true)]
async fn tap_async_passes_items_on_after_the_side_effect() {
    let done = Arc::new(std::sync::Mutex::new(Vec::new()));
    let d = done.clone();
    let d2 = done.clone();
    let out = Pipeline::from_iter([30u64, 10, 20])
        .tap_async(move |ms| {
            let (d, ms) = (d.clone(), *ms);
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                d.lock().unwrap().push(ms);
            }
        })
        .concurrency(3)
        .inspect(move |ms| assert!(d2.lock().unwrap().contains(ms)))
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [30, 10, 20], "ordered by default");
    assert_eq!(*done.lock().unwrap(), [10, 20, 30]);
}

#[tokio::test(start_paused = true)]
async fn tap_async_unordered_and_boundaries() {
    let out = Pipeline::from_iter([30u64, 0, 20])
        .tap_async(|ms| {
            let ms = *ms;
            async move { tokio::time::sleep(Duration::from_millis(ms)).await }
        })
        .concurrency(3)
        .unordered()
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [0, 20, 30]);
    let empty = Pipeline::from_iter(Vec::<u8>::new())
        .tap_async(|_| async {})
        .collect()
        .await
        .unwrap();
    assert!(empty.is_empty());
    let one = Pipeline::from_iter([1])
        .tap_async(|_| async {})
        .collect()
        .await
        .unwrap();
    assert_eq!(one, [1]);
}

/// Guards against a panic in the closure or its future losing items.
#[tokio::test(start_paused = true)]
async fn tap_async_panics_fail_one_item_each() {
    for concurrency in [1, 4] {
        let ledger = Ledger::default();
        let r = Pipeline::from_acked(ledger.source(6))
            .tap_async(|x| {
                assert_ne!(*x, 1, "boom in f");
                let x = *x;
                async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    assert_ne!(x, 4, "boom in the future");
                }
            })
            .concurrency(concurrency)
            .on_error(ErrorPolicy::Skip)
            .run()
            .await
            .unwrap();
        assert_eq!((r.delivered, r.failed), (4, 2));
        assert_eq!(statuses(&ledger), (4, 0, 2));
        assert!(ledger.calls().contains(&(1, Status::Failed)));
        assert!(ledger.calls().contains(&(4, Status::Failed)));
    }
}

// ---- dedup ----

#[tokio::test]
async fn dedup_drops_colliding_keys() {
    let ledger = Ledger::default();
    let out = Pipeline::from_acked(ledger.source(10))
        .dedup(|x| x % 3)
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [0, 1, 2]);
    assert_eq!(statuses(&ledger), (3, 7, 0));
    let empty = Pipeline::from_iter(Vec::<u8>::new())
        .dedup(|x| *x)
        .collect()
        .await
        .unwrap();
    assert!(empty.is_empty());
    let one = Pipeline::from_iter([4]).dedup(|x| *x).collect().await.unwrap();
    assert_eq!(one, [4]);
}

/// Guards the documented trade-off: an evicted key passes again, and a
/// duplicate counts as a use (least recently *seen* is evicted).
#[tokio::test]
async fn dedup_capacity_evicts_the_least_recently_seen_key() {
    let out = Pipeline::from_iter([1, 2, 3, 1])
        .dedup(|x| *x)
        .capacity(2)
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [1, 2, 3, 1], "1 was evicted by 3 and passes again");
    let out = Pipeline::from_iter([1, 2, 1, 3, 1, 2])
        .dedup(|x| *x)
        .capacity(2)
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [1, 2, 3, 2], "seeing 1 again kept it; 2 was evicted");
    let r = Pipeline::from_iter((0..1000).map(|i| i % 10))
        .dedup(|x| *x)
        .capacity(1)
        .run()
        .await
        .unwrap();
    assert_eq!(
        (r.delivered, r.dropped),
        (1000, 0),
        "capacity 1 only catches repeats in a row"
    );
}

/// Guards ttl expiry on tokio's clock, measured from when the key passed.
#[tokio::test(start_paused = true)]
async fn dedup_ttl_lets_a_key_pass_again_after_it_expired() {
    let start = tokio::time::Instant::now();
    let arrivals = futures::stream::iter([
        ("a", 0),
        ("a", 49),
        ("b", 49),
        ("a", 50),
        ("a", 60),
        ("a", 99),
        ("a", 105),
        ("b", 120),
    ])
    .then(move |(key, at)| async move {
        tokio::time::sleep_until(start + Duration::from_millis(at)).await;
        (key, at)
    });
    let out = Pipeline::from_stream(arrivals)
        .dedup(|(key, _)| *key)
        .ttl(Duration::from_millis(50))
        .collect()
        .await
        .unwrap();
    // a@99 is within 50 ms of a@50; a@105 is not (the duplicates at 60 and
    // 99 did not extend it).
    assert_eq!(out, [("a", 0), ("b", 49), ("a", 50), ("a", 105), ("b", 120)]);
}

#[tokio::test]
async fn dedup_panicking_key_fails_one_item() {
    let ledger = Ledger::default();
    let r = Pipeline::from_acked(ledger.source(4))
        .dedup(|x| {
            assert_ne!(*x, 2, "boom");
            *x / 2
        })
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.dropped, r.failed), (2, 1, 1));
    assert_eq!(statuses(&ledger), (2, 1, 1));
}

#[test]
#[should_panic(expected = "must be at least 1")]
fn dedup_capacity_zero_is_a_build_error() {
    let _ = Pipeline::from_iter([1]).dedup(|x| *x).capacity(0);
}

// ---- map_batch ----

/// The batch sizes `f` was called with.
type Sizes = Arc<std::sync::Mutex<Vec<usize>>>;

fn recorder() -> (Sizes, impl FnMut(Vec<u64>) -> Vec<u64> + Send + 'static) {
    let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = sizes.clone();
    let f = move |xs: Vec<u64>| {
        s.lock().unwrap().push(xs.len());
        xs.into_iter().map(|x| x * 10).collect()
    };
    (sizes, f)
}

#[tokio::test]
async fn map_batch_cuts_batches_at_the_chunk_size_and_counts_exactly() {
    let (sizes, f) = recorder();
    let ledger = Ledger::default();
    let r = PipelineBuilder::new()
        .chunk_size(4)
        .from_acked(ledger.source(10))
        .map_batch(f)
        .filter(|x| x % 20 == 0)
        .run()
        .await
        .unwrap();
    assert_eq!(*sizes.lock().unwrap(), [4, 4, 2]);
    let mb = r.stage("map_batch#1").unwrap();
    assert_eq!((mb.items_in, mb.items_out, mb.failed), (10, 10, 0));
    let filter = r.stage("filter#2").unwrap();
    assert_eq!((filter.items_in, filter.items_out), (10, 5));
    assert_eq!((r.delivered, r.dropped, r.unfinalized), (5, 5, 0));
    assert_eq!(statuses(&ledger), (5, 5, 0));
}

#[tokio::test]
async fn map_batch_keeps_order_and_boundaries() {
    let (sizes, f) = recorder();
    let out = Pipeline::from_iter(Vec::<u64>::new())
        .map_batch(f)
        .collect()
        .await
        .unwrap();
    assert!(out.is_empty());
    assert!(
        sizes.lock().unwrap().is_empty(),
        "f is never called on an empty batch"
    );
    let (_, f) = recorder();
    let one = Pipeline::from_iter([7u64]).map_batch(f).collect().await.unwrap();
    assert_eq!(one, [70]);
    let (sizes, f) = recorder();
    let out = PipelineBuilder::new()
        .chunk_size(5)
        .from_iter(0..10u64)
        .map_batch(f)
        .collect()
        .await
        .unwrap();
    assert_eq!(out, (0..10).map(|x| x * 10).collect::<Vec<_>>());
    assert_eq!(
        *sizes.lock().unwrap(),
        [5, 5],
        "exact multiples leave no partial batch"
    );
}

/// Guards against a batch waiting for more items while the source waits.
#[tokio::test(start_paused = true)]
async fn map_batch_cuts_a_partial_batch_before_waiting() {
    let (sizes, f) = recorder();
    let slow = futures::stream::iter(0..3u64).then(|x| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        x
    });
    let out = Pipeline::from_stream(slow).map_batch(f).collect().await.unwrap();
    assert_eq!(out, [0, 10, 20]);
    assert_eq!(*sizes.lock().unwrap(), [1, 1, 1]);
}

/// Guards against a wrong-length result pairing outputs with the wrong items.
#[tokio::test]
async fn map_batch_length_mismatch_fails_the_whole_batch() {
    let ledger = Ledger::default();
    let r = PipelineBuilder::new()
        .chunk_size(3)
        .error_policy(ErrorPolicy::Skip)
        .from_acked(ledger.source(7))
        .map_batch(|xs: Vec<u64>| if xs.contains(&4) { xs[1..].to_vec() } else { xs })
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.failed), (4, 3));
    assert_eq!(statuses(&ledger), (4, 0, 3));
    for id in 3..6 {
        assert!(ledger.calls().contains(&(id, Status::Failed)));
    }
    let err = PipelineBuilder::new()
        .chunk_size(3)
        .from_iter(0..3u64)
        .map_batch(|xs| xs.into_iter().chain([99]).collect())
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stage);
    assert_eq!(
        err.message(),
        "map_batch must return one output per input: expected 3 items, got 4"
    );
}

#[tokio::test]
async fn map_batch_panic_fails_the_whole_batch_only() {
    let ledger = Ledger::default();
    let r = PipelineBuilder::new()
        .chunk_size(2)
        .from_acked(ledger.source(6))
        .map_batch(|xs: Vec<u64>| {
            assert!(!xs.contains(&2), "boom");
            xs
        })
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.failed), (4, 2));
    assert_eq!(statuses(&ledger), (4, 0, 2));
    assert!(ledger.calls().contains(&(3, Status::Failed)));
}

/// Guards the explicit counters behind a task boundary (the concurrent
/// driver settles before awaiting, not after each chunk's flush).
#[tokio::test(start_paused = true)]
async fn map_batch_after_an_async_stage() {
    let (_, f) = recorder();
    let ledger = Ledger::default();
    let r = PipelineBuilder::new()
        .chunk_size(4)
        .from_acked(ledger.source(50))
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(x % 3)).await;
            x
        })
        .concurrency(3)
        .map_batch(f)
        .filter(|x| *x >= 100)
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.dropped, r.unfinalized), (40, 10, 0));
    let mb = r.stage("map_batch#2").unwrap();
    assert_eq!((mb.items_in, mb.items_out), (50, 50));
    assert_eq!(r.stage("filter#3").unwrap().items_in, 50);
    assert_eq!(statuses(&ledger), (40, 10, 0));
}

/// Guards against batched items being lost on a drain.
#[tokio::test(start_paused = true)]
async fn map_batch_and_dedup_drain_mid_way() {
    let ledger = Ledger::default();
    let handle = PipelineBuilder::new()
        .chunk_size(8)
        .from_acked(ledger.source(u64::MAX))
        .dedup(|x| *x)
        .capacity(64)
        .map_batch(|xs: Vec<u64>| xs)
        .tap_async(|_| tokio::time::sleep(Duration::from_millis(1)))
        .concurrency(2)
        .map_batch(|xs: Vec<u64>| xs)
        .validate(|_| Ok::<_, &str>(()))
        .tap(|_| {})
        .start();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = handle
        .shutdown(Shutdown::Drain, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Drained);
    assert_eq!(r.unfinalized, 0);
    let (delivered, _, failed) = statuses(&ledger);
    assert_eq!(failed, 0);
    assert_eq!(delivered as u64, r.delivered);
    assert!(r.delivered > 0);
}

/// Guards against an always-ready stream source spinning without yielding
/// when everything it pulls is dropped in its own task: on a one-thread
/// runtime nothing else (this test, a drain) could ever run again.
#[tokio::test]
async fn a_stream_source_whose_items_are_all_deduped_yields_and_drains() {
    let ledger = Ledger::default();
    let handle = Pipeline::from_acked(ledger.source(u64::MAX))
        .dedup(|_| ())
        .start();
    while ledger.pulled() < 10_000 {
        tokio::task::yield_now().await;
    }
    let r = handle
        .shutdown(Shutdown::Drain, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Drained);
    let (delivered, dropped, failed) = statuses(&ledger);
    assert_eq!((delivered, failed), (1, 0));
    assert_eq!(dropped as u64, ledger.pulled() - 1);
}
