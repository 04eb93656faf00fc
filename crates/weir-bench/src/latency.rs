//! The `latency` suite: end-to-end latency at half the measured maximum
//! throughput.
//!
//! Each item carries the `Instant` the source created it at; the sink
//! records `created.elapsed()` in an HDR histogram. The pipeline is
//! `from_stream` → `then(ready).concurrency(16)` → `map` (a hash mix) →
//! `for_each` (record), on a two-worker runtime:
//!
//! | row | what |
//! |---|---|
//! | `tokio-mpsc-unpaced` | the baseline below over an unpaced source |
//! | `weir-unpaced` | the pipeline over an unpaced source: its maximum throughput |
//! | `tokio-mpsc-50pct` | the paced source in a task, sending each item through `mpsc::channel(1024)` to a task doing the work, which sends it through another to a sink task recording the same histogram |
//! | `weir-50pct` | the pipeline over a source paced at half `weir-unpaced`'s median items/s |
//!
//! The unpaced rounds run first: their median sets the rate of the paced
//! ones, which both run at that same rate. `weir-unpaced`'s ratio is its
//! time ÷ `tokio-mpsc-unpaced`'s; `weir-50pct`'s ratio is its P99 ÷
//! `tokio-mpsc-50pct`'s P99 (both paired by round). Percentiles are
//! medians over rounds of each round's percentile. The paced rows' `load`
//! is the rate ÷ the variant's own unpaced throughput: where the baseline
//! is slower than weir, the same rate loads it more.
//!
//! The paced source wakes on every tick of a 1 ms tokio interval (the
//! timer's resolution) and emits the items due by then, counted from the
//! elapsed time, so it keeps its rate at millions of items per second
//! without one timer per item; items arrive in one burst per tick. An item
//! is stamped when the source creates it, which is when the consumer pulls
//! it: a consumer that cannot keep up slows the source down, which shows as
//! items/s below `target_per_sec` rather than as latency. (Stamping with the
//! scheduled time instead would add the wait for the next tick, up to
//! 1 ms, to every item: it would measure the timer, not the pipeline.)

use std::future::ready;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};
use weir::Pipeline;

use crate::report::{interleave, median, Reporter, Row, Sample, Variant};
use crate::Options;

const SUITE: &str = "latency";
/// Items in flight in the `then` stage.
const CONCURRENCY: usize = 16;
/// Messages per channel of the baseline.
const MPSC_CAPACITY: usize = 1024;
/// The paced runs' load, as a fraction of `weir-unpaced`'s throughput.
const LOAD: f64 = 0.5;
/// How often the paced source wakes.
const TICK: Duration = Duration::from_millis(1);
/// The longest a paced run should last.
const PACED_SECONDS: f64 = 5.0;
/// The target for `weir-50pct`'s P99.
const TARGET_P99: Duration = Duration::from_millis(1);
/// The longest latency the histograms keep apart; longer ones count as this.
const HIGHEST: Duration = Duration::from_secs(60);

/// Items of the unpaced runs, and the most items of a paced run.
fn items(quick: bool) -> u64 {
    if quick {
        20_000
    } else {
        2_000_000
    }
}

/// Items of a paced run at `per_sec`: [`items`], or fewer if that many
/// would take more than [`PACED_SECONDS`].
fn paced_items(quick: bool, per_sec: f64) -> u64 {
    items(quick).min((per_sec * PACED_SECONDS) as u64).max(1)
}

/// An item: when the source created it, and its payload.
type Stamped = (Instant, u64);

/// The work per item: a splitmix64 finalizer.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `map` stage.
fn work((created, x): Stamped) -> Stamped {
    (created, mix(x))
}

/// The checksum every variant must compute over `n` items.
fn expected(n: u64) -> u64 {
    (0..n).fold(0u64, |acc, x| acc.wrapping_add(mix(x)))
}

/// `n` items, each created when pulled.
fn unpaced(n: u64) -> impl Stream<Item = Stamped> + Send + 'static {
    futures::stream::iter(0..n).map(|x| (Instant::now(), x))
}

