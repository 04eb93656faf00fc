//! The process's standard input as a source: [`StdinSource`].

use weir::stage::Streamed;

use crate::compression::Compression;
use crate::file::DEFAULT_MAX_LINE_BYTES;
use crate::format::{Decoder, Format};
use crate::read::{Input, LineStream, Lines, ReadProgress, Records};

/// Standard input, read line by line (or CSV record by record) like a
/// file; each [`Line`](crate::Line)'s origin names `<stdin>`.
///
/// | setting | default |
/// |---|---|
/// | [`format`](Self::format) | [`Format::JsonLines`] |
/// | [`compression`](Self::compression) | [`Compression::None`] ([`Auto`](Compression::Auto) is taken as none: stdin has no extension) |
/// | [`max_line_bytes`](Self::max_line_bytes) | 16 MiB |
///
/// Two ways to read it: [`lines`](Self::lines) blocks the calling thread
/// on each read (fine for a plain loop, or a pipeline on a multi-threaded
/// runtime reading piped input); [`into_stream`](Self::into_stream) reads
/// on a thread of its own and never blocks the async runtime. Both end at
/// end of input (stdin closed or the pipe's writer gone), so a pipeline
/// over them finishes.
///
/// # Examples
///
/// ```
/// use weir_io::stdin::StdinSource;
/// use weir_io::Format;
///
/// let source = StdinSource::new().format(Format::Lines).max_line_bytes(1 << 20);
/// let decoder = source.decoder();
/// let line = weir_io::Line::new("hi", weir_io::Origin::new("<stdin>", 1, 0));
/// assert_eq!(decoder.decode(line).unwrap().value, "hi");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct StdinSource {
    /// How lines are decoded. By default, JSON lines.
    pub format: Format,
    /// How the input is decompressed. By default, none.
    pub compression: Compression,
    /// The longest line accepted (see
    /// [`FileSourceConfig::max_line_bytes`](crate::file::FileSourceConfig::max_line_bytes)).
    /// By default, 16 MiB.
    pub max_line_bytes: u64,
}

impl Default for StdinSource {
    fn default() -> StdinSource {
        StdinSource {
            format: Format::JsonLines,
            compression: Compression::None,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

impl StdinSource {
    /// Standard input with the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(weir_io::stdin::StdinSource::new().format, weir_io::Format::JsonLines);
    /// ```
    pub fn new() -> StdinSource {
        StdinSource::default()
    }

    /// Sets the format. By default, JSON lines.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{stdin::StdinSource, Format};
    /// assert_eq!(StdinSource::new().format(Format::Lines).format, Format::Lines);
    /// ```
    pub fn format(mut self, format: Format) -> StdinSource {
        self.format = format;
        self
    }

    /// Sets the compression. By default, none.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{stdin::StdinSource, Compression};
    /// assert_eq!(StdinSource::new().compression(Compression::Gzip).compression, Compression::Gzip);
    /// ```
    pub fn compression(mut self, compression: Compression) -> StdinSource {
        self.compression = compression;
        self
    }

    /// Sets the longest line accepted. By default, 16 MiB.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(weir_io::stdin::StdinSource::new().max_line_bytes(10).max_line_bytes, 10);
    /// ```
    pub fn max_line_bytes(mut self, max: u64) -> StdinSource {
        self.max_line_bytes = max;
        self
    }

    /// The decoder for the source's format.
    ///
    /// # Examples
    ///
    /// ```
    /// let decoder = weir_io::stdin::StdinSource::new().decoder();
    /// let line = weir_io::Line::new("[1]", weir_io::Origin::new("<stdin>", 1, 0));
    /// assert_eq!(decoder.decode(line).unwrap().value, serde_json::json!([1]));
    /// ```
    pub fn decoder(&self) -> Decoder {
        self.format.decoder()
    }

    /// Checks that this build can decompress the input as configured.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(weir_io::stdin::StdinSource::new().healthcheck().is_ok());
    /// ```
    pub fn healthcheck(&self) -> Result<(), crate::IoError> {
        self.resolved().map(drop)
    }

    fn resolved(&self) -> Result<Compression, crate::IoError> {
        let compression = match self.compression {
            Compression::Auto => Compression::None,
            other => other,
        };
        compression.check(std::path::Path::new("<stdin>"))
    }

    /// Standard input's lines, read on the calling thread (each `next`
    /// may block until input arrives). A compression this build cannot
    /// read, or a read error, ends the lines at once with the error in
    /// [`Lines::error`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// // echo '{"a":1}' | this program
    /// let mut lines = weir_io::stdin::StdinSource::new().lines();
    /// for line in lines.by_ref() {
    ///     assert_eq!(&*line.origin.file, "<stdin>");
    /// }
    /// assert!(lines.error().is_none());
    /// ```
    pub fn lines(self) -> Lines {
        let progress = ReadProgress::new(0);
        match self.resolved() {
            Ok(compression) => Lines::new(
                vec![Input::Stdin { compression }],
                &self.format,
                self.max_line_bytes,
                progress,
            ),
            Err(e) => {
                progress.set_error(e);
                Lines::new(Vec::new(), &self.format, self.max_line_bytes, progress)
            }
        }
    }

    /// Standard input's lines as a stream, read on a thread of their own
    /// ([`Lines::into_stream`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let stream = weir_io::stdin::StdinSource::new().into_stream();
    /// let progress = stream.progress();
    /// let n = weir::Pipeline::from_stream(stream).run().await.unwrap().delivered;
    /// assert!(progress.error().is_none());
    /// # });
    /// ```
    pub fn into_stream(self) -> LineStream {
        self.lines().into_stream()
    }

    /// Standard input's lines as a [`weir::Source`] named `<stdin>`, for
    /// [`Pipeline::merge`](weir::Pipeline::merge).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::Source;
    /// let input = weir_io::stdin::StdinSource::new().into_source();
    /// assert_eq!(input.name().as_deref(), Some("<stdin>"));
    /// ```
    pub fn into_source(self) -> Streamed<LineStream> {
        Streamed::new(self.into_stream()).named("<stdin>")
    }

    /// Standard input's lines, decoded (see [`Records`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// for record in weir_io::stdin::StdinSource::new().records() {
    ///     println!("{}", record.unwrap().value);
    /// }
    /// ```
    pub fn records(self) -> Records {
        let decoder = self.decoder();
        Records::new(self.lines(), decoder)
    }
}
