//! Dead letters: every failed item reaches its stage's dead-letter sink as
//! a full record, is finalized only once the sink accepted it, and a
//! failing dead-letter sink is reported, never silent.

mod common;

use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Ledger;
use futures::StreamExt;
use weir::{
    Context, DeadLetter, ErrorKind, ErrorPolicy, EventKind, Outcome, Pipeline, PipelineBuilder, Shutdown,
    Sink, Status,
};

/// An error with a cause, to check that cause chains are kept.
#[derive(Debug, thiserror::Error)]
#[error("enrich failed")]
struct Enrich(#[source] std::io::Error);

/// A dead-letter sink that buffers records until flushed; it can wait in
/// its flush, refuse one item's write, or refuse every flush.
#[derive(Clone, Default)]
struct Letters {
    buffered: Vec<DeadLetter<u64>>,
    flushed: Arc<Mutex<Vec<DeadLetter<u64>>>>,
    flush_delay: Option<Duration>,
    refuse_item: Option<u64>,
    refuse_flush: bool,
    /// Checked at each flush: nothing buffered is finalized yet.
    ledger: Option<Ledger>,
}

impl Letters {
    fn flushed(&self) -> Vec<DeadLetter<u64>> {
        self.flushed.lock().unwrap().clone()
    }
}

impl Sink<DeadLetter<u64>> for Letters {
    type Error = std::io::Error;

    async fn write(&mut self, letter: DeadLetter<u64>) -> Result<(), Self::Error> {
        if self.refuse_item == Some(letter.item) {
            return Err(std::io::Error::other("dead-letter table is full"));
        }
        self.buffered.push(letter);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        if let Some(d) = self.flush_delay {
            tokio::time::sleep(d).await;
        }
        if let Some(ledger) = &self.ledger {
            let calls = ledger.calls();
            for l in &self.buffered {
                assert!(
                    !calls.iter().any(|(id, _)| *id == l.item_seq),
                    "item {} finalized before its dead letter was flushed",
                    l.item_seq
                );
            }
        }
        if self.refuse_flush {
            return Err(std::io::Error::other("dead-letter store is down"));
        }
        self.flushed.lock().unwrap().append(&mut self.buffered);
        Ok(())
    }
}

fn enrich(x: u64) -> Result<u64, Enrich> {
    if x % 3 == 0 {
        Err(Enrich(std::io::Error::other(format!("no such user {x}"))))
    } else {
        Ok(x * 10)
    }
}

#[tokio::test]
async fn records_carry_every_field_and_serialize_to_json() {
    let ledger = Ledger::default();
    let sink = Letters::default();
    let context = Context::new("orders");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let report = PipelineBuilder::new()
        .context(context.clone())
        .from_acked(ledger.source(10))
        .try_then(|x| async move { enrich(x) })
        .name("enrich")
        .concurrency(4)
        .dead_letter(sink.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!((report.delivered, report.dead_lettered, report.failed), (6, 4, 0));
    let stage = report.stage("enrich").unwrap();
    assert_eq!(
        (stage.items_in, stage.items_out, stage.failed, stage.dead_lettered),
        (10, 6, 0, 4)
    );
    assert_eq!(report.unfinalized, 0);
    assert!(report.to_string().contains("4 dead-lettered"), "{report}");

    let mut letters = sink.flushed();
    letters.sort_by_key(|l| l.item);
    assert_eq!(letters.iter().map(|l| l.item).collect::<Vec<_>>(), [0, 3, 6, 9]);
    for l in &letters {
        assert_eq!(l.error, "enrich failed");
        assert_eq!(l.causes, [format!("no such user {}", l.item)]);
        assert_eq!(l.error_type, "error");
        assert_eq!(l.stage, "enrich");
        assert_eq!(l.item_seq, l.item);
        assert_eq!(l.attempts, 1);
        assert!(l.first_failure_ms >= before && l.first_failure_ms <= l.last_failure_ms);
        assert_eq!(l.pipeline, context.id());
    }
    let json = serde_json::to_value(&letters[1]).unwrap();
    let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "attempts",
            "causes",
            "error",
            "error_type",
            "first_failure_ms",
            "item",
            "item_seq",
            "last_failure_ms",
            "pipeline",
            "stage"
        ]
    );
    assert_eq!(json["item"], 3);

    ledger.assert_each(|id| id % 3 == 0, Status::DeadLettered);
}

