//! SQLite (bundled: nothing to install), behind the `sqlite` feature:
//! [`SqliteSink`] writes [`Row`]s of [`SqlValue`]s into a table.
//!
//! # How the sink writes
//!
//! - The connection lives on a dedicated thread (`weir-sqlite`), fed by a
//!   channel: the sink's tokio task only sends rows and awaits replies, it
//!   never blocks on SQLite. The database is in WAL mode (readers never
//!   block the writer) with a busy timeout of 5 s and `synchronous =
//!   NORMAL`: a commit survives a crash of the process (as a flushed file
//!   does), not necessarily a power cut.
//! - Rows are inserted with prepared multi-row statements (`INSERT INTO t
//!   (a, b) VALUES (?, ?), (?, ?), …`), at most
//!   [`batch_rows`](SqliteSinkConfig::batch_rows) rows each and never more
//!   than SQLite's limit of 32 766 bound parameters. Values are always
//!   bound, never written into the SQL; table and column names must be
//!   plain identifiers (letters, digits, `_`) and are quoted.
//! - A [`flush`](weir::Sink::flush) commits one transaction holding every
//!   row written since the last one: the engine counts those items
//!   delivered when it commits, and a killed process leaves none of them
//!   half-written.
//! - Modes ([`SqliteMode`]): append; upsert by key columns (`INSERT … ON
//!   CONFLICT (key) DO UPDATE SET` every other column to the new row's
//!   value: the latest row of a key wins); replace (the table's rows are
//!   deleted in the run's first transaction, so readers see the old rows
//!   until it commits, then the new ones as they are committed).
//!
//! # A row the database refuses
//!
//! The engine's [`Sink`](weir::Sink) lets `write` fail one item and
//! `flush` fail every item written since the last flush, so a row can
//! only fail alone if it is executed while it is written. Hence two
//! designs, chosen with [`isolate_rows`](SqliteSinkConfig::isolate_rows):
//!
//! - **Batched** (the default): `write` checks the row's values against
//!   the column types (a mismatch fails that item alone) and buffers it;
//!   full batches go to the database thread as they fill, the rest at the
//!   flush. When a statement fails on a constraint, the rows of that
//!   statement are tried one by one to find the culprit, the transaction
//!   is rolled back and the flush fails with an error naming the row (its
//!   position in the transaction and its values). Every item of that
//!   flush fails (they go to the error policy or the dead-letter sink) and
//!   none of them is in the table: nothing is lost silently, but good rows
//!   are failed with the bad one.
//! - **Isolated**: `write` sends the row to the database thread and waits
//!   for it to be executed, one row a statement, inside the open
//!   transaction (a failed statement undoes only itself). A refused row
//!   fails that item alone, with its error; the others are committed at
//!   the flush. It costs a round trip to the database thread per row and
//!   gives up the multi-row statement.
//!
//! A failed flush (or a commit that fails: disk full, database locked for
//! longer than the busy timeout) rolls its transaction back and keeps its
//! rows: if the engine's retry policy calls `flush` again, they are
//! inserted again in a new transaction; the next `write` drops them
//! instead, because by then the engine has failed those items.
//!
//! # Examples
//!
//! ```
//! use weir::Pipeline;
//! use weir_io::sqlite::{Row, SqlType, SqlValue, SqliteMode, SqliteSink, SqliteSinkConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let db = dir.path().join("out.db");
//! let config = SqliteSinkConfig::new(&db, "users")
//!     .column("id", SqlType::Integer)
//!     .column("name", SqlType::Text)
//!     .mode(SqliteMode::Upsert { key: vec!["id".into()] });
//! let sink = SqliteSink::open(config).unwrap();
//! let rows = [(1, "ann"), (2, "bo"), (1, "anna")]
//!     .map(|(id, name)| Row::from(vec![SqlValue::Integer(id), SqlValue::from(name)]));
//! let report = Pipeline::from_iter(rows).sink(sink).run().await.unwrap();
//! assert_eq!(report.delivered, 3);
//! # let conn = rusqlite::Connection::open(&db).unwrap();
//! # let names: Vec<String> = conn.prepare("SELECT name FROM users ORDER BY id").unwrap()
//! #     .query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
//! # assert_eq!(names, ["anna", "bo"]);
//! # });
//! ```

