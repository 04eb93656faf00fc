//! Running pipelines: the [`Handle`] returned by
//! [`Pipeline::start`](crate::Pipeline::start), pushing items, shutdown.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::channel::{SendError, Sender};
use super::streams::joined;
use super::{Shared, Subscription};
use crate::ack::{Room, Token};
use crate::error::Error;
use crate::metrics::{Outcome, Report};

/// How to stop a running pipeline.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir::{Outcome, Pipeline, Shutdown};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let handle = Pipeline::from_stream(futures::stream::repeat(1u8)).start();
/// let report = handle.shutdown(Shutdown::Abort, Duration::from_secs(1)).await.unwrap();
/// assert_eq!(report.outcome, Outcome::Aborted);
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Stop intake, finish every item already taken in, flush the sinks.
    Drain,
    /// Cancel everything now; items in flight are not delivered and report
    /// [`Status::Aborted`](crate::Status::Aborted) to their sources.
    Abort,
}

/// `push` failed: the pipeline no longer takes items (it was drained,
/// aborted, failed, or has no intake). The item comes back.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir::{Pipeline, Shutdown};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let handle = Pipeline::intake::<String>().start();
/// let pusher = handle.pusher();
/// handle.shutdown(Shutdown::Drain, Duration::from_secs(1)).await.unwrap();
/// let err = pusher.push("late".to_owned()).await.unwrap_err();
/// assert_eq!(err.to_string(), "the pipeline no longer accepts items");
/// assert_eq!(err.0, "late"); // the item comes back
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline no longer accepts items")]
pub struct PushError<T>(pub T);

/// `try_push` failed; the item comes back.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir::{PipelineBuilder, Shutdown, TryPushError};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let handle = PipelineBuilder::new().capacity(1).intake::<u32>().start();
/// let pusher = handle.pusher();
/// assert_eq!(pusher.try_push(1), Ok(()));
/// assert_eq!(pusher.try_push(2), Err(TryPushError::Full(2))); // try later
/// handle.shutdown(Shutdown::Drain, Duration::from_secs(1)).await.unwrap();
/// assert_eq!(pusher.try_push(3), Err(TryPushError::Closed(3))); // never again
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TryPushError<T> {
    /// The intake is at capacity: backpressure, made visible. Retry later
    /// or `push(..).await` to wait.
    #[error("the pipeline's intake is full")]
    Full(T),
    /// The pipeline no longer takes items.
    #[error("the pipeline no longer accepts items")]
    Closed(T),
}

impl<T> TryPushError<T> {
    /// The item that was not pushed.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::PipelineBuilder;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = PipelineBuilder::new().capacity(1).intake::<String>().start();
    /// handle.try_push("a".to_owned()).unwrap();
    /// let b = handle.try_push("b".to_owned()).unwrap_err().into_inner(); // full: the item comes back
    /// assert_eq!(b, "b");
    /// handle.push(b).await.unwrap(); // wait for room instead
    /// assert_eq!(handle.wait().await.unwrap().delivered, 2);
    /// # });
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TryPushError::Full(t) | TryPushError::Closed(t) => t,
        }
    }
}

/// Pushes items into a pipeline started from
/// [`Pipeline::intake`](crate::Pipeline::intake). Clone it to push from
/// several tasks; the intake closes when the handle and every pusher are
/// dropped (or on shutdown).
///
/// # Examples
///
/// ```
/// use weir::{Pipeline, Pusher};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let handle = Pipeline::intake::<u32>().start();
/// let pusher: Pusher<u32> = handle.pusher();
/// let other = pusher.clone();
/// let a = tokio::spawn(async move { pusher.push(1).await.unwrap() });
/// let b = tokio::spawn(async move { other.push_batch([2, 3]).await.unwrap() });
/// a.await.unwrap();
/// b.await.unwrap();
/// assert_eq!(handle.wait().await.unwrap().delivered, 3);
/// # });
/// ```
pub struct Pusher<I> {
    tx: Option<Sender<I>>,
    shared: Arc<Shared>,
}

