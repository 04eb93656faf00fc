//! Projected JSON decoding: keep only the fields a pipeline reads.
//!
//! Most of the cost of decoding a JSON line into a [`Value`] is building
//! the values (allocating every string, every map); a pipeline that reads
//! five fields of twenty pays for twenty. A [`Projection`] names the
//! fields to keep; the others are still parsed, so a malformed line is an
//! error exactly as without a projection, but skipped without being built.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

/// The fields of a JSON object to keep, as a tree: a field kept whole, or
/// only some of its own fields. An input that is not an object where the
/// projection expects one is kept whole, so whatever reads it sees what
/// it would have seen without the projection.
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// use weir_io::{format::Projection, Format, Line, Origin};
///
/// let mut keep = Projection::default();
/// keep.add(&["level"]);
/// keep.add(&["http", "path"]);
/// let decoder = Format::JsonLines.decoder().project(keep);
/// let line = r#"{"level":"warn","user":"u1","http":{"path":"/a","method":"GET"}}"#;
/// let record = decoder.decode(Line::new(line, Origin::new("x.jsonl", 1, 0))).unwrap();
/// assert_eq!(record.value, json!({"level": "warn", "http": {"path": "/a"}}));
/// // A malformed line is still an error.
/// assert!(decoder.decode(Line::new(r#"{"level": }"#, Origin::new("x.jsonl", 2, 0))).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// `None`: the whole value; `Some(fields)`: only these fields, in a
    /// short list (a lookup compares lengths first: cheaper than a map's
    /// ordered search for the few fields a pipeline reads; measured with
    /// callgrind on the `cli` benchmark).
    fields: Option<Fields>,
}

/// A projection's fields: few, looked up by every key of every line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Fields(Vec<(String, Projection)>);

impl Fields {
    fn get(&self, key: &str) -> Option<&Projection> {
        self.0
            .iter()
            .find(|(k, _)| k.len() == key.len() && k == key)
            .map(|(_, p)| p)
    }

    fn entry(&mut self, key: &str) -> &mut Projection {
        let i = match self.0.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                self.0.push((key.to_owned(), Projection::default()));
                self.0.sort_by(|a, b| a.0.cmp(&b.0));
                self.0.iter().position(|(k, _)| k == key).expect("just added")
            }
        };
        &mut self.0[i].1
    }
}

impl Default for Projection {
    /// A projection that keeps nothing yet: [`add`](Projection::add) the
    /// fields to keep.
    fn default() -> Projection {
        Projection {
            fields: Some(Fields::default()),
        }
    }
}

impl Projection {
    /// A projection that keeps everything.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(weir_io::format::Projection::whole().is_whole());
    /// ```
    pub fn whole() -> Projection {
        Projection { fields: None }
    }

    /// Whether this keeps everything.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut p = weir_io::format::Projection::default();
    /// assert!(!p.is_whole()); // keeps nothing yet
    /// p.add::<&str>(&[]);
    /// assert!(p.is_whole());
    /// ```
    pub fn is_whole(&self) -> bool {
        self.fields.is_none()
    }

    /// Keeps the field at `path` (whole); an empty path keeps everything.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut p = weir_io::format::Projection::default();
    /// p.add(&["a", "b"]);
    /// p.add(&["a"]); // `a` whole now covers `a.b`
    /// assert_eq!(p.paths(), [vec!["a".to_owned()]]);
    /// ```
    pub fn add<S: AsRef<str>>(&mut self, path: &[S]) {
        let Some(fields) = &mut self.fields else {
            return;
        };
        match path.split_first() {
            None => self.fields = None,
            Some((first, rest)) => {
                let child = fields.entry(first.as_ref());
                if rest.is_empty() {
                    child.fields = None;
                } else {
                    child.add(rest);
                }
            }
        }
    }

