use std::marker::PhantomData;
use std::time::Duration;

use futures::Stream;

use super::{Config, Mode, Pipeline};
use crate::ack::Acked;
use crate::policy::ErrorPolicy;
use crate::stage::{AckedSource, IntakeSource, IterSource, StageSpec, StreamSource};

/// Pipeline-wide settings, then a source: the start of every pipeline.
///
/// | setting | default |
/// |---|---|
/// | [`name`](Self::name) | `"pipeline"` |
/// | [`mode`](Self::mode) | [`Mode::Balanced`]: the defaults of the five settings it marks † |
/// | [`capacity`](Self::capacity) † | 4096 items per channel |
/// | [`max_in_flight`](Self::max_in_flight) | none (bounded by the channels) |
/// | [`chunk_size`](Self::chunk_size) † | 1024 items |
/// | [`progress_interval`](Self::progress_interval) † | 1 s |
/// | [`events_capacity`](Self::events_capacity) | 1024 events |
/// | [`event_level`](Self::event_level) † | [`EventLevel::Progress`](crate::EventLevel::Progress) |
/// | [`subscribe_capacity`](Self::subscribe_capacity) | 256 events |
/// | [`error_policy`](Self::error_policy) | [`ErrorPolicy::FailFast`] |
/// | [`estimated_total`](Self::estimated_total) | the source's size hint |
/// | [`trace_items`](Self::trace_items) † | 0 (no item spans) |
///
/// # Examples
///
/// ```
/// use weir::{ErrorPolicy, PipelineBuilder};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let report = PipelineBuilder::new()
///     .name("squares")
///     .capacity(256)
///     .chunk_size(64)
///     .error_policy(ErrorPolicy::Skip)
///     .from_iter(0..1000u64)
///     .map(|x| x * x)
///     .run()
///     .await
///     .unwrap();
/// assert_eq!(report.pipeline, "squares");
/// assert_eq!(report.delivered, 1000);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct PipelineBuilder {
    config: Config,
    /// The settings given a value by their setter: a [`Mode`] leaves them.
    explicit: Explicit,
}

/// Which of the settings a [`Mode`] gives defaults for were set
/// explicitly.
#[derive(Debug, Clone, Copy, Default)]
struct Explicit {
    capacity: bool,
    chunk_size: bool,
    event_level: bool,
    progress_interval: bool,
    trace_items: bool,
}

impl PipelineBuilder {
    /// A builder with every setting at its default (see the table above).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let report = weir::PipelineBuilder::new().from_iter(0..3).run().await.unwrap();
    /// assert_eq!(report.pipeline, "pipeline");
    /// assert_eq!(report.delivered, 3);
    /// # });
    /// ```
    pub fn new() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// The pipeline's name, used in events, metrics and errors. By default,
    /// `"pipeline"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let events: Vec<_> = weir::PipelineBuilder::new().name("import").from_iter(0..3).events().collect().await;
    /// assert!(events.iter().all(|e| e.pipeline == "import"));
    /// # });
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// How many items each channel between tasks holds (items queued, not
    /// chunks). The items alive in a pipeline are at most the sum over its
    /// task boundaries of `capacity + 2 × chunk_size` (the channel, a chunk
    /// the sender is filling and a chunk the receiver is working through),
    /// plus each concurrent stage's concurrency, whatever the stream's
    /// length; [`max_in_flight`](Self::max_in_flight) bounds the whole
    /// pipeline at once. By default, 4096.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let report = weir::PipelineBuilder::new()
    ///     .capacity(64)
    ///     .from_iter(0..1000u32)
    ///     .then(|x| async move { x * 2 })
    ///     .name("double")
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(report.stage("double").unwrap().queue_capacity, Some(64));
    /// assert_eq!(report.delivered, 1000);
    /// # });
    /// ```
    #[track_caller]
    pub fn capacity(mut self, capacity: usize) -> Self {
        assert!(capacity > 0, "PipelineBuilder::capacity must be at least 1");
        self.config.capacity = capacity;
        self.explicit.capacity = true;
        self
    }

