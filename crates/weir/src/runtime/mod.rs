//! The runtime: the push/flow interface every stage is built on, the
//! failure router, the chunk channel with both its ends, the drivers, and
//! the shared run state with task supervision and shutdown.
//!
//! | question | file |
//! | --- | --- |
//! | what a stage implements | [`push`] (`Plan`, `Push`, `Flow`, `Wiring`) |
//! | where a failed item goes and is finalized | [`failure`] (`TaskCx::fail`) |
//! | where a chunk crosses a task boundary | [`chunk`] (channel, `ChannelOut`, `forward`, `flush_all`) |
//! | how a panic becomes an item's failure | [`panic`] |
//! | what runs a concurrent stage | `concurrent` |
//! | what `run`, `collect`, `fold` attach at the end | `consume` |
//! | which core runs which task | `placement` ([`Placement`]) |

pub(crate) mod chunk;
mod concurrent;
mod consume;
mod counters;
mod e2e_latency;
pub(crate) mod failure;
mod handle;
mod item_events;
pub(crate) mod panic;
mod placement;
pub(crate) mod push;
pub(crate) mod spans;
mod spec;
mod streams;
mod subscription;
mod task_cx;

pub use handle::{Controller, Handle, PushError, Pusher, Shutdown, TryPushError};
pub use placement::Placement;
pub(crate) use push::{Flow, Push, Wiring};
pub use push::{NoIntake, Plan};
pub use streams::{EventFeed, Events, Results};
pub use subscription::{Lagged, Subscription};
pub(crate) use task_cx::TaskCx;

pub(crate) use chunk::{channel, flush_all, forward, settle, ChannelOut};
pub(crate) use concurrent::{current_waker, run_concurrent, seq_of, Slot, Work};
pub(crate) use consume::{Collect, Discard, Fold};
pub(crate) use counters::Counters;
pub(crate) use failure::route;
pub(crate) use item_events::ItemEvents;
pub(crate) use panic::{guard, held, run_held};
pub(crate) use push::forward_flush;
pub(crate) use spec::{RecoverSpec, RetrySpec, StageSpec};

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::ack::InFlight;
use crate::context::Context;
use crate::error::{Error, ErrorKind};
use crate::event::{Event, EventBus, EventKind, EventLevel, Progress, RateWindow, RATE_WINDOW};
use crate::metrics::{Outcome, Report, StageMetrics, StageReport, Utilization};
use crate::pipeline::Config;
use crate::policy::{CircuitBreaker, ErrorPolicy};

pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One stage's settings and live counters.
#[derive(Debug)]
pub(crate) struct StageEntry {
    pub(crate) spec: StageSpec,
    pub(crate) policy: crate::policy::ErrorPolicy,
    /// Shared with the parts that count on their own (the breaker, the
    /// dead-letter task).
    pub(crate) metrics: Arc<StageMetrics>,
}

/// A one-way flag that tasks can wait on.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    notify: Notify,
}

impl Signal {
    pub(crate) fn raise(&self) {
        if !self.set.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }

    pub(crate) fn is_raised(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    pub(crate) async fn raised(&self) {
        loop {
            let mut n = pin!(self.notify.notified());
            n.as_mut().enable();
            if self.is_raised() {
                return;
            }
            n.await;
        }
    }
}

/// State shared by every task of one run.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) stages: Box<[StageEntry]>,
    pub(crate) started: Instant,
    pub(crate) estimated_total: Option<u64>,
    /// Where the run's events go (`event/bus.rs`).
    pub(crate) bus: EventBus,
    rate: Mutex<RateWindow>,
    pub(crate) drain: Signal,
    pub(crate) abort: Signal,
    /// Raised by a stage that will take no more input (`take`,
    /// `take_while`, `scan`): sources stop pulling as on a drain, but the
    /// run still ends `Completed`, since stopping is what was asked for.
    pub(crate) satisfied: Signal,
    /// Raised when the run has ended.
    pub(crate) finished: Signal,
    /// How the run ended, once it has.
    pub(crate) outcome: Mutex<Option<Outcome>>,
    /// Raised when a [`Subscription`] is taken while the run goes on.
    pub(crate) subscribed: Signal,
    error: Mutex<Option<Error>>,
    /// Sequence numbers for items pushed through the handle.
    pub(crate) next_seq: AtomicU64,
    /// Checkpoints committed ([`Context::emit_checkpoint`](crate::Context::emit_checkpoint)):
    /// shared with the run's [`Context`].
    pub(crate) checkpoints: Arc<AtomicU64>,
    /// The room left under
    /// [`max_in_flight`](crate::PipelineBuilder::max_in_flight), if the
    /// run has the bound: sources take room for each item before taking
    /// it in.
    pub(crate) in_flight: Option<Arc<InFlight>>,
    /// Raised while the plan is attached by a source whose items carry
    /// acknowledgements ([`AckedSource`](crate::stage::AckedSource)).
    /// Until then every token of the run is plain: the chunk forwarders
    /// read it when they start and, if it is down, tell the compiler
    /// (`Token::assume_plain`).
    pub(crate) acked: AtomicBool,
    /// The run's context (the caller's, or one made for this run).
    pub(crate) context: Context,
    /// Recent output counts, for throughput over a sliding window.
    rates: StageRates,
    /// Sampled end-to-end latency.
    pub(crate) e2e: e2e_latency::E2eSampler,
}

