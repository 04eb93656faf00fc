use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

use super::{error, is_row_error, spawn_thread, Bind, Column, Target, POSTGRES};
use crate::error::{IoError, IoErrorKind};
use crate::sink::Written;
use crate::sql::writer::{Job, Writer};
use crate::sql::{check_row, Described, Names, Row, SqlMode, SqlType};

/// How a [`PostgresSink`] treats the rows already in its table: append,
/// upsert by key columns, or replace (see [`SqlMode`]).
///
/// # Examples
///
/// ```
/// use weir_io::postgres::PostgresMode;
///
/// let upsert = PostgresMode::Upsert { key: vec!["id".into()] };
/// assert_eq!(upsert.name(), "upsert");
/// assert_eq!(PostgresMode::default(), PostgresMode::Append);
/// ```
pub type PostgresMode = SqlMode;

/// The temporary table an upsert copies its rows into (one per
/// connection: temporary tables are per session).
const STAGE: &str = "pg_temp.weir_stage";

/// Its column that keeps the rows' order (the latest row of a key wins).
const STAGE_ORDER: &str = "weir_stage_order";

/// What a [`PostgresSink`] writes, and how.
///
/// | setting | default |
/// |---|---|
/// | [`url`](Self::url), [`table`](Self::table) | none: give them to [`new`](Self::new) |
/// | [`columns`](Self::columns) | none: add them with [`column`](Self::column) |
/// | [`mode`](Self::mode) | [`PostgresMode::Append`] |
/// | [`create_table`](Self::create_table) | `true` |
/// | [`batch_rows`](Self::batch_rows) | 5000 |
/// | [`isolate_rows`](Self::isolate_rows) | `false` |
///
/// Its `Debug` output names the database and host, never the URL (which
/// may hold a password).
///
/// # Examples
///
/// ```
/// use weir_io::postgres::{PostgresMode, PostgresSinkConfig, SqlType};
///
/// let config = PostgresSinkConfig::new("postgres://postgres@127.0.0.1:5432/test", "etl.totals")
///     .column("customer", SqlType::Text)
///     .column("total", SqlType::Real)
///     .mode(PostgresMode::Upsert { key: vec!["customer".into()] });
/// assert!(config.validate().is_ok());
/// assert!(format!("{config:?}").contains("database `test` on 127.0.0.1:5432"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresSinkConfig {
    /// The server and database: `postgres://user:password@host:port/db`
    /// (or `host=… dbname=…`). TLS is not supported.
    pub url: String,
    /// The table: a plain identifier (ASCII letters, digits, `_`), or
    /// `schema.table` (the schema must exist). Quoted: case-sensitive.
    pub table: String,
    /// The columns (plain identifiers, unique regardless of case) and
    /// their types, in the order of each [`Row`]'s values.
    pub columns: Vec<(String, SqlType)>,
    /// Append, upsert or replace. By default, append.
    pub mode: PostgresMode,
    /// Create the table if it does not exist (`CREATE TABLE IF NOT
    /// EXISTS`, with the upsert key as its `PRIMARY KEY`; integers are
    /// `bigint`, reals `double precision`, JSON `jsonb`). Without it, a
    /// missing table is an error when the sink opens. Either way an
    /// existing table must have every configured column, of a type the
    /// sink can write. By default, true.
    pub create_table: bool,
    /// The most rows one `COPY` carries; the sink also hands its rows to
    /// the connection's thread each time this many are buffered. By
    /// default, 5000.
    pub batch_rows: usize,
    /// Insert each row when it is written, so that a row the database
    /// refuses fails alone (see the [module docs](super) for the cost).
    /// By default, false: rows are copied in batches and a refused row
    /// fails the flush.
    pub isolate_rows: bool,
}

impl fmt::Debug for PostgresSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = Target::parse(&self.url, IoErrorKind::InvalidConfig)
            .map_or_else(|_| "an invalid URL".to_owned(), |t| t.name);
        f.debug_struct("PostgresSinkConfig")
            .field("url", &target)
            .field("table", &self.table)
            .field("columns", &self.columns)
            .field("mode", &self.mode)
            .field("create_table", &self.create_table)
            .field("batch_rows", &self.batch_rows)
            .field("isolate_rows", &self.isolate_rows)
            .finish()
    }
}