    /// The most source items in flight in the whole pipeline at once: a
    /// source takes an item in only while fewer than `max` are in flight,
    /// and an intake's [`try_push`](crate::Pusher::try_push) answers
    /// [`Full`](crate::TryPushError::Full) at `max` exactly
    /// ([`push`](crate::Pusher::push) waits). An item counts from the
    /// moment its source takes it until it is finalized (delivered,
    /// dropped, failed, dead-lettered or aborted); a `flat_map` item's
    /// children and a batch's members count as the source items they came
    /// from. Every source kind honours it: iterators, streams, acknowledged
    /// streams, merges and intakes.
    ///
    /// [`capacity`](Self::capacity) bounds each channel on its own, so
    /// a pipeline of several tasks holds up to several capacities' worth;
    /// this bounds the total. Items then carry a reference each (as items
    /// of an acknowledging source do), which costs a little per item: runs
    /// without the bound do not pay it. By default, none: only the
    /// channels bound the items in flight.
    ///
    /// # Panics
    ///
    /// If `max` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{PipelineBuilder, TryPushError};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = PipelineBuilder::new()
    ///     .capacity(8)
    ///     .max_in_flight(8)
    ///     .intake::<u32>()
    ///     .then(|x| async move { x })
    ///     .start();
    /// for i in 0..8 {
    ///     handle.try_push(i).unwrap();
    /// }
    /// assert_eq!(handle.try_push(8), Err(TryPushError::Full(8))); // 8 in flight: full
    /// handle.push(8).await.unwrap(); // waits for one to be finalized
    /// assert_eq!(handle.wait().await.unwrap().delivered, 9);
    /// # });
    /// ```
    #[track_caller]
    pub fn max_in_flight(mut self, max: usize) -> Self {
        assert!(max > 0, "PipelineBuilder::max_in_flight must be at least 1");
        self.config.max_in_flight = Some(max);
        self
    }

    /// The most items moved between tasks in one message. A sender ships
    /// what is ready without waiting to fill a chunk, so this bounds
    /// batching under load and costs no latency when idle. Clamped to the
    /// capacity. By default, 1024.
    ///
    /// # Panics
    ///
    /// If `chunk_size` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let sizes = Arc::new(Mutex::new(Vec::new()));
    /// let s = sizes.clone();
    /// weir::PipelineBuilder::new()
    ///     .chunk_size(4)
    ///     .from_iter(0..10u32)
    ///     .map_batch(move |xs| {
    ///         s.lock().unwrap().push(xs.len());
    ///         xs
    ///     })
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// let sizes = sizes.lock().unwrap();
    /// assert!(sizes.iter().all(|&n| n <= 4));
    /// assert_eq!(sizes.iter().sum::<usize>(), 10);
    /// # });
    /// ```
    #[track_caller]
    pub fn chunk_size(mut self, chunk_size: usize) -> Self {
        assert!(chunk_size > 0, "PipelineBuilder::chunk_size must be at least 1");
        self.config.chunk_size = chunk_size;
        self.explicit.chunk_size = true;
        self
    }

    /// How often a [`Progress`](crate::EventKind::Progress) event is
    /// emitted while someone listens to [`events`](Pipeline::events) or
    /// [subscribes](Pipeline::subscribe). By default, every second.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use std::time::Duration;
    /// use weir::{EventKind, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let events: Vec<_> = PipelineBuilder::new()
    ///     .progress_interval(Duration::from_millis(100))
    ///     .from_iter(0..5u64)
    ///     .then(|x| async move {
    ///         tokio::time::sleep(Duration::from_millis(100)).await; // a slow call
    ///         x
    ///     })
    ///     .events()
    ///     .collect()
    ///     .await;
    /// let ticks = events.iter().filter(|e| matches!(e.kind, EventKind::Progress(_))).count();
    /// assert!(ticks >= 3, "{ticks} progress events over 500 ms");
    /// # });
    /// ```
    pub fn progress_interval(mut self, every: Duration) -> Self {
        self.config.progress_interval = every;
        self.explicit.progress_interval = true;
        self
    }

