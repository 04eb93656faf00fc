use std::fmt;

use super::{guard, Flow, Plan, Push, TaskCx, Wiring};
use crate::ack::{Status, Token};
use crate::error::{BoxError, Error, ErrorKind};
use crate::runtime::Counters;

/// The plan node of [`Pipeline::for_each`](crate::Pipeline::for_each) and
/// [`Pipeline::try_for_each`](crate::Pipeline::try_for_each): a synchronous
/// sink, fused with the stages before it.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use weir::{stage::{ForEach, IterSource}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let total = Arc::new(AtomicU32::new(0));
/// let t = total.clone();
/// let p: Pipeline<(), ForEach<IterSource<_>, _>> = Pipeline::from_iter(1..=4u32).for_each(move |x| {
///     t.fetch_add(x, Ordering::Relaxed);
/// });
/// assert_eq!(p.run().await.unwrap().delivered, 4);
/// assert_eq!(total.load(Ordering::Relaxed), 10);
/// # });
/// ```
#[must_use]
pub struct ForEach<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, F> fmt::Debug for ForEach<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForEach")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, F, E> Plan for ForEach<P, F>
where
    P: Plan,
    F: FnMut(P::Out) -> Result<(), E> + Send + 'static,
    E: Into<BoxError>,
{
    type Out = ();
    type Intake = P::Intake;

    fn attach<D: Push<()>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let c = w.counters(self.idx);
        self.prev.attach(ForEachStep { f: self.f, down, c }, w);
    }
}

struct ForEachStep<F, D> {
    f: F,
    down: D,
    c: Counters,
}

impl<T, E, F, D> Push<T> for ForEachStep<F, D>
where
    F: FnMut(T) -> Result<(), E> + Send + 'static,
    E: Into<BoxError>,
    D: Push<()>,
{
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        let error = match guard(|| (self.f)(item)) {
            Ok(Ok(())) => {
                cx.shared.e2e.delivered(token.seq());
                return token.finish(Status::Delivered);
            }
            Ok(Err(e)) => Error::caused_by(ErrorKind::Sink, e.into()),
            Err(e) => e,
        };
        self.c.failed += 1;
        cx.fail(self.c.stage(), token, error);
    }

    fn settle(&mut self, pushed: u64) {
        self.c.items_in += pushed;
        self.c.publish();
        self.down.settle(0);
    }

    fn wants_flush(&self) -> bool {
        false
    }

    fn has_pending(&self) -> bool {
        false
    }

    async fn flush(&mut self, cx: &mut TaskCx) -> Flow {
        self.down.flush(cx).await
    }

    async fn finish(self, cx: &mut TaskCx) {
        self.down.finish(cx).await
    }
}
