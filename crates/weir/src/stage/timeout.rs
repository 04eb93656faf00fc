//! Per-item time limits for concurrent stages and sinks:
//! `.then(f).timeout(d)`, `.sink(s).timeout(d)`.
//!
//! The limit is a setting of the stage (in its `StageSpec`), applied by the
//! stage's driver when it starts an item's work (or a sink its write or
//! flush): the future is wrapped in [`tokio::time::timeout`]. Stages
//! without a limit run the unwrapped future, so they pay nothing for the
//! feature.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::{Error, ErrorKind};
use crate::runtime::Work;

/// The error of a call that did not finish within `limit`.
pub(crate) fn timed_out(limit: Duration) -> Error {
    Error::new(ErrorKind::Timeout, format!("timed out after {limit:?}"))
}

/// Runs `fut`, failed with [`timed_out`] (and dropped) if it has not
/// finished `limit` after it started; without a limit, `fut` itself.
pub(crate) async fn within<U, F>(limit: Option<Duration>, fut: F) -> Result<U, Error>
where
    F: Future<Output = Result<U, Error>>,
{
    match limit {
        None => fut.await,
        Some(limit) => tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| Err(timed_out(limit))),
    }
}

/// A concurrent stage's work with a time limit per item.
pub(crate) struct Timed<W> {
    work: W,
    limit: Duration,
}

impl<W> Timed<W> {
    pub(crate) fn new(work: W, limit: Duration) -> Timed<W> {
        Timed { work, limit }
    }
}

impl<T, W: Work<T>> Work<T> for Timed<W> {
    type Out = W::Out;
    type Fut = TimedFuture<W::Fut>;
    const SEQ: bool = W::SEQ;

    fn start(&mut self, item: T, seq: u64) -> TimedFuture<W::Fut> {
        TimedFuture {
            inner: tokio::time::timeout(self.limit, self.work.start(item, seq)),
            limit: self.limit,
        }
    }
}

pin_project_lite::pin_project! {
    /// An item's work, failed with [`ErrorKind::Timeout`] once its limit
    /// passes. The work's own future is dropped then.
    pub(crate) struct TimedFuture<F> {
        #[pin]
        inner: tokio::time::Timeout<F>,
        limit: Duration,
    }
}

impl<F, U> Future for TimedFuture<F>
where
    F: Future<Output = Result<U, Error>>,
{
    type Output = Result<U, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let limit = *this.limit;
        this.inner
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(timed_out(limit))))
    }
}
