use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::resilience::{Retrier, RetrySpec};
use super::{Plan, Push, TaskCx, Wiring};
use crate::ack::{Status, Token};
use crate::error::{BoxError, Error, ErrorKind};
use crate::metrics::Counters;
use crate::runtime::channel::Receiver;
use crate::runtime::ChannelOut;

/// Where items end: a file, a table, a topic, an HTTP endpoint.
///
/// The runtime calls [`write`](Sink::write) for each item and
/// [`flush`](Sink::flush) after each chunk (and before waiting for more
/// input); an item counts as delivered, and its source is told so, only once
/// a flush after its write succeeded. [`close`](Sink::close) is called once
/// at the end of a completed or drained run. A sink runs in a task of its
/// own, so writing overlaps with the stages upstream.
///
/// A write error fails that item; a flush error fails every item written
/// since the last successful flush. Both go through the stage's
/// [`ErrorPolicy`](crate::ErrorPolicy).
///
/// # Examples
///
/// ```
/// use weir::{Pipeline, Sink};
///
/// /// Keeps lines in memory until flushed.
/// #[derive(Default)]
/// struct Lines { buffered: Vec<String>, written: std::sync::Arc<std::sync::Mutex<Vec<String>>> }
///
/// impl Sink<String> for Lines {
///     type Error = std::io::Error;
///     async fn write(&mut self, line: String) -> Result<(), Self::Error> {
///         self.buffered.push(line);
///         Ok(())
///     }
///     async fn flush(&mut self) -> Result<(), Self::Error> {
///         self.written.lock().unwrap().append(&mut self.buffered);
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sink = Lines::default();
/// let written = sink.written.clone();
/// let report = Pipeline::from_iter(1..=3).map(|i| format!("line {i}")).sink(sink).run().await.unwrap();
/// assert_eq!(report.delivered, 3);
/// assert_eq!(*written.lock().unwrap(), ["line 1", "line 2", "line 3"]);
/// # });
/// ```
pub trait Sink<T>: Send + 'static {
    /// The error a write, flush or close can return.
    type Error: Into<BoxError>;

    /// Accepts one item (it may only be buffered until the next flush).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{ErrorPolicy, Pipeline, Sink};
    ///
    /// /// A table that refuses negative rows.
    /// struct Table;
    ///
    /// impl Sink<i32> for Table {
    ///     type Error = String;
    ///     async fn write(&mut self, row: i32) -> Result<(), String> {
    ///         if row < 0 { Err(format!("negative row {row}")) } else { Ok(()) }
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let r = Pipeline::from_iter([1, -2, 3]).sink(Table).on_error(ErrorPolicy::Skip).run().await.unwrap();
    /// assert_eq!((r.delivered, r.failed), (2, 1));
    /// # });
    /// ```
    fn write(&mut self, item: T) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Makes everything written so far durable. By default, does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{ErrorKind, Pipeline, Sink};
    ///
    /// /// A file on a read-only disk: writes are buffered, flushes fail.
    /// struct ReadOnly;
    ///
    /// impl Sink<u32> for ReadOnly {
    ///     type Error = std::io::Error;
    ///     async fn write(&mut self, _: u32) -> Result<(), Self::Error> {
    ///         Ok(())
    ///     }
    ///     async fn flush(&mut self) -> Result<(), Self::Error> {
    ///         Err(std::io::Error::other("read-only file system"))
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let err = Pipeline::from_iter([1u32, 2]).sink(ReadOnly).run().await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Sink);
    /// assert_eq!(err.message(), "read-only file system");
    /// # });
    /// ```
    fn flush(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// Releases the sink's resources after the last flush. By default, does
    /// nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use weir::{Pipeline, Sink};
    ///
    /// struct Upload {
    ///     closed: Arc<AtomicU32>,
    /// }
    ///
    /// impl Sink<u32> for Upload {
    ///     type Error = std::io::Error;
    ///     async fn write(&mut self, _: u32) -> Result<(), Self::Error> {
    ///         Ok(())
    ///     }
    ///     async fn close(&mut self) -> Result<(), Self::Error> {
    ///         self.closed.fetch_add(1, Ordering::SeqCst); // e.g. complete a multipart upload
    ///         Ok(())
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let closed = Arc::new(AtomicU32::new(0));
    /// Pipeline::from_iter(0..100u32).sink(Upload { closed: closed.clone() }).run().await.unwrap();
    /// assert_eq!(closed.load(Ordering::SeqCst), 1); // once, at the end
    /// # });
    /// ```
    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }
}

