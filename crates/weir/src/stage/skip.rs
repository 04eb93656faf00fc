use std::fmt;

use super::{forward_flush, Plan, Push, TaskCx, Wiring};
use crate::ack::{Status, Token};
use crate::pipeline::Pipeline;
use crate::runtime::Counters;

/// The plan node of [`Pipeline::skip`].
///
/// # Examples
///
/// ```
/// use weir::{stage::{IterSource, Skip}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<&str, Skip<IterSource<_>>> = Pipeline::from_iter(["header", "row 1", "row 2"]).skip(1);
/// assert_eq!(p.collect().await.unwrap(), ["row 1", "row 2"]);
/// # });
/// ```
#[must_use]
pub struct Skip<P> {
    pub(crate) prev: P,
    pub(crate) n: usize,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug> fmt::Debug for Skip<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Skip")
            .field("prev", &self.prev)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl<P: Plan> Plan for Skip<P> {
    type Out = P::Out;
    type Intake = P::Intake;

    fn attach<D: Push<P::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let c = w.counters(self.idx);
        self.prev.attach(
            SkipStep {
                left: self.n,
                down,
                c,
            },
            w,
        );
    }
}

struct SkipStep<D> {
    left: usize,
    down: D,
    c: Counters,
}

impl<T, D: Push<T>> Push<T> for SkipStep<D> {
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        if self.left == 0 {
            return self.down.push(item, token, cx);
        }
        self.left -= 1;
        self.c.dropped += 1;
        token.finish(Status::Dropped);
    }

    forward_flush!();
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Drops the first `n` items and passes on the rest. Skipped items are
    /// finalized as [`Dropped`](crate::Status::Dropped) and counted as
    /// dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter(0..5).skip(3).run().await.unwrap();
    /// assert_eq!((r.delivered, r.dropped), (2, 3));
    /// let out = weir::Pipeline::from_iter(0..5).skip(3).collect().await.unwrap();
    /// assert_eq!(out, [3, 4]);
    /// # });
    /// ```
    pub fn skip(self, n: usize) -> Pipeline<T, Skip<P>> {
        self.stage("skip", |prev, idx| Skip { prev, n, idx })
    }
}
