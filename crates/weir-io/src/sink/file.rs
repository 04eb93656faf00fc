use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::encode::RecordEncoder;
use super::{OutputFormat, Written};
use crate::compression::{Compression, Encoder};
use crate::error::{IoError, IoErrorKind};
use crate::record::{JsonText, Record};

/// What a [`FileSink`] writes, and how.
///
/// | setting | default |
/// |---|---|
/// | [`path`](Self::path) | none: give one to [`new`](Self::new) |
/// | [`format`](Self::format) | [`OutputFormat::JsonLines`] |
/// | [`rotate_bytes`](Self::rotate_bytes) | `None`: one file |
/// | [`compression`](Self::compression) | [`Compression::Auto`] (by extension) |
///
/// # Examples
///
/// ```
/// use weir_io::sink::{FileSinkConfig, OutputFormat};
///
/// let config = FileSinkConfig::new("out/events.jsonl.gz").rotate_bytes(64 << 20);
/// assert_eq!(config.format, OutputFormat::JsonLines);
/// assert_eq!(config.rotate_bytes, Some(64 << 20));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSinkConfig {
    /// The output file. Missing parent directories are created. An
    /// existing file of that name is replaced when the sink closes.
    pub path: PathBuf,
    /// How records are written. By default, JSON lines.
    pub format: OutputFormat,
    /// Start a new part once a part would grow past this many bytes
    /// (uncompressed; a part always holds at least one record). With it
    /// set, the output is `<stem>-00001.<ext>`, `<stem>-00002.<ext>`, …
    /// next to `path` (the stem is the file name up to its first dot:
    /// `out/events.jsonl.gz` makes `out/events-00001.jsonl.gz`), each
    /// part renamed into place once full, the last one on close. By
    /// default, no rotation: one file at `path`.
    pub rotate_bytes: Option<u64>,
    /// How the output is compressed. By default, by the extension of
    /// `path` (`.gz`, `.zst`).
    pub compression: Compression,
}

impl FileSinkConfig {
    /// Writes `path`, with the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = weir_io::sink::FileSinkConfig::new("out.jsonl");
    /// assert_eq!(config.path, std::path::Path::new("out.jsonl"));
    /// assert_eq!(config.rotate_bytes, None);
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> FileSinkConfig {
        FileSinkConfig {
            path: path.into(),
            format: OutputFormat::JsonLines,
            rotate_bytes: None,
            compression: Compression::Auto,
        }
    }

    /// Sets the format. By default, JSON lines.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sink::{FileSinkConfig, OutputFormat};
    /// let config = FileSinkConfig::new("out.csv").format(OutputFormat::Csv { columns: None });
    /// assert_eq!(config.format, OutputFormat::Csv { columns: None });
    /// ```
    pub fn format(mut self, format: OutputFormat) -> FileSinkConfig {
        self.format = format;
        self
    }

    /// Rotates the output every `bytes` bytes. By default, no rotation.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = weir_io::sink::FileSinkConfig::new("out.jsonl").rotate_bytes(1000);
    /// assert_eq!(config.rotate_bytes, Some(1000));
    /// ```
    pub fn rotate_bytes(mut self, bytes: u64) -> FileSinkConfig {
        self.rotate_bytes = Some(bytes);
        self
    }

    /// Sets the compression. By default, by extension.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{sink::FileSinkConfig, Compression};
    /// let config = FileSinkConfig::new("out.jsonl.gz").compression(Compression::None);
    /// assert_eq!(config.compression, Compression::None);
    /// ```
    pub fn compression(mut self, compression: Compression) -> FileSinkConfig {
        self.compression = compression;
        self
    }
}

/// One part being written: its temporary file and where it goes.
struct Part {
    tmp: PathBuf,
    done: PathBuf,
    out: Encoder,
}

