//! The bounded channel between tasks. It carries chunks (`Vec`s of items)
//! and counts its capacity in items.
//!
//! Written here rather than taken from tokio or flume because capacity must
//! be counted in items while messages are chunks of varying size, and
//! closing the intake must be atomic with respect to senders (an item whose
//! `push` returned `Ok` must never be dropped by a drain). Measured on the
//! 2-core CI machine, one mutex acquisition per chunk of up to 1024 items
//! is noise next to the work on the items.
//!
//! Receivers hand emptied chunks back ([`Receiver::recycle`]) and senders
//! reuse them ([`Sender::spare`]): a fresh chunk per send cost a cache-cold
//! allocation, freed on another thread (measured on the `weir-tasks` chain:
//! docs/BENCHMARKS.md).

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ack::Token;
use crate::metrics::ChannelStats;

/// A chunk of items with their tokens.
pub(crate) type Chunk<T> = Vec<(T, Token)>;

struct State<T> {
    queue: VecDeque<Chunk<T>>,
    items: usize,
    senders: usize,
    /// No more sends are accepted (intake closed by a drain).
    closed: bool,
    /// The receiver is gone: sends fail and return their chunk.
    rx_gone: bool,
    /// Emptied chunks, kept for senders to fill again.
    spare: Vec<Chunk<T>>,
}

/// Emptied chunks a channel keeps at most.
const SPARE: usize = 4;

struct Inner<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// Signalled when items arrive or the last sender leaves.
    data: Notify,
    /// Signalled when space frees up or the channel closes.
    space: Notify,
    /// Queue depth and waiting times, for the receiving stage's metrics.
    stats: Option<Arc<ChannelStats>>,
}

impl<T> Inner<T> {
    fn set_depth(&self, items: usize) {
        if let Some(s) = &self.stats {
            s.depth.store(items as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock cannot leave the state
        // inconsistent (every critical section is a few field updates).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a send failed; the chunk comes back.
#[derive(Debug)]
pub(crate) enum SendError<T> {
    /// No room for the chunk now (only from `try_send`).
    Full(Chunk<T>),
    /// Closed by a drain, or the receiver is gone.
    Closed(Chunk<T>),
}

pub(crate) struct Sender<T> {
    inner: Arc<Inner<T>>,
}

pub(crate) struct Receiver<T> {
    inner: Arc<Inner<T>>,
}

/// A channel holding at most `capacity` items (a single chunk larger than
/// the capacity is admitted alone into an empty channel).
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    channel_with_stats(capacity, None)
}

/// A [`channel`] that keeps `stats` up to date: its depth on every send
/// and receive, and the time its ends spend waiting (measured only when
/// they do wait, so a channel that never fills or empties costs nothing).
pub(crate) fn channel_with_stats<T>(
    capacity: usize,
    stats: Option<Arc<ChannelStats>>,
) -> (Sender<T>, Receiver<T>) {
    if let Some(s) = &stats {
        s.capacity
            .store(capacity.max(1) as u64, std::sync::atomic::Ordering::Relaxed);
    }
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            items: 0,
            senders: 1,
            closed: false,
            rx_gone: false,
            spare: Vec::new(),
        }),
        capacity: capacity.max(1),
        data: Notify::new(),
        space: Notify::new(),
        stats,
    });
    (Sender { inner: inner.clone() }, Receiver { inner })
}

impl<T> Sender<T> {
    /// Room for `n` more items in state `s`?
    fn fits(&self, s: &State<T>, n: usize) -> bool {
        s.items == 0 || s.items + n <= self.inner.capacity
    }

    fn enqueue(&self, mut s: MutexGuard<'_, State<T>>, chunk: Chunk<T>) {
        s.items += chunk.len();
        s.queue.push_back(chunk);
        self.inner.set_depth(s.items);
        drop(s);
        self.inner.data.notify_one();
    }

    /// Sends `chunk`, waiting for room.
    pub(crate) async fn send(&self, chunk: Chunk<T>) -> Result<(), SendError<T>> {
        if chunk.is_empty() {
            return Ok(());
        }
        let chunk = match self.try_send(chunk) {
            Err(SendError::Full(chunk)) => chunk,
            other => return other,
        };
        let waiting = Instant::now();
        let result = loop {
            let mut space = pin!(self.inner.space.notified());
            space.as_mut().enable();
            {
                let s = self.inner.lock();
                if s.closed || s.rx_gone {
                    break Err(SendError::Closed(chunk));
                }
                if self.fits(&s, chunk.len()) {
                    self.enqueue(s, chunk);
                    break Ok(());
                }
            }
            space.await;
        };
        if let Some(s) = &self.inner.stats {
            s.add_blocked(waiting.elapsed());
        }
        result
    }

    /// Sends `chunk` if there is room now.
    pub(crate) fn try_send(&self, chunk: Chunk<T>) -> Result<(), SendError<T>> {
        let (s, chunk) = self.admit(chunk)?;
        self.enqueue(s, chunk);
        Ok(())
    }