    /// How many events may wait for the consumer of
    /// [`events`](Pipeline::events) before the pipeline waits for it. By
    /// default, 1024.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{ErrorPolicy, EventKind, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// // Room for one event only: the pipeline waits for the consumer, and
    /// // loses nothing.
    /// let events: Vec<_> = PipelineBuilder::new()
    ///     .events_capacity(1)
    ///     .error_policy(ErrorPolicy::Skip)
    ///     .from_iter(["1", "a", "b", "c", "5"])
    ///     .try_map(|s| s.parse::<u8>())
    ///     .events()
    ///     .collect()
    ///     .await;
    /// let failed = events.iter().filter(|e| matches!(e.kind, EventKind::ItemFailed { .. })).count();
    /// assert_eq!(failed, 3);
    /// assert!(matches!(events.last().unwrap().kind, EventKind::PipelineFinished { .. }));
    /// # });
    /// ```
    #[track_caller]
    pub fn events_capacity(mut self, capacity: usize) -> Self {
        assert!(
            capacity > 0,
            "PipelineBuilder::events_capacity must be at least 1"
        );
        self.config.events_capacity = capacity;
        self
    }

    /// Which events the run builds: see [`EventLevel`](crate::EventLevel).
    /// By default, [`EventLevel::Progress`](crate::EventLevel::Progress).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{EventKind, EventLevel, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let events: Vec<_> = PipelineBuilder::new()
    ///     .event_level(EventLevel::Lifecycle)
    ///     .from_iter(0..3u8)
    ///     .events()
    ///     .collect()
    ///     .await;
    /// assert!(!events.iter().any(|e| matches!(e.kind, EventKind::Progress(_))));
    /// assert!(matches!(events.last().unwrap().kind, EventKind::PipelineFinished { .. }));
    /// # });
    /// ```
    pub fn event_level(mut self, level: crate::EventLevel) -> Self {
        self.config.event_level = level;
        self.explicit.event_level = true;
        self
    }

    /// How many events a [`Subscription`](crate::Subscription) holds for
    /// a subscriber that is behind; past that it misses the oldest ones
    /// (and is told how many). By default, 256.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let mut p = weir::PipelineBuilder::new().subscribe_capacity(16).from_iter(0..3u8);
    /// let sub = p.subscribe();
    /// p.run().await.unwrap();
    /// use futures::StreamExt;
    /// assert!(sub.collect::<Vec<_>>().await.iter().all(|e| e.is_ok()));
    /// # });
    /// ```
    #[track_caller]
    pub fn subscribe_capacity(mut self, capacity: usize) -> Self {
        assert!(
            capacity > 0,
            "PipelineBuilder::subscribe_capacity must be at least 1"
        );
        self.config.subscribe_capacity = capacity;
        self
    }

    /// The error policy of every stage that does not set its own with
    /// [`Pipeline::on_error`]. By default, [`ErrorPolicy::FailFast`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{ErrorPolicy, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let report = PipelineBuilder::new()
    ///     .error_policy(ErrorPolicy::Skip) // for both stages below
    ///     .from_iter(["1", "x", "300", "4"])
    ///     .try_map(|s| s.parse::<u32>())
    ///     .try_map(u8::try_from)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((report.delivered, report.failed), (2, 2));
    /// assert_eq!(report.stage("map#1").unwrap().failed, 1);
    /// assert_eq!(report.stage("map#2").unwrap().failed, 1);
    /// # });
    /// ```
    pub fn error_policy(mut self, policy: ErrorPolicy) -> Self {
        self.config.error_policy = policy;
        self
    }

    /// The number of items the source will produce, for progress and ETA.
    /// By default, the source's exact size hint if it has one, else
    /// unknown.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{EventKind, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// // A stream does not know its length; the caller does.
    /// let rows = futures::stream::unfold(0u32, |n| async move { (n < 3).then_some((n, n + 1)) });
    /// let events: Vec<_> = PipelineBuilder::new().estimated_total(3).from_stream(rows).events().collect().await;
    /// assert!(matches!(
    ///     events[0].kind,
    ///     EventKind::PipelineStarted { estimated_total: Some(3), .. }
    /// ));
    /// # });
    /// ```
    pub fn estimated_total(mut self, total: u64) -> Self {
        self.config.estimated_total = Some(total);
        self
    }

