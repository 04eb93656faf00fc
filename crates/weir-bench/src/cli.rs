//! The `cli` suite: the `weir` binary on a JSON-lines ETL job, against a
//! typed `serde_json` loop and `jq`.
//!
//! The input is N generated log lines of about 190 bytes (timestamp, level,
//! service, HTTP status, method and path, latency, user on 60% of them,
//! request id, message), written once per run of the suite to
//! `$TMPDIR/weir-bench-cli-<pid>/` and removed at the end. About 80% of
//! the lines are `info` and about 3% have a status of 500 or more. Every
//! variant keeps the lines where `level != "info" || status >= 500`, maps
//! each to `{ts, level, status, path, ms}` and writes them, one JSON object
//! a line, to a file:
//!
//! | row | what |
//! |---|---|
//! | `serde-typed` | in process: `BufReader` lines → `serde_json::from_str` into a borrowing struct → predicate → a 5-field struct serialised into a `BufWriter` |
//! | `jq` | `jq -c 'select(…) \| {…}' in > out`, a child process (skipped when `jq` is not on `PATH`) |
//! | `weir-run` | `weir run CONFIG --quiet`, a child process: file source → `filter` → `map` (jq expressions) → file sink |
//! | `weir-run-parallel` | the same with `concurrency = 2` on both stages (they run on the blocking pool) |
//! | `weir-run` at 4N | the same config over the input copied four times; its ratio is peak RSS at 4N ÷ at N |
//!
//! The `weir` binary is the one next to this executable (`target/release/weir`
//! for `target/release/weir-bench`); when it is missing the weir rows are
//! skipped with a message. Times and ratios are medians over rounds, the
//! ratios paired by round: `jq` and the `weir-run` rows against
//! `serde-typed`, with `speedup_vs_jq` (jq's time ÷ the row's) as an extra.
//!
//! Each child's peak RSS is its `VmHWM`, polled while it runs (see
//! [`child`](crate::child)).
//!
//! The generator counts the lines it writes that the predicate keeps; every
//! variant's output must have that many lines (four times as many at 4N)
//! and the same multiset of `{ts, level, status, path, ms}` objects as
//! `serde-typed`'s, or the suite fails.

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::child::{on_path, run_shown, toml_string, version, weir_binary, TempDir, POLL};
use crate::report::{interleave, met, Reporter, Row, Sample, Variant};
use crate::rng::Rng;
use crate::Options;

const SUITE: &str = "cli";
/// The filter stage's jq predicate.
const FILTER_JQ: &str = r#".level != "info" or .status >= 500"#;
/// The map stage's jq expression.
const MAP_JQ: &str = "{ts, level, status, path: .http.path, ms: .latency_ms}";
/// `concurrency` of both stages in `weir-run-parallel`.
const PARALLEL: usize = 2;
/// How many copies of the input the large RSS run reads.
const SCALE: u64 = 4;

/// Variant names.
const SERDE: &str = "serde-typed";
const JQ: &str = "jq";
const WEIR: &str = "weir-run";
const WEIR_PARALLEL: &str = "weir-run-parallel";
const WEIR_BIG: &str = "weir-run-4x";

/// Lines in the input.
fn items(quick: bool) -> u64 {
    if quick {
        20_000
    } else {
        1_000_000
    }
}

/// What [`write_input`] wrote.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Generated {
    bytes: u64,
    /// Lines the predicate keeps.
    kept: u64,
}

