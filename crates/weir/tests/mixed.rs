//! Sync, async and blocking stages together give the right output.

use std::time::Duration;

use weir::{Pipeline, PipelineBuilder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_sync_async_and_blocking_stages_match_a_plain_iterator() {
    let expected: Vec<String> = (0..5000u64)
        .map(|x| x * 3)
        .filter(|x| x % 2 == 0)
        .flat_map(|x| vec![x; (x % 3) as usize])
        .map(|x| x + 1)
        .map(|x| format!("<{x}>"))
        .collect();
    let out = PipelineBuilder::new()
        .capacity(128)
        .chunk_size(32)
        .from_iter(0..5000u64)
        .map(|x| x * 3)
        .then(|x| async move {
            if x % 7 == 0 {
                tokio::time::sleep(Duration::from_micros(50)).await;
            }
            x
        })
        .concurrency(8)
        .filter(|x| x % 2 == 0)
        .blocking(|x| vec![x; (x % 3) as usize])
        .concurrency(3)
        .flat_map(|v| v)
        .then(|x| async move { x + 1 })
        .concurrency(16)
        .map(|x| format!("<{x}>"))
        .collect()
        .await
        .unwrap();
    assert_eq!(out, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unordered_stages_lose_order_but_not_items() {
    let mut out = Pipeline::from_iter(0..10_000u32)
        .then(|x| async move {
            if x % 13 == 0 {
                tokio::task::yield_now().await;
            }
            x
        })
        .concurrency(32)
        .unordered()
        .blocking(|x| x * 2)
        .concurrency(2)
        .unordered()
        .collect()
        .await
        .unwrap();
    out.sort_unstable();
    assert_eq!(out, (0..10_000).map(|x| x * 2).collect::<Vec<_>>());
}

#[tokio::test]
async fn empty_and_single_item_sources_complete() {
    let empty = Pipeline::from_iter(Vec::<u8>::new())
        .then(|x| async move { x })
        .collect()
        .await
        .unwrap();
    assert!(empty.is_empty());
    let one = Pipeline::from_iter([9u8])
        .then(|x| async move { x })
        .collect()
        .await
        .unwrap();
    assert_eq!(one, [9]);
    let report = Pipeline::from_stream(futures::stream::empty::<u8>())
        .run()
        .await
        .unwrap();
    assert_eq!((report.pulled, report.delivered, report.unfinalized), (0, 0, 0));
}

#[tokio::test]
async fn the_report_counts_every_stage() {
    let report = Pipeline::from_iter(0..100u32)
        .filter(|x| x % 2 == 0)
        .flat_map(|x| [x, x])
        .then(|x| async move { x })
        .name("echo")
        .run()
        .await
        .unwrap();
    let names: Vec<_> = report.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["source#0", "filter#1", "flat_map#2", "echo", "run#4"]);
    let flat = report.stage("flat_map#2").unwrap();
    assert_eq!((flat.items_in, flat.items_out), (50, 100));
    assert_eq!((report.pulled, report.dropped, report.delivered), (100, 50, 100));
    assert_eq!(report.unfinalized, 0);
    assert!(report.to_string().contains("echo"));
}

#[test]
#[should_panic(expected = "already named `twice`")]
fn duplicate_stage_names_are_refused_when_building() {
    let _ = Pipeline::from_iter(0..1).name("twice").map(|x| x).name("twice");
}

#[test]
#[should_panic(expected = "concurrency must be at least 1")]
fn zero_concurrency_is_refused_when_building() {
    let _ = Pipeline::from_iter(0..1)
        .then(|x| async move { x })
        .concurrency(0);
}

/// Guards against a race: the run used to be judged (and items declared
/// lost) as soon as the tasks ended, while output still waited in the
/// results channel for a consumer that reads late.
#[tokio::test(start_paused = true)]
async fn a_slow_results_consumer_is_not_mistaken_for_lost_items() {
    use futures::StreamExt;
    let mut results = Pipeline::from_iter(0..100u32).map(|x| x + 1).results();
    assert_eq!(results.next().await.unwrap().unwrap(), 1);
    tokio::time::sleep(Duration::from_secs(1)).await; // the pipeline ends meanwhile
    let rest: Vec<u32> = results.map(Result::unwrap).collect().await;
    assert_eq!(rest, (2..=100).collect::<Vec<_>>());
}

/// A serial `then` runs the items the channel after it has room for in a
/// counted loop, and the rest one by one: pending and failing items in
/// either part, chunks that end mid-way and a chunk smaller than the
/// capacity keep every item in order and the counts exact.
#[tokio::test(start_paused = true)]
async fn a_serial_then_keeps_order_and_counts_with_pending_and_failing_items_anywhere_in_a_chunk() {
    for (capacity, chunk) in [(64, 64), (64, 7), (10, 4), (1, 1)] {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let report = PipelineBuilder::new()
            .capacity(capacity)
            .chunk_size(chunk)
            .from_iter(0..3000u64)
            .try_then(|x| async move {
                if x % 97 == 5 {
                    tokio::task::yield_now().await;
                }
                if x % 50 == 3 {
                    Err("every fiftieth")
                } else {
                    Ok(x * 2)
                }
            })
            .on_error(weir::ErrorPolicy::Skip)
            .name("double")
            .then(|x| async move { x + 1 })
            .for_each(move |x| sink.lock().unwrap().push(x))
            .run()
            .await
            .unwrap();
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        let want: Vec<u64> = (0..3000u64).filter(|x| x % 50 != 3).map(|x| x * 2 + 1).collect();
        assert_eq!(seen, want, "capacity {capacity}, chunk {chunk}");
        let double = report.stage("double").unwrap();
        assert_eq!(
            (double.items_in, double.items_out, double.failed),
            (3000, 2940, 60)
        );
        assert_eq!(
            (report.delivered, report.failed, report.unfinalized),
            (2940, 60, 0)
        );
    }
}
