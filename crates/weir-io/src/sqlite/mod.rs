//! SQLite (bundled: nothing to install), behind the `sqlite` feature:
//! [`SqliteSink`] writes [`Row`]s of [`SqlValue`]s into a table;
//! [`SqliteSource`] reads a table (or a query) in key order, each row a
//! JSON object, checkpointed by the last finalized key.
//!
//! # How the source reads
//!
//! - Keyset pagination: `SELECT * FROM t AS q WHERE q.key >= ? ORDER BY
//!   q.key LIMIT n` (see [`sql::Select`](crate::sql::Select)), the last
//!   key bound, never written into the SQL; table and key names must be
//!   plain identifiers and are quoted, as the sink's.
//! - On a database thread of its own (`weir-sqlite-source`), one page
//!   ahead of the pipeline ([`page_size`](SqliteSourceConfig::page_size)
//!   rows a page), on a read-only connection.
//! - The key must be unique, never NULL, integers or text: a NULL key
//!   fails the source before its first row, a repeated key when it is
//!   met (rows would be skipped otherwise), as a last `Err` item of
//!   [`Rows`].
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
mod source;

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{IoError, IoErrorKind};
use crate::sql::Dialect;

pub use self::sink::{SqliteMode, SqliteSink, SqliteSinkConfig};
pub use self::source::{SqliteSource, SqliteSourceConfig};
pub use crate::sql::{Row, Rows, Select, SqlType, SqlValue};

/// How long a connection waits for another one's lock before it fails
/// with "database is locked".
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite's limit on the parameters of one statement (its default since
/// 3.32; the bundled library keeps it).
pub(crate) const MAX_PARAMS: usize = 32_766;

/// What SQLite allows in names: `sqlite_…` is its own, at most 2000
/// columns a table (its default limit).
pub(crate) const SQLITE: Dialect = Dialect {
    system: "SQLite",
    reserved: "sqlite_",
    max_len: usize::MAX,
    max_columns: 2_000,
    schemas: false,
};

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
    SQLITE.identifier(what, name)
}

/// The type a column of `ty` is declared with in `CREATE TABLE` (JSON is
/// `TEXT`: a `JSON` declaration would give the column numeric affinity).
pub(crate) fn declared(ty: SqlType) -> &'static str {
    match ty {
        SqlType::Integer => "INTEGER",
        SqlType::Real => "REAL",
        SqlType::Text | SqlType::Json => "TEXT",
        SqlType::Blob => "BLOB",
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
}
