//! The `retry` suite: what retries cost when some items fail once.
//!
//! Two stages, each run without failures and with one item in ten failing
//! its first attempt (retried at once, `Retry::fixed(0)`), results summed,
//! on a two-worker runtime:
//!
//! | row | what |
//! |---|---|
//! | `weir-no-failures` | `.try_then(ready).concurrency(16)` over 1M items (100k with `--quick`), no retry set: the floor |
//! | `weir-retry-configured` | the same with `.retry(Retry::fixed(0))`, no item failing: "the same pipeline without failures"; ratio = the retry wrapper's cost vs `weir-no-failures` |
//! | `weir-retry-10pct` | one item in ten fails once; ratio vs `weir-retry-configured`: **the cost of the failures** (the "retry-heavy pipeline vs the same without failures") |
//! | `weir-io-no-failures` | a stage that waits 1 ms per attempt (a network call), 64 in flight, unordered, retry set, 20,000 items (2,000 with `--quick`) |
//! | `weir-io-retry-10pct` | the same with one item in ten failing once; ratio vs `weir-io-no-failures`: 10% more attempts make **1.10 the ideal** |
//!
//! `then(ready)` does no work at all, so its ratio is the worst case: all
//! it measures is what a failure costs weir (the error's allocations and
//! the retry). The io rows show what that is next to a stage with work
//! to do. The delay is zero: tokio's timers tick in milliseconds, so any
//! real backoff would measure the timer, not weir. Ratios are paired by
//! round.

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
    move |x| ready(attempt(failing, &tried, x))
}

/// One attempt on `x`: fails if `failing` and `x` is a tenth item tried
/// for the first time.
fn attempt(failing: bool, tried: &[AtomicBool], x: u64) -> Result<u64, &'static str> {
    let fail = failing && x % 10 == 0 && !tried[x as usize].swap(true, Ordering::Relaxed);
    if fail {
        Err("transient")
    } else {
        Ok(x)
    }
}

/// How a run is set up.
#[derive(Clone, Copy)]
enum Setup {
    NoFailures,
    RetryConfigured,
    Retry10Pct,
}

fn tried(n: u64) -> Arc<Vec<AtomicBool>> {
    Arc::new((0..n).map(|_| AtomicBool::new(false)).collect::<Vec<_>>())
}

/// The sum of the items delivered.
async fn run(n: u64, setup: Setup) -> Result<u64, String> {
    let failing = matches!(setup, Setup::Retry10Pct);
    let p = Pipeline::from_iter(0..n).try_then(stage(failing, tried(n)));
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

/// Items of the io rows.
fn io_items(quick: bool) -> u64 {
    if quick {
        2_000
    } else {
        20_000
    }
}

/// In flight in the io rows.
const IO_CONCURRENCY: usize = 64;

/// The io rows: every attempt waits 1 ms first.
async fn run_io(n: u64, failing: bool) -> Result<u64, String> {
    let tried = tried(n);
    Pipeline::from_iter(0..n)
        .try_then(move |x| {
            let tried = tried.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                attempt(failing, &tried, x)
            }
        })
        .retry(Retry::fixed(Duration::ZERO))
        .concurrency(IO_CONCURRENCY)
        .unordered()
        .fold(0u64, |a, x| a.wrapping_add(x))
        .await
        .map_err(|e| e.to_string())
}

pub(crate) fn run_suite(opts: &Options, out: &mut Reporter) -> Result<(), String> {
    let n = items(opts.quick);
    let n_io = io_items(opts.quick);
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
        Variant::new("weir-io-no-failures", || {
            Sample::try_time(|| rt.block_on(run_io(black_box(n_io), false)))
        }),
        Variant::new("weir-io-retry-10pct", || {
            Sample::try_time(|| rt.block_on(run_io(black_box(n_io), true)))
        }),
    ];
    let s = interleave(SUITE, opts.rounds, true, &mut variants)?;
    drop(variants);
    let sum = |n: u64| (0..n).fold(0u64, |a, x| a.wrapping_add(x));
    for name in ["weir-no-failures", "weir-retry-configured", "weir-retry-10pct"] {
        s.expect_check(name, sum(n))?;
    }
    for name in ["weir-io-no-failures", "weir-io-retry-10pct"] {
        s.expect_check(name, sum(n_io))?;
    }
    let row = |name: &str, items: u64, baseline: Option<&str>| {
        let r = Row::new(SUITE, name, items, Some(s.median_seconds(name)));
        match baseline {
            Some(b) => r.against(b, s.paired(name, b, |x, y| x.seconds / y.seconds)),
            None => r,
        }
    };
    out.rows(&[
        row("weir-no-failures", n, None),
        row("weir-retry-configured", n, Some("weir-no-failures")),
        row("weir-retry-10pct", n, Some("weir-retry-configured")),
        row("weir-io-no-failures", n_io, None),
        row("weir-io-retry-10pct", n_io, Some("weir-io-no-failures")),
    ]);
    out.note(
        "retry: ratio = time ÷ the baseline row's (paired by round): the retry wrapper vs none, \
         10% failing once vs the same pipeline without failures; io rows wait 1 ms per attempt, \
         64 in flight, unordered (ideal ratio 1.10: 10% more attempts)",
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
        for failing in [false, true] {
            assert_eq!(rt.block_on(run_io(1_000, failing)).unwrap(), want);
        }
    }
}
