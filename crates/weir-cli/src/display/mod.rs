//! The progress display of a run and the reports after it, all on stderr
//! (stdout may carry data).
//!
//! A [`Display`] shows a running pipeline in one of three [`Mode`]s:
//!
//! - [`Mode::Live`], on a terminal: one line per stage (items/s, items in
//!   flight, how full its input queue is: that is backpressure, failures),
//!   the bottleneck marked `◀ bottleneck`, and an overall line with a
//!   progress bar and ETA when the input's size is known; redrawn about ten
//!   times a second.
//! - [`Mode::Plain`], off a terminal (a log file, CI): one compact line
//!   every few seconds, e.g.
//!   `[12.0s] 1,234,567 items, 102,345/s, 12 failed, in flight 4,096, bottleneck: parse, 45% ETA 14s`.
//! - [`Mode::Quiet`]: nothing until the final report; errors still print.
//!
//! [`render_report`] writes the final report and [`render_replay`] the
//! history of a run read back from its event log (`weir replay`).
//!
//! Rates are live, not averages since the start: the overall rate is the
//! change in finished items over the last seconds of snapshots, and a
//! stage's rate is its [`StageReport::throughput`](weir::StageReport::throughput),
//! a sliding-window rate. Time is the pipeline's own clock, the
//! [`duration`](weir::Report::duration) of each snapshot.

mod format;
mod live;
mod plain;
mod rate;
mod replay;
mod report;

pub use replay::render_replay;

/// How long ago, for `weir checkpoints`: `0.4s`, `2m05s`, `1h02m03s`.
pub(crate) fn age(ms: u64) -> String {
    format::elapsed(std::time::Duration::from_millis(ms))
}
pub use report::{render_report, Summary};

use std::fmt;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::ProgressDrawTarget;

use self::live::LiveBars;
use self::rate::RateWindow;

/// How a [`Display`] shows a run.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir_cli::display::Mode;
///
/// assert_eq!(Mode::select(false, true), Mode::Live);
/// assert_eq!(Mode::select(false, false), Mode::Plain { every: Duration::from_secs(5) });
/// assert_eq!(Mode::select(true, true), Mode::Quiet);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// On a terminal: live bars, one line per stage and an overall line,
    /// redrawn about ten times a second.
    Live,
    /// Off a terminal: one plain line every `every` (of the run's time).
    Plain {
        /// The time between two lines ([`Mode::PLAIN_EVERY`] by default).
        every: Duration,
    },
    /// Nothing until the final report (errors still print).
    Quiet,
}

impl Mode {
    /// The default time between two lines of [`Mode::Plain`]: 5 seconds.
    pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

    /// The mode the CLI uses: [`Quiet`](Mode::Quiet) when asked to be
    /// quiet (`--quiet`, or `--json` whose events own the output),
    /// [`Live`](Mode::Live) when stderr is a terminal, else
    /// [`Plain`](Mode::Plain) every [`PLAIN_EVERY`](Mode::PLAIN_EVERY).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::display::Mode;
    ///
    /// assert_eq!(Mode::select(false, true), Mode::Live);
    /// assert_eq!(Mode::select(true, false), Mode::Quiet);
    /// assert!(matches!(Mode::select(false, false), Mode::Plain { .. }));
    /// ```
    pub fn select(quiet: bool, stderr_is_terminal: bool) -> Mode {
        match (quiet, stderr_is_terminal) {
            (true, _) => Mode::Quiet,
            (false, true) => Mode::Live,
            (false, false) => Mode::Plain {
                every: Mode::PLAIN_EVERY,
            },
        }
    }

    /// [`select`](Mode::select) for this process's stderr.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::display::Mode;
    ///
    /// assert_eq!(Mode::detect(true), Mode::Quiet);
    /// ```
    pub fn detect(quiet: bool) -> Mode {
        Mode::select(quiet, std::io::stderr().is_terminal())
    }
}

/// How far the input has been read, as the source knows it: for the
/// overall progress bar and the ETA.
///
/// # Examples
///
/// ```
/// use weir_cli::display::InputProgress;
///
/// let p = InputProgress { done_bytes: 512, total_bytes: Some(2048), items_read: 10 };
/// assert_eq!(p.fraction(), Some(0.25));
/// assert_eq!(InputProgress::default().fraction(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputProgress {
    /// Bytes read so far.
    pub done_bytes: u64,
    /// The input's size in bytes, when known (files, not pipes).
    pub total_bytes: Option<u64>,
    /// Items read so far.
    pub items_read: u64,
}

impl InputProgress {
    /// The fraction of the input read (0 to 1), when its size is known.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::display::InputProgress;
    ///
    /// let empty = InputProgress { done_bytes: 0, total_bytes: Some(0), items_read: 0 };
    /// assert_eq!(empty.fraction(), Some(1.0)); // nothing to read: done
    /// ```
    pub fn fraction(&self) -> Option<f64> {
        let total = self.total_bytes?;
        Some(if total == 0 {
            1.0
        } else {
            (self.done_bytes as f64 / total as f64).min(1.0)
        })
    }
}

