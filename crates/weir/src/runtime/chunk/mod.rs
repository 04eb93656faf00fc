//! Where a chunk crosses a task boundary: the bounded chunk [`channel`],
//! its sending end ([`ChannelOut`], the last step of the upstream fused
//! segment), its receiving end ([`forward`], the task that pushes each
//! chunk into the downstream segment), and [`flush_all`], which every
//! driver (a source, a concurrent stage, a `forward`) calls after each
//! chunk to publish counts, send buffered events and ship what the
//! segment's `ChannelOut` holds.

pub(crate) mod channel;
mod receive;
mod send;

pub(crate) use receive::forward;
pub(crate) use send::ChannelOut;

use super::{Flow, Push, TaskCx};
use crate::runtime::Counters;

/// Publishes `c` and settles `down` with the items pushed into it since
/// the last call (`c`'s output count). Drivers call it, or [`flush_all`],
/// before every await.
#[inline]
pub(crate) fn settle<U, D: Push<U>>(down: &mut D, c: &mut Counters) {
    let out = c.publish();
    down.settle(out);
}

/// Settles the counts, sends buffered events and ships buffered output.
pub(crate) async fn flush_all<U, D: Push<U>>(down: &mut D, c: &mut Counters, cx: &mut TaskCx) -> Flow {
    settle(down, c);
    // Tested first: with nothing to send, running `flush_events` anyway
    // cost ~200 instructions per chunk (callgrind).
    if cx.has_events() {
        cx.flush_events().await;
    }
    down.flush(cx).await
}
