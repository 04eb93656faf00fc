//! A reshape of captured fields written straight to JSON text.
//!
//! A job that keeps some fields of each line under new names
//! (`{ts, path: .http.path}` in jq) would build a [`Value`] per kept line
//! only for a sink to write it out again and drop it: on the `cli`
//! benchmark, building, writing and dropping those values was a fifth of
//! all the work. A [`Reshape`] writes the output object's text from the
//! fields' raw text instead, byte for byte what `serde_json` writes for the
//! value decoding would have built (keys in order, numbers and strings in
//! their canonical form), copying each field's text where it is already in
//! that form and decoding only the others.

use serde_json::Value;

use super::project::{object_field, Captured};
use crate::record::JsonText;

/// An object whose every field is a path of field names into the input
/// line, as jq's `{ts, path: .http.path}`: made once, applied to each
/// line's [`Captured`] fields by [`Captured::reshape`].
///
/// The output is a JSON object with each key once (the last entry wins
/// where a key repeats, as in jq) in `serde_json`'s key order. A path
/// that meets a missing field or `null` gives `null`, as in jq.
///
/// # Examples
///
/// ```
/// use weir_io::format::{Projection, Reshape};
///
/// let shape = Reshape::new([("ts", vec!["ts"]), ("path", vec!["http", "path"])]);
/// let mut all = Projection::default();
/// all.add(&["ts"]);
/// all.add(&["http"]);
/// let line = r#"{"ts": "12:00", "http": {"path": "/a", "method": "GET"}, "n": 1}"#;
/// let out = all.capture(line).unwrap().reshape(&shape).unwrap();
/// assert_eq!(out.as_str(), r#"{"path":"/a","ts":"12:00"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reshape {
    /// By output key, in `serde_json`'s order.
    entries: Vec<Entry>,
    /// What an output starts with room for: the keys and 24 bytes a value.
    capacity: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The key as JSON text, with its colon: `"ts":`.
    head: String,
    /// The path into the line, never empty.
    path: Vec<String>,
}

impl Reshape {
    /// The object whose key `k` holds the value at `path` in each line, for
    /// each `(k, path)` of `entries`. An entry with an empty path cannot
    /// be taken from a line's fields: [`Captured::reshape`] answers `None`
    /// for every line then.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::format::{Projection, Reshape};
    ///
    /// // The last `a` wins, as in jq's `{a: .x, a: .y}`.
    /// let shape = Reshape::new([("a", vec!["x"]), ("a", vec!["y"])]);
    /// let mut all = Projection::default();
    /// all.add(&["x"]);
    /// all.add(&["y"]);
    /// let out = all.capture(r#"{"x": 1, "y": 2}"#).unwrap().reshape(&shape).unwrap();
    /// assert_eq!(out.as_str(), r#"{"a":2}"#);
    /// ```
    pub fn new<K, P, S>(entries: impl IntoIterator<Item = (K, P)>) -> Reshape
    where
        K: Into<String>,
        P: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut keyed: Vec<(String, Vec<String>)> = Vec::new();
        for (key, path) in entries {
            let key = key.into();
            let path = path.into_iter().map(Into::into).collect();
            match keyed.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = path,
                None => keyed.push((key, path)),
            }
        }
        // `serde_json::Map` without `preserve_order` is a `BTreeMap` of
        // `String`s: byte order.
        keyed.sort_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
        let entries = keyed
            .into_iter()
            .map(|(key, path)| {
                let mut head = serde_json::to_string(&key).expect("a string always encodes");
                head.push(':');
                Entry { head, path }
            })
            .collect::<Vec<Entry>>();
        let capacity = 2 + entries.iter().map(|e| e.head.len() + 24).sum::<usize>();
        Reshape { entries, capacity }
    }
}

impl Captured<'_> {
    /// The object `shape` builds from the captured fields, as the JSON text
    /// `serde_json` writes for it: the same text as building the object
    /// from the decoded line and writing it. `None` when the capture cannot
    /// tell (a path's first field is not captured, a path is empty), when
    /// a path indexes something other than an object or `null` (jq's
    /// error: evaluate the decoded line for it), or when a value does not
    /// decode (a number out of range: decode the line for its error).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::format::{Projection, Reshape};
    ///
    /// let mut all = Projection::default();
    /// for field in ["a", "b", "c"] {
    ///     all.add(&[field]);
    /// }
    /// let captured = all.capture(r#"{"a": 1.50, "b": "caf\u00e9"}"#).unwrap();
    /// let both = Reshape::new([("b", ["b"]), ("a", ["a"]), ("c", ["c"])]);
    /// // As serde_json writes the decoded values: sorted keys, canonical forms.
    /// assert_eq!(captured.reshape(&both).unwrap().as_str(), r#"{"a":1.5,"b":"café","c":null}"#);
    ///
    /// let deeper = Reshape::new([("x", ["a", "x"])]);
    /// assert!(captured.reshape(&deeper).is_none()); // `.a.x` of a number: jq's error
    /// ```
    pub fn reshape(&self, shape: &Reshape) -> Option<JsonText> {
        // About the fields' text: one allocation for most outputs.
        let mut out = String::with_capacity(shape.capacity);
        out.push('{');
        for (i, entry) in shape.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&entry.head);
            let (first, rest) = entry.path.split_first()?;
            match self.field(first)? {
                None => out.push_str("null"),
                Some(raw) => write_at(raw, rest, &mut out)?,
            }
        }
        out.push('}');
        Some(JsonText::trusted(out))
    }
}

