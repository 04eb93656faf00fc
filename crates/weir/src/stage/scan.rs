use std::fmt;

use super::{forward_flush, guard, Plan, Push, TaskCx, Wiring};
use crate::ack::{Status, Token};
use crate::pipeline::Pipeline;
use crate::runtime::Counters;

/// The plan node of [`Pipeline::scan`].
///
/// # Examples
///
/// ```
/// use weir::{stage::{IterSource, Scan}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u32, Scan<IterSource<_>, u32, _>> = Pipeline::from_iter([1u32, 2, 3]).scan(0, |sum, x| {
///     *sum += x;
///     Some(*sum)
/// });
/// assert_eq!(p.collect().await.unwrap(), [1, 3, 6]);
/// # });
/// ```
#[must_use]
pub struct Scan<P, S, F> {
    pub(crate) prev: P,
    pub(crate) state: S,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, S, F> fmt::Debug for Scan<P, S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scan")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, S, F, U> Plan for Scan<P, S, F>
where
    P: Plan,
    S: Send + 'static,
    F: FnMut(&mut S, P::Out) -> Option<U> + Send + 'static,
    U: Send + 'static,
{
    type Out = U;
    type Intake = P::Intake;

    fn attach<D: Push<U>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let c = w.counters(self.idx);
        let step = ScanStep {
            state: self.state,
            f: self.f,
            done: false,
            down,
            c,
        };
        self.prev.attach(step, w);
    }
}

struct ScanStep<S, F, D> {
    state: S,
    f: F,
    done: bool,
    down: D,
    c: Counters,
}

impl<T, S, F, U, D> Push<T> for ScanStep<S, F, D>
where
    S: Send + 'static,
    F: FnMut(&mut S, T) -> Option<U> + Send + 'static,
    D: Push<U>,
{
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        if self.done {
            self.c.dropped += 1;
            return token.finish(Status::Dropped);
        }
        match guard(|| (self.f)(&mut self.state, item)) {
            Ok(Some(out)) => self.down.push(out, token, cx),
            Ok(None) => {
                self.done = true;
                cx.shared.satisfied.raise();
                self.c.dropped += 1;
                token.finish(Status::Dropped);
            }
            Err(e) => {
                self.c.failed += 1;
                cx.fail(self.c.stage(), token, e);
            }
        }
    }

    forward_flush!();
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Threads a state through the items, as [`Iterator::scan`] does: `f`
    /// gets the state and each item and returns the output, or `None` to
    /// end the stream. On `None` the pipeline's source stops, as with
    /// [`take`](Self::take); that item and every later one are finalized as
    /// [`Dropped`](crate::Status::Dropped) and counted as dropped, and the
    /// run still ends [`Completed`](crate::Outcome::Completed).
    ///
    /// A panic in `f` fails that item (routed by the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy)); the state keeps whatever `f`
    /// did to it before panicking.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// // Running totals, until they pass 10.
    /// let out = weir::Pipeline::from_iter(1u64..)
    ///     .scan(0, |total, x| {
    ///         *total += x;
    ///         (*total <= 10).then_some(*total)
    ///     })
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [1, 3, 6, 10]);
    /// # });
    /// ```
    pub fn scan<S, U, F>(self, init_state: S, f: F) -> Pipeline<U, Scan<P, S, F>>
    where
        S: Send + 'static,
        F: FnMut(&mut S, T) -> Option<U> + Send + 'static,
        U: Send + 'static,
    {
        self.stage("scan", |prev, idx| Scan {
            prev,
            state: init_state,
            f,
            idx,
        })
    }
}
