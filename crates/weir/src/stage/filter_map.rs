use std::fmt;

use super::{forward_flush, guard, Plan, Push, TaskCx, Wiring};
use crate::ack::{Status, Token};
use crate::runtime::Counters;

/// The plan node of [`Pipeline::filter_map`](crate::Pipeline::filter_map).
///
/// # Examples
///
/// ```
/// use weir::{stage::{FilterMap, IterSource}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u8, FilterMap<IterSource<_>, _>> = Pipeline::from_iter(["1", "a", "2"]).filter_map(|s| s.parse().ok());
/// assert_eq!(p.collect().await.unwrap(), [1, 2]);
/// # });
/// ```
#[must_use]
pub struct FilterMap<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, F> fmt::Debug for FilterMap<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterMap")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, F, U> Plan for FilterMap<P, F>
where
    P: Plan,
    F: FnMut(P::Out) -> Option<U> + Send + 'static,
    U: Send + 'static,
{
    type Out = U;
    type Intake = P::Intake;

    fn attach<D: Push<U>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let c = w.counters(self.idx);
        self.prev.attach(FilterMapStep { f: self.f, down, c }, w);
    }
}

struct FilterMapStep<F, D> {
    f: F,
    down: D,
    c: Counters,
}

impl<T, U, F, D> Push<T> for FilterMapStep<F, D>
where
    F: FnMut(T) -> Option<U> + Send + 'static,
    D: Push<U>,
{
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        match guard(|| (self.f)(item)) {
            Ok(Some(out)) => self.down.push(out, token, cx),
            Ok(None) => {
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