/// The window of snapshots live rates are computed over (in
/// [`Mode::Live`]; [`Mode::Plain`] uses its interval).
const LIVE_RATE_WINDOW: Duration = Duration::from_secs(3);

/// The live progress display of a run, on stderr.
///
/// The CLI calls [`update`](Display::update) with a
/// [`Handle::metrics`](weir::Handle::metrics) snapshot about every 100
/// ms, [`note`](Display::note) for what the user should know (a signal),
/// and [`finish`](Display::finish) before it prints the final report.
///
/// # Examples
///
/// ```
/// use weir_cli::display::{Display, InputProgress, Mode};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let handle = weir::Pipeline::intake::<u32>().start();
/// let mut display = Display::new(Mode::Quiet, "numbers");
/// display.input_progress(Box::new(|| InputProgress { done_bytes: 1, total_bytes: Some(2), items_read: 1 }));
/// display.update(&handle.metrics());
/// display.note("SIGINT: draining (press Ctrl-C again to abort)"); // quiet: not shown
/// assert_eq!(display.mode(), Mode::Quiet);
/// display.finish();
/// handle.push(1).await.unwrap();
/// assert_eq!(handle.wait().await.unwrap().delivered, 1);
/// # });
/// ```
pub struct Display {
    mode: Mode,
    pipeline: String,
    input: Option<Box<dyn Fn() -> InputProgress + Send + Sync>>,
    /// Finished items over time, for the overall rate.
    finished: RateWindow,
    /// Input bytes read over time, for the ETA.
    bytes: RateWindow,
    /// Where plain lines, notes and errors go.
    out: Box<dyn Write + Send>,
    /// The bars, in [`Mode::Live`].
    live: Option<LiveBars>,
    /// When the last plain line was written, in the run's time.
    last_plain: Duration,
}

impl fmt::Debug for Display {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Display")
            .field("mode", &self.mode)
            .field("pipeline", &self.pipeline)
            .field("input_progress", &self.input.is_some())
            .field("last_plain", &self.last_plain)
            .finish_non_exhaustive()
    }
}

impl Display {
    /// A display of the run of `pipeline` in `mode`, writing to stderr.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_cli::display::{Display, Mode};
    ///
    /// let display = Display::new(Mode::Plain { every: Duration::from_secs(5) }, "orders");
    /// assert_eq!(display.mode(), Mode::Plain { every: Duration::from_secs(5) });
    /// ```
    pub fn new(mode: Mode, pipeline: &str) -> Display {
        Display::with_outputs(
            mode,
            pipeline,
            Box::new(std::io::stderr()),
            ProgressDrawTarget::stderr_with_hz(10),
        )
    }

    /// A display writing its lines to `out` and its live bars to `target`
    /// (tests use a buffer and an in-memory terminal).
    fn with_outputs(
        mode: Mode,
        pipeline: &str,
        out: Box<dyn Write + Send>,
        target: ProgressDrawTarget,
    ) -> Display {
        let span = match mode {
            Mode::Plain { every } => every.max(Duration::from_millis(1)),
            Mode::Live | Mode::Quiet => LIVE_RATE_WINDOW,
        };
        Display {
            mode,
            pipeline: pipeline.to_owned(),
            input: None,
            finished: RateWindow::new(span),
            bytes: RateWindow::new(span),
            out,
            live: (mode == Mode::Live).then(|| LiveBars::new(target)),
            last_plain: Duration::ZERO,
        }
    }

