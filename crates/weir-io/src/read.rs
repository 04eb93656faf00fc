//! Reading: the [`Lines`] iterator behind the file and stdin sources, its
//! [`ReadProgress`] handle, [`Records`] (lines decoded) and [`LineStream`]
//! (lines read on a thread of their own).
//!
//! # Errors while reading
//!
//! Problems with one line (invalid UTF-8, a line over the limit, an
//! unreadable CSV record) are the line's [`fault`](Line::fault): the line
//! is still yielded, and fails to decode, so it reaches the pipeline's
//! error policy or dead-letter sink. A failure of the input itself (an I/O
//! error in the middle of a file, a corrupt gzip stream, a file that
//! vanished) ends the iteration early and is kept: [`Lines::error`] or,
//! once the iterator has been handed to a pipeline,
//! [`ReadProgress::error`] returns it. A caller that gets to the end of
//! the lines must check it, and fail the run with it, before calling the
//! run a success ([`Records`] does this for you: its last item is the
//! error).

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::compression::{self, Compression};
use crate::error::IoError;
use crate::format::{DecodeError, Decoder, Format};
use crate::record::{CsvRow, Fault, Line, Origin, Record, TOO_LONG_KEPT};

/// The read buffer: large enough that reading costs no syscall per line.
const READ_BUFFER: usize = 256 * 1024;
/// Lines read between two updates of the shared line count.
const PUBLISH_EVERY: u64 = 1024;

/// One input of a [`Lines`] iterator.
#[derive(Debug)]
pub(crate) enum Input {
    /// A file, with its resolved compression, read from a position.
    File {
        path: PathBuf,
        compression: Compression,
        from: Resume,
    },
    /// The process's standard input, with its compression.
    Stdin { compression: Compression },
}

/// Where reading an input starts: a byte offset in its (decompressed)
/// stream and the number of lines before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Resume {
    pub(crate) offset: u64,
    pub(crate) lines: u64,
}

/// A live view of a reader's progress, cheap to clone and to read (atomic
/// counters): for a progress bar and an ETA while the lines are read
/// elsewhere, and for the error that ended the reading.
///
/// Counts are published per buffer or every 1024 lines, not per line, and
/// are exact once the reading has ended.
///
/// # Examples
///
/// ```
/// use weir_io::file::{FileSource, FileSourceConfig};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("a.txt");
/// std::fs::write(&path, "x\ny\n").unwrap();
/// let source = FileSource::open(FileSourceConfig::new(path.to_str().unwrap())).unwrap();
/// let progress = source.progress();
/// assert_eq!(progress.total_bytes(), 4);
/// assert_eq!(source.lines().count(), 2);
/// assert_eq!((progress.bytes_read(), progress.lines_read()), (4, 2));
/// assert!(progress.error().is_none());
/// ```
#[derive(Clone)]
pub struct ReadProgress {
    inner: Arc<ProgressInner>,
}

struct ProgressInner {
    bytes: AtomicU64,
    lines: AtomicU64,
    total_bytes: u64,
    current: Mutex<Option<Arc<str>>>,
    error: Mutex<Option<IoError>>,
}

impl ReadProgress {
    pub(crate) fn new(total_bytes: u64) -> ReadProgress {
        ReadProgress {
            inner: Arc::new(ProgressInner {
                bytes: AtomicU64::new(0),
                lines: AtomicU64::new(0),
                total_bytes,
                current: Mutex::new(None),
                error: Mutex::new(None),
            }),
        }
    }

