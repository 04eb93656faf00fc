//! The stdin source on a real pipe: this test binary runs itself as a
//! child with its standard input piped, reads it with `StdinSource`, and
//! must end at end of input.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use weir_io::stdin::StdinSource;
use weir_io::Format;

/// Set in the child's environment: how to read (`lines` or `stream`).
const MODE: &str = "WEIR_IO_STDIN_MODE";
/// Marks the child's report lines (the test harness prints its own,
/// sometimes on the same line).
const MARK: &str = "@@";

/// The child's side: reads stdin and prints what it read. Ignored unless
/// run by [`run_child`].
#[test]
#[ignore = "run as a child process by the stdin tests"]
fn stdin_child() {
    let Ok(mode) = std::env::var(MODE) else {
        return;
    };
    let source = StdinSource::new().format(Format::JsonLines);
    let decoder = source.decoder();
    let lines: Vec<weir_io::Line> = match mode.as_str() {
        "lines" => {
            let mut lines = source.lines();
            let all = lines.by_ref().collect();
            assert!(lines.error().is_none());
            all
        }
        _ => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let stream = source.into_stream();
                let progress = stream.progress();
                let all = weir::Pipeline::from_stream(stream).collect().await.unwrap();
                assert!(progress.error().is_none());
                all
            })
        }
    };
    for line in lines {
        let origin = line.origin.clone();
        let value = decoder
            .decode(line)
            .map(|r| r.value.to_string())
            .unwrap_or_else(|e| e.to_string());
        println!("{MARK}{origin} {value}");
    }
}

/// Runs [`stdin_child`] in `mode` with `input` on its stdin; its report
/// lines. Fails if the child does not end within a minute.
fn run_child(mode: &str, input: &'static [u8]) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "stdin_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MODE, mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        stdin.write_all(input).unwrap();
        // Dropped here: end of input.
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child still reads stdin a minute after its end: it hangs")
        .unwrap();
    assert!(output.status.success(), "child failed: {:?}", output.status);
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.find(MARK).map(|at| l[at + MARK.len()..].to_owned()))
        .collect()
}

const INPUT: &[u8] = b"{\"a\":1}\n\n[2]\nnope\n\"last\"";

fn want() -> Vec<String> {
    vec![
        "<stdin>:1 {\"a\":1}".to_owned(),
        "<stdin>:3 [2]".to_owned(),
        "<stdin>:4 <stdin>:4:2: invalid JSON: expected ident".to_owned(),
        "<stdin>:5 \"last\"".to_owned(),
    ]
}

#[test]
fn piped_stdin_is_read_line_by_line_on_the_calling_thread_and_ends_at_eof() {
    assert_eq!(run_child("lines", INPUT), want());
}

#[test]
fn piped_stdin_read_as_a_stream_feeds_a_pipeline_that_ends_at_eof() {
    assert_eq!(run_child("stream", INPUT), want());
}
