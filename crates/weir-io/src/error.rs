//! [`IoError`]: what went wrong opening, reading or writing a source or a
//! sink, and on which path.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What kind of I/O failure an [`IoError`] is.
///
/// # Examples
///
/// ```
/// use weir_io::file::{FileSource, FileSourceConfig};
/// use weir_io::IoErrorKind;
///
/// let err = FileSource::open(FileSourceConfig::new("no/such/file.jsonl")).unwrap_err();
/// assert_eq!(err.kind(), IoErrorKind::NotFound);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoErrorKind {
    /// The file or directory does not exist.
    NotFound,
    /// A glob pattern matched no file.
    NoMatch,
    /// The glob pattern is malformed.
    BadPattern,
    /// A directory was given where a file was expected (or the other way
    /// round).
    IsDirectory,
    /// The process may not read or write the path.
    PermissionDenied,
    /// Reading failed (an I/O error, a corrupt compressed stream).
    Read,
    /// Writing failed.
    Write,
    /// The reader of the output went away (`EPIPE`): e.g. `weir … | head`.
    BrokenPipe,
    /// An item could not be encoded in the output format (e.g. a number
    /// as a CSV row).
    Encode,
    /// Something this build cannot do (e.g. gzip without the `gzip`
    /// feature).
    Unsupported,
    /// A file changed since a checkpoint was taken of it (replaced,
    /// rotated or truncated): resuming would read from the wrong place.
    Changed,
    /// A store (a database) failed: opening, reading or committing.
    Store,
    /// A setting cannot be used (e.g. a table name that is not a valid
    /// SQL identifier, a key that is not one of the columns).
    InvalidConfig,
    /// The destination refused an item: a database constraint (`UNIQUE`,
    /// `NOT NULL`, `CHECK`, a foreign key) failed for it.
    Rejected,
}

/// An I/O failure of a source or a sink: what failed, on which path, and
/// the underlying [`std::io::Error`] as its [`source`](std::error::Error::source).
///
/// Its message names the path: `cannot open `data/x.jsonl`: No such file or
/// directory (os error 2)`. Cloneable (the underlying error is shared), so
/// a reader can keep it for a caller to pick up after the run.
///
/// # Examples
///
/// ```
/// use weir_io::file::{FileSource, FileSourceConfig};
///
/// let err = FileSource::open(FileSourceConfig::new("missing/*.csv")).unwrap_err();
/// assert_eq!(err.path().unwrap().to_str(), Some("missing/*.csv"));
/// assert!(err.to_string().contains("missing/*.csv"), "{err}");
/// ```
#[derive(Clone, Debug)]
pub struct IoError {
    kind: IoErrorKind,
    path: Option<PathBuf>,
    message: String,
    source: Option<Arc<std::io::Error>>,
}

impl IoError {
    /// An error of `kind` about `path`, with a message that should name it.
    pub(crate) fn new(kind: IoErrorKind, path: Option<&Path>, message: impl Into<String>) -> IoError {
        IoError {
            kind,
            path: path.map(Path::to_path_buf),
            message: message.into(),
            source: None,
        }
    }

    /// `what` (e.g. "cannot open") failed on `path` with `error`; the kind
    /// is derived from the error (`fallback` for unclassified ones).
    pub(crate) fn io(what: &str, path: &Path, error: std::io::Error, fallback: IoErrorKind) -> IoError {
        let kind = classify(&error, fallback);
        IoError {
            kind,
            path: Some(path.to_path_buf()),
            message: format!("{what} `{}`: {error}", path.display()),
            source: Some(Arc::new(error)),
        }
    }

    /// Reading `path` failed with `error` after `lines` lines.
    pub(crate) fn read(path: &Path, lines: u64, error: std::io::Error) -> IoError {
        let kind = classify(&error, IoErrorKind::Read);
        IoError {
            kind,
            path: Some(path.to_path_buf()),
            message: format!("cannot read `{}` after line {lines}: {error}", path.display()),
            source: Some(Arc::new(error)),
        }
    }

    /// What kind of failure this is.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::file::{FileSource, FileSourceConfig};
    /// use weir_io::IoErrorKind;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let err = FileSource::open(FileSourceConfig::new(dir.path().to_str().unwrap())).unwrap_err();
    /// assert_eq!(err.kind(), IoErrorKind::IsDirectory);
    /// ```
    pub fn kind(&self) -> IoErrorKind {
        self.kind
    }

    /// The path (or pattern) concerned, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::file::{FileSource, FileSourceConfig};
    ///
    /// let err = FileSource::open(FileSourceConfig::new("nope.txt")).unwrap_err();
    /// assert_eq!(err.path(), Some(std::path::Path::new("nope.txt")));
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether the reader of the output went away (`EPIPE`), as when the
    /// output is piped into `head`: a reason to stop, not a failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::file::{FileSource, FileSourceConfig};
    ///
    /// let err = FileSource::open(FileSourceConfig::new("nope.txt")).unwrap_err();
    /// assert!(!err.is_broken_pipe());
    /// ```
    pub fn is_broken_pipe(&self) -> bool {
        self.kind == IoErrorKind::BrokenPipe
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

fn classify(error: &std::io::Error, fallback: IoErrorKind) -> IoErrorKind {
    use std::io::ErrorKind as K;
    match error.kind() {
        K::NotFound => IoErrorKind::NotFound,
        K::PermissionDenied => IoErrorKind::PermissionDenied,
        K::IsADirectory | K::NotADirectory => IoErrorKind::IsDirectory,
        K::BrokenPipe => IoErrorKind::BrokenPipe,
        K::Unsupported => IoErrorKind::Unsupported,
        _ => fallback,
    }
}

/// The message every broken-pipe [`IoError`] contains, so that the
/// condition can be recognised even after an error was copied without its
/// source (the engine keeps only the message of a failed flush's cause
/// for all but one of the items it failed).
pub const BROKEN_PIPE: &str = "broken pipe";

/// Whether `error`, or any error in its [`source`](std::error::Error::source)
/// chain, is a broken pipe: an [`IoError`] of kind
/// [`BrokenPipe`](IoErrorKind::BrokenPipe), a [`std::io::Error`] of kind
/// `BrokenPipe`, or a copied cause whose message contains
/// [`BROKEN_PIPE`]. For a CLI that treats `weir … | head` as success.
///
/// # Examples
///
/// ```
/// let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
/// assert!(weir_io::is_broken_pipe(&io));
/// let other = std::io::Error::other("disk full");
/// assert!(!weir_io::is_broken_pipe(&other));
/// ```
pub fn is_broken_pipe(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<IoError>() {
            if io.is_broken_pipe() {
                return true;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        if e.to_string().contains(BROKEN_PIPE) {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classified_and_name_the_path() {
        let e = IoError::io(
            "cannot open",
            Path::new("a/b.txt"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            IoErrorKind::Read,
        );
        assert_eq!(e.kind(), IoErrorKind::PermissionDenied);
        assert!(e.to_string().starts_with("cannot open `a/b.txt`: "), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn a_broken_pipe_is_found_down_the_cause_chain_and_by_message() {
        #[derive(Debug)]
        struct Wrapper(IoError);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("sink failed")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let pipe = IoError::new(IoErrorKind::BrokenPipe, None, format!("stdout: {BROKEN_PIPE}"));
        assert!(is_broken_pipe(&Wrapper(pipe)));
        let copied = std::io::Error::other(format!("stdout: {BROKEN_PIPE}"));
        assert!(is_broken_pipe(&copied));
        let other = IoError::new(IoErrorKind::Write, None, "disk full");
        assert!(!is_broken_pipe(&Wrapper(other)));
    }
}