#[tokio::test(start_paused = true)]
async fn items_are_dead_lettered_only_once_the_sink_flushed_them() {
    let ledger = Ledger::default();
    let sink = Letters {
        flush_delay: Some(Duration::from_secs(5)),
        ledger: Some(ledger.clone()),
        ..Letters::default()
    };
    let report = Pipeline::from_acked(ledger.source(300))
        .try_then(|x| async move { enrich(x) })
        .unordered()
        .concurrency(8)
        .dead_letter(sink.clone())
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered), (200, 100));
    assert_eq!(sink.flushed().len(), 100);
    ledger.assert_exactly_once();
    assert_eq!(ledger.count(Status::DeadLettered), 100);
}

#[tokio::test]
async fn empty_input_and_a_single_failed_item() {
    let sink = Letters::default();
    let report = Pipeline::from_iter(Vec::<u64>::new())
        .try_then(|x| async move { enrich(x) })
        .dead_letter(sink.clone())
        .run()
        .await
        .unwrap();
    assert_eq!((report.pulled, report.dead_lettered), (0, 0));

    let ledger = Ledger::default();
    let sink = Letters::default();
    let report = Pipeline::from_acked(ledger.source(1))
        .try_then(|x| async move { enrich(x) })
        .dead_letter(sink.clone())
        .run()
        .await
        .unwrap();
    assert_eq!((report.pulled, report.dead_lettered, report.failed), (1, 1, 0));
    assert_eq!(ledger.calls(), [(0, Status::DeadLettered)]);
}

#[tokio::test]
async fn a_refused_write_fails_the_item_and_the_run_naming_the_dead_letter_sink() {
    let ledger = Ledger::default();
    let sink = Letters {
        refuse_item: Some(6),
        ..Letters::default()
    };
    let mut error = None;
    let mut failed_events = Vec::new();
    let mut events = Pipeline::from_acked(ledger.source(100))
        .try_then(|x| async move { enrich(x) })
        .name("enrich")
        .dead_letter(sink.clone())
        .events();
    while let Some(e) = events.next().await {
        match e.kind {
            EventKind::ItemFailed {
                stage,
                item,
                error_type,
                ..
            } => failed_events.push((stage, item, error_type)),
            EventKind::PipelineFinished { error: e, report } => {
                assert_eq!(report.outcome, Outcome::Failed);
                error = e;
            }
            _ => {}
        }
    }
    let error = error.expect("the run failed");
    assert!(
        error.contains("enrich/dead_letter") && error.contains("item 6"),
        "{error}"
    );
    assert!(error.contains("dead-letter table is full"), "{error}");
    assert!(failed_events.contains(&("enrich/dead_letter".to_owned(), 6, "sink".to_owned())));
    let statuses = ledger.assert_exactly_once();
    assert_eq!(statuses[&6], Status::Halted);
    assert_eq!(statuses[&3], Status::DeadLettered);
}

#[tokio::test]
async fn a_refused_flush_fails_its_items_and_run_returns_the_sink_error() {
    let ledger = Ledger::default();
    let sink = Letters {
        refuse_flush: true,
        ..Letters::default()
    };
    let err = Pipeline::from_acked(ledger.source(50))
        .try_then(|x| async move { enrich(x) })
        .name("enrich")
        .dead_letter(sink)
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sink);
    assert_eq!(err.stage(), Some("enrich/dead_letter"));
    assert_eq!(err.source().unwrap().to_string(), "dead-letter store is down");
    let statuses = ledger.assert_exactly_once();
    assert!(statuses.values().all(|s| *s != Status::DeadLettered));
    assert_eq!(statuses[&0], Status::Halted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_are_dead_lettered_with_error_type_panic_and_the_message() {
    let sink = Letters::default();
    let report = Pipeline::from_iter(0..20u64)
        .blocking(|x| if x == 7 { panic!("corrupt record {x}") } else { x })
        .concurrency(3)
        .dead_letter(sink.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(
        (report.delivered, report.dead_lettered, report.failed),
        (19, 1, 0)
    );
    let letters = sink.flushed();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].item, letters[0].error_type.as_str()), (7, "panic"));
    assert_eq!(letters[0].error, "corrupt record 7");
    assert_eq!(letters[0].stage, "blocking#1");
}

