//! Hooks: code that runs at fixed points of a run without being a stage
//! (seed 003's before_stage / after_stage / on_error / on_complete).

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::context::Context;
use crate::error::guard;
use crate::error::{panic_message, Error, ErrorKind};
use crate::metrics::{Report, StageReport};

type SyncFn<A> = Arc<dyn Fn(&A, &Context) + Send + Sync>;
type AsyncFn<A> = Arc<dyn Fn(&A, Context) -> BoxFuture<'static, ()> + Send + Sync>;

enum Hook<A: ?Sized> {
    Sync(SyncFn<A>),
    Async(AsyncFn<A>),
}

impl<A: ?Sized> Clone for Hook<A> {
    fn clone(&self) -> Self {
        match self {
            Hook::Sync(f) => Hook::Sync(f.clone()),
            Hook::Async(f) => Hook::Async(f.clone()),
        }
    }
}

impl<A: ?Sized> Hook<A> {
    /// Runs the hook; a panic comes back as its message.
    async fn call(&self, arg: &A, ctx: &Context) -> Result<(), String> {
        match self {
            Hook::Sync(f) => guard(|| f(arg, ctx)).map_err(|e| e.message().to_owned()),
            Hook::Async(f) => {
                let fut = guard(|| f(arg, ctx.clone())).map_err(|e| e.message().to_owned())?;
                AssertUnwindSafe(fut)
                    .catch_unwind()
                    .await
                    .map_err(|p| panic_message(&*p))
            }
        }
    }
}

/// Code run at fixed points of a run, sync or async (async hooks are
/// awaited), each given the run's [`Context`]:
///
/// | hook | runs | with |
/// |---|---|---|
/// | `before_stage` | **once per run** for each stage, in order, before any item flows | the stage's name |
/// | `after_stage` | **once per run** for each stage, in order, when the run has ended | the stage's [`StageReport`] |
/// | `on_error` | for every failed item, in the failing stage's task | the item's [`Error`] |
/// | `on_complete` | once, when the run ended without error | the [`Report`] |
///
/// **`before_stage` and `after_stage` are not per item.** In a stream all
/// stages run at once, so "before a stage" is the start of the run (every
/// `before_stage` call comes first) and "after a stage" its end (every
/// `after_stage` call comes last). For seed 003's per-item form, code that
/// runs immediately before or after a stage processes each item (or a
/// sample of them) and sees the item, use
/// [`Pipeline::before_each`](crate::Pipeline::before_each) and
/// [`Pipeline::after_each`](crate::Pipeline::after_each).
///
/// An async `on_error` hook slows its stage while it runs (it is part of
/// that stage's work, like an event consumer: nothing queues up). A hook
/// that panics fails the run with an error naming the hook. Hooks see the
/// context as their stage sees it ([`Context::stage`]).
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use weir::{ErrorPolicy, Hooks, PipelineBuilder};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let (a, b, c, d) = (log.clone(), log.clone(), log.clone(), log.clone());
/// let hooks = Hooks::new()
///     .before_stage(move |stage, _| a.lock().unwrap().push(format!("start {stage}")))
///     .after_stage(move |r, _| b.lock().unwrap().push(format!("end {} {}", r.name, r.items_out)))
///     .on_error_async(move |e, _| {
///         let c = c.clone();
///         async move { c.lock().unwrap().push(format!("error {}", e.item().unwrap())) }
///     })
///     .on_complete(move |r, ctx| d.lock().unwrap().push(format!("done {} in {}", r.delivered, ctx.id())));
/// PipelineBuilder::new()
///     .name("nums")
///     .hooks(hooks)
///     .error_policy(ErrorPolicy::Skip)
///     .from_iter(["1", "x"])
///     .try_map(|s| s.parse::<u8>())
///     .name("parse")
///     .run()
///     .await
///     .unwrap();
/// let log = log.lock().unwrap();
/// assert_eq!(log[..4], ["start source#0", "start parse", "start run#2", "error 1"]);
/// assert_eq!(log[4..7], ["end source#0 2", "end parse 1", "end run#2 1"]);
/// assert!(log[7].starts_with("done 1 in nums-"));
/// # });
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct Hooks {
    before_stage: Vec<Hook<str>>,
    after_stage: Vec<Hook<StageReport>>,
    on_error: Vec<Hook<Error>>,
    on_complete: Vec<Hook<Report>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("before_stage", &self.before_stage.len())
            .field("after_stage", &self.after_stage.len())
            .field("on_error", &self.on_error.len())
            .field("on_complete", &self.on_complete.len())
            .finish()
    }
}

fn boxed<F: Future<Output = ()> + Send + 'static>(f: F) -> BoxFuture<'static, ()> {
    f.boxed()
}

impl Hooks {
    /// No hooks.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Hooks, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let hooks = Hooks::new();
    /// assert_eq!(
    ///     format!("{hooks:?}"),
    ///     "Hooks { before_stage: 0, after_stage: 0, on_error: 0, on_complete: 0 }"
    /// );
    /// let report = PipelineBuilder::new().hooks(hooks).from_iter(0..3).run().await.unwrap();
    /// assert_eq!(report.delivered, 3);
    /// # });
    /// ```
    pub fn new() -> Hooks {
        Hooks::default()
    }

