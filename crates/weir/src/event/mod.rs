//! The typed event stream: what a pipeline is doing, as it happens.
//!
//! [`Pipeline::events`](crate::Pipeline::events) is weir's primary API: a
//! lossless, backpressured stream of [`Event`]s. Events serialize to JSON
//! with a `type` tag and a schema `version`:
//!
//! ```json
//! {"version":1,"pipeline":"quickstart","run_id":"quickstart-1763890000000-0",
//!  "ts_ms":1763890000000,"elapsed_ms":12,
//!  "type":"item_failed","stage":"parse","item":17,"error":"invalid digit found in string",
//!  "error_type":"error","attempt":1,"retryable":false}
//! ```
//!
//! [`Pipeline::subscribe`](crate::Pipeline::subscribe) and
//! [`Handle::subscribe`](crate::Handle::subscribe) are the lossy
//! alternative for monitors, [`EventLevel`] says how much is built, and
//! [`log`] writes a run's events to a file and reads them back.

pub(crate) mod bus;
pub mod log;

pub(crate) use bus::{EventBus, WeakEventBus};
pub use log::{replay, EventLog, ProgressAt, Replay, ReplayWarning, UnknownEvent};

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::metrics::Report;

/// The schema version of [`Event`]'s JSON form.
///
/// A field added to an event keeps the version: it reads with a default
/// from logs written before it (as [`Event::run_id`] and the `item` of
/// [`ItemReplaced`](EventKind::ItemReplaced) do), and readers ignore
/// fields they do not know. A new event type keeps it too
/// ([`replay`] keeps such events in [`Replay::unknown`]). The version goes
/// up when a field is renamed, removed or changes its meaning or type.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use weir::EVENT_VERSION;
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let events: Vec<_> = weir::Pipeline::from_iter(0..3).events().collect().await;
/// assert!(events.iter().all(|e| e.version == EVENT_VERSION));
/// assert_eq!(serde_json::to_value(&events[0]).unwrap()["version"], EVENT_VERSION);
/// # });
/// ```
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
    /// The run's unique id ([`Context::id`](crate::Context::id)): tells
    /// apart runs of one pipeline in a shared log. Empty in logs written
    /// before it existed.
    #[serde(default)]
    pub run_id: String,
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
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use weir::{ErrorPolicy, EventKind, PipelineBuilder};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let events: Vec<_> = PipelineBuilder::new()
///     .error_policy(ErrorPolicy::Skip)
///     .from_iter(["1", "x"])
///     .try_map(|s| s.parse::<u8>())
///     .events()
///     .collect()
///     .await;
/// let failures: Vec<_> = events
///     .iter()
///     .filter_map(|e| match &e.kind {
///         EventKind::ItemFailed { item, error_type, .. } => Some((*item, error_type.clone())),
///         _ => None, // the enum is non-exhaustive: new kinds may come
///     })
///     .collect();
/// assert_eq!(failures, [(1, "error".to_owned())]);
/// let json = serde_json::to_value(events.iter().find(|e| matches!(e.kind, EventKind::ItemFailed { .. })).unwrap()).unwrap();
/// assert_eq!(json["type"], "item_failed");
/// # });
/// ```
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
        /// The source's own id for the item: its [`Ack`](crate::Ack)'s id
        /// ([`Ack::new`](crate::Ack::new), [`Ack::keyed`](crate::Ack::keyed)),
        /// for items of a [`from_acked`](crate::Pipeline::from_acked)
        /// source; `None` (and left out of the JSON) for in-memory items
        /// and for a batch of several. Absent in logs written before it
        /// existed (the version stays).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<u64>,
        /// The error message.
        error: String,
        /// `error`, `panic`, `sink`, … ([`ErrorKind::as_str`](crate::ErrorKind::as_str)).
        error_type: String,
        /// Which attempt failed (1 for the first).
        attempt: u32,
        /// Whether another attempt could succeed.
        retryable: bool,
    },
    /// A failed item will be tried again after `delay_ms`
    /// ([`retry`](crate::Pipeline::retry)).
    RetryScheduled {
        /// The stage.
        stage: String,
        /// The item's sequence number at its source.
        item: u64,
        /// The attempt that failed (1 for the first).
        attempt: u32,
        /// How long the item waits before its next attempt.
        delay_ms: u64,
        /// The error message of the failed attempt.
        error: String,
        /// Its [`ErrorKind::as_str`](crate::ErrorKind::as_str).
        error_type: String,
    },
    /// A stage's [`circuit breaker`](crate::Pipeline::circuit_breaker)
    /// changed state: `closed`, `open` or `half_open`.
    StageStateChanged {
        /// The stage.
        stage: String,
        /// The state it left.
        from: String,
        /// The state it entered.
        to: String,
        /// Why, e.g. `failure rate 0.60 >= 0.50 over 10 calls`,
        /// `open for 5s elapsed`, `probe failed`, `probes succeeded`.
        reason: String,
        /// The failure rate over the window when the breaker opened from
        /// closed; `None` for other changes.
        failure_rate: Option<f64>,
    },
    /// An item failed in a stage and its
    /// [`on_failure`](crate::Pipeline::on_failure) handler replaced it with
    /// another output, which went on downstream.
    ItemReplaced {
        /// The stage.
        stage: String,
        /// The item's sequence number at its source. 0 in logs written
        /// before the field existed.
        #[serde(default)]
        item: u64,
        /// The error message of the last failure.
        error: String,
        /// `error`, `panic`, `timeout`, … ([`ErrorKind::as_str`](crate::ErrorKind::as_str)).
        error_type: String,
        /// Which attempt failed (1 for the first).
        attempt: u32,
    },
    /// A stage dropped items on purpose, reported once for a batch of
    /// them rather than per item: a
    /// [`drop_newest`](crate::stage::Branches::drop_newest) branch of a
    /// [`broadcast`](crate::Pipeline::broadcast) or
    /// [`route`](crate::Pipeline::route) whose buffer had no room for
    /// `count` of the items the fan-out shipped to it at once (one event
    /// per such shipment). The items are finalized
    /// [`Dropped`](crate::Status::Dropped) for that branch and counted in
    /// the `dropped` of the stage named `branch`.
    ItemsDropped {
        /// The stage that dropped them (the `broadcast` or `route`).
        stage: String,
        /// The branch they were for (also the name of the branch's stage).
        branch: String,
        /// How many items were dropped.
        count: u64,
        /// Why: `buffer_full`.
        reason: String,
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
    /// A stage that runs in a task of its own started work on an item
    /// ([`EventLevel::Items`] only).
    ItemStarted {
        /// The stage.
        stage: String,
        /// The item's sequence number at its source.
        item: u64,
    },
    /// A stage finished an item successfully ([`EventLevel::Items`] only;
    /// a failure is an [`ItemFailed`](EventKind::ItemFailed) event).
    ///
    /// **The safe checkpoint signal is this event from a sink stage**: a
    /// sink's `ItemCompleted` is sent once the [`flush`](crate::Sink::flush)
    /// after the item's write succeeded, when the item is finalized as
    /// [`Delivered`](crate::Status::Delivered), never before; an item
    /// whose flush fails gets an [`ItemFailed`](EventKind::ItemFailed)
    /// instead. A resumed run may skip the items (their `key`s) that had
    /// it, and must redo every other. From any other stage it only says
    /// that the stage's work on the item returned (the item may still fail
    /// downstream or be lost to an abort).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{Ack, Acked, EventKind, EventLevel, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let ids = [70u64, 71, 72];
    /// let events: Vec<_> = PipelineBuilder::new()
    ///     .event_level(EventLevel::Items)
    ///     .from_acked(futures::stream::iter(ids.map(|id| Acked::new(id * 2, Ack::keyed(id)))))
    ///     .then(|x| async move { x + 1 })
    ///     .sink(weir::sink_fn(|_: u64| async {}))
    ///     .name("store")
    ///     .events()
    ///     .collect()
    ///     .await;
    /// // A checkpoint: the ids the sink delivered.
    /// let stored: Vec<u64> = events
    ///     .iter()
    ///     .filter_map(|e| match &e.kind {
    ///         EventKind::ItemCompleted { stage, key, .. } if stage == "store" => *key,
    ///         _ => None,
    ///     })
    ///     .collect();
    /// assert_eq!(stored, ids);
    /// # });
    /// ```
    ItemCompleted {
        /// The stage.
        stage: String,
        /// The item's sequence number at its source.
        item: u64,
        /// The source's own id for the item: its [`Ack`](crate::Ack)'s id
        /// ([`Ack::new`](crate::Ack::new), [`Ack::keyed`](crate::Ack::keyed)),
        /// for items of a [`from_acked`](crate::Pipeline::from_acked)
        /// source; `None` (and left out of the JSON) for in-memory items
        /// and for a batch of several. Absent in logs written before it
        /// existed (the version stays).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<u64>,
        /// How long the stage worked on it, in microseconds (for a sink:
        /// from its write to the end of the flush that delivered it).
        duration_us: u64,
    },
    /// One input of a [`merge`](crate::Pipeline::merge) initialized and is
    /// read from now on.
    SourceConnected {
        /// The source stage.
        stage: String,
        /// The input: its [`name`](crate::Source::name), or `#` and its
        /// position.
        input: String,
    },
    /// The source ran out of items (not sent when a drain stopped it).
    SourceExhausted {
        /// The source stage.
        stage: String,
        /// How many items it produced.
        items: u64,
    },
    /// A position was committed (an offset, a cursor), through
    /// [`Context::emit_checkpoint`](crate::Context::emit_checkpoint).
    CheckpointCommitted {
        /// The stage that committed it (empty when committed through the
        /// pipeline's own context).
        stage: String,
        /// The position, as the stage writes it.
        position: String,
    },
    /// An event of a stage's or a connector's own, through
    /// [`Context::emit`](crate::Context::emit).
    Custom {
        /// The stage that sent it; `None` for the pipeline's own context.
        stage: Option<String>,
        /// What happened.
        name: String,
        /// Its details.
        data: serde_json::Value,
    },
    /// The pipeline finished; the final report.
    PipelineFinished {
        /// The final report.
        report: Box<Report>,
        /// The error that stopped the pipeline, if one did.
        error: Option<String>,
    },
}

