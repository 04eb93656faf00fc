use std::fmt;

use super::{forward_flush, guard, Plan, Push, TaskCx, Wiring};
use crate::ack::Token;
use crate::runtime::Counters;

/// The plan node of [`Pipeline::inspect`](crate::Pipeline::inspect).
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use weir::{stage::{Inspect, IterSource}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let s = seen.clone();
/// let p: Pipeline<u32, Inspect<IterSource<_>, _>> = Pipeline::from_iter([5u32, 6]).inspect(move |x| s.lock().unwrap().push(*x));
/// assert_eq!(p.collect().await.unwrap(), [5, 6]);
/// assert_eq!(*seen.lock().unwrap(), [5, 6]);
/// # });
/// ```
#[must_use]
pub struct Inspect<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, F> fmt::Debug for Inspect<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inspect")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, F> Plan for Inspect<P, F>
where
    P: Plan,
    F: FnMut(&P::Out) + Send + 'static,
{
    type Out = P::Out;
    type Intake = P::Intake;

    fn attach<D: Push<P::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let c = w.counters(self.idx);
        self.prev.attach(InspectStep { f: self.f, down, c }, w);
    }
}

struct InspectStep<F, D> {
    f: F,
    down: D,
    c: Counters,
}

impl<T, F, D> Push<T> for InspectStep<F, D>
where
    F: FnMut(&T) + Send + 'static,
    D: Push<T>,
{
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        match guard(|| (self.f)(&item)) {
            Ok(()) => self.down.push(item, token, cx),
            Err(e) => {
                self.c.failed += 1;
                cx.fail(self.c.stage(), token, e);
            }
        }
    }

    forward_flush!(at_most_one);
}
