//! `weir test`: the config's `[[test]]` cases, run through its real
//! stages with the sources replaced by the case's input and the sinks by
//! collectors, compared with what the case expects.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::Value;
use weir::compose::Registry;
use weir_io::{Line, Origin, Record};

use crate::build::{self, collector, Input, Options, TestIo};
use crate::config::{Config, Opts};

/// One case's outcome.
#[derive(Debug)]
pub(crate) struct CaseResult {
    /// The case's name.
    pub(crate) name: String,
    /// `None` when it passed; else what differed.
    pub(crate) failure: Option<String>,
}

fn decoder_of_first_source(config: &Config) -> weir_io::format::Decoder {
    let format = config
        .sources()
        .first()
        // Only sources of lines have a format (a table's rows are records).
        .filter(|s| matches!(s.type_name, "file" | "stdin"))
        .and_then(|s| match s.opts.str("format").as_deref() {
            Some("lines") => Some(weir_io::Format::Lines),
            Some("csv") => Some(weir_io::Format::Csv(Default::default())),
            _ => None,
        })
        .unwrap_or(weir_io::Format::JsonLines);
    format.decoder()
}

fn inputs(case: &Opts<'_>, config: &Config) -> Vec<Input> {
    let mut out: Vec<Input> = case
        .list("input")
        .iter()
        .map(|n| Input::Record(Record::new(n.to_json())))
        .collect();
    let lines = case.list("input_lines");
    if !lines.is_empty() {
        let decoder = Arc::new(decoder_of_first_source(config));
        let file: Arc<str> = Arc::from(format!("{}#{}", config.path.display(), case.path));
        for (i, n) in lines.iter().enumerate() {
            let text = n.as_str().unwrap_or_default();
            let line = Line::new(text, Origin::new(file.clone(), i as u64 + 1, 0));
            out.push(Input::Line(line, decoder.clone()));
        }
    }
    out
}

/// Runs every case of `config`.
pub(crate) async fn run_cases(
    config: &Config,
    registry: &Registry<Record>,
) -> Result<Vec<CaseResult>, String> {
    let mut results = Vec::new();
    for case in config.tests() {
        let name = case.str("name").unwrap_or_default();
        let dead = collector();
        let io = TestIo {
            inputs: inputs(&case, config),
            dead_letters: dead.clone(),
        };
        let built = build::build(
            config,
            registry,
            Options {
                limit: None,
                test: Some(io),
                checkpoint: None,
                resume_from: Vec::new(),
            },
        )
        .map_err(|e| e.to_string())?;
        let run = built.pipeline.run().await;
        let ordered = case.bool("ordered").unwrap_or(true);
        let mut problems = String::new();
        if let Err(e) = &run {
            let _ = writeln!(problems, "  the run failed: {e}");
        }
        let got = |owner: &str| -> Vec<Value> {
            built
                .collected
                .get(owner)
                .map(|c| c.lock().expect("collector lock").clone())
                .unwrap_or_default()
        };
        if case.node("expect").is_some() {
            let want: Vec<Value> = case.list("expect").iter().map(|n| n.to_json()).collect();
            compare("sink", &want, &got("sink"), ordered, &mut problems);
        }
        for (branch, node) in case.entries("expect_routes") {
            let want: Vec<Value> = match &node.value {
                crate::config::tree::Value::Array(items) => items.iter().map(|n| n.to_json()).collect(),
                _ => Vec::new(),
            };
            compare(
                &format!("branch {branch}"),
                &want,
                &got(&branch),
                ordered,
                &mut problems,
            );
        }
        if case.node("expect_dead_letters").is_some() {
            let want: Vec<Value> = case
                .list("expect_dead_letters")
                .iter()
                .map(|n| n.to_json())
                .collect();
            let have = dead.lock().expect("collector lock").clone();
            compare_letters(&want, &have, &mut problems);
        }
        results.push(CaseResult {
            name,
            failure: (!problems.is_empty()).then_some(problems),
        });
    }
    Ok(results)
}

fn compare(what: &str, want: &[Value], got: &[Value], ordered: bool, out: &mut String) {
    let (mut want, mut got) = (want.to_vec(), got.to_vec());
    if !ordered {
        want.sort_by_key(|v| v.to_string());
        got.sort_by_key(|v| v.to_string());
    }
    diff(what, "items", &want, &got, |w, g| w == g, out);
}

/// Each expected letter's fields must match the actual one's; `error`
/// matches when the actual error contains it.
fn compare_letters(want: &[Value], got: &[Value], out: &mut String) {
    let matches = |w: &Value, g: &Value| -> bool {
        let (Some(w), Some(g)) = (w.as_object(), g.as_object()) else {
            return w == g;
        };
        w.iter().all(|(k, v)| match (k.as_str(), v, g.get(k)) {
            ("error", Value::String(s), Some(Value::String(actual))) => actual.contains(s.as_str()),
            (_, v, Some(actual)) => v == actual,
            _ => false,
        })
    };
    diff("dead letters", "records", want, got, matches, out);
}

/// Writes `- expected` / `+ actual` lines for every position where the
/// two lists differ (nothing when they match).
fn diff(
    what: &str,
    noun: &str,
    want: &[Value],
    got: &[Value],
    matches: impl Fn(&Value, &Value) -> bool,
    out: &mut String,
) {
    if want.len() == got.len() && want.iter().zip(got).all(|(w, g)| matches(w, g)) {
        return;
    }
    let _ = writeln!(out, "  {what}: expected {} {noun}, got {}", want.len(), got.len());
    for i in 0..want.len().max(got.len()) {
        match (want.get(i), got.get(i)) {
            (Some(w), Some(g)) if matches(w, g) => {
                let _ = writeln!(out, "      {w}");
            }
            (w, g) => {
                if let Some(w) = w {
                    let _ = writeln!(out, "    - {w}");
                }
                if let Some(g) = g {
                    let _ = writeln!(out, "    + {g}");
                }
            }
        }
    }
}