/// Which events a run builds (set with
/// [`PipelineBuilder::event_level`](crate::PipelineBuilder::event_level)).
/// Each level includes the ones before it. Whatever the level, nothing is
/// built while nobody listens ([`events`](crate::Pipeline::events) or a
/// [`Subscription`](crate::Subscription)).
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use weir::{EventKind, EventLevel, PipelineBuilder};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let events: Vec<_> = PipelineBuilder::new()
///     .event_level(EventLevel::Items)
///     .from_iter(0..2u32)
///     .then(|x| async move { x })
///     .events()
///     .collect()
///     .await;
/// let started = events.iter().filter(|e| matches!(e.kind, EventKind::ItemStarted { .. })).count();
/// assert_eq!(started, 2); // two items in the `then` stage
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventLevel {
    /// Started, finished, failures, replacements, drops, state changes and
    /// custom events; no progress ticks.
    Lifecycle,
    /// Lifecycle events and a [`Progress`] event every
    /// [`progress_interval`](crate::PipelineBuilder::progress_interval).
    /// The default.
    #[default]
    Progress,
    /// Progress events, plus [`ItemStarted`](EventKind::ItemStarted) and
    /// [`ItemCompleted`](EventKind::ItemCompleted) for each item in each
    /// stage that runs in a task of its own (`then`, `blocking`, keyed
    /// stages, sinks; a sink's `ItemCompleted` waits for the flush that
    /// delivers the item: the checkpoint signal). Fused synchronous
    /// stages (`map`, `filter`, …) run
    /// at a nanosecond or so per item: an event per item would cost them
    /// many times their work, so they report failures only.
    Items,
}

