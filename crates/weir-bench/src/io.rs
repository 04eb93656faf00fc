//! The `io` suite: an I/O-bound async stage, 64 items in flight.
//!
//! Each item waits in `tokio::time::sleep(1 ms)` (a stand-in for a network
//! call) and the results are summed:
//!
//! | row | what |
//! |---|---|
//! | `futures-buffered` | `stream::iter(..).map(fut).buffered(64)`, one task |
//! | `futures-buffer-unordered` | the same with `buffer_unordered(64)` |
//! | `weir-ordered` | `.then(fut).concurrency(64)` (ordered is the default) |
//! | `weir-unordered` | `.then(fut).concurrency(64).unordered()` |
//!
//! Each weir row's ratio is its time ÷ the matching `futures` row's
//! (paired by round), so throughput relative to the baseline is 1 ÷ ratio.
//! The ideal time is ⌈items ÷ 64⌉ sleeps, with the length of one sleep
//! measured on the same runtime (timers round up to the next millisecond
//! tick, so a "1 ms" sleep is longer); `efficiency` is ideal ÷ measured.

use std::future::ready;
use std::hint::black_box;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::runtime::Runtime;
use weir::Pipeline;

use crate::chain::add;
use crate::report::{interleave, median_duration, Reporter, Row, Sample, Variant};
use crate::Options;

const SUITE: &str = "io";
/// Items in flight.
const CONCURRENCY: usize = 64;
/// The length of each item's wait.
const WAIT: Duration = Duration::from_millis(1);

fn items(quick: bool) -> u64 {
    if quick {
        1_000
    } else {
        20_000
    }
}

/// The stage: wait, then pass the item on.
async fn wait(x: u64) -> u64 {
    tokio::time::sleep(WAIT).await;
    x
}

async fn futures_buffered(n: u64, ordered: bool) -> u64 {
    let calls = futures::stream::iter(0..n).map(wait);
    if ordered {
        calls.buffered(CONCURRENCY).fold(0, |a, x| ready(add(a, x))).await
    } else {
        calls
            .buffer_unordered(CONCURRENCY)
            .fold(0, |a, x| ready(add(a, x)))
            .await
    }
}

async fn weir_then(n: u64, ordered: bool) -> Result<u64, weir::Error> {
    let p = Pipeline::from_iter(0..n).then(wait).concurrency(CONCURRENCY);
    let p = if ordered { p } else { p.unordered() };
    p.fold(0, add).await
}

pub(crate) fn run(opts: &Options, out: &mut Reporter) -> Result<(), String> {
    let n = items(opts.quick);
    let rt = crate::multi_thread();
    let one_sleep = |rt: &Runtime| {
        median_duration(if opts.quick { 10 } else { 50 }, || {
            rt.block_on(async {
                let start = Instant::now();
                tokio::time::sleep(WAIT).await;
                start.elapsed()
            })
        })
    };
    let sleep_before = one_sleep(&rt);
    let baseline = |ordered| {
        let rt = &rt;
        move || {
            Ok(Sample::time(|| {
                rt.block_on(async {
                    tokio::spawn(futures_buffered(black_box(n), ordered))
                        .await
                        .expect("a benchmark task panicked")
                })
            }))
        }
    };
    let weir = |ordered| {
        let rt = &rt;
        move || Sample::try_time(|| rt.block_on(weir_then(black_box(n), ordered)))
    };
    let mut variants = vec![
        Variant::new("futures-buffered", baseline(true)),
        Variant::new("futures-buffer-unordered", baseline(false)),
        Variant::new("weir-ordered", weir(true)),
        Variant::new("weir-unordered", weir(false)),
    ];
    let s = interleave(SUITE, opts.rounds, true, &mut variants)?;
    drop(variants);
    let sleep_after = one_sleep(&rt);
    let one = (sleep_before + sleep_after) / 2.0;

    let expected = (0..n).fold(0, add);
    for name in s.names() {
        s.expect_check(name, expected)?;
    }
    let ideal = n.div_ceil(CONCURRENCY as u64) as f64 * one;
    let row = |name: &str| {
        let secs = s.median_seconds(name);
        Row::new(SUITE, name, n, Some(secs))
            .with("one_sleep_s", one)
            .with("ideal_s", ideal)
            .with("efficiency", ideal / secs)
    };
    let ratio = |a: &str, b: &str| s.paired(a, b, |x, y| x.seconds / y.seconds);
    let rows = vec![
        row("futures-buffered"),
        row("futures-buffer-unordered"),
        row("weir-ordered").against("futures-buffered", ratio("weir-ordered", "futures-buffered")),
        row("weir-unordered").against(
            "futures-buffer-unordered",
            ratio("weir-unordered", "futures-buffer-unordered"),
        ),
    ];
    out.rows(&rows);
    out.note(&format!(
        "io: one {WAIT:?} sleep takes {:.3} ms (median; {:.3} before the rounds, {:.3} after); \
         ideal = ceil({n}/{CONCURRENCY}) sleeps = {:.4} s; ratio = time ÷ the futures row's time \
         (throughput share = 1/ratio)",
        one * 1e3,
        sleep_before * 1e3,
        sleep_after * 1e3,
        ideal
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_sums_every_item() {
        let rt = crate::multi_thread();
        let want = (0..200).sum::<u64>();
        for ordered in [true, false] {
            assert_eq!(rt.block_on(futures_buffered(200, ordered)), want);
            assert_eq!(rt.block_on(weir_then(200, ordered)).unwrap(), want);
        }
    }
}
