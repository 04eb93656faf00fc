use std::fmt;

use super::fan_out::{flush_branches, wire, Branch, BranchOut, Branches, ToAll};
use super::{guard, Flow, Plan, Push, TaskCx, Wiring};
use crate::ack::Token;
use crate::pipeline::Pipeline;
use crate::runtime::Counters;

/// The plan node of [`Pipeline::broadcast`]: every item to every branch.
///
/// # Examples
///
/// ```
/// use weir::{stage::{Broadcast, IterSource}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let p: Pipeline<(), Broadcast<IterSource<_>, u32>> = Pipeline::from_iter(0..3u32)
///     .broadcast(|b| b.branch("a", |p| p.for_each(|_| {})).branch("b", |p| p.for_each(|_| {})));
/// assert_eq!(p.run().await.unwrap().delivered, 6); // each item, twice
/// # });
/// ```
#[must_use]
pub struct Broadcast<P, T> {
    prev: P,
    branches: Vec<Branch<T>>,
    idx: usize,
}

impl<P: fmt::Debug, T> fmt::Debug for Broadcast<P, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("prev", &self.prev)
            .field(
                "branches",
                &self.branches.iter().map(Branch::name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Sends every item to every branch: named sub-pipelines, each ending
    /// in a sink and running in a task of its own (Akka's `Broadcast`).
    /// Each branch gets a clone of the item except the last, which gets
    /// the item itself.
    ///
    /// An item is finalized once every branch has finished with it, with
    /// the most severe of their statuses: one branch failing it fails the
    /// item. By default a branch whose buffer is full makes the broadcast
    /// wait, so the slowest branch paces the pipeline; see
    /// [`Branches::drop_newest`] to let a branch lose items instead.
    ///
    /// The pipeline is finished after `broadcast`: run it with
    /// [`run`](Pipeline::run), [`events`](Pipeline::events) or
    /// [`start`](Pipeline::start). [`name`](Pipeline::name) and
    /// [`on_error`](Pipeline::on_error) after it apply to the broadcast
    /// stage.
    ///
    /// # Panics
    ///
    /// If no branch is added.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let audit = Arc::new(Mutex::new(Vec::new()));
    /// let a = audit.clone();
    /// let stored = Arc::new(Mutex::new(Vec::new()));
    /// let s = stored.clone();
    /// let report = weir::Pipeline::from_iter(["a", "b"])
    ///     .broadcast(|b| {
    ///         b.branch("audit", |p| p.map(|x| format!("saw {x}")).for_each(move |x| a.lock().unwrap().push(x)))
    ///             .branch("store", |p| p.for_each(move |x| s.lock().unwrap().push(x)))
    ///     })
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((report.pulled, report.delivered), (2, 4));
    /// assert_eq!(*audit.lock().unwrap(), ["saw a", "saw b"]);
    /// assert_eq!(*stored.lock().unwrap(), ["a", "b"]);
    /// # });
    /// ```
    #[track_caller]
    pub fn broadcast<B>(self, build: B) -> Pipeline<(), Broadcast<P, T>>
    where
        T: Clone,
        B: FnOnce(Branches<T, ToAll>) -> Branches<T, ToAll>,
    {
        self.fan_out("broadcast", build, |prev, b, idx| Broadcast {
            prev,
            branches: b.branches,
            idx,
        })
    }
}

impl<P, T> Plan for Broadcast<P, T>
where
    P: Plan<Out = T>,
    T: Clone + Send + 'static,
{
    type Out = ();
    type Intake = P::Intake;

    fn attach<D: Push<()>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let outs = wire(self.branches, w, self.idx);
        let c = w.counters(self.idx);
        self.prev.attach(
            BroadcastStep {
                outs,
                full: false,
                down,
                c,
            },
            w,
        );
    }
}

struct BroadcastStep<T, D> {
    outs: Vec<BranchOut<T>>,
    /// A branch has a chunk's worth buffered.
    full: bool,
    down: D,
    c: Counters,
}

impl<T, D> Push<T> for BroadcastStep<T, D>
where
    T: Clone + Send + 'static,
    D: Push<()>,
{
    #[inline]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        let Some((last, rest)) = self.outs.split_last_mut() else {
            return;
        };
        for out in rest {
            match guard(|| item.clone()) {
                Ok(copy) => {
                    self.c.expanded += 1;
                    self.full |= out.push(copy, token.split());
                }
                Err(e) => {
                    // The copies sent so far go on; the item fails with
                    // the branches that did not get one.
                    self.c.failed += 1;
                    return cx.fail(self.c.stage(), token, e);
                }
            }
        }
        self.full |= last.push(item, token);
    }

    fn settle(&mut self, pushed: u64) {
        self.c.items_in += pushed;
        self.c.publish();
        for out in &mut self.outs {
            out.publish();
        }
        self.down.settle(0);
    }

    fn wants_flush(&self) -> bool {
        self.full
    }

    fn has_pending(&self) -> bool {
        self.outs.iter().any(BranchOut::has_pending)
    }

    async fn flush(&mut self, cx: &mut TaskCx) -> Flow {
        self.full = false;
        match flush_branches(&mut self.outs).await {
            Flow::Continue => self.down.flush(cx).await,
            Flow::Stop => Flow::Stop,
        }
    }

    async fn finish(mut self, cx: &mut TaskCx) {
        self.flush(cx).await;
        drop(self.outs);
        self.down.finish(cx).await;
    }
}