    /// The run's [`Context`](crate::Context): pass your own to
    /// pre-populate its metadata and to read it after the run (every clone
    /// shares it). By default, each run makes a fresh one.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Context, Key, PipelineBuilder};
    /// const TENANT: Key<&str> = Key::new("tenant");
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let ctx = Context::new("import");
    /// ctx.set(&TENANT, "acme");
    /// let tenant = weir::compose::from_fn("tag", |x: u8, ctx: &Context, out: &mut Vec<String>| {
    ///     out.push(format!("{}:{x}", ctx.get(&TENANT).unwrap_or("?")));
    ///     Ok::<_, weir::BoxError>(())
    /// });
    /// let out = PipelineBuilder::new().context(ctx).from_iter([1u8]).pipe(tenant).collect().await.unwrap();
    /// assert_eq!(out, ["acme:1"]);
    /// # });
    /// ```
    pub fn context(mut self, context: crate::Context) -> Self {
        self.config.context = Some(context);
        self
    }

    /// The [`Hooks`](crate::Hooks) to run at fixed points of each run
    /// (see there). By default, none.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use weir::{ErrorPolicy, Hooks, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let errors = Arc::new(AtomicU64::new(0));
    /// let e = errors.clone();
    /// let hooks = Hooks::new().on_error(move |_, _| {
    ///     e.fetch_add(1, Ordering::Relaxed);
    /// });
    /// PipelineBuilder::new()
    ///     .hooks(hooks)
    ///     .error_policy(ErrorPolicy::Skip)
    ///     .from_iter(["1", "x", "y"])
    ///     .try_map(|s| s.parse::<u8>())
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(errors.load(Ordering::Relaxed), 2);
    /// # });
    /// ```
    pub fn hooks(mut self, hooks: crate::Hooks) -> Self {
        self.config.hooks = hooks;
        self
    }

    /// Where the run's tasks go on the runtime's worker threads. By
    /// default [`Placement::Adaptive`](crate::Placement::Adaptive): the
    /// tasks start together on one worker, so cheap stages hand chunks to
    /// each other without crossing cores, and a task whose chunks take long
    /// (stages doing real work) moves to a task of its own that another
    /// worker can run. [`Spread`](crate::Placement::Spread) spawns every
    /// task on its own from the start; [`Together`](crate::Placement::Together)
    /// keeps them on one core. It changes where work runs, never what the
    /// run does. The `scaling` benchmark measures the three.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap().block_on(async {
    /// let out = weir::PipelineBuilder::new()
    ///     .placement(weir::Placement::Spread)
    ///     .from_iter(1..=4u32)
    ///     .boundary()
    ///     .map(|x| x * 10)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [10, 20, 30, 40]);
    /// # });
    /// ```
    pub fn placement(mut self, placement: crate::Placement) -> Self {
        self.config.placement = placement;
        self
    }

    /// The share of items (0 to 1) that the concurrent stages (`then`,
    /// `try_then`, `blocking`) trace in a `weir.item` span (DEBUG level,
    /// target `weir`, fields `stage` and `item`: the item's position in
    /// the stage's input), a child of the stage's `weir.stage` span.
    /// Sampling is steady: one item in `1 / rate`, starting with the
    /// first. Fused synchronous stages never trace items (a span costs more
    /// than their work on an item). By default 0: no item spans, and no
    /// cost.
    ///
    /// Every stage task runs in a `weir.stage` span (INFO level, fields
    /// `pipeline`, `stage`, `kind`) whatever this setting.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let report = weir::PipelineBuilder::new()
    ///     .trace_items(0.01) // one item in a hundred
    ///     .from_iter(0..1000u32)
    ///     .then(|x| async move { x + 1 })
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(report.delivered, 1000);
    /// # });
    /// ```
    pub fn trace_items(mut self, sample_rate: f64) -> Self {
        self.config.trace_items = sample_rate;
        self.explicit.trace_items = true;
        self
    }

