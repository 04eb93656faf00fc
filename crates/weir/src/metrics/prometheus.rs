//! A [`Report`] in the Prometheus/OpenMetrics text format.
//!
//! The values come from a snapshot, not from live counters: each call to
//! [`render`] encodes the report it is given through a one-off
//! `prometheus-client` collector, so nothing accumulates between renders
//! and two renders of one report are identical.
//!
//! Every family, as exposed (`pipeline` is the pipeline's name, `stage`
//! the stage's; families with no value in a report have no series):
//!
//! | family | type | labels | value |
//! | --- | --- | --- | --- |
//! | `weir_stage_items_total` | counter | `pipeline`, `stage`, `kind`, `outcome` = `in`, `out`, `dropped`, `failed`, `dead_lettered`, `retried`, `replaced` | items per stage and outcome |
//! | `weir_stage_latency_seconds` | gauge | `pipeline`, `stage`, `quantile` = `0.5`, `0.95`, `0.99`, `1` (max) | time per item, for stages that time their items |
//! | `weir_stage_utilization_ratio` | gauge | `pipeline`, `stage`, `state` = `busy`, `backpressured`, `idle` | fraction of the run, for stages with a task of their own |
//! | `weir_stage_queue_items` | gauge | `pipeline`, `stage` | items waiting in the stage's input channel |
//! | `weir_stage_queue_capacity_items` | gauge | `pipeline`, `stage` | that channel's capacity |
//! | `weir_stage_in_flight_items` | gauge | `pipeline`, `stage` | items inside the stage |
//! | `weir_stage_active_workers` | gauge | `pipeline`, `stage` | items being worked on now, for concurrent stages (`then`, `blocking`) |
//! | `weir_stage_throughput_items_per_second` | gauge | `pipeline`, `stage` | output over the last ten seconds |
//! | `weir_stage_breaker_state` | gauge (1 for the current state, 0 for the others) | `pipeline`, `stage`, `state` = `closed`, `open`, `half_open` | for stages with a circuit breaker |
//! | `weir_stage_breaker_trips_total` | counter | `pipeline`, `stage` | times the breaker opened, for stages with one |
//! | `weir_pipeline_items_total` | counter | `pipeline`, `outcome` = `pulled`, `delivered`, `dropped`, `failed` | items |
//! | `weir_pipeline_unfinalized_items` | gauge | `pipeline` | items taken in, not finished |
//! | `weir_pipeline_checkpoints_total` | counter | `pipeline` | checkpoints committed ([`Context::emit_checkpoint`](crate::Context::emit_checkpoint)) |
//! | `weir_pipeline_duration_seconds` | gauge | `pipeline` | time since the start |
//! | `weir_pipeline_items_per_second` | gauge | `pipeline` | finished items per second over the run |
//! | `weir_pipeline_outcome` | gauge (1 for the current outcome, 0 for the others) | `pipeline`, `outcome` = `running`, `completed`, `drained`, `aborted`, `failed` | |
//! | `weir_pipeline_bottleneck` | gauge (1) | `pipeline`, `stage` | the stage busy for the largest part of the run |
//! | `weir_pipeline_latency_seconds` | gauge | `pipeline`, `quantile` = `0.5`, `0.95`, `0.99`, `1` (max) | end-to-end latency, sampled |
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

// Family names as registered: the encoder appends the unit (`_seconds`)
// and, for counters, `_total`.
const STAGE_ITEMS: &str = "weir_stage_items";
const STAGE_LATENCY: &str = "weir_stage_latency";
const STAGE_UTILIZATION: &str = "weir_stage_utilization_ratio";
const STAGE_QUEUE: &str = "weir_stage_queue_items";
const STAGE_QUEUE_CAPACITY: &str = "weir_stage_queue_capacity_items";
const STAGE_IN_FLIGHT: &str = "weir_stage_in_flight_items";
const STAGE_ACTIVE: &str = "weir_stage_active_workers";
const STAGE_THROUGHPUT: &str = "weir_stage_throughput_items_per_second";
const STAGE_BREAKER_STATE: &str = "weir_stage_breaker_state";
const STAGE_BREAKER_TRIPS: &str = "weir_stage_breaker_trips";
const PIPELINE_ITEMS: &str = "weir_pipeline_items";
const PIPELINE_UNFINALIZED: &str = "weir_pipeline_unfinalized_items";
const PIPELINE_CHECKPOINTS: &str = "weir_pipeline_checkpoints";
const PIPELINE_DURATION: &str = "weir_pipeline_duration";
const PIPELINE_ITEMS_PER_SECOND: &str = "weir_pipeline_items_per_second";
const PIPELINE_OUTCOME: &str = "weir_pipeline_outcome";
const PIPELINE_BOTTLENECK: &str = "weir_pipeline_bottleneck";
const PIPELINE_LATENCY: &str = "weir_pipeline_latency";

