use std::fmt;

use super::{forward_flush, guard, Plan, Push, TaskCx, Wiring};
use crate::ack::{Status, Token};
use crate::pipeline::Pipeline;
use crate::runtime::Counters;

/// The plan node of [`Pipeline::take_while`].
///
/// # Examples
///
/// ```
/// use weir::{stage::{IterSource, TakeWhile}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u64, TakeWhile<IterSource<_>, _>> = Pipeline::from_iter(1u64..).take_while(|x| x * x < 20);
/// assert_eq!(p.collect().await.unwrap(), [1, 2, 3, 4]);
/// # });
/// ```
#[must_use]
pub struct TakeWhile<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, F> fmt::Debug for TakeWhile<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TakeWhile")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, F> Plan for TakeWhile<P, F>
where
    P: Plan,
    F: FnMut(&P::Out) -> bool + Send + 'static,
{
    type Out = P::Out;
    type Intake = P::Intake;

    fn attach<D: Push<P::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let c = w.counters(self.idx);
        let step = TakeWhileStep {
            f: self.f,
            done: false,
            down,
            c,
        };
        self.prev.attach(step, w);
    }
}

struct TakeWhileStep<F, D> {
    f: F,
    done: bool,
    down: D,
    c: Counters,
}

impl<T, F, D> Push<T> for TakeWhileStep<F, D>
where
    F: FnMut(&T) -> bool + Send + 'static,
    D: Push<T>,
{
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        if self.done {
            self.c.dropped += 1;
            return token.finish(Status::Dropped);
        }
        match guard(|| (self.f)(&item)) {
            Ok(true) => self.down.push(item, token, cx),
            Ok(false) => {
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
    /// Passes items on while `f` is true; at the first item for which it
    /// is false, stops the pipeline's source, as [`take`](Self::take) does.
    /// That item and every later one are finalized as
    /// [`Dropped`](crate::Status::Dropped) and counted as dropped. The run
    /// still ends [`Completed`](crate::Outcome::Completed).
    ///
    /// A panic in `f` fails that item (routed by the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy)) and does not end the taking.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter(1u64..).take_while(|x| x * x < 20).collect().await.unwrap();
    /// assert_eq!(out, [1, 2, 3, 4]);
    /// # });
    /// ```
    pub fn take_while<F>(self, f: F) -> Pipeline<T, TakeWhile<P, F>>
    where
        F: FnMut(&T) -> bool + Send + 'static,
    {
        self.stage("take_while", |prev, idx| TakeWhile { prev, f, idx })
    }
}