/// Writes `n` log lines to `w`.
fn generate(mut w: impl Write, n: u64, seed: u64) -> io::Result<Generated> {
    const SERVICES: [&str; 5] = ["api", "auth", "cart", "search", "checkout"];
    const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
    const MESSAGES: [&str; 6] = ["ok", "done", "slow", "cache miss", "timeout", "retry"];
    let mut rng = Rng::new(seed);
    let mut bytes = 0u64;
    let mut kept = 0u64;
    let mut line = String::with_capacity(256);
    for i in 0..n {
        let level = match rng.below(100) {
            0..80 => "info",
            80..92 => "warn",
            92..98 => "error",
            _ => "debug",
        };
        let status = match rng.below(100) {
            0..3 => [500, 502, 503][rng.below(3) as usize],
            3..8 => 404,
            8..10 => 400,
            10..20 => 201,
            _ => 200,
        };
        let path = match rng.below(4) {
            0 => format!("/api/items/{}", rng.below(1_000)),
            1 => "/api/cart".to_owned(),
            2 => "/login".to_owned(),
            _ => "/health".to_owned(),
        };
        // Signed-in users on about 60% of the requests.
        let user = match rng.below(10) {
            0..6 => format!(",\"user\":\"u{}\"", rng.below(10_000)),
            _ => String::new(),
        };
        // Three milliseconds apart from 12:00:00.000.
        let ms = i * 3;
        let (secs, milli) = (ms / 1000, ms % 1000);
        let latency_tenths = rng.below(5_000);
        line.clear();
        use std::fmt::Write as _;
        write!(
            line,
            "{{\"ts\":\"2026-12-07T{:02}:{:02}:{:02}.{milli:03}Z\",\"level\":\"{level}\",\"service\":\"{}\",\
             \"status\":{status},\"http\":{{\"method\":\"{}\",\"path\":\"{path}\"}},\"latency_ms\":{}.{}\
             {user},\"request_id\":\"{:08x}\",\"msg\":\"{}\"}}",
            (12 + secs / 3600) % 24,
            secs / 60 % 60,
            secs % 60,
            rng.pick(&SERVICES),
            rng.pick(&METHODS),
            latency_tenths / 10,
            latency_tenths % 10,
            rng.next() >> 32,
            rng.pick(&MESSAGES),
        )
        .expect("writing to a String cannot fail");
        line.push('\n');
        w.write_all(line.as_bytes())?;
        bytes += line.len() as u64;
        if level != "info" || status >= 500 {
            kept += 1;
        }
    }
    w.flush()?;
    Ok(Generated { bytes, kept })
}

/// Writes `n` log lines to a new file at `path`, synced to disk so that
/// write-back does not disturb the first round.
fn write_input(path: &Path, n: u64) -> io::Result<Generated> {
    let file = File::create(path)?;
    let mut w = BufWriter::with_capacity(1 << 20, &file);
    let generated = generate(&mut w, n, 0x5EED_CAFE)?;
    drop(w);
    file.sync_all()?;
    Ok(generated)
}

/// Writes `copies` copies of `from` to a new file at `to`, synced.
fn write_copies(from: &Path, to: &Path, copies: u64) -> io::Result<()> {
    let mut out = File::create(to)?;
    for _ in 0..copies {
        io::copy(&mut File::open(from)?, &mut out)?;
    }
    out.sync_all()
}

/// An input line, borrowing its strings when they have no escapes.
#[derive(Debug, Deserialize)]
struct LogLine<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    level: Cow<'a, str>,
    status: u16,
    #[serde(borrow)]
    http: Http<'a>,
    latency_ms: f64,
}

/// An input line's `http` object.
#[derive(Debug, Deserialize)]
struct Http<'a> {
    #[serde(borrow)]
    path: Cow<'a, str>,
}

/// An output line (written by `serde-typed`, read back to check every
/// variant's output).
#[derive(Debug, Serialize, Deserialize)]
struct Summary<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    level: Cow<'a, str>,
    status: u16,
    #[serde(borrow)]
    path: Cow<'a, str>,
    ms: f64,
}

/// The filter.
fn keep(l: &LogLine<'_>) -> bool {
    l.level != "info" || l.status >= 500
}

