//! The typed pipeline builder and the ways to run a pipeline.

mod builder;
mod config;
mod mode;

pub use builder::PipelineBuilder;
pub(crate) use config::Config;
pub use mode::Mode;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::{mpsc, oneshot};

use crate::ack::Acked;
use crate::error::{BoxError, Error, ErrorKind};
use crate::metrics::Report;
use crate::policy::ErrorPolicy;
use crate::runtime::Counters;
use crate::runtime::{
    self, channel, ChannelOut, Collect, Discard, Events, Fold, Handle, Results, Shared, Task,
};
use crate::stage::FnSink;
use crate::stage::{
    AckedSource, Blocking, Boundary, BoxPlan, Filter, FilterMap, FlatMap, ForEach, Inspect, IntakeSource,
    IterSource, Map, Plan, Push, Sink, SinkStage, StageSpec, StreamSource, Then, TryMap, Wiring, WriteOutput,
};

/// A typed pipeline: a source, then stages, each taking the previous
/// stage's output type `T`. Nothing runs until one of the runners is
/// called: [`run`](Self::run), [`collect`](Self::collect),
/// [`count`](Self::count), [`fold`](Self::fold), [`results`](Self::results),
/// [`events`](Self::events) or [`start`](Self::start).
///
/// `P` is the plan built so far (a nest of [`stage`](crate::stage) node
/// types, as with iterator adaptors); a type mismatch between stages is a
/// compile error.
///
/// Synchronous stages (`map`, `filter`, `filter_map`, `flat_map`,
/// `inspect`, `for_each`) are fused with their neighbours into one loop.
/// Async stages (`then`), blocking stages and async sinks run in tasks of
/// their own, joined by bounded channels that carry chunks of items;
/// [`boundary`](Pipeline::boundary) splits a fused chain the same way.
///
/// # Examples
///
/// ```
/// use weir::Pipeline;
///
/// # tokio::runtime::Builder::new_multi_thread().enable_time().build().unwrap().block_on(async {
/// let words = Pipeline::from_iter(["the quick", "brown fox", ""])
///     .flat_map(|line| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
///     .then(|w| async move { w.to_uppercase() })
///     .concurrency(4)
///     .filter(|w| w.len() > 3)
///     .collect()
///     .await
///     .unwrap();
/// assert_eq!(words, ["QUICK", "BROWN"]);
/// # });
/// ```
#[must_use = "a pipeline does nothing until it is run"]
pub struct Pipeline<T, P> {
    pub(crate) plan: P,
    pub(crate) stages: Vec<StageSpec>,
    pub(crate) config: Config,
    pub(crate) ends_in_sink: bool,
    pub(crate) _t: PhantomData<fn() -> T>,
}

