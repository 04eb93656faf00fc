//! The file source on real files: globs, compression, CSV, faults,
//! errors.

use std::path::{Path, PathBuf};

use serde_json::json;
use weir_io::file::{FileSource, FileSourceConfig};
use weir_io::{ColumnType, CsvOptions, DecodeErrorKind, Fault, Format, IoErrorKind, Line};

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn open(path: &Path, format: Format) -> FileSource {
    FileSource::open(FileSourceConfig::new(path_str(path)).format(format)).unwrap()
}

fn lines_of(path: &Path, format: Format) -> Vec<Line> {
    let mut lines = open(path, format).lines();
    let all: Vec<Line> = lines.by_ref().collect();
    assert!(lines.error().is_none(), "{:?}", lines.error());
    all
}

/// (file name, line number, offset, text) of each line.
fn positions(lines: &[Line]) -> Vec<(String, u64, u64, String)> {
    lines
        .iter()
        .map(|l| {
            let name = Path::new(&*l.origin.file)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, l.origin.line, l.origin.offset, l.text.clone())
        })
        .collect()
}

#[test]
fn a_glob_reads_its_files_in_sorted_order_with_each_lines_file_line_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.jsonl"), "{\"b\":1}\n{\"b\":2}\n").unwrap();
    std::fs::write(dir.path().join("a.jsonl"), "{\"a\":1}\n").unwrap();
    std::fs::write(dir.path().join("c.jsonl"), "{\"c\":1}\n{\"c\":22}\n{\"c\":3}\n").unwrap();
    std::fs::write(dir.path().join("skip.txt"), "not matched\n").unwrap();
    std::fs::create_dir(dir.path().join("d.jsonl")).unwrap(); // a directory the glob matches: left out
    let pattern = dir.path().join("*.jsonl");
    let source = open(&pattern, Format::JsonLines);
    let names: Vec<_> = source
        .files()
        .iter()
        .map(|f| f.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a.jsonl", "b.jsonl", "c.jsonl"]);
    let lines = lines_of(&pattern, Format::JsonLines);
    let s = |f: &str, l, o, t: &str| (f.to_owned(), l, o, t.to_owned());
    assert_eq!(
        positions(&lines),
        [
            s("a.jsonl", 1, 0, "{\"a\":1}"),
            s("b.jsonl", 1, 0, "{\"b\":1}"),
            s("b.jsonl", 2, 8, "{\"b\":2}"),
            s("c.jsonl", 1, 0, "{\"c\":1}"),
            s("c.jsonl", 2, 8, "{\"c\":22}"),
            s("c.jsonl", 3, 17, "{\"c\":3}"),
        ]
    );
    assert_eq!(&*lines[0].origin.file, path_str(&dir.path().join("a.jsonl")));
}

#[test]
fn lines_across_read_buffer_boundaries_keep_their_text_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.txt");
    let mut want = Vec::new();
    let mut content = String::new();
    for i in 0..3000usize {
        // Lengths from 0 to ~100 KB so that lines straddle the 256 KiB buffer.
        let len = if i % 500 == 7 { 100_000 + i } else { (i * 37) % 300 };
        let text: String = (0..len)
            .map(|j| char::from(b'a' + ((i + j) % 26) as u8))
            .collect();
        want.push((i as u64 + 1, content.len() as u64, text.clone()));
        content.push_str(&text);
        content.push('\n');
    }
    std::fs::write(&path, &content).unwrap();
    let source = open(&path, Format::Lines);
    let progress = source.progress();
    let got: Vec<_> = source
        .lines()
        .map(|l| (l.origin.line, l.origin.offset, l.text))
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    assert_eq!(progress.bytes_read(), content.len() as u64);
    assert_eq!(progress.lines_read(), 3000);
    assert_eq!(progress.total_bytes(), content.len() as u64);
}

