use std::fs;
use std::path::{Path, PathBuf};

use weir::stage::Streamed;

use crate::checkpoint::FilePosition;
use crate::compression::Compression;
use crate::error::{IoError, IoErrorKind};
use crate::format::{Decoder, Format};
use crate::read::{Input, LineStream, Lines, ReadProgress, Records, Resume};

/// The default [`max_line_bytes`](FileSourceConfig::max_line_bytes): 16 MiB.
pub const DEFAULT_MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// What a [`FileSource`] reads, and how.
///
/// | setting | default |
/// |---|---|
/// | [`path`](Self::path) | none: give one to [`new`](Self::new) |
/// | [`format`](Self::format) | [`Format::JsonLines`] |
/// | [`compression`](Self::compression) | [`Compression::Auto`] (by extension) |
/// | [`max_line_bytes`](Self::max_line_bytes) | 16 MiB ([`DEFAULT_MAX_LINE_BYTES`]) |
///
/// # Examples
///
/// ```
/// use weir_io::file::FileSourceConfig;
/// use weir_io::{Compression, Format};
///
/// let config = FileSourceConfig::new("logs/*.jsonl.gz").format(Format::JsonLines).max_line_bytes(1 << 20);
/// assert_eq!(config.compression, Compression::Auto);
/// assert_eq!(config.max_line_bytes, 1 << 20);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FileSourceConfig {
    /// A file's path, or a glob pattern (`data/*.jsonl`, `logs/**/*.gz`)
    /// whose matches are read in sorted order.
    pub path: String,
    /// How lines are decoded (and, for CSV, read). By default, JSON lines.
    pub format: Format,
    /// How files are decompressed. By default, by extension (`.gz`,
    /// `.zst`).
    pub compression: Compression,
    /// The longest line accepted, in bytes; a longer one is yielded with a
    /// [`TooLong`](crate::Fault::TooLong) fault and only its start is
    /// kept (the rest is discarded while reading, so memory stays
    /// bounded). For CSV the limit is checked once the record is read. By
    /// default, 16 MiB.
    pub max_line_bytes: u64,
}

