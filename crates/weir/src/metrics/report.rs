use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

use super::Latency;

/// How a pipeline run ended (or that it is still running, for snapshots).
///
/// # Examples
///
/// ```
/// use weir::{Outcome, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let handle = Pipeline::intake::<u32>().start();
/// assert_eq!(handle.metrics().outcome, Outcome::Running); // a snapshot
/// handle.push(1).await.unwrap();
/// assert_eq!(handle.wait().await.unwrap().outcome, Outcome::Completed);
/// assert_eq!(serde_json::to_string(&Outcome::Drained).unwrap(), r#""drained""#);
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Still running: the report is a snapshot.
    Running,
    /// The sources were exhausted and every item was finished.
    Completed,
    /// A drain was requested; intake stopped and every accepted item was
    /// finished.
    Drained,
    /// An abort was requested (or a drain missed its deadline); the items
    /// counted in [`Report::unfinalized`] were not finished.
    Aborted,
    /// A fail-fast error stopped the pipeline; it drained and the error was
    /// returned.
    Failed,
}

/// Counts for one stage.
///
/// `items_out = items_in - dropped - failed (+ flat_map children)` once the
/// stage is idle; sinks count out what their flush confirmed.
///
/// # Examples
///
/// ```
/// use weir::{ErrorPolicy, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let r = Pipeline::from_iter(["1", "x", "3"])
///     .try_map(|s| s.parse::<u32>())
///     .name("parse")
///     .on_error(ErrorPolicy::Skip)
///     .then(|x| async move { x * 2 })
///     .name("enrich")
///     .run()
///     .await
///     .unwrap();
/// let parse = r.stage("parse").unwrap();
/// assert_eq!((parse.kind.as_str(), parse.items_in, parse.items_out, parse.failed), ("map", 3, 2, 1));
/// assert_eq!(parse.queue_capacity, None); // fused with the source: no channel
/// let enrich = r.stage("enrich").unwrap();
/// assert_eq!((enrich.kind.as_str(), enrich.items_in, enrich.items_out), ("then", 2, 2));
/// assert!(enrich.queue_capacity.is_some()); // a task of its own
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    /// The stage's name (default: its kind and position, e.g. `map#2`).
    pub name: String,
    /// What kind of stage it is (`source`, `map`, `then`, `sink`, …).
    pub kind: String,
    /// Items the stage received.
    pub items_in: u64,
    /// Items the stage emitted (for sinks: delivered).
    pub items_out: u64,
    /// Items the stage filtered out on purpose.
    pub dropped: u64,
    /// Items that failed in the stage (and were not dead-lettered).
    pub failed: u64,
    /// Retries scheduled: attempts after the first, over all items
    /// ([`retry`](crate::Pipeline::retry)).
    #[serde(default)]
    pub retried: u64,
    /// Times the stage's circuit breaker opened.
    #[serde(default)]
    pub breaker_trips: u64,
    /// The circuit breaker's state (`closed`, `open`, `half_open`), if the
    /// stage has one.
    #[serde(default)]
    pub breaker: Option<String>,
    /// Failed items the stage's dead-letter sink accepted.
    #[serde(default)]
    pub dead_lettered: u64,
    /// Failed items the stage's failure handler replaced with another
    /// output (counted in `items_out`).
    #[serde(default)]
    pub replaced: u64,
    /// Items inside the stage now: taken in and not yet out, dropped or
    /// failed (in a concurrent window, a batch, a sink's unflushed writes).
    pub in_flight: u64,
    /// Items being worked on at this moment, for stages that run items
    /// concurrently (`then`, `blocking`); `None` where not measured.
    pub active: Option<u64>,
    /// Items waiting in the stage's input channel, for stages that run in
    /// a task of their own (`None` for stages fused with their upstream).
    pub queue_depth: Option<u64>,
    /// That channel's capacity in items.
    pub queue_capacity: Option<u64>,
    /// Time per item in the stage, for stages that time their items
    /// (concurrent stages, sample-timed when their futures are ready at
    /// once; sinks' writes). Fused synchronous stages are not timed per
    /// item: their cost is their task's busy time.
    pub latency: Option<Latency>,
    /// Output items per second over the last ten seconds or so (since the
    /// start, before then).
    pub throughput: f64,
    /// How the stage's task spent its time, for stages that own a task
    /// (the source, and stages with an input channel); fused stages share
    /// their upstream's.
    pub utilization: Option<Utilization>,
}

/// How a task spent its time, as fractions of the run's duration (they sum
/// to 1): the measure of which stage limits throughput. A stage that is
/// busy most of the time while its upstream is backpressured and its
/// downstream idle is the bottleneck.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let r = weir::Pipeline::from_iter(0..1000u32).then(|x| async move { x }).run().await.unwrap();
/// let u = r.stages[1].utilization.unwrap();
/// assert!((u.busy + u.backpressured + u.idle - 1.0).abs() < 1e-6);
/// assert!(r.stages.iter().any(|s| s.utilization.is_none())); // the fused `run` end shares a task
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Utilization {
    /// Working: running its stages, or waiting for its items' futures.
    pub busy: f64,
    /// Waiting for room downstream.
    pub backpressured: f64,
    /// Waiting for input.
    pub idle: f64,
}

