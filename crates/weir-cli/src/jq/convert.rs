//! Exact conversion between the pipeline's `serde_json::Value` and jaq's
//! `Val`.
//!
//! Into jaq: integers that fit an `isize` become jaq integers, larger
//! `u64`s jaq big integers, floats stay floats; strings are moved, not
//! copied; object entries keep serde_json's iteration order.
//!
//! Back: integers that fit an `i64` or a `u64` stay integers; larger ones
//! (only jaq's arithmetic makes them) become the nearest float, as JSON
//! numbers in serde_json cannot hold more. NaN becomes `null` and the
//! infinities ±`f64::MAX`, as jq prints them. Byte strings (from `@base64d`
//! and the like) become text, invalid UTF-8 replaced by U+FFFD. An object
//! key that is not a string is an error (jq's own rule).

use jaq_json::{Num, Val};
use serde_json::{Map, Number, Value};

/// Moves a JSON value into jaq.
pub(super) fn to_val(value: Value) -> Val {
    match value {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(b),
        Value::Number(n) => Val::Num(to_num(&n)),
        Value::String(s) => Val::from(s),
        Value::Array(items) => items.into_iter().map(to_val).collect(),
        Value::Object(map) => Val::obj(map.into_iter().map(|(k, v)| (Val::from(k), to_val(v))).collect()),
    }
}

fn to_num(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::from_integral(i)
    } else if let Some(u) = n.as_u64() {
        Num::from_integral(u)
    } else {
        // Without serde_json's `arbitrary_precision`, a number that is no
        // integer is an f64.
        Num::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Moves a jaq value back into JSON; `Err` names a value that JSON cannot
/// hold (an object key that is not a string).
pub(super) fn from_val(val: Val) -> Result<Value, String> {
    Ok(match val {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(b),
        Val::Num(n) => from_num(&n),
        Val::TStr(b) | Val::BStr(b) => Value::String(bytes_to_string(&b)),
        Val::Arr(items) => {
            let items = std::sync::Arc::try_unwrap(items).unwrap_or_else(|a| (*a).clone());
            Value::Array(items.into_iter().map(from_val).collect::<Result<_, _>>()?)
        }
        Val::Obj(map) => {
            let map = std::sync::Arc::try_unwrap(map).unwrap_or_else(|m| (*m).clone());
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Val::TStr(b) | Val::BStr(b) => bytes_to_string(&b),
                    other => return Err(format!("cannot use {other} as object key")),
                };
                out.insert(key, from_val(v)?);
            }
            Value::Object(out)
        }
    })
}

fn bytes_to_string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn from_num(n: &Num) -> Value {
    match n {
        Num::Int(i) => Value::Number(Number::from(*i as i64)),
        Num::Float(f) => from_f64(*f),
        // Big integers and decimal literals: their text is exact; serde_json
        // reads it as an integer if it fits, else as the nearest float.
        Num::BigInt(_) | Num::Dec(_) => {
            let text = n.to_string();
            match serde_json::from_str::<Number>(&text) {
                Ok(number) if number.as_f64().is_some_and(f64::is_finite) => Value::Number(number),
                _ => from_f64(text.parse().unwrap_or(f64::NAN)),
            }
        }
    }
}

/// A float as JSON: NaN is `null`, the infinities are ±`f64::MAX` (what
/// jq prints for them).
pub(super) fn from_f64(f: f64) -> Value {
    let f = if f == f64::INFINITY {
        f64::MAX
    } else if f == f64::NEG_INFINITY {
        f64::MIN
    } else {
        f
    };
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(v: &Value) -> Value {
        from_val(to_val(v.clone())).unwrap()
    }

    #[test]
    fn json_values_round_trip_exactly() {
        for v in [
            json!(null),
            json!(true),
            json!(0),
            json!(-1),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(1.5),
            json!(-0.0),
            json!(1e300),
            json!(0.1),
            json!(f64::MIN_POSITIVE),
            json!("héllo ✓ \u{0} \"q\""),
            json!([1, [2, {"a": null}]]),
            json!({"zé": 1, "a": {"b": [true]}, "": ""}),
        ] {
            let back = round_trip(&v);
            assert_eq!(back, v);
            assert_eq!(back.to_string(), v.to_string());
        }
    }

    #[test]
    fn non_finite_floats_become_null_or_the_largest_float() {
        assert_eq!(from_val(Val::from(f64::NAN)).unwrap(), json!(null));
        assert_eq!(from_val(Val::from(f64::INFINITY)).unwrap(), json!(f64::MAX));
        assert_eq!(from_val(Val::from(f64::NEG_INFINITY)).unwrap(), json!(f64::MIN));
    }

    #[test]
    fn big_integers_that_fit_no_u64_become_floats() {
        let big = Val::Num(Num::from_integral(u128::from(u64::MAX) * 4));
        assert_eq!(from_val(big).unwrap(), json!(7.378697629483821e19));
        let fits = Val::Num(Num::from_integral(u128::from(u64::MAX)));
        assert_eq!(from_val(fits).unwrap(), json!(u64::MAX));
    }

    #[test]
    fn non_string_object_keys_are_an_error() {
        let obj = Val::obj([(Val::from(1usize), Val::Null)].into_iter().collect());
        assert_eq!(from_val(obj).unwrap_err(), "cannot use 1 as object key");
    }
}