impl PostgresSinkConfig {
    /// Writes `table` in the database at `url`, with the defaults (and no
    /// columns yet).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = weir_io::postgres::PostgresSinkConfig::new("postgres://localhost/test", "events");
    /// assert_eq!(config.table, "events");
    /// assert_eq!(config.batch_rows, 5000);
    /// ```
    pub fn new(url: impl Into<String>, table: impl Into<String>) -> PostgresSinkConfig {
        PostgresSinkConfig {
            url: url.into(),
            table: table.into(),
            columns: Vec::new(),
            mode: PostgresMode::Append,
            create_table: true,
            batch_rows: 5000,
            isolate_rows: false,
        }
    }

    crate::sql::table_setters!(
        PostgresSinkConfig,
        PostgresMode,
        "postgres",
        "\"postgres://localhost/test\", \"t\"",
        "COPY",
        "5000"
    );

    /// Checks the settings without connecting: the URL parses, the table
    /// and column names are plain identifiers (at most 63 bytes, not
    /// `pg_…`), there is at least one column (at most 1600) and no name
    /// twice, an upsert's key columns are columns, `batch_rows` is at
    /// least 1. Errors are of kind [`InvalidConfig`](IoErrorKind::InvalidConfig).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::postgres::{PostgresMode, PostgresSinkConfig, SqlType};
    ///
    /// let url = "postgres://localhost/test";
    /// let err = PostgresSinkConfig::new(url, "t; DROP TABLE t").column("id", SqlType::Integer).validate().unwrap_err();
    /// assert!(err.to_string().starts_with("table name \"t; DROP TABLE t\" is not a plain SQL identifier"), "{err}");
    /// let err = PostgresSinkConfig::new(url, "pg_authid").column("id", SqlType::Integer).validate().unwrap_err();
    /// assert_eq!(err.to_string(), "table name \"pg_authid\" is reserved: names starting with `pg_` are PostgreSQL's own");
    /// let err = PostgresSinkConfig::new(url, "t")
    ///     .column("id", SqlType::Integer)
    ///     .mode(PostgresMode::Upsert { key: vec!["user".into()] })
    ///     .validate()
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "upsert key column `user` is not one of the columns (id)");
    /// let err = PostgresSinkConfig::new("postgres://h:port/x", "t").column("id", SqlType::Integer).validate().unwrap_err();
    /// assert!(err.to_string().starts_with("invalid PostgreSQL URL"), "{err}");
    /// ```
    pub fn validate(&self) -> Result<(), IoError> {
        self.plan().map(drop)
    }

    fn plan(&self) -> Result<(Target, Names), IoError> {
        let target = Target::parse(&self.url, IoErrorKind::InvalidConfig)?;
        let names = POSTGRES.names(&self.table, &self.columns, &self.mode, self.batch_rows)?;
        Ok((target, names))
    }
}

/// The type a column of `ty` is declared with when the sink creates the
/// table.
fn declared(ty: SqlType) -> &'static str {
    match ty {
        SqlType::Integer => "BIGINT",
        SqlType::Real => "DOUBLE PRECISION",
        SqlType::Text => "TEXT",
        SqlType::Blob => "BYTEA",
        SqlType::Json => "JSONB",
    }
}

/// Writes [`Row`]s into a PostgreSQL table: binary `COPY` in batched
/// transactions, on a connection of its own; append, upsert or replace
/// ([`PostgresMode`]). A flush commits; the [module docs](super) describe
/// the design, the failures that are retried, and what happens to a row
/// the database refuses.
///
/// `write` checks each row against the columns (their number, their
/// [`SqlType`]s and the table's actual column types, say the range of an
/// `integer`); a row that does not fit fails that item alone, with an
/// error of kind [`Encode`](IoErrorKind::Encode) naming the table, the
/// column and the row.
///
/// # Examples
///
/// ```no_run
/// use weir::{ErrorPolicy, Pipeline};
/// use weir_io::postgres::{PostgresSink, PostgresSinkConfig, Row, SqlType, SqlValue};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let config = PostgresSinkConfig::new("postgres://postgres@127.0.0.1/test", "readings")
///     .column("sensor", SqlType::Text)
///     .column("value", SqlType::Real);
/// let sink = PostgresSink::open(config).unwrap();
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
pub struct PostgresSink {
    writer: Writer,
    config: Arc<PostgresSinkConfig>,
    target: Target,
    /// The table's column types, in the configured columns' order.
    columns: Vec<Column>,
}

