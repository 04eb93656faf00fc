//! Retries: backoff schedules, limits, classification, per-attempt
//! timeouts (stages and sinks), concurrency while an item waits,
//! visibility, finalization.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Ledger;
use futures::StreamExt;
use tokio::time::Instant;
use weir::{Error, ErrorKind, ErrorPolicy, EventKind, Outcome, Pipeline, PipelineBuilder, Retry, Status};

/// When each attempt started, per item, relative to `t0`.
#[derive(Clone)]
struct Attempts {
    t0: Instant,
    log: Arc<Mutex<HashMap<u64, Vec<Duration>>>>,
}

impl Attempts {
    fn new() -> Attempts {
        Attempts {
            t0: Instant::now(),
            log: Arc::default(),
        }
    }

    /// Records an attempt on `item`; returns its number (1 for the first).
    fn hit(&self, item: u64) -> usize {
        let mut log = self.log.lock().unwrap();
        let v = log.entry(item).or_default();
        v.push(self.t0.elapsed());
        v.len()
    }

    fn of(&self, item: u64) -> Vec<Duration> {
        self.log.lock().unwrap().get(&item).cloned().unwrap_or_default()
    }
}

fn ms(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|m| Duration::from_millis(*m)).collect()
}

/// Gaps between consecutive attempts.
fn gaps(at: &[Duration]) -> Vec<Duration> {
    at.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn exponential_schedule_without_jitter_follows_the_formula() {
    let a = Attempts::new();
    let h = a.clone();
    let r = Pipeline::from_iter([0u64])
        .try_then(move |x| {
            h.hit(x);
            async { Err::<u64, _>("down") }
        })
        .retry(
            Retry::exponential(Duration::from_millis(100))
                .factor(3.0)
                .max_delay(Duration::from_millis(1000))
                .full_jitter(false)
                .max_attempts(5),
        )
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    // 100, 300, 900, then capped at 1000.
    assert_eq!(a.of(0), ms(&[0, 100, 400, 1300, 2300]));
    assert_eq!((r.failed, r.stages[1].retried), (1, 4));
}

#[tokio::test(start_paused = true)]
async fn jittered_schedule_is_under_the_formula_and_replays_with_its_seed() {
    async fn schedule(seed: u64) -> Vec<Duration> {
        let a = Attempts::new();
        let h = a.clone();
        Pipeline::from_iter([0u64])
            .try_then(move |x| {
                h.hit(x);
                async { Err::<u64, _>("down") }
            })
            .retry(
                Retry::exponential(Duration::from_millis(100))
                    .max_attempts(6)
                    .seed(seed),
            )
            .on_error(ErrorPolicy::Skip)
            .run()
            .await
            .unwrap();
        gaps(&a.of(0))
    }
    let one = schedule(42).await;
    assert_eq!(one.len(), 5);
    let policy = Retry::exponential(Duration::from_millis(100));
    for (n, gap) in one.iter().enumerate() {
        assert!(*gap <= policy.delay(n as u32 + 1), "gap {n}: {gap:?}");
    }
    assert_eq!(schedule(42).await, one);
    assert_ne!(schedule(43).await, one);
}

#[tokio::test(start_paused = true)]
async fn fixed_delays_and_max_attempts_stop_retries() {
    let a = Attempts::new();
    let h = a.clone();
    let err = Pipeline::from_iter([7u64])
        .try_then(move |x| {
            h.hit(x);
            async { Err::<u64, _>("down") }
        })
        .retry(Retry::fixed(Duration::from_millis(250)).max_attempts(4))
        .name("call")
        .run()
        .await
        .unwrap_err();
    assert_eq!(a.of(7), ms(&[0, 250, 500, 750]));
    assert_eq!(
        (err.kind(), err.attempt(), err.is_retryable()),
        (ErrorKind::Stage, 4, true)
    );
    assert_eq!(err.to_string(), "stage `call` failed on item 0 (attempt 4): down");
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_stops_retries() {
    let a = Attempts::new();
    let h = a.clone();
    let err = Pipeline::from_iter([0u64])
        .try_then(move |x| {
            h.hit(x);
            async { Err::<u64, _>("down") }
        })
        .retry(
            Retry::exponential(Duration::from_millis(100))
                .full_jitter(false)
                .max_attempts(50)
                .max_elapsed(Duration::from_millis(800)),
        )
        .run()
        .await
        .unwrap_err();
    // 0, 100, 300, 700; the next would start at 1500 > 800.
    assert_eq!(a.of(0), ms(&[0, 100, 300, 700]));
    assert_eq!(err.attempt(), 4);
}

#[tokio::test(start_paused = true)]
async fn one_attempt_means_no_retry() {
    let a = Attempts::new();
    let h = a.clone();
    let err = Pipeline::from_iter([0u64])
        .try_then(move |x| {
            h.hit(x);
            async { Err::<u64, _>("down") }
        })
        .retry(Retry::fixed(Duration::from_millis(1)).max_attempts(1))
        .run()
        .await
        .unwrap_err();
    assert_eq!(a.of(0).len(), 1);
    assert_eq!((err.attempt(), err.is_retryable()), (1, true));
}

#[tokio::test(start_paused = true)]
async fn non_retryable_errors_go_straight_to_the_policy() {
    let a = Attempts::new();
    let h = a.clone();
    let r = Pipeline::from_iter([0u64, 1, 2])
        .try_then(move |x| {
            h.hit(x);
            async move {
                match x {
                    0 => Err(Error::permanent("bad request")),
                    1 => panic!("bug"),
                    _ => Ok(x),
                }
            }
        })
        .retry(Retry::fixed(Duration::from_millis(10)).max_attempts(5))
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((a.of(0).len(), a.of(1).len(), a.of(2).len()), (1, 1, 1));
    assert_eq!((r.delivered, r.failed, r.stages[1].retried), (1, 2, 0));
}

#[tokio::test(start_paused = true)]
async fn retry_if_and_classify_decide() {
    #[derive(Debug, thiserror::Error)]
    #[error("status {0}")]
    struct Status(u16);
    impl weir::Retryable for Status {
        fn is_retryable(&self) -> bool {
            self.0 == 503
        }
    }
    let a = Attempts::new();
    let h = a.clone();
    let r = Pipeline::from_iter([400u64, 503])
        .try_then(move |x| {
            h.hit(x);
            async move { Err::<u64, _>(Status(x as u16)) }
        })
        .retry(Retry::fixed(Duration::from_millis(1)).classify::<Status>())
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((a.of(400).len(), a.of(503).len()), (1, 3));
    assert_eq!(r.stages[1].retried, 2);

    // A closure can retry what the default would not (a panic here).
    let a = Attempts::new();
    let h = a.clone();
    let r = Pipeline::from_iter([0u64])
        .then(move |x| {
            let n = h.hit(x);
            async move {
                assert!(n > 1, "first attempt panics");
                x
            }
        })
        .retry(Retry::fixed(Duration::from_millis(1)).retry_if(|e| e.kind() == ErrorKind::Panic))
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, a.of(0).len()), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn per_attempt_timeouts_are_retried() {
    let a = Attempts::new();
    let h = a.clone();
    let out = Pipeline::from_iter([0u64])
        .then(move |x| {
            let n = h.hit(x);
            async move {
                // The first two attempts hang past the limit.
                if n <= 2 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                x + 1
            }
        })
        .timeout(Duration::from_millis(100))
        .retry(Retry::fixed(Duration::from_millis(50)))
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [1]);
    assert_eq!(a.of(0), ms(&[0, 150, 300]));
}

#[tokio::test(start_paused = true)]
async fn exhausted_timeouts_fail_with_timeout() {
    let err = Pipeline::from_iter([0u64])
        .then(|_| tokio::time::sleep(Duration::from_secs(60)))
        .timeout(Duration::from_millis(100))
        .retry(Retry::fixed(Duration::from_millis(50)).max_attempts(2))
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.attempt(), err.is_retryable()),
        (ErrorKind::Timeout, 2, true)
    );
}

