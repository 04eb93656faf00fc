//! The final report of a run.

use std::fmt::Write as _;
use std::path::PathBuf;

use weir::Report;

use super::live::BOTTLENECK_MARK;
use super::{bottleneck, format};

/// What the CLI knows of a run beyond its [`Report`]: how it ended in its
/// words, and where things went. Rendered by [`render_report`].
///
/// # Examples
///
/// ```
/// use std::path::PathBuf;
/// use weir_cli::display::Summary;
///
/// let summary = Summary {
///     outcome: "drained (SIGINT)".to_owned(),
///     events: Some((PathBuf::from("run.jsonl"), 42)),
///     ..Summary::default()
/// };
/// assert_eq!(summary.error, None);
/// assert!(summary.outputs.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// How the run ended: `completed`, `drained (SIGINT)`, `failed`,
    /// `aborted`.
    pub outcome: String,
    /// The error that stopped the run, if one did.
    pub error: Option<String>,
    /// The event log written, and how many events it holds.
    pub events: Option<(PathBuf, u64)>,
    /// Where dead letters were written (a file, or a table and its
    /// database), and how many.
    pub dead_letters: Option<(String, u64)>,
    /// The outputs written.
    pub outputs: Vec<PathBuf>,
}

/// The final report of a run, as plain text (no colors): the outcome and
/// duration; items pulled, delivered, dropped, failed and dead-lettered,
/// and the overall rate; a table with a row per stage (in, out, dropped,
/// failed, retried, dead-lettered, P50/P95/P99 latency, busy %) with the
/// bottleneck marked; end-to-end latency; where the events, the dead
/// letters and the outputs went.
///
/// # Examples
///
/// ```
/// use weir_cli::display::{render_report, Summary};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let report = weir::Pipeline::from_iter(0..1000u32)
///     .filter(|x| x % 10 != 0)
///     .name("keep")
///     .run()
///     .await
///     .unwrap();
/// let text = render_report(&report, &Summary { outcome: "completed".to_owned(), ..Summary::default() });
/// assert!(text.contains("completed in"), "{text}");
/// assert!(text.contains("1,000 pulled, 900 delivered, 100 dropped"), "{text}");
/// assert!(text.lines().any(|l| l.trim_start().starts_with("keep") && l.contains("filter")), "{text}");
/// # });
/// ```
pub fn render_report(report: &Report, summary: &Summary) -> String {
    let mut out = String::new();
    let outcome = if summary.outcome.is_empty() {
        "finished"
    } else {
        summary.outcome.as_str()
    };
    let _ = writeln!(
        out,
        "pipeline `{}` {outcome} in {}",
        report.pipeline,
        format::elapsed(report.duration)
    );
    if let Some(error) = &summary.error {
        let _ = writeln!(out, "  error: {error}");
    }
    let _ = writeln!(
        out,
        "  items: {} pulled, {} delivered, {} dropped, {} failed, {} dead-lettered ({})",
        format::count(report.pulled),
        format::count(report.delivered),
        format::count(report.dropped),
        format::count(report.failed),
        format::count(report.dead_lettered),
        format::rate(report.items_per_sec()),
    );
    if report.unfinalized > 0 {
        let _ = writeln!(
            out,
            "  unfinished: {} items taken in were not finished",
            format::count(report.unfinalized)
        );
    }
    if !report.stages.is_empty() {
        out.push('\n');
        stage_table(&mut out, report);
    }
    if let Some(l) = &report.latency {
        let _ = writeln!(
            out,
            "  end-to-end latency: p50 {}, p95 {}, p99 {}, max {} ({} sampled)",
            format::latency(l.p50),
            format::latency(l.p95),
            format::latency(l.p99),
            format::latency(l.max),
            format::count(l.count)
        );
    }
    let mut places = Vec::new();
    if let Some((path, n)) = &summary.events {
        places.push(format!(
            "  events: {} ({} events)",
            path.display(),
            format::count(*n)
        ));
    }
    if let Some((path, n)) = &summary.dead_letters {
        places.push(format!("  dead letters: {path} ({} items)", format::count(*n)));
    }
    for path in &summary.outputs {
        places.push(format!("  output: {}", path.display()));
    }
    if !places.is_empty() {
        out.push('\n');
        for line in places {
            out += &line;
            out.push('\n');
        }
    }
    out
}

/// The stage table: a header, then a row per stage, columns aligned
/// (names left, numbers right), the bottleneck and open breakers noted at
/// the end of their rows.
fn stage_table(out: &mut String, report: &Report) {
    const HEADER: [&str; 12] = [
        "stage", "kind", "in", "out", "dropped", "failed", "retried", "dead-l.", "p50", "p95", "p99", "busy",
    ];
    let slowest = bottleneck(report);
    let mut rows = vec![HEADER.map(str::to_owned).to_vec()];
    let mut notes = vec![String::new()];
    for s in &report.stages {
        let p = |f: fn(&weir::Latency) -> std::time::Duration| {
            s.latency
                .as_ref()
                .map_or("-".to_owned(), |l| format::latency(f(l)))
        };
        rows.push(vec![
            s.name.clone(),
            s.kind.clone(),
            format::count(s.items_in),
            format::count(s.items_out),
            format::count(s.dropped),
            format::count(s.failed),
            format::count(s.retried),
            format::count(s.dead_lettered),
            p(|l| l.p50),
            p(|l| l.p95),
            p(|l| l.p99),
            s.utilization.map_or("-".to_owned(), |u| format::percent(u.busy)),
        ]);
        let mut note = String::new();
        if slowest == Some(s.name.as_str()) {
            note += "  ";
            note += BOTTLENECK_MARK;
        }
        if let Some(state) = &s.breaker {
            let _ = write!(
                note,
                "  breaker {state} ({} trips)",
                format::count(s.breaker_trips)
            );
        }
        notes.push(note);
    }
    for (line, note) in format::table(&rows, 2).into_iter().zip(notes) {
        let _ = writeln!(out, "  {line}{note}");
    }
}
