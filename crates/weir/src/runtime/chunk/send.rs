//! The sending end of a chunk channel, as the last step of a fused
//! segment: it buffers the segment's output into a chunk and sends it to
//! the next task when the driver flushes.

use super::channel::{Chunk, SendError, Sender};
use crate::ack::Token;
use crate::runtime::{Flow, Push, TaskCx};

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

    /// One `extend` for the run.
    #[inline(always)]
    fn takes_runs(&self) -> bool {
        true
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
