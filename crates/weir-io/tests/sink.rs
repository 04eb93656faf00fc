//! The sinks on real files: atomic rename, rotation, compression, errors,
//! broken pipes, dead letters.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use weir::{ErrorKind, Pipeline, Sink};
use weir_io::sink::{DeadLetterFileSink, FileSink, FileSinkConfig, OutputFormat, StdoutSink};
use weir_io::{IoErrorKind, Record};

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn record(i: u64) -> Record {
    Record::new(json!({"i": i, "pad": "xxxxxxxxxx"}))
}

#[tokio::test]
async fn the_output_appears_only_on_close_by_renaming_the_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let mut sink = FileSink::create(FileSinkConfig::new(&path)).unwrap();
    sink.write(Record::new(json!(1))).await.unwrap();
    Sink::<Record>::flush(&mut sink).await.unwrap();
    // Flushed: in the temporary file, readable; no output file yet.
    assert_eq!(names_in(dir.path()), [".out.jsonl.tmp"]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".out.jsonl.tmp")).unwrap(),
        "1\n"
    );
    sink.write(Record::new(json!(2))).await.unwrap();
    Sink::<Record>::close(&mut sink).await.unwrap();
    assert_eq!(names_in(dir.path()), ["out.jsonl"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n2\n");
    assert_eq!(sink.written().get(), 2);
}

#[tokio::test]
async fn an_aborted_run_leaves_the_temporary_file_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let mut sink = FileSink::create(FileSinkConfig::new(&path)).unwrap();
    sink.write(Record::new(json!(1))).await.unwrap();
    Sink::<Record>::flush(&mut sink).await.unwrap();
    drop(sink); // no close
    assert_eq!(names_in(dir.path()), [".out.jsonl.tmp"]);
}

#[tokio::test]
async fn rotation_renames_each_full_part_and_the_last_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let line_len = serde_json::to_string(&record(0).value).unwrap().len() as u64 + 1;
    let mut sink = FileSink::create(FileSinkConfig::new(&path).rotate_bytes(3 * line_len)).unwrap();
    for i in 0..7 {
        sink.write(record(i)).await.unwrap();
        Sink::<Record>::flush(&mut sink).await.unwrap();
    }
    // Parts 1 and 2 (3 records each) are full and in place; part 3 is still being written.
    assert_eq!(
        names_in(dir.path()),
        [".out-00003.jsonl.tmp", "out-00001.jsonl", "out-00002.jsonl"]
    );
    Sink::<Record>::close(&mut sink).await.unwrap();
    assert_eq!(
        names_in(dir.path()),
        ["out-00001.jsonl", "out-00002.jsonl", "out-00003.jsonl"]
    );
    let mut seen = Vec::new();
    for (n, want) in [(1, 3), (2, 3), (3, 1)] {
        let text = std::fs::read_to_string(dir.path().join(format!("out-0000{n}.jsonl"))).unwrap();
        assert!(text.len() as u64 <= 3 * line_len);
        let values: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(values.len(), want, "part {n}");
        seen.extend(values.into_iter().map(|v| v["i"].as_u64().unwrap()));
    }
    assert_eq!(seen, (0..7).collect::<Vec<_>>());
}

#[tokio::test]
async fn rotation_within_one_flush_cuts_parts_between_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let line_len = serde_json::to_string(&record(0).value).unwrap().len() as u64 + 1;
    let sink = FileSink::create(FileSinkConfig::new(&path).rotate_bytes(2 * line_len)).unwrap();
    Pipeline::from_iter((0..5).map(record))
        .sink(sink)
        .run()
        .await
        .unwrap();
    assert_eq!(
        names_in(dir.path()),
        ["out-00001.jsonl", "out-00002.jsonl", "out-00003.jsonl"]
    );
    let last = std::fs::read_to_string(dir.path().join("out-00003.jsonl")).unwrap();
    assert_eq!(last.lines().count(), 1);
}

