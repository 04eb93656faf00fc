//! The `stages` suite: what catalogue stages cost next to a hand-written
//! equivalent, over N integers.
//!
//! | row | what |
//! |---|---|
//! | `hand-batch` | a loop that pushes the items into `Vec`s of 256, a fresh one per batch, and iterates each full batch back into a sum |
//! | `weir-batch-unbatch` | `Pipeline::from_iter(0..n).batch(256, 1h).unbatch().fold(sum)`: the source, then the batch stage's task, which unbatches and folds fused |

use std::hint::black_box;
use std::time::Duration;

use weir::Pipeline;

use crate::report::{interleave, Reporter, Row, Sample, Samples, Variant};
use crate::Options;

const SUITE: &str = "stages";

/// Items per batch.
const BATCH: usize = 256;

/// Items per run.
fn items(quick: bool) -> u64 {
    if quick {
        200_000
    } else {
        10_000_000
    }
}

/// `hand-batch`. Each full batch goes through `black_box`, so the batches
/// are really built and read back rather than folded away into arithmetic.
#[inline(never)]
fn hand_batch(n: u64) -> u64 {
    let mut acc = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    for x in 0..black_box(n) {
        batch.push(x);
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            acc = black_box(full).into_iter().fold(acc, u64::wrapping_add);
        }
    }
    acc = black_box(batch).into_iter().fold(acc, u64::wrapping_add);
    black_box(acc)
}

/// `weir-batch-unbatch`. The wait is long enough never to fire: batches
/// close by count.
async fn weir_batch_unbatch(n: u64) -> Result<u64, weir::Error> {
    Pipeline::from_iter(0..n)
        .batch(BATCH, Duration::from_secs(3600))
        .unbatch()
        .fold(0u64, u64::wrapping_add)
        .await
}

pub(crate) fn run(opts: &Options, out: &mut Reporter) -> Result<(), String> {
    let n = items(opts.quick);
    let multi = crate::multi_thread();
    let bn = || black_box(n);
    let mut variants = vec![
        Variant::new("hand-batch", || Ok(Sample::time(|| hand_batch(bn())))),
        Variant::new("weir-batch-unbatch", || {
            Sample::try_time(|| multi.block_on(weir_batch_unbatch(bn())))
        }),
    ];
    let s = interleave(SUITE, opts.rounds, true, &mut variants)?;
    drop(variants);

    let expected = hand_batch(n);
    for name in s.names() {
        s.expect_check(name, expected)?;
    }
    out.rows(&rows(&s, n));
    out.note("stages: ratio = weir-batch-unbatch ns/item ÷ hand-batch ns/item (paired by round)");
    Ok(())
}

fn rows(s: &Samples, n: u64) -> Vec<Row> {
    let hand = "hand-batch";
    let weir = "weir-batch-unbatch";
    let ratio = s.paired(weir, hand, |x, y| x.seconds / y.seconds);
    vec![
        Row::new(SUITE, hand, n, Some(s.median_seconds(hand))),
        Row::new(SUITE, weir, n, Some(s.median_seconds(weir))).against(hand, ratio),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_variants_compute_the_same_sum() {
        for n in [0, 1, 255, 256, 257, 10_000] {
            let want = (0..n).sum::<u64>();
            assert_eq!(hand_batch(n), want, "n = {n}");
            let rt = crate::current_thread();
            assert_eq!(rt.block_on(weir_batch_unbatch(n)).unwrap(), want, "n = {n}");
        }
    }
}
