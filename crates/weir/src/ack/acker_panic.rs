//! An acker's panic, held back until the poll of the run's task that
//! finished the item returns.
//!
//! An [`Acker`] is a source's code, called by whichever task finishes an
//! item, mostly from inside a chunk loop (a filter dropping the item, a
//! sink or consumer delivering it). Those loops keep their state (the
//! rest of the chunk, the chain downstream with its output channel and
//! the run's `Shared`) in `ManuallyDrop` locals, so that it stays in
//! registers (`runtime/chunk/receive.rs`, `runtime/concurrent.rs`,
//! `source/iter.rs`), on the premise that nothing in them unwinds but a
//! bug in weir. An acker's panic unwinding through one leaked that state,
//! and with it the whole run (its `Context`, its channels, the nodes of
//! the items left in the chunk), for as long as the process lived.
//!
//! So each poll of a run's task runs under [`hold_acker_panics`]: an
//! acker's panic is caught where the acker is called ([`finalize`]), the
//! item's finalization completes (its room in flight is given back), the
//! loop goes on, and the panic is raised again when the poll returns,
//! outside every loop, where the task's state is whole: the task dies
//! with it, tokio drops it, and the run fails as for any task that panics
//! (`runtime::supervise`). Outside such a poll (an [`Ack`](super::Ack)
//! dropped by a user, a consumer of `results()`), an acker's panic
//! unwinds at once, as any panic does.

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use super::{Acker, Status};

type Payload = Box<dyn Any + Send>;

thread_local! {
    /// Whether this thread is inside a poll under [`hold_acker_panics`].
    static HOLDING: Cell<bool> = const { Cell::new(false) };
    /// The first acker panic held back during that poll.
    static HELD: Cell<Option<Payload>> = const { Cell::new(None) };
}

/// Runs `poll` (one poll of a run's task) with the panics of ackers held
/// back, then raises the first of them, if any, once `poll` has returned.
/// Nests: an inner scope raises only the panics held back inside it.
pub(crate) fn hold_acker_panics<R>(poll: impl FnOnce() -> R) -> R {
    let scope = Scope {
        holding: HOLDING.replace(true),
        held: HELD.take(),
    };
    let out = poll();
    let held = HELD.take();
    drop(scope);
    if let Some(payload) = held {
        resume_unwind(payload);
    }
    out
}

/// The enclosing scope's state, put back when a scope ends (also when its
/// poll unwinds of its own accord).
struct Scope {
    holding: bool,
    held: Option<Payload>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        HOLDING.set(self.holding);
        HELD.set(self.held.take());
    }
}

/// Tells `acker` that item `id` ended with `status`. If the acker panics
/// inside [`hold_acker_panics`], the panic is held back (the first one;
/// later ones are dropped) and `None` is returned, as when it returns;
/// outside, its payload is returned for the caller to raise with
/// [`resume_unwind`] once its own bookkeeping is done.
pub(super) fn finalize(acker: &dyn Acker, id: u64, status: Status) -> Option<Payload> {
    let payload = catch_unwind(AssertUnwindSafe(|| acker.finalize(id, status))).err()?;
    if !HOLDING.get() {
        return Some(payload);
    }
    let first = HELD.take().unwrap_or(payload);
    HELD.set(Some(first));
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::{Ack, InFlight, Token};
    use std::sync::{Arc, Mutex};

    /// An acker that panics on `bad` and records every other id.
    fn acker(bad: u64) -> (Arc<dyn Acker>, Arc<Mutex<Vec<u64>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let acker: Arc<dyn Acker> = Arc::new(move |id, _| {
            assert_ne!(id, bad, "acker broke on {id}");
            s.lock().unwrap().push(id);
        });
        (acker, seen)
    }

    fn message(payload: Payload) -> String {
        crate::error::Error::panicked(&*payload).to_string()
    }

    #[test]
    fn a_held_panic_is_raised_after_the_poll_which_finishes_the_rest_first() {
        let (a, seen) = acker(2);
        let tokens: Vec<Token> = (1..=3).map(|i| Token::acked(i, Ack::new(i, a.clone()))).collect();
        let after = Arc::new(Mutex::new(false));
        let raised = catch_unwind(AssertUnwindSafe(|| {
            hold_acker_panics(|| {
                for t in tokens {
                    t.finish(Status::Delivered);
                }
                *after.lock().unwrap() = true;
            })
        }))
        .expect_err("raised when the poll returned");
        assert!(message(raised).contains("acker broke on 2"));
        // The poll went on past the panic: items 1 and 3 were told.
        assert!(*after.lock().unwrap());
        assert_eq!(*seen.lock().unwrap(), [1, 3]);
        // Nothing is left held for the thread's next poll.
        assert_eq!(hold_acker_panics(|| 7), 7);
    }

    #[test]
    fn outside_a_poll_an_acker_panic_unwinds_at_once_after_giving_back_its_room() {
        let (a, seen) = acker(1);
        let room = InFlight::new(1);
        let t = room
            .try_room()
            .expect("room for one")
            .token(1, Some(Ack::new(1, a)));
        assert!(room.try_room().is_none(), "the item holds the only room");
        let raised = catch_unwind(AssertUnwindSafe(|| t.finish(Status::Delivered))).expect_err("unwinds");
        assert!(message(raised).contains("acker broke on 1"));
        assert!(seen.lock().unwrap().is_empty());
        assert!(room.try_room().is_some(), "the room came back");
    }

    #[test]
    fn nested_scopes_raise_their_own_panics() {
        let (a, _) = acker(5);
        let inner = catch_unwind(AssertUnwindSafe(|| {
            hold_acker_panics(|| {
                drop(Token::acked(5, Ack::new(5, a.clone())));
                let inner = catch_unwind(AssertUnwindSafe(|| hold_acker_panics(|| ())));
                assert!(inner.is_ok(), "the outer scope's panic is not the inner one's");
            })
        }));
        assert!(message(inner.expect_err("the outer scope raises")).contains("acker broke on 5"));
    }
}
