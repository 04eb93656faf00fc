//! Checkpoints: where a file source was left, kept in a store, so that a
//! run killed at any instant resumes without losing a line.
//!
//! A [`Checkpointer`] hands out one [`weir::Ack`] per line read (through
//! [`LineAcks`], the lines of a block of consecutive lines share one
//! acknowledgement's counter). The pipeline finalizes each exactly once —
//! delivered (after the sink's flush made it durable), dropped,
//! dead-lettered, or failed under a skip policy — and the checkpointer
//! keeps, per file, the position below which every line is finalized. A
//! line that was
//! never finalized (the run aborted, the process was killed) holds the
//! position back, so a committed position never runs ahead of what the
//! sinks have durably accepted. A [`Committer`] writes the positions to a
//! [`CheckpointStore`] every interval and once at the end of the run; the
//! next run reads them back and [`FileSource::resume`]s each file from
//! its offset, after checking its [`Fingerprint`] (a rotated, truncated
//! or replaced file is reported, never read from the wrong place).
//!
//! After a crash, the lines between the committed position and where the
//! run was are processed again: at most the lines in flight (the
//! pipeline's capacity, its chunks and the decoding threads' batches),
//! those finalized since the last commit (one commit interval's worth),
//! and with [`LineAcks`] the lines of the last block read (its
//! [`block_lines`](LineAcks::block_lines) at most).
//! With a sink that writes idempotently (an upsert by key), the result is
//! the same as an uninterrupted run's.
//!
//! Sources that read a table in key order (the SQLite and PostgreSQL
//! sources) are checkpointed the same way by a [`KeyCheckpointer`]: their
//! [`KeyPosition`] is the last key below which every row is finalized,
//! and a resumed run reads the rows after it. A store holds either kind
//! of [`Position`]; one written for another kind of source, or another
//! table, query or key, is refused ([`key_position`], [`file_positions`]).
//!
//! [`FileSource::resume`]: crate::file::FileSource::resume
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use weir_io::checkpoint::{CheckpointStore, Checkpointer, Committer, MemoryCheckpoints};
//! use weir_io::file::{FileSource, FileSourceConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("in.txt");
//! std::fs::write(&path, "a\nb\nc\n").unwrap();
//! let config = || FileSourceConfig::new(path.to_str().unwrap()).format(weir_io::Format::Lines);
//! let store = Arc::new(MemoryCheckpoints::default());
//!
//! // A first run reads every line and commits where it ended.
//! let source = FileSource::open(config()).unwrap();
//! let checkpointer = Checkpointer::new("in", source.files(), &[]).unwrap();
//! let committer = Committer::start(checkpointer.clone(), store.clone(), std::time::Duration::from_secs(1));
//! let acked = source.lines().map(move |line| {
//!     let ack = checkpointer.ack(&line);
//!     weir::Acked::new(line.text, ack)
//! });
//! weir::Pipeline::from_acked(futures::stream::iter(acked)).run().await.unwrap();
//! committer.finish().unwrap();
//!
//! // The next run resumes after the last line: nothing to read again.
//! let mut source = FileSource::open(config()).unwrap();
//! let stored = weir_io::checkpoint::file_positions("in", store.load("in").unwrap()).unwrap();
//! source.resume(&stored).unwrap();
//! assert_eq!(source.lines().count(), 0);
//! # });
//! ```

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir::Ack;

use crate::error::{IoError, IoErrorKind};
use crate::record::Line;

mod key;
mod lines;
pub use key::{key_position, KeyCheckpointer, KeyPosition, KeyValue};
pub use lines::LineAcks;
use lines::{FileState, FileTrack};

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteCheckpoints;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::PostgresCheckpoints;

/// How many bytes from a file's start its fingerprint hashes.
const HEAD: u64 = 4096;

/// What identifies a file's contents well enough to tell that a position
/// in it still means the same line: its device and inode (on Unix), its
/// size when the fingerprint was taken, and a hash of its first bytes (up
/// to 4 KiB).
///
/// # Examples
///
/// ```
/// use weir_io::checkpoint::Fingerprint;
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("log.txt");
/// std::fs::write(&path, "first\nsecond\n").unwrap();
/// let fp = Fingerprint::of(&path).unwrap();
/// assert_eq!(fp.size, 13);
///
/// // Appending keeps it the same file.
/// std::fs::write(&path, "first\nsecond\nthird\n").unwrap();
/// assert!(fp.check(&path, 13).is_ok());
/// // Rewriting its start does not.
/// std::fs::write(&path, "FIRST\nsecond\nthird\n").unwrap();
/// assert!(fp.check(&path, 13).unwrap_err().contains("first bytes"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The device the file is on (0 where the platform has none).
    pub dev: u64,
    /// The file's inode (0 where the platform has none).
    pub inode: u64,
    /// Its size in bytes when the fingerprint was taken.
    pub size: u64,
    /// How many bytes from its start are hashed.
    pub head_len: u64,
    /// A hash (FNV-1a, 64 bits) of those bytes.
    pub head_hash: u64,
}

