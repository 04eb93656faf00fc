//! weir's benchmark harness.
//!
//! Measures weir against baselines that do the same work without it — a
//! hand-written loop, iterator and `futures` combinators, hand-rolled tokio
//! channel stages — in the same run, interleaved, over several rounds, and
//! reports medians and paired ratios. Absolute numbers are context; the
//! ratios are what `docs/BENCHMARKS.md` sets targets for.
//!
//! ```text
//! cargo run --release -p weir-bench -- [--suite NAME]... [--quick] [--json] [--rounds N]
//! ```
//!
//! Suites: `chain` (fused and task-per-stage throughput), `io` (concurrent
//! async stages), `memory` (peak RSS, measured in child processes),
//! `observe` (the cost of the event stream), `stages` (catalogue stages
//! against hand-written equivalents), `keyed` (per-key ordering against
//! hand-rolled tokio sharding and a plain concurrent stage), `retry` (items that fail once and are
//! retried, against no failures), `latency` (end-to-end latency percentiles
//! at half the maximum throughput, against hand-rolled tokio channels),
//! `json` (JSON lines parsed, filtered, mapped and serialised, against a
//! `serde_json` loop), `cli` (the `weir` binary on a JSON-lines file,
//! against a typed `serde_json` loop and `jq`, and its peak RSS at 4× the
//! input; needs `cargo build --release -p weir-cli` first) and `stores`
//! (the `weir` binary writing rows into SQLite and PostgreSQL, against
//! `sqlite3`'s `.import` and `psql`'s `\copy`, and with checkpoints on
//! against off).

mod chain;
mod child;
mod cli;
mod io;
mod json;
mod keyed;
mod latency;
mod memory;
mod observe;
mod report;
mod retry;
mod rng;
mod scaling;
mod stages;
mod stores;

use std::process::ExitCode;

use report::Reporter;

const USAGE: &str = "\
usage: weir-bench [--suite NAME]... [--quick] [--json] [--rounds N]

  --suite NAME   run only this suite (repeatable): chain, scaling, io, memory, observe,
                 stages, keyed, retry, latency, json, cli (which runs the
                 `weir` binary built next to this one, and jq if on PATH),
                 stores (the `weir` binary into SQLite and PostgreSQL, against
                 sqlite3's .import and psql's \\copy if on PATH; the server
                 at 127.0.0.1:5432 or $WEIR_BENCH_POSTGRES; tools installed by
                 scripts/install-bench-tools). By default, all of them.
  --quick        tiny sizes: the whole run takes a few seconds (used by CI)
  --json         one JSON object per line instead of the table
  --rounds N     rounds per suite; each reported number is a median over them.
                 By default, 5 (2 with --quick).
  -h, --help     this text

Build with --release: `cargo run --release -p weir-bench -- --quick`.";

/// The suites, in the order they run.
const SUITES: [&str; 12] = [
    "chain", "scaling", "io", "memory", "observe", "stages", "keyed", "retry", "latency", "json", "cli",
    "stores",
];

/// What the command line asked for.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The suites to run, in [`SUITES`] order.
    suites: Vec<&'static str>,
    /// Tiny sizes.
    pub(crate) quick: bool,
    json: bool,
    /// Rounds per suite.
    pub(crate) rounds: usize,
}

impl Options {
    /// Parses the arguments (without the program name). `Ok(None)` means
    /// help was asked for.
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
        let mut args = args.into_iter();
        let mut wanted = Vec::new();
        let (mut quick, mut json, mut rounds) = (false, false, None);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--suite" => {
                    let name = args.next().ok_or("--suite needs a suite name")?;
                    let suite = SUITES
                        .into_iter()
                        .find(|s| *s == name)
                        .ok_or_else(|| format!("unknown suite `{name}` (known: {})", SUITES.join(", ")))?;
                    wanted.push(suite);
                }
                "--quick" => quick = true,
                "--json" => json = true,
                "--rounds" => {
                    let n = args.next().ok_or("--rounds needs a number")?;
                    match n.parse::<usize>() {
                        Ok(n) if n > 0 => rounds = Some(n),
                        _ => return Err(format!("--rounds needs a positive whole number, not `{n}`")),
                    }
                }
                "-h" | "--help" => return Ok(None),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        let suites = if wanted.is_empty() {
            SUITES.to_vec()
        } else {
            SUITES.into_iter().filter(|s| wanted.contains(s)).collect()
        };
        Ok(Some(Options {
            suites,
            quick,
            json,
            rounds: rounds.unwrap_or(if quick { 2 } else { 5 }),
        }))
    }
}

/// A tokio runtime with two worker threads (the CI machine's core count)
/// and timers.
pub(crate) fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("cannot build a tokio runtime")
}

/// A single-threaded tokio runtime with timers.
pub(crate) fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("cannot build a tokio runtime")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The memory suite re-executes this binary to measure one pipeline's
    // peak RSS in a fresh process.
    if args.first().map(String::as_str) == Some(memory::CHILD_FLAG) {
        return match memory::child(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("weir-bench child: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = match Options::parse(args) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("weir-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("weir-bench: warning: a debug build; numbers mean little (use --release)");
    }
    let mut out = Reporter::new(opts.json);
    for suite in &opts.suites {
        let result = match *suite {
            "chain" => chain::run(&opts, &mut out),
            "scaling" => scaling::run(&opts, &mut out),
            "io" => io::run(&opts, &mut out),
            "memory" => memory::run(&opts, &mut out),
            "observe" => observe::run(&opts, &mut out),
            "stages" => stages::run(&opts, &mut out),
            "keyed" => keyed::run(&opts, &mut out),
            "retry" => retry::run_suite(&opts, &mut out),
            "latency" => latency::run(&opts, &mut out),
            "json" => json::run(&opts, &mut out),
            "cli" => cli::run(&opts, &mut out),
            "stores" => stores::run(&opts, &mut out),
            _ => unreachable!("Options::parse accepts only known suites"),
        };
        if let Err(e) = result {
            eprintln!("weir-bench: {suite}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_run_every_suite_five_rounds() {
        let o = parse(&[]).unwrap().unwrap();
        assert_eq!(o.suites, SUITES);
        assert_eq!((o.quick, o.json, o.rounds), (false, false, 5));
    }

    #[test]
    fn quick_means_two_rounds_unless_told_otherwise() {
        assert_eq!(parse(&["--quick"]).unwrap().unwrap().rounds, 2);
        assert_eq!(parse(&["--rounds", "3", "--quick"]).unwrap().unwrap().rounds, 3);
    }

    #[test]
    fn suites_run_in_their_fixed_order_once() {
        let o = parse(&["--suite", "observe", "--suite", "chain", "--suite", "chain"])
            .unwrap()
            .unwrap();
        assert_eq!(o.suites, ["chain", "observe"]);
    }

    #[test]
    fn unknown_flags_and_suites_are_errors() {
        assert!(parse(&["--fast"]).unwrap_err().contains("--fast"));
        assert!(parse(&["--suite", "disk"]).unwrap_err().contains("disk"));
        assert!(parse(&["--suite"]).is_err());
        assert!(parse(&["--rounds", "0"]).is_err());
        assert!(parse(&["--help"]).unwrap().is_none());
    }
}
