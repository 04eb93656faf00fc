//! A task's local counts of one stage, published into the run's
//! per-stage metrics (`metrics::StageMetrics`) once per chunk and
//! when the task ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Shared;
use crate::metrics::add;

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
