//! The ends of fused segments: a channel to the next task, or one of the
//! terminals the runners attach (discard, collect, fold).

use tokio::sync::oneshot;

use super::channel::{Chunk, SendError, Sender};
use crate::ack::{Status, Token};
use crate::error::Error;
use crate::metrics::Counters;
use crate::stage::{guard, Flow, Push, TaskCx};

/// Buffers a chunk and ships it to the next task.
pub(crate) struct ChannelOut<T> {
    tx: Sender<T>,
    buf: Chunk<T>,
    chunk: usize,
}

impl<T> ChannelOut<T> {
    pub(crate) fn new(tx: Sender<T>, chunk: usize) -> ChannelOut<T> {
        ChannelOut {
            tx,
            buf: Vec::with_capacity(chunk),
            chunk,
        }
    }
}

impl<T: Send + 'static> Push<T> for ChannelOut<T> {
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, _cx: &mut TaskCx) {
        if self.buf.len() < self.buf.capacity() {
            // `Vec::push` cannot grow here, so it makes no call.
            self.buf.push((item, token));
        } else {
            let full = std::mem::take(&mut self.buf);
            let grown = push_grown(full, (item, token));
            // Swapped in, not assigned: an assignment drops the old value
            // through the buffer's address.
            let empty = std::mem::replace(&mut self.buf, grown);
            debug_assert!(empty.capacity() == 0);
        }
    }

    /// One `extend`: for a chunk's drain or a counted range, mapped or
    /// not, `Vec` writes the items in a loop with no capacity test per item
    /// (the caller keeps within [`room`](Push::room), so it does not grow).
    #[inline(always)]
    fn push_run<I: Iterator<Item = (T, Token)>>(&mut self, items: I, _cx: &mut TaskCx) {
        self.buf.extend(items);
    }

    /// It only moves them into the channel.
    #[inline(always)]
    fn finishes_tokens(&self) -> bool {
        false
    }

    #[inline(always)]
    fn settle(&mut self, _pushed: u64) {}

    #[inline(always)]
    fn wants_flush(&self) -> bool {
        self.buf.len() >= self.chunk
    }

    #[inline(always)]
    fn room(&self) -> usize {
        self.chunk.min(self.buf.capacity()).saturating_sub(self.buf.len())
    }

    #[inline(always)]
    fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    async fn flush(&mut self, _cx: &mut TaskCx) -> Flow {
        if self.buf.is_empty() {
            return if self.tx.is_closed() {
                Flow::Stop
            } else {
                Flow::Continue
            };
        }
        let chunk = std::mem::take(&mut self.buf);
        // A refused chunk is dropped here: its items were not delivered and
        // their tokens report `Aborted`.
        match self.tx.try_send_swap(chunk) {
            Ok(spare) => {
                self.buf = spare.unwrap_or_else(|| Vec::with_capacity(self.chunk));
                Flow::Continue
            }
            Err(SendError::Full(chunk)) => {
                self.buf = self.tx.spare().unwrap_or_else(|| Vec::with_capacity(self.chunk));
                match self.tx.send(chunk).await {
                    Ok(()) => Flow::Continue,
                    Err(_) => Flow::Stop,
                }
            }
            Err(SendError::Closed(_)) => Flow::Stop,
        }
    }

    async fn finish(mut self, cx: &mut TaskCx) {
        self.flush(cx).await;
    }
}

/// `chunk` with `item` pushed, growing it: [`ChannelOut::push`]'s rare
/// path. It takes and returns the chunk by value so that no call in a
/// driver's loop is given the buffer's address: otherwise the buffer's
/// length and pointer are stored and reloaded around every item, because
/// the call might read them (callgrind).
#[cold]
#[inline(never)]
fn push_grown<X>(mut chunk: Vec<X>, item: X) -> Vec<X> {
    chunk.push(item);
    chunk
}

/// Accepts and delivers everything (the end of `run` and `events`).
pub(crate) struct Discard {
    c: Option<Counters>,
}

impl Discard {
    pub(crate) fn new(c: Option<Counters>) -> Discard {
        Discard { c }
    }
}

impl<T: Send + 'static> Push<T> for Discard {
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        drop(item);
        cx.shared.births.delivered(token.seq());
        token.finish(Status::Delivered);
    }

    fn settle(&mut self, pushed: u64) {
        if let Some(c) = &mut self.c {
            c.items_in += pushed;
            c.publish();
        }
    }

    /// It never wants a flush and makes nothing downstream: a driver may
    /// push it whole runs (`Push::push_run`).
    #[inline(always)]
    fn room(&self) -> usize {
        usize::MAX
    }

    fn wants_flush(&self) -> bool {
        false
    }

    fn has_pending(&self) -> bool {
        false
    }

    async fn flush(&mut self, _cx: &mut TaskCx) -> Flow {
        Flow::Continue
    }

    async fn finish(self, _cx: &mut TaskCx) {}
}