impl Fingerprint {
    /// The fingerprint of the file at `path` now.
    ///
    /// # Errors
    ///
    /// The I/O error of reading its metadata or its first bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a");
    /// std::fs::write(&path, "").unwrap();
    /// let fp = weir_io::checkpoint::Fingerprint::of(&path).unwrap();
    /// assert_eq!((fp.size, fp.head_len), (0, 0));
    /// ```
    pub fn of(path: &Path) -> std::io::Result<Fingerprint> {
        let meta = std::fs::metadata(path)?;
        let (dev, inode) = ids(&meta);
        let head_len = meta.len().min(HEAD);
        Ok(Fingerprint {
            dev,
            inode,
            size: meta.len(),
            head_len,
            head_hash: head_hash(path, head_len)?,
        })
    }

    /// Whether the file at `path` is still the one this fingerprint was
    /// taken of, with its first `offset` bytes unchanged as far as can be
    /// told: `Err` says what changed (gone, replaced, truncated, its first
    /// bytes rewritten). A file that only grew passes.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::checkpoint::Fingerprint;
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("a");
    /// std::fs::write(&path, "0123456789").unwrap();
    /// let fp = Fingerprint::of(&path).unwrap();
    /// std::fs::write(&path, "01234").unwrap();
    /// assert!(fp.check(&path, 8).unwrap_err().contains("truncated"));
    /// std::fs::remove_file(&path).unwrap();
    /// assert!(fp.check(&path, 8).unwrap_err().contains("gone"));
    /// ```
    pub fn check(&self, path: &Path, offset: u64) -> Result<(), String> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("the file is gone".into()),
            Err(e) => return Err(format!("cannot read its metadata: {e}")),
        };
        let (dev, inode) = ids(&meta);
        if (dev, inode) != (self.dev, self.inode) {
            return Err(format!(
                "the file was replaced or rotated (inode {} on device {} when the checkpoint was taken, {inode} on {dev} now)",
                self.inode, self.dev
            ));
        }
        // Shorter than it was: truncated (for a plain file, also past the
        // offset; a compressed file's offset counts decompressed bytes).
        if meta.len() < self.size || meta.len() < offset.min(self.size) {
            return Err(format!(
                "the file was truncated ({} bytes when the checkpoint was taken, {} now)",
                self.size,
                meta.len()
            ));
        }
        match head_hash(path, self.head_len) {
            Ok(hash) if hash == self.head_hash => Ok(()),
            Ok(_) => Err(format!("its first bytes (up to {}) changed", self.head_len)),
            Err(e) => Err(format!("cannot read it: {e}")),
        }
    }
}

#[cfg(unix)]
fn ids(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn ids(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// FNV-1a over the first `len` bytes of the file (a fingerprint, not a
/// defence against forgery: a few lines of our own rather than a crate).
fn head_hash(path: &Path, len: u64) -> std::io::Result<u64> {
    let mut head = Vec::with_capacity(len as usize);
    File::open(path)?.take(len).read_to_end(&mut head)?;
    if (head.len() as u64) < len {
        return Ok(0);
    }
    Ok(head.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }))
}

/// Where reading one file resumes: the offset below which every line is
/// finalized, the number of lines before it, and the file's fingerprint.
///
/// # Examples
///
/// ```
/// use weir_io::checkpoint::{Fingerprint, FilePosition};
/// let p = FilePosition {
///     file: "logs/a.jsonl".into(),
///     offset: 1234,
///     lines: 17,
///     fingerprint: Fingerprint { dev: 1, inode: 2, size: 5000, head_len: 4096, head_hash: 7 },
/// };
/// let json = serde_json::to_value(&p).unwrap();
/// assert_eq!(json["offset"], 1234);
/// assert_eq!(serde_json::from_value::<FilePosition>(json).unwrap(), p);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// The file's path as the source expanded it.
    pub file: String,
    /// The byte offset (in the decompressed stream) to read from.
    pub offset: u64,
    /// Lines before `offset` (so line numbers go on where they were).
    pub lines: u64,
    /// The file when the position was taken.
    pub fingerprint: Fingerprint,
}

