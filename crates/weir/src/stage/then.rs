use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::{guard, Plan, Push, Wiring};
use crate::error::{BoxError, Error, ErrorKind};
use crate::runtime::{channel, run_concurrent, ChannelOut, Work};

/// The plan node of [`Pipeline::then`](crate::Pipeline::then) and
/// [`Pipeline::try_then`](crate::Pipeline::try_then): an async stage in a
/// task of its own, with up to `concurrency` items in flight.
#[must_use]
pub struct Then<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, F> fmt::Debug for Then<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Then")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, F, Fut, U, E> Plan for Then<P, F>
where
    P: Plan,
    F: FnMut(P::Out) -> Fut + Send + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    E: Into<BoxError>,
    U: Send + 'static,
{
    type Out = U;
    type Intake = P::Intake;

    fn attach<D: Push<U>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let (tx, rx) = channel::channel(w.capacity());
        let spec = w.spec(self.idx);
        let (n, ordered) = (spec.concurrency, spec.ordered);
        let task = run_concurrent(
            rx,
            ThenWork(self.f),
            down,
            w.counters(self.idx),
            w.cx(),
            n,
            ordered,
        );
        w.spawn(task);
        let out = ChannelOut::new(tx, w.chunk_size());
        self.prev.attach(out, w);
    }
}

struct ThenWork<F>(F);

impl<T, F, Fut, U, E> Work<T> for ThenWork<F>
where
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    E: Into<BoxError>,
    T: Send + 'static,
    U: Send + 'static,
{
    type Out = U;

    #[inline]
    fn start(&mut self, item: T) -> impl Future<Output = Result<U, Error>> + Send + 'static {
        let fut = guard(|| (self.0)(item));
        async move {
            match AssertUnwindSafe(fut?).catch_unwind().await {
                Ok(Ok(out)) => Ok(out),
                Ok(Err(e)) => Err(Error::caused_by(ErrorKind::Stage, e.into())),
                Err(p) => Err(Error::panicked(&*p)),
            }
        }
    }
}