    /// [`try_send`](Self::try_send) that also hands back an emptied chunk
    /// to fill next, if one is kept: one lock for both (callgrind).
    pub(crate) fn try_send_swap(&self, chunk: Chunk<T>) -> Result<Option<Chunk<T>>, SendError<T>> {
        let (mut s, chunk) = self.admit(chunk)?;
        let spare = s.spare.pop();
        self.enqueue(s, chunk);
        Ok(spare)
    }

    /// The lock, if the channel takes `chunk` now; otherwise why not, with
    /// the chunk.
    #[allow(clippy::type_complexity)]
    fn admit(&self, chunk: Chunk<T>) -> Result<(MutexGuard<'_, State<T>>, Chunk<T>), SendError<T>> {
        let s = self.inner.lock();
        if s.closed || s.rx_gone {
            return Err(SendError::Closed(chunk));
        }
        if !self.fits(&s, chunk.len()) {
            return Err(SendError::Full(chunk));
        }
        Ok((s, chunk))
    }

    /// Sends as many items from the front of `chunk` as there is room for
    /// now, strictly within the capacity, and leaves the rest in `chunk`.
    /// Returns `false` if the channel no longer accepts items.
    pub(crate) fn send_fitting(&self, chunk: &mut Chunk<T>) -> bool {
        let s = self.inner.lock();
        if s.closed || s.rx_gone {
            return false;
        }
        let n = self.inner.capacity.saturating_sub(s.items).min(chunk.len());
        if n > 0 {
            let part = if n == chunk.len() {
                std::mem::take(chunk)
            } else {
                chunk.drain(..n).collect()
            };
            self.enqueue(s, part);
        }
        true
    }

    /// An emptied chunk handed back by the receiver, if one is kept.
    pub(crate) fn spare(&self) -> Option<Chunk<T>> {
        self.inner.lock().spare.pop()
    }

