//! Counters per stage (`StageMetrics`), published per chunk, and
//! the [`Report`] built from them.
//!
//! Stages count into plain local fields on the hot path (a task's
//! `Counters`, in `runtime/counters.rs`) and publish the totals to these
//! shared atomics once per chunk (and when their task ends, even by
//! abort), so a snapshot taken at any time is at most one chunk behind.
//!
//! Exposition: [`prometheus::render`] turns a [`Report`] into the
//! Prometheus/OpenMetrics text format and [`serve`] answers `/metrics` and
//! `/health` over HTTP.

mod latency;
pub mod prometheus;
mod report;
mod serve;

pub use latency::Latency;
pub(crate) use latency::Recorder;
pub use report::{Outcome, Report, StageReport, Utilization};
pub use serve::{serve, serve_on, MetricsServer};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Shared, published counters of one stage.
#[derive(Debug)]
pub(crate) struct StageMetrics {
    pub(crate) items_in: AtomicU64,
    pub(crate) items_out: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Items created beyond one per input (`flat_map` children).
    pub(crate) expanded: AtomicU64,
    /// Items folded into another beyond one per output (the members of a
    /// `batch` or a window but one): finished when that output is.
    pub(crate) merged: AtomicU64,
    /// The stage's input channel, when it runs in a task of its own.
    pub(crate) channel: Arc<ChannelStats>,
    /// Items being worked on now (concurrent stages; `u64::MAX`: not
    /// measured).
    pub(crate) active: AtomicU64,
    /// Time per item in the stage (stages that time their items).
    pub(crate) latency: Recorder,
    /// When the stage's task ended, in nanoseconds since the start (0:
    /// still running).
    pub(crate) ended_ns: AtomicU64,
    /// Attempts scheduled again after a failure. Counted as they happen
    /// (off the per-item path), not through [`Counters`].
    pub(crate) retried: AtomicU64,
    /// Times the circuit breaker opened.
    pub(crate) breaker_trips: AtomicU64,
    /// The breaker's state: 0 without a breaker, else
    /// [`BreakerState`](crate::policy::BreakerState) as `u8`.
    pub(crate) breaker_state: std::sync::atomic::AtomicU8,
    /// Failed items sent towards the stage's dead-letter sink. The stage
    /// counts them in `failed` too; reports take them out of it, and put
    /// back those the sink refused.
    pub(crate) dead_letter_sent: AtomicU64,
    /// Dead letters the sink accepted: the items are finalized.
    pub(crate) dead_lettered: AtomicU64,
    /// Dead letters the sink refused: the items failed after all.
    pub(crate) dead_letter_refused: AtomicU64,
    /// Failed items a handler replaced with another output.
    pub(crate) replaced: AtomicU64,
}

impl Default for StageMetrics {
    fn default() -> StageMetrics {
        StageMetrics {
            items_in: AtomicU64::new(0),
            items_out: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            expanded: AtomicU64::new(0),
            merged: AtomicU64::new(0),
            channel: Arc::default(),
            active: AtomicU64::new(u64::MAX),
            latency: Recorder::default(),
            ended_ns: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            breaker_trips: AtomicU64::new(0),
            breaker_state: std::sync::atomic::AtomicU8::new(0),
            dead_letter_sent: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            dead_letter_refused: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
        }
    }
}

/// What a stage's input channel measures: shared by the channel and the
/// report.
#[derive(Debug)]
pub(crate) struct ChannelStats {
    /// Items queued now.
    pub(crate) depth: AtomicU64,
    /// The channel's capacity; 0 for stages without one.
    pub(crate) capacity: AtomicU64,
    /// Nanoseconds the receiving task waited for input.
    pub(crate) idle_ns: AtomicU64,
    /// Nanoseconds senders waited for room: the upstream task was
    /// backpressured by this stage.
    pub(crate) blocked_ns: AtomicU64,
}

impl Default for ChannelStats {
    fn default() -> ChannelStats {
        ChannelStats {
            depth: AtomicU64::new(0),
            capacity: AtomicU64::new(0),
            idle_ns: AtomicU64::new(0),
            blocked_ns: AtomicU64::new(0),
        }
    }
}

impl ChannelStats {
    pub(crate) fn add_idle(&self, d: std::time::Duration) {
        add(&self.idle_ns, u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub(crate) fn add_blocked(&self, d: std::time::Duration) {
        add(&self.blocked_ns, u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// Adds `n` to `a`, skipping the write when `n` is 0.
pub(crate) fn add(a: &AtomicU64, n: u64) {
    if n != 0 {
        a.fetch_add(n, Ordering::Relaxed);
    }
}
