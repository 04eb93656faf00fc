//! What the table sinks share (the SQLite sink, feature `sqlite`; the
//! PostgreSQL sink, feature `postgres`): a [`Row`] of [`SqlValue`]s,
//! the column types ([`SqlType`]), the write modes ([`SqlMode`]), and the
//! checks of table and column names; and what the table sources share:
//! what they read ([`Select`]) and the stream of their rows ([`Rows`]).
//!
//! Names are never interpolated as given: a table or column name must be a
//! plain identifier (ASCII letters, digits and `_`, not starting with a
//! digit), and is then double-quoted; values are always bound.
//!
//! # Examples
//!
//! ```
//! use weir_io::sql::{Row, SqlType, SqlValue};
//!
//! let row = Row::from(vec![SqlValue::from(7), SqlType::Json.from_json(&serde_json::json!({"a": 1})).unwrap()]);
//! assert_eq!(row.to_string(), r#"(7, '{"a":1}')"#);
//! ```

mod dead_letter;
pub(crate) mod source;
pub(crate) mod writer;

pub use dead_letter::{DeadLetterRows, DEAD_LETTER_COLUMNS};

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::error::{IoError, IoErrorKind};

pub use self::source::{Rows, Select};

/// How a table sink treats the rows already in its table (the SQLite
/// sink's [`SqliteMode`](crate::sqlite::SqliteMode) and the PostgreSQL
/// sink's `PostgresMode` are this type).
///
/// # Examples
///
/// ```
/// use weir_io::sql::SqlMode;
///
/// let upsert = SqlMode::Upsert { key: vec!["id".into()] };
/// assert_eq!(upsert.name(), "upsert");
/// assert_eq!(SqlMode::default(), SqlMode::Append);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SqlMode {
    /// Every row is inserted; a row that breaks a constraint of the table
    /// (say a duplicate primary key) is refused. The default.
    #[default]
    Append,
    /// A row whose `key` columns match a row of the table updates that
    /// row's other columns (`INSERT … ON CONFLICT (key) DO UPDATE SET
    /// column = excluded.column, …`; `DO NOTHING` when every column is a
    /// key column): the latest row of a key wins, also within one batch.
    /// The key must be the table's `PRIMARY KEY` or a `UNIQUE` constraint;
    /// when the sink creates the table, it declares the key `PRIMARY KEY`
    /// (its columns `NOT NULL`).
    Upsert {
        /// The key columns (among the configured columns).
        key: Vec<String>,
    },
    /// The table's rows are deleted (`DELETE FROM t`) in the run's first
    /// transaction, then rows are appended. Readers see the old rows until
    /// that transaction commits. A run that writes no row deletes them
    /// when the sink closes; one that fails before its first commit leaves
    /// them.
    Replace,
}

impl SqlMode {
    /// The mode's name as configs write it: `append`, `upsert`, `replace`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(weir_io::sql::SqlMode::Replace.name(), "replace");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            SqlMode::Append => "append",
            SqlMode::Upsert { .. } => "upsert",
            SqlMode::Replace => "replace",
        }
    }
}

