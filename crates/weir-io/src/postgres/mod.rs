//! PostgreSQL (tokio-postgres), behind the `postgres` feature:
//! [`PostgresSink`] writes [`Row`]s of [`SqlValue`]s into a table;
//! [`PostgresSource`] reads a table (or a query) in key order, each row a
//! JSON object, checkpointed by the last finalized key; the
//! checkpoint store is [`PostgresCheckpoints`](crate::checkpoint::PostgresCheckpoints).
//!
//! # How the source reads
//!
//! - Keyset pagination with prepared statements: `SELECT … FROM t AS q
//!   WHERE q.key >= $1 ORDER BY q.key LIMIT $2` (see
//!   [`sql::Select`](crate::sql::Select)), the last key always bound;
//!   names are checked and quoted as the sink's. Columns of types it does
//!   not decode itself are selected as `::text` (see [`PostgresSource`]).
//! - One connection, on a thread of its own (`weir-postgres-source`), in
//!   a read-only session, one page ahead of the pipeline.
//! - The key must be unique, never NULL, of an integer or text type: a
//!   NULL key fails the source before its first row, a repeated key when
//!   it is met, as a last `Err` item of [`Rows`].
//!
//! # How the sink writes
//!
//! - One connection per sink, owned by a thread of its own
//!   (`weir-postgres`) that runs it on a current-thread tokio runtime, fed
//!   by a channel: the sink's task only sends rows and awaits replies, and
//!   the sink works the same under any runtime of the caller's (multi- or
//!   current-thread, a paused clock). There is no pool: a sink writes one
//!   transaction at a time, so a second connection would have nothing to
//!   do; run several pipelines for several writers.
//! - Rows go to the server with binary `COPY … FROM STDIN`, at most
//!   [`batch_rows`](PostgresSinkConfig::batch_rows) rows a `COPY`. Values
//!   are always encoded as binary parameters, never written into SQL;
//!   table and column names must be plain identifiers (letters, digits,
//!   `_`; a table may be `schema.table`) and are quoted, so they are
//!   case-sensitive (`"Id"` is not `id`).
//! - Modes ([`PostgresMode`]): append (`COPY` into the table); upsert by
//!   key columns (`COPY` into a temporary table, then `INSERT INTO t
//!   SELECT DISTINCT ON (key) … ON CONFLICT (key) DO UPDATE SET` every
//!   other column: the latest row of a key wins, also within a batch);
//!   replace (`DELETE FROM t` in the run's first transaction: readers see
//!   the old rows until it commits).
//! - A [`flush`](weir::Sink::flush) commits one transaction holding every
//!   row written since the last one: the engine counts those items
//!   delivered when it commits.
//! - The sink reads the table's column types when it opens and encodes
//!   each value for its column: an [`Integer`](SqlType::Integer) column
//!   may be `smallint`, `integer` or `bigint`, a [`Real`](SqlType::Real)
//!   one `real` or `double precision`, [`Text`](SqlType::Text) `text`,
//!   `varchar` or `char`, [`Blob`](SqlType::Blob) `bytea`,
//!   [`Json`](SqlType::Json) `jsonb`, `json` or `text`. Other column types
//!   (timestamps, numeric, uuid…) are refused when the sink opens. A value
//!   out of its column's range (say 2^40 for an `integer`) fails its item
//!   at `write`.
//!
//! # Failures
//!
//! - **Retryable**: a lost or refused connection, a serialization
//!   failure or deadlock, a commit that fails. The flush returns the
//!   error, so the engine's retry policy applies; the rows are kept and a
//!   retried flush writes them again in a new transaction, on a new
//!   connection if the old one broke. A commit whose connection broke
//!   before its answer may have committed: a retried flush then writes
//!   its rows twice (harmless with upsert; duplicates with append).
//! - **A row the database refuses** (a constraint, a value the column
//!   refuses): the engine's [`Sink`](weir::Sink) lets `write` fail one
//!   item and `flush` fail every item written since the last flush, so a
//!   row can only fail alone if it is executed when it is written. As the
//!   SQLite sink, two designs ([`isolate_rows`](PostgresSinkConfig::isolate_rows)):
//!   - **Batched** (the default): when a `COPY` fails on a row-level error
//!     (SQLSTATE classes 21, 22, 23), the batch is split in halves, each
//!     tried under a savepoint, down to the first row that fails; the
//!     transaction is rolled back and the flush fails with an error of
//!     kind [`Rejected`](IoErrorKind::Rejected) (a constraint) or
//!     [`Encode`](IoErrorKind::Encode) naming that row (its position in
//!     the transaction and its values). Every item of that flush fails and
//!     none is in the table: nothing is lost silently, but good rows are
//!     failed with the bad one (and a retry policy tries them again, in
//!     vain: use isolated rows where bad rows are expected).
//!   - **Isolated**: `write` sends each row to the connection's thread and
//!     waits: it is inserted at once with a single-row `INSERT` under a
//!     savepoint (one round trip: the three statements are pipelined). A
//!     refused row fails that item alone, with its error; the others are
//!     committed at the flush. It gives up `COPY`.
//!
//! # Examples
//!
//! ```no_run
//! use weir::Pipeline;
//! use weir_io::postgres::{PostgresMode, PostgresSink, PostgresSinkConfig, Row, SqlType, SqlValue};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let config = PostgresSinkConfig::new("postgres://postgres@127.0.0.1/test", "users")
//!     .column("id", SqlType::Integer)
//!     .column("name", SqlType::Text)
//!     .mode(PostgresMode::Upsert { key: vec!["id".into()] });
//! let sink = PostgresSink::open(config).unwrap();
//! let rows = [(1, "ann"), (2, "bo"), (1, "anna")]
//!     .map(|(id, name)| Row::from(vec![SqlValue::Integer(id), SqlValue::from(name)]));
//! let report = Pipeline::from_iter(rows).sink(sink).run().await.unwrap();
//! assert_eq!(report.delivered, 3);
//! # });
//! ```

