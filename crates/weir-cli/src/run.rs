//! `weir run`: start the pipeline, show it, stop it on signals, report.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use weir::compose::Registry;
use weir::event::log::EventLog;
use weir::{Outcome, Report};
use weir_io::Record;

use crate::build::{self, Options};
use crate::cli::RunArgs;
use crate::config::Config;
use crate::display::{self, Display, InputProgress, Mode, Summary};
use crate::{EXIT_CONFIG, EXIT_FAILED};

/// How often the display and the metrics snapshot refresh.
const TICK: Duration = Duration::from_millis(100);

/// Runs `weir run`.
pub(crate) fn run(args: RunArgs, registry: &Registry<Record>) -> ExitCode {
    let custom: Vec<&str> = registry.names();
    let config = match Config::load(&args.file, &custom) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weir: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    runtime.block_on(run_async(args, config, registry))
}

async fn run_async(args: RunArgs, config: Config, registry: &Registry<Record>) -> ExitCode {
    let drain_timeout = config
        .pipeline()
        .duration("drain_timeout")
        .unwrap_or(Duration::from_secs(30));
    if let Some(events) = &args.events {
        let same = |p: &PathBuf| {
            p == events || matches!((p.canonicalize(), events.canonicalize()), (Ok(a), Ok(b)) if a == b)
        };
        if args.resume_from_events.iter().any(same) {
            eprintln!(
                "weir: --events {} would overwrite the log it resumes from: write this run's events to another file",
                events.display()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let built = match build::build(
        &config,
        registry,
        Options {
            limit: args.limit,
            test: None,
            checkpoint: checkpoint_options(&args, &config),
            resume_from: args.resume_from_events.clone(),
        },
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut events_log = match &args.events {
        Some(path) => match EventLog::create(path) {
            Ok(log) => Some((log, path.clone())),
            Err(e) => {
                eprintln!("weir: cannot write the event log {}: {e}", path.display());
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        None => None,
    };
    let pipeline = built.pipeline;
    let name = config
        .pipeline()
        .str("name")
        .or_else(|| config.path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let mode = match (args.json, Mode::detect(args.quiet), args.progress_every) {
        (true, _, _) => Mode::Quiet,
        (false, Mode::Plain { .. }, Some(every)) => Mode::Plain { every },
        (false, mode, _) => mode,
    };
    let mut screen = Display::new(mode, &name);
    if !built.inputs.is_empty() {
        let inputs = built.inputs.clone();
        screen.input_progress(Box::new(move || {
            let mut p = InputProgress::default();
            for i in &inputs {
                p.done_bytes += i.bytes_read();
                p.items_read += i.lines_read();
                p.total_bytes = Some(p.total_bytes.unwrap_or(0) + i.total_bytes());
            }
            p
        }));
    }

    // The event log and --json get every event (a log may be resumed
    // from): the run waits for their writer rather than skip events.
    let (handle, feed) = if events_log.is_some() || args.json {
        let (handle, feed) = pipeline.start_with_events();
        (handle, Some(feed))
    } else {
        (pipeline.start(), None)
    };
    let controller = handle.controller();
    let latest: Arc<Mutex<Report>> = Arc::new(Mutex::new(handle.metrics()));
    let _metrics = match args.metrics_addr {
        Some(addr) => {
            let snapshot = latest.clone();
            match weir::metrics::serve_on(addr, move || snapshot.lock().expect("snapshot lock").clone()).await
            {
                Ok(server) => {
                    screen.note(&format!("metrics on http://{}/metrics", server.local_addr()));
                    Some(server)
                }
                Err(e) => {
                    eprintln!("weir: cannot serve metrics on {addr}: {e}");
                    controller.abort();
                    let _ = handle.wait().await;
                    return ExitCode::from(EXIT_CONFIG);
                }
            }
        }
        None => None,
    };

    // Events: to the log and/or stdout as JSON lines, in a task of their own.
    let events_task = feed.map(|mut feed| {
        let json = args.json;
        let mut log = events_log.take();
        tokio::spawn(async move {
            let mut written = 0u64;
            let mut out = std::io::stdout();
            while let Some(event) = feed.next().await {
                if let Some((log, _)) = log.as_mut() {
                    if log.write(&event).is_ok() {
                        written += 1;
                    }
                }
                if json {
                    if let Ok(line) = serde_json::to_string(&event) {
                        if writeln!(out, "{line}").is_err() {
                            // stdout closed (`| head`): stop printing, keep logging.
                        }
                    }
                }
            }
            let _ = out.flush();
            let path = log.map(|(log, path)| {
                let _ = log.close();
                path
            });
            (path, written)
        })
    });

    // Signals: the first drains, the second aborts.
    let signals = signal_stream();
    tokio::pin!(signals);
    let waiting = handle_wait(handle, latest.clone());
    tokio::pin!(waiting);
    let mut ticker = tokio::time::interval(TICK);
    let mut signalled: Option<&'static str> = None;
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let result = loop {
        tokio::select! {
            r = &mut waiting => break r,
            _ = ticker.tick() => {
                let snapshot = latest.lock().expect("snapshot lock").clone();
                screen.update(&snapshot);
                if drain_deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    screen.note(&format!("drain did not finish within {drain_timeout:?}: aborting"));
                    controller.abort();
                    drain_deadline = None;
                }
            }
            Some(sig) = signals.next() => {
                if signalled.is_none() {
                    signalled = Some(sig);
                    screen.note(&format!("{sig}: draining (in-flight items finish; {sig} again aborts)"));
                    controller.drain();
                    drain_deadline = Some(tokio::time::Instant::now() + drain_timeout);
                } else {
                    screen.note(&format!("{sig} again: aborting"));
                    controller.abort();
                }
            }
        }
    };
    screen.finish();
    let (events_path, events_written) = match events_task {
        Some(t) => t.await.unwrap_or((None, 0)),
        None => (None, 0),
    };
    // Every item is finalized now: the last commit holds the end of the
    // run (or, after an abort, the first item not finalized).
    let checkpoint = built.committer.map(weir_io::checkpoint::Committer::finish);
    if let Some(Err(e)) = &checkpoint {
        eprintln!("weir: the checkpoint could not be committed: {e}");
    }
    let dead = built
        .dead_letters
        .as_ref()
        .map(|d| (d.name.clone(), d.written.get()));
    let mut summary = Summary {
        outcome: String::new(),
        error: None,
        events: events_path.map(|p: PathBuf| (p, events_written)),
        dead_letters: dead,
        outputs: built.outputs.clone(),
    };
    match result {
        Ok(report) => {
            summary.outcome = match (report.outcome, signalled) {
                (Outcome::Drained, Some(sig)) => format!("drained ({sig})"),
                (Outcome::Drained, None) => "drained".into(),
                (Outcome::Aborted, _) => "aborted".into(),
                _ => "completed".into(),
            };
            if !args.json || args.quiet {
                eprint!("{}", display::render_report(&report, &summary));
            }
            if report.outcome == Outcome::Aborted || matches!(checkpoint, Some(Err(_))) {
                ExitCode::from(EXIT_FAILED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let report = latest.lock().expect("snapshot lock").clone();
            summary.outcome = "failed".into();
            summary.error = Some(format!("{e:#}"));
            eprint!("{}", display::render_report(&report, &summary));
            eprintln!("weir: the run failed: {}", describe_error(&e));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `--checkpoint` / `[checkpoint]`, if either is given.
fn checkpoint_options(args: &RunArgs, config: &Config) -> Option<build::CheckpointOptions> {
    let table = config.checkpoint();
    let store = match (&args.checkpoint, table.str("path"), table.str("url")) {
        (Some(arg), _, _) => build::StoreAt::from_arg(arg.clone()),
        (None, Some(path), _) => build::StoreAt::File(PathBuf::from(path)),
        (None, None, Some(url)) => build::StoreAt::Server(url),
        (None, None, None) => return None,
    };
    Some(build::CheckpointOptions {
        store,
        interval: table.duration("interval").unwrap_or(Duration::from_secs(1)),
        from_start: args.from_start,
    })
}

/// Waits for the run's end, keeping the shared snapshot fresh meanwhile.
async fn handle_wait<I: Send + 'static>(
    handle: weir::Handle<I>,
    latest: Arc<Mutex<Report>>,
) -> Result<Report, weir::Error> {
    let refresh = async {
        loop {
            tokio::time::sleep(TICK).await;
            *latest.lock().expect("snapshot lock") = handle.metrics();
        }
    };
    // `wait` takes the handle: poll the refresher until the run is over,
    // then take the final report.
    let finished = async {
        while !handle.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        () = refresh => unreachable!("the refresher never ends"),
        () = finished => {}
    }
    let result = handle.wait().await;
    if let Ok(report) = &result {
        *latest.lock().expect("snapshot lock") = report.clone();
    }
    result
}

/// SIGINT and SIGTERM as a stream of names.
fn signal_stream() -> impl futures::Stream<Item = &'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let int = signal(SignalKind::interrupt()).ok();
    let term = signal(SignalKind::terminate()).ok();
    futures::stream::unfold((int, term), |(mut int, mut term)| async move {
        let sig = tokio::select! {
            Some(()) = async { match int.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => "SIGINT",
            Some(()) = async { match term.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => "SIGTERM",
        };
        Some((sig, (int, term)))
    })
}

/// Whether the run failed because stdout was closed (`weir run … | head`).
fn broken_pipe(e: &weir::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if weir_io::is_broken_pipe(s) {
            return true;
        }
        source = s.source();
    }
    e.to_string().contains("Broken pipe")
}

/// The error with its stage, item and causes.
fn describe_error(e: &weir::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
