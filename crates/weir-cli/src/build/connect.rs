//! `weir check --connect`: every connector opened as a run would open it,
//! and its health checked, without reading or writing any item.

use std::path::{Path, PathBuf};

use super::sinks::{AnySink, DeadSink};
use super::sources::{self, TableSource};
use super::{make_real_sink, open_source, StoreAt};
use crate::config::{Config, ConfigError, Problem, Typed};

/// What was checked, one line per connector; or every problem, with its
/// place in the config.
pub(crate) fn connect(config: &Config) -> Result<Vec<String>, ConfigError> {
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    for s in config.sources() {
        if sources::is_table(&s) {
            let health = TableSource::open(&s).and_then(|t| {
                let at = if s.type_name == "sqlite" { "path" } else { "url" };
                t.healthcheck().map_err(|e| (at, e.to_string()))
            });
            match health {
                Ok(()) => {
                    let o = &s.opts;
                    let place = match s.type_name {
                        "sqlite" => format!("`{}`", o.str("path").unwrap_or_default()),
                        _ => weir_io::postgres::check_url(&o.str("url").unwrap_or_default())
                            .unwrap_or_default(),
                    };
                    let what = match o.str("table") {
                        Some(t) => format!("table `{t}`"),
                        None => "query".to_owned(),
                    };
                    let key = o.str("key").unwrap_or_default();
                    checked.push(format!(
                        "{}: {} {place}: {what} by `{key}`: readable",
                        o.path, s.type_name
                    ));
                }
                Err((key, message)) => problems.push(super::option_problem(&s, key, message)),
            }
            continue;
        }
        if s.type_name != "file" {
            checked.push(format!(
                "{}: {} (nothing to connect to)",
                s.opts.path, s.type_name
            ));
            continue;
        }
        let path = s.opts.str("path").unwrap_or_default();
        match open_source(&s, None, None, false, None, &mut Vec::new()) {
            Ok(_) => checked.push(format!("{}: file `{path}`: readable", s.opts.path)),
            Err(message) => problems.push(problem(&s, "path", message)),
        }
    }
    if let Some(sink) = config.sink() {
        match sink_health(&sink) {
            Ok(line) => checked.push(line),
            Err((key, message)) => problems.push(problem(&sink, key, message)),
        }
    }
    if let Some(dl) = config.dead_letter() {
        match dead_letter_health(&dl) {
            Ok(line) => checked.push(line),
            Err((key, message)) => problems.push(problem(&dl, key, message)),
        }
    }
    let table = config.checkpoint();
    let store = match (table.str("path"), table.str("url")) {
        (Some(path), _) => Some(StoreAt::File(PathBuf::from(path))),
        (None, Some(url)) => Some(StoreAt::Server(url)),
        (None, None) => None,
    };
    if let Some(store) = store {
        match store.list() {
            Ok(positions) => checked.push(format!(
                "checkpoint: {}: {} position{}",
                store.name(),
                positions.len(),
                if positions.len() == 1 { "" } else { "s" }
            )),
            Err(e) => problems.push(Problem {
                pos: table.pos_of(if table.str("path").is_some() {
                    "path"
                } else {
                    "url"
                }),
                path: "checkpoint".into(),
                message: e.to_string(),
            }),
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        problems.sort_by_key(|p| p.pos);
        Err(ConfigError {
            path: config.path.clone(),
            problems,
        })
    }
}

fn problem(t: &Typed<'_>, key: &str, message: String) -> Problem {
    Problem {
        pos: t.opts.pos_of(key),
        path: format!("{}.{key}", t.opts.path),
        message,
    }
}

/// The sink's health: a store's table is opened (created when the sink
/// creates it) and probed for writing; a file's directory must take a
/// new file. The file itself is not created: a run writes it.
fn sink_health(sink: &Typed<'_>) -> Result<String, (&'static str, String)> {
    match sink.type_name {
        "stdout" => Ok("sink: stdout".into()),
        "file" => {
            let path = PathBuf::from(sink.opts.str("path").unwrap_or_default());
            writable_dir(&path).map_err(|m| ("path", m))?;
            Ok(format!("sink: file `{}`: writable", path.display()))
        }
        _ => {
            let made = make_real_sink(sink, &mut Vec::new())?;
            let at = match &made {
                AnySink::Sqlite(s) => {
                    s.healthcheck().map_err(|e| ("path", e))?;
                    format!("`{}`", sink.opts.str("path").unwrap_or_default())
                }
                AnySink::Postgres(s) => {
                    s.healthcheck().map_err(|e| ("url", e))?;
                    weir_io::postgres::check_url(&sink.opts.str("url").unwrap_or_default())
                        .unwrap_or_default()
                }
                AnySink::File(_) | AnySink::Stdout(_) | AnySink::Collect(_) => String::new(),
            };
            Ok(format!("sink: {} {at}: writable", sink.type_name))
        }
    }
}

/// The dead-letter sink's health: a table is opened (created when
/// missing, as a run creates it) and probed for writing; a file's
/// directory must take a new file.
fn dead_letter_health(dl: &Typed<'_>) -> Result<String, (&'static str, String)> {
    if dl.type_name == "file" {
        let path = PathBuf::from(dl.opts.str("path").unwrap_or_default());
        writable_dir(&path).map_err(|m| ("path", m))?;
        return Ok(format!("dead_letter: file `{}`: writable", path.display()));
    }
    let (sink, place) = DeadSink::open(dl)?;
    let key = if dl.type_name == "postgres" { "url" } else { "path" };
    sink.healthcheck().map_err(|e| (key, e))?;
    Ok(format!("dead_letter: {} {}: writable", dl.type_name, place.name))
}

/// Whether a new file can be made beside `path` (its directory is created
/// as a run would create it).
fn writable_dir(path: &Path) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the directory `{}`: {e}", dir.display()))?;
    let probe = dir.join(format!(".weir-check-{}", std::process::id()));
    std::fs::File::create(&probe)
        .map_err(|e| format!("cannot write in the directory `{}`: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