mod sink;
mod source;

use std::future::Future;
use std::time::Duration;

use bytes::BufMut;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::{Client, Config, NoTls};

use crate::error::{IoError, IoErrorKind};
use crate::sql::Dialect;

pub use self::sink::{PostgresMode, PostgresSink, PostgresSinkConfig, COMMIT_ROWS};
pub use self::source::{PostgresSource, PostgresSourceConfig};
pub use crate::sql::{Row, Rows, Select, SqlType, SqlValue};

/// What PostgreSQL allows in names: `pg_…` is its own, names longer than
/// 63 bytes would be cut, at most 1600 columns a table; `schema.table`.
pub(crate) const POSTGRES: Dialect = Dialect {
    system: "PostgreSQL",
    reserved: "pg_",
    max_len: 63,
    max_columns: 1_600,
    schemas: true,
};

/// Checks a PostgreSQL URL without connecting (`postgres://user:password@host:port/db?…`,
/// `postgresql://…`, or `host=… dbname=…`), and says how messages name
/// its server: the database and the hosts, never the password.
///
/// # Errors
///
/// An [`IoError`] of kind [`InvalidConfig`](IoErrorKind::InvalidConfig)
/// saying what does not parse.
///
/// # Examples
///
/// ```
/// use weir_io::postgres::check_url;
///
/// let named = check_url("postgres://weir:s3cret@db.internal:6432/events").unwrap();
/// assert_eq!(named, "database `events` on db.internal:6432");
/// assert!(check_url("postgres://db.internal:port/events").is_err());
/// assert!(check_url("").is_err());
/// ```
pub fn check_url(url: &str) -> Result<String, IoError> {
    Target::parse(url, IoErrorKind::InvalidConfig).map(|t| t.name)
}

/// How long connecting may take when the URL does not say
/// (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A server to connect to: its parsed settings, and how messages name it
/// (`database `test` on 127.0.0.1:5432`: never the password).
#[derive(Clone)]
pub(crate) struct Target {
    config: Config,
    pub(crate) name: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Target {
    /// Parses `url` (`postgres://user@host:port/db?…` or `host=… dbname=…`)
    /// without connecting. `kind` is the error's kind.
    pub(crate) fn parse(url: &str, kind: IoErrorKind) -> Result<Target, IoError> {
        if url.trim().is_empty() {
            return Err(IoError::new(kind, None, "no PostgreSQL URL given"));
        }
        let mut config: Config = url
            .parse()
            .map_err(|e| IoError::new(kind, None, format!("invalid PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("weir");
        }
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
            .map(|(host, port)| match host {
                tokio_postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(dir) => format!("{}", dir.display()),
            })
            .collect();
        let db = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
        let at = if hosts.is_empty() {
            "localhost".to_owned()
        } else {
            hosts.join(",")
        };
        Ok(Target {
            name: format!("database `{db}` on {at}"),
            config,
        })
    }

    /// Connects, and drives the connection on the current runtime (the
    /// caller's own thread's: see [`spawn_thread`]).
    pub(crate) async fn connect(&self, kind: IoErrorKind) -> Result<Client, IoError> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| error(kind, &format!("cannot connect to {}", self.name), &e))?;
        tokio::spawn(async move {
            // Its error shows as the next query's ("connection closed").
            let _ = connection.await;
        });
        Ok(client)
    }
}

/// Runs `work()` to its end on a thread of its own (named `name`) with a
/// current-thread tokio runtime: the connection never touches the caller's
/// runtime, and a synchronous caller can wait for it from anywhere — a
/// plain thread or a tokio worker — without `block_on` inside a runtime
/// (which panics).
pub(crate) fn spawn_thread<F, W>(name: &str, work: W) -> std::io::Result<()>
where
    W: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || runtime.block_on(work()))
        .map(drop)
}

