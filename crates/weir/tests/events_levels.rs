//! Event levels, per-item events, new kinds, custom events and lossy
//! subscriptions.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use weir::stage::Streamed;
use weir::{
    compose, Ack, Acked, Context, ErrorPolicy, Event, EventKind, EventLevel, Lagged, Pipeline,
    PipelineBuilder, Shutdown,
};

use common::Ledger;

/// An event's JSON with what varies from run to run (wall-clock time, the
/// run id, the duration) pinned, and the report cut to its counts (so that
/// report fields added later do not break the golden sequence).
fn normalized(e: &Event) -> Value {
    let mut v = serde_json::to_value(e).unwrap();
    v["ts_ms"] = json!(0);
    assert!(v["run_id"].as_str().unwrap().starts_with("golden-"), "{v}");
    v["run_id"] = json!("RUN");
    if let Some(report) = v.get_mut("report") {
        let stages: Vec<Value> = report["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                json!({
                    "name": s["name"], "items_in": s["items_in"], "items_out": s["items_out"],
                    "dropped": s["dropped"], "failed": s["failed"],
                })
            })
            .collect();
        *report = json!({
            "outcome": report["outcome"], "pulled": report["pulled"], "delivered": report["delivered"],
            "dropped": report["dropped"], "failed": report["failed"],
            "unfinalized": report["unfinalized"], "stages": stages,
        });
    }
    v
}

fn kind(e: &Event) -> &'static str {
    match e.kind {
        EventKind::PipelineStarted { .. } => "started",
        EventKind::Progress(_) => "progress",
        EventKind::ItemStarted { .. } => "item_started",
        EventKind::ItemCompleted { .. } => "item_completed",
        EventKind::ItemFailed { .. } => "failed",
        EventKind::SourceExhausted { .. } => "exhausted",
        EventKind::SourceConnected { .. } => "connected",
        EventKind::Custom { .. } => "custom",
        EventKind::PipelineFinished { .. } => "finished",
        _ => "other",
    }
}

#[tokio::test(start_paused = true)]
async fn the_event_sequence_of_a_small_pipeline_is_golden() {
    let events: Vec<_> = PipelineBuilder::new()
        .name("golden")
        .error_policy(ErrorPolicy::Skip)
        .context(Context::new("golden"))
        .from_iter(["1", "x", "3"])
        .try_map(|s| s.parse::<u32>())
        .name("parse")
        .then(|n| async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            n * 10
        })
        .name("slow")
        .events()
        .collect()
        .await;
    let run_id = &events[0].run_id;
    assert!(events.iter().all(|e| &e.run_id == run_id));
    let got: Vec<Value> = events.iter().map(normalized).collect();
    let stages = |a: [u64; 4], b: [u64; 4], c: [u64; 4]| {
        json!([
            {"name": "source#0", "items_in": a[0], "items_out": a[1], "dropped": a[2], "failed": a[3]},
            {"name": "parse", "items_in": b[0], "items_out": b[1], "dropped": b[2], "failed": b[3]},
            {"name": "slow", "items_in": c[0], "items_out": c[1], "dropped": c[2], "failed": c[3]},
            {"name": "run#3", "items_in": 2, "items_out": 2, "dropped": 0, "failed": 0},
        ])
    };
    let head = |elapsed: u64| json!({"version": 1, "pipeline": "golden", "run_id": "RUN", "ts_ms": 0, "elapsed_ms": elapsed});
    let with = |elapsed: u64, body: Value| {
        let mut v = head(elapsed);
        v.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        v
    };
    let want = vec![
        with(
            0,
            json!({"type": "pipeline_started", "stages": ["source#0", "parse", "slow", "run#3"], "estimated_total": 3}),
        ),
        with(
            0,
            json!({"type": "item_failed", "stage": "parse", "item": 1, "error": "invalid digit found in string",
                       "error_type": "error", "attempt": 1, "retryable": true}),
        ),
        with(
            0,
            json!({"type": "source_exhausted", "stage": "source#0", "items": 3}),
        ),
        // One item every 600 ms, one at a time; the failed one counts as done.
        with(
            1000,
            json!({"type": "progress", "completed": 2, "failed": 1, "in_flight": 1,
                          "estimated_total": 3, "rate": 2.0, "eta_seconds": 0.5}),
        ),
        with(
            1200,
            json!({"type": "progress", "completed": 3, "failed": 1, "in_flight": 0,
                          "estimated_total": 3, "rate": 2.5, "eta_seconds": 0.0}),
        ),
        with(
            1200,
            json!({"type": "pipeline_finished", "error": null, "report": {
                "outcome": "completed", "pulled": 3, "delivered": 2, "dropped": 0, "failed": 1, "unfinalized": 0,
                "stages": stages([3, 3, 0, 0], [3, 2, 0, 1], [2, 2, 0, 0]),
            }}),
        ),
    ];
    assert_eq!(got.len(), want.len(), "{:#}", Value::Array(got.clone()));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "event {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_lifecycle_level_has_no_progress() {
    let events: Vec<_> = PipelineBuilder::new()
        .event_level(EventLevel::Lifecycle)
        .progress_interval(Duration::from_millis(10))
        .error_policy(ErrorPolicy::Skip)
        .from_iter(["1", "x"])
        .try_map(|s| s.parse::<u32>())
        .then(|n| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            n
        })
        .events()
        .collect()
        .await;
    let kinds: Vec<_> = events.iter().map(kind).collect();
    assert_eq!(kinds, ["started", "failed", "exhausted", "finished"]);
}

