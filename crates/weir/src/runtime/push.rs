//! The runtime's core interface: a [`Plan`] attaches itself to the step
//! after it ([`Push`]), and every step of a fused segment (a stage, the
//! sending end of a chunk channel, or the consumer at the end of a run)
//! takes items with `push` and is flushed by the driver that feeds it.
//! [`Wiring`] is what attaching builds: the tasks to spawn.

use std::future::Future;
use std::sync::Arc;

use super::channel::{Receiver, Sender};
use super::StageSpec;
use super::{spans, Shared, TaskCx};
use crate::ack::Token;
use crate::runtime::Counters;

/// A pipeline's plan: a source followed by stages. Implemented by the node
/// types of this module only; what a node does is the business of the
/// `Pipeline` method that made it.
///
/// # Examples
///
/// ```
/// use weir::{stage::Plan, Pipeline};
///
/// // A helper for pipelines of any shape.
/// async fn delivered<T: Send + 'static, P: Plan<Out = T>>(p: Pipeline<T, P>) -> u64 {
///     p.run().await.unwrap().delivered
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(delivered(Pipeline::from_iter(0..5)).await, 5);
/// assert_eq!(delivered(Pipeline::from_iter(0..5).filter(|x| x % 2 == 0)).await, 3);
/// # });
/// ```
pub trait Plan: Send + Sized + 'static {
    /// The items the plan emits.
    type Out: Send + 'static;
    /// The items pushed into the pipeline through its
    /// [`Handle`](crate::Handle) ([`NoIntake`] unless the source is
    /// [`Pipeline::intake`](crate::Pipeline::intake)).
    type Intake: Send + 'static;

    #[doc(hidden)]
    fn attach<D: Push<Self::Out>>(self, down: D, w: &mut Wiring<Self::Intake>);
}

/// The intake type of pipelines that are not fed through their handle: it
/// has no values, so nothing can be pushed.
///
/// # Examples
///
/// ```
/// use weir::{stage::NoIntake, Handle, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let handle: Handle<NoIntake> = Pipeline::from_iter(0..3).start(); // nothing can be pushed
/// assert_eq!(handle.wait().await.unwrap().delivered, 3);
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoIntake {}

/// Whether the upstream should keep going after a flush.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// Everything downstream is gone (aborted): stop pulling.
    Stop,
}

/// A step that accepts items: a fused stage, a channel to the next task, or
/// a terminal. `push` never waits; the driver calls `flush` (which may wait
/// for room downstream) after each chunk, when `wants_flush` says so, and
/// before it waits for anything.
///
/// Steps do not count the items pushed into them: the driver tells them how
/// many with [`settle`](Self::settle) before it awaits anything, and each
/// step passes its own output count on. That keeps the per-item path free
/// of counter updates (the `chain` benchmark's fused rows,
/// docs/BENCHMARKS.md).
#[doc(hidden)]
pub trait Push<T>: Send + 'static {
    /// Takes one item.
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx);
    /// Counts `pushed` items taken in since the last call, publishes the
    /// step's counters and settles the next step with this one's output.
    /// Drivers call it before every await, so a task dropped by an abort has
    /// published every count.
    fn settle(&mut self, pushed: u64);
    /// A chunk's worth of output is buffered: flush before pushing more.
    fn wants_flush(&self) -> bool;
    /// How many more items a driver may push, each making at most one
    /// item downstream, before [`wants_flush`](Self::wants_flush) can turn
    /// true: the source pushes that many in a counted loop with no
    /// per-item flush test. 0, the default, when the step cannot tell (it
    /// may make several items of one, or stop early).
    #[inline(always)]
    fn room(&self) -> usize {
        0
    }
    /// Pushes every item of `items`, which the caller guarantees are at
    /// most [`room`](Self::room): the same as pushing them one at a time
    /// (the default), but a step may pass them on as one iterator. A `map`
    /// does (its closure applied inside the iterator), and a channel output
    /// extends its buffer with it, so a chunk goes through source, `map`
    /// and output in one loop with no per-item capacity or flush test,
    /// which the compiler can vectorise (measured on the `chain` bench,
    /// docs/BENCHMARKS.md).
    #[inline(always)]
    fn push_run<I: Iterator<Item = (T, Token)>>(&mut self, items: I, cx: &mut TaskCx) {
        items.for_each(|(item, token)| self.push(item, token, cx));
    }
    /// Whether the step does more with a run ([`push_run`](Self::push_run))
    /// than with its items one at a time: a channel output (one `extend`),
    /// and a `map` before one. A `map` before a step that takes items one
    /// at a time pushes them so too, each under its own panic guard, which
    /// costs nothing until a panic; under a run's one guard
    /// ([`run_held`](super::run_held)) every piece of the fused chain's
    /// state that the rest of the run reads after a panic (the source's
    /// position, a fold's accumulator, the counters) is stored around every
    /// call the compiler cannot see through (the `chain` suite's opaque
    /// rows, docs/BENCHMARKS.md). Only a hint for code generation: `false`
    /// is always correct.
    #[inline(always)]
    fn takes_runs(&self) -> bool {
        false
    }
    /// Whether the step finishes or drops tokens itself (a filter's
    /// dropped items, a terminal's delivered ones), or only passes them on
    /// (a `map` into a channel). A forwarder rebuilds tokens as visibly
    /// plain (`Token::assume_plain`) only where that lets the compiler
    /// drop the finishes, not where it would only add an instruction per
    /// item. Only a hint for code generation: `true` is always correct.
    #[inline(always)]
    fn finishes_tokens(&self) -> bool {
        true
    }
    /// Whether every step is in its usual state (a fold still holds its
    /// accumulator). Only a hint for code generation: a driver tests it
    /// once per chunk and runs the same loop in both cases, so that in the
    /// usual case the compiler knows, say, that the fold's accumulator is
    /// there and drops the per-item test (measured on the fused chain,
    /// docs/BENCHMARKS.md). Never needed for correctness.
    #[inline(always)]
    fn steady(&self) -> bool {
        true
    }
    /// Some output is buffered.
    fn has_pending(&self) -> bool;
    /// Publishes counters and ships buffered output downstream.
    fn flush(&mut self, cx: &mut TaskCx) -> impl Future<Output = Flow> + Send;
    /// End of input: flush and close.
    fn finish(self, cx: &mut TaskCx) -> impl Future<Output = ()> + Send;
}