/// A sink from an async closure: each call writes one item.
pub(crate) struct FnSink<F>(pub(crate) F);

impl<T, F, Fut, E> Sink<T> for FnSink<F>
where
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Into<BoxError>,
{
    type Error = E;

    fn write(&mut self, item: T) -> impl Future<Output = Result<(), E>> + Send {
        (self.0)(item)
    }
}

/// A [`Sink`] from an async closure that writes one item per call (flush
/// and close do nothing). Handy for [`dead_letter`](crate::Pipeline::dead_letter)
/// sinks and tests.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
/// let s = seen.clone();
/// let sink = weir::sink_fn(move |x: u8| {
///     s.lock().unwrap().push(x);
///     async { Ok::<_, std::io::Error>(()) }
/// });
/// weir::Pipeline::from_iter([1u8, 2]).sink(sink).run().await.unwrap();
/// assert_eq!(*seen.lock().unwrap(), [1, 2]);
/// # });
/// ```
pub fn sink_fn<T, F, Fut, E>(f: F) -> impl Sink<T>
where
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Into<BoxError>,
{
    FnSink(f)
}

/// The plan node of [`Pipeline::sink`](crate::Pipeline::sink) and
/// [`Pipeline::for_each_async`](crate::Pipeline::for_each_async).
///
/// # Examples
///
/// ```
/// use weir::{stage::{IterSource, SinkStage}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sink = weir::sink_fn(|_: u32| async { Ok::<_, std::io::Error>(()) });
/// let p: Pipeline<(), SinkStage<IterSource<_>, _>> = Pipeline::from_iter(0..3u32).sink(sink);
/// assert_eq!(p.run().await.unwrap().delivered, 3);
/// # });
/// ```
#[must_use]
pub struct SinkStage<P, S> {
    pub(crate) prev: P,
    pub(crate) sink: S,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, S> fmt::Debug for SinkStage<P, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkStage")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, S> Plan for SinkStage<P, S>
where
    P: Plan,
    S: Sink<P::Out>,
{
    type Out = ();
    type Intake = P::Intake;

    fn attach<D: Push<()>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let (tx, rx) = w.input_channel(self.idx);
        let c = Counters::explicit(w.shared.clone(), self.idx);
        let retry = w
            .spec(self.idx)
            .retry
            .as_ref()
            .and_then(RetrySpec::start::<P::Out>);
        w.spawn_stage(self.idx, run_sink(rx, self.sink, down, c, w.cx(), retry));
        let out = ChannelOut::new(tx, w.chunk_size());
        self.prev.attach(out, w);
    }
}

