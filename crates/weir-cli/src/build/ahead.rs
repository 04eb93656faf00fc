//! Work ahead: the leading `filter` and `map` stages run on the decoding
//! threads, beside the pipeline, and the pipeline's own stages replay what
//! they found.
//!
//! A job that reads JSON lines, keeps some and reshapes them spends its
//! time decoding and evaluating per line; the decoding threads
//! ([`weir_io::parallel::map_parallel`]) use every core, while the stages
//! run on one task. So when the stages after `parse` start with plain jq
//! `filter`s and a `map` (the same condition as projected decoding, see
//! `projection` in `build/mod.rs`), each decoding thread also runs those
//! stages' expressions on its lines and records the outcome: kept (with
//! the final record), dropped by stage `k`, or failed in stage `k` with
//! its error. The stages themselves stay in the pipeline, under their
//! names: each replays the outcome meant for it (drop, fail, pass), so
//! counts, events, errors and error policies are exactly those of a run
//! without work ahead. Items from sources that do not work ahead (a
//! generator, a CSV file, stdin) are evaluated by the stages as usual.
//! Off wherever a stage may dead-letter its item (a dead letter holds the
//! stage's input, which work ahead does not keep).
//!
//! When nothing follows the leading stages but the sink, and the map is an
//! object of fields (`{ts, path: .http.path}`), the decoding threads write
//! the map's output as JSON text straight from the line's fields
//! ([`Reshape`](weir_io::format::Reshape)) and the sink writes that text
//! ([`Out::Text`]): no value is built, written or dropped per kept line.

use serde::{Serialize, Serializer};
use weir::ErrorPolicy;
use weir_io::format::Projection;
use weir_io::{JsonText, Line, Origin, Record};

use super::sinks::Out;
use super::{at, Ctx, Dyn, JqKind};
use crate::jq::Jq;

/// One leading stage, as the decoding threads run it.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) kind: JqKind,
    pub(crate) jq: Jq,
}

/// What the leading stages do with one line, found ahead.
#[derive(Debug, Clone)]
pub(crate) enum Ahead {
    /// Every leading stage passed it: the record after the last.
    Kept(Record),
    /// Every leading stage passed it: the last one's output, written as
    /// JSON text (only when the sink is next, see the module docs).
    Written(JsonText, Origin),
    /// Stage `k` (of the leading ones) dropped it.
    Dropped(usize),
    /// Stage `k` failed it with this message.
    Failed(usize, String),
}

/// A record on its way through the leading stages.
#[derive(Debug, Clone)]
pub(crate) enum Staged {
    /// Evaluated by each stage as it comes.
    Plain(Record),
    /// Already evaluated: each stage replays its part.
    Ahead(Ahead),
}

impl Serialize for Staged {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Staged::Plain(r) | Staged::Ahead(Ahead::Kept(r)) => r.serialize(s),
            Staged::Ahead(Ahead::Written(text, origin)) => written(text, origin).serialize(s),
            Staged::Ahead(_) => s.serialize_none(),
        }
    }
}

/// The record whose value `text` holds.
pub(crate) fn written(text: &JsonText, origin: &Origin) -> Record {
    Record::new(text.to_value()).with_origin(origin.clone())
}

/// A filter's verdict on `r`: kept, dropped, or the error (naming its
/// file:line), as the `filter` stage reports it.
pub(crate) fn filter(jq: &Jq, r: Record) -> Result<Option<Record>, weir::BoxError> {
    match jq.test(&r.value) {
        Ok(keep) => Ok(keep.then_some(r)),
        Err(e) => Err(at(r.origin.as_ref(), e)),
    }
}

/// A map's output for `r`, or its error, as the `map` stage reports it.
pub(crate) fn map(jq: &Jq, r: Record) -> Result<Record, weir::BoxError> {
    super::jq_apply(JqKind::Map, jq, r).map(|mut v| v.pop().expect("a map's one output"))
}

