//! The streams a pipeline can be consumed as: its output items
//! ([`Results`]) and its events ([`Events`]).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::channel::Receiver;
use super::{supervise, Controller, Shared, Task};
use crate::ack::Status;
use crate::error::{Error, ErrorKind};
use crate::event::{Event, EventKind};
use crate::metrics::Report;
use crate::runtime::Counters;

/// Aborts a spawned pipeline when dropped.
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<Result<Report, Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) fn joined(r: Result<Result<Report, Error>, tokio::task::JoinError>) -> Result<Report, Error> {
    r.unwrap_or_else(|e| {
        Err(Error::new(
            ErrorKind::Internal,
            format!("the pipeline task failed: {e}"),
        ))
    })
}

/// The output items of a pipeline, as a [`Stream`]: made by
/// [`Pipeline::results`](crate::Pipeline::results).
///
/// Yields `Ok(item)` for each output item (an item is delivered when it is
/// yielded) and, if the pipeline failed, one `Err` at the end. The pipeline
/// starts on the first poll; dropping the stream aborts it. To stop it
/// cleanly, drain it through its [`controller`](Self::controller) and read
/// on: the items in flight still come, then the stream ends.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use weir::{Pipeline, Results};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut results: Results<u8> = Pipeline::from_iter(["1", "2", "x"]).try_map(|s| s.parse::<u8>()).results();
/// assert_eq!(results.next().await.unwrap().unwrap(), 1);
/// assert_eq!(results.next().await.unwrap().unwrap(), 2);
/// let err = results.next().await.unwrap().unwrap_err(); // the pipeline failed: one `Err`, at the end
/// assert_eq!(err.item(), Some(2));
/// assert!(results.next().await.is_none());
/// # });
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Results<T> {
    inner: BoxStream<'static, Result<T, Error>>,
    shared: Arc<Shared>,
}

impl<T> fmt::Debug for Results<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Results").finish_non_exhaustive()
    }
}

struct ResultsState<T> {
    rx: Receiver<T>,
    current: std::vec::IntoIter<(T, crate::ack::Token)>,
    c: Counters,
    start: Option<(Arc<Shared>, Vec<Task>, tokio::sync::oneshot::Receiver<()>)>,
    running: Option<AbortOnDrop>,
    consumed: Option<tokio::sync::oneshot::Sender<()>>,
    done: bool,
}

impl<T: Send + 'static> Results<T> {
    pub(crate) fn new(shared: Arc<Shared>, tasks: Vec<Task>, rx: Receiver<T>, c: Counters) -> Results<T> {
        let (consumed, consumer) = tokio::sync::oneshot::channel();
        let state = ResultsState {
            rx,
            current: Vec::new().into_iter(),
            c,
            start: Some((shared.clone(), tasks, consumer)),
            running: None,
            consumed: Some(consumed),
            done: false,
        };
        let inner = futures::stream::unfold(state, |mut st| async move {
            if let Some((shared, tasks, consumer)) = st.start.take() {
                let run = supervise(shared, tasks, Some(consumer));
                st.running = Some(AbortOnDrop(tokio::spawn(run)));
            }
            loop {
                if let Some((item, token)) = st.current.next() {
                    st.c.items_in += 1;
                    st.c.shared().e2e.delivered(token.seq());
                    token.finish(Status::Delivered);
                    return Some((Ok(item), st));
                }
                st.c.publish();
                if st.done {
                    return None;
                }
                match st.rx.recv().await {
                    Some(chunk) => st.current = chunk.into_iter(),
                    None => {
                        st.done = true;
                        // Everything was taken: counters are published, the
                        // run may end.
                        st.c.publish();
                        if let Some(consumed) = st.consumed.take() {
                            let _ = consumed.send(());
                        }
                        let running = st.running.as_mut()?;
                        if let Err(e) = joined((&mut running.0).await) {
                            return Some((Err(e), st));
                        }
                    }
                }
            }
        });
        Results {
            inner: inner.boxed(),
            shared,
        }
    }

    /// A [`Controller`] of this stream's run: [`drain`](Controller::drain)
    /// or [`drain_within`](Controller::drain_within) stop it cleanly (the
    /// sources stop, the items in flight are still yielded, then the stream
    /// ends), unlike dropping the stream, which aborts it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let mut results = weir::Pipeline::from_stream(futures::stream::iter(0u64..)).results(); // endless
    /// let controller = results.controller();
    /// let mut seen = 0u64;
    /// while let Some(item) = results.next().await {
    ///     assert_eq!(item.unwrap(), seen); // nothing lost, nothing out of order
    ///     seen += 1;
    ///     if seen == 10 {
    ///         controller.drain_within(Duration::from_secs(1));
    ///     }
    /// }
    /// assert!(seen >= 10); // the stream ended: drained, not aborted
    /// # });
    /// ```
    pub fn controller(&self) -> Controller {
        Controller::new(self.shared.clone())
    }
}

