use std::any::Any;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Range;

use super::{flush_all, settle};
use crate::ack::Token;
use crate::error::Error;
use crate::runtime::Counters;
use crate::runtime::{guard, Flow, Plan, Push, TaskCx, Wiring};

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
    type Intake = crate::runtime::NoIntake;

    fn attach<D: Push<I::Item>>(self, down: D, w: &mut Wiring<Self::Intake>) {
        if w.shared.in_flight.is_some() {
            // Under `max_in_flight` each item takes room first: the
            // stream source's loop does that; the counted loops here stay
            // free of it.
            let items = futures::stream::iter(self.iter);
            let task =
                super::stream::drive(items, |i| (i, None), down, w.counters(0), w.cx(), w.chunk_size());
            w.spawn_stage(0, task);
            return;
        }
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
// Identical branches on purpose: see `Push::steady`.
#[allow(clippy::if_same_then_else)]
fn pull_chunk<I, D>(
    mut iter: I,
    down: D,
    cx: &mut TaskCx,
    n: u64,
    end: u64,
) -> (I, D, u64, Result<bool, Error>)
where
    I: Iterator + 'static,
    I::Item: 'static,
    D: Push<I::Item>,
{
    // Integer ranges get a counted loop with no end test in `next`: the
    // type test is resolved at compile time (`TypeId`s of concrete types).
    macro_rules! counted {
        ($($t:ty),*) => {$(
            if let Some(range) = (&mut iter as &mut dyn Any).downcast_mut::<Range<$t>>() {
                let (down, n, exhausted) = if down.steady() {
                    pull_range(range, down, cx, n, end)
                } else {
                    pull_range(range, down, cx, n, end)
                };
                return (iter, down, n, Ok(exhausted));
            }
        )*};
    }
    counted!(u64, u32, usize, i64, i32, isize, u16, i16, u8, i8);
    // The same loop twice: in the first copy the compiler knows the chain
    // is steady (a fold holds its accumulator) and drops those per-item
    // tests (`Push::steady`).
    if down.steady() {
        pull_loop(iter, down, cx, n, end)
    } else {
        pull_loop(iter, down, cx, n, end)
    }
}

/// The integer types of ranges that [`pull_range`] counts through.
trait RangeInt: Copy + 'static {
    /// How many values `start..end` holds, saturated at `u64::MAX`.
    fn span(start: Self, end: Self) -> u64;
    /// `self + 1`, wrapping (never past the range's end, which is exclusive).
    fn succ(self) -> Self;
}

macro_rules! range_int {
    ($($t:ty),*) => {$(
        impl RangeInt for $t {
            #[inline(always)]
            fn span(start: $t, end: $t) -> u64 {
                if end > start {
                    u64::try_from(i128::from(end) - i128::from(start)).unwrap_or(u64::MAX)
                } else {
                    0
                }
            }

            #[inline(always)]
            fn succ(self) -> $t {
                self.wrapping_add(1)
            }
        }
    )*};
}
range_int!(u64, u32, i64, i32, u16, i16, u8, i8);

impl RangeInt for usize {
    #[inline(always)]
    fn span(start: usize, end: usize) -> u64 {
        u64::try_from(end.saturating_sub(start)).unwrap_or(u64::MAX)
    }

    #[inline(always)]
    fn succ(self) -> usize {
        self.wrapping_add(1)
    }
}

impl RangeInt for isize {
    #[inline(always)]
    fn span(start: isize, end: isize) -> u64 {
        i64::span(start as i64, end as i64)
    }

    #[inline(always)]
    fn succ(self) -> isize {
        self.wrapping_add(1)
    }
}

/// `value` as the type it is: `A` and `B` are the same type, which the
/// caller knows and the compiler folds away.
#[inline(always)]
fn same<A: 'static, B: 'static>(value: A) -> B {
    let mut value = Some(value);
    match (&mut value as &mut dyn Any).downcast_mut::<Option<B>>() {
        Some(b) => b.take().expect("the value was just set"),
        None => unreachable!("`same` called with two different types"),
    }
}

/// [`pull_loop`] for an integer range: one counted loop, no end test per
/// item (a range's length is known). Returns the chain, the next sequence
/// number and whether the range is used up.
#[inline(always)]
fn pull_range<N: RangeInt, U: 'static, D: Push<U>>(
    range: &mut Range<N>,
    down: D,
    cx: &mut TaskCx,
    n: u64,
    end: u64,
) -> (D, u64, bool) {
    // Without drop glue, as in the concurrent driver's `run_ready`: so the
    // chain's fields (the output's length) stay in registers.
    let mut down = ManuallyDrop::new(down);
    let start = range.start;
    let left = N::span(start, range.end);
    let take = left.min(end.saturating_sub(n));
    // The items the chain has room for (`Push::room`) go down as one
    // iterator (`Push::push_run`), so a `map` and a channel output make
    // one loop of it with the source's, with no per-item flush test; then
    // again with the room left (a filter fills slower than it takes); one
    // at a time when the chain cannot tell.
    // The value is its own induction variable (`x + 1`, not `start + i`):
    // LLVM then computes a map of it once per vector of items and steps
    // the rest (31 instructions per 4 items instead of 37 for the `chain`
    // suite's closures; docs/BENCHMARKS.md).
    let mut x = start;
    let mut i = 0;
    while i < take {
        let room = down.room() as u64;
        if room == 0 {
            while i < take {
                down.push(same::<N, U>(x), Token::plain(n + i), cx);
                x = x.succ();
                i += 1;
                if down.wants_flush() {
                    break;
                }
            }
            break;
        }
        let run = room.min(take - i);
        let first = n + i;
        down.push_run(
            (0..run).map(|k| {
                let value = x;
                x = x.succ();
                (same::<N, U>(value), Token::plain(first + k))
            }),
            cx,
        );
        i += run;
        if down.wants_flush() {
            break;
        }
    }
    range.start = x;
    (ManuallyDrop::into_inner(down), n + i, i == left)
}

