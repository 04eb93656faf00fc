//! Files as a source: a path or a glob, read line by line (or CSV record
//! by record), gzip and zstd decompressed on the fly. See [`FileSource`].
//!
//! Sinks that write files are in [`sink`](crate::sink).

mod source;

pub use self::source::{FileSource, FileSourceConfig, DEFAULT_MAX_LINE_BYTES};
pub use crate::compression::Compression;
pub use crate::read::{LineStream, Lines, ReadProgress, Records};