#[tokio::test(start_paused = true)]
async fn keyed_stages_and_timeouts_are_dead_lettered() {
    let sink = Letters::default();
    let report = Pipeline::from_iter(0..12u64)
        .key_by(|x| x % 3)
        .then(|x| async move {
            if x == 4 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            x
        })
        .concurrency(3)
        .timeout(Duration::from_secs(1))
        .dead_letter(sink.clone())
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered), (11, 1));
    let letters = sink.flushed();
    assert_eq!((letters[0].item, letters[0].error_type.as_str()), (4, "timeout"));
}

#[tokio::test]
async fn per_stage_policies_differ_from_the_pipeline_default() {
    let sink = Letters::default();
    let report = PipelineBuilder::new()
        .error_policy(ErrorPolicy::Skip)
        .from_iter(0..10u64)
        .try_map(|x| if x == 1 { Err("one") } else { Ok(x) })
        .try_then(|x| async move { enrich(x) })
        .dead_letter(sink.clone())
        .run()
        .await
        .unwrap();
    // `1` fails in the map (Skip); 0, 3, 6, 9 are dead-lettered by the then.
    assert_eq!((report.delivered, report.failed, report.dead_lettered), (5, 1, 4));
    assert_eq!(sink.flushed().len(), 4);

    // `on_error` after `dead_letter` wins.
    let report = Pipeline::from_iter(0..10u64)
        .try_then(|x| async move { enrich(x) })
        .dead_letter(sink.clone())
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((report.failed, report.dead_lettered), (4, 0));
}

#[tokio::test]
async fn a_dead_letter_policy_without_a_sink_is_a_config_error_before_anything_is_pulled() {
    let ledger = Ledger::default();
    let err = PipelineBuilder::new()
        .error_policy(ErrorPolicy::DeadLetter)
        .from_acked(ledger.source(10))
        .map(|x| x + 1)
        .name("inc")
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("no dead-letter sink"), "{err}");
    assert_eq!(ledger.pulled(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_drain_with_dead_letters_in_flight_finalizes_everything_once() {
    let ledger = Ledger::default();
    let sink = Letters {
        flush_delay: Some(Duration::from_secs(1)),
        ..Letters::default()
    };
    let handle = Pipeline::from_acked(ledger.source(100_000))
        .try_then(|x| async move { enrich(x) })
        .concurrency(4)
        .dead_letter(sink.clone())
        .start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = handle
        .shutdown(Shutdown::Drain, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.unfinalized, 0);
    let statuses = ledger.assert_exactly_once();
    assert!(ledger.pulled() < 100_000);
    let dead = statuses.values().filter(|s| **s == Status::DeadLettered).count() as u64;
    assert_eq!(dead, report.dead_lettered);
    assert_eq!(sink.flushed().len() as u64, dead);
}

#[tokio::test(start_paused = true)]
async fn an_abort_with_dead_letters_stuck_in_the_sink_reports_them_aborted() {
    let ledger = Ledger::default();
    let sink = Letters {
        flush_delay: Some(Duration::from_secs(1_000_000)),
        ..Letters::default()
    };
    let handle = Pipeline::from_acked(ledger.source(1000))
        .try_then(|x| async move { enrich(x) })
        .dead_letter(sink)
        .start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = handle
        .shutdown(Shutdown::Abort, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Aborted);
    let statuses = ledger.assert_exactly_once();
    let aborted = statuses.values().filter(|s| **s == Status::Aborted).count() as u64;
    assert!(aborted > 0);
    assert_eq!(report.unfinalized, aborted);
    assert_eq!(ledger.count(Status::DeadLettered), 0);
}

#[tokio::test]
async fn fail_fast_names_stage_item_attempt_and_keeps_the_cause_chain() {
    let ledger = Ledger::default();
    let err = Pipeline::from_acked(ledger.source(100))
        .try_then(|x| async move {
            if x == 3 {
                enrich(x)
            } else {
                Ok(x)
            }
        })
        .name("enrich")
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.stage(), err.item(), err.attempt()),
        (ErrorKind::Stage, Some("enrich"), Some(3), 1)
    );
    assert_eq!(
        err.to_string(),
        "stage `enrich` failed on item 3 (attempt 1): enrich failed"
    );
    assert_eq!(err.causes(), ["no such user 3"]);
    assert_eq!(err.source().unwrap().to_string(), "enrich failed");
    let statuses = ledger.assert_exactly_once();
    assert_eq!(statuses[&3], Status::Halted);

    let err = Pipeline::from_iter(0..10u64)
        .then(|x| async move {
            assert_ne!(x, 4, "bad record");
            x
        })
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.kind().as_str(), err.item()),
        (ErrorKind::Panic, "panic", Some(4))
    );
    assert!(err.message().contains("bad record"), "{err}");
}