/// Item 0 fails once and waits 1s; the others take 10ms each.
fn one_slow_retry(
    a: &Attempts,
) -> impl FnMut(u64) -> futures::future::BoxFuture<'static, Result<u64, &'static str>> {
    let h = a.clone();
    move |x| {
        let n = h.hit(x);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if x == 0 && n == 1 {
                Err("flaky")
            } else {
                Ok(x)
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn unordered_stages_emit_other_items_while_one_waits() {
    let a = Attempts::new();
    let t0 = Instant::now();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    Pipeline::from_iter(0..6u64)
        .try_then(one_slow_retry(&a))
        .retry(Retry::fixed(Duration::from_secs(1)))
        .concurrency(2)
        .unordered()
        .for_each(move |x| s.lock().unwrap().push((x, t0.elapsed())))
        .run()
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let order: Vec<u64> = seen.iter().map(|(x, _)| *x).collect();
    assert_eq!(order, [1, 2, 3, 4, 5, 0]);
    // Items 1..=5 ran one after another in the second slot while item 0
    // waited for its backoff.
    assert_eq!(seen[4].1, Duration::from_millis(50));
    assert_eq!(seen[5].1, Duration::from_millis(1020));
}

#[tokio::test(start_paused = true)]
async fn ordered_stages_hold_back_only_emission_order() {
    let a = Attempts::new();
    let t0 = Instant::now();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    Pipeline::from_iter(0..6u64)
        .try_then(one_slow_retry(&a))
        .retry(Retry::fixed(Duration::from_secs(1)))
        .concurrency(4)
        .for_each(move |x| s.lock().unwrap().push((x, t0.elapsed())))
        .run()
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let order: Vec<u64> = seen.iter().map(|(x, _)| *x).collect();
    assert_eq!(order, [0, 1, 2, 3, 4, 5]);
    // Items 1..=3 ran at once (10ms) while item 0 waited; they left
    // behind it, when it succeeded at 1020ms.
    assert_eq!(a.of(1), ms(&[0]));
    assert_eq!(a.of(3), ms(&[0]));
    assert!(seen.iter().all(|(_, t)| *t >= Duration::from_millis(1020)));
}

#[tokio::test(start_paused = true)]
async fn retries_are_events_and_counters() {
    let a = Attempts::new();
    let h = a.clone();
    let events: Vec<_> = PipelineBuilder::new()
        .name("r")
        .from_iter([5u64])
        .try_then(move |x| {
            let n = h.hit(x);
            async move {
                if n < 3 {
                    Err("unavailable")
                } else {
                    Ok(x)
                }
            }
        })
        .retry(Retry::exponential(Duration::from_millis(20)).full_jitter(false))
        .name("fetch")
        .events()
        .collect()
        .await;
    let retries: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RetryScheduled {
                stage,
                item,
                attempt,
                delay_ms,
                error,
                error_type,
            } => Some((
                stage.clone(),
                *item,
                *attempt,
                *delay_ms,
                error.clone(),
                error_type.clone(),
            )),
            _ => None,
        })
        .collect();
    let e = |attempt, delay| {
        (
            "fetch".to_owned(),
            0,
            attempt,
            delay,
            "unavailable".to_owned(),
            "error".to_owned(),
        )
    };
    assert_eq!(retries, [e(1, 20), e(2, 40)]);
    let json = serde_json::to_value(
        events
            .iter()
            .find(|e| matches!(e.kind, EventKind::RetryScheduled { .. }))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["type"], "retry_scheduled");
    let EventKind::PipelineFinished { report, .. } = &events.last().unwrap().kind else {
        panic!("no finished event");
    };
    assert_eq!(report.stage("fetch").unwrap().retried, 2);
    assert_eq!(report.delivered, 1);
    assert!(report.to_string().contains("retried"));
}

#[tokio::test(start_paused = true)]
async fn item_failed_carries_attempts_and_retryable() {
    let events: Vec<_> = Pipeline::from_iter([0u64, 1])
        .try_then(|x: u64| async move {
            if x == 0 {
                Err::<u64, _>(Error::permanent("gone"))
            } else {
                Err(Error::transient("busy"))
            }
        })
        .retry(Retry::fixed(Duration::from_millis(1)).max_attempts(3))
        .on_error(ErrorPolicy::Skip)
        .events()
        .collect()
        .await;
    let failed = failures(&events);
    assert_eq!(failed, [(0, 1, false), (1, 3, true)]);
}

#[tokio::test(start_paused = true)]
async fn every_item_is_finalized_exactly_once() {
    let ledger = Ledger::default();
    let a = Attempts::new();
    let h = a.clone();
    let r = PipelineBuilder::new()
        .from_acked(ledger.source(100))
        .try_then(move |x| {
            let n = h.hit(x);
            async move {
                match x % 10 {
                    // Always fails: runs out of attempts.
                    0 => Err("down"),
                    // Fails twice, then works.
                    1 if n < 3 => Err("flaky"),
                    _ => Ok(x),
                }
            }
        })
        .retry(Retry::exponential(Duration::from_millis(5)).seed(1))
        .concurrency(8)
        .unordered()
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!(
        (r.outcome, r.delivered, r.failed, r.unfinalized),
        (Outcome::Completed, 90, 10, 0)
    );
    assert_eq!(r.stages[1].retried, 40);
    let seen = ledger.assert_exactly_once();
    assert_eq!(seen.values().filter(|s| **s == Status::Failed).count(), 10);
}

#[tokio::test(start_paused = true)]
async fn empty_input_and_single_items() {
    let r = Pipeline::from_iter(Vec::<u64>::new())
        .try_then(|x| async move { Ok::<_, &str>(x) })
        .retry(Retry::fixed(Duration::from_millis(1)))
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.stages[1].retried), (0, 0));
    let out = Pipeline::from_iter([3u64])
        .try_then(|x| async move { Ok::<_, &str>(x * 2) })
        .retry(Retry::fixed(Duration::from_millis(1)))
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [6]);
}