    /// Sets the defaults of [`mode`](Mode): the
    /// [`capacity`](Self::capacity), [`chunk_size`](Self::chunk_size),
    /// [`event_level`](Self::event_level),
    /// [`progress_interval`](Self::progress_interval) and
    /// [`trace_items`](Self::trace_items) that no setter sets. A setter
    /// wins whether it is called before or after `mode`; of two modes,
    /// the last one counts. By default, [`Mode::Balanced`] (the defaults
    /// in the table above).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{EventKind, EventLevel, Mode, PipelineBuilder};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// // Debug's small channels, with the event level set before the mode.
    /// let events: Vec<_> = PipelineBuilder::new()
    ///     .event_level(EventLevel::Lifecycle)
    ///     .mode(Mode::Debug)
    ///     .from_iter(0..3u32)
    ///     .then(|x| async move { x })
    ///     .events()
    ///     .collect()
    ///     .await;
    /// assert!(!events.iter().any(|e| matches!(e.kind, EventKind::ItemStarted { .. })));
    /// let EventKind::PipelineFinished { report, .. } = &events.last().unwrap().kind else { panic!() };
    /// assert_eq!(report.stages[1].queue_capacity, Some(100));
    /// # });
    /// ```
    pub fn mode(mut self, mode: Mode) -> Self {
        let d = mode.defaults();
        let (c, set) = (&mut self.config, self.explicit);
        if !set.capacity {
            c.capacity = d.capacity;
        }
        if !set.chunk_size {
            c.chunk_size = d.chunk_size;
        }
        if !set.event_level {
            c.event_level = d.event_level;
        }
        if !set.progress_interval {
            c.progress_interval = d.progress_interval;
        }
        if !set.trace_items {
            c.trace_items = d.trace_items;
        }
        self
    }

    pub(crate) fn start<T, P>(mut self, plan: P, hint: (usize, Option<usize>)) -> Pipeline<T, P> {
        self.config.chunk_size = self.config.chunk_size.min(self.config.capacity);
        if self.config.estimated_total.is_none() {
            if let (lo, Some(hi)) = hint {
                if lo == hi {
                    self.config.estimated_total = Some(lo as u64);
                }
            }
        }
        Pipeline {
            plan,
            stages: vec![StageSpec::new("source", 0)],
            config: self.config,
            ends_in_sink: false,
            _t: PhantomData,
        }
    }

    /// A pipeline over the items of an iterator (a `Vec`, a range, lines of
    /// a file…). The iterator is pulled a chunk at a time from a task of
    /// its own.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::PipelineBuilder::new().from_iter(vec!["a", "b"]).collect().await.unwrap();
    /// assert_eq!(out, ["a", "b"]);
    /// # });
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn from_iter<I>(self, items: I) -> Pipeline<I::Item, IterSource<I::IntoIter>>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
    {
        let iter = items.into_iter();
        let hint = iter.size_hint();
        self.start(IterSource { iter }, hint)
    }

    /// A pipeline over the items of a [`Stream`]. What the stream has ready
    /// is shipped at once; the source waits only when nothing is ready.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let s = futures::stream::iter(1..=3);
    /// let out = weir::PipelineBuilder::new().from_stream(s).collect().await.unwrap();
    /// assert_eq!(out, [1, 2, 3]);
    /// # });
    /// ```
    pub fn from_stream<S>(self, stream: S) -> Pipeline<S::Item, StreamSource<S>>
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
    {
        let hint = stream.size_hint();
        self.start(StreamSource { stream }, hint)
    }

    /// A pipeline over a stream of items that carry acknowledgement
    /// references: each [`Ack`](crate::Ack) is finalized exactly once.
    /// See also [`Ack`](crate::Ack).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{Ack, Acked, ErrorPolicy, PipelineBuilder, Status};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let acked = Arc::new(Mutex::new(Vec::new()));
    /// let log = acked.clone();
    /// let acker = Arc::new(move |id: u64, status: Status| log.lock().unwrap().push((id, status)));
    /// let messages = ["7", "oops"]
    ///     .into_iter()
    ///     .enumerate()
    ///     .map(move |(i, m)| Acked::new(m, Ack::new(i as u64, acker.clone())));
    /// PipelineBuilder::new()
    ///     .error_policy(ErrorPolicy::Skip)
    ///     .from_acked(futures::stream::iter(messages))
    ///     .try_map(|m| m.parse::<u8>())
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// let mut acked = acked.lock().unwrap().clone();
    /// acked.sort();
    /// assert_eq!(acked, [(0, Status::Delivered), (1, Status::Failed)]);
    /// # });
    /// ```
    pub fn from_acked<S, T>(self, stream: S) -> Pipeline<T, AckedSource<S>>
    where
        S: Stream<Item = Acked<T>> + Send + 'static,
        T: Send + 'static,
    {
        let hint = stream.size_hint();
        self.start(AckedSource { stream }, hint)
    }