    /// Runs `f` with each stage's name before any item flows: **once per
    /// stage per run**, all of them at the start, not before each item
    /// (for that, see [`Pipeline::before_each`](crate::Pipeline::before_each)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{Hooks, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let started = Arc::new(Mutex::new(Vec::new()));
    /// let s = started.clone();
    /// let hooks = Hooks::new().before_stage(move |stage, _ctx| s.lock().unwrap().push(stage.to_owned()));
    /// PipelineBuilder::new().hooks(hooks).from_iter(0..3).map(|x| x + 1).name("inc").run().await.unwrap();
    /// assert_eq!(*started.lock().unwrap(), ["source#0", "inc", "run#2"]);
    /// # });
    /// ```
    pub fn before_stage(mut self, f: impl Fn(&str, &Context) + Send + Sync + 'static) -> Self {
        self.before_stage.push(Hook::Sync(Arc::new(f)));
        self
    }

    /// Async [`before_stage`](Self::before_stage).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{Hooks, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let warmed = Arc::new(Mutex::new(Vec::new()));
    /// let w = warmed.clone();
    /// let hooks = Hooks::new().before_stage_async(move |stage, _ctx| {
    ///     let w = w.clone();
    ///     async move {
    ///         tokio::task::yield_now().await; // e.g. warm a cache for the stage
    ///         w.lock().unwrap().push(stage);
    ///     }
    /// });
    /// PipelineBuilder::new().hooks(hooks).from_iter(0..3).name("rows").run().await.unwrap();
    /// assert_eq!(*warmed.lock().unwrap(), ["rows", "run#1"]);
    /// # });
    /// ```
    pub fn before_stage_async<Fut>(
        mut self,
        f: impl Fn(String, Context) -> Fut + Send + Sync + 'static,
    ) -> Self
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.before_stage.push(Hook::Async(Arc::new(move |s: &str, ctx| {
            boxed(f(s.to_owned(), ctx))
        })));
        self
    }

    /// Runs `f` with each stage's report when the run has ended: **once
    /// per stage per run**, all of them at the end, not after each item
    /// (for that, see [`Pipeline::after_each`](crate::Pipeline::after_each)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{Hooks, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let counts = Arc::new(Mutex::new(Vec::new()));
    /// let c = counts.clone();
    /// let hooks = Hooks::new().after_stage(move |r, _ctx| c.lock().unwrap().push((r.name.clone(), r.items_out)));
    /// PipelineBuilder::new().hooks(hooks).from_iter(0..10).filter(|x| x % 2 == 0).name("even").run().await.unwrap();
    /// assert_eq!(
    ///     *counts.lock().unwrap(),
    ///     [("source#0".to_owned(), 10), ("even".to_owned(), 5), ("run#2".to_owned(), 5)]
    /// );
    /// # });
    /// ```
    pub fn after_stage(mut self, f: impl Fn(&StageReport, &Context) + Send + Sync + 'static) -> Self {
        self.after_stage.push(Hook::Sync(Arc::new(f)));
        self
    }

    /// Async [`after_stage`](Self::after_stage).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{ErrorPolicy, Hooks, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let alerts = Arc::new(Mutex::new(Vec::new()));
    /// let a = alerts.clone();
    /// let hooks = Hooks::new().after_stage_async(move |r, _ctx| {
    ///     let a = a.clone();
    ///     async move {
    ///         if r.failed > 0 {
    ///             a.lock().unwrap().push(format!("{}: {} failed", r.name, r.failed)); // e.g. page someone
    ///         }
    ///     }
    /// });
    /// PipelineBuilder::new()
    ///     .hooks(hooks)
    ///     .error_policy(ErrorPolicy::Skip)
    ///     .from_iter(["1", "x", "y"])
    ///     .try_map(|s| s.parse::<u8>())
    ///     .name("parse")
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(*alerts.lock().unwrap(), ["parse: 2 failed"]);
    /// # });
    /// ```
    pub fn after_stage_async<Fut>(
        mut self,
        f: impl Fn(StageReport, Context) -> Fut + Send + Sync + 'static,
    ) -> Self
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.after_stage
            .push(Hook::Async(Arc::new(move |r: &StageReport, ctx| {
                boxed(f(r.clone(), ctx))
            })));
        self
    }

    /// Runs `f` for every failed item, whatever the error policy does
    /// with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{ErrorPolicy, Hooks, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let failures = Arc::new(Mutex::new(Vec::new()));
    /// let f = failures.clone();
    /// let hooks = Hooks::new().on_error(move |e, _ctx| {
    ///     f.lock().unwrap().push((e.stage().unwrap().to_owned(), e.item().unwrap()));
    /// });
    /// PipelineBuilder::new()
    ///     .hooks(hooks)
    ///     .error_policy(ErrorPolicy::Skip)
    ///     .from_iter(["1", "x", "3", "y"])
    ///     .try_map(|s| s.parse::<u8>())
    ///     .name("parse")
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(*failures.lock().unwrap(), [("parse".to_owned(), 1), ("parse".to_owned(), 3)]);
    /// # });
    /// ```
    pub fn on_error(mut self, f: impl Fn(&Error, &Context) + Send + Sync + 'static) -> Self {
        self.on_error.push(Hook::Sync(Arc::new(f)));
        self
    }

    /// Async [`on_error`](Self::on_error). The error it gets has the
    /// original's kind, context and message, not its source object.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{ErrorKind, ErrorPolicy, Hooks, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let reported = Arc::new(Mutex::new(Vec::new()));
    /// let r = reported.clone();
    /// let hooks = Hooks::new().on_error_async(move |e, _ctx| {
    ///     let r = r.clone();
    ///     async move {
    ///         // e.g. send to an error tracker
    ///         let has_source = std::error::Error::source(&e).is_some();
    ///         r.lock().unwrap().push((e.kind(), e.message().to_owned(), has_source));
    ///     }
    /// });
    /// PipelineBuilder::new()
    ///     .hooks(hooks)
    ///     .error_policy(ErrorPolicy::Skip)
    ///     .from_iter(["x"])
    ///     .try_map(|s| s.parse::<u8>())
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(
    ///     *reported.lock().unwrap(),
    ///     [(ErrorKind::Stage, "invalid digit found in string".to_owned(), false)]
    /// );
    /// # });
    /// ```
    pub fn on_error_async<Fut>(mut self, f: impl Fn(Error, Context) -> Fut + Send + Sync + 'static) -> Self
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_error.push(Hook::Async(Arc::new(move |e: &Error, ctx| {
            boxed(f(e.shallow_clone(), ctx))
        })));
        self
    }

    /// Runs `f` with the report when the run ended without error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{Hooks, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let done = Arc::new(Mutex::new(None));
    /// let d = done.clone();
    /// let hooks = Hooks::new().on_complete(move |report, _ctx| *d.lock().unwrap() = Some(report.delivered));
    /// let failed = PipelineBuilder::new().hooks(hooks.clone()).from_iter(["x"]).try_map(|s| s.parse::<u8>()).run().await;
    /// assert!(failed.is_err());
    /// assert_eq!(*done.lock().unwrap(), None); // not after a failed run
    /// PipelineBuilder::new().hooks(hooks).from_iter(0..3).run().await.unwrap();
    /// assert_eq!(*done.lock().unwrap(), Some(3));
    /// # });
    /// ```
    pub fn on_complete(mut self, f: impl Fn(&Report, &Context) + Send + Sync + 'static) -> Self {
        self.on_complete.push(Hook::Sync(Arc::new(f)));
        self
    }

    /// Async [`on_complete`](Self::on_complete).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{Hooks, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let l = log.clone();
    /// let hooks = Hooks::new().on_complete_async(move |report, ctx| {
    ///     let l = l.clone();
    ///     async move { l.lock().unwrap().push(format!("{}: {} rows", ctx.id(), report.delivered)) }
    /// });
    /// PipelineBuilder::new().name("nightly").hooks(hooks).from_iter(0..3).run().await.unwrap();
    /// let log = log.lock().unwrap();
    /// assert!(log[0].starts_with("nightly-") && log[0].ends_with(": 3 rows"), "{}", log[0]);
    /// # });
    /// ```
    pub fn on_complete_async<Fut>(
        mut self,
        f: impl Fn(Report, Context) -> Fut + Send + Sync + 'static,
    ) -> Self
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_complete
            .push(Hook::Async(Arc::new(move |r: &Report, ctx| {
                boxed(f(r.clone(), ctx))
            })));
        self
    }

    pub(crate) fn has_on_error(&self) -> bool {
        !self.on_error.is_empty()
    }

    pub(crate) async fn before_stage_all(&self, stage: &str, ctx: &Context) -> Result<(), Error> {
        run_all("before_stage", &self.before_stage, stage, ctx).await
    }

    pub(crate) async fn after_stage_all(&self, report: &StageReport, ctx: &Context) -> Result<(), Error> {
        run_all("after_stage", &self.after_stage, report, ctx).await
    }

    pub(crate) async fn on_error_all(&self, error: &Error, ctx: &Context) -> Result<(), Error> {
        run_all("on_error", &self.on_error, error, ctx).await
    }

    pub(crate) async fn on_complete_all(&self, report: &Report, ctx: &Context) -> Result<(), Error> {
        run_all("on_complete", &self.on_complete, report, ctx).await
    }
}

async fn run_all<A: ?Sized>(which: &str, hooks: &[Hook<A>], arg: &A, ctx: &Context) -> Result<(), Error> {
    for hook in hooks {
        hook.call(arg, ctx)
            .await
            .map_err(|m| Error::new(ErrorKind::Panic, format!("a `{which}` hook panicked: {m}")))?;
    }
    Ok(())
}
