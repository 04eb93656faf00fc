//! Drain and abort, with deadlines, and what they finalize.

mod common;

use std::time::Duration;

use common::Ledger;
use weir::{Outcome, Pipeline, PipelineBuilder, PushError, Shutdown, Status};

#[tokio::test(start_paused = true)]
async fn drain_finishes_every_item_already_taken_in() {
    let handle = PipelineBuilder::new()
        .capacity(64)
        .intake::<u64>()
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            x
        })
        .concurrency(8)
        .start();
    for i in 0..100 {
        handle.push(i).await.unwrap();
    }
    let pusher = handle.pusher();
    let report = handle
        .shutdown(Shutdown::Drain, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.delivered, 100);
    assert_eq!(report.unfinalized, 0);
    assert_eq!(
        pusher.push(7).await,
        Err(PushError(7)),
        "intake is closed after a drain"
    );
}

#[tokio::test(start_paused = true)]
async fn drain_stops_an_endless_source_and_finalizes_what_it_pulled() {
    let ledger = Ledger::default();
    let handle = Pipeline::from_acked(ledger.source(u64::MAX))
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        })
        .concurrency(4)
        .start();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = handle
        .shutdown(Shutdown::Drain, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.unfinalized, 0);
    let statuses = ledger.assert_exactly_once();
    assert!(statuses.values().all(|s| *s == Status::Delivered));
    assert_eq!(report.delivered, ledger.pulled());
}

#[tokio::test(start_paused = true)]
async fn abort_ends_within_its_deadline_and_reports_unfinalized_items() {
    let ledger = Ledger::default();
    let handle = PipelineBuilder::new()
        .capacity(32)
        .chunk_size(8)
        .from_acked(ledger.source(1000))
        .then(|x| async move {
            if x >= 10 {
                std::future::pending::<()>().await; // stuck forever
            }
            x
        })
        .concurrency(4)
        .start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = tokio::time::Instant::now();
    let report = handle
        .shutdown(Shutdown::Abort, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(started.elapsed() <= Duration::from_secs(1));
    assert_eq!(report.outcome, Outcome::Aborted);
    assert_eq!(report.delivered, 10);
    let statuses = ledger.assert_exactly_once();
    let aborted = statuses.values().filter(|s| **s == Status::Aborted).count() as u64;
    assert_eq!(report.unfinalized, aborted);
    assert_eq!(aborted, ledger.pulled() - 10);
    assert!(ledger.pulled() < 1000, "the source was not drained to the end");
}

#[tokio::test(start_paused = true)]
async fn a_drain_that_misses_its_deadline_aborts_what_is_left() {
    let ledger = Ledger::default();
    let handle = Pipeline::from_acked(ledger.source(100))
        .then(|x| async move {
            if x == 50 {
                std::future::pending::<()>().await;
            }
            x
        })
        .start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = tokio::time::Instant::now();
    let report = handle
        .shutdown(Shutdown::Drain, Duration::from_millis(500))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(report.outcome, Outcome::Aborted);
    assert_eq!(report.delivered, 50);
    ledger.assert_exactly_once();
    assert_eq!(ledger.count(Status::Aborted) as u64, report.unfinalized);
    assert!(report.unfinalized >= 1);
}

/// The output of 10 000 acknowledged items through small channels (few
/// items in flight at any time), as a `results()` stream.
fn small_channels(ledger: &Ledger) -> weir::Results<u64> {
    PipelineBuilder::new()
        .capacity(16)
        .chunk_size(4)
        .from_acked(ledger.source(10_000))
        .results()
}

#[tokio::test(start_paused = true)]
async fn dropping_a_results_stream_aborts_the_pipeline() {
    use futures::StreamExt;
    let ledger = Ledger::default();
    let mut results = small_channels(&ledger);
    assert_eq!(results.next().await.unwrap().unwrap(), 0);
    drop(results);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let statuses = ledger.assert_exactly_once();
    assert_eq!(statuses[&0], Status::Delivered);
    assert!(ledger.pulled() < 10_000);
    assert_eq!(ledger.count(Status::Aborted) as u64, ledger.pulled() - 1);
}

#[tokio::test(start_paused = true)]
async fn the_controller_drains_from_another_task() {
    let handle = Pipeline::from_stream(futures::stream::repeat(1u8))
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        })
        .start();
    let controller = handle.controller();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        controller.drain();
    });
    let report = handle.wait().await.unwrap();
    assert_eq!(report.outcome, Outcome::Drained);
    assert!(report.delivered > 0);
    assert_eq!(report.unfinalized, 0);
}

