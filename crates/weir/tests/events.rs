//! The typed event stream.

use std::time::Duration;

use futures::StreamExt;
use weir::{ErrorPolicy, Event, EventKind, PipelineBuilder, EVENT_VERSION};

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e.kind {
            EventKind::PipelineStarted { .. } => "started",
            EventKind::Progress(_) => "progress",
            EventKind::ItemFailed { .. } => "failed",
            EventKind::SourceExhausted { .. } => "exhausted",
            EventKind::PipelineFinished { .. } => "finished",
            _ => "other",
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_small_pipeline_emits_started_failures_progress_and_finished_in_order() {
    let events: Vec<_> = PipelineBuilder::new()
        .name("small")
        .error_policy(ErrorPolicy::Skip)
        .from_iter(["1", "2", "x", "4"])
        .try_map(|s| s.parse::<u32>())
        .name("parse")
        .events()
        .collect()
        .await;
    assert_eq!(
        kinds(&events),
        ["started", "failed", "exhausted", "progress", "finished"]
    );
    assert!(events
        .iter()
        .all(|e| e.version == EVENT_VERSION && e.pipeline == "small"));
    let json: Vec<serde_json::Value> = events.iter().map(|e| serde_json::to_value(e).unwrap()).collect();
    assert_eq!(json[0]["type"], "pipeline_started");
    assert_eq!(
        json[0]["stages"],
        serde_json::json!(["source#0", "parse", "run#2"])
    );
    assert_eq!(json[0]["estimated_total"], 4);
    assert_eq!(json[1]["type"], "item_failed");
    assert_eq!(json[1]["stage"], "parse");
    assert_eq!(json[1]["item"], 2);
    assert_eq!(json[1]["error"], "invalid digit found in string");
    assert_eq!(json[1]["error_type"], "error");
    assert_eq!(json[1]["attempt"], 1);
    assert_eq!(json[2]["type"], "source_exhausted");
    assert_eq!(json[2]["items"], 4);
    assert_eq!(json[3]["completed"], 4);
    assert_eq!(json[3]["failed"], 1);
    assert_eq!(json[3]["in_flight"], 0);
    assert_eq!(json[4]["type"], "pipeline_finished");
    assert_eq!(json[4]["report"]["delivered"], 3);
    assert_eq!(json[4]["error"], serde_json::Value::Null);
    // Every event round-trips through JSON.
    for (e, j) in events.iter().zip(&json) {
        assert_eq!(&serde_json::from_value::<Event>(j.clone()).unwrap(), e);
    }
}

#[tokio::test(start_paused = true)]
async fn progress_reports_rate_and_eta_against_the_estimated_total() {
    let events: Vec<_> = PipelineBuilder::new()
        .chunk_size(1)
        .progress_interval(Duration::from_millis(100))
        .from_iter(0..100u32)
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
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
    assert!(
        progress.len() >= 9,
        "one every 100 ms over ~1 s: {}",
        progress.len()
    );
    let (at, mid) = &progress[4];
    assert_eq!(*at, 500);
    assert_eq!(mid.estimated_total, Some(100));
    // 10 ms per item, one at a time: ~50 done at 500 ms, ~100 items/s,
    // ~0.5 s to go.
    assert!((48..=51).contains(&mid.completed), "{mid:?}");
    assert!((mid.rate - 100.0).abs() < 5.0, "{mid:?}");
    let eta = mid.eta_seconds.unwrap();
    assert!((eta - 0.5).abs() < 0.05, "{mid:?}");
    assert!(progress.windows(2).all(|w| w[0].1.completed <= w[1].1.completed));
    assert_eq!(progress.last().unwrap().1.completed, 100);
}

#[tokio::test(start_paused = true)]
async fn a_fail_fast_error_is_in_the_finished_event() {
    let events: Vec<_> = PipelineBuilder::new()
        .from_iter(["1", "x"])
        .try_map(|s| s.parse::<u32>())
        .events()
        .collect()
        .await;
    let EventKind::PipelineFinished { report, error } = &events.last().unwrap().kind else {
        panic!("no finished event");
    };
    assert_eq!(report.outcome, weir::Outcome::Failed);
    assert_eq!(
        error.as_deref(),
        Some("stage `map#1` failed on item 1 (attempt 1): invalid digit found in string")
    );
}
