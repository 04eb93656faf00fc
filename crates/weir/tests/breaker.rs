//! Circuit breakers: transitions and their events, waiting and failing
//! while open, count and time windows, minimum calls; on stages and sinks.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Ledger;
use futures::StreamExt;
use tokio::time::Instant;
use weir::{
    Breaker, ErrorKind, ErrorPolicy, Event, EventKind, Outcome, Pipeline, PipelineBuilder, Retry, WhenOpen,
};

/// The calls a stage made: (item, time since start).
#[derive(Clone)]
struct Calls {
    t0: Instant,
    log: Arc<Mutex<Vec<(u64, Duration)>>>,
}

impl Calls {
    fn new() -> Calls {
        Calls {
            t0: Instant::now(),
            log: Arc::default(),
        }
    }

    fn hit(&self, item: u64) {
        self.log.lock().unwrap().push((item, self.t0.elapsed()));
    }

    fn items(&self) -> Vec<u64> {
        self.log.lock().unwrap().iter().map(|(i, _)| *i).collect()
    }

    fn at(&self, item: u64) -> Vec<Duration> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|(i, _)| *i == item).map(|(_, t)| *t).collect()
    }
}

/// A stage function failing the items for which `fails` is true.
fn service(
    calls: &Calls,
    fails: impl Fn(u64) -> bool + Send + 'static,
) -> impl FnMut(u64) -> futures::future::Ready<Result<u64, &'static str>> + Send + 'static {
    let calls = calls.clone();
    move |x| {
        calls.hit(x);
        futures::future::ready(if fails(x) { Err("down") } else { Ok(x) })
    }
}

fn changes(events: &[Event]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::StageStateChanged { from, to, reason, .. } => {
                Some((from.clone(), to.clone(), reason.clone()))
            }
            _ => None,
        })
        .collect()
}

fn change(from: &str, to: &str, reason: &str) -> (String, String, String) {
    (from.to_owned(), to.to_owned(), reason.to_owned())
}

fn finished(events: &[Event]) -> weir::Report {
    match &events.last().unwrap().kind {
        EventKind::PipelineFinished { report, .. } => (**report).clone(),
        other => panic!("last event: {other:?}"),
    }
}

fn breaker() -> Breaker {
    Breaker::new()
        .window_count(4)
        .min_calls(4)
        .open_for(Duration::from_secs(1))
}