/// The setters both table sinks' configs share (`SqliteSinkConfig`,
/// `PostgresSinkConfig`), written once: `$config` is the type, `$mode` its
/// mode alias, `$module` its module and `$args` what its `new` takes in
/// the examples; `$batch` says what a batch is and its default.
macro_rules! table_setters {
    ($config:ident, $mode:ident, $module:literal, $args:literal, $batch:literal, $default:literal) => {
        /// Adds a column (after those already added). By default, there are
        /// none.
        ///
        /// # Examples
        ///
        /// ```
        #[doc = concat!("use weir_io::", $module, "::{SqlType, ", stringify!($config), "};")]
        #[doc = concat!("let config = ", stringify!($config), "::new(", $args, ").column(\"payload\", SqlType::Json);")]
        /// assert_eq!(config.columns, [("payload".to_owned(), SqlType::Json)]);
        /// ```
        pub fn column(mut self, name: impl Into<String>, ty: SqlType) -> $config {
            self.columns.push((name.into(), ty));
            self
        }

        /// Sets the mode. By default, append.
        ///
        /// # Examples
        ///
        /// ```
        #[doc = concat!("use weir_io::", $module, "::{", stringify!($mode), ", ", stringify!($config), "};")]
        #[doc = concat!("let config = ", stringify!($config), "::new(", $args, ").mode(", stringify!($mode), "::Replace);")]
        #[doc = concat!("assert_eq!(config.mode, ", stringify!($mode), "::Replace);")]
        /// ```
        pub fn mode(mut self, mode: $mode) -> $config {
            self.mode = mode;
            self
        }

        /// Whether to create a missing table. By default, true.
        ///
        /// # Examples
        ///
        /// ```
        #[doc = concat!("let config = weir_io::", $module, "::", stringify!($config), "::new(", $args, ").create_table(false);")]
        /// assert!(!config.create_table);
        /// ```
        pub fn create_table(mut self, create: bool) -> $config {
            self.create_table = create;
            self
        }

        #[doc = concat!("Sets the rows per ", $batch, " (at least 1). By default, ", $default, ".")]
        ///
        /// # Examples
        ///
        /// ```
        #[doc = concat!("let config = weir_io::", $module, "::", stringify!($config), "::new(", $args, ").batch_rows(64);")]
        /// assert_eq!(config.batch_rows, 64);
        /// ```
        pub fn batch_rows(mut self, rows: usize) -> $config {
            self.batch_rows = rows;
            self
        }

        /// Whether each row is executed when written, to fail alone. By
        /// default, false.
        ///
        /// # Examples
        ///
        /// ```
        #[doc = concat!("let config = weir_io::", $module, "::", stringify!($config), "::new(", $args, ").isolate_rows(true);")]
        /// assert!(config.isolate_rows);
        /// ```
        pub fn isolate_rows(mut self, isolate: bool) -> $config {
            self.isolate_rows = isolate;
            self
        }
    };
}
pub(crate) use table_setters;

/// What a database allows in names, for the checks.
#[derive(Debug)]
pub(crate) struct Dialect {
    /// The database's name, for messages.
    pub(crate) system: &'static str,
    /// Names starting with this (in any case) are the database's own.
    pub(crate) reserved: &'static str,
    /// The longest name, in bytes (a longer one would be cut silently).
    pub(crate) max_len: usize,
    /// The most columns of a table.
    pub(crate) max_columns: usize,
    /// Whether a table name may be `schema.table`.
    pub(crate) schemas: bool,
}

impl Dialect {
    /// `name` double-quoted, once it is checked to be a plain identifier:
    /// ASCII letters, digits and `_`, not starting with a digit, not
    /// starting with the dialect's reserved prefix, not too long. `what`
    /// says what it names, for the error.
    pub(crate) fn identifier(&self, what: &str, name: &str) -> Result<String, IoError> {
        let invalid = |message: String| IoError::new(IoErrorKind::InvalidConfig, None, message);
        let plain = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain {
            return Err(invalid(format!(
                "{what} {name:?} is not a plain SQL identifier: use ASCII letters, digits and `_`, \
                 not starting with a digit"
            )));
        }
        let n = self.reserved.len();
        if name.len() >= n && name[..n].eq_ignore_ascii_case(self.reserved) {
            return Err(invalid(format!(
                "{what} {name:?} is reserved: names starting with `{}` are {}'s own",
                self.reserved, self.system
            )));
        }
        if name.len() > self.max_len {
            return Err(invalid(format!(
                "{what} {name:?} is longer than {}'s {} bytes",
                self.system, self.max_len
            )));
        }
        Ok(format!("\"{name}\""))
    }

    /// A table name, quoted: an identifier, or `schema.table` where the
    /// dialect has schemas.
    pub(crate) fn table(&self, name: &str) -> Result<String, IoError> {
        match name.split_once('.').filter(|_| self.schemas) {
            Some((schema, table)) => Ok(format!(
                "{}.{}",
                self.identifier("schema name", schema)?,
                self.identifier("table name", table)?
            )),
            None => self.identifier("table name", name),
        }
    }