/// Where a source was left: a file's [`FilePosition`] (a file source
/// has one per file it read), or a [`KeyPosition`] (a source reading a
/// table in key order has one).
///
/// # Examples
///
/// ```
/// use weir_io::checkpoint::{KeyPosition, KeyValue, Position};
/// let p = Position::Key(KeyPosition { read: "sqlite table t by id".into(), key: KeyValue::Integer(7), rows: 7 });
/// assert_eq!(p.what(), "sqlite table t by id");
/// assert_eq!(p.to_string(), "key 7 (7 rows)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Position {
    /// A file's position.
    File(FilePosition),
    /// A key position.
    Key(KeyPosition),
}

impl Position {
    /// What the position is in: the file, or what the source reads
    /// ([`KeyPosition::read`]).
    ///
    /// # Examples
    ///
    /// See [`Position`].
    pub fn what(&self) -> &str {
        match self {
            Position::File(p) => &p.file,
            Position::Key(p) => &p.read,
        }
    }
}

/// `byte 12 (line 3)`, `key 'abc' (40 rows)`.
impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::File(p) => write!(f, "byte {} (line {})", p.offset, p.lines),
            Position::Key(p) => write!(f, "key {} ({} rows)", p.key, p.rows),
        }
    }
}

impl From<FilePosition> for Position {
    fn from(p: FilePosition) -> Position {
        Position::File(p)
    }
}

impl From<KeyPosition> for Position {
    fn from(p: KeyPosition) -> Position {
        Position::Key(p)
    }
}

/// The file positions among the positions a store holds for `source`,
/// for a file source ([`FileSource::resume`]). A key position (written by
/// a source that reads a table) is refused with an error of kind
/// [`Store`](IoErrorKind::Store): it means nothing in a file.
///
/// # Errors
///
/// As above.
///
/// # Examples
///
/// ```
/// use weir_io::checkpoint::{file_positions, KeyPosition, KeyValue, Position};
/// assert!(file_positions("logs", vec![]).unwrap().is_empty());
/// let key = Position::Key(KeyPosition { read: "sqlite table t by id".into(), key: KeyValue::Integer(1), rows: 1 });
/// let err = file_positions("logs", vec![key]).unwrap_err();
/// assert!(err.to_string().contains("was written for sqlite table t by id"), "{err}");
/// ```
pub fn file_positions(source: &str, positions: Vec<Position>) -> Result<Vec<FilePosition>, IoError> {
    positions
        .into_iter()
        .map(|p| match p {
            Position::File(p) => Ok(p),
            Position::Key(k) => Err(IoError::new(
                IoErrorKind::Store,
                None,
                format!(
                    "the checkpoint of source `{source}` was written for {}, and this source reads files: \
                     give this source another `name`, or start over without the checkpoint (`--from-start`)",
                    k.read
                ),
            )),
        })
        .collect()
}

/// A position as a store's `list` shows it (`SqliteCheckpoints::list`,
/// `PostgresCheckpoints::list`): its source and
/// when it was committed.
///
/// # Examples
///
/// ```
/// use weir_io::checkpoint::{FilePosition, Fingerprint, Position, StoredPosition};
/// let fingerprint = Fingerprint { dev: 1, inode: 2, size: 3, head_len: 3, head_hash: 4 };
/// let p = StoredPosition {
///     source: "logs".into(),
///     position: Position::File(FilePosition { file: "a.log".into(), offset: 3, lines: 1, fingerprint }),
///     committed_at_ms: 1_700_000_000_000,
/// };
/// assert_eq!(p.position.what(), "a.log");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPosition {
    /// The source's name.
    pub source: String,
    /// The position.
    pub position: Position,
    /// When it was committed, in milliseconds since the Unix epoch.
    pub committed_at_ms: u64,
}

/// One position as a store's table holds it: `kind` is `file` or `key`;
/// `file` is the file or what the source reads; a file's offset, line
/// count and fingerprint (JSON); a key position's row count (in `lines`)
/// and key (JSON, with `fingerprint` JSON `null`).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Debug)]
struct StoredRow {
    kind: String,
    file: String,
    offset: i64,
    lines: i64,
    fingerprint: String,
    key: Option<String>,
}