#[cfg(feature = "gzip")]
#[test]
fn gzip_input_is_decompressed_with_offsets_in_the_decompressed_stream() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"{\"n\":1}\n{\"n\":22}\n").unwrap();
    let mut bytes = gz.finish().unwrap();
    // A second member, as `cat a.gz b.gz` makes: read on.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"{\"n\":3}\n").unwrap();
    bytes.extend(gz.finish().unwrap());
    std::fs::write(&path, &bytes).unwrap();

    let source = open(&path, Format::JsonLines);
    assert_eq!(source.total_bytes(), bytes.len() as u64);
    let progress = source.progress();
    let records: Vec<_> = source.records().map(|r| r.unwrap()).collect();
    let values: Vec<_> = records.iter().map(|r| r.value["n"].as_i64().unwrap()).collect();
    assert_eq!(values, [1, 22, 3]);
    let offsets: Vec<_> = records
        .iter()
        .map(|r| r.origin.as_ref().unwrap().offset)
        .collect();
    assert_eq!(offsets, [0, 8, 17]);
    assert_eq!(progress.bytes_read(), bytes.len() as u64); // on-disk bytes
}

#[cfg(feature = "gzip")]
#[test]
fn a_corrupt_gzip_stream_ends_the_lines_with_a_read_error_naming_the_file() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..10_000 {
        writeln!(gz, "{{\"n\":{i}}}").unwrap();
    }
    let mut bytes = gz.finish().unwrap();
    let len = bytes.len();
    bytes.truncate(len / 2); // cut mid-stream
    std::fs::write(&path, &bytes).unwrap();

    let mut lines = open(&path, Format::JsonLines).lines();
    let n = lines.by_ref().count();
    assert!(n < 10_000);
    let err = lines.error().expect("the truncated stream is an error");
    assert_eq!(err.kind(), IoErrorKind::Read);
    assert!(err.to_string().contains("bad.jsonl.gz"), "{err}");

    // `records` ends with it.
    let last = open(&path, Format::JsonLines).records().last().unwrap();
    let err = last.unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::Io);
    assert!(err.to_string().contains("bad.jsonl.gz"), "{err}");
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_input_is_decompressed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt.zst");
    let bytes = zstd::encode_all(&b"alpha\r\nbeta\ngamma"[..], 3).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let lines = lines_of(&path, Format::Lines);
    let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["alpha", "beta", "gamma"]);
    assert_eq!(lines[2].origin.offset, 12);
}

#[test]
fn csv_with_a_header_decodes_typed_and_inferred_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.csv");
    std::fs::write(
        &path,
        "id,name,zip,score,active,tags,note\n\
         1,ann,02134,4.5,true,\"[1,2]\",\n\
         2,\"bo, jr\",10001,7,FALSE,[],\"two\nlines\"\n",
    )
    .unwrap();
    let options = CsvOptions::default()
        .column("zip", ColumnType::String)
        .column("id", ColumnType::Integer)
        .column("tags", ColumnType::Json);
    let source = open(&path, Format::Csv(options));
    let decoder = source.decoder();
    let lines: Vec<Line> = source.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0].origin.line, lines[1].origin.line), (2, 3));
    assert_eq!(lines[0].origin.offset, 35);
    assert_eq!(lines[0].text, "1,ann,02134,4.5,true,\"[1,2]\",");
    let values: Vec<_> = lines
        .into_iter()
        .map(|l| decoder.decode(l).unwrap().value)
        .collect();
    assert_eq!(
        values[0],
        json!({"id": 1, "name": "ann", "zip": "02134", "score": 4.5, "active": true, "tags": [1, 2], "note": null})
    );
    assert_eq!(
        values[1],
        json!({"id": 2, "name": "bo, jr", "zip": "10001", "score": 7, "active": false, "tags": [], "note": "two\nlines"})
    );
}

