//! Nothing lost across crashes: `weir run --checkpoint` killed with
//! SIGKILL at random instants and restarted with the same store until it
//! completes. Every line's output must be there, and the lines done twice
//! (read again after a restart) must stay within the in-flight bound.
//!
//! The same for a SQLite table read in key order (checkpointed by key)
//! into a SQLite upsert, and for a file into a PostgreSQL upsert (the
//! local server, in a schema of its own; without a server the test fails,
//! unless `WEIR_SKIP_POSTGRES` is set outside CI).
//!
//! 50k lines by default; `WEIR_CRASH_LINES=1000000` for the issue's full
//! size (slow in a debug build).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

/// Restarts killed at a random instant before the run may complete.
const KILLS: usize = 20;

fn lines() -> u64 {
    std::env::var("WEIR_CRASH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

/// A small deterministic generator (the instants must be reproducible).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One run of `p.toml` writing stdout to `out`; killed after `kill_after`
/// if given. Whether it ran to its end.
fn run(dir: &Path, out: &Path, kill_after: Option<Duration>) -> bool {
    run_with(dir, out, kill_after, "state.db")
}

/// [`run`] with the checkpoint store `store`.
fn run_with(dir: &Path, out: &Path, kill_after: Option<Duration>, store: &str) -> bool {
    let mut child = Command::cargo_bin("weir")
        .unwrap()
        .current_dir(dir)
        .args(["run", "p.toml", "--quiet", "--checkpoint", store])
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            assert!(status.success(), "weir failed: {err}");
            return true;
        }
        if kill_after.is_some_and(|k| started.elapsed() >= k) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn killed_at_twenty_random_instants_a_checkpointed_run_loses_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let n = lines();
    // Every line reaches stdout (no filter).
    std::fs::write(dir.path().join("in.jsonl"), events_jsonl(n)).unwrap();
    let source = "[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n";
    let sink = "[sink]\ntype = \"stdout\"\n[checkpoint]\npath = \"state.db\"\ninterval = \"50ms\"\n";
    std::fs::write(
        dir.path().join("p.toml"),
        format!("[pipeline]\ncapacity = 1024\n{source}{WORK}{sink}"),
    )
    .unwrap();

    // How long an uninterrupted run takes sets the window for the kills.
    let t = Instant::now();
    assert!(run(dir.path(), &dir.path().join("whole.jsonl"), None));
    let whole = t.elapsed();
    std::fs::remove_file(dir.path().join("state.db")).unwrap();
    let _ = std::fs::remove_file(dir.path().join("state.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("state.db-shm"));

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let mut runs = 0;
    let mut redone_per_restart = Vec::new();
    let mut kills = 0;
    let mut chains = 0;
    loop {
        let out = dir.path().join(format!("out-{runs}.jsonl"));
        // A random instant within the time a whole run takes (the first
        // runs start with the store's cost too).
        let kill = (kills < KILLS)
            .then(|| Duration::from_micros(rng.below(whole.as_micros() as u64 + 1).max(1_000)));
        let completed = run(dir.path(), &out, kill);
        runs += 1;
        let text = std::fs::read_to_string(&out).unwrap();
        let mut redone = 0u64;
        // A line cut by the kill was not delivered (its flush never
        // returned): only whole lines count.
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = v["id"].as_u64().unwrap();
            let count = seen.entry(id).or_insert(0);
            if *count > 0 {
                redone += 1;
            }
            *count += 1;
        }
        if runs > 1 {
            redone_per_restart.push(redone);
        }
        if !completed {
            kills += 1;
            continue;
        }
        // A chain of killed runs ended in a completed one: every line is
        // there.
        let missing: Vec<u64> = (0..n).filter(|i| !seen.contains_key(i)).take(10).collect();
        assert!(missing.is_empty(), "lines lost after {kills} kills: {missing:?}…");
        assert_eq!(seen.len() as u64, n);
        chains += 1;
        if kills >= KILLS {
            break;
        }
        // Start over for the next instants.
        for f in ["state.db", "state.db-wal", "state.db-shm"] {
            let _ = std::fs::remove_file(dir.path().join(f));
        }
        seen.clear();
        runs = 0;
    }
    let max_redone = redone_per_restart.iter().copied().max().unwrap_or(0);
    // In flight at most: the channels between the tasks (source, the
    // blocking map, the batch, the sink: `capacity` 1024 each), the
    // decoding threads' batches (two of 1024 lines per thread) and one
    // commit interval's finalized lines: under 20k here. Measured: a few
    // thousand (see docs/cli.md). A run that did not resume would redo
    // everything it had done.
    eprintln!(
        "{kills} kills in {chains} chains of runs over {n} lines (a whole run: {whole:?}); lines done again per restart: max {max_redone}, all {redone_per_restart:?}"
    );
    assert!(
        max_redone <= 20_000,
        "{max_redone} lines done again after one restart"
    );
}

/// An async stage (on the blocking pool), a batch and its unbatch.
const WORK: &str = r#"
[[stage]]
type = "map"
jq = '{id, level, len: (.pad | length)}'
concurrency = 2
[[stage]]
type = "batch"
max_items = 100
max_wait = "20ms"
[[stage]]
type = "unbatch"
"#;

/// The upsert tests' first stage: the debug lines (every third) out.
const FILTER: &str = "[[stage]]\ntype = \"filter\"\njq = '.level != \"debug\"'\n";

/// The rows' `(id, level, len)` as the stages make them, for the lines
/// (or rows) numbered `0..n`: every third (debug) left out.
fn level(i: u64) -> &'static str {
    ["info", "warn", "debug"][(i % 3) as usize]
}

/// The upsert into `out.db`'s table `events`, and the checkpoint's
/// interval (its store is given on the command line).
const SQLITE_UPSERT: &str = r#"
[sink]
type = "sqlite"
path = "out.db"
table = "events"
mode = "upsert"
key = ["id"]
[sink.columns]
id = { type = "integer" }
level = { type = "text" }
len = { type = "integer" }
[checkpoint]
path = "state.db"
interval = "50ms"
"#;

/// The input of the file tests: `n` JSON lines (`id`, `level`, `pad`).
fn events_jsonl(n: u64) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"level\":\"{}\",\"pad\":\"{}\"}}\n",
                level(i),
                "y".repeat((i % 40) as usize)
            )
        })
        .collect()
}

