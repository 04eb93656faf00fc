//! The SQLite sink on real database files: modes, typed columns, what a
//! flush commits, refused rows, statements over the parameter limit. The
//! SQLite source (module `source`): key order across pages, resume after
//! a drain, queries, bad tables, keys and names.
#![cfg(feature = "sqlite")]

use std::path::Path;

use rusqlite::Connection;
use weir::{DeadLetters, ErrorPolicy, Pipeline, Sink};
use weir_io::sink::DeadLetterFileSink;
use weir_io::sqlite::{Row, SqlType, SqlValue, SqliteMode, SqliteSink, SqliteSinkConfig};
use weir_io::IoErrorKind;

/// `(id, name)` rows into table `t`.
fn people(db: &Path) -> SqliteSinkConfig {
    SqliteSinkConfig::new(db, "t")
        .column("id", SqlType::Integer)
        .column("name", SqlType::Text)
}

fn person(id: i64, name: &str) -> Row {
    Row::from(vec![SqlValue::from(id), SqlValue::from(name)])
}

/// The table's `(id, name)` rows, by id, read on a connection of its own.
fn rows(db: &Path) -> Vec<(i64, String)> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT id, name FROM t ORDER BY id").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn pairs(list: &[(i64, &str)]) -> Vec<(i64, String)> {
    list.iter().map(|(i, s)| (*i, s.to_string())).collect()
}

async fn run(config: SqliteSinkConfig, input: Vec<Row>) -> weir::Report {
    let sink = SqliteSink::open(config).unwrap();
    Pipeline::from_iter(input)
        .sink(sink)
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_flush_commits_rows_written_before_it_and_nothing_is_visible_before() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db");
    let mut sink = SqliteSink::open(people(&db)).unwrap();
    let written = sink.written();
    sink.write(person(1, "ann")).await.unwrap();
    sink.write(person(2, "bo")).await.unwrap();
    assert_eq!(rows(&db), [], "written, not flushed: not committed");
    sink.flush().await.unwrap();
    assert_eq!(rows(&db), pairs(&[(1, "ann"), (2, "bo")]));
    assert_eq!(written.get(), 2);
    sink.write(person(3, "cy")).await.unwrap();
    assert_eq!(rows(&db).len(), 2);
    // Dropped without a flush or close (a killed run): the row is not committed.
    drop(sink);
    assert_eq!(rows(&db).len(), 2);
    let mode: String = Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn append_adds_to_the_table_run_after_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db");
    let report = run(people(&db), vec![person(1, "ann"), person(2, "bo")]).await;
    assert_eq!(report.delivered, 2);
    run(people(&db), vec![person(3, "cy")]).await;
    assert_eq!(rows(&db), pairs(&[(1, "ann"), (2, "bo"), (3, "cy")]));
}

#[tokio::test]
async fn upsert_twice_keeps_one_row_per_key_with_the_latest_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db");
    let upsert = || {
        people(&db).mode(SqliteMode::Upsert {
            key: vec!["id".into()],
        })
    };
    // A key twice in one batch: the later row wins.
    let first = vec![person(1, "ann"), person(2, "bo"), person(1, "anna")];
    assert_eq!(run(upsert(), first).await.delivered, 3);
    assert_eq!(rows(&db), pairs(&[(1, "anna"), (2, "bo")]));
    let second = vec![person(2, "bob"), person(3, "cy")];
    run(upsert(), second).await;
    assert_eq!(rows(&db), pairs(&[(1, "anna"), (2, "bob"), (3, "cy")]));
}

#[tokio::test]
async fn an_upsert_on_a_table_without_that_key_constraint_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (id INTEGER, name TEXT)")
        .unwrap();
    let config = people(&db).mode(SqliteMode::Upsert {
        key: vec!["id".into()],
    });
    let err = SqliteSink::open(config).unwrap_err();
    assert!(
        err.to_string()
            .contains("an upsert needs its key (id) to be the table's PRIMARY KEY or a UNIQUE constraint"),
        "{err}"
    );
    let missing_column = SqliteSinkConfig::new(&db, "t").column("email", SqlType::Text);
    let err = SqliteSink::open(missing_column).unwrap_err();
    assert_eq!(err.kind(), IoErrorKind::InvalidConfig);
    assert!(
        err.to_string()
            .contains("has no column `email` (its columns: id, name)"),
        "{err}"
    );
}

