//! What the table sources share (the SQLite source, the PostgreSQL
//! source): what they read ([`Select`]), keyset pagination, the rows as
//! JSON objects, their acknowledgements, and the stream of rows
//! ([`Rows`]) fed one page ahead by a database thread.
//!
//! A source reads its table (or query) in key order, a page at a time:
//! the first page is `SELECT … FROM t AS q WHERE q.key IS NOT NULL ORDER
//! BY q.key LIMIT n`, each next one `… WHERE q.key >= $last ORDER BY
//! q.key LIMIT n + 1` (the last key always bound, never written into the
//! SQL). The row of the last key comes back first and is dropped: a
//! second row with that key means the key is not unique, and the source
//! fails rather than skip rows.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures::Stream;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use weir::{Ack, Acked};

use super::Dialect;
use crate::checkpoint::{key_position, KeyCheckpointer, KeyPosition, KeyValue, Position};
use crate::error::{IoError, IoErrorKind};
use crate::record::{Origin, Record};

/// What a table source reads: a whole table, or the rows of a query.
///
/// # Examples
///
/// ```
/// use weir_io::sql::Select;
///
/// let table = Select::Table("events".into());
/// assert_eq!(table.to_string(), "table events");
/// let query = Select::Query("SELECT id, name FROM users WHERE active".into());
/// assert_eq!(query.to_string(), "query (SELECT id, name FROM users WHERE active)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Select {
    /// Every row of this table (a plain identifier; PostgreSQL also takes
    /// `schema.table`).
    Table(String),
    /// The rows of this `SELECT` (one statement, run as it is written, in
    /// a read-only connection); the key must be one of its columns, and
    /// its columns' names must be unique.
    Query(String),
}

/// `table events`, `query (SELECT …)` (a query's whitespace collapsed).
impl std::fmt::Display for Select {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Select::Table(t) => write!(f, "table {t}"),
            Select::Query(q) => write!(
                f,
                "query ({})",
                q.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        }
    }
}

/// The default rows per page.
pub(crate) const PAGE_SIZE: usize = 1000;

/// The constructor and setter both table sources' configs share
/// (`SqliteSourceConfig`, `PostgresSourceConfig`), written once: `$config`
/// is the type, `$module` its module, `$place` what its `table` takes
/// first (`path`, `url`) and of which type, `$example` a value of it for
/// the examples.
macro_rules! source_setters {
    ($config:ident, $module:literal, $place:ident: $place_ty:ty, $example:literal) => {
        /// Reads the rows of `query` (one `SELECT`; `key` is one of its
        /// columns), with the defaults. The query becomes a subquery:
        /// `SELECT … FROM (query) AS q WHERE q.key >= $last ORDER BY q.key
        /// LIMIT n`.
        ///
        /// # Examples
        ///
        /// ```
        #[doc = concat!("let config = weir_io::", $module, "::", stringify!($config), "::query(", $example, ", \"SELECT id, total FROM orders WHERE total > 100\", \"id\");")]
        /// assert!(config.validate().is_ok());
        /// ```
        pub fn query($place: impl Into<$place_ty>, query: impl Into<String>, key: impl Into<String>) -> $config {
            $config {
                select: $crate::sql::Select::Query(query.into()),
                ..$config::table($place, "", key)
            }
        }

        /// Sets the rows per page (at least 1). By default, 1000.
        ///
        /// # Examples
        ///
        /// ```
        #[doc = concat!("let config = weir_io::", $module, "::", stringify!($config), "::table(", $example, ", \"t\", \"id\").page_size(64);")]
        /// assert_eq!(config.page_size, 64);
        /// ```
        pub fn page_size(mut self, rows: usize) -> $config {
            self.page_size = rows;
            self
        }
    };
}
pub(crate) use source_setters;

/// A source's checked settings: the SQL pieces, and how it names itself.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// `"t" AS q` or `(SELECT …) AS q`.
    pub(crate) from: String,
    /// `q."key"`.
    pub(crate) key: String,
    /// The key column as configured.
    pub(crate) key_name: String,
    pub(crate) page_size: usize,
    /// What is read, as a key position names it: `sqlite table t by id`.
    pub(crate) read: String,
    /// The table or query: `table t`, `query (…)`.
    pub(crate) select: String,
    /// What records' origins name: `in.db:events`.
    pub(crate) origin: Arc<str>,
}

