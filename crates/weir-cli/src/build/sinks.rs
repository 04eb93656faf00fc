//! The sinks a configuration can name, behind one type (so that branches
//! and `weir test`'s collectors fit the same pipeline).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Serialize, Serializer};
use serde_json::Value;
use weir::{BoxError, DeadLetter, Sink};
use weir_io::postgres::{PostgresSink, PostgresSinkConfig};
use weir_io::sink::Written;
use weir_io::sink::{DeadLetterFileSink, FileSink, StdoutSink};
use weir_io::sql::{DeadLetterRows, Row, SqlMode, SqlType};
use weir_io::sqlite::{SqliteSink, SqliteSinkConfig};
use weir_io::{IoError, JsonText, Origin, Record};

use crate::config::tree::Node;
use crate::config::Typed;
use crate::jq::Jq;

/// What reaches the sink of a pipeline that works ahead with nothing
/// between its leading stages and the sink (see `ahead`): a record, or a
/// map's output already written as JSON text. Serializes (in a dead
/// letter, say) as the record would.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    /// A record.
    Record(Record),
    /// A record's value as JSON text, and where it came from.
    Text(JsonText, Origin),
}

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Record(r) => r.serialize(s),
            Out::Text(text, origin) => super::ahead::written(text, origin).serialize(s),
        }
    }
}

/// Any sink of the configuration.
pub(crate) enum AnySink {
    /// A file (renamed into place on close).
    File(Box<FileSink>),
    /// Standard output.
    Stdout(StdoutSink),
    /// A SQLite table, each record made a row.
    Sqlite(Box<Records<SqliteSink>>),
    /// A PostgreSQL table, each record made a row.
    Postgres(Box<Records<PostgresSink>>),
    /// Values kept in memory (`weir test`).
    Collect(Arc<Mutex<Vec<serde_json::Value>>>),
}

impl fmt::Debug for AnySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnySink::File(_) => "File",
            AnySink::Stdout(_) => "Stdout",
            AnySink::Sqlite(_) => "Sqlite",
            AnySink::Postgres(_) => "Postgres",
            AnySink::Collect(_) => "Collect",
        })
    }
}

impl Sink<Record> for AnySink {
    type Error = BoxError;