mod sink;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use serde::Serialize;
use serde_json::Value;

use crate::error::{IoError, IoErrorKind};

pub use self::sink::{SqliteMode, SqliteSink, SqliteSinkConfig};

/// How long a connection waits for another one's lock before it fails
/// with "database is locked".
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite's limit on the parameters of one statement (its default since
/// 3.32; the bundled library keeps it).
pub(crate) const MAX_PARAMS: usize = 32_766;

/// SQLite's limit on the columns of a table.
pub(crate) const MAX_COLUMNS: usize = 2_000;

/// Opens (creating it and its missing parent directories) the database at
/// `path` for writing: WAL mode, `synchronous = NORMAL`, a busy timeout of
/// [`BUSY_TIMEOUT`]. Errors name the path.
pub(crate) fn open(path: &Path) -> Result<Connection, IoError> {
    if path.as_os_str().is_empty() {
        return Err(IoError::new(
            IoErrorKind::NotFound,
            None,
            "no SQLite database path given",
        ));
    }
    if path.is_dir() {
        return Err(IoError::new(
            IoErrorKind::IsDirectory,
            Some(path),
            format!("`{}` is a directory, not a SQLite database", path.display()),
        ));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| IoError::io("cannot create the directory", dir, e, IoErrorKind::Write))?;
    }
    let failed = |e: rusqlite::Error| error(path, "cannot open the SQLite database", &e);
    let conn = Connection::open(path).map_err(failed)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(failed)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(failed)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(IoError::new(
            IoErrorKind::Unsupported,
            Some(path),
            format!(
                "cannot put the SQLite database `{}` in WAL mode (it stays in `{mode}` mode)",
                path.display()
            ),
        ));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(failed)?;
    Ok(conn)
}

/// An [`IoError`] for `e`, a failure of `what` on the database at `path`;
/// its kind follows SQLite's error code.
pub(crate) fn error(path: &Path, what: &str, e: &rusqlite::Error) -> IoError {
    use rusqlite::ErrorCode as C;
    let kind = match e.sqlite_error_code() {
        Some(C::ConstraintViolation) => IoErrorKind::Rejected,
        Some(C::TypeMismatch | C::TooBig) => IoErrorKind::Encode,
        Some(C::PermissionDenied | C::ReadOnly) => IoErrorKind::PermissionDenied,
        Some(C::CannotOpen) if !path.exists() => IoErrorKind::NotFound,
        _ => IoErrorKind::Write,
    };
    IoError::new(kind, Some(path), format!("{what} `{}`: {e}", path.display()))
}

/// `name` double-quoted, once it is checked to be a plain identifier:
/// ASCII letters, digits and `_`, not starting with a digit, not
/// `sqlite_…` (SQLite's own tables). `what` says what it names, for the
/// error.
pub(crate) fn identifier(what: &str, name: &str) -> Result<String, IoError> {
    let plain = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        return Err(IoError::new(
            IoErrorKind::InvalidConfig,
            None,
            format!(
                "{what} {name:?} is not a plain SQL identifier: use ASCII letters, digits and `_`, \
                 not starting with a digit"
            ),
        ));
    }
    if name.len() >= 7 && name[..7].eq_ignore_ascii_case("sqlite_") {
        return Err(IoError::new(
            IoErrorKind::InvalidConfig,
            None,
            format!("{what} {name:?} is reserved: names starting with `sqlite_` are SQLite's own"),
        ));
    }
    Ok(format!("\"{name}\""))
}

