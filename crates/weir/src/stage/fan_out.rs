//! What [`broadcast`](crate::Pipeline::broadcast) and
//! [`route`](crate::Pipeline::route) share: the branch builder, the
//! placeholder source each branch's sub-pipeline starts from, and the
//! bounded outlet that feeds a branch's task.
//!
//! A branch is built as a pipeline of its own over a [`BranchSource`]
//! whose stages are registered in the parent pipeline (so every count,
//! error and event names them). When the parent is wired, the fan-out
//! step creates each branch's channel and leaves its receiving end in the
//! branch's inlet; attaching the branch plan then reaches the
//! `BranchSource`, which spawns the branch's task on that receiver with the
//! branch's fused stages after it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use super::{NoIntake, Plan, Push, StageSpec, Wiring};
use crate::ack::{Status, Token};
use crate::event::EventKind;
use crate::pipeline::{Config, Pipeline};
use crate::runtime::channel::{self, Chunk, Receiver, Sender};
use crate::runtime::Counters;
use crate::runtime::Flow;
use crate::runtime::{Discard, Shared};

/// Marks the [`Branches`] of a [`broadcast`](crate::Pipeline::broadcast):
/// every item goes to every branch.
///
/// # Examples
///
/// ```
/// use weir::{stage::{Branches, ToAll}, Pipeline};
///
/// // Branches built by a function of their own: a shared audit trail.
/// fn audited(b: Branches<u32, ToAll>) -> Branches<u32, ToAll> {
///     b.branch("audit", |p| p.for_each(|_| {})).branch("store", |p| p.for_each(|_| {}))
/// }
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let r = Pipeline::from_iter(0..3u32).broadcast(audited).run().await.unwrap();
/// assert_eq!((r.pulled, r.delivered), (3, 6));
/// # });
/// ```
#[derive(Debug, Clone, Copy)]
pub enum ToAll {}

/// Marks the [`Branches`] of a [`route`](crate::Pipeline::route): each item
/// goes to the branch its key names.
///
/// # Examples
///
/// ```
/// use weir::{stage::{Branches, ByKey}, Pipeline};
///
/// fn by_parity(b: Branches<u32, ByKey>) -> Branches<u32, ByKey> {
///     b.branch("even", |p| p.for_each(|_| {})).branch("odd", |p| p.for_each(|_| {}))
/// }
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let r = Pipeline::from_iter(0..4u32)
///     .route(|x| if x % 2 == 0 { "even" } else { "odd" }, by_parity)
///     .run()
///     .await
///     .unwrap();
/// assert_eq!((r.pulled, r.delivered), (4, 4)); // each item to one branch
/// # });
/// ```
#[derive(Debug, Clone, Copy)]
pub enum ByKey {}

type Inlet<T> = Arc<Mutex<Option<Receiver<T>>>>;

/// Attaches a branch's sub-plan (its stages' tasks) to a wiring.
type AttachBranch = Box<dyn FnOnce(&mut Wiring<NoIntake>) + Send>;

/// One branch, built and type-erased, waiting to be wired.
pub(crate) struct Branch<T> {
    name: String,
    entry: usize,
    capacity: Option<usize>,
    drop_newest: bool,
    inlet: Inlet<T>,
    attach: AttachBranch,
}

