use std::fmt;

use super::{forward_flush, Plan, Push, TaskCx, Wiring};
use crate::ack::{Status, Token};
use crate::pipeline::Pipeline;
use crate::runtime::Counters;

/// The plan node of [`Pipeline::take`].
///
/// # Examples
///
/// ```
/// use weir::{stage::{IterSource, Take}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u64, Take<IterSource<_>>> = Pipeline::from_iter(0u64..).take(3);
/// assert_eq!(p.collect().await.unwrap(), [0, 1, 2]);
/// # });
/// ```
#[must_use]
pub struct Take<P> {
    pub(crate) prev: P,
    pub(crate) n: usize,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug> fmt::Debug for Take<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Take")
            .field("prev", &self.prev)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl<P: Plan> Plan for Take<P> {
    type Out = P::Out;
    type Intake = P::Intake;

    fn attach<D: Push<P::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        if self.n == 0 {
            // Satisfied before the first item: the source pulls nothing.
            w.shared.satisfied.raise();
        }
        let c = w.counters(self.idx);
        self.prev.attach(
            TakeStep {
                left: self.n,
                down,
                c,
            },
            w,
        );
    }
}

struct TakeStep<D> {
    left: usize,
    down: D,
    c: Counters,
}

impl<T, D: Push<T>> Push<T> for TakeStep<D> {
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        if self.left == 0 {
            self.c.dropped += 1;
            return token.finish(Status::Dropped);
        }
        self.left -= 1;
        if self.left == 0 {
            cx.shared.satisfied.raise();
        }
        self.down.push(item, token, cx);
    }

    forward_flush!(done: |s| s.left == 0);
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Passes on the first `n` items, then stops the pipeline's source, so
    /// that a pipeline over an endless source ends. The run still ends
    /// [`Completed`](crate::Outcome::Completed).
    ///
    /// Sources stop between chunks: items pulled after the `n`th (at most
    /// a chunk per task boundary) still arrive here and are finalized as
    /// [`Dropped`](crate::Status::Dropped) and counted as dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter(0u64..).take(3).collect().await.unwrap();
    /// assert_eq!(out, [0, 1, 2]);
    /// # });
    /// ```
    pub fn take(self, n: usize) -> Pipeline<T, Take<P>> {
        self.stage("take", |prev, idx| Take { prev, n, idx })
    }
}