/// What a pipeline did: totals, per-stage counts and timing.
///
/// Returned by [`Pipeline::run`](crate::Pipeline::run) and friends at the
/// end, and as a live snapshot (with [`Outcome::Running`]) by
/// [`Handle::metrics`](crate::Handle::metrics). Counts are items after
/// `flat_map` expansion and after batching: a [`batch`](crate::Pipeline::batch)
/// or a window's aggregate counts as one item at the stages after it.
///
/// # Examples
///
/// ```
/// use weir::{Outcome, Pipeline};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let report = Pipeline::from_iter(1..=10u32)
///     .filter(|x| x % 2 == 0)
///     .map(|x| x * 10)
///     .run()
///     .await
///     .unwrap();
/// assert_eq!(report.outcome, Outcome::Completed);
/// assert_eq!((report.pulled, report.delivered, report.dropped), (10, 5, 5));
/// assert_eq!(report.unfinalized, 0);
/// assert_eq!(report.stage("filter#1").unwrap().dropped, 5);
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The pipeline's name.
    pub pipeline: String,
    /// How the run ended.
    pub outcome: Outcome,
    /// Time since the pipeline started.
    #[serde(with = "secs")]
    pub duration: Duration,
    /// Items taken from the sources.
    pub pulled: u64,
    /// Items confirmed by the sink.
    pub delivered: u64,
    /// Items filtered out on purpose.
    pub dropped: u64,
    /// Items that failed.
    pub failed: u64,
    /// Failed items accepted by a dead-letter sink.
    #[serde(default)]
    pub dead_lettered: u64,
    /// Items taken in but not finished (in flight while running; lost to
    /// an abort at the end, to be redelivered by an at-least-once source).
    pub unfinalized: u64,
    /// Checkpoints committed by the run's sources and sinks
    /// ([`Context::emit_checkpoint`](crate::Context::emit_checkpoint)).
    #[serde(default)]
    pub checkpoints: u64,
    /// Per-stage counts, source first, sink last.
    pub stages: Vec<StageReport>,
    /// The stage that limits throughput: the task-owning stage busy for
    /// the largest fraction of the run (see [`Utilization`]).
    pub bottleneck: Option<String>,
    /// End-to-end latency, from the source to a sink's confirmation, of
    /// one item in 64 (sinks: `sink`, `for_each`, `run`'s and `results`'
    /// ends; not `collect` or `fold`).
    pub latency: Option<super::Latency>,
}

impl Report {
    /// Finished items (delivered + dropped + failed) per second of
    /// [`duration`](Self::duration).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter(0..1000u32).run().await.unwrap();
    /// assert!(r.items_per_sec() > 0.0);
    /// # });
    /// ```
    pub fn items_per_sec(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 {
            self.finished() as f64 / secs
        } else {
            0.0
        }
    }

    /// Items finished one way or another: delivered + dropped + failed +
    /// dead-lettered.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter(0..10).filter(|x| x % 2 == 0).run().await.unwrap();
    /// assert_eq!(r.finished(), 10);
    /// assert_eq!(r.stage("filter#1").unwrap().items_out, 5);
    /// # });
    /// ```
    pub fn finished(&self) -> u64 {
        self.delivered + self.dropped + self.failed + self.dead_lettered
    }

    /// The counts of the stage called `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter(0..4).filter(|x| x % 2 == 0).name("even").run().await.unwrap();
    /// assert_eq!(r.stage("even").unwrap().dropped, 2);
    /// assert!(r.stage("odd").is_none());
    /// # });
    /// ```
    pub fn stage(&self, name: &str) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.name == name)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pipeline `{}` {:?} in {:.3}s: {} pulled, {} delivered, {} dropped, {} failed, {} dead-lettered, {} unfinalized ({:.0} items/s)",
            self.pipeline,
            self.outcome,
            self.duration.as_secs_f64(),
            self.pulled,
            self.delivered,
            self.dropped,
            self.failed,
            self.dead_lettered,
            self.unfinalized,
            self.items_per_sec()
        )?;
        let w = self.stages.iter().map(|s| s.name.len()).max().unwrap_or(5).max(5);
        writeln!(
            f,
            "  {:<w$}  {:<10} {:>12} {:>12} {:>10} {:>10} {:>8} {:>8} {:>10} {:>6}",
            "stage", "kind", "in", "out", "dropped", "failed", "dead-l.", "retried", "p99", "busy"
        )?;
        for s in &self.stages {
            let p99 = s.latency.map_or("-".to_owned(), |l| format!("{:.3?}", l.p99));
            let busy = s
                .utilization
                .map_or("-".to_owned(), |u| format!("{:.0}%", u.busy * 100.0));
            write!(
                f,
                "  {:<w$}  {:<10} {:>12} {:>12} {:>10} {:>10} {:>8} {:>8} {:>10} {:>6}",
                s.name,
                s.kind,
                s.items_in,
                s.items_out,
                s.dropped,
                s.failed,
                s.dead_lettered,
                s.retried,
                p99,
                busy
            )?;
            match &s.breaker {
                Some(state) => writeln!(f, "  breaker {state} ({} trips)", s.breaker_trips)?,
                None => writeln!(f)?,
            }
        }
        if let Some(b) = &self.bottleneck {
            writeln!(f, "  bottleneck: {b}")?;
        }
        if let Some(l) = &self.latency {
            writeln!(
                f,
                "  end-to-end latency: p50 {:.3?}, p95 {:.3?}, p99 {:.3?}, max {:.3?} ({} sampled)",
                l.p50, l.p95, l.p99, l.max, l.count
            )?;
        }
        Ok(())
    }
}

pub(in crate::metrics) mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(in crate::metrics) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(in crate::metrics) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