/// A file written through a hidden temporary file and renamed into place
/// when done (each part when rotating): the shared mechanics of
/// [`FileSink`] and [`DeadLetterFileSink`](super::DeadLetterFileSink).
pub(crate) struct FileWriter {
    path: PathBuf,
    dir: PathBuf,
    rotate: Option<u64>,
    compression: Compression,
    part: Option<Part>,
    /// The number of the current (or last) part, from 1.
    number: u32,
    /// Encoded records not yet flushed.
    buf: Vec<u8>,
    /// Where in `buf` a new part starts.
    cuts: Vec<usize>,
    /// The current part's size (written and buffered) and record count.
    part_bytes: u64,
    part_records: u64,
    /// Records in `buf`.
    pending: u64,
    written: Written,
    closed: bool,
}

impl FileWriter {
    pub(crate) fn create(
        path: &Path,
        rotate: Option<u64>,
        compression: Compression,
    ) -> Result<FileWriter, IoError> {
        if path.as_os_str().is_empty() {
            return Err(IoError::new(IoErrorKind::NotFound, None, "no output path given"));
        }
        if path.is_dir() {
            return Err(IoError::new(
                IoErrorKind::IsDirectory,
                Some(path),
                format!("`{}` is a directory, not a file", path.display()),
            ));
        }
        if path.file_name().is_none() {
            return Err(IoError::new(
                IoErrorKind::NotFound,
                Some(path),
                format!("`{}` does not name a file", path.display()),
            ));
        }
        let compression = compression.check(path)?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir)
            .map_err(|e| IoError::io("cannot create the directory", &dir, e, IoErrorKind::Write))?;
        let mut writer = FileWriter {
            path: path.to_path_buf(),
            dir,
            rotate: rotate.map(|r| r.max(1)),
            compression,
            part: None,
            number: 0,
            buf: Vec::with_capacity(64 * 1024),
            cuts: Vec::new(),
            part_bytes: 0,
            part_records: 0,
            pending: 0,
            written: Written::default(),
            closed: false,
        };
        // Open the first part now: an unwritable directory fails here.
        writer.open_part()?;
        Ok(writer)
    }

    pub(crate) fn written(&self) -> Written {
        self.written.clone()
    }

    /// The final path of part `number` (the path itself without rotation).
    fn part_path(&self, number: u32) -> PathBuf {
        if self.rotate.is_none() {
            return self.path.clone();
        }
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let (stem, ext) = match name.get(1..).and_then(|rest| rest.find('.')) {
            Some(dot) => name.split_at(dot + 1),
            None => (&*name, ""),
        };
        self.dir.join(format!("{stem}-{number:05}{ext}"))
    }

    fn open_part(&mut self) -> Result<(), IoError> {
        self.number += 1;
        let done = self.part_path(self.number);
        let name = done.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let file =
            File::create(&tmp).map_err(|e| IoError::io("cannot create", &tmp, e, IoErrorKind::Write))?;
        let out = Encoder::new(self.compression, file)
            .map_err(|e| IoError::io("cannot write", &tmp, e, IoErrorKind::Write))?;
        self.part = Some(Part { tmp, done, out });
        Ok(())
    }

    /// Ends the current part and renames it into place.
    fn finish_part(&mut self) -> Result<(), IoError> {
        let Some(Part { tmp, done, out }) = self.part.take() else {
            return Ok(());
        };
        out.finish()
            .map_err(|e| IoError::io("cannot write", &tmp, e, IoErrorKind::Write))?;
        fs::rename(&tmp, &done).map_err(|e| {
            IoError::io(
                &format!("cannot rename `{}` to", tmp.display()),
                &done,
                e,
                IoErrorKind::Write,
            )
        })
    }

    /// Buffers one encoded record (`header` first if it starts a part).
    pub(crate) fn push(&mut self, record: &[u8], header: Option<&[u8]>) {
        if let Some(max) = self.rotate {
            if self.part_records > 0 && self.part_bytes + record.len() as u64 > max {
                self.cuts.push(self.buf.len());
                self.part_bytes = 0;
                self.part_records = 0;
            }
        }
        if self.part_records == 0 && self.part_bytes == 0 {
            if let Some(header) = header {
                self.buf.extend_from_slice(header);
                self.part_bytes += header.len() as u64;
            }
        }
        self.buf.extend_from_slice(record);
        self.part_bytes += record.len() as u64;
        self.part_records += 1;
        self.pending += 1;
    }

    /// Writes the buffered records to the OS, closing full parts on the
    /// way. On failure the buffered records are dropped (the engine fails
    /// them), so that none is written twice.
    pub(crate) fn flush(&mut self) -> Result<(), IoError> {
        if self.closed {
            return Err(IoError::new(
                IoErrorKind::Write,
                Some(&self.path),
                format!("`{}` is already closed", self.path.display()),
            ));
        }
        let buf = std::mem::take(&mut self.buf);
        let cuts = std::mem::take(&mut self.cuts);
        let pending = std::mem::take(&mut self.pending);
        let result = self.write_out(&buf, &cuts);
        self.buf = buf;
        self.buf.clear();
        if result.is_ok() {
            self.written.add(pending);
        }
        result
    }

    fn write_out(&mut self, buf: &[u8], cuts: &[usize]) -> Result<(), IoError> {
        let mut start = 0;
        for &cut in cuts {
            self.write_part(&buf[start..cut])?;
            self.finish_part()?;
            start = cut;
        }
        self.write_part(&buf[start..])?;
        if let Some(part) = &mut self.part {
            part.out
                .flush()
                .map_err(|e| IoError::io("cannot write", &part.tmp, e, IoErrorKind::Write))?;
        }
        Ok(())
    }

    fn write_part(&mut self, bytes: &[u8]) -> Result<(), IoError> {
        if self.part.is_none() {
            self.open_part()?;
        }
        let Some(part) = &mut self.part else {
            return Ok(());
        };
        part.out
            .write_all(bytes)
            .map_err(|e| IoError::io("cannot write", &part.tmp, e, IoErrorKind::Write))
    }

    /// Flushes, ends the last part and renames it into place.
    pub(crate) fn close(&mut self) -> Result<(), IoError> {
        if self.closed {
            return Ok(());
        }
        self.flush()?;
        self.closed = true;
        self.finish_part()
    }

    /// Checks that the output directory still takes new files.
    pub(crate) fn healthcheck(&self) -> Result<(), IoError> {
        let probe = self
            .dir
            .join(format!(".weir-healthcheck-{}.tmp", std::process::id()));
        File::create(&probe).map_err(|e| IoError::io("cannot create", &probe, e, IoErrorKind::Write))?;
        fs::remove_file(&probe).map_err(|e| IoError::io("cannot remove", &probe, e, IoErrorKind::Write))
    }
}

