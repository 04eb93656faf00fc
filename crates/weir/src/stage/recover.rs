//! Failure recovery for the stages that run an item's work as a future
//! (`then`, `try_then`, `blocking`, `try_blocking`, keyed `then`), for
//! the fused `try_map` and `validate`, and for sinks (`sink`,
//! `for_each_async`, whose own loop applies it: see `sink.rs`):
//! [`dead_letter`](crate::Pipeline::dead_letter) and
//! [`on_failure`](crate::Pipeline::on_failure).
//!
//! Both are settings of the stage, kept type-erased in its `StageSpec`
//! until `attach`, where the stage wraps its work in [`Recover`] (or, for
//! a fused stage, picks its recovering step). Stages without them run
//! their work unwrapped and pay nothing.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{
    guard, Blocking, KeyedThen, Plan, Push, Sink, SinkStage, TaskCx, Then, TryMap, Validate, Wiring,
};
use crate::error::Error;
use crate::event::{now_ms, EventKind};
use crate::policy::{
    run_dead_letters, DeadLetter, DeadLetterRun, Decision, ErrorPolicy, Failure, Letter, Routing,
    MAX_HANDLER_ATTEMPTS,
};
use crate::runtime::channel::Receiver;
use crate::runtime::RecoverSpec;
use crate::runtime::{Shared, Task, Work};
use crate::Pipeline;

/// Stages whose failures can be dead-lettered or handled: `then`,
/// `try_then`, `blocking`, `try_blocking`, keyed `then`/`try_then`,
/// `try_map`, `validate`, and the [`Sink`] stages
/// ([`sink`](Pipeline::sink), [`for_each_async`](Pipeline::for_each_async)).
///
/// # Examples
///
/// ```
/// use weir::{stage::Recoverable, Decision, Pipeline};
///
/// // One fallback for any stage that takes a failure handler.
/// fn or_zero<N>(p: Pipeline<u32, N>) -> Pipeline<u32, N>
/// where
///     N: Recoverable<Out = u32>,
///     N::In: Clone,
/// {
///     p.on_failure(|_| Decision::Replace(0))
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let a = or_zero(Pipeline::from_iter(["1", "x"]).try_map(|s| s.parse::<u32>())).collect().await.unwrap();
/// let b = or_zero(Pipeline::from_iter(["7", "y"]).try_then(|s| async move { s.parse::<u32>() }));
/// assert_eq!(a, [1, 0]);
/// assert_eq!(b.collect().await.unwrap(), [7, 0]);
/// # });
/// ```
pub trait Recoverable: Plan + sealed::Sealed {
    /// The items the stage takes in.
    type In: Send + 'static;
}

mod sealed {
    pub trait Sealed {}
}

impl<P, F> sealed::Sealed for Then<P, F> {}
impl<P, F> sealed::Sealed for Blocking<P, F> {}
impl<P, K, F> sealed::Sealed for KeyedThen<P, K, F> {}
impl<P, F> sealed::Sealed for TryMap<P, F> {}
impl<P, F> sealed::Sealed for Validate<P, F> {}
impl<P, S> sealed::Sealed for SinkStage<P, S> {}

impl<P: Plan, F> Recoverable for Then<P, F>
where
    Then<P, F>: Plan,
{
    type In = P::Out;
}

impl<P: Plan, F> Recoverable for Blocking<P, F>
where
    Blocking<P, F>: Plan,
{
    type In = P::Out;
}

impl<P: Plan, K, F> Recoverable for KeyedThen<P, K, F>
where
    KeyedThen<P, K, F>: Plan,
{
    type In = P::Out;
}

impl<P: Plan, F> Recoverable for TryMap<P, F>
where
    TryMap<P, F>: Plan,
{
    type In = P::Out;
}

impl<P: Plan, F> Recoverable for Validate<P, F>
where
    Validate<P, F>: Plan,
{
    type In = P::Out;
}

impl<P: Plan, S> Recoverable for SinkStage<P, S>
where
    SinkStage<P, S>: Plan,
{
    type In = P::Out;
}