#[tokio::test]
async fn each_rotated_csv_part_starts_with_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let config = FileSinkConfig::new(&path)
        .format(OutputFormat::Csv { columns: None })
        .rotate_bytes(20);
    let sink = FileSink::create(config).unwrap();
    let rows = (0..3).map(|i| Record::new(json!({"id": i, "name": format!("n{i}")})));
    Pipeline::from_iter(rows).sink(sink).run().await.unwrap();
    let parts: Vec<String> = names_in(dir.path())
        .iter()
        .map(|n| std::fs::read_to_string(dir.path().join(n)).unwrap())
        .collect();
    // "id,name\n" (8) + "0,n0\n" (5) + "1,n1\n" = 18; a third row would pass 20.
    assert_eq!(parts, ["id,name\n0,n0\n1,n1\n", "id,name\n2,n2\n"]);
}

#[cfg(feature = "gzip")]
#[tokio::test]
async fn gzip_output_by_extension_reads_back() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl.gz");
    let sink = FileSink::create(FileSinkConfig::new(&path)).unwrap();
    Pipeline::from_iter((0..1000).map(record))
        .sink(sink)
        .run()
        .await
        .unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text.lines().count(), 1000);
    assert!(std::fs::metadata(&path).unwrap().len() < text.len() as u64);
}

#[cfg(feature = "zstd")]
#[tokio::test]
async fn zstd_output_by_extension_reads_back_through_the_file_source() {
    use weir_io::file::{FileSource, FileSourceConfig};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl.zst");
    let sink = FileSink::create(FileSinkConfig::new(&path)).unwrap();
    Pipeline::from_iter((0..100).map(record))
        .sink(sink)
        .run()
        .await
        .unwrap();
    let source = FileSource::open(FileSourceConfig::new(path.to_str().unwrap())).unwrap();
    let back: Vec<u64> = source
        .records()
        .map(|r| r.unwrap().value["i"].as_u64().unwrap())
        .collect();
    assert_eq!(back, (0..100).collect::<Vec<_>>());
}

#[test]
fn missing_parent_directories_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/out.jsonl");
    FileSink::create(FileSinkConfig::new(&path)).unwrap();
    assert!(dir.path().join("a/b/c/.out.jsonl.tmp").is_file());
}

#[test]
fn an_output_directory_that_cannot_be_made_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    // A regular file where a directory should be: the directory cannot be created.
    let err = FileSink::create(FileSinkConfig::new(blocker.join("sub/out.jsonl"))).unwrap_err();
    assert_eq!(err.path(), Some(blocker.join("sub").as_path()));
    assert!(
        err.to_string().starts_with(&format!(
            "cannot create the directory `{}`",
            blocker.join("sub").display()
        )),
        "{err}"
    );
    let err = DeadLetterFileSink::create(blocker.join("dead.jsonl")).unwrap_err();
    assert!(err.to_string().contains(&blocker.display().to_string()), "{err}");
}

#[test]
fn a_read_only_output_directory_is_an_error_unless_running_as_root() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ro: PathBuf = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let probe = std::fs::File::create(ro.join("probe"));
    let result = FileSink::create(FileSinkConfig::new(ro.join("out.jsonl")));
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    if probe.is_ok() {
        // Root writes anywhere: nothing to check but that the sink agrees.
        assert!(result.is_ok());
        return;
    }
    let err = result.unwrap_err();
    assert_eq!(err.kind(), IoErrorKind::PermissionDenied);
    assert!(err.to_string().contains(".out.jsonl.tmp"), "{err}");
}

/// A reader that went away.
struct ClosedPipe;

impl std::io::Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_broken_pipe_stops_the_run_with_an_error_the_caller_can_recognise() {
    let sink = StdoutSink::to_writer(OutputFormat::JsonLines, ClosedPipe);
    let broken = sink.broken_pipe();
    let err = Pipeline::from_iter((0..10_000).map(record))
        .sink(sink)
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sink);
    assert!(weir_io::is_broken_pipe(&err), "{err:#?}");
    assert!(broken.is_set());
}