/// Records written to a file, atomically: the sink writes a hidden
/// temporary file next to the output (`out/.events.jsonl.tmp`) and renames
/// it into place on [`close`](weir::Sink::close), so a reader never sees
/// a half-written output. A run that ends without closing the sink
/// (aborted, failed) leaves the temporary file and no output file. With
/// [`rotate_bytes`](FileSinkConfig::rotate_bytes), each part is renamed
/// into place once full.
///
/// `write` encodes into memory; `flush` writes to the OS (gzip and zstd
/// output is flushed to a sync point, so what was flushed can be read
/// back). The file I/O runs on the sink's task.
///
/// # Examples
///
/// ```
/// use weir::Pipeline;
/// use weir_io::sink::{FileSink, FileSinkConfig, OutputFormat};
/// use weir_io::Record;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out/people.csv");
/// let sink = FileSink::create(FileSinkConfig::new(&path).format(OutputFormat::Csv { columns: None })).unwrap();
/// let people = [serde_json::json!({"name": "ann", "age": 41}), serde_json::json!({"name": "bo", "age": 7})];
/// Pipeline::from_iter(people.map(Record::new)).sink(sink).run().await.unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "age,name\n41,ann\n7,bo\n");
/// # });
/// ```
pub struct FileSink {
    writer: FileWriter,
    encoder: RecordEncoder,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("path", &self.writer.path)
            .field("written", &self.writer.written.get())
            .finish_non_exhaustive()
    }
}