pub(crate) type Handler<T, U> = Arc<dyn Fn(&Failure<'_, T>) -> Decision<U> + Send + Sync>;
type Install = Box<dyn FnOnce(Arc<Shared>, usize) -> (Task, mpsc::Sender<Letter>) + Send>;

pub(crate) struct Recovery<T, U> {
    pub(crate) keep: fn(&T) -> T,
    dead_letter: Option<Install>,
    pub(crate) handler: Option<Handler<T, U>>,
}

impl<T, U> Recovery<T, U> {
    /// Adds the stage's dead-letter task, if it has a dead-letter sink,
    /// and returns the way to it.
    pub(crate) fn install<I>(&mut self, w: &mut Wiring<I>, idx: usize) -> Option<mpsc::Sender<Letter>> {
        self.dead_letter.take().map(|install| {
            let (task, tx) = install(w.shared.clone(), idx);
            w.tasks.push(task);
            tx
        })
    }
}

impl RecoverSpec {
    fn update<T: Clone + Send + 'static, U: 'static>(&self, f: impl FnOnce(&mut Recovery<T, U>)) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let boxed = slot.get_or_insert_with(|| {
            Box::new(Recovery::<T, U> {
                keep: T::clone,
                dead_letter: None,
                handler: None,
            })
        });
        if let Some(r) = boxed.downcast_mut::<Recovery<T, U>>() {
            f(r);
        }
    }

    pub(crate) fn take<T: 'static, U: 'static>(&self) -> Option<Recovery<T, U>> {
        let boxed = self.0.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        boxed.downcast::<Recovery<T, U>>().ok().map(|r| *r)
    }
}

/// Wraps `work` in [`Recover`] when stage `idx` has recovery settings and
/// hands the (wrapped or bare) work to `spawn`.
pub(crate) fn with_recovery<T, W, I>(w: &mut Wiring<I>, idx: usize, work: W, spawn: impl SpawnWork<T, W::Out>)
where
    T: Send + 'static,
    W: Work<T>,
{
    let recovery = w.spec(idx).recovery.as_ref().and_then(|r| r.take::<T, W::Out>());
    let Some(mut r) = recovery else {
        return spawn.spawn(w, work);
    };
    let to = r.install(w, idx);
    let work = Recover {
        work: Arc::new(Mutex::new(work)),
        keep: r.keep,
        to,
        handler: r.handler,
        shared: w.shared.clone(),
        stage: idx,
    };
    spawn.spawn(w, work);
}

/// The recovery of a fused synchronous stage (`try_map`, `validate`):
/// the same handler decisions and dead letters as [`Recover`], without
/// waiting.
pub(crate) struct SyncRecover<T, U> {
    keep: fn(&T) -> T,
    to: Option<mpsc::Sender<Letter>>,
    handler: Option<Handler<T, U>>,
    stage: usize,
}

impl<T: Send + 'static, U> SyncRecover<T, U> {
    /// Takes stage `idx`'s recovery settings, if it has any, and adds its
    /// dead-letter task.
    pub(crate) fn take<I>(w: &mut Wiring<I>, idx: usize) -> Option<Self>
    where
        U: 'static,
    {
        let mut r = w.spec(idx).recovery.as_ref()?.take::<T, U>()?;
        let to = r.install(w, idx);
        Some(SyncRecover {
            keep: r.keep,
            to,
            handler: r.handler,
            stage: idx,
        })
    }

    /// Runs `f` on `item` (number `seq` at its source), and on failure does what the handler decides; a
    /// [`RetryAfter`](Decision::RetryAfter) runs `f` again on a copy at
    /// once, as a synchronous stage cannot wait. Returns the output, or the
    /// error (routed with a copy of the item) to fail the item with.
    pub(crate) fn run(
        &self,
        item: T,
        seq: u64,
        cx: &mut TaskCx,
        mut f: impl FnMut(T) -> Result<U, Error>,
    ) -> Result<U, Error> {
        let copy = (self.keep)(&item);
        let mut input = item;
        let mut attempt = 1;
        let mut first_failure = None;
        loop {
            let error = match f(input) {
                Ok(out) => return Ok(out),
                Err(e) => e,
            };
            let first_ms = *first_failure.get_or_insert_with(now_ms);
            let handler = self.handler.as_ref();
            let (policy, error) =
                match verdict(handler, &copy, &error, attempt, true, &cx.shared, self.stage, seq) {
                    Verdict::Replace(out, event) => {
                        cx.event(event);
                        return Ok(out);
                    }
                    // A synchronous stage cannot wait: it runs again at once.
                    Verdict::Again(_) => {
                        attempt += 1;
                        input = (self.keep)(&copy);
                        continue;
                    }
                    Verdict::Route(policy) => (policy, error),
                    Verdict::Panicked(panic) => (None, panic),
                };
            return Err(routed(error, copy, self.to.clone(), policy, attempt, first_ms));
        }
    }
}

