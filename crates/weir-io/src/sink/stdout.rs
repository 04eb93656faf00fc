use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

use super::encode::RecordEncoder;
use super::{OutputFormat, Written};
use crate::error::{IoError, IoErrorKind, BROKEN_PIPE};
use crate::record::{JsonText, Record};

/// Whether a [`StdoutSink`]'s reader went away (`EPIPE`): a handle kept
/// by the caller, readable after the run (the run's error may have lost
/// its cause chain on the way).
///
/// # Examples
///
/// ```
/// let sink = weir_io::sink::StdoutSink::new(weir_io::sink::OutputFormat::JsonLines);
/// assert!(!sink.broken_pipe().is_set());
/// ```
#[derive(Clone, Debug, Default)]
pub struct BrokenPipe(Arc<AtomicBool>);

impl BrokenPipe {
    /// Whether the reader went away.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!weir_io::sink::BrokenPipe::default().is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Records written to standard output (or any [`Write`]r), as JSON lines
/// or CSV.
///
/// `write` encodes into memory; `flush` writes the buffered lines and
/// flushes, on tokio's blocking pool so that a slow reader never blocks a
/// runtime worker. When the reader goes away (`weir … | head`), the flush
/// fails with an [`IoError`] whose
/// [`is_broken_pipe`](IoError::is_broken_pipe) is true, the
/// [`broken_pipe`](Self::broken_pipe) handle is set, and every later
/// flush fails the same way: the run stops, and a CLI can call it a
/// success.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use weir::Pipeline;
/// use weir_io::sink::{OutputFormat, StdoutSink};
/// use weir_io::Record;
///
/// /// A writer the test can read back.
/// #[derive(Clone, Default)]
/// struct Shared(Arc<Mutex<Vec<u8>>>);
/// impl std::io::Write for Shared {
///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(b) }
///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let out = Shared::default();
/// let sink = StdoutSink::to_writer(OutputFormat::JsonLines, out.clone());
/// let records = [serde_json::json!({"a": 1}), serde_json::json!([2])].map(Record::new);
/// Pipeline::from_iter(records).sink(sink).run().await.unwrap();
/// assert_eq!(String::from_utf8(out.0.lock().unwrap().clone()).unwrap(), "{\"a\":1}\n[2]\n");
/// # });
/// ```
pub struct StdoutSink {
    out: Option<Box<dyn Write + Send>>,
    encoder: RecordEncoder,
    buf: Vec<u8>,
    header_written: bool,
    pending: u64,
    written: Written,
    broken: BrokenPipe,
    name: &'static str,
}

impl std::fmt::Debug for StdoutSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdoutSink")
            .field("to", &self.name)
            .field("written", &self.written.get())
            .field("broken_pipe", &self.broken.is_set())
            .finish_non_exhaustive()
    }
}

impl StdoutSink {
    /// Writes to the process's standard output.
    ///
    /// # Examples
    ///
    /// ```
    /// let sink = weir_io::sink::StdoutSink::new(weir_io::sink::OutputFormat::Csv { columns: None });
    /// assert_eq!(sink.written().get(), 0);
    /// ```
    pub fn new(format: OutputFormat) -> StdoutSink {
        StdoutSink::make(format, Box::new(std::io::stdout()), "stdout")
    }

    /// Writes to `out` instead (for tests, or another stream).
    ///
    /// # Examples
    ///
    /// ```
    /// let sink = weir_io::sink::StdoutSink::to_writer(weir_io::sink::OutputFormat::JsonLines, std::io::sink());
    /// assert!(sink.healthcheck().is_ok());
    /// ```
    pub fn to_writer(format: OutputFormat, out: impl Write + Send + 'static) -> StdoutSink {
        StdoutSink::make(format, Box::new(out), "output")
    }

    fn make(format: OutputFormat, out: Box<dyn Write + Send>, name: &'static str) -> StdoutSink {
        StdoutSink {
            out: Some(out),
            encoder: RecordEncoder::new(&format),
            buf: Vec::with_capacity(64 * 1024),
            header_written: false,
            pending: 0,
            written: Written::default(),
            broken: BrokenPipe::default(),
            name,
        }
    }

