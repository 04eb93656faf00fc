use std::error::Error as StdError;

use bytes::BufMut;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, Statement};

use super::{error, spawn_thread, Target, POSTGRES};
use crate::checkpoint::{KeyCheckpointer, KeyValue, Position};
use crate::error::{IoError, IoErrorKind};
use crate::sql::source::{asked, page, Columns, Page, Plan, Reader, Request, PAGE_SIZE};
use crate::sql::{Rows, Select};

/// What a [`PostgresSource`] reads, and how.
///
/// | setting | default |
/// |---|---|
/// | [`url`](Self::url), [`select`](Self::select), [`key`](Self::key) | none: give them to [`table`](Self::table) or [`query`](Self::query) |
/// | [`page_size`](Self::page_size) | 1000 |
///
/// # Examples
///
/// ```
/// use weir_io::postgres::PostgresSourceConfig;
///
/// let config = PostgresSourceConfig::table("postgres://postgres@127.0.0.1/test", "sales.orders", "id").page_size(5000);
/// assert!(config.validate().is_ok());
/// let bad = PostgresSourceConfig::table("postgres://postgres@127.0.0.1/test", "orders", "id\"; DROP TABLE orders; --");
/// assert!(bad.validate().unwrap_err().to_string().contains("not a plain SQL identifier"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresSourceConfig {
    /// The server: `postgres://user:password@host:port/db` (or `host=…
    /// dbname=…`).
    pub url: String,
    /// The table (`table` or `schema.table`), or a query.
    pub select: Select,
    /// The key column: rows are read in its order (PostgreSQL's `ORDER
    /// BY`: numbers by value, text by the column's collation), and a
    /// resumed run reads the rows after the last finalized key. It must be
    /// of an integer type (`smallint`, `integer`, `bigint`) or a text type
    /// (`text`, `varchar`, `char`, `name`); its values unique, never NULL.
    pub key: String,
    /// Rows per page (per `SELECT … LIMIT`). By default, 1000.
    pub page_size: usize,
}

/// Never shows the URL: it may hold a password.
impl std::fmt::Debug for PostgresSourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSourceConfig")
            .field("select", &self.select)
            .field("key", &self.key)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl PostgresSourceConfig {
    /// Reads every row of `table` on the server at `url`, in the order of
    /// the `key` column, with the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = weir_io::postgres::PostgresSourceConfig::table("postgres://db/x", "events", "id");
    /// assert_eq!(config.page_size, 1000);
    /// assert!(!format!("{config:?}").contains("postgres://"));
    /// ```
    pub fn table(
        url: impl Into<String>,
        table: impl Into<String>,
        key: impl Into<String>,
    ) -> PostgresSourceConfig {
        PostgresSourceConfig {
            url: url.into(),
            select: Select::Table(table.into()),
            key: key.into(),
            page_size: PAGE_SIZE,
        }
    }

    crate::sql::source::source_setters!(PostgresSourceConfig, "postgres", url: String, "\"postgres://db/x\"");

    /// Checks the settings without connecting: the URL parses, the table
    /// and key are plain identifiers, a query is not empty, `page_size`
    /// is at least 1. Errors are of kind
    /// [`InvalidConfig`](IoErrorKind::InvalidConfig).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::postgres::PostgresSourceConfig;
    /// let err = PostgresSourceConfig::table("postgres://h:port/x", "t", "id").validate().unwrap_err();
    /// assert!(err.to_string().starts_with("invalid PostgreSQL URL"), "{err}");
    /// ```
    pub fn validate(&self) -> Result<(), IoError> {
        self.plan().map(drop)
    }

    fn plan(&self) -> Result<(Plan, Target), IoError> {
        let target = Target::parse(&self.url, IoErrorKind::InvalidConfig)?;
        let plan = Plan::new(
            &POSTGRES,
            "postgres",
            "postgres",
            &self.select,
            &self.key,
            self.page_size,
        )?;
        Ok((plan, target))
    }
}