#[tokio::test]
async fn replace_deletes_the_old_rows_in_the_runs_first_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db");
    run(people(&db), vec![person(1, "old"), person(2, "old")]).await;
    let replace = || people(&db).mode(SqliteMode::Replace);
    let mut sink = SqliteSink::open(replace()).unwrap();
    sink.write(person(7, "new")).await.unwrap();
    assert_eq!(rows(&db).len(), 2, "the old rows stay until the first commit");
    sink.flush().await.unwrap();
    assert_eq!(rows(&db), pairs(&[(7, "new")]));
    // Later flushes of the same run append.
    sink.write(person(8, "newer")).await.unwrap();
    sink.flush().await.unwrap();
    sink.close().await.unwrap();
    assert_eq!(rows(&db), pairs(&[(7, "new"), (8, "newer")]));
    // A run that writes no row leaves the table empty.
    let report = run(replace(), Vec::new()).await;
    assert_eq!(report.delivered, 0);
    assert_eq!(rows(&db), []);
}

#[tokio::test]
async fn typed_columns_store_integers_reals_text_blobs_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db");
    let config = SqliteSinkConfig::new(&db, "typed")
        .column("i", SqlType::Integer)
        .column("r", SqlType::Real)
        .column("s", SqlType::Text)
        .column("b", SqlType::Blob)
        .column("j", SqlType::Json);
    let json = SqlType::Json
        .from_json(&serde_json::json!({"tags": ["a", "b"], "n": 1}))
        .unwrap();
    let input = vec![
        Row::from(vec![
            SqlValue::from(1),
            SqlValue::from(2.5),
            SqlValue::from("x'); DROP TABLE typed; --"),
            SqlValue::Blob(vec![0, 159, 255]),
            json,
        ]),
        Row::from(vec![SqlValue::Null; 5]),
    ];
    assert_eq!(run(config, input).await.delivered, 2);
    let conn = Connection::open(&db).unwrap();
    let (types, s, b, tag): (String, String, Vec<u8>, String) = conn
        .query_row(
            "SELECT typeof(i) || typeof(r) || typeof(s) || typeof(b) || typeof(j), s, b, j ->> '$.tags[1]' \
             FROM typed WHERE i = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(types, "integerrealtextblobtext");
    assert_eq!(s, "x'); DROP TABLE typed; --", "values are bound, never executed");
    assert_eq!(b, [0, 159, 255]);
    assert_eq!(tag, "b");
    let nulls: i64 = conn
        .query_row(
            "SELECT count(*) FROM typed WHERE i IS NULL AND j IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(nulls, 1);
}

#[tokio::test]
async fn a_value_of_the_wrong_type_or_count_fails_that_item_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db");
    let config = people(&db).column("doc", SqlType::Json);
    let mut sink = SqliteSink::open(config).unwrap();
    let ok = Row::from(vec![
        SqlValue::from(1),
        SqlValue::from("a"),
        SqlValue::from("[1]"),
    ]);
    sink.write(ok).await.unwrap();
    let wrong = Row::from(vec![SqlValue::from("one"), SqlValue::from("b"), SqlValue::Null]);
    let err = sink.write(wrong).await.unwrap_err();
    assert_eq!(err.kind(), IoErrorKind::Encode);
    assert!(
        err.to_string().contains(
            "column `id` (integer): expected an integer, found text \"one\", in the row (id = 'one', name = 'b', doc = NULL)"
        ),
        "{err}"
    );
    let bad_json = Row::from(vec![SqlValue::from(2), SqlValue::from("c"), SqlValue::from("{")]);
    let err = sink.write(bad_json).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("column `doc` (json): expected JSON text, found invalid JSON"),
        "{err}"
    );
    let short = Row::from(vec![SqlValue::from(3)]);
    let err = sink.write(short).await.unwrap_err();
    assert!(err.to_string().contains("1 values for 3 columns"), "{err}");
    sink.flush().await.unwrap();
    assert_eq!(rows(&db), pairs(&[(1, "a")]));
}

#[test]
fn bad_identifiers_are_refused_before_the_database_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db");
    let table = SqliteSinkConfig::new(&db, "t\"; DROP TABLE x; --").column("a", SqlType::Text);
    let err = SqliteSink::open(table).unwrap_err();
    assert_eq!(err.kind(), IoErrorKind::InvalidConfig);
    assert!(err.to_string().contains("is not a plain SQL identifier"), "{err}");
    let column = SqliteSinkConfig::new(&db, "t").column("a b", SqlType::Text);
    assert_eq!(
        SqliteSink::open(column).unwrap_err().kind(),
        IoErrorKind::InvalidConfig
    );
    assert!(!db.exists());
}