impl FileSink {
    /// Creates the output's directories (if missing) and its first
    /// temporary file. Fails, naming the path, when that is impossible (a
    /// read-only or missing directory that cannot be made, a path that is
    /// a directory) or the compression's feature is off.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::sink::{FileSink, FileSinkConfig};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let sink = FileSink::create(FileSinkConfig::new(dir.path().join("a/b/out.jsonl"))).unwrap();
    /// assert!(dir.path().join("a/b/.out.jsonl.tmp").exists());
    /// assert!(!dir.path().join("a/b/out.jsonl").exists()); // until closed
    /// # drop(sink);
    /// let err = FileSink::create(FileSinkConfig::new(dir.path())).unwrap_err();
    /// assert!(err.to_string().contains("is a directory"), "{err}");
    /// ```
    pub fn create(config: FileSinkConfig) -> Result<FileSink, IoError> {
        let writer = FileWriter::create(&config.path, config.rotate_bytes, config.compression)?;
        Ok(FileSink {
            writer,
            encoder: RecordEncoder::new(&config.format),
            scratch: Vec::new(),
        })
    }

    /// A live count of the records written and flushed.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let sink = weir_io::sink::FileSink::create(weir_io::sink::FileSinkConfig::new(dir.path().join("o.jsonl"))).unwrap();
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
    /// let sink = weir_io::sink::FileSink::create(weir_io::sink::FileSinkConfig::new(dir.path().join("o.jsonl"))).unwrap();
    /// assert!(sink.healthcheck().is_ok());
    /// ```
    pub fn healthcheck(&self) -> Result<(), IoError> {
        self.writer.healthcheck()
    }

    fn write_value(&mut self, value: &Value) -> Result<(), IoError> {
        self.scratch.clear();
        self.encoder.encode(value, &mut self.scratch)?;
        self.writer.push(&self.scratch, self.encoder.header());
        Ok(())
    }
}

/// Writes a value already written as JSON text: for JSON lines, the text
/// as it is (no value is built); for CSV, its decoded value's columns.
impl weir::Sink<JsonText> for FileSink {
    type Error = IoError;

    async fn write(&mut self, text: JsonText) -> Result<(), IoError> {
        self.scratch.clear();
        self.encoder.encode_text(&text, &mut self.scratch)?;
        self.writer.push(&self.scratch, self.encoder.header());
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        self.writer.flush()
    }

    async fn close(&mut self) -> Result<(), IoError> {
        self.writer.close()
    }
}

impl weir::Sink<Record> for FileSink {
    type Error = IoError;

    async fn write(&mut self, record: Record) -> Result<(), IoError> {
        self.write_value(&record.value)
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        self.writer.flush()
    }

    async fn close(&mut self) -> Result<(), IoError> {
        self.writer.close()
    }
}

impl weir::Sink<Value> for FileSink {
    type Error = IoError;

    async fn write(&mut self, value: Value) -> Result<(), IoError> {
        self.write_value(&value)
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        self.writer.flush()
    }

    async fn close(&mut self) -> Result<(), IoError> {
        self.writer.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_named_after_the_stem_up_to_the_first_dot() {
        let dir = tempfile::tempdir().unwrap();
        let writer =
            FileWriter::create(&dir.path().join("events.jsonl.gz"), Some(10), Compression::None).unwrap();
        assert_eq!(writer.part_path(2), dir.path().join("events-00002.jsonl.gz"));
        let writer = FileWriter::create(&dir.path().join("noext"), Some(10), Compression::None).unwrap();
        assert_eq!(writer.part_path(1), dir.path().join("noext-00001"));
        let writer =
            FileWriter::create(&dir.path().join(".hidden.log"), Some(10), Compression::None).unwrap();
        assert_eq!(writer.part_path(3), dir.path().join(".hidden-00003.log"));
    }
}
