//! The `keyed` suite: the cost of per-key ordering in an async stage.
//!
//! | row | what |
//! |---|---|
//! | `hand-keyed` | the same by hand on tokio: a dispatcher task shards items by a hash of `x % 1024` to 16 worker tasks through bounded `mpsc` channels of `Vec`s of 256; each worker awaits `ready` on its items in order and sends the batch on to one merged channel, folded into a sum: the baseline |
//! | `weir-then` | `from_iter(0..n).then(ready).concurrency(16).fold(sum)`: no key, no per-key order |
//! | `weir-key-by` | the same with `key_by(x % 1024)` before `then`: one item per key at a time, 1024 keys |
//!
//! Every future is ready at once, so the rows measure the machinery around
//! them. `hand-keyed` keeps per-key order because a key always goes to the
//! same worker, and a worker handles its items one after another: it is
//! what a user would write instead of `key_by`. The ratio is
//! `weir-key-by`'s time over `hand-keyed`'s (paired by round); its extra
//! key `vs_weir_then` is `weir-key-by`'s time over `weir-then`'s. Every
//! row runs on a two-worker runtime.

use std::future::ready;
use std::hash::{BuildHasher, RandomState};
use std::hint::black_box;

use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use weir::Pipeline;

use crate::report::{interleave, Reporter, Row, Sample, Samples, Variant};
use crate::Options;

const SUITE: &str = "keyed";

/// Distinct keys of `weir-key-by` and `hand-keyed`.
const KEYS: u64 = 1024;
/// Items in flight in the weir rows; worker tasks of `hand-keyed`.
const CONCURRENCY: usize = 16;
/// Items per message of `hand-keyed`.
const BATCH: usize = 256;
/// Batches each of `hand-keyed`'s channels holds.
const CHANNEL_BATCHES: usize = 8;

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

/// `hand-keyed`: a dispatcher task, [`CONCURRENCY`] worker tasks, and the
/// fold in the calling task.
///
/// The dispatcher hashes each item's key with std's `RandomState` (the
/// hasher of weir's key map) to pick a worker, and collects each worker's
/// items into a `Vec` of [`BATCH`], sent when full (the partial ones at the
/// end). A worker replaces each item of a batch, in order, by the result of
/// awaiting `ready` on it, then sends the batch to the one channel all
/// workers share, which the fold drains. Every channel is bounded at
/// [`CHANNEL_BATCHES`] batches (the merged one at that many per worker).
async fn hand_keyed(n: u64) -> u64 {
    let (merged_tx, mut merged_rx) = mpsc::channel::<Vec<u64>>(CHANNEL_BATCHES * CONCURRENCY);
    let mut to_workers = Vec::with_capacity(CONCURRENCY);
    for _ in 0..CONCURRENCY {
        let (tx, mut rx) = mpsc::channel::<Vec<u64>>(CHANNEL_BATCHES);
        to_workers.push(tx);
        let out = merged_tx.clone();
        tokio::spawn(async move {
            while let Some(mut batch) = rx.recv().await {
                for x in &mut batch {
                    *x = ready(*x).await;
                }
                if out.send(batch).await.is_err() {
                    return;
                }
            }
        });
    }
    // The fold ends when every worker has dropped its sender.
    drop(merged_tx);
    tokio::spawn(async move {
        let hasher = RandomState::new();
        let mut batches: Vec<Vec<u64>> = (0..CONCURRENCY).map(|_| Vec::with_capacity(BATCH)).collect();
        for x in 0..n {
            let w = (hasher.hash_one(x % KEYS) % CONCURRENCY as u64) as usize;
            batches[w].push(x);
            if batches[w].len() == BATCH {
                let full = std::mem::replace(&mut batches[w], Vec::with_capacity(BATCH));
                if to_workers[w].send(full).await.is_err() {
                    return;
                }
            }
        }
        for (tx, batch) in to_workers.iter().zip(batches) {
            if !batch.is_empty() && tx.send(batch).await.is_err() {
                return;
            }
        }
    });
    let mut acc = 0u64;
    while let Some(batch) = merged_rx.recv().await {
        acc = batch.into_iter().fold(acc, u64::wrapping_add);
    }
    acc
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

/// Runs `fut` as a spawned task of `rt` and waits for it (the baseline runs
/// on the runtime's workers, as weir's stage tasks do).
fn spawned<F>(rt: &Runtime, fut: F) -> u64
where
    F: std::future::Future<Output = u64> + Send + 'static,
{
    rt.block_on(async { tokio::spawn(fut).await.expect("a benchmark task panicked") })
}

pub(crate) fn run(opts: &Options, out: &mut Reporter) -> Result<(), String> {
    let n = items(opts.quick);
    let multi = crate::multi_thread();
    let bn = || black_box(n);
    let mut variants = vec![
        Variant::new("hand-keyed", || {
            Ok(Sample::time(|| spawned(&multi, hand_keyed(bn()))))
        }),
        // weir runs the way a user runs it: awaited in `block_on`.
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
    out.rows(&rows(&s, n));
    out.note(&format!(
        "keyed: ratio = weir-key-by time ÷ hand-keyed time (paired by round); \
         vs_weir_then = weir-key-by time ÷ weir-then time; {KEYS} keys, concurrency {CONCURRENCY} \
         (hand-keyed: {CONCURRENCY} workers, batches of {BATCH})"
    ));
    Ok(())
}

fn rows(s: &Samples, n: u64) -> Vec<Row> {
    let hand = "hand-keyed";
    let then = "weir-then";
    let key_by = "weir-key-by";
    let ratio = |a: &str, b: &str| s.paired(a, b, |x, y| x.seconds / y.seconds);
    let row = |name: &str| Row::new(SUITE, name, n, Some(s.median_seconds(name)));
    vec![
        row(hand),
        row(then),
        row(key_by)
            .against(hand, ratio(key_by, hand))
            .with("vs_weir_then", ratio(key_by, then)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_computes_the_same_sum() {
        let rt = crate::current_thread();
        for n in [0, 1, 255, 257, 10_000] {
            let want = expected(n);
            assert_eq!(spawned(&rt, hand_keyed(n)), want, "n = {n}");
            assert_eq!(rt.block_on(weir_then(n)).unwrap(), want, "n = {n}");
            assert_eq!(rt.block_on(weir_key_by(n)).unwrap(), want, "n = {n}");
        }
    }
}