impl<T> Stream for Results<T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// The events of a pipeline, as a lossless, backpressured [`Stream`]: made
/// by [`Pipeline::events`](crate::Pipeline::events).
///
/// The pipeline starts on the first poll. A consumer that stops reading
/// stops the pipeline's sources (nothing queues up); dropping the stream
/// aborts the pipeline. To stop it cleanly, drain it through its
/// [`controller`](Self::controller) and read on: the events of the items in
/// flight still come. The last event is
/// [`PipelineFinished`](EventKind::PipelineFinished).
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use weir::{EventKind, Events, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let mut events: Events = Pipeline::from_iter(0..3).events();
/// let mut last = None;
/// while let Some(event) = events.next().await {
///     last = Some(event); // e.g. write it to a log, update a progress bar
/// }
/// match last.unwrap().kind {
///     EventKind::PipelineFinished { report, error } => {
///         assert_eq!(report.delivered, 3);
///         assert_eq!(error, None);
///     }
///     other => panic!("last event: {other:?}"),
/// }
/// # });
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Events {
    feed: EventFeed,
    shared: Arc<Shared>,
    start: Option<BoxFuture<'static, Result<Report, Error>>>,
    running: Option<AbortOnDrop>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("finished", &self.feed.finished)
            .finish_non_exhaustive()
    }
}

impl Events {
    pub(crate) fn new(shared: Arc<Shared>, tasks: Vec<Task>, rx: mpsc::Receiver<Event>) -> Events {
        Events {
            feed: EventFeed::new(rx),
            start: Some(supervise(shared.clone(), tasks, None).boxed()),
            shared,
            running: None,
        }
    }

    /// A [`Controller`] of this stream's run: [`drain`](Controller::drain)
    /// or [`drain_within`](Controller::drain_within) stop it cleanly (the
    /// sources stop, the items in flight finish, and the stream ends with
    /// [`PipelineFinished`](EventKind::PipelineFinished), outcome
    /// [`Drained`](crate::Outcome::Drained)), unlike dropping the stream,
    /// which aborts it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use weir::{EventKind, Outcome, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let mut events = Pipeline::from_stream(futures::stream::repeat(1u8)).events(); // endless
    /// events.controller().drain_within(Duration::from_secs(1));
    /// let last = events.collect::<Vec<_>>().await.pop().unwrap();
    /// let EventKind::PipelineFinished { report, .. } = last.kind else { panic!() };
    /// assert_eq!(report.outcome, Outcome::Drained);
    /// assert_eq!(report.unfinalized, 0);
    /// # });
    /// ```
    pub fn controller(&self) -> Controller {
        Controller::new(self.shared.clone())
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if self.feed.finished {
            return Poll::Ready(None);
        }
        if let Some(start) = self.start.take() {
            self.running = Some(AbortOnDrop(tokio::spawn(start)));
        }
        self.feed.poll_next_unpin(cx)
    }
}

/// The events of a run started with
/// [`start_with_events`](crate::Pipeline::start_with_events): lossless and
/// backpressured like [`Events`], beside the run's [`Handle`](crate::Handle).
/// A feed that is not read holds the run back once its buffer
/// ([`events_capacity`](crate::PipelineBuilder::events_capacity)) is full;
/// dropping it only stops the events (the run goes on). Ends after
/// [`PipelineFinished`](EventKind::PipelineFinished).
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use weir::{EventKind, EventLevel, PipelineBuilder};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let (handle, feed) = PipelineBuilder::new()
///     .event_level(EventLevel::Items)
///     .from_iter(0..5_000u32)
///     .sink(weir::sink_fn(|_: u32| async {}))
///     .start_with_events();
/// let events: Vec<_> = feed.collect().await; // every event, none missed
/// let delivered = events.iter().filter(|e| matches!(e.kind, EventKind::ItemCompleted { .. })).count();
/// assert_eq!(delivered, 5_000);
/// assert_eq!(handle.wait().await.unwrap().delivered, 5_000);
/// # });
/// ```
#[must_use = "streams do nothing unless polled"]
#[derive(Debug)]
pub struct EventFeed {
    rx: mpsc::Receiver<Event>,
    finished: bool,
}

impl EventFeed {
    pub(crate) fn new(rx: mpsc::Receiver<Event>) -> EventFeed {
        EventFeed { rx, finished: false }
    }
}

impl Stream for EventFeed {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(event)) => {
                if matches!(event.kind, EventKind::PipelineFinished { .. }) {
                    self.finished = true;
                }
                Poll::Ready(Some(event))
            }
            Poll::Ready(None) => {
                self.finished = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
