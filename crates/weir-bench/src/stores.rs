//! The `stores` suite: the `weir` binary writing generated rows into
//! SQLite and PostgreSQL tables, against each database's own bulk loader,
//! and what checkpointing costs.
//!
//! N generated rows (`id`, `ts`, `account`, `amount`, `status`, `note`;
//! ids 1..=N in order, about 115 bytes as JSON) are written once per run of
//! the suite to `$TMPDIR/weir-bench-stores-<pid>/`, as JSON lines for weir
//! and as CSV (the same values) for the loaders. Every variant loads all of
//! them into an empty table of the same schema, created before the timed
//! run (SQLite: `id INTEGER NOT NULL, ts TEXT, account TEXT, amount REAL,
//! status INTEGER, note TEXT, PRIMARY KEY (id)`; PostgreSQL the same with
//! `bigint`, `double precision` and `text`):
//!
//! | row | what |
//! |---|---|
//! | `sqlite3-import` | `sqlite3 -csv DB ".import rows.csv rows"`: the SQLite shell's loader (one transaction, a prepared `INSERT` per row; the shell's default rollback journal). Skipped when `sqlite3` is not on `PATH` (`scripts/install-bench-tools` installs it) |
//! | `weir-sqlite` | `weir run CONFIG --quiet`: file source (JSON lines) → `sqlite` sink, mode `append`, typed columns read from the items' fields |
//! | `weir-sqlite-checkpoint` | the same with `--checkpoint state.db` (a fresh store each run) |
//! | `weir-sqlite-upsert` | the same sink in mode `upsert` (key `id`): every row goes through `ON CONFLICT` (context, no target) |
//! | `psql-copy` | `psql -c "\copy T from rows.csv with (format csv)"` into the local PostgreSQL server |
//! | `weir-postgres` | `weir run CONFIG --quiet`: file source → `postgres` sink, mode `append` (binary `COPY`) into a table of the same schema |
//! | `weir-postgres-chunk16k` | the same with `chunk_size = 16384` in `[pipeline]` (weir's default is 1024): the sink commits once per chunk, so 16 times fewer commits (context, no target) |
//!
//! PostgreSQL is `postgres://postgres@127.0.0.1:5432/test` (trust auth),
//! or `$WEIR_BENCH_POSTGRES`; the tables live in a schema of their own,
//! `weir_bench_<pid>`, dropped at the end. The PostgreSQL rows are skipped,
//! with the reason, when `psql` is not on `PATH` or the server does not
//! answer. The weir rows are skipped when there is no `weir` binary next to
//! this one (a failure when `CI=true`).
//!
//! After every run (untimed) the table is read back: its row count, the
//! sums of `id`, `status` and `round(amount × 10)`, the total length of
//! the text columns and (SQLite) how many rows have an integer `id` and
//! `status` and a real `amount` must equal what the generator wrote, or
//! the suite fails.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::child::{on_path, run_shown, toml_string, version, weir_binary, ChildRun, TempDir};
use crate::report::{interleave, met, Reporter, Row, Sample, Variant};
use crate::rng::Rng;
use crate::Options;

const SUITE: &str = "stores";
/// The table of the SQLite rows (a table per database file).
const TABLE: &str = "rows";
/// The server the PostgreSQL rows use, unless `$WEIR_BENCH_POSTGRES` says.
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const POSTGRES_ENV: &str = "WEIR_BENCH_POSTGRES";

/// Variant names.
const IMPORT: &str = "sqlite3-import";
const WEIR_SQLITE: &str = "weir-sqlite";
const WEIR_CHECKPOINT: &str = "weir-sqlite-checkpoint";
const WEIR_UPSERT: &str = "weir-sqlite-upsert";
const PSQL: &str = "psql-copy";
const WEIR_POSTGRES: &str = "weir-postgres";
const WEIR_POSTGRES_CHUNKS: &str = "weir-postgres-chunk16k";
/// `chunk_size` of `weir-postgres-chunk16k` (weir's default is 1024).
const BIG_CHUNKS: usize = 16_384;

