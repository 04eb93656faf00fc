//! Stages: the plan nodes a [`Pipeline`](crate::Pipeline) is built from.
//!
//! Every combinator on `Pipeline` wraps the previous plan in one of the
//! node types below (as iterator adaptors do), so a pipeline's whole shape
//! is one type and the compiler checks that each stage's input is the
//! previous stage's output.
//!
//! At run time each node wraps the *downstream* step around its own
//! function (push-based fusion). Consecutive synchronous stages therefore
//! become one monomorphized loop in one task: no channel hop, no boxing and
//! no allocation per item. Stages that must run apart (async `then`,
//! `blocking`, async sinks) end a segment: the upstream segment pushes into
//! a bounded chunk channel and a new task runs the stage and the fused
//! segment after it.

pub mod aggregate;
mod batch;
mod blocking;
mod boundary;
mod boxed;
mod branch_join;
mod broadcast;
mod dedup;
mod fan_out;
mod filter;
mod filter_map;
mod flat_map;
mod for_each;
mod inspect;
mod keyed;
mod map;
mod map_batch;
mod rate_limit;
mod recover;
mod resilience;
mod route;
mod scan;
mod sink;
mod skip;
mod skip_while;
mod take;
mod take_while;
mod tap;
mod tap_async;
mod throttle;
mod timeout;
mod trace;
mod validate;

pub(crate) use sink::FnSink;
mod then;
mod unbatch;

pub use aggregate::{Aggregate, AggregateTime};
pub use batch::Batch;
pub use blocking::Blocking;
pub(crate) use boundary::forward;
pub use boundary::Boundary;
pub use boxed::BoxPlan;
pub use branch_join::{Arms, BranchJoin, Joined};
pub use broadcast::Broadcast;
pub use dedup::Dedup;
pub use fan_out::{BranchSource, Branches, ByKey, ToAll};
pub use filter::Filter;
pub use filter_map::FilterMap;
pub use flat_map::FlatMap;
pub use for_each::ForEach;
pub use inspect::Inspect;
pub use keyed::{KeyBy, KeyedThen};
pub use map::{Map, TryMap};
pub use map_batch::MapBatch;
pub use rate_limit::RateLimit;
pub use recover::Recoverable;
pub(crate) use recover::{with_recovery, Concurrent, RecoverSpec, SpawnWork, SyncRecover};
pub use route::Route;
pub use scan::Scan;
pub use sink::sink_fn;
pub use sink::{Sink, SinkStage};
pub use skip::Skip;
pub use skip_while::SkipWhile;
pub use take::Take;
pub use take_while::TakeWhile;
pub use tap_async::TapAsync;
pub use then::Then;
pub use throttle::Throttle;
pub use unbatch::Unbatch;
pub use validate::Validate;

pub use crate::source::{AckedSource, IntakeSource, IterSource, Merge, StreamSource, Streamed};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::ack::{Status, Token};
use crate::error::{Error, ErrorKind};
use crate::event::{now_ms, EventKind};
use crate::metrics::Counters;
use crate::policy::{ErrorPolicy, Letter, Routing};
use crate::runtime::channel::Sender;
use crate::runtime::Shared;

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
/// of counter updates (measured: 0.99 → 0.72 ns/item on the fused chain,
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

        $crate::stage::forward_flush!(@rest);
    };
    // A step that makes at most one item of each (a map, a filter).
    (at_most_one) => {
        #[inline(always)]
        fn room(&self) -> usize {
            self.down.room()
        }

        $crate::stage::forward_flush!();
    };
    // A step that also ends the pull once `$done` holds of `$s` (a `take`
    // that has all it wants, so the source stops at once).
    (done: |$s:ident| $done:expr) => {
        #[inline]
        fn wants_flush(&self) -> bool {
            let $s = self;
            $done || self.down.wants_flush()
        }

        $crate::stage::forward_flush!(@rest);
    };
    (@rest) => {
        #[inline]
        fn settle(&mut self, pushed: u64) {
            self.c.items_in += pushed;
            let out = self.c.publish();
            self.down.settle(out);
        }

        #[inline(always)]
        fn steady(&self) -> bool {
            self.down.steady()
        }

        #[inline]
        fn has_pending(&self) -> bool {
            self.down.has_pending()
        }

        async fn flush(&mut self, cx: &mut $crate::stage::TaskCx) -> $crate::stage::Flow {
            self.down.flush(cx).await
        }

        async fn finish(self, cx: &mut $crate::stage::TaskCx) {
            self.down.finish(cx).await
        }
    };
}
pub(crate) use forward_flush;

/// Per-stage settings fixed when the pipeline is built.
#[derive(Debug, Clone)]
pub(crate) struct StageSpec {
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) policy: Option<ErrorPolicy>,
    pub(crate) concurrency: usize,
    pub(crate) ordered: bool,
    /// How long one item's work may take (concurrent stages), or one
    /// write or flush (sinks).
    pub(crate) timeout: Option<Duration>,
    /// Retries of failed items (concurrent stages and sinks).
    pub(crate) retry: Option<resilience::RetrySpec>,
    /// The stage's circuit breaker (concurrent stages and sink writes).
    pub(crate) breaker: Option<crate::policy::Breaker>,
    /// Dead-letter sink and failure handler, if set.
    pub(crate) recovery: Option<RecoverSpec>,
    /// Whether `dead_letter` gave the stage a dead-letter sink.
    pub(crate) dead_letter: bool,
}

impl StageSpec {
    pub(crate) fn new(kind: &'static str, position: usize) -> StageSpec {
        StageSpec {
            name: format!("{kind}#{position}"),
            kind,
            policy: None,
            concurrency: 1,
            ordered: true,
            timeout: None,
            retry: None,
            breaker: None,
            recovery: None,
            dead_letter: false,
        }
    }
}