impl fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSink")
            .field("database", &self.target.name)
            .field("table", &self.config.table)
            .field("mode", &self.config.mode.name())
            .field("written", &self.writer.written().get())
            .finish_non_exhaustive()
    }
}

impl PostgresSink {
    /// Checks the settings ([`validate`](PostgresSinkConfig::validate)),
    /// starts the connection's thread, connects, creates the table if
    /// asked and checks that it has every column, of a type the sink can
    /// write (and, for an upsert, that the key is a `PRIMARY KEY` or
    /// `UNIQUE` constraint). It waits for the server (at most the URL's
    /// `connect_timeout`, 10 s by default, to connect): call it before the
    /// run. It may be called from a tokio task (it blocks that thread, but
    /// never starts a runtime inside the caller's). Errors name the
    /// database, the table and the column.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use weir_io::postgres::{PostgresSink, PostgresSinkConfig, SqlType};
    /// use weir_io::IoErrorKind;
    ///
    /// let config = PostgresSinkConfig::new("postgres://postgres@127.0.0.1/test", "no_such_table")
    ///     .column("id", SqlType::Integer)
    ///     .create_table(false);
    /// let err = PostgresSink::open(config).unwrap_err();
    /// assert_eq!(err.kind(), IoErrorKind::NotFound);
    /// ```
    pub fn open(config: PostgresSinkConfig) -> Result<PostgresSink, IoError> {
        let (target, names) = config.plan()?;
        let config = Arc::new(config);
        let (jobs, inbox) = mpsc::channel(4);
        let (ready, opened) = std::sync::mpsc::channel();
        let worker = Worker {
            target: target.clone(),
            config: config.clone(),
            names,
            session: None,
            types: Vec::new(),
            columns: Vec::new(),
            rows: Vec::new(),
            inserted: 0,
            in_transaction: false,
            error: None,
            cleared: false,
        };
        spawn_thread("weir-postgres", move || worker.run(inbox, ready)).map_err(|e| {
            IoError::new(
                IoErrorKind::Write,
                None,
                format!("cannot start the connection's thread for {}: {e}", target.name),
            )
        })?;
        let columns = opened.recv().map_err(|_| {
            IoError::new(
                IoErrorKind::Write,
                None,
                format!("the connection's thread for {} stopped", target.name),
            )
        })??;
        let what = format!("table `{}` of {}", config.table, target.name);
        let writer = Writer::new(jobs, what, None, config.batch_rows, config.isolate_rows);
        Ok(PostgresSink {
            writer,
            config,
            target,
            columns,
        })
    }

    /// A live count of the rows committed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use weir_io::postgres::{PostgresSink, PostgresSinkConfig, SqlType};
    /// let config = PostgresSinkConfig::new("postgres://postgres@127.0.0.1/test", "t").column("a", SqlType::Text);
    /// let sink = PostgresSink::open(config).unwrap();
    /// assert_eq!(sink.written().get(), 0);
    /// ```
    pub fn written(&self) -> Written {
        self.writer.written().clone()
    }