/// The type of a column: how it is declared when the sink creates the
/// table, which [`SqlValue`]s it takes, and how a JSON value becomes one
/// ([`from_json`](SqlType::from_json)).
///
/// | type | declared | takes |
/// |---|---|---|
/// | `Integer` | `INTEGER` | `Integer` |
/// | `Real` | `REAL` | `Real`, `Integer` |
/// | `Text` | `TEXT` | `Text` |
/// | `Blob` | `BLOB` | `Blob` |
/// | `Json` | `TEXT` | `Text` holding valid JSON |
///
/// Every type takes `Null` (a `NOT NULL` column refuses it when the row
/// is inserted).
///
/// # Examples
///
/// ```
/// use weir_io::sqlite::SqlType;
///
/// assert_eq!("json".parse::<SqlType>().unwrap(), SqlType::Json);
/// assert_eq!(SqlType::Real.name(), "real");
/// assert!("float".parse::<SqlType>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqlType {
    /// A 64-bit signed integer.
    Integer,
    /// A 64-bit float.
    Real,
    /// UTF-8 text.
    Text,
    /// Bytes.
    Blob,
    /// A JSON value, stored as its text (SQLite's `json_…` functions read
    /// it).
    Json,
}

impl SqlType {
    /// Every type, in the order of the table above.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sqlite::SqlType;
    /// let names: Vec<&str> = SqlType::ALL.iter().map(|t| t.name()).collect();
    /// assert_eq!(names, ["integer", "real", "text", "blob", "json"]);
    /// ```
    pub const ALL: [SqlType; 5] = [
        SqlType::Integer,
        SqlType::Real,
        SqlType::Text,
        SqlType::Blob,
        SqlType::Json,
    ];