    async fn write(&mut self, item: Record) -> Result<(), BoxError> {
        match self {
            AnySink::File(s) => Sink::<Record>::write(s.as_mut(), item).await.map_err(Into::into),
            AnySink::Stdout(s) => Sink::<Record>::write(s, item).await.map_err(Into::into),
            AnySink::Sqlite(s) => s.write(&item.value, item.origin.as_ref()).await,
            AnySink::Postgres(s) => s.write(&item.value, item.origin.as_ref()).await,
            AnySink::Collect(v) => {
                v.lock().expect("collector lock").push(item.value);
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> Result<(), BoxError> {
        match self {
            AnySink::File(s) => Sink::<Record>::flush(s.as_mut()).await.map_err(Into::into),
            AnySink::Stdout(s) => Sink::<Record>::flush(s).await.map_err(Into::into),
            AnySink::Sqlite(s) => Sink::<Row>::flush(&mut s.sink).await.map_err(Into::into),
            AnySink::Postgres(s) => Sink::<Row>::flush(&mut s.sink).await.map_err(Into::into),
            AnySink::Collect(_) => Ok(()),
        }
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        match self {
            AnySink::File(s) => Sink::<Record>::close(s.as_mut()).await.map_err(Into::into),
            AnySink::Stdout(s) => Sink::<Record>::close(s).await.map_err(Into::into),
            AnySink::Sqlite(s) => Sink::<Row>::close(&mut s.sink).await.map_err(Into::into),
            AnySink::Postgres(s) => Sink::<Row>::close(&mut s.sink).await.map_err(Into::into),
            AnySink::Collect(_) => Ok(()),
        }
    }

    fn flush_after(&self) -> usize {
        match self {
            AnySink::Sqlite(s) => Sink::<Row>::flush_after(&s.sink),
            AnySink::Postgres(s) => Sink::<Row>::flush_after(&s.sink),
            AnySink::File(_) | AnySink::Stdout(_) | AnySink::Collect(_) => 0,
        }
    }
}

impl Sink<Out> for AnySink {
    type Error = BoxError;

    async fn write(&mut self, item: Out) -> Result<(), BoxError> {
        let (text, origin) = match item {
            Out::Record(r) => return Sink::<Record>::write(self, r).await,
            Out::Text(text, origin) => (text, origin),
        };
        match self {
            AnySink::File(s) => s.as_mut().write(text).await.map_err(Into::into),
            AnySink::Stdout(s) => s.write(text).await.map_err(Into::into),
            AnySink::Sqlite(s) => s.write(&text.to_value(), Some(&origin)).await,
            AnySink::Postgres(s) => s.write(&text.to_value(), Some(&origin)).await,
            AnySink::Collect(v) => {
                v.lock().expect("collector lock").push(text.to_value());
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> Result<(), BoxError> {
        Sink::<Record>::flush(self).await
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        Sink::<Record>::close(self).await
    }

    fn flush_after(&self) -> usize {
        Sink::<Record>::flush_after(self)
    }
}

/// Where a column's value comes from.
#[derive(Debug)]
enum Source {
    /// The item's top-level field of the column's name.
    Field(String),
    /// A jq expression's first output.
    Jq(Jq),
}

/// A column of a table sink: its name, type and value.
#[derive(Debug)]
pub(crate) struct Column {
    name: String,
    ty: SqlType,
    source: Source,
}

/// A table sink (`sqlite`, `postgres`) fed with records: each column's
/// value is computed from the record (a jq expression, or the field of the
/// column's name) and converted to the column's type; a failure there is
/// that item's.
pub(crate) struct Records<S> {
    sink: S,
    columns: Vec<Column>,
}

impl<S: fmt::Debug> fmt::Debug for Records<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records")
            .field("sink", &self.sink)
            .field("columns", &self.columns)
            .finish()
    }
}

impl Records<SqliteSink> {
    /// Opens the database and the table of `config`'s columns.
    pub(crate) fn sqlite(config: SqliteSinkConfig, columns: Vec<Column>) -> Result<Self, String> {
        let sink = SqliteSink::open(config).map_err(|e| e.to_string())?;
        Ok(Records { sink, columns })
    }
}

impl Records<PostgresSink> {
    /// Connects, and checks (or creates) the table of `config`'s columns.
    pub(crate) fn postgres(config: PostgresSinkConfig, columns: Vec<Column>) -> Result<Self, String> {
        let sink = PostgresSink::open(config).map_err(|e| e.to_string())?;
        Ok(Records { sink, columns })
    }
}

impl Records<SqliteSink> {
    /// The sink's [`healthcheck`](SqliteSink::healthcheck), as a message.
    pub(crate) fn healthcheck(&self) -> Result<(), String> {
        self.sink.healthcheck().map_err(|e| e.to_string())
    }
}

impl Records<PostgresSink> {
    /// The sink's [`healthcheck`](PostgresSink::healthcheck), as a message.
    pub(crate) fn healthcheck(&self) -> Result<(), String> {
        self.sink.healthcheck().map_err(|e| e.to_string())
    }
}

impl<S: Sink<Row, Error = IoError>> Records<S> {
    /// The row of `value`: a jq error, or a value its column's type does
    /// not take, names the column (and the item's file:line).
    fn row(&self, value: &Value) -> Result<Row, String> {
        self.columns
            .iter()
            .map(|c| {
                let converted = match &c.source {
                    Source::Field(name) => c.ty.from_json(value.get(name).unwrap_or(&Value::Null)),
                    Source::Jq(jq) => match jq.first(value) {
                        Ok(v) => c.ty.from_json(&v),
                        Err(e) => return Err(format!("column `{}`: {e}", c.name)),
                    },
                };
                converted.map_err(|e| format!("column `{}` ({}): {e}", c.name, c.ty))
            })
            .collect()
    }

    async fn write(&mut self, value: &Value, origin: Option<&Origin>) -> Result<(), BoxError> {
        let row = self.row(value).map_err(|e| super::at(origin, e))?;
        self.sink.write(row).await.map_err(|e| super::at(origin, e))
    }
}

/// What the table sinks' options share, read and partly checked.
struct Table {
    table: String,
    columns: Vec<(String, SqlType)>,
    mode: SqlMode,
    create_table: bool,
    batch_rows: Option<usize>,
    isolate_rows: bool,
}

/// Reads a table sink's shared options (`table`, `columns`, `mode`,
/// `key`, …) and compiles its columns' jq. `Err`: the key to point at and
/// why.
fn table_options(t: &Typed<'_>) -> Result<(Table, Vec<Column>), (&'static str, String)> {
    let o = &t.opts;
    let key: Vec<String> = o
        .list("key")
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    let mode = o.str("mode").unwrap_or_else(|| "append".to_owned());
    let mode = match mode.as_str() {
        "upsert" => SqlMode::Upsert { key },
        _ if o.node("key").is_some() => {
            return Err(("key", format!("`key` is for mode = \"upsert\", not \"{mode}\"")));
        }
        "replace" => SqlMode::Replace,
        _ => SqlMode::Append,
    };
    let mut types = Vec::new();
    let mut columns = Vec::new();
    for (name, node) in o.entries("columns") {
        let text = |key: &str| node.get(key).and_then(Node::as_str);
        let ty: SqlType = text("type")
            .unwrap_or_default()
            .parse()
            .map_err(|e: IoError| ("columns", format!("column `{name}`: {e}")))?;
        let source = match text("jq") {
            Some(src) => Source::Jq(
                Jq::compile(src)
                    .map_err(|e| ("columns", format!("column `{name}`: invalid jq expression: {e}")))?,
            ),
            None => Source::Field(name.clone()),
        };
        types.push((name.clone(), ty));
        columns.push(Column { name, ty, source });
    }
    let table = Table {
        table: o.str("table").unwrap_or_default(),
        columns: types,
        mode,
        create_table: o.bool("create_table").unwrap_or(true),
        batch_rows: o
            .int("batch_rows")
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        isolate_rows: o.bool("isolate_rows").unwrap_or(false),
    };
    Ok((table, columns))
}

/// A table sink's `validate` error, with the option its message is about.
fn misplaced(e: IoError) -> (&'static str, String) {
    let message = e.to_string();
    let key = [
        ("upsert", "key"),
        ("table", "table"),
        ("schema", "table"),
        ("batch_rows", "batch_rows"),
        ("invalid PostgreSQL URL", "url"),
        ("no PostgreSQL URL", "url"),
    ]
    .into_iter()
    .find(|(start, _)| message.starts_with(start))
    .map_or("columns", |(_, key)| key);
    (key, message)
}

/// A table sink's settings (`$config`: `SqliteSinkConfig` or
/// `PostgresSinkConfig`, whose `new` takes the `$target` option and the
/// table) from its options, checked: the settings and the columns, or the
/// key to point at and why. (A macro: the two configs share their setters'
/// names, not a trait.)
macro_rules! table_config {
    ($t:expr, $config:ty, $target:literal) => {{
        let (table, columns) = table_options($t)?;
        let mut config = <$config>::new($t.opts.str($target).unwrap_or_default(), table.table)
            .mode(table.mode)
            .create_table(table.create_table)
            .isolate_rows(table.isolate_rows);
        config.columns = table.columns;
        if let Some(n) = table.batch_rows {
            config = config.batch_rows(n);
        }
        config.validate().map_err(misplaced)?;
        Ok((config, columns))
    }};
}

/// Reads a `sqlite` sink's options into its settings and columns, and
/// checks them (nothing is opened). `Err`: the key to point at and why.
pub(crate) fn sqlite_config(
    t: &Typed<'_>,
) -> Result<(SqliteSinkConfig, Vec<Column>), (&'static str, String)> {
    table_config!(t, SqliteSinkConfig, "path")
}

/// Reads a `postgres` sink's options into its settings and columns, and
/// checks them, the URL included, without connecting. `Err`: the key to
/// point at and why.
pub(crate) fn postgres_config(
    t: &Typed<'_>,
) -> Result<(PostgresSinkConfig, Vec<Column>), (&'static str, String)> {
    table_config!(t, PostgresSinkConfig, "url")
}

/// The dead-letter sink.
pub(crate) enum DeadSink {
    /// A JSON-lines file.
    File(Box<DeadLetterFileSink>),
    /// A SQLite table, a row per letter.
    Sqlite(Box<DeadLetterRows<SqliteSink>>),
    /// A PostgreSQL table, a row per letter.
    Postgres(Box<DeadLetterRows<PostgresSink>>),
    /// Records kept in memory (`weir test`).
    Collect(Arc<Mutex<Vec<serde_json::Value>>>),
}

/// Where a `[dead_letter]` sink writes (for the report), and its live
/// count of letters written.
pub(crate) struct DeadPlace {
    /// The file, or the table and its database.
    pub(crate) name: String,
    /// Letters written (committed, for a table).
    pub(crate) written: Written,
}

impl DeadSink {
    /// Opens the `[dead_letter]` sink `t` as a run writes it: a file, or a
    /// table of [`DEAD_LETTER_COLUMNS`](weir_io::sql::DEAD_LETTER_COLUMNS)
    /// (created when missing). `Err`: the key to point at and why.
    pub(crate) fn open(t: &Typed<'_>) -> Result<(DeadSink, DeadPlace), super::SinkProblem> {
        let o = &t.opts;
        let table = || o.str("table").unwrap_or_default();
        match t.type_name {
            "sqlite" => {
                let table = table();
                let path = PathBuf::from(o.str("path").unwrap_or_default());
                let mut config = SqliteSinkConfig::new(&path, table.clone());
                config.columns = DeadLetterRows::<SqliteSink>::columns();
                config.validate().map_err(misplaced)?;
                let sink = SqliteSink::open(config).map_err(|e| ("path", e.to_string()))?;
                let place = DeadPlace {
                    name: format!("table `{table}` in {}", path.display()),
                    written: sink.written(),
                };
                Ok((DeadSink::Sqlite(Box::new(DeadLetterRows::new(sink))), place))
            }
            "postgres" => {
                let table = table();
                let url = o.str("url").unwrap_or_default();
                let mut config = PostgresSinkConfig::new(url.clone(), table.clone());
                config.columns = DeadLetterRows::<PostgresSink>::columns();
                config.validate().map_err(misplaced)?;
                let server = weir_io::postgres::check_url(&url).map_err(|e| ("url", e.to_string()))?;
                let sink = PostgresSink::open(config).map_err(|e| ("url", e.to_string()))?;
                let place = DeadPlace {
                    name: format!("table `{table}` of {server}"),
                    written: sink.written(),
                };
                Ok((DeadSink::Postgres(Box::new(DeadLetterRows::new(sink))), place))
            }
            _ => {
                let path = PathBuf::from(o.str("path").unwrap_or_default());
                let mut config = weir_io::sink::FileSinkConfig::new(&path);
                if let Some(n) = o.size("rotate_bytes") {
                    config = config.rotate_bytes(n);
                }
                let sink = DeadLetterFileSink::with_config(config).map_err(|e| ("path", e.to_string()))?;
                let place = DeadPlace {
                    name: path.display().to_string(),
                    written: sink.written(),
                };
                Ok((DeadSink::File(Box::new(sink)), place))
            }
        }
    }

    /// The health check of a table's connection (`weir check --connect`);
    /// a file has none beyond opening.
    pub(crate) fn healthcheck(&self) -> Result<(), String> {
        match self {
            DeadSink::Sqlite(s) => s.get_ref().healthcheck().map_err(|e| e.to_string()),
            DeadSink::Postgres(s) => s.get_ref().healthcheck().map_err(|e| e.to_string()),
            DeadSink::File(_) | DeadSink::Collect(_) => Ok(()),
        }
    }
}

impl fmt::Debug for DeadSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeadSink::File(_) => "File",
            DeadSink::Sqlite(_) => "Sqlite",
            DeadSink::Postgres(_) => "Postgres",
            DeadSink::Collect(_) => "Collect",
        })
    }
}

