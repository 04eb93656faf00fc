//! A [`Report`] in the Prometheus/OpenMetrics text format.
//!
//! The values come from a snapshot, not from live counters: each call to
//! [`render`] encodes the report it is given through a one-off
//! `prometheus-client` collector, so nothing accumulates between renders
//! and two renders of one report are identical.
//!
//! | family | type | labels |
//! | --- | --- | --- |
//! | `weir_stage_items_total` | counter | `pipeline`, `stage`, `kind`, `outcome` = `in`, `out`, `dropped`, `failed` |
//! | `weir_pipeline_items_total` | counter | `pipeline`, `outcome` = `pulled`, `delivered`, `dropped`, `failed` |
//! | `weir_pipeline_unfinalized_items` | gauge | `pipeline` |
//! | `weir_pipeline_duration_seconds` | gauge | `pipeline` |
//! | `weir_pipeline_items_per_second` | gauge | `pipeline` |
//! | `weir_pipeline_outcome` | gauge (1 for the current outcome, 0 for the others) | `pipeline`, `outcome` = `running`, `completed`, `drained`, `aborted`, `failed` |
//!
//! Unfinalized items are a gauge, not an outcome of the items counter:
//! they are the items in flight while the pipeline runs, a number that
//! goes down as well as up, which a counter must never do.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::{Latency, Outcome, Report, StageReport};

/// The content type of [`render`]'s output, for an HTTP response.
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use weir::metrics::prometheus::CONTENT_TYPE;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let handle = weir::Pipeline::intake::<u32>().start();
/// let server = weir::metrics::serve(0, move || handle.metrics()).await.unwrap();
/// let mut conn = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
/// conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
/// let mut response = String::new();
/// conn.read_to_string(&mut response).await.unwrap();
/// assert!(response.contains(&format!("\r\nContent-Type: {CONTENT_TYPE}\r\n")));
/// # });
/// ```
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders `report` in the OpenMetrics text format (which Prometheus
/// scrapes), ending with `# EOF`.
///
/// For a running pipeline, render a fresh snapshot per scrape:
/// `render(&handle.metrics())`; [`serve`](super::serve) does that over
/// HTTP. Each call encodes only the report it is given.
///
/// # Examples
///
/// ```
/// use weir::metrics::prometheus::render;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let report = weir::PipelineBuilder::new()
///     .name("demo")
///     .from_iter(1..=10u32)
///     .filter(|x| x % 2 == 0)
///     .run()
///     .await
///     .unwrap();
/// let text = render(&report);
/// assert!(text.contains(
///     r#"weir_stage_items_total{pipeline="demo",stage="filter#1",kind="filter",outcome="dropped"} 5"#
/// ));
/// assert!(text.contains(r#"weir_pipeline_items_total{pipeline="demo",outcome="delivered"} 5"#));
/// assert!(text.contains(r#"weir_pipeline_outcome{pipeline="demo",outcome="completed"} 1"#));
/// assert!(text.ends_with("# EOF\n"));
/// # });
/// ```
pub fn render(report: &Report) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(report.clone())));
    let mut out = String::new();
    // Writing into a `String` cannot fail, and `Snapshot` has no failure
    // of its own.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// The report being encoded.