    /// Connects anew (on a thread of its own, as [`open`](Self::open)
    /// does) and checks that the table still has every column, of a type
    /// the sink can write, and that the sink's user may insert into it.
    /// Blocks until the server answers.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use weir_io::postgres::{PostgresSink, PostgresSinkConfig, SqlType};
    /// let config = PostgresSinkConfig::new("postgres://postgres@127.0.0.1/test", "t").column("a", SqlType::Text);
    /// let sink = PostgresSink::open(config).unwrap();
    /// assert!(sink.healthcheck().is_ok());
    /// ```
    pub fn healthcheck(&self) -> Result<(), IoError> {
        let (target, config) = (self.target.clone(), self.config.clone());
        let (reply, answer) = std::sync::mpsc::channel();
        spawn_thread("weir-postgres-check", move || async move {
            let checked = async {
                let client = target.connect(IoErrorKind::Write).await?;
                let names = POSTGRES.names(&config.table, &config.columns, &config.mode, 1)?;
                column_types(&client, &config, &names, &target).await?;
                let probe = "SELECT has_table_privilege(current_user, $1::text::regclass, 'INSERT')";
                let row = client
                    .query_one(probe, &[&names.table])
                    .await
                    .map_err(|e| error(IoErrorKind::Write, &target.name, &e))?;
                if row.get::<_, bool>(0) {
                    Ok(())
                } else {
                    Err(IoError::new(
                        IoErrorKind::PermissionDenied,
                        None,
                        format!("{} may not insert into table `{}`", target.name, config.table),
                    ))
                }
            };
            let _ = reply.send(checked.await);
        })
        .map_err(|e| IoError::new(IoErrorKind::Write, None, e.to_string()))?;
        answer
            .recv()
            .map_err(|_| IoError::new(IoErrorKind::Write, None, "the health check's thread stopped"))?
    }

    /// Whether `row` fits the columns: their number, types and ranges.
    fn check(&self, row: &Row) -> Result<(), IoError> {
        let fits = check_row(row, &self.config.columns).and_then(|()| {
            for ((value, column), (name, ty)) in
                row.values().iter().zip(&self.columns).zip(&self.config.columns)
            {
                column
                    .check(value)
                    .map_err(|e| format!("column `{name}` ({ty}): {e}"))?;
            }
            Ok(())
        });
        fits.map_err(|message| {
            let row = Described(row, &self.config.columns);
            self.writer
                .error(IoErrorKind::Encode, format!("{message}, in the row {row}"))
        })
    }
}

/// Rows a [`PostgresSink`] takes before a commit while more input waits
/// (its [`flush_after`](weir::Sink::flush_after)): each commit waits for
/// the server's disk, so a commit per chunk of 1024 rows cost a bulk load
/// half its time (measured by the `stores` benchmark with larger chunks;
/// docs/BENCHMARKS.md).
///
/// # Examples
///
/// ```
/// assert_eq!(weir_io::postgres::COMMIT_ROWS, 16_384);
/// ```
pub const COMMIT_ROWS: usize = 16 * 1024;

/// Each value is checked against its column: a row that does not fit
/// fails alone. Rows are committed at the flush; under load, at most every
/// [`COMMIT_ROWS`] rows.
impl weir::Sink<Row> for PostgresSink {
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

    fn flush_after(&self) -> usize {
        COMMIT_ROWS
    }
}