/// `(id INTEGER PRIMARY KEY, name TEXT)`: a second row of an id breaks it.
fn unique_people(db: &Path) -> SqliteSinkConfig {
    Connection::open(db)
        .unwrap()
        .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .unwrap();
    people(db)
}

#[tokio::test]
async fn a_constraint_violation_fails_the_flush_naming_the_row_and_commits_none_of_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db");
    let dead = dir.path().join("dead.jsonl");
    let sink = SqliteSink::open(unique_people(&db)).unwrap();
    let input = vec![
        person(1, "ann"),
        person(2, "bo"),
        person(1, "again"),
        person(3, "cy"),
    ];
    let report = Pipeline::from_iter(input)
        .sink(sink)
        .dead_letter(DeadLetters::new(DeadLetterFileSink::create(&dead).unwrap()))
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered), (0, 4));
    assert_eq!(rows(&db), []);
    let letters = std::fs::read_to_string(&dead).unwrap();
    let first: serde_json::Value = serde_json::from_str(letters.lines().next().unwrap()).unwrap();
    assert_eq!(first["item"], serde_json::json!([1, "ann"]));
    let error = first["error"].as_str().unwrap();
    assert!(
        error.contains("cannot write row 3 of the transaction (id = 1, name = 'again') to table `t` of"),
        "{error}"
    );
    assert!(error.contains("UNIQUE constraint failed: t.id"), "{error}");
}

#[tokio::test]
async fn with_isolated_rows_a_refused_row_fails_alone_and_the_others_are_committed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db");
    let config = unique_people(&db).isolate_rows(true);
    let mut sink = SqliteSink::open(config).unwrap();
    sink.write(person(1, "ann")).await.unwrap();
    let err = sink.write(person(1, "again")).await.unwrap_err();
    assert_eq!(err.kind(), IoErrorKind::Rejected);
    assert!(err.to_string().contains("(id = 1, name = 'again')"), "{err}");
    assert!(
        err.to_string().contains("UNIQUE constraint failed: t.id"),
        "{err}"
    );
    let null_name = Row::from(vec![SqlValue::from(5), SqlValue::Null]);
    let err = sink.write(null_name).await.unwrap_err();
    assert!(
        err.to_string().contains("NOT NULL constraint failed: t.name"),
        "{err}"
    );
    sink.write(person(2, "bo")).await.unwrap();
    sink.flush().await.unwrap();
    assert_eq!(rows(&db), pairs(&[(1, "ann"), (2, "bo")]));

    let report = run(
        unique_people(&dir.path().join("two.db")).isolate_rows(true),
        vec![person(1, "a"), person(1, "b"), person(2, "c")],
    )
    .await;
    assert_eq!((report.delivered, report.failed), (2, 1));
}

#[tokio::test]
async fn a_retried_flush_inserts_the_failed_rows_again_and_a_new_write_drops_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db");
    let conn = Connection::open(&db).unwrap();
    // Inserts fail while `gate.shut` is 1.
    conn.execute_batch(
        "CREATE TABLE gate (shut INTEGER); INSERT INTO gate VALUES (1);
         CREATE TABLE t (id INTEGER, name TEXT);
         CREATE TRIGGER guard BEFORE INSERT ON t WHEN (SELECT shut FROM gate) = 1
         BEGIN SELECT RAISE(ABORT, 'the gate is shut'); END;",
    )
    .unwrap();
    let mut sink = SqliteSink::open(people(&db).create_table(false)).unwrap();
    sink.write(person(1, "ann")).await.unwrap();
    let err = sink.flush().await.unwrap_err();
    assert!(err.to_string().contains("the gate is shut"), "{err}");
    conn.execute_batch("UPDATE gate SET shut = 0").unwrap();
    // The engine's retry policy calls flush again: the row goes in.
    sink.flush().await.unwrap();
    assert_eq!(rows(&db), pairs(&[(1, "ann")]));
    assert_eq!(sink.written().get(), 1);

    conn.execute_batch("UPDATE gate SET shut = 1").unwrap();
    sink.write(person(2, "bo")).await.unwrap();
    sink.flush().await.unwrap_err();
    conn.execute_batch("UPDATE gate SET shut = 0").unwrap();
    // No retry: the engine failed row 2; the next write starts afresh.
    sink.write(person(3, "cy")).await.unwrap();
    sink.flush().await.unwrap();
    sink.close().await.unwrap();
    assert_eq!(rows(&db), pairs(&[(1, "ann"), (3, "cy")]));
    assert_eq!(sink.written().get(), 2);
}

