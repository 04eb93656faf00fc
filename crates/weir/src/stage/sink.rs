use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::mpsc;

use super::recover::{routed, verdict, Handler, Verdict};
use super::resilience::Retrier;
use super::timeout::within;
use super::{Plan, Push, TaskCx, Wiring};
use crate::ack::{Status, Token};
use crate::error::{BoxError, Error, ErrorKind};
use crate::event::now_ms;
use crate::policy::{CircuitBreaker, Letter};
use crate::runtime::channel::Receiver;
use crate::runtime::ChannelOut;
use crate::runtime::Counters;
use crate::runtime::RetrySpec;

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
/// [`ErrorPolicy`](crate::ErrorPolicy), after its
/// [`retry`](crate::Pipeline::retry) policy if it has one; with a
/// [`dead_letter`](crate::Pipeline::dead_letter) sink or an
/// [`on_failure`](crate::Pipeline::on_failure) handler, each such item
/// goes there (a failed flush sends one record per item it failed). A
/// write or flush that outlives the stage's
/// [`timeout`](crate::Pipeline::timeout) fails the same way, and a
/// [`circuit_breaker`](crate::Pipeline::circuit_breaker) stops writes to
/// a destination that keeps failing.
///
/// The settings nest as on a [`then`](crate::Pipeline::then) stage, from
/// the outside in: the [`on_failure`](crate::Pipeline::on_failure)
/// handler (which may ask for the whole write, retries included, again
/// later), the [`retry`](crate::Pipeline::retry) policy, the
/// [`circuit_breaker`](crate::Pipeline::circuit_breaker) (each write
/// attempt asks it, and its outcome counts), the
/// [`timeout`](crate::Pipeline::timeout) (on each write or flush attempt),
/// and the call itself. An item that fails for good then goes to the
/// [`ErrorPolicy`](crate::ErrorPolicy) or dead-letter sink.
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

    /// Group commit: while more input already waits, write up to this many
    /// items before a [`flush`](Sink::flush) (a sink whose flush is a
    /// durable commit makes fewer, larger transactions under load); with
    /// no input waiting, the runtime flushes at once, so an idle pipeline
    /// delivers without delay. Items are delivered, as always, only by the
    /// flush after their write. By default 0: a flush after every chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use weir::{PipelineBuilder, Sink};
    ///
    /// struct Commits(Arc<AtomicU32>);
    /// impl Sink<u32> for Commits {
    ///     type Error = std::io::Error;
    ///     async fn write(&mut self, _: u32) -> Result<(), Self::Error> {
    ///         Ok(())
    ///     }
    ///     async fn flush(&mut self) -> Result<(), Self::Error> {
    ///         self.0.fetch_add(1, Ordering::SeqCst); // a durable commit
    ///         Ok(())
    ///     }
    ///     fn flush_after(&self) -> usize {
    ///         1_000
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let commits = Arc::new(AtomicU32::new(0));
    /// let report = PipelineBuilder::new()
    ///     .chunk_size(10)
    ///     .from_iter(0..1_000u32)
    ///     .boundary() // the sink reads chunks that wait in a channel
    ///     .sink(Commits(commits.clone()))
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(report.delivered, 1_000);
    /// assert!(commits.load(Ordering::SeqCst) < 100); // not one per chunk of 10
    /// # });
    /// ```
    fn flush_after(&self) -> usize {
        0
    }
}

/// What the future of a write closure ([`Pipeline::for_each_async`],
/// [`sink_fn`]) may return: `()` for a write that cannot fail, so no
/// `Ok::<_, Infallible>(())` is needed, or `Result<(), E>` for one that
/// can (an `Err` fails the item). Sealed: implemented for these two only.
///
/// [`Pipeline::for_each_async`]: crate::Pipeline::for_each_async
///
/// # Examples
///
/// ```
/// use weir::stage::WriteOutput;
///
/// fn written<O: WriteOutput>(outcome: O) -> bool {
///     outcome.into_result().is_ok()
/// }
/// assert!(written(())); // infallible
/// assert!(written(Ok::<(), std::io::Error>(())));
/// assert!(!written(Err::<(), _>("disk full")));
/// ```
pub trait WriteOutput: Send + sealed::Sealed {
    /// The write's error: [`Infallible`](std::convert::Infallible) for `()`.
    type Error: Into<BoxError>;

