use std::collections::HashMap;
use std::fmt;

use super::fan_out::{flush_branches, wire, Branch, BranchOut, Branches, ByKey};
use super::{guard, Flow, Plan, Push, TaskCx, Wiring};
use crate::ack::Token;
use crate::error::{Error, ErrorKind};
use crate::pipeline::Pipeline;
use crate::runtime::Counters;

/// The plan node of [`Pipeline::route`]: each item to the branch its key
/// names.
///
/// # Examples
///
/// ```
/// use weir::{stage::{IterSource, Route}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let p: Pipeline<(), Route<IterSource<_>, &str, _>> = Pipeline::from_iter(["warn: disk", "info: ok"]).route(
///     |line| line.split(':').next().unwrap_or("").to_owned(),
///     |r| r.branch("warn", |p| p.for_each(|_| {})).branch("info", |p| p.for_each(|_| {})),
/// );
/// assert_eq!(p.run().await.unwrap().delivered, 2);
/// # });
/// ```
#[must_use]
pub struct Route<P, T, F> {
    prev: P,
    key: F,
    branches: Vec<Branch<T>>,
    default: Option<usize>,
    idx: usize,
}

impl<P: fmt::Debug, T, F> fmt::Debug for Route<P, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
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
    /// Sends each item to the branch named by its key (Akka's
    /// `Partition`): named sub-pipelines, each ending in a sink and running
    /// in a task of its own. An item whose key names no branch goes to the
    /// [`default_branch`](Branches::default_branch) if there is one, and
    /// otherwise fails in the route stage (routed by its
    /// [`ErrorPolicy`](crate::ErrorPolicy), set with
    /// [`on_error`](Pipeline::on_error) after `route`). A panic in `key`
    /// fails the item likewise.
    ///
    /// By default a branch whose buffer is full makes the route wait; see
    /// [`Branches::drop_newest`]. The pipeline is finished after `route`.
    ///
    /// # Panics
    ///
    /// If no branch is added.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::ErrorPolicy;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let report = weir::Pipeline::from_iter(["GET /", "POST /x", "BREW /pot"])
    ///     .route(
    ///         |line| line.split(' ').next().unwrap_or("").to_owned(),
    ///         |r| {
    ///             r.branch("GET", |p| p.for_each(|_| {}))
    ///                 .branch("POST", |p| p.for_each(|_| {}))
    ///         },
    ///     )
    ///     .name("by-method")
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((report.delivered, report.failed), (2, 1));
    /// assert_eq!(report.stage("by-method").unwrap().failed, 1);
    /// # });
    /// ```
    #[track_caller]
    pub fn route<K, F, B>(self, key: F, build: B) -> Pipeline<(), Route<P, T, F>>
    where
        F: FnMut(&T) -> K + Send + 'static,
        K: AsRef<str>,
        B: FnOnce(Branches<T, ByKey>) -> Branches<T, ByKey>,
    {
        self.fan_out("route", build, |prev, b, idx| Route {
            prev,
            key,
            branches: b.branches,
            default: b.default,
            idx,
        })
    }
}

impl<P, T, F, K> Plan for Route<P, T, F>
where
    P: Plan<Out = T>,
    T: Send + 'static,
    F: FnMut(&T) -> K + Send + 'static,
    K: AsRef<str>,
{
    type Out = ();
    type Intake = P::Intake;

    fn attach<D: Push<()>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let lookup = self
            .branches
            .iter()
            .enumerate()
            .map(|(i, b)| (b.name().to_owned(), i))
            .collect();
        let outs = wire(self.branches, w, self.idx);
        let c = w.counters(self.idx);
        self.prev.attach(
            RouteStep {
                key: self.key,
                lookup,
                default: self.default,
                outs,
                full: false,
                down,
                c,
            },
            w,
        );
    }
}

struct RouteStep<T, F, D> {
    key: F,
    lookup: HashMap<String, usize>,
    default: Option<usize>,
    outs: Vec<BranchOut<T>>,
    /// A branch has a chunk's worth buffered.
    full: bool,
    down: D,
    c: Counters,
}

impl<T, F, K, D> Push<T> for RouteStep<T, F, D>
where
    T: Send + 'static,
    F: FnMut(&T) -> K + Send + 'static,
    K: AsRef<str>,
    D: Push<()>,
{
    #[inline]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        let target = match guard(|| (self.key)(&item)) {
            Ok(key) => {
                let key = key.as_ref();
                match self.lookup.get(key).copied().or(self.default) {
                    Some(target) => target,
                    None => {
                        self.c.failed += 1;
                        let e = Error::new(ErrorKind::Stage, format!("no branch for key `{key}`"));
                        return cx.fail(self.c.stage(), token, e);
                    }
                }
            }
            Err(e) => {
                self.c.failed += 1;
                return cx.fail(self.c.stage(), token, e);
            }
        };
        self.full |= self.outs[target].push(item, token);
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