    /// Checks a table sink's names: the table's, at least one column (at
    /// most the dialect's limit) and none twice (regardless of case), an
    /// upsert's key columns among the columns, `batch_rows` at least 1.
    pub(crate) fn names(
        &self,
        table: &str,
        columns: &[(String, SqlType)],
        mode: &SqlMode,
        batch_rows: usize,
    ) -> Result<Names, IoError> {
        let invalid = |message: String| IoError::new(IoErrorKind::InvalidConfig, None, message);
        let quoted_table = self.table(table)?;
        if columns.is_empty() {
            return Err(invalid(format!("no columns given for table `{table}`")));
        }
        if columns.len() > self.max_columns {
            return Err(invalid(format!(
                "{} columns for table `{table}`: {} takes at most {}",
                columns.len(),
                self.system,
                self.max_columns
            )));
        }
        let mut quoted = Vec::with_capacity(columns.len());
        for (i, (name, _)) in columns.iter().enumerate() {
            quoted.push(self.identifier("column name", name)?);
            if columns[..i].iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return Err(invalid(format!("column `{name}` is given twice")));
            }
        }
        let key = match mode {
            SqlMode::Upsert { key } => {
                if key.is_empty() {
                    return Err(invalid("upsert needs at least one key column".into()));
                }
                let mut at = Vec::with_capacity(key.len());
                for k in key {
                    let Some(i) = columns.iter().position(|(n, _)| n.eq_ignore_ascii_case(k)) else {
                        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
                        return Err(invalid(format!(
                            "upsert key column `{k}` is not one of the columns ({})",
                            names.join(", ")
                        )));
                    };
                    if at.contains(&i) {
                        return Err(invalid(format!("upsert key column `{k}` is given twice")));
                    }
                    at.push(i);
                }
                Some(at)
            }
            _ => None,
        };
        if batch_rows == 0 {
            return Err(invalid("batch_rows must be at least 1".into()));
        }
        Ok(Names {
            table: quoted_table,
            columns: quoted,
            key,
        })
    }
}

/// A table sink's checked names, quoted, and its upsert key.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// The table.
    pub(crate) table: String,
    /// The columns, in order.
    pub(crate) columns: Vec<String>,
    /// Upsert: the key columns' positions.
    pub(crate) key: Option<Vec<usize>>,
}

impl Names {
    /// The key columns, comma-separated (empty without a key).
    pub(crate) fn key_list(&self) -> String {
        let key = self.key.as_deref().unwrap_or_default();
        let keys: Vec<&str> = key.iter().map(|&i| self.columns[i].as_str()).collect();
        keys.join(", ")
    }

    /// `ON CONFLICT (key) DO UPDATE SET c = excluded.c, …` (`DO NOTHING`
    /// when every column is a key column); empty without a key.
    pub(crate) fn on_conflict(&self) -> String {
        let Some(key) = &self.key else {
            return String::new();
        };
        let set: Vec<String> = (0..self.columns.len())
            .filter(|i| !key.contains(i))
            .map(|i| format!("{c} = excluded.{c}", c = self.columns[i]))
            .collect();
        if set.is_empty() {
            format!(" ON CONFLICT ({}) DO NOTHING", self.key_list())
        } else {
            format!(
                " ON CONFLICT ({}) DO UPDATE SET {}",
                self.key_list(),
                set.join(", ")
            )
        }
    }

    /// `CREATE TABLE IF NOT EXISTS t (c TYPE [NOT NULL], …, PRIMARY KEY
    /// (key))`, each column declared as `declared` says.
    pub(crate) fn create(&self, types: &[SqlType], declared: impl Fn(SqlType) -> &'static str) -> String {
        let key = self.key.as_deref().unwrap_or_default();
        let mut defs: Vec<String> = self
            .columns
            .iter()
            .zip(types)
            .enumerate()
            .map(|(i, (c, t))| {
                let not_null = if key.contains(&i) { " NOT NULL" } else { "" };
                format!("{c} {}{not_null}", declared(*t))
            })
            .collect();
        if !key.is_empty() {
            defs.push(format!("PRIMARY KEY ({})", self.key_list()));
        }
        format!("CREATE TABLE IF NOT EXISTS {} ({})", self.table, defs.join(", "))
    }
}

