//! tracing spans: one per stage task, one per sampled item of the
//! concurrent stages.

mod common;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;
use weir::{ErrorPolicy, Pipeline, PipelineBuilder, Status};

use common::Ledger;

#[derive(Debug, Clone)]
struct Span {
    id: u64,
    name: &'static str,
    parent: Option<u64>,
    fields: HashMap<String, String>,
}

type EventRec = (String, Option<u64>);

/// Records every span and the span of every event.
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<Span>>>,
    /// Each event's message and the id of the span it happened in.
    events: Arc<Mutex<Vec<EventRec>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx.span(id).and_then(|s| s.parent()).map(|p| p.id().into_u64());
        self.spans.lock().unwrap().push(Span {
            id: id.into_u64(),
            name: attrs.metadata().name(),
            parent,
            fields,
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let span = ctx.event_span(event).map(|s| s.id().into_u64());
        self.events
            .lock()
            .unwrap()
            .push((fields.remove("message").unwrap_or_default(), span));
    }
}

impl Capture {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
    }

    fn named(&self, name: &str) -> Vec<Span> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    fn stage(&self, stage: &str) -> Span {
        let mut found: Vec<Span> = self
            .named("weir.stage")
            .into_iter()
            .filter(|s| s.fields["stage"] == stage)
            .collect();
        assert_eq!(found.len(), 1, "one span for {stage}");
        found.pop().unwrap()
    }

    /// The `item` field of every `weir.item` span, in creation order.
    fn items(&self) -> Vec<u64> {
        self.named("weir.item")
            .iter()
            .map(|s| s.fields["item"].parse().unwrap())
            .collect()
    }
}

// Tests run on the current-thread runtime, so every task sees the
// subscriber installed as the thread's default.

#[tokio::test]
async fn every_stage_task_runs_in_a_stage_span() {
    let capture = Capture::default();
    let _guard = capture.install();
    let ledger = Ledger::default();
    let report = PipelineBuilder::new()
        .name("spans")
        .from_acked(ledger.source(50))
        .map(|x| x + 1)
        .then(|x| async move { x * 2 })
        .name("double")
        .for_each_async(|_| async { Ok::<_, weir::BoxError>(()) })
        .run()
        .await
        .unwrap();
    assert_eq!(report.delivered, 50);
    assert!(ledger
        .assert_exactly_once()
        .values()
        .all(|s| *s == Status::Delivered));

    let spans = capture.named("weir.stage");
    for s in &spans {
        assert_eq!(s.fields["pipeline"], "spans");
        let stage = report.stage(&s.fields["stage"]).expect("a stage of the report");
        assert_eq!(s.fields["kind"], stage.kind);
    }
    // The source task (with the fused `map`) and the `then` task, each in
    // its span; the fused `map` has none of its own.
    assert_eq!(capture.stage("source#0").fields["kind"], "source");
    assert_eq!(capture.stage("double").fields["kind"], "then");
    assert!(spans.iter().all(|s| s.fields["stage"] != "map#1"));
    // No item spans unless asked for.
    assert!(capture.items().is_empty());
}

#[tokio::test]
async fn sampled_items_get_spans_under_their_stage() {
    let capture = Capture::default();
    let _guard = capture.install();
    let report = PipelineBuilder::new()
        .trace_items(0.25)
        .from_iter(0..20u32)
        .then(|x| async move {
            tracing::info!("working on {x}");
            tokio::task::yield_now().await;
            x
        })
        .concurrency(3)
        .run()
        .await
        .unwrap();
    assert_eq!(report.delivered, 20);

    let then = capture.stage("then#1");
    let items = capture.named("weir.item");
    assert_eq!(capture.items(), [0, 4, 8, 12, 16]);
    for item in &items {
        assert_eq!(item.parent, Some(then.id));
        assert_eq!(item.fields["stage"], "then#1");
    }
    // The user's code runs inside the item's span when sampled, and in
    // the stage's otherwise.
    let events = capture.events.lock().unwrap().clone();
    assert_eq!(events.len(), 20);
    for (message, span) in events {
        let x: u64 = message.trim_start_matches("working on ").parse().unwrap();
        let expected = if x % 4 == 0 {
            items
                .iter()
                .find(|s| s.fields["item"] == x.to_string())
                .unwrap()
                .id
        } else {
            then.id
        };
        assert_eq!(span, Some(expected), "{message}");
    }
}

