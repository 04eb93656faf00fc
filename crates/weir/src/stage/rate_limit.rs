//! `rate_limit(per_second, burst)`: paces items with a GCRA limiter
//! (`governor`), waiting for each item's turn.
//!
//! The limiter reads tokio's clock rather than the system's, so a paused
//! clock in tests paces items exactly and waits cost no real time.

use std::fmt;
use std::num::NonZeroU32;
use std::ops::Add;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::nanos::Nanos;
use governor::{Quota, RateLimiter};

use super::{Flow, Plan, Push, TaskCx, Wiring};
use crate::runtime::channel::Receiver;
use crate::runtime::Counters;
use crate::runtime::{flush_all, settle, ChannelOut};
use crate::Pipeline;

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Lets at most `per_second` items a second through, with bursts of up
    /// to `burst` items after a quiet spell (the generic cell rate
    /// algorithm). An item that comes too early waits for its turn, and
    /// the stage's input fills up and slows the upstream down
    /// (backpressure): nothing is dropped. Runs in a task of its own (it
    /// owns a timer).
    ///
    /// Use it to respect a downstream service's quota. To shed excess
    /// items instead of waiting, see [`throttle_first`](Pipeline::throttle_first).
    ///
    /// The runtime must have timers enabled (`enable_time`/`enable_all`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let started = Instant::now();
    /// let out = weir::Pipeline::from_iter(0..12)
    ///     .rate_limit(10, 2) // two at once, then one every 100 ms
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out.len(), 12);
    /// assert_eq!(started.elapsed(), Duration::from_secs(1)); // 10 waits of 100 ms
    /// # });
    /// ```
    ///
    /// # Panics
    ///
    /// If `per_second` or `burst` is 0.
    #[track_caller]
    pub fn rate_limit(self, per_second: u32, burst: u32) -> Pipeline<T, RateLimit<P>> {
        let (Some(per_second), Some(burst)) = (NonZeroU32::new(per_second), NonZeroU32::new(burst)) else {
            panic!("Pipeline::rate_limit: `per_second` and `burst` must be at least 1");
        };
        self.stage("rate_limit", |prev, idx| RateLimit {
            prev,
            per_second,
            burst,
            idx,
        })
    }
}

/// The plan node of [`Pipeline::rate_limit`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
/// use weir::{stage::{IterSource, RateLimit}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let started = Instant::now();
/// let p: Pipeline<u32, RateLimit<IterSource<_>>> = Pipeline::from_iter(0..3u32).rate_limit(2, 1);
/// assert_eq!(p.collect().await.unwrap(), [0, 1, 2]);
/// assert_eq!(started.elapsed(), Duration::from_secs(1)); // two waits of 500 ms
/// # });
/// ```
#[must_use]
pub struct RateLimit<P> {
    prev: P,
    per_second: NonZeroU32,
    burst: NonZeroU32,
    idx: usize,
}

impl<P: fmt::Debug> fmt::Debug for RateLimit<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("prev", &self.prev)
            .field("per_second", &self.per_second)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl<P: Plan> Plan for RateLimit<P> {
    type Out = P::Out;
    type Intake = P::Intake;

    fn attach<D: Push<P::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let (tx, rx) = w.input_channel(self.idx);
        let quota = Quota::per_second(self.per_second).allow_burst(self.burst);
        w.spawn_stage(
            self.idx,
            run_rate_limit(rx, quota, down, w.counters(self.idx), w.cx()),
        );
        let out = ChannelOut::new(tx, w.chunk_size());
        self.prev.attach(out, w);
    }
}

/// tokio's clock, for governor.
#[derive(Debug, Clone, Copy)]
struct TokioClock;

/// An instant on tokio's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TokioInstant(tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = TokioInstant;

    fn add(self, d: Nanos) -> TokioInstant {
        TokioInstant(self.0 + Duration::from(d))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: TokioInstant) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, d: Nanos) -> TokioInstant {
        self.0.checked_sub(d.into()).map_or(*self, TokioInstant)
    }
}

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

async fn run_rate_limit<T, D>(mut rx: Receiver<T>, quota: Quota, mut down: D, mut c: Counters, mut cx: TaskCx)
where
    T: Send + 'static,
    D: Push<T>,
{
    // Made when the run starts, not when the plan was built: a limiter's
    // burst is full at its creation.
    let limiter = RateLimiter::direct_with_clock(quota, TokioClock);
    'run: while let Some(mut chunk) = rx.recv().await {
        for (item, token) in chunk.drain(..) {
            while let Err(not_until) = limiter.check() {
                // Ship what already passed before waiting, so that it is
                // not held back until the chunk fills up.
                if flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
                    break 'run;
                }
                tokio::time::sleep_until(not_until.earliest_possible().0).await;
            }
            c.items_in += 1;
            down.push(item, token, &mut cx);
            if down.wants_flush() && flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
                break 'run;
            }
        }
        rx.recycle(chunk);
        if flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
            break;
        }
    }
    settle(&mut down, &mut c);
    down.finish(&mut cx).await;
}
