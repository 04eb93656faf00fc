//! `throttle_first(interval)`: an item passes, then the items that arrive
//! within `interval` after it are dropped. Named for what it does with the
//! rest (as Rx's `throttleFirst`): tokio-stream's `throttle` delays items
//! and Akka's shapes the rate, both keeping every item; this one does not.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::{forward_flush, Plan, Push, TaskCx, Wiring};
use crate::ack::{Status, Token};
use crate::runtime::Counters;
use crate::Pipeline;

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Lets at most one item through per `interval`: an item passes, and
    /// the items that reach the stage within `interval` after it are
    /// finalized as [`Dropped`](crate::Status::Dropped) and counted
    /// (as Rx's `throttleFirst`). Fused with neighbouring sync stages; it
    /// reads tokio's clock once per item and never waits.
    ///
    /// Unlike [`rate_limit`](Pipeline::rate_limit), which delays items and
    /// keeps every one of them, `throttle_first` sheds load: use it for samples,
    /// UI refreshes or alerts, where the latest news matters more than all
    /// of it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// // One tick every 30 ms; at most one item per 100 ms gets through.
    /// let ticks = futures::stream::unfold(0u32, |i| async move {
    ///     tokio::time::sleep(Duration::from_millis(30)).await;
    ///     (i < 10).then_some((i, i + 1))
    /// });
    /// let r = weir::Pipeline::from_stream(ticks).throttle_first(Duration::from_millis(100)).run().await.unwrap();
    /// // Ticks at 30, 60, …, 300 ms: those at 30, 150 and 270 ms pass.
    /// assert_eq!((r.delivered, r.dropped), (3, 7));
    /// # });
    /// ```
    pub fn throttle_first(self, interval: Duration) -> Pipeline<T, ThrottleFirst<P>> {
        self.stage("throttle_first", |prev, idx| ThrottleFirst {
            prev,
            interval,
            idx,
        })
    }
}

/// The plan node of [`Pipeline::throttle_first`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir::{stage::{IterSource, ThrottleFirst}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let p: Pipeline<u32, ThrottleFirst<IterSource<_>>> = Pipeline::from_iter(0..5u32).throttle_first(Duration::from_secs(1));
/// let r = p.run().await.unwrap();
/// assert_eq!((r.delivered, r.dropped), (1, 4)); // all five came within a second
/// # });
/// ```
#[must_use]
pub struct ThrottleFirst<P> {
    prev: P,
    interval: Duration,
    idx: usize,
}

impl<P: fmt::Debug> fmt::Debug for ThrottleFirst<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottleFirst")
            .field("prev", &self.prev)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl<P: Plan> Plan for ThrottleFirst<P> {
    type Out = P::Out;
    type Intake = P::Intake;

    fn attach<D: Push<P::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let c = w.counters(self.idx);
        let step = ThrottleStep {
            interval: self.interval,
            gate: Gate::Open,
            down,
            c,
        };
        self.prev.attach(step, w);
    }
}

/// Whether the next item may pass.
enum Gate {
    Open,
    Until(Instant),
    /// The interval reaches past the clock's range: nothing more passes.
    Shut,
}

struct ThrottleStep<D> {
    interval: Duration,
    gate: Gate,
    down: D,
    c: Counters,
}

impl<T, D: Push<T>> Push<T> for ThrottleStep<D> {
    #[inline]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        let now = Instant::now();
        let open = match self.gate {
            Gate::Open => true,
            Gate::Until(t) => now >= t,
            Gate::Shut => false,
        };
        if open {
            self.gate = now.checked_add(self.interval).map_or(Gate::Shut, Gate::Until);
            self.down.push(item, token, cx);
        } else {
            self.c.dropped += 1;
            token.finish(Status::Dropped);
        }
    }

    forward_flush!();
}
