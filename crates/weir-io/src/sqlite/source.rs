use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{BUSY_TIMEOUT, SQLITE};
use crate::checkpoint::{KeyCheckpointer, KeyValue, Position};
use crate::error::{IoError, IoErrorKind};
use crate::sql::source::{asked, page, Columns, Page, Plan, Reader, Request, PAGE_SIZE};
use crate::sql::{Rows, Select};

/// What a [`SqliteSource`] reads, and how.
///
/// | setting | default |
/// |---|---|
/// | [`path`](Self::path), [`select`](Self::select), [`key`](Self::key) | none: give them to [`table`](Self::table) or [`query`](Self::query) |
/// | [`page_size`](Self::page_size) | 1000 |
///
/// # Examples
///
/// ```
/// use weir_io::sqlite::SqliteSourceConfig;
///
/// let config = SqliteSourceConfig::table("in.db", "events", "id").page_size(500);
/// assert_eq!(config.page_size, 500);
/// assert!(config.validate().is_ok());
/// let bad = SqliteSourceConfig::table("in.db", "events", "id; DROP TABLE events");
/// assert!(bad.validate().unwrap_err().to_string().contains("not a plain SQL identifier"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteSourceConfig {
    /// The database file (it must exist: the source never creates it).
    pub path: PathBuf,
    /// The table, or a query.
    pub select: Select,
    /// The key column: rows are read in its order (SQLite's `ORDER BY`:
    /// integers before text, text by the column's collation), and a
    /// resumed run reads the rows after the last finalized key. Its values
    /// must be unique, integers or text, never NULL.
    pub key: String,
    /// Rows per page (per `SELECT … LIMIT`). By default, 1000.
    pub page_size: usize,
}

impl SqliteSourceConfig {
    /// Reads every row of `table` in the database at `path`, in the order
    /// of the `key` column, with the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = weir_io::sqlite::SqliteSourceConfig::table("in.db", "events", "id");
    /// assert_eq!(config.select, weir_io::sql::Select::Table("events".into()));
    /// assert_eq!(config.page_size, 1000);
    /// ```
    pub fn table(
        path: impl Into<PathBuf>,
        table: impl Into<String>,
        key: impl Into<String>,
    ) -> SqliteSourceConfig {
        SqliteSourceConfig {
            path: path.into(),
            select: Select::Table(table.into()),
            key: key.into(),
            page_size: PAGE_SIZE,
        }
    }

    crate::sql::source::source_setters!(SqliteSourceConfig, "sqlite", path: PathBuf, "\"in.db\"");

    /// Checks the settings without touching the database: the table and
    /// key are plain identifiers (ASCII letters, digits, `_`), a query is
    /// not empty, `page_size` is at least 1. Errors are of kind
    /// [`InvalidConfig`](IoErrorKind::InvalidConfig).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sqlite::SqliteSourceConfig;
    /// let err = SqliteSourceConfig::table("in.db", "t", "id").page_size(0).validate().unwrap_err();
    /// assert_eq!(err.to_string(), "page_size must be at least 1");
    /// ```
    pub fn validate(&self) -> Result<(), IoError> {
        self.plan().map(drop)
    }

    fn plan(&self) -> Result<Plan, IoError> {
        let place = self.path.display().to_string();
        Plan::new(&SQLITE, "sqlite", &place, &self.select, &self.key, self.page_size)
    }
}