#[tokio::test(start_paused = true)]
async fn metrics_are_visible_while_running() {
    let handle = PipelineBuilder::new()
        .chunk_size(1)
        .from_iter(0..1000u64)
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        })
        .name("slow")
        .start();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let m = handle.metrics();
    assert_eq!(m.outcome, Outcome::Running);
    let slow = m.stage("slow").unwrap();
    assert!(slow.items_out > 10 && slow.items_out < 1000, "{slow:?}");
    assert!(m.unfinalized > 0);
    let done = handle.wait().await.unwrap();
    assert_eq!(done.delivered, 1000);
}

/// Guards seed 001's "consume progress events, stop at half, resume
/// later": a consumer of `events()` drains through the stream's controller
/// and reads on; the run ends drained, every item pulled is finalized and
/// none is aborted (dropping the stream was the only way out before).
#[tokio::test(start_paused = true)]
async fn an_events_consumer_drains_at_half_and_the_run_ends_drained() {
    use futures::StreamExt;
    use weir::EventKind;
    let ledger = Ledger::default();
    let mut events = PipelineBuilder::new()
        .progress_interval(Duration::from_millis(100))
        .capacity(16)
        .chunk_size(4)
        .from_acked(ledger.source(1000))
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            x
        })
        .concurrency(4)
        .events();
    let controller = events.controller();
    let mut last = None;
    while let Some(event) = events.next().await {
        if let EventKind::Progress(p) = &event.kind {
            if p.completed >= 500 {
                controller.drain_within(Duration::from_secs(5));
            }
        }
        last = Some(event);
    }
    let Some(EventKind::PipelineFinished { report, error }) = last.map(|e| e.kind) else {
        panic!("the stream ends with PipelineFinished");
    };
    assert_eq!(error, None);
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.unfinalized, 0);
    assert!((500..1000).contains(&report.delivered), "{}", report.delivered);
    ledger.assert_exactly_once();
    assert_eq!(ledger.count(Status::Aborted), 0);
    assert_eq!(ledger.count(Status::Delivered) as u64, ledger.pulled());
}

/// Guards the deadline of a stream's drain: an item that never finishes
/// keeps the drain from ending, so it is aborted at the deadline (on the
/// paused clock), and the stream still ends.
#[tokio::test(start_paused = true)]
async fn a_stream_drain_that_misses_its_deadline_aborts_at_it() {
    use futures::StreamExt;
    let ledger = Ledger::default();
    let mut results = Pipeline::from_acked(ledger.source(100))
        .then(|x| async move {
            if x == 5 {
                std::future::pending::<()>().await;
            }
            x
        })
        .results();
    let controller = results.controller();
    let mut got = Vec::new();
    let mut drained_at = None;
    while let Some(item) = results.next().await {
        got.push(item.unwrap());
        if got.len() == 5 {
            drained_at = Some(tokio::time::Instant::now());
            controller.drain_within(Duration::from_millis(500));
        }
    }
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert_eq!(drained_at.unwrap().elapsed(), Duration::from_millis(500));
    let statuses = ledger.assert_exactly_once();
    assert_eq!(statuses[&5], Status::Aborted);
    assert_eq!(ledger.count(Status::Delivered), 5);
}

/// Guards a drained `results()` stream: it yields the items in flight,
/// then ends without an error; nothing is aborted.
#[tokio::test(start_paused = true)]
async fn a_results_consumer_drains_and_gets_every_item_in_flight() {
    use futures::StreamExt;
    let ledger = Ledger::default();
    let mut results = small_channels(&ledger);
    let controller = results.controller();
    let mut got = 0;
    while let Some(item) = results.next().await {
        item.unwrap();
        got += 1;
        if got == 10 {
            controller.drain();
        }
    }
    assert!((10..10_000).contains(&got), "{got}");
    ledger.assert_exactly_once();
    assert_eq!(ledger.count(Status::Aborted), 0);
    assert_eq!(ledger.count(Status::Delivered), got);
}
