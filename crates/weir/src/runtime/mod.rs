//! The runtime: shared run state, task supervision, shutdown.

pub(crate) mod channel;
mod concurrent;
mod handle;
mod streams;
mod terminal;

pub use handle::{Controller, Handle, PushError, Pusher, Shutdown, TryPushError};
pub use streams::{Events, Results};

pub(crate) use concurrent::{flush_all, route, run_concurrent, settle, Work};
pub(crate) use terminal::{ChannelOut, Collect, Discard, Fold};

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::context::Context;
use crate::error::{Error, ErrorKind};
use crate::event::{now_ms, Event, EventKind, Progress, EVENT_VERSION};
use crate::metrics::{Outcome, Report, StageMetrics, StageReport};
use crate::pipeline::Config;
use crate::policy::ErrorPolicy;
use crate::stage::StageSpec;

pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One stage's settings and live counters.
#[derive(Debug)]
pub(crate) struct StageEntry {
    pub(crate) spec: StageSpec,
    pub(crate) policy: crate::policy::ErrorPolicy,
    pub(crate) metrics: StageMetrics,
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
    pub(crate) events: Option<mpsc::Sender<Event>>,
    pub(crate) drain: Signal,
    pub(crate) abort: Signal,
    /// Raised by a stage that will take no more input (`take`,
    /// `take_while`, `scan`): sources stop pulling as on a drain, but the
    /// run still ends `Completed`, since stopping is what was asked for.
    pub(crate) satisfied: Signal,
    /// Raised when the run has ended.
    pub(crate) finished: Signal,
    error: Mutex<Option<Error>>,
    /// Sequence numbers for items pushed through the handle.
    pub(crate) next_seq: AtomicU64,
    /// The run's context (the caller's, or one made for this run).
    pub(crate) context: Context,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        specs: Vec<StageSpec>,
        estimated_total: Option<u64>,
        events: Option<mpsc::Sender<Event>>,
    ) -> Shared {
        let default_policy = config.error_policy;
        let context = config
            .context
            .clone()
            .unwrap_or_else(|| Context::new(&config.name));
        Shared {
            context,
            stages: specs
                .into_iter()
                .map(|spec| StageEntry {
                    policy: spec.policy.unwrap_or(default_policy),
                    spec,
                    metrics: StageMetrics::default(),
                })
                .collect(),
            config,
            started: Instant::now(),
            estimated_total,
            events,
            drain: Signal::default(),
            abort: Signal::default(),
            satisfied: Signal::default(),
            finished: Signal::default(),
            error: Mutex::new(None),
            next_seq: AtomicU64::new(0),
        }
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

    /// A configuration error found once every stage's policy is known.
    fn misconfigured(&self) -> Option<Error> {
        let s = self
            .stages
            .iter()
            .find(|s| s.policy == ErrorPolicy::DeadLetter && !s.spec.dead_letter)?;
        Some(Error::new(
            ErrorKind::Config,
            format!(
                "stage `{}` has the error policy DeadLetter but no dead-letter sink \
                 (set one with `dead_letter(sink)`, or give the stage another policy)",
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

    pub(crate) fn event(&self, kind: EventKind) -> Event {
        Event {
            version: EVENT_VERSION,
            pipeline: self.config.name.clone(),
            ts_ms: now_ms(),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            kind,
        }
    }

    /// Sends an event, waiting while the consumer is behind.
    pub(crate) async fn emit(&self, kind: EventKind) {
        if let Some(tx) = &self.events {
            // A consumer that went away just stops receiving.
            let _ = tx.send(self.event(kind)).await;
        }
    }

    /// Waits while the event consumer is behind, so that a consumer that
    /// stops reading stops the sources instead of growing a queue.
    pub(crate) async fn events_gate(&self) {
        if let Some(tx) = &self.events {
            if tx.capacity() == 0 {
                let _ = tx.reserve().await;
            }
        }
    }

    pub(crate) fn report(&self, outcome: Outcome) -> Report {
        let stages: Vec<StageReport> = self
            .stages
            .iter()
            .map(|s| {
                let m = &s.metrics;
                let dead_lettered = m.dead_lettered.load(Ordering::Relaxed);
                StageReport {
                    name: s.spec.name.clone(),
                    kind: s.spec.kind.to_owned(),
                    items_in: m.items_in.load(Ordering::Relaxed),
                    items_out: m.items_out.load(Ordering::Relaxed),
                    dropped: m.dropped.load(Ordering::Relaxed),
                    // The stage counted its dead letters as failed; those
                    // still on their way are not finalized yet.
                    failed: (m.failed.load(Ordering::Relaxed)
                        + m.dead_letter_refused.load(Ordering::Relaxed))
                    .saturating_sub(m.dead_letter_sent.load(Ordering::Relaxed)),
                    dead_lettered,
                    replaced: m.replaced.load(Ordering::Relaxed),
                }
            })
            .collect();
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
            stages,
        }
    }

    pub(crate) fn progress(&self) -> Progress {
        let r = self.report(Outcome::Running);
        Progress::compute(
            r.finished(),
            r.failed,
            r.unfinalized,
            self.estimated_total,
            r.duration.as_secs_f64(),
        )
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
    shared
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
            for task in tasks {
                set.spawn(task);
            }
        }
    }
    let progress_on = shared.events.is_some();
    let period = shared.config.progress_interval.max(Duration::from_millis(1));
    // Only built when someone listens: runs without events need no timer.
    let mut ticker = progress_on.then(|| {
        let mut t = tokio::time::interval_at(Instant::now() + period, period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut aborted = false;
    loop {
        tokio::select! {
            joined = set.join_next() => match joined {
                None => break,
                Some(Err(e)) if e.is_panic() => {
                    shared.fail(Error::new(ErrorKind::Internal, format!("a weir task panicked: {e}")));
                }
                Some(_) => {}
            },
            () = shared.abort.raised(), if !aborted => {
                aborted = true;
                set.abort_all();
            }
            Some(_) = tick(&mut ticker) => {
                shared.emit(EventKind::Progress(shared.progress())).await;
            }
        }
    }
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
    if progress_on {
        shared.emit(EventKind::Progress(shared.progress())).await;
    }
    shared
        .emit(EventKind::PipelineFinished {
            report: Box::new(report.clone()),
            error: error.as_ref().map(|e| e.to_string()),
        })
        .await;
    shared.finished.raise();
    match error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}
