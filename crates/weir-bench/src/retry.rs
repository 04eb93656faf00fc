//! The `retry` suite: what retries cost when some items fail once.
//!
//! `then(ready)` with 16 items in flight over 1M items (100k with
//! `--quick`), the results summed, on a two-worker runtime:
//!
//! | row | what |
//! |---|---|
//! | `weir-no-failures` | `.try_then(f).concurrency(16)`: no item fails, no retry set |
//! | `weir-retry-configured` | the same with `.retry(Retry::fixed(0))`: the wrapper's cost |
//! | `weir-retry-10pct` | one item in ten fails its first attempt and is retried at once |
//!
//! The delay is zero: tokio's timers tick in milliseconds, so any real
//! delay would measure the timer, not weir. Each retry row's ratio is its
//! time ÷ `weir-no-failures`'s, paired by round.

use std::future::{ready, Ready};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use weir::{Pipeline, Retry};

use crate::report::{interleave, Reporter, Row, Sample, Variant};
use crate::Options;

const SUITE: &str = "retry";
const CONCURRENCY: usize = 16;

fn items(quick: bool) -> u64 {
    if quick {
        100_000
    } else {
        1_000_000
    }
}

/// The stage: with `failing`, items divisible by ten fail their first
/// attempt (`tried` remembers which did).
fn stage(failing: bool, tried: Arc<Vec<AtomicBool>>) -> impl FnMut(u64) -> Ready<Result<u64, &'static str>> {
    move |x| {
        let fail = failing && x % 10 == 0 && !tried[x as usize].swap(true, Ordering::Relaxed);
        ready(if fail { Err("transient") } else { Ok(x) })
    }
}

/// How a run is set up.
#[derive(Clone, Copy)]
enum Setup {
    NoFailures,
    RetryConfigured,
    Retry10Pct,
}

/// The sum of the items delivered.
async fn run(n: u64, setup: Setup) -> Result<u64, String> {
    let tried = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect::<Vec<_>>());
    let failing = matches!(setup, Setup::Retry10Pct);
    let p = Pipeline::from_iter(0..n).try_then(stage(failing, tried));
    let p = match setup {
        Setup::NoFailures => {
            p.concurrency(CONCURRENCY)
                .fold(0u64, |a, x| a.wrapping_add(x))
                .await
        }
        Setup::RetryConfigured | Setup::Retry10Pct => {
            p.retry(Retry::fixed(Duration::ZERO))
                .concurrency(CONCURRENCY)
                .fold(0u64, |a, x| a.wrapping_add(x))
                .await
        }
    };
    p.map_err(|e| e.to_string())
}

pub(crate) fn run_suite(opts: &Options, out: &mut Reporter) -> Result<(), String> {
    let n = items(opts.quick);
    let rt = crate::multi_thread();
    let mut variants = vec![
        Variant::new("weir-no-failures", || {
            Sample::try_time(|| rt.block_on(run(black_box(n), Setup::NoFailures)))
        }),
        Variant::new("weir-retry-configured", || {
            Sample::try_time(|| rt.block_on(run(black_box(n), Setup::RetryConfigured)))
        }),
        Variant::new("weir-retry-10pct", || {
            Sample::try_time(|| rt.block_on(run(black_box(n), Setup::Retry10Pct)))
        }),
    ];
    let s = interleave(SUITE, opts.rounds, true, &mut variants)?;
    drop(variants);
    let expected = (0..n).fold(0u64, |a, x| a.wrapping_add(x));
    let names = ["weir-no-failures", "weir-retry-configured", "weir-retry-10pct"];
    for name in names {
        s.expect_check(name, expected)?;
    }
    let mut rows = vec![Row::new(SUITE, names[0], n, Some(s.median_seconds(names[0])))];
    for name in &names[1..] {
        rows.push(
            Row::new(SUITE, name, n, Some(s.median_seconds(name)))
                .against(names[0], s.paired(name, names[0], |x, y| x.seconds / y.seconds)),
        );
    }
    out.rows(&rows);
    out.note(
        "retry: ratio = time ÷ the same pipeline without failures or retry (then(ready), concurrency 16)",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setup_delivers_every_item() {
        let rt = crate::multi_thread();
        let want = (0..1_000u64).sum::<u64>();
        for setup in [Setup::NoFailures, Setup::RetryConfigured, Setup::Retry10Pct] {
            assert_eq!(rt.block_on(run(1_000, setup)).unwrap(), want);
        }
    }
}
