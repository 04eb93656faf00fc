//! The items that flow out of sources: raw [`Line`]s as read, and decoded
//! [`Record`]s, each with the [`Origin`] it came from.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where an item came from: a file (or `<stdin>`, `<generator>`), its
/// 1-based line number and the byte offset of the line's start in the
/// (decompressed) stream.
///
/// Serializes as `{"file": "data/x.jsonl", "line": 17, "offset": 1234}`
/// and displays as `data/x.jsonl:17`.
///
/// # Examples
///
/// ```
/// use weir_io::Origin;
///
/// let origin = Origin::new("data/x.jsonl", 17, 1234);
/// assert_eq!(origin.to_string(), "data/x.jsonl:17");
/// let json = serde_json::to_string(&origin).unwrap();
/// assert_eq!(json, r#"{"file":"data/x.jsonl","line":17,"offset":1234}"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// The file's path as given (after glob expansion), or `<stdin>`.
    pub file: Arc<str>,
    /// The line number, from 1. For CSV, the line the record starts on.
    pub line: u64,
    /// The byte offset of the line's start in the (decompressed) stream.
    pub offset: u64,
}

impl Origin {
    /// An origin in `file` at `line` (from 1), starting at byte `offset`.
    ///
    /// # Examples
    ///
    /// ```
    /// let origin = weir_io::Origin::new("<stdin>", 1, 0);
    /// assert_eq!(&*origin.file, "<stdin>");
    /// ```
    pub fn new(file: impl Into<Arc<str>>, line: u64, offset: u64) -> Origin {
        Origin {
            file: file.into(),
            line,
            offset,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Why a [`Line`] could not be read cleanly. A line with a fault fails to
/// decode (a [`DecodeError`](crate::DecodeError)), so it reaches the
/// pipeline's error policy or dead-letter sink with its text and origin.
///
/// Serializes with a `kind` tag: `{"kind": "too_long", "len": 20000000,
/// "max": 16777216}`.
///
/// # Examples
///
/// ```
/// use weir_io::Fault;
///
/// let fault = Fault::InvalidUtf8 { at: 3 };
/// assert_eq!(serde_json::to_string(&fault).unwrap(), r#"{"kind":"invalid_utf8","at":3}"#);
/// assert_eq!(fault.to_string(), "invalid UTF-8 at byte 3");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Fault {
    /// The line is not valid UTF-8; `at` is the byte column (from 0) of
    /// the first invalid byte. The line's text is its lossy decoding.
    InvalidUtf8 {
        /// The byte column of the first invalid byte, from 0.
        at: usize,
    },
    /// The line is longer than the source's `max_line_bytes`; its text
    /// holds only its first [`TOO_LONG_KEPT`]
    /// bytes (the rest was discarded while reading).
    TooLong {
        /// The line's full length in bytes (without its line ending).
        len: u64,
        /// The limit it went over.
        max: u64,
    },
    /// The CSV reader could not read the record.
    Csv {
        /// What the CSV reader said.
        message: String,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::InvalidUtf8 { at } => write!(f, "invalid UTF-8 at byte {at}"),
            Fault::TooLong { len, max } => {
                write!(f, "line too long: {len} bytes (the limit is {max})")
            }
            Fault::Csv { message } => write!(f, "unreadable CSV record: {message}"),
        }
    }
}

/// How many bytes of a too-long line its [`Line::text`] keeps.
pub const TOO_LONG_KEPT: usize = 1024;

/// A raw unit of input as read, before decoding: one line (for
/// [`Format::Lines`](crate::Format::Lines) and
/// [`Format::JsonLines`](crate::Format::JsonLines)) or one CSV record.
///
/// Serializes (e.g. as a dead letter's item) as `{"text": "...", "origin":
/// {...}}`, plus `"fault": {...}` when the line has one.
///
/// # Examples
///
/// ```
/// use weir_io::{Line, Origin};
///
/// let line = Line::new(r#"{"a":1}"#, Origin::new("x.jsonl", 3, 40));
/// let json = serde_json::to_value(&line).unwrap();
/// assert_eq!(json["text"], r#"{"a":1}"#);
/// assert_eq!(json["origin"]["line"], 3);
/// assert!(json.get("fault").is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The line without its line ending (`\n` or `\r\n`); for CSV, the
    /// record's fields joined again as CSV text.
    pub text: String,
    /// Where the line starts.
    pub origin: Origin,
    /// Why the line could not be read cleanly, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// For CSV, the record as read: its fields and the file's header, so
    /// that decoding does not parse [`text`](Self::text) again. Not
    /// serialized.
    #[serde(skip)]
    pub csv: Option<CsvRow>,
    /// Where the next line starts: the byte offset (in the decompressed
    /// stream) just past this line's ending. Reading resumes there once
    /// this line is done (see [`crate::checkpoint`]). Not serialized.
    #[serde(skip)]
    pub end: u64,
}