#[tokio::test]
async fn a_batch_over_the_bound_parameter_limit_is_split_into_statements() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db");
    let config = people(&db).column("n", SqlType::Real).batch_rows(1_000_000);
    let mut sink = SqliteSink::open(config).unwrap();
    // 40 000 rows of 3 values in one transaction: 120 000 parameters.
    for i in 0..40_000i64 {
        let row = Row::from(vec![
            SqlValue::from(i),
            SqlValue::from(format!("p{i}")),
            SqlValue::from(i as f64 / 2.0),
        ]);
        sink.write(row).await.unwrap();
    }
    sink.flush().await.unwrap();
    sink.close().await.unwrap();
    let conn = Connection::open(&db).unwrap();
    let (count, sum): (i64, f64) = conn
        .query_row("SELECT count(*), sum(n) FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(count, 40_000);
    assert_eq!(sum, (0..40_000).map(|i| i as f64 / 2.0).sum::<f64>());
}

#[tokio::test]
async fn a_closed_sink_refuses_writes_and_the_healthcheck_sees_a_dropped_column() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db");
    let mut sink = SqliteSink::open(people(&db)).unwrap();
    sink.healthcheck().unwrap();
    sink.close().await.unwrap();
    let err = sink.write(person(1, "a")).await.unwrap_err();
    assert!(err.to_string().contains("the sink is closed"), "{err}");
    Connection::open(&db)
        .unwrap()
        .execute_batch("ALTER TABLE t DROP COLUMN name")
        .unwrap();
    let err = sink.healthcheck().unwrap_err();
    assert!(err.to_string().contains("has no column `name`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_fails_the_run_with_a_clear_error_and_the_checkpoint_stays_behind() {
    use std::sync::Arc;
    use weir_io::checkpoint::{file_positions, CheckpointStore, Checkpointer, Committer, MemoryCheckpoints};
    use weir_io::file::{FileSource, FileSourceConfig};

    let stored = |store: &MemoryCheckpoints| file_positions("in", store.load("in").unwrap()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let text: String = (1..=50).map(|i| format!("name{i}\n")).collect();
    std::fs::write(&input, text).unwrap();
    let db = dir.path().join("out.db");
    let store = Arc::new(MemoryCheckpoints::default());
    let config = || FileSourceConfig::new(input.to_str().unwrap()).format(weir_io::Format::Lines);
    let run = |store: Arc<MemoryCheckpoints>| {
        let db = db.clone();
        async move {
            let mut source = FileSource::open(config()).unwrap();
            let resumed = stored(&store);
            source.resume(&resumed).unwrap();
            let checkpointer = Checkpointer::new("in", source.files(), &resumed).unwrap();
            let committer = Committer::start(
                checkpointer.clone(),
                store.clone(),
                std::time::Duration::from_millis(5),
            );
            let sink = SqliteSink::open(people(&db)).unwrap();
            let acked = source.lines().map(move |line| {
                let ack = checkpointer.ack(&line);
                let row = person(line.origin.line as i64, &line.text);
                weir::Acked::new(row, ack)
            });
            let result = Pipeline::from_acked(futures::stream::iter(acked))
                .sink(sink)
                .run()
                .await;
            committer.finish().unwrap();
            result
        }
    };
    // The table exists; another writer holds the database past the sink's
    // busy timeout (5 s).
    drop(SqliteSink::open(people(&db)).unwrap());
    let blocker = Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let err = run(store.clone()).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("locked") && message.contains("out.db"),
        "{message}"
    );
    let stood = stored(&store);
    assert!(
        stood.iter().all(|p| p.offset == 0),
        "nothing stored, nothing committed: {stood:?}"
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    assert_eq!(rows(&db), []);
    // The writer gone, the next run delivers every line from the start.
    let report = run(store.clone()).await.unwrap();
    assert_eq!(report.delivered, 50);
    assert_eq!(rows(&db).len(), 50);
    assert!(stored(&store)[0].offset > 0);
}

// The SQLite source.

mod source {
    use std::path::Path;
    use std::sync::Arc;

    use futures::StreamExt;
    use rusqlite::Connection;
    use serde_json::{json, Value};
    use weir_io::checkpoint::{CheckpointStore, Committer, KeyValue, SqliteCheckpoints};
    use weir_io::sqlite::{SqliteSource, SqliteSourceConfig};
    use weir_io::IoErrorKind;

    /// Every item of the source: a row's value, or the read's error.
    async fn read(config: SqliteSourceConfig) -> Vec<Result<Value, String>> {
        let source = SqliteSource::open(config).unwrap();
        source
            .rows()
            .map(|r| r.item.map(|r| r.value).map_err(|e| e.to_string()))
            .collect()
            .await
    }

    fn ids(rows: &[Result<Value, String>]) -> Vec<i64> {
        rows.iter()
            .map(|r| r.as_ref().unwrap()["id"].as_i64().unwrap())
            .collect()
    }

    fn table(db: &Path, sql: &str) {
        Connection::open(db).unwrap().execute_batch(sql).unwrap();
    }

    #[tokio::test]
    async fn a_table_is_read_in_key_order_across_pages_with_typed_values() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("in.db");
        table(
            &db,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, r REAL, s TEXT, b BLOB, n INTEGER)",
        );
        // Inserted out of order, with gaps.
        let mut values = Vec::new();
        for i in (0..25).rev() {
            values.push(format!("({}, {i}.5, 'row {i}', x'00{i:02x}', NULL)", i * 3));
        }
        table(&db, &format!("INSERT INTO t VALUES {}", values.join(", ")));
        let rows = read(SqliteSourceConfig::table(&db, "t", "id").page_size(4)).await;
        assert_eq!(ids(&rows), (0..25).map(|i| i * 3).collect::<Vec<_>>());
        assert_eq!(
            rows[2].as_ref().unwrap(),
            &json!({"id": 6, "r": 2.5, "s": "row 2", "b": [0, 2], "n": null})
        );
        // Origins name the table and count the rows.
        let source = SqliteSource::open(SqliteSourceConfig::table(&db, "t", "id").page_size(4)).unwrap();
        let origins: Vec<String> = source
            .rows()
            .map(|r| r.item.unwrap().origin.unwrap().to_string())
            .collect()
            .await;
        assert_eq!(origins[24], format!("{}:t:25", db.display()));
    }

    #[tokio::test]
    async fn an_empty_table_gives_no_rows_and_a_page_size_of_one_still_reads_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("in.db");
        table(&db, "CREATE TABLE t (id INTEGER PRIMARY KEY)");
        assert!(read(SqliteSourceConfig::table(&db, "t", "id")).await.is_empty());
        table(&db, "INSERT INTO t VALUES (1), (2), (3)");
        assert_eq!(
            ids(&read(SqliteSourceConfig::table(&db, "t", "id").page_size(1)).await),
            [1, 2, 3]
        );
        // Exactly a page: the next, empty page ends the rows.
        assert_eq!(
            ids(&read(SqliteSourceConfig::table(&db, "t", "id").page_size(3)).await),
            [1, 2, 3]
        );
    }

    /// Reads `db`'s table `t` with its checkpoint in `store`, stopping after
    /// `take` rows (the rest never finalized); returns the ids read.
    async fn read_some(db: &Path, store: &Arc<SqliteCheckpoints>, take: usize) -> Vec<i64> {
        let mut source = SqliteSource::open(SqliteSourceConfig::table(db, "t", "id").page_size(7)).unwrap();
        let checkpointer = source.resume("t", &store.load("t").unwrap()).unwrap();
        let committer = Committer::start(checkpointer, store.clone(), std::time::Duration::from_secs(60));
        let out = weir::PipelineBuilder::new()
            .chunk_size(1)
            .from_acked(source.rows())
            .try_map(|r| r.map(|r| r.value["id"].as_i64().unwrap()))
            .take(take)
            .collect()
            .await
            .unwrap();
        committer.finish().unwrap();
        out
    }

    #[tokio::test]
    async fn a_drained_run_resumes_after_the_last_finalized_key_and_reads_rows_added_since() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("in.db");
        table(&db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
        let values: Vec<String> = (1..=40).map(|i| format!("({}, 'v{i}')", i * 10)).collect();
        table(&db, &format!("INSERT INTO t VALUES {}", values.join(", ")));
        let store = Arc::new(SqliteCheckpoints::open(&dir.path().join("state.db")).unwrap());
        let first = read_some(&db, &store, 15).await;
        assert_eq!(first, (1..=15).map(|i| i * 10).collect::<Vec<_>>());
        let second = read_some(&db, &store, 100).await;
        assert_eq!(second, (16..=40).map(|i| i * 10).collect::<Vec<_>>());
        assert!(read_some(&db, &store, 100).await.is_empty());
        // New rows after the last key are read by the next run; a row
        // before it is not (keys are expected to grow).
        table(&db, "INSERT INTO t VALUES (5, 'late'), (401, 'new')");
        assert_eq!(read_some(&db, &store, 100).await, [401]);
        let stored = store.list().unwrap();
        assert_eq!(stored[0].position.to_string(), "key 401 (41 rows)");
    }

    #[tokio::test]
    async fn a_query_source_reads_its_rows_in_the_order_of_a_text_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("in.db");
        table(
            &db,
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE, active INTEGER);
             INSERT INTO users VALUES (1, 'cy@x', 1), (2, 'ann@x', 1), (3, 'bo@x', 0), (4, 'dee@x', 1);",
        );
        let config = SqliteSourceConfig::query(
            &db,
            "SELECT email, id AS user_id FROM users WHERE active = 1;",
            "email",
        )
        .page_size(2);
        let rows: Vec<Value> = read(config).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            rows,
            [
                json!({"email": "ann@x", "user_id": 2}),
                json!({"email": "cy@x", "user_id": 1}),
                json!({"email": "dee@x", "user_id": 4})
            ]
        );
        // The connection refuses writes, whatever the query says.
        let writing = SqliteSourceConfig::query(&db, "DELETE FROM users RETURNING id", "id");
        let err = match SqliteSource::open(writing) {
            Err(e) => e.to_string(),
            Ok(s) => format!("{:?}", s.rows().next().await.unwrap().item.unwrap_err()),
        };
        assert!(!err.is_empty());
        assert_eq!(
            ids(&read(SqliteSourceConfig::table(&db, "users", "id")).await),
            [1, 2, 3, 4]
        );
    }

    #[tokio::test]
    async fn a_missing_database_table_or_key_column_is_refused_at_open_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("in.db");
        let e = SqliteSource::open(SqliteSourceConfig::table(&db, "t", "id")).unwrap_err();
        assert_eq!(e.kind(), IoErrorKind::NotFound);
        assert!(!db.exists(), "the source created the database");
        table(&db, "CREATE TABLE t (id INTEGER, name TEXT)");
        let e = SqliteSource::open(SqliteSourceConfig::table(&db, "nope", "id")).unwrap_err();
        assert_eq!(e.kind(), IoErrorKind::NotFound);
        assert!(e.to_string().contains("has no table `nope`"), "{e}");
        let e = SqliteSource::open(SqliteSourceConfig::table(&db, "t", "key")).unwrap_err();
        assert_eq!(e.kind(), IoErrorKind::InvalidConfig);
        assert!(
            e.to_string()
                .contains("has no column `key` to read in key order (its columns: id, name)"),
            "{e}"
        );
        // SQLite names a query's second `id` column `id:1` itself: no
        // value is lost.
        table(&db, "INSERT INTO t VALUES (1, 'ann')");
        let rows = read(SqliteSourceConfig::query(
            &db,
            "SELECT id, name AS id FROM t",
            "id",
        ))
        .await;
        assert_eq!(rows, [Ok(json!({"id": 1, "id:1": "ann"}))]);
    }

    #[tokio::test]
    async fn null_and_repeated_keys_fail_the_source_rather_than_skip_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("in.db");
        table(
            &db,
            "CREATE TABLE t (id INTEGER, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (NULL, 'c');",
        );
        let rows = read(SqliteSourceConfig::table(&db, "t", "id")).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(
            rows[0]
                .as_ref()
                .unwrap_err()
                .contains("a row has a NULL key `id`"),
            "{rows:?}"
        );
        // A repeated key across a page boundary (page 1 ends with 2; the
        // second 2 would be skipped by `id > 2`).
        table(
            &db,
            "DELETE FROM t WHERE id IS NULL; INSERT INTO t VALUES (2, 'b2'), (3, 'c');",
        );
        let rows = read(SqliteSourceConfig::table(&db, "t", "id").page_size(2)).await;
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(ids(&rows[..2]), [1, 2]);
        assert!(
            rows[2]
                .as_ref()
                .unwrap_err()
                .contains("two rows have the key `id` = 2"),
            "{rows:?}"
        );
        // Within one page too.
        let rows = read(SqliteSourceConfig::table(&db, "t", "id").page_size(10)).await;
        assert!(
            rows.last()
                .unwrap()
                .as_ref()
                .unwrap_err()
                .contains("two rows have the key"),
            "{rows:?}"
        );
        // A real is not a key.
        table(&db, "CREATE TABLE f (id REAL); INSERT INTO f VALUES (1.5);");
        let rows = read(SqliteSourceConfig::table(&db, "f", "id")).await;
        assert!(
            rows[0]
                .as_ref()
                .unwrap_err()
                .contains("keys must be integers or text"),
            "{rows:?}"
        );
    }

    #[tokio::test]
    async fn sql_in_names_is_refused_and_sql_in_key_values_is_bound_when_resuming() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("in.db");
        for (t, key) in [
            ("t; DROP TABLE t", "id"),
            ("t", "id\" OR 1=1 --"),
            ("sqlite_master", "name"),
        ] {
            let e = SqliteSource::open(SqliteSourceConfig::table(&db, t, key)).unwrap_err();
            assert_eq!(e.kind(), IoErrorKind::InvalidConfig, "{e}");
        }
        assert!(!db.exists());
        let evil = "x'); DROP TABLE t; --";
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)").unwrap();
        for k in ["a", evil, "z"] {
            conn.execute("INSERT INTO t VALUES (?1)", [k]).unwrap();
        }
        let store = Arc::new(weir_io::checkpoint::MemoryCheckpoints::default());
        let mut source = SqliteSource::open(SqliteSourceConfig::table(&db, "t", "k").page_size(1)).unwrap();
        let checkpointer = source.resume("t", &[]).unwrap();
        let committer = Committer::start(checkpointer, store.clone(), std::time::Duration::from_secs(60));
        let got = weir::PipelineBuilder::new()
            .chunk_size(1)
            .from_acked(source.rows())
            .try_map(|r| r.map(|r| r.value["k"].as_str().unwrap().to_owned()))
            .take(2)
            .collect()
            .await
            .unwrap();
        committer.finish().unwrap();
        assert_eq!(got, ["a", evil]);
        let stored = store.load("t").unwrap();
        let weir_io::checkpoint::Position::Key(at) = &stored[0] else {
            panic!("{stored:?}")
        };
        assert_eq!(at.key, KeyValue::from(evil));
        let mut source = SqliteSource::open(SqliteSourceConfig::table(&db, "t", "k")).unwrap();
        source.resume("t", &stored).unwrap();
        let rest: Vec<Value> = source.rows().map(|r| r.item.unwrap().value).collect().await;
        assert_eq!(rest, [json!({"k": "z"})]);
        assert_eq!(
            conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            3
        );
    }

    #[test]
    fn a_checkpoint_written_for_another_table_or_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("in.db");
        table(&db, "CREATE TABLE a (id INTEGER PRIMARY KEY, n INTEGER UNIQUE); CREATE TABLE b (id INTEGER PRIMARY KEY);");
        let store = SqliteCheckpoints::open(&dir.path().join("state.db")).unwrap();
        let at = weir_io::checkpoint::KeyPosition {
            read: "sqlite table a by id".into(),
            key: KeyValue::Integer(3),
            rows: 3,
        };
        store.commit("in", &[at.into()]).unwrap();
        let stored = store.load("in").unwrap();
        let mut same = SqliteSource::open(SqliteSourceConfig::table(&db, "a", "id")).unwrap();
        assert!(same.resume("in", &stored).is_ok());
        for config in [
            SqliteSourceConfig::table(&db, "b", "id"),
            SqliteSourceConfig::table(&db, "a", "n"),
        ] {
            let mut source = SqliteSource::open(config).unwrap();
            let e = source.resume("in", &stored).unwrap_err();
            assert_eq!(e.kind(), IoErrorKind::Store);
            assert!(
                e.to_string().contains("was written for sqlite table a by id"),
                "{e}"
            );
        }
    }
}
