//! Per-item hooks: [`Pipeline::before_each`] and [`Pipeline::after_each`]
//! run a closure on each item (or a sample) just before or after a stage
//! processes it, seed 003's before/after-stage hooks taken per item.

use std::fmt;

use super::{forward_flush, guard, Plan, Push, TaskCx, Wiring};
use crate::ack::Token;
use crate::context::Context;
use crate::error::{Error, ErrorKind};
use crate::pipeline::Pipeline;

/// Which items a per-item hook ([`Pipeline::before_each`],
/// [`Pipeline::after_each`]) runs on: all of them, or every `n`th (the
/// first, the `n + 1`th, …), counted where the hook runs (per worker, for
/// a stage run by several).
///
/// # Examples
///
/// ```
/// use weir::Sample;
/// assert_eq!(Sample::ALL, Sample::every(1));
/// assert_ne!(Sample::every(100), Sample::ALL);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    every: u64,
}

impl Sample {
    /// Every item.
    pub const ALL: Sample = Sample { every: 1 };

    /// Every `n`th item, starting with the first.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{Pipeline, Sample};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// Pipeline::from_iter(0..10).map(|x| x * 10).after_each(Sample::every(4), move |x, _| s.lock().unwrap().push(*x))
    ///     .run().await.unwrap();
    /// assert_eq!(*seen.lock().unwrap(), [0, 40, 80]);
    /// # });
    /// ```
    #[track_caller]
    pub fn every(n: u64) -> Sample {
        assert!(n > 0, "Sample::every: n must be at least 1");
        Sample { every: n }
    }
}

/// The plan node of [`Pipeline::before_each`] and
/// [`Pipeline::after_each`]: fused, and no stage of its own.
///
/// # Examples
///
/// ```
/// use weir::{stage::{EachItem, IterSource, Map}, Pipeline, Sample};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u8, EachItem<Map<IterSource<_>, _>, _>> =
///     Pipeline::from_iter([1u8]).map(|x| x + 1).after_each(Sample::ALL, |x, _| assert_eq!(*x, 2));
/// assert_eq!(p.collect().await.unwrap(), [2]);
/// # });
/// ```
#[must_use]
pub struct EachItem<P, F> {
    prev: P,
    f: F,
    sample: Sample,
    /// The stage hooked.
    stage: usize,
    /// `before_each` or `after_each`, for errors.
    which: &'static str,
}

impl<P: fmt::Debug, F> fmt::Debug for EachItem<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EachItem")
            .field("prev", &self.prev)
            .field("sample", &self.sample)
            .field("which", &self.which)
            .finish_non_exhaustive()
    }
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// A per-item hook on the stage added next: runs `f` with each item
    /// (or a [`Sample`] of them) and that stage's [`Context`] just before
    /// the stage takes it. Call it right before adding the stage it hooks.
    ///
    /// For a fused stage (`map`, `filter`, a piped [`Stage`]) the hook
    /// runs immediately before the stage's function, in the same loop; for
    /// a stage in a task of its own (`then`, `blocking`, a sink) it runs
    /// as the item is handed to that stage, before it waits in the
    /// stage's queue. Unlike [`Hooks::before_stage`](crate::Hooks), which
    /// runs once per stage per run, this runs per item. It is not a stage:
    /// reports do not list it. A panic in `f` fails the run with an error
    /// naming the hook and the stage (the item still passes on).
    ///
    /// [`Stage`]: crate::compose::Stage
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{Pipeline, Sample};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let l = log.clone();
    /// Pipeline::from_iter(["1", "2"])
    ///     .before_each(Sample::ALL, move |s, ctx| l.lock().unwrap().push(format!("{} <- {s}", ctx.stage().unwrap())))
    ///     .try_map(|s| s.parse::<u8>())
    ///     .name("parse")
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(*log.lock().unwrap(), ["parse <- 1", "parse <- 2"]);
    /// # });
    /// ```
    pub fn before_each<F>(self, sample: Sample, f: F) -> Pipeline<T, EachItem<P, F>>
    where
        F: FnMut(&T, &Context) + Send + 'static,
    {
        let stage = self.stages.len();
        self.hook_each("before_each", stage, sample, f)
    }

    /// A per-item hook on the stage just added: runs `f` with each item
    /// it emits (or a [`Sample`] of them) and that stage's [`Context`]
    /// just after the stage made it, in the stage's task, before the next
    /// stage takes it. Unlike [`Hooks::after_stage`](crate::Hooks), which
    /// runs once per stage at the end of the run, this runs per item. It
    /// is not a stage: reports do not list it. A panic in `f` fails the run
    /// with an error naming the hook and the stage (the item still passes
    /// on).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{Pipeline, Sample};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let l = log.clone();
    /// let out = Pipeline::from_iter(1..=3)
    ///     .then(|x| async move { x * 10 })
    ///     .name("enrich")
    ///     .after_each(Sample::ALL, move |x, ctx| l.lock().unwrap().push(format!("{} -> {x}", ctx.stage().unwrap())))
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [10, 20, 30]);
    /// assert_eq!(*log.lock().unwrap(), ["enrich -> 10", "enrich -> 20", "enrich -> 30"]);
    /// # });
    /// ```
    pub fn after_each<F>(self, sample: Sample, f: F) -> Pipeline<T, EachItem<P, F>>
    where
        F: FnMut(&T, &Context) + Send + 'static,
    {
        let stage = self.stages.len() - 1;
        self.hook_each("after_each", stage, sample, f)
    }

    fn hook_each<F>(
        self,
        which: &'static str,
        stage: usize,
        sample: Sample,
        f: F,
    ) -> Pipeline<T, EachItem<P, F>> {
        Pipeline {
            plan: EachItem {
                prev: self.plan,
                f,
                sample,
                stage,
                which,
            },
            stages: self.stages,
            config: self.config,
            ends_in_sink: self.ends_in_sink,
            _t: std::marker::PhantomData,
        }
    }
}

impl<P, F> Plan for EachItem<P, F>
where
    P: Plan,
    F: FnMut(&P::Out, &Context) + Send + 'static,
{
    type Out = P::Out;
    type Intake = P::Intake;

    fn attach<D: Push<P::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        // The stage hooked exists by now, unless nothing followed a
        // `before_each` on a pipeline that ends in a sink.
        let stage = self.stage.min(w.shared.stages.len() - 1);
        let name = w.spec(stage).name.clone();
        let step = EachStep {
            f: self.f,
            every: self.sample.every,
            next: 0,
            ctx: w.shared.context.for_stage(&name),
            what: format!("a `{}` hook of stage `{name}`", self.which),
            down,
        };
        self.prev.attach(step, w);
    }
}

struct EachStep<F, D> {
    f: F,
    every: u64,
    /// Items until the next one sampled.
    next: u64,
    ctx: Context,
    /// The hook, as errors name it.
    what: String,
    down: D,
}

impl<T, F, D> Push<T> for EachStep<F, D>
where
    F: FnMut(&T, &Context) + Send + 'static,
    D: Push<T>,
{
    #[inline]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        if self.next == 0 {
            self.next = self.every;
            if let Err(e) = guard(|| (self.f)(&item, &self.ctx)) {
                let message = format!("{} panicked: {}", self.what, e.message());
                cx.shared.fail(Error::new(ErrorKind::Panic, message));
            }
        }
        self.next -= 1;
        self.down.push(item, token, cx);
    }

    forward_flush!(uncounted);
}
