//! Dead letters as rows of a table: [`DeadLetterRows`] turns each
//! [`weir::DeadLetter`] into a [`Row`] of fixed columns and hands it to a
//! table sink (the SQLite or the PostgreSQL sink), so failed items land
//! where the good ones do, queryable with SQL.

use serde::Serialize;
use weir::DeadLetter;

use super::{Row, SqlType, SqlValue};
use crate::error::{IoError, IoErrorKind};

/// The columns of a dead-letter table, in the order of each row's values.
///
/// | column | type | what |
/// |---|---|---|
/// | `failed_at_ms` | integer | the last failure, ms since the Unix epoch |
/// | `pipeline` | text | the run's name |
/// | `stage` | text | the stage that gave up on the item |
/// | `item_seq` | integer | the item's sequence number in the run |
/// | `attempts` | integer | attempts made (1 without retries) |
/// | `error_type` | text | the error's type |
/// | `error` | text | the error's message |
/// | `causes` | json | its chain of causes, outermost first |
/// | `first_failure_ms` | integer | the first failure, ms since the Unix epoch |
/// | `item` | json | the item as it reached the stage |
///
/// # Examples
///
/// ```
/// use weir_io::sql::{SqlType, DEAD_LETTER_COLUMNS};
/// assert_eq!(DEAD_LETTER_COLUMNS.len(), 10);
/// assert_eq!(DEAD_LETTER_COLUMNS[9], ("item", SqlType::Json));
/// ```
pub const DEAD_LETTER_COLUMNS: [(&str, SqlType); 10] = [
    ("failed_at_ms", SqlType::Integer),
    ("pipeline", SqlType::Text),
    ("stage", SqlType::Text),
    ("item_seq", SqlType::Integer),
    ("attempts", SqlType::Integer),
    ("error_type", SqlType::Text),
    ("error", SqlType::Text),
    ("causes", SqlType::Json),
    ("first_failure_ms", SqlType::Integer),
    ("item", SqlType::Json),
];

/// A sink of dead letters that writes each as one row of
/// [`DEAD_LETTER_COLUMNS`] into a table sink: configure the sink with
/// [`columns`](Self::columns) and append mode (the default), and give the
/// result to [`weir::DeadLetters::new`] or a stage's
/// [`dead_letter`](weir::Pipeline::dead_letter).
///
/// A dead letter is delivered when the table sink commits it (its flush);
/// a letter whose item cannot be written as JSON fails alone.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use weir::{DeadLetters, Pipeline};
/// use weir_io::sql::DeadLetterRows;
/// use weir_io::sqlite::{SqliteSink, SqliteSinkConfig};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let db = dir.path().join("out.db");
/// let mut config = SqliteSinkConfig::new(&db, "dead");
/// config.columns = DeadLetterRows::<SqliteSink>::columns();
/// let sink = DeadLetterRows::new(SqliteSink::open(config).unwrap());
/// let report = Pipeline::from_iter(["1", "x", "3"])
///     .try_map(|s: &str| s.parse::<u32>())
///     .name("parse")
///     .dead_letter(DeadLetters::new(sink))
///     .run()
///     .await
///     .unwrap();
/// assert_eq!(report.dead_lettered, 1);
/// let conn = rusqlite::Connection::open(&db).unwrap();
/// let (stage, item): (String, String) =
///     conn.query_row("SELECT stage, item FROM dead", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
/// assert_eq!((stage.as_str(), item.as_str()), ("parse", "\"x\""));
/// # });
/// # }
/// ```
#[derive(Debug)]
pub struct DeadLetterRows<S> {
    sink: S,
}

impl<S> DeadLetterRows<S> {
    /// Writes dead letters into `sink`, whose columns must be
    /// [`columns`](Self::columns).
    ///
    /// # Examples
    ///
    /// ```
    /// let rows = weir_io::sql::DeadLetterRows::new(());
    /// assert_eq!(rows.get_ref(), &());
    /// ```
    pub fn new(sink: S) -> DeadLetterRows<S> {
        DeadLetterRows { sink }
    }

