//! Failures: panics are item failures, policies route them, errors carry
//! their context.

mod common;

use std::error::Error as _;
use std::time::Duration;

use common::Ledger;
use futures::StreamExt;
use weir::{ErrorKind, ErrorPolicy, EventKind, Outcome, Pipeline, PipelineBuilder, Sink, Status};

#[tokio::test]
async fn a_panicking_map_fails_one_item_not_the_pipeline() {
    let report = Pipeline::from_iter(0..100u32)
        .map(|x| {
            if x == 42 {
                panic!("bad record {x}");
            }
            x
        })
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.failed), (99, 1));
    assert_eq!(report.outcome, Outcome::Completed);
}

#[tokio::test]
async fn panics_in_every_kind_of_stage_become_failures_with_error_type_panic() {
    let events: Vec<_> = PipelineBuilder::new()
        .error_policy(ErrorPolicy::Skip)
        .from_iter(0..20u32)
        .filter(|x| if *x == 1 { panic!("filter") } else { true })
        .flat_map(|x| if x == 2 { panic!("flat_map") } else { vec![x] })
        .then(|x| async move {
            if x == 3 {
                panic!("then");
            }
            x
        })
        .concurrency(4)
        .blocking(|x| if x == 4 { panic!("blocking") } else { x })
        .inspect(|x| assert_ne!(*x, 5, "inspect"))
        .for_each_async(|x| async move {
            if x == 6 {
                panic!("sink");
            }
            Ok::<_, std::io::Error>(())
        })
        .events()
        .collect()
        .await;
    let mut failed: Vec<(String, u64, String, String)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ItemFailed {
                stage,
                item,
                error,
                error_type,
                ..
            } => Some((stage.clone(), *item, error.clone(), error_type.clone())),
            _ => None,
        })
        .collect();
    failed.sort_by_key(|f| f.1);
    let stages: Vec<_> = failed.iter().map(|f| (f.0.as_str(), f.1)).collect();
    assert_eq!(
        stages,
        [
            ("filter#1", 1),
            ("flat_map#2", 2),
            ("then#3", 3),
            ("blocking#4", 4),
            ("inspect#5", 5),
            ("sink#6", 6)
        ]
    );
    assert!(failed.iter().all(|f| f.3 == "panic"));
    assert_eq!(failed[0].2, "filter");
    let EventKind::PipelineFinished { report, error } = &events.last().unwrap().kind else {
        panic!("the last event is not PipelineFinished");
    };
    assert!(error.is_none());
    assert_eq!((report.delivered, report.failed), (14, 6));
}

#[derive(Debug, thiserror::Error)]
#[error("price is negative")]
struct Negative(#[source] std::num::TryFromIntError);

#[tokio::test]
async fn fail_fast_returns_the_first_error_with_stage_item_attempt_and_cause() {
    let ledger = Ledger::default();
    let err = Pipeline::from_acked(ledger.source(10_000))
        .map(|x| x as i64 - 500)
        .try_map(|x| u64::try_from(x).map_err(Negative))
        .name("price")
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stage);
    assert_eq!(err.stage(), Some("price"));
    assert_eq!(err.item(), Some(0));
    assert_eq!(err.attempt(), 1);
    assert_eq!(
        err.to_string(),
        "stage `price` failed on item 0 (attempt 1): price is negative"
    );
    let cause = err.source().unwrap();
    assert_eq!(cause.to_string(), "price is negative");
    assert!(cause.source().is_some(), "the whole cause chain is kept");
    // The pipeline drained: everything it pulled was finalized.
    let statuses = ledger.assert_exactly_once();
    assert_eq!(statuses[&0], Status::Halted);
    assert!(ledger.pulled() < 10_000, "intake stopped after the failure");
}

#[tokio::test]
async fn skip_counts_and_reports_every_failure() {
    let ledger = Ledger::default();
    let report = Pipeline::from_acked(ledger.source(1000))
        .try_map(|x| {
            if x % 10 == 0 {
                Err(format!("{x} is round"))
            } else {
                Ok(x)
            }
        })
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.failed), (900, 100));
    let statuses = ledger.assert_exactly_once();
    assert_eq!(statuses.values().filter(|s| **s == Status::Failed).count(), 100);
}

#[tokio::test]
async fn a_source_that_panics_stops_the_run_with_a_source_error() {
    let items = (0..10u32).map(|x| if x == 5 { panic!("disk gone") } else { x });
    let err = Pipeline::from_iter(items).run().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Source);
    assert!(err.to_string().contains("disk gone"), "{err}");
    assert!(err.to_string().contains("after item 5"), "{err}");
}

/// A sink whose flush fails once: the items written since the last flush
/// fail, the others are delivered.
struct FlakySink {
    flushes: u32,
}

impl Sink<u32> for FlakySink {
    type Error = std::io::Error;

    async fn write(&mut self, _item: u32) -> Result<(), Self::Error> {
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.flushes += 1;
        if self.flushes == 2 {
            return Err(std::io::Error::other("connection reset"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_failed_sink_flush_fails_the_items_it_held() {
    let report = PipelineBuilder::new()
        .chunk_size(10)
        .from_iter(0..30u32)
        .sink(FlakySink { flushes: 0 })
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!(report.failed + report.delivered, 30);
    assert!(report.failed >= 1);
    assert_eq!(report.unfinalized, 0);
}

#[tokio::test(start_paused = true)]
async fn the_results_stream_ends_with_the_error_of_a_failed_run() {
    let out: Vec<_> = Pipeline::from_iter(0..5u32)
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        })
        .try_map(|x| if x == 3 { Err("three") } else { Ok(x) })
        .results()
        .collect()
        .await;
    let (ok, err): (Vec<_>, Vec<_>) = out.into_iter().partition(|r| r.is_ok());
    assert_eq!(
        ok.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        [0, 1, 2, 4]
    );
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].as_ref().unwrap_err().item(), Some(3));
}

#[tokio::test]
async fn a_fold_that_panics_fails_the_run_instead_of_returning_a_partial_value() {
    let err = Pipeline::from_iter(0..10u64)
        .fold(0u64, |a, x| if x == 7 { panic!("overflow") } else { a + x })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
}