/// Reads a SQLite table (or a query's rows) in key order, a page at a
/// time, on a database thread of its own that reads one page ahead; each
/// row is a JSON object. Checkpointed by key: see
/// [`resume`](Self::resume).
///
/// Rows as JSON: an integer is a number; a real a number (`null` when it
/// is not finite); text a string; a blob an array of its bytes (numbers
/// 0–255: what the table sinks' `blob` columns take back); NULL `null`.
///
/// The connection is read-only (`PRAGMA query_only`): a query cannot
/// change the database. Each page is its own read: rows added behind the
/// last key while the source reads are read too.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use weir_io::sqlite::{SqliteSource, SqliteSourceConfig};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let db = dir.path().join("in.db");
/// rusqlite::Connection::open(&db).unwrap().execute_batch(
///     "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, photo BLOB);
///      INSERT INTO users VALUES (2, 'bo', NULL), (1, 'ann', x'ff00'), (3, 'cy', NULL);",
/// ).unwrap();
/// let source = SqliteSource::open(SqliteSourceConfig::table(&db, "users", "id").page_size(2)).unwrap();
/// let rows = weir::Pipeline::from_acked(source.rows())
///     .try_map(|row| row.map(|r| r.value))
///     .collect()
///     .await
///     .unwrap();
/// assert_eq!(rows[0], serde_json::json!({"id": 1, "name": "ann", "photo": [255, 0]}));
/// assert_eq!(rows.iter().map(|r| r["id"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
/// # });
/// ```
pub struct SqliteSource {
    reader: Reader,
    config: Arc<SqliteSourceConfig>,
}

impl std::fmt::Debug for SqliteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSource")
            .field("path", &self.config.path)
            .field("read", &self.reader.plan.read)
            .finish_non_exhaustive()
    }
}

impl SqliteSource {
    /// Checks the settings ([`validate`](SqliteSourceConfig::validate)),
    /// opens the database, checks that the table (or query) has the key
    /// column and that no two columns share a name, then starts the
    /// database thread, which asks for the first page at once. Blocks on
    /// SQLite: call it before the run. Errors name the database, the table
    /// and the column: a missing database or table is of kind
    /// [`NotFound`](IoErrorKind::NotFound), a missing key column of kind
    /// [`InvalidConfig`](IoErrorKind::InvalidConfig).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sqlite::{SqliteSource, SqliteSourceConfig};
    /// use weir_io::IoErrorKind;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = dir.path().join("in.db");
    /// let err = SqliteSource::open(SqliteSourceConfig::table(&db, "t", "id")).unwrap_err();
    /// assert_eq!(err.kind(), IoErrorKind::NotFound);
    /// rusqlite::Connection::open(&db).unwrap().execute_batch("CREATE TABLE t (n INTEGER)").unwrap();
    /// let err = SqliteSource::open(SqliteSourceConfig::table(&db, "t", "id")).unwrap_err();
    /// assert!(err.to_string().contains("has no column `id`"), "{err}");
    /// let err = SqliteSource::open(SqliteSourceConfig::table(&db, "u", "id")).unwrap_err();
    /// assert!(err.to_string().contains("has no table `u`"), "{err}");
    /// ```
    pub fn open(config: SqliteSourceConfig) -> Result<SqliteSource, IoError> {
        let plan = config.plan()?;
        let conn = connect(&config.path)?;
        let columns = describe(&conn, &plan, &config)?;
        let (requests, inbox) = mpsc::unbounded_channel();
        let worker = Worker {
            conn,
            plan: plan.clone(),
            columns,
            config: Arc::new(config.clone()),
            checked: false,
        };
        std::thread::Builder::new()
            .name("weir-sqlite-source".into())
            .spawn(move || worker.run(inbox))
            .map_err(|e| {
                IoError::io(
                    "cannot start the database thread for",
                    &config.path,
                    e,
                    IoErrorKind::Read,
                )
            })?;
        Ok(SqliteSource {
            reader: Reader::new(plan, requests),
            config: Arc::new(config),
        })
    }

