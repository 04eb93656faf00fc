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

/// Wraps `item`'s work `fut` in stage `stage`.
#[inline]
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

impl<F, U> Future for Traced<F>
where
    F: Future<Output = Result<U, Error>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        if let (Ok(_), Some(t)) = (&out, this.trace.take()) {
            t.shared.item_completed(t.stage, t.item, t.started);
        }
        Poll::Ready(out)
    }
}