/// Whether `e` belongs to a row (its values or a constraint) rather than
/// to the connection or the transaction: SQLSTATE classes 21 (cardinality),
/// 22 (data exception) and 23 (integrity constraint violation).
pub(crate) fn is_row_error(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| matches!(&c.code()[..2], "21" | "22" | "23"))
}

/// An [`IoError`] for `e`, a failure of `what`: its kind follows the
/// SQLSTATE (`fallback` when it says nothing more precise); the message
/// has the server's message, detail and hint on one line.
pub(crate) fn error(fallback: IoErrorKind, what: &str, e: &tokio_postgres::Error) -> IoError {
    let kind = match e.code().map(|c| c.code()) {
        Some(c) if c.starts_with("23") => IoErrorKind::Rejected,
        Some(c) if c.starts_with("22") => IoErrorKind::Encode,
        Some("42501") => IoErrorKind::PermissionDenied,
        Some("42P01" | "3F000" | "3D000") => IoErrorKind::NotFound,
        _ => fallback,
    };
    let why = match e.as_db_error() {
        Some(db) => {
            let mut why = db.message().to_owned();
            if let Some(detail) = db.detail() {
                why = format!("{why} ({})", detail.trim_end_matches('.'));
            }
            if let Some(hint) = db.hint() {
                why = format!("{why}; hint: {hint}");
            }
            why
        }
        None => {
            let mut why = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                why = format!("{why}: {c}");
                cause = c.source();
            }
            why
        }
    };
    IoError::new(kind, None, format!("{what}: {why}"))
}

/// The column types the sink can write, as the table declares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Column {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// `text`, `varchar`, `char`.
    Text,
    Json,
    Jsonb,
    Bytea,
}

impl Column {
    /// The column of type `ty` that a configured column of type `sql`
    /// can write; `Err` says why not.
    pub(crate) fn of(ty: &Type, sql: SqlType) -> Result<Column, String> {
        let column = match *ty {
            Type::INT2 => Column::Int2,
            Type::INT4 => Column::Int4,
            Type::INT8 => Column::Int8,
            Type::FLOAT4 => Column::Float4,
            Type::FLOAT8 => Column::Float8,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR => Column::Text,
            Type::JSON => Column::Json,
            Type::JSONB => Column::Jsonb,
            Type::BYTEA => Column::Bytea,
            _ => {
                return Err(format!(
                "is of type `{}`, which the sink cannot write (it writes smallint, integer, bigint, real, \
                     double precision, text, varchar, char, json, jsonb and bytea)",
                ty.name()
            ))
            }
        };
        let fits = match sql {
            SqlType::Integer => matches!(column, Column::Int2 | Column::Int4 | Column::Int8),
            SqlType::Real => matches!(column, Column::Float4 | Column::Float8),
            SqlType::Text => column == Column::Text,
            SqlType::Blob => column == Column::Bytea,
            SqlType::Json => matches!(column, Column::Json | Column::Jsonb | Column::Text),
        };
        if fits {
            Ok(column)
        } else {
            Err(format!(
                "is of type `{}`, not one a `{sql}` column can be",
                ty.name()
            ))
        }
    }

    /// Whether `value` (already checked against its [`SqlType`]) fits
    /// this column: integers within the column's range.
    pub(crate) fn check(self, value: &SqlValue) -> Result<(), String> {
        let range = match self {
            Column::Int2 => i64::from(i16::MIN)..=i64::from(i16::MAX),
            Column::Int4 => i64::from(i32::MIN)..=i64::from(i32::MAX),
            _ => return Ok(()),
        };
        match value {
            SqlValue::Integer(i) if !range.contains(i) => Err(format!(
                "{i} is out of range for a `{}` column",
                if self == Column::Int2 {
                    "smallint"
                } else {
                    "integer"
                }
            )),
            _ => Ok(()),
        }
    }
}

