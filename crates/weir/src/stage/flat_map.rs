use std::fmt;

use super::{forward_flush, guard, Plan, Push, TaskCx, Wiring};
use crate::ack::{Status, Token};
use crate::runtime::Counters;

/// The plan node of [`Pipeline::flat_map`](crate::Pipeline::flat_map).
///
/// # Examples
///
/// ```
/// use weir::{stage::{FlatMap, IterSource}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<char, FlatMap<IterSource<_>, _>> = Pipeline::from_iter(["ab", "c"]).flat_map(|s| s.chars().collect::<Vec<_>>());
/// assert_eq!(p.collect().await.unwrap(), ['a', 'b', 'c']);
/// # });
/// ```
#[must_use]
pub struct FlatMap<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, F> fmt::Debug for FlatMap<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlatMap")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, F, I> Plan for FlatMap<P, F>
where
    P: Plan,
    F: FnMut(P::Out) -> I + Send + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
{
    type Out = I::Item;
    type Intake = P::Intake;

    fn attach<D: Push<I::Item>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let c = w.counters(self.idx);
        self.prev.attach(FlatMapStep { f: self.f, down, c }, w);
    }
}

struct FlatMapStep<F, D> {
    f: F,
    down: D,
    c: Counters,
}

impl<T, I, F, D> Push<T> for FlatMapStep<F, D>
where
    F: FnMut(T) -> I + Send + 'static,
    I: IntoIterator,
    D: Push<I::Item>,
{
    #[inline]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        let mut children = match guard(|| (self.f)(item).into_iter()) {
            Ok(children) => children,
            Err(e) => {
                self.c.failed += 1;
                return cx.fail(self.c.stage(), token, e);
            }
        };
        // Every child but the last gets a split of the parent's token; the
        // last takes the token itself, so the parent is finalized when its
        // last child is.
        let mut held = match guard(|| children.next()) {
            Ok(Some(first)) => first,
            Ok(None) => {
                self.c.dropped += 1;
                return token.finish(Status::Dropped);
            }
            Err(e) => {
                self.c.failed += 1;
                return cx.fail(self.c.stage(), token, e);
            }
        };
        loop {
            match guard(|| children.next()) {
                Ok(Some(next)) => {
                    self.c.expanded += 1;
                    self.down.push(held, token.split(), cx);
                    held = next;
                }
                Ok(None) => return self.down.push(held, token, cx),
                Err(e) => {
                    // The children pushed so far go on; the one in hand
                    // fails with the rest of the parent.
                    self.c.failed += 1;
                    drop(held);
                    return cx.fail(self.c.stage(), token, e);
                }
            }
        }
    }

    forward_flush!();
}