/// A column of the table: its name, its type in weir's config, and how
/// SQLite and PostgreSQL declare it.
#[derive(Debug)]
struct Column {
    name: &'static str,
    weir: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const fn column(
    name: &'static str,
    weir: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
) -> Column {
    Column {
        name,
        weir,
        sqlite,
        postgres,
    }
}

const COLUMNS: [Column; 6] = [
    column("id", "integer", "INTEGER NOT NULL", "bigint NOT NULL"),
    column("ts", "text", "TEXT", "text"),
    column("account", "text", "TEXT", "text"),
    column("amount", "real", "REAL", "double precision"),
    column("status", "integer", "INTEGER", "bigint"),
    column("note", "text", "TEXT", "text"),
];

/// Rows in the input.
fn rows(quick: bool) -> u64 {
    if quick {
        20_000
    } else {
        1_000_000
    }
}

/// What a table holds, summed: the generator's and each variant's must be
/// equal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Digest {
    rows: u64,
    ids: u64,
    statuses: u64,
    /// The sum of `round(amount × 10)` (amounts have one decimal).
    tenths: u64,
    /// The total length of `ts`, `account` and `note`.
    text: u64,
    /// Rows with an integer `id` and `status` and a real `amount`.
    typed: u64,
}

/// The query that computes a [`Digest`] of a table, in either database;
/// `typed` is the expression counting well-typed rows.
fn digest_query(table: &str, typed: &str) -> String {
    format!(
        "SELECT count(*), coalesce(sum(id), 0), coalesce(sum(status), 0), \
         coalesce(sum(CAST(round(amount * 10) AS BIGINT)), 0), \
         coalesce(sum(length(ts) + length(account) + length(note)), 0), {typed} FROM {table}"
    )
}

/// Writes `n` rows to `json` (one object a line) and to `csv` (no
/// header; a note with a comma is quoted), the same values in both.
fn generate(mut json: impl Write, mut csv: impl Write, n: u64, seed: u64) -> io::Result<Digest> {
    const NOTES: [&str; 6] = ["ok", "done", "slow", "cache miss", "timeout, retried", "queued"];
    const STATUSES: [u64; 5] = [200, 200, 201, 404, 503];
    let mut rng = Rng::new(seed);
    let mut d = Digest::default();
    let (mut j, mut c) = (String::with_capacity(160), String::with_capacity(120));
    for i in 0..n {
        use std::fmt::Write as _;
        let id = i + 1;
        // Three milliseconds apart from 12:00:00.000.
        let ms = i * 3;
        let (secs, milli) = (ms / 1000, ms % 1000);
        let ts = format!(
            "2026-12-07T{:02}:{:02}:{:02}.{milli:03}Z",
            (12 + secs / 3600) % 24,
            secs / 60 % 60,
            secs % 60
        );
        let account = format!("acct-{}", rng.below(100_000));
        let tenths = rng.below(1_000_000);
        let status = STATUSES[rng.below(STATUSES.len() as u64) as usize];
        let note = rng.pick(&NOTES);
        let amount = format!("{}.{}", tenths / 10, tenths % 10);
        j.clear();
        c.clear();
        writeln!(
            j,
            "{{\"id\":{id},\"ts\":\"{ts}\",\"account\":\"{account}\",\"amount\":{amount},\"status\":{status},\"note\":\"{note}\"}}"
        )
        .expect("writing to a String cannot fail");
        let quoted = if note.contains(',') {
            format!("\"{note}\"")
        } else {
            note.to_owned()
        };
        writeln!(c, "{id},{ts},{account},{amount},{status},{quoted}")
            .expect("writing to a String cannot fail");
        json.write_all(j.as_bytes())?;
        csv.write_all(c.as_bytes())?;
        d.rows += 1;
        d.ids += id;
        d.statuses += status;
        d.tenths += tenths;
        d.text += (ts.len() + account.len() + note.len()) as u64;
    }
    d.typed = d.rows;
    json.flush()?;
    csv.flush()?;
    Ok(d)
}

/// Writes the inputs, synced to disk so that write-back does not disturb
/// the first round. Returns their digest and the JSON file's size.
fn write_inputs(json: &Path, csv: &Path, n: u64) -> Result<(Digest, u64), String> {
    let create = |p: &Path| File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()));
    let (jf, cf) = (create(json)?, create(csv)?);
    let d = generate(
        BufWriter::with_capacity(1 << 20, &jf),
        BufWriter::with_capacity(1 << 20, &cf),
        n,
        0x5EED_0019,
    )
    .map_err(|e| format!("cannot write the inputs in {}: {e}", json.display()))?;
    for (f, p) in [(&jf, json), (&cf, csv)] {
        f.sync_all()
            .map_err(|e| format!("cannot sync {}: {e}", p.display()))?;
    }
    let bytes = jf.metadata().map_err(|e| e.to_string())?.len();
    Ok((d, bytes))
}

