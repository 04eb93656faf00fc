use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::mpsc;

use super::{declared, error, identifier, open, Bind, Row, SqlType, MAX_PARAMS, SQLITE};
use crate::error::{IoError, IoErrorKind};
use crate::sink::Written;
use crate::sql::writer::{Job, Writer};
use crate::sql::{check_row, Described, Names};

/// How a [`SqliteSink`] treats the rows already in its table: append,
/// upsert by key columns, or replace (see [`SqlMode`](crate::sql::SqlMode)).
///
/// # Examples
///
/// ```
/// use weir_io::sqlite::SqliteMode;
///
/// let upsert = SqliteMode::Upsert { key: vec!["id".into()] };
/// assert_eq!(upsert.name(), "upsert");
/// assert_eq!(SqliteMode::default(), SqliteMode::Append);
/// ```
pub type SqliteMode = crate::sql::SqlMode;

/// What a [`SqliteSink`] writes, and how.
///
/// | setting | default |
/// |---|---|
/// | [`path`](Self::path), [`table`](Self::table) | none: give them to [`new`](Self::new) |
/// | [`columns`](Self::columns) | none: add them with [`column`](Self::column) |
/// | [`mode`](Self::mode) | [`SqliteMode::Append`] |
/// | [`create_table`](Self::create_table) | `true` |
/// | [`batch_rows`](Self::batch_rows) | 500 |
/// | [`isolate_rows`](Self::isolate_rows) | `false` |
///
/// # Examples
///
/// ```
/// use weir_io::sqlite::{SqlType, SqliteMode, SqliteSinkConfig};
///
/// let config = SqliteSinkConfig::new("out/state.db", "totals")
///     .column("customer", SqlType::Text)
///     .column("total", SqlType::Real)
///     .mode(SqliteMode::Upsert { key: vec!["customer".into()] });
/// assert_eq!(config.columns.len(), 2);
/// assert!(config.create_table);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteSinkConfig {
    /// The database file (created, with its missing parent directories,
    /// if it does not exist).
    pub path: PathBuf,
    /// The table (a plain identifier: ASCII letters, digits, `_`).
    pub table: String,
    /// The columns (plain identifiers, unique regardless of case) and
    /// their types, in the order of each [`Row`]'s values.
    pub columns: Vec<(String, SqlType)>,
    /// Append, upsert or replace. By default, append.
    pub mode: SqliteMode,
    /// Create the table if it does not exist (`CREATE TABLE IF NOT
    /// EXISTS`, with the upsert key as its `PRIMARY KEY`). Without it, a
    /// missing table is an error when the sink opens. Either way an
    /// existing table must have every configured column. By default,
    /// true.
    pub create_table: bool,
    /// The most rows one `INSERT` statement carries (fewer when the
    /// columns times the rows would pass SQLite's limit of 32 766 bound
    /// parameters); a batched sink also hands its rows to the database
    /// thread each time this many are buffered. By default, 500.
    pub batch_rows: usize,
    /// Execute each row when it is written, so that a row the database
    /// refuses fails alone (see the [module docs](super) for the cost).
    /// By default, false: rows are inserted in batches and a refused row
    /// fails the flush.
    pub isolate_rows: bool,
}

impl SqliteSinkConfig {
    /// Writes `table` in the database at `path`, with the defaults (and
    /// no columns yet).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = weir_io::sqlite::SqliteSinkConfig::new("out.db", "events");
    /// assert_eq!(config.table, "events");
    /// assert_eq!(config.batch_rows, 500);
    /// ```
    pub fn new(path: impl Into<PathBuf>, table: impl Into<String>) -> SqliteSinkConfig {
        SqliteSinkConfig {
            path: path.into(),
            table: table.into(),
            columns: Vec::new(),
            mode: SqliteMode::Append,
            create_table: true,
            batch_rows: 500,
            isolate_rows: false,
        }
    }

    crate::sql::table_setters!(
        SqliteSinkConfig,
        SqliteMode,
        "sqlite",
        "\"out.db\", \"t\"",
        "INSERT statement",
        "500"
    );

