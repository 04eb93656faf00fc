//! The `memory` suite: peak resident memory does not grow with the length
//! of the stream.
//!
//! Each measurement runs in a fresh child process (this binary, re-executed
//! with [`CHILD_FLAG`]) that runs one pipeline and prints its peak RSS
//! (`VmHWM` from `/proc/self/status`), so one measurement's allocations
//! cannot inflate the next one's:
//!
//! | row | what |
//! |---|---|
//! | `hand-loop` | the chain's hand loop: the floor of the process and its runtime |
//! | `weir-tasks` | the chain's `weir-tasks` pipeline at N and 4N items; the 4N row's ratio is peak RSS at 4N ÷ at N |
//! | `weir-slow-sink` | a source far faster than its sink (an async sink that burns CPU per item), at N/4 and N items; the N row's ratio is peak RSS at N ÷ at N/4 |
//!
//! For the slow-sink rows the child also runs the same pipeline with a
//! sink that does nothing; `sink_slowdown` is the slow run's time ÷ that
//! one's, a lower bound on how much slower the sink is than the source.

use std::future::ready;
use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use weir::Pipeline;

use crate::chain::{hand_loop, weir_tasks};
use crate::report::{interleave, Reporter, Row, Sample, Variant};
use crate::Options;

const SUITE: &str = "memory";

/// The hidden first argument that makes this binary a measuring child:
/// `--child KIND N`.
pub(crate) const CHILD_FLAG: &str = "--child";

/// What a child can run.
const HAND: &str = "memory-hand";
const TASKS: &str = "memory-tasks";
const SLOW_SINK: &str = "memory-slow-sink";

/// Rounds of busy work per item in the slow sink.
const SINK_SPIN: u32 = 96;

/// Items of the chain pipeline (the smaller size) and of the slow-sink
/// pipeline (the larger size).
fn items(quick: bool) -> (u64, u64) {
    if quick {
        (200_000, 100_000)
    } else {
        (10_000_000, 10_000_000)
    }
}

/// This process's peak resident set size, in kB.
fn peak_rss_kb() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM in /proc/self/status".to_owned())
}

