//! The `weir` command: streaming pipelines defined in a config file.
//!
//! ```text
//! weir run pipeline.toml [--events OUT.jsonl] [--metrics-addr 127.0.0.1:9090] [--quiet] [--json] [--limit N]
//! weir check pipeline.toml        # every problem with file:line:column
//! weir graph pipeline.toml --format dot|mermaid
//! weir replay OUT.jsonl           # re-render a past run from its event log
//! weir stages                     # every source, stage and sink with its options
//! weir test pipeline.toml         # the config's [[test]] cases
//! weir completions bash|zsh|fish|…
//! ```
//!
//! Sources, stages and sinks are configured in TOML (or YAML); filters,
//! maps and keys are jq expressions ([`jq`]) evaluated in-process. The
//! binary is [`main_with`] over an empty [`Registry`]: a program of your
//! own can register custom Rust stages by name and get the whole CLI.
//!
//! # Examples
//!
//! A binary that adds a stage named `upper`:
//!
//! ```no_run
//! use weir::compose::{self, Registry};
//! use weir_io::Record;
//!
//! fn main() -> std::process::ExitCode {
//!     let mut registry = Registry::<Record>::new();
//!     registry
//!         .register("upper", |_config| {
//!             Ok(compose::BoxStage::new(compose::map("upper", |mut r: Record| {
//!                 if let Some(s) = r.value.as_str() {
//!                     r.value = s.to_uppercase().into();
//!                 }
//!                 r
//!             })))
//!         })
//!         .unwrap();
//!     weir_cli::main_with(registry)
//! }
//! ```

mod build;
mod cli;
pub mod config;
pub mod display;
mod graph;
pub mod jq;
mod run;
mod test_cases;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use weir::compose::Registry;
use weir_io::Record;

use cli::{Cli, Command};
use config::Config;

/// Exit status of a run that failed (a fail-fast error, an abort).
pub const EXIT_FAILED: u8 = 1;
/// Exit status of a usage or configuration error.
pub const EXIT_CONFIG: u8 = 2;

/// The whole `weir` command line, with the custom stages of `registry`
/// available to configs by name.
pub fn main_with(registry: Registry<Record>) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_CONFIG } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    dispatch(cli.command, &registry)
}

fn dispatch(command: Command, registry: &Registry<Record>) -> ExitCode {
    let custom: Vec<&str> = registry.names();
    match command {
        Command::Run(args) => run::run(args, registry),
        Command::Check { file, connect } => match Config::load(&file, &custom) {
            Ok(config) => {
                // Opening inputs and outputs is part of the check (a missing
                // file, an unwritable directory); nothing is read or written.
                let checked = build::check(&config, registry).and_then(|summary| {
                    let connected = if connect {
                        build::connect::connect(&config)?
                    } else {
                        Vec::new()
                    };
                    Ok((summary, connected))
                });
                match checked {
                    Ok((summary, connected)) => {
                        for line in connected {
                            println!("  {line}");
                        }
                        println!("{}: ok ({summary})", file.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        ExitCode::from(EXIT_CONFIG)
                    }
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Graph { file, format } => match Config::load(&file, &custom) {
            Ok(config) => {
                print!("{}", graph::render(&config, format));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Replay { events } => match weir::event::log::replay(&events) {
            Ok(replay) => {
                print!("{}", display::render_replay(&replay));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("weir: cannot replay {}: {e}", events.display());
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Checkpoints { store } => list_checkpoints(&store),
        Command::Stages => {
            print!("{}", config::schema::describe(&custom));
            ExitCode::SUCCESS
        }
        Command::Test { file } => run_tests(&file, registry),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "weir", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

/// `weir checkpoints STORE`: one line per position (a file's, or a table
/// source's key), with its age.
fn list_checkpoints(store: &std::path::Path) -> ExitCode {
    let at = build::StoreAt::from_arg(store.to_owned());
    if matches!(at, build::StoreAt::File(_)) && !store.is_file() {
        eprintln!("weir: no checkpoint store at {}", store.display());
        return ExitCode::from(EXIT_CONFIG);
    }
    let listed = at.list();
    let positions = match listed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("weir: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if positions.is_empty() {
        println!("{}: no checkpoints", at.name());
        return ExitCode::SUCCESS;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let rows: Vec<[String; 5]> = positions
        .iter()
        .map(|p| {
            let (at, count) = match &p.position {
                weir_io::checkpoint::Position::File(f) => {
                    (format!("byte {}", f.offset), format!("{} lines", f.lines))
                }
                weir_io::checkpoint::Position::Key(k) => {
                    (format!("key {}", k.key), format!("{} rows", k.rows))
                }
                other => (other.to_string(), String::new()),
            };
            [
                p.source.clone(),
                p.position.what().to_owned(),
                at,
                count,
                format!("{} ago", display::age(now_ms.saturating_sub(p.committed_at_ms))),
            ]
        })
        .collect();
    let header = ["source", "file / table", "at", "lines / rows", "committed"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..5).map(width).collect();
    for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if (2..4).contains(&i) {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
    ExitCode::SUCCESS
}

fn run_tests(file: &std::path::Path, registry: &Registry<Record>) -> ExitCode {
    let custom: Vec<&str> = registry.names();
    let config = match Config::load(file, &custom) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if config.tests().is_empty() {
        eprintln!("{}: no [[test]] cases", file.display());
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weir: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let results = match runtime.block_on(test_cases::run_cases(&config, registry)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    for r in &results {
        match &r.failure {
            None => println!("ok    {}", r.name),
            Some(diff) => println!("FAIL  {}\n{diff}", r.name),
        }
    }
    println!("{} passed, {failed} failed", results.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}