#[tokio::test]
async fn sample_rates_at_the_edges() {
    for (rate, expected) in [
        (0.0, 0),
        (-1.0, 0),
        (f64::NAN, 0),
        (1.0, 10),
        (7.0, 10),
        (0.5, 5),
        (1e-9, 1),
    ] {
        let capture = Capture::default();
        let _guard = capture.install();
        let report = PipelineBuilder::new()
            .trace_items(rate)
            .from_iter(0..10u8)
            .then(|x| async move { x })
            .run()
            .await
            .unwrap();
        assert_eq!(report.delivered, 10);
        assert_eq!(capture.items().len(), expected, "rate {rate}");
    }
}

#[tokio::test]
async fn empty_input_makes_stage_spans_and_no_item_spans() {
    let capture = Capture::default();
    let _guard = capture.install();
    let report = PipelineBuilder::new()
        .trace_items(1.0)
        .from_iter(std::iter::empty::<u8>())
        .then(|x| async move { x })
        .run()
        .await
        .unwrap();
    assert_eq!(report.pulled, 0);
    capture.stage("then#1");
    assert!(capture.items().is_empty());
}

#[tokio::test(start_paused = true)]
async fn item_spans_with_time_limits_failures_and_blocking() {
    let capture = Capture::default();
    let _guard = capture.install();
    let report = PipelineBuilder::new()
        .trace_items(1.0)
        .error_policy(ErrorPolicy::Skip)
        .from_iter(0..6u64)
        .try_then(|x| async move {
            if x == 1 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            if x == 2 {
                return Err("two");
            }
            if x == 3 {
                panic!("three");
            }
            Ok(x)
        })
        .timeout(Duration::from_secs(1))
        .blocking(|x| x + 1)
        .name("cpu")
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.failed), (3, 3));
    let spans = capture.named("weir.item");
    let per_stage = |stage: &str| spans.iter().filter(|s| s.fields["stage"] == stage).count();
    assert_eq!(per_stage("then#1"), 6);
    assert_eq!(per_stage("cpu"), 3);
    let cpu = capture.stage("cpu");
    assert!(spans
        .iter()
        .filter(|s| s.fields["stage"] == "cpu")
        .all(|s| s.parent == Some(cpu.id)));
}

#[tokio::test]
async fn drained_mid_way_keeps_spans_consistent() {
    let capture = Capture::default();
    let _guard = capture.install();
    let handle = PipelineBuilder::new()
        .trace_items(0.5)
        .intake::<u32>()
        .then(|x| async move { x })
        .start();
    handle.push_batch(0..8).await.unwrap();
    let report = handle
        .shutdown(weir::Shutdown::Drain, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.delivered, 8);
    assert_eq!(capture.items(), [0, 2, 4, 6]);
    capture.stage("source#0");
}

#[tokio::test]
async fn no_subscriber_no_trouble() {
    let report = Pipeline::from_iter(0..100u32)
        .then(|x| async move { x })
        .run()
        .await
        .unwrap();
    assert_eq!(report.delivered, 100);
    // Every item traced, with no subscriber installed: the spans are
    // disabled (no item runs inside a live span) and every item still goes
    // through, in order.
    let out = PipelineBuilder::new()
        .trace_items(1.0)
        .from_iter(0..100u32)
        .then(|x| async move { (x, tracing::Span::current().is_disabled()) })
        .collect()
        .await
        .unwrap();
    assert_eq!(out, (0..100).map(|x| (x, true)).collect::<Vec<_>>());
}
