//! Evaluation of the direct evaluator's expressions on borrowed
//! `serde_json::Value`s, with jaq's semantics.
//!
//! An expression yields nothing, one value (borrowed from the input or
//! the program where it can be), or gives up with a [`Fail`]:
//! `Fail::Error` where jaq raises an error, `Fail::Unsupported` where the
//! result exists but is not computed here (integer overflow into jaq's big
//! integers, NaN and infinities, rarely used operations). Either way the
//! caller then runs jaq on the same input, which yields the result or the
//! error message; an expression's `try`/`?` turns `Fail::Error` into
//! nothing and passes `Fail::Unsupported` on.

use std::borrow::Cow;
use std::cmp::Ordering;

use jaq_core::ops::{Cmp, Math};
use serde_json::{Map, Number, Value};

use super::fast::{Expr, Key};

/// Why the direct evaluator gave up on an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fail {
    /// jaq raises an error here.
    Error,
    /// jaq computes a value here that this evaluator does not.
    Unsupported,
}

/// Nothing or one value.
pub(super) type Out<'a> = Result<Option<Cow<'a, Value>>, Fail>;

static NULL: Value = Value::Null;

/// The value of an expression, or return "no output" from the enclosing
/// function.
macro_rules! one {
    ($e:expr) => {
        match $e? {
            Some(v) => v,
            None => return Ok(None),
        }
    };
}

fn owned<'a>(v: Value) -> Out<'a> {
    Ok(Some(Cow::Owned(v)))
}

/// jq's truthiness: everything but `null` and `false`.
pub(super) fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

impl Expr {
    /// The truthiness of the expression's output (`None` without output):
    /// [`eval`](Expr::eval) without building the boolean values of
    /// comparisons and logic, for `select` and [`Jq::test`](super::Jq::test).
    pub(super) fn truth(&self, x: &Value, vars: &[Value]) -> Result<Option<bool>, Fail> {
        match self {
            Expr::Cmp(l, op, r) => {
                let l = one!(l.eval(x, vars));
                let r = one!(r.eval(x, vars));
                Ok(Some(compare(&l, *op, &r)))
            }
            Expr::Logic(l, stop, r) => match l.truth(x, vars)? {
                Some(b) if b == *stop => Ok(Some(*stop)),
                Some(_) => r.truth(x, vars),
                None => Ok(None),
            },
            Expr::Not => Ok(Some(!truthy(x))),
            _ => Ok(self.eval(x, vars)?.map(|v| truthy(&v))),
        }
    }