#[tokio::test(start_paused = true)]
async fn a_drain_finishes_items_waiting_for_a_retry() {
    let ledger = Ledger::default();
    let handle = PipelineBuilder::new()
        .from_acked(ledger.source(1000))
        .try_then(|x| async move {
            if x == 0 {
                Err("down")
            } else {
                Ok(x)
            }
        })
        .retry(Retry::fixed(Duration::from_secs(1)).max_attempts(3))
        .concurrency(4)
        .on_error(ErrorPolicy::Skip)
        .start();
    tokio::time::sleep(Duration::from_millis(10)).await;
    handle.controller().drain();
    let r = handle.wait().await.unwrap();
    assert_eq!(r.outcome, Outcome::Drained);
    assert_eq!(r.unfinalized, 0);
    let seen = ledger.assert_exactly_once();
    assert_eq!(seen[&0], Status::Failed);
}

#[tokio::test(start_paused = true)]
async fn blocking_and_keyed_stages_retry() {
    let a = Attempts::new();
    let h = a.clone();
    let out = Pipeline::from_iter([1u64, 2])
        .key_by(|x| *x)
        .try_then(move |x| {
            let n = h.hit(x);
            async move {
                if n == 1 {
                    Err("once")
                } else {
                    Ok(x)
                }
            }
        })
        .retry(Retry::fixed(Duration::from_millis(30)))
        .concurrency(2)
        .collect()
        .await
        .unwrap();
    let mut out = out;
    out.sort();
    assert_eq!(out, [1, 2]);
    assert_eq!(a.of(1), ms(&[0, 30]));

    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    let out = Pipeline::from_iter([9u64])
        .try_blocking(move |x| {
            let mut n = c.lock().unwrap();
            *n += 1;
            if *n == 1 {
                Err("once")
            } else {
                Ok(x)
            }
        })
        .retry(Retry::fixed(Duration::from_millis(1)))
        .collect()
        .await
        .unwrap();
    assert_eq!((out, *calls.lock().unwrap()), (vec![9], 2));
}