    /// The type's name as configs write it: `integer`, `real`, `text`,
    /// `blob`, `json`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(weir_io::sqlite::SqlType::Blob.name(), "blob");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            SqlType::Integer => "integer",
            SqlType::Real => "real",
            SqlType::Text => "text",
            SqlType::Blob => "blob",
            SqlType::Json => "json",
        }
    }

    /// The declared type in `CREATE TABLE` (JSON is `TEXT`: a `JSON`
    /// declaration would give the column numeric affinity).
    pub(crate) fn declared(self) -> &'static str {
        match self {
            SqlType::Integer => "INTEGER",
            SqlType::Real => "REAL",
            SqlType::Text | SqlType::Json => "TEXT",
            SqlType::Blob => "BLOB",
        }
    }

    /// Whether a column of this type takes `value`; `Err` says what it
    /// expected instead.
    pub(crate) fn check(self, value: &SqlValue) -> Result<(), String> {
        let ok = match (self, value) {
            (_, SqlValue::Null)
            | (SqlType::Integer, SqlValue::Integer(_))
            | (SqlType::Real, SqlValue::Real(_) | SqlValue::Integer(_))
            | (SqlType::Text, SqlValue::Text(_))
            | (SqlType::Blob, SqlValue::Blob(_)) => true,
            (SqlType::Json, SqlValue::Text(text)) => {
                return serde_json::from_str::<serde::de::IgnoredAny>(text)
                    .map(drop)
                    .map_err(|e| format!("expected JSON text, found invalid JSON ({e})"));
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected {}, found {}", self.expected(), value.kind()))
        }
    }

    fn expected(self) -> &'static str {
        match self {
            SqlType::Integer => "an integer",
            SqlType::Real => "a number",
            SqlType::Text => "text",
            SqlType::Blob => "bytes",
            SqlType::Json => "JSON text",
        }
    }

    /// The value a column of this type stores for the JSON `value`, or a
    /// message saying why it cannot (an [`IoError`] of kind
    /// [`Encode`](IoErrorKind::Encode)):
    ///
    /// - `null` is `Null` for every type;
    /// - `Integer`: an integer, a float with no fractional part (within
    ///   range), `true`/`false` as 1/0; a string is refused (convert it in
    ///   jq: `tonumber`);
    /// - `Real`: any number;
    /// - `Text`: a string as it is; a number or boolean as its JSON text;
    ///   arrays and objects are refused (use `Json`);
    /// - `Blob`: a string's UTF-8 bytes, or an array of integers 0–255;
    /// - `Json`: any value, as compact JSON text.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde_json::json;
    /// use weir_io::sqlite::{SqlType, SqlValue};
    ///
    /// assert_eq!(SqlType::Integer.from_json(&json!(3.0)).unwrap(), SqlValue::Integer(3));
    /// assert_eq!(SqlType::Text.from_json(&json!(7)).unwrap(), SqlValue::from("7"));
    /// assert_eq!(SqlType::Blob.from_json(&json!([0, 255])).unwrap(), SqlValue::Blob(vec![0, 255]));
    /// assert_eq!(SqlType::Json.from_json(&json!({"a": [1]})).unwrap(), SqlValue::from(r#"{"a":[1]}"#));
    /// assert_eq!(SqlType::Real.from_json(&json!(null)).unwrap(), SqlValue::Null);
    /// let err = SqlType::Integer.from_json(&json!("42")).unwrap_err();
    /// assert_eq!(err.to_string(), "expected an integer, found a string \"42\" (convert it in jq: `tonumber`)");
    /// ```
    pub fn from_json(self, value: &Value) -> Result<SqlValue, IoError> {
        let refused = |hint: &str| {
            IoError::new(
                IoErrorKind::Encode,
                None,
                format!("expected {}, found {}{hint}", self.expected(), json_kind(value)),
            )
        };
        Ok(match (self, value) {
            (_, Value::Null) => SqlValue::Null,
            (SqlType::Json, v) => SqlValue::Text(v.to_string()),
            (SqlType::Integer, Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => SqlValue::Integer(i),
                (None, Some(f)) if f.fract() == 0.0 && f >= -(2f64.powi(63)) && f < 2f64.powi(63) => {
                    SqlValue::Integer(f as i64)
                }
                _ => return Err(refused(" (not a whole number within 64 bits)")),
            },
            (SqlType::Integer, Value::Bool(b)) => SqlValue::Integer(i64::from(*b)),
            (SqlType::Integer, Value::String(_)) => return Err(refused(" (convert it in jq: `tonumber`)")),
            (SqlType::Real, Value::Number(n)) => match n.as_f64() {
                Some(f) => SqlValue::Real(f),
                None => return Err(refused("")),
            },
            (SqlType::Text, Value::String(s)) => SqlValue::Text(s.clone()),
            (SqlType::Text, Value::Number(_) | Value::Bool(_)) => SqlValue::Text(value.to_string()),
            (SqlType::Text, _) => return Err(refused(" (use the `json` type for arrays and objects)")),
            (SqlType::Blob, Value::String(s)) => SqlValue::Blob(s.as_bytes().to_vec()),
            (SqlType::Blob, Value::Array(items)) => {
                let bytes: Option<Vec<u8>> = items
                    .iter()
                    .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect();
                match bytes {
                    Some(bytes) => SqlValue::Blob(bytes),
                    None => return Err(refused(" (an array of bytes holds integers 0 to 255 only)")),
                }
            }
            _ => return Err(refused("")),
        })
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SqlType {
    type Err = IoError;

    fn from_str(s: &str) -> Result<SqlType, IoError> {
        SqlType::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
            IoError::new(
                IoErrorKind::InvalidConfig,
                None,
                format!("unknown column type {s:?} (expected integer, real, text, blob or json)"),
            )
        })
    }
}

