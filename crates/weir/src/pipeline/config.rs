use std::time::Duration;

use tokio::sync::broadcast;

use crate::context::Context;
use crate::event::{Event, EventLevel};
use crate::hooks::Hooks;
use crate::policy::ErrorPolicy;

use super::Mode;

/// Pipeline-wide settings. See [`PipelineBuilder`](crate::PipelineBuilder)
/// for what each one means and its default.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) name: String,
    pub(crate) capacity: usize,
    /// The most source items in flight at once; `None`: no bound but the
    /// channels'.
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) chunk_size: usize,
    pub(crate) progress_interval: Duration,
    pub(crate) events_capacity: usize,
    pub(crate) event_level: EventLevel,
    pub(crate) subscribe_capacity: usize,
    /// The broadcast of subscriptions taken before the run.
    pub(crate) monitors: Option<broadcast::Sender<Event>>,
    pub(crate) error_policy: ErrorPolicy,
    pub(crate) estimated_total: Option<u64>,
    /// The caller's context; each run makes its own otherwise.
    pub(crate) context: Option<Context>,
    pub(crate) hooks: Hooks,
    /// The share of items traced in a `weir.item` span (0 = none).
    pub(crate) trace_items: f64,
    /// Where the run's tasks go on the runtime's workers.
    pub(crate) placement: crate::runtime::Placement,
}

impl Default for Config {
    fn default() -> Config {
        // The settings a mode bundles: `Balanced`'s.
        let d = Mode::Balanced.defaults();
        Config {
            name: "pipeline".to_owned(),
            capacity: d.capacity,
            max_in_flight: None,
            chunk_size: d.chunk_size,
            progress_interval: d.progress_interval,
            events_capacity: 1024,
            event_level: d.event_level,
            subscribe_capacity: 256,
            monitors: None,
            error_policy: ErrorPolicy::FailFast,
            estimated_total: None,
            context: None,
            hooks: Hooks::default(),
            trace_items: d.trace_items,
            placement: crate::runtime::Placement::default(),
        }
    }
}
