//! The driver of concurrent stages (`then`, `blocking`): a window of up to
//! `n` items in flight, emitted in input order or as they finish.
//!
//! In-flight work keeps being polled while the driver waits for room
//! downstream, so a slow consumer never "snoozes" running futures (the
//! known deadlock of `futures`' `buffered` when the consumer awaits
//! something else between polls).

use std::collections::VecDeque;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use super::channel::Receiver;
use super::failure::route_uncounted;
use super::item_events::ItemEvents;
use super::{flush_all, route, settle, Flow, Push, TaskCx};
use crate::ack::Token;
use crate::error::Error;
use crate::event::EventLevel;
use crate::runtime::Counters;

/// What a concurrent stage does with one item.
pub(crate) trait Work<T>: Send + 'static {
    type Out: Send + 'static;
    type Fut: Future<Output = Result<Self::Out, Error>> + Send + 'static;

    /// Whether [`start`](Work::start) uses its `seq` argument. Work that
    /// ignores it says so, and drivers then pass 0 without reading the
    /// item's token: for an acknowledged token that read is an atomic
    /// load, which the compiler keeps even when its value goes unused
    /// (seen under callgrind on the `chain` bench's `weir-tasks`).
    const SEQ: bool = true;

    /// Starts the work on `item`, the item numbered `seq` at its source
    /// (for work that reports on items as it goes). Panics must come back
    /// as errors.
    fn start(&mut self, item: T, seq: u64) -> Self::Fut;

    /// Starts the work on `item` in `slot` and polls it once, as the
    /// windowed driver does with every item. The default is `start` and a
    /// poll; work with retries overrides it so that an item whose
    /// attempts finish at once needs nothing shared, and retries a failed
    /// one at once when it may (`Resilient`). A pending future is left in
    /// the slot, to be polled there until it is done.
    #[inline(always)]
    fn start_in(
        &mut self,
        mut slot: Pin<&mut Option<Self::Fut>>,
        item: T,
        seq: u64,
        task: &mut Context<'_>,
    ) -> Poll<Result<Self::Out, Error>> {
        slot.set(Some(self.start(item, seq)));
        slot.as_pin_mut().expect("just set").poll(task)
    }
}

/// The `seq` to start `W`'s work with: the token's number, or 0 for work
/// that does not use it ([`Work::SEQ`]).
#[inline(always)]
pub(crate) fn seq_of<T, W: Work<T>>(token: &Token) -> u64 {
    if W::SEQ {
        token.seq()
    } else {
        0
    }
}

/// In-flight work, ordered or not.
enum InFlight<F: Future> {
    Ordered(FuturesOrdered<F>),
    Unordered(FuturesUnordered<F>),
}

impl<F: Future> InFlight<F> {
    fn push(&mut self, f: F) {
        match self {
            InFlight::Ordered(s) => s.push_back(f),
            InFlight::Unordered(s) => s.push(f),
        }
    }