/// Retries run inside the dead-letter wrapper: an item that fails every
/// attempt is dead-lettered once, with the attempts the retry policy made.
#[tokio::test(start_paused = true)]
async fn items_that_exhaust_their_retries_are_dead_lettered_with_their_attempts() {
    let letters = Arc::new(Mutex::new(Vec::new()));
    let l = letters.clone();
    let ledger = Ledger::default();
    let report = weir::PipelineBuilder::new()
        .from_acked(ledger.source(10))
        .try_then(|x: u64| async move {
            if x % 5 == 0 {
                Err(format!("{x} always fails"))
            } else {
                Ok(x)
            }
        })
        .retry(weir::Retry::fixed(Duration::from_millis(10)).max_attempts(3))
        .dead_letter(weir::sink_fn(move |d: weir::DeadLetter<u64>| {
            l.lock().unwrap().push((d.item, d.attempts, d.error.clone()));
            async { Ok::<_, std::io::Error>(()) }
        }))
        .run()
        .await
        .unwrap();
    let letters = letters.lock().unwrap().clone();
    assert_eq!(
        letters,
        [
            (0, 3, "0 always fails".to_owned()),
            (5, 3, "5 always fails".to_owned())
        ]
    );
    assert_eq!((report.delivered, report.dead_lettered, report.failed), (8, 2, 0));
    assert_eq!(report.stages[1].retried, 4);
    let statuses = ledger.assert_exactly_once();
    assert_eq!(
        statuses
            .values()
            .filter(|s| **s == weir::Status::DeadLettered)
            .count(),
        2
    );
}

/// `enrich`, but panicking on 7: a synchronous stage's panics are
/// dead-lettered like its errors.
fn enrich_or_panic(x: u64) -> Result<u64, Enrich> {
    if x == 7 {
        panic!("corrupt record {x}");
    }
    enrich(x)
}

#[tokio::test]
async fn try_map_failures_and_panics_are_dead_lettered_with_every_field() {
    let ledger = Ledger::default();
    let sink = Letters {
        ledger: Some(ledger.clone()),
        ..Letters::default()
    };
    let context = Context::new("orders");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let out = Arc::new(Mutex::new(Vec::new()));
    let o = out.clone();
    let report = PipelineBuilder::new()
        .context(context.clone())
        .from_acked(ledger.source(10))
        .try_map(enrich_or_panic)
        .name("enrich")
        .dead_letter(sink.clone())
        .map(|x| x + 1)
        .for_each(move |x| o.lock().unwrap().push(x))
        .run()
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(*out.lock().unwrap(), [11, 21, 41, 51, 81]);
    assert_eq!((report.delivered, report.dead_lettered, report.failed), (5, 5, 0));
    let stage = report.stage("enrich").unwrap();
    assert_eq!(
        (stage.items_in, stage.items_out, stage.failed, stage.dead_lettered),
        (10, 5, 0, 5)
    );
    assert_eq!(report.unfinalized, 0);

    let letters = sink.flushed();
    assert_eq!(
        letters.iter().map(|l| l.item).collect::<Vec<_>>(),
        [0, 3, 6, 7, 9]
    );
    for l in &letters {
        if l.item == 7 {
            assert_eq!(
                (l.error.as_str(), l.error_type.as_str()),
                ("corrupt record 7", "panic")
            );
            assert!(l.causes.is_empty(), "{:?}", l.causes);
        } else {
            assert_eq!(
                (l.error.as_str(), l.error_type.as_str()),
                ("enrich failed", "error")
            );
            assert_eq!(l.causes, [format!("no such user {}", l.item)]);
        }
        assert_eq!((l.stage.as_str(), l.item_seq, l.attempts), ("enrich", l.item, 1));
        assert!(l.first_failure_ms >= before && l.first_failure_ms <= l.last_failure_ms);
        assert_eq!(l.pipeline, context.id());
    }
    for (id, status) in ledger.assert_exactly_once() {
        let want = if id % 3 == 0 || id == 7 {
            Status::DeadLettered
        } else {
            Status::Delivered
        };
        assert_eq!(status, want, "item {id}");
    }
}