    /// The kept paths (each kept whole), sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut p = weir_io::format::Projection::default();
    /// p.add(&["b"]);
    /// p.add(&["a", "x"]);
    /// assert_eq!(p.paths(), [vec!["a".to_owned(), "x".to_owned()], vec!["b".to_owned()]]);
    /// ```
    pub fn paths(&self) -> Vec<Vec<String>> {
        match &self.fields {
            None => vec![Vec::new()],
            Some(fields) => fields
                .0
                .iter()
                .flat_map(|(k, child)| {
                    child.paths().into_iter().map(move |mut p| {
                        p.insert(0, k.clone());
                        p
                    })
                })
                .collect(),
        }
    }

    /// Parses `text` keeping what this projection names.
    pub(crate) fn parse(&self, text: &str) -> Result<Value, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let value = self.deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }
}

impl<'de> DeserializeSeed<'de> for &Projection {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        match &self.fields {
            None => serde::Deserialize::deserialize(de),
            Some(fields) => de.deserialize_any(Keep(fields)),
        }
    }
}

/// Builds an object of the kept fields; any other value whole.
struct Keep<'p>(&'p Fields);

impl<'de> Visitor<'de> for Keep<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.0.get(key.as_ref()) {
                Some(child) => {
                    let value = map.next_value_seed(child)?;
                    out.insert(key.into_owned(), value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    // Anything but an object is kept whole, as `Value` would build it.
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
}

/// A key borrowed from the input when it has no escapes (serde's own
/// `Cow<str>` always allocates: a key per field of every line).
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        de.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keep(paths: &[&[&str]]) -> Projection {
        let mut p = Projection::default();
        for path in paths {
            p.add(path);
        }
        p
    }

    #[test]
    fn only_the_named_fields_are_built_nested_ones_too() {
        let p = keep(&[&["a"], &["h", "p"]]);
        let v = p
            .parse(r#"{"a":[1,{"x":2}],"b":"skip","h":{"p":"/","m":"GET"},"c":{"d":[1,2]}}"#)
            .unwrap();
        assert_eq!(v, json!({"a": [1, {"x": 2}], "h": {"p": "/"}}));
    }

    #[test]
    fn a_non_object_where_fields_are_expected_is_kept_whole() {
        let p = keep(&[&["h", "p"]]);
        assert_eq!(p.parse(r#"{"h":"text"}"#).unwrap(), json!({"h": "text"}));
        assert_eq!(p.parse(r#"[1,2]"#).unwrap(), json!([1, 2]));
        assert_eq!(p.parse(r#"7"#).unwrap(), json!(7));
        assert_eq!(p.parse(r#"{"h":[{"p":1}]}"#).unwrap(), json!({"h": [{"p": 1}]}));
    }

    #[test]
    fn malformed_input_fails_as_without_a_projection_even_in_skipped_fields() {
        let p = keep(&[&["a"]]);
        for bad in [
            r#"{"a":1,"b":}"#,
            r#"{"a":1,"b":[1,}"#,
            r#"{"a":1} x"#,
            r#"{"a":1"#,
            r#"{"b":"\x"}"#,
        ] {
            let plain = serde_json::from_str::<Value>(bad).unwrap_err();
            let projected = p.parse(bad).unwrap_err();
            assert_eq!(
                (plain.line(), plain.column()),
                (projected.line(), projected.column()),
                "{bad}"
            );
        }
    }

    #[test]
    fn escaped_keys_match_and_whole_wins_over_parts() {
        let p = keep(&[&["a\"b"]]);
        assert_eq!(p.parse(r#"{"a\"b":1,"c":2}"#).unwrap(), json!({"a\"b": 1}));
        let mut p = keep(&[&["a", "b"]]);
        p.add(&["a"]);
        assert_eq!(
            p.parse(r#"{"a":{"b":1,"c":2}}"#).unwrap(),
            json!({"a": {"b": 1, "c": 2}})
        );
        p.add(&[] as &[&str]);
        assert!(p.is_whole());
    }
}
