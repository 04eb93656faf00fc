use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::resilience::with_policies;
use super::{guard, with_recovery, Concurrent, Plan, Push, Wiring};
use crate::error::{BoxError, Error, ErrorKind};
use crate::runtime::{ChannelOut, Work};

/// The plan node of [`Pipeline::then`](crate::Pipeline::then) and
/// [`Pipeline::try_then`](crate::Pipeline::try_then): an async stage in a
/// task of its own, with up to `concurrency` items in flight.
///
/// # Examples
///
/// ```
/// use weir::{stage::{IterSource, Then}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u32, Then<IterSource<_>, _>> =
///     Pipeline::from_iter(["1", "22"]).try_then(|s| async move { s.parse::<u32>() }).concurrency(2);
/// assert_eq!(p.collect().await.unwrap(), [1, 22]);
/// # });
/// ```
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
        let (tx, rx) = w.input_channel(self.idx);
        let driver = Concurrent {
            rx,
            down,
            idx: self.idx,
        };
        with_policies!(w, self.idx, P::Out, ThenWork(self.f), |work| with_recovery(
            w, self.idx, work, driver
        ));
        let out = ChannelOut::new(tx, w.chunk_size());
        self.prev.attach(out, w);
    }
}

pub(crate) struct ThenWork<F>(pub(crate) F);

impl<T, F, Fut, U, E> Work<T> for ThenWork<F>
where
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    E: Into<BoxError>,
    T: Send + 'static,
    U: Send + 'static,
{
    type Out = U;
    type Fut = ThenFuture<Fut>;

    const SEQ: bool = false;

    #[inline(always)]
    fn start(&mut self, item: T, _seq: u64) -> ThenFuture<Fut> {
        match guard(|| (self.0)(item)) {
            Ok(fut) => ThenFuture::Running { fut },
            Err(error) => ThenFuture::Failed { error },
        }
    }
}

pin_project_lite::pin_project! {
    /// A `then` stage's future: the user's, with panics caught at each
    /// poll and errors wrapped. Written by hand rather than as an async
    /// block around `CatchUnwind`: it inlines, which is cheaper per item
    /// for futures that are ready at once. One enum rather than a future
    /// and an error side by side: replacing a finished one in a driver's
    /// slot then tests one tag, not two (callgrind on the `chain` bench's
    /// `weir-tasks`; docs/BENCHMARKS.md).
    #[project = ThenProj]
    #[project_replace = ThenTaken]
    pub(crate) enum ThenFuture<F> {
        /// The user's future, not finished yet.
        Running { #[pin] fut: F },
        /// The closure panicked before it made a future.
        Failed { error: Error },
        /// Finished.
        Done,
    }
}

impl<F, U, E> Future for ThenFuture<F>
where
    F: Future<Output = Result<U, E>>,
    E: Into<BoxError>,
{
    type Output = Result<U, Error>;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let polled = match self.as_mut().project() {
            ThenProj::Running { fut } => guard(|| fut.poll(cx)),
            ThenProj::Failed { .. } => match self.project_replace(ThenFuture::Done) {
                ThenTaken::Failed { error } => return Poll::Ready(Err(error)),
                _ => unreachable!("the future was failed"),
            },
            ThenProj::Done => {
                return Poll::Ready(Err(Error::new(ErrorKind::Internal, "polled after completion")))
            }
        };
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(r)) => r.map_err(|e| Error::caused_by(ErrorKind::Stage, e.into())),
            Err(panic) => Err(panic),
        };
        self.project_replace(ThenFuture::Done);
        Poll::Ready(result)
    }
}