#[tokio::test]
async fn try_map_dead_letters_on_empty_input_and_a_single_item() {
    let sink = Letters::default();
    let report = Pipeline::from_iter(Vec::<u64>::new())
        .try_map(enrich)
        .dead_letter(sink.clone())
        .run()
        .await
        .unwrap();
    assert_eq!((report.pulled, report.dead_lettered), (0, 0));

    let ledger = Ledger::default();
    let report = Pipeline::from_acked(ledger.source(1))
        .try_map(enrich)
        .dead_letter(sink.clone())
        .run()
        .await
        .unwrap();
    assert_eq!((report.pulled, report.dead_lettered, report.failed), (1, 1, 0));
    assert_eq!(ledger.calls(), [(0, Status::DeadLettered)]);
    assert_eq!(sink.flushed()[0].item, 0);
}

#[tokio::test]
async fn try_map_per_stage_policies_differ_from_the_pipeline_default() {
    let sink = Letters::default();
    let ledger = Ledger::default();
    let report = PipelineBuilder::new()
        .error_policy(ErrorPolicy::Skip)
        .from_acked(ledger.source(10))
        .try_map(|x| if x == 1 { Err("one") } else { Ok(x) })
        .try_map(enrich)
        .dead_letter(sink.clone())
        .run()
        .await
        .unwrap();
    // `1` fails in the first map (Skip); 0, 3, 6, 9 are dead-lettered.
    assert_eq!((report.delivered, report.failed, report.dead_lettered), (5, 1, 4));
    assert_eq!(report.stages[1].failed, 1);
    assert_eq!(sink.flushed().len(), 4);
    let statuses = ledger.assert_exactly_once();
    assert_eq!(
        (statuses[&1], statuses[&3]),
        (Status::Failed, Status::DeadLettered)
    );

    // Under the default fail-fast policy, the dead-lettering stage keeps
    // the run going while a stage without a sink still stops it.
    let err = Pipeline::from_iter(0..10u64)
        .try_map(enrich)
        .dead_letter(sink.clone())
        .try_map(|x| if x == 40 { Err("forty") } else { Ok(x) })
        .name("check")
        .run()
        .await
        .unwrap_err();
    assert_eq!((err.stage(), err.item()), (Some("check"), Some(4)));

    // `on_error` after `dead_letter` wins.
    let report = Pipeline::from_iter(0..10u64)
        .try_map(enrich)
        .dead_letter(sink.clone())
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((report.failed, report.dead_lettered), (4, 0));
}

#[tokio::test]
async fn a_refused_write_from_try_map_fails_the_item_and_the_run() {
    let ledger = Ledger::default();
    let sink = Letters {
        refuse_item: Some(6),
        ..Letters::default()
    };
    let err = Pipeline::from_acked(ledger.source(100))
        .try_map(enrich)
        .name("enrich")
        .dead_letter(sink.clone())
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.stage(), err.item()),
        (ErrorKind::Sink, Some("enrich/dead_letter"), Some(6))
    );
    assert_eq!(err.source().unwrap().to_string(), "dead-letter table is full");
    let statuses = ledger.assert_exactly_once();
    assert_eq!(statuses[&6], Status::Halted);
    assert_eq!(statuses[&3], Status::DeadLettered);
}

#[tokio::test]
async fn validate_failures_are_dead_lettered_as_validation_errors() {
    let ledger = Ledger::default();
    let sink = Letters::default();
    let report = Pipeline::from_acked(ledger.source(6))
        .validate(|x| {
            if x % 2 == 0 {
                Ok(())
            } else {
                Err(format!("odd {x}"))
            }
        })
        .name("even")
        .dead_letter(sink.clone())
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered, report.failed), (3, 3, 0));
    let letters = sink.flushed();
    let got: Vec<_> = letters
        .iter()
        .map(|l| (l.item, l.error.as_str(), l.error_type.as_str(), l.stage.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "odd 1", "validation", "even"),
            (3, "odd 3", "validation", "even"),
            (5, "odd 5", "validation", "even")
        ]
    );
    assert_eq!(ledger.count(Status::DeadLettered), 3);
    ledger.assert_exactly_once();

    // A handler on `validate` can repair an item.
    let out = Pipeline::from_iter(0..4u64)
        .validate(|x| if x % 2 == 0 { Ok(()) } else { Err("odd") })
        .on_failure(|f| weir::Decision::Replace(*f.item * 100))
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [0, 100, 2, 300]);
}

