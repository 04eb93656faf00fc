use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::{Plan, Push, TaskCx, Wiring};
use crate::ack::{Status, Token};
use crate::error::{BoxError, Error, ErrorKind};
use crate::metrics::Counters;
use crate::runtime::channel::{self, Receiver};
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
    fn write(&mut self, item: T) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Makes everything written so far durable. By default, does nothing.
    fn flush(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// Releases the sink's resources after the last flush. By default, does
    /// nothing.
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
        let (tx, rx) = channel::channel(w.capacity());
        let c = Counters::explicit(w.shared.clone(), self.idx);
        w.spawn(run_sink(rx, self.sink, down, c, w.cx()));
        let out = ChannelOut::new(tx, w.chunk_size());
        self.prev.attach(out, w);
    }
}

async fn run_sink<T, S, D>(mut rx: Receiver<T>, mut sink: S, down: D, mut c: Counters, mut cx: TaskCx)
where
    S: Sink<T>,
    D: Push<()>,
{
    let mut written: Vec<Token> = Vec::new();
    while let Some(mut chunk) = rx.recv().await {
        for (item, token) in chunk.drain(..) {
            c.items_in += 1;
            let error = match AssertUnwindSafe(sink.write(item)).catch_unwind().await {
                Ok(Ok(())) => {
                    written.push(token);
                    continue;
                }
                Ok(Err(e)) => Error::caused_by(ErrorKind::Sink, e.into()),
                Err(p) => Error::panicked(&*p),
            };
            c.failed += 1;
            cx.fail(c.stage(), token, error);
        }
        rx.recycle(chunk);
        flush_sink(&mut sink, &mut written, &mut c, &mut cx).await;
        c.publish();
        cx.flush_events().await;
    }
    flush_sink(&mut sink, &mut written, &mut c, &mut cx).await;
    match AssertUnwindSafe(sink.close()).catch_unwind().await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => sink_failed(&c, Error::caused_by(ErrorKind::Sink, e.into())),
        Err(p) => sink_failed(&c, Error::panicked(&*p)),
    }
    c.publish();
    cx.flush_events().await;
    down.finish(&mut cx).await;
}

/// Flushes the sink; on success every written item is delivered, on
/// failure each of them fails with the flush error.
async fn flush_sink<T, S: Sink<T>>(
    sink: &mut S,
    written: &mut Vec<Token>,
    c: &mut Counters,
    cx: &mut TaskCx,
) {
    if written.is_empty() {
        return;
    }
    let error = match AssertUnwindSafe(sink.flush()).catch_unwind().await {
        Ok(Ok(())) => {
            *c.out.get_or_insert(0) += written.len() as u64;
            for token in written.drain(..) {
                token.finish(Status::Delivered);
            }
            return;
        }
        Ok(Err(e)) => Error::caused_by(ErrorKind::Sink, e.into()),
        Err(p) => Error::panicked(&*p),
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