    /// Checks the settings without touching the database: the table and
    /// column names are plain identifiers, there is at least one column
    /// (at most 2000) and no name twice, an upsert's key columns are
    /// columns, `batch_rows` is at least 1. Errors are of kind
    /// [`InvalidConfig`](IoErrorKind::InvalidConfig).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sqlite::{SqlType, SqliteMode, SqliteSinkConfig};
    ///
    /// let config = SqliteSinkConfig::new("out.db", "t")
    ///     .column("id", SqlType::Integer)
    ///     .mode(SqliteMode::Upsert { key: vec!["user".into()] });
    /// let err = config.validate().unwrap_err();
    /// assert_eq!(err.to_string(), "upsert key column `user` is not one of the columns (id)");
    /// let err = SqliteSinkConfig::new("out.db", "t; DROP TABLE t").column("id", SqlType::Integer).validate().unwrap_err();
    /// assert!(err.to_string().starts_with("table name \"t; DROP TABLE t\" is not a plain SQL identifier"), "{err}");
    /// ```
    pub fn validate(&self) -> Result<(), IoError> {
        self.plan().map(drop)
    }

    /// The statements' pieces, once the settings are checked.
    fn plan(&self) -> Result<Plan, IoError> {
        let names = SQLITE.names(&self.table, &self.columns, &self.mode, self.batch_rows)?;
        let per_statement = self.batch_rows.min(MAX_PARAMS / self.columns.len()).max(1);
        Ok(Plan { names, per_statement })
    }
}

/// The checked pieces of the statements: quoted names, key positions.
#[derive(Debug, Clone)]
struct Plan {
    names: Names,
    per_statement: usize,
}

impl Plan {
    /// `INSERT INTO t (a, b) VALUES (?, ?), … [ON CONFLICT …]` for `rows` rows.
    fn insert(&self, rows: usize) -> String {
        let cols = self.names.columns.len();
        let mut sql = String::with_capacity(64 + rows * (cols * 2 + 3));
        let _ = write!(
            sql,
            "INSERT INTO {} ({}) VALUES ",
            self.names.table,
            self.names.columns.join(", ")
        );
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..cols {
                sql.push_str(if c == 0 { "?" } else { ", ?" });
            }
            sql.push(')');
        }
        sql.push_str(&self.names.on_conflict());
        sql
    }

    /// `CREATE TABLE IF NOT EXISTS …`, the key as `PRIMARY KEY`.
    fn create(&self, types: &[SqlType]) -> String {
        self.names.create(types, declared)
    }
}

/// Writes [`Row`]s into a SQLite table: batched transactions on a
/// database thread of its own, WAL mode, prepared multi-row `INSERT`s;
/// append, upsert or replace ([`SqliteMode`]). A flush commits; the
/// [module docs](super) describe the design, and what happens to a row
/// the database refuses.
///
/// `write` checks each row against the columns (their number and types:
/// [`SqlType`]); a row that does not fit fails that item alone, with an
/// error of kind [`Encode`](IoErrorKind::Encode) naming the table, the
/// column and the row.
///
/// # Examples
///
/// ```
/// use weir::{ErrorPolicy, Pipeline};
/// use weir_io::sqlite::{Row, SqlType, SqlValue, SqliteSink, SqliteSinkConfig};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let config = SqliteSinkConfig::new(dir.path().join("out.db"), "readings")
///     .column("sensor", SqlType::Text)
///     .column("value", SqlType::Real);
/// let sink = SqliteSink::open(config).unwrap();
/// let written = sink.written();
/// let rows = vec![
///     Row::from(vec![SqlValue::from("a"), SqlValue::from(1.5)]),
///     Row::from(vec![SqlValue::from("b"), SqlValue::from("high")]), // not a number
/// ];
/// let report = Pipeline::from_iter(rows).sink(sink).on_error(ErrorPolicy::Skip).run().await.unwrap();
/// assert_eq!((report.delivered, report.failed), (1, 1));
/// assert_eq!(written.get(), 1);
/// # });
/// ```
pub struct SqliteSink {
    writer: Writer,
    config: Arc<SqliteSinkConfig>,
}