/// Writes the value at `path` inside the value whose raw text is `raw`.
fn write_at(raw: &str, path: &[String], out: &mut String) -> Option<()> {
    let Some((first, rest)) = path.split_first() else {
        return write_canonical(raw, out);
    };
    match raw.as_bytes().first()? {
        b'n' => out.push_str("null"),
        b'{' => match object_field(raw, first)? {
            None => out.push_str("null"),
            Some(inner) => write_at(inner, rest, out)?,
        },
        _ => return None,
    }
    Some(())
}

/// Writes the valid JSON text `raw` as `serde_json` writes its decoded
/// value: verbatim when it is already in that form, else decoded and
/// written.
fn write_canonical(raw: &str, out: &mut String) -> Option<()> {
    let b = raw.as_bytes();
    let verbatim = match b.first()? {
        // serde_json escapes only quotes, backslashes and control bytes,
        // which plain string text cannot hold.
        b'"' => !b.contains(&b'\\'),
        b't' | b'f' | b'n' => true,
        b'-' | b'0'..=b'9' => canonical_number(b),
        _ => false,
    };
    if verbatim {
        out.push_str(raw);
        return Some(());
    }
    let value: Value = serde_json::from_str(raw).ok()?;
    out.push_str(&serde_json::to_string(&value).ok()?);
    Some(())
}