/// Output counts sampled at each report, kept for about ten seconds.
#[derive(Debug, Default)]
struct StageRates(Mutex<std::collections::VecDeque<(Duration, Vec<u64>)>>);

impl StageRates {
    const SPAN: Duration = Duration::from_secs(10);

    /// Records `outs` at `now` (time since the start) and returns each
    /// stage's rate since the oldest sample in the window (since the start
    /// while the window is young).
    fn sample(&self, now: Duration, outs: &[u64]) -> Vec<f64> {
        let mut w = self.0.lock().unwrap_or_else(|p| p.into_inner());
        while w.len() > 1 && now.saturating_sub(w[1].0) >= Self::SPAN {
            w.pop_front();
        }
        let rates = match w.front() {
            Some((then, before))
                if now > *then && now.saturating_sub(*then) >= Duration::from_millis(100) =>
            {
                let secs = (now - *then).as_secs_f64();
                outs.iter()
                    .zip(before)
                    .map(|(o, b)| o.saturating_sub(*b) as f64 / secs)
                    .collect()
            }
            _ => {
                let secs = now.as_secs_f64();
                outs.iter()
                    .map(|o| if secs > 0.0 { *o as f64 / secs } else { 0.0 })
                    .collect()
            }
        };
        if w.back()
            .is_none_or(|(t, _)| now.saturating_sub(*t) >= Duration::from_millis(100))
        {
            w.push_back((now, outs.to_vec()));
        }
        rates
    }
}

impl Shared {
    pub(crate) fn new(
        mut config: Config,
        specs: Vec<StageSpec>,
        estimated_total: Option<u64>,
        events: Option<mpsc::Sender<Event>>,
    ) -> Shared {
        let monitors = config.monitors.take();
        let in_flight = config.max_in_flight.map(InFlight::new);
        // Items holding room in flight carry a node, as acknowledged ones
        // do: their finishes must be kept.
        let limited = in_flight.is_some();
        let default_policy = config.error_policy;
        let context = config
            .context
            .clone()
            .unwrap_or_else(|| Context::new(&config.name));
        let started = Instant::now();
        let bus = EventBus::new(
            config.name.clone(),
            context.id().to_owned(),
            started,
            config.event_level,
            events,
            monitors,
        );
        Shared {
            context,
            stages: specs
                .into_iter()
                .map(|spec| StageEntry {
                    policy: spec.policy.unwrap_or(default_policy),
                    spec,
                    metrics: Arc::default(),
                })
                .collect(),
            config,
            started,
            estimated_total,
            bus,
            rate: Mutex::new(RateWindow::new(RATE_WINDOW)),
            drain: Signal::default(),
            abort: Signal::default(),
            satisfied: Signal::default(),
            finished: Signal::default(),
            subscribed: Signal::default(),
            error: Mutex::new(None),
            next_seq: AtomicU64::new(0),
            checkpoints: Arc::default(),
            in_flight,
            acked: AtomicBool::new(limited),
            rates: StageRates::default(),
            outcome: Mutex::new(None),
            e2e: e2e_latency::E2eSampler::default(),
        }
    }

    /// The running breaker `cfg` of stage `stage`.
    pub(crate) fn circuit_breaker(&self, stage: usize, cfg: crate::policy::Breaker) -> Arc<CircuitBreaker> {
        let s = &self.stages[stage];
        Arc::new(CircuitBreaker::new(
            cfg,
            self.bus.clone(),
            s.spec.name.clone(),
            s.metrics.clone(),
        ))
    }