#[tokio::test]
async fn try_map_handler_replace_and_skip() {
    let ledger = Ledger::default();
    let events: Vec<_> = Pipeline::from_acked(ledger.source(10))
        .try_map(enrich)
        .name("enrich")
        .on_failure(|f| match *f.item {
            0 => weir::Decision::Skip,
            x => weir::Decision::Replace(x + 1000),
        })
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
                error_type,
                attempt,
            } => Some((*item, stage.clone(), error.clone(), error_type.clone(), *attempt)),
            _ => None,
        })
        .collect();
    let want = |item| {
        (
            item,
            "enrich".to_owned(),
            "enrich failed".to_owned(),
            "error".to_owned(),
            1,
        )
    };
    // The events name their items (a regression: they once had no `item`).
    assert_eq!(replaced, [want(3), want(6), want(9)]);
    let failed = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::ItemFailed { item: 0, .. }))
        .count();
    assert_eq!(failed, 1);
    let EventKind::PipelineFinished { report, error } = &events.last().unwrap().kind else {
        panic!("no finish event")
    };
    assert!(error.is_none());
    let stage = report.stage("enrich").unwrap();
    assert_eq!(
        (stage.items_in, stage.items_out, stage.failed, stage.replaced),
        (10, 9, 1, 3)
    );
    let statuses = ledger.assert_exactly_once();
    assert_eq!((statuses[&0], statuses[&3]), (Status::Failed, Status::Delivered));

    let out = Pipeline::from_iter(0..7u64)
        .try_map(enrich)
        .on_failure(|f| match *f.item {
            0 => weir::Decision::Skip,
            x => weir::Decision::Replace(x + 1000),
        })
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [10, 20, 1003, 40, 50, 1006]);
}

/// A synchronous stage cannot wait: `RetryAfter` runs it again at once,
/// up to `MAX_HANDLER_ATTEMPTS` times, then the stage's policy applies.
#[tokio::test(start_paused = true)]
async fn try_map_handler_retries_at_once_up_to_the_maximum() {
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = calls.clone();
    let start = tokio::time::Instant::now();
    let out = Pipeline::from_iter([1u64, 2, 3])
        .try_map(move |x| {
            let n = c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Item 2 fails twice, then succeeds.
            if x == 2 && n < 3 {
                Err("busy")
            } else {
                Ok(x)
            }
        })
        .on_failure(|f| {
            assert_eq!(*f.item, 2);
            weir::Decision::RetryAfter(Duration::from_secs(3600))
        })
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [1, 2, 3]);
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 5);
    assert_eq!(start.elapsed(), Duration::ZERO);

    let ledger = Ledger::default();
    let sink = Letters::default();
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let a = attempts.clone();
    let report = Pipeline::from_acked(ledger.source(3))
        .try_map(move |x| {
            if x == 1 {
                a.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err("always")
            } else {
                Ok(x)
            }
        })
        .on_failure(|_| weir::Decision::RetryAfter(Duration::from_secs(1)))
        .dead_letter(sink.clone())
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered), (2, 1));
    let max = weir::MAX_HANDLER_ATTEMPTS;
    assert_eq!(attempts.load(std::sync::atomic::Ordering::Relaxed), max);
    let letters = sink.flushed();
    assert_eq!((letters[0].item, letters[0].attempts), (1, max));
    assert!(letters[0].first_failure_ms <= letters[0].last_failure_ms);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(ledger.assert_exactly_once()[&1], Status::DeadLettered);
}

#[tokio::test]
async fn a_panicking_handler_on_try_map_fails_the_item_and_the_run() {
    let ledger = Ledger::default();
    let err = Pipeline::from_acked(ledger.source(10))
        .try_map(enrich)
        .on_failure(|_| -> weir::Decision<u64> { panic!("handler bug") })
        .run()
        .await
        .unwrap_err();
    assert_eq!((err.kind(), err.item()), (ErrorKind::Panic, Some(0)));
    assert_eq!(err.message(), "handler bug");
    ledger.assert_exactly_once();
}