#[derive(Default, Clone)]
struct FlakySink {
    /// Writes (`true`) and flushes (`false`) that fail, in turn.
    fail_writes: Arc<Mutex<u32>>,
    fail_flushes: Arc<Mutex<u32>>,
    buffer: Vec<u64>,
    written: Arc<Mutex<Vec<u64>>>,
}

impl weir::Sink<u64> for FlakySink {
    type Error = std::io::Error;
    async fn write(&mut self, x: u64) -> Result<(), std::io::Error> {
        let mut f = self.fail_writes.lock().unwrap();
        if *f > 0 {
            *f -= 1;
            return Err(std::io::Error::other("write failed"));
        }
        self.buffer.push(x);
        Ok(())
    }
    async fn flush(&mut self) -> Result<(), std::io::Error> {
        let mut f = self.fail_flushes.lock().unwrap();
        if *f > 0 {
            *f -= 1;
            return Err(std::io::Error::other("flush failed"));
        }
        self.written.lock().unwrap().append(&mut self.buffer);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn sinks_retry_writes_and_flushes() {
    let sink = FlakySink::default();
    *sink.fail_writes.lock().unwrap() = 2;
    *sink.fail_flushes.lock().unwrap() = 1;
    let written = sink.written.clone();
    let ledger = Ledger::default();
    let t0 = Instant::now();
    let r = PipelineBuilder::new()
        .from_acked(ledger.source(3))
        .sink(sink)
        .retry(Retry::fixed(Duration::from_millis(100)))
        .run()
        .await
        .unwrap();
    assert_eq!(*written.lock().unwrap(), [0, 1, 2]);
    assert_eq!((r.delivered, r.stages[1].retried), (3, 3));
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
    ledger.assert_exactly_once();

    // Out of attempts: the write's item fails, the others are delivered.
    let sink = FlakySink::default();
    *sink.fail_writes.lock().unwrap() = 2;
    let r = Pipeline::from_iter([0u64, 1])
        .sink(sink)
        .retry(Retry::fixed(Duration::from_millis(1)).max_attempts(2))
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.failed, r.stages[1].retried), (1, 1, 1));
}