type Letter = DeadLetter<serde_json::Value>;

impl Sink<Letter> for DeadSink {
    type Error = BoxError;

    async fn write(&mut self, letter: Letter) -> Result<(), BoxError> {
        match self {
            DeadSink::File(s) => s.as_mut().write(letter).await.map_err(Into::into),
            DeadSink::Sqlite(s) => s.as_mut().write(letter).await.map_err(Into::into),
            DeadSink::Postgres(s) => s.as_mut().write(letter).await.map_err(Into::into),
            DeadSink::Collect(v) => {
                let json = serde_json::to_value(&letter)?;
                v.lock().expect("collector lock").push(json);
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> Result<(), BoxError> {
        match self {
            DeadSink::File(s) => Sink::<Letter>::flush(s.as_mut()).await.map_err(Into::into),
            DeadSink::Sqlite(s) => Sink::<Letter>::flush(s.as_mut()).await.map_err(Into::into),
            DeadSink::Postgres(s) => Sink::<Letter>::flush(s.as_mut()).await.map_err(Into::into),
            DeadSink::Collect(_) => Ok(()),
        }
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        match self {
            DeadSink::File(s) => Sink::<Letter>::close(s.as_mut()).await.map_err(Into::into),
            DeadSink::Sqlite(s) => Sink::<Letter>::close(s.as_mut()).await.map_err(Into::into),
            DeadSink::Postgres(s) => Sink::<Letter>::close(s.as_mut()).await.map_err(Into::into),
            DeadSink::Collect(_) => Ok(()),
        }
    }
}