#[tokio::test(start_paused = true)]
async fn a_drain_with_try_map_dead_letters_in_flight_finalizes_everything_once() {
    let ledger = Ledger::default();
    let sink = Letters {
        flush_delay: Some(Duration::from_secs(1)),
        ..Letters::default()
    };
    let handle = Pipeline::from_acked(ledger.source(100_000))
        .try_map(enrich)
        .dead_letter(sink.clone())
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            x
        })
        .start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = handle
        .shutdown(Shutdown::Drain, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.unfinalized, 0);
    let statuses = ledger.assert_exactly_once();
    assert!(ledger.pulled() < 100_000);
    let dead = statuses.values().filter(|s| **s == Status::DeadLettered).count() as u64;
    assert!(dead > 0);
    assert_eq!(dead, report.dead_lettered);
    assert_eq!(sink.flushed().len() as u64, dead);
}

/// A primary sink that fails the writes of multiples of 3 (with a cause),
/// and can fail every flush; it records what it delivered.
#[derive(Clone, Default)]
struct Store {
    buffered: Vec<u64>,
    stored: Arc<Mutex<Vec<u64>>>,
    writes: Arc<Mutex<Vec<u64>>>,
    refuse_flush: bool,
}

impl Sink<u64> for Store {
    type Error = Enrich;

    async fn write(&mut self, x: u64) -> Result<(), Self::Error> {
        self.writes.lock().unwrap().push(x);
        if x % 3 == 0 {
            return Err(Enrich(std::io::Error::other(format!("row {x} rejected"))));
        }
        self.buffered.push(x);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        if self.refuse_flush {
            self.buffered.clear();
            return Err(Enrich(std::io::Error::other("table is locked")));
        }
        self.stored.lock().unwrap().append(&mut self.buffered);
        Ok(())
    }
}

/// Guards against sink failures bypassing the dead-letter sink: a write
/// that fails for good (after the retry policy) is dead-lettered with
/// every field, and finalized only once the dead-letter sink flushed it.
#[tokio::test(start_paused = true)]
async fn sink_write_failures_are_dead_lettered_after_their_retries() {
    let ledger = Ledger::default();
    let letters = Letters {
        flush_delay: Some(Duration::from_secs(1)),
        ledger: Some(ledger.clone()),
        ..Letters::default()
    };
    let store = Store::default();
    let report = Pipeline::from_acked(ledger.source(10))
        .sink(store.clone())
        .name("store")
        .retry(weir::Retry::fixed(Duration::from_millis(10)).max_attempts(2))
        .dead_letter(letters.clone())
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered, report.failed), (6, 4, 0));
    let stage = report.stage("store").unwrap();
    assert_eq!(
        (stage.items_in, stage.failed, stage.dead_lettered, stage.retried),
        (10, 0, 4, 4)
    );
    assert_eq!(*store.stored.lock().unwrap(), [1, 2, 4, 5, 7, 8]);
    // Each refused row was written twice (the retry), then dead-lettered.
    assert_eq!(store.writes.lock().unwrap().len(), 14);

    let records = letters.flushed();
    assert_eq!(records.iter().map(|l| l.item).collect::<Vec<_>>(), [0, 3, 6, 9]);
    for l in &records {
        assert_eq!((l.stage.as_str(), l.error.as_str()), ("store", "enrich failed"));
        assert_eq!(l.causes, [format!("row {} rejected", l.item)]);
        assert_eq!(
            (l.error_type.as_str(), l.attempts, l.item_seq),
            ("sink", 2, l.item)
        );
        assert!(l.first_failure_ms <= l.last_failure_ms);
    }
    ledger.assert_each(|id| id % 3 == 0, Status::DeadLettered);
}

/// Guards against a failed flush dead-lettering only one record (or none):
/// every item written since the last flush gets its own record, each with
/// the flush error's cause chain, and the sink's own failures too.
#[tokio::test]
async fn a_failed_sink_flush_dead_letters_each_item_of_the_batch() {
    let ledger = Ledger::default();
    let letters = Letters::default();
    let store = Store {
        refuse_flush: true,
        ..Store::default()
    };
    let report = PipelineBuilder::new()
        .chunk_size(4)
        .from_acked(ledger.source(8))
        .sink(store.clone())
        .dead_letter(letters.clone())
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered, report.failed), (0, 8, 0));
    assert!(store.stored.lock().unwrap().is_empty());
    let mut records = letters.flushed();
    records.sort_by_key(|l| l.item);
    assert_eq!(
        records.iter().map(|l| l.item).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    for l in &records {
        let (error, causes) = if l.item % 3 == 0 {
            ("enrich failed", vec![format!("row {} rejected", l.item)])
        } else {
            ("enrich failed", vec!["table is locked".to_owned()])
        };
        assert_eq!((l.error.as_str(), &l.causes), (error, &causes), "item {}", l.item);
        assert_eq!((l.stage.as_str(), l.error_type.as_str()), ("sink#1", "sink"));
    }
    let statuses = ledger.assert_exactly_once();
    assert!(
        statuses.values().all(|s| *s == Status::DeadLettered),
        "{statuses:?}"
    );
}