fn json_kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string {}", Shown(s)),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A string for a message: quoted, cut after 40 characters.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 40;
        match self.0.char_indices().nth(MAX) {
            Some((cut, _)) => write!(f, "{:?}…", &self.0[..cut]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// One value of a [`Row`]: SQLite's storage classes.
///
/// Serializes as JSON would hold it (a dead letter shows it so): `null`,
/// a number, a string, and bytes as an array of numbers.
///
/// # Examples
///
/// ```
/// use weir_io::sqlite::SqlValue;
///
/// assert_eq!(SqlValue::from(7), SqlValue::Integer(7));
/// assert_eq!(SqlValue::from(Some("a")), SqlValue::Text("a".into()));
/// assert_eq!(SqlValue::from(None::<f64>), SqlValue::Null);
/// assert_eq!(serde_json::to_string(&SqlValue::Blob(vec![1, 2])).unwrap(), "[1,2]");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SqlValue {
    /// SQL `NULL`.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl SqlValue {
    /// What kind of value this is, for messages.
    fn kind(&self) -> String {
        match self {
            SqlValue::Null => "NULL".into(),
            SqlValue::Integer(i) => format!("an integer ({i})"),
            SqlValue::Real(r) => format!("a real ({r})"),
            SqlValue::Text(s) => format!("text {}", Shown(s)),
            SqlValue::Blob(b) => format!("a blob of {} bytes", b.len()),
        }
    }
}

/// A value for rusqlite to bind (a private type: rusqlite stays out of the
/// public API).
pub(crate) struct Bind<'a>(pub(crate) &'a SqlValue);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self.0 {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Integer(i) => ValueRef::Integer(*i),
            SqlValue::Real(r) => ValueRef::Real(*r),
            SqlValue::Text(s) => ValueRef::Text(s.as_bytes()),
            SqlValue::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// A value as written in SQL (text cut after 40 characters), for
/// messages: `NULL`, `7`, `1.5`, `'ann'`, `x'00ff'`.
impl fmt::Display for SqlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlValue::Null => f.write_str("NULL"),
            SqlValue::Integer(i) => write!(f, "{i}"),
            SqlValue::Real(r) => write!(f, "{r:?}"),
            SqlValue::Text(s) => {
                let shown: String = s.chars().take(40).collect();
                let more = if shown.len() < s.len() { "…" } else { "" };
                write!(f, "'{}'{more}", shown.replace('\'', "''"))
            }
            SqlValue::Blob(b) => {
                f.write_str("x'")?;
                for byte in b.iter().take(32) {
                    write!(f, "{byte:02x}")?;
                }
                f.write_str(if b.len() > 32 { "'…" } else { "'" })
            }
        }
    }
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> SqlValue {
        SqlValue::Integer(v)
    }
}

impl From<i32> for SqlValue {
    fn from(v: i32) -> SqlValue {
        SqlValue::Integer(v.into())
    }
}