#[tokio::test(start_paused = true)]
async fn closed_open_half_open_closed_with_events_in_order() {
    let calls = Calls::new();
    let ledger = Ledger::default();
    let events: Vec<_> = PipelineBuilder::new()
        .from_acked(ledger.source(8))
        .try_then(service(&calls, |x| x < 4))
        .circuit_breaker(breaker())
        .name("api")
        .on_error(ErrorPolicy::Skip)
        .events()
        .collect()
        .await;
    assert_eq!(
        changes(&events),
        [
            change("closed", "open", "failure rate 1.00 >= 0.50 over 4 calls"),
            change("open", "half_open", "open for 1s elapsed"),
            change("half_open", "closed", "probes succeeded"),
        ]
    );
    let rate = events.iter().find_map(|e| match &e.kind {
        EventKind::StageStateChanged {
            stage, failure_rate, ..
        } => Some((stage.clone(), *failure_rate)),
        _ => None,
    });
    assert_eq!(rate, Some(("api".to_owned(), Some(1.0))));
    // Item 4 waited for the breaker (open for 1s), then went through as
    // the probe; the rest followed at once.
    assert_eq!(calls.items(), (0..8).collect::<Vec<_>>());
    assert_eq!(calls.at(4), [Duration::from_secs(1)]);
    let r = finished(&events);
    let api = r.stage("api").unwrap();
    assert_eq!(
        (api.failed, api.breaker_trips, api.breaker.as_deref()),
        (4, 1, Some("closed"))
    );
    assert_eq!(
        (r.outcome, r.delivered, r.unfinalized),
        (Outcome::Completed, 4, 0)
    );
    ledger.assert_exactly_once();
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_opens_it_again() {
    let calls = Calls::new();
    let events: Vec<_> = Pipeline::from_iter(0..7u64)
        .try_then(service(&calls, |x| x < 5))
        .circuit_breaker(breaker())
        .on_error(ErrorPolicy::Skip)
        .events()
        .collect()
        .await;
    assert_eq!(
        changes(&events),
        [
            change("closed", "open", "failure rate 1.00 >= 0.50 over 4 calls"),
            change("open", "half_open", "open for 1s elapsed"),
            change("half_open", "open", "probe failed"),
            change("open", "half_open", "open for 1s elapsed"),
            change("half_open", "closed", "probes succeeded"),
        ]
    );
    assert_eq!(calls.at(4), [Duration::from_secs(1)]);
    assert_eq!(calls.at(5), [Duration::from_secs(2)]);
    let r = finished(&events);
    assert_eq!((r.stages[1].breaker_trips, r.delivered, r.failed), (2, 2, 5));
}

#[tokio::test(start_paused = true)]
async fn every_probe_must_succeed_and_waiters_queue_behind_them() {
    let calls = Calls::new();
    let events: Vec<_> = Pipeline::from_iter(0..10u64)
        .try_then(service(&calls, |x| x < 4))
        .circuit_breaker(breaker().half_open_probes(2))
        .concurrency(4)
        .unordered()
        .on_error(ErrorPolicy::Skip)
        .events()
        .collect()
        .await;
    let got = changes(&events);
    assert_eq!(
        got.last().unwrap(),
        &change("half_open", "closed", "probes succeeded")
    );
    let r = finished(&events);
    assert_eq!((r.delivered, r.failed, r.stages[1].breaker_trips), (6, 4, 1));
    // Nothing went through while it was open.
    let log = calls.log.lock().unwrap().clone();
    assert!(
        log.iter().all(|(i, t)| *i < 4 || *t >= Duration::from_secs(1)),
        "{log:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn when_open_fail_fails_with_circuit_open() {
    let calls = Calls::new();
    let err = Pipeline::from_iter(0..10u64)
        .try_then(service(&calls, |_| true))
        .circuit_breaker(breaker().when_open(WhenOpen::Fail))
        .on_error(ErrorPolicy::Skip)
        .name("api")
        .events()
        .filter_map(|e| async move {
            match e.kind {
                EventKind::ItemFailed { item, error_type, .. } => Some((item, error_type)),
                _ => None,
            }
        })
        .collect::<Vec<_>>()
        .await;
    assert_eq!(calls.items(), [0, 1, 2, 3]);
    assert_eq!(ErrorKind::CircuitOpen.as_str(), "circuit_open");
    let circuit_open: Vec<u64> = err
        .iter()
        .filter(|(_, t)| t == "circuit_open")
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(circuit_open, (4..10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn circuit_open_is_not_retried() {
    let calls = Calls::new();
    let r = Pipeline::from_iter(0..3u64)
        .try_then(service(&calls, |_| true))
        .circuit_breaker(breaker().min_calls(2).window_count(2).when_open(WhenOpen::Fail))
        .retry(Retry::fixed(Duration::from_millis(1)).max_attempts(3))
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    // Item 0: two calls open the breaker; its third attempt meets it open.
    assert_eq!(calls.items(), [0, 0]);
    assert_eq!((r.failed, r.stages[1].retried), (3, 2));
}

#[tokio::test(start_paused = true)]
async fn count_windows_forget_old_calls() {
    // F O O O O F F F: the last four hold three failures (0.75), the whole
    // run only four of eight.
    let pattern = [true, false, false, false, false, true, true, true, false];
    let calls = Calls::new();
    let events: Vec<_> = Pipeline::from_iter(0..9u64)
        .try_then(service(&calls, move |x| pattern[x as usize]))
        .circuit_breaker(
            Breaker::new()
                .window_count(4)
                .min_calls(2)
                .failure_rate(0.75)
                .when_open(WhenOpen::Fail),
        )
        .on_error(ErrorPolicy::Skip)
        .events()
        .collect()
        .await;
    assert_eq!(
        changes(&events),
        [change("closed", "open", "failure rate 0.75 >= 0.75 over 4 calls")]
    );
    assert_eq!(calls.items(), (0..8).collect::<Vec<_>>());
    assert_eq!(finished(&events).stages[1].breaker.as_deref(), Some("open"));
}

#[tokio::test(start_paused = true)]
async fn time_windows_forget_old_calls() {
    // (fails, work time in ms): calls finish at 0, 2000, 4000 and 4100.
    let plan = [(true, 0u64), (false, 2000), (true, 2000), (true, 100), (false, 0)];
    let t0 = Instant::now();
    let opened = Arc::new(Mutex::new(None));
    let events: Vec<_> = Pipeline::from_iter(0..5usize)
        .try_then(move |i| async move {
            let (fails, ms) = plan[i];
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if fails {
                Err("down")
            } else {
                Ok(i)
            }
        })
        .circuit_breaker(
            Breaker::new()
                .window_time(Duration::from_secs(1))
                .min_calls(2)
                .when_open(WhenOpen::Fail),
        )
        .on_error(ErrorPolicy::Skip)
        .events()
        .inspect(|e| {
            if matches!(e.kind, EventKind::StageStateChanged { .. }) {
                opened.lock().unwrap().get_or_insert(t0.elapsed());
            }
        })
        .collect()
        .await;
    // At 4000 the window holds one call (below min_calls); at 4100 two
    // failures.
    assert_eq!(
        changes(&events),
        [change("closed", "open", "failure rate 1.00 >= 0.50 over 2 calls")]
    );
    assert_eq!(*opened.lock().unwrap(), Some(Duration::from_millis(4100)));
}

#[tokio::test(start_paused = true)]
async fn min_calls_is_respected() {
    let calls = Calls::new();
    let r = Pipeline::from_iter(0..8u64)
        .try_then(service(&calls, |_| true))
        .circuit_breaker(
            Breaker::new()
                .window_count(10)
                .min_calls(5)
                .when_open(WhenOpen::Fail),
        )
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!(calls.items(), [0, 1, 2, 3, 4]);
    assert_eq!((r.failed, r.stages[1].breaker_trips), (8, 1));
}

#[tokio::test(start_paused = true)]
async fn no_events_no_cost_and_empty_input() {
    let r = Pipeline::from_iter(Vec::<u64>::new())
        .try_then(service(&Calls::new(), |_| true))
        .circuit_breaker(breaker())
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.stages[1].breaker.as_deref()), (0, Some("closed")));
    assert!(r.to_string().contains("breaker closed (0 trips)"), "{r}");
    let r = Pipeline::from_iter([1u64])
        .try_then(service(&Calls::new(), |_| false))
        .run()
        .await
        .unwrap();
    assert_eq!(r.stages[1].breaker, None);
    // No events: a breaker that never leaves `closed` emits no state change.
    let events: Vec<Event> = Pipeline::from_iter(0..20u64)
        .try_then(service(&Calls::new(), |_| false))
        .circuit_breaker(breaker())
        .events()
        .collect()
        .await;
    assert!(events
        .iter()
        .any(|e| matches!(e.kind, EventKind::PipelineFinished { .. })));
    let changes = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::StageStateChanged { .. }))
        .count();
    assert_eq!(changes, 0, "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn a_drain_while_items_wait_for_the_breaker_finalizes_them() {
    let ledger = Ledger::default();
    let calls = Calls::new();
    let handle = PipelineBuilder::new()
        .from_acked(ledger.source(100))
        .try_then(service(&calls, |_| true))
        .circuit_breaker(breaker().open_for(Duration::from_millis(500)))
        .concurrency(4)
        .on_error(ErrorPolicy::Skip)
        .start();
    let controller = handle.controller();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        controller.drain();
    });
    let r = handle.wait().await.unwrap();
    assert_eq!((r.outcome, r.unfinalized), (Outcome::Drained, 0));
    ledger.assert_exactly_once();
}

