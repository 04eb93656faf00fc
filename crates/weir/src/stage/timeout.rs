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

use super::{Blocking, KeyedThen, SinkStage, Then};
use crate::error::{Error, ErrorKind};
use crate::runtime::Work;
use crate::Pipeline;

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

impl<T, P, F> Pipeline<T, Then<P, F>> {
    /// Fails an item whose future has not finished `limit` after it
    /// started (error type `timeout`, [`ErrorKind::Timeout`]), routed by
    /// the stage's [`ErrorPolicy`](crate::ErrorPolicy); its future is
    /// dropped, which cancels it. The clock starts when the item's work
    /// starts, not when the item reaches the stage, so time spent waiting
    /// for room in the [`concurrency`](Pipeline::concurrency) window does
    /// not count. By default, no limit.
    ///
    /// The runtime must have timers enabled
    /// (`enable_time`/`enable_all`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::{ErrorKind, ErrorPolicy};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([10u64, 500, 20])
    ///     .then(|ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .timeout(Duration::from_millis(100))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [10, 20]);
    ///
    /// let err = weir::Pipeline::from_iter([500u64])
    ///     .then(|ms| async move { tokio::time::sleep(Duration::from_millis(ms)).await })
    ///     .timeout(Duration::from_millis(100))
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Timeout);
    /// assert_eq!(err.kind().as_str(), "timeout");
    /// # });
    /// ```
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.last().timeout = Some(limit);
        self
    }
}

impl<T, P, F> Pipeline<T, Blocking<P, F>> {
    /// Fails an item whose blocking call has not returned `limit` after it
    /// started (error type `timeout`), routed by the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy). By default, no limit.
    ///
    /// A blocking call cannot be cancelled: the item fails and frees its
    /// place in the [`concurrency`](Pipeline::concurrency) window, but the
    /// call goes on running on tokio's blocking pool until it returns, and
    /// its result is thrown away. A stage whose calls keep timing out can
    /// therefore have more than `concurrency` calls running at once.
    ///
    /// The runtime must have timers enabled (`enable_time`/`enable_all`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::ErrorPolicy;
    /// # tokio::runtime::Builder::new_multi_thread().enable_time().build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter([0u64, 300])
    ///     .blocking(|ms| std::thread::sleep(Duration::from_millis(ms)))
    ///     .timeout(Duration::from_millis(100))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((r.delivered, r.failed), (1, 1));
    /// # });
    /// ```
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.last().timeout = Some(limit);
        self
    }
}

impl<T, P, K, F> Pipeline<T, KeyedThen<P, K, F>> {
    /// Fails an item whose future has not finished `limit` after it
    /// started (error type `timeout`), routed by the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy); its future is dropped and the
    /// next item of its key starts. The clock starts when the item's work
    /// starts: time spent waiting behind earlier items of its key does not
    /// count. By default, no limit.
    ///
    /// The runtime must have timers enabled (`enable_time`/`enable_all`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::ErrorPolicy;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([(1, 10u64), (1, 500), (1, 20)])
    ///     .key_by(|(user, _)| *user)
    ///     .then(|(_, ms)| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .timeout(Duration::from_millis(100))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [10, 20]);
    /// # });
    /// ```
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.last().timeout = Some(limit);
        self
    }
}

impl<P, S> Pipeline<(), SinkStage<P, S>> {
    /// Fails a sink's [`write`](crate::Sink::write) or
    /// [`flush`](crate::Sink::flush) that has not returned `limit` after
    /// it started (error type `timeout`, [`ErrorKind::Timeout`],
    /// retryable by default); its future is dropped, which cancels it. A
    /// timed-out write or flush is a failed one: it goes through the
    /// stage's [`retry`](Pipeline::retry) policy, then its
    /// [`ErrorPolicy`](crate::ErrorPolicy),
    /// [`dead_letter`](Pipeline::dead_letter) sink or
    /// [`on_failure`](Pipeline::on_failure) handler, like a write or flush
    /// that returned an error.
    ///
    /// The limits apply as on a [`then`](Pipeline::then) stage: the retry
    /// policy is outermost and the limit is per attempt (each retry gets
    /// the full `limit` again; backoff waits do not count); with a
    /// [`circuit_breaker`](Pipeline::circuit_breaker), each write attempt
    /// first waits for the breaker (not counted either) and its timeout
    /// counts as a failed call.
    ///
    /// The runtime must have timers enabled (`enable_time`/`enable_all`).
    /// By default, no limit.
    ///
    /// # Examples
    ///
    /// A write that hangs past the limit once: without a retry the item
    /// fails with the timeout, with one its second attempt writes it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::{ErrorKind, Retry};
    ///
    /// // The first write hangs for a minute, later ones take 10 ms.
    /// fn slow_once() -> impl weir::Sink<u32> {
    ///     let mut first = true;
    ///     weir::sink_fn(move |_: u32| {
    ///         let wait = if std::mem::take(&mut first) { 60_000 } else { 10 };
    ///         async move {
    ///             tokio::time::sleep(Duration::from_millis(wait)).await;
    ///             Ok::<_, std::io::Error>(())
    ///         }
    ///     })
    /// }
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let err = weir::Pipeline::from_iter([1u32])
    ///     .sink(slow_once())
    ///     .timeout(Duration::from_millis(100))
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Timeout);
    ///
    /// let started = tokio::time::Instant::now();
    /// let r = weir::Pipeline::from_iter([1u32])
    ///     .sink(slow_once())
    ///     .timeout(Duration::from_millis(100))
    ///     .retry(Retry::fixed(Duration::from_millis(50)))
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((r.delivered, r.stages[1].retried), (1, 1));
    /// assert_eq!(started.elapsed(), Duration::from_millis(160)); // 100 + 50 + 10
    /// # });
    /// ```
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.last().timeout = Some(limit);
        self
    }
}