/// The kinds of [`StoredRow`] (the `kind` column; a store made before
/// key positions existed gets `file` for its rows).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const FILE: &str = "file";
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const KEY: &str = "key";

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl StoredRow {
    fn of(p: &Position) -> StoredRow {
        match p {
            Position::File(p) => StoredRow {
                kind: FILE.into(),
                file: p.file.clone(),
                offset: p.offset as i64,
                lines: p.lines as i64,
                fingerprint: serde_json::to_string(&p.fingerprint).expect("a fingerprint always encodes"),
                key: None,
            },
            Position::Key(p) => StoredRow {
                kind: KEY.into(),
                file: p.read.clone(),
                offset: 0,
                lines: p.rows as i64,
                fingerprint: "null".into(),
                key: Some(serde_json::to_string(&p.key).expect("a key always encodes")),
            },
        }
    }

    /// The position, read back from a store (`store` names it in errors).
    fn position(self, path: Option<&Path>, store: &str) -> Result<Position, IoError> {
        let malformed = |what: &str, e: &dyn std::fmt::Display| {
            IoError::new(
                IoErrorKind::Store,
                path,
                format!("{store}: a malformed {what} for `{}`: {e}", self.file),
            )
        };
        match self.kind.as_str() {
            FILE => {
                let fingerprint: Fingerprint =
                    serde_json::from_str(&self.fingerprint).map_err(|e| malformed("fingerprint", &e))?;
                Ok(Position::File(FilePosition {
                    file: self.file,
                    offset: self.offset as u64,
                    lines: self.lines as u64,
                    fingerprint,
                }))
            }
            KEY => {
                let key = self.key.as_deref().unwrap_or("null");
                let key: KeyValue = serde_json::from_str(key).map_err(|e| malformed("key", &e))?;
                Ok(Position::Key(KeyPosition {
                    read: self.file,
                    key,
                    rows: self.lines as u64,
                }))
            }
            other => Err(malformed(
                "position",
                &format!("unknown kind `{other}` (written by a newer weir?)"),
            )),
        }
    }
}

/// Where the positions of sources are kept between runs, by source name.
/// The SQLite store (`SqliteCheckpoints`, feature `sqlite`) is the
/// embedded default; the PostgreSQL store (`PostgresCheckpoints`, feature
/// `postgres`) is for several machines sharing one store;
/// [`MemoryCheckpoints`] is for tests.
///
/// # Examples
///
/// ```
/// use weir_io::checkpoint::{CheckpointStore, MemoryCheckpoints};
/// let store = MemoryCheckpoints::default();
/// assert!(store.load("logs").unwrap().is_empty());
/// store.commit("logs", &[]).unwrap();
/// ```
pub trait CheckpointStore: Send + Sync + 'static {
    /// The positions last committed for `source` (none for a new source).
    ///
    /// # Errors
    ///
    /// The store's error ([`IoErrorKind::Store`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::checkpoint::{CheckpointStore, MemoryCheckpoints};
    /// assert!(MemoryCheckpoints::default().load("x").unwrap().is_empty());
    /// ```
    fn load(&self, source: &str) -> Result<Vec<Position>, IoError>;

    /// Replaces `source`'s positions with `positions`, atomically: after a
    /// crash, either the old ones or the new ones are there.
    ///
    /// # Errors
    ///
    /// The store's error ([`IoErrorKind::Store`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::checkpoint::{CheckpointStore, MemoryCheckpoints};
    /// let store = MemoryCheckpoints::default();
    /// store.commit("x", &[]).unwrap();
    /// assert!(store.load("x").unwrap().is_empty());
    /// ```
    fn commit(&self, source: &str, positions: &[Position]) -> Result<(), IoError>;
}

/// Positions kept in memory: for tests and for library users who keep
/// them elsewhere themselves.
///
/// # Examples
///
/// ```
/// use weir_io::checkpoint::{CheckpointStore, MemoryCheckpoints};
/// let store = MemoryCheckpoints::default();
/// assert_eq!(store.commits(), 0);
/// store.commit("x", &[]).unwrap();
/// assert_eq!(store.commits(), 1);
/// ```
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    state: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    /// Each source's positions.
    sources: Vec<(String, Vec<Position>)>,
    commits: u64,
}

impl MemoryCheckpoints {
    /// How many commits were made.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(weir_io::checkpoint::MemoryCheckpoints::default().commits(), 0);
    /// ```
    pub fn commits(&self) -> u64 {
        self.state.lock().expect("checkpoint store lock").commits
    }
}

