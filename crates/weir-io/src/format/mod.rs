//! Decoding: from a raw [`Line`] to a [`Record`], by [`Format`].
//!
//! A [`Decoder`] made once from a [`Format`] is the hot-path form
//! (cloneable, `Send + Sync`, nothing to look up per line);
//! [`Format::decode`] is the convenient one.

mod csv;
mod error;
mod project;
mod reshape;
mod scan;

use std::sync::Arc;

use serde_json::Value;

pub(crate) use self::csv::join as join_csv;
pub use self::csv::{ColumnType, CsvOptions};
pub use self::error::{DecodeError, DecodeErrorKind};
pub use self::project::{object_field, Captured, Projection};
pub use self::reshape::Reshape;
use crate::record::{Line, Record};

/// How the lines of a source become [`Record`]s.
///
/// | format | a line becomes |
/// |---|---|
/// | [`Lines`](Format::Lines) | a JSON string: the line's text |
/// | [`JsonLines`](Format::JsonLines) | the JSON value parsed from the line (blank lines are skipped by the file and stdin sources) |
/// | [`Csv`](Format::Csv) | a JSON object keyed by the header (see [`CsvOptions`]) |
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// use weir_io::{Format, Line, Origin};
///
/// let line = Line::new(r#"{"id": 7}"#, Origin::new("x.jsonl", 1, 0));
/// let record = Format::JsonLines.decode(line.clone()).unwrap();
/// assert_eq!(record.value, json!({"id": 7}));
/// assert_eq!(Format::Lines.decode(line).unwrap().value, json!(r#"{"id": 7}"#));
/// ```
#[derive(Clone, Debug, PartialEq, Default)]
#[non_exhaustive]
pub enum Format {
    /// Each line is a JSON string.
    Lines,
    /// Each line is a JSON value. The default.
    #[default]
    JsonLines,
    /// Comma- (or otherwise) separated values.
    Csv(CsvOptions),
}

impl Format {
    /// The decoder for this format: make it once, decode many lines.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{Format, Line, Origin};
    ///
    /// let decoder = Format::JsonLines.decoder();
    /// let record = decoder.decode(Line::new("[1, 2]", Origin::new("a", 1, 0))).unwrap();
    /// assert_eq!(record.value, serde_json::json!([1, 2]));
    /// ```
    pub fn decoder(&self) -> Decoder {
        let kind = match self {
            Format::Lines => Kind::Lines,
            Format::JsonLines => Kind::Json(None),
            Format::Csv(options) => Kind::Csv(Arc::new(options.clone())),
        };
        Decoder { kind }
    }

    /// Decodes one line (see [`Decoder::decode`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{Format, Line, Origin};
    ///
    /// let err = Format::JsonLines.decode(Line::new("{oops", Origin::new("x.jsonl", 17, 0))).unwrap_err();
    /// assert_eq!(err.to_string(), "x.jsonl:17:2: invalid JSON: key must be a string");
    /// ```
    pub fn decode(&self, line: Line) -> Result<Record, DecodeError> {
        self.decoder().decode(line)
    }

    /// Whether sources skip blank lines (only whitespace) for this format
    /// rather than yield them: true for JSON lines and CSV, false for
    /// plain lines.
    pub(crate) fn skips_blank_lines(&self) -> bool {
        !matches!(self, Format::Lines)
    }
}

/// Decodes [`Line`]s into [`Record`]s; made by [`Format::decoder`].
/// Cheap to clone (the CSV options are shared), `Send + Sync`.
///
/// # Examples
///
/// ```
/// use weir_io::{CsvOptions, Format, Line, Origin};
///
/// let decoder = Format::Csv(CsvOptions::default().has_header(false)).decoder();
/// let record = decoder.decode(Line::new("7,ann", Origin::new("x.csv", 1, 0))).unwrap();
/// assert_eq!(record.value, serde_json::json!({"1": 7, "2": "ann"}));
/// ```
#[derive(Clone, Debug)]
pub struct Decoder {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Lines,
    /// With the fields to keep, if not all.
    Json(Option<Arc<Projection>>),
    Csv(Arc<CsvOptions>),
}