impl<I> Clone for Pusher<I> {
    fn clone(&self) -> Self {
        Pusher {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<I> fmt::Debug for Pusher<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pusher")
            .field("pipeline", &self.shared.config.name)
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static> Pusher<I> {
    /// The token of the next item pushed, holding its `room` in flight if
    /// the run has a bound.
    fn token(&self, room: Option<Room>) -> Token {
        let seq = self
            .shared
            .next_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match room {
            Some(room) => room.token(seq, None),
            None => Token::plain(seq),
        }
    }

    /// Room for one more item under
    /// [`max_in_flight`](crate::PipelineBuilder::max_in_flight), if the run
    /// has the bound (`Ok(None)` if not), waiting for it; `Err` if the
    /// pipeline stops taking items meanwhile.
    async fn room(&self) -> Result<Option<Room>, ()> {
        let Some(limit) = &self.shared.in_flight else {
            return Ok(None);
        };
        if let Some(room) = limit.try_room() {
            return Ok(Some(room));
        }
        tokio::select! {
            room = limit.room() => Ok(Some(room)),
            () = self.shared.stop_requested() => Err(()),
        }
    }

    /// Room for one more item now: `Some(None)` without a bound, `None`
    /// if the bound is reached.
    fn try_room(&self) -> Option<Option<Room>> {
        match &self.shared.in_flight {
            None => Some(None),
            Some(limit) => limit.try_room().map(Some),
        }
    }

    /// Pushes one item, waiting while the intake is full.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = weir::Pipeline::intake::<u32>().map(|x| x + 1).start();
    /// handle.push(1).await.unwrap();
    /// assert_eq!(handle.wait().await.unwrap().delivered, 1);
    /// # });
    /// ```
    pub async fn push(&self, item: I) -> Result<(), PushError<I>> {
        let Some(tx) = &self.tx else {
            return Err(PushError(item));
        };
        let Ok(room) = self.room().await else {
            return Err(PushError(item));
        };
        tx.send(vec![(item, self.token(room))])
            .await
            .map_err(|e| PushError(take_one(e)))
    }

    /// Pushes one item if the intake has room now, or returns
    /// [`TryPushError::Full`] without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{PipelineBuilder, TryPushError};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = PipelineBuilder::new().capacity(2).intake::<u32>().start();
    /// handle.try_push(1).unwrap();
    /// handle.try_push(2).unwrap();
    /// assert_eq!(handle.try_push(3), Err(TryPushError::Full(3)));
    /// # });
    /// ```
    pub fn try_push(&self, item: I) -> Result<(), TryPushError<I>> {
        let Some(tx) = &self.tx else {
            return Err(TryPushError::Closed(item));
        };
        let Some(room) = self.try_room() else {
            if tx.is_closed() {
                return Err(TryPushError::Closed(item));
            }
            return Err(TryPushError::Full(item));
        };
        tx.try_send(vec![(item, self.token(room))]).map_err(|e| match e {
            SendError::Full(c) => TryPushError::Full(take_one(SendError::Full(c))),
            SendError::Closed(c) => TryPushError::Closed(take_one(SendError::Closed(c))),
        })
    }

    /// Pushes many items in chunks, waiting for room as needed. On failure
    /// the items not taken come back.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = weir::Pipeline::intake::<u32>().start();
    /// handle.push_batch(0..10_000).await.unwrap();
    /// assert_eq!(handle.wait().await.unwrap().delivered, 10_000);
    /// # });
    /// ```
    pub async fn push_batch(&self, items: impl IntoIterator<Item = I>) -> Result<(), PushError<Vec<I>>> {
        let mut items = items.into_iter();
        let Some(tx) = &self.tx else {
            return Err(PushError(items.collect()));
        };
        let size = self.shared.config.chunk_size;
        loop {
            let mut chunk = Vec::new();
            // Under a bound: what there is room for now, at least one item.
            while chunk.len() < size {
                let room = if chunk.is_empty() {
                    match self.room().await {
                        Ok(room) => room,
                        Err(()) => return Err(PushError(items.collect())),
                    }
                } else {
                    match self.try_room() {
                        Some(room) => room,
                        None => break,
                    }
                };
                let Some(item) = items.next() else { break };
                chunk.push((item, self.token(room)));
            }
            if chunk.is_empty() {
                return Ok(());
            }
            if let Err(e) = tx.send(chunk).await {
                let (SendError::Full(c) | SendError::Closed(c)) = e;
                let mut back: Vec<I> = c.into_iter().map(|(i, _)| i).collect();
                back.extend(items);
                return Err(PushError(back));
            }
        }
    }
}

fn take_one<I>(e: SendError<I>) -> I {
    let (SendError::Full(mut c) | SendError::Closed(mut c)) = e;
    c.pop().expect("a one-item chunk").0
}

/// Stops a running pipeline from anywhere: clone it into a signal handler,
/// a supervisor, a test.
///
/// # Examples
///
/// ```
/// use weir::{Outcome, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let handle = Pipeline::from_stream(futures::stream::repeat(1u8))
///     .then(|x| async move { tokio::task::yield_now().await; x })
///     .start();
/// let controller = handle.controller();
/// controller.on_ctrl_c(); // first Ctrl-C drains, second aborts
/// controller.drain();     // or drain from code
/// let report = handle.wait().await.unwrap();
/// assert_eq!(report.outcome, Outcome::Drained);
/// assert_eq!(report.unfinalized, 0);
/// # });
/// ```
#[derive(Clone)]
pub struct Controller {
    shared: Arc<Shared>,
}

impl fmt::Debug for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("pipeline", &self.shared.config.name)
            .finish_non_exhaustive()
    }
}

impl Controller {
    pub(crate) fn new(shared: Arc<Shared>) -> Controller {
        Controller { shared }
    }

