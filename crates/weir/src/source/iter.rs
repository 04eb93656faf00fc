use std::fmt;

use super::{settle, ship};
use crate::ack::Token;
use crate::error::Error;
use crate::metrics::Counters;
use crate::stage::{guard, Flow, Plan, Push, TaskCx, Wiring};

/// The source node of [`Pipeline::from_iter`](crate::Pipeline::from_iter).
///
/// # Examples
///
/// ```
/// use weir::{stage::IterSource, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u32, IterSource<std::ops::Range<u32>>> = Pipeline::from_iter(0..3);
/// assert_eq!(p.collect().await.unwrap(), [0, 1, 2]);
/// # });
/// ```
#[must_use]
pub struct IterSource<I> {
    pub(crate) iter: I,
}

impl<I> fmt::Debug for IterSource<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IterSource").finish_non_exhaustive()
    }
}

impl<I> Plan for IterSource<I>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
{
    type Out = I::Item;
    type Intake = crate::stage::NoIntake;

    fn attach<D: Push<I::Item>>(self, down: D, w: &mut Wiring<Self::Intake>) {
        let task = drive(self.iter, down, w.counters(0), w.cx(), w.chunk_size());
        w.spawn_stage(0, task);
    }
}

/// Pushes items from `seq` until it reaches `end`, the iterator ends
/// (`Ok(true)`) or a chunk is buffered downstream; returns the iterator,
/// the chain and the next sequence number.
///
/// A plain function, not part of the async state machine, that takes the
/// iterator and the fused chain *by value*: as locals whose address never
/// escapes, their fields (counters, accumulators, the iterator's position)
/// live in registers for the whole chunk. Behind `&mut` they were stored
/// back to memory on every item, because LLVM may not sink a store past the
/// loop's early exits (docs/BENCHMARKS.md, "What was found and fixed").
#[inline(never)]
fn pull_chunk<I, D>(
    mut iter: I,
    down: D,
    cx: &mut TaskCx,
    mut n: u64,
    end: u64,
) -> (I, D, u64, Result<bool, Error>)
where
    I: Iterator,
    D: Push<I::Item>,
{
    let mut down = down;
    let result = 'pull: {
        // The items the iterator promises (its size hint's lower bound),
        // counted: one loop bound instead of two exits per item.
        let promised = (iter.size_hint().0 as u64).min(end.saturating_sub(n));
        for _ in 0..promised {
            let item = match guard(|| iter.next()) {
                Ok(Some(item)) => item,
                Ok(None) => break 'pull Ok(true),
                Err(e) => break 'pull Err(e),
            };
            down.push(item, Token::plain(n), cx);
            n += 1;
            if down.wants_flush() {
                break 'pull Ok(false);
            }
        }
        loop {
            if n >= end {
                break Ok(false);
            }
            let item = match guard(|| iter.next()) {
                Ok(Some(item)) => item,
                Ok(None) => break Ok(true),
                Err(e) => break Err(e),
            };
            down.push(item, Token::plain(n), cx);
            n += 1;
            if down.wants_flush() {
                break Ok(false);
            }
        }
    };
    (iter, down, n, result)
}

async fn drive<I, D>(mut iter: I, mut down: D, mut c: Counters, mut cx: TaskCx, chunk: usize)
where
    I: Iterator + Send + 'static,
    D: Push<I::Item>,
{
    let shared = cx.shared.clone();
    let chunk = chunk as u64;
    let mut seq = 0u64;
    let mut ran_out = false;
    loop {
        if shared.stop_pulling() {
            break;
        }
        shared.events_gate().await;
        let start = seq;
        let (it, d, next, pulled) = pull_chunk(iter, down, &mut cx, seq, start + chunk);
        (iter, down, seq) = (it, d, next);
        ran_out = matches!(pulled, Ok(true));
        let exhausted = match pulled {
            Ok(exhausted) => exhausted,
            Err(e) => {
                shared.source_panicked(seq, e.message());
                true
            }
        };
        c.items_in += seq - start;
        shared.births.pulled(start, seq);
        if ship(&mut down, &mut c, &mut cx).await == Flow::Stop || exhausted {
            break;
        }
        tokio::task::consume_budget().await;
    }
    settle(&mut down, &mut c);
    if ran_out {
        shared.source_exhausted(seq).await;
    }
    down.finish(&mut cx).await;
}