#[inline(always)]
fn pull_loop<I, D>(
    iter: I,
    down: D,
    cx: &mut TaskCx,
    mut n: u64,
    end: u64,
) -> (I, D, u64, Result<bool, Error>)
where
    I: Iterator,
    D: Push<I::Item>,
{
    // Without drop glue, as in the concurrent driver's `run_ready`: the
    // user's `next` runs under `guard`, so nothing here unwinds but a bug
    // in weir.
    let mut iter = ManuallyDrop::new(iter);
    let mut down = ManuallyDrop::new(down);
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
    (
        ManuallyDrop::into_inner(iter),
        ManuallyDrop::into_inner(down),
        n,
        result,
    )
}

/// How many items the source pulls before it looks up: checks for a stop,
/// publishes its counts, ships what the chain buffered and lets other tasks
/// run. A chain that asks to flush (a channel to the next task with a
/// chunk's worth) ends a pull early whatever the limit, so the limit
/// matters only for segments that end in the task itself (a fold, a
/// `for_each`): there it starts at the chunk size and doubles, up to
/// [`Pull::MAX_CHUNKS`] chunks, while whole pulls take less than
/// [`Pull::QUICK`], and halves when one takes more than [`Pull::SLOW`]. So
/// cheap stages spend their time in the loop (the work around a pull of
/// one chunk is of the order of a cheap stage's own work per item: the
/// `chain` bench, docs/BENCHMARKS.md) and slow ones still look up every few hundred
/// microseconds. Measured with the standard clock, one read per pull.
#[derive(Debug)]
struct Pull {
    chunk: u64,
    limit: u64,
}

impl Pull {
    /// The limit grows to this many chunks at most.
    const MAX_CHUNKS: u64 = 64;
    /// A pull quicker than this may grow.
    const QUICK: std::time::Duration = std::time::Duration::from_micros(50);
    /// A pull slower than this shrinks.
    const SLOW: std::time::Duration = std::time::Duration::from_micros(400);

    fn new(chunk: u64) -> Pull {
        let chunk = chunk.max(1);
        Pull { chunk, limit: chunk }
    }

    /// Adapts the limit after a pull of `items` that took `took`. A pull
    /// that left events or dead letters to send (failures) resets it: those
    /// wait in the task until the pull ends, so they stay bounded by a
    /// chunk's worth while items keep failing.
    fn adapt(&mut self, items: u64, took: std::time::Duration, buffered: bool) {
        if buffered {
            self.limit = self.chunk;
        } else if items == self.limit && took < Self::QUICK {
            self.limit = (self.limit * 2).min(self.chunk * Self::MAX_CHUNKS);
        } else if took > Self::SLOW {
            self.limit = (self.limit / 2).max(self.chunk);
        }
    }
}

async fn drive<I, D>(mut iter: I, mut down: D, mut c: Counters, mut cx: TaskCx, chunk: usize)
where
    I: Iterator + Send + 'static,
    D: Push<I::Item>,
{
    let shared = cx.shared.clone();
    let mut pull = Pull::new(chunk as u64);
    let mut seq = 0u64;
    let mut ran_out = false;
    loop {
        if shared.stop_pulling() {
            break;
        }
        shared.bus.events_gate().await;
        let start = seq;
        let began = std::time::Instant::now();
        let (it, d, next, pulled) = pull_chunk(iter, down, &mut cx, seq, start + pull.limit);
        (iter, down, seq) = (it, d, next);
        pull.adapt(seq - start, began.elapsed(), cx.has_events());
        ran_out = matches!(pulled, Ok(true));
        let exhausted = match pulled {
            Ok(exhausted) => exhausted,
            Err(e) => {
                shared.source_panicked(seq, e.message());
                true
            }
        };
        c.items_in += seq - start;
        shared.e2e.pulled(start, seq);
        if flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop || exhausted {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Pull;

    #[test]
    fn the_pull_limit_grows_while_quick_and_shrinks_when_slow() {
        let mut p = Pull::new(1024);
        p.adapt(1024, Duration::from_micros(10), false);
        assert_eq!(p.limit, 2048, "a quick full pull doubles");
        p.adapt(100, Duration::from_micros(10), false);
        assert_eq!(
            p.limit, 2048,
            "a pull ended early (flush, end of input) says nothing"
        );
        for _ in 0..20 {
            let limit = p.limit;
            p.adapt(limit, Duration::ZERO, false);
        }
        assert_eq!(p.limit, 1024 * Pull::MAX_CHUNKS, "bounded");
        p.adapt(p.limit, Duration::from_millis(2), false);
        assert_eq!(p.limit, 1024 * Pull::MAX_CHUNKS / 2, "a slow pull halves");
        p.adapt(p.limit, Duration::ZERO, true);
        assert_eq!(p.limit, 1024, "failures to report reset it");
        p.adapt(1024, Duration::ZERO, false);
        for _ in 0..20 {
            p.adapt(7, Duration::from_millis(2), false);
        }
        assert_eq!(p.limit, 1024, "never below the chunk size");
        assert_eq!(Pull::new(0).limit, 1, "a zero chunk size still pulls");
    }
}