    /// The outcome as a `Result`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::stage::WriteOutput;
    /// let ok: Result<(), std::convert::Infallible> = ().into_result();
    /// assert!(ok.is_ok());
    /// assert_eq!(Err::<(), _>("full").into_result(), Err("full"));
    /// ```
    fn into_result(self) -> Result<(), Self::Error>;
}

mod sealed {
    /// Only `()` and `Result<(), E>` are write outputs.
    #[allow(unreachable_pub)] // public in a private module: the seal
    pub trait Sealed {}
    impl Sealed for () {}
    impl<E> Sealed for Result<(), E> {}
}

impl WriteOutput for () {
    type Error = std::convert::Infallible;

    #[inline(always)]
    fn into_result(self) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

impl<E: Into<BoxError> + Send> WriteOutput for Result<(), E> {
    type Error = E;

    #[inline(always)]
    fn into_result(self) -> Result<(), E> {
        self
    }
}

/// A sink from an async closure: each call writes one item.
pub(crate) struct FnSink<F>(pub(crate) F);

impl<T, F, Fut> Sink<T> for FnSink<F>
where
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future + Send,
    Fut::Output: WriteOutput,
{
    type Error = <Fut::Output as WriteOutput>::Error;

    fn write(&mut self, item: T) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (self.0)(item).map(WriteOutput::into_result)
    }
}