impl CheckpointStore for MemoryCheckpoints {
    fn load(&self, source: &str) -> Result<Vec<Position>, IoError> {
        let state = self.state.lock().expect("checkpoint store lock");
        Ok(state
            .sources
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, p)| p.clone())
            .unwrap_or_default())
    }

    fn commit(&self, source: &str, positions: &[Position]) -> Result<(), IoError> {
        let mut state = self.state.lock().expect("checkpoint store lock");
        match state.sources.iter_mut().find(|(s, _)| s == source) {
            Some(slot) => slot.1 = positions.to_vec(),
            None => state.sources.push((source.to_owned(), positions.to_vec())),
        }
        state.commits += 1;
        Ok(())
    }
}

/// What a [`Committer`] commits: the positions of one source, as they
/// stand now. [`Checkpointer`] (a file source's files) and
/// [`KeyCheckpointer`] (a source reading a table in key order) are the
/// two kinds; the trait is sealed.
///
/// # Examples
///
/// ```
/// use weir_io::checkpoint::{KeyCheckpointer, Positions};
/// let c = KeyCheckpointer::new("in", "sqlite table t by id", None);
/// assert_eq!(c.name(), "in");
/// assert!(c.current().is_empty());
/// ```
pub trait Positions: sealed::Sealed + Send + Sync + 'static {
    /// The source's name (its positions' key in a store).
    ///
    /// # Examples
    ///
    /// See [`Positions`].
    fn name(&self) -> &str;

    /// The positions now.
    ///
    /// # Examples
    ///
    /// See [`Positions`].
    fn current(&self) -> Vec<Position>;
}

mod sealed {
    pub trait Sealed {}
}

impl sealed::Sealed for Checkpointer {}

impl Positions for Checkpointer {
    fn name(&self) -> &str {
        self.source()
    }

    fn current(&self) -> Vec<Position> {
        self.positions().into_iter().map(Position::File).collect()
    }
}

/// Tracks, per file of one source, the position below which every line
/// is finalized: [`ack`](Checkpointer::ack) gives each line read its
/// [`Ack`], and [`positions`](Checkpointer::positions) reads where each
/// file stands. Cheap to clone (shared).
///
/// # Examples
///
/// ```
/// use weir::Status;
/// use weir_io::checkpoint::Checkpointer;
/// use weir_io::{Line, Origin};
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("a.txt");
/// std::fs::write(&path, "x\ny\n").unwrap();
/// let file = path.to_str().unwrap();
/// let c = Checkpointer::new("a", &[path.clone()], &[]).unwrap();
///
/// let mut first = Line::new("x", Origin::new(file, 1, 0));
/// first.end = 2;
/// let mut second = Line::new("y", Origin::new(file, 2, 2));
/// second.end = 4;
/// let (a, b) = (c.ack(&first), c.ack(&second));
/// drop(b); // never finalized: aborted
/// drop(a); // likewise
/// assert_eq!(c.positions()[0].offset, 0);
/// ```
#[derive(Clone)]
pub struct Checkpointer {
    inner: Arc<Inner>,
}

struct Inner {
    source: String,
    files: Vec<Arc<FileTrack>>,
    /// The file of the last line acked: lines come file after file.
    current: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("source", &self.inner.source)
            .field("files", &self.inner.files.len())
            .finish()
    }
}