/// Forwards the counting and buffering half of `Push` to `self.down`;
/// every fused step shares it.
macro_rules! forward_flush {
    () => {
        #[inline]
        fn wants_flush(&self) -> bool {
            self.down.wants_flush()
        }

        $crate::runtime::forward_flush!(@rest);
    };
    // A step that makes at most one item of each (a map, a filter).
    (at_most_one) => {
        #[inline(always)]
        fn room(&self) -> usize {
            self.down.room()
        }

        $crate::runtime::forward_flush!();
    };
    // A step that also ends the pull once `$done` holds of `$s` (a `take`
    // that has all it wants, so the source stops at once).
    (done: |$s:ident| $done:expr) => {
        #[inline]
        fn wants_flush(&self) -> bool {
            let $s = self;
            $done || self.down.wants_flush()
        }

        $crate::runtime::forward_flush!(@rest);
    };
    // A step that holds items until the end of its input (an aggregate, a
    // reusable stage that batches): at the end it calls `$end(&mut self,
    // cx)`, which pushes what it held, then publishes and settles that
    // output and sends the events it made before closing downstream.
    (end: $end:expr) => {
        #[inline]
        fn wants_flush(&self) -> bool {
            self.down.wants_flush()
        }

        $crate::runtime::forward_flush!(@common);

        async fn finish(mut self, cx: &mut $crate::runtime::TaskCx) {
            $end(&mut self, cx);
            let out = self.c.publish();
            self.down.settle(out);
            cx.flush_events().await;
            self.down.finish(cx).await
        }
    };
    // A step that is no stage and counts nothing (a per-item hook): it
    // passes items and counts on as they come.
    (uncounted) => {
        #[inline]
        fn settle(&mut self, pushed: u64) {
            self.down.settle(pushed);
        }

        #[inline(always)]
        fn room(&self) -> usize {
            self.down.room()
        }

        #[inline]
        fn wants_flush(&self) -> bool {
            self.down.wants_flush()
        }

        $crate::runtime::forward_flush!(@pass);

        async fn finish(self, cx: &mut $crate::runtime::TaskCx) {
            self.down.finish(cx).await
        }
    };
    (@rest) => {
        $crate::runtime::forward_flush!(@common);

        async fn finish(self, cx: &mut $crate::runtime::TaskCx) {
            self.down.finish(cx).await
        }
    };
    (@common) => {
        #[inline]
        fn settle(&mut self, pushed: u64) {
            self.c.items_in += pushed;
            let out = self.c.publish();
            self.down.settle(out);
        }

        $crate::runtime::forward_flush!(@pass);
    };
    (@pass) => {
        #[inline(always)]
        fn steady(&self) -> bool {
            self.down.steady()
        }

        #[inline]
        fn has_pending(&self) -> bool {
            self.down.has_pending()
        }

        async fn flush(&mut self, cx: &mut $crate::runtime::TaskCx) -> $crate::runtime::Flow {
            self.down.flush(cx).await
        }
    };
}
pub(crate) use forward_flush;

/// What `attach` builds: the tasks to spawn and the intake sender.
#[doc(hidden)]
pub struct Wiring<I> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) tasks: Vec<super::Task>,
    pub(crate) intake: Option<Sender<I>>,
}

impl<I> std::fmt::Debug for Wiring<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wiring")
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl<I> Wiring<I> {
    /// Adds the task that runs `stage` (and the fused stages after it)
    /// inside a `weir.stage` tracing span.
    pub(crate) fn spawn_stage(&mut self, stage: usize, task: impl Future<Output = ()> + Send + 'static) {
        let span = spans::stage_span(&self.shared, stage);
        self.tasks
            .push(Box::pin(tracing::Instrument::instrument(task, span)));
    }

    pub(crate) fn counters(&self, stage: usize) -> Counters {
        Counters::new(self.shared.clone(), stage)
    }

    pub(crate) fn cx(&self) -> TaskCx {
        TaskCx::new(self.shared.clone())
    }

    /// The input channel of stage `stage`, which runs in a task of its
    /// own: sized by the pipeline's capacity and measured in its metrics
    /// (queue depth, idle and backpressure time).
    pub(crate) fn input_channel<T>(&self, stage: usize) -> (Sender<T>, Receiver<T>) {
        let stats = self.shared.stages[stage].metrics.channel.clone();
        super::channel::channel_with_stats(self.capacity(), Some(stats))
    }

    pub(crate) fn capacity(&self) -> usize {
        self.shared.config.capacity
    }

    pub(crate) fn chunk_size(&self) -> usize {
        self.shared.config.chunk_size
    }

    pub(crate) fn spec(&self, stage: usize) -> &StageSpec {
        &self.shared.stages[stage].spec
    }
}
