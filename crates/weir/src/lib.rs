//! weir: streaming pipelines with typed stages, bounded memory,
//! backpressure, and every item finalized exactly once.
//!
//! Items flow from a source through typed stages into a sink. Synchronous
//! stages are fused into one loop; async, blocking and sink stages (and
//! the stages after a `boundary()`) run in tasks of their own joined by
//! bounded channels that carry chunks of
//! items, so memory stays bounded whatever the stream's length and a slow
//! stage slows its upstream instead of growing a queue.
//!
//! ```
//! use weir::{ErrorPolicy, Pipeline};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let report = Pipeline::from_iter(["3", "1", "oops", "4"])
//!     .try_map(|s| s.parse::<u64>())
//!     .name("parse")
//!     .on_error(ErrorPolicy::Skip)
//!     .then(|n| async move { n * 100 }) // e.g. an HTTP call
//!     .concurrency(16)
//!     .filter(|n| *n > 100)
//!     .for_each(|n| println!("{n}"))
//!     .run()
//!     .await
//!     .unwrap();
//! assert_eq!((report.delivered, report.dropped, report.failed), (2, 1, 1));
//! # });
//! ```
//!
//! Three ways to consume a pipeline, all over one streaming core:
//! [`Pipeline::events`] (typed [`Event`]s, the primary API),
//! [`Pipeline::results`] (the output items) and [`Pipeline::run`] (a
//! [`Report`]). [`Pipeline::start`] returns a [`Handle`] for long-running
//! pipelines: push items, read metrics, drain or abort with a deadline.

mod ack;
pub mod compose;
mod context;
mod error;
pub mod event;
mod hooks;
pub mod metrics;
#[cfg(feature = "otel")]
pub mod otel;
mod pipeline;
mod policy;
mod runtime;
mod source;
pub mod stage;

pub use ack::{Ack, Acked, Acker, OffsetTracker, Status};
pub use context::{Context, Key};
pub use error::{BoxError, Error, ErrorKind};
pub use event::{Event, EventKind, EventLevel, Progress, EVENT_VERSION, RATE_WINDOW};
pub use hooks::Hooks;
pub use metrics::{Latency, Outcome, Report, StageReport, Utilization};
pub use pipeline::{InfallibleFuture, Mode, Pipeline, PipelineBuilder};
pub use policy::{
    Breaker, DeadLetter, DeadLetters, Decision, ErrorPolicy, Failure, Retry, Retryable, WhenOpen,
    MAX_HANDLER_ATTEMPTS,
};
pub use runtime::{
    Controller, EventFeed, Events, Handle, Lagged, Placement, PushError, Pusher, Results, Shutdown,
    Subscription, TryPushError,
};
pub use source::{BoxSource, Source};
pub use stage::{aggregate, sink_fn, Sample, Sink};
