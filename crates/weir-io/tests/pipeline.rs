//! Sources, decoding and sinks in real pipelines: every input line ends in
//! the output or in the dead letters, with its file and line.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use weir::{DeadLetters, Pipeline};
use weir_io::file::{FileSource, FileSourceConfig};
use weir_io::sink::{DeadLetterFileSink, FileSink, FileSinkConfig};
use weir_io::{Line, Record};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_input_line_is_in_the_output_or_in_the_dead_letters_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let mut want = BTreeSet::new();
    let mut bad = BTreeSet::new();
    for f in 0..3 {
        let name = input.join(format!("part-{f}.jsonl"));
        let mut content = Vec::new();
        for l in 1..=400u64 {
            match (f * 400 + l) % 50 {
                0 => {
                    content.extend_from_slice(b"{\"broken\": \n");
                    bad.insert((name.display().to_string(), l));
                }
                1 => {
                    content.extend_from_slice(b"\"caf\xe9\"\n"); // invalid UTF-8
                    bad.insert((name.display().to_string(), l));
                }
                2 => {
                    content.extend_from_slice(format!("\"{}\"\n", "z".repeat(300)).as_bytes()); // too long
                    bad.insert((name.display().to_string(), l));
                }
                _ => content.extend_from_slice(format!("{{\"f\":{f},\"l\":{l}}}\r\n").as_bytes()),
            }
            want.insert((name.display().to_string(), l));
        }
        std::fs::write(&name, content).unwrap();
    }

    let config = FileSourceConfig::new(format!("{}/*.jsonl", input.display())).max_line_bytes(200);
    let source = FileSource::open(config).unwrap();
    let progress = source.progress();
    let decoder = source.decoder();
    let output = dir.path().join("out/records.jsonl");
    let sink = FileSink::create(FileSinkConfig::new(&output).rotate_bytes(4096)).unwrap();
    let dead_path = dir.path().join("out/dead.jsonl");
    let dead = DeadLetterFileSink::create(&dead_path).unwrap();
    let dead_written = dead.written();

    let report = Pipeline::from_iter(source.lines())
        .try_map(move |line: Line| decoder.decode(line))
        .name("decode")
        .dead_letter(DeadLetters::new(dead))
        .map(|record: Record| {
            // Carry the origin into the output, to check it.
            let origin = record.origin.clone().unwrap();
            Record::new(json!({"value": record.value, "file": &*origin.file, "line": origin.line}))
        })
        .sink(sink)
        .run()
        .await
        .unwrap();
    assert!(progress.error().is_none());
    assert_eq!(report.delivered + report.dead_lettered, 1200);
    assert_eq!(report.dead_lettered as usize, bad.len());
    assert_eq!(dead_written.get() as usize, bad.len());

    let mut seen = BTreeSet::new();
    let mut parts: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("records-"))
        .collect();
    parts.sort();
    assert!(parts.len() > 1, "rotated: {parts:?}");
    for part in &parts {
        for text in std::fs::read_to_string(part).unwrap().lines() {
            let v: Value = serde_json::from_str(text).unwrap();
            let key = (
                v["file"].as_str().unwrap().to_owned(),
                v["line"].as_u64().unwrap(),
            );
            // The value is the line's, decoded: it names its own file number and line.
            assert_eq!(v["value"]["l"].as_u64(), Some(key.1));
            assert!(seen.insert(key), "twice in the output");
        }
    }
    let mut dead_seen = BTreeSet::new();
    for text in std::fs::read_to_string(&dead_path).unwrap().lines() {
        let letter: Value = serde_json::from_str(text).unwrap();
        assert_eq!(letter["stage"], "decode");
        let origin = &letter["item"]["origin"];
        let key = (
            origin["file"].as_str().unwrap().to_owned(),
            origin["line"].as_u64().unwrap(),
        );
        let error = letter["error"].as_str().unwrap();
        assert!(error.starts_with(&format!("{}:{}:", key.0, key.1)), "{error}");
        assert!(dead_seen.insert(key), "twice in the dead letters");
    }
    assert_eq!(dead_seen, bad);
    assert!(seen.is_disjoint(&dead_seen));
    let all: BTreeSet<_> = seen.union(&dead_seen).cloned().collect();
    assert_eq!(all, want);
}

#[tokio::test(start_paused = true)]
async fn a_generator_feeds_a_file_sink_at_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gen.jsonl");
    let started = tokio::time::Instant::now();
    let generator = weir_io::generate::Generator::new(|i| {
        if i == 3 {
            Err("template failed".to_owned())
        } else {
            Ok(json!({"i": i}))
        }
    })
    .count(5)
    .rate(50.0);
    let sink = FileSink::create(FileSinkConfig::new(&path)).unwrap();
    let report = Pipeline::merge([generator.into_source()])
        .try_map(|r| r)
        .on_error(weir::ErrorPolicy::Skip)
        .sink(sink)
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.failed), (4, 1));
    assert_eq!(started.elapsed().as_millis(), 80); // items at 0, 20, 40, 60, 80 ms
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n{\"i\":4}\n"
    );
}