    /// Bytes consumed from the inputs so far, as stored (compressed bytes
    /// for a compressed file): compare with
    /// [`total_bytes`](Self::total_bytes) for an ETA.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.txt");
    /// # std::fs::write(&path, "hello\n").unwrap();
    /// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
    /// let progress = source.progress();
    /// assert_eq!(progress.bytes_read(), 0); // nothing read yet
    /// ```
    pub fn bytes_read(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// Lines (CSV: records) read so far, blank lines skipped included.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.txt");
    /// # std::fs::write(&path, "a\nb\nc\n").unwrap();
    /// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
    /// let progress = source.progress();
    /// source.lines().for_each(drop);
    /// assert_eq!(progress.lines_read(), 3);
    /// ```
    pub fn lines_read(&self) -> u64 {
        self.inner.lines.load(Ordering::Relaxed)
    }

    /// The sum of the inputs' sizes on disk (0 for stdin).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.txt");
    /// # std::fs::write(&path, "12345").unwrap();
    /// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
    /// assert_eq!(source.progress().total_bytes(), 5);
    /// ```
    pub fn total_bytes(&self) -> u64 {
        self.inner.total_bytes
    }

    /// The input being read (as its [`Origin::file`] names it), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.txt");
    /// # std::fs::write(&path, "x\n").unwrap();
    /// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
    /// let progress = source.progress();
    /// assert_eq!(progress.current_file(), None);
    /// let mut lines = source.lines();
    /// lines.next();
    /// assert_eq!(progress.current_file().as_deref(), path.to_str());
    /// ```
    pub fn current_file(&self) -> Option<String> {
        let current = self.inner.current.lock().unwrap_or_else(|p| p.into_inner());
        current.as_deref().map(str::to_owned)
    }

    /// The error that ended the reading early, if one did (see the
    /// [module docs](crate::read)).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.txt");
    /// # std::fs::write(&path, "x\n").unwrap();
    /// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
    /// let progress = source.progress();
    /// std::fs::remove_file(&path).unwrap(); // gone before it is read
    /// assert_eq!(source.lines().count(), 0);
    /// assert!(progress.error().unwrap().to_string().contains("a.txt"));
    /// ```
    pub fn error(&self) -> Option<IoError> {
        self.inner.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_error(&self, error: IoError) {
        *self.inner.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    fn set_current(&self, name: Option<Arc<str>>) {
        *self.inner.current.lock().unwrap_or_else(|p| p.into_inner()) = name;
    }
}

impl fmt::Debug for ReadProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadProgress")
            .field("bytes_read", &self.bytes_read())
            .field("lines_read", &self.lines_read())
            .field("total_bytes", &self.total_bytes())
            .field("current_file", &self.current_file())
            .field("error", &self.error())
            .finish()
    }
}

/// Counts the bytes read from an input into the shared progress.
struct Counted<R> {
    inner: R,
    progress: ReadProgress,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inner.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The lines of a source's inputs, read in order, sequentially, on the
/// calling thread. Made by [`FileSource::lines`](crate::file::FileSource::lines)
/// and [`StdinSource::lines`](crate::stdin::StdinSource::lines).
///
/// Each item is one [`Line`] (for CSV, one record) with its origin;
/// problems with one line are its [`fault`](Line::fault). An I/O error
/// ends the iteration and is kept for [`error`](Lines::error) (see the
/// [module docs](crate::read)). For JSON lines and CSV, blank lines are
/// skipped (they still count in line numbers).
///
/// # Examples
///
/// ```
/// use weir_io::file::{FileSource, FileSourceConfig};
/// use weir_io::Format;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("a.txt");
/// std::fs::write(&path, "one\r\ntwo\n\nthree").unwrap();
/// let config = FileSourceConfig::new(path.to_str().unwrap()).format(Format::Lines);
/// let mut lines = FileSource::open(config).unwrap().lines();
/// let texts: Vec<String> = lines.by_ref().map(|l| l.text).collect();
/// assert_eq!(texts, ["one", "two", "", "three"]);
/// assert!(lines.error().is_none());
/// ```
pub struct Lines {
    inputs: std::vec::IntoIter<Input>,
    reader: Option<Reader>,
    skip_blank: bool,
    csv: Option<(u8, bool)>,
    max: u64,
    progress: ReadProgress,
    /// Lines read but not yet added to the shared count.
    unpublished: u64,
}

impl fmt::Debug for Lines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lines")
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl Lines {
    pub(crate) fn new(inputs: Vec<Input>, format: &Format, max: u64, progress: ReadProgress) -> Lines {
        let csv = match format {
            Format::Csv(options) => Some((options.delimiter, options.has_header)),
            _ => None,
        };
        Lines {
            inputs: inputs.into_iter(),
            reader: None,
            skip_blank: format.skips_blank_lines(),
            csv,
            max,
            progress,
            unpublished: 0,
        }
    }

    /// The error that ended the iteration early, if one did.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.jsonl");
    /// std::fs::write(&path, "1\n2\n").unwrap();
    /// let mut lines = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap().lines();
    /// assert_eq!(lines.by_ref().count(), 2);
    /// assert!(lines.error().is_none());
    /// ```
    pub fn error(&self) -> Option<IoError> {
        self.progress.error()
    }

    /// A handle on the reading's progress (the same as the source's).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.jsonl");
    /// std::fs::write(&path, "1\n").unwrap();
    /// let lines = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap().lines();
    /// let progress = lines.progress();
    /// assert_eq!(lines.count(), 1);
    /// assert_eq!(progress.lines_read(), 1);
    /// ```
    pub fn progress(&self) -> ReadProgress {
        self.progress.clone()
    }

    /// The same lines as a [`Stream`], read on a thread of its own so that
    /// a blocking read (a slow disk, a terminal, a pipe) never blocks an
    /// async runtime's worker. Lines travel in batches, and a batch is sent
    /// as soon as the reader's buffer is used up, so lines typed into a
    /// terminal arrive at once (CSV records travel in full batches of 1024,
    /// or at the end of the input). The thread ends at the end of the input, or
    /// once the stream is dropped and its next batch cannot be sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.txt");
    /// std::fs::write(&path, "a\nb\n").unwrap();
    /// let config = weir_io::file::FileSourceConfig::new(path.to_str().unwrap()).format(weir_io::Format::Lines);
    /// let stream = weir_io::file::FileSource::open(config).unwrap().lines().into_stream();
    /// let texts: Vec<String> = stream.map(|l| l.text).collect().await;
    /// assert_eq!(texts, ["a", "b"]);
    /// # });
    /// ```
    pub fn into_stream(self) -> LineStream {
        let progress = self.progress.clone();
        let (tx, rx) = mpsc::channel::<Vec<Line>>(STREAM_BATCHES);
        let spawned = std::thread::Builder::new()
            .name("weir-io-read".to_owned())
            .spawn(move || forward(self, &tx));
        if let Err(e) = spawned {
            progress.set_error(IoError::new(
                crate::IoErrorKind::Read,
                None,
                format!("cannot start the reading thread: {e}"),
            ));
        }
        LineStream {
            rx,
            batch: Vec::new().into_iter(),
            progress,
        }
    }

    fn publish(&mut self) {
        if self.unpublished > 0 {
            self.progress
                .inner
                .lines
                .fetch_add(self.unpublished, Ordering::Relaxed);
            self.unpublished = 0;
        }
    }

    /// Opens the next input, or records why it could not be opened.
    fn open_next(&mut self) -> Option<Reader> {
        let input = self.inputs.next()?;
        let mut start = Resume::default();
        let (name, path, raw): (Arc<str>, PathBuf, io::Result<Box<dyn Read + Send>>) = match input {
            Input::File {
                path,
                compression,
                from,
            } => {
                let name: Arc<str> = Arc::from(path.to_string_lossy());
                start = from;
                let raw = File::open(&path).and_then(|mut file| {
                    // A plain file is read from the offset; a compressed one
                    // is decompressed from its start and the first bytes
                    // skipped.
                    let plain = compression == Compression::None;
                    if plain && from.offset > 0 {
                        file.seek(SeekFrom::Start(from.offset))?;
                        self.progress
                            .inner
                            .bytes
                            .fetch_add(from.offset, Ordering::Relaxed);
                    }
                    let counted = Counted {
                        inner: file,
                        progress: self.progress.clone(),
                    };
                    let mut raw = compression::decoder(compression, counted)?;
                    if !plain && from.offset > 0 {
                        let skipped = io::copy(&mut raw.by_ref().take(from.offset), &mut io::sink())?;
                        if skipped < from.offset {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!(
                                    "the input ends at byte {skipped}, before the position {} to resume from",
                                    from.offset
                                ),
                            ));
                        }
                    }
                    Ok(raw)
                });
                (name, path, raw)
            }
            Input::Stdin { compression } => {
                let counted = Counted {
                    inner: io::stdin(),
                    progress: self.progress.clone(),
                };
                (
                    Arc::from("<stdin>"),
                    PathBuf::from("<stdin>"),
                    compression::decoder(compression, counted),
                )
            }
        };
        let raw = match raw {
            Ok(raw) => raw,
            Err(e) => {
                self.progress
                    .set_error(IoError::io("cannot open", &path, e, crate::IoErrorKind::Read));
                return None;
            }
        };
        self.progress.set_current(Some(name.clone()));
        Some(match self.csv {
            None => Reader::Text(TextReader {
                src: BufReader::with_capacity(READ_BUFFER, raw),
                name,
                path,
                line: start.lines,
                offset: start.offset,
                partial: Partial::default(),
                fresh: 0,
            }),
            Some((delimiter, has_header)) => Reader::Csv(Box::new(CsvReader {
                rdr: csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .delimiter(delimiter)
                    .buffer_capacity(READ_BUFFER)
                    .from_reader(raw),
                record: csv::ByteRecord::new(),
                wants_header: has_header,
                header: None,
                delimiter,
                name,
                path,
                records: 0,
                fresh: 0,
            })),
        })
    }