    /// Resumes from the positions a store holds for the source named
    /// `name` (empty: a new source, read from the start), and returns the
    /// checkpointer to commit with a [`Committer`](crate::checkpoint::Committer).
    /// Rows are read after the stored key. A position written by a file
    /// source, or for another table, query or key column (what
    /// [`KeyPosition::read`](crate::checkpoint::KeyPosition::read) names),
    /// is refused with an error of kind [`Store`](IoErrorKind::Store).
    ///
    /// Without `resume`, rows are acknowledged to a checkpointer nobody
    /// reads.
    ///
    /// # Errors
    ///
    /// As above.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use futures::StreamExt;
    /// use weir_io::checkpoint::{CheckpointStore, Committer, MemoryCheckpoints};
    /// use weir_io::sqlite::{SqliteSource, SqliteSourceConfig};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = dir.path().join("in.db");
    /// let conn = rusqlite::Connection::open(&db).unwrap();
    /// conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2);").unwrap();
    /// let store = Arc::new(MemoryCheckpoints::default());
    /// let config = SqliteSourceConfig::table(&db, "t", "id");
    ///
    /// // A first run reads both rows and commits the last key.
    /// let mut source = SqliteSource::open(config.clone()).unwrap();
    /// let checkpointer = source.resume("t", &store.load("t").unwrap()).unwrap();
    /// let committer = Committer::start(checkpointer, store.clone(), std::time::Duration::from_secs(1));
    /// weir::Pipeline::from_acked(source.rows()).try_map(|r| r).run().await.unwrap();
    /// committer.finish().unwrap();
    ///
    /// // The next run reads only what was added since.
    /// conn.execute_batch("INSERT INTO t VALUES (3)").unwrap();
    /// let mut source = SqliteSource::open(config).unwrap();
    /// source.resume("t", &store.load("t").unwrap()).unwrap();
    /// let ids: Vec<i64> = source.rows().map(|r| r.item.unwrap().value["id"].as_i64().unwrap()).collect().await;
    /// assert_eq!(ids, [3]);
    /// # });
    /// ```
    pub fn resume(&mut self, name: &str, positions: &[Position]) -> Result<KeyCheckpointer, IoError> {
        self.reader.resume(name, positions)
    }

    /// Opens the database on a connection of its own and checks that the
    /// table (or query) still has the key column: a deleted database, a
    /// dropped table or column fail here. Blocks on SQLite, as
    /// [`open`](Self::open) does.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sqlite::{SqliteSource, SqliteSourceConfig};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = dir.path().join("in.db");
    /// let conn = rusqlite::Connection::open(&db).unwrap();
    /// conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY)").unwrap();
    /// let source = SqliteSource::open(SqliteSourceConfig::table(&db, "t", "id")).unwrap();
    /// assert!(source.healthcheck().is_ok());
    /// conn.execute_batch("DROP TABLE t").unwrap();
    /// assert!(source.healthcheck().unwrap_err().to_string().contains("has no table `t`"));
    /// ```
    pub fn healthcheck(&self) -> Result<(), IoError> {
        let conn = connect(&self.config.path)?;
        describe(&conn, &self.reader.plan, &self.config).map(drop)
    }

    /// The rows, in key order (after the resumed key, if any): see
    /// [`Rows`].
    ///
    /// # Examples
    ///
    /// See [`SqliteSource`].
    pub fn rows(self) -> Rows {
        self.reader.rows()
    }
}