/// The type of a column: how it is declared when the sink creates the
/// table, which [`SqlValue`]s it takes, and how a JSON value becomes one
/// ([`from_json`](SqlType::from_json)).
///
/// | type | SQLite declares | PostgreSQL declares | takes |
/// |---|---|---|---|
/// | `Integer` | `INTEGER` | `BIGINT` | `Integer` |
/// | `Real` | `REAL` | `DOUBLE PRECISION` | `Real`, `Integer` |
/// | `Text` | `TEXT` | `TEXT` | `Text` |
/// | `Blob` | `BLOB` | `BYTEA` | `Blob` |
/// | `Json` | `TEXT` | `JSONB` | `Text` holding valid JSON |
///
/// Every type takes `Null` (a `NOT NULL` column refuses it when the row
/// is inserted).
///
/// # Examples
///
/// ```
/// use weir_io::sql::SqlType;
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
    /// A JSON value: stored as its text in SQLite (its `json_…` functions
    /// read it), as `jsonb` or `json` in PostgreSQL.
    Json,
}

impl SqlType {
    /// Every type, in the order of the table above.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sql::SqlType;
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
    /// assert_eq!(weir_io::sql::SqlType::Blob.name(), "blob");
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

    pub(crate) fn expected(self) -> &'static str {
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
    /// use weir_io::sql::{SqlType, SqlValue};
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
pub(crate) struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 40;
        match self.0.char_indices().nth(MAX) {
            Some((cut, _)) => write!(f, "{:?}…", &self.0[..cut]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// One value of a [`Row`]: SQLite's storage classes, which PostgreSQL's
/// columns take too (an integer as `smallint`, `integer` or `bigint`
/// within range, …).
///
/// Serializes as JSON would hold it (a dead letter shows it so): `null`,
/// a number, a string, and bytes as an array of numbers.
///
/// # Examples
///
/// ```
/// use weir_io::sql::SqlValue;
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
    pub(crate) fn kind(&self) -> String {
        match self {
            SqlValue::Null => "NULL".into(),
            SqlValue::Integer(i) => format!("an integer ({i})"),
            SqlValue::Real(r) => format!("a real ({r})"),
            SqlValue::Text(s) => format!("text {}", Shown(s)),
            SqlValue::Blob(b) => format!("a blob of {} bytes", b.len()),
        }
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

/// One row for a table sink (the SQLite or the PostgreSQL sink): a value
/// per configured column, in the order of the sink's columns.
///
/// Serializes as an array of its values.
///
/// # Examples
///
/// ```
/// use weir_io::sql::{Row, SqlValue};
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
    /// use weir_io::sql::{Row, SqlValue};
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
    /// use weir_io::sql::{Row, SqlValue};
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
    /// use weir_io::sql::{Row, SqlValue};
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

/// A row with its column names, for messages: `(id = 7, name = 'ann')`.
pub(crate) struct Described<'a>(pub(crate) &'a Row, pub(crate) &'a [(String, SqlType)]);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.values().len() != self.1.len() {
            return write!(f, "{}", self.0);
        }
        f.write_str("(")?;
        for (i, (v, (name, _))) in self.0.values().iter().zip(self.1).enumerate().take(16) {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name} = {v}")?;
        }
        if self.1.len() > 16 {
            f.write_str(", …")?;
        }
        f.write_str(")")
    }
}

/// Whether `row` fits `columns` (their number and types); `Err` says why
/// not, naming the column.
pub(crate) fn check_row(row: &Row, columns: &[(String, SqlType)]) -> Result<(), String> {
    if row.values().len() != columns.len() {
        return Err(format!(
            "{} values for {} columns",
            row.values().len(),
            columns.len()
        ));
    }
    for (value, (name, ty)) in row.values().iter().zip(columns) {
        ty.check(value)
            .map_err(|e| format!("column `{name}` ({ty}): {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
