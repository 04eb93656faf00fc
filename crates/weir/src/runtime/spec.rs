//! What the runtime knows of a stage: the settings fixed when the
//! pipeline is built. The retry and recovery settings are kept without
//! their item types here; the stages that set them (`stage/resilience.rs`,
//! `stage/recover.rs`) give them back their types when they build their
//! drivers.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::policy::{Breaker, ErrorPolicy, Retry};

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
    pub(crate) retry: Option<RetrySpec>,
    /// The stage's circuit breaker (concurrent stages and sink writes).
    pub(crate) breaker: Option<Breaker>,
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

/// A stage's retry setting: the policy and how to copy the stage's input
/// for another attempt, recorded where the input type is known to be
/// `Clone`.
#[derive(Clone)]
pub(crate) struct RetrySpec {
    pub(crate) policy: Retry,
    /// A `fn(&T) -> T` for the stage's input type `T`.
    pub(crate) clone: Arc<dyn Any + Send + Sync>,
}

impl fmt::Debug for RetrySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.policy.fmt(f)
    }
}

/// A stage's recovery settings: a `Recovery<In, Out>` without its types.
#[derive(Clone, Default)]
pub(crate) struct RecoverSpec(pub(crate) Arc<Mutex<Option<Box<dyn Any + Send>>>>);

impl fmt::Debug for RecoverSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoverSpec")
    }
}