/// The last event's report.
/// The (item, attempt, retryable) of each `ItemFailed` event, in order.
fn failures(events: &[weir::Event]) -> Vec<(u64, u32, bool)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ItemFailed {
                item,
                attempt,
                retryable,
                ..
            } => Some((*item, *attempt, *retryable)),
            _ => None,
        })
        .collect()
}

fn finished(events: &[weir::Event]) -> weir::Report {
    match &events.last().unwrap().kind {
        EventKind::PipelineFinished { report, .. } => (**report).clone(),
        other => panic!("last event: {other:?}"),
    }
}

/// Guards against a sink ignoring its timeout, or failing a timed-out
/// write without retrying it.
#[tokio::test(start_paused = true)]
async fn sink_writes_that_time_out_are_retried() {
    let a = Attempts::new();
    let h = a.clone();
    // Item 1's first two writes hang past the limit; the others take 10ms.
    let sink = weir::sink_fn(move |x: u64| {
        let n = h.hit(x);
        let wait = if x == 1 && n <= 2 { 60_000 } else { 10 };
        async move {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            Ok::<_, std::io::Error>(())
        }
    });
    let ledger = Ledger::default();
    let events: Vec<_> = PipelineBuilder::new()
        .from_acked(ledger.source(3))
        .sink(sink)
        .timeout(Duration::from_millis(100))
        .retry(Retry::fixed(Duration::from_millis(50)))
        .name("store")
        .events()
        .collect()
        .await;
    assert_eq!(a.of(0), ms(&[0]));
    assert_eq!(a.of(1), ms(&[10, 160, 310]));
    assert_eq!(a.of(2), ms(&[320]));
    let retries: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RetryScheduled {
                item,
                attempt,
                error_type,
                ..
            } => Some((*item, *attempt, error_type.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        retries,
        [(1, 1, "timeout".to_owned()), (1, 2, "timeout".to_owned())]
    );
    let r = finished(&events);
    let store = r.stage("store").unwrap();
    assert_eq!((store.retried, store.failed), (2, 0));
    assert_eq!(
        (r.outcome, r.delivered, r.failed, r.unfinalized),
        (Outcome::Completed, 3, 0, 0)
    );
    assert!(ledger
        .assert_exactly_once()
        .values()
        .all(|s| *s == Status::Delivered));
}

/// A sink whose next `hangs` flushes hang for a minute.
struct HangingFlush {
    hangs: u32,
}

impl weir::Sink<u64> for HangingFlush {
    type Error = std::io::Error;
    async fn write(&mut self, _: u64) -> Result<(), std::io::Error> {
        Ok(())
    }
    async fn flush(&mut self) -> Result<(), std::io::Error> {
        if self.hangs > 0 {
            self.hangs -= 1;
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Ok(())
    }
}

/// Guards against flushes escaping the sink's timeout, and against a
/// timed-out flush finalizing its items twice or not at all.
#[tokio::test(start_paused = true)]
async fn sink_flushes_that_time_out_are_retried_then_fail_their_items() {
    let ledger = Ledger::default();
    let t0 = Instant::now();
    let r = PipelineBuilder::new()
        .from_acked(ledger.source(3))
        .sink(HangingFlush { hangs: 1 })
        .timeout(Duration::from_millis(100))
        .retry(Retry::fixed(Duration::from_millis(50)))
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.stages[1].retried), (3, 1));
    assert_eq!(t0.elapsed(), Duration::from_millis(150));
    ledger.assert_exactly_once();

    // Every flush hangs: out of attempts, each written item fails with the timeout.
    let ledger = Ledger::default();
    let events: Vec<_> = PipelineBuilder::new()
        .from_acked(ledger.source(3))
        .sink(HangingFlush { hangs: u32::MAX })
        .timeout(Duration::from_millis(100))
        .retry(Retry::fixed(Duration::from_millis(50)).max_attempts(2))
        .on_error(ErrorPolicy::Skip)
        .events()
        .collect()
        .await;
    let failed: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ItemFailed { item, error_type, .. } => Some((*item, error_type.clone())),
            _ => None,
        })
        .collect();
    let timeout = || "timeout".to_owned();
    assert_eq!(failed, [(0, timeout()), (1, timeout()), (2, timeout())]);
    let r = finished(&events);
    assert_eq!(
        (r.outcome, r.delivered, r.failed, r.unfinalized),
        (Outcome::Completed, 0, 3, 0)
    );
    assert!(ledger
        .assert_exactly_once()
        .values()
        .all(|s| *s == Status::Failed));
}

