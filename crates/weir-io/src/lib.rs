//! Sources and sinks for the [weir] engine: files (plain lines, JSON
//! lines, CSV; gzip and zstd), standard input and output, and a record
//! generator.
//!
//! - Sources yield raw [`Line`]s ([`file::FileSource`], [`stdin::StdinSource`])
//!   that a [`Decoder`] turns into [`Record`]s (a JSON value and its
//!   [`Origin`]: file, line, byte offset) inside a pipeline stage, so a
//!   malformed line goes through the pipeline's error policy, to its
//!   dead-letter sink with the raw line and where it came from.
//!   [`generate::Generator`] makes records from a template.
//! - Sinks implement [`weir::Sink`]: [`sink::StdoutSink`], [`sink::FileSink`]
//!   (written atomically through a temporary file, rotated by size,
//!   compressed by extension) and [`sink::DeadLetterFileSink`]; with the
//!   `sqlite` feature, `sqlite::SqliteSink` (rows into a table, batched
//!   transactions; append, upsert or replace); with the `postgres`
//!   feature, `postgres::PostgresSink` (the same, over binary `COPY`). Both
//!   take the rows of `sql`.
//! - Table sources: with `sqlite`, `sqlite::SqliteSource`; with
//!   `postgres`, `postgres::PostgresSource`: a table or a query read in
//!   key order with keyset pagination, each row a JSON object
//!   ([`Record`]), checkpointed by the last finalized key.
//! - Checkpoints ([`checkpoint`]): where a file source or a table source
//!   was left, in memory, a SQLite file (`sqlite`) or a PostgreSQL table
//!   (`postgres`, for several machines sharing one store).
//! - Errors: [`IoError`] for opening, reading and writing (it names the
//!   path), [`DecodeError`] for a line that cannot be decoded (it names
//!   `file:line:column`).
//!
//! Cargo features: `gzip` and `zstd` (both on by default) read and write
//! `.gz` and `.zst` files; `sqlite` (SQLite compiled in: nothing to
//! install) adds the `sqlite` module; `postgres` (tokio-postgres) adds the
//! `postgres` module; `full` turns on every feature.
//!
//! # Example
//!
//! Read a JSON-lines file, keep the valid records, send the bad lines to
//! a dead-letter file, write the rest to another file:
//!
//! ```
//! use weir::{DeadLetters, Pipeline};
//! use weir_io::file::{FileSource, FileSourceConfig};
//! use weir_io::sink::{DeadLetterFileSink, FileSink, FileSinkConfig};
//!
//! # tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let input = dir.path().join("in.jsonl");
//! std::fs::write(&input, "{\"n\": 1}\n{\"n\": oops}\n{\"n\": 3}\n").unwrap();
//!
//! let source = FileSource::open(FileSourceConfig::new(input.to_str().unwrap())).unwrap();
//! let progress = source.progress();
//! let decoder = source.decoder();
//! let output = dir.path().join("out/result.jsonl");
//! let sink = FileSink::create(FileSinkConfig::new(&output)).unwrap();
//! let dead = DeadLetterFileSink::create(dir.path().join("out/dead.jsonl")).unwrap();
//! let dead_written = dead.written();
//!
//! let report = Pipeline::from_iter(source.lines())
//!     .try_map(move |line| decoder.decode(line))
//!     .name("decode")
//!     .dead_letter(DeadLetters::new(dead))
//!     .map(|mut record| {
//!         record.value["double"] = (record.value["n"].as_i64().unwrap_or(0) * 2).into();
//!         record
//!     })
//!     .sink(sink)
//!     .run()
//!     .await
//!     .unwrap();
//! // A read error would end the lines early: the run is only a success without one.
//! assert!(progress.error().is_none());
//!
//! assert_eq!((report.delivered, report.dead_lettered), (2, 1));
//! let out = std::fs::read_to_string(&output).unwrap();
//! assert_eq!(out, "{\"double\":2,\"n\":1}\n{\"double\":6,\"n\":3}\n");
//! assert_eq!(dead_written.get(), 1);
//! let dead = std::fs::read_to_string(dir.path().join("out/dead.jsonl")).unwrap();
//! let letter: serde_json::Value = serde_json::from_str(dead.trim_end()).unwrap();
//! assert_eq!(letter["item"]["origin"]["line"], 2);
//! assert_eq!(letter["item"]["text"], "{\"n\": oops}");
//! assert!(letter["error"].as_str().unwrap().ends_with("in.jsonl:2:7: invalid JSON: expected value"));
//! # });
//! ```

pub mod checkpoint;
mod compression;
mod error;
pub mod file;
pub mod format;
pub mod generate;
pub mod parallel;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod read;
pub mod record;
pub mod sink;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod stdin;

pub use compression::Compression;
pub use error::{is_broken_pipe, IoError, IoErrorKind, BROKEN_PIPE};
pub use format::{ColumnType, CsvOptions, DecodeError, DecodeErrorKind, Decoder, Format};
pub use record::{CsvRow, Fault, JsonText, Line, Origin, Record};