#[test]
fn a_typed_csv_column_that_does_not_parse_is_a_decode_error_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ages.csv");
    std::fs::write(&path, "name,age\nann,41\nbo,old\ncy,1,extra\n").unwrap();
    let options = CsvOptions::default().column("age", ColumnType::Integer);
    let results: Vec<_> = open(&path, Format::Csv(options)).records().collect();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0].as_ref().unwrap().value,
        json!({"name": "ann", "age": 41})
    );
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::Column);
    assert!(
        err.to_string()
            .ends_with("ages.csv:3: bad CSV value: column `age`: `old` is not an integer"),
        "{err}"
    );
    let err = results[2].as_ref().unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::Csv);
    assert!(
        err.to_string()
            .ends_with("ages.csv:4: invalid CSV: the record has 3 fields but the header has 2"),
        "{err}"
    );
}

#[test]
fn csv_without_a_header_names_columns_by_the_explicit_names_then_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.tsv");
    std::fs::write(&path, "1\tann\tx\n").unwrap();
    let options = CsvOptions::default()
        .delimiter(b'\t')
        .has_header(false)
        .column("id", ColumnType::String);
    let records: Vec<_> = open(&path, Format::Csv(options))
        .records()
        .map(|r| r.unwrap().value)
        .collect();
    assert_eq!(records, [json!({"id": "1", "2": "ann", "3": "x"})]);
}

#[test]
fn a_malformed_json_line_is_a_decode_error_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jsonl");
    std::fs::write(&path, "{\"a\":1}\n{\"a\":1 \"b\":2}\n").unwrap();
    let results: Vec<_> = open(&path, Format::JsonLines).records().collect();
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::Json);
    let want = format!("{}:2:8: invalid JSON: expected `,` or `}}`", path.display());
    assert_eq!(err.to_string(), want);
    assert_eq!(err.origin().unwrap().offset, 8);
}

#[test]
fn an_invalid_utf8_line_is_yielded_lossily_with_a_fault_and_fails_to_decode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.txt");
    std::fs::write(&path, b"ok\ncaf\xe9 au lait\nfine\n").unwrap();
    let lines = lines_of(&path, Format::Lines);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1].text, "caf\u{fffd} au lait");
    assert_eq!(lines[1].fault, Some(Fault::InvalidUtf8 { at: 3 }));
    assert_eq!(lines[2].text, "fine");
    let err = Format::Lines.decode(lines[1].clone()).unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::InvalidUtf8);
    assert!(
        err.to_string()
            .ends_with("latin1.txt:2:4: invalid UTF-8: byte 3 is not part of a UTF-8 character"),
        "{err}"
    );
    // The dead letter shows the line and its fault.
    let json = serde_json::to_value(&lines[1]).unwrap();
    assert_eq!(json["fault"], json!({"kind": "invalid_utf8", "at": 3}));
}

#[test]
fn a_line_over_max_line_bytes_is_too_long_and_only_its_start_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.jsonl");
    let long = "x".repeat(3_000_000); // spans many read buffers
    std::fs::write(
        &path,
        format!("[1]\n\"{long}\"\r\n[2]\n\"{}\"\n", "y".repeat(150)),
    )
    .unwrap();
    let config = FileSourceConfig::new(path_str(&path)).max_line_bytes(100);
    let lines: Vec<Line> = FileSource::open(config).unwrap().lines().collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[1].fault,
        Some(Fault::TooLong {
            len: 3_000_002,
            max: 100
        })
    );
    assert_eq!(lines[1].text.len(), weir_io::record::TOO_LONG_KEPT);
    assert!(lines[1].text.starts_with("\"xxx"));
    // The next line is read cleanly, at the right place.
    assert_eq!(
        (
            lines[2].text.as_str(),
            lines[2].origin.line,
            lines[2].origin.offset
        ),
        ("[2]", 3, 3_000_008)
    );
    // A too-long line found within one buffer is cut the same way.
    assert_eq!(lines[3].fault, Some(Fault::TooLong { len: 152, max: 100 }));
    assert_eq!(lines[3].text.len(), 152.min(weir_io::record::TOO_LONG_KEPT));
    let err = Format::JsonLines.decode(lines[1].clone()).unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::TooLong);
    assert!(
        err.to_string()
            .ends_with("long.jsonl:2: line too long: 3000002 bytes (the limit is 100)"),
        "{err}"
    );
}