/// Collects every item into a `Vec` (O(n) memory, on purpose).
pub(crate) struct Collect<T> {
    items: Vec<T>,
    c: Counters,
    tx: oneshot::Sender<Vec<T>>,
}

impl<T> Collect<T> {
    pub(crate) fn new(c: Counters, tx: oneshot::Sender<Vec<T>>) -> Collect<T> {
        Collect {
            items: Vec::new(),
            c,
            tx,
        }
    }
}

impl<T: Send + 'static> Push<T> for Collect<T> {
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, _cx: &mut TaskCx) {
        self.items.push(item);
        token.finish(Status::Delivered);
    }

    fn settle(&mut self, pushed: u64) {
        self.c.items_in += pushed;
        self.c.publish();
    }

    /// It never wants a flush and makes nothing downstream: a driver may
    /// push it whole runs (`Push::push_run`).
    #[inline(always)]
    fn room(&self) -> usize {
        usize::MAX
    }

    fn wants_flush(&self) -> bool {
        false
    }

    fn has_pending(&self) -> bool {
        false
    }

    async fn flush(&mut self, _cx: &mut TaskCx) -> Flow {
        Flow::Continue
    }

    async fn finish(self, _cx: &mut TaskCx) {
        let _ = self.tx.send(self.items);
    }
}

/// Folds every item into an accumulator.
pub(crate) struct Fold<A, F> {
    acc: Option<A>,
    f: F,
    c: Counters,
    tx: oneshot::Sender<Option<A>>,
}

impl<A, F> Fold<A, F> {
    pub(crate) fn new(init: A, f: F, c: Counters, tx: oneshot::Sender<Option<A>>) -> Fold<A, F> {
        Fold {
            acc: Some(init),
            f,
            c,
            tx,
        }
    }
}

impl<T, A, F> Push<T> for Fold<A, F>
where
    A: Send + 'static,
    F: FnMut(A, T) -> A + Send + 'static,
{
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        let Some(acc) = self.acc.take() else {
            // The accumulator was lost to an earlier panic; the run fails.
            self.c.failed += 1;
            return token.finish(Status::Failed);
        };
        match guard(|| (self.f)(acc, item)) {
            Ok(acc) => {
                self.acc = Some(acc);
                token.finish(Status::Delivered);
            }
            Err(e) => {
                self.c.failed += 1;
                let name = &cx.shared.stages[self.c.stage()].spec.name;
                let lost = Error::new(
                    e.kind(),
                    format!("stage `{name}` lost its accumulator: {}", e.message()),
                );
                cx.fail(self.c.stage(), token, e);
                cx.shared.fail(lost);
            }
        }
    }

    fn settle(&mut self, pushed: u64) {
        self.c.items_in += pushed;
        self.c.publish();
    }

    fn wants_flush(&self) -> bool {
        false
    }

    /// A fold never wants a flush and makes nothing downstream.
    #[inline(always)]
    fn room(&self) -> usize {
        usize::MAX
    }

    #[inline(always)]
    fn steady(&self) -> bool {
        self.acc.is_some()
    }

    fn has_pending(&self) -> bool {
        false
    }

    async fn flush(&mut self, _cx: &mut TaskCx) -> Flow {
        Flow::Continue
    }

    async fn finish(self, _cx: &mut TaskCx) {
        let _ = self.tx.send(self.acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::channel::channel;

    #[test]
    fn room_is_what_fits_before_a_flush_without_growing() {
        let (tx, _rx) = channel::<u64>(64);
        let mut out = ChannelOut::new(tx, 8);
        assert_eq!(out.room(), 8);
        out.buf.extend((0..5).map(|i| (i, Token::plain(i))));
        assert_eq!(out.room(), 3);
        assert!(!out.wants_flush());
        out.buf.extend((5..8).map(|i| (i, Token::plain(i))));
        assert_eq!(out.room(), 0);
        assert!(out.wants_flush());
        // A spare chunk smaller than a chunk's worth: room is its capacity.
        out.buf = Vec::with_capacity(3);
        assert_eq!(out.room(), out.buf.capacity().min(8));
        // Past a chunk's worth (several outputs of one input): no room.
        out.buf.extend((0..10).map(|i| (i, Token::plain(i))));
        assert_eq!(out.room(), 0);
    }
}