/// Spawns a stage's driver over some work (a generic closure, which Rust
/// does not have).
pub(crate) trait SpawnWork<T, U> {
    fn spawn<I, W: Work<T, Out = U>>(self, w: &mut Wiring<I>, work: W);
}

/// Spawns the concurrent driver (`then`, `blocking`), with its item spans.
pub(crate) struct Concurrent<T, D> {
    pub(crate) rx: Receiver<T>,
    pub(crate) down: D,
    pub(crate) idx: usize,
}

impl<T: Send + 'static, U: Send + 'static, D: Push<U>> SpawnWork<T, U> for Concurrent<T, D> {
    fn spawn<I, W: Work<T, Out = U>>(self, w: &mut Wiring<I>, work: W) {
        crate::runtime::spans::spawn_concurrent(w, self.idx, self.rx, work, self.down);
    }
}

/// A stage's work that keeps a copy of each input, asks the stage's
/// handler what to do on failure, and sends what still fails to the
/// failure router with its copy (for the dead-letter sink).
pub(crate) struct Recover<W, T, U> {
    work: Arc<Mutex<W>>,
    keep: fn(&T) -> T,
    to: Option<mpsc::Sender<Letter>>,
    handler: Option<Handler<T, U>>,
    shared: Arc<Shared>,
    stage: usize,
}

impl<W, T, U> Work<T> for Recover<W, T, U>
where
    W: Work<T, Out = U>,
    T: Send + 'static,
    U: Send + 'static,
{
    type Out = U;
    type Fut = Pin<Box<dyn Future<Output = Result<U, Error>> + Send>>;

    fn start(&mut self, item: T, seq: u64) -> Self::Fut {
        let copy = (self.keep)(&item);
        let first = lock(&self.work).start(item, seq);
        let (work, keep, to) = (self.work.clone(), self.keep, self.to.clone());
        let (handler, shared, stage) = (self.handler.clone(), self.shared.clone(), self.stage);
        Box::pin(async move {
            let mut fut = first;
            let mut attempt = 1;
            let mut first_failure = None;
            loop {
                let error = match fut.await {
                    Ok(out) => return Ok(out),
                    Err(e) => e,
                };
                let first_ms = *first_failure.get_or_insert_with(now_ms);
                let (policy, error) = match verdict(
                    handler.as_ref(),
                    &copy,
                    &error,
                    attempt,
                    true,
                    &shared,
                    stage,
                    seq,
                ) {
                    Verdict::Replace(out, event) => {
                        shared.bus.emit(event).await;
                        return Ok(out);
                    }
                    Verdict::Again(delay) => {
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                        fut = lock(&work).start(keep(&copy), seq);
                        continue;
                    }
                    Verdict::Route(policy) => (policy, error),
                    // A panicking handler fails the item with its panic.
                    Verdict::Panicked(panic) => (None, panic),
                };
                return Err(routed(error, copy, to, policy, attempt, first_ms));
            }
        })
    }
}