#[test]
fn an_empty_file_yields_no_lines_and_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.jsonl");
    std::fs::write(&path, "").unwrap();
    assert!(lines_of(&path, Format::JsonLines).is_empty());
    let csv = dir.path().join("empty.csv");
    std::fs::write(&csv, "").unwrap();
    assert!(lines_of(&csv, Format::Csv(CsvOptions::default())).is_empty());
}

#[test]
fn a_last_line_without_a_newline_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tail.jsonl");
    std::fs::write(&path, "1\n2").unwrap();
    let lines = lines_of(&path, Format::JsonLines);
    let got: Vec<_> = lines
        .iter()
        .map(|l| (l.text.as_str(), l.origin.line, l.origin.offset))
        .collect();
    assert_eq!(got, [("1", 1, 0), ("2", 2, 2)]);
}

#[test]
fn crlf_line_endings_are_stripped_and_counted_in_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dos.txt");
    std::fs::write(&path, "one\r\ntwo\r\n\r\nthree\r").unwrap();
    let lines = lines_of(&path, Format::Lines);
    let got: Vec<_> = lines.iter().map(|l| (l.text.as_str(), l.origin.offset)).collect();
    assert_eq!(got, [("one", 0), ("two", 5), ("", 10), ("three", 12)]);
}

#[test]
fn blank_lines_are_skipped_for_json_lines_but_still_numbered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gaps.jsonl");
    std::fs::write(&path, "\n1\n  \n2\n\n").unwrap();
    let source = open(&path, Format::JsonLines);
    let progress = source.progress();
    let lines: Vec<Line> = source.lines().collect();
    let got: Vec<_> = lines.iter().map(|l| (l.text.as_str(), l.origin.line)).collect();
    assert_eq!(got, [("1", 2), ("2", 4)]);
    assert_eq!(progress.lines_read(), 5);
}

fn open_err(path: &str) -> weir_io::IoError {
    FileSource::open(FileSourceConfig::new(path)).unwrap_err()
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.jsonl");
    let err = open_err(path_str(&path));
    assert_eq!(err.kind(), IoErrorKind::NotFound);
    assert_eq!(err.path(), Some(path.as_path()));
    assert!(
        err.to_string()
            .starts_with(&format!("cannot open `{}`: ", path.display())),
        "{err}"
    );
}

#[test]
fn a_glob_matching_nothing_is_an_error_naming_the_pattern() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "x\n").unwrap();
    let pattern = dir.path().join("*.jsonl");
    let err = open_err(path_str(&pattern));
    assert_eq!(err.kind(), IoErrorKind::NoMatch);
    assert_eq!(
        err.to_string(),
        format!("no file matches `{}`", pattern.display())
    );
}

#[test]
fn a_directory_given_as_the_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = open_err(path_str(dir.path()));
    assert_eq!(err.kind(), IoErrorKind::IsDirectory);
    assert_eq!(
        err.to_string(),
        format!("`{}` is a directory, not a file", dir.path().display())
    );
}

#[test]
fn a_file_deleted_before_it_is_read_ends_the_lines_with_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("1.txt"), "a\n").unwrap();
    std::fs::write(dir.path().join("2.txt"), "b\n").unwrap();
    let source = open(&dir.path().join("*.txt"), Format::Lines);
    let progress = source.progress();
    std::fs::remove_file(dir.path().join("2.txt")).unwrap();
    let texts: Vec<String> = source.lines().map(|l| l.text).collect();
    assert_eq!(texts, ["a"]);
    let err = progress.error().unwrap();
    assert_eq!(err.kind(), IoErrorKind::NotFound);
    assert!(err.to_string().contains("2.txt"), "{err}");
}

