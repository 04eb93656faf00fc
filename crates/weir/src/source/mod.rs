//! Sources: where items come from. Each source node drives the fused
//! segment after it from a task of its own, pulling a chunk of items at a
//! time and checking for a drain between chunks.

mod intake;
mod iter;
mod stream;

pub use intake::IntakeSource;
pub use iter::IterSource;
pub use stream::{AckedSource, StreamSource};

use crate::metrics::Counters;
use crate::stage::{Flow, Push, TaskCx};

/// Ships a chunk: publish counters, send events, flush downstream.
pub(crate) async fn ship<T, D: Push<T>>(down: &mut D, c: &mut Counters, cx: &mut TaskCx) -> Flow {
    c.publish();
    cx.flush_events().await;
    down.flush(cx).await
}
