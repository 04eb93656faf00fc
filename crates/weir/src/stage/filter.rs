use std::fmt;

use super::{forward_flush, guard, Plan, Push, TaskCx, Wiring};
use crate::ack::{Status, Token};
use crate::runtime::Counters;

/// The plan node of [`Pipeline::filter`](crate::Pipeline::filter).
///
/// # Examples
///
/// ```
/// use weir::{stage::{Filter, IterSource}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u32, Filter<IterSource<_>, _>> = Pipeline::from_iter(0..5u32).filter(|x| x % 2 == 1);
/// assert_eq!(p.collect().await.unwrap(), [1, 3]);
/// # });
/// ```
#[must_use]
pub struct Filter<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, F> fmt::Debug for Filter<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, F> Plan for Filter<P, F>
where
    P: Plan,
    F: FnMut(&P::Out) -> bool + Send + 'static,
{
    type Out = P::Out;
    type Intake = P::Intake;

    fn attach<D: Push<P::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let c = w.counters(self.idx);
        self.prev.attach(FilterStep { f: self.f, down, c }, w);
    }
}

struct FilterStep<F, D> {
    f: F,
    down: D,
    c: Counters,
}

impl<T, F, D> Push<T> for FilterStep<F, D>
where
    F: FnMut(&T) -> bool + Send + 'static,
    D: Push<T>,
{
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        match guard(|| (self.f)(&item)) {
            Ok(true) => self.down.push(item, token, cx),
            Ok(false) => {
                self.c.dropped += 1;
                token.finish(Status::Dropped);
            }
            Err(e) => {
                self.c.failed += 1;
                cx.fail(self.c.stage(), token, e);
            }
        }
    }

    forward_flush!(at_most_one);
}
