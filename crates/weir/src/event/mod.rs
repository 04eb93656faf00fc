//! The typed event stream: what a pipeline is doing, as it happens.
//!
//! [`Pipeline::events`](crate::Pipeline::events) is weir's primary API: a
//! lossless, backpressured stream of [`Event`]s. Events serialize to JSON
//! with a `type` tag and a schema `version`:
//!
//! ```json
//! {"version":1,"pipeline":"quickstart","ts_ms":1763890000000,"elapsed_ms":12,
//!  "type":"item_failed","stage":"parse","item":17,"error":"invalid digit found in string",
//!  "error_type":"error","attempt":1,"retryable":false}
//! ```

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::metrics::Report;

/// The schema version of [`Event`]'s JSON form.
pub const EVENT_VERSION: u32 = 1;

/// One thing that happened in a pipeline.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use weir::{EventKind, PipelineBuilder};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let events: Vec<_> = PipelineBuilder::new().name("numbers").from_iter(0..3u32).events().collect().await;
/// assert!(matches!(events[0].kind, EventKind::PipelineStarted { .. }));
/// assert!(matches!(events.last().unwrap().kind, EventKind::PipelineFinished { .. }));
/// let json = serde_json::to_value(&events[0]).unwrap();
/// assert_eq!(json["type"], "pipeline_started");
/// assert_eq!(json["version"], 1);
/// assert_eq!(json["pipeline"], "numbers");
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Schema version ([`EVENT_VERSION`]).
    pub version: u32,
    /// The pipeline's name.
    pub pipeline: String,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// Milliseconds since the pipeline started (monotonic).
    pub elapsed_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened, with its details. Serialized inline in [`Event`] with a
/// `type` tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The pipeline started.
    PipelineStarted {
        /// Stage names, source first.
        stages: Vec<String>,
        /// The number of items expected, when the source knows.
        estimated_total: Option<u64>,
    },
    /// Periodic progress.
    Progress(Progress),
    /// An item failed in a stage.
    ItemFailed {
        /// The stage.
        stage: String,
        /// The item's sequence number at its source.
        item: u64,
        /// The error message.
        error: String,
        /// `error`, `panic`, `sink`, … ([`ErrorKind::as_str`](crate::ErrorKind::as_str)).
        error_type: String,
        /// Which attempt failed (1 for the first).
        attempt: u32,
        /// Whether another attempt could succeed.
        retryable: bool,
    },
    /// An item failed in a stage and its
    /// [`on_failure`](crate::Pipeline::on_failure) handler replaced it with
    /// another output, which went on downstream.
    ItemReplaced {
        /// The stage.
        stage: String,
        /// The error message of the last failure.
        error: String,
        /// `error`, `panic`, `timeout`, … ([`ErrorKind::as_str`](crate::ErrorKind::as_str)).
        error_type: String,
        /// Which attempt failed (1 for the first).
        attempt: u32,
    },
    /// One input of a [`merge`](crate::Pipeline::merge) failed (to
    /// initialize, or while it was read); the other inputs go on unless the
    /// source's error policy is fail-fast.
    SourceFailed {
        /// The source stage.
        stage: String,
        /// The input: its [`name`](crate::Source::name), or `#` and its
        /// position.
        input: String,
        /// The error message.
        error: String,
    },
    /// The pipeline finished; the final report.
    PipelineFinished {
        /// The final report.
        report: Box<Report>,
        /// The error that stopped the pipeline, if one did.
        error: Option<String>,
    },
}

/// Progress of a running pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Items finished (delivered, dropped or failed).
    pub completed: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Items taken in and not finished yet.
    pub in_flight: u64,
    /// The number of items expected, when known.
    pub estimated_total: Option<u64>,
    /// Finished items per second since the start.
    pub rate: f64,
    /// Seconds left at the current rate, when the total is known.
    pub eta_seconds: Option<f64>,
}

impl Progress {
    /// Computes rate and ETA from counts and the elapsed time.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = weir::Progress::compute(250, 10, 50, Some(1000), 5.0);
    /// assert_eq!(p.rate, 50.0);
    /// assert_eq!(p.eta_seconds, Some(15.0));
    /// ```
    pub fn compute(
        completed: u64,
        failed: u64,
        in_flight: u64,
        estimated_total: Option<u64>,
        elapsed_secs: f64,
    ) -> Progress {
        let rate = if elapsed_secs > 0.0 {
            completed as f64 / elapsed_secs
        } else {
            0.0
        };
        let eta_seconds = match estimated_total {
            Some(total) if rate > 0.0 => Some(total.saturating_sub(completed) as f64 / rate),
            _ => None,
        };
        Progress {
            completed,
            failed,
            in_flight,
            estimated_total,
            rate,
            eta_seconds,
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_with_type_tag() {
        let e = Event {
            version: EVENT_VERSION,
            pipeline: "p".into(),
            ts_ms: 1,
            elapsed_ms: 2,
            kind: EventKind::ItemFailed {
                stage: "parse".into(),
                item: 4,
                error: "bad".into(),
                error_type: "error".into(),
                attempt: 1,
                retryable: false,
            },
        };
        let s = serde_json::to_string(&e).unwrap();
        assert!(s.contains(r#""type":"item_failed""#), "{s}");
        let back: Event = serde_json::from_str(&s).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn eta_is_unknown_without_a_total_or_a_rate() {
        assert_eq!(Progress::compute(10, 0, 0, None, 1.0).eta_seconds, None);
        assert_eq!(Progress::compute(0, 0, 0, Some(5), 1.0).eta_seconds, None);
        assert_eq!(Progress::compute(0, 0, 0, Some(5), 0.0).rate, 0.0);
    }
}