    /// Records a fail-fast error (the first one wins) and starts a drain.
    pub(crate) fn fail(&self, error: Error) {
        {
            let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(error);
            }
        }
        self.drain.raise();
    }

    /// Whether sources should stop pulling: a drain, or a stage that is
    /// satisfied.
    pub(crate) fn stop_pulling(&self) -> bool {
        self.drain.is_raised() || self.satisfied.is_raised()
    }

    /// Waits until [`stop_pulling`](Self::stop_pulling) is true.
    pub(crate) async fn stop_requested(&self) {
        tokio::select! {
            () = self.drain.raised() => {}
            () = self.satisfied.raised() => {}
        }
    }

    /// Emits [`SourceExhausted`](EventKind::SourceExhausted): the source
    /// ran out after `items` items.
    pub(crate) async fn source_exhausted(&self, items: u64) {
        let stage = self.stages[0].spec.name.clone();
        self.bus.emit(EventKind::SourceExhausted { stage, items }).await;
    }

    /// A configuration error found once every stage's policy is known.
    fn misconfigured(&self) -> Option<Error> {
        let s = self
            .stages
            .iter()
            // A source fails no items (its errors end the run), so a
            // pipeline-wide DeadLetter policy asks nothing of it.
            .find(|s| {
                s.policy == ErrorPolicy::DeadLetter && !s.spec.dead_letter && s.spec.kind != "source"
            })?;
        Some(Error::new(
            ErrorKind::Config,
            format!(
                "stage `{}` has the error policy DeadLetter but no dead-letter sink \
                 (set one with `dead_letter(sink)`; a `DeadLetters` shares one sink among \
                 stages; or give the stage another policy)",
                s.spec.name
            ),
        ))
    }

    /// Records that the source panicked after pulling `seq` items.
    pub(crate) fn source_panicked(&self, seq: u64, message: &str) {
        let name = &self.stages[0].spec.name;
        self.fail(Error::new(
            ErrorKind::Source,
            format!("source `{name}` panicked after item {seq}: {message}"),
        ));
    }

    fn take_error(&self) -> Option<Error> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn has_error(&self) -> bool {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Emits [`ItemStarted`](EventKind::ItemStarted) if per-item events
    /// are on, returning when, for the matching
    /// [`item_completed`](Self::item_completed).
    #[inline(always)]
    pub(crate) fn item_started(&self, stage: usize, item: u64) -> Option<Instant> {
        if !self.bus.items_on() {
            return None;
        }
        self.item_started_now(stage, item)
    }

    #[cold]
    #[inline(never)]
    fn item_started_now(&self, stage: usize, item: u64) -> Option<Instant> {
        self.bus.emit_now(EventKind::ItemStarted {
            stage: self.stages[stage].spec.name.clone(),
            item,
        });
        Some(Instant::now())
    }

    /// Emits [`ItemCompleted`](EventKind::ItemCompleted) for an item
    /// (the source's `key` for it, if known)
    /// [`item_started`](Self::item_started) returned `started` for.
    pub(crate) fn item_completed(&self, stage: usize, item: u64, key: Option<u64>, started: Instant) {
        self.bus.emit_now(EventKind::ItemCompleted {
            stage: self.stages[stage].spec.name.clone(),
            item,
            key,
            duration_us: started.elapsed().as_micros() as u64,
        });
    }

    pub(crate) fn report(&self, outcome: Outcome) -> Report {
        let elapsed = self.started.elapsed();
        let outs: Vec<u64> = self
            .stages
            .iter()
            .map(|s| s.metrics.items_out.load(Ordering::Relaxed))
            .collect();
        let rates = self.rates.sample(elapsed, &outs);
        let utilization = self.utilization(elapsed);
        let stages: Vec<StageReport> = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let m = &s.metrics;
                let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
                let (items_in, dropped, failed) = (load(&m.items_in), load(&m.dropped), load(&m.failed));
                let inside = (items_in + load(&m.expanded))
                    .saturating_sub(outs[i] + dropped + failed + load(&m.merged));
                let capacity = load(&m.channel.capacity);
                let active = load(&m.active);
                StageReport {
                    name: s.spec.name.clone(),
                    kind: s.spec.kind.to_owned(),
                    items_in,
                    items_out: outs[i],
                    dropped,
                    // The stage counted its dead letters as failed; those
                    // still on their way are not finalized yet.
                    failed: (failed + m.dead_letter_refused.load(Ordering::Relaxed))
                        .saturating_sub(m.dead_letter_sent.load(Ordering::Relaxed)),
                    dead_lettered: m.dead_lettered.load(Ordering::Relaxed),
                    replaced: m.replaced.load(Ordering::Relaxed),
                    in_flight: inside,
                    active: (active != u64::MAX).then_some(active),
                    queue_depth: (capacity > 0).then(|| load(&m.channel.depth)),
                    queue_capacity: (capacity > 0).then_some(capacity),
                    latency: m.latency.summary(),
                    throughput: rates[i],
                    utilization: utilization[i],
                    retried: m.retried.load(Ordering::Relaxed),
                    breaker_trips: m.breaker_trips.load(Ordering::Relaxed),
                    breaker: crate::policy::BreakerState::from_u8(m.breaker_state.load(Ordering::Relaxed))
                        .map(|s| s.as_str().to_owned()),
                }
            })
            .collect();
        let bottleneck = stages
            .iter()
            .filter_map(|s| Some((s.utilization?.busy, &s.name)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, name)| name.clone());
        let expanded: u64 = self
            .stages
            .iter()
            .map(|s| s.metrics.expanded.load(Ordering::Relaxed))
            .sum();
        let merged: u64 = self
            .stages
            .iter()
            .map(|s| s.metrics.merged.load(Ordering::Relaxed))
            .sum();
        let pulled = stages.first().map_or(0, |s| s.items_out);
        // A pipeline that fans out ends in one sink per branch.
        let delivered = stages
            .iter()
            .filter(|s| s.kind == "sink")
            .map(|s| s.items_out)
            .sum();
        let dropped = stages.iter().map(|s| s.dropped).sum();
        let failed = stages.iter().map(|s| s.failed).sum();
        let dead_lettered = stages.iter().map(|s| s.dead_lettered).sum();
        // A batch of n finishes with its one output: n - 1 of its members
        // are `merged`, finished by the output's count.
        let unfinalized =
            (pulled + expanded).saturating_sub(delivered + dropped + failed + dead_lettered + merged);
        Report {
            pipeline: self.config.name.clone(),
            outcome,
            duration: self.started.elapsed(),
            pulled,
            delivered,
            dropped,
            failed,
            dead_lettered,
            unfinalized,
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            stages,
            bottleneck,
            latency: self.e2e.summary(),
        }
    }

    /// How each task-owning stage spent the run so far: idle is measured
    /// on its input channel (and counts the time since its task ended),
    /// backpressure on the input channel of the next task downstream, busy
    /// is the rest.
    fn utilization(&self, elapsed: Duration) -> Vec<Option<Utilization>> {
        let total = elapsed.as_nanos() as f64;
        let owns_task =
            |i: usize| i == 0 || self.stages[i].metrics.channel.capacity.load(Ordering::Relaxed) > 0;
        (0..self.stages.len())
            .map(|i| {
                if !owns_task(i) || total <= 0.0 {
                    return None;
                }
                let ns = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
                let m = &self.stages[i].metrics;
                let ended = ns(&m.ended_ns);
                let done = if ended > 0.0 {
                    (total - ended).max(0.0)
                } else {
                    0.0
                };
                let idle = (ns(&m.channel.idle_ns) + done).min(total);
                let blocked = (i + 1..self.stages.len())
                    .find(|&j| owns_task(j))
                    .map_or(0.0, |j| ns(&self.stages[j].metrics.channel.blocked_ns))
                    .min(total - idle);
                Some(Utilization {
                    busy: (total - idle - blocked) / total,
                    backpressured: blocked / total,
                    idle: idle / total,
                })
            })
            .collect()
    }

    /// The progress now; records a sample of the rate's window.
    pub(crate) fn progress(&self) -> Progress {
        let r = self.report(Outcome::Running);
        let rate = self
            .rate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(r.duration, r.finished());
        Progress::compute(r.finished(), r.failed, r.unfinalized, self.estimated_total, rate)
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) -> Option<Instant> {
    match ticker {
        Some(t) => Some(t.tick().await),
        None => std::future::pending().await,
    }
}

