//! Sources: where items come from. Each source node drives the fused
//! segment after it from a task of its own, pulling a chunk of items at a
//! time and checking for a drain between chunks.

mod boxed;
mod intake;
mod iter;
mod lifecycle;
mod merge;
mod stream;

pub use boxed::{BoxSource, BoxSourceStream};
pub use intake::IntakeSource;
pub use iter::IterSource;
pub use lifecycle::{Source, Streamed};
pub use merge::Merge;
pub use stream::{AckedSource, StreamSource};

/// Ships a chunk: settle counts, send events, flush downstream (the same
/// step every task takes).
pub(crate) use crate::runtime::flush_all;
pub(crate) use crate::runtime::settle;
