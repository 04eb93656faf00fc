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
mod each;
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
mod settings;
mod sink;
mod skip;
mod skip_while;
mod take;
mod take_while;
mod tap;
mod tap_async;
mod throttle_first;
mod timeout;
mod validate;

pub(crate) use sink::FnSink;
mod then;
mod unbatch;

pub(crate) use crate::runtime::forward;
pub use aggregate::{Aggregate, AggregateTime};
pub use batch::Batch;
pub(crate) use batch::Members;
pub use blocking::Blocking;
pub use boundary::Boundary;
pub use boxed::BoxPlan;
pub use branch_join::{ArmTypes, Arms, BranchJoin, Joined, ZipArms};
pub use broadcast::Broadcast;
pub use dedup::Dedup;
pub use each::{EachItem, Sample};
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
pub(crate) use recover::{with_recovery, Concurrent, SpawnWork, SyncRecover};
pub use route::Route;
pub use scan::Scan;
pub use settings::{CallSettings, ConcurrencySettings, OrderSettings};
pub use sink::sink_fn;
pub use sink::{Sink, SinkStage, WriteOutput};
pub use skip::Skip;
pub use skip_while::SkipWhile;
pub use take::Take;
pub use take_while::TakeWhile;
pub use tap_async::TapAsync;
pub use then::Then;
pub use throttle_first::ThrottleFirst;
pub use unbatch::Unbatch;
pub use validate::Validate;

pub use crate::source::{
    AckedSource, BoxSourceStream, IntakeSource, IterSource, Merge, StreamSource, Streamed,
};

pub(crate) use crate::runtime::{forward_flush, guard, held, run_held};
pub use crate::runtime::{NoIntake, Plan};
// The runtime's core interface, which `Plan::attach` names: public in the
// private `runtime` module and re-exported nowhere public, so no other
// crate can name it, and `Plan` is sealed.
pub(crate) use crate::runtime::{Flow, Push, StageSpec, TaskCx, Wiring};
