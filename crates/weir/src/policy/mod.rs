//! Policies applied per stage. This module holds the error policy; retries,
//! circuit breakers, rate limits and timeouts join it with the same shape.

mod breaker;
mod retry;

pub use breaker::{Breaker, WhenOpen};
pub(crate) use breaker::{BreakerState, CircuitBreaker, Ticket};
pub(crate) use retry::Backoff;
pub use retry::{Retry, Retryable};
mod dead_letter;
mod dead_letters;
mod handler;

pub use dead_letter::DeadLetter;
pub(crate) use dead_letter::{run_dead_letters, DeadLetterRun, Letter, Routing};
pub use dead_letters::DeadLetters;
pub use handler::{Decision, Failure, MAX_HANDLER_ATTEMPTS};

/// What happens to the pipeline when an item fails in a stage.
///
/// Set per stage with [`Pipeline::on_error`](crate::Pipeline::on_error), or
/// for every stage with
/// [`PipelineBuilder::error_policy`](crate::PipelineBuilder::error_policy).
/// Whatever the policy, the failed item is finalized as
/// [`Status::Failed`](crate::Status::Failed), counted, and reported as an
/// [`ItemFailed`](crate::EventKind::ItemFailed) event.
///
/// # Examples
///
/// ```
/// use weir::{ErrorPolicy, Pipeline};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // FailFast (the default) stops at the first bad item...
/// let failed = Pipeline::from_iter(["1", "x", "3"]).try_map(|s| s.parse::<u8>()).run().await;
/// assert!(failed.is_err());
///
/// // ...Skip records it and goes on.
/// let report = Pipeline::from_iter(["1", "x", "3"])
///     .try_map(|s| s.parse::<u8>())
///     .on_error(ErrorPolicy::Skip)
///     .run()
///     .await
///     .unwrap();
/// assert_eq!((report.delivered, report.failed), (2, 1));
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorPolicy {
    /// Stop the pipeline: intake stops, in-flight items finish, and the run
    /// returns the first error with its stage, item and cause. The default.
    #[default]
    FailFast,
    /// Record the failure and go on with the next item.
    Skip,
    /// Send the item and its failure to the stage's dead-letter sink (set
    /// with [`Pipeline::dead_letter`](crate::Pipeline::dead_letter), which
    /// also sets this policy) and go on. The item is finalized
    /// [`DeadLettered`](crate::Status::DeadLettered) once the sink took
    /// the record. A stage with this policy but no dead-letter sink (e.g.
    /// set for every stage with
    /// [`PipelineBuilder::error_policy`](crate::PipelineBuilder::error_policy))
    /// makes [`run`](crate::Pipeline::run) return an
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) error before
    /// anything is pulled. One sink for the whole pipeline, whatever each
    /// stage's item type: give every stage a clone of a
    /// [`DeadLetters`](crate::DeadLetters), which writes each record with
    /// its item as JSON.
    DeadLetter,
}