    /// Runs the expression on `x` with the run-time variables `vars`.
    pub(super) fn eval<'a>(&'a self, x: &'a Value, vars: &'a [Value]) -> Out<'a> {
        match self {
            Expr::Id => Ok(Some(Cow::Borrowed(x))),
            Expr::Lit(v) => Ok(Some(Cow::Borrowed(v))),
            Expr::Var(i) => Ok(vars.get(*i).map(Cow::Borrowed)),
            Expr::Empty => Ok(None),
            Expr::Path(head, keys) => {
                let mut cur = one!(head.eval(x, vars));
                for (key, optional) in keys {
                    cur = match index(cur, key) {
                        Ok(v) => v,
                        Err(Fail::Error) if *optional => return Ok(None),
                        Err(e) => return Err(e),
                    };
                }
                Ok(Some(cur))
            }
            Expr::Pipe(l, r) => match one!(l.eval(x, vars)) {
                Cow::Borrowed(y) => r.eval(y, vars),
                Cow::Owned(y) => Ok(r.eval(&y, vars)?.map(|v| Cow::Owned(v.into_owned()))),
            },
            Expr::Obj(entries) => {
                let mut map = Map::new();
                for (k, e) in entries {
                    let v = one!(e.eval(x, vars));
                    map.insert(k.clone(), v.into_owned());
                }
                owned(Value::Object(map))
            }
            Expr::Arr(items) => {
                let mut out = Vec::with_capacity(items.len());
                for e in items {
                    if let Some(v) = e.eval(x, vars)? {
                        out.push(v.into_owned());
                    }
                }
                owned(Value::Array(out))
            }
            Expr::Cmp(l, op, r) => {
                let l = one!(l.eval(x, vars));
                let r = one!(r.eval(x, vars));
                owned(Value::Bool(compare(&l, *op, &r)))
            }
            Expr::Math(l, op, r) => {
                let l = one!(l.eval(x, vars));
                let r = one!(r.eval(x, vars));
                math(l, *op, r)
            }
            Expr::Neg(e) => match &*one!(e.eval(x, vars)) {
                Value::Number(n) => match num(n) {
                    N::Int(i) => i.checked_neg().map_or(Err(Fail::Unsupported), int),
                    N::Big(_) => Err(Fail::Unsupported),
                    N::Float(f) => float(-f),
                },
                _ => Err(Fail::Error),
            },
            Expr::Logic(..) => match self.truth(x, vars)? {
                Some(b) => owned(Value::Bool(b)),
                None => Ok(None),
            },
            Expr::Alt(l, r) => match l.eval(x, vars)? {
                Some(v) if truthy(&v) => Ok(Some(v)),
                _ => r.eval(x, vars),
            },
            Expr::Ite(cond, then, otherwise) => {
                if one!(cond.truth(x, vars)) {
                    then.eval(x, vars)
                } else {
                    otherwise.eval(x, vars)
                }
            }
            Expr::Try(e) => match e.eval(x, vars) {
                Err(Fail::Error) => Ok(None),
                other => other,
            },
            Expr::Not => owned(Value::Bool(!truthy(x))),
            Expr::Length => length(x),
            Expr::ToString => match x {
                Value::String(_) => Ok(Some(Cow::Borrowed(x))),
                Value::Null | Value::Bool(_) => owned(Value::String(x.to_string())),
                // jaq and serde_json format floats with different libraries.
                Value::Number(n) if !n.is_f64() => owned(Value::String(n.to_string())),
                _ => Err(Fail::Unsupported),
            },
            Expr::ToNumber => match x {
                Value::Number(_) => Ok(Some(Cow::Borrowed(x))),
                Value::String(s) => match strict_json_number(s) {
                    Some(n) => owned(Value::Number(n)),
                    None => Err(Fail::Unsupported),
                },
                _ => Err(Fail::Error),
            },
            Expr::AsciiCase(lower) => match x {
                Value::String(s) if *lower => owned(Value::String(s.to_ascii_lowercase())),
                Value::String(s) => owned(Value::String(s.to_ascii_uppercase())),
                _ => Err(Fail::Error),
            },
            Expr::Has(key) => {
                let key = one!(key.eval(x, vars));
                has(x, &key)
            }
        }
    }
}

/// `v[key]`; the result borrows what `v` borrowed, or is taken out of an
/// owned `v`.
fn index<'a>(v: Cow<'a, Value>, key: &Key) -> Result<Cow<'a, Value>, Fail> {
    match v {
        Cow::Borrowed(v) => Ok(Cow::Borrowed(index_ref(v, key)?.unwrap_or(&NULL))),
        Cow::Owned(mut v) => Ok(Cow::Owned(match index_mut(&mut v, key)? {
            Some(child) => std::mem::take(child),
            None => Value::Null,
        })),
    }
}

fn index_ref<'v>(v: &'v Value, key: &Key) -> Result<Option<&'v Value>, Fail> {
    match (v, key) {
        (Value::Null, _) => Ok(None),
        (Value::Object(map), Key::Field(k)) => Ok(map.get(k)),
        // JSON objects only have string keys.
        (Value::Object(_), Key::Index(_)) => Ok(None),
        (Value::Array(items), Key::Index(i)) => Ok(wrap_index(*i, items.len()).map(|i| &items[i])),
        _ => Err(Fail::Error),
    }
}