    fn len(&self) -> usize {
        match self {
            InFlight::Ordered(s) => s.len(),
            InFlight::Unordered(s) => s.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<F: Future> Stream for InFlight<F> {
    type Item = F::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        match self.get_mut() {
            InFlight::Ordered(s) => s.poll_next_unpin(cx),
            InFlight::Unordered(s) => s.poll_next_unpin(cx),
        }
    }
}

pub(crate) async fn run_concurrent<T, W, D>(
    rx: Receiver<T>,
    work: W,
    down: D,
    c: Counters,
    cx: TaskCx,
    concurrency: usize,
    ordered: bool,
) where
    T: Send + 'static,
    W: Work<T>,
    D: Push<W::Out>,
{
    // Output is counted as it is routed: items in flight are neither out
    // nor failed yet.
    let c = c.into_explicit();
    c.set_active(0);
    if cx.shared.config.event_level >= EventLevel::Items {
        let work = ItemEvents {
            work,
            shared: cx.shared.clone(),
            stage: c.stage(),
        };
        drive(rx, work, down, c, cx, concurrency, ordered).await
    } else {
        drive(rx, work, down, c, cx, concurrency, ordered).await
    }
}

async fn drive<T, W, D>(
    rx: Receiver<T>,
    work: W,
    down: D,
    c: Counters,
    cx: TaskCx,
    concurrency: usize,
    ordered: bool,
) where
    T: Send + 'static,
    W: Work<T>,
    D: Push<W::Out>,
{
    if concurrency <= 1 {
        serial(rx, work, down, c, cx).await
    } else {
        windowed(rx, work, down, c, cx, concurrency, ordered).await
    }
}

/// The windowed driver times one item in this many when futures are ready
/// at once (the serial driver times the first of each run of ready items);
/// pending ones are always timed. Reading the clock is dear on a
/// virtual machine next to a ready future's trip: sampled more often, it
/// slowed a chain of ready `then` stages (the `io` bench's ready rows,
/// docs/BENCHMARKS.md).
const TIME_EVERY: u64 = 1024;

/// A pinned place for one in-flight future, allocated once per task.
pub(crate) type Slot<F> = Pin<Box<Option<F>>>;

/// Where [`run_ready`] stopped.
enum Ready {
    /// The chunk is used up.
    Done,
    /// A chunk's worth is buffered downstream.
    Flush,
    /// The future in the slot is pending; this is its item's token, and
    /// its start if it is timed.
    Pending(Token, Option<Instant>),
}

/// Runs the chunk's items through futures that are ready at once, in a
/// plain loop (no trip through the task's state machine per item), each
/// future set into the task's one pinned slot and polled there. Stops at
/// the first pending future, which stays in the slot.
///
/// Like the source's `pull_chunk`, it takes the downstream chain and the
/// counters *by value* and hands them back: as locals whose address never
/// escapes, the counters and the output buffer's length stay in registers
/// for the whole chunk. Behind `&mut` they were stored back on every item,
/// because LLVM may not sink a store past the loop's early exits
/// (docs/BENCHMARKS.md, "What was found and fixed").
#[inline(never)]
fn run_ready<T, W, D, I>(
    items: I,
    slot: &mut Slot<W::Fut>,
    work: &mut W,
    down: D,
    mut c: Counters,
    cx: &mut TaskCx,
    task: &mut Context<'_>,
) -> (I, D, Counters, Ready)
where
    W: Work<T>,
    D: Push<W::Out>,
    I: ExactSizeIterator<Item = (T, Token)>,
{
    // Locals without drop glue: a local that is dropped when a call in the
    // loop unwinds has its address taken by that drop, so every update of
    // it (the chunk's position, the output's length) is stored to memory
    // before each call that might unwind (callgrind). Nothing here unwinds
    // but a bug in weir (user code runs under `guard`, a source's acker
    // has its panic held till the poll returns: `ack/acker_panic.rs`, and
    // allocation failure aborts); if it did, the task would die with its
    // items, as in an abort, and leak what these locals hold (the output
    // channel, the run's `Shared`).
    let mut items = ManuallyDrop::new(items);
    let mut down = ManuallyDrop::new(down);
    // Items taken are counted after the loop, from the chunk's length (a
    // per-item count was 2 instructions per item); outputs from those and
    // the failures (a per-item count was a memory update per item).
    let before = items.len();
    let failed_before = c.failed;
    // The first item of each run is timed (a run is up to a chunk, 1024
    // items by default): reading the clock per item would cost as much as
    // a ready future's whole trip, and even a per-item "is this one
    // sampled?" test was 10% of it (callgrind).
    let mut started = Some(Instant::now());
    // One item: `Some(pending)` if its work did not finish at once.
    macro_rules! step {
        ($item:expr, $token:expr) => {{
            let token = $token;
            // The finished future of the previous item stays in the slot
            // until this one replaces it: one `set` per item, not two.
            // `start_in` lets work with retries retry a failed attempt in
            // place.
            match work.start_in(slot.as_mut(), $item, seq_of::<T, W>(&token), task) {
                Poll::Ready(result) => {
                    if let Some(t) = started.take() {
                        c.record_latency(t.elapsed());
                    }
                    route_uncounted(result, token, &mut c, &mut *down, cx);
                    None
                }
                Poll::Pending => Some(token),
            }
        }};
    }
    let ready = 'run: {
        // First the items the chain downstream has room for (`Push::room`)
        // in a counted loop without the per-item flush test, as the
        // source's `pull_range` does; then one at a time. An item that
        // fails pushes nothing, so the room is an upper bound.
        let fast = items.len().min(down.room());
        for _ in 0..fast {
            let Some((item, token)) = items.next() else {
                break 'run Ready::Done;
            };
            if let Some(token) = step!(item, token) {
                break 'run Ready::Pending(token, started);
            }
        }
        if fast > 0 && down.wants_flush() {
            break 'run Ready::Flush;
        }
        loop {
            let Some((item, token)) = items.next() else {
                break Ready::Done;
            };
            if let Some(token) = step!(item, token) {
                break Ready::Pending(token, started);
            }
            if down.wants_flush() {
                break Ready::Flush;
            }
        }
    };
    let taken = (before - items.len()) as u64;
    c.items_in += taken;
    let routed = taken - u64::from(matches!(ready, Ready::Pending(..)));
    c.add_out(routed - (c.failed - failed_before));
    (
        ManuallyDrop::into_inner(items),
        ManuallyDrop::into_inner(down),
        c,
        ready,
    )
}

/// Polls the future in the slot to completion.
async fn finish_slot<F: Future>(slot: &mut Slot<F>) -> F::Output {
    let out =
        futures::future::poll_fn(|task| slot.as_mut().as_pin_mut().expect("a pending future").poll(task))
            .await;
    slot.set(None);
    out
}

/// The current task's waker, to poll ready futures with outside the
/// state machine ([`run_ready`]). Taken afresh for every run, so it is the
/// waker of the poll in progress.
pub(crate) async fn current_waker() -> std::task::Waker {
    futures::future::poll_fn(|task| Poll::Ready(task.waker().clone())).await
}

/// One item at a time: no set, no allocation per item. While an item's
/// future is pending, what is buffered downstream is shipped concurrently.
async fn serial<T, W, D>(mut rx: Receiver<T>, mut work: W, mut down: D, mut c: Counters, mut cx: TaskCx)
where
    T: Send + 'static,
    W: Work<T>,
    D: Push<W::Out>,
{
    let mut slot: Slot<W::Fut> = Box::pin(None);
    'run: while let Some(mut chunk) = rx.recv().await {
        let mut items = chunk.drain(..);
        loop {
            let waker = current_waker().await;
            let step = {
                let mut task = Context::from_waker(&waker);
                let (it, d, counters, step) =
                    run_ready(items, &mut slot, &mut work, down, c, &mut cx, &mut task);
                (items, down, c) = (it, d, counters);
                step
            };
            drop(waker);
            match step {
                Ready::Done => break,
                Ready::Flush => {}
                Ready::Pending(token, started) => {
                    // The slot's item is pending: time it, whatever the sample.
                    let started = started.unwrap_or_else(Instant::now);
                    c.set_active(1);
                    let result = if down.has_pending() || cx.has_events() {
                        // Ship what is ready while this item works.
                        let (r, flow) =
                            futures::join!(finish_slot(&mut slot), flush_all(&mut down, &mut c, &mut cx));
                        if flow == Flow::Stop {
                            break 'run;
                        }
                        r
                    } else {
                        settle(&mut down, &mut c);
                        finish_slot(&mut slot).await
                    };
                    c.set_active(0);
                    c.record_latency(started.elapsed());
                    route(result, token, &mut c, &mut down, &mut cx);
                }
            }
            if down.wants_flush() && flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
                break 'run;
            }
        }
        drop(items);
        rx.recycle(chunk);
        if flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
            break;
        }
    }
    settle(&mut down, &mut c);
    down.finish(&mut cx).await;
}