/// `serde-typed`: returns the number of lines written.
#[inline(never)]
fn serde_typed(input: &Path, output: &Path) -> Result<u64, String> {
    let mut r = BufReader::with_capacity(
        1 << 16,
        File::open(input).map_err(|e| format!("{}: {e}", input.display()))?,
    );
    let mut w = BufWriter::with_capacity(
        1 << 16,
        File::create(output).map_err(|e| format!("{}: {e}", output.display()))?,
    );
    let mut line = String::new();
    let (mut n, mut written) = (0u64, 0u64);
    let write_err = |e: io::Error| format!("{}: {e}", output.display());
    loop {
        line.clear();
        if r.read_line(&mut line)
            .map_err(|e| format!("{}: {e}", input.display()))?
            == 0
        {
            break;
        }
        n += 1;
        let l: LogLine<'_> =
            serde_json::from_str(&line).map_err(|e| format!("{}:{n}: {e}", input.display()))?;
        if !keep(&l) {
            continue;
        }
        let s = Summary {
            ts: l.ts,
            level: l.level,
            status: l.status,
            path: l.http.path,
            ms: l.latency_ms,
        };
        serde_json::to_writer(&mut w, &s).map_err(|e| format!("{}: {e}", output.display()))?;
        w.write_all(b"\n").map_err(write_err)?;
        written += 1;
    }
    w.flush().map_err(write_err)?;
    Ok(written)
}

/// The number of lines in a file (a last line without a newline counts).
fn count_lines(path: &Path) -> Result<u64, String> {
    let mut f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let got = f
            .read(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if got == 0 {
            break;
        }
        lines += buf[..got].iter().filter(|b| **b == b'\n').count() as u64;
        last = buf[got - 1];
    }
    Ok(lines + u64::from(last != b'\n'))
}

/// An order-independent digest of an output file: its line count and the
/// wrapping sum of a hash of each line's five fields (so two outputs with
/// the same objects agree whatever their key order or number formatting).
fn digest(path: &Path) -> Result<(u64, u64), String> {
    let r = BufReader::new(File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?);
    let (mut lines, mut sum) = (0u64, 0u64);
    for line in r.lines() {
        let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        lines += 1;
        let s: Summary<'_> = serde_json::from_str(&line)
            .map_err(|e| format!("{}:{lines}: not an output object ({e}): {line}", path.display()))?;
        let mut h = DefaultHasher::new();
        (&*s.ts, &*s.level, s.status, &*s.path, s.ms.to_bits()).hash(&mut h);
        sum = sum.wrapping_add(h.finish());
    }
    Ok((lines, sum))
}

/// The pipeline config `weir run` is given; `concurrency` goes on both
/// stages when given.
fn weir_config(input: &Path, output: &Path, concurrency: Option<usize>) -> Result<String, String> {
    let conc = concurrency.map_or_else(String::new, |c| format!("concurrency = {c}\n"));
    Ok(format!(
        "[pipeline]\nname = \"bench\"\n\n\
         [[source]]\ntype = \"file\"\npath = {}\nformat = \"jsonl\"\n\n\
         [[stage]]\ntype = \"filter\"\njq = '{FILTER_JQ}'\n{conc}\n\
         [[stage]]\ntype = \"map\"\njq = '{MAP_JQ}'\n{conc}\n\
         [sink]\ntype = \"file\"\npath = {}\n",
        toml_string(input)?,
        toml_string(output)?,
    ))
}

/// A child variant's sample: its time and peak RSS, and its output's line
/// count as the checksum (counted untimed). What the child writes to stderr
/// is shown the first time only (`shown` remembers).
fn child_sample(what: &str, cmd: &mut Command, output: &Path, shown: &mut bool) -> Result<Sample, String> {
    let run = run_shown(SUITE, what, cmd, shown)?;
    Ok(Sample {
        seconds: run.seconds,
        check: count_lines(output)?,
        peak_rss_kb: run.peak_rss_kb,
    })
}