fn index_mut<'v>(v: &'v mut Value, key: &Key) -> Result<Option<&'v mut Value>, Fail> {
    match (v, key) {
        (Value::Null, _) => Ok(None),
        (Value::Object(map), Key::Field(k)) => Ok(map.get_mut(k)),
        (Value::Object(_), Key::Index(_)) => Ok(None),
        (Value::Array(items), Key::Index(i)) => Ok(wrap_index(*i, items.len()).map(|i| &mut items[i])),
        _ => Err(Fail::Error),
    }
}

/// An array position counted from the end when negative; `None` out of
/// bounds.
fn wrap_index(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 {
        len.checked_sub(usize::try_from(i.unsigned_abs()).ok()?)?
    } else {
        usize::try_from(i).ok()?
    };
    (i < len).then_some(i)
}

/// A JSON number the way jaq holds it.
#[derive(Debug, Clone, Copy)]
enum N {
    /// A machine integer (jaq's `isize`).
    Int(i64),
    /// An integer above `i64::MAX` (a big integer in jaq).
    Big(u64),
    Float(f64),
}

fn num(n: &Number) -> N {
    if let Some(i) = n.as_i64() {
        N::Int(i)
    } else if let Some(u) = n.as_u64() {
        N::Big(u)
    } else {
        N::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn int<'a>(i: i64) -> Out<'a> {
    owned(Value::Number(Number::from(i)))
}

/// A float result; NaN and the infinities are left to jaq.
fn float<'a>(f: f64) -> Out<'a> {
    match Number::from_f64(f) {
        Some(n) if f.is_finite() => owned(Value::Number(n)),
        _ => Err(Fail::Unsupported),
    }
}

impl N {
    fn as_f64(self) -> f64 {
        match self {
            N::Int(i) => i as f64,
            N::Big(u) => u as f64,
            N::Float(f) => f,
        }
    }
}

/// jaq's number order: integers exactly, anything with a float as floats
/// (where `-0.0 == 0.0`).
pub(super) fn cmp_num(a: &Number, b: &Number) -> Ordering {
    let wide = |n| match n {
        N::Int(i) => Some(i128::from(i)),
        N::Big(u) => Some(i128::from(u)),
        N::Float(_) => None,
    };
    let (a, b) = (num(a), num(b));
    match (wide(a), wide(b)) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => cmp_f64(a.as_f64(), b.as_f64()),
    }
}

fn cmp_f64(a: f64, b: f64) -> Ordering {
    if a == 0.0 && b == 0.0 {
        Ordering::Equal
    } else if a.is_nan() {
        Ordering::Less
    } else if b.is_nan() {
        Ordering::Greater
    } else {
        a.total_cmp(&b)
    }
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// jq's total order: null < false < true < numbers < strings (by bytes)
/// < arrays (element-wise) < objects (by sorted keys, then by the values
/// in key order).
pub(super) fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Number(a), Value::Number(b)) => cmp_num(a, b),
        (Value::String(a), Value::String(b)) => a.as_bytes().cmp(b.as_bytes()),
        (Value::Array(a), Value::Array(b)) => lexicographic(a.iter(), b.iter(), cmp_values),
        (Value::Object(a), Value::Object(b)) => match (a.is_empty(), b.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => {
                let (a, b) = (sorted(a), sorted(b));
                let keys = a
                    .iter()
                    .map(|kv| kv.0.as_bytes())
                    .cmp(b.iter().map(|kv| kv.0.as_bytes()));
                let values = || lexicographic(a.iter().map(|kv| kv.1), b.iter().map(|kv| kv.1), cmp_values);
                keys.then_with(values)
            }
        },
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

/// An object's entries sorted by key bytes.
fn sorted(m: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut kv: Vec<_> = m.iter().collect();
    kv.sort_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
    kv
}

/// Compares two sequences element by element, a prefix first.
fn lexicographic<'v>(
    mut a: impl Iterator<Item = &'v Value>,
    mut b: impl Iterator<Item = &'v Value>,
    f: fn(&Value, &Value) -> Ordering,
) -> Ordering {
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match f(x, y) {
                Ordering::Equal => {}
                other => return other,
            },
        }
    }
}

