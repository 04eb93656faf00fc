use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// How a pipeline run ended (or that it is still running, for snapshots).
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Failed items the stage's dead-letter sink accepted.
    #[serde(default)]
    pub dead_lettered: u64,
    /// Failed items the stage's failure handler replaced with another
    /// output (counted in `items_out`).
    #[serde(default)]
    pub replaced: u64,
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
    /// Per-stage counts, source first, sink last.
    pub stages: Vec<StageReport>,
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
            "  {:<w$}  {:<10} {:>12} {:>12} {:>10} {:>10} {:>13}",
            "stage", "kind", "in", "out", "dropped", "failed", "dead-lettered"
        )?;
        for s in &self.stages {
            writeln!(
                f,
                "  {:<w$}  {:<10} {:>12} {:>12} {:>10} {:>10} {:>13}",
                s.name, s.kind, s.items_in, s.items_out, s.dropped, s.failed, s.dead_lettered
            )?;
        }
        Ok(())
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
