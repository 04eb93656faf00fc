//! The driver of concurrent stages (`then`, `blocking`): a window of up to
//! `n` items in flight, emitted in input order or as they finish.
//!
//! In-flight work keeps being polled while the driver waits for room
//! downstream, so a slow consumer never "snoozes" running futures (the
//! known deadlock of `futures`' `buffered` when the consumer awaits
//! something else between polls).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use super::channel::Receiver;
use super::trace::ItemEvents;
use crate::ack::Token;
use crate::error::Error;
use crate::event::EventLevel;
use crate::metrics::Counters;
use crate::stage::{Flow, Push, TaskCx};

/// What a concurrent stage does with one item.
pub(crate) trait Work<T>: Send + 'static {
    type Out: Send + 'static;
    type Fut: Future<Output = Result<Self::Out, Error>> + Send + 'static;

    /// Starts the work on `item`, the item numbered `seq` at its source
    /// (for work that reports on items as it goes). Panics must come back
    /// as errors.
    fn start(&mut self, item: T, seq: u64) -> Self::Fut;
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

/// Publishes `c` and settles `down` with the items pushed into it since
/// the last call (`c`'s output count). Drivers call it, or [`flush_all`],
/// before every await.
#[inline]
pub(crate) fn settle<U, D: Push<U>>(down: &mut D, c: &mut Counters) {
    let out = c.publish();
    down.settle(out);
}

/// Settles the counts, sends buffered events and ships buffered output.
pub(crate) async fn flush_all<U, D: Push<U>>(down: &mut D, c: &mut Counters, cx: &mut TaskCx) -> Flow {
    settle(down, c);
    cx.flush_events().await;
    down.flush(cx).await
}

#[inline]
pub(crate) fn route<U, D: Push<U>>(
    result: Result<U, Error>,
    token: Token,
    c: &mut Counters,
    down: &mut D,
    cx: &mut TaskCx,
) {
    match result {
        Ok(out) => {
            c.count_out();
            down.push(out, token, cx);
        }
        Err(e) => {
            c.failed += 1;
            cx.fail(c.stage(), token, e);
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

/// The serial driver times one item in this many (and the first of each
/// chunk) when futures are ready at once; pending ones are always timed.
/// Reading the clock costs ~30 ns on this KVM guest: one in 32 items made
/// a chain of ready `then` stages 2× slower (docs/BENCHMARKS.md).
const TIME_EVERY: u64 = 1024;

/// A pinned place for one in-flight future, allocated once per task.
type Slot<F> = Pin<Box<Option<F>>>;

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
#[inline(never)]
fn run_ready<T, W, D>(
    items: &mut impl Iterator<Item = (T, Token)>,
    slot: &mut Slot<W::Fut>,
    work: &mut W,
    down: &mut D,
    c: &mut Counters,
    cx: &mut TaskCx,
    task: &mut Context<'_>,
) -> Ready
where
    W: Work<T>,
    D: Push<W::Out>,
{
    for (item, token) in items.by_ref() {
        c.items_in += 1;
        // One item in `TIME_EVERY` is timed: reading the clock per item
        // would cost as much as a ready future's whole trip.
        let started = (c.items_in % TIME_EVERY == 1).then(Instant::now);
        let fut = work.start(item, token.seq());
        slot.set(Some(fut));
        let fut = slot.as_mut().as_pin_mut().expect("just set");
        match fut.poll(task) {
            Poll::Ready(result) => {
                slot.set(None);
                if let Some(t) = started {
                    c.record_latency(t.elapsed());
                }
                route(result, token, c, down, cx);
            }
            Poll::Pending => return Ready::Pending(token, started),
        }
        if down.wants_flush() {
            return Ready::Flush;
        }
    }
    Ready::Done
}

/// Polls the future in the slot to completion.
async fn finish_slot<F: Future>(slot: &mut Slot<F>) -> F::Output {
    let out =
        futures::future::poll_fn(|task| slot.as_mut().as_pin_mut().expect("a pending future").poll(task))
            .await;
    slot.set(None);
    out
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
            let step = futures::future::poll_fn(|task| {
                Poll::Ready(run_ready(
                    &mut items, &mut slot, &mut work, &mut down, &mut c, &mut cx, task,
                ))
            })
            .await;
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
    let mut done = VecDeque::new();
    let mut input = Vec::<(T, Token)>::new().into_iter();
    let mut input_done = false;
    loop {
        // 1. Start what the window allows from input already here.
        while set.len() + done.len() < n {
            if let Some((item, token)) = input.next() {
                c.items_in += 1;
                let fut = work.start(item, token.seq());
                let started = Instant::now();
                set.push(async move { (fut.await, token, started.elapsed()) });
            } else if input_done {
                break;
            } else {
                match rx.try_recv() {
                    Ok(chunk) => input = chunk.into_iter(),
                    Err(finished) => {
                        input_done = finished;
                        break;
                    }
                }
            }
        }
        // 2. Collect what finished, without waiting.
        futures::future::poll_fn(|task| {
            while let Poll::Ready(Some(r)) = Pin::new(&mut set).poll_next(task) {
                done.push_back(r);
            }
            Poll::Ready(())
        })
        .await;
        // 3. Route it downstream, up to a chunk.
        while let Some((result, token, took)) = done.pop_front() {
            c.record_latency(took);
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