impl<T, P: fmt::Debug> fmt::Debug for Pipeline<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.config.name)
            .field("stages", &self.stages.iter().map(|s| &s.name).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Pipeline<(), ()> {
    /// A pipeline over an iterator, with default settings. Shorthand for
    /// [`PipelineBuilder::new().from_iter(items)`](PipelineBuilder::from_iter).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let sum = weir::Pipeline::from_iter(1..=4u64).fold(0, |a, x| a + x).await.unwrap();
    /// assert_eq!(sum, 10);
    /// # });
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn from_iter<I>(items: I) -> Pipeline<I::Item, IterSource<I::IntoIter>>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
    {
        PipelineBuilder::new().from_iter(items)
    }

    /// A pipeline over a stream, with default settings. See
    /// [`PipelineBuilder::from_stream`].
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let n = weir::Pipeline::from_stream(futures::stream::repeat(1u8).take(5)).run().await.unwrap();
    /// assert_eq!(n.delivered, 5);
    /// # });
    /// # use futures::StreamExt;
    /// ```
    pub fn from_stream<S>(stream: S) -> Pipeline<S::Item, StreamSource<S>>
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
    {
        PipelineBuilder::new().from_stream(stream)
    }

    /// A pipeline over acknowledged items, with default settings. See
    /// [`PipelineBuilder::from_acked`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{Ack, Acked, Pipeline, Status};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let statuses = Arc::new(Mutex::new(Vec::new()));
    /// let log = statuses.clone();
    /// let acker = Arc::new(move |id: u64, status: Status| log.lock().unwrap().push((id, status)));
    /// let messages = (0..4u64).map(move |i| Acked::new(i, Ack::new(i, acker.clone())));
    /// Pipeline::from_acked(futures::stream::iter(messages))
    ///     .filter(|i| i % 2 == 0)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// let mut statuses = statuses.lock().unwrap().clone();
    /// statuses.sort();
    /// assert_eq!(
    ///     statuses,
    ///     [(0, Status::Delivered), (1, Status::Dropped), (2, Status::Delivered), (3, Status::Dropped)]
    /// );
    /// # });
    /// ```
    pub fn from_acked<S, T>(stream: S) -> Pipeline<T, AckedSource<S>>
    where
        S: Stream<Item = Acked<T>> + Send + 'static,
        T: Send + 'static,
    {
        PipelineBuilder::new().from_acked(stream)
    }

    /// A pipeline fed through its handle, with default settings. See
    /// [`PipelineBuilder::intake`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let lengths = Arc::new(Mutex::new(Vec::new()));
    /// let out = lengths.clone();
    /// let handle = weir::Pipeline::intake::<&str>()
    ///     .map(str::len)
    ///     .for_each(move |n| out.lock().unwrap().push(n))
    ///     .start();
    /// handle.push("four").await.unwrap();
    /// handle.push("three").await.unwrap();
    /// let report = handle.wait().await.unwrap();
    /// assert_eq!(report.delivered, 2);
    /// assert_eq!(*lengths.lock().unwrap(), [4, 5]);
    /// # });
    /// ```
    pub fn intake<T: Send + 'static>() -> Pipeline<T, IntakeSource<T>> {
        PipelineBuilder::new().intake()
    }
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Adds a stage of `kind`: `node` wraps the plan so far, given the new
    /// stage's index. Every combinator, in any module, goes through here.
    pub(crate) fn stage<U, Q>(
        mut self,
        kind: &'static str,
        node: impl FnOnce(P, usize) -> Q,
    ) -> Pipeline<U, Q> {
        let idx = self.stages.len();
        self.stages.push(StageSpec::new(kind, idx));
        Pipeline {
            plan: node(self.plan, idx),
            stages: self.stages,
            config: self.config,
            ends_in_sink: self.ends_in_sink,
            _t: PhantomData,
        }
    }

    /// Names the last stage (or the source). Names appear in metrics,
    /// events and errors. By default, a stage is named after its kind and
    /// position: `source#0`, `map#1`, `then#2`, …
    ///
    /// # Panics
    ///
    /// If another stage of this pipeline already has that name.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter(0..3).name("numbers").map(|x| x + 1).name("inc").run().await.unwrap();
    /// assert_eq!(r.stages[0].name, "numbers");
    /// assert_eq!(r.stage("inc").unwrap().items_out, 3);
    /// # });
    /// ```
    #[track_caller]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        let n = self.stages.len();
        assert!(
            !self.stages[..n - 1].iter().any(|s| s.name == name),
            "Pipeline::name: a stage is already named `{name}`"
        );
        self.last().name = name;
        self
    }

    /// Sets the last stage's [`ErrorPolicy`]. By default, the pipeline's
    /// ([`PipelineBuilder::error_policy`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{ErrorPolicy, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = Pipeline::from_iter(["1", "two", "3"])
    ///     .try_map(|s| s.parse::<i32>())
    ///     .on_error(ErrorPolicy::Skip)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [1, 3]);
    /// # });
    /// ```
    pub fn on_error(mut self, policy: ErrorPolicy) -> Self {
        self.last().policy = Some(policy);
        self
    }

    /// Transforms each item. Fused with neighbouring sync stages.
    ///
    /// A panic in `f` fails that item (error type `panic`), routed by the
    /// stage's [`ErrorPolicy`]; the pipeline and the process live on.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter(1..=3).map(|x| x * 2).collect().await.unwrap();
    /// assert_eq!(out, [2, 4, 6]);
    /// # });
    /// ```
    pub fn map<U, F>(self, f: F) -> Pipeline<U, Map<P, F>>
    where
        F: FnMut(T) -> U + Send + 'static,
        U: Send + 'static,
    {
        self.stage("map", |prev, idx| Map { prev, f, idx })
    }

    /// Transforms each item with a fallible function; an `Err` fails the
    /// item, routed by the stage's [`ErrorPolicy`].
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter(["7", "8"]).try_map(|s| s.parse::<u8>()).collect().await.unwrap();
    /// assert_eq!(out, [7, 8]);
    /// # });
    /// ```
    pub fn try_map<U, E, F>(self, f: F) -> Pipeline<U, TryMap<P, F>>
    where
        F: FnMut(T) -> Result<U, E> + Send + 'static,
        E: Into<BoxError>,
        U: Send + 'static,
    {
        self.stage("map", |prev, idx| TryMap { prev, f, idx })
    }

    /// Keeps the items for which `f` is true; the others are finalized as
    /// [`Dropped`](crate::Status::Dropped) and counted.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter(1..=6).filter(|x| x % 3 == 0).collect().await.unwrap();
    /// assert_eq!(out, [3, 6]);
    /// # });
    /// ```
    pub fn filter<F>(self, f: F) -> Pipeline<T, Filter<P, F>>
    where
        F: FnMut(&T) -> bool + Send + 'static,
    {
        self.stage("filter", |prev, idx| Filter { prev, f, idx })
    }

    /// Transforms and filters at once: `None` drops the item.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter(["1", "x", "3"]).filter_map(|s| s.parse::<u8>().ok()).collect().await.unwrap();
    /// assert_eq!(out, [1, 3]);
    /// # });
    /// ```
    pub fn filter_map<U, F>(self, f: F) -> Pipeline<U, FilterMap<P, F>>
    where
        F: FnMut(T) -> Option<U> + Send + 'static,
        U: Send + 'static,
    {
        self.stage("filter_map", |prev, idx| FilterMap { prev, f, idx })
    }

    /// Turns each item into zero or more items. The children share their
    /// parent's acknowledgement: the parent is finalized once all of them
    /// are. An item with no children is finalized as dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([1, 0, 2]).flat_map(|n| vec![n; n]).collect().await.unwrap();
    /// assert_eq!(out, [1, 2, 2]);
    /// # });
    /// ```
    pub fn flat_map<I, F>(self, f: F) -> Pipeline<I::Item, FlatMap<P, F>>
    where
        F: FnMut(T) -> I + Send + 'static,
        I: IntoIterator,
        I::Item: Send + 'static,
    {
        self.stage("flat_map", |prev, idx| FlatMap { prev, f, idx })
    }

    /// Looks at each item on its way (logging, counting, sampling).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    /// let s = seen.clone();
    /// weir::Pipeline::from_iter(0..5)
    ///     .inspect(move |_| { s.fetch_add(1, std::sync::atomic::Ordering::Relaxed); })
    ///     .run().await.unwrap();
    /// assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 5);
    /// # });
    /// ```
    pub fn inspect<F>(self, f: F) -> Pipeline<T, Inspect<P, F>>
    where
        F: FnMut(&T) + Send + 'static,
    {
        self.stage("inspect", |prev, idx| Inspect { prev, f, idx })
    }

    /// Transforms each item with an async function, in a task of its own.
    /// Set how many items are in flight with [`concurrency`](Pipeline::concurrency)
    /// (default 1) and whether output keeps input order with
    /// [`ordered`](Pipeline::ordered) (default) or
    /// [`unordered`](Pipeline::unordered).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([30u64, 10, 20])
    ///     .then(|ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .concurrency(3)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [30, 10, 20]); // ordered: input order, whatever finished first
    /// # });
    /// ```
    pub fn then<U, Fut, F>(
        self,
        mut f: F,
    ) -> Pipeline<U, Then<P, impl FnMut(T) -> InfallibleFuture<Fut> + Send + 'static>>
    where
        F: FnMut(T) -> Fut + Send + 'static,
        Fut: Future<Output = U> + Send + 'static,
        U: Send + 'static,
    {
        let f = move |item| InfallibleFuture { inner: f(item) };
        self.stage("then", |prev, idx| Then { prev, f, idx })
    }

    /// Like [`then`](Self::then) with a fallible async function: an `Err`
    /// fails the item, routed by the stage's [`ErrorPolicy`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::ErrorPolicy;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter([1, 2, 3])
    ///     .try_then(|x| async move { if x == 2 { Err("two") } else { Ok(x) } })
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((r.delivered, r.failed), (2, 1));
    /// # });
    /// ```
    pub fn try_then<U, E, Fut, F>(self, f: F) -> Pipeline<U, Then<P, F>>
    where
        F: FnMut(T) -> Fut + Send + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        E: Into<BoxError>,
        U: Send + 'static,
    {
        self.stage("then", |prev, idx| Then { prev, f, idx })
    }

    /// Runs a blocking or CPU-heavy function on tokio's blocking pool, with
    /// up to [`concurrency`](Pipeline::concurrency) items at a time
    /// (default 1), in input order unless [`unordered`](Pipeline::unordered).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter(0..4u64)
    ///     .blocking(|n| (1..=n).product::<u64>()) // CPU-heavy, in real life
    ///     .concurrency(2)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [1, 1, 2, 6]);
    /// # });
    /// ```
    #[allow(clippy::type_complexity)] // an opaque closure adaptor, named by nobody
    pub fn blocking<U, F>(
        self,
        f: F,
    ) -> Pipeline<U, Blocking<P, impl Fn(T) -> Result<U, std::convert::Infallible> + Send + Sync + 'static>>
    where
        F: Fn(T) -> U + Send + Sync + 'static,
        U: Send + 'static,
    {
        let f = move |item| Ok(f(item));
        self.stage("blocking", |prev, idx| Blocking { prev, f, idx })
    }

    /// Like [`blocking`](Self::blocking) with a fallible function.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter(["4", "5"])
    ///     .try_blocking(|s| s.parse::<u32>())
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [4, 5]);
    /// # });
    /// ```
    pub fn try_blocking<U, E, F>(self, f: F) -> Pipeline<U, Blocking<P, F>>
    where
        F: Fn(T) -> Result<U, E> + Send + Sync + 'static,
        E: Into<BoxError>,
        U: Send + 'static,
    {
        self.stage("blocking", |prev, idx| Blocking { prev, f, idx })
    }

    /// Ends the fused segment here: the stages after the boundary run in a
    /// task of their own, fed through a bounded channel of chunks (the
    /// pipeline's [`capacity`](crate::PipelineBuilder::capacity) and
    /// [`chunk_size`](crate::PipelineBuilder::chunk_size)). Items pass through unchanged,
    /// in order; the boundary is a stage (`boundary#N`) whose metrics show
    /// its queue: how full, how long its task idled and how long the
    /// segment before it waited for room.
    ///
    /// Sync stages are fused into one loop on one core. A boundary splits
    /// a CPU-heavy chain over cores (pipeline parallelism: Akka Streams'
    /// `.async`), or keeps a slow segment from holding up the one before
    /// it. Each costs a channel hop per chunk (the `chain` benchmark's
    /// `weir-tasks` row against `weir-fused`, docs/BENCHMARKS.md): for
    /// cheap stages one fused loop is faster, and for one costly stage a
    /// [`blocking`](Pipeline::blocking) or concurrent
    /// [`then`](Pipeline::then) stage spreads it wider.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter(0..1_000u64)
    ///     .map(|x| x.pow(3)) // runs in the source's task ...
    ///     .boundary()
    ///     .map(|x| x % 7) // ... and this in the boundary's
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(r.delivered, 1_000);
    /// assert_eq!(r.stages[2].kind, "boundary");
    /// # });
    /// ```
    pub fn boundary(self) -> Pipeline<T, Boundary<P>> {
        self.stage("boundary", |prev, idx| Boundary { prev, idx })
    }

    /// Ends the pipeline in a synchronous closure, fused with the stages
    /// before it; an item is delivered when the closure returns.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    /// let t = total.clone();
    /// let r = weir::Pipeline::from_iter(1..=4u64)
    ///     .for_each(move |x| { t.fetch_add(x, std::sync::atomic::Ordering::Relaxed); })
    ///     .run().await.unwrap();
    /// assert_eq!((r.delivered, total.load(std::sync::atomic::Ordering::Relaxed)), (4, 10));
    /// # });
    /// ```
    #[allow(clippy::type_complexity)] // an opaque closure adaptor, named by nobody
    pub fn for_each<F>(
        mut self,
        mut f: F,
    ) -> Pipeline<(), ForEach<P, impl FnMut(T) -> Result<(), std::convert::Infallible> + Send + 'static>>
    where
        F: FnMut(T) + Send + 'static,
    {
        self.ends_in_sink = true;
        let f = move |item| {
            f(item);
            Ok(())
        };
        self.stage("sink", |prev, idx| ForEach { prev, f, idx })
    }

    /// Ends the pipeline in a fallible synchronous closure; an `Err` fails
    /// the item.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::ErrorPolicy;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter([1, 2, 3])
    ///     .try_for_each(|x| if x == 3 { Err("full") } else { Ok(()) })
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run().await.unwrap();
    /// assert_eq!((r.delivered, r.failed), (2, 1));
    /// # });
    /// ```
    pub fn try_for_each<E, F>(mut self, f: F) -> Pipeline<(), ForEach<P, F>>
    where
        F: FnMut(T) -> Result<(), E> + Send + 'static,
        E: Into<BoxError>,
    {
        self.ends_in_sink = true;
        self.stage("sink", |prev, idx| ForEach { prev, f, idx })
    }

    /// Ends the pipeline in an async closure run in a task of its own, one
    /// item at a time. The closure's future returns `()` if the write
    /// cannot fail, or `Result<(), E>` if it can: an `Err` fails the item
    /// ([`WriteOutput`](crate::stage::WriteOutput)).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    /// let r = weir::Pipeline::from_iter(0..3)
    ///     .for_each_async(move |x| {
    ///         let tx = tx.clone();
    ///         async move { tx.send(x).await } // fails if the receiver is gone
    ///     })
    ///     .run().await.unwrap();
    /// assert_eq!(r.delivered, 3);
    /// assert_eq!(rx.recv().await, Some(0));
    ///
    /// let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    /// let t = total.clone();
    /// weir::Pipeline::from_iter(1..=3u64)
    ///     .for_each_async(move |x| {
    ///         let t = t.clone();
    ///         async move { t.fetch_add(x, std::sync::atomic::Ordering::Relaxed); } // cannot fail
    ///     })
    ///     .run().await.unwrap();
    /// assert_eq!(total.load(std::sync::atomic::Ordering::Relaxed), 6);
    /// # });
    /// ```
    pub fn for_each_async<Fut, F>(mut self, f: F) -> Pipeline<(), SinkStage<P, impl Sink<T>>>
    where
        F: FnMut(T) -> Fut + Send + 'static,
        Fut: Future + Send,
        Fut::Output: WriteOutput,
    {
        self.ends_in_sink = true;
        self.stage("sink", |prev, idx| SinkStage {
            prev,
            sink: FnSink(f),
            idx,
        })
    }

    /// Ends the pipeline in a [`Sink`], run in a task of its own. See
    /// [`Sink`] for an example.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let rows = Arc::new(Mutex::new(Vec::new()));
    /// let table = rows.clone();
    /// let sink = weir::sink_fn(move |row: (u32, String)| {
    ///     table.lock().unwrap().push(row);
    ///     async { Ok::<_, std::io::Error>(()) }
    /// });
    /// let report = weir::Pipeline::from_iter(1..=2u32)
    ///     .map(|id| (id, format!("user {id}")))
    ///     .sink(sink)
    ///     .name("users")
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(report.stage("users").unwrap().items_out, 2);
    /// assert_eq!(*rows.lock().unwrap(), [(1, "user 1".to_owned()), (2, "user 2".to_owned())]);
    /// # });
    /// ```
    pub fn sink<S: Sink<T>>(mut self, sink: S) -> Pipeline<(), SinkStage<P, S>> {
        self.ends_in_sink = true;
        self.stage("sink", |prev, idx| SinkStage { prev, sink, idx })
    }

    /// Erases the plan's type, so that pipelines of different shapes (built
    /// from configuration, say) have one type: `Pipeline<T, BoxPlan<T, I>>`.
    /// The stages on each side of the erasure stay fused; the boundary costs
    /// one virtual call per item.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{stage::{BoxPlan, NoIntake}, Pipeline};
    ///
    /// fn build(double: bool) -> Pipeline<u32, BoxPlan<u32, NoIntake>> {
    ///     let p = Pipeline::from_iter(1..=3u32);
    ///     if double { p.map(|x| x * 2).boxed() } else { p.boxed() }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// assert_eq!(build(true).collect().await.unwrap(), [2, 4, 6]);
    /// assert_eq!(build(false).collect().await.unwrap(), [1, 2, 3]);
    /// # });
    /// ```
    pub fn boxed(self) -> Pipeline<T, BoxPlan<T, P::Intake>> {
        Pipeline {
            plan: BoxPlan::new(self.plan),
            stages: self.stages,
            config: self.config,
            ends_in_sink: self.ends_in_sink,
            _t: PhantomData,
        }
    }

    /// Builds the shared state and attaches `terminal` (made with the
    /// implicit sink stage's counters unless the pipeline ends in a sink).
    fn wire<D: Push<T>>(
        mut self,
        runner: &'static str,
        events: Option<mpsc::Sender<crate::Event>>,
        terminal: impl FnOnce(&Arc<Shared>, Option<usize>) -> D,
    ) -> (Arc<Shared>, Vec<Task>, Option<channel::Sender<P::Intake>>) {
        let sink = if self.ends_in_sink {
            None
        } else {
            let idx = self.stages.len();
            let mut spec = StageSpec::new("sink", idx);
            spec.name = format!("{runner}#{idx}");
            // The implicit end fails no item but a fold's (whose lost
            // accumulator fails the run anyway): a pipeline-wide policy
            // (DeadLetter, say) is not for it.
            spec.policy = Some(ErrorPolicy::FailFast);
            self.stages.push(spec);
            Some(idx)
        };
        let estimated = self.config.estimated_total;
        let shared = Arc::new(Shared::new(self.config, self.stages, estimated, events));
        let down = terminal(&shared, sink);
        let mut w = Wiring {
            shared: shared.clone(),
            tasks: Vec::new(),
            intake: None,
        };
        self.plan.attach(down, &mut w);
        (shared, w.tasks, w.intake)
    }

    /// Runs the pipeline to the end and returns its [`Report`]. Output
    /// items are discarded (delivered) unless the pipeline ends in a sink.
    /// O(1) memory whatever the stream's length.
    ///
    /// Returns the first error of a stage whose policy is
    /// [`ErrorPolicy::FailFast`], after the pipeline drained.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let report = weir::Pipeline::from_iter(0..10_000u64).map(|x| x + 1).run().await.unwrap();
    /// assert_eq!(report.delivered, 10_000);
    /// # });
    /// ```
    pub async fn run(self) -> Result<Report, Error> {
        let (shared, tasks, _intake) = self.wire("run", None, |sh, idx| {
            Discard::new(idx.map(|i| Counters::new(sh.clone(), i)))
        });
        runtime::supervise(shared, tasks, None).await
    }

    /// Runs the pipeline and collects its output in a `Vec`: O(n) memory,
    /// on purpose. Prefer [`run`](Self::run) with a sink, or
    /// [`results`](Self::results), for long streams.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let v = weir::Pipeline::from_iter("abc".chars()).collect().await.unwrap();
    /// assert_eq!(v, ['a', 'b', 'c']);
    /// # });
    /// ```
    pub async fn collect(self) -> Result<Vec<T>, Error> {
        let (tx, rx) = oneshot::channel();
        let (shared, tasks, _intake) = self.wire("collect", None, |sh, idx| {
            if idx.is_some() {
                // Nothing before this terminal delivers: no item is timed.
                sh.e2e.switch_off();
            }
            Collect::new(Counters::new(sh.clone(), idx.unwrap_or(0)), tx)
        });
        runtime::supervise(shared, tasks, None).await?;
        rx.await
            .map_err(|_| Error::new(ErrorKind::Internal, "the collector ended without a result"))
    }

    /// Runs the pipeline, folding every output item into an accumulator,
    /// fused with the stages before it.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let longest = weir::Pipeline::from_iter(["a", "abc", "ab"])
    ///     .fold(0, |m, s| m.max(s.len()))
    ///     .await
    ///     .unwrap();
    /// assert_eq!(longest, 3);
    /// # });
    /// ```
    pub async fn fold<A, F>(self, init: A, f: F) -> Result<A, Error>
    where
        A: Send + 'static,
        F: FnMut(A, T) -> A + Send + 'static,
    {
        self.fold_as("fold", init, f).await
    }

    /// Runs the pipeline and counts the items that reach its end (seed
    /// 002's `count`): O(1) memory, fused with the stages before it, as
    /// [`collect`](Self::collect) without keeping the items. A pipeline
    /// that ends in a [`sink`](Self::sink) (or `for_each`) passes nothing
    /// on: its count is of the items the sink delivered.
    ///
    /// Returns the first error of a stage whose policy is
    /// [`ErrorPolicy::FailFast`], as [`run`](Self::run) does.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// // Seed 002: filter, batch, tap, count.
    /// let batches = weir::Pipeline::from_iter(0..250u32)
    ///     .filter(|x| x % 2 == 0)
    ///     .batch(100, Duration::from_secs(1))
    ///     .tap(|batch| assert!(batch.len() <= 100))
    ///     .count()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(batches, 2); // 125 even numbers: a batch of 100, one of 25
    ///
    /// let written = weir::Pipeline::from_iter(0..7).for_each(drop).count().await.unwrap();
    /// assert_eq!(written, 7);
    /// # });
    /// ```
    pub async fn count(self) -> Result<u64, Error> {
        if self.ends_in_sink {
            return Ok(self.run().await?.delivered);
        }
        self.fold_as("count", 0u64, |n, _| n + 1).await
    }

    /// [`fold`](Self::fold), its implicit end stage named `runner#n`.
    async fn fold_as<A, F>(self, runner: &'static str, init: A, f: F) -> Result<A, Error>
    where
        A: Send + 'static,
        F: FnMut(A, T) -> A + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let (shared, tasks, _intake) = self.wire(runner, None, |sh, idx| {
            if idx.is_some() {
                sh.e2e.switch_off();
            }
            Fold::new(init, f, Counters::new(sh.clone(), idx.unwrap_or(0)), tx)
        });
        runtime::supervise(shared, tasks, None).await?;
        match rx.await {
            Ok(Some(acc)) => Ok(acc),
            _ => Err(Error::new(ErrorKind::Internal, "the fold ended without a result")),
        }
    }

    /// The output items as a [`Stream`] of `Result<T, Error>`: `Ok` for each
    /// item and, if the pipeline fails, one `Err` at the end. The pipeline
    /// starts on the first poll and is aborted if the stream is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut out = weir::Pipeline::from_iter(1..=3).map(|x| x * 10).results();
    /// assert_eq!(out.next().await.unwrap().unwrap(), 10);
    /// assert_eq!(out.next().await.unwrap().unwrap(), 20);
    /// assert_eq!(out.next().await.unwrap().unwrap(), 30);
    /// assert!(out.next().await.is_none());
    /// # });
    /// ```
    pub fn results(self) -> Results<T> {
        let capacity = self.config.capacity;
        let chunk = self.config.chunk_size;
        let (tx, rx) = channel::channel(capacity);
        let mut stage = None;
        let (shared, tasks, _intake) = self.wire("results", None, |_, idx| {
            stage = idx;
            ChannelOut::new(tx, chunk)
        });
        let c = Counters::new(shared.clone(), stage.unwrap_or(shared.stages.len() - 1));
        Results::new(shared, tasks, rx, c)
    }

    /// Runs the pipeline as a lossless, backpressured [`Stream`] of
    /// [`Event`](crate::Event)s: started, progress, item failures,
    /// finished. Output items are discarded unless the pipeline ends in a
    /// sink. The pipeline starts on the first poll and is aborted if the
    /// stream is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{ErrorPolicy, EventKind, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let events: Vec<_> = PipelineBuilder::new()
    ///     .error_policy(ErrorPolicy::Skip)
    ///     .from_iter(["1", "x"])
    ///     .try_map(|s| s.parse::<u8>())
    ///     .name("parse")
    ///     .events()
    ///     .collect()
    ///     .await;
    /// let failure = events.iter().find_map(|e| match &e.kind {
    ///     EventKind::ItemFailed { stage, item, .. } => Some((stage.clone(), *item)),
    ///     _ => None,
    /// });
    /// assert_eq!(failure, Some(("parse".to_owned(), 1)));
    /// # });
    /// ```
    pub fn events(self) -> Events {
        let (tx, rx) = mpsc::channel(self.config.events_capacity);
        let (shared, tasks, _intake) = self.wire("run", Some(tx), |sh, idx| {
            Discard::new(idx.map(|i| Counters::new(sh.clone(), i)))
        });
        Events::new(shared, tasks, rx)
    }

    /// Starts the pipeline in the background and returns its [`Handle`]:
    /// push items (for [`intake`](Pipeline::intake) pipelines), read
    /// metrics, shut down. Must be called within a tokio runtime.
    ///
    /// See also [`Handle`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Outcome, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = Pipeline::from_iter(0..100u32).filter(|x| x % 10 == 0).start();
    /// // ... do other work while it runs, read `handle.metrics()` ...
    /// let report = handle.wait().await.unwrap();
    /// assert_eq!(report.outcome, Outcome::Completed);
    /// assert_eq!((report.delivered, report.dropped), (10, 90));
    /// # });
    /// ```
    pub fn start(mut self) -> Handle<P::Intake> {
        // A handle can subscribe at any time.
        let capacity = self.config.subscribe_capacity;
        self.config
            .monitors
            .get_or_insert_with(|| tokio::sync::broadcast::channel(capacity).0);
        let (shared, tasks, intake) = self.wire("run", None, |sh, idx| {
            Discard::new(idx.map(|i| Counters::new(sh.clone(), i)))
        });
        let task = tokio::spawn(runtime::supervise(shared.clone(), tasks, None));
        Handle::new(shared, intake, task)
    }

    /// [`start`](Self::start)s the pipeline, with its events as a lossless,
    /// backpressured [`EventFeed`](crate::EventFeed) beside the handle: for
    /// an event log that must hold every event (a log to resume from, an
    /// audit), where [`Handle::subscribe`] may miss events when its reader
    /// falls behind. The run waits for the feed's reader when its buffer
    /// is full; read it in a task of its own. Must be called within a
    /// tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{EventKind, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let (handle, feed) = Pipeline::from_iter(0..3u32).start_with_events();
    /// let log = tokio::spawn(feed.map(|e| serde_json::to_string(&e).unwrap()).collect::<Vec<_>>());
    /// let report = handle.wait().await.unwrap();
    /// let log = log.await.unwrap();
    /// assert_eq!(report.delivered, 3);
    /// assert!(log.last().unwrap().contains("\"type\":\"pipeline_finished\""));
    /// # });
    /// ```
    pub fn start_with_events(mut self) -> (Handle<P::Intake>, crate::EventFeed) {
        let capacity = self.config.subscribe_capacity;
        self.config
            .monitors
            .get_or_insert_with(|| tokio::sync::broadcast::channel(capacity).0);
        let (tx, rx) = mpsc::channel(self.config.events_capacity);
        let (shared, tasks, intake) = self.wire("run", Some(tx), |sh, idx| {
            Discard::new(idx.map(|i| Counters::new(sh.clone(), i)))
        });
        let task = tokio::spawn(runtime::supervise(shared.clone(), tasks, None));
        (Handle::new(shared, intake, task), crate::EventFeed::new(rx))
    }
}

impl<T, P> Pipeline<T, P> {
    /// The stage the last combinator added (the source, at first).
    pub(crate) fn last(&mut self) -> &mut StageSpec {
        self.stages.last_mut().expect("a pipeline always has a source")
    }
}

pin_project_lite::pin_project! {
    /// The future of an infallible [`then`](Pipeline::then) stage.
    #[derive(Debug)]
    pub struct InfallibleFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F> InfallibleFuture<F> {
    pub(crate) fn new(inner: F) -> InfallibleFuture<F> {
        InfallibleFuture { inner }
    }
}

impl<F: Future> Future for InfallibleFuture<F> {
    type Output = Result<F::Output, std::convert::Infallible>;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.project().inner.poll(cx).map(Ok)
    }
}