/// Whether the valid JSON number `n` is written back unchanged by
/// `serde_json` (with `float_roundtrip`) after decoding: an integer that
/// fits (not `-0`, which decodes to a float), or a decimal fraction in the
/// range `ryu` writes without an exponent, with at most 15 significant
/// digits (so it is the shortest text of its double) and no trailing zero.
fn canonical_number(n: &[u8]) -> bool {
    let digits = n.strip_prefix(b"-").unwrap_or(n);
    if digits.iter().any(|&c| c == b'e' || c == b'E') {
        return false;
    }
    let Some(dot) = digits.iter().position(|&c| c == b'.') else {
        return digits.len() <= 18 && n != b"-0";
    };
    let (int, frac) = (&digits[..dot], &digits[dot + 1..]);
    if frac.last() == Some(&b'0') {
        return false;
    }
    if int == b"0" {
        // 0.0000ddd: ryu writes up to four zeros after the point.
        let zeros = frac.iter().take_while(|&&c| c == b'0').count();
        zeros <= 4 && frac.len() - zeros <= 15
    } else {
        int.len() + frac.len() <= 15
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::format::Projection;

    /// What the decoded path writes: the value at each path, built and
    /// written by serde_json.
    fn decoded(line: &str, entries: &[(&str, Vec<&str>)]) -> Option<String> {
        let v: Value = serde_json::from_str(line).ok()?;
        let mut out = serde_json::Map::new();
        for (key, path) in entries {
            let mut at = &v;
            for k in path {
                at = match at {
                    Value::Null => &Value::Null,
                    Value::Object(m) => m.get(*k).unwrap_or(&Value::Null),
                    _ => return None,
                };
            }
            out.insert((*key).to_owned(), at.clone());
        }
        serde_json::to_string(&Value::Object(out)).ok()
    }

    fn reshaped(line: &str, entries: &[(&str, Vec<&str>)]) -> Option<String> {
        let mut all = Projection::default();
        for (_, path) in entries {
            all.add(&path[..1]);
        }
        let shape = Reshape::new(entries.iter().map(|(k, p)| (*k, p.clone())));
        Some(all.capture(line)?.reshape(&shape)?.as_str().to_owned())
    }

    #[test]
    fn numbers_are_copied_only_where_serde_json_writes_them_unchanged() {
        for n in [
            "0",
            "7",
            "-7",
            "18446744073709551615",
            "-9223372036854775808",
            "123456789012345678",
            "-0",
            "0.5",
            "-0.5",
            "1.5",
            "1.50",
            "1.0",
            "0.00001",
            "0.000001",
            "0.0001234",
            "123456789012345.6",
            "12345678901234.5",
            "1e3",
            "1E-2",
            "2.5e10",
            "-0.0",
            "0.30000000000000004",
            "100000000000000000000",
            "1.7976931348623157e308",
            "123456789.123456",
        ] {
            let v: Value = serde_json::from_str(n).unwrap();
            let written = serde_json::to_string(&v).unwrap();
            if canonical_number(n.as_bytes()) {
                assert_eq!(written, n, "{n} was taken as canonical");
            }
            let mut out = String::new();
            write_canonical(n, &mut out).unwrap();
            assert_eq!(out, written, "{n}");
        }
        assert!(canonical_number(b"435.5") && canonical_number(b"200") && canonical_number(b"0.25"));
        assert!(!canonical_number(b"-0") && !canonical_number(b"1.50") && !canonical_number(b"1e3"));
    }

    #[test]
    fn strings_with_escapes_and_nested_values_are_written_as_serde_json_writes_them() {
        let entries = [
            ("s", vec!["s"]),
            ("o", vec!["o"]),
            ("deep", vec!["o", "b", "c"]),
            ("gone", vec!["o", "x", "y"]),
            ("n", vec!["n", "z"]),
        ];
        let line = r#"{"s":"a\/b\u00e9\n\"","o":{"b":{"c":[1.0, {"z":1,"a":-0}]},"a":"x"},"n":null}"#;
        assert_eq!(reshaped(line, &entries), decoded(line, &entries));
        assert_eq!(
            reshaped(line, &entries).unwrap(),
            r#"{"deep":[1.0,{"a":-0.0,"z":1}],"gone":null,"n":null,"o":{"a":"x","b":{"c":[1.0,{"a":-0.0,"z":1}]}},"s":"a/bé\n\""}"#
        );
    }

    #[test]
    fn indexing_a_string_number_or_array_and_out_of_range_numbers_are_left_to_decoding() {
        let path = [("x", vec!["a", "b"])];
        for line in [r#"{"a":"s"}"#, r#"{"a":1}"#, r#"{"a":[1]}"#, r#"{"a":true}"#] {
            assert_eq!(reshaped(line, &path), None, "{line}");
        }
        assert_eq!(reshaped(r#"{"a":1e400}"#, &[("x", vec!["a"])]), None);
        // A field not captured cannot be told apart from a missing one.
        let mut all = Projection::default();
        all.add(&["a"]);
        let captured = all.capture(r#"{"a":1,"b":2}"#).unwrap();
        assert!(captured.reshape(&Reshape::new([("b", ["b"])])).is_none());
        assert!(captured
            .reshape(&Reshape::new([("b", Vec::<String>::new())]))
            .is_none());
    }

    #[test]
    fn keys_are_sorted_and_escaped_and_the_last_entry_for_a_key_wins() {
        let entries = [
            ("b", vec!["a"]),
            ("é\"", vec!["a"]),
            ("A", vec!["c"]),
            ("b", vec!["c"]),
        ];
        let line = r#"{"a":1,"c":2}"#;
        assert_eq!(reshaped(line, &entries).unwrap(), r#"{"A":2,"b":2,"é\"":1}"#);
        assert_eq!(reshaped(line, &entries), decoded(line, &entries));
    }

    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| serde_json::to_string(&f).unwrap()),
            (0u32..100_000, 0u32..10_000, 0usize..6)
                .prop_map(|(i, f, z)| format!("{i}.{}{f}", "0".repeat(z))),
            (0u32..100, -30i32..30).prop_map(|(m, e)| format!("{m}e{e}")),
            "[a-z\u{e9}\"\\\\/\n]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            "[a-z]{0,4}".prop_map(|s| format!("\"{s}\\u00e9\\/\"")),
            Just("true".to_owned()),
            Just("null".to_owned()),
        ]
    }

    proptest! {
        #[test]
        fn a_reshape_writes_what_serde_json_writes_for_the_decoded_object(
            a in scalar(),
            b in scalar(),
            c in scalar(),
        ) {
            let line = format!(r#"{{"a":{a},"h":{{"b":{b},"x":[{c}]}},"c":{c}}}"#);
            let entries = [
                ("z", vec!["a"]),
                ("b", vec!["h", "b"]),
                ("c", vec!["c"]),
                ("x", vec!["h", "x"]),
                ("m", vec!["missing"]),
            ];
            // `None` (the scan refuses a number past 1e300, say) sends the
            // line to decoding: allowed, and never for plain lines (the
            // tests above).
            if let Some(out) = reshaped(&line, &entries) {
                prop_assert_eq!(Some(out), decoded(&line, &entries), "{}", line);
            }
        }
    }
}