/// Item `x`'s attempts for the zero-backoff tests, by `x % 6`, ready at
/// once unless they sleep: 0 fails once, 1 always fails, 2 fails for
/// good (not retryable), 3 waits 10ms and fails once, 4 waits 5ms and
/// works, 5 fails once and its retry waits 5ms.
fn mixed(a: &Attempts) -> impl FnMut(u64) -> futures::future::BoxFuture<'static, Result<u64, Error>> {
    let h = a.clone();
    move |x| {
        let n = h.hit(x);
        let (wait, fails) = match (x % 6, n) {
            (0 | 5, 1) | (1, _) => (0, Some(Error::transient("busy"))),
            (2, _) => (0, Some(Error::permanent("gone"))),
            (3, 1) => (10, Some(Error::transient("slow and busy"))),
            (4, _) | (5, 2) => (5, None),
            _ => (0, None),
        };
        Box::pin(async move {
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            fails.map_or(Ok(x), Err)
        })
    }
}

/// Retries due at once are run at once, in place, by the windowed driver:
/// the same attempts, counts, failures, order and finalization as any
/// retry, mixed with items that wait (which share the stage's work while
/// they do), ordered or not.
#[tokio::test(start_paused = true)]
async fn zero_backoff_retries_keep_every_rule() {
    for ordered in [true, false] {
        let ledger = Ledger::default();
        let a = Attempts::new();
        let out = Arc::new(Mutex::new(Vec::new()));
        let o = out.clone();
        let p = PipelineBuilder::new()
            .from_acked(ledger.source(60))
            .try_then(mixed(&a))
            .retry(Retry::fixed(Duration::ZERO))
            .concurrency(4);
        let p = if ordered { p } else { p.unordered() };
        let r = p
            .on_error(ErrorPolicy::Skip)
            .for_each(move |x| o.lock().unwrap().push(x))
            .run()
            .await
            .unwrap();
        assert_eq!((r.delivered, r.failed, r.unfinalized), (40, 20, 0));
        assert_eq!(r.stages[1].retried, 50);
        ledger.assert_exactly_once();
        let mut out = out.lock().unwrap().clone();
        if !ordered {
            out.sort_unstable();
        }
        let want: Vec<u64> = (0..60).filter(|x| ![1, 2].contains(&(x % 6))).collect();
        assert_eq!(out, want, "ordered: {ordered}");
        for x in 0..60 {
            let at = a.of(x);
            let (n, gap) = match x % 6 {
                0 | 5 => (2, vec![Duration::ZERO]),
                1 => (3, vec![Duration::ZERO; 2]),
                2 | 4 => (1, vec![]),
                _ => (2, ms(&[10])),
            };
            assert_eq!((at.len(), gaps(&at)), (n, gap), "item {x}, ordered: {ordered}");
        }
    }
}

