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
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    /// Sorted by key.
    entries: Vec<(String, Projection)>,
    /// A small hash table over the keys: slot [`slot`]`(key)` holds the
    /// index plus one of the first entry whose key hashes there (0: none),
    /// `next[i]` the next such entry after entry `i`. Most keys of a line
    /// are not kept, and one table read rejects most of them (a search of
    /// the entries by length and first byte was ~15% of the `cli` job's
    /// decoding threads, callgrind).
    slots: [u16; SLOTS],
    next: Vec<u16>,
}

const SLOTS: usize = 64;

/// The table slot of `key`: from its length and its first and last bytes.
fn slot(key: &[u8]) -> usize {
    let (first, last) = match key {
        [] => (0, 0),
        [first, .., last] => (*first, *last),
        [only] => (*only, *only),
    };
    (key.len().wrapping_mul(7) ^ usize::from(first) ^ usize::from(last).wrapping_mul(3)) % SLOTS
}

impl Default for Fields {
    fn default() -> Fields {
        Fields {
            entries: Vec::new(),
            slots: [0; SLOTS],
            next: Vec::new(),
        }
    }
}

impl Fields {
    /// The index of the entry for `key`.
    fn index(&self, key: &str) -> Option<usize> {
        let mut at = self.slots[slot(key.as_bytes())];
        while at != 0 {
            let i = usize::from(at - 1);
            if self.entries[i].0 == key {
                return Some(i);
            }
            at = self.next[i];
        }
        None
    }

    fn get(&self, key: &str) -> Option<&Projection> {
        self.index(key).map(|i| &self.entries[i].1)
    }

    fn entry(&mut self, key: &str) -> &mut Projection {
        let i = match self.entries.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                self.entries.push((key.to_owned(), Projection::default()));
                self.entries.sort_by(|a, b| a.0.cmp(&b.0));
                self.rehash();
                self.entries
                    .iter()
                    .position(|(k, _)| k == key)
                    .expect("just added")
            }
        };
        &mut self.entries[i].1
    }

    fn rehash(&mut self) {
        self.slots = [0; SLOTS];
        self.next = vec![0; self.entries.len()];
        // Backwards, so that each chain runs in entry order.
        for i in (0..self.entries.len()).rev() {
            let s = slot(self.entries[i].0.as_bytes());
            self.next[i] = self.slots[s];
            self.slots[s] = u16::try_from(i + 1).expect("a projection names fewer than 65535 fields");
        }
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
                .entries
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

/// The raw JSON text of the top-level fields a [`Projection`] names, taken
/// from one line without building any value: see
/// [`Projection::capture`]. Lets a caller build, per reader, only the
/// fields that reader needs ([`Captured::project`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured<'a> {
    /// The capturing projection's fields.
    of: &'a Fields,
    /// The raw text of each of the projection's fields, by index (the last
    /// one where a key repeats, as decoding keeps), if the line has it.
    found: Vec<Option<&'a str>>,
}

impl Projection {
    /// Validates `text` as one JSON object (never accepting what
    /// [`Decoder::decode`](crate::Decoder::decode) rejects), and keeps the raw
    /// text of each top-level field this projection names, whole (nested
    /// projections apply later, in [`Captured::project`]). `None` when the
    /// text is malformed, is not an object, or this projection keeps
    /// everything: decode the line the usual way then, for its error or
    /// its value.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde_json::json;
    /// use weir_io::format::Projection;
    ///
    /// let mut all = Projection::default();
    /// all.add(&["level"]);
    /// all.add(&["http", "path"]);
    /// let line = r#"{"level":"warn","user":"u1","http":{"path":"/a","method":"GET"}}"#;
    /// let captured = all.capture(line).unwrap();
    ///
    /// // A reader of `level` alone gets `level` alone.
    /// let mut level = Projection::default();
    /// level.add(&["level"]);
    /// assert_eq!(captured.project(&level), Some(json!({"level": "warn"})));
    /// assert_eq!(captured.project(&all), Some(json!({"level": "warn", "http": {"path": "/a"}})));
    ///
    /// assert!(all.capture(r#"{"level": }"#).is_none()); // malformed
    /// assert!(all.capture("[1, 2]").is_none()); // not an object
    /// ```
    pub fn capture<'a>(&'a self, text: &'a str) -> Option<Captured<'a>> {
        let of = self.fields.as_ref()?;
        let mut found: Vec<Option<&'a str>> = vec![None; of.entries.len()];
        // A scan of our own finds the fields (see `scan.rs` for why);
        // anything it refuses is decoded by serde_json, whose error is the
        // one reported. The last of a repeated key wins, as in decoding.
        super::scan::object_fields(text, |key, raw| {
            if let Some(i) = of.index(key) {
                found[i] = Some(raw);
            }
        })?;
        Some(Captured { of, found })
    }
}

