//! Counters per stage, published per chunk, and the [`Report`] built from
//! them.
//!
//! Stages count into plain local fields on the hot path and publish the
//! totals to shared atomics once per chunk (and when their task ends, even
//! by abort), so a snapshot taken at any time is at most one chunk behind.

mod report;

pub use report::{Outcome, Report, StageReport};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::runtime::Shared;

/// Shared, published counters of one stage.
#[derive(Debug, Default)]
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
        if let Some(out) = &mut self.out {
            *out += 1;
        }
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
        self.publish();
    }
}
