//! End-to-end latency, sampled: when one item in [`EVERY`] left its source
//! and when it was delivered.
//!
//! Sources stamp the sequence numbers divisible by `EVERY` as they pull
//! them; sinks look them up as they deliver. Tokens carry no timestamp, so
//! the per-item cost is one test of the sequence number at each end.
//! Items that never reach a sink (dropped, failed) leave their stamp
//! behind until it ages out of a bounded buffer. `flat_map` children and
//! broadcast copies share their parent's number: the first one delivered
//! is the one measured.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::time::Instant;

use crate::metrics::{Latency, Recorder};

/// One item in this many is timed end to end.
const EVERY: u64 = 64;
/// Stamps kept at most (the oldest go first).
const KEEP: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct E2eSampler {
    recent: Mutex<VecDeque<(u64, Instant)>>,
    e2e: Recorder,
    /// Set when nothing will look the stamps up (the pipeline ends in a
    /// fold or a collect, which report no end-to-end latency).
    off: AtomicBool,
}

impl E2eSampler {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Instant)>> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// No item will be looked up: sources stop stamping (a clock read,
    /// a lock and 16 stamps per chunk of 1024 items that nothing reads).
    pub(crate) fn switch_off(&self) {
        self.off.store(true, Ordering::Relaxed);
    }

    /// Stamps the sampled numbers among `start..end`, just pulled.
    pub(crate) fn pulled(&self, start: u64, end: u64) {
        let first = start.div_ceil(EVERY) * EVERY;
        if first >= end || self.off.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let mut recent = self.lock();
        for seq in (first..end).step_by(EVERY as usize) {
            if recent.len() == KEEP {
                recent.pop_front();
            }
            recent.push_back((seq, now));
        }
    }

    /// Item `seq` was delivered.
    #[inline(always)]
    pub(crate) fn delivered(&self, seq: u64) {
        if seq % EVERY == 0 {
            self.delivered_sampled(seq);
        }
    }

    #[cold]
    #[inline(never)]
    fn delivered_sampled(&self, seq: u64) {
        let born = {
            let mut recent = self.lock();
            // Sources stamp in increasing order: the buffer is sorted.
            let at = recent.binary_search_by_key(&seq, |(s, _)| *s).ok();
            at.and_then(|i| recent.remove(i)).map(|(_, t)| t)
        };
        if let Some(born) = born {
            self.e2e.record(born.elapsed());
        }
    }

    pub(crate) fn summary(&self) -> Option<Latency> {
        self.e2e.summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn sampled_items_are_timed_once_and_the_buffer_is_bounded() {
        let b = E2eSampler::default();
        b.pulled(0, 200); // stamps 0, 64, 128, 192
        tokio::time::sleep(Duration::from_millis(5)).await;
        for seq in 0..200 {
            b.delivered(seq);
        }
        b.delivered(64); // a second copy is not timed again
        let s = b.summary().unwrap();
        assert_eq!(s.count, 4);
        assert!(s.p50 >= Duration::from_millis(5));
        b.pulled(1000, 1000 + EVERY * (KEEP as u64 + 10));
        assert_eq!(b.lock().len(), KEEP);
    }

    #[test]
    fn switched_off_births_stamp_nothing() {
        let b = E2eSampler::default();
        b.switch_off();
        b.pulled(0, 10_000);
        assert!(b.lock().is_empty());
        b.delivered(0);
        assert!(b.summary().is_none());
    }
}
