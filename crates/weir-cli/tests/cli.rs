//! The `weir` binary, run for real in temporary directories: every
//! command, exit codes, error messages with positions, bad inputs,
//! signals, broken pipes.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

fn weir(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("weir").expect("the weir binary");
    cmd.current_dir(dir);
    cmd.env_remove("WEIR_EXAMPLES");
    cmd
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Out {
    let out = cmd.output().expect("weir runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `weir` in `dir` with `args` (split at spaces).
fn weir_run(dir: &Path, args: &str) -> Out {
    run(weir(dir).args(args.split_whitespace()))
}

/// `out` ended with `code` and its stderr says `text`.
fn says(out: &Out, code: i32, text: &str) {
    assert_eq!(out.code, code, "{}", out.stderr);
    assert!(out.stderr.contains(text), "wanted `{text}` in:\n{}", out.stderr);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// The `n` of each JSON line of `stdout`.
fn numbers(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["n"].as_u64().unwrap())
        .collect()
}

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn repo_examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

const PASS_THROUGH: &str = r#"
[[source]]
type = "file"
path = "in.jsonl"

[sink]
type = "file"
path = "out/out.jsonl"
"#;

#[test]
fn the_quickstart_runs_on_the_bundled_sample_and_accounts_for_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(weir(dir.path())
        .arg("run")
        .arg(repo_examples().join("quickstart.toml"))
        .args(["--quiet", "--events", "events.jsonl"])
        .env("WEIR_EXAMPLES", repo_examples()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let events = lines(&dir.path().join("out/events.jsonl"));
    let dead = lines(&dir.path().join("out/dead.jsonl"));
    let per_service = lines(&dir.path().join("out/per_service.jsonl"));
    assert!(events.len() > 20_000, "{}", events.len());
    assert!(!dead.is_empty());
    // Every dead letter names its stage and the raw line's file:line.
    for d in &dead {
        assert_eq!(d["stage"], "parse", "{d}");
        let file = d["item"]["origin"]["file"].as_str().unwrap();
        assert!(file.ends_with(".jsonl.gz"), "{d}");
        assert!(d["item"]["origin"]["line"].as_u64().unwrap() >= 1);
        assert!(d["error"].as_str().unwrap().contains(".jsonl.gz:"), "{d}");
    }
    // Per-service windows add up to the events written.
    let counted: u64 = per_service.iter().map(|r| r["requests"].as_u64().unwrap()).sum();
    assert_eq!(counted, events.len() as u64);
    assert!(events
        .iter()
        .all(|e| e["level"] != "debug" && e.get("path").is_some()));
    // The report accounts for every one of the 40,000 lines.
    assert!(out.stderr.contains("40,000 pulled"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("{} dead-lettered", dead.len())),
        "{}",
        out.stderr
    );
    // The event log replays.
    let replay = run(weir(dir.path()).args(["replay", "events.jsonl"]));
    assert_eq!(replay.code, 0, "{}", replay.stderr);
    assert!(replay.stdout.contains("40,000 pulled"), "{}", replay.stdout);
}

#[test]
fn weir_test_passes_the_quickstart_cases_and_fails_a_wrong_one_with_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(weir(dir.path())
        .arg("test")
        .arg(repo_examples().join("quickstart.toml")));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("3 passed, 0 failed"), "{}", out.stdout);

    write(
        dir.path(),
        "t.toml",
        r#"
[[source]]
type = "file"
path = "in.jsonl"
[[stage]]
type = "map"
jq = '. * 2'
[sink]
type = "stdout"
[[test]]
name = "doubles"
input = [1, 2]
expect = [2, 4]
[[test]]
name = "wrong on purpose"
input = [1, 2]
expect = [2, 5]
"#,
    );
    let out = run(weir(dir.path()).args(["test", "t.toml"]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("ok    doubles"), "{}", out.stdout);
    assert!(out.stdout.contains("FAIL  wrong on purpose"), "{}", out.stdout);
    assert!(out.stdout.contains("    - 5\n    + 4"), "{}", out.stdout);
}

#[test]
fn check_shows_every_problem_with_position_and_the_nearest_name() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "bad.toml",
        r#"[[source]]
type = "file"
path = "in.jsonl"

[[stage]]
type = "fliter"
jq = ".a"

[[stage]]
type = "map"
jq = ".a |"
concurency = 4

[pipeline]
capacity = "lots"
"#,
    );
    let out = run(weir(dir.path()).args(["check", "bad.toml"]));
    assert_eq!(out.code, 2);
    let e = &out.stderr;
    assert!(
        e.contains("bad.toml:6:8: stage[0].type: unknown stage type \"fliter\" (did you mean \"filter\"?)"),
        "{e}"
    );
    assert!(
        e.contains("bad.toml:11:6: stage[1].jq: invalid jq expression"),
        "{e}"
    );
    assert!(
        e.contains(
            "bad.toml:12:1: stage[1].concurency: unknown key `concurency` (did you mean `concurrency`?)"
        ),
        "{e}"
    );
    assert!(
        e.contains("bad.toml:15:12: pipeline.capacity: expected integer, found \"lots\""),
        "{e}"
    );
}

#[test]
fn yaml_configs_get_the_same_checks_with_their_own_positions() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.jsonl", "{\"a\":1}\n");
    write(
        dir.path(),
        "p.yaml",
        "source:\n  - type: file\n    path: in.jsonl\nstage:\n  - type: mapp\n    jq: .a\n",
    );
    let out = run(weir(dir.path()).args(["check", "p.yaml"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("p.yaml:5:11: stage[0].type: unknown stage type \"mapp\" (did you mean \"map\"?)"),
        "{}",
        out.stderr
    );
    write(
        dir.path(),
        "ok.yaml",
        "source:\n  - type: file\n    path: in.jsonl\nstage:\n  - type: map\n    jq: '{b: .a}'\nsink:\n  type: file\n  path: out.jsonl\n",
    );
    let out = run(weir(dir.path()).args(["run", "ok.yaml", "--quiet"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        lines(&dir.path().join("out.jsonl")),
        [serde_json::json!({"b": 1})]
    );
}

#[test]
fn undefined_variables_are_errors_and_defaults_apply() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.jsonl", "{\"a\":1}\n");
    let cfg = "[[source]]\ntype = \"file\"\npath = \"${INPUT}\"\n[sink]\ntype = \"file\"\npath = \"${OUT_DIR:-out}/x.jsonl\"\n";
    write(dir.path(), "p.toml", cfg);
    let out = run(weir(dir.path()).args(["run", "p.toml"]).env_remove("INPUT"));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("p.toml:3:8: source[0].path: environment variable `INPUT` is not set"),
        "{}",
        out.stderr
    );
    let out = run(weir(dir.path())
        .args(["run", "p.toml", "--quiet"])
        .env("INPUT", "in.jsonl"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(lines(&dir.path().join("out/x.jsonl")).len(), 1);
}

#[test]
fn missing_inputs_glob_without_matches_and_directories_are_config_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("adir")).unwrap();
    for (path, expect) in [
        ("nope.jsonl", "nope.jsonl"),
        ("logs/*.jsonl", "logs/*.jsonl"),
        ("adir", "adir"),
    ] {
        write(
            dir.path(),
            "p.toml",
            &format!("[[source]]\ntype = \"file\"\npath = \"{path}\"\n"),
        );
        let out = run(weir(dir.path()).args(["run", "p.toml"]));
        assert_eq!(out.code, 2, "{path}: {}", out.stderr);
        assert!(
            out.stderr.contains("p.toml:3:8: source[0].path:"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains(expect), "{}", out.stderr);
        let check = run(weir(dir.path()).args(["check", "p.toml"]));
        assert_eq!(check.code, 2, "{path}: {}", check.stderr);
    }
}

#[test]
fn an_unwritable_output_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.jsonl", "{}\n");
    write(dir.path(), "blocker", "a file, not a directory");
    write(
        dir.path(),
        "p.toml",
        "[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n[sink]\ntype = \"file\"\npath = \"blocker/out.jsonl\"\n",
    );
    let out = run(weir(dir.path()).args(["run", "p.toml"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("sink.path"), "{}", out.stderr);
    assert!(out.stderr.contains("blocker"), "{}", out.stderr);
}

#[test]
fn malformed_json_invalid_utf8_and_overlong_lines_are_dead_lettered_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = b"{\"n\":1}\n{\"n\":\n".to_vec();
    input.extend_from_slice(b"{\"s\":\"\xff\xfe\"}\n");
    input.extend_from_slice(format!("{{\"long\":\"{}\"}}\n", "x".repeat(5000)).as_bytes());
    input.extend_from_slice(b"{\"n\":5}");
    std::fs::write(dir.path().join("in.jsonl"), &input).unwrap();
    // Decoded in the `parse` stage, and on decoding threads: the same result.
    for threads in [1, 3] {
        write(
            dir.path(),
            "p.toml",
            &format!(
                r#"
[pipeline]
on_error = "dead_letter"
[[source]]
type = "file"
path = "in.jsonl"
max_line_bytes = 1024
decode_threads = {threads}
[sink]
type = "file"
path = "out.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#
            ),
        );
        let out = run(weir(dir.path()).args(["run", "p.toml", "--quiet"]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            lines(&dir.path().join("out.jsonl")),
            [serde_json::json!({"n": 1}), serde_json::json!({"n": 5})]
        );
        let dead = lines(&dir.path().join("dead.jsonl"));
        let at: Vec<u64> = dead
            .iter()
            .map(|d| d["item"]["origin"]["line"].as_u64().unwrap())
            .collect();
        assert_eq!(at, [2, 3, 4]);
        assert!(
            dead[0]["error"].as_str().unwrap().contains("in.jsonl:2:"),
            "{}",
            dead[0]
        );
        assert!(
            dead[2]["item"]["text"].as_str().unwrap().len() < 2048,
            "the long line is not kept whole"
        );
        assert!(out.stderr.contains("3 dead-lettered"), "{}", out.stderr);
        assert!(out.stderr.contains("dead.jsonl"), "{}", out.stderr);
    }
}

#[test]
fn fail_fast_stops_with_exit_1_and_names_the_stage_item_and_position() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.jsonl", "{\"n\":1}\n{\"n\":\"two\"}\n{\"n\":3}\n");
    write(
        dir.path(),
        "p.toml",
        "[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n[[stage]]\ntype = \"map\"\nname = \"double\"\njq = '.n + 1'\n",
    );
    let out = run(weir(dir.path()).args(["run", "p.toml", "--quiet"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("double"), "{}", out.stderr);
    assert!(out.stderr.contains(".n + 1"), "{}", out.stderr);
    assert!(out.stderr.contains("in.jsonl:2"), "{}", out.stderr);
    // With skip, the run goes on.
    write(
        dir.path(),
        "p.toml",
        "[pipeline]\non_error = \"skip\"\n[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n[[stage]]\ntype = \"map\"\nname = \"double\"\njq = '.n + 1'\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let out = run(weir(dir.path()).args(["run", "p.toml", "--quiet"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        lines(&dir.path().join("out.jsonl")),
        [serde_json::json!(2), serde_json::json!(4)]
    );
}

#[test]
fn an_empty_file_is_a_run_of_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.jsonl", "");
    write(dir.path(), "p.toml", PASS_THROUGH);
    let out = run(weir(dir.path()).args(["run", "p.toml", "--quiet"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/out.jsonl")).unwrap(),
        ""
    );
    assert!(out.stderr.contains("0 pulled"), "{}", out.stderr);
}

#[test]
fn csv_in_csv_out_with_typed_columns_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.csv", "name,age,ok\nada,36,true\nbob,x,false\n");
    write(
        dir.path(),
        "p.toml",
        r#"
[pipeline]
on_error = "skip"
[[source]]
type = "file"
path = "in.csv"
format = "csv"
csv = { columns = { age = "integer" } }
[[stage]]
type = "map"
jq = '{name, next: (.age + 1)}'
[sink]
type = "file"
path = "out.csv.gz"
format = "csv"
"#,
    );
    let out = run(weir(dir.path()).args(["run", "p.toml", "--quiet"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut text = String::new();
    flate_read(&dir.path().join("out.csv.gz"), &mut text);
    assert_eq!(text, "name,next\nada,37\n");
    assert!(out.stderr.contains("1 failed"), "{}", out.stderr);
}

fn flate_read(path: &Path, out: &mut String) {
    // gunzip with the system tool: the test needs no compression crate.
    let o = Command::new("gzip").arg("-dc").arg(path).output().expect("gzip");
    out.push_str(&String::from_utf8(o.stdout).unwrap());
}

#[test]
fn stdin_to_stdout_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.toml",
        "[[source]]\ntype = \"stdin\"\nformat = \"lines\"\n[[stage]]\ntype = \"map\"\njq = 'ascii_upcase'\n[sink]\ntype = \"stdout\"\n",
    );
    let mut child = weir(dir.path())
        .args(["run", "p.toml", "--quiet", "--limit", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"a\nb\nc\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "\"A\"\n\"B\"\n");
}

#[test]
fn json_mode_prints_the_event_stream_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.toml",
        "[[source]]\ntype = \"generate\"\ncount = 100\n[[stage]]\ntype = \"filter\"\njq = '.id % 2 == 0'\n",
    );
    let out = run(weir(dir.path()).args(["run", "p.toml", "--json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let events: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events.first().unwrap()["type"],
        "pipeline_started",
        "{}",
        out.stdout
    );
    let last = events.last().unwrap();
    assert_eq!(last["type"], "pipeline_finished", "{last}");
    assert!(events.iter().all(|e| e["version"].is_u64()));
}

#[test]
fn off_a_terminal_progress_is_plain_lines_and_the_report_names_the_bottleneck() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.toml",
        "[[source]]\ntype = \"generate\"\ncount = 40\nrate = 40.0\n[[stage]]\ntype = \"map\"\njq = '{id}'\n",
    );
    let out = run(weir(dir.path()).args(["run", "p.toml", "--progress-every", "200ms"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let progress = out
        .stderr
        .lines()
        .filter(|l| l.starts_with('[') && l.contains("items"))
        .count();
    assert!(progress >= 2, "{}", out.stderr);
    assert!(
        !out.stderr.contains('\u{1b}'),
        "no escape codes off a terminal: {}",
        out.stderr
    );
    assert!(out.stderr.contains("40 pulled, 40 delivered"), "{}", out.stderr);
}

#[test]
fn the_first_sigint_drains_and_keeps_every_item_read() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.toml",
        "[[source]]\ntype = \"generate\"\nrate = 200.0\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let child = weir(dir.path())
        .args(["run", "p.toml", "--progress-every", "100ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let status = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGINT: draining"), "{stderr}");
    assert!(stderr.contains("drained (SIGINT)"), "{stderr}");
    let written = lines(&dir.path().join("out.jsonl"));
    assert!(written.len() > 10, "{}", written.len());
    // Every item pulled before the signal was delivered, in order.
    for (i, v) in written.iter().enumerate() {
        assert_eq!(v["id"], i as u64);
    }
    assert!(
        stderr.contains(&format!(
            "{} pulled, {} delivered",
            fmt(written.len()),
            fmt(written.len())
        )),
        "{stderr}"
    );
}

fn fmt(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn a_closed_stdout_ends_the_run_quietly_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.toml",
        "[[source]]\ntype = \"generate\"\n[sink]\ntype = \"stdout\"\n",
    );
    let mut child = weir(dir.path())
        .args(["run", "p.toml", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is dropped here: like `| head -1`.
    assert_eq!(first, "{\"id\":0}\n");
    let start = Instant::now();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(!err.contains("failed"), "{err}");
}

#[test]
fn graph_renders_dot_and_mermaid_with_settings() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = repo_examples().join("quickstart.toml");
    let out = run(weir(dir.path()).arg("graph").arg(&cfg));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("digraph weir {"), "{}", out.stdout);
    assert!(out.stdout.contains("interesting (filter)"), "{}", out.stdout);
    assert!(out.stdout.contains("window = \\\"250ms\\\""), "{}", out.stdout);
    let out = run(weir(dir.path())
        .arg("graph")
        .arg(&cfg)
        .args(["--format", "mermaid"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("flowchart LR"), "{}", out.stdout);
    assert!(out.stdout.contains("branch per_service"), "{}", out.stdout);
}

#[test]
fn stages_lists_every_type_with_options_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(weir(dir.path()).arg("stages"));
    assert_eq!(out.code, 0);
    for needle in [
        "map",
        "filter",
        "flat_map",
        "dedup",
        "aggregate",
        "route",
        "broadcast",
        "rate_limit",
        "max_line_bytes",
        "(default: 16MiB)",
        "circuit_breaker",
    ] {
        assert!(out.stdout.contains(needle), "{needle}");
    }
}

#[test]
fn usage_errors_exit_2_and_completions_print() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(weir(dir.path()).args(["run"])).code, 2);
    assert_eq!(run(weir(dir.path()).args(["frobnicate"])).code, 2);
    let out = run(weir(dir.path()).args(["completions", "bash"]));
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("weir"));
    let out = run(weir(dir.path()).args(["run", "missing.toml"]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("missing.toml"), "{}", out.stderr);
}

#[test]
fn route_sends_items_to_named_branches_and_unmatched_items_fail_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "in.jsonl",
        "{\"l\":\"e\"}\n{\"l\":\"i\"}\n{\"l\":\"e\"}\n{\"l\":\"w\"}\n",
    );
    write(
        dir.path(),
        "p.toml",
        r#"
[pipeline]
on_error = "dead_letter"
[[source]]
type = "file"
path = "in.jsonl"
[[stage]]
type = "route"
[[stage.route]]
name = "errors"
when = '.l == "e"'
sink = { type = "file", path = "errors.jsonl" }
[[stage.route]]
name = "infos"
when = '.l == "i"'
[[stage.route.stage]]
type = "map"
jq = '.l'
[stage.route.sink]
type = "file"
path = "infos.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
    );
    let out = run(weir(dir.path()).args(["run", "p.toml", "--quiet"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(lines(&dir.path().join("errors.jsonl")).len(), 2);
    assert_eq!(lines(&dir.path().join("infos.jsonl")), [serde_json::json!("i")]);
    let dead = lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["error"].as_str().unwrap().contains("no route matched"));
}

#[test]
fn metrics_are_served_in_the_prometheus_format_while_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.toml",
        "[[source]]\ntype = \"generate\"\ncount = 60\nrate = 40.0\n[[stage]]\ntype = \"map\"\nname = \"shape\"\njq = '{id}'\n",
    );
    let mut child = weir(dir.path())
        .args(["run", "p.toml", "--metrics-addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no metrics address printed"
        );
        if let Some(rest) = line.trim().strip_prefix("metrics on http://") {
            break rest.trim_end_matches("/metrics").to_owned();
        }
    };
    let mut conn = std::net::TcpStream::connect(&url).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    conn.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.") && body.contains(" 200"), "{body}");
    assert!(body.contains("stage=\"shape\""), "{body}");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
}

#[test]
fn sigterm_drains_like_sigint() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.toml",
        "[[source]]\ntype = \"generate\"\nrate = 100.0\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let child = weir(dir.path())
        .args(["run", "p.toml", "--quiet"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("drained (SIGTERM)"), "{stderr}");
    assert!(
        dir.path().join("out.jsonl").exists(),
        "the output is renamed into place after a drain"
    );
}

#[test]
fn several_sources_are_merged_and_a_rotated_output_keeps_every_item() {
    let dir = tempfile::tempdir().unwrap();
    let a: String = (0..300)
        .map(|i| format!("{{\"src\":\"a\",\"n\":{i}}}\n"))
        .collect();
    write(dir.path(), "a.jsonl", &a);
    write(dir.path(), "b.csv", "src,n\nb,1\nb,2\n");
    write(
        dir.path(),
        "p.toml",
        r#"
[[source]]
type = "file"
path = "a.jsonl"
[[source]]
type = "file"
path = "b.csv"
format = "csv"
[[source]]
type = "generate"
count = 5
template = '{src: "g", n: .}'
[sink]
type = "file"
path = "out/all.jsonl"
rotate_bytes = 2000
"#,
    );
    let out = run(weir(dir.path()).args(["run", "p.toml", "--quiet"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut parts: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    parts.sort();
    assert!(parts.len() > 1, "{parts:?}");
    assert!(
        parts.iter().all(|p| !p.to_string_lossy().ends_with(".tmp")),
        "{parts:?}"
    );
    let all: Vec<Value> = parts.iter().flat_map(|p| lines(p)).collect();
    let count = |src: &str| all.iter().filter(|v| v["src"] == src).count();
    assert_eq!((count("a"), count("b"), count("g")), (300, 2, 5));
    assert!(out.stderr.contains("307 pulled, 307 delivered"), "{}", out.stderr);
}

#[test]
fn a_reshape_written_as_text_ahead_writes_the_same_bytes_as_the_decoded_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = String::new();
    for i in 0..2000 {
        input.push_str(&match i % 6 {
            0 => format!("{{\"ts\":\"t{i}\",\"level\":\"warn\",\"http\":{{\"path\":\"/a\\u00e9\\/\",\"m\":1}},\"ms\":{i}.50}}\n"),
            1 => format!("{{\"ts\":{i},\"level\":\"error\",\"http\":null,\"ms\":-0}}\n"),
            2 => "{\"level\":\"error\",\"http\":\"text\",\"ms\":1}\n".to_owned(), // `.http.path` of a string: jq's error
            3 => format!("{{\"ts\":\"t{i}\",\"level\":\"info\",\"http\":{{\"path\":\"/b\"}},\"ms\":0.25}}\n"),
            4 => format!("{{\"ts\":[{i},{{\"b\":1,\"a\":2.0}}],\"level\":\"warn\",\"ms\":1e2}}\n"),
            _ => format!("{{\"ts\":\"t{i}\",\"level\":\"debug\",\"http\":{{\"path\":\"/c\"}},\"ms\":{i}}}\n"),
        });
    }
    write(dir.path(), "in.jsonl", &input);
    let mut outputs = Vec::new();
    for (threads, format) in [(1, "jsonl"), (3, "jsonl"), (1, "csv"), (3, "csv")] {
        write(
            dir.path(),
            "p.toml",
            &format!(
                r#"
[pipeline]
on_error = "skip"
[[source]]
type = "file"
path = "in.jsonl"
decode_threads = {threads}
[[stage]]
type = "filter"
jq = '.level != "info"'
[[stage]]
type = "map"
name = "shape"
jq = '{{ts, path: .http.path, ms, level, ms2: .ms}}'
[sink]
type = "file"
path = "out-{threads}.{format}"
format = "{format}"
"#
            ),
        );
        let out = run(weir(dir.path()).args(["run", "p.toml", "--quiet"]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        let shape = out
            .stderr
            .lines()
            .find(|l| l.trim_start().starts_with("shape "))
            .unwrap();
        let shape: Vec<&str> = shape.split_whitespace().take(6).collect();
        // 1667 kept by the filter, 333 of them fail `.http.path`.
        assert_eq!(
            shape,
            ["shape", "map", "1,667", "1,334", "0", "333"],
            "{}",
            out.stderr
        );
        outputs.push(std::fs::read_to_string(dir.path().join(format!("out-{threads}.{format}"))).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[2], outputs[3]);
    assert!(
        outputs[0].starts_with(r#"{"level":"warn","ms":0.5,"ms2":0.5,"path":"/aé/","ts":"t0"}"#),
        "{}",
        outputs[0]
    );
    assert!(outputs[0].contains(r#"{"level":"error","ms":-0.0,"ms2":-0.0,"path":null,"ts":1}"#));
    assert!(outputs[0]
        .contains(r#"{"level":"warn","ms":100.0,"ms2":100.0,"path":null,"ts":[4,{"a":2.0,"b":1}]}"#));
    assert!(
        outputs[2].starts_with("level,ms,ms2,path,ts\nwarn,0.5,0.5,/aé/,t0\n"),
        "{}",
        outputs[2]
    );
}

#[test]
fn working_ahead_on_decoding_threads_changes_no_count_no_output_and_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = String::new();
    for i in 0..3000 {
        input.push_str(&match i % 7 {
            0 => format!("{{\"n\":{i},\"level\":\"error\"}}\n"),
            1 => "{broken\n".to_owned(),
            2 => format!("{{\"n\":\"x{i}\",\"level\":\"warn\"}}\n"),
            3 => format!("{{\"n\":\"s{i}\",\"level\":\"info\"}}\n"), // `.n % 2` on a string: an error
            _ => format!("{{\"n\":{i},\"level\":\"info\",\"pad\":[1,2,3]}}\n"),
        });
    }
    write(dir.path(), "in.jsonl", &input);
    let mut reports = Vec::new();
    for threads in [1, 3] {
        write(
            dir.path(),
            "p.toml",
            &format!(
                r#"
[pipeline]
on_error = "skip"
[[source]]
type = "file"
path = "in.jsonl"
decode_threads = {threads}
[[stage]]
type = "filter"
name = "not_info"
jq = '.level != "info" or .n % 2 == 0'
[[stage]]
type = "filter"
name = "small"
jq = '.n < 2500 or (.n | type) == "string"'
[[stage]]
type = "map"
name = "double"
jq = '{{n2: (.n * 2), level}}'
[sink]
type = "file"
path = "out-{threads}.jsonl"
"#
            ),
        );
        let out = run(weir(dir.path()).args(["run", "p.toml", "--quiet"]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        let table: Vec<String> = out
            .stderr
            .lines()
            .filter(|l| {
                ["parse", "not_info", "small", "double", "sink"]
                    .iter()
                    .any(|s| l.trim_start().starts_with(s))
            })
            .map(|l| l.split_whitespace().take(7).collect::<Vec<_>>().join(" "))
            .collect();
        reports.push(table);
    }
    assert_eq!(reports[0], reports[1]);
    assert!(
        reports[0].iter().any(|l| l.starts_with("double map")),
        "{:?}",
        reports[0]
    );
    // Every kind of outcome happened: parse failures, a filter's errors, drops.
    let failed = |name: &str| {
        let row = reports[0]
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        row.split(' ').nth(5).unwrap().to_owned()
    };
    assert_eq!(
        (failed("parse"), failed("not_info")),
        ("429".to_owned(), "429".to_owned())
    );
    assert_eq!(
        lines(&dir.path().join("out-1.jsonl")),
        lines(&dir.path().join("out-3.jsonl"))
    );
}

#[test]
fn a_checkpointed_run_resumes_where_the_last_one_stopped_and_reports_a_replaced_input() {
    let dir = tempfile::tempdir().unwrap();
    // Big enough that the second run commits while it runs (1 ms apart).
    let input: String = (1..=50_000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    write(dir.path(), "in.jsonl", &input);
    write(
        dir.path(),
        "p.toml",
        r#"
[[source]]
type = "file"
path = "in.jsonl"
[[stage]]
type = "filter"
jq = '.n % 2 == 0'
[[stage]]
type = "map"
jq = '{n}'
[sink]
type = "stdout"
[checkpoint]
path = "state/ck.db"
interval = "1ms"
"#,
    );
    // Stopped after 1200 lines: the next run reads from line 1201 on.
    let first = run(weir(dir.path()).args(["run", "p.toml", "--quiet", "--limit", "1200"]));
    assert_eq!(first.code, 0, "{}", first.stderr);
    let listed = run(weir(dir.path()).args(["checkpoints", "state/ck.db"]));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains("in.jsonl") && listed.stdout.contains(" 1200 "),
        "{}",
        listed.stdout
    );
    let second = run(weir(dir.path()).args(["run", "p.toml", "--quiet", "--events", "ev.jsonl"]));
    assert_eq!(second.code, 0, "{}", second.stderr);
    // Its commits are events of the run: the source and each file's position.
    let commits: Vec<Value> = lines(&dir.path().join("ev.jsonl"))
        .into_iter()
        .filter(|e| e["type"] == "checkpoint_committed")
        .collect();
    assert!(!commits.is_empty());
    for c in &commits {
        let position: Value = serde_json::from_str(c["position"].as_str().unwrap()).unwrap();
        assert!(position["files"][0]["offset"].as_u64().unwrap() > 0, "{position}");
    }
    let (a, b) = (numbers(&first.stdout), numbers(&second.stdout));
    assert_eq!(a, (2..=1200).step_by(2).collect::<Vec<u64>>());
    assert_eq!(b, (1202..=50_000).step_by(2).collect::<Vec<u64>>());
    // Done: a third run reads nothing; --from-start reads everything again.
    let third = run(weir(dir.path()).args(["run", "p.toml", "--quiet"]));
    assert_eq!((third.code, third.stdout.as_str()), (0, ""), "{}", third.stderr);
    let again = run(weir(dir.path()).args(["run", "p.toml", "--quiet", "--from-start"]));
    assert_eq!(numbers(&again.stdout).len(), 25_000, "{}", again.stderr);

    // The input replaced by another file: reported, nothing read.
    write(dir.path(), "new.jsonl", &input);
    std::fs::rename(dir.path().join("new.jsonl"), dir.path().join("in.jsonl")).unwrap();
    let replaced = run(weir(dir.path()).args(["run", "p.toml", "--quiet"]));
    assert_eq!(replaced.code, 2, "{}", replaced.stderr);
    assert!(
        replaced.stderr.contains("replaced or rotated") && replaced.stderr.contains("--from-start"),
        "{}",
        replaced.stderr
    );
    assert_eq!(replaced.stdout, "");
}

const RESUMABLE: &str = r#"
[pipeline]
event_level = "items"
[[source]]
type = "file"
path = "a.jsonl"
[[source]]
type = "file"
path = "b.jsonl"
[[stage]]
type = "filter"
jq = '.n % 3 != 0'
[sink]
type = "stdout"
"#;

#[test]
fn a_run_resumed_from_event_logs_skips_exactly_what_the_past_runs_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let a: String = (1..=2000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    let b: String = (10_001..=11_000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    write(dir.path(), "a.jsonl", &a);
    write(dir.path(), "b.jsonl", &b);
    write(dir.path(), "p.toml", RESUMABLE);
    let sorted = |mut v: Vec<u64>| {
        v.sort_unstable();
        v
    };
    // Each run logs its events and resumes from the logs before it.
    let delivered = |args: &str| {
        let out = run(weir(dir.path()).args(format!("run p.toml --quiet {args}").split_whitespace()));
        assert_eq!(out.code, 0, "{args}: {}", out.stderr);
        numbers(&out.stdout)
    };
    let one = delivered("--limit 900 --events ev1.jsonl");
    let two = delivered("--limit 700 --events ev2.jsonl --resume-from-events ev1.jsonl");
    let three = delivered("--events ev3.jsonl --resume-from-events ev1.jsonl --resume-from-events ev2.jsonl");
    assert!(!one.is_empty() && !two.is_empty() && !three.is_empty());
    // Every item exactly once over the three runs.
    let all = sorted([one, two, three].concat());
    let wanted: Vec<u64> = (1..=2000).chain(10_001..=11_000).filter(|n| n % 3 != 0).collect();
    assert_eq!(all, wanted);
    // Nothing left: a fourth run delivers nothing.
    let logs = "--resume-from-events ev1.jsonl --resume-from-events ev2.jsonl --resume-from-events ev3.jsonl";
    assert_eq!(delivered(logs), Vec::<u64>::new());
}

#[test]
fn resuming_from_events_refuses_what_would_lose_or_misread_items() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.jsonl", "{\"n\":1}\n");
    write(dir.path(), "b.jsonl", "{\"n\":2}\n");
    write(dir.path(), "p.toml", RESUMABLE);
    let plain = RESUMABLE.replace("event_level = \"items\"", "event_level = \"progress\"");
    write(dir.path(), "plain.toml", &plain);
    let made = weir_run(dir.path(), "run plain.toml --quiet --events progress.jsonl");
    assert_eq!(made.code, 0, "{}", made.stderr);
    let out = weir_run(
        dir.path(),
        "run p.toml --quiet --resume-from-events progress.jsonl",
    );
    says(&out, 2, "event_level = \"items\"");
    // The same file to resume from and to write: refused before it is overwritten.
    let out = weir_run(
        dir.path(),
        "run p.toml --quiet --resume-from-events progress.jsonl --events progress.jsonl",
    );
    says(&out, 2, "would overwrite the log it resumes from");
    assert!(!std::fs::read_to_string(dir.path().join("progress.jsonl"))
        .unwrap()
        .is_empty());
    // A file sink, and a checkpoint store beside it.
    let file_sink = RESUMABLE.replace("type = \"stdout\"", "type = \"file\"\npath = \"out.jsonl\"");
    write(dir.path(), "file.toml", &file_sink);
    write(
        dir.path(),
        "ok.jsonl",
        "{\"type\":\"item_completed\",\"stage\":\"sink\",\"item\":0,\"key\":0,\"duration_us\":1}\n",
    );
    let out = weir_run(dir.path(), "run file.toml --quiet --resume-from-events ok.jsonl");
    says(&out, 2, "the `file` sink (out.jsonl)");
    let out = weir_run(
        dir.path(),
        "run p.toml --quiet --resume-from-events ok.jsonl --checkpoint ck.db",
    );
    says(&out, 2, "both say where to resume: use one");
    // A broken line in the middle of a log: its file and line.
    write(
        dir.path(),
        "broken.jsonl",
        "{\"type\":\"progress\"}\nnot an event\n{\"type\":\"progress\"}\n",
    );
    let out = weir_run(dir.path(), "run p.toml --quiet --resume-from-events broken.jsonl");
    says(&out, 2, "broken.jsonl:2: not an event");
    // A good log: the item with key 0 (the first line of a.jsonl) is skipped.
    let out = weir_run(dir.path(), "run p.toml --quiet --resume-from-events ok.jsonl");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(numbers(&out.stdout), [2]);
}

#[test]
fn max_in_flight_bounds_the_items_taken_in_before_the_sink_finishes_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let input: String = (1..=3000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    write(dir.path(), "in.jsonl", &input);
    let config = |bound: &str| {
        format!(
            "[pipeline]\nevent_level = \"items\"\n{bound}\n[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             [[stage]]\ntype = \"boundary\"\n[sink]\ntype = \"stdout\"\n"
        )
    };
    // How many items the sink had started when it completed its first
    // (completions come after the flush that stores them): with a bound of
    // 4 in flight, at most 4; without, the whole first chunk.
    let before_first = |bound: &str| {
        write(dir.path(), "p.toml", &config(bound));
        let out = run(weir(dir.path()).args(["run", "p.toml", "--quiet", "--events", "ev.jsonl"]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(numbers(&out.stdout).len(), 3000);
        let events = lines(&dir.path().join("ev.jsonl"));
        let first_done = events
            .iter()
            .position(|e| e["type"] == "item_completed" && e["stage"] == "sink")
            .expect("a sink completion");
        events[..first_done]
            .iter()
            .filter(|e| e["type"] == "item_started" && e["stage"] == "sink")
            .count()
    };
    let bounded = before_first("max_in_flight = 4");
    assert!((1..=4).contains(&bounded), "{bounded}");
    let unbounded = before_first("");
    assert!(
        unbounded > 100,
        "without a bound, whole chunks move at once: {unbounded}"
    );
    write(dir.path(), "zero.toml", &config("max_in_flight = 0"));
    let out = run(weir(dir.path()).args(["check", "zero.toml"]));
    says(
        &out,
        2,
        "zero.toml:3:17: pipeline.max_in_flight: expected at least 1 item in flight, found 0",
    );
}

#[test]
fn checkpoints_refuse_a_file_sink_and_sources_that_cannot_resume() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.jsonl", "{\"n\":1}\n");
    for (body, wanted) in [
        ("[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n", "a `file` sink"),
        ("[[source]]\ntype = \"generate\"\ncount = 3\n", "a `generate` source cannot resume"),
        ("[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n", "exactly one source (a `file`, `sqlite` or `postgres` one)"),
    ] {
        write(dir.path(), "p.toml", body);
        let out = run(weir(dir.path()).args(["run", "p.toml", "--checkpoint", "ck.db", "--quiet"]));
        assert_eq!(out.code, 2, "{body}: {}", out.stderr);
        assert!(out.stderr.contains(wanted), "{body}: {}", out.stderr);
    }
    let missing = run(weir(dir.path()).args(["checkpoints", "none.db"]));
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("no checkpoint store"),
        "{}",
        missing.stderr
    );
}

const SQLITE_UPSERT: &str = r#"
[[source]]
type = "file"
path = "in.jsonl"

[[stage]]
type = "filter"
jq = '.level != "debug"'

[[stage]]
type = "map"
jq = '{id, user, amount, tags}'

[sink]
type = "sqlite"
path = "out/state.db"
table = "orders"
mode = "upsert"
key = ["id"]
on_error = "dead_letter"

[sink.columns]
id = { type = "integer" }
customer = { jq = ".user", type = "text" }
amount = { type = "real" }
tags = { type = "json" }

[dead_letter]
type = "file"
path = "out/dead.jsonl"
"#;

#[test]
fn a_jsonl_file_through_a_filter_into_a_sqlite_upsert_keeps_the_latest_row_per_key() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "in.jsonl",
        concat!(
            "{\"id\": 1, \"user\": \"ann\", \"amount\": 10, \"tags\": [\"a\"], \"level\": \"info\"}\n",
            "{\"id\": 2, \"user\": \"bo\", \"amount\": 5, \"tags\": [], \"level\": \"debug\"}\n",
            "{\"id\": 3, \"user\": \"cy'; DROP TABLE orders; --\", \"amount\": 1.25, \"level\": \"info\"}\n",
            "{\"id\": 1, \"user\": \"ann\", \"amount\": 12.5, \"tags\": [\"a\", \"b\"], \"level\": \"warn\"}\n",
            "{\"id\": 4, \"user\": \"dee\", \"amount\": \"lots\", \"level\": \"info\"}\n",
        ),
    );
    write(dir.path(), "p.toml", SQLITE_UPSERT);
    let read = || {
        let conn = rusqlite::Connection::open(dir.path().join("out/state.db")).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, customer, amount, tags FROM orders ORDER BY id")
            .unwrap();
        let rows: Vec<(i64, String, f64, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows
    };
    let expected = vec![
        (1, "ann".to_owned(), 12.5, Some("[\"a\",\"b\"]".to_owned())),
        (3, "cy'; DROP TABLE orders; --".to_owned(), 1.25, None),
    ];
    // Twice: an upsert run again gives the same table.
    for _ in 0..2 {
        let out = run(weir(dir.path()).args(["run", "p.toml", "--quiet"]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(read(), expected);
        let dead = lines(&dir.path().join("out/dead.jsonl"));
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0]["stage"], "sink");
        assert_eq!(dead[0]["item"]["origin"]["line"], 5);
        let error = dead[0]["error"].as_str().unwrap();
        assert!(
            error.ends_with("in.jsonl:5: column `amount` (real): expected a number, found a string \"lots\""),
            "{error}"
        );
    }
}

#[test]
fn dead_letters_go_to_a_sqlite_table_beside_the_good_rows_and_the_report_names_it() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "in.jsonl",
        concat!(
            "{\"id\": 1, \"user\": \"ann\", \"amount\": 10, \"level\": \"info\"}\n",
            "{\"id\": 4, \"user\": \"dee\", \"amount\": \"lots\", \"level\": \"info\"}\n",
            "not json\n",
        ),
    );
    let config = SQLITE_UPSERT.replace(
        "[dead_letter]\ntype = \"file\"\npath = \"out/dead.jsonl\"",
        "[pipeline]\non_error = \"dead_letter\"\n\n[dead_letter]\ntype = \"sqlite\"\npath = \"out/state.db\"\ntable = \"failed\"",
    );
    write(dir.path(), "p.toml", &config);
    let checked = run(weir(dir.path()).args(["check", "p.toml", "--connect"]));
    assert_eq!(checked.code, 0, "{}", checked.stderr);
    assert!(
        checked
            .stdout
            .contains("dead_letter: sqlite table `failed` in out/state.db: writable"),
        "{}",
        checked.stdout
    );
    let out = run(weir(dir.path()).args(["run", "p.toml"]));
    says(&out, 0, "dead letters: table `failed` in out/state.db (2 items)");
    let conn = rusqlite::Connection::open(dir.path().join("out/state.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT stage, json_extract(item, '$.origin.line'), error, attempts FROM failed ORDER BY item_seq")
        .unwrap();
    let letters: Vec<(String, i64, String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!((letters[0].0.as_str(), letters[0].1), ("sink", 2));
    assert!(letters[0].2.contains("column `amount` (real)"), "{letters:?}");
    assert_eq!(
        (letters[1].0.as_str(), letters[1].1, letters[1].3),
        ("parse", 3, 1)
    );
    let orders: i64 = conn
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(orders, 1);

    // A bad table name is refused before anything is opened.
    write(
        dir.path(),
        "bad.toml",
        &config.replace("table = \"failed\"", "table = \"failed; --\""),
    );
    let out = run(weir(dir.path()).args(["run", "bad.toml", "--quiet"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("dead_letter.table") && out.stderr.contains("not a plain SQL identifier"),
        "{}",
        out.stderr
    );
}

#[test]
fn check_refuses_a_bad_sqlite_sink_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let schema = SQLITE_UPSERT
        .replace("mode = \"upsert\"", "mode = \"upsrt\"")
        .replace("table = \"orders\"\n", "");
    write(dir.path(), "bad.toml", &schema);
    let out = run(weir(dir.path()).args(["check", "bad.toml"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    let e = &out.stderr;
    assert!(
        e.contains("bad.toml:17:8: sink.mode: expected one of \"append\", \"upsert\" or \"replace\", found \"upsrt\" (did you mean \"upsert\"?)"),
        "{e}"
    );
    assert!(
        e.contains("bad.toml:14:1: sink.table: missing required key `table` (string)"),
        "{e}"
    );

    let key_without_upsert = SQLITE_UPSERT.replace("mode = \"upsert\"", "mode = \"append\"");
    write(dir.path(), "key.toml", &key_without_upsert);
    let out = run(weir(dir.path()).args(["check", "key.toml"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("key.toml:19:7: sink.key: `key` is for mode = \"upsert\", not \"append\""),
        "{}",
        out.stderr
    );

    let bad_names = SQLITE_UPSERT
        .replace("table = \"orders\"", "table = \"orders; DROP TABLE x\"")
        .replace("key = [\"id\"]", "key = [\"order_id\"]");
    write(dir.path(), "names.toml", &bad_names);
    let out = run(weir(dir.path()).args(["check", "names.toml"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "names.toml:17:9: sink.table: table name \"orders; DROP TABLE x\" is not a plain SQL identifier"
        ),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("out").exists(), "check opens no database");
    let fixed = bad_names.replace("orders; DROP TABLE x", "orders");
    write(dir.path(), "key2.toml", &fixed);
    let out = run(weir(dir.path()).args(["check", "key2.toml"]));
    assert!(
        out.stderr.contains(
            "sink.key: upsert key column `order_id` is not one of the columns (id, customer, amount, tags)"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn check_connect_opens_every_connector_and_names_the_one_that_fails() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.jsonl", "{\"id\":1}\n");
    write(dir.path(), "blocker", "a file where a directory is wanted");
    let config = |db: &str, dead: &str| {
        format!(
            r#"
[pipeline]
on_error = "dead_letter"
[[source]]
type = "file"
path = "in.jsonl"
[sink]
type = "sqlite"
path = "{db}"
table = "items"
[sink.columns]
id = {{ type = "integer" }}
[dead_letter]
type = "file"
path = "{dead}"
[checkpoint]
path = "state.db"
"#
        )
    };
    write(
        dir.path(),
        "ok.toml",
        &config("out/items.db", "dead/letters.jsonl"),
    );
    let out = run(weir(dir.path()).args(["check", "ok.toml", "--connect"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    for wanted in [
        "file `in.jsonl`: readable",
        "sink: sqlite `out/items.db`: writable",
        "dead_letter: file",
        "checkpoint: state.db: 0 positions",
    ] {
        assert!(out.stdout.contains(wanted), "{wanted}: {}", out.stdout);
    }
    // Without --connect, nothing is opened or created.
    write(
        dir.path(),
        "plain.toml",
        &config("other/items.db", "dead/letters.jsonl"),
    );
    let out = run(weir(dir.path()).args(["check", "plain.toml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!dir.path().join("other").exists());

    write(
        dir.path(),
        "bad.toml",
        &config("blocker/items.db", "blocker/dead.jsonl"),
    );
    let out = run(weir(dir.path()).args(["check", "bad.toml", "--connect"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("bad.toml:9:8: sink.path"), "{}", out.stderr);
    assert!(out.stderr.contains("dead_letter.path"), "{}", out.stderr);
}

/// The local PostgreSQL server (`WEIR_TEST_POSTGRES`, by default
/// 127.0.0.1:5432, trust auth, database `test`), with a fresh schema named
/// after the test: `None` (the test says it did not run) only when there is
/// no server and `WEIR_SKIP_POSTGRES` is set outside CI; otherwise a missing
/// server fails the test.
struct Postgres {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    url: String,
    schema: String,
}

impl Postgres {
    fn find(test: &str) -> Option<Postgres> {
        let url = std::env::var("WEIR_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = match runtime.block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls)) {
            Ok((client, connection)) => {
                runtime.spawn(connection);
                client
            }
            // Skipped only when asked (and never under CI): a missing
            // server fails the test.
            Err(e)
                if std::env::var("CI").as_deref() != Ok("true")
                    && std::env::var_os("WEIR_SKIP_POSTGRES").is_some() =>
            {
                eprintln!("WEIR_SKIP_POSTGRES: {test} not run: no PostgreSQL server at {url} ({e})");
                return None;
            }
            Err(e) => panic!(
                "no PostgreSQL server at {url} ({e}); set WEIR_SKIP_POSTGRES=1 to leave these tests out"
            ),
        };
        let schema = format!("weir_cli_{test}_{}", std::process::id());
        let pg = Postgres {
            runtime,
            client,
            url,
            schema,
        };
        pg.execute(&format!(
            "DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}",
            s = pg.schema
        ));
        Some(pg)
    }

    fn execute(&self, sql: &str) {
        self.runtime.block_on(self.client.batch_execute(sql)).unwrap();
    }

    /// Each row's columns as text.
    fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let rows = self.runtime.block_on(self.client.query(sql, &[])).unwrap();
        rows.iter()
            .map(|r| (0..r.len()).map(|i| r.get::<_, String>(i)).collect())
            .collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        let _ = self.runtime.block_on(self.client.batch_execute(&drop));
    }
}

#[test]
fn a_jsonl_file_filtered_into_a_postgres_upsert_keeps_the_latest_row_of_each_key() {
    let Some(pg) = Postgres::find("upsert") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = [
        r#"{"id": 1, "name": "ann", "keep": true, "tags": ["a"]}"#,
        r#"{"id": 2, "name": "bo", "keep": false}"#,
        r#"{"id": 3, "name": "cy", "keep": true}"#,
        r#"{"id": 1, "name": "anna", "keep": true, "tags": ["b", "c"]}"#,
        r#"{"id": 4, "name": "'); DROP TABLE x; --", "keep": true}"#,
    ]
    .join("\n");
    write(dir.path(), "in.jsonl", &format!("{input}\n"));
    let config = format!(
        r#"
[[source]]
type = "file"
path = "in.jsonl"
[[stage]]
type = "filter"
jq = '.keep'
[sink]
type = "postgres"
url = "${{PG_URL}}"
table = "{schema}.people"
mode = "upsert"
key = ["id"]
columns.id = {{ type = "integer" }}
columns.name = {{ type = "text" }}
columns.tags = {{ type = "json", jq = '.tags // []' }}
"#,
        schema = pg.schema
    );
    write(dir.path(), "p.toml", &config);
    let checked = run(weir(dir.path()).args(["check", "p.toml"]).env("PG_URL", &pg.url));
    assert_eq!(checked.code, 0, "{}", checked.stderr);
    let out = run(weir(dir.path())
        .args(["run", "p.toml", "--quiet"])
        .env("PG_URL", &pg.url));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = pg.query(&format!(
        "SELECT id::text, name, tags::text FROM {}.people ORDER BY id",
        pg.schema
    ));
    let expected = [
        ["1", "anna", r#"["b", "c"]"#],
        ["3", "cy", "[]"],
        ["4", "'); DROP TABLE x; --", "[]"],
    ];
    assert_eq!(rows, expected.map(|r| r.map(str::to_owned).to_vec()));
    // A second run of the same input changes nothing: upserts are idempotent.
    let again = run(weir(dir.path())
        .args(["run", "p.toml", "--quiet"])
        .env("PG_URL", &pg.url));
    assert_eq!(again.code, 0, "{}", again.stderr);
    let count = pg.query(&format!("SELECT count(*)::text FROM {}.people", pg.schema));
    assert_eq!(count, [["3"]]);
}

#[test]
fn dead_letters_go_to_a_postgres_table_with_the_item_as_jsonb() {
    let Some(pg) = Postgres::find("dead_letters") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "in.jsonl",
        "{\"n\": 1}\n{\"n\": \"'); DROP TABLE dead; --\"}\n{\"n\": 3}\n",
    );
    let config = format!(
        r#"
[pipeline]
on_error = "dead_letter"
[[source]]
type = "file"
path = "in.jsonl"
[[stage]]
type = "map"
jq = '{{n: (.n + 1)}}'
[sink]
type = "stdout"
[dead_letter]
type = "postgres"
url = "${{PG_URL}}"
table = "{schema}.dead"
"#,
        schema = pg.schema
    );
    write(dir.path(), "p.toml", &config);
    let out = run(weir(dir.path())
        .args(["run", "p.toml", "--quiet"])
        .env("PG_URL", &pg.url));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(numbers(&out.stdout), [2, 4]);
    let rows = pg.query(&format!(
        "SELECT stage, item->'origin'->>'line', item->'value'->>'n', pipeline FROM {}.dead",
        pg.schema
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][..3], ["map", "2", "'); DROP TABLE dead; --"]);
    assert!(rows[0][3].starts_with("p-"), "the run id: {rows:?}");
}

#[test]
fn a_checkpointed_run_with_a_postgres_store_resumes_where_the_last_one_stopped() {
    let Some(pg) = Postgres::find("checkpoint") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input: String = (1..=3000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    write(dir.path(), "in.jsonl", &input);
    let store = format!("{}?options=-c%20search_path%3D{}", pg.url, pg.schema);
    write(
        dir.path(),
        "p.toml",
        r#"
[[source]]
type = "file"
path = "in.jsonl"
[[stage]]
type = "filter"
jq = '.n % 2 == 0'
[sink]
type = "stdout"
[checkpoint]
url = "${STORE}"
"#,
    );
    let first = run(weir(dir.path())
        .args(["run", "p.toml", "--quiet", "--limit", "1200"])
        .env("STORE", &store));
    assert_eq!(first.code, 0, "{}", first.stderr);
    let listed = run(weir(dir.path()).args(["checkpoints", &store]));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains("in.jsonl") && listed.stdout.contains(" 1200 "),
        "{}",
        listed.stdout
    );
    let second = run(weir(dir.path())
        .args(["run", "p.toml", "--quiet"])
        .env("STORE", &store));
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        numbers(&first.stdout),
        (2..=1200).step_by(2).collect::<Vec<u64>>()
    );
    assert_eq!(
        numbers(&second.stdout),
        (1202..=3000).step_by(2).collect::<Vec<u64>>()
    );
    // `--checkpoint URL` names the same store: nothing left to read.
    write(
        dir.path(),
        "bare.toml",
        "[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n[sink]\ntype = \"stdout\"\n",
    );
    let third = run(weir(dir.path()).args(["run", "bare.toml", "--quiet", "--checkpoint", &store]));
    assert_eq!((third.code, third.stdout.as_str()), (0, ""), "{}", third.stderr);
    let rows = pg.query(&format!("SELECT file FROM {}.weir_checkpoints", pg.schema));
    assert_eq!(rows.len(), 1, "{rows:?}");
}

#[test]
fn check_validates_postgres_sinks_and_stores_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.jsonl", "{\"n\":1}\n");
    // Nothing listens on port 1: a check that connected would fail.
    let nowhere = "postgres://me:secret@127.0.0.1:1/nowhere";
    let sink = |table: &str, url: &str| {
        format!(
            "[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n[sink]\ntype = \"postgres\"\nurl = \"{url}\"\n\
             table = \"{table}\"\ncolumns.n = {{ type = \"integer\" }}\n"
        )
    };
    write(dir.path(), "ok.toml", &sink("etl.numbers", nowhere));
    let ok = run(weir(dir.path()).args(["check", "ok.toml"]));
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    for (body, wanted) in [
        (sink("n; DROP TABLE n", nowhere), "not a plain SQL identifier"),
        (sink("pg_class", nowhere), "reserved"),
        (sink("n", "postgres://h:port/db"), "invalid PostgreSQL URL"),
        (
            format!("[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n[checkpoint]\npath = \"a.db\"\nurl = \"{nowhere}\"\n"),
            "not both",
        ),
        (
            "[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n[checkpoint]\nurl = \"mysql://x\"\n".to_owned(),
            "expected a PostgreSQL URL",
        ),
    ] {
        write(dir.path(), "bad.toml", &body);
        let out = run(weir(dir.path()).args(["check", "bad.toml"]));
        assert_eq!(out.code, 2, "{body}: {}", out.stderr);
        assert!(out.stderr.contains(wanted), "{body}: {}", out.stderr);
        assert!(!out.stderr.contains("secret"), "{}", out.stderr);
    }
    // Running it does connect, and says where it could not.
    let failed = run(weir(dir.path()).args(["run", "ok.toml", "--quiet"]));
    assert_eq!(failed.code, 2, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("database `nowhere` on 127.0.0.1:1"),
        "{}",
        failed.stderr
    );
    assert!(!failed.stderr.contains("secret"), "{}", failed.stderr);
}

/// A SQLite database `in.db` in `dir` with table `t (id, name)` of ids
/// `1..=n` (named `n1`, `n2`, …), inserted out of order.
fn sqlite_table(dir: &Path, n: i64) {
    let conn = rusqlite::Connection::open(dir.join("in.db")).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        .unwrap();
    for i in (1..=n).rev() {
        conn.execute(
            "INSERT INTO t VALUES (?1, ?2)",
            rusqlite::params![i, format!("n{i}")],
        )
        .unwrap();
    }
}

/// The `id` of each JSON line of `stdout`.
fn ids(stdout: &str) -> Vec<i64> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn a_checkpointed_sqlite_table_source_resumes_after_its_last_key_and_refuses_a_store_of_another_table() {
    let dir = tempfile::tempdir().unwrap();
    sqlite_table(dir.path(), 10);
    let config = |table: &str| {
        format!(
            "[[source]]\ntype = \"sqlite\"\npath = \"in.db\"\ntable = \"{table}\"\nkey = \"id\"\npage_size = 3\n\
             [sink]\ntype = \"stdout\"\n"
        )
    };
    write(dir.path(), "p.toml", &config("t"));
    let ck = ["--quiet", "--checkpoint", "state.db"];
    let first = run(weir(dir.path()).args(["run", "p.toml", "--limit", "4"]).args(ck));
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(ids(&first.stdout), [1, 2, 3, 4]);
    assert_eq!(
        serde_json::from_str::<Value>(first.stdout.lines().next().unwrap()).unwrap(),
        serde_json::json!({"id": 1, "name": "n1"})
    );
    let listed = run(weir(dir.path()).args(["checkpoints", "state.db"]));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains("sqlite table t by id"),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("key 4") && listed.stdout.contains("4 rows"),
        "{}",
        listed.stdout
    );
    let second = run(weir(dir.path()).args(["run", "p.toml"]).args(ck));
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(ids(&second.stdout), [5, 6, 7, 8, 9, 10]);
    let third = run(weir(dir.path()).args(["run", "p.toml"]).args(ck));
    assert_eq!((third.code, third.stdout.as_str()), (0, ""), "{}", third.stderr);
    // The same source name reading another table: refused, not misread.
    let conn = rusqlite::Connection::open(dir.path().join("in.db")).unwrap();
    conn.execute_batch("CREATE TABLE u (id INTEGER PRIMARY KEY); INSERT INTO u VALUES (1);")
        .unwrap();
    write(dir.path(), "p.toml", &config("u"));
    let other = run(weir(dir.path()).args(["run", "p.toml"]).args(ck));
    assert_eq!(other.code, 2, "{}", other.stderr);
    assert!(
        other
            .stderr
            .contains("was written for sqlite table t by id, and this source reads sqlite table u by id"),
        "{}",
        other.stderr
    );
    let over = run(weir(dir.path()).args(["run", "p.toml", "--from-start"]).args(ck));
    assert_eq!((over.code, ids(&over.stdout)), (0, vec![1]), "{}", over.stderr);
    // A file source with that store and name: refused too.
    write(dir.path(), "in.jsonl", "{\"id\": 1}\n");
    write(
        dir.path(),
        "f.toml",
        "[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\nname = \"sqlite\"\n[sink]\ntype = \"stdout\"\n",
    );
    let file = run(weir(dir.path()).args(["run", "f.toml"]).args(ck));
    assert_eq!(file.code, 2, "{}", file.stderr);
    assert!(file.stderr.contains("this source reads files"), "{}", file.stderr);
}

#[test]
fn a_table_source_failing_on_a_repeated_key_fails_the_run_after_the_rows_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("in.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (2, 'c');",
    )
    .unwrap();
    write(
        dir.path(),
        "p.toml",
        "[[source]]\ntype = \"sqlite\"\npath = \"in.db\"\ntable = \"t\"\nkey = \"id\"\n[sink]\ntype = \"stdout\"\n",
    );
    let out = run(weir(dir.path()).args(["run", "p.toml", "--quiet"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("two rows have the key `id` = 2"),
        "{}",
        out.stderr
    );
}

#[test]
fn table_sources_are_checked_listed_graphed_and_connected() {
    let dir = tempfile::tempdir().unwrap();
    sqlite_table(dir.path(), 3);
    let source = |extra: &str| {
        format!("[[source]]\ntype = \"sqlite\"\npath = \"in.db\"\nkey = \"id\"\n{extra}[sink]\ntype = \"stdout\"\n")
    };
    // Settings are checked without opening anything.
    for (extra, wanted) in [
        (
            "table = \"t\"\nquery = \"SELECT 1\"\n",
            "give `table` or `query`, not both",
        ),
        ("", "needs `table` (a table's rows) or `query`"),
        ("table = \"t; DROP TABLE t\"\n", "is not a plain SQL identifier"),
        ("table = \"t\"\npag_size = 3\n", "did you mean `page_size`?"),
        ("table = \"t\"\npage_size = 0\n", "page_size must be at least 1"),
    ] {
        write(dir.path(), "p.toml", &source(extra));
        let out = run(weir(dir.path()).args(["check", "p.toml"]));
        assert_eq!(out.code, 2, "{extra}: {}", out.stderr);
        assert!(out.stderr.contains(wanted), "{extra}: {}", out.stderr);
    }
    write(dir.path(), "ok.toml", &source("table = \"t\"\n"));
    let out = run(weir(dir.path()).args(["check", "ok.toml", "--connect"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("sqlite `in.db`: table `t` by `id`: readable"),
        "{}",
        out.stdout
    );
    write(dir.path(), "bad.toml", &source("table = \"missing\"\n"));
    let out = run(weir(dir.path()).args(["check", "bad.toml", "--connect"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("has no table `missing`"), "{}", out.stderr);
    let graph = run(weir(dir.path()).args(["graph", "ok.toml"]));
    assert!(
        graph.stdout.contains("sqlite") && graph.stdout.contains("table = \\\"t\\\""),
        "{}",
        graph.stdout
    );
    let stages = run(weir(dir.path()).arg("stages"));
    assert!(
        stages.stdout.contains("sqlite — Read a SQLite table"),
        "{}",
        stages.stdout
    );
    assert!(
        stages.stdout.contains("postgres — Read a PostgreSQL table"),
        "{}",
        stages.stdout
    );
    // `weir test` gives the stages a case's input in place of the rows
    // (lines are decoded as JSON lines).
    write(
        dir.path(),
        "t.toml",
        &format!(
            "{}[[stage]]\ntype = \"map\"\njq = '.id * 2'\n[[test]]\nname = \"double\"\ninput = [{{id = 2}}]\n\
             input_lines = ['{{\"id\": 5}}']\nexpect = [4, 10]\n",
            source("table = \"t\"\n")
        ),
    );
    let out = run(weir(dir.path()).args(["test", "t.toml"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("ok    double"), "{}", out.stdout);
    // A query source in a run.
    write(
        dir.path(),
        "q.toml",
        &source("query = \"SELECT name, id FROM t WHERE id > 1\"\npage_size = 1\n"),
    );
    let out = run(weir(dir.path()).args(["run", "q.toml", "--quiet"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(ids(&out.stdout), [2, 3]);
}

#[test]
fn a_postgres_table_source_runs_checkpointed_in_a_postgres_store_and_connects() {
    let Some(pg) = Postgres::find("source") else {
        return;
    };
    pg.execute(&format!(
        "CREATE TABLE {s}.t (id bigint PRIMARY KEY, doc jsonb);
         INSERT INTO {s}.t SELECT g, jsonb_build_object('g', g) FROM generate_series(1, 25) g;",
        s = pg.schema
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = format!("{}?options=-c%20search_path%3D{}", pg.url, pg.schema);
    write(
        dir.path(),
        "p.toml",
        &format!(
            "[[source]]\ntype = \"postgres\"\nurl = \"${{URL}}\"\ntable = \"{}.t\"\nkey = \"id\"\npage_size = 4\n\
             [[stage]]\ntype = \"map\"\njq = '{{id, g: .doc.g}}'\n[sink]\ntype = \"stdout\"\n\
             [checkpoint]\nurl = \"${{STORE}}\"\n",
            pg.schema
        ),
    );
    let env = [("URL", pg.url.as_str()), ("STORE", store.as_str())];
    let out = run(weir(dir.path()).args(["check", "p.toml", "--connect"]).envs(env));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("postgres database `test`"), "{}", out.stdout);
    let first = run(weir(dir.path())
        .args(["run", "p.toml", "--quiet", "--limit", "10"])
        .envs(env));
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(ids(&first.stdout), (1..=10).collect::<Vec<_>>());
    assert_eq!(
        serde_json::from_str::<Value>(first.stdout.lines().next().unwrap()).unwrap(),
        serde_json::json!({"id": 1, "g": 1})
    );
    let second = run(weir(dir.path()).args(["run", "p.toml", "--quiet"]).envs(env));
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(ids(&second.stdout), (11..=25).collect::<Vec<_>>());
    let rows = pg.query(&format!(
        "SELECT kind, key::text FROM {}.weir_checkpoints",
        pg.schema
    ));
    assert_eq!(rows, [vec!["key".to_owned(), "{\"integer\": 25}".to_owned()]]);
}

#[test]
fn a_pipeline_mode_sets_the_run_defaults_and_a_key_in_the_table_wins_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let input: String = (1..=300).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    write(dir.path(), "in.jsonl", &input);
    // The sink's item events: how many, and how many items it had started
    // when it completed its first (a chunk's worth: completions come after
    // the flush that ends the chunk).
    let item_events = |table: &str| {
        let config = format!(
            "[pipeline]\n{table}\n[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             [[stage]]\ntype = \"boundary\"\n[sink]\ntype = \"stdout\"\n"
        );
        write(dir.path(), "p.toml", &config);
        let out = run(weir(dir.path()).args(["run", "p.toml", "--quiet", "--events", "ev.jsonl"]));
        assert_eq!(out.code, 0, "{table}: {}", out.stderr);
        assert_eq!(numbers(&out.stdout).len(), 300, "{table}");
        let events = lines(&dir.path().join("ev.jsonl"));
        let started = |e: &Value| e["type"] == "item_started" && e["stage"] == "sink";
        let first_done = events
            .iter()
            .position(|e| e["type"] == "item_completed" && e["stage"] == "sink");
        let chunk = first_done.map(|i| events[..i].iter().filter(|e| started(e)).count());
        (events.iter().filter(|e| started(e)).count(), chunk)
    };
    // Debug: an event per item, chunks of 10.
    let (started, chunk) = item_events("mode = \"debug\"");
    assert_eq!(started, 300);
    assert!(chunk.is_some_and(|c| (1..=10).contains(&c)), "{chunk:?}");
    // A key set in the table wins over the mode.
    let (started, chunk) = item_events("mode = \"debug\"\nchunk_size = 50");
    assert_eq!(started, 300);
    assert!(chunk.is_some_and(|c| (11..=50).contains(&c)), "{chunk:?}");
    assert_eq!(
        item_events("mode = \"debug\"\nevent_level = \"progress\""),
        (0, None)
    );
    assert_eq!(item_events("mode = \"balanced\""), (0, None));
    assert_eq!(item_events("mode = \"throughput\""), (0, None));
    // An unknown mode is refused with the choices.
    write(
        dir.path(),
        "bad.toml",
        "[pipeline]\nmode = \"fast\"\n[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n[sink]\ntype = \"stdout\"\n",
    );
    let out = weir_run(dir.path(), "run bad.toml --quiet");
    says(&out, 2, "pipeline.mode");
    says(&out, 2, "throughput");
}