impl Default for FileSourceConfig {
    fn default() -> FileSourceConfig {
        FileSourceConfig {
            path: String::new(),
            format: Format::JsonLines,
            compression: Compression::Auto,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

impl FileSourceConfig {
    /// Reads `path` (a path or a glob), with the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = weir_io::file::FileSourceConfig::new("a.jsonl");
    /// assert_eq!(config.path, "a.jsonl");
    /// assert_eq!(config.max_line_bytes, weir_io::file::DEFAULT_MAX_LINE_BYTES);
    /// ```
    pub fn new(path: impl Into<String>) -> FileSourceConfig {
        FileSourceConfig {
            path: path.into(),
            ..FileSourceConfig::default()
        }
    }

    /// Sets the format. By default, JSON lines.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{file::FileSourceConfig, Format};
    /// assert_eq!(FileSourceConfig::new("a.txt").format(Format::Lines).format, Format::Lines);
    /// ```
    pub fn format(mut self, format: Format) -> FileSourceConfig {
        self.format = format;
        self
    }

    /// Sets the compression. By default, [`Compression::Auto`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{file::FileSourceConfig, Compression};
    /// let config = FileSourceConfig::new("a.data").compression(Compression::Gzip);
    /// assert_eq!(config.compression, Compression::Gzip);
    /// ```
    pub fn compression(mut self, compression: Compression) -> FileSourceConfig {
        self.compression = compression;
        self
    }

    /// Sets the longest line accepted. By default, 16 MiB.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = weir_io::file::FileSourceConfig::new("a.jsonl").max_line_bytes(100);
    /// assert_eq!(config.max_line_bytes, 100);
    /// ```
    pub fn max_line_bytes(mut self, max: u64) -> FileSourceConfig {
        self.max_line_bytes = max;
        self
    }
}

/// Files read line by line (or CSV record by record), in order: made by
/// [`FileSource::open`], read by [`lines`](FileSource::lines) (raw
/// [`Line`](crate::Line)s, to decode in a pipeline stage so that bad lines
/// go through its error policy) or [`records`](FileSource::records)
/// (decoded).
///
/// # Examples
///
/// ```
/// use weir_io::file::{FileSource, FileSourceConfig};
///
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("1.jsonl"), "{\"n\":1}\n").unwrap();
/// std::fs::write(dir.path().join("2.jsonl"), "{\"n\":2}\n").unwrap();
/// let pattern = format!("{}/*.jsonl", dir.path().display());
/// let source = FileSource::open(FileSourceConfig::new(pattern)).unwrap();
/// assert_eq!(source.files().len(), 2);
/// let numbers: Vec<i64> = source.records().map(|r| r.unwrap().value["n"].as_i64().unwrap()).collect();
/// assert_eq!(numbers, [1, 2]);
/// ```
#[derive(Debug)]
pub struct FileSource {
    config: FileSourceConfig,
    files: Vec<PathBuf>,
    compressions: Vec<Compression>,
    /// Where each file's reading starts.
    starts: Vec<Resume>,
    progress: ReadProgress,
}

impl FileSource {
    /// Expands the path or glob now (matches in sorted order; directories
    /// that a glob matches are left out) and checks that each file is a
    /// readable regular file that this build can decompress.
    ///
    /// Fails, naming the path, on a missing file, a glob that matches no
    /// file, a malformed glob, a directory given as the path, a file the
    /// process may not read, or a compression whose feature is off.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::file::{FileSource, FileSourceConfig};
    /// use weir_io::IoErrorKind;
    ///
    /// let err = FileSource::open(FileSourceConfig::new("no/*.jsonl")).unwrap_err();
    /// assert_eq!(err.kind(), IoErrorKind::NoMatch);
    /// assert_eq!(err.to_string(), "no file matches `no/*.jsonl`");
    /// ```
    pub fn open(config: FileSourceConfig) -> Result<FileSource, IoError> {
        let files = expand(&config.path)?;
        let mut compressions = Vec::with_capacity(files.len());
        let mut total = 0;
        for path in &files {
            total += check_readable(path)?;
            compressions.push(config.compression.check(path)?);
        }
        Ok(FileSource {
            config,
            starts: vec![Resume::default(); files.len()],
            files,
            compressions,
            progress: ReadProgress::new(total),
        })
    }

    /// The files to read, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.jsonl");
    /// std::fs::write(&path, "").unwrap();
    /// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
    /// assert_eq!(source.files(), [path]);
    /// ```
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The sum of the files' sizes on disk (compressed sizes for
    /// compressed files), when opened.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.jsonl");
    /// std::fs::write(&path, "1\n2\n").unwrap();
    /// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
    /// assert_eq!(source.total_bytes(), 4);
    /// ```
    pub fn total_bytes(&self) -> u64 {
        self.progress.total_bytes()
    }

    /// A handle on the reading's progress (bytes and lines read, the file
    /// being read) and its error, valid after the source is consumed.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.jsonl");
    /// std::fs::write(&path, "1\n2\n").unwrap();
    /// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
    /// let progress = source.progress();
    /// source.lines().for_each(drop);
    /// assert_eq!(progress.bytes_read(), progress.total_bytes());
    /// ```
    pub fn progress(&self) -> ReadProgress {
        self.progress.clone()
    }

    /// The decoder for the source's format.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.jsonl");
    /// std::fs::write(&path, "[1]\n").unwrap();
    /// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
    /// let decoder = source.decoder();
    /// let record = decoder.decode(source.lines().next().unwrap()).unwrap();
    /// assert_eq!(record.value, serde_json::json!([1]));
    /// ```
    pub fn decoder(&self) -> Decoder {
        self.config.format.decoder()
    }

    /// Checks that every file can still be opened for reading.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.jsonl");
    /// std::fs::write(&path, "").unwrap();
    /// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
    /// assert!(source.healthcheck().is_ok());
    /// std::fs::remove_file(&path).unwrap();
    /// assert!(source.healthcheck().unwrap_err().to_string().contains("a.jsonl"));
    /// ```
    pub fn healthcheck(&self) -> Result<(), IoError> {
        for path in &self.files {
            check_readable(path)?;
        }
        Ok(())
    }

    /// Resumes where an earlier run left off: each file with a
    /// [`FilePosition`] in `positions` (matched by path) is read from its
    /// offset, after checking that it is still the same file (its
    /// [`Fingerprint`](crate::checkpoint::Fingerprint)); the other files
    /// from their start. A compressed file is decompressed from its start
    /// and the bytes before the position skipped.
    ///
    /// Fails, naming the file and what changed, when a file was replaced,
    /// rotated or truncated since the position was taken: reading it from
    /// the stored offset would read from the wrong place. Start the run
    /// over (without the positions) then.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::checkpoint::{Fingerprint, FilePosition};
    /// use weir_io::file::{FileSource, FileSourceConfig};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("a.txt");
    /// std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
    /// let file = path.to_str().unwrap();
    /// let done = FilePosition { file: file.into(), offset: 4, lines: 1, fingerprint: Fingerprint::of(&path).unwrap() };
    ///
    /// let mut source = FileSource::open(FileSourceConfig::new(file).format(weir_io::Format::Lines)).unwrap();
    /// source.resume(&[done.clone()]).unwrap();
    /// let lines: Vec<(u64, String)> = source.lines().map(|l| (l.origin.line, l.text)).collect();
    /// assert_eq!(lines, [(2, "two".to_owned()), (3, "three".to_owned())]);
    ///
    /// std::fs::write(&path, "on\n").unwrap(); // truncated
    /// let mut source = FileSource::open(FileSourceConfig::new(file)).unwrap();
    /// let err = source.resume(&[done]).unwrap_err();
    /// assert!(err.to_string().contains("truncated"), "{err}");
    /// ```
    pub fn resume(&mut self, positions: &[FilePosition]) -> Result<(), IoError> {
        for (path, start) in self.files.iter().zip(&mut self.starts) {
            let name = path.to_string_lossy();
            let Some(at) = positions.iter().find(|p| p.file == name) else {
                continue;
            };
            if let Err(why) = at.fingerprint.check(path, at.offset) {
                return Err(IoError::new(
                    IoErrorKind::Changed,
                    Some(path.as_path()),
                    format!(
                        "{}: cannot resume at byte {} (line {}): {why}; start over without the checkpoint (`--from-start`)",
                        path.display(),
                        at.offset,
                        at.lines + 1
                    ),
                ));
            }
            *start = Resume {
                offset: at.offset,
                lines: at.lines,
            };
        }
        Ok(())
    }

    /// The files' lines, read in order on the calling thread (see
    /// [`Lines`]: a read error ends them and is kept in
    /// [`Lines::error`] and [`ReadProgress::error`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.jsonl");
    /// std::fs::write(&path, "{}\n[]\n").unwrap();
    /// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
    /// let lines: Vec<_> = source.lines().collect();
    /// assert_eq!((lines[1].text.as_str(), lines[1].origin.line, lines[1].origin.offset), ("[]", 2, 3));
    /// ```
    pub fn lines(self) -> Lines {
        let inputs = self
            .files
            .into_iter()
            .zip(self.compressions)
            .zip(self.starts)
            .map(|((path, compression), from)| Input::File {
                path,
                compression,
                from,
            })
            .collect();
        Lines::new(
            inputs,
            &self.config.format,
            self.config.max_line_bytes,
            self.progress,
        )
    }

    /// The files' lines, decoded (see [`Records`]: a read error is the
    /// last item).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.csv");
    /// std::fs::write(&path, "id,name\n1,ann\n").unwrap();
    /// let config = weir_io::file::FileSourceConfig::new(path.to_str().unwrap())
    ///     .format(weir_io::Format::Csv(Default::default()));
    /// let records: Vec<_> = weir_io::file::FileSource::open(config).unwrap().records().collect();
    /// assert_eq!(records[0].as_ref().unwrap().value, serde_json::json!({"id": 1, "name": "ann"}));
    /// ```
    pub fn records(self) -> Records {
        let decoder = self.decoder();
        Records::new(self.lines(), decoder)
    }

    /// The files' lines as a [`weir::Source`] for
    /// [`Pipeline::merge`](weir::Pipeline::merge), named after the path,
    /// read on a thread of its own ([`Lines::into_stream`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::Source;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a.txt");
    /// std::fs::write(&path, "x\n").unwrap();
    /// let source = weir_io::file::FileSource::open(weir_io::file::FileSourceConfig::new(path.to_str().unwrap())).unwrap();
    /// let input = source.into_source();
    /// assert_eq!(input.name().as_deref(), path.to_str());
    /// let lines = weir::Pipeline::merge([input]).collect().await.unwrap();
    /// assert_eq!(lines[0].text, "x");
    /// # });
    /// ```
    pub fn into_source(self) -> Streamed<LineStream> {
        let name = self.config.path.clone();
        Streamed::new(self.lines().into_stream()).named(name)
    }
}

/// Whether `path` has glob metacharacters.
fn is_pattern(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// The files `path` names: itself, or a glob's matches, sorted.
fn expand(path: &str) -> Result<Vec<PathBuf>, IoError> {
    if path.is_empty() {
        return Err(IoError::new(IoErrorKind::NotFound, None, "no input path given"));
    }
    if !is_pattern(path) || Path::new(path).exists() {
        return Ok(vec![PathBuf::from(path)]);
    }
    let pattern = Path::new(path);
    let matches = glob::glob(path).map_err(|e| {
        IoError::new(
            IoErrorKind::BadPattern,
            Some(pattern),
            format!("bad glob pattern `{path}`: {e}"),
        )
    })?;
    let mut files = Vec::new();
    for entry in matches {
        let found = entry.map_err(|e| {
            let at = e.path().to_path_buf();
            IoError::io("cannot list", &at, e.into(), IoErrorKind::Read)
        })?;
        if !found.is_dir() {
            files.push(found);
        }
    }
    if files.is_empty() {
        return Err(IoError::new(
            IoErrorKind::NoMatch,
            Some(pattern),
            format!("no file matches `{path}`"),
        ));
    }
    files.sort();
    Ok(files)
}

/// Checks that `path` is a regular file the process can open; its size.
fn check_readable(path: &Path) -> Result<u64, IoError> {
    let meta = fs::metadata(path).map_err(|e| IoError::io("cannot open", path, e, IoErrorKind::Read))?;
    if meta.is_dir() {
        return Err(IoError::new(
            IoErrorKind::IsDirectory,
            Some(path),
            format!("`{}` is a directory, not a file", path.display()),
        ));
    }
    fs::File::open(path).map_err(|e| IoError::io("cannot open", path, e, IoErrorKind::Read))?;
    Ok(meta.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_with_glob_characters_are_patterns() {
        assert!(is_pattern("data/*.jsonl"));
        assert!(is_pattern("x?.csv"));
        assert!(is_pattern("[ab].txt"));
        assert!(!is_pattern("data/x.jsonl"));
    }

    #[test]
    fn a_malformed_glob_is_a_bad_pattern_error_naming_it() {
        let err = expand("data/[*.jsonl").unwrap_err();
        assert_eq!(err.kind(), IoErrorKind::BadPattern);
        assert!(
            err.to_string().starts_with("bad glob pattern `data/[*.jsonl`"),
            "{err}"
        );
    }
}