/// Checks that `output`'s objects are `want`'s digest; `what` names it.
fn expect_digest(what: &str, output: &Path, want: (u64, u64)) -> Result<(), String> {
    let got = digest(output)?;
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "OUTPUT MISMATCH: {what} wrote {} lines (digest {:016x}) where serde-typed's output, \
             scaled, is {} lines (digest {:016x}): its measurements are void",
            got.0, got.1, want.0, want.1
        ))
    }
}

pub(crate) fn run(opts: &Options, out: &mut Reporter) -> Result<(), String> {
    let n = items(opts.quick);
    let n_big = SCALE * n;
    let jq = on_path("jq");
    if jq.is_none() {
        eprintln!("{SUITE}: `jq` is not on PATH: the jq row is skipped");
    }
    let weir = weir_binary(SUITE)?;

    let dir = TempDir::new(SUITE)?;
    let input = dir.join("in.jsonl");
    let input_big = dir.join("in-4x.jsonl");
    eprintln!("{SUITE}: writing {n} lines to {}", input.display());
    let generated = write_input(&input, n).map_err(|e| format!("cannot write {}: {e}", input.display()))?;
    if weir.is_some() {
        eprintln!("{SUITE}: writing {SCALE} copies to {}", input_big.display());
        write_copies(&input, &input_big, SCALE)
            .map_err(|e| format!("cannot write {}: {e}", input_big.display()))?;
    }
    let out_path = |name: &str| dir.join(&format!("out-{name}.jsonl"));
    let mut configs = Vec::new();
    for (name, input, concurrency) in [
        (WEIR, &input, None),
        (WEIR_PARALLEL, &input, Some(PARALLEL)),
        (WEIR_BIG, &input_big, None),
    ] {
        let cfg = dir.join(&format!("{name}.toml"));
        std::fs::write(&cfg, weir_config(input, &out_path(name), concurrency)?)
            .map_err(|e| format!("cannot write {}: {e}", cfg.display()))?;
        configs.push(cfg);
    }

    let mut variants = vec![Variant::new(SERDE, || {
        Sample::try_time(|| serde_typed(&input, &out_path(SERDE)))
    })];
    if let Some(jq) = &jq {
        let input = input.as_path();
        let mut shown = false;
        variants.push(Variant::new(JQ, move || {
            let output = out_path(JQ);
            let file =
                File::create(&output).map_err(|e| format!("cannot create {}: {e}", output.display()))?;
            let mut cmd = Command::new(jq);
            cmd.arg("-c")
                .arg(format!("select({FILTER_JQ}) | {MAP_JQ}"))
                .arg(input)
                .stdout(file);
            child_sample("jq", &mut cmd, &output, &mut shown)
        }));
    }
    if let Some(weir) = &weir {
        for (name, cfg) in [WEIR, WEIR_PARALLEL, WEIR_BIG].into_iter().zip(&configs) {
            let mut shown = false;
            variants.push(Variant::new(name, move || {
                let mut cmd = Command::new(weir);
                cmd.arg("run").arg(cfg).arg("--quiet").stdout(Stdio::piped());
                let what = format!("`weir run {} --quiet`", cfg.display());
                child_sample(&what, &mut cmd, &out_path(name), &mut shown)
            }));
        }
    }
    let s = interleave(SUITE, opts.rounds, true, &mut variants)?;
    drop(variants);

    // Every output must be right before any number is reported.
    let expected = generated.kept;
    let mut checked = vec![(SERDE, 1)];
    if jq.is_some() {
        checked.push((JQ, 1));
    }
    if weir.is_some() {
        checked.extend([(WEIR, 1), (WEIR_PARALLEL, 1), (WEIR_BIG, SCALE)]);
    }
    let mut problems = Vec::new();
    for &(name, scale) in &checked {
        if let Err(e) = s.expect_check(name, scale * expected) {
            problems.push(format!("OUTPUT MISMATCH: {e}"));
        }
    }
    if problems.is_empty() {
        let (lines, sum) = digest(&out_path(SERDE))?;
        for &(name, scale) in &checked[1..] {
            if let Err(e) = expect_digest(name, &out_path(name), (scale * lines, scale.wrapping_mul(sum))) {
                problems.push(e);
            }
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{SUITE}: {p}");
        }
        return Err(problems.join("\n"));
    }

    let row = |name: &str, items: u64| {
        Row::new(SUITE, name, items, Some(s.median_seconds(name))).rss(s.median_rss_kb(name))
    };
    let ratio = |a: &str, b: &str| s.paired(a, b, |x, y| x.seconds / y.seconds);
    let mut rows = vec![row(SERDE, n)];
    if jq.is_some() {
        rows.push(row(JQ, n).against(SERDE, ratio(JQ, SERDE)));
    }
    let mut verdicts = Vec::new();
    if weir.is_some() {
        for name in [WEIR, WEIR_PARALLEL] {
            let vs_serde = ratio(name, SERDE);
            let mut r = row(name, n).against(SERDE, vs_serde);
            // The targets are the plain run's; the parallel row shows what
            // `concurrency` costs on cheap expressions (context).
            let target = |t: &str, ok: bool| match name {
                WEIR => format!("target {t}: {}", met(ok)),
                _ => "context, no target".to_owned(),
            };
            verdicts.push(format!(
                "{name} takes {vs_serde:.2}x serde-typed's time ({})",
                target("<= 2", vs_serde <= 2.0)
            ));
            if jq.is_some() {
                let speedup = ratio(JQ, name);
                r = r.with("speedup_vs_jq", speedup);
                verdicts.push(format!(
                    "{name} is {speedup:.1}x faster than jq ({})",
                    target(">= 10", speedup >= 10.0)
                ));
            }
            if name == WEIR_PARALLEL {
                r = r.with("vs_weir_run", ratio(WEIR_PARALLEL, WEIR));
            }
            rows.push(r);
        }
        let rss = s.paired(WEIR_BIG, WEIR, |x, y| {
            x.peak_rss_kb.unwrap_or_default() as f64 / y.peak_rss_kb.unwrap_or_default() as f64
        });
        let mut big = row(WEIR_BIG, n_big).against(WEIR, rss);
        big.variant = WEIR.to_owned();
        rows.push(big);
        verdicts.push(format!(
            "{SCALE}x the input takes weir-run's peak RSS to {rss:.3}x (target <= 1.10: {})",
            met(rss <= 1.10)
        ));
    }
    out.rows(&rows);
    out.note(&format!(
        "cli: {n} generated log lines of {:.0} bytes on average ({:.1} MB), {expected} kept; \
         items/s = input lines/s; ratio = time ÷ serde-typed's (paired by round), except the \
         weir-run row at {n_big} lines (the input {SCALE} times), whose ratio is its peak RSS ÷ \
         weir-run's at {n}; peak RSS = a child's VmHWM polled every {} ms; outputs checked: \
         line counts and contents agree",
        generated.bytes as f64 / n as f64,
        generated.bytes as f64 / 1e6,
        POLL.as_millis(),
    ));
    match &jq {
        Some(jq) => out.note(&format!("cli: jq is {}", version(jq))),
        None => out.note("cli: jq row SKIPPED: `jq` is not on PATH"),
    }
    if weir.is_none() {
        out.note("cli: weir rows SKIPPED: no `weir` binary next to weir-bench (`cargo build --release -p weir-cli`)");
    }
    for v in verdicts {
        out.note(&format!("cli: {v}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> TempDir {
        TempDir::new(&format!("cli-test-{:?}", std::thread::current().id())).unwrap()
    }

    #[test]
    fn generated_lines_average_about_190_bytes_mostly_info_and_some_server_errors() {
        let mut buf = Vec::new();
        let g = generate(&mut buf, 20_000, 7).unwrap();
        assert_eq!(g.bytes, buf.len() as u64);
        let mean = g.bytes as f64 / 20_000.0;
        assert!((175.0..=195.0).contains(&mean), "mean line length {mean}");
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<LogLine<'_>> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 20_000);
        let share =
            |f: &dyn Fn(&LogLine<'_>) -> bool| lines.iter().filter(|l| f(l)).count() as f64 / 20_000.0;
        assert!((0.77..0.83).contains(&share(&|l| l.level == "info")));
        assert!((0.02..0.04).contains(&share(&|l| l.status >= 500)));
        assert_eq!(lines.iter().filter(|l| keep(l)).count() as u64, g.kept);
        assert!(
            lines.iter().all(|l| matches!(l.ts, Cow::Borrowed(_))),
            "strings are borrowed"
        );
    }

    #[test]
    fn the_generator_is_deterministic_for_a_seed() {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        generate(&mut a, 100, 1).unwrap();
        generate(&mut b, 100, 1).unwrap();
        generate(&mut c, 100, 2).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn serde_typed_writes_the_kept_lines_and_copies_scale_the_digest() {
        let dir = temp();
        let (input, output) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
        let g = write_input(&input, 3_000).unwrap();
        assert_eq!(serde_typed(&input, &output).unwrap(), g.kept);
        assert_eq!(count_lines(&output).unwrap(), g.kept);
        let first = std::fs::read_to_string(&output).unwrap();
        let first = first.lines().next().unwrap();
        assert!(first.starts_with("{\"ts\":\"2026-12-07T"), "{first}");
        let first: serde_json::Value = serde_json::from_str(first).unwrap();
        let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["level", "ms", "path", "status", "ts"]);

        let (big, big_out) = (dir.join("big.jsonl"), dir.join("big-out.jsonl"));
        write_copies(&input, &big, SCALE).unwrap();
        assert_eq!(serde_typed(&big, &big_out).unwrap(), SCALE * g.kept);
        let (lines, sum) = digest(&output).unwrap();
        assert_eq!(
            digest(&big_out).unwrap(),
            (SCALE * lines, SCALE.wrapping_mul(sum))
        );
    }

    #[test]
    fn the_digest_ignores_key_order_and_number_format_but_not_values() {
        let dir = temp();
        let a = dir.join("a.jsonl");
        let b = dir.join("b.jsonl");
        let c = dir.join("c.jsonl");
        std::fs::write(
            &a,
            "{\"ts\":\"t\",\"level\":\"warn\",\"status\":200,\"path\":\"/\",\"ms\":12.0}\n",
        )
        .unwrap();
        std::fs::write(
            &b,
            "{\"ms\":12,\"path\":\"/\",\"status\":200,\"level\":\"warn\",\"ts\":\"t\"}",
        )
        .unwrap();
        std::fs::write(
            &c,
            "{\"ts\":\"t\",\"level\":\"warn\",\"status\":500,\"path\":\"/\",\"ms\":12.0}\n",
        )
        .unwrap();
        assert_eq!(digest(&a).unwrap(), digest(&b).unwrap());
        assert_ne!(digest(&a).unwrap(), digest(&c).unwrap());
        assert_eq!(count_lines(&b).unwrap(), 1);
    }

    #[test]
    fn the_weir_config_quotes_paths_and_sets_concurrency_on_both_stages() {
        let cfg = weir_config(
            Path::new("/tmp/a \"b\".jsonl"),
            Path::new("/tmp/o.jsonl"),
            Some(2),
        )
        .unwrap();
        assert!(cfg.contains(r#"path = "/tmp/a \"b\".jsonl""#), "{cfg}");
        assert_eq!(cfg.matches("concurrency = 2").count(), 2);
        assert!(cfg.contains(&format!("jq = '{FILTER_JQ}'")));
        assert!(!weir_config(Path::new("i"), Path::new("o"), None)
            .unwrap()
            .contains("concurrency"));
    }
}