impl<T> Branch<T> {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// The named branches of a [`broadcast`](crate::Pipeline::broadcast)
/// (`M` = [`ToAll`]) or a [`route`](crate::Pipeline::route) (`M` =
/// [`ByKey`]), each a sub-pipeline that ends in a sink.
///
/// Every branch runs in a task of its own behind a bounded channel. By
/// default a full branch makes the fan-out wait (backpressure: the slowest
/// branch paces the others); [`drop_newest`](Self::drop_newest) makes a
/// branch drop what does not fit in its [`buffer`](Self::buffer) instead.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let (evens, odds) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
/// let (e, o) = (evens.clone(), odds.clone());
/// let report = weir::Pipeline::from_iter(0..6u32)
///     .route(
///         |x| if x % 2 == 0 { "even" } else { "odd" },
///         |r| {
///             r.branch("even", |p| p.for_each(move |x| e.lock().unwrap().push(x)))
///                 .branch("odd", |p| p.for_each(move |x| o.lock().unwrap().push(x)))
///         },
///     )
///     .run()
///     .await
///     .unwrap();
/// assert_eq!(report.delivered, 6);
/// assert_eq!(*evens.lock().unwrap(), [0, 2, 4]);
/// assert_eq!(*odds.lock().unwrap(), [1, 3, 5]);
/// # });
/// ```
#[must_use]
pub struct Branches<T, M> {
    stages: Vec<StageSpec>,
    config: Config,
    pub(crate) branches: Vec<Branch<T>>,
    pub(crate) default: Option<usize>,
    _m: PhantomData<fn() -> M>,
}

impl<T, M> fmt::Debug for Branches<T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Branches")
            .field(
                "branches",
                &self.branches.iter().map(|b| &b.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static, M> Branches<T, M> {
    fn new(stages: Vec<StageSpec>, config: Config) -> Branches<T, M> {
        Branches {
            stages,
            config,
            branches: Vec::new(),
            default: None,
            _m: PhantomData,
        }
    }

    /// Adds a branch named `name`: `build` gets a pipeline of the items
    /// sent to the branch and must end it in a sink
    /// ([`sink`](Pipeline::sink), [`for_each`](Pipeline::for_each), …).
    /// The branch's stages are named `name/…` in metrics, errors and
    /// events; the branch itself is a stage named `name` (kind `branch`)
    /// that counts what it received and what its buffer dropped.
    ///
    /// # Panics
    ///
    /// If a stage is already named `name`, or the branch does not end in
    /// a sink.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let report = weir::Pipeline::from_iter(1..=3u32)
    ///     .broadcast(|b| {
    ///         b.branch("sum", |p| p.map(|x| x * 2).for_each(|_| {}))
    ///             .branch("log", |p| p.for_each(|x| println!("{x}")))
    ///     })
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(report.delivered, 6); // three items, two branches
    /// assert_eq!(report.stage("sum/map#2").unwrap().items_out, 3);
    /// # });
    /// ```
    #[track_caller]
    pub fn branch<Q, B>(mut self, name: impl Into<String>, build: B) -> Self
    where
        B: FnOnce(Pipeline<T, BranchSource<T>>) -> Pipeline<(), Q>,
        Q: Plan<Out = (), Intake = NoIntake>,
    {
        let name = name.into();
        assert!(
            !self.stages.iter().any(|s| s.name == name),
            "Branches::branch: a stage is already named `{name}`"
        );
        let entry = self.stages.len();
        let mut spec = StageSpec::new("branch", entry);
        spec.name.clone_from(&name);
        self.stages.push(spec);
        let inlet: Inlet<T> = Arc::new(Mutex::new(None));
        let source = Pipeline {
            plan: BranchSource {
                inlet: inlet.clone(),
                idx: entry,
            },
            stages: std::mem::take(&mut self.stages),
            config: self.config.clone(),
            ends_in_sink: false,
            _t: PhantomData,
        };
        let built = build(source);
        assert!(
            built.ends_in_sink,
            "Branches::branch: branch `{name}` must end in a sink (`sink`, `for_each`, …)"
        );
        self.stages = built.stages;
        for s in &mut self.stages[entry + 1..] {
            s.name = format!("{name}/{}", s.name);
        }
        let plan = built.plan;
        self.branches.push(Branch {
            name,
            entry,
            capacity: None,
            drop_newest: false,
            inlet,
            attach: Box::new(move |w| plan.attach(Discard::new(None), w)),
        });
        self
    }

    /// How many items the last branch added can hold before it makes the
    /// fan-out wait (or, with [`drop_newest`](Self::drop_newest), drops
    /// what does not fit). By default, the pipeline's
    /// [`capacity`](crate::PipelineBuilder::capacity).
    ///
    /// # Panics
    ///
    /// If no branch was added yet, or `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let report = weir::Pipeline::from_iter(0..100u32)
    ///     .broadcast(|b| b.branch("small", |p| p.for_each(|_| {})).buffer(8))
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(report.delivered, 100);
    /// # });
    /// ```
    #[track_caller]
    pub fn buffer(mut self, n: usize) -> Self {
        assert!(n > 0, "Branches::buffer must be at least 1");
        self.last().capacity = Some(n);
        self
    }

    /// Makes the last branch added drop the items that do not fit in its
    /// [`buffer`](Self::buffer) instead of making the fan-out wait: a slow
    /// branch then loses items rather than slowing the others. Each
    /// dropped item is counted (`dropped` of the branch's stage) and
    /// finalized as dropped for that branch only; each time the fan-out
    /// ships its buffered items and some do not fit, one
    /// [`ItemsDropped`](crate::EventKind::ItemsDropped) event says how
    /// many (not one event per item).
    ///
    /// # Panics
    ///
    /// If no branch was added yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let report = weir::PipelineBuilder::new()
    ///     .chunk_size(10)
    ///     .from_iter(0..1000u32)
    ///     .broadcast(|b| {
    ///         b.branch("store", |p| p.for_each(|_| {}))
    ///             .branch("preview", |p| {
    ///                 p.for_each_async(|_| async {
    ///                     tokio::time::sleep(Duration::from_millis(10)).await;
    ///                     Ok::<_, std::io::Error>(())
    ///                 })
    ///             })
    ///             .buffer(10)
    ///             .drop_newest()
    ///     })
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// let preview = report.stage("preview").unwrap();
    /// assert!(preview.dropped > 0);
    /// assert_eq!(report.stage("store/sink#2").unwrap().items_out, 1000);
    /// assert_eq!(report.stage("preview/sink#4").unwrap().items_out + preview.dropped, 1000);
    /// # });
    /// ```
    ///
    /// The drops as events:
    ///
    /// ```
    /// use futures::StreamExt;
    /// use std::time::Duration;
    /// use weir::EventKind;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let events: Vec<_> = weir::PipelineBuilder::new()
    ///     .chunk_size(10)
    ///     .from_iter(0..100u32)
    ///     .broadcast(|b| {
    ///         b.branch("preview", |p| {
    ///             p.for_each_async(|_| async {
    ///                 tokio::time::sleep(Duration::from_millis(10)).await;
    ///                 Ok::<_, std::io::Error>(())
    ///             })
    ///         })
    ///         .buffer(10)
    ///         .drop_newest()
    ///     })
    ///     .events()
    ///     .collect()
    ///     .await;
    /// let dropped: u64 = events
    ///     .iter()
    ///     .filter_map(|e| match &e.kind {
    ///         EventKind::ItemsDropped { branch, count, .. } if branch == "preview" => Some(*count),
    ///         _ => None,
    ///     })
    ///     .sum();
    /// let EventKind::PipelineFinished { report, .. } = &events.last().unwrap().kind else { panic!() };
    /// assert!(dropped > 0);
    /// assert_eq!(dropped, report.stage("preview").unwrap().dropped);
    /// # });
    /// ```
    #[track_caller]
    pub fn drop_newest(mut self) -> Self {
        self.last().drop_newest = true;
        self
    }

    #[track_caller]
    fn last(&mut self) -> &mut Branch<T> {
        self.branches
            .last_mut()
            .expect("Branches: add a branch before setting its buffer")
    }
}

impl<T: Send + 'static> Branches<T, ByKey> {
    /// Adds the branch that takes the items whose key names no branch
    /// (without one, such an item fails in the route stage). Otherwise
    /// like [`branch`](Self::branch).
    ///
    /// # Panics
    ///
    /// As [`branch`](Self::branch); also if a default branch is already set.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let report = weir::Pipeline::from_iter(["a", "b", "zzz"])
    ///     .route(|s| s.to_string(), |r| {
    ///         r.branch("a", |p| p.for_each(|_| {}))
    ///             .default_branch("other", |p| p.for_each(|_| {}))
    ///     })
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(report.stage("a").unwrap().items_in, 1);
    /// assert_eq!(report.stage("other").unwrap().items_in, 2);
    /// # });
    /// ```
    #[track_caller]
    pub fn default_branch<Q, B>(self, name: impl Into<String>, build: B) -> Self
    where
        B: FnOnce(Pipeline<T, BranchSource<T>>) -> Pipeline<(), Q>,
        Q: Plan<Out = (), Intake = NoIntake>,
    {
        assert!(
            self.default.is_none(),
            "Branches::default_branch: a default branch is already set"
        );
        let mut this = self.branch(name, build);
        this.default = Some(this.branches.len() - 1);
        this
    }
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Builds the branches of a fan-out stage of `kind`, then registers the
    /// stage itself after them (so that `name` and `on_error` apply to it)
    /// and wraps the plan with `node`. The pipeline is finished: its
    /// branches end in sinks.
    #[track_caller]
    pub(crate) fn fan_out<M, N>(
        mut self,
        kind: &'static str,
        build: impl FnOnce(Branches<T, M>) -> Branches<T, M>,
        node: impl FnOnce(P, Branches<T, M>, usize) -> N,
    ) -> Pipeline<(), N> {
        let stages = std::mem::take(&mut self.stages);
        let mut branches = build(Branches::new(stages, self.config.clone()));
        assert!(
            !branches.branches.is_empty(),
            "Pipeline::{kind}: add at least one branch"
        );
        let idx = branches.stages.len();
        let mut stages = std::mem::take(&mut branches.stages);
        stages.push(StageSpec::new(kind, idx));
        Pipeline {
            plan: node(self.plan, branches, idx),
            stages,
            config: self.config,
            ends_in_sink: true,
            _t: PhantomData,
        }
    }
}

/// Wires each branch of fan-out stage `fan_out`: its channel, its task and
/// its stages' tasks.
pub(crate) fn wire<T: Send + 'static, I>(
    branches: Vec<Branch<T>>,
    w: &mut Wiring<I>,
    fan_out: usize,
) -> Vec<BranchOut<T>> {
    branches
        .into_iter()
        .map(|b| {
            let capacity = b.capacity.unwrap_or_else(|| w.capacity());
            let (tx, rx) = channel::channel(capacity);
            *b.inlet.lock().unwrap_or_else(|p| p.into_inner()) = Some(rx);
            let mut sub = Wiring {
                shared: w.shared.clone(),
                tasks: Vec::new(),
                intake: None,
            };
            (b.attach)(&mut sub);
            w.tasks.append(&mut sub.tasks);
            let chunk = w.chunk_size().min(capacity);
            BranchOut {
                tx,
                buf: Vec::with_capacity(chunk),
                chunk,
                drop_newest: b.drop_newest,
                fan_out,
                c: Counters::explicit(w.shared.clone(), b.entry),
            }
        })
        .collect()
}

/// The fan-out's end of one branch: a chunk buffer and the branch's
/// channel. Counts the branch stage's input and drops (its output is
/// counted by the branch's task), and reports each flush's drops as one
/// [`ItemsDropped`](EventKind::ItemsDropped) event.
pub(crate) struct BranchOut<T> {
    tx: Sender<T>,
    buf: Chunk<T>,
    chunk: usize,
    drop_newest: bool,
    /// The fan-out stage (`broadcast`, `route`) the branch belongs to.
    fan_out: usize,
    c: Counters,
}

impl<T: Send + 'static> BranchOut<T> {
    /// Buffers an item; true when a chunk's worth is buffered.
    #[inline]
    pub(crate) fn push(&mut self, item: T, token: Token) -> bool {
        self.c.items_in += 1;
        self.buf.push((item, token));
        self.buf.len() >= self.chunk
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    pub(crate) fn publish(&mut self) {
        self.c.publish();
    }

    /// Ships the buffer: waits for room, or (drop-newest) sends what fits
    /// and drops the rest. False once the branch no longer takes items.
    pub(crate) async fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return !self.tx.is_closed();
        }
        if self.drop_newest {
            // A refused buffer is dropped with the branch: its items were
            // not delivered and their tokens report `Aborted`.
            let open = self.tx.send_fitting(&mut self.buf);
            let dropped = self.buf.len() as u64;
            if open && dropped > 0 {
                self.c.dropped += dropped;
                for (_, token) in self.buf.drain(..) {
                    token.finish(Status::Dropped);
                }
                self.c.publish();
            }
            self.buf.clear();
            if self.buf.capacity() == 0 {
                self.buf = self.tx.spare().unwrap_or_else(|| Vec::with_capacity(self.chunk));
            }
            if open && dropped > 0 {
                if let Some((shared, kind)) = self.dropped_event(dropped) {
                    shared.bus.emit(kind).await;
                }
            }
            return open;
        }
        let fresh = self.tx.spare().unwrap_or_else(|| Vec::with_capacity(self.chunk));
        let chunk = std::mem::replace(&mut self.buf, fresh);
        self.tx.send(chunk).await.is_ok()
    }
}