    /// A live count of the records written and flushed.
    ///
    /// # Examples
    ///
    /// ```
    /// let sink = weir_io::sink::StdoutSink::new(weir_io::sink::OutputFormat::JsonLines);
    /// let written = sink.written();
    /// assert_eq!(written.get(), 0);
    /// ```
    pub fn written(&self) -> Written {
        self.written.clone()
    }

    /// A handle that tells, after the run, whether the reader went away.
    ///
    /// # Examples
    ///
    /// ```
    /// let sink = weir_io::sink::StdoutSink::new(weir_io::sink::OutputFormat::JsonLines);
    /// let broken = sink.broken_pipe();
    /// assert!(!broken.is_set());
    /// ```
    pub fn broken_pipe(&self) -> BrokenPipe {
        self.broken.clone()
    }

    /// Fails once the reader went away.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(weir_io::sink::StdoutSink::new(weir_io::sink::OutputFormat::JsonLines).healthcheck().is_ok());
    /// ```
    pub fn healthcheck(&self) -> Result<(), IoError> {
        if self.broken.is_set() {
            return Err(self.broken_error());
        }
        Ok(())
    }

    fn broken_error(&self) -> IoError {
        IoError::new(
            IoErrorKind::BrokenPipe,
            None,
            format!(
                "cannot write to {}: {BROKEN_PIPE} (its reader went away)",
                self.name
            ),
        )
    }

    fn write_value(&mut self, value: &Value) -> Result<(), IoError> {
        self.write_with(|encoder, buf| encoder.encode(value, buf))
    }

    /// Appends one line written by `encode`, with the CSV header first.
    fn write_with(
        &mut self,
        encode: impl FnOnce(&mut RecordEncoder, &mut Vec<u8>) -> Result<(), IoError>,
    ) -> Result<(), IoError> {
        let start = self.buf.len();
        encode(&mut self.encoder, &mut self.buf)?;
        if !self.header_written {
            if let Some(header) = self.encoder.header() {
                self.buf.splice(start..start, header.iter().copied());
            }
            self.header_written = true;
        }
        self.pending += 1;
        Ok(())
    }

    async fn flush_out(&mut self) -> Result<(), IoError> {
        if self.broken.is_set() {
            self.buf.clear();
            self.pending = 0;
            return Err(self.broken_error());
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(mut out) = self.out.take() else {
            return Err(IoError::new(
                IoErrorKind::Write,
                None,
                format!("cannot write to {}: a flush was interrupted", self.name),
            ));
        };
        let buf = std::mem::take(&mut self.buf);
        let pending = std::mem::take(&mut self.pending);
        let joined = tokio::task::spawn_blocking(move || {
            let result = out.write_all(&buf).and_then(|()| out.flush());
            (out, buf, result)
        })
        .await;
        let (out, mut buf, result) = match joined {
            Ok(done) => done,
            Err(e) => {
                return Err(IoError::new(
                    IoErrorKind::Write,
                    None,
                    format!("cannot write to {}: {e}", self.name),
                ))
            }
        };
        self.out = Some(out);
        buf.clear();
        self.buf = buf;
        match result {
            Ok(()) => {
                self.written.add(pending);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.broken.0.store(true, Ordering::Relaxed);
                Err(self.broken_error())
            }
            Err(e) => Err(IoError::new(
                IoErrorKind::Write,
                None,
                format!("cannot write to {}: {e}", self.name),
            )),
        }
    }
}

impl weir::Sink<Record> for StdoutSink {
    type Error = IoError;

    async fn write(&mut self, record: Record) -> Result<(), IoError> {
        self.write_value(&record.value)
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        self.flush_out().await
    }
}

/// Writes a value already written as JSON text: for JSON lines, the text
/// as it is (no value is built); for CSV, its decoded value's columns.
impl weir::Sink<JsonText> for StdoutSink {
    type Error = IoError;

    async fn write(&mut self, text: JsonText) -> Result<(), IoError> {
        self.write_with(|encoder, buf| encoder.encode_text(&text, buf))
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        self.flush_out().await
    }
}

impl weir::Sink<Value> for StdoutSink {
    type Error = IoError;

    async fn write(&mut self, value: Value) -> Result<(), IoError> {
        self.write_value(&value)
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        self.flush_out().await
    }
}