/// Chains of runs killed at [`KILLS`] seeded instants within `whole`,
/// each chain ended by a run that completes: `run(Some(kill))` runs and
/// kills, `run(None)` runs to the end; `killed()` follows each kill;
/// `completed(runs)` follows a chain's completed run (check the output,
/// then start over). The last chain runs without a kill. Returns the
/// chains and the most runs in one.
fn kill_chains(
    seed: u64,
    whole: Duration,
    mut run: impl FnMut(Option<Duration>) -> bool,
    mut killed: impl FnMut(),
    mut completed: impl FnMut(u32),
) -> (usize, u32) {
    let mut rng = Rng(seed);
    let (mut kills, mut chains, mut runs, mut most) = (0, 0, 0, 0);
    while kills < KILLS {
        let kill = Duration::from_micros(rng.below(whole.as_micros() as u64 + 1).max(1_000));
        runs += 1;
        if !run(Some(kill)) {
            kills += 1;
            killed();
            continue;
        }
        completed(runs);
        chains += 1;
        most = most.max(runs);
        runs = 0;
    }
    while !run(None) {
        runs += 1;
    }
    completed(runs + 1);
    (chains + 1, most.max(runs + 1))
}

/// The table's rows, in key order.
fn table(db: &Path) -> Vec<(i64, String, i64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, level, len FROM events ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn remove_store(dir: &Path, name: &str) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("{name}{suffix}")));
    }
}

#[test]
fn killed_at_twenty_random_instants_a_checkpointed_sqlite_upsert_ends_with_the_uninterrupted_table() {
    let dir = tempfile::tempdir().unwrap();
    let n = lines();
    std::fs::write(dir.path().join("in.jsonl"), events_jsonl(n)).unwrap();
    let source = "[[source]]\ntype = \"file\"\npath = \"in.jsonl\"\n";
    std::fs::write(
        dir.path().join("p.toml"),
        format!("[pipeline]\ncapacity = 1024\n{source}{FILTER}{WORK}{SQLITE_UPSERT}"),
    )
    .unwrap();
    let t = Instant::now();
    assert!(run(dir.path(), &dir.path().join("stdout"), None));
    let whole = t.elapsed();
    let expected = table(&dir.path().join("out.db"));
    // Every line but the debug ones (every third).
    assert_eq!(
        expected.len() as u64,
        (0..n).filter(|i| i % 3 != 2).count() as u64
    );
    remove_store(dir.path(), "state.db");
    remove_store(dir.path(), "out.db");
    let (chains, most_runs) = kill_chains(
        0x2545_f491_4f6c_dd1d,
        whole,
        |kill| run(dir.path(), &dir.path().join("stdout"), kill),
        || {},
        |runs| {
            assert_eq!(
                table(&dir.path().join("out.db")),
                expected,
                "after {runs} runs of a chain"
            );
            remove_store(dir.path(), "state.db");
            remove_store(dir.path(), "out.db");
        },
    );
    eprintln!("{KILLS} kills in {chains} chains over {n} lines (a whole run: {whole:?}; at most {most_runs} runs in a chain)");
}