#[derive(Debug)]
struct Snapshot(Report);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for family in families(&self.0) {
            let mut metric = encoder.encode_descriptor(
                family.name,
                family.help,
                family.unit.as_ref(),
                family.values.metric_type(),
            )?;
            match &family.values {
                Values::Counter(series) => {
                    for (labels, v) in series {
                        ConstCounter::new(*v).encode(metric.encode_family(labels)?)?;
                    }
                }
                Values::Gauge(series) => {
                    for (labels, v) in series {
                        ConstGauge::new(*v).encode(metric.encode_family(labels)?)?;
                    }
                }
                Values::IntGauge(series) => {
                    for (labels, v) in series {
                        ConstGauge::new(*v).encode(metric.encode_family(labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// One metric family and its series.
struct Family<'a> {
    /// The name without the unit and the counter's `_total`, which the
    /// encoder appends.
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    values: Values<'a>,
}

enum Values<'a> {
    Counter(Vec<(Labels<'a>, u64)>),
    Gauge(Vec<(Labels<'a>, f64)>),
    IntGauge(Vec<(Labels<'a>, i64)>),
}

impl Values<'_> {
    fn metric_type(&self) -> MetricType {
        match self {
            Values::Counter(_) => MetricType::Counter,
            Values::Gauge(_) | Values::IntGauge(_) => MetricType::Gauge,
        }
    }
}

/// Every family weir exports: the one place that maps report fields to
/// metrics.
fn families<'a>(r: &'a Report) -> Vec<Family<'a>> {
    let p = r.pipeline.as_str();
    let pipeline = || vec![("pipeline", p)];
    let stage_items = r
        .stages
        .iter()
        .flat_map(|s| {
            [
                ("in", s.items_in),
                ("out", s.items_out),
                ("dropped", s.dropped),
                ("failed", s.failed),
                ("dead_lettered", s.dead_lettered),
                ("retried", s.retried),
                ("replaced", s.replaced),
            ]
            .map(|(outcome, v)| {
                let labels = vec![
                    ("pipeline", p),
                    ("stage", s.name.as_str()),
                    ("kind", s.kind.as_str()),
                    ("outcome", outcome),
                ];
                (labels, v)
            })
        })
        .collect();
    let pipeline_items = [
        ("pulled", r.pulled),
        ("delivered", r.delivered),
        ("dropped", r.dropped),
        ("failed", r.failed),
    ]
    .into_iter()
    .map(|(outcome, v)| (vec![("pipeline", p), ("outcome", outcome)], v))
    .collect();
    let outcomes = [
        Outcome::Running,
        Outcome::Completed,
        Outcome::Drained,
        Outcome::Aborted,
        Outcome::Failed,
    ]
    .into_iter()
    .map(|o| {
        let v = i64::from(o == r.outcome);
        (vec![("pipeline", p), ("outcome", outcome_label(o))], v)
    })
    .collect();
    let stage = |s: &'a StageReport| vec![("pipeline", p), ("stage", s.name.as_str())];
    let quantiles = |l: Option<Latency>, labels: Labels<'a>| {
        l.into_iter().flat_map(move |l| {
            let labels = labels.clone();
            [("0.5", l.p50), ("0.95", l.p95), ("0.99", l.p99), ("1", l.max)].map(move |(q, d)| {
                let mut labels = labels.clone();
                labels.push(("quantile", q));
                (labels, d.as_secs_f64())
            })
        })
    };
    let stage_latency = r
        .stages
        .iter()
        .flat_map(|s| quantiles(s.latency, stage(s)))
        .collect();
    let utilization = r
        .stages
        .iter()
        .filter_map(|s| Some((s, s.utilization?)))
        .flat_map(|(s, u)| {
            [
                ("busy", u.busy),
                ("backpressured", u.backpressured),
                ("idle", u.idle),
            ]
            .map(|(state, v)| {
                let mut labels = stage(s);
                labels.push(("state", state));
                (labels, v)
            })
        })
        .collect();
    let queue = r
        .stages
        .iter()
        .filter_map(|s| Some((stage(s), gauge(s.queue_depth?))))
        .collect();
    let queue_capacity = r
        .stages
        .iter()
        .filter_map(|s| Some((stage(s), gauge(s.queue_capacity?))))
        .collect();
    let in_flight = r.stages.iter().map(|s| (stage(s), gauge(s.in_flight))).collect();
    let throughput = r.stages.iter().map(|s| (stage(s), s.throughput)).collect();
    let bottleneck = r
        .bottleneck
        .iter()
        .map(|b| (vec![("pipeline", p), ("stage", b.as_str())], 1))
        .collect();
    let e2e = quantiles(r.latency, pipeline()).collect();
    vec![
        Family {
            name: "weir_stage_latency",
            help: "Time per item in the stage (concurrent stages and sinks), by quantile (1 = max).",
            unit: Some(Unit::Seconds),
            values: Values::Gauge(stage_latency),
        },
        Family {
            name: "weir_stage_utilization_ratio",
            help: "Fraction of the run the stage's task was busy, backpressured or idle.",
            unit: None,
            values: Values::Gauge(utilization),
        },
        Family {
            name: "weir_stage_queue_items",
            help: "Items waiting in the stage's input channel.",
            unit: None,
            values: Values::IntGauge(queue),
        },
        Family {
            name: "weir_stage_queue_capacity_items",
            help: "Capacity of the stage's input channel, in items.",
            unit: None,
            values: Values::IntGauge(queue_capacity),
        },
        Family {
            name: "weir_stage_in_flight_items",
            help: "Items inside the stage: taken in, not yet out, dropped or failed.",
            unit: None,
            values: Values::IntGauge(in_flight),
        },
        Family {
            name: "weir_stage_throughput_items_per_second",
            help: "Output items per second over the last ten seconds.",
            unit: None,
            values: Values::Gauge(throughput),
        },
        Family {
            name: "weir_pipeline_bottleneck",
            help: "1 for the stage that limits throughput (busy for the largest part of the run).",
            unit: None,
            values: Values::IntGauge(bottleneck),
        },
        Family {
            name: "weir_pipeline_latency",
            help: "End-to-end latency from the source to a sink (one item in 64), by quantile (1 = max).",
            unit: Some(Unit::Seconds),
            values: Values::Gauge(e2e),
        },
        Family {
            name: "weir_stage_items",
            help: "Items per stage: taken in, emitted (for sinks: delivered), dropped on purpose, failed.",
            unit: None,
            values: Values::Counter(stage_items),
        },
        Family {
            name: "weir_pipeline_items",
            help: "Items pulled from the sources and finished as delivered, dropped or failed.",
            unit: None,
            values: Values::Counter(pipeline_items),
        },
        Family {
            name: "weir_pipeline_unfinalized_items",
            help: "Items taken in but not finished: in flight while running, lost to an abort at the end.",
            unit: None,
            values: Values::IntGauge(vec![(pipeline(), gauge(r.unfinalized))]),
        },
        Family {
            name: "weir_pipeline_duration",
            help: "Time since the pipeline started (its whole run once it ended).",
            unit: Some(Unit::Seconds),
            values: Values::Gauge(vec![(pipeline(), r.duration.as_secs_f64())]),
        },
        Family {
            name: "weir_pipeline_items_per_second",
            help: "Finished items per second over the whole run.",
            unit: None,
            values: Values::Gauge(vec![(pipeline(), r.items_per_sec())]),
        },
        Family {
            name: "weir_pipeline_outcome",
            help: "1 for how the pipeline stands (running) or ended, 0 for the other outcomes.",
            unit: None,
            values: Values::IntGauge(outcomes),
        },
    ]
}

/// A count as a gauge value (`i64` in OpenMetrics), saturating.
fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Running => "running",
        Outcome::Completed => "completed",
        Outcome::Drained => "drained",
        Outcome::Aborted => "aborted",
        Outcome::Failed => "failed",
    }
}