    /// Starts a drain: sources stop taking items, everything taken in
    /// finishes, sinks flush.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Outcome, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = Pipeline::from_stream(futures::stream::repeat(1u8)).start(); // never ends on its own
    /// while handle.metrics().pulled < 1000 {
    ///     tokio::task::yield_now().await;
    /// }
    /// handle.controller().drain();
    /// let report = handle.wait().await.unwrap();
    /// assert_eq!(report.outcome, Outcome::Drained);
    /// assert_eq!(report.unfinalized, 0); // everything taken in was finished
    /// assert_eq!(report.delivered, report.pulled);
    /// # });
    /// ```
    pub fn drain(&self) {
        self.shared.drain.raise();
    }

    /// Starts a drain, as [`drain`](Self::drain) does, that must end
    /// within `deadline`: if the run is still going then, what is left is
    /// aborted (the outcome is then [`Outcome::Aborted`] and the report's
    /// [`unfinalized`](Report::unfinalized) counts the items lost). Does
    /// not wait: keep consuming the run (its [`Events`](super::Events) or
    /// [`Results`](super::Results) stream, or [`Handle::wait`]) to see the
    /// in-flight items finish and the final report. Needs a runtime with
    /// timers.
    ///
    /// This is how a consumer of a stream stops a run cleanly: take the
    /// stream's [`controller`](super::Events::controller), drain, and read
    /// on to the end (dropping the stream instead aborts the run).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use weir::{EventKind, Outcome, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let mut events = PipelineBuilder::new()
    ///     .capacity(16) // few items in flight when the drain comes
    ///     .chunk_size(4)
    ///     .from_iter(0..1000u64)
    ///     .then(|x| async move {
    ///         tokio::time::sleep(Duration::from_millis(10)).await;
    ///         x
    ///     })
    ///     .events();
    /// let controller = events.controller();
    /// let mut last = None;
    /// while let Some(event) = events.next().await {
    ///     if let EventKind::Progress(p) = &event.kind {
    ///         if p.completed >= 500 {
    ///             controller.drain_within(Duration::from_secs(5)); // half is enough for now
    ///         }
    ///     }
    ///     last = Some(event); // the items still in flight finish meanwhile
    /// }
    /// let EventKind::PipelineFinished { report, .. } = last.unwrap().kind else { panic!() };
    /// assert_eq!(report.outcome, Outcome::Drained);
    /// assert_eq!(report.unfinalized, 0);
    /// assert!(report.delivered < 1000);
    /// # });
    /// ```
    pub fn drain_within(&self, deadline: Duration) {
        self.drain();
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = this.shared.finished.raised() => {}
                () = tokio::time::sleep(deadline) => this.abort(),
            }
        });
    }

    /// Aborts: every task is cancelled at its next await point.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Outcome, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = Pipeline::from_iter(0..10u32)
    ///     .then(|x| async move {
    ///         std::future::pending::<()>().await; // a call that hangs
    ///         x
    ///     })
    ///     .start();
    /// while handle.metrics().pulled < 10 {
    ///     tokio::task::yield_now().await;
    /// }
    /// handle.controller().abort();
    /// let report = handle.wait().await.unwrap();
    /// assert_eq!(report.outcome, Outcome::Aborted);
    /// assert_eq!(report.unfinalized, 10); // not delivered: a redelivering source sends them again
    /// # });
    /// ```
    pub fn abort(&self) {
        self.shared.drain.raise();
        self.shared.abort.raise();
    }

    /// Turns the first Ctrl-C (SIGINT) into a drain and the second into an
    /// abort. The listener ends with the pipeline.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Outcome, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let handle = Pipeline::from_stream(futures::stream::repeat(1u8)).start(); // runs until stopped
    /// handle.controller().on_ctrl_c();
    /// while handle.metrics().pulled == 0 {
    ///     tokio::task::yield_now().await; // the listener and the source start
    /// }
    /// # #[cfg(unix)]
    /// # {
    /// // The user presses Ctrl-C:
    /// let me = std::process::id().to_string();
    /// assert!(std::process::Command::new("kill").args(["-INT", &me]).status().unwrap().success());
    /// let report = handle.wait().await.unwrap();
    /// assert_eq!(report.outcome, Outcome::Drained);
    /// assert_eq!(report.unfinalized, 0);
    /// # }
    /// # });
    /// ```
    pub fn on_ctrl_c(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let finished = this.shared.finished.raised();
            tokio::pin!(finished);
            for step in 0..2 {
                tokio::select! {
                    () = &mut finished => return,
                    r = tokio::signal::ctrl_c() => {
                        if r.is_err() {
                            return; // no signal handling on this platform
                        }
                        if step == 0 { this.drain() } else { this.abort() }
                    }
                }
            }
        });
    }
}

