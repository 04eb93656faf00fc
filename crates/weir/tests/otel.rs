//! weir's spans exported to OpenTelemetry (cargo feature `otel`), checked
//! with the SDK's in-memory exporter.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;
use weir::{ErrorPolicy, PipelineBuilder};

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> String {
    attr(span, key)
        .unwrap_or_else(|| panic!("no `{key}` on {span:?}"))
        .as_str()
        .into_owned()
}

/// Runs `f` with spans exported to an in-memory exporter; returns them.
async fn exported<F: std::future::Future<Output = ()>>(f: F) -> Vec<SpanData> {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(weir::otel::layer(provider.tracer("test")));
    {
        // The current-thread runtime runs every task on this thread, which
        // has the subscriber as its default.
        let _guard = tracing::subscriber::set_default(subscriber);
        f.await;
    }
    provider.force_flush().unwrap();
    exporter.get_finished_spans().unwrap()
}

#[tokio::test]
async fn stage_and_item_spans_are_exported_with_their_attributes() {
    let spans = exported(async {
        let report = PipelineBuilder::new()
            .name("traced")
            .trace_items(0.5)
            .error_policy(ErrorPolicy::Skip)
            .from_iter(0..10u32)
            .filter(|x| *x != 9)
            .try_then(|x| async move {
                tracing::info!(x, "enriching");
                if x == 4 {
                    Err("four")
                } else {
                    Ok(x)
                }
            })
            .name("enrich")
            .run()
            .await
            .unwrap();
        assert_eq!((report.delivered, report.dropped, report.failed), (8, 1, 1));
    })
    .await;

    let stages: Vec<&SpanData> = spans.iter().filter(|s| s.name == "weir.stage").collect();
    assert!(!stages.is_empty());
    for s in &stages {
        assert_eq!(text(s, "pipeline"), "traced");
        assert!(
            attr(s, "busy_ns").is_some() && attr(s, "idle_ns").is_some(),
            "{s:?}"
        );
        assert!(
            s.attributes
                .iter()
                .all(|kv| !kv.key.as_str().starts_with("code.")),
            "no source locations: {s:?}"
        );
    }
    let stage = |name: &str| {
        *stages
            .iter()
            .find(|s| text(s, "stage") == name)
            .unwrap_or_else(|| panic!("no span for {name}"))
    };
    assert_eq!(text(stage("source#0"), "kind"), "source");
    let enrich = stage("enrich");
    assert_eq!(text(enrich, "kind"), "then");

    let items: Vec<&SpanData> = spans.iter().filter(|s| s.name == "weir.item").collect();
    // Nine items reach `enrich`; one in two is traced, the first included.
    let mut positions: Vec<i64> = items
        .iter()
        .map(|s| match attr(s, "item") {
            Some(Value::I64(n)) => *n,
            other => panic!("item attribute {other:?}"),
        })
        .collect();
    positions.sort();
    assert_eq!(positions, [0, 2, 4, 6, 8]);
    for item in &items {
        assert_eq!(text(item, "stage"), "enrich");
        assert_eq!(item.parent_span_id, enrich.span_context.span_id());
        assert_eq!(item.span_context.trace_id(), enrich.span_context.trace_id());
        // The user's event, recorded in the item's span.
        assert!(item.events.iter().any(|e| e.name == "enriching"), "{item:?}");
    }
}

#[tokio::test]
async fn without_item_sampling_only_stage_spans() {
    let spans = exported(async {
        let report = PipelineBuilder::new()
            .from_iter(0..100u32)
            .then(|x| async move { x })
            .run()
            .await
            .unwrap();
        assert_eq!(report.delivered, 100);
    })
    .await;
    assert!(spans.iter().all(|s| s.name == "weir.stage"));
    assert!(spans.iter().any(|s| text(s, "stage") == "then#1"));
}