/// Runs a pipeline's tasks to the end: progress events on a timer, abort
/// on request, the finished event and the final result.
///
/// `consumer` is for runs whose last stage is outside the tasks (the
/// [`Results`] stream): the run ends when the consumer has taken every item.
pub(crate) async fn supervise(
    shared: Arc<Shared>,
    tasks: Vec<Task>,
    consumer: Option<tokio::sync::oneshot::Receiver<()>>,
) -> Result<Report, Error> {
    shared.context.attach(&shared.bus, &shared.checkpoints);
    shared
        .bus
        .emit(EventKind::PipelineStarted {
            stages: shared.stages.iter().map(|s| s.spec.name.clone()).collect(),
            estimated_total: shared.estimated_total,
        })
        .await;
    for s in shared.stages.iter() {
        let ctx = shared.context.for_stage(&s.spec.name);
        if let Err(e) = shared.config.hooks.before_stage_all(&s.spec.name, &ctx).await {
            shared.fail(e);
        }
    }
    let mut set = JoinSet::new();
    match shared.misconfigured() {
        // Nothing was pulled yet: dropping the tasks loses no item.
        Some(e) => shared.fail(e),
        None => {
            let tasks = tasks
                .into_iter()
                .map(|task| Box::pin(panic::holding_acker_panics(task)) as Task)
                .collect();
            let run = shared.clone();
            let aborted = Box::new(move || run.abort.is_raised());
            placement::spawn_all(&mut set, tasks, shared.config.placement, aborted);
        }
    }
    let progress_on = shared.config.event_level >= EventLevel::Progress;
    let period = shared.config.progress_interval.max(Duration::from_millis(1));
    let start = shared.started;
    let make_ticker = || {
        // On the run's own beat, whenever the first listener came.
        let ticks = start.elapsed().as_nanos() / period.as_nanos() + 1;
        let first = start + period * u32::try_from(ticks).unwrap_or(u32::MAX);
        let mut t = tokio::time::interval_at(first, period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    };
    // Only built when someone listens: runs without events need no timer
    // (nor a runtime with timers).
    let mut ticker = (progress_on && shared.bus.listening()).then(make_ticker);
    let mut aborted = false;
    loop {
        tokio::select! {
            joined = set.join_next() => match joined {
                None => break,
                Some(Err(e)) if e.is_panic() => {
                    shared.fail(Error::new(ErrorKind::Internal, format!("a weir task panicked: {e}")));
                    // A panic that got past the stages' guards (a source's
                    // acker, raised between polls by `holding_acker_panics`;
                    // or a bug, which may even take the task down inside a
                    // chunk loop, whose state is then not dropped): its
                    // output channel may never close, and the task after
                    // it would wait for ever. Stop every task; their items
                    // report `Aborted` (an at-least-once source redelivers
                    // them).
                    set.abort_all();
                }
                Some(_) => {}
            },
            () = shared.abort.raised(), if !aborted => {
                aborted = true;
                set.abort_all();
            }
            () = shared.subscribed.raised(), if progress_on && ticker.is_none() => {
                ticker = Some(make_ticker());
            }
            Some(_) = tick(&mut ticker) => {
                if shared.bus.listening() {
                    shared.bus.emit(EventKind::Progress(shared.progress())).await;
                }
            }
        }
    }
    // The tasks may all have ended before the abort was seen above: a
    // group of tasks drops its members itself on an abort
    // (`placement::Group`). The run was aborted all the same.
    aborted |= shared.abort.is_raised();
    if let (Some(consumed), false) = (consumer, aborted) {
        tokio::select! {
            _ = consumed => {}
            () = shared.abort.raised() => aborted = true,
        }
    }
    let outcome = if shared.has_error() {
        Outcome::Failed
    } else if aborted {
        Outcome::Aborted
    } else if shared.drain.is_raised() {
        Outcome::Drained
    } else {
        Outcome::Completed
    };
    let mut report = shared.report(outcome);
    if matches!(outcome, Outcome::Completed | Outcome::Drained) && report.unfinalized != 0 {
        // Every task ended normally, yet items are unaccounted for: a weir
        // bug. Say so loudly rather than report success.
        shared.fail(Error::new(
            ErrorKind::Internal,
            format!(
                "{} items were lost without being finalized (a weir bug: please report it)",
                report.unfinalized
            ),
        ));
    }
    let hooks = &shared.config.hooks;
    for s in &report.stages {
        if let Err(e) = hooks.after_stage_all(s, &shared.context.for_stage(&s.name)).await {
            shared.fail(e);
        }
    }
    if !shared.has_error() {
        if let Err(e) = hooks.on_complete_all(&report, &shared.context).await {
            shared.fail(e);
        }
    }
    let error = shared.take_error();
    if error.is_some() {
        // An internal or hook error after the outcome was settled.
        report.outcome = Outcome::Failed;
    }
    if progress_on && shared.bus.listening() {
        shared.bus.emit(EventKind::Progress(shared.progress())).await;
    }
    shared
        .bus
        .emit(EventKind::PipelineFinished {
            report: Box::new(report.clone()),
            error: error.as_ref().map(|e| e.to_string()),
        })
        .await;
    *shared.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(report.outcome);
    shared.finished.raise();
    match error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}