impl From<f64> for SqlValue {
    fn from(v: f64) -> SqlValue {
        SqlValue::Real(v)
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> SqlValue {
        SqlValue::Text(v)
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> SqlValue {
        SqlValue::Text(v.to_owned())
    }
}

impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> SqlValue {
        SqlValue::Blob(v)
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> SqlValue {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// One row for a [`SqliteSink`]: a value per configured column, in the
/// order of [`columns`](SqliteSinkConfig::columns).
///
/// Serializes as an array of its values.
///
/// # Examples
///
/// ```
/// use weir_io::sqlite::{Row, SqlValue};
///
/// let row: Row = [SqlValue::from(1), SqlValue::from("ann"), SqlValue::Null].into_iter().collect();
/// assert_eq!(row.values().len(), 3);
/// assert_eq!(row.to_string(), "(1, 'ann', NULL)");
/// assert_eq!(serde_json::to_string(&row).unwrap(), r#"[1,"ann",null]"#);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Row {
    values: Vec<SqlValue>,
}

impl Row {
    /// A row of `values`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sqlite::{Row, SqlValue};
    /// assert_eq!(Row::new(vec![SqlValue::Null]).values(), [SqlValue::Null]);
    /// ```
    pub fn new(values: Vec<SqlValue>) -> Row {
        Row { values }
    }

    /// Its values, in column order.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sqlite::{Row, SqlValue};
    /// let row = Row::from(vec![SqlValue::from(2.5)]);
    /// assert_eq!(row.values(), [SqlValue::Real(2.5)]);
    /// ```
    pub fn values(&self) -> &[SqlValue] {
        &self.values
    }

    /// Its values, taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sqlite::{Row, SqlValue};
    /// let row = Row::from(vec![SqlValue::from("x")]);
    /// assert_eq!(row.into_values(), vec![SqlValue::Text("x".into())]);
    /// ```
    pub fn into_values(self) -> Vec<SqlValue> {
        self.values
    }
}

impl From<Vec<SqlValue>> for Row {
    fn from(values: Vec<SqlValue>) -> Row {
        Row { values }
    }
}

impl FromIterator<SqlValue> for Row {
    fn from_iter<I: IntoIterator<Item = SqlValue>>(iter: I) -> Row {
        Row {
            values: iter.into_iter().collect(),
        }
    }
}

/// `(1, 'ann', NULL)`: each value as SQL writes it (long text and blobs
/// cut), at most 16 values.
impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, v) in self.values.iter().take(16).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{v}")?;
        }
        if self.values.len() > 16 {
            f.write_str(", …")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_plain_words_and_sql_in_names_is_refused() {
        assert_eq!(identifier("table", "events_2").unwrap(), "\"events_2\"");
        assert_eq!(identifier("table", "_x").unwrap(), "\"_x\"");
        for bad in [
            "",
            "1st",
            "a b",
            "x\"; DROP TABLE t; --",
            "é",
            "a-b",
            "sqlite_master",
            "SQLITE_x",
        ] {
            let e = identifier("table", bad).unwrap_err();
            assert_eq!(e.kind(), IoErrorKind::InvalidConfig, "{bad}: {e}");
        }
    }

    #[test]
    fn values_are_checked_against_column_types() {
        assert!(SqlType::Real.check(&SqlValue::Integer(1)).is_ok());
        assert!(SqlType::Blob.check(&SqlValue::Null).is_ok());
        assert_eq!(
            SqlType::Integer.check(&SqlValue::from("x")).unwrap_err(),
            "expected an integer, found text \"x\""
        );
        assert!(SqlType::Json.check(&SqlValue::from("[1, {\"a\": null}]")).is_ok());
        assert!(SqlType::Json
            .check(&SqlValue::from("{oops"))
            .unwrap_err()
            .starts_with("expected JSON text, found invalid JSON"));
    }

    #[test]
    fn json_values_convert_or_say_why_not() {
        use serde_json::json;
        assert_eq!(
            SqlType::Integer.from_json(&json!(true)).unwrap(),
            SqlValue::Integer(1)
        );
        assert!(SqlType::Integer.from_json(&json!(1.5)).is_err());
        assert!(SqlType::Integer.from_json(&json!(1e300)).is_err());
        assert_eq!(SqlType::Real.from_json(&json!(2)).unwrap(), SqlValue::Real(2.0));
        assert!(SqlType::Real.from_json(&json!("2")).is_err());
        assert!(SqlType::Text.from_json(&json!([1])).is_err());
        assert_eq!(
            SqlType::Blob.from_json(&json!("hé")).unwrap(),
            SqlValue::Blob("hé".into())
        );
        assert!(SqlType::Blob.from_json(&json!([256])).is_err());
        assert_eq!(
            SqlType::Json.from_json(&json!("s")).unwrap(),
            SqlValue::from("\"s\"")
        );
    }

    #[test]
    fn rows_print_as_sql_with_long_values_cut() {
        let long = "x".repeat(50);
        let row = Row::from(vec![
            SqlValue::from(long.as_str()),
            SqlValue::Blob(vec![0xab; 40]),
            SqlValue::Real(1.0),
        ]);
        let shown = row.to_string();
        assert!(
            shown.starts_with(&format!("('{}'…, x'{}'…, 1.0)", "x".repeat(40), "ab".repeat(32))),
            "{shown}"
        );
        assert_eq!(SqlValue::from("it's").to_string(), "'it''s'");
    }
}
