use std::fmt;

use super::{forward_flush, guard, Plan, Push, TaskCx, Wiring};
use crate::ack::{Status, Token};
use crate::pipeline::Pipeline;
use crate::runtime::Counters;

/// The plan node of [`Pipeline::skip_while`].
///
/// # Examples
///
/// ```
/// use weir::{stage::{IterSource, SkipWhile}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<&str, SkipWhile<IterSource<_>, _>> =
///     Pipeline::from_iter(["# a", "# b", "data", "# c"]).skip_while(|l| l.starts_with('#'));
/// assert_eq!(p.collect().await.unwrap(), ["data", "# c"]);
/// # });
/// ```
#[must_use]
pub struct SkipWhile<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, F> fmt::Debug for SkipWhile<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkipWhile")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, F> Plan for SkipWhile<P, F>
where
    P: Plan,
    F: FnMut(&P::Out) -> bool + Send + 'static,
{
    type Out = P::Out;
    type Intake = P::Intake;

    fn attach<D: Push<P::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let c = w.counters(self.idx);
        let step = SkipWhileStep {
            f: self.f,
            skipping: true,
            down,
            c,
        };
        self.prev.attach(step, w);
    }
}

struct SkipWhileStep<F, D> {
    f: F,
    skipping: bool,
    down: D,
    c: Counters,
}

impl<T, F, D> Push<T> for SkipWhileStep<F, D>
where
    F: FnMut(&T) -> bool + Send + 'static,
    D: Push<T>,
{
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        if !self.skipping {
            return self.down.push(item, token, cx);
        }
        match guard(|| (self.f)(&item)) {
            Ok(true) => {
                self.c.dropped += 1;
                token.finish(Status::Dropped);
            }
            Ok(false) => {
                self.skipping = false;
                self.down.push(item, token, cx);
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
    /// Drops items while `f` is true, then passes on the first item for
    /// which it is false and every item after it (`f` is not called
    /// again). Skipped items are finalized as
    /// [`Dropped`](crate::Status::Dropped) and counted as dropped.
    ///
    /// A panic in `f` fails that item (routed by the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy)); skipping goes on.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([1, 2, 5, 1, 7]).skip_while(|x| *x < 3).collect().await.unwrap();
    /// assert_eq!(out, [5, 1, 7]);
    /// # });
    /// ```
    pub fn skip_while<F>(self, f: F) -> Pipeline<T, SkipWhile<P, F>>
    where
        F: FnMut(&T) -> bool + Send + 'static,
    {
        self.stage("skip_while", |prev, idx| SkipWhile { prev, f, idx })
    }
}