impl Checkpointer {
    /// A checkpointer for source `source` reading `files` (in order),
    /// which resumed from `resumed` (the positions it was given, if any).
    ///
    /// # Errors
    ///
    /// An [`IoError`] if a file's fingerprint cannot be taken.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a");
    /// std::fs::write(&path, "x\n").unwrap();
    /// let c = weir_io::checkpoint::Checkpointer::new("a", &[path], &[]).unwrap();
    /// assert!(c.positions().is_empty()); // nothing read yet
    /// ```
    pub fn new(source: &str, files: &[PathBuf], resumed: &[FilePosition]) -> Result<Checkpointer, IoError> {
        let mut out = Vec::with_capacity(files.len());
        for path in files {
            let name = path.to_string_lossy().into_owned();
            let fingerprint = Fingerprint::of(path)
                .map_err(|e| IoError::io("cannot take the fingerprint of", path, e, IoErrorKind::Read))?;
            let at = resumed.iter().find(|p| p.file == name);
            out.push(Arc::new(FileTrack {
                name,
                state: Mutex::new(FileState::new(fingerprint, at.map(|p| (p.offset, p.lines)))),
            }));
        }
        Ok(Checkpointer {
            inner: Arc::new(Inner {
                source: source.to_owned(),
                files: out,
                current: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// The source's name (its positions' key in a store).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(weir_io::checkpoint::Checkpointer::new("logs", &[], &[]).unwrap().source(), "logs");
    /// ```
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The acknowledgement of `line` (read in order from one of the
    /// files): finalizing it moves its file's position past the line once
    /// every line before it is finalized too. A line of a file this
    /// checkpointer does not know gets an ack that tracks nothing.
    ///
    /// # Examples
    ///
    /// See [`Checkpointer`].
    pub fn ack(&self, line: &Line) -> Ack {
        self.ack_span(&line.origin.file, line.origin.line, line.origin.offset, line.end)
    }

    /// [`ack`](Checkpointer::ack) for a line known by its parts: its file,
    /// its number, where it starts and where the next one starts (for a
    /// line already handed on, as to a decoding thread).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a");
    /// std::fs::write(&path, "x\n").unwrap();
    /// let c = weir_io::checkpoint::Checkpointer::new("a", &[path.clone()], &[]).unwrap();
    /// let ack = c.ack_span(path.to_str().unwrap(), 1, 0, 2);
    /// assert_eq!(ack.id(), 0);
    /// drop(ack);
    /// assert_eq!(c.positions()[0].offset, 0); // aborted: read again next time
    /// ```
    pub fn ack_span(&self, file: &str, line: u64, begin: u64, end: u64) -> Ack {
        match self.file(file) {
            Some(at) => lines::single(&self.inner.files[at], line, begin, end),
            None => Ack::new(begin, Arc::new(|_, _| {})),
        }
    }

    /// A handle that acknowledges lines read in order in blocks of
    /// consecutive lines ([`LineAcks`]): what a source that reads many
    /// lines uses instead of [`ack`](Checkpointer::ack), whose every line
    /// takes its file's lock twice.
    ///
    /// # Examples
    ///
    /// See [`LineAcks`].
    pub fn line_acks(&self) -> LineAcks {
        LineAcks::new(self.clone())
    }

    /// Which of the files `file` is.
    fn file(&self, file: &str) -> Option<usize> {
        use std::sync::atomic::Ordering::Relaxed;
        let files = &self.inner.files;
        let current = self.inner.current.load(Relaxed);
        let at = match files.get(current) {
            Some(f) if f.name == file => Some(current),
            _ => files.iter().position(|f| f.name == file),
        }?;
        self.inner.current.store(at, Relaxed);
        Some(at)
    }

    /// Each file's position now (files not read from yet and not resumed
    /// are left out).
    ///
    /// # Examples
    ///
    /// See [`Checkpointer`].
    pub fn positions(&self) -> Vec<FilePosition> {
        self.inner
            .files
            .iter()
            .filter_map(|f| {
                let state = f.state.lock().expect("checkpoint lock");
                if !state.touched {
                    return None;
                }
                let (offset, lines) = state.position();
                Some(FilePosition {
                    file: f.name.clone(),
                    offset,
                    lines,
                    fingerprint: state.fingerprint.clone(),
                })
            })
            .collect()
    }
}

/// What a [`CheckpointCommitted`](weir::EventKind::CheckpointCommitted)
/// event of a [`Committer`] holds, as JSON: the source and each file's
/// position, or its key position (`keys`, left out when empty, as
/// `files` is then).
///
/// # Examples
///
/// ```
/// let c: weir_io::checkpoint::Committed =
///     serde_json::from_str(r#"{"source":"in","files":[{"file":"a.txt","offset":4,"lines":2}]}"#).unwrap();
/// assert_eq!((c.files[0].offset, c.files[0].lines), (4, 2));
/// assert!(c.keys.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The source's name.
    pub source: String,
    /// Each file's position.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<CommittedFile>,
    /// The key position of a source reading a table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyPosition>,
}

/// One file's position in a [`Committed`].
///
/// # Examples
///
/// See [`Committed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedFile {
    /// The file.
    pub file: String,
    /// The byte offset reading resumes at.
    pub offset: u64,
    /// Lines before it.
    pub lines: u64,
}

impl Committed {
    fn json(source: &str, positions: &[Position]) -> String {
        let mut committed = Committed {
            source: source.to_owned(),
            files: Vec::new(),
            keys: Vec::new(),
        };
        for p in positions {
            match p {
                Position::File(p) => committed.files.push(CommittedFile {
                    file: p.file.clone(),
                    offset: p.offset,
                    lines: p.lines,
                }),
                Position::Key(p) => committed.keys.push(p.clone()),
            }
        }
        serde_json::to_string(&committed).expect("a position always encodes")
    }
}

/// Commits a source's [`Positions`] (a [`Checkpointer`]'s or a
/// [`KeyCheckpointer`]'s) to a [`CheckpointStore`] every interval (when
/// they moved), on a thread of its own, and once more at
/// [`finish`](Committer::finish).
///
/// # Examples
///
/// See the [module docs](self).
#[derive(Debug)]
pub struct Committer {
    stop: mpsc::Sender<()>,
    thread: Option<thread::JoinHandle<Result<u64, IoError>>>,
    checkpointer: Arc<dyn Positions>,
    store: Arc<dyn CheckpointStore>,
}

impl std::fmt::Debug for dyn Positions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Positions({})", self.name())
    }
}

impl std::fmt::Debug for dyn CheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointStore")
    }
}