    /// Whether the current input's buffer is used up (the next line needs
    /// a read from the OS, which may block).
    fn buffer_empty(&self) -> bool {
        match &self.reader {
            Some(Reader::Text(t)) => t.src.buffer().is_empty(),
            Some(Reader::Csv(_)) => false,
            None => true,
        }
    }
}

impl Iterator for Lines {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        loop {
            if self.reader.is_none() {
                self.publish();
                match self.open_next() {
                    Some(reader) => self.reader = Some(reader),
                    None => {
                        self.progress.set_current(None);
                        // The inputs are used up (or one failed): the end.
                        self.inputs = Vec::new().into_iter();
                        return None;
                    }
                }
            }
            let reader = self.reader.as_mut()?;
            let read = match reader {
                Reader::Text(t) => t.next_line(self.max, self.skip_blank),
                Reader::Csv(c) => c.next_line(self.max),
            };
            self.unpublished += match reader {
                Reader::Text(t) => std::mem::take(&mut t.fresh),
                Reader::Csv(c) => std::mem::take(&mut c.fresh),
            };
            if self.unpublished >= PUBLISH_EVERY {
                let n = std::mem::take(&mut self.unpublished);
                self.progress.inner.lines.fetch_add(n, Ordering::Relaxed);
            }
            match read {
                Ok(Some(line)) => return Some(line),
                Ok(None) => self.reader = None,
                Err(e) => {
                    let (path, line) = match reader {
                        Reader::Text(t) => (t.path.clone(), t.line),
                        Reader::Csv(c) => (c.path.clone(), c.records),
                    };
                    self.reader = None;
                    self.inputs = Vec::new().into_iter();
                    self.publish();
                    self.progress.set_error(IoError::read(&path, line, e));
                    self.progress.set_current(None);
                    return None;
                }
            }
        }
    }
}