impl fmt::Debug for SqliteSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSink")
            .field("path", &self.config.path)
            .field("table", &self.config.table)
            .field("mode", &self.config.mode.name())
            .field("written", &self.writer.written().get())
            .finish_non_exhaustive()
    }
}

impl SqliteSink {
    /// Checks the settings ([`validate`](SqliteSinkConfig::validate)),
    /// opens the database (creating it), creates the table if asked,
    /// checks that it has every column (and, for an upsert, that the key
    /// is a `PRIMARY KEY` or `UNIQUE` constraint), then starts the
    /// database thread. It blocks on SQLite: call it before the run (or
    /// from a blocking context). Errors name the database, the table and
    /// the column.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sqlite::{SqlType, SqliteSink, SqliteSinkConfig};
    /// use weir_io::IoErrorKind;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let config = SqliteSinkConfig::new(dir.path().join("a/out.db"), "t").column("id", SqlType::Integer);
    /// let sink = SqliteSink::open(config.clone()).unwrap();
    /// assert!(dir.path().join("a/out.db").exists());
    /// # drop(sink);
    ///
    /// let missing = SqliteSinkConfig { table: "other".into(), create_table: false, ..config };
    /// let err = SqliteSink::open(missing).unwrap_err();
    /// assert_eq!(err.kind(), IoErrorKind::NotFound);
    /// assert!(err.to_string().contains("has no table `other`"), "{err}");
    /// ```
    pub fn open(config: SqliteSinkConfig) -> Result<SqliteSink, IoError> {
        let plan = config.plan()?;
        let types: Vec<SqlType> = config.columns.iter().map(|(_, t)| *t).collect();
        let conn = open(&config.path)?;
        if config.create_table {
            conn.execute_batch(&plan.create(&types)).map_err(|e| {
                error(
                    &config.path,
                    &format!("cannot create table `{}` in", config.table),
                    &e,
                )
            })?;
        }
        check_table(&conn, &config)?;
        conn.prepare(&plan.insert(1)).map_err(|e| {
            let hint = match &config.mode {
                SqliteMode::Upsert { key } if e.to_string().contains("ON CONFLICT") => format!(
                    " (an upsert needs its key ({}) to be the table's PRIMARY KEY or a UNIQUE constraint)",
                    key.join(", ")
                ),
                _ => String::new(),
            };
            let what = format!("cannot insert into table `{}`{hint} of", config.table);
            error(&config.path, &what, &e)
        })?;
        conn.set_prepared_statement_cache_capacity(8);
        let (jobs, inbox) = mpsc::channel(4);
        let config = Arc::new(config);
        let per_statement = plan.per_statement;
        let worker = Worker {
            conn,
            full: plan.insert(per_statement),
            plan,
            config: config.clone(),
            rows: Vec::new(),
            inserted: 0,
            error: None,
            cleared: false,
        };
        std::thread::Builder::new()
            .name("weir-sqlite".into())
            .spawn(move || worker.run(inbox))
            .map_err(|e| {
                IoError::io(
                    "cannot start the database thread for",
                    &config.path,
                    e,
                    IoErrorKind::Write,
                )
            })?;
        let target = format!("table `{}` of `{}`", config.table, config.path.display());
        let writer = Writer::new(
            jobs,
            target,
            Some(config.path.clone()),
            per_statement,
            config.isolate_rows,
        );
        Ok(SqliteSink { writer, config })
    }

    /// A live count of the rows committed.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sqlite::{SqlType, SqliteSink, SqliteSinkConfig};
    /// let dir = tempfile::tempdir().unwrap();
    /// let sink = SqliteSink::open(SqliteSinkConfig::new(dir.path().join("o.db"), "t").column("a", SqlType::Text)).unwrap();
    /// assert_eq!(sink.written().get(), 0);
    /// ```
    pub fn written(&self) -> Written {
        self.writer.written().clone()
    }

