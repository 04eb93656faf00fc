//! Event logs: a run's events as JSON lines in a file ([`EventLog`]), and
//! reading one back for a post-mortem ([`replay`]).
//!
//! A log is one [`Event`] per line, as its JSON form. [`replay`] reads it
//! leniently: a line it cannot use (malformed, cut short by a crash, of an
//! event type or a schema version newer than this weir) becomes a
//! [`ReplayWarning`] with its line number, and the rest is still read.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use super::{Event, EventKind, Progress, EVENT_VERSION};
use crate::error::{Error, ErrorKind};
use crate::metrics::Report;

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("{what} `{}`: {e}", path.display()))
}

/// Writes events to a file as JSON lines, through a buffer.
///
/// # Examples
///
/// ```
/// use weir::event::{replay, EventLog};
/// use weir::PipelineBuilder;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let path = std::env::temp_dir().join(format!("weir-doc-log-{}.jsonl", std::process::id()));
/// let events = PipelineBuilder::new().name("logged").from_iter(0..10u32).events();
/// let written = EventLog::write_all(events, &path).await.unwrap();
///
/// let replay = replay(&path).unwrap();
/// assert_eq!(replay.events.len() as u64, written);
/// assert_eq!(replay.report.unwrap().delivered, 10);
/// assert!(replay.warnings.is_empty());
/// # std::fs::remove_file(&path).unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
}

impl EventLog {
    /// Creates (or truncates) the file at `path`.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::Io`] error if the file cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{event::EventLog, ErrorKind};
    ///
    /// let path = std::env::temp_dir().join(format!("weir-doc-create-{}.jsonl", std::process::id()));
    /// let log = EventLog::create(&path).unwrap();
    /// assert_eq!(log.close().unwrap(), 0);
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    /// # std::fs::remove_file(&path).unwrap();
    ///
    /// let err = EventLog::create("/no/such/dir/run.jsonl").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Io);
    /// ```
    pub fn create(path: impl AsRef<Path>) -> Result<EventLog, Error> {
        let path = path.as_ref().to_owned();
        let file = File::create(&path).map_err(|e| io_error(&path, "cannot create the event log", e))?;
        Ok(EventLog {
            path,
            out: BufWriter::new(file),
            written: 0,
        })
    }

    /// Writes `event` as one line.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::Io`] error if the write fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::event::EventLog;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let path = std::env::temp_dir().join(format!("weir-doc-write-{}.jsonl", std::process::id()));
    /// let mut log = EventLog::create(&path).unwrap();
    /// let mut events = weir::Pipeline::from_iter([1u8]).events();
    /// while let Some(event) = events.next().await {
    ///     log.write(&event).unwrap();
    /// }
    /// assert_eq!(log.close().unwrap(), 4); // started, exhausted, progress, finished
    /// let text = std::fs::read_to_string(&path).unwrap();
    /// assert!(text.lines().next().unwrap().contains(r#""type":"pipeline_started""#));
    /// # std::fs::remove_file(&path).unwrap();
    /// # });
    /// ```
    pub fn write(&mut self, event: &Event) -> Result<(), Error> {
        let written = serde_json::to_writer(&mut self.out, event)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        written.map_err(|e| io_error(&self.path, "cannot write to the event log", e))?;
        self.written += 1;
        Ok(())
    }

    /// Flushes the buffer to the file.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::Io`] error if the write fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::event::EventLog;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let path = std::env::temp_dir().join(format!("weir-doc-flush-{}.jsonl", std::process::id()));
    /// let mut log = EventLog::create(&path).unwrap();
    /// let mut events = weir::Pipeline::from_iter([1u8]).events();
    /// let started = events.next().await.unwrap();
    /// log.write(&started).unwrap();
    /// log.flush().unwrap(); // on disk now, for a `tail -f`
    /// let text = std::fs::read_to_string(&path).unwrap();
    /// assert_eq!(text.lines().count(), 1);
    /// assert!(text.contains(r#""type":"pipeline_started""#));
    /// # std::fs::remove_file(&path).unwrap();
    /// # });
    /// ```
    pub fn flush(&mut self) -> Result<(), Error> {
        self.out
            .flush()
            .map_err(|e| io_error(&self.path, "cannot write to the event log", e))
    }

    /// Flushes and closes the log; returns how many events it holds.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::Io`] error if the write fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::event::EventLog;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let path = std::env::temp_dir().join(format!("weir-doc-close-{}.jsonl", std::process::id()));
    /// let mut log = EventLog::create(&path).unwrap();
    /// let mut events = weir::Pipeline::from_iter(0..3u8).events();
    /// while let Some(event) = events.next().await {
    ///     log.write(&event).unwrap();
    /// }
    /// let written = log.close().unwrap();
    /// assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count() as u64, written);
    /// # std::fs::remove_file(&path).unwrap();
    /// # });
    /// ```
    pub fn close(mut self) -> Result<u64, Error> {
        self.flush()?;
        Ok(self.written)
    }

