//! Live rates from successive snapshots, and the ETA they give.
//!
//! Time is the pipeline's own clock: the `duration` of each
//! [`Report`](weir::Report) snapshot. The display needs no clock of its
//! own, and a test that hands it snapshots is deterministic.

use std::collections::VecDeque;
use std::time::Duration;

/// A counter's recent rate: the change over the samples of the last
/// `span` of time (since the first sample, early on).
#[derive(Debug, Clone)]
pub(crate) struct RateWindow {
    span: Duration,
    samples: VecDeque<(Duration, u64)>,
}

impl RateWindow {
    pub(crate) fn new(span: Duration) -> RateWindow {
        RateWindow {
            span,
            samples: VecDeque::new(),
        }
    }

    /// Records the counter's value at time `at`. A sample from before the
    /// last one (a new run?) starts the window again.
    pub(crate) fn record(&mut self, at: Duration, value: u64) {
        if let Some(&(last_at, last)) = self.samples.back() {
            if at < last_at || value < last {
                self.samples.clear();
            }
        }
        self.samples.push_back((at, value));
        // Keep one sample at or before the window's start, so the window
        // spans `span` (not a little less) once the run is long enough.
        while self.samples.len() > 2 && at.saturating_sub(self.samples[1].0) >= self.span {
            self.samples.pop_front();
        }
    }

    /// Units per second over the window: `None` before two samples apart
    /// in time.
    pub(crate) fn per_sec(&self) -> Option<f64> {
        let (&(t0, v0), &(t1, v1)) = (self.samples.front()?, self.samples.back()?);
        let dt = t1.checked_sub(t0)?.as_secs_f64();
        (dt > 0.0).then(|| (v1 - v0) as f64 / dt)
    }

    /// The rate over the window, or the average since time zero when the
    /// window has a single sample.
    pub(crate) fn per_sec_or_average(&self) -> f64 {
        self.per_sec().unwrap_or_else(|| match self.samples.back() {
            Some(&(at, value)) if !at.is_zero() => value as f64 / at.as_secs_f64(),
            _ => 0.0,
        })
    }
}

/// The time left to do what remains of `total` at `per_sec` units per
/// second: `None` while nothing moves (rate 0) or without a total.
pub(crate) fn eta(done: u64, total: Option<u64>, per_sec: f64) -> Option<Duration> {
    let total = total?;
    if !per_sec.is_finite() || per_sec <= 0.0 {
        return None;
    }
    let left = total.saturating_sub(done) as f64 / per_sec;
    Duration::try_from_secs_f64(left).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn eta_is_what_is_left_over_the_rate() {
        assert_eq!(eta(250, Some(1000), 50.0), Some(secs(15)));
        assert_eq!(eta(1000, Some(1000), 50.0), Some(Duration::ZERO));
        assert_eq!(eta(1200, Some(1000), 50.0), Some(Duration::ZERO)); // more than announced
        assert_eq!(eta(250, None, 50.0), None);
        assert_eq!(eta(250, Some(1000), 0.0), None); // stalled: unknown, not infinite
        assert_eq!(eta(250, Some(1000), f64::NAN), None);
    }

    #[test]
    fn rate_follows_recent_samples_not_the_average_since_start() {
        let mut w = RateWindow::new(secs(2));
        // 1000/s for ten seconds, then 100/s.
        for t in 0..=10 {
            w.record(secs(t), t * 1000);
        }
        for t in 11..=14 {
            w.record(secs(t), 10_000 + (t - 10) * 100);
        }
        assert_eq!(w.per_sec(), Some(100.0));
        assert!(w.per_sec_or_average() < 150.0);
    }

    #[test]
    fn a_single_sample_gives_the_average_since_start() {
        let mut w = RateWindow::new(secs(2));
        assert_eq!(w.per_sec(), None);
        assert_eq!(w.per_sec_or_average(), 0.0);
        w.record(secs(4), 400);
        assert_eq!(w.per_sec(), None);
        assert_eq!(w.per_sec_or_average(), 100.0);
    }

    #[test]
    fn a_counter_going_back_restarts_the_window() {
        let mut w = RateWindow::new(secs(2));
        w.record(secs(1), 500);
        w.record(secs(2), 1000);
        w.record(secs(3), 10);
        assert_eq!(w.per_sec(), None);
        w.record(secs(4), 30);
        assert_eq!(w.per_sec(), Some(20.0));
    }
}
