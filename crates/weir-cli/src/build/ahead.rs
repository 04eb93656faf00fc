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

use serde::{Serialize, Serializer};
use weir::ErrorPolicy;
use weir_io::Record;

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
            Staged::Ahead(_) => s.serialize_none(),
        }
    }
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

/// The leading stages of a pipeline that works ahead: each evaluates
/// plain records and replays outcomes found ahead, under its own name and
/// error policy.
pub(super) fn stages(
    mut p: Dyn<Staged>,
    leading: Vec<(Step, String, Option<ErrorPolicy>)>,
    ctx: &Ctx,
) -> Dyn<Record> {
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
    p.try_map(|s: Staged| match s {
        Staged::Plain(r) | Staged::Ahead(Ahead::Kept(r)) => Ok(r),
        // Every drop and failure was replayed by its stage above.
        Staged::Ahead(other) => Err(weir::BoxError::from(format!(
            "internal: an outcome found ahead was not replayed: {other:?}"
        ))),
    })
    .name("ahead:done")
    .boxed()
}
