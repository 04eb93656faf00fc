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

use super::channel::Receiver;
use super::{run_concurrent, Shared, Work};
use super::{Push, Wiring};

/// The span of the task that runs `stage`.
pub(crate) fn stage_span(shared: &Shared, stage: usize) -> Span {
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
pub(crate) fn spawn_concurrent<I, T, W, D>(w: &mut Wiring<I>, idx: usize, rx: Receiver<T>, work: W, down: D)
where
    T: Send + 'static,
    W: Work<T>,
    D: Push<W::Out>,
{
    let spec = w.spec(idx);
    let (n, ordered) = (spec.concurrency, spec.ordered);
    let traced = Sampler::new(w.shared.config.trace_items).map(|s| (s, spec.name.clone()));
    let (c, cx) = (w.counters(idx), w.cx());
    match traced {
        None => w.spawn_stage(idx, run_concurrent(rx, work, down, c, cx, n, ordered)),
        Some((sampler, stage)) => {
            // Outside the retry and time-limit wrappers: one span covers
            // every attempt at the item.
            let work = Traced::new(work, sampler, stage);
            w.spawn_stage(idx, run_concurrent(rx, work, down, c, cx, n, ordered));
        }
    }
}

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
}

impl<W> Traced<W> {
    fn new(work: W, sampler: Sampler, stage: String) -> Traced<W> {
        Traced { work, sampler, stage }
    }
}

impl<T, W: Work<T>> Work<T> for Traced<W> {
    type Out = W::Out;
    type Fut = Instrumented<W::Fut>;

    fn start(&mut self, item: T, seq: u64) -> Instrumented<W::Fut> {
        let span = if self.sampler.sample() {
            // An i64, which OpenTelemetry exports as an integer (a u64
            // becomes a string).
            let item = i64::try_from(seq).unwrap_or(i64::MAX);
            tracing::debug_span!(target: "weir", "weir.item", stage = self.stage.as_str(), item)
        } else {
            Span::none()
        };
        // The user's function runs in `start` (a `then` closure builds its
        // future there): inside the span too.
        let fut = span.in_scope(|| self.work.start(item, seq));
        fut.instrument(span)
    }
}