/// Runs the leading stages on `r`, as the decoding threads do.
pub(crate) fn run(steps: &[Step], mut r: Record) -> Ahead {
    for (k, step) in steps.iter().enumerate() {
        let outcome = match step.kind {
            JqKind::Filter => filter(&step.jq, r).map(|kept| kept.ok_or(k)),
            _ => map(&step.jq, r).map(Ok),
        };
        r = match outcome {
            Ok(Ok(next)) => next,
            Ok(Err(k)) => return Ahead::Dropped(k),
            Err(e) => return Ahead::Failed(k, e.to_string()),
        };
    }
    Ahead::Kept(r)
}

/// The leading stages, run on the raw text of a line: each stage's input
/// is built from only the fields that stage reads (a filter of `level`
/// builds `level`, not the map's five fields), so a line the filters drop
/// costs its validation and the filters' fields, not the whole projection.
/// Every stage reads a known set of fields (else there is no projection
/// and no work ahead); what the stage sees is exactly what it would see
/// on the whole record (the `jq` module's projection test).
#[derive(Debug, Clone)]
pub(crate) struct Captures {
    /// The fields any leading stage reads: captured raw from each line.
    all: Projection,
    /// Each stage, with the fields it reads.
    steps: Vec<(Step, Projection)>,
    /// Whether a map's output may be written as JSON text
    /// ([`Ahead::Written`]): the sink comes next.
    text: bool,
}

impl Captures {
    /// The leading `steps` on raw lines, where `all` is the union of their
    /// reads; `None` unless every step's reads are known and only the last
    /// is a map (whose output, not the line, goes on). With `text`, the
    /// map's output is written as JSON text where it can be.
    pub(crate) fn new(all: &Projection, steps: &[Step], text: bool) -> Option<Captures> {
        let last = steps.len().checked_sub(1)?;
        let mut out = Vec::with_capacity(steps.len());
        for (k, step) in steps.iter().enumerate() {
            if (step.kind == JqKind::Map) != (k == last) || step.kind == JqKind::FlatMap {
                return None;
            }
            let mut keep = Projection::default();
            for path in step.jq.reads()? {
                keep.add(&path);
            }
            if keep.is_whole() {
                return None;
            }
            out.push((step.clone(), keep));
        }
        Some(Captures {
            all: all.clone(),
            steps: out,
            text,
        })
    }

    /// What the leading stages do with `line`, or `None` when it is not a
    /// well-formed JSON object of decodable fields (decode it the usual
    /// way then, for its error or its value).
    pub(crate) fn run(&self, line: &Line) -> Option<Ahead> {
        if line.fault.is_some() {
            return None;
        }
        let captured = self.all.capture(&line.text)?;
        let mut kept = None;
        for (k, (step, keep)) in self.steps.iter().enumerate() {
            // A filter of top-level fields decides on their raw text; a
            // reshape of fields builds its object from their raw text.
            let raw = |key: &str| captured.field(key);
            if step.kind == JqKind::Filter {
                match step.jq.test_raw(&raw) {
                    Some(true) => continue,
                    Some(false) => return Some(Ahead::Dropped(k)),
                    None => {}
                }
            } else if let Some(text) = step
                .jq
                .reshape()
                .filter(|_| self.text)
                .and_then(|r| captured.reshape(r))
            {
                // The map is the last stage.
                return Some(Ahead::Written(text, line.origin.clone()));
            } else if let Some(value) = step.jq.map_raw(&raw) {
                kept = Some(Record {
                    value,
                    origin: Some(line.origin.clone()),
                });
                continue;
            }
            let record = Record {
                value: captured.project(keep)?,
                origin: Some(line.origin.clone()),
            };
            match step.kind {
                JqKind::Filter => match filter(&step.jq, record) {
                    Ok(Some(_)) => {}
                    Ok(None) => return Some(Ahead::Dropped(k)),
                    Err(e) => return Some(Ahead::Failed(k, e.to_string())),
                },
                _ => match map(&step.jq, record) {
                    Ok(out) => kept = Some(out),
                    Err(e) => return Some(Ahead::Failed(k, e.to_string())),
                },
            }
        }
        kept.map(Ahead::Kept)
    }
}

