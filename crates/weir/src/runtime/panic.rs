//! Panic guards: a panic inside a stage's closure becomes that item's
//! failure (`error_type = "panic"`) instead of taking the task down.

use std::future::Future;

use crate::ack::{hold_acker_panics, Token};
pub(crate) use crate::error::guard;
use crate::error::Error;

/// A run's task, each poll of it under [`hold_acker_panics`]: a source's
/// acker that panics while the task finishes an item (inside a chunk loop
/// that keeps its state without drop glue) has its panic raised when the
/// poll returns, so the task dies with its state whole and tokio drops it
/// (the run's `Shared`, its channels, the chunk's items), instead of
/// unwinding through the loop and leaking all of that.
pub(crate) fn holding_acker_panics(mut task: super::Task) -> impl Future<Output = ()> + Send {
    std::future::poll_fn(move |cx| hold_acker_panics(|| task.as_mut().poll(cx)))
}

/// Runs a stage's closure `f` on an item inside [`Push::push_run`], the
/// item's token beside it: `(f(), token)` when `f` returns. If `f`
/// panics, the token goes to `slot` and the panic unwinds on to the
/// stage's [`run_held`], which fails that one item (instead of the token's
/// own drop reporting [`Status::Aborted`]) and goes on with the rest.
///
/// The panic is caught right here and raised again, so the token stays a
/// plain value on the way through: a guard whose drop hands it over on
/// unwinding kept it in a stack slot, written before and tested after
/// every call of a closure the compiler cannot see through (the `chain`
/// suite's opaque rows, docs/BENCHMARKS.md).
///
/// [`Status::Aborted`]: crate::ack::Status::Aborted
#[inline(always)]
pub(crate) fn held<R>(token: Token, slot: &mut Option<Token>, f: impl FnOnce() -> R) -> (R, Token) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(out) => (out, token),
        Err(payload) => hand_over(token, slot, payload),
    }
}

/// [`held`]'s panic: the token to the stage, the panic on its way (its
/// hook already ran; `resume_unwind` does not run it again).
#[cold]
#[inline(never)]
fn hand_over(token: Token, slot: &mut Option<Token>, payload: Box<dyn std::any::Any + Send>) -> ! {
    let earlier = slot.replace(token);
    debug_assert!(earlier.is_none(), "a stage's slot holds one token at a time");
    drop(earlier);
    std::panic::resume_unwind(payload)
}

/// Runs `push` (a [`Push::push_run`] of the items left after a stage's
/// closure) until it returns without a panic. A panic of the closure left
/// its item's token in the slot `push` is given ([`held`]): `failed` is
/// called with it and the push goes on with the next item. A panic with no
/// token in the slot is not the closure's and unwinds on.
#[inline(always)]
pub(crate) fn run_held<C>(
    mut ctx: C,
    mut push: impl FnMut(&mut C, &mut Option<Token>),
    mut failed: impl FnMut(&mut C, Token, Error),
) {
    loop {
        let mut slot = None;
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| push(&mut ctx, &mut slot)));
        match run {
            Ok(()) => return,
            Err(payload) => match slot.take() {
                Some(token) => failed(&mut ctx, token, Error::panicked(&*payload)),
                None => std::panic::resume_unwind(payload),
            },
        }
    }
}