impl Plan {
    /// Checks the settings (names are plain identifiers, a query is not
    /// empty, the page size at least 1) without touching the database.
    /// `system` is `sqlite` or `postgres`; `place` prefixes the origin
    /// (the database file, or `postgres`).
    pub(crate) fn new(
        dialect: &Dialect,
        system: &str,
        place: &str,
        select: &Select,
        key: &str,
        page_size: usize,
    ) -> Result<Plan, IoError> {
        let invalid = |message: String| IoError::new(IoErrorKind::InvalidConfig, None, message);
        let quoted_key = dialect.identifier("key column", key)?;
        let (from, what) = match select {
            Select::Table(table) => (format!("{} AS q", dialect.table(table)?), table.as_str()),
            Select::Query(query) => {
                let query = query
                    .trim()
                    .trim_end_matches(|c: char| c == ';' || c.is_whitespace());
                if query.is_empty() {
                    return Err(invalid("the query is empty".into()));
                }
                (format!("({query}) AS q"), "query")
            }
        };
        if page_size == 0 {
            return Err(invalid("page_size must be at least 1".into()));
        }
        Ok(Plan {
            from,
            key: format!("q.{quoted_key}"),
            key_name: key.to_owned(),
            page_size,
            read: format!("{system} {select} by {key}"),
            select: select.to_string(),
            origin: format!("{place}:{what}").into(),
        })
    }

    /// `SELECT 1 FROM … WHERE key IS NULL LIMIT 1`: whether any row has
    /// no key.
    pub(crate) fn null_check(&self) -> String {
        format!("SELECT 1 FROM {} WHERE {} IS NULL LIMIT 1", self.from, self.key)
    }

    /// The statement of a page: `columns` selected, after the key bound as
    /// parameter `param` (`?1`, `$1`) when `after`, and the limit as the
    /// next parameter (`limit`: `?2`, `$2`, or `?1` / `$1` on the first
    /// page).
    pub(crate) fn page(&self, columns: &str, after: bool, param: &str, limit: &str) -> String {
        let (from, key) = (&self.from, &self.key);
        if after {
            format!("SELECT {columns} FROM {from} WHERE {key} >= {param} ORDER BY {key} LIMIT {limit}")
        } else {
            format!("SELECT {columns} FROM {from} WHERE {key} IS NOT NULL ORDER BY {key} LIMIT {limit}")
        }
    }

    /// `SELECT * FROM … LIMIT 0`: the columns, without reading a row.
    pub(crate) fn describe(&self) -> String {
        format!("SELECT * FROM {} LIMIT 0", self.from)
    }

    /// The error of a row with no key.
    pub(crate) fn null_key(&self) -> IoError {
        let key = &self.key_name;
        IoError::new(
            IoErrorKind::Read,
            None,
            format!(
                "{}: a row has a NULL key `{key}`: rows are read in key order and resumed after a key, where \
                 NULL has no place; make the column NOT NULL, or read a query with `WHERE {key} IS NOT NULL`",
                self.read
            ),
        )
    }

    /// The index of the key among `columns` (matched as `exact` says:
    /// SQLite's names ignore case, PostgreSQL's quoted ones do not), once
    /// no column name is given twice. `place` names the database.
    pub(crate) fn key_index(&self, columns: &[String], exact: bool, place: &str) -> Result<usize, IoError> {
        for (i, c) in columns.iter().enumerate() {
            if columns[..i].contains(c) {
                return Err(IoError::new(
                    IoErrorKind::InvalidConfig,
                    None,
                    format!(
                        "{}: two columns are named `{c}`: a row is a JSON object, name them apart (`AS`)",
                        self.read
                    ),
                ));
            }
        }
        let key = &self.key_name;
        columns
            .iter()
            .position(|c| {
                if exact {
                    c == key
                } else {
                    c.eq_ignore_ascii_case(key)
                }
            })
            .ok_or_else(|| {
                IoError::new(
                    IoErrorKind::InvalidConfig,
                    None,
                    format!(
                        "the {} of {place} has no column `{key}` to read in key order (its columns: {})",
                        self.select,
                        columns.join(", ")
                    ),
                )
            })
    }
}

/// The columns of a source's rows: their names and which is the key.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    pub(crate) names: Arc<[String]>,
    pub(crate) key: usize,
}

/// A page of rows, each its key and its JSON object.
#[derive(Debug)]
pub(crate) struct Page {
    rows: Vec<(KeyValue, Map<String, Value>)>,
    /// No more rows after these (the database returned fewer than asked).
    last: bool,
}

/// What a [`Rows`] asks of its database thread: the page after `after`.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) after: Option<KeyValue>,
    pub(crate) reply: oneshot::Sender<Result<Page, IoError>>,
}

/// The rows per request: one more after a key (its own row comes back
/// first and is dropped).
pub(crate) fn asked(plan: &Plan, after: Option<&KeyValue>) -> usize {
    plan.page_size + usize::from(after.is_some())
}