impl<'a> Captured<'a> {
    /// The raw JSON text of the top-level field `key`: `Some(None)` when
    /// the line has no such field, `None` when the capturing projection
    /// does not name it (the capture cannot tell).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::format::Projection;
    ///
    /// let mut keep = Projection::default();
    /// keep.add(&["status"]);
    /// keep.add(&["user"]);
    /// let captured = keep.capture(r#"{"status": 503, "level": "warn"}"#).unwrap();
    /// assert_eq!(captured.field("status"), Some(Some("503")));
    /// assert_eq!(captured.field("user"), Some(None)); // named, absent
    /// assert_eq!(captured.field("level"), None); // not named: unknown
    /// ```
    pub fn field(&self, key: &str) -> Option<Option<&'a str>> {
        Some(self.found[self.of.index(key)?])
    }

    /// The object `keep` names, built from the captured text: the same
    /// value as decoding the line with `keep` as its projection. `None`
    /// when `keep` names a field the capturing projection does not (the
    /// capture cannot tell whether it is there), keeps everything, or a
    /// field's value does not decode (a number out of range: decode the
    /// line the usual way for its error).
    ///
    /// # Examples
    ///
    /// ```
    /// use serde_json::json;
    /// use weir_io::format::Projection;
    ///
    /// let mut all = Projection::default();
    /// all.add(&["a"]);
    /// all.add(&["b"]);
    /// let captured = all.capture(r#"{"a":1,"b":{"x":2,"y":3},"a":4}"#).unwrap();
    ///
    /// let mut bx = Projection::default();
    /// bx.add(&["b", "x"]);
    /// assert_eq!(captured.project(&bx), Some(json!({"b": {"x": 2}})));
    /// let mut a = Projection::default();
    /// a.add(&["a"]);
    /// assert_eq!(captured.project(&a), Some(json!({"a": 4}))); // the last `a`, as decoding keeps
    ///
    /// let mut c = Projection::default();
    /// c.add(&["c"]);
    /// assert_eq!(captured.project(&c), None); // not captured: unknown
    /// ```
    pub fn project(&self, keep: &Projection) -> Option<Value> {
        let fields = keep.fields.as_ref()?;
        let mut out = Map::new();
        for (key, child) in &fields.entries {
            let Some(raw) = self.field(key)? else {
                continue;
            };
            let value = match child.fields {
                None => serde_json::from_str::<Value>(raw).ok()?,
                Some(_) => child.parse(raw).ok()?,
            };
            out.insert(key.clone(), value);
        }
        Some(Value::Object(out))
    }
}

/// The raw JSON text of field `key` of the JSON object `text` (the last
/// one where the key repeats, as decoding keeps): `Some(None)` when the
/// object has no such field, `None` when `text` is not a well-formed
/// object or uses what the field scan refuses (an escaped key, an unpaired
/// surrogate escape); decode it then.
///
/// # Examples
///
/// ```
/// use weir_io::format::object_field;
///
/// let http = r#"{"method": "GET", "path": "/a"}"#;
/// assert_eq!(object_field(http, "path"), Some(Some(r#""/a""#)));
/// assert_eq!(object_field(http, "status"), Some(None));
/// assert_eq!(object_field("[1]", "path"), None);
/// ```
pub fn object_field<'a>(text: &'a str, key: &str) -> Option<Option<&'a str>> {
    let mut found = None;
    super::scan::object_fields(text, |k, raw| {
        if k == key {
            found = Some(raw);
        }
    })?;
    Some(found)
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

    #[test]
    fn a_capture_never_accepts_what_decoding_rejects_and_reads_plain_lines() {
        let p = keep(&[&["a"], &["h", "p"]]);
        for text in [
            r#"{"a":1,"b":"x","h":{"p":"/","m":"GET"}}"#,
            r#" {"a" : [1, {"x": 2}] , "b" : null }  "#,
            r#"{}"#,
            r#"{"a":"\u00e9\n\"","b":"\ud83d\ude00"}"#,
            r#"{"a\u0062":1}"#,
            r#"{"a":1,"b":}"#,
            r#"{"a":1,"b":[1,}"#,
            r#"{"a":1} x"#,
            r#"{"a":1}{"a":2}"#,
            r#"{"a":1"#,
            r#"{"b":"\x"}"#,
            r#"{"b":"\u12"}"#,
            "{\"b\":\"tab\there\"}",
            r#"{"b":01}"#,
            r#"{"b":1.}"#,
            r#"{"b":-}"#,
            r#"{"b":1e}"#,
            r#"{"b":tru}"#,
            r#"{"b":nul}"#,
            r#"{"b":[1,2,]}"#,
            r#"{"b":{"c":1,}}"#,
            r#"{"a":1,}"#,
            r#"{,}"#,
            r#"{"a" 1}"#,
            r#"{"a":1 "b":2}"#,
            r#"{'a':1}"#,
            r#"{"b":NaN}"#,
            r#"{"b":"\ud800"}"#,
            r#"{"a":"\ud800x"}"#,
            r#"{"b":1e400}"#,
            r#"{"a":1e400}"#,
            r#"{"b":-0.0e-5,"a":[[[[]]]]}"#,
            "{\"b\":\"\u{7f}\u{e9}\"}",
            "",
            "   ",
        ] {
            // A capture checks syntax; building a field checks the rest
            // (an unpaired surrogate, a number out of range), as decoding
            // does. It may refuse more than decoding does
            // (what a capture refuses, serde_json decodes: see `scan.rs`).
            let decoded = p.parse(text).ok();
            if let Some(built) = p.capture(text).and_then(|c| c.project(&p)) {
                assert_eq!(decoded, Some(built), "{text:?}");
            }
        }
        for plain in [
            r#"{"a":1,"b":"x","h":{"p":"/","m":"GET"}}"#,
            r#" {"a" : [1, {"x": 2}] , "b" : null }  "#,
            r#"{"a":"\u00e9\n\"","b":"\ud83d\ude00"}"#,
            "{}",
        ] {
            let built = p.capture(plain).and_then(|c| c.project(&p));
            assert_eq!(built, p.parse(plain).ok(), "{plain:?}");
        }
    }
}