/// The leading stages of a pipeline that works ahead: each evaluates
/// plain records and replays outcomes found ahead, under its own name and
/// error policy. Then [`records`] or [`outs`].
pub(super) fn stages(
    mut p: Dyn<Staged>,
    leading: Vec<(Step, String, Option<ErrorPolicy>)>,
    ctx: &Ctx,
) -> Dyn<Staged> {
    for (k, (step, name, policy)) in leading.into_iter().enumerate() {
        let jq = step.jq;
        p = match step.kind {
            JqKind::Filter => {
                let m = p
                    .try_map(move |s: Staged| match s {
                        Staged::Plain(r) => filter(&jq, r).map(|kept| kept.map(Staged::Plain)),
                        Staged::Ahead(Ahead::Dropped(at)) if at == k => Ok(None),
                        Staged::Ahead(Ahead::Failed(at, e)) if at == k => Err(e.into()),
                        ahead => Ok(Some(ahead)),
                    })
                    .name(name.clone());
                ctx.recover(m, policy)
                    .filter_map(|s| s)
                    .name(format!("{name}:keep"))
                    .boxed()
            }
            _ => {
                let m = p
                    .try_map(move |s: Staged| match s {
                        Staged::Plain(r) => map(&jq, r).map(Staged::Plain),
                        Staged::Ahead(Ahead::Failed(at, e)) if at == k => Err(e.into()),
                        ahead => Ok(ahead),
                    })
                    .name(name);
                ctx.recover(m, policy).boxed()
            }
        };
    }
    p
}

/// The records the leading stages passed.
pub(super) fn records(p: Dyn<Staged>) -> Dyn<Record> {
    p.try_map(|s: Staged| match done(s)? {
        Out::Record(r) => Ok::<_, weir::BoxError>(r),
        Out::Text(text, origin) => Ok(written(&text, &origin)),
    })
    .name("ahead:done")
    .boxed()
}

/// What the leading stages passed, for the sink: records, and outputs
/// written as JSON text ahead.
pub(super) fn outs(p: Dyn<Staged>) -> Dyn<Out> {
    p.try_map(done).name("ahead:done").boxed()
}

