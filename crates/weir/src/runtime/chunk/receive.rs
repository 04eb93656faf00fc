//! The receiving end of a chunk channel: the task that takes the chunks
//! a channel brings and pushes them into the fused segment after it.

use std::mem::ManuallyDrop;

use super::channel::Receiver;
use super::flush_all;
use crate::ack::Token;
use crate::runtime::Counters;
use crate::runtime::{settle, Flow, Push, TaskCx};

/// A task that forwards the chunks of `rx` into the fused stages `down`
/// until every sender is gone or everything downstream is: the task of a
/// [`Boundary`] and of a fan-out's branch. Counts the items it forwards as
/// taken in (a boundary's; a fan-out counts what it sends its branches
/// itself) and, on explicit counters, out.
pub(crate) async fn forward<T, D>(
    rx: Option<Receiver<T>>,
    mut down: D,
    mut c: Counters,
    mut cx: TaskCx,
    count_in: bool,
) where
    T: Send + 'static,
    D: Push<T>,
{
    if let Some(mut rx) = rx {
        // Mostly no item of the run is acknowledged (in-memory sources):
        // the tokens then go on rebuilt as visibly plain, so that the
        // stages' finishes compile to nothing and their loops only carry
        // the tokens (`Token::assume_plain`), unless nothing here finishes
        // them anyway (a `map` into the next channel).
        let plain = !cx.shared.acked.load(std::sync::atomic::Ordering::Relaxed) && down.finishes_tokens();
        while let Some(mut chunk) = rx.recv().await {
            let (d, flow) = if plain {
                let items = chunk.drain(..).map(|(item, token)| (item, token.assume_plain()));
                push_chunk(items, down, &mut c, &mut cx, count_in).await
            } else {
                push_chunk(chunk.drain(..), down, &mut c, &mut cx, count_in).await
            };
            down = d;
            rx.recycle(chunk);
            // Flushed after every chunk, full or not: besides shipping a
            // part-filled output (after a filter), this publishes the
            // counts, sends the events and dead letters, and notices a
            // closed downstream. Holding the output while more input was
            // queued saved nothing measurable (callgrind) and could hold
            // an item back for as long as the upstream kept the queue full.
            if flow == Flow::Stop || flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
                break;
            }
        }
    }
    settle(&mut down, &mut c);
    down.finish(&mut cx).await;
}

/// Pushes a chunk's `items` into `down`, flushing whenever it asks to,
/// and hands `down` back with `Stop` once everything downstream is gone.
/// Counts the items in (if `count_in`) and out.
#[inline(always)]
async fn push_chunk<T, D, I>(
    mut items: I,
    mut down: D,
    c: &mut Counters,
    cx: &mut TaskCx,
    count_in: bool,
) -> (D, Flow)
where
    T: Send + 'static,
    D: Push<T>,
    I: ExactSizeIterator<Item = (T, Token)> + Send,
{
    loop {
        let (it, d, taken) = push_ready(items, down, cx);
        (items, down) = (it, d);
        if count_in {
            c.items_in += taken;
        }
        c.add_out(taken);
        if items.len() == 0 {
            return (down, Flow::Continue);
        }
        // `down` wants a flush before it takes more.
        if flush_all(&mut down, c, cx).await == Flow::Stop {
            return (down, Flow::Stop);
        }
    }
}

/// Pushes items into `down` until they are used up or `down` wants a
/// flush. The same loop twice: in the first copy the compiler knows the
/// chain is steady ([`Push::steady`]: a fold holds its accumulator) and
/// drops those per-item tests.
#[inline(always)]
#[allow(clippy::if_same_then_else)] // the point: one loop compiled twice
fn push_ready<T, D, I>(items: I, down: D, cx: &mut TaskCx) -> (I, D, u64)
where
    D: Push<T>,
    I: ExactSizeIterator<Item = (T, Token)>,
{
    if down.steady() {
        push_loop(items, down, cx)
    } else {
        push_loop(items, down, cx)
    }
}

/// [`push_ready`]'s loop: when `down` has room for the whole rest
/// ([`Push::room`]), one run ([`Push::push_run`]) whose only test is the
/// iterator's end; when it has room for some, as many in a run, then the
/// same again with the room that is left (a filter's output fills slower
/// than its input drains); when it cannot tell, one at a time, testing for
/// a flush after each. Takes `down` by value and hands it back,
/// without drop glue, so its fields (the output's length) stay in
/// registers for the whole chunk, as in the source's `pull_range` and the
/// concurrent driver's `run_ready` (whose comment says why nothing here
/// may unwind: a source's acker, called when a stage finishes an item,
/// has its panic held till the poll returns). Returns how many it took.
#[inline(always)]
fn push_loop<T, D, I>(items: I, down: D, cx: &mut TaskCx) -> (I, D, u64)
where
    D: Push<T>,
    I: ExactSizeIterator<Item = (T, Token)>,
{
    let mut items = ManuallyDrop::new(items);
    let mut down = ManuallyDrop::new(down);
    let before = items.len();
    loop {
        let room = down.room();
        if room >= items.len() {
            down.push_run(&mut *items, cx);
            break;
        }
        if room == 0 {
            // `down` cannot tell (it may make several items of one).
            for (item, token) in &mut *items {
                down.push(item, token, cx);
                if down.wants_flush() {
                    break;
                }
            }
            break;
        }
        // Room for some: as many in one run, then look again (a filter
        // fills less than its room, so the rounds shrink geometrically).
        down.push_run((&mut *items).take(room), cx);
        if down.wants_flush() {
            break;
        }
    }
    let taken = (before - items.len()) as u64;
    (
        ManuallyDrop::into_inner(items),
        ManuallyDrop::into_inner(down),
        taken,
    )
}
