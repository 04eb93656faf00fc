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

/// Pushes 0, 1, 2, … with `try_push` (letting the tasks run between
/// pushes) until one is refused: how many were accepted, and the refusal.
async fn try_push_until_refused(handle: &weir::Handle<u32>) -> (u32, TryPushError<u32>) {
    let mut accepted = 0u32;
    loop {
        match handle.try_push(accepted) {
            Ok(()) => accepted += 1,
            Err(e) => return (accepted, e),
        }
        tokio::task::yield_now().await;
        assert!(accepted <= 64, "try_push never reported Full");
    }
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
    let (accepted, rejected) = try_push_until_refused(&handle).await;
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

/// Guards `max_in_flight` at an intake: `capacity(8)` bounds each channel
/// on its own, so such a pipeline of three tasks accepted 18 `try_push`es
/// before `Full`; with `max_in_flight(8)` it accepts exactly 8, and room
/// comes back as items are finalized.
#[tokio::test(start_paused = true)]
async fn try_push_answers_full_exactly_at_max_in_flight() {
    let gate = Arc::new(Semaphore::new(0));
    let handle = PipelineBuilder::new()
        .capacity(8)
        .chunk_size(2)
        .max_in_flight(8)
        .intake::<u32>()
        .then(|x| async move { x })
        .concurrency(4)
        .for_each_async(common::gated(gate.clone()))
        .start();
    let (accepted, rejected) = try_push_until_refused(&handle).await;
    assert_eq!((accepted, rejected), (8, TryPushError::Full(8)));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        handle.try_push(8),
        Err(TryPushError::Full(8)),
        "still 8 in flight"
    );
    gate.add_permits(1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    handle.try_push(8).expect("one finalized: room for one");
    assert_eq!(handle.try_push(9), Err(TryPushError::Full(9)));
    gate.add_permits(1000);
    handle.push_batch(9..100).await.unwrap();
    let report = handle.wait().await.unwrap();
    assert_eq!((report.delivered, report.unfinalized), (100, 0));
}

/// Runs `n` items from `source` (built from `counted` iterators sharing
/// `pulled`) through three tasks under `max_in_flight(MAX)`, and returns
/// the most items seen pulled and not yet done at once.
macro_rules! peak_in_flight {
    (|$b:ident, $pulled:ident| $source:expr) => {{
        const MAX: u64 = 10;
        let $pulled = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let peak = Arc::new(AtomicU64::new(0));
        let $b = PipelineBuilder::new()
            .capacity(64)
            .chunk_size(8)
            .max_in_flight(MAX as usize);
        let (d, p, pl) = (done.clone(), peak.clone(), $pulled.clone());
        let report = $source
            .map(move |x: u64| {
                // Taken in: room was taken for it before its source gave it.
                p.fetch_max(
                    pl.load(Ordering::SeqCst) - d.load(Ordering::SeqCst),
                    Ordering::SeqCst,
                );
                x
            })
            .then(|x| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                x
            })
            .concurrency(4)
            .boundary()
            .for_each({
                let done = done.clone();
                move |_| {
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
            .run()
            .await
            .unwrap();
        assert_eq!((report.delivered, report.unfinalized), (1000, 0));
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= MAX, "{peak} items in flight, max_in_flight {MAX}");
        peak
    }};
}

/// Guards `max_in_flight` at every kind of source: the items taken in and
/// not yet done never exceed it (each channel alone holds 64).
#[tokio::test(start_paused = true)]
async fn every_source_kind_stops_at_max_in_flight() {
    use weir::{Ack, Acked, BoxSource};
    let peak = peak_in_flight!(|b, pulled| b.from_iter(common::counted(1000, pulled.clone())));
    assert_eq!(peak, 10, "iterator");
    let peak = peak_in_flight!(
        |b, pulled| b.from_stream(futures::stream::iter(common::counted(1000, pulled.clone())))
    );
    assert_eq!(peak, 10, "stream");
    let acker: Arc<dyn weir::Acker> = Arc::new(|_, _| {});
    let peak = peak_in_flight!(|b, pulled| b.from_acked(futures::stream::iter(
        common::counted(1000, pulled.clone()).map(move |i| Acked::new(i, Ack::new(i, acker.clone())))
    )));
    assert_eq!(peak, 10, "acked stream");
    let peak = peak_in_flight!(|b, pulled| b.merge([
        BoxSource::from_iter(common::counted(500, pulled.clone())),
        BoxSource::from_stream(futures::stream::iter(common::counted(500, pulled.clone()))),
    ]));
    assert_eq!(peak, 10, "merge");
}