    /// Opens the database on a connection of its own and checks that the
    /// table still has every column and takes writes (a write
    /// transaction that changes nothing, rolled back): a read-only or
    /// locked database, a dropped table or column fail here. Blocks on
    /// SQLite, as [`open`](Self::open) does.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sqlite::{SqlType, SqliteSink, SqliteSinkConfig};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = dir.path().join("o.db");
    /// let sink = SqliteSink::open(SqliteSinkConfig::new(&db, "t").column("a", SqlType::Text)).unwrap();
    /// assert!(sink.healthcheck().is_ok());
    /// rusqlite::Connection::open(&db).unwrap().execute_batch("DROP TABLE t").unwrap();
    /// assert!(sink.healthcheck().unwrap_err().to_string().contains("has no table `t`"));
    /// ```
    pub fn healthcheck(&self) -> Result<(), IoError> {
        let conn = open(&self.config.path)?;
        check_table(&conn, &self.config)?;
        let table = identifier("table name", &self.config.table)?;
        let probe = format!("BEGIN IMMEDIATE; DELETE FROM {table} WHERE 0; ROLLBACK");
        conn.execute_batch(&probe).map_err(|e| {
            let what = format!("cannot write to table `{}` of", self.config.table);
            error(&self.config.path, &what, &e)
        })
    }

    /// Whether `row` fits the columns: their number and types.
    fn check(&self, row: &Row) -> Result<(), IoError> {
        check_row(row, &self.config.columns).map_err(|message| {
            let row = Described(row, &self.config.columns);
            self.writer
                .error(IoErrorKind::Encode, format!("{message}, in the row {row}"))
        })
    }
}

/// Each value is checked against its column's type: a row that does not
/// fit fails alone. Rows are committed at the flush.
impl weir::Sink<Row> for SqliteSink {
    type Error = IoError;

    async fn write(&mut self, row: Row) -> Result<(), IoError> {
        self.check(&row)?;
        self.writer.write(row).await
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        self.writer.commit().await
    }

    async fn close(&mut self) -> Result<(), IoError> {
        self.writer.close().await
    }
}