    /// The mode the display shows the run in.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::display::{Display, Mode};
    ///
    /// assert_eq!(Display::new(Mode::Quiet, "p").mode(), Mode::Quiet);
    /// ```
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Where the input is, as its source knows it (bytes read of a known
    /// total): gives the overall progress bar and the ETA. `f` is called
    /// at each [`update`](Display::update).
    ///
    /// Without it, the display shows items and rates only.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use weir_cli::display::{Display, InputProgress, Mode};
    ///
    /// let read = Arc::new(AtomicU64::new(0));
    /// let mut display = Display::new(Mode::Quiet, "p");
    /// let counter = Arc::clone(&read);
    /// display.input_progress(Box::new(move || InputProgress {
    ///     done_bytes: counter.load(Ordering::Relaxed),
    ///     total_bytes: Some(1 << 20),
    ///     items_read: 0,
    /// }));
    /// assert!(format!("{display:?}").contains("input_progress: true"));
    /// ```
    pub fn input_progress(&mut self, f: Box<dyn Fn() -> InputProgress + Send + Sync>) {
        self.input = Some(f);
    }

    /// Shows `snapshot`, a [`Handle::metrics`](weir::Handle::metrics)
    /// snapshot of the run. Call it about every 100 ms: [`Mode::Live`]
    /// redraws at most ten times a second, [`Mode::Plain`] writes a line
    /// once per its interval of the run's time (the snapshot's
    /// [`duration`](weir::Report::duration)), [`Mode::Quiet`] shows
    /// nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::display::{Display, Mode};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let report = weir::Pipeline::from_iter(0..100u32).run().await.unwrap();
    /// let mut display = Display::new(Mode::Quiet, &report.pipeline);
    /// display.update(&report);
    /// display.finish();
    /// assert_eq!(report.delivered, 100);
    /// # });
    /// ```
    pub fn update(&mut self, snapshot: &weir::Report) {
        if self.mode == Mode::Quiet {
            return;
        }
        let at = snapshot.duration;
        self.finished.record(at, snapshot.finished());
        let input = self.input.as_ref().map(|f| f());
        if let Some(input) = &input {
            self.bytes.record(at, input.done_bytes);
        }
        let frame = Frame {
            elapsed: at,
            items: snapshot.finished(),
            rate: self.finished.per_sec_or_average(),
            failed: snapshot.failed,
            dead_lettered: snapshot.dead_lettered,
            in_flight: snapshot.unfinalized,
            bottleneck: bottleneck(snapshot).map(str::to_owned),
            input: input.map(|input| InputFrame {
                eta: rate::eta(
                    input.done_bytes,
                    input.total_bytes,
                    self.bytes.per_sec_or_average(),
                ),
                progress: input,
            }),
        };
        match self.mode {
            Mode::Live => {
                if let Some(live) = &mut self.live {
                    live.draw(&self.pipeline, snapshot, &frame);
                }
            }
            Mode::Plain { every } => {
                if at >= self.last_plain + every {
                    self.last_plain = at;
                    let line = plain::line(&frame);
                    self.write_line(&line);
                }
            }
            Mode::Quiet => {}
        }
    }

    /// Shows `message` to the user: above the live bars, or as a line of
    /// its own (e.g. `SIGINT: draining (press Ctrl-C again to abort)`).
    /// Not shown in [`Mode::Quiet`]; see [`error`](Display::error).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_cli::display::{Display, Mode};
    ///
    /// let mut display = Display::new(Mode::Plain { every: Duration::from_secs(5) }, "p");
    /// display.note("SIGINT: draining (press Ctrl-C again to abort)"); // on stderr
    /// assert_eq!(display.mode(), Mode::Plain { every: Duration::from_secs(5) });
    /// ```
    pub fn note(&mut self, message: &str) {
        if self.mode != Mode::Quiet {
            self.print(message);
        }
    }

    /// Shows an error: like [`note`](Display::note), but in every mode.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::display::{Display, Mode};
    ///
    /// let mut display = Display::new(Mode::Quiet, "p");
    /// display.error("error: sink `out`: disk full"); // shown even when quiet
    /// assert_eq!(display.mode(), Mode::Quiet);
    /// ```
    pub fn error(&mut self, message: &str) {
        self.print(message);
    }

    /// Ends the display: clears the live bars (the final report takes
    /// their place).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::display::{Display, Mode};
    ///
    /// let display = Display::new(Mode::Live, "p");
    /// assert_eq!(display.mode(), Mode::Live);
    /// display.finish();
    /// ```
    pub fn finish(self) {
        // Drop clears the bars and flushes.
    }

    fn print(&mut self, message: &str) {
        match &self.live {
            Some(live) if live.is_visible() => live.println(message),
            _ => self.write_line(message),
        }
    }

    fn write_line(&mut self, line: &str) {
        // Nothing useful to do if stderr is gone.
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            live.clear();
        }
        let _ = self.out.flush();
    }
}

/// What one update shows, computed once for every mode.
#[derive(Debug, Clone)]
struct Frame {
    elapsed: Duration,
    /// Finished items (delivered, dropped, failed, dead-lettered).
    items: u64,
    /// Finished items per second, recently.
    rate: f64,
    failed: u64,
    dead_lettered: u64,
    in_flight: u64,
    bottleneck: Option<String>,
    input: Option<InputFrame>,
}

#[derive(Debug, Clone, Copy)]
struct InputFrame {
    progress: InputProgress,
    /// From the input's byte rate, when its size is known.
    eta: Option<Duration>,
}

/// The stage that limits throughput: the report's
/// [`bottleneck`](weir::Report::bottleneck), or else the stage busy for
/// the largest fraction of the time (if any was busy at all).
fn bottleneck(report: &weir::Report) -> Option<&str> {
    if let Some(name) = report.bottleneck.as_deref() {
        return Some(name);
    }
    report
        .stages
        .iter()
        .filter_map(|s| Some((s, s.utilization?.busy)))
        .filter(|(_, busy)| *busy > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(s, _)| s.name.as_str())
}

#[cfg(test)]
mod tests;
