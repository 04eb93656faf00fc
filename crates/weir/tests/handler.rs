//! Custom failure handlers (`on_failure`): each decision, finalization.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Ledger;
use futures::StreamExt;
use weir::{DeadLetter, Decision, ErrorKind, EventKind, Pipeline, Status, MAX_HANDLER_ATTEMPTS};

fn parse(x: u64) -> Result<u64, std::io::Error> {
    if x % 4 == 1 {
        Err(std::io::Error::other(format!("bad {x}")))
    } else {
        Ok(x)
    }
}

#[tokio::test]
async fn skip_overrides_a_fail_fast_policy_and_is_counted_and_evented() {
    let ledger = Ledger::default();
    let events: Vec<_> = Pipeline::from_acked(ledger.source(20))
        .try_then(|x| async move { parse(x) })
        .name("parse")
        .on_failure(|_| Decision::Skip)
        .events()
        .collect()
        .await;
    let failed = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::ItemFailed { stage, .. } if stage == "parse"))
        .count();
    assert_eq!(failed, 5);
    let EventKind::PipelineFinished { report, error } = &events.last().unwrap().kind else {
        panic!("no finish event")
    };
    assert!(error.is_none());
    assert_eq!((report.delivered, report.failed), (15, 5));
    let statuses = ledger.assert_exactly_once();
    assert_eq!(statuses[&1], Status::Failed);
}

