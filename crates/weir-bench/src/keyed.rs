//! The `keyed` suite: the cost of per-key ordering in an async stage.
//!
//! | row | what |
//! |---|---|
//! | `weir-then` | `from_iter(0..n).then(ready).concurrency(16).fold(sum)`: the baseline |
//! | `weir-key-by` | the same with `key_by(x % 1024)` before `then`: one item per key at a time, 1024 keys |
//!
//! Both futures are ready at once, so the rows measure the machinery
//! around them: the keyed stage's per-item key lookup and its in-flight
//! set against the plain windowed driver. The ratio is `weir-key-by`'s time
//! over `weir-then`'s (paired by round). Both run on a two-worker runtime.

use std::future::ready;
use std::hint::black_box;

use weir::Pipeline;

use crate::report::{interleave, Reporter, Row, Sample, Variant};
use crate::Options;

const SUITE: &str = "keyed";

/// Distinct keys of `weir-key-by`.
const KEYS: u64 = 1024;
/// Items in flight in both variants.
const CONCURRENCY: usize = 16;

/// Items per run.
fn items(quick: bool) -> u64 {
    if quick {
        200_000
    } else {
        10_000_000
    }
}

/// The checksum every variant must compute: the wrapping sum of `0..n`.
fn expected(n: u64) -> u64 {
    (0..n).fold(0u64, u64::wrapping_add)
}

/// `weir-then`.
async fn weir_then(n: u64) -> Result<u64, weir::Error> {
    Pipeline::from_iter(0..n)
        .then(ready)
        .concurrency(CONCURRENCY)
        .fold(0u64, u64::wrapping_add)
        .await
}

/// `weir-key-by`.
async fn weir_key_by(n: u64) -> Result<u64, weir::Error> {
    Pipeline::from_iter(0..n)
        .key_by(|x| x % KEYS)
        .then(ready)
        .concurrency(CONCURRENCY)
        .fold(0u64, u64::wrapping_add)
        .await
}

pub(crate) fn run(opts: &Options, out: &mut Reporter) -> Result<(), String> {
    let n = items(opts.quick);
    let multi = crate::multi_thread();
    let bn = || black_box(n);
    let mut variants = vec![
        Variant::new("weir-then", || {
            Sample::try_time(|| multi.block_on(weir_then(bn())))
        }),
        Variant::new("weir-key-by", || {
            Sample::try_time(|| multi.block_on(weir_key_by(bn())))
        }),
    ];
    let s = interleave(SUITE, opts.rounds, true, &mut variants)?;
    drop(variants);
    let want = expected(n);
    for name in s.names() {
        s.expect_check(name, want)?;
    }
    let base = "weir-then";
    let ratio = s.paired("weir-key-by", base, |x, y| x.seconds / y.seconds);
    out.rows(&[
        Row::new(SUITE, base, n, Some(s.median_seconds(base))),
        Row::new(SUITE, "weir-key-by", n, Some(s.median_seconds("weir-key-by"))).against(base, ratio),
    ]);
    out.note(&format!(
        "keyed: ratio = weir-key-by time ÷ weir-then time (paired by round); {KEYS} keys, concurrency {CONCURRENCY}"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_variants_compute_the_same_sum() {
        let n = 10_000;
        let rt = crate::current_thread();
        assert_eq!(rt.block_on(weir_then(n)).unwrap(), expected(n));
        assert_eq!(rt.block_on(weir_key_by(n)).unwrap(), expected(n));
    }
}
