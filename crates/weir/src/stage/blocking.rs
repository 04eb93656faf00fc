use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::resilience::with_policies;
use super::{guard, with_recovery, Concurrent, Plan, Push, Wiring};
use crate::error::{BoxError, Error, ErrorKind};
use crate::runtime::{ChannelOut, Work};

/// The plan node of [`Pipeline::blocking`](crate::Pipeline::blocking) and
/// [`Pipeline::try_blocking`](crate::Pipeline::try_blocking): a synchronous
/// function run on tokio's blocking pool, up to `concurrency` at a time.
///
/// # Examples
///
/// ```
/// use weir::{stage::{Blocking, IterSource}, Pipeline};
/// # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u64, Blocking<IterSource<_>, _>> = Pipeline::from_iter(1..=3u64).blocking(|n| n.pow(3));
/// assert_eq!(p.collect().await.unwrap(), [1, 8, 27]);
/// # });
/// ```
#[must_use]
pub struct Blocking<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, F> fmt::Debug for Blocking<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocking")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, F, U, E> Plan for Blocking<P, F>
where
    P: Plan,
    F: Fn(P::Out) -> Result<U, E> + Send + Sync + 'static,
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
        with_policies!(w, self.idx, P::Out, BlockingWork(Arc::new(self.f)), |work| {
            with_recovery(w, self.idx, work, driver)
        });
        let out = ChannelOut::new(tx, w.chunk_size());
        self.prev.attach(out, w);
    }
}

struct BlockingWork<F>(Arc<F>);

impl<T, F, U, E> Work<T> for BlockingWork<F>
where
    F: Fn(T) -> Result<U, E> + Send + Sync + 'static,
    E: Into<BoxError>,
    T: Send + 'static,
    U: Send + 'static,
{
    type Out = U;
    type Fut = BlockingFuture<U>;
    const SEQ: bool = false;

    fn start(&mut self, item: T, _seq: u64) -> BlockingFuture<U> {
        let f = self.0.clone();
        BlockingFuture(tokio::task::spawn_blocking(move || {
            guard(|| f(item).map_err(Into::<BoxError>::into))
        }))
    }
}

type Job<U> = tokio::task::JoinHandle<Result<Result<U, BoxError>, Error>>;

/// A blocking stage's future: the job on the blocking pool.
pub(crate) struct BlockingFuture<U>(Job<U>);

impl<U> Future for BlockingFuture<U> {
    type Output = Result<U, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
            Ok(Ok(Ok(out))) => Ok(out),
            Ok(Ok(Err(e))) => Err(Error::caused_by(ErrorKind::Stage, e)),
            Ok(Err(panic)) => Err(panic),
            Err(join) => Err(Error::new(ErrorKind::Internal, join.to_string())),
        })
    }
}