/// With events on, a retry due at once is still announced; failures carry
/// their attempts, and the retry's wait-free path changes none of it.
#[tokio::test(start_paused = true)]
async fn zero_backoff_retries_are_announced() {
    let a = Attempts::new();
    let events: Vec<_> = Pipeline::from_iter(0..12u64)
        .try_then(mixed(&a))
        .retry(Retry::fixed(Duration::ZERO))
        .concurrency(4)
        .on_error(ErrorPolicy::Skip)
        .events()
        .collect()
        .await;
    let mut retries: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RetryScheduled {
                item,
                attempt,
                delay_ms,
                ..
            } => Some((*item, *attempt, *delay_ms)),
            _ => None,
        })
        .collect();
    retries.sort_unstable();
    let want = [0, 1, 1, 3, 5, 6, 7, 7, 9, 11];
    let attempts = [1, 1, 2, 1, 1, 1, 1, 2, 1, 1];
    let want: Vec<_> = want.iter().zip(attempts).map(|(x, n)| (*x, n, 0)).collect();
    assert_eq!(retries, want);
    let mut failed = failures(&events);
    failed.sort_unstable();
    assert_eq!(failed, [(1, 3, true), (2, 1, false), (7, 3, true), (8, 1, false)]);
}

/// The elapsed limit counts from the first attempt, also when a retry run
/// at once turns out to wait.
#[tokio::test(start_paused = true)]
async fn max_elapsed_counts_from_the_first_attempt_across_zero_backoffs() {
    let a = Attempts::new();
    let h = a.clone();
    let err = Pipeline::from_iter([0u64, 1])
        .try_then(move |x| {
            let n = h.hit(x);
            Box::pin(async move {
                if x == 1 {
                    return Ok(x);
                }
                if n > 1 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err("down")
            }) as futures::future::BoxFuture<'static, _>
        })
        .retry(
            Retry::fixed(Duration::ZERO)
                .max_attempts(10)
                .max_elapsed(Duration::from_millis(150)),
        )
        .concurrency(2)
        .run()
        .await
        .unwrap_err();
    // At 0 (at once), 0 (retried at once, then waits) and 100; one at 200
    // would start too late.
    assert_eq!(a.of(0), ms(&[0, 0, 100]));
    assert_eq!(err.attempt(), 3);
}

/// A panic, when first polled or when the function is called, is a failed
/// attempt: not retried by default, retried if the classifier says so.
#[tokio::test(start_paused = true)]
async fn panics_are_failed_attempts_in_zero_backoff_retries() {
    async fn run(retry: Retry) -> (weir::Report, Attempts) {
        let a = Attempts::new();
        let h = a.clone();
        let r = Pipeline::from_iter(0..4u64)
            .try_then(move |x| {
                let n = h.hit(x);
                if x == 1 && n == 1 {
                    panic!("call panicked");
                }
                async move {
                    if x == 2 && n == 1 {
                        panic!("poll panicked");
                    }
                    Ok::<_, &str>(x)
                }
            })
            .retry(retry)
            .concurrency(2)
            .on_error(ErrorPolicy::Skip)
            .run()
            .await
            .unwrap();
        (r, a)
    }
    let (r, a) = run(Retry::fixed(Duration::ZERO)).await;
    assert_eq!((r.delivered, r.failed, r.stages[1].retried), (2, 2, 0));
    assert_eq!((a.of(1).len(), a.of(2).len()), (1, 1));
    let (r, a) = run(Retry::fixed(Duration::ZERO).retry_if(|_| true)).await;
    assert_eq!((r.delivered, r.failed, r.stages[1].retried), (4, 0, 2));
    assert_eq!((a.of(1).len(), a.of(2).len()), (2, 2));
}

/// Attempts retried at once still go through the breaker one by one: the
/// call that trips it ends the retries, and later items meet it open.
#[tokio::test(start_paused = true)]
async fn zero_backoff_retries_go_through_the_breaker() {
    let a = Attempts::new();
    let h = a.clone();
    let r = Pipeline::from_iter(0..10u64)
        .try_then(move |x| {
            h.hit(x);
            async { Err::<u64, _>("down") }
        })
        .circuit_breaker(
            weir::Breaker::new()
                .window_count(4)
                .min_calls(4)
                .when_open(weir::WhenOpen::Fail),
        )
        .retry(Retry::fixed(Duration::ZERO))
        .concurrency(4)
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    // Item 0: three calls; item 1's call trips the breaker, and its retry
    // meets it open, as do items 2..10.
    assert_eq!((a.of(0).len(), a.of(1).len(), a.of(2).len()), (3, 1, 0));
    let stage = &r.stages[1];
    assert_eq!((stage.failed, stage.retried, stage.breaker_trips), (10, 3, 1));
}