/// The page of the values `fetched` for a request after `after` (`asked`
/// rows asked): keys checked (integer or text, unique), the row of
/// `after` dropped, each row made an object.
pub(crate) fn page(
    plan: &Plan,
    columns: &Columns,
    after: Option<&KeyValue>,
    asked: usize,
    fetched: Vec<Vec<Value>>,
) -> Result<Page, IoError> {
    let last = fetched.len() < asked;
    let mut rows: Vec<(KeyValue, Map<String, Value>)> = Vec::with_capacity(fetched.len());
    let mut repeated = false;
    for values in fetched {
        let key = match &values[columns.key] {
            Value::Number(n) if n.is_i64() => KeyValue::Integer(n.as_i64().expect("an i64")),
            Value::String(s) => KeyValue::Text(s.clone()),
            Value::Null => return Err(plan.null_key()),
            other => {
                let kind = match other {
                    Value::Number(_) => "a real or out-of-range number",
                    Value::Array(_) => "a blob",
                    _ => "not an integer or text",
                };
                return Err(IoError::new(
                    IoErrorKind::Read,
                    None,
                    format!(
                        "{}: a row's key `{}` is {kind} ({other}): keys must be integers or text",
                        plan.read, plan.key_name
                    ),
                ));
            }
        };
        let previous = rows.last().map(|(k, _)| k).or(after);
        if previous == Some(&key) {
            // The row of the last key comes back once; twice is a repeat.
            if rows.is_empty() && !repeated {
                repeated = true;
                continue;
            }
            return Err(IoError::new(
                IoErrorKind::Read,
                None,
                format!(
                    "{}: two rows have the key `{}` = {key}: the key must be unique (a PRIMARY KEY or UNIQUE \
                     column), or rows would be skipped between pages and on resume",
                    plan.read, plan.key_name
                ),
            ));
        }
        let object: Map<String, Value> = columns.names.iter().cloned().zip(values).collect();
        rows.push((key, object));
    }
    Ok(Page { rows, last })
}

/// A source's reading side, once its database is open: its plan and
/// columns, the channel to its database thread, and its checkpointer.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(crate) plan: Plan,
    pub(crate) requests: mpsc::UnboundedSender<Request>,
    checkpointer: KeyCheckpointer,
    start: Option<KeyPosition>,
}

impl Reader {
    pub(crate) fn new(plan: Plan, requests: mpsc::UnboundedSender<Request>) -> Reader {
        Reader {
            checkpointer: KeyCheckpointer::new("", &plan.read, None),
            plan,
            requests,
            start: None,
        }
    }

    /// See `SqliteSource::resume`.
    pub(crate) fn resume(&mut self, name: &str, positions: &[Position]) -> Result<KeyCheckpointer, IoError> {
        let start = key_position(name, positions, &self.plan.read)?;
        self.checkpointer = KeyCheckpointer::new(name, &self.plan.read, start.as_ref());
        self.start = start;
        Ok(self.checkpointer.clone())
    }

    /// See `SqliteSource::rows`.
    pub(crate) fn rows(self) -> Rows {
        let after = self.start.as_ref().map(|p| p.key.clone());
        let mut rows = Rows {
            requests: self.requests,
            pending: None,
            page: Vec::new().into_iter(),
            checkpointer: self.checkpointer,
            origin: self.plan.origin.clone(),
            row: self.start.as_ref().map_or(0, |p| p.rows),
            read: self.plan.read.clone(),
        };
        rows.request(after);
        rows
    }
}

/// The rows of a table source ([`SqliteSource`](crate::sqlite::SqliteSource),
/// `PostgresSource`), in key order: each a [`Record`] whose value is a
/// JSON object (column → value) and whose origin names the table and the
/// row's number (from 1, counting the rows of earlier runs when resumed;
/// its offset is 0), with the [`Ack`] that moves the source's checkpoint.
///
/// A failure of the read (the database went away, a NULL or repeated
/// key) is one last `Err` item, which moves no checkpoint; the stream
/// ends after it. Pages are read by a database thread one page ahead:
/// the next page is asked for as soon as a page arrives, so reading
/// overlaps the pipeline's work on the rows.
///
/// # Examples
///
/// See [`SqliteSource`](crate::sqlite::SqliteSource).
#[must_use = "a stream does nothing unless polled"]
pub struct Rows {
    requests: mpsc::UnboundedSender<Request>,
    pending: Option<oneshot::Receiver<Result<Page, IoError>>>,
    page: std::vec::IntoIter<(KeyValue, Map<String, Value>)>,
    checkpointer: KeyCheckpointer,
    origin: Arc<str>,
    /// The number of the last row yielded.
    row: u64,
    read: String,
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("read", &self.read)
            .field("row", &self.row)
            .finish_non_exhaustive()
    }
}

impl Rows {
    /// Asks the database thread for the page after `after`.
    fn request(&mut self, after: Option<KeyValue>) {
        let (reply, answer) = oneshot::channel();
        // A thread that stopped shows as the answer's error.
        let _ = self.requests.send(Request { after, reply });
        self.pending = Some(answer);
    }