/// The table's types of the configured columns (and what the sink can
/// write into each); errors name the table and column.
async fn column_types(
    client: &Client,
    config: &PostgresSinkConfig,
    names: &Names,
    target: &Target,
) -> Result<Vec<(Type, Column)>, IoError> {
    let rows = client
        .query(
            "SELECT attname::text, atttypid FROM pg_attribute \
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&names.table],
        )
        .await
        .map_err(|e| {
            let mut e = error(
                IoErrorKind::Write,
                &format!("cannot read table `{}` of {}", config.table, target.name),
                &e,
            );
            if e.kind() == IoErrorKind::NotFound && !config.create_table {
                e = IoError::new(
                    IoErrorKind::NotFound,
                    None,
                    format!("{e} (create it, or let the sink create it: `create_table`)"),
                );
            }
            e
        })?;
    let found: Vec<(String, u32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut out = Vec::with_capacity(config.columns.len());
    for (name, sql) in &config.columns {
        let Some((_, oid)) = found.iter().find(|(n, _)| n == name) else {
            let all: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
            return Err(IoError::new(
                IoErrorKind::InvalidConfig,
                None,
                format!(
                    "table `{}` of {} has no column `{name}` (its columns: {}; names are case-sensitive)",
                    config.table,
                    target.name,
                    all.join(", ")
                ),
            ));
        };
        let ty = Type::from_oid(*oid).unwrap_or(Type::UNKNOWN);
        let column = Column::of(&ty, *sql).map_err(|why| {
            IoError::new(
                IoErrorKind::InvalidConfig,
                None,
                format!(
                    "column `{name}` of table `{}` of {} {why}",
                    config.table, target.name
                ),
            )
        })?;
        out.push((ty, column));
    }
    Ok(out)
}

/// What lives as long as one connection: the client, and the statements
/// prepared on it.
struct Session {
    client: Client,
    /// Upsert: `INSERT INTO t SELECT DISTINCT ON (key) … FROM stage …`.
    merge: Option<Statement>,
    /// Isolated rows: the single-row `INSERT`.
    single: Option<Statement>,
}

/// The connection's thread: the session, and the rows of the open
/// transaction.
struct Worker {
    target: Target,
    config: Arc<PostgresSinkConfig>,
    names: Names,
    session: Option<Session>,
    types: Vec<Type>,
    columns: Vec<Column>,
    /// Every row written since the last commit, inserted or not.
    rows: Vec<Row>,
    /// How many of `rows` are inserted in the open transaction.
    inserted: usize,
    in_transaction: bool,
    /// Why this transaction cannot commit (it was rolled back).
    error: Option<IoError>,
    /// Replace: the old rows are deleted (committed).
    cleared: bool,
}

type Opened = std::sync::mpsc::Sender<Result<Vec<Column>, IoError>>;

impl Worker {
    async fn run(mut self, mut inbox: mpsc::Receiver<Job>, opened: Opened) {
        match self.open().await {
            Ok(()) => {
                if opened.send(Ok(self.columns.clone())).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = opened.send(Err(e));
                return;
            }
        }
        while let Some(job) = inbox.recv().await {
            match job {
                Job::Rows(rows) => {
                    self.rows.extend(rows);
                    if self.error.is_none() {
                        if let Err(e) = self.insert_rest().await {
                            self.error = Some(e);
                        }
                    }
                }
                Job::Row(row, reply) => {
                    let _ = reply.send(self.insert_one(row).await);
                }
                Job::Commit(reply) => {
                    let _ = reply.send(self.commit().await);
                }
                Job::Abandon => {
                    self.rollback().await;
                    self.rows.clear();
                    self.error = None;
                }
                Job::Close(reply) => {
                    let _ = reply.send(self.close().await);
                    return;
                }
            }
        }
        // The sink was dropped without closing: the open transaction (if
        // any) is rolled back as the connection drops.
    }

    /// Connects, creates the table if asked, reads its column types and
    /// prepares the statements.
    async fn open(&mut self) -> Result<(), IoError> {
        let client = self.target.connect(IoErrorKind::Write).await?;
        if self.config.create_table {
            let types: Vec<SqlType> = self.config.columns.iter().map(|(_, t)| *t).collect();
            client
                .batch_execute(&self.names.create(&types, declared))
                .await
                .map_err(|e| {
                    let what = format!(
                        "cannot create table `{}` in {}",
                        self.config.table, self.target.name
                    );
                    error(IoErrorKind::Write, &what, &e)
                })?;
        }
        let found = column_types(&client, &self.config, &self.names, &self.target).await?;
        (self.types, self.columns) = found.into_iter().unzip();
        self.session = Some(self.prepare(client).await?);
        Ok(())
    }

    /// A session on `client`: the upsert's temporary table and the
    /// statements.
    async fn prepare(&self, client: Client) -> Result<Session, IoError> {
        let fail = |e: tokio_postgres::Error| {
            let hint = match &self.config.mode {
                PostgresMode::Upsert { key } if e.code().is_some_and(|c| c.code() == "42P10") => format!(
                    " (an upsert needs its key ({}) to be the table's PRIMARY KEY or a UNIQUE constraint)",
                    key.join(", ")
                ),
                _ => String::new(),
            };
            let what = format!(
                "cannot insert into table `{}`{hint} of {}",
                self.config.table, self.target.name
            );
            error(IoErrorKind::Write, &what, &e)
        };
        let columns = self.names.columns.join(", ");
        let merge = if self.names.key.is_some() {
            client
                .batch_execute(&format!(
                    "CREATE TEMPORARY TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT {columns} FROM {} WITH NO DATA; \
                     ALTER TABLE {STAGE} ADD COLUMN IF NOT EXISTS {STAGE_ORDER} BIGINT GENERATED ALWAYS AS IDENTITY",
                    STAGE.trim_start_matches("pg_temp."),
                    self.names.table
                ))
                .await
                .map_err(fail)?;
            let key = self.names.key_list();
            let merge = format!(
                "INSERT INTO {} ({columns}) SELECT DISTINCT ON ({key}) {columns} FROM {STAGE} \
                 ORDER BY {key}, {STAGE_ORDER} DESC{}",
                self.names.table,
                self.names.on_conflict()
            );
            let merge = client.prepare(&merge).await.map_err(fail)?;
            // PostgreSQL matches the key to a constraint when it plans the
            // statement, not when it prepares it: a merge of the empty
            // stage finds a key that is not `PRIMARY KEY` or `UNIQUE`.
            client.execute(&merge, &[]).await.map_err(fail)?;
            Some(merge)
        } else {
            None
        };
        let single = if self.config.isolate_rows {
            let params: Vec<String> = (1..=self.types.len()).map(|i| format!("${i}")).collect();
            let insert = format!(
                "INSERT INTO {} ({columns}) VALUES ({}){}",
                self.names.table,
                params.join(", "),
                self.names.on_conflict()
            );
            Some(client.prepare_typed(&insert, &self.types).await.map_err(fail)?)
        } else {
            None
        };
        Ok(Session {
            client,
            merge,
            single,
        })
    }

    /// The session, connecting anew if there is none or its connection
    /// broke.
    async fn session(&mut self) -> Result<&Session, IoError> {
        if self.session.as_ref().is_some_and(|s| s.client.is_closed()) {
            self.session = None;
        }
        if self.session.is_none() {
            let client = self.target.connect(IoErrorKind::Write).await?;
            self.session = Some(self.prepare(client).await?);
        }
        Ok(self.session.as_ref().expect("a session"))
    }

    fn fail(&self, e: &tokio_postgres::Error) -> IoError {
        let what = format!(
            "cannot write to table `{}` of {}",
            self.config.table, self.target.name
        );
        error(IoErrorKind::Write, &what, e)
    }

    /// The error of `e`, after which the transaction is over (rolled back
    /// by the caller, or gone with its connection). A failure that is not
    /// the server's answer to a statement (the connection broke), or one
    /// that ends the session (SQLSTATE classes 08 and 57: the server shuts
    /// down, an administrator ends the session) drops the session: the
    /// next attempt connects anew.
    fn broken(&mut self, e: &tokio_postgres::Error) -> IoError {
        let ends_session = e.code().is_none_or(|c| matches!(&c.code()[..2], "08" | "57"));
        if ends_session || e.is_closed() {
            self.session = None;
            self.in_transaction = false;
            self.inserted = 0;
        }
        self.fail(e)
    }

    /// Opens a transaction if none is open; replace deletes the old rows
    /// in the run's first one.
    async fn begin(&mut self) -> Result<(), IoError> {
        if self.in_transaction {
            return Ok(());
        }
        let replace = self.config.mode == PostgresMode::Replace && !self.cleared;
        let sql = if replace {
            format!("BEGIN; DELETE FROM {}", self.names.table)
        } else {
            "BEGIN".to_owned()
        };
        let session = self.session().await?;
        match session.client.batch_execute(&sql).await {
            Ok(()) => {
                self.in_transaction = true;
                Ok(())
            }
            Err(e) => {
                let e = self.broken(&e);
                self.rollback().await;
                Err(e)
            }
        }
    }

    async fn rollback(&mut self) {
        if self.in_transaction {
            if let Some(session) = &self.session {
                if session.client.batch_execute("ROLLBACK").await.is_err() {
                    self.session = None;
                }
            }
        }
        self.in_transaction = false;
        self.inserted = 0;
    }

    /// Copies `self.rows[range]` into the table (an upsert: into the stage,
    /// then merged into the table).
    async fn copy(&self, session: &Session, range: Range<usize>) -> Result<(), tokio_postgres::Error> {
        let into = if session.merge.is_some() {
            STAGE
        } else {
            &self.names.table
        };
        let sql = format!(
            "COPY {into} ({}) FROM STDIN (FORMAT binary)",
            self.names.columns.join(", ")
        );
        let sink = session.client.copy_in(&sql).await?;
        let writer = BinaryCopyInWriter::new(sink, &self.types);
        let mut writer = std::pin::pin!(writer);
        for row in &self.rows[range] {
            let values = row.values().iter().zip(&self.columns).map(|(v, c)| Bind(v, *c));
            writer.as_mut().write_raw(values).await?;
        }
        writer.finish().await?;
        if let Some(merge) = &session.merge {
            session.client.execute(merge, &[]).await?;
            session.client.batch_execute(&format!("TRUNCATE {STAGE}")).await?;
        }
        Ok(())
    }

    /// Inserts the rows not yet inserted, a `COPY` per batch; on a
    /// failure, rolls the transaction back and says why, naming the row
    /// when one row is the cause.
    async fn insert_rest(&mut self) -> Result<(), IoError> {
        if self.inserted == self.rows.len() {
            return Ok(());
        }
        self.begin().await?;
        while self.inserted < self.rows.len() {
            let end = (self.inserted + self.config.batch_rows).min(self.rows.len());
            let session = self.session.as_ref().expect("a session in a transaction");
            if let Err(e) = self.copy(session, self.inserted..end).await {
                let start = self.inserted;
                self.rollback().await;
                return Err(self.explain(e, start..end).await);
            }
            self.inserted = end;
        }
        Ok(())
    }

    /// The error of a failed `COPY` of `range` (its transaction rolled
    /// back): for a row-level failure, the first row that fails, found in
    /// a transaction of its own by splitting the range in halves, each
    /// tried under a savepoint (the good halves kept, so that a row that
    /// conflicts with an earlier one of the batch is found too), then
    /// rolled back.
    async fn explain(&mut self, e: tokio_postgres::Error, range: Range<usize>) -> IoError {
        if !is_row_error(&e) {
            return self.broken(&e);
        }
        if self.begin().await.is_err() {
            return self.fail(&e);
        }
        let found = self.culprit(range).await;
        self.rollback().await;
        match found {
            Some((i, e)) => self.row_error(&e, i),
            None => self.fail(&e),
        }
    }

    /// In the open transaction: copies the rows before `range`, then
    /// narrows `range` down to the first row that fails.
    async fn culprit(&self, mut range: Range<usize>) -> Option<(usize, tokio_postgres::Error)> {
        let session = self.session.as_ref()?;
        let client = &session.client;
        if range.start > 0 && self.copy(session, 0..range.start).await.is_err() {
            return None;
        }
        loop {
            let half = if range.len() == 1 {
                range.clone()
            } else {
                range.start..range.start + range.len() / 2
            };
            client.batch_execute("SAVEPOINT weir_split").await.ok()?;
            match self.copy(session, half.clone()).await {
                Err(e) if half.len() == 1 => return Some((half.start, e)),
                Err(_) => {
                    client
                        .batch_execute("ROLLBACK TO SAVEPOINT weir_split")
                        .await
                        .ok()?;
                    range = half;
                }
                Ok(()) if half.len() == range.len() => return None,
                Ok(()) => {
                    client.batch_execute("RELEASE SAVEPOINT weir_split").await.ok()?;
                    range = half.end..range.end;
                }
            }
        }
    }

    fn row_error(&self, e: &tokio_postgres::Error, i: usize) -> IoError {
        let what = format!(
            "cannot write row {} of the transaction {} to table `{}` of {}",
            i + 1,
            Described(&self.rows[i], &self.config.columns),
            self.config.table,
            self.target.name
        );
        error(IoErrorKind::Write, &what, e)
    }

    /// Isolated: inserts one row in the open transaction, at once, under a
    /// savepoint. A refused row fails alone (its savepoint undone); a
    /// failure of the connection or the transaction fails the flush too.
    async fn insert_one(&mut self, row: Row) -> Result<(), IoError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        self.insert_rest().await?;
        self.begin().await?;
        let session = self.session.as_ref().expect("a session in a transaction");
        let single = session
            .single
            .as_ref()
            .expect("isolated rows have their statement");
        let client = &session.client;
        let values = row.values().iter().zip(&self.columns).map(|(v, c)| Bind(v, *c));
        let (saved, inserted, released) = tokio::join!(
            client.batch_execute("SAVEPOINT weir_row"),
            client.execute_raw(single, values),
            client.batch_execute("RELEASE SAVEPOINT weir_row"),
        );
        let outcome = saved.and(inserted.map(drop)).and(released);
        match outcome {
            Ok(()) => {
                self.rows.push(row);
                self.inserted += 1;
                Ok(())
            }
            Err(e)
                if is_row_error(&e)
                    && client
                        .batch_execute("ROLLBACK TO SAVEPOINT weir_row")
                        .await
                        .is_ok() =>
            {
                self.rows.push(row);
                let refused = self.row_error(&e, self.rows.len() - 1);
                self.rows.pop();
                Err(refused)
            }
            Err(e) => {
                let e = self.broken(&e);
                self.rollback().await;
                self.error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Inserts what is left and commits. On failure the transaction is
    /// rolled back and its rows are kept, for a retried flush.
    async fn commit(&mut self) -> Result<(), IoError> {
        if let Some(e) = self.error.take() {
            self.rollback().await;
            return Err(e);
        }
        self.insert_rest().await?;
        if !self.in_transaction {
            return Ok(());
        }
        let session = self.session.as_ref().expect("a session in a transaction");
        if let Err(e) = session.client.batch_execute("COMMIT").await {
            let e = self.broken(&e);
            self.rollback().await;
            return Err(e);
        }
        self.in_transaction = false;
        self.rows.clear();
        self.inserted = 0;
        if self.config.mode == PostgresMode::Replace {
            self.cleared = true;
        }
        Ok(())
    }

    /// Replace with no row written: the old rows go now. Then closes.
    async fn close(mut self) -> Result<(), IoError> {
        self.rollback().await;
        self.rows.clear();
        self.error = None;
        if self.config.mode == PostgresMode::Replace && !self.cleared {
            self.begin().await?;
            self.commit().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_names_and_upserts_keep_the_latest_row_of_a_key() {
        let config = PostgresSinkConfig::new("postgres://localhost/test", "etl.t")
            .column("id", SqlType::Integer)
            .column("doc", SqlType::Json)
            .mode(PostgresMode::Upsert {
                key: vec!["id".into()],
            });
        let (_, names) = config.plan().unwrap();
        assert_eq!(
            names.create(&[SqlType::Integer, SqlType::Json], declared),
            r#"CREATE TABLE IF NOT EXISTS "etl"."t" ("id" BIGINT NOT NULL, "doc" JSONB, PRIMARY KEY ("id"))"#
        );
        assert_eq!(
            names.on_conflict(),
            r#" ON CONFLICT ("id") DO UPDATE SET "doc" = excluded."doc""#
        );
    }

    #[test]
    fn bad_settings_are_refused_before_connecting() {
        let base = PostgresSinkConfig::new("postgres://localhost/test", "t");
        let msg = |c: PostgresSinkConfig| c.validate().unwrap_err().to_string();
        assert_eq!(msg(base.clone()), "no columns given for table `t`");
        let one = base.column("a", SqlType::Text);
        assert!(msg(one.clone().column("b".repeat(64), SqlType::Text))
            .contains("longer than PostgreSQL's 63 bytes"));
        assert!(msg(PostgresSinkConfig {
            url: String::new(),
            ..one.clone()
        })
        .contains("no PostgreSQL URL"));
        assert_eq!(msg(one.batch_rows(0)), "batch_rows must be at least 1");
    }
}