#[tokio::test(start_paused = true)]
async fn the_items_level_times_every_item_of_a_then_stage_and_the_sink() {
    let ledger = Ledger::default();
    let events: Vec<_> = PipelineBuilder::new()
        .event_level(EventLevel::Items)
        .progress_interval(Duration::from_secs(3600))
        .error_policy(ErrorPolicy::Skip)
        .from_acked(ledger.source(4))
        .try_then(|x| async move {
            // Item x takes (x + 1) × 10 ms; item 2 fails after its sleep.
            tokio::time::sleep(Duration::from_millis((x + 1) * 10)).await;
            if x == 2 {
                Err("two")
            } else {
                Ok(x)
            }
        })
        .name("work")
        .for_each_async(|_x| async { Ok::<_, std::io::Error>(()) })
        .name("out")
        .events()
        .collect()
        .await;
    let mut started = Vec::new();
    let mut completed = HashMap::new();
    let mut failed = Vec::new();
    for e in &events {
        match &e.kind {
            EventKind::ItemStarted { stage, item } => started.push((stage.as_str(), *item)),
            EventKind::ItemCompleted {
                stage,
                item,
                key,
                duration_us,
                ..
            } => {
                assert!(
                    started.contains(&(stage.as_str(), *item)),
                    "completed before started"
                );
                // The ledger's acks carry the item's id; only the sink
                // sees the token (a `then` stage's work gets the item).
                let expected = (stage == "out").then_some(*item);
                assert_eq!(*key, expected, "{stage} {item}");
                completed.insert((stage.as_str(), *item), *duration_us);
            }
            EventKind::ItemFailed { stage, item, .. } => failed.push((stage.as_str(), *item)),
            _ => {}
        }
    }
    started.sort_unstable();
    assert_eq!(
        started,
        [
            ("out", 0),
            ("out", 1),
            ("out", 3),
            ("work", 0),
            ("work", 1),
            ("work", 2),
            ("work", 3)
        ]
    );
    for x in [0u64, 1, 3] {
        assert_eq!(completed[&("work", x)], (x + 1) * 10_000, "item {x}");
        assert_eq!(completed[&("out", x)], 0, "the sink writes at once");
    }
    assert!(
        !completed.contains_key(&("work", 2)),
        "a failure is not a completion"
    );
    assert_eq!(failed, [("work", 2)]);
    ledger.assert_exactly_once();
}