/// The key committed in the SQLite store `state` for the source `name`
/// (`None`: nothing committed yet).
fn committed_key(state: &Path, name: &str) -> Option<i64> {
    if !state.exists() {
        return None;
    }
    let conn = rusqlite::Connection::open(state).unwrap();
    let key: Option<String> = conn
        .query_row(
            "SELECT key FROM weir_checkpoints WHERE source = ?1",
            [name],
            |r| r.get(0),
        )
        .ok()?;
    let key: serde_json::Value = serde_json::from_str(&key?).unwrap();
    key["integer"].as_i64()
}

#[test]
fn killed_at_twenty_random_instants_a_checkpointed_sqlite_table_into_a_sqlite_upsert_ends_with_the_uninterrupted_table(
) {
    let dir = tempfile::tempdir().unwrap();
    let n = lines();
    {
        let mut conn = rusqlite::Connection::open(dir.path().join("in.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE src (id INTEGER PRIMARY KEY, level TEXT NOT NULL, pad TEXT NOT NULL)",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx.prepare("INSERT INTO src VALUES (?1, ?2, ?3)").unwrap();
            for i in 0..n {
                let pad = "y".repeat((i % 40) as usize);
                insert
                    .execute(rusqlite::params![i as i64, level(i), pad])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    std::fs::write(
        dir.path().join("p.toml"),
        format!(
            r#"
[pipeline]
capacity = 1024
[[source]]
type = "sqlite"
path = "in.db"
table = "src"
key = "id"
page_size = 500
{FILTER}{WORK}{SQLITE_UPSERT}"#
        ),
    )
    .unwrap();
    let out = dir.path().join("out.db");
    let state = dir.path().join("state.db");
    let t = Instant::now();
    assert!(run(dir.path(), &dir.path().join("stdout"), None));
    let whole = t.elapsed();
    let expected = table(&out);
    assert_eq!(
        expected.len() as u64,
        (0..n).filter(|i| i % 3 != 2).count() as u64
    );
    assert_eq!(committed_key(&state, "sqlite"), Some(n as i64 - 1));
    let mut redone_per_restart = Vec::new();
    remove_store(dir.path(), "state.db");
    remove_store(dir.path(), "out.db");
    let (chains, most_runs) = kill_chains(
        0x1b87_3593_cc9e_2d51,
        whole,
        |kill| run(dir.path(), &dir.path().join("stdout"), kill),
        || {
            // The rows written past the committed key are read and written
            // again by the next run.
            if out.exists() {
                let after = committed_key(&state, "sqlite").unwrap_or(-1);
                let conn = rusqlite::Connection::open(&out).unwrap();
                let written: Option<i64> = conn
                    .query_row("SELECT count(*) FROM events WHERE id > ?1", [after], |r| r.get(0))
                    .ok();
                redone_per_restart.push(written.unwrap_or(0));
            }
        },
        |runs| {
            assert_eq!(table(&out), expected, "after {runs} runs of a chain");
            remove_store(dir.path(), "state.db");
            remove_store(dir.path(), "out.db");
        },
    );
    let max_redone = redone_per_restart.iter().copied().max().unwrap_or(0);
    eprintln!(
        "{KILLS} kills in {chains} chains over {n} rows (a whole run: {whole:?}; at most {most_runs} runs in a \
         chain); rows written again per restart: max {max_redone}, all {redone_per_restart:?}"
    );
    // In flight at most: the channels between the tasks (`capacity`
    // 1024 each), the page being worked on and the one read ahead (500
    // each), and one commit interval's finalized rows.
    assert!(
        max_redone <= 20_000,
        "{max_redone} rows written again after one restart"
    );
}

/// The local PostgreSQL server's URL (`WEIR_TEST_POSTGRES` overrides).
fn postgres_url() -> String {
    std::env::var("WEIR_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Runs `sql` on the test server, returning the rows' `(id, level, len)`
/// (for a query that selects them). `None` when there is no server and
/// `WEIR_SKIP_POSTGRES` is set outside CI; otherwise a missing server
/// panics.
fn postgres(sql: &str) -> Option<Vec<(i64, String, i64)>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = match tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                client
            }
            Err(e)
                if std::env::var("CI").as_deref() != Ok("true")
                    && std::env::var_os("WEIR_SKIP_POSTGRES").is_some() =>
            {
                eprintln!(
                    "WEIR_SKIP_POSTGRES: not run: no PostgreSQL server at {} ({e})",
                    postgres_url()
                );
                return None;
            }
            Err(e) => panic!(
                "no PostgreSQL server at {} ({e}); set WEIR_SKIP_POSTGRES=1 to leave this test out",
                postgres_url()
            ),
        };
        if !sql.trim_start().starts_with("SELECT") {
            client.batch_execute(sql).await.unwrap();
            return Some(Vec::new());
        }
        let rows = client.query(sql, &[]).await.unwrap();
        Some(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    })
}

#[test]
fn killed_at_twenty_random_instants_a_checkpointed_file_into_a_postgres_upsert_ends_with_the_uninterrupted_table(
) {
    let schema = format!("weir_crash_{}", std::process::id());
    if postgres(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let n = lines();
    // The checkpoints on the server too, in the test's schema.
    let store = format!("{}?options=-c%20search_path%3D{schema}", postgres_url());
    std::fs::write(dir.path().join("in.jsonl"), events_jsonl(n)).unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        format!(
            r#"
[pipeline]
capacity = 1024
[[source]]
type = "file"
path = "in.jsonl"
{FILTER}{WORK}
[sink]
type = "postgres"
url = "{url}"
table = "{schema}.events"
mode = "upsert"
key = ["id"]
[sink.columns]
id = {{ type = "integer" }}
level = {{ type = "text" }}
len = {{ type = "integer" }}
[checkpoint]
url = "{store}"
interval = "50ms"
"#,
            url = postgres_url()
        ),
    )
    .unwrap();
    let select = format!("SELECT id, level, len FROM {schema}.events ORDER BY id");
    let start_over =
        format!("DROP TABLE IF EXISTS {schema}.events; DROP TABLE IF EXISTS {schema}.weir_checkpoints");
    let t = Instant::now();
    assert!(run_with(dir.path(), &dir.path().join("stdout"), None, &store));
    let whole = t.elapsed();
    let expected = postgres(&select).unwrap();
    assert_eq!(
        expected.len() as u64,
        (0..n).filter(|i| i % 3 != 2).count() as u64
    );
    let mut redone_per_restart = Vec::new();
    // The rows at or past the committed line (line `l + 1` holds id `l`)
    // are written again by the next run.
    let redone = format!(
        "SELECT count(*), '', 0::bigint FROM {schema}.events \
         WHERE id >= coalesce((SELECT max(lines) FROM {schema}.weir_checkpoints), 0)"
    );
    let made = format!(
        "SELECT count(*), '', 0::bigint FROM pg_tables \
         WHERE schemaname = '{schema}' AND tablename IN ('events', 'weir_checkpoints')"
    );
    postgres(&start_over);
    let (chains, _) = kill_chains(
        0x85eb_ca6b_c2b2_ae35,
        whole,
        |kill| run_with(dir.path(), &dir.path().join("stdout"), kill, &store),
        || {
            // Killed before both tables were made: nothing to write again.
            if postgres(&made).unwrap()[0].0 == 2 {
                redone_per_restart.push(postgres(&redone).unwrap()[0].0);
            }
        },
        |runs| {
            assert_eq!(
                postgres(&select).unwrap(),
                expected,
                "after {runs} runs of a chain"
            );
            postgres(&start_over);
        },
    );
    let max_redone = redone_per_restart.iter().copied().max().unwrap_or(0);
    eprintln!(
        "{KILLS} kills in {chains} chains over {n} lines into PostgreSQL (a whole run: {whole:?}); rows written \
         again per restart: max {max_redone}, all {redone_per_restart:?}"
    );
    postgres(&format!("DROP SCHEMA {schema} CASCADE"));
    assert!(
        max_redone <= 20_000,
        "{max_redone} rows written again after one restart"
    );
}
