//! The PostgreSQL sink, source and checkpoint store against a real server: the
//! local one (127.0.0.1:5432, trust auth, database `test`; override with
//! `WEIR_TEST_POSTGRES`). Each test works in a schema of its own, dropped
//! at its end. Without a server a test fails, unless `WEIR_SKIP_POSTGRES`
//! is set (never under `CI=true`), when it says it did not run.
#![cfg(feature = "postgres")]

use weir::{ErrorPolicy, Pipeline, Sink};
use weir_io::checkpoint::{CheckpointStore, FilePosition, Fingerprint, Position, PostgresCheckpoints};
use weir_io::postgres::{PostgresMode, PostgresSink, PostgresSinkConfig, Row, SqlType, SqlValue};
use weir_io::sql::DeadLetterRows;
use weir_io::IoErrorKind;

fn url() -> String {
    std::env::var("WEIR_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A connection for checking, and a fresh schema named after the test
/// (and the process: runs in parallel do not meet); `None` (the test does
/// not run, and says so) only when there is no server and
/// `WEIR_SKIP_POSTGRES` is set outside CI; otherwise a missing server fails.
async fn server(test: &str) -> Option<(tokio_postgres::Client, String)> {
    let client = match tokio_postgres::connect(&url(), tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
        }
        // Skipped only when asked (and never under CI): a missing server
        // fails the test.
        Err(e)
            if std::env::var("CI").as_deref() != Ok("true")
                && std::env::var_os("WEIR_SKIP_POSTGRES").is_some() =>
        {
            eprintln!(
                "WEIR_SKIP_POSTGRES: {test} not run: no PostgreSQL server at {} ({e})",
                url()
            );
            return None;
        }
        Err(e) => panic!(
            "no PostgreSQL server at {} ({e}); set WEIR_SKIP_POSTGRES=1 to leave these tests out",
            url()
        ),
    };
    let schema = format!("weir_{test}_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    Some((client, schema))
}

async fn drop_schema(client: &tokio_postgres::Client, schema: &str) {
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// `(id, name)` rows into `schema.t`.
fn people(schema: &str) -> PostgresSinkConfig {
    PostgresSinkConfig::new(url(), format!("{schema}.t"))
        .column("id", SqlType::Integer)
        .column("name", SqlType::Text)
}

fn person(id: i64, name: &str) -> Row {
    Row::from(vec![SqlValue::from(id), SqlValue::from(name)])
}

async fn rows(client: &tokio_postgres::Client, schema: &str) -> Vec<(i64, String)> {
    client
        .query(&format!("SELECT id, name FROM {schema}.t ORDER BY id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn pairs(list: &[(i64, &str)]) -> Vec<(i64, String)> {
    list.iter().map(|(i, s)| (*i, s.to_string())).collect()
}

async fn run(config: PostgresSinkConfig, input: Vec<Row>) -> weir::Report {
    let sink = PostgresSink::open(config).unwrap();
    Pipeline::from_iter(input)
        .sink(sink)
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_copies_rows_and_a_flush_commits_them() {
    let Some((db, schema)) = server("append").await else {
        return;
    };
    let mut sink = PostgresSink::open(people(&schema)).unwrap();
    let written = sink.written();
    sink.write(person(1, "ann")).await.unwrap();
    sink.write(person(2, "bo")).await.unwrap();
    assert_eq!(
        rows(&db, &schema).await,
        [],
        "written, not flushed: not committed"
    );
    sink.flush().await.unwrap();
    assert_eq!(rows(&db, &schema).await, pairs(&[(1, "ann"), (2, "bo")]));
    assert_eq!(written.get(), 2);
    sink.close().await.unwrap();
    // A second run appends, in batches of 2 rows a COPY.
    let more = (3..=7).map(|i| person(i, "x")).collect();
    let report = run(people(&schema).batch_rows(2), more).await;
    assert_eq!(report.delivered, 5);
    assert_eq!(rows(&db, &schema).await.len(), 7);
    drop_schema(&db, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_keeps_the_latest_row_of_each_key_within_a_batch_and_across_runs() {
    let Some((db, schema)) = server("upsert").await else {
        return;
    };
    let upsert = || {
        people(&schema).mode(PostgresMode::Upsert {
            key: vec!["id".into()],
        })
    };
    let first = vec![
        person(1, "ann"),
        person(2, "bo"),
        person(1, "anna"),
        person(3, "cy"),
        person(1, "annie"),
    ];
    assert_eq!(run(upsert(), first).await.delivered, 5);
    assert_eq!(
        rows(&db, &schema).await,
        pairs(&[(1, "annie"), (2, "bo"), (3, "cy")])
    );
    let second = vec![person(2, "bob"), person(4, "di")];
    run(upsert().batch_rows(1), second).await;
    assert_eq!(
        rows(&db, &schema).await,
        pairs(&[(1, "annie"), (2, "bob"), (3, "cy"), (4, "di")])
    );
    // An upsert whose key is not a unique constraint is refused at open.
    db.batch_execute(&format!("CREATE TABLE {schema}.loose (id BIGINT, name TEXT)"))
        .await
        .unwrap();
    let loose = PostgresSinkConfig::new(url(), format!("{schema}.loose"))
        .column("id", SqlType::Integer)
        .column("name", SqlType::Text)
        .mode(PostgresMode::Upsert {
            key: vec!["id".into()],
        });
    let err = PostgresSink::open(loose).unwrap_err();
    assert!(
        err.to_string().contains("PRIMARY KEY or a UNIQUE constraint"),
        "{err}"
    );
    drop_schema(&db, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_deletes_the_old_rows_in_the_runs_first_transaction() {
    let Some((db, schema)) = server("replace").await else {
        return;
    };
    run(people(&schema), vec![person(1, "old"), person(2, "old")]).await;
    run(
        people(&schema).mode(PostgresMode::Replace),
        vec![person(3, "new")],
    )
    .await;
    assert_eq!(rows(&db, &schema).await, pairs(&[(3, "new")]));
    // A run that writes nothing empties the table when it closes.
    run(people(&schema).mode(PostgresMode::Replace), vec![]).await;
    assert_eq!(rows(&db, &schema).await, []);
    drop_schema(&db, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_columns_store_integers_reals_text_bytea_json_and_jsonb() {
    let Some((db, schema)) = server("types").await else {
        return;
    };
    // The table's own types: the sink encodes each value for its column.
    db.batch_execute(&format!(
        "CREATE TABLE {schema}.typed (small SMALLINT, i INTEGER, big BIGINT, r REAL, d DOUBLE PRECISION, \
         v VARCHAR(40), b BYTEA, j JSON, jb JSONB)"
    ))
    .await
    .unwrap();
    let config = PostgresSinkConfig::new(url(), format!("{schema}.typed"))
        .column("small", SqlType::Integer)
        .column("i", SqlType::Integer)
        .column("big", SqlType::Integer)
        .column("r", SqlType::Real)
        .column("d", SqlType::Real)
        .column("v", SqlType::Text)
        .column("b", SqlType::Blob)
        .column("j", SqlType::Json)
        .column("jb", SqlType::Json)
        .create_table(false);
    let sql_looking = "'); DROP TABLE typed; --";
    let row = |i: i64, big: i64| {
        Row::from(vec![
            SqlValue::from(i),
            SqlValue::from(i),
            SqlValue::from(big),
            SqlValue::from(1.5),
            SqlValue::Integer(2), // an integer into a real column
            SqlValue::from(sql_looking),
            SqlValue::Blob(vec![0, 255, 7]),
            SqlValue::from(r#"{"a": [1, 2]}"#),
            SqlValue::from(r#"{"b": {"c": null}}"#),
        ])
    };
    let mut values = row(2, 2).into_values();
    values[1] = SqlValue::Integer(1 << 40); // too big for an `integer`
    let out_of_range = Row::from(values);
    let nulls = Row::from(vec![SqlValue::Null; 9]);
    let report = run(config, vec![row(1, i64::MAX), out_of_range, nulls]).await;
    assert_eq!((report.delivered, report.failed), (2, 1));
    let got = db
        .query(
            &format!(
                "SELECT small, i, big, r, d, v, b, j::text, jb->'b'->>'c' IS NULL, jsonb_typeof(jb) \
                 FROM {schema}.typed ORDER BY i NULLS LAST"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    let first = &got[0];
    assert_eq!(first.get::<_, i16>(0), 1);
    assert_eq!(first.get::<_, i32>(1), 1);
    assert_eq!(first.get::<_, i64>(2), i64::MAX);
    assert_eq!(first.get::<_, f32>(3), 1.5);
    assert_eq!(first.get::<_, f64>(4), 2.0);
    assert_eq!(first.get::<_, String>(5), sql_looking, "bound, never executed");
    assert_eq!(first.get::<_, Vec<u8>>(6), [0, 255, 7]);
    assert_eq!(
        first.get::<_, String>(7),
        r#"{"a": [1, 2]}"#,
        "json keeps its text"
    );
    assert!(first.get::<_, bool>(8));
    assert_eq!(first.get::<_, String>(9), "object");
    assert_eq!(got[1].get::<_, Option<i32>>(1), None);
    // A created table declares bigint, double precision, text, bytea, jsonb.
    let created = PostgresSinkConfig::new(url(), format!("{schema}.made"))
        .column("i", SqlType::Integer)
        .column("r", SqlType::Real)
        .column("t", SqlType::Text)
        .column("b", SqlType::Blob)
        .column("j", SqlType::Json);
    run(created, vec![]).await;
    let types: Vec<String> = db
        .query(
            "SELECT data_type::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'made' \
             ORDER BY ordinal_position",
            &[&schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(types, ["bigint", "double precision", "text", "bytea", "jsonb"]);
    drop_schema(&db, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_of_the_wrong_type_fails_that_item_alone_and_a_column_of_the_wrong_type_fails_at_open() {
    let Some((db, schema)) = server("wrong_type").await else {
        return;
    };
    let report = run(
        people(&schema),
        vec![
            person(1, "ann"),
            Row::from(vec![SqlValue::from("two"), SqlValue::from("bo")]),
            person(3, "cy"),
        ],
    )
    .await;
    assert_eq!((report.delivered, report.failed), (2, 1));
    let text_id = PostgresSinkConfig::new(url(), format!("{schema}.t"))
        .column("id", SqlType::Text)
        .column("name", SqlType::Text);
    let err = PostgresSink::open(text_id).unwrap_err();
    assert_eq!(err.kind(), IoErrorKind::InvalidConfig);
    assert!(err.to_string().contains("column `id` of table"), "{err}");
    let missing = PostgresSinkConfig::new(url(), format!("{schema}.nope"))
        .column("id", SqlType::Integer)
        .create_table(false);
    let err = PostgresSink::open(missing).unwrap_err();
    assert_eq!(err.kind(), IoErrorKind::NotFound, "{err}");
    drop_schema(&db, &schema).await;
}

#[tokio::test]
async fn bad_identifiers_are_refused_before_connecting() {
    // No server needed: the names are checked first (this URL has none).
    let url = "postgres://postgres@127.0.0.1:1/nowhere";
    for table in ["t; DROP TABLE t", "a.b.c", "pg_class", "\"t\"", "x y"] {
        let config = PostgresSinkConfig::new(url, table).column("id", SqlType::Integer);
        let err = PostgresSink::open(config).unwrap_err();
        assert_eq!(err.kind(), IoErrorKind::InvalidConfig, "{table}: {err}");
    }
    let config = PostgresSinkConfig::new(url, "t").column("id); DROP TABLE t; --", SqlType::Integer);
    assert_eq!(
        PostgresSink::open(config).unwrap_err().kind(),
        IoErrorKind::InvalidConfig
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constraint_violation_fails_the_flush_naming_the_row_found_by_splitting_and_commits_none_of_its_rows(
) {
    let Some((db, schema)) = server("constraint").await else {
        return;
    };
    db.batch_execute(&format!(
        "CREATE TABLE {schema}.t (id BIGINT PRIMARY KEY, name TEXT CHECK (name <> 'bad'))"
    ))
    .await
    .unwrap();
    let mut sink = PostgresSink::open(people(&schema).batch_rows(4)).unwrap();
    for i in 1..=9 {
        sink.write(person(i, if i == 6 { "bad" } else { "ok" }))
            .await
            .unwrap();
    }
    let err = sink.flush().await.unwrap_err();
    assert_eq!(err.kind(), IoErrorKind::Rejected);
    assert!(
        err.to_string()
            .contains("row 6 of the transaction (id = 6, name = 'bad')"),
        "{err}"
    );
    assert_eq!(rows(&db, &schema).await, [], "the whole flush is rolled back");
    // A duplicate key within one batch is found too (it conflicts with an
    // earlier row of the same COPY).
    sink.write(person(1, "a")).await.unwrap();
    sink.write(person(2, "b")).await.unwrap();
    sink.write(person(1, "again")).await.unwrap();
    let err = sink.flush().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("row 3 of the transaction (id = 1, name = 'again')"),
        "{err}"
    );
    assert!(err.to_string().contains("already exists"), "{err}");
    // The next write drops the failed rows: the engine failed their items.
    sink.write(person(5, "fine")).await.unwrap();
    sink.flush().await.unwrap();
    assert_eq!(rows(&db, &schema).await, pairs(&[(5, "fine")]));
    sink.close().await.unwrap();
    drop_schema(&db, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_isolated_rows_a_refused_row_fails_alone_and_the_others_are_committed() {
    let Some((db, schema)) = server("isolated").await else {
        return;
    };
    db.batch_execute(&format!(
        "CREATE TABLE {schema}.t (id BIGINT PRIMARY KEY, name TEXT)"
    ))
    .await
    .unwrap();
    let input = vec![
        person(1, "ann"),
        person(2, "bo"),
        person(1, "dup"),
        person(3, "cy"),
    ];
    let report = run(people(&schema).isolate_rows(true), input).await;
    assert_eq!((report.delivered, report.failed), (3, 1));
    assert_eq!(
        rows(&db, &schema).await,
        pairs(&[(1, "ann"), (2, "bo"), (3, "cy")])
    );
    // Isolated upserts go through the same single-row statement.
    let upsert = people(&schema).isolate_rows(true).mode(PostgresMode::Upsert {
        key: vec!["id".into()],
    });
    run(upsert, vec![person(2, "bob"), person(2, "bobby")]).await;
    assert_eq!(rows(&db, &schema).await[1], (2, "bobby".to_owned()));
    drop_schema(&db, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_fails_the_flush_and_a_retried_flush_reconnects_and_writes_the_rows() {
    let Some((db, schema)) = server("reconnect").await else {
        return;
    };
    let app = format!("weir_reconnect_{}", std::process::id());
    let config = PostgresSinkConfig {
        url: format!("{}?application_name={app}", url()),
        ..people(&schema)
    };
    let mut sink = PostgresSink::open(config).unwrap();
    sink.write(person(1, "before")).await.unwrap();
    sink.flush().await.unwrap();
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        &[&app],
    )
    .await
    .unwrap();
    sink.write(person(2, "after")).await.unwrap();
    // The backend goes away asynchronously: a flush that meets the lost
    // connection fails (and keeps its rows); one that starts after the
    // sink saw the connection close reconnects first. Either way the rows
    // land, at the latest on the retried flush.
    if let Err(err) = sink.flush().await {
        assert_eq!(err.kind(), IoErrorKind::Write, "{err}");
        sink.flush().await.unwrap(); // as the engine's retry policy would
    }
    assert_eq!(rows(&db, &schema).await, pairs(&[(1, "before"), (2, "after")]));
    assert!(sink.healthcheck().is_ok());
    sink.close().await.unwrap();
    drop_schema(&db, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_land_as_rows_of_a_table_with_the_item_as_jsonb_and_sql_in_values_bound() {
    let Some((db, schema)) = server("dead_letters").await else {
        return;
    };
    let mut config = PostgresSinkConfig::new(url(), format!("{schema}.dead"));
    config.columns = DeadLetterRows::<PostgresSink>::columns();
    let dead = DeadLetterRows::new(PostgresSink::open(config).unwrap());
    let items = vec![
        serde_json::json!({"n": "1"}),
        serde_json::json!({"n": "'); DROP TABLE dead; --"}),
        serde_json::json!({"n": "3"}),
    ];
    let report = Pipeline::from_iter(items)
        .try_map(|v: serde_json::Value| v["n"].as_str().unwrap_or_default().parse::<u32>())
        .name("parse")
        .dead_letter(weir::DeadLetters::new(dead))
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered), (2, 1));
    let rows = db
        .query(
            &format!(
                "SELECT stage, item_seq, attempts, error, item->>'n', jsonb_typeof(causes), failed_at_ms >= first_failure_ms \
                 FROM {schema}.dead"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.get::<_, String>(0), "parse");
    assert_eq!((r.get::<_, i64>(1), r.get::<_, i64>(2)), (1, 1));
    assert_eq!(r.get::<_, String>(3), "invalid digit found in string");
    assert_eq!(r.get::<_, String>(4), "'); DROP TABLE dead; --");
    assert_eq!(r.get::<_, String>(5), "array");
    assert!(r.get::<_, bool>(6));
    drop_schema(&db, &schema).await;
}

fn fingerprint(n: u64) -> Fingerprint {
    Fingerprint {
        dev: 1,
        inode: n,
        size: 100 * n,
        head_len: 10,
        head_hash: n * 7,
    }
}

fn at(file: &str, offset: u64) -> Position {
    Position::File(FilePosition {
        file: file.into(),
        offset,
        lines: offset / 10,
        fingerprint: fingerprint(offset),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_commit_load_and_list_round_trip_and_a_commit_replaces_only_its_sources_positions() {
    let Some((db, schema)) = server("checkpoints").await else {
        return;
    };
    let store_url = format!("{}?options=-c%20search_path%3D{schema}", url());
    let store = PostgresCheckpoints::open(&store_url).unwrap();
    assert!(store.load("a").unwrap().is_empty());
    store.commit("a", &[at("1", 10), at("2", 20)]).unwrap();
    store.commit("b", &[at("9", 90)]).unwrap();
    // Another machine's handle on the same store.
    let other = PostgresCheckpoints::open(&store_url).unwrap();
    assert_eq!(other.load("a").unwrap(), [at("1", 10), at("2", 20)]);
    other.commit("a", &[at("2", 30)]).unwrap();
    assert_eq!(store.load("a").unwrap(), [at("2", 30)]);
    assert_eq!(store.load("b").unwrap(), [at("9", 90)]);
    let listed: Vec<(String, String, String)> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|p| (p.source, p.position.what().to_owned(), p.position.to_string()))
        .collect();
    assert_eq!(
        listed,
        [
            ("a".into(), "2".into(), "byte 30 (line 3)".into()),
            ("b".into(), "9".into(), "byte 90 (line 9)".into())
        ]
    );
    let in_schema: i64 = db
        .query_one(&format!("SELECT count(*) FROM {schema}.weir_checkpoints"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_schema, 2);
    // A committer thread uses it as any store.
    let plain = std::thread::spawn(move || other.load("b").unwrap())
        .join()
        .unwrap();
    assert_eq!(plain, [at("9", 90)]);
    drop_schema(&db, &schema).await;
}

#[tokio::test]
async fn an_unreachable_checkpoint_store_is_a_store_error_naming_the_database() {
    let err =
        PostgresCheckpoints::open("postgres://postgres@127.0.0.1:1/nowhere?connect_timeout=2").unwrap_err();
    assert_eq!(err.kind(), IoErrorKind::Store);
    assert!(
        err.to_string().contains("database `nowhere` on 127.0.0.1:1"),
        "{err}"
    );
}

// The PostgreSQL source.

mod source {
    use std::sync::Arc;

    use futures::StreamExt;
    use serde_json::{json, Value};
    use weir_io::checkpoint::{CheckpointStore, Committer, KeyValue, PostgresCheckpoints};
    use weir_io::postgres::{PostgresSource, PostgresSourceConfig};
    use weir_io::IoErrorKind;

    use super::{drop_schema, server, url};

    /// Every item of the source: a row's value, or the read's error.
    async fn read(config: PostgresSourceConfig) -> Vec<Result<Value, String>> {
        let source = PostgresSource::open(config).unwrap();
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_table_is_read_in_key_order_across_pages_with_typed_values() {
        let Some((db, schema)) = server("source_typed").await else {
            return;
        };
        db.batch_execute(&format!(
            "CREATE TABLE {schema}.t (id bigint PRIMARY KEY, small smallint, f double precision, ok boolean,
                 name varchar(10), raw bytea, doc jsonb, plain json, price numeric(6,2),
                 at timestamptz, day date, tags text[], missing text);
             INSERT INTO {schema}.t (id) SELECT g * 2 FROM generate_series(1, 30) g ORDER BY random();
             UPDATE {schema}.t SET small = 7, f = 1.5, ok = true, name = 'ann', raw = '\\x00ff',
                 doc = '{{\"a\": [1, null]}}', plain = '[true]', price = 12.5,
                 at = '2024-05-01 12:00:00+00', day = '2024-05-01', tags = ARRAY['x', 'y'] WHERE id = 4;"
        ))
        .await
        .unwrap();
        let url_utc = format!("{}?options=-c%20TimeZone%3DUTC", url());
        let config = PostgresSourceConfig::table(&url_utc, format!("{schema}.t"), "id").page_size(4);
        let rows = read(config).await;
        assert_eq!(ids(&rows), (1..=30).map(|g| g * 2).collect::<Vec<_>>());
        assert_eq!(
            rows[1].as_ref().unwrap(),
            &json!({
                "id": 4, "small": 7, "f": 1.5, "ok": true, "name": "ann", "raw": [0, 255],
                "doc": {"a": [1, null]}, "plain": [true], "price": "12.50",
                "at": "2024-05-01 12:00:00+00", "day": "2024-05-01", "tags": "{x,y}", "missing": null
            })
        );
        let config = PostgresSourceConfig::table(url(), format!("{schema}.t"), "id");
        assert!(PostgresSource::open(config).unwrap().healthcheck().is_ok());
        db.batch_execute(&format!("DELETE FROM {schema}.t"))
            .await
            .unwrap();
        let config = PostgresSourceConfig::table(url(), format!("{schema}.t"), "id");
        assert!(read(config).await.is_empty());
        drop_schema(&db, &schema).await;
    }

    /// Reads `schema.t` with its checkpoint in `store`, stopping after
    /// `take` rows (the rest never finalized); returns the ids read.
    async fn read_some(schema: &str, store: &Arc<PostgresCheckpoints>, take: usize) -> Vec<i64> {
        let config = PostgresSourceConfig::table(url(), format!("{schema}.t"), "id").page_size(6);
        let mut source = PostgresSource::open(config).unwrap();
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_drained_run_resumes_after_the_last_finalized_key_from_a_postgres_store() {
        let Some((db, schema)) = server("source_resume").await else {
            return;
        };
        db.batch_execute(&format!(
            "CREATE TABLE {schema}.t (id integer PRIMARY KEY);
             INSERT INTO {schema}.t SELECT generate_series(1, 50);"
        ))
        .await
        .unwrap();
        let store_url = format!("{}?options=-c%20search_path%3D{schema}", url());
        let store = Arc::new(PostgresCheckpoints::open(&store_url).unwrap());
        assert_eq!(read_some(&schema, &store, 20).await, (1..=20).collect::<Vec<_>>());
        assert_eq!(
            read_some(&schema, &store, 100).await,
            (21..=50).collect::<Vec<_>>()
        );
        assert!(read_some(&schema, &store, 100).await.is_empty());
        let listed = store.list().unwrap();
        assert_eq!(listed[0].position.to_string(), "key 50 (50 rows)");
        assert_eq!(
            listed[0].position.what(),
            format!("postgres table {schema}.t by id")
        );
        drop_schema(&db, &schema).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_source_reads_in_the_order_of_a_text_key_in_a_read_only_session() {
        let Some((db, schema)) = server("source_query").await else {
            return;
        };
        db.batch_execute(&format!(
            "CREATE TABLE {schema}.users (id int PRIMARY KEY, email text UNIQUE, active boolean);
             INSERT INTO {schema}.users VALUES (1, 'cy@x', true), (2, 'ann@x', true), (3, 'bo@x', false), (4, 'dee@x', true);
             CREATE SEQUENCE {schema}.s;"
        ))
        .await
        .unwrap();
        let query = format!("SELECT email, id AS user_id FROM {schema}.users WHERE active;");
        let rows = read(PostgresSourceConfig::query(url(), query, "email").page_size(2)).await;
        let rows: Vec<Value> = rows.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            rows,
            [
                json!({"email": "ann@x", "user_id": 2}),
                json!({"email": "cy@x", "user_id": 1}),
                json!({"email": "dee@x", "user_id": 4})
            ]
        );
        // A query that would write fails: the session is read-only.
        let writing = format!("SELECT nextval('{schema}.s') AS id");
        let rows = read(PostgresSourceConfig::query(url(), writing, "id")).await;
        assert!(
            rows[0].as_ref().unwrap_err().contains("read-only transaction"),
            "{rows:?}"
        );
        drop_schema(&db, &schema).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_tables_keys_and_names_are_refused_and_key_values_are_bound() {
        let Some((db, schema)) = server("source_bad").await else {
            return;
        };
        db.batch_execute(&format!(
            "CREATE TABLE {schema}.t (id int, f real, name text);
             INSERT INTO {schema}.t VALUES (1, 0.5, 'a'), (2, 0.5, 'b'), (2, 0.5, 'b2'), (3, 0.5, 'c');
             CREATE TABLE {schema}.k (k text PRIMARY KEY);"
        ))
        .await
        .unwrap();
        let open =
            |table: String, key: &str| PostgresSource::open(PostgresSourceConfig::table(url(), table, key));
        let e = open(format!("{schema}.nope"), "id").unwrap_err();
        assert_eq!(e.kind(), IoErrorKind::NotFound, "{e}");
        let e = open(format!("{schema}.t"), "key").unwrap_err();
        assert!(
            e.to_string()
                .contains("has no column `key` to read in key order (its columns: id, f, name)"),
            "{e}"
        );
        let e = open(format!("{schema}.t"), "f").unwrap_err();
        assert_eq!(e.kind(), IoErrorKind::InvalidConfig);
        assert!(
            e.to_string()
                .contains("is of type `float4`: keys must be integers"),
            "{e}"
        );
        let twice = format!("SELECT id, name AS id FROM {schema}.t");
        let e = PostgresSource::open(PostgresSourceConfig::query(url(), twice, "id")).unwrap_err();
        assert!(e.to_string().contains("two columns are named `id`"), "{e}");
        for (table, key) in [
            (format!("{schema}.t; DROP TABLE t"), "id"),
            (format!("{schema}.t"), "id\" --"),
            ("pg_class".into(), "oid"),
        ] {
            let e = open(table, key).unwrap_err();
            assert_eq!(e.kind(), IoErrorKind::InvalidConfig, "{e}");
        }
        // A repeated key across pages fails the source after the rows before it.
        let rows = read(PostgresSourceConfig::table(url(), format!("{schema}.t"), "id").page_size(2)).await;
        assert_eq!(ids(&rows[..2]), [1, 2]);
        assert!(
            rows[2]
                .as_ref()
                .unwrap_err()
                .contains("two rows have the key `id` = 2"),
            "{rows:?}"
        );
        db.batch_execute(&format!(
            "DELETE FROM {schema}.t WHERE name = 'b2'; INSERT INTO {schema}.t VALUES (NULL, 0, 'n');"
        ))
        .await
        .unwrap();
        let rows = read(PostgresSourceConfig::table(url(), format!("{schema}.t"), "id")).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(
            rows[0]
                .as_ref()
                .unwrap_err()
                .contains("a row has a NULL key `id`"),
            "{rows:?}"
        );
        // A text key that looks like SQL is a value, bound when resuming.
        let evil = "x'); DROP TABLE k; --";
        for k in ["a", evil, "z"] {
            db.execute(&format!("INSERT INTO {schema}.k VALUES ($1)"), &[&k])
                .await
                .unwrap();
        }
        let at = weir_io::checkpoint::KeyPosition {
            read: format!("postgres table {schema}.k by k"),
            key: KeyValue::from(evil),
            rows: 2,
        };
        let mut source =
            PostgresSource::open(PostgresSourceConfig::table(url(), format!("{schema}.k"), "k")).unwrap();
        source.resume("k", &[at.into()]).unwrap();
        let rest: Vec<Value> = source.rows().map(|r| r.item.unwrap().value).collect().await;
        assert_eq!(rest, [json!({"k": "z"})]);
        let count: i64 = db
            .query_one(&format!("SELECT count(*) FROM {schema}.k"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, 3);
        drop_schema(&db, &schema).await;
    }

    /// Guards against a store table of the first schema (no `kind`, `key`)
    /// becoming unreadable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_table_of_the_first_schema_gets_its_new_columns_and_keeps_its_positions() {
        let Some((db, schema)) = server("store_upgrade").await else {
            return;
        };
        db.batch_execute(&format!(
            "CREATE TABLE {schema}.weir_checkpoints (source TEXT NOT NULL, file TEXT NOT NULL, \"offset\" BIGINT NOT NULL,
                 lines BIGINT NOT NULL, fingerprint JSONB NOT NULL, committed_at_ms BIGINT NOT NULL, PRIMARY KEY (source, file));
             INSERT INTO {schema}.weir_checkpoints VALUES ('in', 'a.jsonl', 12, 2,
                 '{{\"dev\":1,\"inode\":2,\"size\":30,\"head_len\":30,\"head_hash\":9}}', 0);"
        ))
        .await
        .unwrap();
        let store_url = format!("{}?options=-c%20search_path%3D{schema}", url());
        let store = PostgresCheckpoints::open(&store_url).unwrap();
        assert_eq!(store.load("in").unwrap()[0].to_string(), "byte 12 (line 2)");
        drop_schema(&db, &schema).await;
    }
}
