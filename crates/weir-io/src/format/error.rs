use std::fmt;

use crate::error::IoError;
use crate::record::{Fault, Origin};

/// What kind of failure a [`DecodeError`] is.
///
/// # Examples
///
/// ```
/// use weir_io::{DecodeErrorKind, Fault, Format, Line, Origin};
///
/// let mut line = Line::new("caf\u{fffd}", Origin::new("x.txt", 1, 0));
/// line.fault = Some(Fault::InvalidUtf8 { at: 3 });
/// assert_eq!(Format::Lines.decode(line).unwrap_err().kind(), DecodeErrorKind::InvalidUtf8);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The line is not valid JSON.
    Json,
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// The line is longer than the source's limit.
    TooLong,
    /// The CSV record could not be read, or has the wrong number of
    /// fields.
    Csv,
    /// A typed CSV column's value does not parse as its type.
    Column,
    /// Reading the input failed (only from
    /// [`FileSource::records`](crate::file::FileSource::records), which
    /// ends with it).
    Io,
}

impl DecodeErrorKind {
    /// The kind as a short phrase, as in the error's message.
    fn as_str(self) -> &'static str {
        match self {
            DecodeErrorKind::Json => "invalid JSON",
            DecodeErrorKind::InvalidUtf8 => "invalid UTF-8",
            DecodeErrorKind::TooLong => "line too long",
            DecodeErrorKind::Csv => "invalid CSV",
            DecodeErrorKind::Column => "bad CSV value",
            DecodeErrorKind::Io => "read failed",
        }
    }
}

/// A line that could not be decoded: where (file, line, and column when
/// known), what kind of failure, and the detail.
///
/// Displays as `file:line:column: kind: detail`, e.g.
/// `data/x.jsonl:17:5: invalid JSON: expected `,` or `}``; the column (from
/// 1, serde_json's for JSON) is left out when unknown.
///
/// # Examples
///
/// ```
/// use weir_io::{DecodeErrorKind, Format, Line, Origin};
///
/// let err = Format::JsonLines.decode(Line::new(r#"{"a" 1}"#, Origin::new("data/x.jsonl", 17, 0))).unwrap_err();
/// assert_eq!(err.to_string(), "data/x.jsonl:17:6: invalid JSON: expected `:`");
/// assert_eq!((err.kind(), err.column()), (DecodeErrorKind::Json, Some(6)));
/// assert_eq!(err.origin().unwrap().to_string(), "data/x.jsonl:17");
/// ```
#[derive(Clone, Debug)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    origin: Option<Origin>,
    column: Option<u64>,
    detail: String,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, detail: impl Into<String>) -> DecodeError {
        DecodeError {
            kind,
            origin: None,
            column: None,
            detail: detail.into(),
        }
    }

    /// The same error, at `origin`.
    pub(crate) fn at(mut self, origin: Origin) -> DecodeError {
        self.origin = Some(origin);
        self
    }

    pub(crate) fn json(e: &serde_json::Error, origin: Origin) -> DecodeError {
        // serde_json's message ends with " at line L column C": keep the
        // code, the column goes into the position.
        let message = e.to_string();
        let detail = match message.rfind(" at line ") {
            Some(cut) if e.line() != 0 => message[..cut].to_owned(),
            _ => message,
        };
        DecodeError {
            kind: DecodeErrorKind::Json,
            origin: Some(origin),
            column: (e.column() != 0).then_some(e.column() as u64),
            detail,
        }
    }

    pub(crate) fn from_fault(fault: &Fault, origin: Origin) -> DecodeError {
        let (kind, column, detail) = match fault {
            Fault::InvalidUtf8 { at } => (
                DecodeErrorKind::InvalidUtf8,
                Some(*at as u64 + 1),
                format!("byte {at} is not part of a UTF-8 character"),
            ),
            Fault::TooLong { len, max } => (
                DecodeErrorKind::TooLong,
                None,
                format!("{len} bytes (the limit is {max})"),
            ),
            Fault::Csv { message } => (DecodeErrorKind::Csv, None, message.clone()),
        };
        DecodeError {
            kind,
            origin: Some(origin),
            column,
            detail,
        }
    }

    pub(crate) fn io(e: &IoError, origin: Option<Origin>) -> DecodeError {
        DecodeError {
            kind: DecodeErrorKind::Io,
            origin,
            column: None,
            detail: e.to_string(),
        }
    }

    /// What kind of failure this is.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{DecodeErrorKind, Format, Line, Origin};
    /// let err = Format::JsonLines.decode(Line::new("", Origin::new("a", 1, 0))).unwrap_err();
    /// assert_eq!(err.kind(), DecodeErrorKind::Json);
    /// ```
    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }

    /// Where the line that failed came from.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{Format, Line, Origin};
    /// let err = Format::JsonLines.decode(Line::new("nul", Origin::new("a.jsonl", 9, 120))).unwrap_err();
    /// assert_eq!(err.origin().unwrap().offset, 120);
    /// ```
    pub fn origin(&self) -> Option<&Origin> {
        self.origin.as_ref()
    }

    /// The column (from 1) within the line where decoding failed, when
    /// known.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{Format, Line, Origin};
    /// let err = Format::JsonLines.decode(Line::new("[1,,2]", Origin::new("a", 1, 0))).unwrap_err();
    /// assert_eq!(err.column(), Some(4));
    /// ```
    pub fn column(&self) -> Option<u64> {
        self.column
    }

    /// The detail without position or kind (e.g. `expected `:``).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{Format, Line, Origin};
    /// let err = Format::JsonLines.decode(Line::new("[1,,2]", Origin::new("a", 1, 0))).unwrap_err();
    /// assert_eq!(err.detail(), "expected value");
    /// ```
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}:")?;
            if let Some(column) = self.column {
                write!(f, "{column}:")?;
            }
            f.write_str(" ")?;
        }
        write!(f, "{}: {}", self.kind.as_str(), self.detail)
    }
}

impl std::error::Error for DecodeError {}
