//! The event bus of one run: builds [`Event`]s (stamped against the run's
//! start) and delivers them to the lossless [`Events`](crate::Events)
//! stream and the lossy [`Subscription`](crate::Subscription)s.
//!
//! [`EventBus`] is a cheap handle (the event level inline, the rest behind
//! an `Arc`): the run state holds one, and so does each part that emits
//! events without needing the rest of the run, such as a stage's circuit
//! breaker (`policy/breaker.rs`) or its dead-letter task
//! (`policy/dead_letter.rs`). A [`Context`](crate::Context) holds a
//! [`WeakEventBus`], since the caller may keep it after the run.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::{now_ms, Event, EventKind, EventLevel, EVENT_VERSION};

/// Sends one run's events; clones send to the same run.
#[derive(Debug, Clone)]
pub(crate) struct EventBus {
    /// Inline, so that the per-item check ([`items_on`](Self::items_on))
    /// reads no further than the handle while per-item events are off.
    level: EventLevel,
    inner: Arc<Inner>,
}

/// An [`EventBus`] that does not keep the run's channels open.
#[derive(Debug, Clone)]
pub(crate) struct WeakEventBus {
    level: EventLevel,
    inner: Weak<Inner>,
}

#[derive(Debug)]
struct Inner {
    pipeline: String,
    run_id: String,
    started: Instant,
    events: Option<mpsc::Sender<Event>>,
    /// The lossy broadcast behind [`Subscription`](crate::Subscription)s:
    /// set for runs that can have subscribers.
    monitors: Option<broadcast::Sender<Event>>,
    /// Events sent without waiting ([`emit_now`](EventBus::emit_now))
    /// that did not fit the events channel; the next flush sends them, in
    /// order.
    overflow: Mutex<VecDeque<Event>>,
    overflowing: AtomicBool,
}

impl EventBus {
    /// The bus of run `run_id` of pipeline `pipeline`, started at
    /// `started`: events go to `events` (the lossless stream, if the run
    /// has one) and to `monitors`' receivers; `level` says how much is
    /// built.
    pub(crate) fn new(
        pipeline: String,
        run_id: String,
        started: Instant,
        level: EventLevel,
        events: Option<mpsc::Sender<Event>>,
        monitors: Option<broadcast::Sender<Event>>,
    ) -> EventBus {
        EventBus {
            level,
            inner: Arc::new(Inner {
                pipeline,
                run_id,
                started,
                events,
                monitors,
                overflow: Mutex::new(VecDeque::new()),
                overflowing: AtomicBool::new(false),
            }),
        }
    }

    /// A handle that does not keep the bus alive.
    pub(crate) fn downgrade(&self) -> WeakEventBus {
        WeakEventBus {
            level: self.level,
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// The event `kind`, stamped now.
    pub(crate) fn event(&self, kind: EventKind) -> Event {
        Event {
            version: EVENT_VERSION,
            pipeline: self.inner.pipeline.clone(),
            run_id: self.inner.run_id.clone(),
            ts_ms: now_ms(),
            elapsed_ms: self.inner.started.elapsed().as_millis() as u64,
            kind,
        }
    }

    /// Whether the run has the lossless [`Events`](crate::Events) stream.
    pub(crate) fn has_stream(&self) -> bool {
        self.inner.events.is_some()
    }

    /// Whether anyone listens: the [`Events`](crate::Events) stream or a
    /// subscriber. Nothing is built otherwise.
    pub(crate) fn listening(&self) -> bool {
        self.inner.events.is_some()
            || self
                .inner
                .monitors
                .as_ref()
                .is_some_and(|m| m.receiver_count() > 0)
    }

    /// Whether per-item events are wanted now (see
    /// [`EventLevel::Items`]).
    #[inline(always)]
    pub(crate) fn items_on(&self) -> bool {
        self.level >= EventLevel::Items && self.listening()
    }

    /// The broadcast for [`Subscription`](crate::Subscription)s, when the
    /// run can have them.
    pub(crate) fn monitors(&self) -> Option<&broadcast::Sender<Event>> {
        self.inner.monitors.as_ref()
    }

    /// Passes `event` to the subscribers (never waits) and returns it for
    /// the lossless stream, if there is one.
    fn broadcast(&self, event: Event) -> Option<Event> {
        let inner = &*self.inner;
        if let Some(m) = &inner.monitors {
            if m.receiver_count() > 0 {
                if inner.events.is_none() {
                    let _ = m.send(event);
                    return None;
                }
                let _ = m.send(event.clone());
            }
        }
        inner.events.as_ref().map(|_| event)
    }

    /// Sends an event, waiting while the consumer is behind.
    pub(crate) async fn emit(&self, kind: EventKind) {
        if !self.listening() {
            return;
        }
        let event = self.event(kind);
        self.flush_overflow().await;
        if let (Some(event), Some(tx)) = (self.broadcast(event), &self.inner.events) {
            // A consumer that went away just stops receiving.
            let _ = tx.send(event).await;
        }
    }

    /// Sends an event without waiting, from code that cannot wait (a
    /// [`Context`](crate::Context), a future being polled). Still
    /// lossless: what does not fit the events channel waits in an overflow
    /// queue that the task's next flush (`TaskCx::flush_events`, the
    /// sources' [`events_gate`](Self::events_gate)) sends, waiting for the
    /// consumer; every driver flushes at least once a chunk, so the queue
    /// stays about a chunk's worth of events long.
    pub(crate) fn emit_now(&self, kind: EventKind) {
        if !self.listening() {
            return;
        }
        let Some(mut event) = self.broadcast(self.event(kind)) else {
            return;
        };
        let Some(tx) = &self.inner.events else { return };
        let mut overflow = self.inner.overflow.lock().unwrap_or_else(|p| p.into_inner());
        if overflow.is_empty() {
            match tx.try_send(event) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(e)) => event = e,
            }
        }
        overflow.push_back(event);
        self.inner.overflowing.store(true, Ordering::Release);
    }