/// A sink writing through `calls`, failing the items for which `fails` is
/// true.
fn failing_sink(calls: &Calls, fails: impl Fn(u64) -> bool + Send + 'static) -> impl weir::Sink<u64> {
    let calls = calls.clone();
    weir::sink_fn(move |x: u64| {
        calls.hit(x);
        futures::future::ready(if fails(x) { Err("disk full") } else { Ok(()) })
    })
}

/// Guards against a sink's breaker not opening, not probing, or sending
/// its state changes out of order.
#[tokio::test(start_paused = true)]
async fn a_sink_that_always_fails_trips_the_breaker_with_events_in_order() {
    let calls = Calls::new();
    let ledger = Ledger::default();
    let events: Vec<_> = PipelineBuilder::new()
        .from_acked(ledger.source(6))
        .sink(failing_sink(&calls, |_| true))
        .circuit_breaker(breaker())
        .name("store")
        .on_error(ErrorPolicy::Skip)
        .events()
        .collect()
        .await;
    let reopened = || change("half_open", "open", "probe failed");
    let half_open = || change("open", "half_open", "open for 1s elapsed");
    assert_eq!(
        changes(&events),
        [
            change("closed", "open", "failure rate 1.00 >= 0.50 over 4 calls"),
            half_open(),
            reopened(),
            half_open(),
            reopened(),
        ]
    );
    // Four writes opened the breaker; items 4 and 5 each waited out a
    // second open and failed as the probe.
    assert_eq!(calls.items(), (0..6).collect::<Vec<_>>());
    assert_eq!(calls.at(4), [Duration::from_secs(1)]);
    assert_eq!(calls.at(5), [Duration::from_secs(2)]);
    let r = finished(&events);
    let store = r.stage("store").unwrap();
    assert_eq!(
        (store.failed, store.breaker_trips, store.breaker.as_deref()),
        (6, 3, Some("open"))
    );
    assert_eq!(
        (r.outcome, r.delivered, r.failed, r.unfinalized),
        (Outcome::Completed, 0, 6, 0)
    );
    ledger.assert_exactly_once();
}