/// Guards against a `batch` whose write fails losing its members: the
/// batch is one record, and every member is finalized dead-lettered.
#[tokio::test]
async fn a_batch_whose_sink_write_fails_is_dead_lettered_with_all_its_members() {
    let ledger = Ledger::default();
    let records = Arc::new(Mutex::new(Vec::new()));
    let r = records.clone();
    let report = Pipeline::from_acked(ledger.source(6))
        .batch(3, Duration::from_secs(60))
        .for_each_async(|batch: Vec<u64>| async move {
            match batch.contains(&4) {
                true => Err("batch too large"),
                false => Ok(()),
            }
        })
        .dead_letter(weir::sink_fn(move |l: DeadLetter<Vec<u64>>| {
            r.lock().unwrap().push(l.item);
            async { Ok::<_, std::io::Error>(()) }
        }))
        .run()
        .await
        .unwrap();
    assert_eq!(*records.lock().unwrap(), [vec![3, 4, 5]]);
    // Reports count batches (their members are `merged`); the source sees each.
    assert_eq!(
        (report.delivered, report.dead_lettered, report.unfinalized),
        (1, 1, 0)
    );
    let statuses = ledger.assert_exactly_once();
    for id in 0..6 {
        let want = if id < 3 {
            Status::Delivered
        } else {
            Status::DeadLettered
        };
        assert_eq!(statuses[&id], want, "item {id}");
    }
}

/// Guards against sink handlers being ignored: `RetryAfter` writes the
/// item again after its delay, `Replace(())` delivers it, `Skip` fails it
/// without stopping the run, `Fail` goes to the dead-letter sink.
#[tokio::test(start_paused = true)]
async fn sink_handlers_retry_replace_skip_and_fail_to_the_dead_letter_sink() {
    let ledger = Ledger::default();
    let letters = Letters::default();
    let store = Store::default();
    let started = tokio::time::Instant::now();
    let report = Pipeline::from_acked(ledger.source(10))
        .sink(store.clone())
        .on_failure(|f| match *f.item {
            0 if f.attempt < 3 => weir::Decision::RetryAfter(Duration::from_secs(1)),
            3 => weir::Decision::Replace(()),
            6 => weir::Decision::Skip,
            _ => weir::Decision::Fail,
        })
        .dead_letter(letters.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    let writes = store.writes.lock().unwrap().clone();
    assert_eq!(writes.iter().filter(|x| **x == 0).count(), 3);
    let records: Vec<_> = letters.flushed().iter().map(|l| (l.item, l.attempts)).collect();
    assert_eq!(records, [(0, 3), (9, 1)]);
    assert_eq!(
        (
            report.delivered,
            report.dead_lettered,
            report.failed,
            report.stages[1].replaced
        ),
        (7, 2, 1, 1)
    );
    let statuses = ledger.assert_exactly_once();
    assert_eq!(
        [statuses[&0], statuses[&3], statuses[&6], statuses[&9]],
        [
            Status::DeadLettered,
            Status::Delivered,
            Status::Failed,
            Status::DeadLettered
        ]
    );
}

/// Guards against a dead-letter sink that refuses a sink's record being
/// silent: the item fails and the run stops naming `<sink>/dead_letter`.
#[tokio::test]
async fn a_refused_dead_letter_from_a_sink_fails_the_item_and_the_run() {
    let ledger = Ledger::default();
    let letters = Letters {
        refuse_item: Some(3),
        ..Letters::default()
    };
    let err = Pipeline::from_acked(ledger.source(5))
        .sink(Store::default())
        .name("store")
        .dead_letter(letters)
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.stage(), Some("store/dead_letter"));
    assert_eq!(err.item(), Some(3));
    let statuses = ledger.assert_exactly_once();
    assert_eq!(
        (statuses[&0], statuses[&3]),
        (Status::DeadLettered, Status::Halted)
    );
}