/// `CREATE TABLE` for `table`, columns declared by `decl` (SQLite's or
/// PostgreSQL's).
fn create_table(table: &str, decl: impl Fn(&Column) -> &'static str) -> String {
    let cols: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("{} {}", c.name, decl(c)))
        .collect();
    format!("CREATE TABLE {table} ({}, PRIMARY KEY (id))", cols.join(", "))
}

/// Removes the SQLite database at `db` (with its journal, WAL and shared
/// memory files), then creates it with the empty table.
fn fresh_sqlite(db: &Path) -> Result<(), String> {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(format!("cannot remove {}: {e}", Path::new(&p).display()));
            }
            _ => {}
        }
    }
    let conn = rusqlite::Connection::open(db).map_err(|e| format!("cannot create {}: {e}", db.display()))?;
    conn.execute_batch(&create_table(TABLE, |c| c.sqlite))
        .map_err(|e| format!("cannot create the table in {}: {e}", db.display()))
}

/// The digest of the table in the SQLite database at `db`.
fn sqlite_digest(db: &Path) -> Result<Digest, String> {
    let failed = |e: rusqlite::Error| format!("cannot read back {}: {e}", db.display());
    let conn = rusqlite::Connection::open(db).map_err(failed)?;
    let typed =
        "coalesce(sum(typeof(id) = 'integer' AND typeof(status) = 'integer' AND typeof(amount) = 'real'), 0)";
    conn.query_row(&digest_query(TABLE, typed), [], |r| {
        let n = |i| r.get::<_, i64>(i).map(|v| v as u64);
        Ok(Digest {
            rows: n(0)?,
            ids: n(1)?,
            statuses: n(2)?,
            tenths: n(3)?,
            text: n(4)?,
            typed: n(5)?,
        })
    })
    .map_err(failed)
}

/// A sample of a child that loaded a table, once the table's digest
/// (`got`, read after the run) is found equal to the generator's.
fn checked(what: &str, run: ChildRun, got: Digest, want: Digest) -> Result<Sample, String> {
    if got != want {
        return Err(format!(
            "OUTPUT MISMATCH: {what} left {got:?} where the generator wrote {want:?}: its measurements are void"
        ));
    }
    Ok(Sample {
        seconds: run.seconds,
        check: got.rows,
        peak_rss_kb: run.peak_rss_kb,
    })
}

/// The local PostgreSQL server, through `psql`, and the schema the suite's
/// tables live in (dropped when this is dropped).
#[derive(Debug)]
struct Postgres {
    psql: PathBuf,
    url: String,
    schema: String,
    /// The schema may exist: drop it at the end (not when the server
    /// never answered).
    owns_schema: bool,
}