/// Guards against a sink's breaker staying open after a good probe, and
/// against items written after it closed not being delivered.
#[tokio::test(start_paused = true)]
async fn a_sink_breaker_closes_after_a_good_probe() {
    let calls = Calls::new();
    let ledger = Ledger::default();
    let events: Vec<_> = PipelineBuilder::new()
        .from_acked(ledger.source(8))
        .sink(failing_sink(&calls, |x| x < 4))
        .circuit_breaker(breaker())
        .name("store")
        .on_error(ErrorPolicy::Skip)
        .events()
        .collect()
        .await;
    assert_eq!(
        changes(&events),
        [
            change("closed", "open", "failure rate 1.00 >= 0.50 over 4 calls"),
            change("open", "half_open", "open for 1s elapsed"),
            change("half_open", "closed", "probes succeeded"),
        ]
    );
    assert_eq!(calls.at(4), [Duration::from_secs(1)]);
    let r = finished(&events);
    let store = r.stage("store").unwrap();
    assert_eq!(
        (store.failed, store.breaker_trips, store.breaker.as_deref()),
        (4, 1, Some("closed"))
    );
    assert_eq!((r.delivered, r.unfinalized), (4, 0));
    let statuses = ledger.assert_exactly_once();
    assert!((4..8).all(|i| statuses[&i] == weir::Status::Delivered));
}

/// Guards against sink timeouts not counting as breaker failures, and
/// against an open breaker retrying or writing instead of failing fast.
#[tokio::test(start_paused = true)]
async fn sink_timeouts_open_the_breaker_and_then_items_fail_fast() {
    let calls = Calls::new();
    let c = calls.clone();
    // Every write hangs past the limit.
    let sink = weir::sink_fn(move |x: u64| {
        c.hit(x);
        async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, std::io::Error>(())
        }
    });
    let ledger = Ledger::default();
    let events: Vec<_> = PipelineBuilder::new()
        .from_acked(ledger.source(10))
        .sink(sink)
        .timeout(Duration::from_millis(100))
        .circuit_breaker(breaker().when_open(WhenOpen::Fail))
        .retry(Retry::fixed(Duration::from_millis(10)).max_attempts(2))
        .name("store")
        .on_error(ErrorPolicy::Skip)
        .events()
        .collect()
        .await;
    // Items 0 and 1 timed out twice each (four calls); the others met the
    // open circuit, which is not retried.
    assert_eq!(calls.items(), [0, 0, 1, 1]);
    let failed: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ItemFailed { item, error_type, .. } => Some((*item, error_type.clone())),
            _ => None,
        })
        .collect();
    let expected: Vec<_> = (0..10u64)
        .map(|i| (i, if i < 2 { "timeout" } else { "circuit_open" }.to_owned()))
        .collect();
    assert_eq!(failed, expected);
    let r = finished(&events);
    let store = r.stage("store").unwrap();
    assert_eq!((store.failed, store.retried, store.breaker_trips), (10, 2, 1));
    assert_eq!((r.delivered, r.unfinalized), (0, 0));
    ledger.assert_exactly_once();
}

/// Guards against items lost or finalized twice when a run drains while
/// its sink waits for the breaker.
#[tokio::test(start_paused = true)]
async fn a_drain_while_a_sink_waits_for_its_breaker_finalizes_every_item() {
    let ledger = Ledger::default();
    let calls = Calls::new();
    let handle = PipelineBuilder::new()
        .from_acked(ledger.source(100))
        .sink(failing_sink(&calls, |_| true))
        .circuit_breaker(breaker().open_for(Duration::from_millis(500)))
        .on_error(ErrorPolicy::Skip)
        .start();
    let controller = handle.controller();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        controller.drain();
    });
    let r = handle.wait().await.unwrap();
    assert_eq!((r.outcome, r.unfinalized, r.delivered), (Outcome::Drained, 0, 0));
    assert_eq!(r.failed, ledger.pulled());
    ledger.assert_exactly_once();
}