    /// Writes every event of `events` (a [`Pipeline::events`] stream, say)
    /// to a new log at `path`, flushing after the
    /// [`PipelineFinished`](EventKind::PipelineFinished) event and at the
    /// end; returns how many were written. The log is the pipeline's
    /// lossless consumer: a slow disk slows the pipeline, it loses nothing.
    ///
    /// [`Pipeline::events`]: crate::Pipeline::events
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::Io`] error if the file cannot be created or
    /// written; the stream is dropped then (which aborts a pipeline's run).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::event::{replay, EventLog};
    /// use weir::{ErrorKind, ErrorPolicy, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let path = std::env::temp_dir().join(format!("weir-doc-write-all-{}.jsonl", std::process::id()));
    /// let events = PipelineBuilder::new()
    ///     .error_policy(ErrorPolicy::Skip)
    ///     .from_iter(["1", "x", "3"])
    ///     .try_map(|s| s.parse::<u8>())
    ///     .events();
    /// let written = EventLog::write_all(events, &path).await.unwrap();
    /// let replay = replay(&path).unwrap();
    /// assert_eq!(replay.events.len() as u64, written);
    /// assert_eq!(replay.report.unwrap().failed, 1);
    /// # std::fs::remove_file(&path).unwrap();
    ///
    /// let events = weir::Pipeline::from_iter(0..3u8).events();
    /// let err = EventLog::write_all(events, "/no/such/dir/run.jsonl").await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Io);
    /// # });
    /// ```
    pub async fn write_all(events: impl Stream<Item = Event>, path: impl AsRef<Path>) -> Result<u64, Error> {
        let mut log = EventLog::create(path)?;
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            log.write(&event)?;
            if matches!(event.kind, EventKind::PipelineFinished { .. }) {
                log.flush()?;
            }
        }
        log.close()
    }
}

/// A [`Progress`] event of a replayed run, with when it was sent.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir::event::{replay, EventLog};
/// use weir::PipelineBuilder;
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let path = std::env::temp_dir().join(format!("weir-doc-progress-at-{}.jsonl", std::process::id()));
/// let events = PipelineBuilder::new()
///     .progress_interval(Duration::from_millis(100))
///     .from_iter(0..5u64)
///     .then(|x| async move {
///         tokio::time::sleep(Duration::from_millis(100)).await;
///         x
///     })
///     .events();
/// EventLog::write_all(events, &path).await.unwrap();
/// let history = replay(&path).unwrap().progress;
/// assert!(!history.is_empty());
/// assert!(history.windows(2).all(|w| w[0].elapsed_ms <= w[1].elapsed_ms));
/// assert!(history.iter().all(|p| p.progress.estimated_total == Some(5)));
/// # std::fs::remove_file(&path).unwrap();
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressAt {
    /// Milliseconds since the run started.
    pub elapsed_ms: u64,
    /// The progress then.
    pub progress: Progress,
}

/// A line [`replay`] could not use, or something missing from the log.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("weir-doc-warning-{}.jsonl", std::process::id()));
/// std::fs::write(&path, "not json\n").unwrap();
/// let warnings = weir::event::replay(&path).unwrap().warnings;
/// assert_eq!(warnings[0].line, 1);
/// assert!(warnings[0].message.contains(":1:"), "{}", warnings[0].message); // file:line:column
/// # std::fs::remove_file(&path).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayWarning {
    /// The line (from 1) it is about.
    pub line: usize,
    /// What is wrong, starting with `file:line:column` where that helps.
    pub message: String,
}

/// An event of a type this weir does not know (written by a newer one),
/// kept as it was.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("weir-doc-unknown-{}.jsonl", std::process::id()));
/// std::fs::write(
///     &path,
///     r#"{"version":1,"pipeline":"p","run_id":"p-1","ts_ms":1,"elapsed_ms":0,"type":"from_the_future"}"#,
/// )
/// .unwrap();
/// let replay = weir::event::replay(&path).unwrap();
/// assert_eq!(replay.unknown[0].line, 1);
/// assert_eq!(replay.unknown[0].raw["type"], "from_the_future");
/// # std::fs::remove_file(&path).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnknownEvent {
    /// The line (from 1).
    pub line: usize,
    /// The event's JSON.
    pub raw: serde_json::Value,
}

