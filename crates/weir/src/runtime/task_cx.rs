//! A task's context: the run state a task holds, and the events, failure
//! hooks and dead letters it buffered since its last flush.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::Shared;
use crate::error::Error;
use crate::event::EventKind;
use crate::policy::Letter;

/// A task's context: the shared run state and the events it buffered.
#[doc(hidden)]
#[derive(Debug)]
pub struct TaskCx {
    pub(crate) shared: Arc<Shared>,
    pub(super) pending: Vec<EventKind>,
    /// Failures waiting for the `on_error` hooks.
    pub(super) errors: Vec<Error>,
    /// Dead letters waiting to be sent to their stage's dead-letter task.
    pub(super) letters: Vec<(mpsc::Sender<Letter>, Letter)>,
}

impl TaskCx {
    pub(crate) fn new(shared: Arc<Shared>) -> TaskCx {
        TaskCx {
            shared,
            pending: Vec::new(),
            errors: Vec::new(),
            letters: Vec::new(),
        }
    }

    /// Buffers an event, sent at the task's next flush.
    pub(crate) fn event(&mut self, kind: EventKind) {
        if self.shared.bus.listening() {
            self.pending.push(kind);
        }
    }

    /// Whether events are waiting to be sent.
    pub(crate) fn has_events(&self) -> bool {
        !self.pending.is_empty()
            || !self.errors.is_empty()
            || !self.letters.is_empty()
            || self.shared.bus.has_overflow()
    }

    /// Sends the buffered events, waiting for the consumer (lossless).
    pub(crate) async fn flush_events(&mut self) {
        for (to, letter) in std::mem::take(&mut self.letters) {
            // Refused only when the dead-letter task was aborted: the
            // letter's token then reports `Aborted`.
            let _ = to.send(letter).await;
        }
        if !self.errors.is_empty() {
            self.run_error_hooks().await;
        }
        // Events sent without waiting (custom, per item) go first: they
        // happened before this task's buffered ones were sent.
        self.shared.bus.flush_overflow().await;
        if self.pending.is_empty() {
            return;
        }
        for kind in std::mem::take(&mut self.pending) {
            self.shared.bus.emit(kind).await;
        }
    }
}

impl TaskCx {
    #[cold]
    async fn run_error_hooks(&mut self) {
        let shared = self.shared.clone();
        for error in std::mem::take(&mut self.errors) {
            let ctx = shared.context.for_stage(error.stage().unwrap_or_default());
            if let Err(e) = shared.config.hooks.on_error_all(&error, &ctx).await {
                shared.fail(e);
            }
        }
    }
}
