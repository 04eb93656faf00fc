//! Modes: a preset of pipeline-wide defaults lands in the run, and an
//! explicit setting wins over it in either order.

use std::time::Duration;

use futures::StreamExt;
use weir::{Event, EventKind, EventLevel, Mode, PipelineBuilder};

/// What a run of 10 items, each taking a second in a `then`, shows of its
/// settings: progress ticks, per-item events, the `then`'s channel.
#[derive(Debug, PartialEq)]
struct Seen {
    progress_ticks: usize,
    items_started: usize,
    queue_capacity: Option<u64>,
}

async fn observe(builder: PipelineBuilder) -> Seen {
    let events: Vec<Event> = builder
        .from_iter(0..10u32)
        .then(|x| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            x
        })
        .events()
        .collect()
        .await;
    let count = |f: fn(&EventKind) -> bool| events.iter().filter(|e| f(&e.kind)).count();
    let EventKind::PipelineFinished { report, .. } = &events.last().unwrap().kind else {
        panic!("the last event is not PipelineFinished");
    };
    assert_eq!(report.delivered, 10);
    Seen {
        progress_ticks: count(|k| matches!(k, EventKind::Progress(_))),
        items_started: count(|k| matches!(k, EventKind::ItemStarted { .. })),
        queue_capacity: report.stages[1].queue_capacity,
    }
}

/// Guards each mode's event level, progress interval and capacity in a
/// real run: 10 s of work ticks every 5 s (Throughput only if its level
/// allows progress: it does not), every 1 s, every 100 ms.
#[tokio::test(start_paused = true)]
async fn each_mode_lands_in_the_run() {
    // (mode, at least this many progress ticks, at most, item events, capacity)
    let cases = [
        (Mode::Throughput, 0, 0, 0, 16384),
        (Mode::Balanced, 9, 12, 0, 4096),
        (Mode::Debug, 95, 105, 10, 100),
    ];
    for (mode, min_ticks, max_ticks, items, capacity) in cases {
        let seen = observe(PipelineBuilder::new().mode(mode)).await;
        assert!(
            (min_ticks..=max_ticks).contains(&seen.progress_ticks),
            "{mode:?}: {seen:?}"
        );
        assert_eq!(seen.items_started, items, "{mode:?}: {seen:?}");
        assert_eq!(seen.queue_capacity, Some(capacity), "{mode:?}");
    }
    // Without a mode: Balanced's.
    let plain = observe(PipelineBuilder::new()).await;
    let balanced = observe(PipelineBuilder::new().mode(Mode::Balanced)).await;
    assert_eq!(plain, balanced);
}

/// Guards "a mode sets defaults, not values" in a real run: Debug with
/// the event level and capacity set before or after it.
#[tokio::test(start_paused = true)]
async fn explicit_settings_win_over_the_mode_in_the_run() {
    let before = PipelineBuilder::new()
        .event_level(EventLevel::Lifecycle)
        .capacity(50)
        .mode(Mode::Debug);
    let after = PipelineBuilder::new()
        .mode(Mode::Debug)
        .event_level(EventLevel::Lifecycle)
        .capacity(50);
    for (order, builder) in [("setters first", before), ("mode first", after)] {
        let seen = observe(builder).await;
        let want = Seen {
            progress_ticks: 0,
            items_started: 0,
            queue_capacity: Some(50),
        };
        assert_eq!(seen, want, "{order}");
    }
    // Throughput with progress asked for: ticks on its 5 s interval.
    let seen = observe(
        PipelineBuilder::new()
            .mode(Mode::Throughput)
            .event_level(EventLevel::Progress),
    )
    .await;
    assert!((1..=3).contains(&seen.progress_ticks), "{seen:?}");
}