enum Reader {
    Text(TextReader),
    Csv(Box<CsvReader>),
}

/// Splits one input into lines.
struct TextReader {
    src: BufReader<Box<dyn Read + Send>>,
    name: Arc<str>,
    path: PathBuf,
    /// Lines read so far (the last one's number).
    line: u64,
    /// Where the next line starts.
    offset: u64,
    /// A line split across buffer refills.
    partial: Partial,
    /// Lines read (blank ones skipped included) not yet counted in the
    /// progress.
    fresh: u64,
}

impl TextReader {
    /// The next line, or `None` at the end of the input.
    fn next_line(&mut self, max: u64, skip_blank: bool) -> io::Result<Option<Line>> {
        loop {
            let buf = match self.src.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let origin = Origin {
                file: self.name.clone(),
                line: self.line + 1,
                offset: self.offset,
            };
            if buf.is_empty() {
                if self.partial.len == 0 {
                    return Ok(None);
                }
                // The last line, without a line ending.
                self.line += 1;
                self.fresh += 1;
                self.offset += self.partial.len;
                let mut line = self.partial.take(origin, max);
                line.end = self.offset;
                if skip_blank && is_blank(&line) {
                    continue;
                }
                return Ok(Some(line));
            }
            let (line, used, len) = match memchr::memchr(b'\n', buf) {
                Some(end) if self.partial.len == 0 => {
                    // The whole line is in the buffer: one copy, into its String.
                    let bytes = &buf[..end];
                    let line = if skip_blank && bytes.iter().all(u8::is_ascii_whitespace) {
                        None
                    } else {
                        Some(make_line(bytes, origin, max))
                    };
                    (line, end + 1, end as u64)
                }
                Some(end) => {
                    self.partial.append(&buf[..end], max);
                    let len = self.partial.len;
                    let line = self.partial.take(origin, max);
                    let line = (!(skip_blank && is_blank(&line))).then_some(line);
                    (line, end + 1, len)
                }
                None => {
                    let n = buf.len();
                    self.partial.append(buf, max);
                    self.src.consume(n);
                    continue;
                }
            };
            self.src.consume(used);
            self.line += 1;
            self.fresh += 1;
            self.offset += len + 1;
            if let Some(mut line) = line {
                line.end = self.offset;
                return Ok(Some(line));
            }
        }
    }
}

