//! [`Mode::Live`](super::Mode::Live): one line per stage and an overall
//! line, redrawn in place by indicatif.
//!
//! The lines are formatted here (plain functions, tested as such);
//! indicatif only draws them and keeps them in place.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use weir::{Report, StageReport};

use super::{format, Frame};

/// Cells of a stage's queue bar.
const QUEUE_BAR: usize = 10;
/// Cells of the overall progress bar.
const OVERALL_BAR: usize = 30;
/// How the bottleneck's line ends.
pub(super) const BOTTLENECK_MARK: &str = "◀ bottleneck";

/// The column widths of the stage lines of one report.
#[derive(Debug, Clone, Copy)]
pub(super) struct Columns {
    name: usize,
    kind: usize,
}

impl Columns {
    pub(super) fn of(report: &Report) -> Columns {
        let width = |f: fn(&StageReport) -> &str| {
            report
                .stages
                .iter()
                .map(|s| f(s).chars().count())
                .max()
                .unwrap_or(0)
        };
        Columns {
            name: width(|s| &s.name),
            kind: width(|s| &s.kind),
        }
    }
}

/// `parse  map   102,345/s  in flight  4,096  queue ██████░░░░  60%  12 failed  ◀ bottleneck`
pub(super) fn stage_line(s: &StageReport, columns: Columns, bottleneck: bool) -> String {
    let queue = match (s.queue_depth, s.queue_capacity) {
        (Some(depth), Some(capacity)) if capacity > 0 => {
            let fill = depth as f64 / capacity as f64;
            format!("{} {:>4}", format::bar(fill, QUEUE_BAR), format::percent(fill))
        }
        _ => format!("{:<width$}", "-", width = QUEUE_BAR + 5),
    };
    let mut line = format!(
        "{:<nw$}  {:<kw$}  {:>12}  in flight {:>9}  queue {queue}",
        s.name,
        s.kind,
        format::rate(s.throughput),
        format::count(s.in_flight),
        nw = columns.name,
        kw = columns.kind,
    );
    if s.failed > 0 {
        line += &format!("  {} failed", format::count(s.failed));
    }
    if s.dead_lettered > 0 {
        line += &format!("  {} dead-lettered", format::count(s.dead_lettered));
    }
    if s.retried > 0 {
        line += &format!("  {} retried", format::count(s.retried));
    }
    if let Some(state) = s.breaker.as_deref().filter(|state| *state != "closed") {
        line += &format!("  breaker {state}");
    }
    if bottleneck {
        line += "  ";
        line += BOTTLENECK_MARK;
    }
    line.truncate(line.trim_end().len());
    line
}

/// With the input's size known:
/// `orders  ██████████░░░░░░░░░░░░░░░░░░░░  33%  1.00 GiB / 3.00 GiB  1,234,567 items  102,345/s  in flight 4,096  ETA 14s  12.0s`;
/// without: `orders  1,234,567 items  102,345/s  in flight 4,096  12.0s`.
pub(super) fn overall_line(pipeline: &str, frame: &Frame) -> String {
    let mut line = pipeline.to_owned();
    if let Some(input) = &frame.input {
        let p = input.progress;
        match (p.fraction(), p.total_bytes) {
            (Some(fraction), Some(total)) => {
                line += &format!(
                    "  {} {:>4}  {} / {}",
                    format::bar(fraction, OVERALL_BAR),
                    format::percent(fraction),
                    format::bytes(p.done_bytes),
                    format::bytes(total)
                );
            }
            _ => line += &format!("  {} read", format::bytes(p.done_bytes)),
        }
    }
    line += &format!(
        "  {} items  {}",
        format::count(frame.items),
        format::rate(frame.rate)
    );
    if frame.failed > 0 {
        line += &format!("  {} failed", format::count(frame.failed));
    }
    if frame.dead_lettered > 0 {
        line += &format!("  {} dead-lettered", format::count(frame.dead_lettered));
    }
    line += &format!("  in flight {}", format::count(frame.in_flight));
    if let Some(eta) = frame.input.and_then(|input| input.eta) {
        line += &format!("  ETA {}", format::eta(eta));
    }
    line += &format!("  {}", format::elapsed(frame.elapsed));
    line
}

/// The bars: one per stage, then the overall one.
#[derive(Debug)]
pub(super) struct LiveBars {
    multi: MultiProgress,
    stages: Vec<ProgressBar>,
    overall: ProgressBar,
}

/// Each line is a message formatted here, cut to the terminal's width.
fn line_style() -> ProgressStyle {
    // A fixed, valid template: the fallback is never used.
    ProgressStyle::with_template("{wide_msg}").unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl LiveBars {
    pub(super) fn new(target: ProgressDrawTarget) -> LiveBars {
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::no_length().with_style(line_style()));
        LiveBars {
            multi,
            stages: Vec::new(),
            overall,
        }
    }

    pub(super) fn draw(&mut self, pipeline: &str, report: &Report, frame: &Frame) {
        while self.stages.len() < report.stages.len() {
            let bar = ProgressBar::no_length().with_style(line_style());
            self.stages.push(self.multi.insert_before(&self.overall, bar));
        }
        let columns = Columns::of(report);
        for (bar, s) in self.stages.iter().zip(&report.stages) {
            let is_bottleneck = frame.bottleneck.as_deref() == Some(s.name.as_str());
            bar.set_message(stage_line(s, columns, is_bottleneck));
        }
        self.overall.set_message(overall_line(pipeline, frame));
    }

    /// Whether the bars are drawn (indicatif hides them when stderr is not
    /// a terminal).
    pub(super) fn is_visible(&self) -> bool {
        !self.multi.is_hidden()
    }

    pub(super) fn println(&self, message: &str) {
        let _ = self.multi.println(message);
    }

    pub(super) fn clear(&self) {
        for bar in self.stages.iter().chain([&self.overall]) {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}
