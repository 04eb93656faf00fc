use std::fmt;
use std::marker::PhantomData;

use super::Aggregator;
use crate::ack::Token;
use crate::error::Error;
use crate::pipeline::Pipeline;
use crate::runtime::Counters;
use crate::runtime::{forward_flush, guard, Plan, Push, TaskCx, Wiring};
use crate::stage::batch::Members;

/// One open window: its accumulator and the tokens of its items. The
/// accumulator exists exactly while the window holds items.
pub(super) struct Window<T, A: Aggregator<T>> {
    agg: A,
    acc: Option<A::Acc>,
    members: Members,
    stage: usize,
    _t: PhantomData<fn(T)>,
}

impl<T, A: Aggregator<T>> Window<T, A> {
    pub(super) fn new(agg: A, stage: usize) -> Window<T, A> {
        Window {
            agg,
            acc: None,
            members: Members::default(),
            stage,
            _t: PhantomData,
        }
    }

    /// Items in the window.
    pub(super) fn len(&self) -> u64 {
        self.members.len()
    }

    #[inline]
    pub(super) fn add(&mut self, item: T, token: Token, c: &mut Counters, cx: &mut TaskCx) {
        let agg = &self.agg;
        let acc = match &mut self.acc {
            Some(acc) => acc,
            slot @ None => match guard(|| agg.init()) {
                Ok(acc) => slot.insert(acc),
                Err(e) => {
                    c.failed += 1;
                    return cx.fail(self.stage, token, e);
                }
            },
        };
        let added = guard(|| agg.add(acc, item));
        self.members.add(token);
        if let Err(e) = added {
            self.fail(e, c, cx);
        }
    }

    /// Emits the window's output, if it holds anything, standing for all
    /// its items.
    pub(super) fn emit<D: Push<A::Out>>(&mut self, down: &mut D, c: &mut Counters, cx: &mut TaskCx) {
        let Some(acc) = self.acc.take() else {
            return;
        };
        match guard(|| self.agg.finish(acc)) {
            Ok(out) => self.members.emit(out, down, c, cx),
            Err(e) => self.fail(e, c, cx),
        }
    }

    /// Fails every item of the window: after a panic its accumulator may
    /// be half updated, so it is dropped and the next item starts afresh.
    #[cold]
    fn fail(&mut self, e: Error, c: &mut Counters, cx: &mut TaskCx) {
        self.acc = None;
        let (token, n) = self.members.take();
        c.failed += n;
        cx.fail(self.stage, token, e);
    }
}

/// The plan node of [`Pipeline::aggregate`] and
/// [`Pipeline::aggregate_count`]: a fused step.
///
/// # Examples
///
/// ```
/// use weir::{aggregate::{Aggregate, Count}, stage::IterSource, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<_, Aggregate<IterSource<_>, Count>> = Pipeline::from_iter(0..5u32).aggregate_count(2, Count);
/// assert_eq!(p.collect().await.unwrap(), [2, 2, 1]);
/// # });
/// ```
#[must_use]
pub struct Aggregate<P, A> {
    prev: P,
    agg: A,
    /// Items per window (`u64::MAX`: the whole stream).
    every: u64,
    idx: usize,
}

impl<P: fmt::Debug, A> fmt::Debug for Aggregate<P, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aggregate")
            .field("prev", &self.prev)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl<P, A> Plan for Aggregate<P, A>
where
    P: Plan,
    A: Aggregator<P::Out>,
{
    type Out = A::Out;
    type Intake = P::Intake;

    fn attach<D: Push<A::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        // In counts items, out counts windows.
        let c = w.counters(self.idx).into_explicit();
        let step = AggregateStep {
            window: Window::new(self.agg, self.idx),
            every: self.every,
            down,
            c,
        };
        self.prev.attach(step, w);
    }
}

struct AggregateStep<T, A: Aggregator<T>, D> {
    window: Window<T, A>,
    every: u64,
    down: D,
    c: Counters,
}

impl<T, A, D> Push<T> for AggregateStep<T, A, D>
where
    T: Send + 'static,
    A: Aggregator<T>,
    D: Push<A::Out>,
{
    #[inline]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        self.window.add(item, token, &mut self.c, cx);
        if self.window.len() >= self.every {
            self.window.emit(&mut self.down, &mut self.c, cx);
        }
    }

    forward_flush!(end: Self::emit_last);
}

impl<T, A, D> AggregateStep<T, A, D>
where
    A: Aggregator<T>,
    D: Push<A::Out>,
{
    /// The end of the input: the open window, if any.
    fn emit_last(&mut self, cx: &mut TaskCx) {
        self.window.emit(&mut self.down, &mut self.c, cx);
    }
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Folds the whole stream with `agg` and emits its output once, at the
    /// end of the stream (or of a drain); an empty stream emits nothing.
    /// Fused with neighbouring sync stages. This is also the fold stage:
    /// `aggregate(aggregate::fold(init, f))`.
    ///
    /// The output stands for every item: they are finished when it is. An
    /// acknowledging source's references are therefore all held until the
    /// end (in-memory sources hold nothing). A panic in the aggregator
    /// fails the items aggregated so far; aggregation restarts with the
    /// next item.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{aggregate, Pipeline};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = Pipeline::from_iter(1..=4u64)
    ///     .aggregate(aggregate::fold(1, |product, x| product * x))
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [24]);
    /// # });
    /// ```
    pub fn aggregate<A: Aggregator<T>>(self, agg: A) -> Pipeline<A::Out, Aggregate<P, A>> {
        self.stage("aggregate", |prev, idx| Aggregate {
            prev,
            agg,
            every: u64::MAX,
            idx,
        })
    }

    /// Folds each run of `n` consecutive items (tumbling windows by count)
    /// with `agg` and emits one output per window; the last, partial
    /// window is emitted at the end of the stream. Fused with neighbouring
    /// sync stages.
    ///
    /// A window's output stands for its items: they are finished when it
    /// is. A panic in the aggregator fails the window's items.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::aggregate::Stats;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let maxima: Vec<f64> = weir::Pipeline::from_iter([3.0, 1.0, 4.0, 1.0, 5.0])
    ///     .aggregate_count(2, Stats::values())
    ///     .map(|s| s.max)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(maxima, [3.0, 4.0, 5.0]);
    /// # });
    /// ```
    #[track_caller]
    pub fn aggregate_count<A: Aggregator<T>>(self, n: usize, agg: A) -> Pipeline<A::Out, Aggregate<P, A>> {
        assert!(
            n > 0,
            "Pipeline::aggregate_count: a window must hold at least 1 item"
        );
        self.stage("aggregate_count", |prev, idx| Aggregate {
            prev,
            agg,
            every: n as u64,
            idx,
        })
    }
}