/// Progress of a running pipeline.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use std::time::Duration;
/// use weir::{EventKind, PipelineBuilder};
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let events: Vec<_> = PipelineBuilder::new()
///     .progress_interval(Duration::from_millis(100))
///     .from_iter(0..10u64)
///     .then(|x| async move {
///         tokio::time::sleep(Duration::from_millis(50)).await;
///         x
///     })
///     .events()
///     .collect()
///     .await;
/// let p = events
///     .iter()
///     .find_map(|e| match &e.kind {
///         EventKind::Progress(p) => Some(p.clone()),
///         _ => None,
///     })
///     .unwrap();
/// assert_eq!(p.estimated_total, Some(10)); // `from_iter` knows its length
/// assert!(p.completed + p.in_flight <= 10);
/// # });
/// ```
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
    /// Finished items per second over the last
    /// [`RATE_WINDOW`] (since the start, early in a run).
    pub rate: f64,
    /// Seconds left at the current rate, when the total is known.
    pub eta_seconds: Option<f64>,
}

impl Progress {
    /// Computes the ETA from counts and the current rate (items per
    /// second): what is left of the total at that rate. Unknown without a
    /// total or while nothing finishes.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = weir::Progress::compute(250, 10, 50, Some(1000), 50.0);
    /// assert_eq!(p.eta_seconds, Some(15.0));
    /// let p = weir::Progress::compute(250, 10, 50, None, 50.0);
    /// assert_eq!(p.eta_seconds, None);
    /// ```
    pub fn compute(
        completed: u64,
        failed: u64,
        in_flight: u64,
        estimated_total: Option<u64>,
        rate: f64,
    ) -> Progress {
        let rate = if rate.is_finite() && rate > 0.0 { rate } else { 0.0 };
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

/// How far back [`Progress::rate`] looks: long enough to smooth out
/// chunking, short enough to follow a pipeline that slows down.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// assert_eq!(weir::RATE_WINDOW, Duration::from_secs(10));
/// ```
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Samples of the finished count, for a rate over the last
/// [`RATE_WINDOW`].
#[derive(Debug)]
pub(crate) struct RateWindow {
    span: Duration,
    /// `(time since the start, finished)`, oldest first. The front is the
    /// newest sample at or before the window's start, so the rate spans
    /// the whole window once the run is that old.
    samples: VecDeque<(Duration, u64)>,
}

impl RateWindow {
    pub(crate) fn new(span: Duration) -> RateWindow {
        RateWindow {
            span,
            samples: VecDeque::from([(Duration::ZERO, 0)]),
        }
    }

    /// Records `completed` at `at` and returns the rate over the window.
    pub(crate) fn record(&mut self, at: Duration, completed: u64) -> f64 {
        self.samples.push_back((at, completed));
        let start = at.saturating_sub(self.span);
        while self.samples.len() > 2 && self.samples[1].0 <= start {
            self.samples.pop_front();
        }
        let (t0, c0) = self.samples[0];
        let secs = (at.saturating_sub(t0)).as_secs_f64();
        if secs > 0.0 {
            completed.saturating_sub(c0) as f64 / secs
        } else {
            0.0
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

    /// An event of pipeline `p` at 1 ms (2 ms into the run).
    fn at_1ms(kind: EventKind) -> Event {
        Event {
            version: EVENT_VERSION,
            pipeline: "p".into(),
            run_id: "p-1-0".into(),
            ts_ms: 1,
            elapsed_ms: 2,
            kind,
        }
    }

    #[test]
    fn json_round_trips_with_type_tag() {
        let e = at_1ms(EventKind::ItemFailed {
            stage: "parse".into(),
            item: 4,
            key: Some(1004),
            error: "bad".into(),
            error_type: "error".into(),
            attempt: 1,
            retryable: false,
        });
        let s = serde_json::to_string(&e).unwrap();
        assert!(s.contains(r#""type":"item_failed""#), "{s}");
        let back: Event = serde_json::from_str(&s).unwrap();
        assert_eq!(back, e);
    }

    /// Guards the JSON form of `ItemReplaced`: it carries `item` like the
    /// other item events, and a line from before the field reads as item 0
    /// under the same version.
    #[test]
    fn item_replaced_json_has_its_item_and_reads_older_lines() {
        let e = at_1ms(EventKind::ItemReplaced {
            stage: "parse".into(),
            item: 7,
            error: "bad".into(),
            error_type: "error".into(),
            attempt: 2,
        });
        let golden = r#"{"version":1,"pipeline":"p","run_id":"p-1-0","ts_ms":1,"elapsed_ms":2,"type":"item_replaced","stage":"parse","item":7,"error":"bad","error_type":"error","attempt":2}"#;
        assert_eq!(serde_json::to_string(&e).unwrap(), golden);
        assert_eq!(serde_json::from_str::<Event>(golden).unwrap(), e);
        let older = golden.replace(r#""item":7,"#, "");
        let back: Event = serde_json::from_str(&older).unwrap();
        assert!(matches!(
            back.kind,
            EventKind::ItemReplaced {
                item: 0,
                attempt: 2,
                ..
            }
        ));
    }

    /// Guards the `key` of item events: written only when the item has
    /// one, and a line from before the field (or without a key) reads as
    /// `None` under the same version.
    #[test]
    fn item_completed_json_has_its_key_only_when_known() {
        let e = at_1ms(EventKind::ItemCompleted {
            stage: "store".into(),
            item: 3,
            key: Some(1003),
            duration_us: 5,
        });
        let golden = r#"{"version":1,"pipeline":"p","run_id":"p-1-0","ts_ms":1,"elapsed_ms":2,"type":"item_completed","stage":"store","item":3,"key":1003,"duration_us":5}"#;
        assert_eq!(serde_json::to_string(&e).unwrap(), golden);
        assert_eq!(serde_json::from_str::<Event>(golden).unwrap(), e);
        let older = golden.replace(r#""key":1003,"#, "");
        let back: Event = serde_json::from_str(&older).unwrap();
        assert!(matches!(
            back.kind,
            EventKind::ItemCompleted {
                key: None,
                item: 3,
                ..
            }
        ));
        assert_eq!(serde_json::to_string(&back).unwrap(), older, "no key: no field");
    }

    #[test]
    fn eta_is_unknown_without_a_total_or_a_rate() {
        assert_eq!(Progress::compute(10, 0, 0, None, 1.0).eta_seconds, None);
        assert_eq!(Progress::compute(0, 0, 0, Some(5), 0.0).eta_seconds, None);
        assert_eq!(Progress::compute(0, 0, 0, Some(5), f64::NAN).rate, 0.0);
        assert_eq!(Progress::compute(0, 0, 0, Some(5), -1.0).eta_seconds, None);
    }

    #[test]
    fn eta_is_what_is_left_at_the_rate() {
        assert_eq!(
            Progress::compute(40, 0, 0, Some(100), 20.0).eta_seconds,
            Some(3.0)
        );
        // Past an underestimated total: nothing left, not a negative ETA.
        assert_eq!(
            Progress::compute(120, 0, 0, Some(100), 20.0).eta_seconds,
            Some(0.0)
        );
    }

    #[test]
    fn the_rate_follows_the_last_window_only() {
        let secs = Duration::from_secs;
        let mut w = RateWindow::new(secs(10));
        // 100 items/s for 20 s...
        for t in 1..=20 {
            assert_eq!(w.record(secs(t), 100 * t), 100.0);
        }
        // ...then 10 items/s: after 10 s the old pace is forgotten.
        let mut rate = 0.0;
        for t in 21..=30 {
            rate = w.record(secs(t), 2000 + 10 * (t - 20));
        }
        assert_eq!(rate, 10.0);
        // At most the window's samples plus one are kept.
        assert!(w.samples.len() <= 12, "{}", w.samples.len());
    }

    #[test]
    fn the_rate_is_zero_before_time_passes() {
        let mut w = RateWindow::new(Duration::from_secs(10));
        assert_eq!(w.record(Duration::ZERO, 0), 0.0);
        assert_eq!(w.record(Duration::from_millis(500), 5), 10.0);
    }
}
