//! Predicates decided on a line's raw field text, before anything is
//! decoded: the common filter shapes (`.level != "info" or .status >= 500`,
//! `select(.n > 3)`, `.ok | not`) compare top-level fields with constants,
//! and a line the filter drops then never becomes a `Value`.
//!
//! Only a subset is lowered (see [`Pred::lower`]); on a line where a field
//! is not a plain scalar (an object, an array, a number out of range) the
//! evaluation gives up and the caller evaluates the decoded value as usual,
//! so the answer is always the direct evaluator's (checked against it by a
//! differential property test in `tests.rs`).
//!
//! Likewise a reshape of fields (`{ts, level, path: .http.path}`) builds
//! its object straight from the fields' text ([`Shape`]), not from a
//! decoded record it would then copy from.

use std::borrow::Cow;
use std::cmp::Ordering;

use jaq_core::ops::Cmp;
use serde_json::{Map, Number, Value};

use super::eval::{cmp_num, holds};
use super::fast::{Expr, Key};

/// A predicate over an object's top-level fields.
#[derive(Debug, Clone)]
pub(super) enum Pred {
    /// A constant's truthiness.
    Const(bool),
    /// A field's truthiness.
    Field(String),
    /// `l op r`, each a field or a constant.
    Cmp(Operand, Cmp, Operand),
    /// `l or r` (`true`) / `l and r` (`false`), stopping as jq does.
    Logic(Box<Pred>, bool, Box<Pred>),
    /// `p | not`.
    Not(Box<Pred>),
}

/// One side of a comparison.
#[derive(Debug, Clone)]
pub(super) enum Operand {
    Field(String),
    Const(Scalar<'static>),
}

/// A JSON scalar, borrowed from the line where it can be.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar<'a> {
    Null,
    Bool(bool),
    Num(Number),
    Str(Cow<'a, str>),
}

impl Pred {
    /// The predicate an expression computes when it is in the subset: top
    /// level field reads (`.a`, `.a?`), constants, comparisons, `and`,
    /// `or`, `not` and `select`, applied to an object (the input always is
    /// one here: the caller captured its fields).
    pub(super) fn lower(e: &Expr) -> Option<Pred> {
        Some(match e {
            Expr::Lit(v) => Pred::Const(!matches!(v, Value::Null | Value::Bool(false))),
            // `.` is the object: truthy.
            Expr::Id => Pred::Const(true),
            Expr::Path(..) => Pred::Field(field(e)?.to_owned()),
            Expr::Cmp(l, op, r) => Pred::Cmp(operand(l)?, *op, operand(r)?),
            Expr::Logic(l, stop, r) => {
                Pred::Logic(Box::new(Pred::lower(l)?), *stop, Box::new(Pred::lower(r)?))
            }
            Expr::Pipe(l, r) if matches!(**r, Expr::Not) => Pred::Not(Box::new(Pred::lower(l)?)),
            // `select(c)`: the object when `c` holds, else nothing.
            Expr::Ite(c, t, f) if matches!(**t, Expr::Id) && matches!(**f, Expr::Empty) => Pred::lower(c)?,
            _ => return None,
        })
    }

    /// The predicate on an object whose field `k` has the raw JSON text
    /// `raw(k)`: `Some(None)` when absent, `None` when unknown. `None` when
    /// it cannot be decided on raw text; decode and evaluate then.
    pub(super) fn test<'a>(&self, raw: &impl Fn(&str) -> Option<Option<&'a str>>) -> Option<bool> {
        Some(match self {
            Pred::Const(b) => *b,
            Pred::Field(k) => match raw(k)? {
                None => false,
                Some(text) => match text.as_bytes().first()? {
                    b'{' | b'[' => true,
                    _ => truthy(&scalar(text)?),
                },
            },
            Pred::Cmp(l, op, r) => {
                let (l, r) = (l.value(raw)?, r.value(raw)?);
                holds(cmp(&l, &r), *op)
            }
            Pred::Logic(l, stop, r) => match l.test(raw)? {
                b if b == *stop => *stop,
                _ => r.test(raw)?,
            },
            Pred::Not(p) => !p.test(raw)?,
        })
    }
}

impl Operand {
    fn value<'s, 'a: 's>(&'s self, raw: &impl Fn(&str) -> Option<Option<&'a str>>) -> Option<Scalar<'s>> {
        match self {
            Operand::Const(c) => Some(match c {
                Scalar::Str(s) => Scalar::Str(Cow::Borrowed(s)),
                other => other.clone(),
            }),
            Operand::Field(k) => match raw(k)? {
                None => Some(Scalar::Null),
                Some(text) => scalar(text),
            },
        }
    }
}

/// `.k` or `.k?` (indexing an object by a name cannot fail).
fn field(e: &Expr) -> Option<&str> {
    match e {
        Expr::Path(head, keys) if matches!(**head, Expr::Id) => match keys.as_slice() {
            [(Key::Field(k), _)] => Some(k),
            _ => None,
        },
        _ => None,
    }
}

