//! Panic guards: a panic inside a stage's closure becomes that item's
//! failure (`error_type = "panic"`) instead of taking the task down.

use crate::ack::Token;
pub(crate) use crate::error::guard;
use crate::error::Error;

/// An item's token, held while a stage's closure runs on the item inside
/// [`Push::push_run`]. If the closure panics, unwinding drops the holder,
/// which hands the token to `slot` (instead of the token's own drop
/// reporting [`Status::Aborted`]), so the stage can fail that one item as
/// [`guard`] would have and go on with the rest.
pub(crate) struct Held<'a> {
    token: Option<Token>,
    slot: &'a mut Option<Token>,
}

impl<'a> Held<'a> {
    #[inline(always)]
    pub(crate) fn new(token: Token, slot: &'a mut Option<Token>) -> Held<'a> {
        Held {
            token: Some(token),
            slot,
        }
    }

    /// The closure returned: the token goes on with its output.
    #[inline(always)]
    pub(crate) fn release(mut self) -> Token {
        match self.token.take() {
            Some(token) => token,
            None => unreachable!("a held token is released once"),
        }
    }
}

impl Drop for Held<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            *self.slot = Some(token);
        }
    }
}

/// Runs `push` (a [`Push::push_run`] of the items left after a stage's
/// closure) until it returns without a panic. A panic of the closure left
/// its item's token in the slot `push` is given ([`Held`]): `failed` is
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