/// Reads a PostgreSQL table (or a query's rows) in key order, a page at
/// a time, over a connection of its own on a thread of its own that
/// reads one page ahead; each row is a JSON object. Checkpointed by key:
/// see [`resume`](Self::resume).
///
/// Rows as JSON: `smallint`, `integer`, `bigint` and `oid` are numbers;
/// `real` and `double precision` numbers (`null` when not finite);
/// `boolean` a boolean; `text`, `varchar`, `char` and `name` strings;
/// `json` and `jsonb` the JSON value itself; `bytea` an array of its bytes
/// (numbers 0–255: what the table sinks' `blob` columns take back); NULL
/// `null`. Every other type is a string, as PostgreSQL writes it:
/// `numeric` exactly (`"12.50"`), timestamps in ISO style in the
/// session's time zone (`"2024-05-01 12:00:00+00"`; set another with
/// `options=-c TimeZone=…` in the URL), dates, uuids, arrays (`"{1,2}"`)…
///
/// The session is read-only (`default_transaction_read_only`): a query
/// cannot change the database. Each page is its own statement: rows
/// added behind the last key while the source reads are read too.
///
/// # Examples
///
/// ```no_run
/// use weir_io::postgres::{PostgresSource, PostgresSourceConfig};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let config = PostgresSourceConfig::table("postgres://postgres@127.0.0.1/test", "users", "id");
/// let source = PostgresSource::open(config).unwrap();
/// let rows = weir::Pipeline::from_acked(source.rows())
///     .try_map(|row| row.map(|r| r.value))
///     .collect()
///     .await
///     .unwrap();
/// assert!(rows.windows(2).all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64()));
/// # });
/// ```
pub struct PostgresSource {
    reader: Reader,
    target: Target,
}

impl std::fmt::Debug for PostgresSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSource")
            .field("server", &self.target.name)
            .field("read", &self.reader.plan.read)
            .finish_non_exhaustive()
    }
}

impl PostgresSource {
    /// Checks the settings ([`validate`](PostgresSourceConfig::validate)),
    /// connects, checks that the table (or query) has the key column, of
    /// an integer or text type, and that no two columns share a name,
    /// then asks for the first page at once. Blocks until the server
    /// answers (at most the URL's `connect_timeout`, 10 s by default):
    /// call it before the run. A missing table is of kind
    /// [`NotFound`](IoErrorKind::NotFound), a missing key column or one of
    /// another type of kind [`InvalidConfig`](IoErrorKind::InvalidConfig).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::postgres::{PostgresSource, PostgresSourceConfig};
    /// let err = PostgresSource::open(PostgresSourceConfig::table("postgres://h:notaport/db", "t", "id")).unwrap_err();
    /// assert_eq!(err.kind(), weir_io::IoErrorKind::InvalidConfig);
    /// ```
    pub fn open(config: PostgresSourceConfig) -> Result<PostgresSource, IoError> {
        let (plan, target) = config.plan()?;
        let (requests, inbox) = mpsc::unbounded_channel();
        let (ready, opened) = std::sync::mpsc::channel();
        let worker = Worker {
            target: target.clone(),
            plan: plan.clone(),
            open: None,
            checked: false,
        };
        spawn_thread("weir-postgres-source", move || worker.run(inbox, ready)).map_err(|e| {
            IoError::new(
                IoErrorKind::Read,
                None,
                format!("cannot start the thread for {}: {e}", target.name),
            )
        })?;
        opened.recv().map_err(|_| {
            IoError::new(
                IoErrorKind::Read,
                None,
                format!("the thread reading {} stopped", target.name),
            )
        })??;
        Ok(PostgresSource {
            reader: Reader::new(plan, requests),
            target,
        })
    }

    /// Resumes from the positions a store holds for the source named
    /// `name`, and returns the checkpointer to commit: as
    /// [`SqliteSource::resume`](crate::sqlite::SqliteSource::resume) (rows
    /// are read after the stored key; positions written for anything else
    /// are refused).
    ///
    /// # Errors
    ///
    /// An error of kind [`Store`](IoErrorKind::Store) for a position
    /// written by another kind of source, or for another table, query or
    /// key column.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use weir_io::checkpoint::{CheckpointStore, PostgresCheckpoints};
    /// use weir_io::postgres::{PostgresSource, PostgresSourceConfig};
    ///
    /// let url = "postgres://postgres@127.0.0.1/test";
    /// let store = PostgresCheckpoints::open(url).unwrap();
    /// let mut source = PostgresSource::open(PostgresSourceConfig::table(url, "orders", "id")).unwrap();
    /// let checkpointer = source.resume("orders", &store.load("orders").unwrap()).unwrap();
    /// assert_eq!(checkpointer.source(), "orders");
    /// ```
    pub fn resume(&mut self, name: &str, positions: &[Position]) -> Result<KeyCheckpointer, IoError> {
        self.reader.resume(name, positions)
    }