fn is_blank(line: &Line) -> bool {
    line.fault.is_none() && line.text.bytes().all(|b| b.is_ascii_whitespace())
}

/// A line that spans buffer refills, kept in bounded memory: past the
/// limit only its first [`TOO_LONG_KEPT`] bytes are kept, the rest is
/// counted and dropped.
#[derive(Default)]
struct Partial {
    bytes: Vec<u8>,
    /// The line's full length so far.
    len: u64,
    too_long: bool,
    /// Whether the last byte appended was `\r`.
    ends_cr: bool,
}

impl Partial {
    fn append(&mut self, chunk: &[u8], max: u64) {
        let Some(&last) = chunk.last() else {
            return;
        };
        self.ends_cr = last == b'\r';
        self.len += chunk.len() as u64;
        if !self.too_long && self.len > max.saturating_add(1) {
            // Over the limit (a trailing `\r` aside): keep the start only.
            self.too_long = true;
            self.bytes.truncate(TOO_LONG_KEPT);
            self.bytes.shrink_to(TOO_LONG_KEPT);
        }
        if self.too_long {
            let room = TOO_LONG_KEPT.saturating_sub(self.bytes.len()).min(chunk.len());
            self.bytes.extend_from_slice(&chunk[..room]);
        } else {
            self.bytes.extend_from_slice(chunk);
        }
    }

    /// The line assembled so far, and a fresh start.
    fn take(&mut self, origin: Origin, max: u64) -> Line {
        let len = self.len - u64::from(self.ends_cr);
        let line = if self.too_long || len > max {
            too_long(&self.bytes, len, max, origin)
        } else {
            let mut bytes = std::mem::take(&mut self.bytes);
            if self.ends_cr {
                bytes.pop();
            }
            match String::from_utf8(bytes) {
                Ok(text) => Line::new(text, origin),
                Err(e) => {
                    let at = e.utf8_error().valid_up_to();
                    let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                    faulty(text, origin, Fault::InvalidUtf8 { at })
                }
            }
        };
        self.bytes.clear();
        self.len = 0;
        self.too_long = false;
        self.ends_cr = false;
        line
    }
}

/// A line from its bytes (its `\n` excluded).
#[inline]
fn make_line(bytes: &[u8], origin: Origin, max: u64) -> Line {
    let bytes = match bytes.last() {
        Some(b'\r') => &bytes[..bytes.len() - 1],
        _ => bytes,
    };
    if bytes.len() as u64 > max {
        return too_long(bytes, bytes.len() as u64, max, origin);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Line::new(text, origin),
        Err(e) => faulty(
            String::from_utf8_lossy(bytes).into_owned(),
            origin,
            Fault::InvalidUtf8 { at: e.valid_up_to() },
        ),
    }
}