/// A [`Sink`] from an async closure that writes one item per call (flush
/// and close do nothing). Handy for [`dead_letter`](crate::Pipeline::dead_letter)
/// sinks and tests. The closure's future returns `Result<(), E>`, or `()`
/// if the write cannot fail ([`WriteOutput`]).
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
///
/// let infallible = weir::sink_fn(|_: u8| async {}); // nothing can fail
/// assert_eq!(weir::Pipeline::from_iter([3u8]).sink(infallible).run().await.unwrap().delivered, 1);
/// # });
/// ```
pub fn sink_fn<T, F, Fut>(f: F) -> impl Sink<T>
where
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future + Send,
    Fut::Output: WriteOutput,
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
        let policies = Policies::of(w, self.idx);
        let recover = SinkRecover::take(w, self.idx);
        let task = run_sink(rx, self.sink, down, c, w.cx(), policies, recover);
        w.spawn_stage(self.idx, task);
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
    policies: Policies<T>,
    mut recover: Option<SinkRecover<T>>,
) where
    T: Send + 'static,
    S: Sink<T>,
    D: Push<()>,
{
    let mut written: Vec<Token> = Vec::new();
    // Written items whose `ItemCompleted` waits for the flush (per-item
    // events only: empty otherwise).
    let mut timed: Vec<Timed> = Vec::new();
    while let Some(mut chunk) = rx.recv().await {
        for (item, token) in chunk.drain(..) {
            c.items_in += 1;
            // Per-item events time the write; `ItemCompleted` waits for
            // the flush that delivers the item.
            let item_started = cx.shared.item_started(c.stage(), token.seq());
            let started = tokio::time::Instant::now();
            let result = match &mut recover {
                None => policies.write(&mut sink, item, token.seq(), &mut c).await,
                Some(recover) => {
                    let seq = token.seq();
                    match recover
                        .write(&mut sink, item, seq, &policies, &mut c, &mut cx)
                        .await
                    {
                        Ok(Some(copy)) => {
                            recover.kept.push(copy);
                            Ok(())
                        }
                        Ok(None) => {
                            // Replaced by the handler: done, nothing to flush.
                            c.record_latency(started.elapsed());
                            deliver(token, &mut c, &cx);
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            c.record_latency(started.elapsed());
            match result {
                Ok(()) => {
                    if let Some(at) = item_started {
                        timed.push(Timed::of(&token, at));
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
        // Group commit: more input waits and the sink takes more before
        // its flush.
        // (The sink's bound first: the default, 0, reads no channel state.)
        if written.len() < sink.flush_after() && rx.len() > 0 {
            continue;
        }
        let mut flush = Flush {
            written: &mut written,
            timed: &mut timed,
            c: &mut c,
            cx: &mut cx,
            policies: &policies,
            recover: recover.as_mut(),
        };
        flush.run(&mut sink).await;
        c.publish();
        cx.flush_events().await;
    }
    let mut flush = Flush {
        written: &mut written,
        timed: &mut timed,
        c: &mut c,
        cx: &mut cx,
        policies: &policies,
        recover: recover.as_mut(),
    };
    flush.run(&mut sink).await;
    match AssertUnwindSafe(sink.close()).catch_unwind().await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => sink_failed(&c, Error::caused_by(ErrorKind::Sink, e.into())),
        Err(p) => sink_failed(&c, Error::panicked(&*p)),
    }
    c.publish();
    cx.flush_events().await;
    // The dead-letter task ends once the last sender is gone.
    drop(recover);
    down.finish(&mut cx).await;
}

/// Finalizes an item the sink took care of.
fn deliver(token: Token, c: &mut Counters, cx: &TaskCx) {
    *c.out.get_or_insert(0) += 1;
    cx.shared.e2e.delivered(token.seq());
    token.finish(Status::Delivered);
}

/// One write, its panic caught.
async fn write<T, S: Sink<T>>(sink: &mut S, item: T) -> Result<(), Error> {
    match AssertUnwindSafe(sink.write(item)).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::caused_by(ErrorKind::Sink, e.into())),
        Err(p) => Err(Error::panicked(&*p)),
    }
}

/// One flush, its panic caught.
async fn flush<T, S: Sink<T>>(sink: &mut S) -> Result<(), Error> {
    match AssertUnwindSafe(sink.flush()).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::caused_by(ErrorKind::Sink, e.into())),
        Err(p) => Err(Error::panicked(&*p)),
    }
}

/// How a sink calls its destination: the stage's retry policy around
/// each write and flush, its breaker around each write attempt, and its
/// time limit around each write or flush attempt (the order of
/// [`Resilient`](super::resilience::Resilient) around
/// [`Timed`](super::timeout::Timed) on concurrent stages).
struct Policies<T> {
    retry: Option<Retrier<T>>,
    breaker: Option<Arc<CircuitBreaker>>,
    limit: Option<Duration>,
}

impl<T: Send + 'static> Policies<T> {
    /// Stage `idx`'s settings, its breaker (if any) started.
    fn of<I>(w: &Wiring<I>, idx: usize) -> Policies<T> {
        let spec = w.spec(idx);
        Policies {
            retry: spec.retry.as_ref().and_then(RetrySpec::start::<T>),
            breaker: spec.breaker.clone().map(|b| w.shared.circuit_breaker(idx, b)),
            limit: spec.timeout,
        }
    }

    /// One write attempt: admitted by the breaker (after a wait, or
    /// refused, if it is not closed), within the time limit, its outcome
    /// recorded.
    async fn attempt<S: Sink<T>>(&self, sink: &mut S, item: T, c: &mut Counters) -> Result<(), Error> {
        let Some(breaker) = &self.breaker else {
            return within(self.limit, write(sink, item)).await;
        };
        let ticket = match breaker.admit_closed() {
            Some(ticket) => ticket,
            None => {
                // Counts are published before a wait for the breaker.
                c.publish();
                breaker.admit().await?
            }
        };
        let result = within(self.limit, write(sink, item)).await;
        if ticket.record(result.is_ok()) {
            breaker.send_events().await;
        }
        result
    }

    /// Writes `item`, again on a copy after each retryable failure.
    async fn write<S: Sink<T>>(
        &self,
        sink: &mut S,
        mut item: T,
        seq: u64,
        c: &mut Counters,
    ) -> Result<(), Error> {
        let Some(retry) = &self.retry else {
            return self.attempt(sink, item, c).await;
        };
        let started = retry.clock();
        let mut attempt = 1;
        loop {
            let spare = retry.spare(&item, attempt);
            let e = match self.attempt(sink, item, c).await {
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

    /// Flushes the sink, each attempt within the time limit, retried as
    /// the policy says (`seq`: the first item of the batch, for events).
    async fn flush<S: Sink<T>>(&self, sink: &mut S, c: &mut Counters, seq: u64) -> Result<(), Error> {
        let retry = self.retry.as_ref();
        let started = retry.and_then(Retrier::clock);
        let mut attempt = 1;
        loop {
            let e = match within(self.limit, flush::<T, S>(sink)).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
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
}

/// A written item's `ItemCompleted`, sent once a flush delivers it.
struct Timed {
    seq: u64,
    key: Option<u64>,
    started: tokio::time::Instant,
}

impl Timed {
    fn of(token: &Token, started: tokio::time::Instant) -> Timed {
        Timed {
            seq: token.seq(),
            key: token.key(),
            started,
        }
    }
}

/// What a flush settles: the items written since the last one.
struct Flush<'a, T> {
    written: &'a mut Vec<Token>,
    /// Those of them whose `ItemCompleted` is wanted.
    timed: &'a mut Vec<Timed>,
    c: &'a mut Counters,
    cx: &'a mut TaskCx,
    policies: &'a Policies<T>,
    /// With copies of the written items, in `written`'s order.
    recover: Option<&'a mut SinkRecover<T>>,
}

impl<T: Send + 'static> Flush<'_, T> {
    /// Flushes the sink; on success every written item is delivered, on
    /// failure each of them fails with the flush error (and goes to the
    /// stage's recovery, if it has one, with its own copy).
    async fn run<S: Sink<T>>(&mut self, sink: &mut S) {
        let Some(first) = self.written.first() else {
            return;
        };
        let seq = first.seq();
        let error = match self.policies.flush(sink, self.c, seq).await {
            Ok(()) => {
                *self.c.out.get_or_insert(0) += self.written.len() as u64;
                for token in self.written.drain(..) {
                    self.cx.shared.e2e.delivered(token.seq());
                    token.finish(Status::Delivered);
                }
                if !self.timed.is_empty() {
                    self.completed();
                }
                if let Some(r) = self.recover.as_deref_mut() {
                    r.kept.clear();
                }
                return;
            }
            Err(e) => e,
        };
        // Not delivered: each gets an `ItemFailed` instead.
        self.timed.clear();
        let Some(recover) = self.recover.as_deref_mut() else {
            for token in self.written.drain(..) {
                self.c.failed += 1;
                self.cx.fail(self.c.stage(), token, error.shallow_clone());
            }
            return;
        };
        let kept = std::mem::take(&mut recover.kept);
        debug_assert_eq!(kept.len(), self.written.len(), "one copy per written item");
        let first_ms = now_ms();
        let mut failed: Vec<(Token, T)> = self.written.drain(..).zip(kept).collect();
        // The last keeps the cause object, the others a copy of its chain.
        let last = failed.pop();
        let mut errors: Vec<Error> = failed.iter().map(|_| error.clone_with_causes()).collect();
        errors.push(error);
        for ((token, copy), e) in failed.into_iter().chain(last).zip(errors) {
            let attempt = e.attempt().max(1);
            let tried = Tried {
                seq: token.seq(),
                attempt,
                first_ms,
            };
            // A flush is not attempted again for one item: no retry here.
            match recover.settle(copy, e, tried, false, self.cx) {
                Settled::Replaced => deliver(token, self.c, self.cx),
                Settled::Failed(e) => {
                    self.c.failed += 1;
                    self.cx.fail(self.c.stage(), token, e);
                }
                Settled::Again(..) => unreachable!("`settle` does not retry when told not to"),
            }
        }
    }
}

impl<T> Flush<'_, T> {
    /// Sends the `ItemCompleted` of the timed items, now delivered.
    #[cold]
    fn completed(&mut self) {
        let stage = self.c.stage();
        for t in self.timed.drain(..) {
            self.cx.shared.item_completed(stage, t.seq, t.key, t.started);
        }
    }
}

/// A sink's recovery: its dead-letter task and failure handler, and copies
/// of the items written but not yet flushed (a failed flush fails them).
pub(crate) struct SinkRecover<T> {
    keep: fn(&T) -> T,
    to: Option<mpsc::Sender<Letter>>,
    handler: Option<Handler<T, ()>>,
    stage: usize,
    kept: Vec<T>,
}

impl<T: Send + 'static> SinkRecover<T> {
    /// Takes stage `idx`'s recovery settings, if it has any, and adds its
    /// dead-letter task.
    fn take<I>(w: &mut Wiring<I>, idx: usize) -> Option<Self> {
        let mut r = w.spec(idx).recovery.as_ref()?.take::<T, ()>()?;
        let to = r.install(w, idx);
        Some(SinkRecover {
            keep: r.keep,
            to,
            handler: r.handler,
            stage: idx,
            kept: Vec::new(),
        })
    }

    /// Writes `item` (with the stage's retry policy, breaker and time
    /// limit), and on a failure for good does what the handler decides. `Ok(Some(copy))`: written, to
    /// be flushed; `Ok(None)`: replaced, done; `Err`: the routed error.
    async fn write<S: Sink<T>>(
        &mut self,
        sink: &mut S,
        item: T,
        seq: u64,
        policies: &Policies<T>,
        c: &mut Counters,
        cx: &mut TaskCx,
    ) -> Result<Option<T>, Error> {
        let mut copy = (self.keep)(&item);
        let mut input = item;
        let mut attempt = 1;
        let mut first_failure = None;
        loop {
            let error = match policies.write(sink, input, seq, c).await {
                Ok(()) => return Ok(Some(copy)),
                Err(e) => e,
            };
            let tried = Tried {
                seq,
                attempt,
                first_ms: *first_failure.get_or_insert_with(now_ms),
            };
            return match self.settle(copy, error, tried, true, cx) {
                Settled::Again(delay, back) => {
                    c.publish();
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                    input = (self.keep)(&back);
                    copy = back;
                    continue;
                }
                Settled::Replaced => Ok(None),
                Settled::Failed(e) => Err(e),
            };
        }
    }

    /// Settles a failed attempt at `copy` as the stage's handler decides
    /// ([`verdict`]): again after a delay (handing the copy back), replaced
    /// (counted and evented), or failed for good with the error to fail it
    /// with, routed with its copy.
    fn settle(&self, copy: T, error: Error, tried: Tried, may_retry: bool, cx: &mut TaskCx) -> Settled<T> {
        let Tried {
            seq,
            attempt,
            first_ms,
        } = tried;
        let handler = self.handler.as_ref();
        let (policy, error) = match verdict(
            handler, &copy, &error, attempt, may_retry, &cx.shared, self.stage, seq,
        ) {
            Verdict::Again(delay) => return Settled::Again(delay, copy),
            Verdict::Replace((), event) => {
                cx.event(event);
                return Settled::Replaced;
            }
            Verdict::Route(policy) => (policy, error),
            Verdict::Panicked(panic) => (None, panic),
        };
        Settled::Failed(routed(error, copy, self.to.clone(), policy, attempt, first_ms))
    }
}

/// What [`SinkRecover::settle`] made of a failed attempt.
enum Settled<T> {
    Again(Duration, T),
    Replaced,
    Failed(Error),
}

/// Which item failed, at which attempt, first when.
#[derive(Clone, Copy)]
struct Tried {
    seq: u64,
    attempt: u32,
    first_ms: u64,
}

/// A failure of the sink itself (close), not of one item: it stops the run.
fn sink_failed(c: &Counters, error: Error) {
    let name = &c.shared().stages[c.stage()].spec.name;
    c.shared().fail(Error::new(
        error.kind(),
        format!("stage `{name}` failed to close: {error}"),
    ));
}