impl Postgres {
    /// Checks that `psql` reaches the server and creates the schema with
    /// both tables. `Err`: why the PostgreSQL rows are skipped.
    fn connect(psql: PathBuf) -> Result<Postgres, String> {
        let url = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| POSTGRES_URL.to_owned());
        let mut pg = Postgres {
            psql,
            url,
            schema: format!("weir_bench_{}", std::process::id()),
            owns_schema: false,
        };
        pg.sql("SELECT 1")
            .map_err(|e| format!("the server at {} does not answer: {e}", pg.url))?;
        pg.owns_schema = true;
        let mut setup = format!("DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0};", pg.schema);
        for t in [WEIR_POSTGRES, WEIR_POSTGRES_CHUNKS, PSQL] {
            setup.push_str(&create_table(&pg.table(t), |c| c.postgres));
            setup.push(';');
        }
        pg.sql(&setup)?;
        Ok(pg)
    }

    /// The table of variant `name`.
    fn table(&self, name: &str) -> String {
        format!("{}.{}", self.schema, name.replace('-', "_"))
    }

    /// `psql` with the connection and the flags every call takes, run in
    /// `dir`: no `.psqlrc`, stop at the first error, unaligned tuples only.
    fn command(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(&self.psql);
        cmd.current_dir(dir)
            .env("PGCONNECT_TIMEOUT", "5")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(&self.url);
        cmd
    }

    /// Runs `sql`; its output, or psql's error.
    fn sql(&self, sql: &str) -> Result<String, String> {
        let out = self
            .command(Path::new("."))
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot start {}: {e}", self.psql.display()))?;
        if !out.status.success() {
            return Err(format!(
                "psql failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The digest of variant `name`'s table.
    fn digest(&self, name: &str) -> Result<Digest, String> {
        let out = self.sql(&digest_query(&self.table(name), "count(*)"))?;
        let n: Vec<u64> = out
            .split('|')
            .map(|v| v.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot read the digest of {} from `{out}`: {e}", self.table(name)))?;
        match n[..] {
            [rows, ids, statuses, tenths, text, typed] => Ok(Digest {
                rows,
                ids,
                statuses,
                tenths,
                text,
                typed,
            }),
            _ => Err(format!("unexpected digest of {}: `{out}`", self.table(name))),
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if !self.owns_schema {
            return;
        }
        if let Err(e) = self.sql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema)) {
            eprintln!("{SUITE}: cannot drop the schema {}: {e}", self.schema);
        }
    }
}

/// The config `weir run` is given: the JSON-lines file into the sink
/// whose settings (`type`, where, table, mode) are `sink`, with the
/// columns read from the items' fields; `chunk_size` in `[pipeline]` if
/// given.
fn weir_config(input: &Path, chunk_size: Option<usize>, sink: &str) -> Result<String, String> {
    let columns: String = COLUMNS
        .iter()
        .map(|c| format!("{} = {{ type = \"{}\" }}\n", c.name, c.weir))
        .collect();
    let chunk = chunk_size.map_or_else(String::new, |n| format!("chunk_size = {n}\n"));
    Ok(format!(
        "[pipeline]\nname = \"bench\"\n{chunk}\n\
         [[source]]\ntype = \"file\"\npath = {}\nformat = \"jsonl\"\n\n\
         [sink]\n{sink}\n\n[sink.columns]\n{columns}",
        toml_string(input)?,
    ))
}

/// Where a weir run writes.
#[derive(Debug)]
enum Store<'a> {
    /// A SQLite database, and the checkpoint store if the run keeps one.
    Sqlite {
        db: PathBuf,
        checkpoint: Option<PathBuf>,
    },
    /// The job's table on the server.
    Postgres(&'a Postgres),
}

/// A weir run: its variant's name, its config and where it writes.
#[derive(Debug)]
struct WeirJob<'a> {
    name: &'static str,
    config: PathBuf,
    store: Store<'a>,
}

impl WeirJob<'_> {
    /// Empties the job's table (and removes its checkpoint store), runs
    /// `weir`, and checks the table.
    fn sample(&self, weir: &Path, want: Digest, shown: &mut bool) -> Result<Sample, String> {
        let mut cmd = Command::new(weir);
        cmd.arg("run")
            .arg(&self.config)
            .arg("--quiet")
            .stdout(Stdio::piped());
        match &self.store {
            Store::Sqlite { db, checkpoint } => {
                fresh_sqlite(db)?;
                if let Some(state) = checkpoint {
                    fresh_file(state)?;
                    cmd.arg("--checkpoint").arg(state);
                }
            }
            Store::Postgres(pg) => drop(pg.sql(&format!("TRUNCATE {}", pg.table(self.name)))?),
        }
        let what = format!("`weir run {} --quiet`", self.config.display());
        let run = run_shown(SUITE, &what, &mut cmd, shown)?;
        let got = match &self.store {
            Store::Sqlite { db, .. } => sqlite_digest(db)?,
            Store::Postgres(pg) => pg.digest(self.name)?,
        };
        checked(self.name, run, got, want)
    }
}

pub(crate) fn run(opts: &Options, out: &mut Reporter) -> Result<(), String> {
    let n = rows(opts.quick);
    let sqlite3 = on_path("sqlite3");
    if sqlite3.is_none() {
        eprintln!("{SUITE}: `sqlite3` is not on PATH (scripts/install-bench-tools installs it): the {IMPORT} row is skipped");
    }
    let postgres = match on_path("psql") {
        None => Err("`psql` is not on PATH (scripts/install-bench-tools installs it)".to_owned()),
        // CI starts the server: there, a missing one fails the suite.
        Some(psql) => match Postgres::connect(psql) {
            Err(e) if std::env::var_os("CI").is_some_and(|v| v == "true") => {
                return Err(format!("{e} (CI=true: the PostgreSQL rows cannot be skipped)"));
            }
            connected => connected,
        },
    };
    if let Err(e) = &postgres {
        eprintln!("{SUITE}: {e}: the PostgreSQL rows are skipped");
    }
    let postgres = postgres.as_ref();
    let weir = weir_binary(SUITE)?;

    let dir = TempDir::new(SUITE)?;
    let (json, csv) = (dir.join("rows.jsonl"), dir.join("rows.csv"));
    eprintln!(
        "{SUITE}: writing {n} rows to {} and {}",
        json.display(),
        csv.display()
    );
    let (want, json_bytes) = write_inputs(&json, &csv, n)?;

    let mut jobs = Vec::new();
    let mut add = |name: &'static str, chunk_size, sink: String, store| -> Result<(), String> {
        let config = dir.join(&format!("{name}.toml"));
        std::fs::write(&config, weir_config(&json, chunk_size, &sink)?)
            .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        jobs.push(WeirJob { name, config, store });
        Ok(())
    };
    for (name, mode, checkpoint) in [
        (WEIR_SQLITE, "mode = \"append\"", false),
        (WEIR_CHECKPOINT, "mode = \"append\"", true),
        (WEIR_UPSERT, "mode = \"upsert\"\nkey = [\"id\"]", false),
    ] {
        let db = dir.join(&format!("{name}.db"));
        let sink = format!(
            "type = \"sqlite\"\npath = {}\ntable = \"{TABLE}\"\n{mode}",
            toml_string(&db)?
        );
        let checkpoint = checkpoint.then(|| dir.join(&format!("{name}-state.db")));
        add(name, None, sink, Store::Sqlite { db, checkpoint })?;
    }
    if let Ok(pg) = postgres {
        for (name, chunk_size) in [(WEIR_POSTGRES, None), (WEIR_POSTGRES_CHUNKS, Some(BIG_CHUNKS))] {
            let sink = format!(
                "type = \"postgres\"\nurl = {}\ntable = \"{}\"\nmode = \"append\"",
                serde_json::to_string(&pg.url).map_err(|e| e.to_string())?,
                pg.table(name)
            );
            add(name, chunk_size, sink, Store::Postgres(pg))?;
        }
    }

    let mut variants = Vec::new();
    if let Some(sqlite3) = &sqlite3 {
        let (db, dir) = (dir.join(&format!("{IMPORT}.db")), &dir);
        let mut shown = false;
        variants.push(Variant::new(IMPORT, move || {
            fresh_sqlite(&db)?;
            let mut cmd = Command::new(sqlite3);
            cmd.current_dir(dir.path())
                .arg("-csv")
                .arg(&db)
                .arg(format!(".import rows.csv {TABLE}"))
                .stdout(Stdio::piped());
            let run = run_shown(SUITE, "sqlite3 .import", &mut cmd, &mut shown)?;
            checked(IMPORT, run, sqlite_digest(&db)?, want)
        }));
    }
    if let Ok(pg) = postgres {
        let mut shown = false;
        let dir = &dir;
        variants.push(Variant::new(PSQL, move || {
            pg.sql(&format!("TRUNCATE {}", pg.table(PSQL)))?;
            let mut cmd = pg.command(dir.path());
            cmd.arg("-c")
                .arg(format!(
                    "\\copy {} FROM 'rows.csv' WITH (FORMAT csv)",
                    pg.table(PSQL)
                ))
                .stdout(Stdio::piped());
            let run = run_shown(SUITE, "psql \\copy", &mut cmd, &mut shown)?;
            checked(PSQL, run, pg.digest(PSQL)?, want)
        }));
    }
    // The weir rows after the baselines: the PostgreSQL ones last.
    if let Some(weir) = &weir {
        for job in &jobs {
            let mut shown = false;
            variants.push(Variant::new(job.name, move || job.sample(weir, want, &mut shown)));
        }
    }
    let s = interleave(SUITE, opts.rounds, true, &mut variants)?;
    drop(variants);

    let has = |name: &str| s.names().contains(&name);
    let row = |name: &str| Row::new(SUITE, name, n, Some(s.median_seconds(name))).rss(s.median_rss_kb(name));
    let ratio = |a: &str, b: &str| s.paired(a, b, |x, y| x.seconds / y.seconds);
    // The ratio of every round, for the verdicts: a busy machine spreads them.
    let rounds = |a: &str, b: &str| {
        let each: Vec<String> = s
            .of(a)
            .iter()
            .zip(s.of(b))
            .map(|(x, y)| format!("{:.2}", x.seconds / y.seconds))
            .collect();
        format!("by round: {}", each.join(" "))
    };
    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    if has(IMPORT) {
        rows.push(row(IMPORT));
    }
    if has(WEIR_SQLITE) {
        let mut r = row(WEIR_SQLITE);
        if has(IMPORT) {
            let speedup = ratio(IMPORT, WEIR_SQLITE);
            r = r
                .against(IMPORT, ratio(WEIR_SQLITE, IMPORT))
                .with("speedup_vs_import", speedup);
            verdicts.push(format!(
                "{WEIR_SQLITE} loads at {speedup:.2}x the rate of sqlite3's .import (target >= 1: {}; {})",
                met(speedup >= 1.0),
                rounds(IMPORT, WEIR_SQLITE)
            ));
        }
        let per_sec = n as f64 / s.median_seconds(WEIR_SQLITE);
        verdicts.push(format!(
            "{WEIR_SQLITE} writes {:.0}k rows/s (target >= 300k: {})",
            per_sec / 1e3,
            met(per_sec >= 300_000.0),
        ));
        rows.push(r);
        let cost = ratio(WEIR_CHECKPOINT, WEIR_SQLITE);
        rows.push(row(WEIR_CHECKPOINT).against(WEIR_SQLITE, cost));
        verdicts.push(format!(
            "checkpointing costs {:+.1}% ({WEIR_CHECKPOINT} ÷ {WEIR_SQLITE} = {cost:.3}; target <= 1.05: {}; {})",
            (cost - 1.0) * 100.0,
            met(cost <= 1.05),
            rounds(WEIR_CHECKPOINT, WEIR_SQLITE)
        ));
        rows.push(row(WEIR_UPSERT).against(WEIR_SQLITE, ratio(WEIR_UPSERT, WEIR_SQLITE)));
    }
    if has(PSQL) {
        rows.push(row(PSQL));
    }
    for name in [WEIR_POSTGRES, WEIR_POSTGRES_CHUNKS]
        .into_iter()
        .filter(|n| has(n))
    {
        let speedup = ratio(PSQL, name);
        rows.push(
            row(name)
                .against(PSQL, ratio(name, PSQL))
                .with("speedup_vs_psql", speedup),
        );
        // The target is the default config's; the bigger chunks show what
        // a commit per chunk costs (context).
        let target = match name {
            WEIR_POSTGRES => format!("target >= 0.9: {}", met(speedup >= 0.9)),
            _ => format!("chunk_size = {BIG_CHUNKS}: context, no target"),
        };
        verdicts.push(format!(
            "{name} loads at {speedup:.2}x the rate of psql's \\copy ({target}; {})",
            rounds(PSQL, name)
        ));
    }
    out.rows(&rows);
    out.note(&format!(
        "stores: {n} generated rows ({:.0} bytes a JSON line on average), each run into an empty table \
         (a fresh SQLite file; a truncated PostgreSQL table); items/s = rows/s; ratio = time ÷ the \
         baseline's (paired by round); tables read back after every run: counts, sums and types agree",
        json_bytes as f64 / n as f64,
    ));
    match &sqlite3 {
        Some(p) => out.note(&format!("stores: sqlite3 is {}", version(p))),
        None => out.note(&format!(
            "stores: {IMPORT} row SKIPPED: `sqlite3` is not on PATH (scripts/install-bench-tools)"
        )),
    }
    match postgres {
        Ok(pg) => out.note(&format!(
            "stores: psql is {}; server {}",
            version(&pg.psql),
            pg.sql("SHOW server_version").unwrap_or_else(|e| e)
        )),
        Err(e) => out.note(&format!("stores: PostgreSQL rows SKIPPED: {e}")),
    }
    if weir.is_none() {
        out.note("stores: weir rows SKIPPED: no `weir` binary next to weir-bench (`cargo build --release -p weir-cli`)");
    }
    if opts.quick && !verdicts.is_empty() {
        out.note("stores: --quick: start-up and fixed costs dominate at this size; the verdicts below say nothing about the targets");
    }
    for v in verdicts {
        out.note(&format!("stores: {v}"));
    }
    Ok(())
}