/// The paced source's state.
struct Pace {
    /// The ticker and the time of the first poll (set then, so that time
    /// spent building the pipeline does not pile up as a first burst).
    clock: Option<(Interval, Instant)>,
    /// Items created so far.
    next: u64,
    /// Items due by the last tick.
    due: u64,
}

/// `n` items at `per_sec` items per second: on every tick, the items due by
/// then, each created when pulled.
fn paced(n: u64, per_sec: f64) -> impl Stream<Item = Stamped> + Send + 'static {
    let pace = Pace {
        clock: None,
        next: 0,
        due: 0,
    };
    futures::stream::unfold(pace, move |mut p| async move {
        if p.next == n {
            return None;
        }
        while p.next == p.due {
            let (ticks, start) = p.clock.get_or_insert_with(|| {
                let mut ticks = tokio::time::interval(TICK);
                // The due count comes from the elapsed time, so a late tick
                // only makes a larger burst: no catching up on missed ones.
                ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                (ticks, Instant::now())
            });
            ticks.tick().await;
            p.due = ((start.elapsed().as_secs_f64() * per_sec) as u64).min(n);
        }
        let item = (Instant::now(), p.next);
        p.next += 1;
        Some((item, p))
    })
}

/// What a sink keeps: the latency histogram (ns) and a checksum of the
/// payloads.
#[derive(Debug)]
struct Tally {
    latency: Histogram<u64>,
    check: u64,
}

impl Tally {
    fn new() -> Tally {
        let highest = HIGHEST.as_nanos() as u64;
        Tally {
            latency: Histogram::new_with_bounds(1, highest, 3).expect("valid histogram bounds"),
            check: 0,
        }
    }