fn done(s: Staged) -> Result<Out, weir::BoxError> {
    match s {
        Staged::Plain(r) | Staged::Ahead(Ahead::Kept(r)) => Ok(Out::Record(r)),
        Staged::Ahead(Ahead::Written(text, origin)) => Ok(Out::Text(text, origin)),
        // Every drop and failure was replayed by its stage above.
        Staged::Ahead(other) => Err(weir::BoxError::from(format!(
            "internal: an outcome found ahead was not replayed: {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_io::Origin;

    fn step(kind: JqKind, source: &str) -> Step {
        Step {
            kind,
            jq: Jq::compile(source).unwrap(),
        }
    }

    fn brief(a: &Ahead) -> String {
        match a {
            Ahead::Kept(r) => format!("kept {}", r.value),
            Ahead::Written(text, _) => format!("kept {text}"),
            Ahead::Dropped(k) => format!("dropped by {k}"),
            Ahead::Failed(k, _) => format!("failed in {k}"),
        }
    }

    /// On raw lines the leading stages do what they do on the decoded
    /// line: keep (the same record), drop or fail in the same stage.
    #[test]
    fn raw_lines_meet_the_same_fate_as_decoded_ones() {
        let steps = [
            step(JqKind::Filter, r#".level != "info" or .status >= 500"#),
            step(JqKind::Filter, ".http.path != \"/health\""),
            step(JqKind::Map, "{ts, level, status, path: .http.path, n: (.n + 1)}"),
        ];
        let mut all = Projection::default();
        for s in &steps {
            for path in s.jq.reads().unwrap() {
                all.add(&path);
            }
        }
        let captures = Captures::new(&all, &steps, false).unwrap();
        let mut raw_answers = 0;
        for text in [
            r#"{"ts":"t1","level":"info","status":200,"http":{"path":"/a"},"n":1,"x":[1,{"y":"z"}]}"#,
            r#"{"ts":"t2","level":"warn","status":200,"http":{"path":"/a"},"n":1}"#,
            r#"{"ts":"t3","level":"info","status":503,"http":{"path":"/health"},"n":1}"#,
            r#"{"ts":"t4","level":"w\u0061rn","status":"500","http":{"path":"/b"},"n":2}"#,
            r#"{"ts":"t5","level":"error","status":500,"http":"oops","n":1}"#,
            r#"{"ts":"t6","level":"error","status":500,"http":{"path":"/c"},"n":"one"}"#,
            r#"{"ts":"t7","level":"error","status":1e400,"http":{"path":"/c"},"n":1}"#,
            r#"{"level":null}"#,
            r#"{"level":"info","status":200}"#,
            r#"{"level":{"deep":1},"status":200}"#,
            // A number past a double's range in a field some stage reads
            // fails the line's decoding, whichever stage would read it.
            r#"{"ts":"t8","level":"warn","status":1e400,"http":{"path":"/health"},"n":1}"#,
            r#"{"ts":"t9","level":"info","status":200,"http":{"path":"/a"},"n":1,"ts":1e400}"#,
        ] {
            let line = Line::new(text, Origin::new("t.jsonl", 1, 0));
            let decoded = serde_json::from_str(text)
                .map(|v| run(&steps, Record::new(v).with_origin(line.origin.clone())));
            if let Some(found) = captures.run(&line) {
                raw_answers += 1;
                let decoded = decoded.as_ref().expect("a line the capture reads decodes");
                assert_eq!(brief(&found), brief(decoded), "{text}");
            }
        }
        assert!(raw_answers >= 8, "only {raw_answers} lines were read raw");
    }

    #[test]
    fn a_reshape_of_fields_built_from_raw_text_is_the_decoded_one() {
        let steps = [
            step(JqKind::Filter, ".keep"),
            step(
                JqKind::Map,
                "{ts, level, path: .http.path, deep: .a.b.c, m: .http.method}",
            ),
        ];
        let mut all = Projection::default();
        for s in &steps {
            for path in s.jq.reads().unwrap() {
                all.add(&path);
            }
        }
        // As a value, and as JSON text when the sink is next.
        for text_out in [false, true] {
            let captures = Captures::new(&all, &steps, text_out).unwrap();
            let mut written = 0;
            for text in [
                r#"{"keep":true,"ts":"t","level":"w\u00e9","http":{"path":"/a","method":"GET","path":"/b"},"a":{"b":{"c":[1]}}}"#,
                r#"{"keep":1,"ts":2.50,"http":null,"a":{"b":null}}"#,
                r#"{"keep":"y","http":{},"a":{}}"#,
                r#"{"keep":true,"http":"text","a":{}}"#,
                r#"{"keep":true,"http":{"path":1},"a":[1]}"#,
            ] {
                let line = Line::new(text, Origin::new("t.jsonl", 1, 0));
                let decoded = run(&steps, Record::new(serde_json::from_str(text).unwrap()));
                match captures.run(&line) {
                    Some(found) => {
                        written += usize::from(matches!(found, Ahead::Written(..)));
                        assert_eq!(brief(&found), brief(&decoded), "{text}");
                    }
                    // Indexing a string or an array: left to the decoded
                    // path, where it is jq's error.
                    None => assert!(matches!(decoded, Ahead::Failed(1, _)), "{text}: {decoded:?}"),
                }
            }
            assert_eq!(written, if text_out { 3 } else { 0 });
        }
    }

    #[test]
    fn only_filters_then_one_map_run_on_raw_lines() {
        let mut all = Projection::default();
        all.add(&["a"]);
        let filter = step(JqKind::Filter, ".a > 1");
        let map = step(JqKind::Map, "{a}");
        assert!(Captures::new(&all, &[filter.clone(), map.clone()], false).is_some());
        assert!(Captures::new(&all, &[map.clone(), filter.clone()], false).is_none());
        assert!(Captures::new(&all, &[filter], false).is_none());
        assert!(Captures::new(&all, &[step(JqKind::Map, ".")], false).is_none());
        assert!(Captures::new(&all, &[], false).is_none());
    }
}