/// Opens the database at `path` for reading: it must exist; the
/// connection refuses writes; a busy timeout of [`BUSY_TIMEOUT`].
fn connect(path: &Path) -> Result<Connection, IoError> {
    if !path.is_file() {
        let (kind, what) = if path.is_dir() {
            (IoErrorKind::IsDirectory, "is a directory, not a SQLite database")
        } else {
            (
                IoErrorKind::NotFound,
                "does not exist: no SQLite database to read",
            )
        };
        return Err(IoError::new(
            kind,
            Some(path),
            format!("`{}` {what}", path.display()),
        ));
    }
    let failed = |e: rusqlite::Error| read_error(path, "cannot open the SQLite database", &e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(failed)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(failed)?;
    conn.pragma_update(None, "query_only", true).map_err(failed)?;
    Ok(conn)
}

/// A failure of `what` reading the database at `path`: a missing table
/// is [`NotFound`](IoErrorKind::NotFound), the rest
/// [`Read`](IoErrorKind::Read).
fn read_error(path: &Path, what: &str, e: &rusqlite::Error) -> IoError {
    let kind = if e.to_string().starts_with("no such table") {
        IoErrorKind::NotFound
    } else {
        IoErrorKind::Read
    };
    IoError::new(kind, Some(path), format!("{what} `{}`: {e}", path.display()))
}

/// The columns of the rows read, once the key is found among them.
fn describe(conn: &Connection, plan: &Plan, config: &SqliteSourceConfig) -> Result<Columns, IoError> {
    let path = &config.path;
    let stmt = conn.prepare(&plan.describe()).map_err(|e| {
        let missing = match &config.select {
            Select::Table(t) if e.to_string().starts_with("no such table") => Some(t),
            _ => None,
        };
        match missing {
            Some(t) => IoError::new(
                IoErrorKind::NotFound,
                Some(path),
                format!("`{}` has no table `{t}`", path.display()),
            ),
            None => read_error(path, &format!("cannot read the {} of", plan.select), &e),
        }
    })?;
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let key = plan
        .key_index(&names, false, &format!("`{}`", path.display()))
        .map_err(|e| IoError::new(e.kind(), Some(path), e.to_string()))?;
    Ok(Columns {
        names: names.into(),
        key,
    })
}

/// A row's value as JSON.
fn json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(r) => serde_json::Number::from_f64(r).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Array(b.iter().map(|&byte| byte.into()).collect()),
    }
}

/// A key to bind (a private type: rusqlite stays out of the public API).
struct Bind<'a>(&'a KeyValue);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(match self.0 {
            KeyValue::Integer(i) => ValueRef::Integer(*i),
            KeyValue::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

/// The database thread: reads the page each request asks for.
struct Worker {
    conn: Connection,
    plan: Plan,
    columns: Columns,
    config: Arc<SqliteSourceConfig>,
    /// Whether the NULL keys were looked for (once a run).
    checked: bool,
}

impl Worker {
    fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Request>) {
        while let Some(request) = inbox.blocking_recv() {
            let page = self.fetch(request.after.as_ref());
            let _ = request.reply.send(page);
        }
    }

    fn fail(&self, e: &rusqlite::Error) -> IoError {
        read_error(
            &self.config.path,
            &format!("cannot read the {} of", self.plan.select),
            e,
        )
    }

    fn fetch(&mut self, after: Option<&KeyValue>) -> Result<Page, IoError> {
        if !self.checked {
            let mut stmt = self
                .conn
                .prepare(&self.plan.null_check())
                .map_err(|e| self.fail(&e))?;
            if stmt.exists([]).map_err(|e| self.fail(&e))? {
                return Err(self.plan.null_key());
            }
            self.checked = true;
        }
        let asked = asked(&self.plan, after);
        let limit = asked as i64;
        let sql = match after {
            Some(_) => self.plan.page("*", true, "?1", "?2"),
            None => self.plan.page("*", false, "", "?1"),
        };
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.fail(&e))?;
        let width = stmt.column_count();
        let mut rows = match after {
            Some(key) => stmt.query(rusqlite::params![Bind(key), limit]),
            None => stmt.query([limit]),
        }
        .map_err(|e| self.fail(&e))?;
        let mut fetched = Vec::with_capacity(asked);
        while let Some(row) = rows.next().map_err(|e| self.fail(&e))? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(json(row.get_ref(i).map_err(|e| self.fail(&e))?));
            }
            fetched.push(values);
        }
        page(&self.plan, &self.columns, after, asked, fetched)
            .map_err(|e| IoError::new(e.kind(), Some(&self.config.path), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_json_blobs_as_byte_arrays() {
        assert_eq!(json(ValueRef::Integer(-3)), serde_json::json!(-3));
        assert_eq!(json(ValueRef::Real(f64::INFINITY)), Value::Null);
        assert_eq!(json(ValueRef::Real(0.5)), serde_json::json!(0.5));
        assert_eq!(json(ValueRef::Text(b"h\xc3\xa9")), serde_json::json!("hé"));
        assert_eq!(json(ValueRef::Blob(&[0, 255])), serde_json::json!([0, 255]));
    }
}
