//! The `scaling` suite: does a second core help? (issue 18)
//!
//! One pipeline of four stages, each in a task of its own (a
//! [`boundary`](weir::Pipeline::boundary) after each of the first three),
//! at three weights of work per stage per item, on a current-thread
//! runtime and on a two-worker one:
//!
//! | weight | work per stage per item | items |
//! |---|---|---|
//! | `cheap` | one multiply (as the `chain` suite's stages) | 10M |
//! | `medium` | [`MEDIUM_ROUNDS`] rounds of a mix: tens of ns | 2M |
//! | `heavy` | [`HEAVY_ROUNDS`] rounds: about a microsecond | 200k |
//!
//! Each stage calls [`chain::opaque`](crate::chain::opaque) with the
//! weight's rounds, so the compiler can neither inline the work nor drop
//! it. Rows per weight:
//!
//! | row | what |
//! |---|---|
//! | `…-hand-loop` | one loop calling the four stages' functions: the work alone, for scale (each item's four calls depend on each other there, while a stage of the pipeline runs a chunk of independent calls the CPU can overlap, so the pipeline can beat it) |
//! | `…-1thread` | the pipeline on a current-thread runtime: the baseline |
//! | `…-2workers` | the same on two workers, weir's default placement ([`weir::Placement::Adaptive`]) |
//! | `…-2workers-spread` | two workers, every task spawned on its own ([`weir::Placement::Spread`], weir's placement before it) |
//!
//! The bars: cheap on two workers ≤ 1.1× its one-thread time; heavy on two
//! workers ≥ 1.7× faster than on one thread.

use std::hint::black_box;

use weir::{PipelineBuilder, Placement};

use crate::chain::opaque;
use crate::report::{interleave, Reporter, Row, Sample, Samples, Variant};
use crate::Options;

const SUITE: &str = "scaling";

/// Rounds of the mix per stage call for `medium`.
const MEDIUM_ROUNDS: u32 = 60;
/// Rounds for `heavy`: about a microsecond of work.
const HEAVY_ROUNDS: u32 = 750;

/// The bars (issue 18).
const CHEAP_MAX_RATIO: f64 = 1.1;
const HEAVY_MIN_SPEEDUP: f64 = 1.7;

/// A weight: its name, rounds per stage call and items per run.
#[derive(Clone, Copy)]
struct Weight {
    name: &'static str,
    rounds: u32,
    items: u64,
}

fn weights(quick: bool) -> [Weight; 3] {
    let scale = if quick { 50 } else { 1 };
    [
        Weight {
            name: "cheap",
            rounds: 0,
            items: 10_000_000 / scale,
        },
        Weight {
            name: "medium",
            rounds: MEDIUM_ROUNDS,
            items: 2_000_000 / scale,
        },
        Weight {
            name: "heavy",
            rounds: HEAVY_ROUNDS,
            items: 200_000 / scale,
        },
    ]
}

/// Stage `k` of the pipeline: the weight's work, then a step of its own
/// so the four stages differ.
#[inline]
fn stage(k: u64, x: u64, rounds: u32) -> u64 {
    opaque(x, rounds).wrapping_mul(3).wrapping_add(k)
}

/// `…-hand-loop`: the four stages' functions in one loop.
#[inline(never)]
fn hand_loop(n: u64, rounds: u32) -> u64 {
    let mut acc = 0u64;
    for x in 0..black_box(n) {
        let y = stage(4, stage(3, stage(2, stage(1, x, rounds), rounds), rounds), rounds);
        acc = acc.wrapping_add(y);
    }
    black_box(acc)
}

/// The pipeline: each stage in a task of its own; the last one folds.
async fn pipeline(n: u64, rounds: u32, placement: Placement) -> Result<u64, weir::Error> {
    PipelineBuilder::new()
        .placement(placement)
        .from_iter(0..n)
        .map(move |x| stage(1, x, rounds))
        .boundary()
        .map(move |x| stage(2, x, rounds))
        .boundary()
        .map(move |x| stage(3, x, rounds))
        .boundary()
        .map(move |x| stage(4, x, rounds))
        .fold(0u64, u64::wrapping_add)
        .await
}