#[tokio::test]
async fn other_write_errors_are_not_broken_pipes() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("no space left on device"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = StdoutSink::to_writer(OutputFormat::JsonLines, Full);
    let broken = sink.broken_pipe();
    let err = Pipeline::from_iter((0..3).map(record))
        .sink(sink)
        .run()
        .await
        .unwrap_err();
    assert!(!weir_io::is_broken_pipe(&err), "{err}");
    assert!(err.to_string().contains("no space left on device"), "{err}");
    assert!(!broken.is_set());
}

#[tokio::test]
async fn csv_to_a_writer_has_one_header_and_a_row_per_record() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Shared::default();
    let format = OutputFormat::Csv {
        columns: Some(vec!["b".into(), "a".into()]),
    };
    let sink = StdoutSink::to_writer(format, out.clone());
    let written = sink.written();
    let rows = (0..3).map(|i| Record::new(json!({"a": i, "b": {"n": i}})));
    Pipeline::from_iter(rows).sink(sink).run().await.unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text,
        "b,a\n\"{\"\"n\"\":0}\",0\n\"{\"\"n\"\":1}\",1\n\"{\"\"n\"\":2}\",2\n"
    );
    assert_eq!(written.get(), 3);
}

#[tokio::test]
async fn a_record_that_is_not_an_object_fails_alone_in_a_csv_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let sink =
        FileSink::create(FileSinkConfig::new(&path).format(OutputFormat::Csv { columns: None })).unwrap();
    let records = [json!({"a": 1}), json!([1, 2]), json!({"a": 3})].map(Record::new);
    let report = Pipeline::from_iter(records)
        .sink(sink)
        .on_error(weir::ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.failed), (2, 1));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\n1\n3\n");
}

#[tokio::test]
async fn dead_letters_are_json_lines_with_the_engines_fields_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead/letters.jsonl");
    let sink = DeadLetterFileSink::create(&path).unwrap();
    let written = sink.written();
    let report = Pipeline::from_iter(["1", "a", "2", "b"])
        .try_map(|s: &str| s.parse::<u8>())
        .name("parse")
        .dead_letter(weir::DeadLetters::new(sink))
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered), (2, 2));
    assert_eq!(written.get(), 2);
    let letters: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 2);
    for (letter, item, seq) in [(&letters[0], "a", 1), (&letters[1], "b", 3)] {
        assert_eq!(letter["item"], item);
        assert_eq!(letter["stage"], "parse");
        assert_eq!(letter["item_seq"], seq);
        assert_eq!(letter["error"], "invalid digit found in string");
        assert_eq!(letter["error_type"], "error");
        assert_eq!(letter["attempts"], 1);
        assert!(letter["causes"].is_array());
    }
}

#[tokio::test]
async fn json_text_is_written_as_it_is_for_json_lines_and_by_its_columns_for_csv() {
    use weir_io::JsonText;
    let texts = [json!({"b": "x,y", "a": 1}), json!({"a": 2.5, "b": null})].map(|v| JsonText::from_value(&v));
    let dir = tempfile::tempdir().unwrap();

    let path = dir.path().join("out.jsonl");
    let mut sink = FileSink::create(FileSinkConfig::new(&path)).unwrap();
    for t in texts.clone() {
        sink.write(t).await.unwrap();
    }
    Sink::<JsonText>::close(&mut sink).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"a\":1,\"b\":\"x,y\"}\n{\"a\":2.5,\"b\":null}\n"
    );
    assert_eq!(sink.written().get(), 2);

    let path = dir.path().join("out.csv");
    let csv = OutputFormat::Csv { columns: None };
    let mut sink = FileSink::create(FileSinkConfig::new(&path).format(csv.clone())).unwrap();
    for t in texts.clone() {
        sink.write(t).await.unwrap();
    }
    Sink::<JsonText>::close(&mut sink).await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\n1,\"x,y\"\n2.5,\n");

    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Shared::default();
    Pipeline::from_iter(texts.clone())
        .sink(StdoutSink::to_writer(csv, out.clone()))
        .run()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
        "a,b\n1,\"x,y\"\n2.5,\n"
    );
}
