//! `weir replay EVENTS.jsonl`: a run's history, read back from its event
//! log.

use std::fmt::Write as _;
use std::time::Duration;

use weir::event::Replay;

use super::format;
use super::report::{render_report, Summary};

/// A run's history from its event log, as plain text: which run it was,
/// one line per progress event (elapsed, completed, failed, in flight,
/// rate, ETA), what could not be read (warnings, events of unknown types),
/// and the final report ([`render_report`]) when the log holds one.
///
/// # Examples
///
/// ```
/// use weir::event::{replay, EventLog};
/// use weir_cli::display::render_replay;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("run.jsonl");
/// EventLog::write_all(weir::Pipeline::from_iter(0..10u32).events(), &path).await.unwrap();
/// let text = render_replay(&replay(&path).unwrap());
/// assert!(text.contains("elapsed"), "{text}"); // the progress table's header
/// assert!(text.contains("10 pulled, 10 delivered"), "{text}");
/// # });
/// ```
pub fn render_replay(replay: &Replay) -> String {
    let mut out = String::new();
    let first = replay.events.first();
    let pipeline = first
        .map(|e| e.pipeline.as_str())
        .or(replay.report.as_ref().map(|r| r.pipeline.as_str()))
        .unwrap_or("?");
    let _ = write!(out, "replay of pipeline `{pipeline}`");
    if let Some(run) = first.map(|e| e.run_id.as_str()).filter(|id| !id.is_empty()) {
        let _ = write!(out, " (run {run})");
    }
    let _ = writeln!(
        out,
        ": {} events, {} progress updates",
        format::count(replay.events.len() as u64),
        format::count(replay.progress.len() as u64)
    );
    if !replay.progress.is_empty() {
        out.push('\n');
        let header = ["elapsed", "completed", "failed", "in flight", "rate", "ETA"];
        let mut rows = vec![header.map(str::to_owned).to_vec()];
        for at in &replay.progress {
            let p = &at.progress;
            rows.push(vec![
                format::elapsed(Duration::from_millis(at.elapsed_ms)),
                format::count(p.completed),
                format::count(p.failed),
                format::count(p.in_flight),
                format::rate(p.rate),
                p.eta_seconds
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .map_or("-".to_owned(), format::eta),
            ]);
        }
        for line in format::table(&rows, 0) {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !replay.unknown.is_empty() {
        out.push('\n');
        let _ = writeln!(out, "events of unknown types (from a newer weir?):");
        for u in &replay.unknown {
            let kind = u.raw.get("type").and_then(|t| t.as_str()).unwrap_or("?");
            let _ = writeln!(out, "  line {}: `{kind}`", u.line);
        }
    }
    if !replay.warnings.is_empty() {
        out.push('\n');
        let _ = writeln!(out, "warnings:");
        for w in &replay.warnings {
            let _ = writeln!(out, "  {}", w.message);
        }
    }
    if let Some(report) = &replay.report {
        let outcome = serde_json::to_value(report.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", report.outcome).to_lowercase());
        let summary = Summary {
            outcome,
            error: replay.error.clone(),
            ..Summary::default()
        };
        out.push('\n');
        out += &render_report(report, &summary);
    }
    out
}