/// The breaker states, as the `state` label and [`StageReport::breaker`]
/// name them.
const BREAKER_STATES: [&str; 3] = ["closed", "open", "half_open"];

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
    let active = r
        .stages
        .iter()
        .filter_map(|s| Some((stage(s), gauge(s.active?))))
        .collect();
    let breakers = || r.stages.iter().filter_map(|s| Some((s, s.breaker.as_deref()?)));
    let breaker_state = breakers()
        .flat_map(|(s, now)| {
            BREAKER_STATES.map(|state| {
                let mut labels = stage(s);
                labels.push(("state", state));
                (labels, i64::from(state == now))
            })
        })
        .collect();
    let breaker_trips = breakers().map(|(s, _)| (stage(s), s.breaker_trips)).collect();
    let bottleneck = r
        .bottleneck
        .iter()
        .map(|b| (vec![("pipeline", p), ("stage", b.as_str())], 1))
        .collect();
    let e2e = quantiles(r.latency, pipeline()).collect();
    vec![
        Family {
            name: STAGE_LATENCY,
            help: "Time per item in the stage (concurrent stages and sinks), by quantile (1 = max).",
            unit: Some(Unit::Seconds),
            values: Values::Gauge(stage_latency),
        },
        Family {
            name: STAGE_UTILIZATION,
            help: "Fraction of the run the stage's task was busy, backpressured or idle.",
            unit: None,
            values: Values::Gauge(utilization),
        },
        Family {
            name: STAGE_QUEUE,
            help: "Items waiting in the stage's input channel.",
            unit: None,
            values: Values::IntGauge(queue),
        },
        Family {
            name: STAGE_QUEUE_CAPACITY,
            help: "Capacity of the stage's input channel, in items.",
            unit: None,
            values: Values::IntGauge(queue_capacity),
        },
        Family {
            name: STAGE_IN_FLIGHT,
            help: "Items inside the stage: taken in, not yet out, dropped or failed.",
            unit: None,
            values: Values::IntGauge(in_flight),
        },
        Family {
            name: STAGE_ACTIVE,
            help: "Items being worked on now in a concurrent stage (then, blocking): its busy workers.",
            unit: None,
            values: Values::IntGauge(active),
        },
        Family {
            name: STAGE_BREAKER_STATE,
            help: "1 for the state the stage's circuit breaker is in (closed, open, half_open), 0 for the others.",
            unit: None,
            values: Values::IntGauge(breaker_state),
        },
        Family {
            name: STAGE_BREAKER_TRIPS,
            help: "Times the stage's circuit breaker opened.",
            unit: None,
            values: Values::Counter(breaker_trips),
        },
        Family {
            name: STAGE_THROUGHPUT,
            help: "Output items per second over the last ten seconds.",
            unit: None,
            values: Values::Gauge(throughput),
        },
        Family {
            name: PIPELINE_BOTTLENECK,
            help: "1 for the stage that limits throughput (busy for the largest part of the run).",
            unit: None,
            values: Values::IntGauge(bottleneck),
        },
        Family {
            name: PIPELINE_LATENCY,
            help: "End-to-end latency from the source to a sink (one item in 64), by quantile (1 = max).",
            unit: Some(Unit::Seconds),
            values: Values::Gauge(e2e),
        },
        Family {
            name: STAGE_ITEMS,
            help: "Items per stage: taken in, emitted (for sinks: delivered), dropped on purpose, failed.",
            unit: None,
            values: Values::Counter(stage_items),
        },
        Family {
            name: PIPELINE_ITEMS,
            help: "Items pulled from the sources and finished as delivered, dropped or failed.",
            unit: None,
            values: Values::Counter(pipeline_items),
        },
        Family {
            name: PIPELINE_UNFINALIZED,
            help: "Items taken in but not finished: in flight while running, lost to an abort at the end.",
            unit: None,
            values: Values::IntGauge(vec![(pipeline(), gauge(r.unfinalized))]),
        },
        Family {
            name: PIPELINE_CHECKPOINTS,
            help: "Checkpoints committed (positions written to a checkpoint store).",
            unit: None,
            values: Values::Counter(vec![(pipeline(), r.checkpoints)]),
        },
        Family {
            name: PIPELINE_DURATION,
            help: "Time since the pipeline started (its whole run once it ended).",
            unit: Some(Unit::Seconds),
            values: Values::Gauge(vec![(pipeline(), r.duration.as_secs_f64())]),
        },
        Family {
            name: PIPELINE_ITEMS_PER_SECOND,
            help: "Finished items per second over the whole run.",
            unit: None,
            values: Values::Gauge(vec![(pipeline(), r.items_per_sec())]),
        },
        Family {
            name: PIPELINE_OUTCOME,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Guards against a family added without its row in the module's doc
    /// table.
    #[test]
    fn the_doc_table_lists_every_family() {
        let report: Report = serde_json::from_value(serde_json::json!({
            "pipeline": "p", "outcome": "completed", "duration": 0.0,
            "pulled": 0, "delivered": 0, "dropped": 0, "failed": 0, "unfinalized": 0,
            "stages": [], "bottleneck": null,
        }))
        .expect("a minimal report");
        let docs = include_str!("prometheus.rs");
        let families = families(&report);
        assert_eq!(families.len(), 18);
        for f in families {
            let unit = match f.unit {
                Some(Unit::Seconds) => "_seconds",
                _ => "",
            };
            let total = match f.values {
                Values::Counter(_) => "_total",
                _ => "",
            };
            let row = format!("//! | `{}{unit}{total}` |", f.name);
            assert!(docs.contains(&row), "no doc row {row}");
        }
    }
}
