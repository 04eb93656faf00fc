use std::path::Path;

use serde::Serialize;
use weir::DeadLetter;

use super::file::{FileSinkConfig, FileWriter};
use super::{OutputFormat, Written};
use crate::error::{IoError, IoErrorKind};

/// Dead letters written to a file as JSON lines, one
/// [`weir::DeadLetter`] record a line (`item`, `error`, `causes`,
/// `error_type`, `stage`, `item_seq`, `attempts`, failure times,
/// `pipeline`), with the file mechanics of a
/// [`FileSink`](super::FileSink): a temporary file renamed into place on
/// close, rotation, compression.
///
/// A sink of `DeadLetter<T>` for any serializable `T`: give it to one
/// stage's [`dead_letter`](weir::Pipeline::dead_letter), or wrap it in
/// [`weir::DeadLetters::new`] to share it between stages of different
/// item types. [`written`](Self::written) counts the records written, for
/// a final report.
///
/// # Examples
///
/// ```
/// use weir::{DeadLetters, Pipeline};
/// use weir_io::sink::DeadLetterFileSink;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("dead.jsonl");
/// let sink = DeadLetterFileSink::create(&path).unwrap();
/// let written = sink.written();
/// let report = Pipeline::from_iter(["1", "x", "3"])
///     .try_map(|s: &str| s.parse::<u32>())
///     .name("parse")
///     .dead_letter(DeadLetters::new(sink))
///     .run()
///     .await
///     .unwrap();
/// assert_eq!((report.delivered, report.dead_lettered, written.get()), (2, 1, 1));
/// let text = std::fs::read_to_string(&path).unwrap();
/// let letter: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
/// assert_eq!((letter["item"].as_str(), letter["stage"].as_str()), (Some("x"), Some("parse")));
/// # });
/// ```
pub struct DeadLetterFileSink {
    writer: FileWriter,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for DeadLetterFileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterFileSink")
            .field("written", &self.writer.written().get())
            .finish_non_exhaustive()
    }
}

impl DeadLetterFileSink {
    /// Writes dead letters to `path` (compressed by its extension, not
    /// rotated). Fails like [`FileSink::create`](super::FileSink::create).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let sink = weir_io::sink::DeadLetterFileSink::create(dir.path().join("dead.jsonl")).unwrap();
    /// assert!(sink.healthcheck().is_ok());
    /// ```
    pub fn create(path: impl AsRef<Path>) -> Result<DeadLetterFileSink, IoError> {
        DeadLetterFileSink::with_config(FileSinkConfig::new(path.as_ref()))
    }

    /// Writes dead letters as `config` says (its rotation and
    /// compression); its format must be JSON lines.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sink::{DeadLetterFileSink, FileSinkConfig, OutputFormat};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let config = FileSinkConfig::new(dir.path().join("dead.csv")).format(OutputFormat::Csv { columns: None });
    /// let err = DeadLetterFileSink::with_config(config).unwrap_err();
    /// assert!(err.to_string().contains("JSON lines"), "{err}");
    /// ```
    pub fn with_config(config: FileSinkConfig) -> Result<DeadLetterFileSink, IoError> {
        if config.format != OutputFormat::JsonLines {
            return Err(IoError::new(
                IoErrorKind::Unsupported,
                Some(&config.path),
                format!("dead letters are written as JSON lines, not {:?}", config.format),
            ));
        }
        let writer = FileWriter::create(&config.path, config.rotate_bytes, config.compression)?;
        Ok(DeadLetterFileSink {
            writer,
            scratch: Vec::new(),
        })
    }

    /// A live count of the dead letters written and flushed.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let sink = weir_io::sink::DeadLetterFileSink::create(dir.path().join("dead.jsonl")).unwrap();
    /// assert_eq!(sink.written().get(), 0);
    /// ```
    pub fn written(&self) -> Written {
        self.writer.written()
    }

    /// Checks that the output directory still takes new files.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let sink = weir_io::sink::DeadLetterFileSink::create(dir.path().join("dead.jsonl")).unwrap();
    /// assert!(sink.healthcheck().is_ok());
    /// ```
    pub fn healthcheck(&self) -> Result<(), IoError> {
        self.writer.healthcheck()
    }
}

impl<T: Serialize + Send + 'static> weir::Sink<DeadLetter<T>> for DeadLetterFileSink {
    type Error = IoError;

    async fn write(&mut self, letter: DeadLetter<T>) -> Result<(), IoError> {
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, &letter).map_err(|e| {
            IoError::new(
                IoErrorKind::Encode,
                None,
                format!("cannot write the dead letter as JSON: {e}"),
            )
        })?;
        self.scratch.push(b'\n');
        self.writer.push(&self.scratch, None);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        self.writer.flush()
    }

    async fn close(&mut self) -> Result<(), IoError> {
        self.writer.close()
    }
}
