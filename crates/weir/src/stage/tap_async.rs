use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{guard, Plan, Push, Wiring};
use crate::error::{Error, ErrorKind};
use crate::pipeline::Pipeline;
use crate::runtime::{run_concurrent, ChannelOut, Work};

/// The plan node of [`Pipeline::tap_async`]: an async side effect in a
/// task of its own, with up to `concurrency` items in flight.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use weir::{stage::{IterSource, TapAsync}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let audited = Arc::new(AtomicU32::new(0));
/// let a = audited.clone();
/// let p: Pipeline<u32, TapAsync<IterSource<_>, _>> = Pipeline::from_iter([1u32, 2]).tap_async(move |_| {
///     let a = a.clone();
///     async move {
///         a.fetch_add(1, Ordering::Relaxed);
///     }
/// });
/// assert_eq!(p.collect().await.unwrap(), [1, 2]);
/// assert_eq!(audited.load(Ordering::Relaxed), 2);
/// # });
/// ```
#[must_use]
pub struct TapAsync<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, F> fmt::Debug for TapAsync<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapAsync")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, F, Fut> Plan for TapAsync<P, F>
where
    P: Plan,
    F: FnMut(&P::Out) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    type Out = P::Out;
    type Intake = P::Intake;

    fn attach<D: Push<P::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let (tx, rx) = w.input_channel(self.idx);
        let spec = w.spec(self.idx);
        let (n, ordered) = (spec.concurrency, spec.ordered);
        let task = run_concurrent(
            rx,
            TapWork(self.f),
            down,
            w.counters(self.idx),
            w.cx(),
            n,
            ordered,
        );
        w.spawn_stage(self.idx, task);
        let out = ChannelOut::new(tx, w.chunk_size());
        self.prev.attach(out, w);
    }
}

struct TapWork<F>(F);

impl<T, F, Fut> Work<T> for TapWork<F>
where
    F: FnMut(&T) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
    T: Send + 'static,
{
    type Out = T;
    type Fut = TapFuture<Fut, T>;
    const SEQ: bool = false;

    #[inline]
    fn start(&mut self, item: T, _seq: u64) -> TapFuture<Fut, T> {
        match guard(|| (self.0)(&item)) {
            Ok(fut) => TapFuture {
                inner: Some(fut),
                item: Some(item),
                early: None,
            },
            Err(e) => TapFuture {
                inner: None,
                item: None,
                early: Some(e),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The side effect's future, with panics caught at each poll; resolves
    /// to the item it was started with.
    pub(crate) struct TapFuture<F, T> {
        #[pin]
        inner: Option<F>,
        item: Option<T>,
        early: Option<Error>,
    }
}

impl<F, T> Future for TapFuture<F, T>
where
    F: Future<Output = ()>,
{
    type Output = Result<T, Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let done = || Error::new(ErrorKind::Internal, "polled after completion");
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(this.early.take().unwrap_or_else(done)));
        };
        match guard(|| inner.poll(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => {
                this.inner.set(None);
                Poll::Ready(this.item.take().ok_or_else(done))
            }
            Err(panic) => {
                this.inner.set(None);
                *this.item = None;
                Poll::Ready(Err(panic))
            }
        }
    }
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// An async side effect on each item (saving it, notifying someone),
    /// which then passes on unchanged. Runs in a task of its own, as
    /// [`then`](Self::then) does: set how many items are in flight with
    /// [`concurrency`](Pipeline::concurrency) (default 1) and whether they
    /// leave in input order with [`ordered`](Pipeline::ordered) (default)
    /// or [`unordered`](Pipeline::unordered).
    ///
    /// `f` gets a reference to the item and returns a `'static` future:
    /// clone what the future needs out of the item. A panic in `f` or in
    /// its future fails that item, routed by the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    /// let out = weir::Pipeline::from_iter(["a", "b"])
    ///     .tap_async(move |s| {
    ///         let (tx, s) = (tx.clone(), s.to_string());
    ///         async move { tx.send(s).unwrap() }
    ///     })
    ///     .concurrency(2)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, ["a", "b"]);
    /// assert_eq!(rx.recv().await.as_deref(), Some("a"));
    /// assert_eq!(rx.recv().await.as_deref(), Some("b"));
    /// # });
    /// ```
    pub fn tap_async<Fut, F>(self, f: F) -> Pipeline<T, TapAsync<P, F>>
    where
        F: FnMut(&T) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.stage("tap_async", |prev, idx| TapAsync { prev, f, idx })
    }
}