/// Checks that the table exists with every configured column.
fn check_table(conn: &Connection, config: &SqliteSinkConfig) -> Result<(), IoError> {
    let path = &config.path;
    let failed = |e: rusqlite::Error| {
        error(
            path,
            &format!("cannot read the columns of table `{}` in", config.table),
            &e,
        )
    };
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .map_err(failed)?;
    let names: Vec<String> = stmt
        .query_map([&config.table], |r| r.get(0))
        .map_err(failed)?
        .collect::<Result<_, _>>()
        .map_err(failed)?;
    if names.is_empty() {
        let hint = if config.create_table {
            ""
        } else {
            " (create it, or let the sink create it: `create_table`)"
        };
        return Err(IoError::new(
            IoErrorKind::NotFound,
            Some(path),
            format!("`{}` has no table `{}`{hint}", path.display(), config.table),
        ));
    }
    for (column, _) in &config.columns {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(column)) {
            return Err(IoError::new(
                IoErrorKind::InvalidConfig,
                Some(path),
                format!(
                    "table `{}` of `{}` has no column `{column}` (its columns: {})",
                    config.table,
                    path.display(),
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The database thread: the connection, and the rows of the open
/// transaction.
struct Worker {
    conn: Connection,
    plan: Plan,
    /// The statement for a full batch.
    full: String,
    config: Arc<SqliteSinkConfig>,
    /// Every row written since the last commit, inserted or not.
    rows: Vec<Row>,
    /// How many of `rows` are inserted in the open transaction.
    inserted: usize,
    /// Why this transaction cannot commit (it was rolled back).
    error: Option<IoError>,
    /// Replace: the old rows are deleted (committed).
    cleared: bool,
}

impl Worker {
    fn run(mut self, mut inbox: mpsc::Receiver<Job>) {
        while let Some(job) = inbox.blocking_recv() {
            match job {
                Job::Rows(rows) => {
                    self.rows.extend(rows);
                    if self.error.is_none() {
                        if let Err(e) = self.insert_rest() {
                            self.error = Some(e);
                        }
                    }
                }
                Job::Row(row, reply) => {
                    let _ = reply.send(self.insert_one(row));
                }
                Job::Commit(reply) => {
                    let _ = reply.send(self.commit());
                }
                Job::Abandon => {
                    self.rollback();
                    self.rows.clear();
                    self.error = None;
                }
                Job::Close(reply) => {
                    let _ = reply.send(self.close());
                    return;
                }
            }
        }
        // The sink was dropped without closing: the open transaction (if
        // any) is rolled back as the connection drops.
    }

    fn fail(&self, e: &rusqlite::Error) -> IoError {
        let what = format!("cannot write to table `{}` of", self.config.table);
        error(&self.config.path, &what, e)
    }

    /// Opens a transaction if none is open; replace deletes the old rows
    /// in the run's first one.
    fn begin(&mut self) -> Result<(), IoError> {
        if !self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.fail(&e))?;
        if self.config.mode == SqliteMode::Replace && !self.cleared {
            let delete = format!("DELETE FROM {}", self.plan.names.table);
            if let Err(e) = self.conn.execute_batch(&delete) {
                let e = self.fail(&e);
                self.rollback();
                return Err(e);
            }
        }
        Ok(())
    }

    fn rollback(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.inserted = 0;
    }

    /// Inserts `self.rows[range]` with one statement.
    fn execute(&self, range: Range<usize>) -> Result<(), rusqlite::Error> {
        let rows = &self.rows[range];
        let sql = if rows.len() == self.plan.per_statement {
            self.full.clone()
        } else {
            self.plan.insert(rows.len())
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let values = rows.iter().flat_map(|r| r.values().iter().map(Bind));
        stmt.execute(rusqlite::params_from_iter(values))?;
        Ok(())
    }

    /// Inserts the rows not yet inserted, in full statements; on a
    /// failure, rolls the transaction back and says why, naming the row
    /// when one row is the cause.
    fn insert_rest(&mut self) -> Result<(), IoError> {
        if self.inserted == self.rows.len() {
            return Ok(());
        }
        self.begin()?;
        while self.inserted < self.rows.len() {
            let end = (self.inserted + self.plan.per_statement).min(self.rows.len());
            if let Err(e) = self.execute(self.inserted..end) {
                let e = self.explain(e, self.inserted..end);
                self.rollback();
                return Err(e);
            }
            self.inserted = end;
        }
        Ok(())
    }

    /// The error of a failed statement over `range`: for a failure that
    /// belongs to a row (a constraint, a type), the first row that fails
    /// alone, named with its position in the transaction and its values.
    fn explain(&self, e: rusqlite::Error, range: Range<usize>) -> IoError {
        let row_error = matches!(
            e.sqlite_error_code(),
            Some(
                rusqlite::ErrorCode::ConstraintViolation
                    | rusqlite::ErrorCode::TypeMismatch
                    | rusqlite::ErrorCode::TooBig
            )
        );
        if row_error && !self.conn.is_autocommit() {
            for i in range {
                if let Err(e) = self.execute(i..i + 1) {
                    return self.row_error(&e, i);
                }
            }
        }
        self.fail(&e)
    }

    fn row_error(&self, e: &rusqlite::Error, i: usize) -> IoError {
        let what = format!(
            "cannot write row {} of the transaction {} to table `{}` of",
            i + 1,
            Described(&self.rows[i], &self.config.columns),
            self.config.table
        );
        error(&self.config.path, &what, e)
    }

    /// Isolated: inserts one row in the open transaction, at once. A
    /// refused row fails alone (its statement undid itself); a failure
    /// that ended the transaction fails the flush too.
    fn insert_one(&mut self, row: Row) -> Result<(), IoError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        self.insert_rest()?;
        self.begin()?;
        self.rows.push(row);
        let i = self.rows.len() - 1;
        match self.execute(i..i + 1) {
            Ok(()) => {
                self.inserted += 1;
                Ok(())
            }
            Err(e) => {
                let error = self.row_error(&e, i);
                self.rows.pop();
                if self.conn.is_autocommit() {
                    // SQLite rolled the whole transaction back (disk full,
                    // I/O error): the rows before this one are gone too.
                    self.inserted = 0;
                    self.error = Some(error.clone());
                }
                Err(error)
            }
        }
    }

    /// Inserts what is left and commits. On failure the transaction is
    /// rolled back and its rows are kept, for a retried flush.
    fn commit(&mut self) -> Result<(), IoError> {
        if let Some(e) = self.error.take() {
            self.rollback();
            return Err(e);
        }
        self.insert_rest()?;
        if self.conn.is_autocommit() {
            return Ok(());
        }
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let e = self.fail(&e);
            self.rollback();
            return Err(e);
        }
        self.rows.clear();
        self.inserted = 0;
        if self.config.mode == SqliteMode::Replace {
            self.cleared = true;
        }
        Ok(())
    }

    /// Replace with no row written: the old rows go now. Then closes.
    fn close(mut self) -> Result<(), IoError> {
        self.rollback();
        self.rows.clear();
        self.error = None;
        if self.config.mode == SqliteMode::Replace && !self.cleared {
            self.begin()?;
            self.commit()?;
        }
        let path = self.config.path.clone();
        self.conn
            .close()
            .map_err(|(_, e)| error(&path, "cannot close the SQLite database", &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_names_and_bind_every_value() {
        let config = SqliteSinkConfig::new("x.db", "t")
            .column("id", SqlType::Integer)
            .column("name", SqlType::Text)
            .mode(SqliteMode::Upsert {
                key: vec!["ID".into()],
            });
        let plan = config.plan().unwrap();
        assert_eq!(
            plan.insert(2),
            r#"INSERT INTO "t" ("id", "name") VALUES (?, ?), (?, ?) ON CONFLICT ("id") DO UPDATE SET "name" = excluded."name""#
        );
        assert_eq!(
            plan.create(&[SqlType::Integer, SqlType::Text]),
            r#"CREATE TABLE IF NOT EXISTS "t" ("id" INTEGER NOT NULL, "name" TEXT, PRIMARY KEY ("id"))"#
        );
        let keys_only = SqliteSinkConfig::new("x.db", "t")
            .column("id", SqlType::Integer)
            .mode(SqliteMode::Upsert {
                key: vec!["id".into()],
            });
        assert!(keys_only
            .plan()
            .unwrap()
            .insert(1)
            .ends_with("ON CONFLICT (\"id\") DO NOTHING"));
    }

    #[test]
    fn rows_per_statement_respect_the_parameter_limit() {
        let mut config = SqliteSinkConfig::new("x.db", "t").batch_rows(100_000);
        for i in 0..3 {
            config = config.column(format!("c{i}"), SqlType::Integer);
        }
        assert_eq!(config.plan().unwrap().per_statement, MAX_PARAMS / 3);
        assert_eq!(config.batch_rows(10).plan().unwrap().per_statement, 10);
    }

    #[test]
    fn bad_settings_are_refused_before_the_database_is_touched() {
        let base = SqliteSinkConfig::new("x.db", "t");
        let msg = |c: SqliteSinkConfig| c.validate().unwrap_err().to_string();
        assert_eq!(msg(base.clone()), "no columns given for table `t`");
        let one = base.clone().column("a", SqlType::Text);
        assert_eq!(
            msg(one.clone().column("A", SqlType::Text)),
            "column `A` is given twice"
        );
        assert!(msg(one.clone().column("a\"b", SqlType::Text)).contains("not a plain SQL identifier"));
        assert_eq!(
            msg(one.clone().mode(SqliteMode::Upsert { key: vec![] })),
            "upsert needs at least one key column"
        );
        assert_eq!(msg(one.batch_rows(0)), "batch_rows must be at least 1");
    }
}
