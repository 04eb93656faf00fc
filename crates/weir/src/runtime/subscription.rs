//! Lossy event subscriptions for monitors: [`Subscription`].

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::Shared;
use crate::event::{Event, EventKind};
use crate::pipeline::Pipeline;

/// A [`Subscription`] fell behind: `missed` events were dropped for it
/// (the oldest ones), and it goes on with the oldest event it still has.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use weir::{EventKind, EventLevel, PipelineBuilder};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let mut p = PipelineBuilder::new()
///     .subscribe_capacity(2)
///     .event_level(EventLevel::Items) // many events
///     .from_iter(0..10u32)
///     .then(|x| async move { x });
/// let monitor = p.subscribe();
/// p.run().await.unwrap(); // nobody reads the subscription meanwhile
/// let got: Vec<_> = monitor.collect().await;
/// let missed: u64 = got.iter().filter_map(|e| e.as_ref().err()).map(|lagged| lagged.missed).sum();
/// assert!(missed > 0);
/// assert!(matches!(&got.last().unwrap(), Ok(e) if matches!(e.kind, EventKind::PipelineFinished { .. })));
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the subscriber fell behind and missed {missed} events")]
pub struct Lagged {
    /// How many events the subscriber missed.
    pub missed: u64,
}

/// A run's events for a monitor, as a lossy [`Stream`]: made by
/// [`Pipeline::subscribe`] (before the run) or
/// [`Handle::subscribe`](crate::Handle::subscribe) (while it runs).
///
/// Unlike [`Events`](crate::Events), it never slows the pipeline: it holds
/// up to [`subscribe_capacity`](crate::PipelineBuilder::subscribe_capacity)
/// events, and a subscriber that falls further behind misses the oldest
/// ones, told by an `Err(`[`Lagged`]`)` item with how many. The stream ends
/// after [`PipelineFinished`](EventKind::PipelineFinished), which a
/// subscriber taken before the end always gets.
///
/// Events are built only while someone listens: a run without an
/// [`Events`](crate::Events) consumer and without subscribers builds none.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use weir::{EventKind, Pipeline, Subscription};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let mut p = Pipeline::from_iter(0..100u32).map(|x| x + 1);
/// let sub: Subscription = p.subscribe();
/// let monitor = tokio::spawn(sub.filter_map(|e| async move { e.ok() }).collect::<Vec<_>>());
/// p.run().await.unwrap();
/// let seen = monitor.await.unwrap();
/// assert!(matches!(seen[0].kind, EventKind::PipelineStarted { .. }));
/// assert!(matches!(seen.last().unwrap().kind, EventKind::PipelineFinished { .. }));
/// # });
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Subscription {
    inner: BoxStream<'static, Result<Event, Lagged>>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

struct State {
    rx: broadcast::Receiver<Event>,
    /// The run, for subscriptions taken while it runs: one taken just
    /// after the finished event was sent would otherwise wait for the
    /// run's state to be dropped.
    run: Option<Arc<Shared>>,
    /// The run has finished: take what is queued, then end.
    draining: bool,
    done: bool,
}

impl Subscription {
    pub(crate) fn new(rx: broadcast::Receiver<Event>, run: Option<Arc<Shared>>) -> Subscription {
        let state = State {
            rx,
            run,
            draining: false,
            done: false,
        };
        let inner = futures::stream::unfold(state, |mut st| async move {
            loop {
                if st.done {
                    return None;
                }
                let received = if st.draining {
                    match st.rx.try_recv() {
                        Ok(event) => Ok(event),
                        Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                        Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
                    }
                } else if let Some(run) = &st.run {
                    tokio::select! {
                        biased;
                        r = st.rx.recv() => r,
                        // The finished event, if this subscription was
                        // taken in time for it, is queued by now.
                        () = run.finished.raised() => {
                            st.draining = true;
                            continue;
                        }
                    }
                } else {
                    st.rx.recv().await
                };
                return match received {
                    Ok(event) => {
                        st.done = matches!(event.kind, EventKind::PipelineFinished { .. });
                        Some((Ok(event), st))
                    }
                    Err(RecvError::Lagged(missed)) => Some((Err(Lagged { missed }), st)),
                    Err(RecvError::Closed) => None,
                };
            }
        });
        Subscription {
            inner: inner.fuse().boxed(),
        }
    }
}

impl Stream for Subscription {
    type Item = Result<Event, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl<T, P> Pipeline<T, P> {
    /// Subscribes to the run's events, lossily (see [`Subscription`]):
    /// for monitors that must never slow the pipeline. Works with every
    /// way of running it ([`run`](Self::run), [`events`](Self::events),
    /// [`start`](Self::start), …); take as many subscriptions as you like.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{EventKind, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let mut pipeline = Pipeline::from_iter(0..100u32).map(|x| x * 2);
    /// let monitor = pipeline.subscribe();
    /// let report = pipeline.run().await.unwrap();
    /// let events: Vec<_> = monitor.collect().await;
    /// let last = events.last().unwrap().as_ref().unwrap();
    /// assert!(matches!(&last.kind, EventKind::PipelineFinished { report: r, .. } if **r == report));
    /// # });
    /// ```
    pub fn subscribe(&mut self) -> Subscription {
        let capacity = self.config.subscribe_capacity;
        let rx = self
            .config
            .monitors
            .get_or_insert_with(|| broadcast::channel(capacity).0)
            .subscribe();
        Subscription::new(rx, None)
    }
}
