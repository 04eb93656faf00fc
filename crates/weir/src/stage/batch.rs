use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::{Flow, Plan, Push, TaskCx, Wiring};
use crate::ack::Token;
use crate::pipeline::Pipeline;
use crate::runtime::channel::Receiver;
use crate::runtime::Counters;
use crate::runtime::{flush_all, settle, ChannelOut};

/// The plan node of [`Pipeline::batch`]: a stage in a task of its own, so
/// that its timer fires while no input arrives.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir::{stage::{Batch, IterSource}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let p: Pipeline<Vec<u32>, Batch<IterSource<_>>> = Pipeline::from_iter(1..=3u32).batch(2, Duration::from_secs(1));
/// assert_eq!(p.collect().await.unwrap(), [vec![1, 2], vec![3]]);
/// # });
/// ```
#[must_use]
pub struct Batch<P> {
    prev: P,
    max_items: usize,
    max_wait: Duration,
    idx: usize,
}

impl<P: fmt::Debug> fmt::Debug for Batch<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("prev", &self.prev)
            .field("max_items", &self.max_items)
            .field("max_wait", &self.max_wait)
            .finish()
    }
}

impl<P: Plan> Plan for Batch<P> {
    type Out = Vec<P::Out>;
    type Intake = P::Intake;

    fn attach<D: Push<Vec<P::Out>>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let (tx, rx) = w.input_channel(self.idx);
        let batcher = Batcher {
            items: Vec::new(),
            members: Members::default(),
            max_items: self.max_items,
            reserve: self.max_items.min(w.chunk_size()),
        };
        let c = w.counters(self.idx);
        w.spawn_stage(self.idx, run_batch(rx, batcher, self.max_wait, down, c, w.cx()));
        let out = ChannelOut::new(tx, w.chunk_size());
        self.prev.attach(out, w);
    }
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Groups items into `Vec`s of up to `max_items`, in order. A batch is
    /// emitted when it is full, or when its oldest item has waited
    /// `max_wait` since it reached the stage (a `tokio::time` timer, which
    /// fires while no input arrives); the last, partial batch is emitted at
    /// the end of the stream and when the pipeline drains. Empty batches
    /// are never emitted.
    ///
    /// A batch stands for all its items: when it is finished (delivered by
    /// a sink, dropped, failed), each of its source items is finished the
    /// same way, and if it is lost to an abort each is reported aborted.
    /// The stage runs in a task of its own; the stages after it count
    /// batches, not items.
    ///
    /// # Panics
    ///
    /// If `max_items` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let batches = weir::Pipeline::from_iter(1..=5)
    ///     .batch(2, Duration::from_secs(1))
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(batches, [vec![1, 2], vec![3, 4], vec![5]]);
    /// # });
    /// ```
    #[track_caller]
    pub fn batch(self, max_items: usize, max_wait: Duration) -> Pipeline<Vec<T>, Batch<P>> {
        assert!(max_items > 0, "Pipeline::batch: max_items must be at least 1");
        self.stage("batch", |prev, idx| Batch {
            prev,
            max_items,
            max_wait,
            idx,
        })
    }
}

/// The tokens of the source items one output is made of. Plain tokens have
/// nothing to finish and are not kept, so an in-memory source's windows
/// hold no tokens at all.
#[derive(Debug, Default)]
pub(crate) struct Members {
    acked: Vec<Token>,
    first: u64,
    len: u64,
}

impl Members {
    #[inline]
    pub(crate) fn add(&mut self, token: Token) {
        if self.len == 0 {
            self.first = token.seq();
        }
        self.len += 1;
        if token.is_acked() {
            self.acked.push(token);
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The token standing for every member (numbered after the first), and
    /// how many members it stands for.
    pub(crate) fn take(&mut self) -> (Token, u64) {
        let n = std::mem::take(&mut self.len);
        (Token::join(std::mem::take(&mut self.acked), self.first), n)
    }

    /// Emits `out` downstream with the members' joined token, counting it
    /// as one output that finishes them all.
    pub(crate) fn emit<U, D: Push<U>>(&mut self, out: U, down: &mut D, c: &mut Counters, cx: &mut TaskCx) {
        let (token, n) = self.take();
        c.merged += n.saturating_sub(1);
        c.count_out();
        down.push(out, token, cx);
    }
}

/// The batch being filled.
struct Batcher<T> {
    items: Vec<T>,
    members: Members,
    max_items: usize,
    /// Room reserved when a batch opens (not all of `max_items`, which may
    /// be huge for batches bounded by time only).
    reserve: usize,
}

impl<T> Batcher<T> {
    /// Adds an item; whether the batch is now full.
    #[inline]
    fn add(&mut self, item: T, token: Token) -> bool {
        if self.items.capacity() == 0 {
            self.items.reserve(self.reserve);
        }
        self.items.push(item);
        self.members.add(token);
        self.items.len() >= self.max_items
    }

    fn emit<D: Push<Vec<T>>>(&mut self, down: &mut D, c: &mut Counters, cx: &mut TaskCx) {
        if !self.items.is_empty() {
            let batch = std::mem::take(&mut self.items);
            self.members.emit(batch, down, c, cx);
        }
    }
}

async fn run_batch<T, D>(
    mut rx: Receiver<T>,
    mut batch: Batcher<T>,
    max_wait: Duration,
    mut down: D,
    c: Counters,
    mut cx: TaskCx,
) where
    T: Send + 'static,
    D: Push<Vec<T>>,
{
    // In counts members, out counts batches.
    let mut c = c.into_explicit();
    // When the open batch is due; `None` when none is open or its wait
    // cannot be represented (it waits for the count or the end).
    let mut due: Option<Instant> = None;
    'run: loop {
        settle(&mut down, &mut c);
        let chunk = match due {
            Some(at) => tokio::select! {
                // A batch that is due goes first, even with input waiting:
                // its oldest item has waited long enough.
                biased;
                () = tokio::time::sleep_until(at) => {
                    due = None;
                    batch.emit(&mut down, &mut c, &mut cx);
                    if flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
                        break 'run;
                    }
                    continue 'run;
                }
                chunk = rx.recv() => chunk,
            },
            None => rx.recv().await,
        };
        let Some(mut chunk) = chunk else {
            batch.emit(&mut down, &mut c, &mut cx);
            break;
        };
        for (item, token) in chunk.drain(..) {
            c.items_in += 1;
            if batch.items.is_empty() {
                due = Instant::now().checked_add(max_wait);
            }
            if batch.add(item, token) {
                due = None;
                batch.emit(&mut down, &mut c, &mut cx);
                if down.wants_flush() && flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
                    break 'run;
                }
            }
        }
        rx.recycle(chunk);
        if flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
            break;
        }
    }
    settle(&mut down, &mut c);
    down.finish(&mut cx).await;
}