    /// An item that moves no checkpoint: the read's failure.
    fn failed(&mut self, e: IoError) -> Acked<Result<Record, IoError>> {
        self.pending = None;
        self.page = Vec::new().into_iter();
        Acked::new(Err(e), Ack::new(0, Arc::new(|_, _| {})))
    }
}

impl Stream for Rows {
    type Item = Acked<Result<Record, IoError>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some((key, object)) = this.page.next() {
                this.row += 1;
                let ack = this.checkpointer.ack(key);
                let origin = Origin::new(this.origin.clone(), this.row, 0);
                let record = Record::new(Value::Object(object)).with_origin(origin);
                return Poll::Ready(Some(Acked::new(Ok(record), ack)));
            }
            let Some(pending) = this.pending.as_mut() else {
                return Poll::Ready(None);
            };
            let answer = ready!(Pin::new(pending).poll(cx));
            this.pending = None;
            match answer {
                Ok(Ok(page)) => {
                    if !page.last {
                        if let Some((key, _)) = page.rows.last() {
                            // One page ahead: asked for while this one is worked on.
                            this.request(Some(key.clone()));
                        }
                    }
                    this.page = page.rows.into_iter();
                }
                Ok(Err(e)) => return Poll::Ready(Some(this.failed(e))),
                Err(_) => {
                    let e = IoError::new(
                        IoErrorKind::Read,
                        None,
                        format!("{}: the database thread stopped", this.read),
                    );
                    return Poll::Ready(Some(this.failed(e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan() -> Plan {
        Plan::new(
            &crate::sqlite::SQLITE,
            "sqlite",
            "in.db",
            &Select::Table("t".into()),
            "id",
            2,
        )
        .unwrap()
    }

    fn columns() -> Columns {
        Columns {
            names: vec!["id".to_owned(), "v".to_owned()].into(),
            key: 0,
        }
    }

    #[test]
    fn statements_bind_the_last_key_and_quote_names() {
        let p = plan();
        assert_eq!(
            p.page("*", true, "?1", "?2"),
            r#"SELECT * FROM "t" AS q WHERE q."id" >= ?1 ORDER BY q."id" LIMIT ?2"#
        );
        assert_eq!(
            p.page("*", false, "", "?1"),
            r#"SELECT * FROM "t" AS q WHERE q."id" IS NOT NULL ORDER BY q."id" LIMIT ?1"#
        );
        assert_eq!(p.read, "sqlite table t by id");
        let q = Plan::new(
            &crate::sqlite::SQLITE,
            "sqlite",
            "in.db",
            &Select::Query("SELECT 1 AS id;  ".into()),
            "id",
            5,
        )
        .unwrap();
        assert_eq!(q.from, "(SELECT 1 AS id) AS q");
        for (select, key) in [
            (Select::Table("t; DROP TABLE t".into()), "id"),
            (Select::Table("t".into()), "id) OR (1=1"),
            (Select::Query(" ; ".into()), "id"),
        ] {
            let e = Plan::new(&crate::sqlite::SQLITE, "sqlite", "x", &select, key, 1).unwrap_err();
            assert_eq!(e.kind(), IoErrorKind::InvalidConfig, "{e}");
        }
    }

    #[test]
    fn a_page_drops_the_row_of_the_last_key_and_refuses_repeated_null_and_real_keys() {
        let (p, c) = (plan(), columns());
        let after = KeyValue::Integer(1);
        let fetched = vec![vec![json!(1), json!("a")], vec![json!(2), json!("b")]];
        let page1 = page(&p, &c, Some(&after), 3, fetched).unwrap();
        assert!(page1.last);
        assert_eq!(page1.rows.len(), 1);
        assert_eq!(page1.rows[0].1["v"], "b");
        let twice = vec![vec![json!(1), json!("a")], vec![json!(1), json!("b")]];
        let e = page(&p, &c, Some(&after), 3, twice).unwrap_err();
        assert!(e.to_string().contains("two rows have the key `id` = 1"), "{e}");
        let inside = vec![vec![json!("x"), json!(0)], vec![json!("x"), json!(0)]];
        assert!(page(&p, &c, None, 2, inside).is_err());
        let e = page(&p, &c, None, 2, vec![vec![json!(null), json!(0)]]).unwrap_err();
        assert!(e.to_string().contains("NULL key"), "{e}");
        let e = page(&p, &c, None, 2, vec![vec![json!(1.5), json!(0)]]).unwrap_err();
        assert!(e.to_string().contains("keys must be integers or text"), "{e}");
        // Text and integers are different keys.
        let mixed = vec![vec![json!(5), json!(0)], vec![json!("5"), json!(0)]];
        assert!(!page(&p, &c, None, 2, mixed).unwrap().last);
    }
}