/// Removes `path` if it exists.
fn fresh_file(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_csv_hold_the_same_rows_and_the_digest_sums_them() {
        let (mut json, mut csv) = (Vec::new(), Vec::new());
        let d = generate(&mut json, &mut csv, 2_000, 7).unwrap();
        let (json, csv) = (String::from_utf8(json).unwrap(), String::from_utf8(csv).unwrap());
        let mut r = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(csv.as_bytes());
        let mut sum = Digest::default();
        for (line, rec) in json.lines().zip(r.records()) {
            let (v, rec): (serde_json::Value, _) = (serde_json::from_str(line).unwrap(), rec.unwrap());
            for (i, Column { name, .. }) in COLUMNS.iter().enumerate() {
                let want = match &v[*name] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                assert_eq!(rec[i], want, "{name} in {line}");
            }
            sum.rows += 1;
            sum.ids += v["id"].as_u64().unwrap();
            sum.statuses += v["status"].as_u64().unwrap();
            sum.tenths += (v["amount"].as_f64().unwrap() * 10.0).round() as u64;
            sum.text += ["ts", "account", "note"]
                .map(|k| v[k].as_str().unwrap().len() as u64)
                .iter()
                .sum::<u64>();
            sum.typed += 1;
        }
        assert_eq!(sum, d);
        assert!(csv.contains("\"timeout, retried\""));
        let mean = json.len() as f64 / 2_000.0;
        assert!((90.0..=120.0).contains(&mean), "mean JSON line {mean}");
    }

    #[test]
    fn a_sqlite_table_loaded_with_the_rows_has_the_generator_s_digest() {
        let dir = TempDir::new(&format!("stores-test-{:?}", std::thread::current().id())).unwrap();
        let db = dir.join("t.db");
        fresh_sqlite(&db).unwrap();
        fresh_sqlite(&db).unwrap();
        assert_eq!(sqlite_digest(&db).unwrap(), Digest::default());
        let (mut json, mut csv) = (Vec::new(), Vec::new());
        let want = generate(&mut json, &mut csv, 500, 3).unwrap();
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut insert = conn
            .prepare("INSERT INTO rows VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .unwrap();
        for line in String::from_utf8(json).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            insert
                .execute(rusqlite::params![
                    v["id"].as_i64(),
                    v["ts"].as_str(),
                    v["account"].as_str(),
                    v["amount"].as_f64(),
                    v["status"].as_i64(),
                    v["note"].as_str()
                ])
                .unwrap();
        }
        assert_eq!(sqlite_digest(&db).unwrap(), want);
    }

    #[test]
    fn the_weir_config_names_every_column_with_its_type() {
        let cfg = weir_config(Path::new("/tmp/in \"x\".jsonl"), None, "type = \"sqlite\"").unwrap();
        assert!(cfg.contains(r#"path = "/tmp/in \"x\".jsonl""#), "{cfg}");
        assert!(!cfg.contains("chunk_size"));
        let chunked = weir_config(Path::new("in.jsonl"), Some(16), "type = \"postgres\"").unwrap();
        assert!(
            chunked.starts_with("[pipeline]\nname = \"bench\"\nchunk_size = 16\n\n[[source]]"),
            "{chunked}"
        );
        assert!(cfg.ends_with(
            "[sink.columns]\nid = { type = \"integer\" }\nts = { type = \"text\" }\naccount = { type = \"text\" }\n\
             amount = { type = \"real\" }\nstatus = { type = \"integer\" }\nnote = { type = \"text\" }\n"
        ));
        assert_eq!(
            create_table("s.t", |c| c.postgres),
            "CREATE TABLE s.t (id bigint NOT NULL, ts text, account text, amount double precision, \
             status bigint, note text, PRIMARY KEY (id))"
        );
    }
}