    fn record(&mut self, (created, x): Stamped) {
        let ns = u64::try_from(created.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.latency.saturating_record(ns.max(1));
        self.check = self.check.wrapping_add(x);
    }
}

/// The `for_each` closure's tally, moved to `slot` when the closure is
/// dropped at the end of the run. A lock per item instead would cost about
/// as much as the rest of the sink and lower the maximum throughput.
#[derive(Debug)]
struct Handoff {
    tally: Option<Tally>,
    slot: Arc<Mutex<Option<Tally>>>,
}

impl Handoff {
    fn record(&mut self, item: Stamped) {
        if let Some(t) = &mut self.tally {
            t.record(item);
        }
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.slot.lock() {
            *slot = self.tally.take();
        }
    }
}

/// The weir pipeline over `source`: the sink's tally and the report's own
/// end-to-end latency.
async fn weir_run<S>(source: S) -> Result<(Tally, Option<weir::Latency>), String>
where
    S: Stream<Item = Stamped> + Send + 'static,
{
    let slot = Arc::new(Mutex::new(None));
    let mut sink = Handoff {
        tally: Some(Tally::new()),
        slot: slot.clone(),
    };
    let report = Pipeline::from_stream(source)
        .then(ready)
        .concurrency(CONCURRENCY)
        .map(work)
        .for_each(move |item| sink.record(item))
        .run()
        .await
        .map_err(|e| e.to_string())?;
    let tally = slot
        .lock()
        .map_err(|_| "the sink's tally lock is poisoned")?
        .take()
        .ok_or("the sink's closure outlived the run: no tally")?;
    Ok((tally, report.latency))
}

/// The baseline over `source`: source task → channel → work task →
/// channel → sink task.
async fn tokio_mpsc<S>(source: S) -> Tally
where
    S: Stream<Item = Stamped> + Send + 'static,
{
    let (tx_in, mut rx_in) = mpsc::channel::<Stamped>(MPSC_CAPACITY);
    let (tx_out, mut rx_out) = mpsc::channel::<Stamped>(MPSC_CAPACITY);
    tokio::spawn(async move {
        let mut source = pin!(source);
        while let Some(item) = source.next().await {
            if tx_in.send(item).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(item) = rx_in.recv().await {
            if tx_out.send(work(item)).await.is_err() {
                return;
            }
        }
    });
    let sink = tokio::spawn(async move {
        let mut tally = Tally::new();
        while let Some(item) = rx_out.recv().await {
            tally.record(item);
        }
        tally
    });
    sink.await.expect("the sink task panicked")
}

/// Latency percentiles of one run, in µs.
#[derive(Debug, Clone, Copy)]
struct Percentiles {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        let us = |ns: u64| ns as f64 / 1e3;
        Percentiles {
            p50: us(h.value_at_quantile(0.50)),
            p95: us(h.value_at_quantile(0.95)),
            p99: us(h.value_at_quantile(0.99)),
            max: us(h.max()),
        }
    }

    fn of_report(l: &weir::Latency) -> Percentiles {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        Percentiles {
            p50: us(l.p50),
            p95: us(l.p95),
            p99: us(l.p99),
            max: us(l.max),
        }
    }

    /// The median over rounds of each percentile.
    fn median(runs: &[Percentiles]) -> Percentiles {
        let of = |f: fn(&Percentiles) -> f64| median(runs.iter().map(f));
        Percentiles {
            p50: of(|p| p.p50),
            p95: of(|p| p.p95),
            p99: of(|p| p.p99),
            max: of(|p| p.max),
        }
    }

    fn add_to(self, row: Row) -> Row {
        row.with("p50_us", self.p50)
            .with("p95_us", self.p95)
            .with("p99_us", self.p99)
            .with("max_us", self.max)
    }

    fn describe(self) -> String {
        format!(
            "p50 {:.1} µs, p95 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            self.p50, self.p95, self.p99, self.max
        )
    }
}

pub(crate) fn run(opts: &Options, out: &mut Reporter) -> Result<(), String> {
    let n = items(opts.quick);
    let rt = crate::multi_thread();
    let bn = || black_box(n);
    let mut variants = vec![
        Variant::new("tokio-mpsc-unpaced", || {
            Ok(Sample::time(|| rt.block_on(tokio_mpsc(unpaced(bn()))).check))
        }),
        Variant::new("weir-unpaced", || {
            Sample::try_time(|| rt.block_on(weir_run(unpaced(bn()))).map(|(t, _)| t.check))
        }),
    ];
    let s = interleave(SUITE, opts.rounds, true, &mut variants)?;
    drop(variants);
    for name in s.names() {
        s.expect_check(name, expected(n))?;
    }
    let max_per_sec = n as f64 / s.median_seconds("weir-unpaced");
    let per_sec = LOAD * max_per_sec;
    if !(per_sec.is_finite() && per_sec > 0.0) {
        return Err(format!("cannot pace at {per_sec} items/s"));
    }

    // The paced runs: the unpaced rounds warmed up the same code.
    let m = paced_items(opts.quick, per_sec);
    let (mut weir_lat, mut weir_own, mut base_lat) = (Vec::new(), Vec::new(), Vec::new());
    let mut variants = vec![
        Variant::new("tokio-mpsc-50pct", || {
            let mut tally = None;
            let sample = Sample::time(|| {
                let t = rt.block_on(tokio_mpsc(paced(black_box(m), per_sec)));
                tally.insert(t).check
            });
            base_lat.extend(tally.map(|t| Percentiles::of(&t.latency)));
            Ok(sample)
        }),
        Variant::new("weir-50pct", || {
            let mut got = None;
            let sample = Sample::try_time(|| {
                let (t, own) = rt.block_on(weir_run(paced(black_box(m), per_sec)))?;
                Ok::<_, String>(got.insert((t, own)).0.check)
            })?;
            if let Some((t, own)) = got {
                weir_lat.push(Percentiles::of(&t.latency));
                weir_own.push(own);
            }
            Ok(sample)
        }),
    ];
    let p = interleave(SUITE, opts.rounds, false, &mut variants)?;
    drop(variants);
    for name in p.names() {
        p.expect_check(name, expected(m))?;
    }

    let (weir, base) = (Percentiles::median(&weir_lat), Percentiles::median(&base_lat));
    let p99_ratio = median(weir_lat.iter().zip(&base_lat).map(|(w, b)| w.p99 / b.p99));
    let unpaced_row = |name: &str| Row::new(SUITE, name, n, Some(s.median_seconds(name)));
    // The load relative to the variant's own maximum: the baseline may be
    // slower than weir, and then runs closer to (or past) its capacity.
    let paced_row = |name: &str, unpaced: &str| {
        let own_max = n as f64 / s.median_seconds(unpaced);
        Row::new(SUITE, name, m, Some(p.median_seconds(name)))
            .with("target_per_sec", per_sec)
            .with("load", per_sec / own_max)
    };
    let rows = vec![
        unpaced_row("tokio-mpsc-unpaced"),
        unpaced_row("weir-unpaced").against(
            "tokio-mpsc-unpaced",
            s.paired("weir-unpaced", "tokio-mpsc-unpaced", |x, y| x.seconds / y.seconds),
        ),
        base.add_to(paced_row("tokio-mpsc-50pct", "tokio-mpsc-unpaced")),
        weir.add_to(paced_row("weir-50pct", "weir-unpaced"))
            .against("tokio-mpsc-50pct", p99_ratio),
    ];
    out.rows(&rows);
    out.note(&format!(
        "latency: weir-unpaced ratio = time ÷ tokio-mpsc-unpaced's; weir-50pct ratio = its P99 ÷ \
         tokio-mpsc-50pct's P99 (paired by round). Paced rows: {m} items at {per_sec:.0} items/s \
         ({LOAD} × weir-unpaced's {max_per_sec:.0}), a burst every {TICK:?}; latency from the \
         source's creation of an item to the sink; load = target_per_sec ÷ the variant's own \
         unpaced items/s"
    ));
    let verdict = if weir.p99 <= TARGET_P99.as_secs_f64() * 1e6 {
        "held"
    } else {
        "missed"
    };
    out.note(&format!(
        "latency: target P99 ≤ {TARGET_P99:?} at 50% load {verdict}: weir-50pct P99 = {:.1} µs",
        weir.p99
    ));
    let own: Option<Vec<Percentiles>> = weir_own
        .iter()
        .map(|l| l.as_ref().map(Percentiles::of_report))
        .collect();
    out.note(&match own {
        Some(own) if !own.is_empty() => format!(
            "latency: weir-50pct by weir's own Report::latency (1 item in 64): {}; by the harness \
             (every item): {}",
            Percentiles::median(&own).describe(),
            weir.describe()
        ),
        _ => "latency: weir-50pct: weir's Report::latency was not recorded".to_owned(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_computes_the_same_check_and_times_every_item() {
        let rt = crate::multi_thread();
        let n = 2_000;
        let want = expected(n);
        let (t, own) = rt.block_on(weir_run(unpaced(n))).unwrap();
        assert_eq!((t.check, t.latency.len()), (want, n));
        assert!(own.is_some_and(|l| l.count > 0), "weir samples 1 in 64");
        let t = rt.block_on(tokio_mpsc(unpaced(n)));
        assert_eq!((t.check, t.latency.len()), (want, n));
        let (t, _) = rt.block_on(weir_run(paced(n, 200_000.0))).unwrap();
        assert_eq!((t.check, t.latency.len()), (want, n));
        let t = rt.block_on(tokio_mpsc(paced(n, 200_000.0)));
        assert_eq!((t.check, t.latency.len()), (want, n));
    }

    #[test]
    fn the_paced_source_never_runs_ahead_of_its_rate() {
        let rt = crate::current_thread();
        let start = Instant::now();
        let items: Vec<Stamped> = rt.block_on(paced(500, 50_000.0).collect());
        // The last item is due once 500 / 50k s = 10 ms have passed.
        assert!(start.elapsed() >= Duration::from_millis(10));
        let payloads: Vec<u64> = items.iter().map(|(_, x)| *x).collect();
        assert_eq!(payloads, (0..500).collect::<Vec<_>>());
        assert!(items.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn paced_runs_last_at_most_about_five_seconds() {
        assert_eq!(paced_items(false, 1e7), 2_000_000);
        assert_eq!(paced_items(false, 100_000.0), 500_000);
        assert_eq!(paced_items(true, 1e6), 20_000);
        assert_eq!(paced_items(true, 0.1), 1);
    }
}