#[tokio::test(start_paused = true)]
async fn the_items_level_covers_concurrent_and_keyed_stages() {
    let events: Vec<_> = PipelineBuilder::new()
        .event_level(EventLevel::Items)
        .from_iter(0..50u64)
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(50 - x)).await;
            x
        })
        .concurrency(8)
        .unordered()
        .name("wide")
        .key_by(|x| x % 3)
        .then(|x| async move { x })
        .name("keyed")
        .blocking(|x| x + 1)
        .name("blocking")
        .events()
        .collect()
        .await;
    // The implicit end of `events()` is no sink task: no item events.
    for stage in ["wide", "keyed", "blocking"] {
        let count = |want: &str| {
            let mut items: Vec<u64> = events
                .iter()
                .filter_map(|e| match &e.kind {
                    EventKind::ItemStarted { stage: s, item } if want == "started" && s == stage => {
                        Some(*item)
                    }
                    EventKind::ItemCompleted { stage: s, item, .. } if want == "completed" && s == stage => {
                        Some(*item)
                    }
                    _ => None,
                })
                .collect();
            items.sort_unstable();
            items
        };
        assert_eq!(count("started"), (0..50).collect::<Vec<_>>(), "{stage}");
        assert_eq!(count("completed"), (0..50).collect::<Vec<_>>(), "{stage}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_progress_level_sends_no_item_events() {
    let events: Vec<_> = PipelineBuilder::new()
        .from_iter(0..10u64)
        .then(|x| async move { x })
        .events()
        .collect()
        .await;
    assert!(!events.iter().any(|e| matches!(
        e.kind,
        EventKind::ItemStarted { .. } | EventKind::ItemCompleted { .. }
    )));
}

#[tokio::test(start_paused = true)]
async fn every_event_carries_the_run_id() {
    let ctx = Context::new("ids");
    let events: Vec<_> = PipelineBuilder::new()
        .context(ctx.clone())
        .from_iter(0..3u8)
        .events()
        .collect()
        .await;
    assert!(events.len() >= 3);
    assert!(events.iter().all(|e| e.run_id == ctx.id()));
}

#[tokio::test(start_paused = true)]
async fn the_rate_follows_the_recent_pace_not_the_average() {
    // 100 items in the first 100 ms, then one item every 500 ms.
    let events: Vec<_> = PipelineBuilder::new()
        .chunk_size(1)
        .progress_interval(Duration::from_secs(1))
        .from_iter(0..150u64)
        .then(|x| async move {
            let ms = if x < 100 { 1 } else { 500 };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            x
        })
        .events()
        .collect()
        .await;
    let progress: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Progress(p) => Some((e.elapsed_ms, p.clone())),
            _ => None,
        })
        .collect();
    // At 20 s: the last 10 s saw 20 items (2/s); the average since the
    // start would be ~7/s.
    let (_, at20) = progress.iter().find(|(t, _)| *t == 20_000).unwrap();
    assert!((at20.rate - 2.0).abs() < 0.11, "{at20:?}");
    let left = 150 - at20.completed;
    let eta = at20.eta_seconds.unwrap();
    assert!((eta - left as f64 / at20.rate).abs() < 1e-9, "{at20:?}");
}