/// Some CPU work the optimizer cannot remove.
fn spin(x: u64) -> u64 {
    let mut h = x;
    for _ in 0..SINK_SPIN {
        h = black_box(h.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
    h
}

/// A source pushing `n` items through an async sink task; `slow` makes the
/// sink burn CPU on each item.
async fn sink_pipeline(n: u64, slow: bool) -> Result<u64, weir::Error> {
    let report = Pipeline::from_iter(0..n)
        .for_each_async(move |x| {
            if slow {
                black_box(spin(x));
            }
            ready(Ok::<(), std::convert::Infallible>(()))
        })
        .run()
        .await?;
    Ok(report.delivered)
}

/// The child's side: runs one pipeline, prints `key=value` lines.
pub(crate) fn child(args: &[String]) -> Result<(), String> {
    let [kind, n] = args else {
        return Err(format!("usage: weir-bench {CHILD_FLAG} KIND N"));
    };
    let n: u64 = n.parse().map_err(|_| format!("not a number of items: `{n}`"))?;
    let rt = crate::multi_thread();
    let start = Instant::now();
    let check = match kind.as_str() {
        HAND => hand_loop(n),
        TASKS => rt.block_on(weir_tasks(n)).map_err(|e| e.to_string())?,
        SLOW_SINK => rt.block_on(sink_pipeline(n, true)).map_err(|e| e.to_string())?,
        other => return Err(format!("unknown child kind `{other}`")),
    };
    let seconds = start.elapsed().as_secs_f64();
    // Read before anything else runs, so the peak is this pipeline's.
    let rss = peak_rss_kb()?;
    println!("peak_rss_kb={rss}\nseconds={seconds}\ncheck={check}");
    if kind == SLOW_SINK {
        let start = Instant::now();
        rt.block_on(sink_pipeline(n, false)).map_err(|e| e.to_string())?;
        println!("fast_seconds={}", start.elapsed().as_secs_f64());
    }
    Ok(())
}

/// What a child reported.
#[derive(Debug, Clone, Copy)]
struct ChildReport {
    sample: Sample,
    fast_seconds: Option<f64>,
}

/// Runs `kind` over `n` items in a child process.
fn run_child(kind: &str, n: u64) -> Result<ChildReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let output = Command::new(exe)
        .args([CHILD_FLAG, kind, &n.to_string()])
        .output()
        .map_err(|e| format!("cannot start the {kind} child: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the {kind} child failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let field = |key: &str| -> Option<&str> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    };
    let parse_err = || format!("the {kind} child printed something unexpected: {stdout:?}");
    let num = |key: &str| field(key).and_then(|v| v.parse::<f64>().ok());
    Ok(ChildReport {
        sample: Sample {
            seconds: num("seconds").ok_or_else(parse_err)?,
            check: field("check")
                .and_then(|v| v.parse().ok())
                .ok_or_else(parse_err)?,
            peak_rss_kb: Some(
                field("peak_rss_kb")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(parse_err)?,
            ),
        },
        fast_seconds: num("fast_seconds"),
    })
}

pub(crate) fn run(opts: &Options, out: &mut Reporter) -> Result<(), String> {
    let (n, n_sink) = items(opts.quick);
    let (n_big, n_sink_small) = (4 * n, n_sink / 4);
    let mut slowdowns = Vec::new();
    let mut variants = vec![
        Variant::new("hand", || run_child(HAND, n).map(|r| r.sample)),
        Variant::new("tasks", || run_child(TASKS, n).map(|r| r.sample)),
        Variant::new("tasks-big", || run_child(TASKS, n_big).map(|r| r.sample)),
        Variant::new("sink-small", || {
            run_child(SLOW_SINK, n_sink_small).map(|r| r.sample)
        }),
        Variant::new("sink", || {
            let r = run_child(SLOW_SINK, n_sink)?;
            if let Some(fast) = r.fast_seconds {
                slowdowns.push(r.sample.seconds / fast);
            }
            Ok(r.sample)
        }),
    ];
    let s = interleave(SUITE, opts.rounds, false, &mut variants)?;
    drop(variants);

    s.expect_check("hand", hand_loop(n))?;
    s.expect_check("tasks", hand_loop(n))?;
    s.expect_check("tasks-big", hand_loop(n_big))?;
    s.expect_check("sink-small", n_sink_small)?;
    s.expect_check("sink", n_sink)?;
    let rss_ratio = |a: &str, b: &str| {
        s.paired(a, b, |x, y| {
            x.peak_rss_kb.unwrap_or_default() as f64 / y.peak_rss_kb.unwrap_or_default() as f64
        })
    };
    let row = |name: &str, variant: &str, items: u64| {
        Row::new(SUITE, variant, items, Some(s.median_seconds(name))).rss(s.median_rss_kb(name))
    };
    let slowdown = crate::report::median(slowdowns);
    let rows = vec![
        row("hand", "hand-loop", n),
        row("tasks", "weir-tasks", n).against("hand-loop", rss_ratio("tasks", "hand")),
        row("tasks-big", "weir-tasks", n_big).against("weir-tasks", rss_ratio("tasks-big", "tasks")),
        row("sink-small", "weir-slow-sink", n_sink_small),
        row("sink", "weir-slow-sink", n_sink)
            .against("weir-slow-sink", rss_ratio("sink", "sink-small"))
            .with("sink_slowdown", slowdown),
    ];
    out.rows(&rows);
    out.note(&format!(
        "memory: peak RSS (VmHWM) of a child process per run; ratio = peak RSS ÷ the baseline row's: \
         weir-tasks at {n} vs hand-loop, weir-tasks at {n_big} vs at {n}, weir-slow-sink at {n_sink} vs at {n_sink_small}"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_readable_on_linux() {
        assert!(peak_rss_kb().unwrap() > 0);
    }

    #[test]
    fn the_sink_pipelines_deliver_every_item() {
        let rt = crate::current_thread();
        assert_eq!(rt.block_on(sink_pipeline(5_000, true)).unwrap(), 5_000);
        assert_eq!(rt.block_on(sink_pipeline(5_000, false)).unwrap(), 5_000);
    }
}
