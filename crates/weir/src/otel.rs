//! OpenTelemetry export of weir's tracing spans (cargo feature `otel`).
//!
//! weir traces with the [`tracing`] crate: a `weir.stage` span per stage
//! task (attributes `pipeline`, `stage`, `kind`) and, when
//! [`PipelineBuilder::trace_items`](crate::PipelineBuilder::trace_items)
//! asks for them, `weir.item` spans (`stage`, `item`) under it. [`layer`]
//! sends them, and the application's own spans, to an OpenTelemetry
//! tracer, e.g. one that exports over OTLP with `opentelemetry-otlp`.
//! Each exported stage span also carries `busy_ns` and `idle_ns`: the time
//! its task spent working and waiting, which shows the stage that limits
//! the pipeline.

use opentelemetry::trace::Tracer;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

/// A `tracing-subscriber` layer exporting spans to `tracer`: the
/// `tracing-opentelemetry` layer with busy/idle times on, and without the
/// source locations, which for weir's spans point into weir rather than
/// into the application.
///
/// # Examples
///
/// ```
/// use opentelemetry::trace::TracerProvider as _;
/// use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let exporter = InMemorySpanExporter::default(); // OTLP in production
/// let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
/// let subscriber = tracing_subscriber::registry().with(weir::otel::layer(provider.tracer("app")));
/// let _guard = tracing::subscriber::set_default(subscriber);
///
/// weir::Pipeline::from_iter(0..10u32).then(|x| async move { x }).run().await.unwrap();
///
/// let spans = exporter.get_finished_spans().unwrap();
/// assert!(spans.iter().any(|s| s.name == "weir.stage"));
/// # });
/// ```
pub fn layer<S, T>(tracer: T) -> OpenTelemetryLayer<S, T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    T: Tracer + 'static,
    T::Span: Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(true)
        .with_location(false)
}