impl Decoder {
    /// Decodes JSON keeping only the fields `keep` names (see
    /// [`Projection`]): for a pipeline that reads a few fields of large
    /// records, most of the decoding cost goes. Malformed lines are errors
    /// as before. Other formats are unaffected.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{format::Projection, Format, Line, Origin};
    ///
    /// let mut keep = Projection::default();
    /// keep.add(&["id"]);
    /// let decoder = Format::JsonLines.decoder().project(keep);
    /// let r = decoder.decode(Line::new(r#"{"id":7,"body":"…"}"#, Origin::new("x", 1, 0))).unwrap();
    /// assert_eq!(r.value, serde_json::json!({"id": 7}));
    /// ```
    pub fn project(mut self, keep: Projection) -> Decoder {
        if let Kind::Json(p) = &mut self.kind {
            *p = (!keep.is_whole()).then(|| Arc::new(keep));
        }
        self
    }

    /// Decodes `line` without taking it, where the format allows (JSON:
    /// the record is built from the borrowed text); `None` where decoding
    /// needs the line itself (plain lines, CSV): call
    /// [`decode`](Decoder::decode) then. For keeping a line that fails, as
    /// a dead letter, without copying every line that does not.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{Format, Line, Origin};
    ///
    /// let line = Line::new(r#"{"a":1"#, Origin::new("x.jsonl", 4, 0));
    /// let err = Format::JsonLines.decoder().decode_ref(&line).unwrap().unwrap_err();
    /// assert!(err.to_string().starts_with("x.jsonl:4:"));
    /// assert_eq!(line.text, r#"{"a":1"#); // still ours
    /// assert!(Format::Lines.decoder().decode_ref(&line).is_none());
    /// ```
    pub fn decode_ref(&self, line: &Line) -> Option<Result<Record, DecodeError>> {
        let parsed = match &self.kind {
            Kind::Json(keep) => {
                if let Some(fault) = &line.fault {
                    return Some(Err(DecodeError::from_fault(fault, line.origin.clone())));
                }
                match keep {
                    None => serde_json::from_str::<Value>(&line.text),
                    Some(keep) => keep.parse(&line.text),
                }
            }
            _ => return None,
        };
        Some(match parsed {
            Ok(value) => Ok(Record {
                value,
                origin: Some(line.origin.clone()),
            }),
            Err(e) => Err(DecodeError::json(&e, line.origin.clone())),
        })
    }

    /// Decodes `line`, moving its text and origin into the record. A line
    /// with a [`fault`](Line::fault) (invalid UTF-8, too long, unreadable
    /// CSV), malformed JSON, a CSV row of the wrong width or a typed CSV
    /// column that does not parse is a [`DecodeError`] naming the file,
    /// line and column. Never panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{DecodeErrorKind, Format, Line, Origin};
    ///
    /// let decoder = Format::JsonLines.decoder();
    /// let err = decoder.decode(Line::new(r#"{"a": 1"#, Origin::new("x.jsonl", 3, 0))).unwrap_err();
    /// assert_eq!(err.kind(), DecodeErrorKind::Json);
    /// assert_eq!(err.origin().unwrap().line, 3);
    /// ```
    pub fn decode(&self, line: Line) -> Result<Record, DecodeError> {
        let Line {
            text,
            origin,
            fault,
            csv: row,
            end: _,
        } = line;
        if let Some(fault) = &fault {
            return Err(DecodeError::from_fault(fault, origin));
        }
        let value = match &self.kind {
            Kind::Lines => Value::String(text),
            Kind::Json(None) => match serde_json::from_str::<Value>(&text) {
                Ok(value) => value,
                Err(e) => return Err(DecodeError::json(&e, origin)),
            },
            Kind::Json(Some(keep)) => match keep.parse(&text) {
                Ok(value) => value,
                Err(e) => return Err(DecodeError::json(&e, origin)),
            },
            Kind::Csv(options) => match csv::decode(options, text, row) {
                Ok(value) => value,
                Err(e) => return Err(e.at(origin)),
            },
        };
        Ok(Record {
            value,
            origin: Some(origin),
        })
    }
}
