//! The `aggregate` stage: per key, per window, the fields a config asks
//! for (`count`, `sum(JQ)`, `min`, `max`, `avg`, `first`, `last`).
//!
//! The jq expressions run in a fused stage before the window (so a jq
//! error is that item's failure, under its error policy); the window then
//! folds plain values and cannot fail.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};
use weir::aggregate::Aggregator;
use weir::ErrorPolicy;
use weir_io::Record;

use super::spec::Field;
use super::{Ctx, Dyn};
use crate::jq::Jq;

/// What the fused stage computes for one item: its key and each field's
/// input.
type Prepared = (Option<String>, Vec<Value>);

/// One field's running state.
#[derive(Debug, Clone)]
enum Acc {
    Count(u64),
    Sum(f64, bool),
    Min(Option<Value>),
    Max(Option<Value>),
    Avg(f64, u64),
    First(Option<Value>),
    Last(Option<Value>),
}

fn as_f64(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// jq's order on values, enough for min/max of numbers and strings.
fn less(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() < y.as_f64(),
        (Value::String(x), Value::String(y)) => x < y,
        _ => rank(a) < rank(b),
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(false) => 1,
        Value::Bool(true) => 2,
        Value::Number(_) => 3,
        Value::String(_) => 4,
        Value::Array(_) => 5,
        Value::Object(_) => 6,
    }
}

impl Acc {
    fn new(f: &Field) -> Acc {
        match f {
            Field::Count => Acc::Count(0),
            Field::Sum(_) => Acc::Sum(0.0, true),
            Field::Min(_) => Acc::Min(None),
            Field::Max(_) => Acc::Max(None),
            Field::Avg(_) => Acc::Avg(0.0, 0),
            Field::First(_) => Acc::First(None),
            Field::Last(_) => Acc::Last(None),
        }
    }

    fn add(&mut self, v: Value) {
        match self {
            Acc::Count(n) => *n += 1,
            Acc::Sum(s, ints) => {
                if let Some(x) = as_f64(&v) {
                    *s += x;
                    *ints &= v.is_i64() || v.is_u64();
                }
            }
            Acc::Min(m) => {
                if !v.is_null() && m.as_ref().is_none_or(|cur| less(&v, cur)) {
                    *m = Some(v);
                }
            }
            Acc::Max(m) => {
                if !v.is_null() && m.as_ref().is_none_or(|cur| less(cur, &v)) {
                    *m = Some(v);
                }
            }
            Acc::Avg(s, n) => {
                if let Some(x) = as_f64(&v) {
                    *s += x;
                    *n += 1;
                }
            }
            Acc::First(f) => {
                if f.is_none() {
                    *f = Some(v);
                }
            }
            Acc::Last(l) => *l = Some(v),
        }
    }

    fn finish(self) -> Value {
        match self {
            Acc::Count(n) => n.into(),
            Acc::Sum(s, true) if s.abs() < 9.0e15 => (s as i64).into(),
            Acc::Sum(s, _) => serde_json::Number::from_f64(s).map_or(Value::Null, Value::Number),
            Acc::Min(v) | Acc::Max(v) | Acc::First(v) | Acc::Last(v) => v.unwrap_or(Value::Null),
            Acc::Avg(_, 0) => Value::Null,
            Acc::Avg(s, n) => serde_json::Number::from_f64(s / n as f64).map_or(Value::Null, Value::Number),
        }
    }
}

/// The window's fold: groups by key in first-seen order.
#[derive(Debug)]
struct PerKey {
    names: Vec<String>,
    fields: Vec<Field>,
    keyed: bool,
}

/// Accumulator: groups in first-seen order.
#[derive(Debug, Default)]
struct Groups {
    index: HashMap<Option<String>, usize>,
    groups: Vec<(Option<String>, Vec<Acc>)>,
}

impl Aggregator<Prepared> for PerKey {
    type Acc = Groups;
    type Out = Vec<Record>;

    fn init(&self) -> Groups {
        Groups::default()
    }

    fn add(&self, acc: &mut Groups, (key, values): Prepared) {
        let i = match acc.index.get(&key) {
            Some(i) => *i,
            None => {
                acc.groups
                    .push((key.clone(), self.fields.iter().map(Acc::new).collect()));
                acc.index.insert(key, acc.groups.len() - 1);
                acc.groups.len() - 1
            }
        };
        for (a, v) in acc.groups[i].1.iter_mut().zip(values) {
            a.add(v);
        }
    }