/// A value encoded for its column (a private type: tokio-postgres stays
/// out of the public API).
#[derive(Debug)]
pub(crate) struct Bind<'a>(pub(crate) &'a SqlValue, pub(crate) Column);

impl ToSql for Bind<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let Bind(value, column) = *self;
        column.check(value)?;
        match (value, column) {
            (SqlValue::Null, _) => return Ok(IsNull::Yes),
            (SqlValue::Integer(i), Column::Int2) => out.put_i16(*i as i16),
            (SqlValue::Integer(i), Column::Int4) => out.put_i32(*i as i32),
            (SqlValue::Integer(i), Column::Int8) => out.put_i64(*i),
            (SqlValue::Integer(i), Column::Float4) => out.put_f32(*i as f32),
            (SqlValue::Integer(i), Column::Float8) => out.put_f64(*i as f64),
            (SqlValue::Real(r), Column::Float4) => out.put_f32(*r as f32),
            (SqlValue::Real(r), Column::Float8) => out.put_f64(*r),
            (SqlValue::Text(s), Column::Text | Column::Json) => out.put_slice(s.as_bytes()),
            (SqlValue::Text(s), Column::Jsonb) => {
                out.put_u8(1); // jsonb's binary format: version 1, then the text
                out.put_slice(s.as_bytes());
            }
            (SqlValue::Blob(b), Column::Bytea) => out.put_slice(b),
            (value, _) => {
                return Err(format!("cannot write {} to a `{}` column", value.kind(), ty.name()).into())
            }
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_words_a_schema_may_qualify_the_table_and_pg_names_are_refused() {
        assert_eq!(POSTGRES.table("events").unwrap(), "\"events\"");
        assert_eq!(POSTGRES.table("etl.events").unwrap(), "\"etl\".\"events\"");
        for bad in [
            "",
            "a.b.c",
            "x\"; DROP TABLE t; --",
            "pg_class",
            "PG_x.t",
            "é",
            &"a".repeat(64),
        ] {
            let e = POSTGRES.table(bad).unwrap_err();
            assert_eq!(e.kind(), IoErrorKind::InvalidConfig, "{bad}: {e}");
        }
        assert!(POSTGRES.identifier("column name", &"a".repeat(63)).is_ok());
    }

    #[test]
    fn urls_are_checked_without_connecting_and_messages_never_show_the_password() {
        let t = Target::parse(
            "postgres://me:secret@db.example:6543/sales",
            IoErrorKind::InvalidConfig,
        )
        .unwrap();
        assert_eq!(t.name, "database `sales` on db.example:6543");
        assert!(!format!("{t:?}").contains("secret"));
        let e = Target::parse("postgres://a:b@host:notaport/x", IoErrorKind::InvalidConfig).unwrap_err();
        assert!(e.to_string().starts_with("invalid PostgreSQL URL"), "{e}");
        assert_eq!(
            Target::parse(" ", IoErrorKind::Store).unwrap_err().kind(),
            IoErrorKind::Store
        );
    }

    #[test]
    fn columns_take_the_values_of_their_type_within_range() {
        assert_eq!(Column::of(&Type::INT4, SqlType::Integer), Ok(Column::Int4));
        assert_eq!(Column::of(&Type::JSONB, SqlType::Json), Ok(Column::Jsonb));
        assert!(Column::of(&Type::TEXT, SqlType::Integer)
            .unwrap_err()
            .contains("not one a `integer` column can be"));
        assert!(Column::of(&Type::TIMESTAMPTZ, SqlType::Text)
            .unwrap_err()
            .contains("cannot write"));
        assert!(Column::Int2.check(&SqlValue::Integer(40_000)).is_err());
        assert!(Column::Int4.check(&SqlValue::Integer(40_000)).is_ok());
        assert!(Column::Int4.check(&SqlValue::Integer(1 << 40)).is_err());
        let mut out = bytes::BytesMut::new();
        Bind(&SqlValue::from("{}"), Column::Jsonb)
            .to_sql(&Type::JSONB, &mut out)
            .unwrap();
        assert_eq!(&out[..], b"\x01{}");
    }
}
