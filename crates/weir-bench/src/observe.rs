//! The `observe` suite: what listening to a pipeline's events costs.
//!
//! The chain's fused pipeline (ending in a `for_each` that keeps each item
//! alive with `black_box`) over 100M items, long enough for progress events
//! to fire, run two ways on a two-worker runtime:
//!
//! | row | what |
//! |---|---|
//! | `weir-off` | `.run()`: no events, no progress timer |
//! | `weir-on` | `.events()` consumed to the end, progress every 100 ms |
//!
//! `weir-on`'s ratio is its time ÷ `weir-off`'s, paired by round.

use std::hint::black_box;
use std::time::Duration;

use futures::StreamExt;
use weir::{EventKind, PipelineBuilder};

use crate::chain::{inc, keep, triple};
use crate::report::{interleave, Reporter, Row, Sample, Variant};
use crate::Options;

const SUITE: &str = "observe";
const PROGRESS: Duration = Duration::from_millis(100);

/// Items per run: ten times the chain's, so that a full-size run lasts
/// several progress intervals.
fn items(quick: bool) -> u64 {
    if quick {
        200_000
    } else {
        100_000_000
    }
}

/// The fused chain; `n` items, half of them delivered.
macro_rules! chain {
    ($n:expr) => {
        PipelineBuilder::new()
            .progress_interval(PROGRESS)
            .from_iter(0..$n)
            .map(triple)
            .filter(keep)
            .map(inc)
            .for_each(|x| {
                black_box(x);
            })
    };
}

/// `weir-off`: the number of items delivered.
async fn off(n: u64) -> Result<u64, String> {
    let report = chain!(n).run().await.map_err(|e| e.to_string())?;
    Ok(report.delivered)
}

/// `weir-on`: the number of items delivered, from the finished event, and
/// the number of events seen.
async fn on(n: u64) -> Result<(u64, u64), String> {
    let mut events = chain!(n).events();
    let mut seen = 0;
    let mut delivered = None;
    while let Some(event) = events.next().await {
        seen += 1;
        if let EventKind::PipelineFinished { report, error } = event.kind {
            if let Some(e) = error {
                return Err(e);
            }
            delivered = Some(report.delivered);
        }
    }
    let delivered = delivered.ok_or("the event stream ended without a finished event")?;
    Ok((delivered, seen))
}

pub(crate) fn run(opts: &Options, out: &mut Reporter) -> Result<(), String> {
    let n = items(opts.quick);
    let rt = crate::multi_thread();
    let mut events_seen = Vec::new();
    let mut variants = vec![
        Variant::new("weir-off", || Sample::try_time(|| rt.block_on(off(black_box(n))))),
        Variant::new("weir-on", || {
            Sample::try_time(|| {
                let (delivered, seen) = rt.block_on(on(black_box(n)))?;
                events_seen.push(seen as f64);
                Ok::<_, String>(delivered)
            })
        }),
    ];
    let s = interleave(SUITE, opts.rounds, true, &mut variants)?;
    drop(variants);

    let expected = (0..n).filter(|x| keep(&triple(*x))).count() as u64;
    s.expect_check("weir-off", expected)?;
    s.expect_check("weir-on", expected)?;
    let rows = vec![
        Row::new(SUITE, "weir-off", n, Some(s.median_seconds("weir-off"))),
        Row::new(SUITE, "weir-on", n, Some(s.median_seconds("weir-on")))
            .against(
                "weir-off",
                s.paired("weir-on", "weir-off", |x, y| x.seconds / y.seconds),
            )
            .with("events_per_run", crate::report::median(events_seen)),
    ];
    out.rows(&rows);
    out.note(&format!(
        "observe: ratio = time with events() consumed (progress every {PROGRESS:?}) ÷ time with run()"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_deliver_the_same_items() {
        let rt = crate::multi_thread();
        let off = rt.block_on(off(1_000)).unwrap();
        let (on, seen) = rt.block_on(on(1_000)).unwrap();
        let want = (0..1_000u64).filter(|x| keep(&triple(*x))).count() as u64;
        assert!(want > 0);
        assert_eq!((off, on), (want, want));
        assert!(seen >= 2, "started and finished at least");
    }
}