fn compare(l: &Value, op: Cmp, r: &Value) -> bool {
    // Equality of strings is the common case: skip the ordering.
    if let (Value::String(a), Value::String(b), Cmp::Eq | Cmp::Ne) = (l, r, op) {
        return (a == b) == (op == Cmp::Eq);
    }
    holds(cmp_values(l, r), op)
}

/// Whether `op` holds between two values ordered `ord`.
pub(super) fn holds(ord: Ordering, op: Cmp) -> bool {
    match op {
        Cmp::Lt => ord.is_lt(),
        Cmp::Le => ord.is_le(),
        Cmp::Gt => ord.is_gt(),
        Cmp::Ge => ord.is_ge(),
        Cmp::Eq => ord.is_eq(),
        Cmp::Ne => ord.is_ne(),
    }
}

fn math<'a>(l: Cow<'a, Value>, op: Math, r: Cow<'a, Value>) -> Out<'a> {
    use Value::{Array, Null, Object, String as Str};
    match (op, &*l, &*r) {
        (_, Value::Number(a), Value::Number(b)) => math_num(num(a), op, num(b)),
        (Math::Add, Null, _) => Ok(Some(r)),
        (Math::Add, _, Null) => Ok(Some(l)),
        (Math::Add, Str(a), Str(b)) => owned(Str([a.as_str(), b.as_str()].concat())),
        (Math::Add, Array(_), Array(b)) => {
            let mut out = match l.into_owned() {
                Array(items) => items,
                _ => unreachable!("matched an array"),
            };
            out.extend(b.iter().cloned());
            owned(Array(out))
        }
        (Math::Add, Object(_), Object(b)) => {
            let mut out = match l.into_owned() {
                Object(m) => m,
                _ => unreachable!("matched an object"),
            };
            out.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
            owned(Object(out))
        }
        (Math::Sub, Array(a), Array(b)) => {
            let kept = a.iter().filter(|x| !b.iter().any(|y| cmp_values(x, y).is_eq()));
            owned(Array(kept.cloned().collect()))
        }
        (Math::Mul, Str(s), Value::Number(n)) | (Math::Mul, Value::Number(n), Str(s)) => match num(n) {
            N::Int(i) if i <= 0 => owned(Null),
            N::Int(i) if i <= 1_000 => owned(Str(s.repeat(i as usize))),
            N::Int(_) | N::Big(_) => Err(Fail::Unsupported),
            N::Float(_) => Err(Fail::Error),
        },
        (Math::Mul, Object(_), Object(_)) | (Math::Div, Str(_), Str(_)) => Err(Fail::Unsupported),
        _ => Err(Fail::Error),
    }
}

fn math_num<'a>(a: N, op: Math, b: N) -> Out<'a> {
    match (a, b) {
        (N::Int(a), N::Int(b)) => match op {
            Math::Add => a.checked_add(b).map_or(Err(Fail::Unsupported), int),
            Math::Sub => a.checked_sub(b).map_or(Err(Fail::Unsupported), int),
            Math::Mul => a.checked_mul(b).map_or(Err(Fail::Unsupported), int),
            Math::Div => float(a as f64 / b as f64),
            Math::Rem if b == 0 => Err(Fail::Error),
            Math::Rem => int(a.checked_rem(b).unwrap_or(0)),
        },
        // Big integers stay big in jaq.
        (N::Big(_), N::Int(_) | N::Big(_)) | (N::Int(_), N::Big(_)) => match op {
            Math::Rem if matches!(b, N::Int(0)) => Err(Fail::Error),
            Math::Div => float(a.as_f64() / b.as_f64()),
            _ => Err(Fail::Unsupported),
        },
        _ => {
            let (a, b) = (a.as_f64(), b.as_f64());
            float(match op {
                Math::Add => a + b,
                Math::Sub => a - b,
                Math::Mul => a * b,
                Math::Div => a / b,
                Math::Rem => a % b,
            })
        }
    }
}