/// A running pipeline: made by [`Pipeline::start`](crate::Pipeline::start).
///
/// Push items (for [`Pipeline::intake`](crate::Pipeline::intake)
/// pipelines), read [`metrics`](Self::metrics) at any time, and end it with
/// [`wait`](Self::wait) or [`shutdown`](Self::shutdown). Dropping the
/// handle detaches the pipeline: it closes the intake and the pipeline
/// finishes on its own.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir::{Outcome, Pipeline, Shutdown};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let handle = Pipeline::intake::<u64>().filter(|x| x % 2 == 0).start();
/// for i in 0..100 {
///     handle.push(i).await.unwrap();
/// }
/// let report = handle.shutdown(Shutdown::Drain, Duration::from_secs(5)).await.unwrap();
/// assert_eq!(report.outcome, Outcome::Drained);
/// assert_eq!((report.delivered, report.dropped), (50, 50));
/// # });
/// ```
pub struct Handle<I> {
    pusher: Pusher<I>,
    task: JoinHandle<Result<Report, Error>>,
}

impl<I> fmt::Debug for Handle<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("pipeline", &self.pusher.shared.config.name)
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static> Handle<I> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        tx: Option<Sender<I>>,
        task: JoinHandle<Result<Report, Error>>,
    ) -> Handle<I> {
        Handle {
            pusher: Pusher { tx, shared },
            task,
        }
    }

    /// See [`Pusher::push`].
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = weir::Pipeline::intake::<u32>().filter(|x| x % 2 == 0).start();
    /// for i in 0..10 {
    ///     handle.push(i).await.unwrap();
    /// }
    /// let report = handle.wait().await.unwrap();
    /// assert_eq!((report.pulled, report.delivered, report.dropped), (10, 5, 5));
    /// # });
    /// ```
    pub async fn push(&self, item: I) -> Result<(), PushError<I>> {
        self.pusher.push(item).await
    }

    /// See [`Pusher::try_push`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{PipelineBuilder, TryPushError};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = PipelineBuilder::new().capacity(1).intake::<&str>().start();
    /// assert_eq!(handle.try_push("first"), Ok(()));
    /// assert_eq!(handle.try_push("second"), Err(TryPushError::Full("second"))); // shed load, or retry later
    /// while handle.metrics().pulled < 1 {
    ///     tokio::task::yield_now().await; // the pipeline takes the first one in
    /// }
    /// assert_eq!(handle.try_push("second"), Ok(()));
    /// assert_eq!(handle.wait().await.unwrap().delivered, 2);
    /// # });
    /// ```
    pub fn try_push(&self, item: I) -> Result<(), TryPushError<I>> {
        self.pusher.try_push(item)
    }

    /// See [`Pusher::push_batch`].
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = weir::Pipeline::intake::<String>().map(|line| line.len()).start();
    /// let lines = "a\nbb\nccc".lines().map(str::to_owned);
    /// handle.push_batch(lines).await.unwrap();
    /// let report = handle.wait().await.unwrap();
    /// assert_eq!(report.delivered, 3);
    /// # });
    /// ```
    pub async fn push_batch(&self, items: impl IntoIterator<Item = I>) -> Result<(), PushError<Vec<I>>> {
        self.pusher.push_batch(items).await
    }

    /// A pusher for other tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = weir::Pipeline::intake::<u32>().start();
    /// let producers: Vec<_> = (0..4)
    ///     .map(|p| {
    ///         let pusher = handle.pusher();
    ///         tokio::spawn(async move {
    ///             for i in 0..25 {
    ///                 pusher.push(p * 100 + i).await.unwrap();
    ///             }
    ///         }) // the pusher is dropped when its task ends
    ///     })
    ///     .collect();
    /// for p in producers {
    ///     p.await.unwrap();
    /// }
    /// let report = handle.wait().await.unwrap(); // ends once every pusher is dropped
    /// assert_eq!(report.delivered, 100);
    /// # });
    /// ```
    pub fn pusher(&self) -> Pusher<I> {
        self.pusher.clone()
    }

    /// A controller for other tasks (signal handlers, supervisors).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Outcome, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = Pipeline::from_stream(futures::stream::repeat(1u8)).start();
    /// let controller = handle.controller();
    /// let supervisor = tokio::spawn(async move {
    ///     // ... a health check failed, a deploy started ...
    ///     controller.drain();
    /// });
    /// let report = handle.wait().await.unwrap();
    /// supervisor.await.unwrap();
    /// assert_eq!(report.outcome, Outcome::Drained);
    /// # });
    /// ```
    pub fn controller(&self) -> Controller {
        Controller::new(self.pusher.shared.clone())
    }

    /// A snapshot of the counters now: outcome [`Outcome::Running`] until
    /// the end, then how the run ended; at most one chunk behind the truth.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Outcome, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = Pipeline::from_iter(["1", "x"]).try_map(|s| s.parse::<u8>()).start();
    /// while !handle.is_finished() {
    ///     tokio::task::yield_now().await;
    /// }
    /// assert_eq!(handle.metrics().outcome, Outcome::Failed);
    /// # });
    /// ```
    pub fn metrics(&self) -> Report {
        let ended = *self
            .pusher
            .shared
            .outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.pusher.shared.report(ended.unwrap_or(Outcome::Running))
    }

    /// Subscribes to the run's events from now on, lossily: see
    /// [`Subscription`]. A subscription taken after the run ended yields
    /// nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{EventKind, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let handle = Pipeline::intake::<u32>().start();
    /// let mut monitor = handle.subscribe();
    /// handle.push(1).await.unwrap();
    /// let report = handle.wait().await.unwrap();
    /// let mut last = None;
    /// while let Some(event) = monitor.next().await {
    ///     last = Some(event.unwrap());
    /// }
    /// assert!(matches!(last.unwrap().kind, EventKind::PipelineFinished { report: r, .. } if *r == report));
    /// # });
    /// ```
    pub fn subscribe(&self) -> Subscription {
        let shared = &self.pusher.shared;
        let rx = match shared.bus.monitors() {
            Some(m) => {
                let rx = m.subscribe();
                shared.subscribed.raise();
                rx
            }
            // Every started run has the broadcast; an empty one otherwise.
            None => tokio::sync::broadcast::channel(1).1,
        };
        Subscription::new(rx, Some(shared.clone()))
    }

    /// Whether the pipeline has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = weir::Pipeline::from_iter(0..3).start();
    /// assert!(!handle.is_finished()); // nothing ran yet on this thread
    /// while !handle.is_finished() {
    ///     tokio::task::yield_now().await;
    /// }
    /// assert_eq!(handle.metrics().delivered, 3);
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Closes this handle's intake and waits for the pipeline to end (for
    /// an intake pipeline: once every [`Pusher`] is dropped too).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{ErrorKind, Outcome, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = Pipeline::intake::<u32>().start();
    /// handle.push(1).await.unwrap();
    /// let report = handle.wait().await.unwrap(); // closes the intake: the run ends
    /// assert_eq!(report.outcome, Outcome::Completed);
    /// assert_eq!(report.delivered, 1);
    ///
    /// let handle = Pipeline::from_iter(["x"]).try_map(|s| s.parse::<u8>()).start();
    /// assert_eq!(handle.wait().await.unwrap_err().kind(), ErrorKind::Stage);
    /// # });
    /// ```
    pub async fn wait(self) -> Result<Report, Error> {
        let Handle { pusher, task } = self;
        drop(pusher);
        joined(task.await)
    }

    /// Stops the pipeline. [`Shutdown::Drain`] waits up to `deadline` for
    /// in-flight items to finish, then aborts what is left;
    /// [`Shutdown::Abort`] cancels at once and waits up to `deadline` for
    /// the tasks to stop. Returns the final report: its
    /// [`outcome`](Report::outcome) says which happened and
    /// [`unfinalized`](Report::unfinalized) counts the items lost to an
    /// abort.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::{Outcome, Pipeline, PushError, Shutdown};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let handle = Pipeline::intake::<u32>()
    ///     .then(|x| async move {
    ///         if x == 3 {
    ///             std::future::pending::<()>().await; // a call that hangs
    ///         }
    ///         x
    ///     })
    ///     .start();
    /// let late = handle.pusher();
    /// handle.push_batch(0..5).await.unwrap();
    /// while handle.metrics().stages[1].items_out < 3 {
    ///     tokio::task::yield_now().await;
    /// }
    /// let report = handle.shutdown(Shutdown::Drain, Duration::from_secs(5)).await.unwrap();
    /// assert_eq!(report.outcome, Outcome::Aborted); // item 3 kept the drain past its deadline
    /// assert_eq!((report.delivered, report.unfinalized), (3, 2));
    /// assert_eq!(late.push(5).await, Err(PushError(5))); // the intake is closed
    /// # });
    /// ```
    pub async fn shutdown(self, mode: Shutdown, deadline: Duration) -> Result<Report, Error> {
        let controller = self.controller();
        let Handle { pusher, mut task } = self;
        let shared = pusher.shared.clone();
        drop(pusher);
        match mode {
            Shutdown::Drain => controller.drain(),
            Shutdown::Abort => controller.abort(),
        }
        if let Ok(r) = tokio::time::timeout(deadline, &mut task).await {
            return joined(r);
        }
        controller.abort();
        match tokio::time::timeout(deadline, &mut task).await {
            Ok(r) => joined(r),
            // Tasks stuck in user code that never yields: report what is
            // known and leave them detached.
            Err(_) => Ok(shared.report(Outcome::Aborted)),
        }
    }
}
