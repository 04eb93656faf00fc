//! Sinks: where records end. [`StdoutSink`] (JSON lines or CSV on
//! standard output), [`FileSink`] (a file written atomically, optionally
//! rotated by size and compressed) and [`DeadLetterFileSink`] (failed items
//! as JSON lines). Each implements [`weir::Sink`]; their errors are
//! [`IoError`](crate::IoError)s.
//!
//! As the engine's sink contract asks, `write` only encodes the item into
//! memory; `flush` hands everything to the OS, and an item counts as
//! delivered once a flush after it succeeded.

mod dead_letter;
mod encode;
mod file;
mod stdout;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use self::dead_letter::DeadLetterFileSink;
pub use self::file::{FileSink, FileSinkConfig};
pub use self::stdout::{BrokenPipe, StdoutSink};

/// How a sink writes records.
///
/// # Examples
///
/// ```
/// use weir_io::sink::OutputFormat;
///
/// let csv = OutputFormat::Csv { columns: Some(vec!["id".into(), "name".into()]) };
/// assert_ne!(csv, OutputFormat::JsonLines);
/// assert_eq!(OutputFormat::default(), OutputFormat::JsonLines);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputFormat {
    /// One compact JSON value a line (the record's value). The default.
    #[default]
    JsonLines,
    /// CSV with a header row: each record (a JSON object) is one row;
    /// strings, numbers and booleans are written as text, `null` and
    /// missing keys as empty fields, arrays and objects as JSON text. Keys
    /// that are not columns are left out.
    Csv {
        /// The columns, in order; `None`: the first record's keys.
        columns: Option<Vec<String>>,
    },
}

/// A live count of the records a sink has written and flushed: cheap to
/// clone, readable after the sink was moved into a pipeline (for a final
/// report such as "37 dead letters written to out/dead.jsonl").
///
/// # Examples
///
/// ```
/// use weir::Pipeline;
/// use weir_io::sink::{FileSink, FileSinkConfig};
/// use weir_io::Record;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let sink = FileSink::create(FileSinkConfig::new(dir.path().join("out.jsonl"))).unwrap();
/// let written = sink.written();
/// Pipeline::from_iter((0..3).map(|i| Record::new(i.into()))).sink(sink).run().await.unwrap();
/// assert_eq!(written.get(), 3);
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct Written(Arc<AtomicU64>);

impl Written {
    /// The number of records written and flushed so far.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(weir_io::sink::Written::default().get(), 0);
    /// ```
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}