impl Committer {
    /// Starts committing `checkpointer`'s positions to `store` every
    /// `interval`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use weir_io::checkpoint::{Checkpointer, Committer, MemoryCheckpoints};
    /// let store = Arc::new(MemoryCheckpoints::default());
    /// let c = Checkpointer::new("x", &[], &[]).unwrap();
    /// let committer = Committer::start(c, store.clone(), Duration::from_millis(10));
    /// assert_eq!(committer.finish().unwrap(), 1); // the final commit
    /// assert_eq!(store.commits(), 1);
    /// ```
    pub fn start(
        checkpointer: impl Positions,
        store: Arc<dyn CheckpointStore>,
        interval: Duration,
    ) -> Committer {
        Committer::spawn(Arc::new(checkpointer), store, interval, None)
    }

    /// [`start`](Committer::start), and each commit is also a
    /// [`CheckpointCommitted`](weir::EventKind::CheckpointCommitted) event
    /// of the run whose [`Context`](weir::Context) `context` is (given to
    /// [`PipelineBuilder::context`](weir::PipelineBuilder::context)): its
    /// position is the JSON of [`Committed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use weir::{EventKind, PipelineBuilder};
    /// use weir_io::checkpoint::{Checkpointer, Committed, Committer, MemoryCheckpoints};
    /// use weir_io::file::{FileSource, FileSourceConfig};
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("in.txt");
    /// std::fs::write(&path, "a\nb\n").unwrap();
    /// let source = FileSource::open(FileSourceConfig::new(path.to_str().unwrap()).format(weir_io::Format::Lines)).unwrap();
    /// let checkpointer = Checkpointer::new("in", source.files(), &[]).unwrap();
    /// let context = weir::Context::new("job");
    /// let store = Arc::new(MemoryCheckpoints::default());
    /// let committer = Committer::start_in(checkpointer.clone(), store, Duration::from_millis(5), &context);
    /// let lines = source.lines().map(move |l| { let ack = checkpointer.ack(&l); weir::Acked::new(l.text, ack) });
    /// let slow = futures::stream::iter(lines).then(|l| async { tokio::time::sleep(Duration::from_millis(20)).await; l });
    /// let events: Vec<_> = PipelineBuilder::new().context(context).from_acked(slow).events().collect().await;
    /// committer.finish().unwrap();
    /// let positions: Vec<Committed> = events.iter().filter_map(|e| match &e.kind {
    ///     EventKind::CheckpointCommitted { position, .. } => serde_json::from_str(position).ok(),
    ///     _ => None,
    /// }).collect();
    /// assert!(!positions.is_empty());
    /// assert!(positions.iter().all(|p| p.source == "in"));
    /// # });
    /// ```
    pub fn start_in(
        checkpointer: impl Positions,
        store: Arc<dyn CheckpointStore>,
        interval: Duration,
        context: &weir::Context,
    ) -> Committer {
        Committer::spawn(Arc::new(checkpointer), store, interval, Some(context.clone()))
    }

