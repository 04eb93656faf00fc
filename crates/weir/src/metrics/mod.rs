//! Counters per stage, published per chunk, and the [`Report`] built from
//! them.
//!
//! Stages count into plain local fields on the hot path and publish the
//! totals to shared atomics once per chunk (and when their task ends, even
//! by abort), so a snapshot taken at any time is at most one chunk behind.
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

use crate::runtime::Shared;

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

/// A stage's local counters. Publishes on [`publish`](Self::publish) and on
/// drop, so counts survive an aborted task.
///
/// `out` is derived (`in - dropped - failed + expanded`) unless the stage
/// counts it explicitly (sinks count what a flush confirmed).
#[derive(Debug)]
pub(crate) struct Counters {
    shared: Arc<Shared>,
    stage: usize,
    pub(crate) items_in: u64,
    pub(crate) dropped: u64,
    pub(crate) failed: u64,
    pub(crate) expanded: u64,
    pub(crate) merged: u64,
    /// Explicit output count; `None` derives it.
    pub(crate) out: Option<u64>,
}

impl Counters {
    pub(crate) fn new(shared: Arc<Shared>, stage: usize) -> Counters {
        Counters {
            shared,
            stage,
            items_in: 0,
            dropped: 0,
            failed: 0,
            expanded: 0,
            merged: 0,
            out: None,
        }
    }

    /// Counters whose output is counted explicitly (sinks, collectors).
    pub(crate) fn explicit(shared: Arc<Shared>, stage: usize) -> Counters {
        Counters::new(shared, stage).into_explicit()
    }

    /// These counters, counting output explicitly from now on.
    pub(crate) fn into_explicit(mut self) -> Counters {
        self.out.get_or_insert(0);
        self
    }

    /// Counts one output item (explicit counters only).
    #[inline]
    pub(crate) fn count_out(&mut self) {
        self.add_out(1);
    }

    /// Counts `n` output items (explicit counters only).
    #[inline]
    pub(crate) fn add_out(&mut self, n: u64) {
        if let Some(out) = &mut self.out {
            *out += n;
        }
    }

    /// Records how long one item took in the stage.
    pub(crate) fn record_latency(&self, d: std::time::Duration) {
        self.shared.stages[self.stage].metrics.latency.record(d);
    }

    /// Publishes how many items the stage is working on now.
    pub(crate) fn set_active(&self, n: u64) {
        self.shared.stages[self.stage]
            .metrics
            .active
            .store(n, Ordering::Relaxed);
    }

    pub(crate) fn stage(&self) -> usize {
        self.stage
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Publishes the counts since the last call and returns the output
    /// count among them.
    pub(crate) fn publish(&mut self) -> u64 {
        let out = match self.out.as_mut() {
            Some(out) => std::mem::take(out),
            None => (self.items_in + self.expanded).saturating_sub(self.dropped + self.failed),
        };
        if self.items_in == 0 && out == 0 && self.dropped == 0 && self.failed == 0 && self.merged == 0 {
            return 0;
        }
        let m = &self.shared.stages[self.stage].metrics;
        add(&m.items_in, std::mem::take(&mut self.items_in));
        add(&m.items_out, out);
        add(&m.dropped, std::mem::take(&mut self.dropped));
        add(&m.failed, std::mem::take(&mut self.failed));
        add(&m.expanded, std::mem::take(&mut self.expanded));
        add(&m.merged, std::mem::take(&mut self.merged));
        out
    }
}

fn add(a: &AtomicU64, n: u64) {
    if n != 0 {
        a.fetch_add(n, Ordering::Relaxed);
    }
}

impl Drop for Counters {
    fn drop(&mut self) {
        // Counters live as long as their task: this is when it ended.
        let now = u64::try_from(self.shared.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.shared.stages[self.stage]
            .metrics
            .ended_ns
            .fetch_max(now, Ordering::Relaxed);
        self.publish();
    }
}
