//! Latency histograms (HDR) and their summaries.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Percentiles of a latency distribution, from an HDR histogram (2
/// significant digits: each value within 1% of the true one).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let report = weir::Pipeline::from_iter(1..=100u64)
///     .then(|ms| async move {
///         tokio::time::sleep(Duration::from_millis(ms)).await;
///         ms
///     })
///     .run()
///     .await
///     .unwrap();
/// let l = report.stages[1].latency.unwrap();
/// assert_eq!(l.count, 100);
/// assert!(l.p50 >= Duration::from_millis(49) && l.p50 <= Duration::from_millis(51));
/// assert!(l.max >= Duration::from_millis(99));
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    #[serde(with = "super::report::secs")]
    pub p50: Duration,
    /// 95th percentile.
    #[serde(with = "super::report::secs")]
    pub p95: Duration,
    /// 99th percentile.
    #[serde(with = "super::report::secs")]
    pub p99: Duration,
    /// The largest sample.
    #[serde(with = "super::report::secs")]
    pub max: Duration,
}

/// A shared latency histogram in nanoseconds, recorded from any task.
#[derive(Debug)]
pub(crate) struct Recorder(Mutex<Histogram<u64>>);

/// The longest latency kept apart: an hour. Longer samples count as an hour.
const HIGHEST_NS: u64 = 3_600_000_000_000;

impl Default for Recorder {
    fn default() -> Recorder {
        // Fixed bounds, 2 significant digits (1% relative error): about 37
        // KB per stage. Auto-resizing cost a copy of the counts whenever a
        // new maximum appeared, which made a contended stage crawl
        // (measured: 13× slower on the 10M-item backpressure test).
        let h = Histogram::new_with_bounds(1, HIGHEST_NS, 2).expect("valid bounds");
        Recorder(Mutex::new(h))
    }
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Histogram<u64>> {
        // Recording cannot panic half-way (auto-resize, saturating).
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.lock().saturating_record(ns.min(HIGHEST_NS));
    }

    /// The summary, or `None` before the first sample.
    pub(crate) fn summary(&self) -> Option<Latency> {
        let h = self.lock();
        if h.is_empty() {
            return None;
        }
        let at = |q: f64| Duration::from_nanos(h.value_at_quantile(q));
        Some(Latency {
            count: h.len(),
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: Duration::from_nanos(h.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let r = Recorder::default();
        assert!(r.summary().is_none());
        for ms in 1..=1000u64 {
            r.record(Duration::from_millis(ms));
        }
        let s = r.summary().unwrap();
        assert_eq!(s.count, 1000);
        let close = |d: Duration, ms: u64| (d.as_secs_f64() * 1000.0 - ms as f64).abs() <= ms as f64 * 0.01;
        assert!(close(s.p50, 500), "{s:?}");
        assert!(close(s.p95, 950), "{s:?}");
        assert!(close(s.p99, 990), "{s:?}");
        assert!(close(s.max, 1000), "{s:?}");
    }
}
