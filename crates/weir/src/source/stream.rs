use std::fmt;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::task::Poll;

use futures::{FutureExt, Stream, StreamExt};

use super::{flush_all, settle, token};
use crate::ack::{Ack, Acked, Room};
use crate::error::Error;
use crate::runtime::Counters;
use crate::runtime::{Flow, Plan, Push, TaskCx, Wiring};

/// The source node of [`Pipeline::from_stream`](crate::Pipeline::from_stream).
///
/// # Examples
///
/// ```
/// use futures::stream::{self, Iter};
/// use weir::{stage::StreamSource, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u8, StreamSource<Iter<std::vec::IntoIter<u8>>>> = Pipeline::from_stream(stream::iter(vec![4, 2]));
/// assert_eq!(p.collect().await.unwrap(), [4, 2]);
/// # });
/// ```
#[must_use]
pub struct StreamSource<S> {
    pub(crate) stream: S,
}

/// The source node of [`Pipeline::from_acked`](crate::Pipeline::from_acked).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use weir::{stage::AckedSource, Ack, Acked, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let acker = Arc::new(|_: u64, _: weir::Status| {});
/// let messages = futures::stream::iter((0..3u64).map(move |i| Acked::new(i, Ack::new(i, acker.clone()))));
/// let p: Pipeline<u64, AckedSource<_>> = Pipeline::from_acked(messages);
/// assert_eq!(p.run().await.unwrap().delivered, 3);
/// # });
/// ```
#[must_use]
pub struct AckedSource<S> {
    pub(crate) stream: S,
}

impl<S> fmt::Debug for StreamSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSource").finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for AckedSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckedSource").finish_non_exhaustive()
    }
}

impl<S> Plan for StreamSource<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    type Out = S::Item;
    type Intake = crate::runtime::NoIntake;

    fn attach<D: Push<S::Item>>(self, down: D, w: &mut Wiring<Self::Intake>) {
        let split = |item| (item, None);
        let task = drive(self.stream, split, down, w.counters(0), w.cx(), w.chunk_size());
        w.spawn_stage(0, task);
    }
}

impl<S, T> Plan for AckedSource<S>
where
    S: Stream<Item = Acked<T>> + Send + 'static,
    T: Send + 'static,
{
    type Out = T;
    type Intake = crate::runtime::NoIntake;

    fn attach<D: Push<T>>(self, down: D, w: &mut Wiring<Self::Intake>) {
        // Before any task starts: the forwarders then keep the tokens'
        // finishes (`Shared::acked`).
        w.shared.acked.store(true, std::sync::atomic::Ordering::Relaxed);
        let split = |acked: Acked<T>| (acked.item, Some(acked.ack));
        let task = drive(self.stream, split, down, w.counters(0), w.cx(), w.chunk_size());
        w.spawn_stage(0, task);
    }
}

/// Pulls what the stream has ready (up to a chunk), ships it, and waits for
/// more only when nothing is ready: low latency at low load, full chunks at
/// high load. Under [`max_in_flight`](crate::PipelineBuilder::max_in_flight)
/// it takes room for each item before polling for it, ships what it has
/// when there is none, and waits for room when it has nothing to ship.
pub(super) async fn drive<S, G, T, D>(
    stream: S,
    mut split: G,
    mut down: D,
    mut c: Counters,
    mut cx: TaskCx,
    chunk: usize,
) where
    S: Stream + Send + 'static,
    G: FnMut(S::Item) -> (T, Option<Ack>) + Send + 'static,
    D: Push<T>,
{
    let shared = cx.shared.clone();
    let limit = shared.in_flight.clone();
    let mut stream = pin!(stream);
    let chunk = chunk as u64;
    let mut seq = 0u64;
    let mut ran_out = false;
    let source_failed = |seq: u64, p: Box<dyn std::any::Any + Send>| {
        shared.source_panicked(seq, Error::panicked(&*p).message());
    };
    // Room taken for the next item (under a bound only).
    let mut room: Option<Room> = None;
    'run: loop {
        if shared.stop_pulling() {
            break;
        }
        shared.bus.events_gate().await;
        let start = seq;
        let mut exhausted = false;
        while seq - start < chunk {
            if let Some(limit) = &limit {
                if room.is_none() {
                    room = limit.try_room();
                    if room.is_none() {
                        break;
                    }
                }
            }
            let next = futures::poll!(AssertUnwindSafe(stream.next()).catch_unwind());
            match next {
                Poll::Ready(Ok(Some(item))) => {
                    let (item, ack) = split(item);
                    down.push(item, token(seq, ack, &mut room), &mut cx);
                    seq += 1;
                    if down.wants_flush() {
                        break;
                    }
                }
                Poll::Ready(Ok(None)) => {
                    exhausted = true;
                    ran_out = true;
                    break;
                }
                Poll::Ready(Err(p)) => {
                    source_failed(seq, p);
                    exhausted = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if seq == start && !exhausted {
            // Nothing ready (and everything before was shipped): wait,
            // for room first if there is a bound.
            if let (Some(limit), None) = (&limit, &room) {
                tokio::select! {
                    biased;
                    () = shared.stop_requested() => break 'run,
                    r = limit.room() => room = Some(r),
                }
            }
            tokio::select! {
                biased;
                () = shared.stop_requested() => break 'run,
                next = AssertUnwindSafe(stream.next()).catch_unwind() => match next {
                    Ok(Some(item)) => {
                        let (item, ack) = split(item);
                        down.push(item, token(seq, ack, &mut room), &mut cx);
                        seq += 1;
                    }
                    Ok(None) => (exhausted, ran_out) = (true, true),
                    Err(p) => {
                        source_failed(seq, p);
                        exhausted = true;
                    }
                },
            }
        }
        c.items_in += seq - start;
        shared.e2e.pulled(start, seq);
        if flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop || exhausted {
            break;
        }
        // An always-ready stream whose items are all dropped in this task
        // (filter, dedup) never waits: yield to the runtime now and
        // then, or a drain or abort could never run.
        tokio::task::consume_budget().await;
    }
    drop(room);
    settle(&mut down, &mut c);
    if ran_out {
        shared.source_exhausted(seq).await;
    }
    down.finish(&mut cx).await;
}