/// What `attach` builds: the tasks to spawn and the intake sender.
#[doc(hidden)]
pub struct Wiring<I> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) tasks: Vec<crate::runtime::Task>,
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
        let span = trace::stage_span(&self.shared, stage);
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
    pub(crate) fn input_channel<T>(
        &self,
        stage: usize,
    ) -> (
        crate::runtime::channel::Sender<T>,
        crate::runtime::channel::Receiver<T>,
    ) {
        let stats = self.shared.stages[stage].metrics.channel.clone();
        crate::runtime::channel::channel_with_stats(self.capacity(), Some(stats))
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

/// A task's context: the shared run state and the events it buffered.
#[doc(hidden)]
#[derive(Debug)]
pub struct TaskCx {
    pub(crate) shared: Arc<Shared>,
    pending: Vec<EventKind>,
    /// Failures waiting for the `on_error` hooks.
    errors: Vec<Error>,
    /// Dead letters waiting to be sent to their stage's dead-letter task.
    letters: Vec<(mpsc::Sender<Letter>, Letter)>,
}

impl TaskCx {
    pub(crate) fn new(shared: Arc<Shared>) -> TaskCx {
        TaskCx {
            shared,
            pending: Vec::new(),
            errors: Vec::new(),
            letters: Vec::new(),
        }
    }

    /// Routes a failed item: records the event and applies the stage's
    /// error policy (or its handler's decision): finalizes it as failed,
    /// or queues its dead letter. The caller counts the failure.
    #[cold]
    pub(crate) fn fail(&mut self, stage: usize, token: Token, mut error: Error) {
        let entry = &self.shared.stages[stage];
        let routing = error.take_routing();
        // A retried item's error already says which attempt failed.
        let attempt = error.attempt().max(1);
        let error = error.at(&entry.spec.name, token.seq(), attempt);
        if self.shared.listening() {
            self.pending.push(EventKind::ItemFailed {
                stage: entry.spec.name.clone(),
                item: error.item().unwrap_or_default(),
                error: error.message().to_owned(),
                error_type: error.kind().as_str().to_owned(),
                attempt: error.attempt(),
                retryable: error.is_retryable(),
            });
        }
        if self.shared.config.hooks.has_on_error() {
            self.errors.push(error.shallow_clone());
        }
        let policy = routing.as_ref().and_then(|r| r.policy).unwrap_or(entry.policy);
        match policy {
            ErrorPolicy::Skip => token.finish(Status::Failed),
            ErrorPolicy::DeadLetter => self.dead_letter(stage, token, error, routing),
            ErrorPolicy::FailFast => {
                token.finish(Status::Failed);
                self.shared.fail(error);
            }
        }
    }

    #[cold]
    fn dead_letter(&mut self, stage: usize, token: Token, error: Error, routing: Option<Routing>) {
        let Some(Routing {
            item: Some(item),
            to: Some(to),
            first_failure_ms,
            ..
        }) = routing
        else {
            // Unreachable through the public API (a stage gets the policy
            // with its sink): fail loudly rather than lose the item.
            token.finish(Status::Failed);
            let name = error.stage().unwrap_or_default().to_owned();
            return self.shared.fail(Error::new(
                ErrorKind::Config,
                format!("stage `{name}` has no dead-letter sink for its failure: {error}"),
            ));
        };
        let now = now_ms();
        let letter = Letter {
            item: std::sync::Mutex::new(item),
            error: error.message().to_owned(),
            causes: error.causes(),
            error_type: error.kind().as_str(),
            item_seq: token.seq(),
            attempts: error.attempt(),
            first_failure_ms: first_failure_ms.unwrap_or(now),
            last_failure_ms: now,
            token,
        };
        self.shared.stages[stage]
            .metrics
            .dead_letter_sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.letters.push((to, letter));
    }

    /// Buffers an event, sent at the task's next flush.
    pub(crate) fn event(&mut self, kind: EventKind) {
        if self.shared.listening() {
            self.pending.push(kind);
        }
    }

    /// Whether events are waiting to be sent.
    pub(crate) fn has_events(&self) -> bool {
        !self.pending.is_empty()
            || !self.errors.is_empty()
            || !self.letters.is_empty()
            || self.shared.has_overflow()
    }

    /// Sends the buffered events, waiting for the consumer (lossless).
    pub(crate) async fn flush_events(&mut self) {
        for (to, letter) in std::mem::take(&mut self.letters) {
            // Refused only when the dead-letter task was aborted: the
            // letter's token then reports `Aborted`.
            let _ = to.send(letter).await;
        }
        if !self.errors.is_empty() {
            self.run_error_hooks().await;
        }
        // Events sent without waiting (custom, per item) go first: they
        // happened before this task's buffered ones were sent.
        self.shared.flush_overflow().await;
        if self.pending.is_empty() {
            return;
        }
        for kind in std::mem::take(&mut self.pending) {
            self.shared.emit(kind).await;
        }
    }
}

impl TaskCx {
    #[cold]
    async fn run_error_hooks(&mut self) {
        let shared = self.shared.clone();
        for error in std::mem::take(&mut self.errors) {
            let ctx = shared.context.for_stage(error.stage().unwrap_or_default());
            if let Err(e) = shared.config.hooks.on_error_all(&error, &ctx).await {
                shared.fail(e);
            }
        }
    }
}

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

/// Runs `f` and turns a panic into an [`Error`].
#[inline(always)]
pub(crate) fn guard<R>(f: impl FnOnce() -> R) -> Result<R, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| Error::panicked(&*p))
}