fn lock<W>(m: &Mutex<W>) -> std::sync::MutexGuard<'_, W> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Puts `copy` (for the dead-letter task `to`, if any), the handler's
/// `policy` and the attempts on a failure's `error`, for `TaskCx::fail`.
pub(crate) fn routed<T: Send + 'static>(
    error: Error,
    copy: T,
    to: Option<mpsc::Sender<Letter>>,
    policy: Option<ErrorPolicy>,
    attempt: u32,
    first_failure_ms: u64,
) -> Error {
    let item = to.is_some().then(|| Box::new(copy) as Box<dyn Any + Send>);
    // A retry policy inside may have made attempts of its own already.
    let attempt = attempt.max(error.attempt());
    error.with_attempt(attempt).routed(Routing {
        item,
        to,
        policy,
        first_failure_ms: Some(first_failure_ms),
    })
}

/// Counts an item its handler replaced and returns the event reporting it.
pub(crate) fn replaced(shared: &Shared, stage: usize, item: u64, error: &Error, attempt: u32) -> EventKind {
    let entry = &shared.stages[stage];
    entry
        .metrics
        .replaced
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    EventKind::ItemReplaced {
        stage: entry.spec.name.clone(),
        item,
        error: error.message().to_owned(),
        error_type: error.kind().as_str().to_owned(),
        attempt,
    }
}

/// What comes of a failed attempt at an item, as the stage's failure
/// handler decides: [`verdict`]'s answer.
pub(crate) enum Verdict<U> {
    /// The handler replaced the item's output: pass it on and emit the
    /// event (the replacement is already counted).
    Replace(U, EventKind),
    /// Run the stage's function again on a copy of the item, after this
    /// delay where the driver can wait (a synchronous stage cannot: it runs
    /// again at once).
    Again(Duration),
    /// Failed for good: route the error with this policy (`None`: the
    /// stage's own).
    Route(Option<ErrorPolicy>),
    /// The handler panicked: route its panic instead of the error.
    Panicked(Error),
}

/// Reads the stage's failure handler on a failed attempt: the one place a
/// [`Decision`] is interpreted. Every driver with a handler (a fused stage,
/// a concurrent stage, a sink's writes and flushes) asks it after each
/// failed attempt and only runs again, waits or routes as it says. Without
/// a handler, the failure is routed by the stage's policy. `may_retry` is
/// false where the failure cannot be attempted again (a sink's flush); a
/// [`RetryAfter`](Decision::RetryAfter) past [`MAX_HANDLER_ATTEMPTS`] or
/// where it may not retry is routed as a [`Fail`](Decision::Fail).
#[allow(clippy::too_many_arguments)]
pub(crate) fn verdict<T, U>(
    handler: Option<&Handler<T, U>>,
    copy: &T,
    error: &Error,
    attempt: u32,
    may_retry: bool,
    shared: &Shared,
    stage: usize,
    seq: u64,
) -> Verdict<U> {
    let Some(h) = handler else {
        return Verdict::Route(None);
    };
    let failure = Failure {
        item: copy,
        error,
        attempt,
    };
    match guard(|| h(&failure)) {
        Err(panic) => Verdict::Panicked(panic),
        Ok(Decision::Replace(out)) => Verdict::Replace(out, replaced(shared, stage, seq, error, attempt)),
        Ok(Decision::RetryAfter(delay)) if may_retry && attempt < MAX_HANDLER_ATTEMPTS => {
            Verdict::Again(delay)
        }
        Ok(Decision::Skip) => Verdict::Route(Some(ErrorPolicy::Skip)),
        Ok(Decision::Fail | Decision::RetryAfter(_)) => Verdict::Route(None),
    }
}