/// An item's work that was pending when it started, in the window: its
/// pinned slot (given back to the driver's pool when it is done), its token
/// and when it started.
struct Running<F> {
    slot: Option<Slot<F>>,
    token: Option<Token>,
    started: Instant,
}

/// Work in the window: running, or (ordered stages only) finished at once
/// but waiting behind earlier items.
enum Entry<F: Future> {
    Running(Running<F>),
    Ready(Option<(F::Output, Token)>),
}

/// A finished item: its result, its token, how long it took (if timed)
/// and the slot it ran in (to reuse).
type Finished<F> = (
    <F as Future>::Output,
    Token,
    Option<std::time::Duration>,
    Option<Slot<F>>,
);

impl<F: Future> Unpin for Entry<F> {}

impl<F: Future> Future for Entry<F> {
    type Output = Finished<F>;

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Finished<F>> {
        match self.get_mut() {
            Entry::Running(r) => {
                let slot = r.slot.as_mut().expect("polled after completion");
                let out = std::task::ready!(slot.as_mut().as_pin_mut().expect("a running future").poll(task));
                slot.set(None);
                let token = r.token.take().expect("polled after completion");
                Poll::Ready((out, token, Some(r.started.elapsed()), r.slot.take()))
            }
            Entry::Ready(r) => {
                let (out, token) = r.take().expect("polled after completion");
                Poll::Ready((out, token, None, None))
            }
        }
    }
}

