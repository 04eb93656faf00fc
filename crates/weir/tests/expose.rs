//! Exposition: the Prometheus text rendered from reports, and the HTTP
//! endpoint that serves it.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir::metrics::prometheus::{render, CONTENT_TYPE};
use weir::metrics::serve;
use weir::{ErrorPolicy, Outcome, Pipeline, PipelineBuilder, Report, Shutdown, Status};

use common::Ledger;

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid exposition text")
}

fn value(v: &Value) -> f64 {
    match v {
        Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => *x,
        other => panic!("unexpected sample {other:?}"),
    }
}

/// Every sample of `metric`, by its labels (sorted `k=v` pairs, `,`-joined).
fn samples(scrape: &Scrape, metric: &str) -> HashMap<String, f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .map(|s| {
            let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            (labels.join(","), value(&s.value))
        })
        .collect()
}

async fn etl_report() -> (Report, Ledger) {
    let ledger = Ledger::default();
    let report = PipelineBuilder::new()
        .name("etl")
        .from_acked(ledger.source(10))
        .try_map(|x: u64| if x == 3 { Err("three") } else { Ok(x) })
        .name("parse")
        .on_error(ErrorPolicy::Skip)
        .filter(|x| x % 2 == 0)
        .then(|x| async move { x * 10 })
        .concurrency(4)
        .run()
        .await
        .unwrap();
    (report, ledger)
}

