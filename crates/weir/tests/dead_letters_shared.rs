//! One dead-letter sink for a whole pipeline ([`DeadLetters`]): stages of
//! different item types share it, every record arrives with its item as
//! JSON and every field, the shared sink is flushed by each stage and
//! closed once, after the last record, and a record that cannot be
//! written fails its item loudly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use weir::{DeadLetter, DeadLetters, ErrorKind, ErrorPolicy, Pipeline, PipelineBuilder, Retry, Sink};

/// What the shared sink saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Write(DeadLetter<Value>),
    Flush,
    Close,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Call>>>);

impl Recorder {
    fn calls(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }

    fn letters(&self) -> Vec<DeadLetter<Value>> {
        let mut out: Vec<_> = self
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Write(l) => Some(l),
                _ => None,
            })
            .collect();
        out.sort_by_key(|l| l.item_seq);
        out
    }
}

impl Sink<DeadLetter<Value>> for Recorder {
    type Error = std::io::Error;

    async fn write(&mut self, letter: DeadLetter<Value>) -> Result<(), std::io::Error> {
        self.0.lock().unwrap().push(Call::Write(letter));
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), std::io::Error> {
        self.0.lock().unwrap().push(Call::Flush);
        Ok(())
    }

    async fn close(&mut self) -> Result<(), std::io::Error> {
        self.0.lock().unwrap().push(Call::Close);
        Ok(())
    }
}

#[derive(Debug, Clone, serde::Serialize)]
struct Order {
    id: u32,
    qty: i32,
}

#[tokio::test]
async fn stages_of_different_types_share_one_sink_with_every_field() {
    let rec = Recorder::default();
    let dlq = DeadLetters::new(rec.clone());
    let report = PipelineBuilder::new()
        .error_policy(ErrorPolicy::DeadLetter)
        .from_iter(["1:2", "x", "3:-1", "4:5"])
        .try_map(|s: &str| {
            let (id, qty) = s.split_once(':').ok_or("no colon")?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Order {
                id: id.parse()?,
                qty: qty.parse()?,
            })
        })
        .name("parse")
        .dead_letter(dlq.clone())
        .try_then(|o: Order| async move {
            if o.qty < 0 {
                Err(format!("negative quantity {}", o.qty))
            } else {
                Ok(o.id * 10)
            }
        })
        .name("check")
        .retry(Retry::fixed(std::time::Duration::ZERO).max_attempts(2))
        .dead_letter(dlq)
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered, report.failed), (2, 2, 0));

    let letters = rec.letters();
    assert_eq!(letters.len(), 2);
    let (parse, check) = (&letters[0], &letters[1]);
    assert_eq!((parse.stage.as_str(), parse.item_seq), ("parse", 1));
    assert_eq!(parse.item, json!("x"));
    assert_eq!((parse.error.as_str(), parse.attempts), ("no colon", 1));
    assert_eq!((check.stage.as_str(), check.item_seq), ("check", 2));
    assert_eq!(check.item, json!({"id": 3, "qty": -1}));
    assert_eq!(check.error, "negative quantity -1");
    assert_eq!(check.attempts, 2);
    assert!(check.first_failure_ms <= check.last_failure_ms);
    assert_eq!(parse.pipeline, check.pipeline);
    assert!(!parse.pipeline.is_empty());
    // The whole record still serializes as one JSON object.
    let line = serde_json::to_value(check).unwrap();
    assert_eq!(line["item"]["qty"], -1);
    assert_eq!(line["stage"], "check");

    // Closed once, last; each stage's records were flushed before it.
    let calls = rec.calls();
    assert_eq!(
        calls.iter().filter(|c| **c == Call::Close).count(),
        1,
        "{calls:?}"
    );
    assert_eq!(calls.last(), Some(&Call::Close));
    let last_write = calls.iter().rposition(|c| matches!(c, Call::Write(_))).unwrap();
    assert!(calls[last_write..].contains(&Call::Flush), "{calls:?}");
}

#[tokio::test]
async fn a_run_without_failures_still_closes_the_shared_sink_once() {
    let rec = Recorder::default();
    let dlq = DeadLetters::new(rec.clone());
    let report = Pipeline::from_iter(0..100u32)
        .try_map(Ok::<_, std::io::Error>)
        .dead_letter(dlq.clone())
        .try_map(|x| Ok::<_, std::io::Error>(u64::from(x)))
        .dead_letter(dlq)
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered), (100, 0));
    // No records: the first stage's close flushes, the last one closes.
    assert_eq!(rec.calls(), [Call::Flush, Call::Close]);
}

#[tokio::test]
async fn a_clone_never_given_to_a_stage_does_not_keep_the_sink_open() {
    let rec = Recorder::default();
    let dlq = DeadLetters::new(rec.clone());
    let spare = dlq.clone();
    drop(spare);
    let report = Pipeline::from_iter(["a", "bb"])
        .try_map(|s: &str| if s.len() > 1 { Err("too long") } else { Ok(s) })
        .dead_letter(dlq)
        .run()
        .await
        .unwrap();
    assert_eq!(report.dead_lettered, 1);
    assert_eq!(rec.calls().last(), Some(&Call::Close));
}

#[tokio::test]
async fn an_item_that_is_not_json_fails_loudly_and_is_not_lost() {
    let rec = Recorder::default();
    let dlq = DeadLetters::new(rec.clone());
    // JSON object keys must be strings: a map keyed by tuples has no JSON form.
    let bad: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
    let good: HashMap<(u8, u8), u8> = HashMap::new();
    let err = Pipeline::from_iter([good, bad])
        .try_map(|m: HashMap<(u8, u8), u8>| if m.is_empty() { Ok(0) } else { Err("not empty") })
        .name("check")
        .dead_letter(dlq)
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sink);
    assert!(err.to_string().contains("check/dead_letter"), "{err}");
    assert!(err.message().contains("cannot be written as JSON"), "{err}");
    assert!(rec.letters().is_empty());
}

#[tokio::test]
async fn a_dead_letter_policy_without_a_sink_names_the_shared_option() {
    let err = PipelineBuilder::new()
        .error_policy(ErrorPolicy::DeadLetter)
        .from_iter([1u8])
        .try_map(Ok::<_, std::io::Error>)
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("DeadLetters"), "{err}");
}