    /// [`DEAD_LETTER_COLUMNS`] as a table sink's config takes them.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sql::{DeadLetterRows, SqlType};
    /// let columns = DeadLetterRows::<()>::columns();
    /// assert_eq!(columns[0], ("failed_at_ms".to_owned(), SqlType::Integer));
    /// ```
    pub fn columns() -> Vec<(String, SqlType)> {
        DEAD_LETTER_COLUMNS
            .iter()
            .map(|(name, ty)| ((*name).to_owned(), *ty))
            .collect()
    }

    /// The table sink.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(weir_io::sql::DeadLetterRows::new(7).get_ref(), &7);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.sink
    }

    /// `letter` as a row of [`DEAD_LETTER_COLUMNS`].
    ///
    /// # Errors
    ///
    /// [`IoErrorKind::Encode`] when the item cannot be written as JSON
    /// (a map with keys that are not strings, say).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::DeadLetter;
    /// use weir_io::sql::{DeadLetterRows, SqlValue};
    ///
    /// let letter: DeadLetter<serde_json::Value> = serde_json::from_value(serde_json::json!({
    ///     "item": {"id": 7}, "error": "no such user", "causes": ["404"], "error_type": "lookup",
    ///     "stage": "enrich", "item_seq": 41, "attempts": 3,
    ///     "first_failure_ms": 1000, "last_failure_ms": 2000, "pipeline": "etl",
    /// }))
    /// .unwrap();
    /// let row = DeadLetterRows::<()>::row(&letter).unwrap();
    /// assert_eq!(row.values()[0], SqlValue::Integer(2_000));
    /// assert_eq!(row.values()[2], SqlValue::Text("enrich".into()));
    /// assert_eq!(row.values()[7], SqlValue::Text(r#"["404"]"#.into()));
    /// assert_eq!(row.values()[9], SqlValue::Text(r#"{"id":7}"#.into()));
    /// ```
    pub fn row<T: Serialize>(letter: &DeadLetter<T>) -> Result<Row, IoError> {
        let json = |what: &str, value: &dyn erased::Json| {
            value.text().map(SqlValue::Text).map_err(|e| {
                IoError::new(
                    IoErrorKind::Encode,
                    None,
                    format!(
                        "the dead letter of item {} (stage `{}`): its {what} cannot be written as JSON: {e}",
                        letter.item_seq, letter.stage
                    ),
                )
            })
        };
        Ok(Row::new(vec![
            SqlValue::Integer(millis(letter.last_failure_ms)),
            SqlValue::Text(letter.pipeline.clone()),
            SqlValue::Text(letter.stage.clone()),
            SqlValue::Integer(millis(letter.item_seq)),
            SqlValue::Integer(letter.attempts.into()),
            SqlValue::Text(letter.error_type.clone()),
            SqlValue::Text(letter.error.clone()),
            json("causes", &letter.causes)?,
            SqlValue::Integer(millis(letter.first_failure_ms)),
            json("item", &letter.item)?,
        ]))
    }
}

/// A `u64` count or time as SQL's signed integer (saturating: no count or
/// time in milliseconds reaches `i64::MAX`).
fn millis(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Serializing a value of any type to JSON text, through a trait object
/// (so that `row`'s helper closure takes both the causes and the item).
mod erased {
    use serde::Serialize;

    pub(super) trait Json {
        fn text(&self) -> serde_json::Result<String>;
    }

    impl<T: Serialize> Json for T {
        fn text(&self) -> serde_json::Result<String> {
            serde_json::to_string(self)
        }
    }
}

/// Each letter becomes one row; flush and close are the table sink's.
impl<T, S> weir::Sink<DeadLetter<T>> for DeadLetterRows<S>
where
    T: Serialize + Send + 'static,
    S: weir::Sink<Row, Error = IoError>,
{
    type Error = IoError;

    async fn write(&mut self, letter: DeadLetter<T>) -> Result<(), IoError> {
        let row = DeadLetterRows::<S>::row(&letter)?;
        self.sink.write(row).await
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        self.sink.flush().await
    }

    async fn close(&mut self) -> Result<(), IoError> {
        self.sink.close().await
    }
}