async fn run_sink<T, S, D>(
    mut rx: Receiver<T>,
    mut sink: S,
    down: D,
    mut c: Counters,
    mut cx: TaskCx,
    retry: Option<Retrier<T>>,
) where
    S: Sink<T>,
    D: Push<()>,
{
    let mut written: Vec<Token> = Vec::new();
    while let Some(mut chunk) = rx.recv().await {
        for (item, token) in chunk.drain(..) {
            c.items_in += 1;
            // Per-item events time the write; delivery waits for the flush.
            let item_started = cx.shared.item_started(c.stage(), token.seq());
            let started = tokio::time::Instant::now();
            let result = match &retry {
                None => write(&mut sink, item).await,
                Some(retry) => write_retrying(&mut sink, item, token.seq(), retry, &mut c).await,
            };
            c.record_latency(started.elapsed());
            match result {
                Ok(()) => {
                    if let Some(at) = item_started {
                        cx.shared.item_completed(c.stage(), token.seq(), at);
                    }
                    written.push(token)
                }
                Err(error) => {
                    c.failed += 1;
                    cx.fail(c.stage(), token, error);
                }
            }
        }
        rx.recycle(chunk);
        flush_sink(&mut sink, &mut written, &mut c, &mut cx, retry.as_ref()).await;
        c.publish();
        cx.flush_events().await;
    }
    flush_sink(&mut sink, &mut written, &mut c, &mut cx, retry.as_ref()).await;
    match AssertUnwindSafe(sink.close()).catch_unwind().await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => sink_failed(&c, Error::caused_by(ErrorKind::Sink, e.into())),
        Err(p) => sink_failed(&c, Error::panicked(&*p)),
    }
    c.publish();
    cx.flush_events().await;
    down.finish(&mut cx).await;
}

/// One write, its panic caught.
async fn write<T, S: Sink<T>>(sink: &mut S, item: T) -> Result<(), Error> {
    match AssertUnwindSafe(sink.write(item)).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::caused_by(ErrorKind::Sink, e.into())),
        Err(p) => Err(Error::panicked(&*p)),
    }
}

/// Writes `item`, again on a copy after each retryable failure.
async fn write_retrying<T, S: Sink<T>>(
    sink: &mut S,
    mut item: T,
    seq: u64,
    retry: &Retrier<T>,
    c: &mut Counters,
) -> Result<(), Error> {
    let started = retry.clock();
    let mut attempt = 1;
    loop {
        let spare = retry.spare(&item, attempt);
        let e = match write(sink, item).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let Some(next) = spare else {
            return Err(retry.last(e, attempt));
        };
        // Counts are published before a backoff sleep, as before any wait.
        c.publish();
        retry
            .after_failure(e, attempt, started, c.shared(), c.stage(), seq)
            .await?;
        item = next;
        attempt += 1;
    }
}

/// One flush, its panic caught; retried as `retry` says.
async fn flush_once<T, S: Sink<T>>(
    sink: &mut S,
    retry: Option<&Retrier<T>>,
    c: &mut Counters,
    seq: u64,
) -> Result<(), Error> {
    let started = retry.and_then(Retrier::clock);
    let mut attempt = 1;
    loop {
        let e = match AssertUnwindSafe(sink.flush()).catch_unwind().await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => Error::caused_by(ErrorKind::Sink, e.into()),
            Err(p) => Error::panicked(&*p),
        };
        let Some(retry) = retry else {
            return Err(e);
        };
        c.publish();
        retry
            .after_failure(e, attempt, started, c.shared(), c.stage(), seq)
            .await?;
        attempt += 1;
    }
}

/// Flushes the sink; on success every written item is delivered, on
/// failure each of them fails with the flush error.
async fn flush_sink<T, S: Sink<T>>(
    sink: &mut S,
    written: &mut Vec<Token>,
    c: &mut Counters,
    cx: &mut TaskCx,
    retry: Option<&Retrier<T>>,
) {
    let Some(first) = written.first() else {
        return;
    };
    let seq = first.seq();
    let error = match flush_once(sink, retry, c, seq).await {
        Ok(()) => {
            *c.out.get_or_insert(0) += written.len() as u64;
            for token in written.drain(..) {
                cx.shared.births.delivered(token.seq());
                token.finish(Status::Delivered);
            }
            return;
        }
        Err(e) => e,
    };
    for token in written.drain(..) {
        c.failed += 1;
        cx.fail(c.stage(), token, error.shallow_clone());
    }
}

/// A failure of the sink itself (close), not of one item: it stops the run.
fn sink_failed(c: &Counters, error: Error) {
    let name = &c.shared().stages[c.stage()].spec.name;
    c.shared().fail(Error::new(
        error.kind(),
        format!("stage `{name}` failed to close: {error}"),
    ));
}