    /// Whether [`emit_now`](Self::emit_now) left events to send.
    pub(crate) fn has_overflow(&self) -> bool {
        self.inner.overflowing.load(Ordering::Acquire)
    }

    /// Sends the events [`emit_now`](Self::emit_now) could not, waiting
    /// for the consumer.
    pub(crate) async fn flush_overflow(&self) {
        let Some(tx) = &self.inner.events else { return };
        while self.has_overflow() {
            let permit = tx.reserve().await;
            // Popped and sent under the lock: an `emit_now` meanwhile
            // queues behind it instead of overtaking it.
            let mut overflow = self.inner.overflow.lock().unwrap_or_else(|p| p.into_inner());
            match permit {
                Ok(permit) => {
                    if let Some(event) = overflow.pop_front() {
                        permit.send(event);
                    }
                }
                // The consumer went away: nobody will read these.
                Err(_) => overflow.clear(),
            }
            if overflow.is_empty() {
                self.inner.overflowing.store(false, Ordering::Release);
            }
        }
    }

    /// Waits while the event consumer is behind, so that a consumer that
    /// stops reading stops the sources instead of growing a queue.
    pub(crate) async fn events_gate(&self) {
        if let Some(tx) = &self.inner.events {
            self.flush_overflow().await;
            if tx.capacity() == 0 {
                let _ = tx.reserve().await;
            }
        }
    }
}

impl WeakEventBus {
    /// A handle that sends nowhere: for a [`Context`](crate::Context)
    /// outside any run.
    pub(crate) fn none() -> WeakEventBus {
        WeakEventBus {
            level: EventLevel::default(),
            inner: Weak::new(),
        }
    }

    /// The bus, while its run's state is alive.
    pub(crate) fn upgrade(&self) -> Option<EventBus> {
        Some(EventBus {
            level: self.level,
            inner: self.inner.upgrade()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus(capacity: usize) -> (EventBus, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity);
        let bus = EventBus::new(
            "p".to_owned(),
            "p-1".to_owned(),
            Instant::now(),
            EventLevel::Items,
            Some(tx),
            None,
        );
        (bus, rx)
    }

    fn custom(n: u32) -> EventKind {
        EventKind::Custom {
            stage: None,
            name: n.to_string(),
            data: serde_json::Value::Null,
        }
    }

    fn name(e: &Event) -> String {
        match &e.kind {
            EventKind::Custom { name, .. } => name.clone(),
            other => panic!("{other:?}"),
        }
    }

    /// Guards the stamps: the bus knows the run's start, not the wall clock.
    #[tokio::test(start_paused = true)]
    async fn events_are_stamped_with_the_time_since_the_run_started() {
        let (bus, mut rx) = bus(4);
        tokio::time::advance(std::time::Duration::from_millis(1500)).await;
        bus.emit(custom(0)).await;
        let e = rx.recv().await.unwrap();
        assert_eq!(
            (e.pipeline.as_str(), e.run_id.as_str(), e.elapsed_ms),
            ("p", "p-1", 1500)
        );
    }

    /// Guards `emit_now`'s losslessness and order: what does not fit the
    /// channel waits in the overflow queue, and a later `emit` sends it
    /// first.
    #[tokio::test]
    async fn emit_now_keeps_what_does_not_fit_and_in_order() {
        let (bus, mut rx) = bus(1);
        for n in 0..3 {
            bus.emit_now(custom(n));
        }
        assert!(bus.has_overflow());
        let later = tokio::spawn({
            let bus = bus.clone();
            async move { bus.emit(custom(3)).await }
        });
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(name(&rx.recv().await.unwrap()));
        }
        later.await.unwrap();
        assert_eq!(got, ["0", "1", "2", "3"]);
        assert!(!bus.has_overflow());
    }

    /// Guards the weak handle: it does not keep the run's stream open.
    #[tokio::test]
    async fn a_weak_handle_does_not_keep_the_stream_open() {
        let (bus, mut rx) = bus(1);
        let weak = bus.downgrade();
        assert!(weak.upgrade().is_some_and(|b| b.items_on()));
        drop(bus);
        assert!(weak.upgrade().is_none());
        assert!(rx.recv().await.is_none());
        assert!(WeakEventBus::none().upgrade().is_none());
    }
}
