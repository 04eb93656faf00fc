//! [`Mode`]: a bundle of pipeline-wide defaults (seed 004's
//! high-performance / standard / debug modes).

use std::time::Duration;

use crate::event::EventLevel;

/// A preset of pipeline-wide defaults, set with
/// [`PipelineBuilder::mode`](crate::PipelineBuilder::mode): the channel
/// capacity, the chunk size, the event level, the progress interval and
/// the share of items traced.
///
/// A mode sets defaults, not values: a setter called on the builder
/// ([`capacity`](crate::PipelineBuilder::capacity),
/// [`chunk_size`](crate::PipelineBuilder::chunk_size),
/// [`event_level`](crate::PipelineBuilder::event_level),
/// [`progress_interval`](crate::PipelineBuilder::progress_interval),
/// [`trace_items`](crate::PipelineBuilder::trace_items)) wins over it,
/// whether it is called before or after `mode`.
///
/// | setting | `Throughput` | `Balanced` (the default) | `Debug` |
/// |---|---|---|---|
/// | capacity | 16384 items | 4096 items | 100 items |
/// | chunk size | 4096 items | 1024 items | 10 items |
/// | event level | [`Lifecycle`](EventLevel::Lifecycle) | [`Progress`](EventLevel::Progress) | [`Items`](EventLevel::Items) |
/// | progress interval | 5 s | 1 s | 100 ms |
/// | item tracing | 0 (none) | 0 (none) | 1 (every item) |
///
/// A task boundary holds up to `capacity + 2 × chunk_size` items, so
/// `Throughput` holds about four times the memory of `Balanced` per
/// boundary: for large items, prefer `Balanced` with a larger
/// `chunk_size` alone.
///
/// # Examples
///
/// ```
/// use weir::{Mode, PipelineBuilder};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let report = PipelineBuilder::new()
///     .mode(Mode::Throughput)
///     .capacity(1000) // a setter wins over the mode
///     .from_iter(0..10u32)
///     .boundary()
///     .run()
///     .await
///     .unwrap();
/// assert_eq!(report.delivered, 10);
/// assert_eq!(report.stages[1].queue_capacity, Some(1000));
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// Bigger chunks and channels, no progress events: for bulk loads
    /// where nobody watches item by item. A sink flushes (so a store
    /// commits) once per chunk, so 4 times bigger chunks mean 4 times
    /// fewer commits (the `weir-postgres-chunk16k` row of the `stores`
    /// benchmark in `docs/BENCHMARKS.md` measures the effect); lifecycle
    /// events (started, failures, finished) still come.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{EventKind, Mode, PipelineBuilder};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let events: Vec<_> = PipelineBuilder::new()
    ///     .mode(Mode::Throughput)
    ///     .from_iter(0..100u32)
    ///     .then(|x| async move { x })
    ///     .events()
    ///     .collect()
    ///     .await;
    /// let EventKind::PipelineFinished { report, .. } = &events.last().unwrap().kind else { panic!() };
    /// assert_eq!(report.stages[1].queue_capacity, Some(16384));
    /// assert!(!events.iter().any(|e| matches!(e.kind, EventKind::Progress(_))));
    /// # });
    /// ```
    Throughput,
    /// Today's defaults: what [`PipelineBuilder::new`](crate::PipelineBuilder::new)
    /// sets without a mode (see its table).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Mode, PipelineBuilder};
    ///
    /// assert_eq!(Mode::default(), Mode::Balanced);
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let report = PipelineBuilder::new()
    ///     .mode(Mode::Balanced)
    ///     .from_iter(0..10u32)
    ///     .boundary()
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(report.stages[1].queue_capacity, Some(4096));
    /// # });
    /// ```
    #[default]
    Balanced,
    /// Small chunks and channels, an event per item in each stage that
    /// runs in a task of its own, progress ten times a second and a
    /// `weir.item` span for every item (seed 004's debug row: batches of
    /// 10, a buffer of 100): what happened to which item, soon after it
    /// happened, at the cost of speed.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{EventKind, Mode, PipelineBuilder};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let events: Vec<_> = PipelineBuilder::new()
    ///     .mode(Mode::Debug)
    ///     .from_iter(0..3u32)
    ///     .then(|x| async move { x })
    ///     .events()
    ///     .collect()
    ///     .await;
    /// let started = events.iter().filter(|e| matches!(e.kind, EventKind::ItemStarted { .. })).count();
    /// assert_eq!(started, 3);
    /// let EventKind::PipelineFinished { report, .. } = &events.last().unwrap().kind else { panic!() };
    /// assert_eq!(report.stages[1].queue_capacity, Some(100));
    /// # });
    /// ```
    Debug,
}

/// The settings a [`Mode`] gives defaults for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Defaults {
    pub(crate) capacity: usize,
    pub(crate) chunk_size: usize,
    pub(crate) event_level: EventLevel,
    pub(crate) progress_interval: Duration,
    pub(crate) trace_items: f64,
}

impl Mode {
    /// The mode's defaults (the table in [`Mode`]'s docs).
    pub(crate) fn defaults(self) -> Defaults {
        match self {
            Mode::Throughput => Defaults {
                capacity: 16384,
                chunk_size: 4096,
                event_level: EventLevel::Lifecycle,
                progress_interval: Duration::from_secs(5),
                trace_items: 0.0,
            },
            Mode::Balanced => Defaults {
                capacity: 4096,
                chunk_size: 1024,
                event_level: EventLevel::Progress,
                progress_interval: Duration::from_secs(1),
                trace_items: 0.0,
            },
            Mode::Debug => Defaults {
                capacity: 100,
                chunk_size: 10,
                event_level: EventLevel::Items,
                progress_interval: Duration::from_millis(100),
                trace_items: 1.0,
            },
        }
    }
}
