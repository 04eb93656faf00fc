use std::fmt;

use super::{Plan, Push, Wiring};
use crate::runtime::{forward, ChannelOut};

/// The plan node of [`Pipeline::boundary`](crate::Pipeline::boundary): ends
/// the fused segment, so the stages after it run in a task of their own
/// behind a chunk channel.
///
/// # Examples
///
/// ```
/// use weir::{stage::{Boundary, IterSource, Map}, Pipeline};
/// # tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap().block_on(async {
/// let p: Pipeline<u64, Boundary<Map<IterSource<_>, _>>> = Pipeline::from_iter(0..4u64).map(|x| x * x).boundary();
/// assert_eq!(p.map(|x| x + 1).collect().await.unwrap(), [1, 2, 5, 10]);
/// # });
/// ```
#[must_use]
pub struct Boundary<P> {
    pub(crate) prev: P,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug> fmt::Debug for Boundary<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Boundary")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P: Plan> Plan for Boundary<P> {
    type Out = P::Out;
    type Intake = P::Intake;

    fn attach<D: Push<P::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let (tx, rx) = w.input_channel(self.idx);
        let c = w.counters(self.idx);
        w.spawn_stage(self.idx, forward(Some(rx), down, c, w.cx(), true));
        let out = ChannelOut::new(tx, w.chunk_size());
        self.prev.attach(out, w);
    }
}