    fn spawn(
        checkpointer: Arc<dyn Positions>,
        store: Arc<dyn CheckpointStore>,
        interval: Duration,
        context: Option<weir::Context>,
    ) -> Committer {
        let (stop, stopped) = mpsc::channel::<()>();
        let (c, s) = (checkpointer.clone(), store.clone());
        let thread = thread::Builder::new()
            .name("weir-io-checkpoint".to_owned())
            .spawn(move || {
                let mut last = c.current();
                let mut commits = 0;
                loop {
                    match stopped.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return Ok(commits),
                    }
                    let now = c.current();
                    if now != last {
                        s.commit(c.name(), &now)?;
                        commits += 1;
                        if let Some(context) = &context {
                            context.emit_checkpoint(Committed::json(c.name(), &now));
                        }
                        last = now;
                    }
                }
            })
            .ok();
        Committer {
            stop,
            thread,
            checkpointer,
            store,
        }
    }

    /// Stops the periodic commits and commits the positions once more
    /// (call it when the run has ended: every line it read is finalized
    /// then). Returns how many commits were made in all.
    ///
    /// # Errors
    ///
    /// The store's error, from the last commit or an earlier one.
    ///
    /// # Examples
    ///
    /// See [`Committer::start`].
    pub fn finish(mut self) -> Result<u64, IoError> {
        let _ = self.stop.send(());
        let periodic = match self.thread.take().map(thread::JoinHandle::join) {
            Some(Ok(result)) => result?,
            Some(Err(_)) => {
                return Err(IoError::new(
                    IoErrorKind::Store,
                    None,
                    "the checkpoint thread panicked",
                ));
            }
            None => 0,
        };
        self.store
            .commit(self.checkpointer.name(), &self.checkpointer.current())?;
        Ok(periodic + 1)
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Origin;

    use weir::{Acker, Status};

    /// Finalizes the line at `begin` as the runtime would.
    fn finish((ack, block): (Ack, Arc<lines::Block>), begin: u64, status: Status) {
        block.finalize(begin, status);
        // The runtime's one finalization: the drop's `Aborted` is not final.
        std::mem::forget(ack);
    }

    fn line(file: &str, n: u64, begin: u64, end: u64) -> Line {
        let mut l = Line::new("x", Origin::new(file, n, begin));
        l.end = end;
        l
    }

    #[test]
    fn a_position_waits_for_the_oldest_unfinished_line_and_counts_the_lines_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        std::fs::write(&path, "0123456789").unwrap();
        let file = path.to_str().unwrap();
        let c = Checkpointer::new("s", std::slice::from_ref(&path), &[]).unwrap();
        let a = lines::ack_with_block(&c, &line(file, 1, 0, 3));
        let b = lines::ack_with_block(&c, &line(file, 3, 4, 7)); // line 2 was blank, skipped
        let d = lines::ack_with_block(&c, &line(file, 4, 7, 10));
        let at = |c: &Checkpointer| {
            let p = &c.positions()[0];
            (p.offset, p.lines)
        };
        assert_eq!(at(&c), (0, 0));
        drop(b); // aborted: never moves the position
        assert_eq!(at(&c), (0, 0));
        finish(a, 0, Status::Delivered);
        assert_eq!(at(&c), (4, 2));
        finish(d, 7, Status::Dropped);
        assert_eq!(at(&c), (4, 2));
    }

    #[test]
    fn a_resumed_file_starts_at_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        std::fs::write(&path, "0123456789").unwrap();
        let file = path.to_str().unwrap();
        let resumed = FilePosition {
            file: file.to_owned(),
            offset: 4,
            lines: 2,
            fingerprint: Fingerprint::of(&path).unwrap(),
        };
        let c = Checkpointer::new("s", std::slice::from_ref(&path), &[resumed]).unwrap();
        assert_eq!((c.positions()[0].offset, c.positions()[0].lines), (4, 2));
        let a = lines::ack_with_block(&c, &line(file, 3, 4, 10));
        finish(a, 4, Status::Delivered);
        assert_eq!((c.positions()[0].offset, c.positions()[0].lines), (10, 3));
    }

    #[test]
    fn a_fingerprint_tells_replaced_and_truncated_files_from_grown_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        std::fs::write(&path, "line one\nline two\n").unwrap();
        let fp = Fingerprint::of(&path).unwrap();
        std::fs::write(&path, "line one\nline two\nline three\n").unwrap();
        assert_eq!(fp.check(&path, 18), Ok(()));
        std::fs::write(&path, "line one\n").unwrap();
        assert!(fp.check(&path, 18).unwrap_err().contains("truncated"));
        // Replaced: a new file renamed over the old one.
        let new = dir.path().join("b");
        std::fs::write(&new, "line one\nline two\n").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert!(fp.check(&path, 18).unwrap_err().contains("replaced"));
    }
}
