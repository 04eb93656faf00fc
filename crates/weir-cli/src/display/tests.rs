use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressDrawTarget, TermLike};
use weir::{Latency, Outcome, Report, StageReport, Utilization};

use super::live::{overall_line, stage_line, Columns};
use super::*;

/// A `Write` whose bytes the test reads back.
#[derive(Debug, Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An in-memory terminal for indicatif: keeps every line it was asked to
/// write.
#[derive(Debug, Clone, Default)]
struct Terminal(Arc<Mutex<Vec<String>>>);

impl Terminal {
    fn written(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl TermLike for Terminal {
    fn width(&self) -> u16 {
        200
    }
    fn move_cursor_up(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        self.0.lock().unwrap().push(s.to_owned());
        Ok(())
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        self.0.lock().unwrap().push(s.to_owned());
        Ok(())
    }
    fn clear_line(&self) -> io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

fn stage(name: &str, kind: &str, items_in: u64, items_out: u64) -> StageReport {
    StageReport {
        name: name.to_owned(),
        kind: kind.to_owned(),
        items_in,
        items_out,
        dropped: 0,
        failed: 0,
        retried: 0,
        breaker_trips: 0,
        breaker: None,
        dead_lettered: 0,
        replaced: 0,
        in_flight: 0,
        active: None,
        queue_depth: None,
        queue_capacity: None,
        latency: None,
        throughput: 0.0,
        utilization: None,
    }
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn busy(busy: f64) -> Option<Utilization> {
    Some(Utilization {
        busy,
        backpressured: 0.0,
        idle: 1.0 - busy,
    })
}

/// source → parse (the slow one, 12 failed, 3 dead-lettered) → sink.
fn report() -> Report {
    let source = StageReport {
        utilization: busy(0.10),
        throughput: 102_345.0,
        ..stage("source", "source", 1_234_567, 1_234_567)
    };
    let parse = StageReport {
        failed: 12,
        dead_lettered: 3,
        retried: 7,
        dropped: 500,
        in_flight: 4096,
        queue_depth: Some(600),
        queue_capacity: Some(1000),
        throughput: 101_000.4,
        latency: Some(Latency {
            count: 1000,
            p50: Duration::from_micros(12_340),
            p95: ms(45),
            p99: Duration::from_micros(98_700),
            max: ms(250),
        }),
        utilization: busy(0.87),
        ..stage("parse", "then", 1_234_567, 1_230_000)
    };
    let sink = StageReport {
        utilization: busy(0.30),
        queue_depth: Some(0),
        queue_capacity: Some(1000),
        ..stage("out", "sink", 1_230_000, 1_229_985)
    };
    Report {
        pipeline: "orders".to_owned(),
        outcome: Outcome::Completed,
        duration: ms(12_300),
        pulled: 1_234_567,
        delivered: 1_229_985,
        dropped: 500,
        failed: 12,
        dead_lettered: 3,
        unfinalized: 0,
        checkpoints: 0,
        stages: vec![source, parse, sink],
        bottleneck: Some("parse".to_owned()),
        latency: None,
    }
}

/// A running snapshot at `at` with `finished` items delivered.
fn snapshot(at: Duration, finished: u64) -> Report {
    Report {
        outcome: Outcome::Running,
        duration: at,
        pulled: finished + 4096,
        delivered: finished,
        dropped: 0,
        failed: 0,
        dead_lettered: 0,
        unfinalized: 4096,
        checkpoints: 0,
        ..report()
    }
}

fn plain(every: Duration) -> (Display, Buffer) {
    let buffer = Buffer::default();
    let display = Display::with_outputs(
        Mode::Plain { every },
        "orders",
        Box::new(buffer.clone()),
        ProgressDrawTarget::hidden(),
    );
    (display, buffer)
}

#[test]
fn report_has_a_row_per_stage_with_counts_percentiles_and_the_bottleneck_marked() {
    let summary = Summary {
        outcome: "completed".to_owned(),
        error: None,
        events: Some((PathBuf::from("/tmp/run.jsonl"), 1234)),
        dead_letters: Some(("dead.jsonl".to_owned(), 3)),
        outputs: vec![PathBuf::from("out.jsonl"), PathBuf::from("out2.jsonl")],
    };
    let text = render_report(&report(), &summary);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "pipeline `orders` completed in 12.3s", "{text}");
    assert!(
        text.contains(
            "1,234,567 pulled, 1,229,985 delivered, 500 dropped, 12 failed, 3 dead-lettered (100,041/s)"
        ),
        "{text}"
    );
    let row = |name: &str| {
        let found = lines.iter().find(|l| l.split_whitespace().next() == Some(name));
        found
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let header = row("stage");
    assert_eq!(
        header,
        [
            "stage", "kind", "in", "out", "dropped", "failed", "retried", "dead-l.", "p50", "p95", "p99",
            "busy"
        ]
    );
    assert_eq!(
        row("parse"),
        [
            "parse",
            "then",
            "1,234,567",
            "1,230,000",
            "500",
            "12",
            "7",
            "3",
            "12.3ms",
            "45.0ms",
            "98.7ms",
            "87%",
            "◀",
            "bottleneck"
        ]
    );
    assert_eq!(
        row("source")[2..],
        ["1,234,567", "1,234,567", "0", "0", "0", "0", "-", "-", "-", "10%"]
    );
    assert_eq!(row("out").last(), Some(&"30%"));
    assert_eq!(text.matches("bottleneck").count(), 1, "{text}");
    // Columns line up: the busy column ends where its header does.
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with("stage"))
        .unwrap();
    let busy_end = lines[at].chars().count();
    for l in &lines[at + 1..at + 4] {
        assert_eq!(l.chars().nth(busy_end - 1), Some('%'), "{text}");
    }
    assert!(text.contains("events: /tmp/run.jsonl (1,234 events)"), "{text}");
    assert!(text.contains("dead letters: dead.jsonl (3 items)"), "{text}");
    assert!(text.contains("output: out.jsonl\n  output: out2.jsonl"), "{text}");
    assert!(!text.contains("error:"), "{text}");
}

#[test]
fn report_shows_the_error_unfinished_items_and_open_breakers() {
    let mut r = report();
    r.unfinalized = 17;
    r.stages[2].breaker = Some("open".to_owned());
    r.stages[2].breaker_trips = 2;
    let summary = Summary {
        outcome: "aborted".to_owned(),
        error: Some("sink `out`: disk full".to_owned()),
        ..Summary::default()
    };
    let text = render_report(&r, &summary);
    assert!(
        text.starts_with("pipeline `orders` aborted in 12.3s\n  error: sink `out`: disk full\n"),
        "{text}"
    );
    assert!(text.contains("unfinished: 17 items"), "{text}");
    assert!(text.contains("30%  breaker open (2 trips)"), "{text}");
    assert!(!text.contains("events:") && !text.contains("output:"), "{text}");
}

#[test]
fn bottleneck_falls_back_to_the_busiest_stage() {
    let mut r = report();
    r.bottleneck = None;
    assert_eq!(bottleneck(&r), Some("parse"));
    for s in &mut r.stages {
        s.utilization = None;
    }
    assert_eq!(bottleneck(&r), None);
    let text = render_report(&r, &Summary::default());
    assert!(!text.contains("bottleneck"), "{text}");
    assert!(text.starts_with("pipeline `orders` finished in"), "{text}");
}

#[test]
fn plain_mode_writes_one_line_per_interval_of_the_runs_time() {
    let (mut display, out) = plain(Duration::from_secs(5));
    // Snapshots every 100 ms for 12 s, at 1,000 items/s.
    for tick in 1..=120 {
        display.update(&snapshot(ms(tick * 100), tick * 100));
    }
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(
        lines[0],
        "[5.0s] 5,000 items, 1,000/s, 0 failed, in flight 4,096, bottleneck: parse"
    );
    assert!(lines[1].starts_with("[10.0s] 10,000 items, 1,000/s,"), "{text}");
    // Another 100 ms: not yet.
    display.update(&snapshot(ms(12_100), 12_100));
    assert_eq!(out.text().lines().count(), 2);
    display.update(&snapshot(ms(15_000), 15_000));
    assert_eq!(out.text().lines().count(), 3);
}

#[test]
fn plain_rate_is_the_recent_rate_not_the_average_since_start() {
    let (mut display, out) = plain(Duration::from_secs(5));
    // 1,000/s for 10 s, then 100/s.
    for s in 1..=10 {
        display.update(&snapshot(Duration::from_secs(s), s * 1000));
    }
    for s in 11..=15 {
        display.update(&snapshot(Duration::from_secs(s), 10_000 + (s - 10) * 100));
    }
    let text = out.text();
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("[15.0s] 10,500 items, 100/s,"), "{text}");
}

#[test]
fn plain_line_shows_failures_percentage_and_eta_from_the_input() {
    let (mut display, out) = plain(Duration::from_secs(5));
    let read = Arc::new(Mutex::new(0u64));
    let bytes = Arc::clone(&read);
    display.input_progress(Box::new(move || InputProgress {
        done_bytes: *bytes.lock().unwrap(),
        total_bytes: Some(1000),
        items_read: 0,
    }));
    // 90 bytes/s; 500 delivered + 12 failed + 3 dead-lettered finished.
    for s in [1, 5] {
        *read.lock().unwrap() = s * 90;
        let mut r = snapshot(Duration::from_secs(s), s * 100);
        r.failed = 12;
        r.dead_lettered = 3;
        display.update(&r);
    }
    let text = out.text();
    // 450 of 1000 bytes read at 90 bytes/s: 550 / 90 = 6.1 s, shown as 7s.
    assert_eq!(
        text,
        "[5.0s] 515 items, 100/s, 12 failed, 3 dead-lettered, in flight 4,096, bottleneck: parse, 45% ETA 7s\n"
    );
}

#[test]
fn quiet_mode_shows_only_errors() {
    let buffer = Buffer::default();
    let mut display = Display::with_outputs(
        Mode::Quiet,
        "orders",
        Box::new(buffer.clone()),
        ProgressDrawTarget::hidden(),
    );
    for s in 1..=20 {
        display.update(&snapshot(Duration::from_secs(s), s));
    }
    display.note("SIGINT: draining");
    assert_eq!(buffer.text(), "");
    display.error("error: disk full");
    display.finish();
    assert_eq!(buffer.text(), "error: disk full\n");
}

#[test]
fn plain_mode_prints_notes_as_lines_of_their_own() {
    let (mut display, out) = plain(Duration::from_secs(5));
    display.note("SIGINT: draining (press Ctrl-C again to abort)");
    assert_eq!(out.text(), "SIGINT: draining (press Ctrl-C again to abort)\n");
}

#[test]
fn stage_line_shows_rate_in_flight_queue_fill_failures_and_the_mark() {
    let r = report();
    let columns = Columns::of(&r);
    let parse = stage_line(&r.stages[1], columns, true);
    assert_eq!(
        parse,
        "parse   then       101,000/s  in flight     4,096  queue ██████░░░░  60%  12 failed  3 dead-lettered  7 retried  ◀ bottleneck"
    );
    let source = stage_line(&r.stages[0], columns, false);
    assert_eq!(
        source,
        "source  source     102,345/s  in flight         0  queue -"
    );
    let mut open = r.stages[2].clone();
    open.breaker = Some("half_open".to_owned());
    let out = stage_line(&open, columns, false);
    assert!(out.starts_with("out     sink"), "{out}");
    assert!(out.ends_with("queue ░░░░░░░░░░   0%  breaker half_open"), "{out}");
}

#[test]
fn overall_line_has_a_bar_and_eta_with_a_known_total_else_items_and_rate() {
    let mut frame = Frame {
        elapsed: ms(12_000),
        items: 1_234_567,
        rate: 102_345.0,
        failed: 12,
        dead_lettered: 0,
        in_flight: 4096,
        bottleneck: Some("parse".to_owned()),
        input: None,
    };
    assert_eq!(
        overall_line("orders", &frame),
        "orders  1,234,567 items  102,345/s  12 failed  in flight 4,096  12.0s"
    );
    frame.input = Some(InputFrame {
        progress: InputProgress {
            done_bytes: 1 << 30,
            total_bytes: Some(3 << 30),
            items_read: 1_238_663,
        },
        eta: Some(ms(14_000)),
    });
    let line = overall_line("orders", &frame);
    assert!(
        line.starts_with("orders  ██████████░░░░░░░░░░░░░░░░░░░░  33%  1.00 GiB / 3.00 GiB  1,234,567 items"),
        "{line}"
    );
    assert!(line.ends_with("ETA 14s  12.0s"), "{line}");
    frame.input = Some(InputFrame {
        progress: InputProgress {
            done_bytes: 2048,
            total_bytes: None,
            items_read: 10,
        },
        eta: None,
    });
    let line = overall_line("orders", &frame);
    assert!(
        line.starts_with("orders  2.00 KiB read  1,234,567 items"),
        "{line}"
    );
    assert!(!line.contains("ETA"), "{line}");
}

#[test]
fn live_mode_draws_stage_lines_and_the_overall_line_on_a_terminal() {
    let terminal = Terminal::default();
    let buffer = Buffer::default();
    let mut display = Display::with_outputs(
        Mode::Live,
        "orders",
        Box::new(buffer.clone()),
        ProgressDrawTarget::term_like(Box::new(terminal.clone())),
    );
    display.update(&snapshot(ms(1000), 1000));
    display.note("SIGINT: draining");
    let drawn = terminal.written().concat();
    assert!(drawn.contains("parse   then       101,000/s"), "{drawn}");
    assert!(drawn.contains("◀ bottleneck"), "{drawn}");
    assert!(drawn.contains("orders  1,000 items"), "{drawn}");
    assert!(drawn.contains("SIGINT: draining"), "{drawn}");
    assert_eq!(
        buffer.text(),
        "",
        "a visible live display prints notes above its bars"
    );
    display.finish();
}

#[test]
fn live_mode_into_a_hidden_target_renders_without_panicking_and_keeps_notes() {
    let buffer = Buffer::default();
    let mut display = Display::with_outputs(
        Mode::Live,
        "orders",
        Box::new(buffer.clone()),
        ProgressDrawTarget::hidden(),
    );
    let mut r = snapshot(ms(100), 10);
    display.update(&r);
    // Stages may appear, queues may be empty or zero-sized, counts may be 0.
    r.stages.push(StageReport {
        queue_capacity: Some(0),
        queue_depth: Some(0),
        ..stage("late", "map", 0, 0)
    });
    r.duration = ms(200);
    display.update(&r);
    display.update(&Report {
        stages: Vec::new(),
        ..snapshot(ms(300), 0)
    });
    display.note("SIGINT: draining");
    display.finish();
    assert_eq!(buffer.text(), "SIGINT: draining\n");
}

#[tokio::test]
async fn replay_renders_the_progress_history_warnings_and_the_final_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.jsonl");
    let events = weir::PipelineBuilder::new()
        .name("numbers")
        .error_policy(weir::ErrorPolicy::Skip)
        .from_iter(["1", "x", "3"])
        .try_map(|s| s.parse::<u32>())
        .name("parse")
        .events();
    weir::event::EventLog::write_all(events, &path).await.unwrap();
    let mut log = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    writeln!(
        log,
        r#"{{"version":1,"pipeline":"numbers","run_id":"r","ts_ms":1,"elapsed_ms":5,"type":"from_the_future"}}"#
    )
    .unwrap();
    writeln!(log, "not json").unwrap();
    drop(log);

    let replay = weir::event::replay(&path).unwrap();
    assert!(!replay.progress.is_empty());
    let text = render_replay(&replay);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("replay of pipeline `numbers` (run numbers-"),
        "{text}"
    );
    assert!(
        lines[0].ends_with(&format!("{} progress updates", replay.progress.len())),
        "{text}"
    );
    let header = lines
        .iter()
        .position(|l| l.split_whitespace().next() == Some("elapsed"))
        .unwrap();
    assert_eq!(
        lines[header].split_whitespace().collect::<Vec<_>>(),
        ["elapsed", "completed", "failed", "in", "flight", "rate", "ETA"]
    );
    // The last progress event: 3 completed, 1 failed, nothing in flight.
    let last = lines[header + replay.progress.len()]
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(last[1..4], ["3", "1", "0"], "{text}");
    let unknown = lines
        .iter()
        .position(|l| l.starts_with("events of unknown types"))
        .unwrap();
    let n = replay.unknown[0].line;
    assert_eq!(lines[unknown + 1], format!("  line {n}: `from_the_future`"));
    assert!(
        text.contains(&format!(":{}:", n + 1)),
        "the malformed line's warning: {text}"
    );
    assert!(text.contains("\npipeline `numbers` completed in"), "{text}");
    assert!(
        text.contains("3 pulled, 2 delivered, 0 dropped, 1 failed"),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.split_whitespace().next() == Some("parse")),
        "{text}"
    );
}

#[test]
fn replay_of_a_cut_log_says_the_run_did_not_finish_and_has_no_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"version":1,"pipeline":"p","run_id":"","ts_ms":1,"elapsed_ms":0,"type":"pipeline_started","stages":["source#0"],"estimated_total":100}"#,
            "\n",
            r#"{"version":1,"pipeline":"p","run_id":"","ts_ms":2,"elapsed_ms":1000,"type":"progress","completed":40,"failed":0,"in_flight":5,"estimated_total":100,"rate":40.0,"eta_seconds":1.5}"#,
            "\n",
        ),
    )
    .unwrap();
    let text = render_replay(&weir::event::replay(&path).unwrap());
    assert!(
        text.starts_with("replay of pipeline `p`: 2 events, 1 progress updates\n"),
        "{text}"
    );
    assert!(
        text.contains("  1.0s         40       0          5  40/s   2s\n"),
        "{text}"
    );
    assert!(text.contains("did not finish"), "{text}");
    assert!(!text.contains("pulled"), "{text}");
}