    /// Connects anew and checks that the table (or query) still has its
    /// key column, of an integer or text type: a server down, a dropped
    /// table or column fail here. Blocks until the server answers.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use weir_io::postgres::{PostgresSource, PostgresSourceConfig};
    /// let config = PostgresSourceConfig::table("postgres://postgres@127.0.0.1/test", "orders", "id");
    /// let source = PostgresSource::open(config).unwrap();
    /// assert!(source.healthcheck().is_ok());
    /// ```
    pub fn healthcheck(&self) -> Result<(), IoError> {
        let (target, plan) = (self.target.clone(), self.reader.plan.clone());
        let (reply, answer) = std::sync::mpsc::channel();
        spawn_thread("weir-postgres-check", move || async move {
            let checked = async {
                let client = connect(&target).await?;
                describe(&client, &plan, &target).await.map(drop)
            };
            let _ = reply.send(checked.await);
        })
        .map_err(|e| IoError::new(IoErrorKind::Read, None, e.to_string()))?;
        answer
            .recv()
            .map_err(|_| IoError::new(IoErrorKind::Read, None, "the health check's thread stopped"))?
    }

    /// The rows, in key order (after the resumed key, if any): see
    /// [`Rows`].
    ///
    /// # Examples
    ///
    /// See [`PostgresSource`].
    pub fn rows(self) -> Rows {
        self.reader.rows()
    }
}

/// Connects, in a read-only session writing dates in ISO style.
async fn connect(target: &Target) -> Result<Client, IoError> {
    let client = target.connect(IoErrorKind::Read).await?;
    client
        .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; SET DateStyle = 'ISO, YMD'")
        .await
        .map_err(|e| {
            error(
                IoErrorKind::Read,
                &format!("cannot set up the session on {}", target.name),
                &e,
            )
        })?;
    Ok(client)
}

/// The types read as they are; the others are cast to `text`.
fn native(ty: &Type) -> bool {
    [
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::OID,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::BOOL,
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::BYTEA,
    ]
    .contains(ty)
}

/// A source's statements, once its columns are known.
struct Described {
    columns: Columns,
    /// The columns that are JSON (read as text, then parsed).
    json: Vec<bool>,
    /// The first page's statement, and the next pages'.
    first: Statement,
    next: Statement,
}

/// Reads the columns of what `plan` reads, checks the key, and prepares
/// the statements.
async fn describe(client: &Client, plan: &Plan, target: &Target) -> Result<Described, IoError> {
    let fail = |e: &tokio_postgres::Error| {
        error(
            IoErrorKind::Read,
            &format!("cannot read the {} of {}", plan.select, target.name),
            e,
        )
    };
    let probe = client.prepare(&plan.describe()).await.map_err(|e| fail(&e))?;
    let names: Vec<String> = probe.columns().iter().map(|c| c.name().to_owned()).collect();
    let key = plan.key_index(&names, true, &target.name)?;
    let key_type = probe.columns()[key].type_();
    let keyable = [
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
    ];
    if !keyable.contains(key_type) {
        return Err(IoError::new(
            IoErrorKind::InvalidConfig,
            None,
            format!(
                "the key column `{}` of the {} of {} is of type `{}`: keys must be integers (smallint, integer, \
                 bigint) or text (text, varchar, char, name)",
                plan.key_name,
                plan.select,
                target.name,
                key_type.name()
            ),
        ));
    }
    let mut list = Vec::with_capacity(names.len());
    let mut json = Vec::with_capacity(names.len());
    for column in probe.columns() {
        // Names come from the server; quoted, with their quotes doubled.
        let quoted = format!("q.\"{}\"", column.name().replace('"', "\"\""));
        let ty = column.type_();
        json.push(*ty == Type::JSON || *ty == Type::JSONB);
        list.push(if native(ty) {
            quoted
        } else {
            format!("{quoted}::text")
        });
    }
    let list = list.join(", ");
    let first = client
        .prepare(&plan.page(&list, false, "", "$1"))
        .await
        .map_err(|e| fail(&e))?;
    let next = client
        .prepare(&plan.page(&list, true, "$1", "$2"))
        .await
        .map_err(|e| fail(&e))?;
    Ok(Described {
        columns: Columns {
            names: names.into(),
            key,
        },
        json,
        first,
        next,
    })
}

/// One value read, as JSON (a private type: tokio-postgres stays out of
/// the public API).
struct Cell(Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, Box<dyn StdError + Sync + Send>> {
        let float = |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
        Ok(Cell(match *ty {
            Type::INT2 => i16::from_sql(ty, raw)?.into(),
            Type::INT4 => i32::from_sql(ty, raw)?.into(),
            Type::INT8 => i64::from_sql(ty, raw)?.into(),
            Type::OID => u32::from_sql(ty, raw)?.into(),
            Type::FLOAT4 => float(f64::from(f32::from_sql(ty, raw)?)),
            Type::FLOAT8 => float(f64::from_sql(ty, raw)?),
            Type::BOOL => bool::from_sql(ty, raw)?.into(),
            Type::BYTEA => Value::Array(raw.iter().map(|&b| b.into()).collect()),
            _ => Value::String(std::str::from_utf8(raw)?.to_owned()),
        }))
    }

    fn from_sql_null(_: &Type) -> Result<Cell, Box<dyn StdError + Sync + Send>> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A key to bind, encoded for the key column's type (a private type).
#[derive(Debug)]
struct Bind<'a>(&'a KeyValue);

