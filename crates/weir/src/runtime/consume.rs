//! The consumers at the end of a run: what `run` and `events` (discard:
//! every item delivered), `collect` and `fold` attach after the last stage.
//! The other end of a fused segment, a chunk channel to the next task, is
//! [`ChannelOut`](super::chunk::ChannelOut).

use tokio::sync::oneshot;

use super::{guard, Flow, Push, TaskCx};
use crate::ack::{Status, Token};
use crate::error::Error;
use crate::runtime::Counters;

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
        cx.shared.e2e.delivered(token.seq());
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
            return token.finish(Status::Halted);
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