    /// A pipeline fed by pushing items through the [`Handle`](crate::Handle)
    /// that [`start`](Pipeline::start) returns. See [`Handle`](crate::Handle)
    /// for an example.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = weir::PipelineBuilder::new()
    ///     .name("ingest")
    ///     .intake::<String>()
    ///     .filter(|line| !line.is_empty())
    ///     .start();
    /// handle.push_batch(["a".to_owned(), String::new(), "b".to_owned()]).await.unwrap();
    /// let report = handle.wait().await.unwrap();
    /// assert_eq!(report.pipeline, "ingest");
    /// assert_eq!((report.pulled, report.delivered, report.dropped), (3, 2, 1));
    /// # });
    /// ```
    pub fn intake<T: Send + 'static>(self) -> Pipeline<T, IntakeSource<T>> {
        self.start(IntakeSource { _t: PhantomData }, (0, None))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::PipelineBuilder;
    use crate::event::EventLevel;
    use crate::pipeline::Mode;

    /// The five settings a mode bundles, as the builder holds them.
    fn bundled(b: &PipelineBuilder) -> (usize, usize, EventLevel, Duration, f64) {
        let c = &b.config;
        (
            c.capacity,
            c.chunk_size,
            c.event_level,
            c.progress_interval,
            c.trace_items,
        )
    }

    /// Guards the documented table of `Mode`, and that `Balanced` is the
    /// defaults without a mode.
    #[test]
    fn each_mode_sets_its_documented_defaults() {
        let secs = Duration::from_secs;
        let cases = [
            (
                Mode::Throughput,
                (16384, 4096, EventLevel::Lifecycle, secs(5), 0.0),
            ),
            (Mode::Balanced, (4096, 1024, EventLevel::Progress, secs(1), 0.0)),
            (
                Mode::Debug,
                (100, 10, EventLevel::Items, Duration::from_millis(100), 1.0),
            ),
        ];
        for (mode, want) in cases {
            assert_eq!(bundled(&PipelineBuilder::new().mode(mode)), want, "{mode:?}");
            // From any other mode, the last one counts.
            for before in [Mode::Throughput, Mode::Balanced, Mode::Debug] {
                let b = PipelineBuilder::new().mode(before).mode(mode);
                assert_eq!(bundled(&b), want, "{before:?} then {mode:?}");
            }
        }
        assert_eq!(bundled(&PipelineBuilder::new()), cases[1].1);
    }

    /// Guards "a mode sets defaults, not values": every setter wins over
    /// every mode, called before it or after it.
    #[test]
    fn explicit_setters_win_over_a_mode_in_either_order() {
        let set = |b: PipelineBuilder| {
            b.capacity(7)
                .chunk_size(3)
                .event_level(EventLevel::Progress)
                .progress_interval(Duration::from_secs(9))
                .trace_items(0.5)
        };
        let want = (7, 3, EventLevel::Progress, Duration::from_secs(9), 0.5);
        for mode in [Mode::Throughput, Mode::Balanced, Mode::Debug] {
            assert_eq!(
                bundled(&set(PipelineBuilder::new()).mode(mode)),
                want,
                "setters, then {mode:?}"
            );
            assert_eq!(
                bundled(&set(PipelineBuilder::new().mode(mode))),
                want,
                "{mode:?}, then setters"
            );
        }
        // One setter: the mode still sets the other four.
        let b = PipelineBuilder::new().chunk_size(3).mode(Mode::Debug);
        assert_eq!(
            bundled(&b),
            (100, 3, EventLevel::Items, Duration::from_millis(100), 1.0)
        );
    }
}
