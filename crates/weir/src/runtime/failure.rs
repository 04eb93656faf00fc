//! The failure router: where every failed item goes, and where it is
//! finalized.
//!
//! Whatever failed (a stage's closure returned an error or panicked, a
//! retry gave up, a time limit or an open circuit breaker refused the
//! item, a failure handler decided so), the stage's driver hands the item's
//! token and error to [`TaskCx::fail`], and nowhere else. It records the
//! `item_failed` event, queues the `on_error` hooks, and applies the error
//! policy: `Skip` finalizes the token as [`Status::Failed`], `FailFast`
//! stops the run and finalizes it as [`Status::Halted`] (not done with: a
//! source redelivers it, a checkpoint does not pass it), `DeadLetter` queues the item for the stage's
//! dead-letter task (which finalizes it once the letter is written).
//! [`route`] is the driver's side of it: an output goes downstream, an
//! error comes here.

use super::{Push, TaskCx};
use crate::ack::{Status, Token};
use crate::error::{Error, ErrorKind};
use crate::event::{now_ms, EventKind};
use crate::policy::{ErrorPolicy, Letter, Routing};
use crate::runtime::Counters;

impl TaskCx {
    /// Routes a failed item: records the event and applies the stage's
    /// error policy (or its handler's decision): finalizes it as failed,
    /// or queues its dead letter. The caller counts the failure.
    #[cold]
    pub(crate) fn fail(&mut self, stage: usize, token: Token, mut error: Error) {
        let entry = &self.shared.stages[stage];
        let routing = error.take_routing();
        // A retried item's error already says which attempt failed.
        let attempt = error.attempt().max(1);
        let error = error.at(&entry.spec.name, token.seq(), attempt);
        if self.shared.bus.listening() {
            self.pending.push(EventKind::ItemFailed {
                stage: entry.spec.name.clone(),
                item: error.item().unwrap_or_default(),
                key: token.key(),
                error: error.message().to_owned(),
                error_type: error.kind().as_str().to_owned(),
                attempt: error.attempt(),
                retryable: error.is_retryable(),
            });
        }
        if self.shared.config.hooks.has_on_error() {
            self.errors.push(error.shallow_clone());
        }
        let policy = routing.as_ref().and_then(|r| r.policy).unwrap_or(entry.policy);
        match policy {
            ErrorPolicy::Skip => token.finish(Status::Failed),
            ErrorPolicy::DeadLetter => self.dead_letter(stage, token, error, routing),
            ErrorPolicy::FailFast => {
                token.finish(Status::Halted);
                self.shared.fail(error);
            }
        }
    }

    #[cold]
    fn dead_letter(&mut self, stage: usize, token: Token, error: Error, routing: Option<Routing>) {
        let Some(Routing {
            item: Some(item),
            to: Some(to),
            first_failure_ms,
            ..
        }) = routing
        else {
            // Unreachable through the public API (a stage gets the policy
            // with its sink): fail loudly rather than lose the item.
            token.finish(Status::Halted);
            let name = error.stage().unwrap_or_default().to_owned();
            return self.shared.fail(Error::new(
                ErrorKind::Config,
                format!("stage `{name}` has no dead-letter sink for its failure: {error}"),
            ));
        };
        let now = now_ms();
        let letter = Letter {
            item: std::sync::Mutex::new(item),
            error: error.message().to_owned(),
            causes: error.causes(),
            error_type: error.kind().as_str(),
            item_seq: token.seq(),
            attempts: error.attempt(),
            first_failure_ms: first_failure_ms.unwrap_or(now),
            last_failure_ms: now,
            token,
        };
        self.shared.stages[stage]
            .metrics
            .dead_letter_sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.letters.push((to, letter));
    }
}

/// Routes one result of a stage: an output goes `down`, an error to
/// [`TaskCx::fail`]. Counts the output or the failure.
#[inline]
pub(crate) fn route<U, D: Push<U>>(
    result: Result<U, Error>,
    token: Token,
    c: &mut Counters,
    down: &mut D,
    cx: &mut TaskCx,
) {
    if result.is_ok() {
        c.count_out();
    }
    route_uncounted(result, token, c, down, cx);
}

/// [`route`] for a caller that counts outputs itself.
#[inline(always)]
pub(super) fn route_uncounted<U, D: Push<U>>(
    result: Result<U, Error>,
    token: Token,
    c: &mut Counters,
    down: &mut D,
    cx: &mut TaskCx,
) {
    match result {
        Ok(out) => down.push(out, token, cx),
        Err(e) => {
            c.failed += 1;
            cx.fail(c.stage(), token, e);
        }
    }
}
