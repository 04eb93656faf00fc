//! Per-item events of concurrent stages ([`EventLevel::Items`]).
//!
//! [`EventLevel::Items`]: crate::EventLevel::Items

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::time::Instant;

use super::Shared;
use crate::error::Error;

struct Trace {
    shared: Arc<Shared>,
    stage: usize,
    item: u64,
    started: Instant,
}

pin_project_lite::pin_project! {
    /// One item's work, with its [`ItemStarted`] event sent when it was
    /// made and its [`ItemCompleted`] event when it succeeds, if per-item
    /// events were wanted then; a plain pass-through otherwise.
    ///
    /// [`ItemStarted`]: crate::EventKind::ItemStarted
    /// [`ItemCompleted`]: crate::EventKind::ItemCompleted
    pub(crate) struct Traced<F> {
        #[pin]
        inner: F,
        trace: Option<Box<Trace>>,
    }
}

/// A concurrent stage's work with per-item events: drivers use it only when
/// the run's event level is [`EventLevel::Items`], so that other runs pay
/// nothing per item (the wrapper's drop glue alone showed on a chain of
/// ready `then` stages: the `io` and `observe` benches).
///
/// [`EventLevel::Items`]: crate::EventLevel::Items
pub(crate) struct ItemEvents<W> {
    pub(crate) work: W,
    pub(crate) shared: Arc<Shared>,
    pub(crate) stage: usize,
}

impl<T, W: crate::runtime::Work<T>> crate::runtime::Work<T> for ItemEvents<W> {
    type Out = W::Out;
    type Fut = Traced<W::Fut>;

    fn start(&mut self, item: T, seq: u64) -> Traced<W::Fut> {
        traced(&self.shared, self.stage, seq, self.work.start(item, seq))
    }
}

/// Wraps `item`'s work `fut` in stage `stage`. Inlined: on the per-item
/// path of every concurrent stage, where per-item events are usually off
/// (out of line it showed on a chain of ready `then` stages: the `io`
/// bench).
#[inline(always)]
pub(crate) fn traced<F>(shared: &Arc<Shared>, stage: usize, item: u64, fut: F) -> Traced<F> {
    let trace = shared.item_started(stage, item).map(|started| {
        Box::new(Trace {
            shared: shared.clone(),
            stage,
            item,
            started,
        })
    });
    Traced { inner: fut, trace }
}

#[cold]
#[inline(never)]
fn completed<U>(out: &Result<U, Error>, t: &Trace) {
    if out.is_ok() {
        // The work gets the item's number only, not its token: no key.
        t.shared.item_completed(t.stage, t.item, None, t.started);
    }
}

impl<F, U> Future for Traced<F>
where
    F: Future<Output = Result<U, Error>>,
{
    type Output = F::Output;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        if let Some(t) = this.trace.take() {
            completed(&out, &t);
        }
        Poll::Ready(out)
    }
}
