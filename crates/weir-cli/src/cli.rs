//! The command line: `weir run | check | graph | replay | stages | test |
//! completions`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// weir: streaming pipelines from a config file — sources, jq stages,
/// sinks, with backpressure, retries, dead letters and a live display.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a pipeline (exit 0: done or drained; 1: the run failed; 2: bad usage or config).
    Run(RunArgs),
    /// Check a config without running it; every problem with file:line:column.
    Check {
        /// The pipeline's config (TOML, or YAML with .yaml/.yml).
        file: PathBuf,
        /// Also open every connector as a run would and check its health (a
        /// store's table is opened, created if the sink creates it); no item is read or written.
        #[arg(long)]
        connect: bool,
    },
    /// Print the stage graph with each stage's settings.
    Graph {
        /// The pipeline's config.
        file: PathBuf,
        /// DOT (Graphviz) or Mermaid.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Re-render a past run from its event log (progress history and final report).
    Replay {
        /// An event log written by `weir run --events`.
        events: PathBuf,
    },
    /// List the positions kept in a checkpoint store (`weir run --checkpoint`).
    Checkpoints {
        /// The SQLite store, or a PostgreSQL one: postgres://user@host:port/db.
        store: PathBuf,
    },
    /// List every source, stage and sink type with its options and defaults.
    Stages,
    /// Run the config's [[test]] cases against its stages (no real sources or sinks).
    Test {
        /// The pipeline's config.
        file: PathBuf,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `weir run`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The pipeline's config (TOML, or YAML with .yaml/.yml).
    pub(crate) file: PathBuf,
    /// Write every event as a JSON line to this file (read it back with `weir replay`).
    #[arg(long, value_name = "OUT.jsonl")]
    pub(crate) events: Option<PathBuf>,
    /// Serve Prometheus metrics and /health on this address (e.g. 127.0.0.1:9090).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// Only errors and the final report.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    /// The event stream as JSON lines on stdout (instead of the display).
    #[arg(long)]
    pub(crate) json: bool,
    /// Stop the sources after N items.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,
    /// Keep the source's position (a file's offset, a table's key) in this SQLite store (or a PostgreSQL
    /// one: postgres://user@host:port/db) and resume from it (overrides
    /// `[checkpoint]`).
    #[arg(long, value_name = "STATE.db|URL")]
    pub(crate) checkpoint: Option<PathBuf>,
    /// Ignore the stored position: read the input from its start (and checkpoint anew).
    #[arg(long)]
    pub(crate) from_start: bool,
    /// Skip the items this event log (written by `--events` with `event_level = "items"`)
    /// says a past run of this config delivered; repeat it for a chain of runs.
    #[arg(long, value_name = "EVENTS.jsonl")]
    pub(crate) resume_from_events: Vec<PathBuf>,
    /// Off a terminal: time between two progress lines (e.g. 2s, 500ms). By default, 5s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) progress_every: Option<std::time::Duration>,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::config::validate::parse_duration(text)
}

/// `weir graph --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}