    /// Whether the receiver still accepts items.
    pub(crate) fn is_closed(&self) -> bool {
        let s = self.inner.lock();
        s.closed || s.rx_gone
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.inner.lock().senders += 1;
        Sender {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut s = self.inner.lock();
            s.senders -= 1;
            s.senders == 0
        };
        if last {
            self.inner.data.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// The next chunk, or `None` once every sender is gone (or the channel
    /// was closed) and everything queued was received.
    pub(crate) async fn recv(&mut self) -> Option<Chunk<T>> {
        // What is queued is taken without registering for a wake-up first
        // (creating, enabling and dropping a `Notified` was ~7% of a chunk
        // hop's instructions: callgrind); only an empty channel registers,
        // then looks again, so no send is missed.
        match Self::take(&self.inner) {
            Ok(chunk) => return Some(chunk),
            Err(true) => return None,
            Err(false) => {}
        }
        let mut waiting = None;
        let result = loop {
            let mut data = pin!(self.inner.data.notified());
            data.as_mut().enable();
            match Self::take(&self.inner) {
                Ok(chunk) => break Some(chunk),
                Err(true) => break None,
                Err(false) => {
                    waiting.get_or_insert_with(Instant::now);
                    data.await
                }
            }
        };
        if let (Some(since), Some(s)) = (waiting, &self.inner.stats) {
            s.add_idle(since.elapsed());
        }
        result
    }

    /// A chunk if one is queued: `Err(true)` when the channel is finished,
    /// `Err(false)` when it is merely empty.
    pub(crate) fn try_recv(&mut self) -> Result<Chunk<T>, bool> {
        Self::take(&self.inner)
    }

    fn take(inner: &Inner<T>) -> Result<Chunk<T>, bool> {
        let mut s = inner.lock();
        match s.queue.pop_front() {
            Some(chunk) => {
                s.items -= chunk.len();
                inner.set_depth(s.items);
                drop(s);
                inner.space.notify_waiters();
                Ok(chunk)
            }
            None => Err(s.senders == 0 || s.closed),
        }
    }

    /// Hands an emptied chunk back for senders to reuse.
    pub(crate) fn recycle(&self, mut chunk: Chunk<T>) {
        chunk.clear();
        let mut s = self.inner.lock();
        if s.spare.len() < SPARE && !s.rx_gone {
            s.spare.push(chunk);
        }
    }

    /// Refuses further sends; what is queued can still be received.
    pub(crate) fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.space.notify_waiters();
        self.inner.data.notify_one();
    }

    /// Items queued now (takes the channel's lock).
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().items
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let queued = {
            let mut s = self.inner.lock();
            s.rx_gone = true;
            s.items = 0;
            std::mem::take(&mut s.queue)
        };
        self.inner.space.notify_waiters();
        // Queued tokens are dropped here, outside the lock: they report
        // `Aborted` to their sources.
        drop(queued);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(items: std::ops::Range<u64>) -> Chunk<u64> {
        items.map(|i| (i, Token::plain(i))).collect()
    }

    #[tokio::test]
    async fn capacity_is_counted_in_items() {
        let (tx, mut rx) = channel::<u64>(10);
        tx.try_send(chunk(0..6)).unwrap();
        assert!(matches!(tx.try_send(chunk(6..11)), Err(SendError::Full(_))));
        tx.try_send(chunk(6..10)).unwrap();
        assert_eq!(rx.len(), 10);
        assert_eq!(rx.recv().await.unwrap().len(), 6);
        tx.try_send(chunk(10..15)).unwrap();
        assert_eq!(rx.len(), 9);
    }

    #[tokio::test]
    async fn an_oversized_chunk_enters_an_empty_channel_alone() {
        let (tx, mut rx) = channel::<u64>(4);
        tx.send(chunk(0..9)).await.unwrap();
        assert!(matches!(tx.try_send(chunk(9..10)), Err(SendError::Full(_))));
        assert_eq!(rx.recv().await.unwrap().len(), 9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocked_sender_resumes_when_the_receiver_takes_a_chunk() {
        let (tx, mut rx) = channel::<u64>(4);
        tx.send(chunk(0..4)).await.unwrap();
        let sender = tokio::spawn(async move {
            tx.send(chunk(4..8)).await.unwrap();
        });
        tokio::task::yield_now().await;
        assert!(!sender.is_finished());
        assert_eq!(rx.recv().await.unwrap()[0].0, 0);
        sender.await.unwrap();
        assert_eq!(rx.recv().await.unwrap()[0].0, 4);
        assert!(rx.recv().await.is_none(), "all senders gone");
    }

    #[tokio::test]
    async fn close_refuses_new_sends_but_delivers_what_was_accepted() {
        let (tx, mut rx) = channel::<u64>(8);
        tx.send(chunk(0..3)).await.unwrap();
        rx.close();
        assert!(matches!(tx.send(chunk(3..4)).await, Err(SendError::Closed(_))));
        assert!(tx.is_closed());
        assert_eq!(rx.recv().await.unwrap().len(), 3);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn sends_fail_once_the_receiver_is_gone() {
        let (tx, rx) = channel::<u64>(2);
        tx.send(chunk(0..2)).await.unwrap();
        let blocked = tokio::spawn(async move { tx.send(chunk(2..3)).await });
        tokio::task::yield_now().await;
        drop(rx);
        assert!(matches!(blocked.await.unwrap(), Err(SendError::Closed(_))));
    }

    #[tokio::test]
    async fn send_fitting_sends_what_fits_and_keeps_the_rest() {
        let (tx, mut rx) = channel::<u64>(5);
        tx.try_send(chunk(0..3)).unwrap();
        let mut more = chunk(3..7);
        assert!(tx.send_fitting(&mut more));
        assert_eq!(more.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [5, 6]);
        assert!(tx.send_fitting(&mut more), "a full channel takes nothing");
        assert_eq!(more.len(), 2);
        assert_eq!(rx.recv().await.unwrap().len(), 3);
        assert_eq!(rx.recv().await.unwrap().len(), 2);
        rx.close();
        assert!(!tx.send_fitting(&mut more));
    }

    #[tokio::test]
    async fn try_send_swap_sends_and_hands_back_a_spare_chunk() {
        let (tx, mut rx) = channel::<u64>(4);
        assert!(
            matches!(tx.try_send_swap(chunk(0..2)), Ok(None)),
            "nothing recycled yet"
        );
        let got = rx.recv().await.unwrap();
        let ptr = got.as_ptr();
        rx.recycle(got);
        let spare = tx
            .try_send_swap(chunk(2..5))
            .unwrap()
            .expect("the recycled chunk");
        assert_eq!((spare.len(), spare.as_ptr()), (0, ptr));
        assert!(matches!(tx.try_send_swap(chunk(5..7)), Err(SendError::Full(c)) if c.len() == 2));
        assert_eq!(rx.recv().await.unwrap().len(), 3);
        rx.close();
        assert!(matches!(tx.try_send_swap(chunk(7..8)), Err(SendError::Closed(_))));
    }

    #[tokio::test]
    async fn recv_takes_what_is_queued_and_still_wakes_for_what_comes_later() {
        let (tx, mut rx) = channel::<u64>(8);
        tx.try_send(chunk(0..2)).unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 2);
        let later = tokio::spawn(async move { rx.recv().await.map(|c| c.len()) });
        tokio::task::yield_now().await;
        tx.try_send(chunk(2..5)).unwrap();
        assert_eq!(later.await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn emptied_chunks_go_back_to_the_sender() {
        let (tx, mut rx) = channel::<u64>(10);
        assert!(tx.spare().is_none());
        tx.try_send(chunk(0..3)).unwrap();
        let got = rx.recv().await.unwrap();
        let ptr = got.as_ptr();
        rx.recycle(got);
        let spare = tx.spare().expect("a recycled chunk");
        assert!(spare.is_empty() && spare.capacity() >= 3);
        assert_eq!(spare.as_ptr(), ptr, "the same buffer");
        for _ in 0..SPARE + 2 {
            rx.recycle(Vec::with_capacity(1));
        }
        assert_eq!(std::iter::from_fn(|| tx.spare()).count(), SPARE, "bounded");
    }
}