fn faulty(text: String, origin: Origin, fault: Fault) -> Line {
    let mut line = Line::new(text, origin);
    line.fault = Some(fault);
    line
}

/// A too-long line: the start of its text (cut at a character boundary).
fn too_long(bytes: &[u8], len: u64, max: u64, origin: Origin) -> Line {
    let kept = &bytes[..bytes.len().min(TOO_LONG_KEPT)];
    let text = match std::str::from_utf8(kept) {
        Ok(text) => text.to_owned(),
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&kept[..e.valid_up_to()]).into_owned(),
        Err(_) => String::from_utf8_lossy(kept).into_owned(),
    };
    faulty(text, origin, Fault::TooLong { len, max })
}

/// Reads one input's CSV records.
struct CsvReader {
    rdr: csv::Reader<Box<dyn Read + Send>>,
    record: csv::ByteRecord,
    wants_header: bool,
    header: Option<Arc<[String]>>,
    delimiter: u8,
    name: Arc<str>,
    path: PathBuf,
    /// Records read (the header included).
    records: u64,
    /// Records read not yet counted in the progress.
    fresh: u64,
}

impl CsvReader {
    fn next_line(&mut self, max: u64) -> io::Result<Option<Line>> {
        loop {
            let at = self.rdr.position().clone();
            let origin = |pos: &csv::Position, name: &Arc<str>| Origin {
                file: name.clone(),
                line: pos.line(),
                offset: pos.byte(),
            };
            match self.rdr.read_byte_record(&mut self.record) {
                Ok(false) => return Ok(None),
                Ok(true) => {}
                Err(e) => {
                    let message = e.to_string();
                    let pos = e.position().cloned().unwrap_or(at);
                    match e.into_kind() {
                        csv::ErrorKind::Io(e) => return Err(e),
                        _ => {
                            self.records += 1;
                            self.fresh += 1;
                            let fault = Fault::Csv { message };
                            return Ok(Some(faulty(String::new(), origin(&pos, &self.name), fault)));
                        }
                    }
                }
            }
            self.records += 1;
            self.fresh += 1;
            let pos = self.record.position().cloned().unwrap_or(at);
            let origin = origin(&pos, &self.name);
            let mut fault = None;
            let mut column = 0;
            let mut fields = Vec::with_capacity(self.record.len());
            for field in self.record.iter() {
                match std::str::from_utf8(field) {
                    Ok(s) => fields.push(s.to_owned()),
                    Err(e) => {
                        fault.get_or_insert(Fault::InvalidUtf8 {
                            at: column + e.valid_up_to(),
                        });
                        fields.push(String::from_utf8_lossy(field).into_owned());
                    }
                }
                column += field.len() + 1;
            }
            if self.wants_header && self.header.is_none() {
                self.header = Some(fields.into());
                continue;
            }
            let len = (column as u64).saturating_sub(1);
            let mut text = crate::format::join_csv(&fields, self.delimiter);
            if len > max {
                if text.len() > TOO_LONG_KEPT {
                    let mut cut = TOO_LONG_KEPT;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                }
                return Ok(Some(faulty(text, origin, Fault::TooLong { len, max })));
            }
            let mut line = Line::new(text, origin);
            line.fault = fault;
            line.csv = Some(CsvRow {
                fields,
                header: self.header.clone(),
            });
            return Ok(Some(line));
        }
    }
}

/// Batches in flight between the reading thread and a [`LineStream`].
const STREAM_BATCHES: usize = 4;
/// The most lines in one batch.
const STREAM_BATCH: usize = 1024;