#[tokio::test(start_paused = true)]
async fn custom_events_and_checkpoints_arrive_in_order_without_loss() {
    let tag = compose::from_fn("tag", |x: u32, ctx: &Context, out: &mut Vec<u32>| {
        ctx.emit("seen", json!({ "x": x }));
        if x % 100 == 99 {
            ctx.emit_checkpoint(x.to_string());
        }
        out.push(x);
        Ok::<_, weir::BoxError>(())
    });
    let mut events = PipelineBuilder::new()
        .events_capacity(1)
        .from_iter(0..1000u32)
        .pipe(tag)
        .events();
    let mut seen = Vec::new();
    let mut checkpoints = Vec::new();
    while let Some(e) = events.next().await {
        // A slow consumer: the channel is full most of the time.
        tokio::time::sleep(Duration::from_micros(10)).await;
        match e.kind {
            EventKind::Custom { stage, name, data } => {
                assert_eq!((stage.as_deref(), name.as_str()), (Some("tag"), "seen"));
                seen.push(data["x"].as_u64().unwrap());
            }
            EventKind::CheckpointCommitted { stage, position } => {
                assert_eq!(stage, "tag");
                assert_eq!(Some(seen.len() as u64 - 1), position.parse().ok());
                checkpoints.push(position);
            }
            _ => {}
        }
    }
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    assert_eq!(checkpoints.len(), 10);
}

#[tokio::test(start_paused = true)]
async fn custom_events_cost_nothing_without_listeners() {
    struct Loud;
    impl serde::Serialize for Loud {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            panic!("serialized with nobody listening");
        }
    }
    let tag = compose::from_fn("tag", |x: u32, ctx: &Context, out: &mut Vec<u32>| {
        ctx.emit("loud", Loud);
        out.push(x);
        Ok::<_, weir::BoxError>(())
    });
    let report = Pipeline::from_iter(0..10u32).pipe(tag).run().await.unwrap();
    assert_eq!(report.delivered, 10);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_subscriber_is_told_what_it_missed_and_never_slows_the_pipeline() {
    let mut pipeline = PipelineBuilder::new()
        .event_level(EventLevel::Items)
        .subscribe_capacity(4)
        .from_iter(0..500u64)
        .then(|x| async move { x });
    let mut monitor = pipeline.subscribe();
    // The subscriber is not polled at all while the pipeline runs.
    let report = pipeline.run().await.unwrap();
    assert_eq!(report.delivered, 500);
    let first = monitor.next().await.unwrap();
    let Err(Lagged { missed }) = first else {
        panic!("expected a lag, got {first:?}");
    };
    let rest: Vec<_> = monitor.collect().await;
    assert_eq!(rest.len(), 4, "the last `capacity` events are kept");
    let rest: Vec<Event> = rest.into_iter().map(Result::unwrap).collect();
    assert!(matches!(
        rest.last().unwrap().kind,
        EventKind::PipelineFinished { .. }
    ));
    // started, 2 × 500 for the `then` stage, exhausted, progress, finished.
    assert_eq!(missed + 4, 1 + 2 * 500 + 3);
}