fn length<'a>(x: &Value) -> Out<'a> {
    match x {
        Value::Null => int(0),
        Value::Bool(_) => Err(Fail::Error),
        Value::Number(n) => match num(n) {
            N::Int(i) => i.checked_abs().map_or(Err(Fail::Unsupported), int),
            N::Big(_) => owned(x.clone()),
            N::Float(f) => float(f.abs()),
        },
        Value::String(s) => count(s.chars().count()),
        Value::Array(a) => count(a.len()),
        Value::Object(o) => count(o.len()),
    }
}

fn count<'a>(n: usize) -> Out<'a> {
    i64::try_from(n).map_or(Err(Fail::Unsupported), int)
}

/// `has(key)`: jaq answers `false` for `null` and for objects asked about
/// a non-string key.
fn has<'a>(x: &Value, key: &Value) -> Out<'a> {
    let found = match (x, key) {
        (Value::Null, _) => false,
        (Value::Object(m), Value::String(k)) => m.contains_key(k),
        (Value::Object(_), _) => false,
        (Value::Array(a), Value::Number(n)) => match num(n) {
            N::Int(i) => wrap_index(i, a.len()).is_some(),
            _ => return Err(Fail::Unsupported),
        },
        // `{start, end}` slices arrays and strings; arrays also take arrays.
        (Value::Array(_), _) | (Value::String(_), Value::Object(_)) => return Err(Fail::Unsupported),
        _ => return Err(Fail::Error),
    };
    owned(Value::Bool(found))
}

/// A string that is exactly a JSON number (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`),
/// read as jaq reads it: an integer if it has neither fraction nor
/// exponent and fits an `i64`, else a finite float. Anything else is left
/// to jaq.
fn strict_json_number(s: &str) -> Option<Number> {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let int_len = digits(&mut i);
    if int_len == 0 || (int_len > 1 && b[int_start] == b'0') {
        return None;
    }
    let mut integer = true;
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return None;
        }
        integer = false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
        integer = false;
    }
    if i != b.len() {
        return None;
    }
    if integer {
        s.parse::<i64>().ok().map(Number::from)
    } else {
        s.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(Number::from_f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_total_order_ranks_types_then_values() {
        let ascending = [
            json!(null),
            json!(false),
            json!(true),
            json!(-1),
            json!(0.5),
            json!(1),
            json!(u64::MAX),
            json!(""),
            json!("B"),
            json!("a"),
            json!("é"),
            json!([]),
            json!([0]),
            json!([0, 0]),
            json!([1]),
            json!({}),
            json!({"a": 2}),
            json!({"a": 1, "b": 0}),
            json!({"b": 0}),
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(cmp_values(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn integers_and_floats_compare_by_value() {
        assert!(cmp_values(&json!(1), &json!(1.0)).is_eq());
        assert!(cmp_values(&json!(0.0), &json!(-0.0)).is_eq());
        assert!(cmp_values(&json!(i64::MAX), &json!(u64::MAX)).is_lt());
    }

    #[test]
    fn negative_indices_count_from_the_end() {
        assert_eq!(wrap_index(-1, 3), Some(2));
        assert_eq!(wrap_index(-3, 3), Some(0));
        assert_eq!(wrap_index(-4, 3), None);
        assert_eq!(wrap_index(3, 3), None);
        assert_eq!(wrap_index(i64::MIN, 3), None);
    }

    #[test]
    fn strict_json_numbers_accept_only_the_json_grammar() {
        assert_eq!(strict_json_number("12"), Some(Number::from(12)));
        assert_eq!(strict_json_number("-0"), Some(Number::from(0)));
        assert_eq!(strict_json_number("1.5e3"), Number::from_f64(1500.0));
        for bad in [
            "", "-", "01", "1.", ".5", "1e", " 1", "1 ", "nan", "0x10", "+1", "1e999",
        ] {
            assert_eq!(strict_json_number(bad), None, "{bad:?}");
        }
    }
}