#[tokio::test]
async fn lines_as_a_stream_arrive_in_order_and_end() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("n.txt");
    let content: String = (0..5000).map(|i| format!("{i}\n")).collect();
    std::fs::write(&path, content).unwrap();
    let stream = open(&path, Format::Lines).lines().into_stream();
    let progress = stream.progress();
    let got: Vec<String> = stream.map(|l| l.text).collect().await;
    let want: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
    assert_eq!(got, want);
    assert!(progress.error().is_none());
    assert_eq!(progress.lines_read(), 5000);
}

/// Reads `path` with a checkpointer, stopping after `take` lines (the rest
/// never finalized), and returns the positions committed at the end.
async fn read_some(
    path: &Path,
    store: &std::sync::Arc<weir_io::checkpoint::MemoryCheckpoints>,
    take: usize,
) -> Vec<(u64, String)> {
    use weir_io::checkpoint::{file_positions, CheckpointStore, Checkpointer, Committer};
    let mut source = open(path, Format::Lines);
    let resumed = file_positions("s", store.load("s").unwrap()).unwrap();
    source.resume(&resumed).unwrap();
    let checkpointer = Checkpointer::new("s", source.files(), &resumed).unwrap();
    let committer = Committer::start(
        checkpointer.clone(),
        store.clone(),
        std::time::Duration::from_secs(60),
    );
    let acked = source.lines().map(move |line| {
        let ack = checkpointer.ack(&line);
        weir::Acked::new((line.origin.line, line.text), ack)
    });
    let out = weir::PipelineBuilder::new()
        .chunk_size(1)
        .from_acked(futures::stream::iter(acked))
        .take(take)
        .collect()
        .await
        .unwrap();
    committer.finish().unwrap();
    out
}

#[tokio::test]
async fn a_checkpointed_read_resumes_after_the_last_finalized_line_with_its_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let text = "one\r\ntwo\n\nfour\nfive\r\nsix";
    let plain = dir.path().join("in.txt");
    std::fs::write(&plain, text).unwrap();
    let mut inputs = vec![plain];
    #[cfg(feature = "gzip")]
    {
        use std::io::Write;
        let gz_path = dir.path().join("in.txt.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        std::fs::write(&gz_path, gz.finish().unwrap()).unwrap();
        inputs.push(gz_path);
    }
    for path in inputs {
        let store = std::sync::Arc::new(weir_io::checkpoint::MemoryCheckpoints::default());
        let first = read_some(&path, &store, 2).await;
        let second = read_some(&path, &store, 3).await;
        let third = read_some(&path, &store, 10).await;
        let fourth = read_some(&path, &store, 10).await;
        let got = |v: &[(u64, String)]| v.iter().map(|(n, t)| format!("{n}:{t}")).collect::<Vec<_>>();
        assert_eq!(got(&first), ["1:one", "2:two"], "{}", path.display());
        assert_eq!(got(&second), ["3:", "4:four", "5:five"], "{}", path.display());
        assert_eq!(got(&third), ["6:six"], "{}", path.display());
        assert!(fourth.is_empty(), "{fourth:?}");
    }
}

#[test]
fn resuming_a_replaced_file_is_refused_naming_what_changed() {
    use weir_io::checkpoint::{FilePosition, Fingerprint};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, "a\nb\n").unwrap();
    let at = FilePosition {
        file: path_str(&path).to_owned(),
        offset: 2,
        lines: 1,
        fingerprint: Fingerprint::of(&path).unwrap(),
    };
    let other = dir.path().join("other.txt");
    std::fs::write(&other, "x\ny\n").unwrap();
    std::fs::rename(&other, &path).unwrap();
    let err = open(&path, Format::Lines).resume(&[at]).unwrap_err();
    assert_eq!(err.kind(), IoErrorKind::Changed);
    assert!(err.to_string().contains("replaced"), "{err}");
    assert!(err.to_string().contains("line 2"), "{err}");
}