impl<T> BranchOut<T> {
    /// The one event for the `count` items a flush dropped, if anyone
    /// listens.
    #[cold]
    fn dropped_event(&self, count: u64) -> Option<(Arc<Shared>, EventKind)> {
        let shared = self.c.shared();
        if !shared.bus.listening() {
            return None;
        }
        let kind = EventKind::ItemsDropped {
            stage: shared.stages[self.fan_out].spec.name.clone(),
            branch: shared.stages[self.c.stage()].spec.name.clone(),
            count,
            reason: DROPPED_BUFFER_FULL.to_owned(),
        };
        Some((shared.clone(), kind))
    }
}

/// The [`ItemsDropped`](EventKind::ItemsDropped) reason of a drop-newest
/// branch whose buffer was full.
const DROPPED_BUFFER_FULL: &str = "buffer_full";

/// Ships every branch's buffer in turn (so the slowest branch paces the
/// fan-out); `Stop` once no branch takes items.
pub(crate) async fn flush_branches<T: Send + 'static>(outs: &mut [BranchOut<T>]) -> Flow {
    let mut open = false;
    for out in outs {
        open |= out.flush().await;
    }
    if open {
        Flow::Continue
    } else {
        Flow::Stop
    }
}

/// The source of a branch's sub-pipeline: the items the fan-out sends to
/// the branch. Made by [`Branches::branch`]; a `BranchSource` pipeline run
/// on its own has no items.
///
/// # Examples
///
/// ```
/// use weir::stage::{BranchSource, NoIntake, Plan};
/// use weir::Pipeline;
///
/// // A branch's sub-pipeline, built by a function of its own.
/// fn store_evens(p: Pipeline<u32, BranchSource<u32>>) -> Pipeline<(), impl Plan<Out = (), Intake = NoIntake>> {
///     p.filter(|x| x % 2 == 0).for_each(|_| {})
/// }
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let r = Pipeline::from_iter(0..4u32).broadcast(|b| b.branch("evens", store_evens)).run().await.unwrap();
/// assert_eq!((r.delivered, r.dropped), (2, 2));
/// # });
/// ```
#[must_use]
pub struct BranchSource<T> {
    inlet: Inlet<T>,
    idx: usize,
}

impl<T> fmt::Debug for BranchSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BranchSource")
            .field("idx", &self.idx)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Plan for BranchSource<T> {
    type Out = T;
    type Intake = NoIntake;

    fn attach<D: Push<T>>(self, down: D, w: &mut Wiring<NoIntake>) {
        let rx = self.inlet.lock().unwrap_or_else(|p| p.into_inner()).take();
        let c = Counters::explicit(w.shared.clone(), self.idx);
        w.spawn_stage(self.idx, super::forward(rx, down, c, w.cx(), false));
    }
}