#[tokio::test]
async fn fail_hands_the_failure_to_the_stage_policy() {
    let ledger = Ledger::default();
    let err = Pipeline::from_acked(ledger.source(20))
        .try_then(|x| async move { parse(x) })
        .name("parse")
        .on_failure(|f| {
            if *f.item == 1 {
                Decision::Skip
            } else {
                Decision::Fail
            }
        })
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        (err.stage(), err.item(), err.attempt()),
        (Some("parse"), Some(5), 1)
    );
    ledger.assert_exactly_once();

    // With a dead-letter sink, Fail dead-letters.
    let letters = Arc::new(Mutex::new(Vec::new()));
    let kept = letters.clone();
    let report = Pipeline::from_iter(0..8u64)
        .try_then(|x| async move { parse(x) })
        .on_failure(|_| Decision::Fail)
        .dead_letter(weir::sink_fn(move |l: DeadLetter<u64>| {
            kept.lock().unwrap().push(l.item);
            async { Ok::<_, std::io::Error>(()) }
        }))
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered), (6, 2));
    assert_eq!(*letters.lock().unwrap(), [1, 5]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_waits_inside_the_item_and_other_items_keep_flowing() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let started = tokio::time::Instant::now();
    let out = Pipeline::from_iter(0..4u64)
        .try_then(move |x| {
            let n = if x == 0 {
                c.fetch_add(1, Ordering::SeqCst)
            } else {
                9
            };
            async move {
                if n < 2 {
                    Err(std::io::Error::other("flaky"))
                } else {
                    Ok(x)
                }
            }
        })
        .concurrency(4)
        .unordered()
        .on_failure(|f| {
            assert_eq!(*f.item, 0);
            assert_eq!(f.error.message(), "flaky");
            Decision::RetryAfter(Duration::from_secs(10 * u64::from(f.attempt)))
        })
        .collect()
        .await
        .unwrap();
    assert_eq!(
        out,
        [1, 2, 3, 0],
        "the retried item comes last, the others did not wait"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn retries_stop_after_the_maximum_and_the_error_carries_the_attempts() {
    let letters = Arc::new(Mutex::new(Vec::new()));
    let kept = letters.clone();
    let report = Pipeline::from_iter([7u64])
        .try_then(|_| async { Err::<u64, _>(std::io::Error::other("down")) })
        .on_failure(|_| Decision::RetryAfter(Duration::from_millis(1)))
        .dead_letter(weir::sink_fn(move |l: DeadLetter<u64>| {
            kept.lock().unwrap().push(l);
            async { Ok::<_, std::io::Error>(()) }
        }))
        .run()
        .await
        .unwrap();
    assert_eq!(report.dead_lettered, 1);
    let l = letters.lock().unwrap()[0].clone();
    assert_eq!(l.attempts, MAX_HANDLER_ATTEMPTS);
    assert!(l.first_failure_ms <= l.last_failure_ms);

    let err = Pipeline::from_iter([7u64])
        .try_blocking(|_| Err::<u64, _>(std::io::Error::other("down")))
        .on_failure(|_| Decision::RetryAfter(Duration::ZERO))
        .run()
        .await;
    let err = err.unwrap_err();
    assert_eq!(err.attempt(), MAX_HANDLER_ATTEMPTS);
}

#[tokio::test]
async fn replace_sends_the_replacement_downstream_counted_and_evented() {
    let ledger = Ledger::default();
    let events: Vec<_> = Pipeline::from_acked(ledger.source(8))
        .try_then(|x| async move { parse(x) })
        .name("parse")
        .on_failure(|f| Decision::Replace(*f.item + 100))
        .events()
        .collect()
        .await;
    let replaced: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ItemReplaced {
                stage,
                item,
                error,
                attempt,
                ..
            } => Some((*item, stage.clone(), error.clone(), *attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(replaced.len(), 2);
    // Each event names its item (a regression: they once had no `item`).
    assert!(replaced.contains(&(1, "parse".to_owned(), "bad 1".to_owned(), 1)));
    assert!(replaced.contains(&(5, "parse".to_owned(), "bad 5".to_owned(), 1)));
    let EventKind::PipelineFinished { report, .. } = &events.last().unwrap().kind else {
        panic!("no finish event")
    };
    let stage = report.stage("parse").unwrap();
    assert_eq!((stage.items_out, stage.failed, stage.replaced), (8, 0, 2));
    assert_eq!(
        ledger
            .assert_exactly_once()
            .values()
            .filter(|s| **s == Status::Delivered)
            .count(),
        8
    );

    let out = Pipeline::from_iter(0..6u64)
        .try_then(|x| async move { parse(x) })
        .on_failure(|f| Decision::Replace(*f.item + 100))
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [0, 101, 2, 3, 4, 105]);
}

#[tokio::test]
async fn panics_reach_the_handler_and_a_panicking_handler_fails_the_item() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let out = Pipeline::from_iter(0..4u64)
        .key_by(|x| x % 2)
        .then(|x| async move {
            assert_ne!(x, 2, "two");
            x
        })
        .on_failure(move |f| {
            s.lock()
                .unwrap()
                .push((f.error.kind(), f.error.message().to_owned()));
            Decision::Replace(0)
        })
        .collect()
        .await
        .unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(seen.lock().unwrap()[0].0, ErrorKind::Panic);
    assert!(seen.lock().unwrap()[0].1.contains("two"));

    let ledger = Ledger::default();
    let err = Pipeline::from_acked(ledger.source(10))
        .try_then(|x| async move { parse(x) })
        .on_failure(|_| -> Decision<u64> { panic!("handler bug") })
        .run()
        .await
        .unwrap_err();
    assert_eq!((err.kind(), err.item()), (ErrorKind::Panic, Some(1)));
    assert_eq!(err.message(), "handler bug");
    ledger.assert_exactly_once();
}

/// Guards against `ItemReplaced` events without the item they are about,
/// on every kind of stage that can replace: async, sync and sink.
#[tokio::test]
async fn item_replaced_events_name_their_item_on_every_stage_kind() {
    fn replaced_items(events: &[weir::Event]) -> Vec<(String, u64)> {
        let mut out: Vec<_> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::ItemReplaced { stage, item, .. } => Some((stage.clone(), *item)),
                _ => None,
            })
            .collect();
        out.sort();
        out
    }
    let events: Vec<_> = Pipeline::from_iter(0..6u64)
        .try_then(|x| async move { parse(x) })
        .name("async")
        .on_failure(|_| Decision::Replace(0))
        .try_map(|x| if x == 4 { Err("four") } else { Ok(x) })
        .name("sync")
        .on_failure(|_| Decision::Replace(0))
        .for_each_async(|x| async move {
            if x == 3 {
                Err("three")
            } else {
                Ok(())
            }
        })
        .name("sink")
        .on_failure(|_| Decision::Replace(()))
        .events()
        .collect()
        .await;
    let want = [("async", 1), ("async", 5), ("sink", 3), ("sync", 4)].map(|(s, i)| (s.to_owned(), i));
    assert_eq!(replaced_items(&events), want);
    let json = serde_json::to_value(
        events
            .iter()
            .find(|e| matches!(e.kind, EventKind::ItemReplaced { .. }))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["type"], "item_replaced");
    assert!(json["item"].is_u64(), "{json}");
}