/// Row names per weight, in the order they run and are reported.
fn names(w: &str) -> [String; 4] {
    [
        format!("{w}-hand-loop"),
        format!("{w}-1thread"),
        format!("{w}-2workers"),
        format!("{w}-2workers-spread"),
    ]
}

/// Leaks a row name: the harness keys samples by `&'static str`, and the
/// suite makes twelve names once per process.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

pub(crate) fn run(opts: &Options, out: &mut Reporter) -> Result<(), String> {
    let multi = crate::multi_thread();
    let single = crate::current_thread();
    for w in weights(opts.quick) {
        let [hand, one, two, spread] = names(w.name).map(leak);
        let (n, rounds) = (w.items, w.rounds);
        let mut variants = vec![
            Variant::new(hand, move || {
                Ok(Sample::time(|| hand_loop(black_box(n), black_box(rounds))))
            }),
            Variant::new(one, || {
                Sample::try_time(|| {
                    single.block_on(pipeline(black_box(n), black_box(rounds), Placement::Adaptive))
                })
            }),
            Variant::new(two, || {
                Sample::try_time(|| {
                    multi.block_on(pipeline(black_box(n), black_box(rounds), Placement::Adaptive))
                })
            }),
            Variant::new(spread, || {
                Sample::try_time(|| {
                    multi.block_on(pipeline(black_box(n), black_box(rounds), Placement::Spread))
                })
            }),
        ];
        let s = interleave(SUITE, opts.rounds, true, &mut variants)?;
        drop(variants);
        let want = hand_loop(n, rounds);
        for name in s.names() {
            s.expect_check(name, want)?;
        }
        let rows = rows(&s, n, [hand, one, two, spread]);
        out.rows(&rows);
        let vs_one = |name: &str| {
            rows.iter()
                .find(|r| r.variant == name)
                .and_then(|r| r.ratio)
                .unwrap_or(f64::NAN)
        };
        let ratio = vs_one(two);
        match w.name {
            "cheap" => out.note(&format!(
                "scaling: bar cheap-2workers ≤ {CHEAP_MAX_RATIO}× cheap-1thread {}: {ratio:.2}× \
                 (spread: {:.2}×)",
                crate::report::met(ratio <= CHEAP_MAX_RATIO),
                vs_one(spread)
            )),
            "heavy" => out.note(&format!(
                "scaling: bar heavy-2workers ≥ {HEAVY_MIN_SPEEDUP}× faster than heavy-1thread {}: {:.2}× \
                 (spread: {:.2}×)",
                crate::report::met(1.0 / ratio >= HEAVY_MIN_SPEEDUP),
                1.0 / ratio,
                1.0 / vs_one(spread)
            )),
            _ => out.note(&format!(
                "scaling: {} on two workers is {:.2}× faster than on one thread (spread: {:.2}×)",
                w.name,
                1.0 / ratio,
                1.0 / vs_one(spread)
            )),
        }
    }
    out.note(&format!(
        "scaling: ratio = ns/item ÷ the weight's -1thread ns/item (paired by round; < 1: faster); \
         rounds per stage call: medium {MEDIUM_ROUNDS}, heavy {HEAVY_ROUNDS}; the -hand-loop rows' \
         ns/item ÷ 4 is about the work per stage call (their calls form one dependency chain per item)"
    ));
    Ok(())
}

fn rows(s: &Samples, n: u64, [hand, one, two, spread]: [&'static str; 4]) -> Vec<Row> {
    let ratio = |a: &str, b: &str| s.paired(a, b, |x, y| x.seconds / y.seconds);
    let row = |name: &str| Row::new(SUITE, name, n, Some(s.median_seconds(name)));
    vec![
        row(hand),
        row(one).with("vs_hand_loop", ratio(one, hand)),
        row(two).against(one, ratio(two, one)),
        row(spread).against(one, ratio(spread, one)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_computes_the_same_sum() {
        let single = crate::current_thread();
        let multi = crate::multi_thread();
        for rounds in [0, 3] {
            let want = hand_loop(5_000, rounds);
            for placement in [Placement::Adaptive, Placement::Spread, Placement::Together] {
                assert_eq!(single.block_on(pipeline(5_000, rounds, placement)).unwrap(), want);
                assert_eq!(multi.block_on(pipeline(5_000, rounds, placement)).unwrap(), want);
            }
        }
    }
}