/// What [`replay`] rebuilt from an event log.
///
/// # Examples
///
/// ```
/// use weir::event::{replay, EventLog};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let path = std::env::temp_dir().join(format!("weir-doc-replay-struct-{}.jsonl", std::process::id()));
/// let events = weir::Pipeline::from_iter(["1", "x"]).try_map(|s| s.parse::<u8>()).events();
/// EventLog::write_all(events, &path).await.unwrap();
///
/// // The post-mortem:
/// let r = replay(&path).unwrap();
/// assert_eq!(r.report.unwrap().failed, 1);
/// assert!(r.error.unwrap().contains("invalid digit"));
/// assert!(r.warnings.is_empty() && r.unknown.is_empty());
/// # std::fs::remove_file(&path).unwrap();
/// # });
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Replay {
    /// Every event that could be read, in order.
    pub events: Vec<Event>,
    /// The progress history: every [`Progress`](EventKind::Progress) event.
    pub progress: Vec<ProgressAt>,
    /// The final report, from the
    /// [`PipelineFinished`](EventKind::PipelineFinished) event; `None` if
    /// the run did not finish (or the log was cut short).
    pub report: Option<Report>,
    /// The error that stopped the run, if one did.
    pub error: Option<String>,
    /// Events of types this weir does not know.
    pub unknown: Vec<UnknownEvent>,
    /// What could not be read, and what is missing.
    pub warnings: Vec<ReplayWarning>,
}

/// Reads an event log written by [`EventLog`] and rebuilds the run's
/// progress history and final report from it (a post-mortem).
///
/// Lenient: malformed lines, events of unknown types and events of a newer
/// schema version (read as far as this weir understands them) are
/// reported in [`Replay::warnings`] with their line numbers, and a log
/// without a [`PipelineFinished`](EventKind::PipelineFinished) event
/// gives no report and a warning that the run did not finish.
///
/// # Errors
///
/// An [`ErrorKind::Io`] error if the file cannot be opened or read.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("weir-doc-replay-{}.jsonl", std::process::id()));
/// std::fs::write(&path, concat!(
///     r#"{"version":1,"pipeline":"p","run_id":"p-1","ts_ms":1,"elapsed_ms":0,"type":"pipeline_started","stages":["source#0"],"estimated_total":null}"#, "\n",
///     r#"{"version":1,"pipeline":"p","run_id":"p-1","ts_ms":2,"elapsed_ms":1000,"type":"progr"#, "\n",
/// )).unwrap();
/// let replay = weir::event::replay(&path).unwrap();
/// assert_eq!(replay.events.len(), 1);
/// assert_eq!(replay.report, None);
/// let lines: Vec<usize> = replay.warnings.iter().map(|w| w.line).collect();
/// assert_eq!(lines, [2, 2]); // the cut line; no finished event after it
/// assert!(replay.warnings[1].message.contains("did not finish"));
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn replay(path: impl AsRef<Path>) -> Result<Replay, Error> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| io_error(path, "cannot open the event log", e))?;
    let mut replay = Replay {
        events: Vec::new(),
        progress: Vec::new(),
        report: None,
        error: None,
        unknown: Vec::new(),
        warnings: Vec::new(),
    };
    let mut last = 0;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        last = n;
        let line = line.map_err(|e| io_error(path, "cannot read the event log", e))?;
        if line.trim().is_empty() {
            continue;
        }
        read_line(&mut replay, path, n, &line);
    }
    if replay.report.is_none() {
        replay.warnings.push(ReplayWarning {
            line: last,
            message: format!(
                "{}: no pipeline_finished event: the run did not finish (crashed?) or the log was cut short",
                path.display()
            ),
        });
    }
    Ok(replay)
}

fn read_line(replay: &mut Replay, path: &Path, n: usize, line: &str) {
    let mut warn = |message: String| replay.warnings.push(ReplayWarning { line: n, message });
    let raw: serde_json::Value = match serde_json::from_str(line) {
        Ok(raw) => raw,
        Err(e) => {
            warn(format!(
                "{}:{n}:{}: not an event: {e}",
                path.display(),
                e.column()
            ));
            return;
        }
    };
    let version = raw.get("version").and_then(serde_json::Value::as_u64);
    if let Some(v) = version.filter(|v| *v > u64::from(EVENT_VERSION)) {
        warn(format!(
            "{}:{n}: event version {v} is newer than this weir's {EVENT_VERSION}: read as far as understood",
            path.display()
        ));
    }
    let event = match Event::deserialize(&raw) {
        Ok(event) => event,
        Err(e) => {
            let kind = raw.get("type").and_then(serde_json::Value::as_str);
            match kind {
                // serde's own words for a tag it has no variant for.
                Some(kind) if e.to_string().starts_with("unknown variant") => {
                    warn(format!(
                        "{}:{n}: unknown event type `{kind}` (from a newer weir?): kept in `unknown`",
                        path.display()
                    ));
                    replay.unknown.push(UnknownEvent { line: n, raw });
                }
                _ => warn(format!("{}:{n}: not an event: {e}", path.display())),
            }
            return;
        }
    };
    match &event.kind {
        EventKind::Progress(p) => replay.progress.push(ProgressAt {
            elapsed_ms: event.elapsed_ms,
            progress: p.clone(),
        }),
        EventKind::PipelineFinished { report, error } => {
            if replay.report.is_some() {
                warn(format!(
                    "{}:{n}: a second pipeline_finished event (several runs in one log?): the last one wins",
                    path.display()
                ));
            }
            replay.report = Some((**report).clone());
            replay.error.clone_from(error);
        }
        _ => {}
    }
    replay.events.push(event);
}
