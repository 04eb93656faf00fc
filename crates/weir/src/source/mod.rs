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

use crate::ack::{Ack, Room, Token};

/// The token of source item `seq` (with its source's `ack`, if it has
/// one): holding the `room` taken for it under
/// [`max_in_flight`](crate::PipelineBuilder::max_in_flight), if any.
/// Without a bound or an ack, a plain token: one test of a local.
#[inline(always)]
pub(crate) fn token(seq: u64, ack: Option<Ack>, room: &mut Option<Room>) -> Token {
    match (room.take(), ack) {
        (Some(room), ack) => room.token(seq, ack),
        (None, Some(ack)) => Token::acked(seq, ack),
        (None, None) => Token::plain(seq),
    }
}