    fn finish(&self, acc: Groups) -> Vec<Record> {
        acc.groups
            .into_iter()
            .map(|(key, accs)| {
                let mut out = Map::new();
                if self.keyed {
                    out.insert(
                        "key".into(),
                        key.map_or(Value::Null, |k| {
                            serde_json::from_str(&k).unwrap_or(Value::String(k))
                        }),
                    );
                }
                for (name, a) in self.names.iter().zip(accs) {
                    out.insert(name.clone(), a.finish());
                }
                Record::new(Value::Object(out))
            })
            .collect()
    }
}

fn field_jq(f: &Field) -> Option<&Jq> {
    match f {
        Field::Count => None,
        Field::Sum(j) | Field::Min(j) | Field::Max(j) | Field::Avg(j) | Field::First(j) | Field::Last(j) => {
            Some(j)
        }
    }
}

/// Builds the stage: a fused preparation, the window, and the split of
/// its output into one record per key.
#[allow(clippy::too_many_arguments)]
pub(super) fn stage(
    p: Dyn<Record>,
    key: Option<Jq>,
    window: Option<Duration>,
    window_items: Option<usize>,
    fields: Vec<(String, Field)>,
    name: String,
    policy: Option<ErrorPolicy>,
    ctx: &Ctx,
) -> Dyn<Record> {
    let (names, fields): (Vec<String>, Vec<Field>) = fields.into_iter().unzip();
    let exprs: Vec<Option<Jq>> = fields.iter().map(|f| field_jq(f).cloned()).collect();
    let keyed = key.is_some();
    let prepare = p
        .try_map(move |r: Record| -> Result<Prepared, weir::BoxError> {
            let eval = || -> Result<Prepared, crate::jq::EvalError> {
                let k = match &key {
                    Some(jq) => Some(jq.first(&r.value)?.to_string()),
                    None => None,
                };
                let mut values = Vec::with_capacity(exprs.len());
                for e in &exprs {
                    values.push(match e {
                        Some(jq) => jq.first(&r.value)?,
                        None => Value::Null,
                    });
                }
                Ok((k, values))
            };
            eval().map_err(|e| super::at(r.origin.as_ref(), e))
        })
        .name(format!("{name}:eval"));
    let prepared = ctx.recover(prepare, policy);
    let agg = PerKey { names, fields, keyed };
    let windows: Dyn<Vec<Record>> = match (window, window_items) {
        (Some(d), _) => prepared.aggregate_time(d, agg).name(name.clone()).boxed(),
        (None, Some(n)) => prepared.aggregate_count(n, agg).name(name.clone()).boxed(),
        (None, None) => prepared.aggregate(agg).name(name.clone()).boxed(),
    };
    windows.flatten().name(format!("{name}:emit")).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_fold_like_jq_would() {
        let mut sum = Acc::new(&Field::Sum(Jq::compile(".").unwrap()));
        for v in [1, 2, 3] {
            sum.add(v.into());
        }
        assert_eq!(sum.finish(), Value::from(6));
        let mut avg = Acc::new(&Field::Avg(Jq::compile(".").unwrap()));
        avg.add(1.into());
        avg.add(2.into());
        assert_eq!(avg.finish(), Value::from(1.5));
        let mut max = Acc::new(&Field::Max(Jq::compile(".").unwrap()));
        for v in ["b", "c", "a"] {
            max.add(v.into());
        }
        assert_eq!(max.finish(), Value::from("c"));
        assert_eq!(
            Acc::new(&Field::Avg(Jq::compile(".").unwrap())).finish(),
            Value::Null
        );
    }

    #[test]
    fn groups_keep_first_seen_order_and_decode_json_keys() {
        let agg = PerKey {
            names: vec!["n".into()],
            fields: vec![Field::Count],
            keyed: true,
        };
        let mut acc = agg.init();
        for k in ["\"b\"", "\"a\"", "\"b\"", "3"] {
            agg.add(&mut acc, (Some(k.to_owned()), vec![Value::Null]));
        }
        let out: Vec<Value> = agg.finish(acc).into_iter().map(|r| r.value).collect();
        assert_eq!(
            out,
            [
                serde_json::json!({"key": "b", "n": 2}),
                serde_json::json!({"key": "a", "n": 1}),
                serde_json::json!({"key": 3, "n": 1})
            ]
        );
    }
}