/// Runs on the reading thread: sends `lines` in batches until the end or
/// until the stream is gone.
fn forward(mut lines: Lines, tx: &mpsc::Sender<Vec<Line>>) {
    let mut batch = Vec::with_capacity(STREAM_BATCH);
    while let Some(line) = lines.next() {
        batch.push(line);
        if batch.len() >= STREAM_BATCH || lines.buffer_empty() {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(STREAM_BATCH));
            if tx.blocking_send(full).is_err() {
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(batch);
    }
}

/// [`Lines`] read on a thread of their own, as a [`Stream`]; made by
/// [`Lines::into_stream`]. Ends at the end of the input or at a read
/// error, which [`progress`](LineStream::progress)`().error()` then
/// returns.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use weir::Pipeline;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("a.jsonl");
/// std::fs::write(&path, "{\"n\":1}\n{\"n\":2}\n").unwrap();
/// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
/// let decoder = source.decoder();
/// let stream = source.lines().into_stream();
/// let progress = stream.progress();
/// let out = Pipeline::from_stream(stream).try_map(move |l| decoder.decode(l)).collect().await.unwrap();
/// assert_eq!(out.len(), 2);
/// assert!(progress.error().is_none());
/// # });
/// ```
pub struct LineStream {
    rx: mpsc::Receiver<Vec<Line>>,
    batch: std::vec::IntoIter<Line>,
    progress: ReadProgress,
}

impl LineStream {
    /// A handle on the reading's progress and its error.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.txt");
    /// # std::fs::write(&path, "1\n").unwrap();
    /// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
    /// let stream = source.lines().into_stream();
    /// assert_eq!(stream.progress().total_bytes(), 2);
    /// # });
    /// ```
    pub fn progress(&self) -> ReadProgress {
        self.progress.clone()
    }
}

impl fmt::Debug for LineStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineStream")
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl Stream for LineStream {
    type Item = Line;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Line>> {
        loop {
            if let Some(line) = self.batch.next() {
                return Poll::Ready(Some(line));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(batch)) => self.batch = batch.into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// [`Lines`] decoded: each item a [`Record`] or the [`DecodeError`] of its
/// line. If reading failed, the last item is that error (kind
/// [`Io`](crate::DecodeErrorKind::Io)), so iterating to the end never
/// hides it. Made by [`FileSource::records`](crate::file::FileSource::records).
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("a.jsonl");
/// std::fs::write(&path, "{\"n\":1}\nnot json\n").unwrap();
/// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
/// let results: Vec<_> = source.records().collect();
/// assert_eq!(results[0].as_ref().unwrap().value["n"], 1);
/// assert!(results[1].as_ref().unwrap_err().to_string().contains("a.jsonl:2:"));
/// ```
#[derive(Debug)]
pub struct Records {
    lines: Lines,
    decoder: Decoder,
    done: bool,
}

impl Records {
    pub(crate) fn new(lines: Lines, decoder: Decoder) -> Records {
        Records {
            lines,
            decoder,
            done: false,
        }
    }
}

impl Iterator for Records {
    type Item = Result<Record, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.lines.next() {
            Some(line) => Some(self.decoder.decode(line)),
            None => {
                self.done = true;
                self.lines.error().map(|e| Err(DecodeError::io(&e, None)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_too_long_partial_line_keeps_bounded_memory_however_long_it_grows() {
        let mut partial = Partial::default();
        let chunk = vec![b'x'; 256 * 1024];
        for _ in 0..64 {
            // 16 MiB in all, with a limit of 100 bytes.
            partial.append(&chunk, 100);
            assert!(
                partial.bytes.capacity() <= 2 * TOO_LONG_KEPT,
                "{}",
                partial.bytes.capacity()
            );
        }
        let line = partial.take(Origin::new("f", 1, 0), 100);
        assert_eq!(
            line.fault,
            Some(Fault::TooLong {
                len: 64 * 256 * 1024,
                max: 100
            })
        );
        assert_eq!(line.text.len(), TOO_LONG_KEPT);
        assert_eq!(partial.len, 0);
    }

    #[test]
    fn a_too_long_line_is_cut_at_a_character_boundary() {
        let text = "é".repeat(TOO_LONG_KEPT); // 2 bytes each: the cut falls inside one
        let line = too_long(
            &text.as_bytes()[..TOO_LONG_KEPT + 1],
            5000,
            10,
            Origin::new("f", 1, 0),
        );
        assert_eq!(line.text, "é".repeat(TOO_LONG_KEPT / 2));
    }
}