#[tokio::test]
async fn render_from_a_run_parses_with_every_family() {
    let (report, ledger) = etl_report().await;
    let finals = ledger.assert_exactly_once();
    assert_eq!(finals.values().filter(|s| **s == Status::Failed).count(), 1);

    let text = render(&report);
    let scrape = parse(&text);
    let stage = samples(&scrape, "weir_stage_items_total");
    let kinds: Vec<(&str, &str)> = report
        .stages
        .iter()
        .map(|s| (s.name.as_str(), s.kind.as_str()))
        .collect();
    assert_eq!(stage.len(), 7 * kinds.len(), "{text}");
    let at = |name: &str, kind: &str, outcome: &str| {
        stage[&format!("kind={kind},outcome={outcome},pipeline=etl,stage={name}")]
    };
    assert_eq!(at("parse", "map", "in"), 10.0);
    assert_eq!(at("parse", "map", "failed"), 1.0);
    assert_eq!(at("parse", "map", "out"), 9.0);
    assert_eq!(at("filter#2", "filter", "dropped"), 4.0);
    assert_eq!(at("filter#2", "filter", "out"), 5.0);
    for s in &report.stages {
        assert_eq!(at(&s.name, &s.kind, "in"), s.items_in as f64);
        assert_eq!(at(&s.name, &s.kind, "out"), s.items_out as f64);
        assert_eq!(at(&s.name, &s.kind, "dropped"), s.dropped as f64);
        assert_eq!(at(&s.name, &s.kind, "failed"), s.failed as f64);
    }

    let items = samples(&scrape, "weir_pipeline_items_total");
    assert_eq!(items.len(), 4);
    assert_eq!(items["outcome=pulled,pipeline=etl"], 10.0);
    assert_eq!(items["outcome=delivered,pipeline=etl"], 5.0);
    assert_eq!(items["outcome=dropped,pipeline=etl"], 4.0);
    assert_eq!(items["outcome=failed,pipeline=etl"], 1.0);

    assert_eq!(
        samples(&scrape, "weir_pipeline_unfinalized_items")["pipeline=etl"],
        0.0
    );
    assert_eq!(
        samples(&scrape, "weir_pipeline_checkpoints_total")["pipeline=etl"],
        0.0
    );
    let duration = samples(&scrape, "weir_pipeline_duration_seconds")["pipeline=etl"];
    assert!((duration - report.duration.as_secs_f64()).abs() < 1e-9);
    let rate = samples(&scrape, "weir_pipeline_items_per_second")["pipeline=etl"];
    assert!((rate - report.items_per_sec()).abs() <= 1e-9 * rate.max(1.0));

    let outcome = samples(&scrape, "weir_pipeline_outcome");
    assert_eq!(outcome.len(), 5);
    assert_eq!(outcome["outcome=completed,pipeline=etl"], 1.0);
    assert_eq!(outcome.values().sum::<f64>(), 1.0);

    // Types, help and unit as OpenMetrics wants them; counters end in
    // `_total`, which the TYPE line leaves out.
    for line in [
        "# TYPE weir_stage_items counter",
        "# TYPE weir_pipeline_items counter",
        "# TYPE weir_pipeline_unfinalized_items gauge",
        "# TYPE weir_pipeline_checkpoints counter",
        "# TYPE weir_pipeline_duration_seconds gauge",
        "# UNIT weir_pipeline_duration_seconds seconds",
        "# TYPE weir_pipeline_items_per_second gauge",
        "# TYPE weir_pipeline_outcome gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
    }
    assert!(scrape.docs.contains_key("weir_stage_items"));
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn renders_do_not_accumulate() {
    let (report, _) = etl_report().await;
    let first = render(&report);
    assert_eq!(render(&report), first);
}

#[tokio::test]
async fn empty_and_one_item_runs() {
    let empty = Pipeline::from_iter(std::iter::empty::<u8>()).run().await.unwrap();
    let scrape = parse(&render(&empty));
    let items = samples(&scrape, "weir_pipeline_items_total");
    assert_eq!(items.len(), 4);
    assert!(items.values().all(|v| *v == 0.0));
    assert!(samples(&scrape, "weir_stage_items_total")
        .values()
        .all(|v| *v == 0.0));

    let one = Pipeline::from_iter([1u8]).map(|x| x + 1).run().await.unwrap();
    let items = samples(&parse(&render(&one)), "weir_pipeline_items_total");
    assert_eq!(items["outcome=delivered,pipeline=pipeline"], 1.0);
}

#[tokio::test]
async fn a_running_snapshot_and_a_drained_end() {
    let handle = PipelineBuilder::new()
        .name("live")
        .intake::<u32>()
        .filter(|x| *x > 0)
        .start();
    handle.push_batch(0..5).await.unwrap();
    let snapshot = handle.metrics();
    let outcome = samples(&parse(&render(&snapshot)), "weir_pipeline_outcome");
    assert_eq!(outcome["outcome=running,pipeline=live"], 1.0);

    let report = handle
        .shutdown(Shutdown::Drain, Duration::from_secs(5))
        .await
        .unwrap();
    let scrape = parse(&render(&report));
    assert_eq!(
        samples(&scrape, "weir_pipeline_outcome")["outcome=drained,pipeline=live"],
        1.0
    );
    assert_eq!(
        samples(&scrape, "weir_pipeline_items_total")["outcome=dropped,pipeline=live"],
        1.0
    );
}

#[tokio::test]
async fn label_values_are_escaped() {
    let report = PipelineBuilder::new()
        .name("a \"quoted\" \\ name\nwith a newline")
        .from_iter([1u8])
        .run()
        .await
        .unwrap();
    let text = render(&report);
    assert!(
        text.contains(r#"{pipeline="a \"quoted\" \\ name\nwith a newline",outcome="delivered"} 1"#),
        "{text}"
    );
    // Every sample still sits on one line.
    assert!(text
        .lines()
        .all(|l| l.starts_with("# ") || l.starts_with("weir_")));
}

// ---- HTTP ----

async fn request(addr: SocketAddr, raw: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(raw).await.unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.unwrap();
    String::from_utf8(response).unwrap()
}

fn split(response: &str) -> (&str, &str) {
    response.split_once("\r\n\r\n").expect("a head and a body")
}

#[tokio::test]
async fn http_metrics_and_health() {
    let handle = PipelineBuilder::new().name("served").intake::<u32>().start();
    handle.push_batch(0..3).await.unwrap();
    let server = serve(0, move || handle.metrics()).await.unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback());

    let response = request(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n").await;
    let (head, body) = split(&response);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")));
    assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    let scrape = parse(body);
    assert_eq!(
        samples(&scrape, "weir_pipeline_outcome")["outcome=running,pipeline=served"],
        1.0
    );

    let query = request(addr, b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n").await;
    assert!(query.starts_with("HTTP/1.1 200 OK\r\n"));

    let health = request(addr, b"GET /health HTTP/1.1\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(split(&health).1, "ok\n");

    let head = request(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
    let (head, body) = split(&head);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(!head.contains("Content-Length: 0\r\n"));
    assert_eq!(body, "");
}

#[tokio::test]
async fn http_health_is_503_once_failed() {
    let mut report = Pipeline::from_iter([1u8]).run().await.unwrap();
    report.outcome = Outcome::Failed;
    let server = serve(0, move || report.clone()).await.unwrap();
    let health = request(server.local_addr(), b"GET /health HTTP/1.1\r\n\r\n").await;
    assert!(
        health.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{health}"
    );
    assert_eq!(split(&health).1, "failed\n");
}

#[tokio::test]
async fn http_bad_requests() {
    let report = Pipeline::from_iter([1u8]).run().await.unwrap();
    let server = serve(0, move || report.clone()).await.unwrap();
    let addr = server.local_addr();

    let not_found = request(addr, b"GET /nope HTTP/1.1\r\n\r\n").await;
    assert!(not_found.starts_with("HTTP/1.1 404 Not Found\r\n"), "{not_found}");

    let post = request(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    assert!(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{post}");
    assert!(post.contains("Allow: GET, HEAD\r\n"));

    for garbage in [
        &b"garbage\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /metrics\r\n\r\n",
        b"GET /metrics HTTP/1.1 extra\r\n\r\n",
        b"GET metrics HTTP/1.1\r\n\r\n",
        b"GET /metrics SPDY/3\r\n\r\n",
        b"get /metrics HTTP/1.1\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
        b"\r\n\r\n",
    ] {
        let response = request(addr, garbage).await;
        assert!(
            response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{:?} -> {response}",
            String::from_utf8_lossy(garbage)
        );
    }

    // Headers beyond the limit, and a client that gives up half-way.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20_000));
    let response = request(addr, &huge).await;
    assert!(response.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{response}");
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /met").await.unwrap();
    half.shutdown().await.unwrap();
    let mut rest = String::new();
    half.read_to_string(&mut rest).await.unwrap();
    assert!(rest.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{rest}");

    // Still serving after all that.
    let ok = request(addr, b"GET /health HTTP/1.1\r\n\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"));
}

#[tokio::test]
async fn http_a_panicking_source_is_a_500() {
    let server = serve(0, || panic!("no report today")).await.unwrap();
    let addr = server.local_addr();
    for path in ["/metrics", "/health"] {
        let response = request(addr, format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes()).await;
        assert!(
            response.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{response}"
        );
    }
}

#[tokio::test]
async fn http_server_stops_when_dropped() {
    let report = Pipeline::from_iter([1u8]).run().await.unwrap();
    let server = serve(0, move || report.clone()).await.unwrap();
    let addr = server.local_addr();
    assert!(request(addr, b"GET /health HTTP/1.1\r\n\r\n")
        .await
        .starts_with("HTTP/1.1 200"));
    drop(server);
    // The accept task is cancelled at the runtime's next turn.
    let mut refused = false;
    for _ in 0..100 {
        tokio::task::yield_now().await;
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the listener outlived its server");
}

#[tokio::test(start_paused = true)]
async fn latency_utilization_queue_and_bottleneck_are_exposed() {
    let report = PipelineBuilder::new()
        .name("slow")
        .from_iter(0..128u64)
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            x
        })
        .name("wait")
        .concurrency(4)
        .for_each_async(|_| async { Ok::<_, std::io::Error>(()) })
        .run()
        .await
        .unwrap();
    let scrape = parse(&render(&report));
    let latency = samples(&scrape, "weir_stage_latency_seconds");
    let p50 = latency["pipeline=slow,quantile=0.5,stage=wait"];
    assert!((0.0099..0.0102).contains(&p50), "{latency:?}");
    assert!(latency.contains_key("pipeline=slow,quantile=1,stage=wait"));
    let busy = samples(&scrape, "weir_stage_utilization_ratio");
    let sum: f64 = ["busy", "backpressured", "idle"]
        .iter()
        .map(|state| busy[&format!("pipeline=slow,stage=wait,state={state}")])
        .sum();
    assert!((sum - 1.0).abs() < 1e-9, "{busy:?}");
    let capacity = samples(&scrape, "weir_stage_queue_capacity_items");
    assert_eq!(capacity["pipeline=slow,stage=wait"], 4096.0);
    let bottleneck = samples(&scrape, "weir_pipeline_bottleneck");
    assert_eq!(bottleneck["pipeline=slow,stage=wait"], 1.0, "{bottleneck:?}");
    let e2e = samples(&scrape, "weir_pipeline_latency_seconds");
    assert!(e2e["pipeline=slow,quantile=0.99"] >= 0.01, "{e2e:?}");
}

/// Guards against the circuit breaker's state and trips, and a concurrent
/// stage's active workers, missing from the exposition (they are in the
/// report): one state series per breaker state, 1 for the current one.
#[tokio::test(start_paused = true)]
async fn breaker_state_trips_and_active_workers_are_exposed() {
    let report = PipelineBuilder::new()
        .name("calls")
        .from_iter(0..10)
        .try_then(|_: i32| async { Err::<(), _>("down") })
        .name("api")
        .concurrency(2)
        .circuit_breaker(
            weir::Breaker::new()
                .window_count(4)
                .min_calls(4)
                .when_open(weir::WhenOpen::Fail),
        )
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    let text = render(&report);
    let scrape = parse(&text);
    let state = samples(&scrape, "weir_stage_breaker_state");
    assert_eq!(state.len(), 3, "only the stage with a breaker: {state:?}");
    assert_eq!(state["pipeline=calls,stage=api,state=open"], 1.0);
    assert_eq!(state["pipeline=calls,stage=api,state=closed"], 0.0);
    assert_eq!(state["pipeline=calls,stage=api,state=half_open"], 0.0);
    let trips = samples(&scrape, "weir_stage_breaker_trips_total");
    assert_eq!(trips.len(), 1);
    assert_eq!(trips["pipeline=calls,stage=api"], 1.0);
    let active = samples(&scrape, "weir_stage_active_workers");
    assert_eq!(active["pipeline=calls,stage=api"], 0.0, "{active:?}");
    for line in [
        "# TYPE weir_stage_breaker_state gauge",
        "# TYPE weir_stage_breaker_trips counter",
        "# TYPE weir_stage_active_workers gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
    }

    // While running: four items asleep in a stage of concurrency 4.
    let handle = PipelineBuilder::new()
        .name("live")
        .intake::<u32>()
        .then(|x| async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            x
        })
        .name("wait")
        .concurrency(4)
        .start();
    handle.push_batch(0..4).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let scrape = parse(&render(&handle.metrics()));
    assert_eq!(
        samples(&scrape, "weir_stage_active_workers")["pipeline=live,stage=wait"],
        4.0
    );
    assert!(samples(&scrape, "weir_stage_breaker_state").is_empty());
    handle
        .shutdown(Shutdown::Drain, Duration::from_secs(60))
        .await
        .unwrap();
}

#[tokio::test]
async fn checkpoint_commits_are_counted_and_exposed_with_or_without_event_listeners() {
    let every_third = weir::compose::from_fn("commit", |x: u32, ctx: &weir::Context, out: &mut Vec<u32>| {
        if x % 3 == 0 {
            ctx.emit_checkpoint(format!("offset={x}"));
        }
        out.push(x);
        Ok::<_, weir::BoxError>(())
    });
    // Nobody listens to this run's events: the commits are still counted.
    let report = PipelineBuilder::new()
        .name("cp")
        .from_iter(1..=10u32)
        .pipe(every_third)
        .run()
        .await
        .unwrap();
    assert_eq!(report.checkpoints, 3);
    let scrape = parse(&render(&report));
    assert_eq!(
        samples(&scrape, "weir_pipeline_checkpoints_total")["pipeline=cp"],
        3.0
    );
}