fn operand(e: &Expr) -> Option<Operand> {
    match e {
        Expr::Lit(v) => Some(Operand::Const(match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => Scalar::Num(n.clone()),
            Value::String(s) => Scalar::Str(Cow::Owned(s.clone())),
            _ => return None,
        })),
        _ => Some(Operand::Field(field(e)?.to_owned())),
    }
}

/// The scalar whose raw (valid) JSON text is `text`; `None` for arrays,
/// objects and numbers serde_json does not decode.
fn scalar(text: &str) -> Option<Scalar<'_>> {
    Some(match text.as_bytes().first()? {
        b'"' => {
            let inner = &text[1..text.len() - 1];
            if inner.contains('\\') {
                Scalar::Str(Cow::Owned(serde_json::from_str::<String>(text).ok()?))
            } else {
                Scalar::Str(Cow::Borrowed(inner))
            }
        }
        b'n' => Scalar::Null,
        b't' => Scalar::Bool(true),
        b'f' => Scalar::Bool(false),
        b'-' | b'0'..=b'9' => Scalar::Num(match text.parse::<i64>() {
            Ok(i) => Number::from(i),
            Err(_) => serde_json::from_str::<Number>(text).ok()?,
        }),
        _ => return None,
    })
}

fn truthy(s: &Scalar<'_>) -> bool {
    !matches!(s, Scalar::Null | Scalar::Bool(false))
}

/// jq's order on scalars, as `eval::cmp_values` orders them.
fn cmp(a: &Scalar<'_>, b: &Scalar<'_>) -> Ordering {
    let rank = |s: &Scalar<'_>| match s {
        Scalar::Null => 0,
        Scalar::Bool(_) => 1,
        Scalar::Num(_) => 2,
        Scalar::Str(_) => 3,
    };
    match (a, b) {
        (Scalar::Bool(a), Scalar::Bool(b)) => a.cmp(b),
        (Scalar::Num(a), Scalar::Num(b)) => cmp_num(a, b),
        (Scalar::Str(a), Scalar::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// An object of fields: `{a, b: .c, d: .e.f}`.
#[derive(Debug, Clone)]
pub(super) struct Shape(Vec<(String, Vec<String>)>);

impl Shape {
    /// The same object as a reshape that writes JSON text.
    pub(super) fn reshape(&self) -> weir_io::format::Reshape {
        weir_io::format::Reshape::new(
            self.0
                .iter()
                .map(|(k, path)| (k.as_str(), path.iter().map(String::as_str))),
        )
    }

    /// The shape an expression builds when it is an object whose every
    /// value is a path of field names.
    pub(super) fn lower(e: &Expr) -> Option<Shape> {
        let Expr::Obj(entries) = e else { return None };
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let Expr::Path(head, keys) = value else {
                return None;
            };
            if !matches!(**head, Expr::Id) || keys.is_empty() {
                return None;
            }
            let path = keys
                .iter()
                .map(|(k, _)| match k {
                    Key::Field(f) => Some(f.clone()),
                    Key::Index(_) => None,
                })
                .collect::<Option<Vec<_>>>()?;
            out.push((key.clone(), path));
        }
        Some(Shape(out))
    }

    /// The object built from an object whose field `k` has the raw JSON
    /// text `raw(k)` (as for [`Pred::test`]); `None` when a path meets
    /// something it cannot index on raw text (jq's error, or an escape it
    /// leaves to the decoder): evaluate the decoded record then.
    pub(super) fn build<'a>(&self, raw: &impl Fn(&str) -> Option<Option<&'a str>>) -> Option<Value> {
        let mut map = Map::new();
        for (key, path) in &self.0 {
            let value = match raw(&path[0])? {
                None => Value::Null,
                Some(text) => descend(text, &path[1..])?,
            };
            map.insert(key.clone(), value);
        }
        Some(Value::Object(map))
    }
}

/// The value at `path` inside the value whose raw text is `text`.
fn descend(text: &str, path: &[String]) -> Option<Value> {
    let Some((first, rest)) = path.split_first() else {
        return decode(text);
    };
    match text.as_bytes().first()? {
        // `null.a` is `null`.
        b'n' => Some(Value::Null),
        b'{' => match weir_io::format::object_field(text, first)? {
            None => Some(Value::Null),
            Some(inner) => descend(inner, rest),
        },
        // Indexing anything else by a name is jq's error: the decoded
        // record's evaluation reports it.
        _ => None,
    }
}

/// The value of valid raw JSON text, as serde_json decodes it.
fn decode(text: &str) -> Option<Value> {
    match text.as_bytes().first()? {
        b'"' if !text.contains('\\') => Some(Value::String(text[1..text.len() - 1].to_owned())),
        _ => serde_json::from_str(text).ok(),
    }
}
