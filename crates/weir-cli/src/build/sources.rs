//! The table sources a configuration can name (`sqlite`, `postgres`):
//! their settings read and checked, the source opened, its rows made
//! inputs with their acknowledgements.

use futures::stream::BoxStream;
use futures::StreamExt;
use weir_io::checkpoint::{KeyCheckpointer, Position};
use weir_io::postgres::{PostgresSource, PostgresSourceConfig};
use weir_io::sql::Rows;
use weir_io::sqlite::{SqliteSource, SqliteSourceConfig};
use weir_io::IoError;

use super::Input;
use crate::config::Typed;

/// Why a table source cannot be made: the option to point at (`type`:
/// the source's table), and the message.
pub(crate) type SourceProblem = (&'static str, String);

/// A table source's checked settings.
#[derive(Debug)]
pub(crate) enum TableConfig {
    Sqlite(SqliteSourceConfig),
    Postgres(PostgresSourceConfig),
}

/// Whether `t` is a table source.
pub(crate) fn is_table(t: &Typed<'_>) -> bool {
    matches!(t.type_name, "sqlite" | "postgres")
}

/// Reads and checks a table source's settings (without touching the
/// database): `table` or `query` (one of them), `key`, `page_size`, and
/// `path` or `url`.
pub(crate) fn config(t: &Typed<'_>) -> Result<TableConfig, SourceProblem> {
    let o = &t.opts;
    let key = o.str("key").unwrap_or_default();
    let select = match (o.str("table"), o.str("query")) {
        (Some(table), None) => weir_io::sql::Select::Table(table),
        (None, Some(query)) => weir_io::sql::Select::Query(query),
        (Some(_), Some(_)) => {
            return Err(("query", "give `table` or `query`, not both".into()));
        }
        (None, None) => {
            return Err((
                "type",
                format!(
                    "a `{}` source needs `table` (a table's rows) or `query` (a query's)",
                    t.type_name
                ),
            ))
        }
    };
    let page_size = o
        .int("page_size")
        .map_or(1000, |n| usize::try_from(n).unwrap_or(0));
    let config = if t.type_name == "sqlite" {
        let path = o.str("path").unwrap_or_default();
        TableConfig::Sqlite(SqliteSourceConfig {
            path: path.into(),
            select,
            key,
            page_size,
        })
    } else {
        let url = o.str("url").unwrap_or_default();
        TableConfig::Postgres(PostgresSourceConfig {
            url,
            select,
            key,
            page_size,
        })
    };
    let checked = match &config {
        TableConfig::Sqlite(c) => c.validate(),
        TableConfig::Postgres(c) => c.validate(),
    };
    checked.map_err(misplaced)?;
    Ok(config)
}

/// A `validate` error, with the option its message is about.
fn misplaced(e: IoError) -> SourceProblem {
    let message = e.to_string();
    let key = [
        ("table name", "table"),
        ("schema name", "table"),
        ("key column", "key"),
        ("page_size", "page_size"),
        ("the query", "query"),
        ("invalid PostgreSQL URL", "url"),
        ("no PostgreSQL URL", "url"),
    ]
    .into_iter()
    .find(|(start, _)| message.starts_with(start))
    .map_or("type", |(_, key)| key);
    (key, message)
}

/// An open table source.
#[derive(Debug)]
pub(crate) enum TableSource {
    Sqlite(Box<SqliteSource>),
    Postgres(Box<PostgresSource>),
}

impl TableSource {
    /// Opens the source `t` (its database must be there, with the table
    /// and the key column).
    pub(crate) fn open(t: &Typed<'_>) -> Result<TableSource, SourceProblem> {
        let opened = match config(t)? {
            TableConfig::Sqlite(c) => SqliteSource::open(c).map(|s| TableSource::Sqlite(Box::new(s))),
            TableConfig::Postgres(c) => PostgresSource::open(c).map(|s| TableSource::Postgres(Box::new(s))),
        };
        opened.map_err(|e| {
            let key = match e.kind() {
                weir_io::IoErrorKind::InvalidConfig => "key",
                _ if t.type_name == "sqlite" => "path",
                _ => "url",
            };
            (key, e.to_string())
        })
    }

    /// The source's health (see `SqliteSource::healthcheck`).
    pub(crate) fn healthcheck(&self) -> Result<(), IoError> {
        match self {
            TableSource::Sqlite(s) => s.healthcheck(),
            TableSource::Postgres(s) => s.healthcheck(),
        }
    }

    /// Resumes from the stored positions of the source `name`.
    pub(crate) fn resume(&mut self, name: &str, positions: &[Position]) -> Result<KeyCheckpointer, IoError> {
        match self {
            TableSource::Sqlite(s) => s.resume(name, positions),
            TableSource::Postgres(s) => s.resume(name, positions),
        }
    }

    /// The rows as inputs, each with its acknowledgement; the read's
    /// failure (if any) is one last failed input.
    pub(crate) fn inputs(self) -> BoxStream<'static, weir::Acked<Input>> {
        let rows: Rows = match self {
            TableSource::Sqlite(s) => (*s).rows(),
            TableSource::Postgres(s) => (*s).rows(),
        };
        let mut read = 0u64;
        rows.map(move |row| {
            let input = match row.item {
                Ok(record) => {
                    read += 1;
                    Input::Record(record)
                }
                Err(e) => Input::Failed(e.to_string(), read),
            };
            weir::Acked::new(input, row.ack)
        })
        .boxed()
    }
}