impl Line {
    /// A clean line of `text` from `origin`, ended by a `\n` (its
    /// [`end`](Line::end); the readers set the true one).
    ///
    /// # Examples
    ///
    /// ```
    /// let line = weir_io::Line::new("hello", weir_io::Origin::new("<stdin>", 1, 10));
    /// assert!(line.fault.is_none());
    /// assert_eq!(line.end, 16);
    /// ```
    pub fn new(text: impl Into<String>, origin: Origin) -> Line {
        let text = text.into();
        let end = origin.offset + text.len() as u64 + 1;
        Line {
            text,
            origin,
            fault: None,
            csv: None,
            end,
        }
    }
}

/// A CSV record as the reader split it (see [`Line::csv`]).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use weir_io::CsvRow;
///
/// let row = CsvRow { fields: vec!["1".into(), "ann".into()], header: Some(Arc::from(vec!["id".to_owned(), "name".to_owned()])) };
/// assert_eq!(row.fields.len(), row.header.as_ref().unwrap().len());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvRow {
    /// The record's fields.
    pub fields: Vec<String>,
    /// The file's header row, if it has one (shared by all its records).
    pub header: Option<Arc<[String]>>,
}

/// A decoded item: a JSON value and where it came from.
///
/// Serializes as `{"value": ..., "origin": {...}}` (`origin` left out
/// when there is none).
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// use weir_io::{Origin, Record};
///
/// let record = Record::new(json!({"id": 1})).with_origin(Origin::new("x.jsonl", 1, 0));
/// assert_eq!(record.value["id"], 1);
/// assert_eq!(record.origin.unwrap().to_string(), "x.jsonl:1");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The decoded value.
    pub value: Value,
    /// Where it came from, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

impl Record {
    /// A record of `value` with no origin.
    ///
    /// # Examples
    ///
    /// ```
    /// let record = weir_io::Record::new(serde_json::json!(1));
    /// assert!(record.origin.is_none());
    /// ```
    pub fn new(value: Value) -> Record {
        Record { value, origin: None }
    }

    /// The same record, from `origin`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{Origin, Record};
    /// let record = Record::new(serde_json::json!("x")).with_origin(Origin::new("a.txt", 2, 10));
    /// assert_eq!(record.origin.unwrap().offset, 10);
    /// ```
    pub fn with_origin(mut self, origin: Origin) -> Record {
        self.origin = Some(origin);
        self
    }
}

impl From<Value> for Record {
    fn from(value: Value) -> Record {
        Record::new(value)
    }
}

/// One JSON value as compact text, exactly as `serde_json` writes it (no
/// newline): what a [`Reshape`](crate::format::Reshape) writes, and what
/// the file and stdout sinks write as a JSON line without building a
/// [`Value`] (for CSV output they decode it and write its columns).
///
/// Always valid JSON: made by writing a value, never from unchecked text.
/// Serializes as the value it holds.
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// use weir_io::JsonText;
///
/// let text = JsonText::from_value(&json!({"b": [1, 2.5], "a": "x"}));
/// assert_eq!(text.as_str(), r#"{"a":"x","b":[1,2.5]}"#);
/// assert_eq!(text.to_value(), json!({"a": "x", "b": [1, 2.5]}));
/// assert_eq!(serde_json::to_string(&text).unwrap(), text.as_str());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JsonText(String);

impl JsonText {
    /// The text of `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(weir_io::JsonText::from_value(&serde_json::json!(null)).as_str(), "null");
    /// ```
    pub fn from_value(value: &Value) -> JsonText {
        // Writing a `Value` to a `String` cannot fail: its map keys are
        // strings and it holds no non-finite number.
        JsonText::trusted(serde_json::to_string(value).expect("a Value always encodes"))
    }

    /// Text the crate wrote as `serde_json` would.
    pub(crate) fn trusted(text: String) -> JsonText {
        // Kept as written: shrinking it to a `Box<str>` would copy it.
        JsonText(text)
    }

    /// The text.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(weir_io::JsonText::from_value(&serde_json::json!([1])).as_str(), "[1]");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value the text holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde_json::json;
    /// assert_eq!(weir_io::JsonText::from_value(&json!({"a": 1})).to_value(), json!({"a": 1}));
    /// ```
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).expect("JsonText holds valid JSON")
    }
}

impl fmt::Display for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}