#[tokio::test(start_paused = true)]
async fn a_handle_subscribes_while_the_run_goes_on() {
    let handle = PipelineBuilder::new()
        .event_level(EventLevel::Items)
        .intake::<u32>()
        .then(|x| async move { x })
        .name("work")
        .start();
    handle.push(1).await.unwrap();
    let mut monitor = handle.subscribe();
    handle.push(2).await.unwrap();
    let report = handle.wait().await.unwrap();
    let events: Vec<Event> = monitor.by_ref().map(Result::unwrap).collect().await;
    assert!(events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::ItemCompleted { stage, item: 1, .. } if stage == "work")));
    assert!(events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::SourceExhausted { items: 2, .. })));
    assert!(
        matches!(&events.last().unwrap().kind, EventKind::PipelineFinished { report: r, .. } if **r == report)
    );
    assert!(monitor.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_subscription_taken_after_the_end_is_empty() {
    let handle = Pipeline::from_iter(0..3u8).start();
    while !handle.is_finished() {
        tokio::task::yield_now().await;
    }
    let late = handle.subscribe();
    assert!(late.collect::<Vec<_>>().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_drained_source_is_not_exhausted() {
    let handle = PipelineBuilder::new()
        .capacity(8)
        .chunk_size(4)
        .from_stream(futures::stream::repeat(1u8))
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        })
        .start();
    let monitor = handle.subscribe();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = handle
        .shutdown(Shutdown::Drain, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(report.outcome, weir::Outcome::Drained);
    let events: Vec<_> = monitor.collect().await;
    assert!(!events.iter().any(|e| matches!(
        e,
        Ok(Event {
            kind: EventKind::SourceExhausted { .. },
            ..
        })
    )));
}

#[tokio::test(start_paused = true)]
async fn merged_inputs_announce_that_they_connected() {
    let inputs = vec![
        Streamed::new(futures::stream::iter(0..3u32)).named("a"),
        Streamed::new(futures::stream::iter(3..5u32)).named("b"),
    ];
    let events: Vec<_> = Pipeline::merge(inputs).events().collect().await;
    let mut connected: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SourceConnected { input, .. } => Some(input.clone()),
            _ => None,
        })
        .collect();
    connected.sort();
    assert_eq!(connected, ["a", "b"]);
    let exhausted = events
        .iter()
        .position(|e| matches!(e.kind, EventKind::SourceExhausted { items: 5, .. }));
    let last_connected = events
        .iter()
        .rposition(|e| matches!(e.kind, EventKind::SourceConnected { .. }));
    assert!(
        last_connected < exhausted,
        "{:?}",
        events.iter().map(kind).collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn nothing_is_emitted_for_an_empty_source_but_the_lifecycle() {
    let events: Vec<_> = PipelineBuilder::new()
        .event_level(EventLevel::Items)
        .from_iter(Vec::<u8>::new())
        .then(|x| async move { x })
        .events()
        .collect()
        .await;
    let kinds: Vec<_> = events.iter().map(kind).collect();
    assert_eq!(kinds, ["started", "exhausted", "progress", "finished"]);
}

#[tokio::test(start_paused = true)]
async fn a_handle_subscriber_gets_progress_on_the_runs_beat() {
    let handle = PipelineBuilder::new()
        .progress_interval(Duration::from_secs(1))
        .intake::<u32>()
        .start();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let monitor = handle.subscribe();
    handle.push(1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    handle.wait().await.unwrap();
    let at: Vec<u64> = monitor
        .filter_map(|e| async move {
            match e.unwrap() {
                Event {
                    kind: EventKind::Progress(_),
                    elapsed_ms,
                    ..
                } => Some(elapsed_ms),
                _ => None,
            }
        })
        .collect()
        .await;
    // Ticks at 2 s and 3 s, then the final progress at the end (3.5 s).
    assert_eq!(at, [2000, 3000, 3500]);
}

/// A sink that buffers what it is written and stores it on a slow flush
/// (100 ms), failing the flushes listed in `failing` (by flush number).
struct SlowStore {
    buffered: Vec<u64>,
    stored: Arc<Mutex<Vec<u64>>>,
    flushes: usize,
    failing: Vec<usize>,
}

impl weir::Sink<u64> for SlowStore {
    type Error = std::io::Error;

    async fn write(&mut self, x: u64) -> Result<(), std::io::Error> {
        self.buffered.push(x);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), std::io::Error> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.flushes += 1;
        let batch = std::mem::take(&mut self.buffered);
        if self.failing.contains(&self.flushes) {
            return Err(std::io::Error::other("disk full"));
        }
        self.stored.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// Items `ids` keyed by themselves ([`Ack::keyed`]), as a source stream.
fn keyed(ids: Vec<u64>) -> impl futures::Stream<Item = Acked<u64>> + Send + 'static {
    futures::stream::iter(ids.into_iter().map(|id| Acked::new(id, Ack::keyed(id))))
}

/// Guards the checkpoint signal: a sink's `ItemCompleted` was sent when
/// `write` returned, before the flush that stores the item, so a consumer
/// checkpointing on it could skip an item a crash then lost. Now every one
/// comes after its flush (the item is stored when the event is read), with
/// the source's key; a failed flush gives `ItemFailed` (with the key)
/// and no completion.
#[tokio::test(start_paused = true)]
async fn a_sinks_item_completed_comes_after_the_flush_that_delivers_it() {
    let stored = Arc::new(Mutex::new(Vec::new()));
    let sink = SlowStore {
        buffered: Vec::new(),
        stored: stored.clone(),
        flushes: 0,
        failing: vec![2],
    };
    let mut events = PipelineBuilder::new()
        .event_level(EventLevel::Items)
        .capacity(4)
        .chunk_size(2)
        .error_policy(ErrorPolicy::Skip)
        .from_acked(keyed((100..110).collect()))
        .sink(sink)
        .name("store")
        .events();
    let mut completed = Vec::new();
    let mut failed = Vec::new();
    while let Some(e) = events.next().await {
        match e.kind {
            EventKind::ItemCompleted { stage, key, .. } if stage == "store" => {
                let key = key.expect("a keyed item's events carry its key");
                assert!(
                    stored.lock().unwrap().contains(&key),
                    "ItemCompleted for {key} before the flush that stores it"
                );
                completed.push(key);
            }
            EventKind::ItemFailed { key, .. } => failed.push(key.unwrap()),
            _ => {}
        }
    }
    assert!(!failed.is_empty(), "the second flush failed its items");
    assert!(failed.iter().all(|k| !completed.contains(k)));
    let mut all: Vec<u64> = completed.iter().chain(&failed).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (100..110).collect::<Vec<_>>());
    assert_eq!(*stored.lock().unwrap(), completed);
}

/// Seed 001's "consume progress events, stop at half, resume later",
/// end to end: the first run records the keys its sink delivered (the
/// checkpoint signal) and drains at half; the second run skips those keys
/// and does the rest. Every id is stored exactly once, and neither run
/// kept the input list to map events back to ids.
#[tokio::test(start_paused = true)]
async fn a_run_drained_at_half_resumes_from_its_delivered_keys() {
    const N: u64 = 200;
    let stored = Arc::new(Mutex::new(Vec::new()));
    let store = || SlowStore {
        buffered: Vec::new(),
        stored: stored.clone(),
        flushes: 0,
        failing: Vec::new(),
    };
    let run = |ids: Vec<u64>, stop_at: Option<u64>| {
        let mut events = PipelineBuilder::new()
            .event_level(EventLevel::Items)
            .capacity(8)
            .chunk_size(4)
            .progress_interval(Duration::from_millis(100))
            .from_acked(keyed(ids))
            .sink(store())
            .name("store")
            .events();
        async move {
            let controller = events.controller();
            let mut done = Vec::new();
            let mut outcome = None;
            while let Some(e) = events.next().await {
                match e.kind {
                    EventKind::ItemCompleted { stage, key, .. } if stage == "store" => done.extend(key),
                    EventKind::Progress(p) if stop_at.is_some_and(|s| p.completed >= s) => {
                        controller.drain_within(Duration::from_secs(60));
                    }
                    EventKind::PipelineFinished { report, .. } => outcome = Some(report.outcome),
                    _ => {}
                }
            }
            (done, outcome.unwrap())
        }
    };
    let (first, outcome) = run((0..N).collect(), Some(N / 2)).await;
    assert_eq!(outcome, weir::Outcome::Drained);
    assert!((N / 2..N).contains(&(first.len() as u64)), "{}", first.len());
    let rest: Vec<u64> = (0..N).filter(|id| !first.contains(id)).collect();
    let (second, outcome) = run(rest, None).await;
    assert_eq!(outcome, weir::Outcome::Completed);
    let mut all: Vec<u64> = first.iter().chain(&second).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..N).collect::<Vec<_>>(), "every id once");
    let mut stored = stored.lock().unwrap().clone();
    stored.sort_unstable();
    assert_eq!(stored, all, "what the events said was stored, was");
}
