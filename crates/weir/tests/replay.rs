//! Event logs and replay.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use weir::event::{replay, EventLog, ProgressAt};
use weir::{ErrorKind, ErrorPolicy, Event, EventKind, Outcome, PipelineBuilder};

/// A fresh path in the temp dir, removed when dropped.
struct TempLog(PathBuf);

impl TempLog {
    fn new(name: &str) -> TempLog {
        TempLog(std::env::temp_dir().join(format!("weir-replay-{}-{name}.jsonl", std::process::id())))
    }
}

impl Drop for TempLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn logged_run(log: &TempLog) -> Vec<Event> {
    let mut events = PipelineBuilder::new()
        .name("replayed")
        .progress_interval(Duration::from_millis(100))
        .error_policy(ErrorPolicy::Skip)
        .from_iter((0..20u32).map(|x| if x == 7 { "x".to_owned() } else { x.to_string() }))
        .try_map(|s| s.parse::<u32>())
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            x
        })
        .events();
    let mut file = EventLog::create(&log.0).unwrap();
    let mut seen = Vec::new();
    while let Some(e) = events.next().await {
        file.write(&e).unwrap();
        seen.push(e);
    }
    file.close().unwrap();
    seen
}

#[tokio::test(start_paused = true)]
async fn a_replay_rebuilds_the_report_and_the_progress_history() {
    let log = TempLog::new("round-trip");
    let events = logged_run(&log).await;
    let r = replay(&log.0).unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert!(r.unknown.is_empty());
    assert_eq!(r.events, events);
    let EventKind::PipelineFinished { report, error } = &events.last().unwrap().kind else {
        panic!("no finished event");
    };
    assert_eq!(r.report.as_ref(), Some(&**report));
    assert_eq!(&r.error, error);
    let report = r.report.unwrap();
    assert_eq!(
        (report.outcome, report.delivered, report.failed),
        (Outcome::Completed, 19, 1)
    );
    let progress: Vec<ProgressAt> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Progress(p) => Some(ProgressAt {
                elapsed_ms: e.elapsed_ms,
                progress: p.clone(),
            }),
            _ => None,
        })
        .collect();
    // 19 items × 30 ms, a tick every 100 ms, and one at the end.
    assert_eq!(progress.len(), 6, "{progress:?}");
    assert_eq!(r.progress, progress);
    assert_eq!(r.progress.last().unwrap().progress.completed, 20);
}

#[tokio::test(start_paused = true)]
async fn write_all_logs_a_whole_events_stream() {
    let log = TempLog::new("write-all");
    let events = PipelineBuilder::new().from_iter(0..5u8).events();
    let n = EventLog::write_all(events, &log.0).await.unwrap();
    let r = replay(&log.0).unwrap();
    assert_eq!(r.events.len() as u64, n);
    assert_eq!(r.report.unwrap().delivered, 5);
    let text = std::fs::read_to_string(&log.0).unwrap();
    assert_eq!(text.lines().count() as u64, n);
    assert!(text.ends_with('\n'));
}

#[tokio::test(start_paused = true)]
async fn a_truncated_log_has_no_report_and_says_where_it_ends() {
    let log = TempLog::new("truncated");
    let events = logged_run(&log).await;
    let text = std::fs::read_to_string(&log.0).unwrap();
    // A crash mid-write: the last line is cut in half.
    let cut = text.len() - text.lines().last().unwrap().len() / 2 - 1;
    std::fs::write(&log.0, &text[..cut]).unwrap();
    let r = replay(&log.0).unwrap();
    let n = events.len();
    assert_eq!(r.events, events[..n - 1]);
    assert_eq!(r.report, None);
    assert_eq!(r.progress.len(), 6);
    let lines: Vec<usize> = r.warnings.iter().map(|w| w.line).collect();
    assert_eq!(lines, [n, n]);
    let path = log.0.display().to_string();
    assert!(
        r.warnings[0].message.starts_with(&format!("{path}:{n}:")),
        "{:?}",
        r.warnings[0]
    );
    assert!(
        r.warnings[0].message.contains("EOF while parsing"),
        "{:?}",
        r.warnings[0]
    );
    assert!(r.warnings[1].message.contains("did not finish (crashed?)"));
}

