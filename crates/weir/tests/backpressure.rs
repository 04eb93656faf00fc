//! Backpressure: bounded items alive, whatever the stream length.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use weir::{PipelineBuilder, TryPushError};

const CAPACITY: usize = 64;
const CHUNK: usize = 16;

/// The documented bound: per task boundary, the channel's capacity plus a
/// chunk buffered by the sender and a chunk held by the receiver; plus each
/// concurrent stage's window.
fn bound(boundaries: usize, concurrency: usize) -> u64 {
    (boundaries * (CAPACITY + 2 * CHUNK) + concurrency) as u64
}

#[tokio::test(start_paused = true)]
async fn a_stalled_sink_stops_the_source_at_the_bound() {
    let pulled = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let run = tokio::spawn(
        PipelineBuilder::new()
            .capacity(CAPACITY)
            .chunk_size(CHUNK)
            .from_iter(common::counted(1_000_000, pulled.clone()))
            .map(|x| x + 1)
            .then(|x| async move { x })
            .concurrency(8)
            .for_each_async(common::gated(gate.clone()))
            .run(),
    );
    // Two boundaries (source → then, then → sink), a window of 8.
    common::assert_stalls(&pulled, bound(2, 8), CAPACITY as u64).await;
    gate.add_permits(usize::MAX >> 4);
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.delivered, 1_000_000);
    assert_eq!(report.unfinalized, 0);
}

/// Guards against O(n) memory: with a sink slower than the source, items
/// alive (pulled but not yet delivered) never exceed the bound over a long
/// stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_alive_stay_bounded_over_ten_million_items() {
    const N: u64 = 10_000_000;
    let pulled = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let (d, p, pl) = (delivered.clone(), peak.clone(), pulled.clone());
    let report = PipelineBuilder::new()
        .capacity(CAPACITY * 16)
        .chunk_size(CHUNK * 16)
        .from_iter(common::counted(N, pulled.clone()))
        .then(std::future::ready)
        .try_for_each(move |_x| {
            let alive = pl.load(Ordering::Relaxed) - d.fetch_add(1, Ordering::Relaxed);
            p.fetch_max(alive, Ordering::Relaxed);
            Ok::<_, std::io::Error>(())
        })
        .run()
        .await
        .unwrap();
    assert_eq!(report.delivered, N);
    let limit = (CAPACITY * 16 + 2 * CHUNK * 16) as u64 + 1;
    let peak = peak.load(Ordering::Relaxed);
    assert!(peak <= limit, "{peak} items alive at once, bound {limit}");
}

#[tokio::test(start_paused = true)]
async fn try_push_returns_full_at_capacity_and_succeeds_after_the_sink_drains() {
    let gate = Arc::new(Semaphore::new(0));
    let handle = PipelineBuilder::new()
        .capacity(4)
        .chunk_size(2)
        .intake::<u32>()
        .for_each_async(common::gated(gate.clone()))
        .start();
    let mut accepted = 0u32;
    let rejected = loop {
        match handle.try_push(accepted) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        tokio::task::yield_now().await;
        assert!(accepted <= 64, "try_push never reported Full");
    };
    assert_eq!(rejected, TryPushError::Full(accepted));
    // Intake (4) + sink boundary (4 + 2 chunks of 2) + what the tasks hold.
    assert!(accepted <= 4 + 4 + 2 * 2 + 2, "accepted {accepted}");
    assert_eq!(handle.metrics().delivered, 0);

    gate.add_permits(1000);
    tokio::time::sleep(Duration::from_millis(10)).await;
    handle
        .try_push(accepted)
        .expect("room again once the sink drained");
    handle.push(accepted + 1).await.unwrap();
    let report = handle.wait().await.unwrap();
    assert_eq!(report.delivered, u64::from(accepted) + 2);
}

#[tokio::test(start_paused = true)]
async fn push_waits_for_room_instead_of_failing() {
    let gate = Arc::new(Semaphore::new(0));
    let handle = PipelineBuilder::new()
        .capacity(2)
        .chunk_size(1)
        .intake::<u32>()
        .for_each_async(common::gated(gate.clone()))
        .start();
    let pusher = handle.pusher();
    let pushing = tokio::spawn(async move { pusher.push_batch(0..100).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!pushing.is_finished(), "push_batch should be waiting for room");
    gate.add_permits(100);
    pushing.await.unwrap().unwrap();
    assert_eq!(handle.wait().await.unwrap().delivered, 100);
}

#[tokio::test(start_paused = true)]
async fn a_slow_event_consumer_slows_the_pipeline_instead_of_queueing() {
    use futures::StreamExt;
    let pulled = Arc::new(AtomicU64::new(0));
    let mut events = PipelineBuilder::new()
        .capacity(CAPACITY)
        .chunk_size(CHUNK)
        .events_capacity(2)
        .progress_interval(Duration::from_millis(1))
        .from_iter(common::counted(100_000, pulled.clone()))
        .then(|x| async move {
            tokio::time::sleep(Duration::from_micros(10)).await;
            x
        })
        .events();
    let first = events.next().await.unwrap();
    assert!(matches!(first.kind, weir::EventKind::PipelineStarted { .. }));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stalled = pulled.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        stalled,
        "the source went on while nobody read events"
    );
    assert!(stalled < 100_000);
    let rest: Vec<_> = events.collect().await;
    match &rest.last().unwrap().kind {
        weir::EventKind::PipelineFinished { report, error } => {
            assert!(error.is_none());
            assert_eq!(report.delivered, 100_000);
        }
        other => panic!("last event {other:?}"),
    }
}
