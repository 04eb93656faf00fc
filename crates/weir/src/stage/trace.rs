//! tracing spans: one `weir.stage` span per stage task, and a `weir.item`
//! span per sampled item of the concurrent stages (`then`, `try_then`,
//! `blocking`) when [`PipelineBuilder::trace_items`](crate::PipelineBuilder::trace_items)
//! asks for them.
//!
//! A stage task also runs the fused synchronous stages after its stage,
//! so their work shows in that task's span. They get no span per item: a
//! span costs more to create, enter and close than a fused step's whole
//! work on an item (about a nanosecond), so tracing items there would
//! multiply the cost of the chain.

use tracing::instrument::Instrumented;
use tracing::{Instrument, Span};

use super::timeout::Timed;
use super::{Push, Wiring};
use crate::runtime::channel::Receiver;
use crate::runtime::{run_concurrent, Shared, Work};

/// The span of the task that runs `stage`.
pub(super) fn stage_span(shared: &Shared, stage: usize) -> Span {
    let spec = &shared.stages[stage].spec;
    tracing::info_span!(
        target: "weir",
        "weir.stage",
        pipeline = shared.config.name.as_str(),
        stage = spec.name.as_str(),
        kind = spec.kind,
    )
}

/// Spawns the task of the concurrent stage `idx`: its work, with the
/// stage's time limit and item spans when they are set (and without the
/// wrappers, at no cost, when they are not).
pub(super) fn spawn_concurrent<I, T, W, D>(w: &mut Wiring<I>, idx: usize, rx: Receiver<T>, work: W, down: D)
where
    T: Send + 'static,
    W: Work<T>,
    D: Push<W::Out>,
{
    let spec = w.spec(idx);
    let (n, ordered, limit) = (spec.concurrency, spec.ordered, spec.timeout);
    let traced = Sampler::new(w.shared.config.trace_items).map(|s| (s, spec.name.clone()));
    let (c, cx) = (w.counters(idx), w.cx());
    match (limit, traced) {
        (None, None) => w.spawn_stage(idx, run_concurrent(rx, work, down, c, cx, n, ordered)),
        (Some(limit), None) => {
            let work = Timed::new(work, limit);
            w.spawn_stage(idx, run_concurrent(rx, work, down, c, cx, n, ordered));
        }
        (None, Some((sampler, stage))) => {
            let work = Traced::new(work, sampler, stage);
            w.spawn_stage(idx, run_concurrent(rx, work, down, c, cx, n, ordered));
        }
        (Some(limit), Some((sampler, stage))) => {
            // The span covers the time limit's work too.
            let work = Traced::new(Timed::new(work, limit), sampler, stage);
            w.spawn_stage(idx, run_concurrent(rx, work, down, c, cx, n, ordered));
        }
    }
}

/// Picks a steady `rate` of items: exactly one in `1 / rate`, the first
/// item always, so that a short run shows at least one. Deterministic,
/// unlike random sampling, and free of a random number generator.
#[derive(Debug)]
pub(crate) struct Sampler {
    rate: f64,
    credit: f64,
}

impl Sampler {
    /// `None` when nothing is to be sampled (a rate of 0, negative or NaN).
    pub(crate) fn new(rate: f64) -> Option<Sampler> {
        // Compared before `min`, which would turn NaN into 1.
        (rate > 0.0).then(|| {
            let rate = rate.min(1.0);
            Sampler {
                rate,
                credit: 1.0 - rate,
            }
        })
    }

    pub(crate) fn sample(&mut self) -> bool {
        self.credit += self.rate;
        if self.credit >= 1.0 {
            self.credit -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A concurrent stage's work, each sampled item in a `weir.item` span.
struct Traced<W> {
    work: W,
    sampler: Sampler,
    stage: String,
    /// Items started so far: the next item's position in the stage's input.
    started: u64,
}

impl<W> Traced<W> {
    fn new(work: W, sampler: Sampler, stage: String) -> Traced<W> {
        Traced {
            work,
            sampler,
            stage,
            started: 0,
        }
    }
}

impl<T, W: Work<T>> Work<T> for Traced<W> {
    type Out = W::Out;
    type Fut = Instrumented<W::Fut>;

    fn start(&mut self, item: T) -> Instrumented<W::Fut> {
        let position = self.started;
        self.started += 1;
        let span = if self.sampler.sample() {
            // An i64, which OpenTelemetry exports as an integer (a u64
            // becomes a string).
            let item = i64::try_from(position).unwrap_or(i64::MAX);
            tracing::debug_span!(target: "weir", "weir.item", stage = self.stage.as_str(), item)
        } else {
            Span::none()
        };
        // The user's function runs in `start` (a `then` closure builds its
        // future there): inside the span too.
        let fut = span.in_scope(|| self.work.start(item));
        fut.instrument(span)
    }
}
