//! [`Compression`]: gzip and zstd, read and written, chosen by extension or
//! explicitly.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use crate::error::{IoError, IoErrorKind};

/// How a file is (de)compressed.
///
/// # Examples
///
/// ```
/// use std::path::Path;
/// use weir_io::Compression;
///
/// assert_eq!(Compression::Auto.for_path(Path::new("logs/a.jsonl.gz")), Compression::Gzip);
/// assert_eq!(Compression::Auto.for_path(Path::new("a.csv.zst")), Compression::Zstd);
/// assert_eq!(Compression::Auto.for_path(Path::new("a.csv")), Compression::None);
/// assert_eq!(Compression::Gzip.for_path(Path::new("a.csv")), Compression::Gzip);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// By the file's extension: `.gz` is gzip, `.zst` (or `.zstd`) is
    /// zstd, anything else is not compressed. The default.
    #[default]
    Auto,
    /// Not compressed.
    None,
    /// gzip (needs the `gzip` feature). Reading accepts concatenated
    /// members, as `gzip -c a b` makes.
    Gzip,
    /// zstd (needs the `zstd` feature).
    Zstd,
}

impl Compression {
    /// The compression for `path`: [`Auto`](Compression::Auto) resolved by
    /// its extension, any other setting as it is.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::Compression;
    /// assert_eq!(Compression::None.for_path("x.gz".as_ref()), Compression::None);
    /// ```
    pub fn for_path(self, path: &Path) -> Compression {
        if self != Compression::Auto {
            return self;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Compression::Gzip,
            Some("zst" | "zstd") => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// Fails if this build cannot handle `self` (resolved) for `path`.
    pub(crate) fn check(self, path: &Path) -> Result<Compression, IoError> {
        let resolved = self.for_path(path);
        let missing = match resolved {
            Compression::Gzip if !cfg!(feature = "gzip") => "gzip",
            Compression::Zstd if !cfg!(feature = "zstd") => "zstd",
            _ => return Ok(resolved),
        };
        Err(IoError::new(
            IoErrorKind::Unsupported,
            Some(path),
            format!(
                "`{}` is {missing}-compressed, but this build of weir-io has no `{missing}` feature",
                path.display()
            ),
        ))
    }
}

/// `input` decompressed as `compression` (already resolved and checked).
pub(crate) fn decoder<R: Read + Send + 'static>(
    compression: Compression,
    input: R,
) -> io::Result<Box<dyn Read + Send>> {
    match compression {
        #[cfg(feature = "gzip")]
        Compression::Gzip => Ok(Box::new(flate2::read::MultiGzDecoder::new(input))),
        #[cfg(feature = "zstd")]
        Compression::Zstd => Ok(Box::new(zstd::stream::read::Decoder::new(input)?)),
        _ => Ok(Box::new(input)),
    }
}

/// A file being written, through its compressor.
pub(crate) enum Encoder {
    Plain(BufWriter<File>),
    #[cfg(feature = "gzip")]
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    #[cfg(feature = "zstd")]
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
}

/// The output buffer of a file sink's part.
const WRITE_BUFFER: usize = 256 * 1024;

impl Encoder {
    /// Writes `file` compressed as `compression` (resolved and checked).
    pub(crate) fn new(compression: Compression, file: File) -> io::Result<Encoder> {
        let out = BufWriter::with_capacity(WRITE_BUFFER, file);
        match compression {
            #[cfg(feature = "gzip")]
            Compression::Gzip => Ok(Encoder::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::default(),
            ))),
            #[cfg(feature = "zstd")]
            Compression::Zstd => Ok(Encoder::Zstd(zstd::stream::write::Encoder::new(out, 3)?)),
            _ => Ok(Encoder::Plain(out)),
        }
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.write_all(bytes),
            #[cfg(feature = "gzip")]
            Encoder::Gzip(w) => w.write_all(bytes),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(w) => w.write_all(bytes),
        }
    }

    /// Pushes everything written so far to the OS (a compressor emits a
    /// sync point: the data is readable up to here).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            #[cfg(feature = "gzip")]
            Encoder::Gzip(w) => w.flush(),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(w) => w.flush(),
        }
    }

    /// Ends the compressed stream, flushes, and syncs the file to disk.
    // Without the compression features only `Plain` is left.
    #[allow(clippy::infallible_destructuring_match)]
    pub(crate) fn finish(self) -> io::Result<()> {
        let out = match self {
            Encoder::Plain(w) => w,
            #[cfg(feature = "gzip")]
            Encoder::Gzip(w) => w.finish()?,
            #[cfg(feature = "zstd")]
            Encoder::Zstd(w) => w.finish()?,
        };
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()
    }
}