impl<U, N> Pipeline<U, N>
where
    U: Send + 'static,
    N: Recoverable<Out = U>,
{
    /// Sends the items that fail in the last stage to `sink`, as
    /// [`DeadLetter`] records (the item as it entered the stage, the error
    /// and its causes, the stage, attempts and times), and sets the stage's
    /// [`ErrorPolicy`] to [`DeadLetter`](ErrorPolicy::DeadLetter). Panics
    /// in the stage are dead-lettered too, with `error_type` `"panic"`.
    /// The last stage is one that runs an item's work as a future (`then`,
    /// `try_then`, `blocking`, `try_blocking`, keyed `then`/`try_then`) or
    /// the synchronous [`try_map`](Pipeline::try_map) or
    /// [`validate`](Pipeline::validate), or a sink
    /// ([`sink`](Pipeline::sink), [`for_each_async`](Pipeline::for_each_async);
    /// see [`Recoverable`]).
    ///
    /// On a sink, an item is dead-lettered once its write has failed for
    /// good (after the stage's [`retry`](Pipeline::retry) policy, if any);
    /// a flush that fails for good fails every item written since the last
    /// successful flush, and each of them is sent as its own record. The
    /// sink keeps a clone of each item until the flush after its write.
    ///
    /// The stage keeps a clone of each input while it works on it. A failed
    /// item is finalized [`DeadLettered`](crate::Status::DeadLettered) only
    /// once a [`flush`](Sink::flush) after its record's write succeeded; it
    /// counts in the stage's `dead_lettered`, not in `failed`. A dead-letter
    /// sink that refuses a record (write or flush error, or a panic) fails
    /// the item ([`Failed`](crate::Status::Failed), an
    /// [`ItemFailed`](crate::EventKind::ItemFailed) event for stage
    /// `<stage>/dead_letter`) and stops the run with an error naming it.
    /// A slow dead-letter sink slows its stage. By default, no dead-letter
    /// sink.
    ///
    /// An [`on_error`](Pipeline::on_error) after `dead_letter` overrides the
    /// policy (the records are then no longer sent).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{DeadLetter, Pipeline};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let letters = Arc::new(Mutex::new(Vec::new()));
    /// let kept = letters.clone();
    /// let out = Pipeline::from_iter([1u32, 0, 4])
    ///     .then(|x| async move { 12 / x }) // panics on 0
    ///     .dead_letter(weir::sink_fn(move |l: DeadLetter<u32>| {
    ///         kept.lock().unwrap().push((l.item, l.error_type));
    ///         async { Ok::<_, std::io::Error>(()) }
    ///     }))
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [12, 3]);
    /// assert_eq!(*letters.lock().unwrap(), [(0, "panic".to_owned())]);
    ///
    /// // The same on a synchronous stage.
    /// let kept = letters.clone();
    /// let out = Pipeline::from_iter(["1", "x", "3"])
    ///     .try_map(|s: &str| s.parse::<u8>())
    ///     .dead_letter(weir::sink_fn(move |l: DeadLetter<&str>| {
    ///         kept.lock().unwrap().push((l.item.len() as u32, l.error));
    ///         async { Ok::<_, std::io::Error>(()) }
    ///     }))
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [1, 3]);
    /// assert_eq!(letters.lock().unwrap()[1], (1, "invalid digit found in string".to_owned()));
    ///
    /// // And on a sink: the write of 2 fails, its record goes to the dead-letter sink.
    /// let kept = letters.clone();
    /// let report = Pipeline::from_iter([1u32, 2, 3])
    ///     .for_each_async(|x| async move { if x == 2 { Err("disk full") } else { Ok(()) } })
    ///     .dead_letter(weir::sink_fn(move |l: DeadLetter<u32>| {
    ///         kept.lock().unwrap().push((l.item, l.error));
    ///         async { Ok::<_, std::io::Error>(()) }
    ///     }))
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((report.delivered, report.dead_lettered, report.failed), (2, 1, 0));
    /// assert_eq!(letters.lock().unwrap()[2], (2, "disk full".to_owned()));
    /// # });
    /// ```
    pub fn dead_letter<S>(mut self, sink: S) -> Self
    where
        N::In: Clone,
        S: Sink<DeadLetter<N::In>>,
    {
        let spec = self.last();
        let install: Install = Box::new(move |shared: Arc<Shared>, idx: usize| {
            let (tx, rx) = mpsc::channel(shared.config.capacity.max(1));
            let s = &shared.stages[idx];
            let run = DeadLetterRun {
                bus: shared.bus.clone(),
                stage: s.spec.name.clone(),
                run_id: shared.context.id().to_owned(),
                metrics: s.metrics.clone(),
                chunk: shared.config.chunk_size.max(1),
                fail: Box::new({
                    let shared = shared.clone();
                    move |e| shared.fail(e)
                }),
            };
            let task: Task = Box::pin(run_dead_letters(rx, sink, run));
            (task, tx)
        });
        spec.recovery
            .get_or_insert_with(RecoverSpec::default)
            .update::<N::In, U>(|r| r.dead_letter = Some(install));
        spec.policy = Some(ErrorPolicy::DeadLetter);
        spec.dead_letter = true;
        self
    }

    /// Lets `handler` decide what happens to each item that fails in the
    /// last stage: [`Decision::Skip`] it, [`Fail`](Decision::Fail) it (the
    /// stage's [`ErrorPolicy`] applies), [`RetryAfter`](Decision::RetryAfter)
    /// a delay, or [`Replace`](Decision::Replace) it with another output.
    /// The handler sees the item as it entered the stage (the stage keeps a
    /// clone of each input while it works), the error and the attempt.
    /// Panics in the stage reach the handler as errors of kind
    /// [`Panic`](crate::ErrorKind::Panic); a panic in the handler fails the
    /// item. Replaced items are counted in the stage's `replaced` and
    /// reported by an [`ItemReplaced`](crate::EventKind::ItemReplaced)
    /// event. By default, no handler: every failure goes to the error
    /// policy.
    ///
    /// The synchronous stages [`try_map`](Pipeline::try_map) and
    /// [`validate`](Pipeline::validate) cannot wait: there a
    /// [`RetryAfter`](Decision::RetryAfter) ignores its delay and runs the
    /// function again at once, still at most
    /// [`MAX_HANDLER_ATTEMPTS`](crate::MAX_HANDLER_ATTEMPTS) times. Use an
    /// async stage (`try_then`) for failures that need time to clear.
    ///
    /// On a sink the handler sees each item whose write failed for good
    /// (after the stage's [`retry`](Pipeline::retry) policy), and each item
    /// of a flush that failed for good. [`Replace(())`](Decision::Replace)
    /// finalizes the item as delivered (the handler vouches for it, having
    /// stored it elsewhere, say); [`RetryAfter`](Decision::RetryAfter)
    /// writes a copy again after the delay (the sink takes no other item
    /// meanwhile), but after a failed flush it goes to the error policy as
    /// [`Fail`](Decision::Fail) does: the flushed batch cannot be retried
    /// per item (use [`retry`](Pipeline::retry) to flush again).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::{Decision, ErrorKind, Pipeline};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let out = Pipeline::from_iter(["1", "x", "", "4"])
    ///     .try_then(|s: &str| async move { s.parse::<i32>() })
    ///     .on_failure(|f| match *f.item {
    ///         "" => Decision::Replace(0),
    ///         _ if f.attempt < 3 => Decision::RetryAfter(Duration::from_secs(1)),
    ///         _ => Decision::Skip,
    ///     })
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [1, 0, 4]);
    /// # let _ = ErrorKind::Panic;
    ///
    /// // On `try_map`, a retry runs again at once.
    /// let out = Pipeline::from_iter([1u32, 2, 3])
    ///     .try_map(|x| if x == 2 { Err("busy") } else { Ok(x * 10) })
    ///     .on_failure(|f| match f.attempt {
    ///         1 | 2 => Decision::RetryAfter(Duration::from_secs(60)),
    ///         _ => Decision::Replace(f.attempt),
    ///     })
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [10, 3, 30]);
    ///
    /// // On a sink, `Replace(())` counts the item as delivered.
    /// let report = Pipeline::from_iter([1u32, 2])
    ///     .for_each_async(|x| async move { if x == 2 { Err("refused") } else { Ok(()) } })
    ///     .on_failure(|f| if *f.item == 2 { Decision::Replace(()) } else { Decision::Fail })
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((report.delivered, report.failed, report.stages[1].replaced), (2, 0, 1));
    /// # });
    /// ```
    pub fn on_failure<H>(mut self, handler: H) -> Self
    where
        N::In: Clone,
        H: Fn(&Failure<'_, N::In>) -> Decision<U> + Send + Sync + 'static,
    {
        let handler: Handler<N::In, U> = Arc::new(handler);
        self.last()
            .recovery
            .get_or_insert_with(RecoverSpec::default)
            .update::<N::In, U>(|r| r.handler = Some(handler));
        self
    }
}