/// Up to `n` items in flight, emitted in input order or as they finish.
///
/// Every item's future is first polled in place, in a pinned slot from a
/// pool: one that is ready at once is routed without entering the window
/// (no allocation, no trip through `FuturesOrdered`, which dominated a
/// chain of ready `then`s with `concurrency(16)`: the `io` bench), unless
/// an ordered stage still has earlier items in flight, in which case it
/// waits in the window as a finished entry. Pending futures enter the
/// window in their slot.
async fn windowed<T, W, D>(
    mut rx: Receiver<T>,
    mut work: W,
    mut down: D,
    mut c: Counters,
    mut cx: TaskCx,
    n: usize,
    ordered: bool,
) where
    T: Send + 'static,
    W: Work<T>,
    D: Push<W::Out>,
{
    let mut set = if ordered {
        InFlight::Ordered(FuturesOrdered::new())
    } else {
        InFlight::Unordered(FuturesUnordered::new())
    };
    let mut pool: Vec<Slot<W::Fut>> = Vec::new();
    let mut done = VecDeque::new();
    let mut input = Vec::<(T, Token)>::new().into_iter();
    let mut input_done = false;
    loop {
        // 1. Start what the window allows from input already here; route
        // what is ready at once.
        let waker = current_waker().await;
        {
            let mut task = Context::from_waker(&waker);
            if set.is_empty() && done.is_empty() && input.len() > 0 {
                // Nothing in flight: items whose work is ready at once go
                // straight through in the serial driver's plain loop, up to
                // the first pending one, which enters the window in its
                // slot. Per item, the window's bookkeeping in this task's
                // state machine cost ~4x the loop (callgrind, the `retry`
                // bench's `weir-no-failures`: docs/BENCHMARKS.md).
                let mut slot = pool.pop().unwrap_or_else(|| Box::pin(None));
                let (it, d, counters, step) =
                    run_ready(input, &mut slot, &mut work, down, c, &mut cx, &mut task);
                (input, down, c) = (it, d, counters);
                match step {
                    Ready::Pending(token, started) => set.push(Entry::Running(Running {
                        slot: Some(slot),
                        token: Some(token),
                        started: started.unwrap_or_else(Instant::now),
                    })),
                    Ready::Done | Ready::Flush => pool.push(slot),
                }
            }
            while set.len() + done.len() < n && !down.wants_flush() {
                if let Some((item, token)) = input.next() {
                    c.items_in += 1;
                    // Ready work is timed one item in `TIME_EVERY`;
                    // pending work always.
                    let started = (c.items_in % TIME_EVERY == 1).then(Instant::now);
                    let mut slot = pool.pop().unwrap_or_else(|| Box::pin(None));
                    // Started and polled once in the slot: `start_in` lets
                    // work with retries keep ready items off shared state.
                    match work.start_in(slot.as_mut(), item, seq_of::<T, W>(&token), &mut task) {
                        Poll::Ready(result) => {
                            // The finished future stays in the slot until
                            // the next item's replaces it: one `set` per
                            // item, not two (`Resilient` restarts a
                            // finished one in place).
                            pool.push(slot);
                            let took = started.map(|t| t.elapsed());
                            if done.is_empty() && (!ordered || set.is_empty()) {
                                if let Some(took) = took {
                                    c.record_latency(took);
                                }
                                route(result, token, &mut c, &mut down, &mut cx);
                                if down.wants_flush() {
                                    break;
                                }
                            } else if ordered {
                                // Behind earlier items still in flight.
                                set.push(Entry::Ready(Some((result, token))));
                            } else {
                                // Behind results that finished earlier.
                                done.push_back((result, token, took, None));
                            }
                        }
                        Poll::Pending => set.push(Entry::Running(Running {
                            slot: Some(slot),
                            token: Some(token),
                            started: started.unwrap_or_else(Instant::now),
                        })),
                    }
                } else if input_done {
                    break;
                } else {
                    match rx.try_recv() {
                        Ok(chunk) => {
                            input = chunk.into_iter();
                            if set.is_empty() && done.is_empty() {
                                break; // for the plain loop above
                            }
                        }
                        Err(finished) => {
                            input_done = finished;
                            break;
                        }
                    }
                }
            }
        }
        drop(waker);
        // 2. Collect what finished, without waiting.
        futures::future::poll_fn(|task| {
            while let Poll::Ready(Some(r)) = Pin::new(&mut set).poll_next(task) {
                done.push_back(r);
            }
            Poll::Ready(())
        })
        .await;
        // 3. Route it downstream, up to a chunk.
        while let Some((result, token, took, slot)) = done.pop_front() {
            if let Some(took) = took {
                c.record_latency(took);
            }
            if let Some(slot) = slot {
                pool.push(slot);
            }
            route(result, token, &mut c, &mut down, &mut cx);
            if down.wants_flush() {
                break;
            }
        }
        if input_done && set.is_empty() && done.is_empty() && input.len() == 0 {
            break;
        }
        // 4. Ship what is buffered, still polling the work in flight.
        c.set_active(set.len() as u64);
        if down.has_pending() || cx.has_events() {
            let mut flush = pin!(flush_all(&mut down, &mut c, &mut cx));
            let flow = loop {
                tokio::select! {
                    biased;
                    flow = &mut flush => break flow,
                    Some(r) = set.next(), if !set.is_empty() => done.push_back(r),
                }
            };
            if flow == Flow::Stop {
                break;
            }
            continue;
        }
        if set.len() + done.len() < n && input.len() > 0 {
            continue; // room in the window and input in hand: start more
        }
        settle(&mut down, &mut c);
        // 5. Wait for a result, or for input if the window has room. Here
        // `done` is empty and either the window is full (so work is in
        // flight) or no input is in hand: one branch is always enabled.
        let room = set.len() + done.len() < n && !input_done;
        tokio::select! {
            Some(r) = set.next(), if !set.is_empty() => done.push_back(r),
            chunk = rx.recv(), if room => match chunk {
                Some(chunk) => input = chunk.into_iter(),
                None => input_done = true,
            },
        }
    }
    settle(&mut down, &mut c);
    // The last round's failures were routed after the last flush.
    cx.flush_events().await;
    down.finish(&mut cx).await;
}