#[test]
fn unknown_types_newer_versions_and_garbage_are_warnings() {
    let log = TempLog::new("future");
    let report = sample_report();
    let head = |v: u32| format!(r#""version":{v},"pipeline":"p","run_id":"p-1","ts_ms":1,"elapsed_ms":5"#);
    let lines = [
        format!(
            r#"{{{},"type":"pipeline_started","stages":["source#0"],"estimated_total":2}}"#,
            head(1)
        ),
        format!(
            r#"{{{},"type":"stage_moved_to_mars","stage":"x","speed":9}}"#,
            head(1)
        ),
        // A newer version with an extra field: read as far as understood.
        format!(
            r#"{{{},"type":"source_exhausted","stage":"source#0","items":2,"new_field":true}}"#,
            head(2)
        ),
        String::new(),
        "not json at all".to_owned(),
        format!(r#"{{{},"type":"item_failed","stage":"s"}}"#, head(1)),
        format!(
            r#"{{{},"type":"pipeline_finished","error":null,"report":{}}}"#,
            head(1),
            serde_json::to_string(&report).unwrap()
        ),
    ];
    std::fs::write(&log.0, lines.join("\n")).unwrap();
    let r = replay(&log.0).unwrap();
    let kinds: Vec<_> = r
        .events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap()["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        ["pipeline_started", "source_exhausted", "pipeline_finished"]
    );
    assert_eq!(r.events[1].version, 2);
    assert_eq!(r.unknown.len(), 1);
    assert_eq!(r.unknown[0].line, 2);
    assert_eq!(r.unknown[0].raw["speed"], 9);
    let warnings: Vec<(usize, &str)> = r.warnings.iter().map(|w| (w.line, w.message.as_str())).collect();
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
    assert_eq!(warnings[0].0, 2);
    assert!(warnings[0].1.contains("unknown event type `stage_moved_to_mars`"));
    assert_eq!(warnings[1].0, 3);
    assert!(warnings[1]
        .1
        .contains("event version 2 is newer than this weir's 1"));
    assert_eq!(warnings[2].0, 5);
    assert!(
        warnings[2].1.contains(":5:2: not an event: expected ident"),
        "{}",
        warnings[2].1
    );
    assert_eq!(warnings[3].0, 6);
    assert!(warnings[3].1.contains("missing field"), "{}", warnings[3].1);
    assert_eq!(r.report, Some(report));
}

fn sample_report() -> weir::Report {
    // A report as a real run writes it.
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(PipelineBuilder::new().from_iter(0..2u8).run())
        .unwrap()
}

#[test]
fn an_empty_log_did_not_finish() {
    let log = TempLog::new("empty");
    std::fs::write(&log.0, "").unwrap();
    let r = replay(&log.0).unwrap();
    assert!(r.events.is_empty());
    assert_eq!(r.report, None);
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].message.contains("did not finish"));
}

#[test]
fn a_missing_log_is_an_io_error() {
    let e = replay("/nonexistent/weir/log.jsonl").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("/nonexistent/weir/log.jsonl"), "{e}");
    let e = EventLog::create("/nonexistent/weir/log.jsonl").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
}

#[test]
fn bad_bytes_never_panic_the_reader() {
    let log = TempLog::new("bytes");
    std::fs::write(&log.0, b"{\"version\":1}\n\xff\xfe\n[1,2]\n").unwrap();
    // Invalid UTF-8 is a read error of the whole file; it must not panic.
    match replay(&log.0) {
        Ok(r) => assert!(r.events.is_empty()),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Io),
    }
    std::fs::write(&log.0, "{\"version\":1}\n[1,2]\n{\"type\":5}\n").unwrap();
    let r = replay(&log.0).unwrap();
    assert!(r.events.is_empty());
    assert_eq!(r.warnings.len(), 4);
}