impl ToSql for Bind<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match (self.0, ty) {
            (KeyValue::Integer(i), &Type::INT2) => out.put_i16(i16::try_from(*i)?),
            (KeyValue::Integer(i), &Type::INT4) => out.put_i32(i32::try_from(*i)?),
            (KeyValue::Integer(i), &Type::INT8) => out.put_i64(*i),
            (KeyValue::Text(s), _) => out.put_slice(s.as_bytes()),
            (KeyValue::Integer(i), _) => {
                return Err(
                    format!("cannot compare the integer key {i} with a `{}` column", ty.name()).into(),
                )
            }
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// The source's thread: the connection (made anew when it broke), and
/// the page each request asks for.
struct Worker {
    target: Target,
    plan: Plan,
    open: Option<(Client, Described)>,
    /// Whether the NULL keys were looked for (once a run).
    checked: bool,
}

impl Worker {
    async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<Request>,
        ready: std::sync::mpsc::Sender<Result<(), IoError>>,
    ) {
        let opened = self.open().await.map(drop);
        let failed = opened.is_err();
        if ready.send(opened).is_err() || failed {
            return;
        }
        while let Some(request) = inbox.recv().await {
            let page = self.fetch(request.after.as_ref()).await;
            let _ = request.reply.send(page);
        }
    }

    /// The connection and its statements (made if there is none or it
    /// broke).
    async fn open(&mut self) -> Result<&(Client, Described), IoError> {
        if self.open.as_ref().is_some_and(|(c, _)| c.is_closed()) {
            self.open = None;
        }
        if self.open.is_none() {
            let client = connect(&self.target).await?;
            let described = describe(&client, &self.plan, &self.target).await?;
            self.open = Some((client, described));
        }
        Ok(self.open.as_ref().expect("a connection"))
    }

    async fn fetch(&mut self, after: Option<&KeyValue>) -> Result<Page, IoError> {
        let (plan, target) = (self.plan.clone(), self.target.name.clone());
        let fail = |e: &tokio_postgres::Error| {
            error(
                IoErrorKind::Read,
                &format!("cannot read the {} of {target}", plan.select),
                e,
            )
        };
        let check = !self.checked;
        let (client, described) = self.open().await?;
        if check {
            let found = client
                .query_opt(&plan.null_check(), &[])
                .await
                .map_err(|e| fail(&e))?;
            if found.is_some() {
                return Err(plan.null_key());
            }
        }
        let asked = asked(&plan, after);
        let limit = asked as i64;
        let rows = match after {
            Some(key) => client.query(&described.next, &[&Bind(key), &limit]).await,
            None => client.query(&described.first, &[&limit]).await,
        }
        .map_err(|e| fail(&e))?;
        let mut fetched = Vec::with_capacity(rows.len());
        for row in rows {
            let mut values = Vec::with_capacity(row.len());
            for (i, &json) in described.json.iter().enumerate() {
                let Cell(value) = row.try_get(i).map_err(|e| fail(&e))?;
                values.push(match value {
                    Value::String(text) if json => serde_json::from_str(&text).unwrap_or(Value::String(text)),
                    value => value,
                });
            }
            fetched.push(values);
        }
        let columns = described.columns.clone();
        self.checked = true;
        page(&plan, &columns, after, asked, fetched)
    }
}

/// Never shows its connection.
impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.target.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_decode_to_json_and_keys_encode_for_their_column() {
        let Cell(v) = Cell::from_sql(&Type::INT4, &7i32.to_be_bytes()).unwrap();
        assert_eq!(v, serde_json::json!(7));
        let Cell(v) = Cell::from_sql(&Type::FLOAT8, &f64::NAN.to_be_bytes()).unwrap();
        assert_eq!(v, Value::Null);
        let Cell(v) = Cell::from_sql(&Type::BYTEA, &[1, 255]).unwrap();
        assert_eq!(v, serde_json::json!([1, 255]));
        let Cell(v) = Cell::from_sql(&Type::TEXT, b"x").unwrap();
        assert_eq!(v, serde_json::json!("x"));
        let mut out = bytes::BytesMut::new();
        Bind(&KeyValue::Integer(5)).to_sql(&Type::INT2, &mut out).unwrap();
        assert_eq!(&out[..], &[0, 5]);
        assert!(Bind(&KeyValue::Integer(1 << 40))
            .to_sql(&Type::INT4, &mut out)
            .is_err());
    }
}
