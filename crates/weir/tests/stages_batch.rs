//! Batching, unbatching and aggregation: boundaries, timers on a paused
//! clock, drain, failures, and exact finalization of every source item.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Ledger;
use futures::StreamExt;
use tokio::time::Instant;
use weir::aggregate::{self, Stats};
use weir::{ErrorPolicy, Outcome, Pipeline, Shutdown, Status};

const LONG: Duration = Duration::from_secs(3600);

type Recorded<T> = Arc<Mutex<Vec<T>>>;

fn recorder<T>() -> Recorded<T> {
    Arc::new(Mutex::new(Vec::new()))
}

#[track_caller]
fn all_delivered(ledger: &Ledger) {
    let statuses = ledger.assert_exactly_once();
    assert!(statuses.values().all(|s| *s == Status::Delivered), "{statuses:?}");
}

/// Items `0..n`, one every `every`, acknowledged to `ledger`.
fn slow_acked(
    ledger: &Ledger,
    n: u64,
    every: Duration,
) -> impl futures::Stream<Item = weir::Acked<u64>> + Send + 'static {
    // The wait comes before the pull, so that a drain or an abort never
    // drops an item the pipeline has not taken in.
    futures::stream::unfold(Box::pin(ledger.source(n)), move |mut items| async move {
        tokio::time::sleep(every).await;
        items.next().await.map(|x| (x, items))
    })
}

#[tokio::test]
async fn exact_multiples_make_full_batches_only() {
    let ledger = Ledger::default();
    let seen = recorder();
    let s = seen.clone();
    let report = Pipeline::from_acked(ledger.source(12))
        .batch(4, LONG)
        .for_each(move |b| s.lock().unwrap().push(b))
        .run()
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9, 10, 11]]
    );
    assert_eq!((report.pulled, report.delivered, report.unfinalized), (12, 3, 0));
    let stage = report.stage("batch#1").unwrap();
    assert_eq!((stage.items_in, stage.items_out), (12, 3));
    all_delivered(&ledger);
}

#[tokio::test]
async fn the_partial_batch_is_emitted_at_the_end_of_the_stream() {
    let ledger = Ledger::default();
    let seen = recorder();
    let s = seen.clone();
    let report = Pipeline::from_acked(ledger.source(10))
        .batch(4, LONG)
        .for_each(move |b| s.lock().unwrap().push(b.len()))
        .run()
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [4, 4, 2]);
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(report.unfinalized, 0);
    all_delivered(&ledger);
}

#[tokio::test]
async fn batches_of_one_and_a_single_item() {
    let ones = Pipeline::from_iter(0..3).batch(1, LONG).collect().await.unwrap();
    assert_eq!(ones, [vec![0], vec![1], vec![2]]);
    let single = Pipeline::from_iter([7]).batch(100, LONG).collect().await.unwrap();
    assert_eq!(single, [vec![7]]);
}

#[tokio::test]
async fn empty_input_emits_no_batch() {
    let out = Pipeline::from_iter(Vec::<u8>::new())
        .batch(3, LONG)
        .collect()
        .await
        .unwrap();
    assert!(out.is_empty());
}

#[tokio::test]
async fn batches_keep_chunk_boundaries_out_of_the_result() {
    // Batches larger than a chunk, and not a divisor of it.
    let out = weir::PipelineBuilder::new()
        .chunk_size(8)
        .capacity(16)
        .from_iter(0..100u32)
        .batch(13, LONG)
        .collect()
        .await
        .unwrap();
    assert!(out[..7].iter().all(|b| b.len() == 13));
    assert_eq!(out[7].len(), 9);
    assert_eq!(out.concat(), (0..100).collect::<Vec<_>>());
}

#[test]
#[should_panic(expected = "Pipeline::batch: max_items must be at least 1")]
fn a_batch_of_zero_items_is_refused_when_built() {
    let _ = Pipeline::from_iter(0..3).batch(0, LONG);
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_emitted_when_its_oldest_item_has_waited_long_enough() {
    let ledger = Ledger::default();
    let seen = recorder();
    let s = seen.clone();
    let start = Instant::now();
    // Items at 100, 200, … 1000 ms; a batch is due 250 ms after it opens.
    let report = Pipeline::from_acked(slow_acked(&ledger, 10, Duration::from_millis(100)))
        .batch(10, Duration::from_millis(250))
        .for_each(move |b| s.lock().unwrap().push((b, start.elapsed())))
        .run()
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    let sizes: Vec<_> = seen.iter().map(|(b, _)| b.len()).collect();
    assert_eq!(sizes, [3, 3, 3, 1]);
    let first = seen[0].1;
    assert!(
        first >= Duration::from_millis(350) && first < Duration::from_millis(400),
        "{first:?}"
    );
    assert_eq!(report.unfinalized, 0);
    all_delivered(&ledger);
}

#[tokio::test(start_paused = true)]
async fn the_timer_fires_while_no_input_arrives() {
    let seen = recorder();
    let s = seen.clone();
    let handle = Pipeline::intake::<u32>()
        .batch(100, Duration::from_millis(50))
        .for_each(move |b| s.lock().unwrap().push(b))
        .start();
    handle.push_batch([1, 2, 3]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(seen.lock().unwrap().is_empty(), "not due yet");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(*seen.lock().unwrap(), [vec![1, 2, 3]]);
    handle.push(4).await.unwrap();
    let report = handle.shutdown(Shutdown::Drain, LONG).await.unwrap();
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(*seen.lock().unwrap(), [vec![1, 2, 3], vec![4]]);
}

#[tokio::test(start_paused = true)]
async fn drain_flushes_the_partial_batch_and_finalizes_everything() {
    let ledger = Ledger::default();
    let seen = recorder();
    let s = seen.clone();
    let handle = Pipeline::from_acked(slow_acked(&ledger, u64::MAX, Duration::from_millis(10)))
        .batch(1000, LONG)
        .for_each(move |b| s.lock().unwrap().push(b))
        .start();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = handle.shutdown(Shutdown::Drain, LONG).await.unwrap();
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.unfinalized, 0);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "one partial batch");
    assert_eq!(seen[0], (0..ledger.pulled()).collect::<Vec<_>>());
    assert!(ledger.pulled() > 10);
    all_delivered(&ledger);
}

#[tokio::test(start_paused = true)]
async fn abort_reports_the_items_of_the_open_batch_as_aborted() {
    let ledger = Ledger::default();
    let handle = Pipeline::from_acked(slow_acked(&ledger, u64::MAX, Duration::from_millis(10)))
        .batch(1000, LONG)
        .start();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = handle.shutdown(Shutdown::Abort, LONG).await.unwrap();
    assert_eq!(report.outcome, Outcome::Aborted);
    let statuses = ledger.assert_exactly_once();
    assert!(statuses.values().all(|s| *s == Status::Aborted));
    assert_eq!(report.unfinalized, ledger.pulled());
}

#[tokio::test]
async fn a_failed_batch_fails_each_of_its_items() {
    let ledger = Ledger::default();
    let report = Pipeline::from_acked(ledger.source(10))
        .batch(4, LONG)
        .for_each_async(|b: Vec<u64>| async move {
            if b.contains(&5) {
                Err("rejected")
            } else {
                Ok(())
            }
        })
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.failed, report.unfinalized), (2, 1, 0));
    let statuses = ledger.assert_exactly_once();
    for (id, status) in statuses {
        let want = if (4..8).contains(&id) {
            Status::Failed
        } else {
            Status::Delivered
        };
        assert_eq!(status, want, "item {id}");
    }
}

#[tokio::test]
async fn batch_then_unbatch_preserves_order_and_count() {
    let ledger = Ledger::default();
    let seen = recorder();
    let s = seen.clone();
    let report = weir::PipelineBuilder::new()
        .chunk_size(64)
        .from_acked(ledger.source(1000))
        .batch(7, LONG)
        .unbatch()
        .for_each(move |x| s.lock().unwrap().push(x))
        .run()
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), (0..1000).collect::<Vec<_>>());
    assert_eq!(
        (report.pulled, report.delivered, report.unfinalized),
        (1000, 1000, 0)
    );
    all_delivered(&ledger);
}

#[tokio::test]
async fn one_failed_element_fails_its_whole_batch() {
    let ledger = Ledger::default();
    let report = Pipeline::from_acked(ledger.source(9))
        .batch(3, LONG)
        .unbatch()
        .try_map(|x| if x == 4 { Err("bad") } else { Ok(x) })
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!(report.unfinalized, 0);
    for (id, status) in ledger.assert_exactly_once() {
        let want = if (3..6).contains(&id) {
            Status::Failed
        } else {
            Status::Delivered
        };
        assert_eq!(status, want, "item {id}");
    }
}

#[tokio::test]
async fn flatten_skips_empty_items_as_dropped() {
    let report = Pipeline::from_iter([vec![1, 2], vec![], vec![3]])
        .flatten()
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dropped, report.unfinalized), (3, 1, 0));
    let out = Pipeline::from_iter([vec![1, 2], vec![], vec![3]])
        .flatten()
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [1, 2, 3]);
}

fn stats_by_id() -> Stats<impl Fn(&u64) -> f64 + Send + 'static> {
    Stats::by(|x: &u64| *x as f64)
}

#[tokio::test]
async fn count_windows_summarize_each_run_of_items() {
    let ledger = Ledger::default();
    let out = Pipeline::from_acked(ledger.source(10))
        .aggregate_count(4, stats_by_id())
        .collect()
        .await
        .unwrap();
    let got: Vec<_> = out
        .iter()
        .map(|s| (s.count, s.min, s.max, s.mean, s.variance))
        .collect();
    assert_eq!(
        got,
        [
            (4, 0.0, 3.0, 1.5, 1.25),
            (4, 4.0, 7.0, 5.5, 1.25),
            (2, 8.0, 9.0, 8.5, 0.25)
        ]
    );
    all_delivered(&ledger);
}

#[tokio::test]
async fn the_whole_stream_aggregates_to_one_output() {
    let ledger = Ledger::default();
    let report = Pipeline::from_acked(ledger.source(100))
        .aggregate(aggregate::Sum)
        .inspect(|sum| assert_eq!(*sum, 4950))
        .run()
        .await
        .unwrap();
    assert_eq!((report.pulled, report.delivered, report.unfinalized), (100, 1, 0));
    let stage = report.stage("aggregate#1").unwrap();
    assert_eq!((stage.items_in, stage.items_out), (100, 1));
    all_delivered(&ledger);
}

#[tokio::test]
async fn empty_input_aggregates_to_nothing() {
    let none = || Pipeline::from_iter(Vec::<u64>::new());
    assert!(none()
        .aggregate(aggregate::Count)
        .collect()
        .await
        .unwrap()
        .is_empty());
    assert!(none()
        .aggregate_count(3, aggregate::Count)
        .collect()
        .await
        .unwrap()
        .is_empty());
    assert!(none()
        .aggregate_time(LONG, aggregate::Count)
        .collect()
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_panicking_aggregator_fails_its_window_and_starts_afresh() {
    let ledger = Ledger::default();
    let sums = recorder();
    let s = sums.clone();
    let summing = aggregate::fold(0, |a, x: u64| {
        assert!(x != 4, "no fours");
        a + x
    });
    let report = Pipeline::from_acked(ledger.source(10))
        .aggregate_count(3, summing)
        .on_error(ErrorPolicy::Skip)
        .for_each(move |sum| s.lock().unwrap().push(sum))
        .run()
        .await
        .unwrap();
    // 0 1 2 | 3 4 (fails) | 5 6 7 | 8 9
    assert_eq!(*sums.lock().unwrap(), [3, 18, 17]);
    assert_eq!((report.failed, report.unfinalized), (2, 0));
    for (id, status) in ledger.assert_exactly_once() {
        let want = if id == 3 || id == 4 {
            Status::Failed
        } else {
            Status::Delivered
        };
        assert_eq!(status, want, "item {id}");
    }
}

#[tokio::test(start_paused = true)]
async fn time_windows_summarize_what_arrived_in_each_span() {
    let ledger = Ledger::default();
    // Items at 100, 200, … 1000 ms; windows end at 333, 666, 999, 1332 ms.
    let out = Pipeline::from_acked(slow_acked(&ledger, 10, Duration::from_millis(100)))
        .aggregate_time(Duration::from_millis(333), stats_by_id())
        .collect()
        .await
        .unwrap();
    let got: Vec<_> = out.iter().map(|s| (s.count, s.mean)).collect();
    assert_eq!(got, [(3, 1.0), (3, 4.0), (3, 7.0), (1, 9.0)]);
    all_delivered(&ledger);
}

#[tokio::test(start_paused = true)]
async fn a_time_window_closes_while_no_input_arrives_and_skips_idle_spans() {
    let seen = recorder();
    let s = seen.clone();
    let handle = Pipeline::intake::<u64>()
        .aggregate_time(Duration::from_millis(100), aggregate::Count)
        .for_each(move |n| s.lock().unwrap().push(n))
        .start();
    handle.push_batch([1, 2]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(*seen.lock().unwrap(), [2]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(*seen.lock().unwrap(), [2], "empty windows emit nothing");
    handle.push(3).await.unwrap();
    let report = handle.shutdown(Shutdown::Drain, LONG).await.unwrap();
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(*seen.lock().unwrap(), [2, 1], "drain emits the open window");
    assert_eq!(report.unfinalized, 0);
}

#[tokio::test(start_paused = true)]
async fn drain_closes_the_open_time_window_and_finalizes_everything() {
    let ledger = Ledger::default();
    let total = recorder();
    let t = total.clone();
    let handle = Pipeline::from_acked(slow_acked(&ledger, u64::MAX, Duration::from_millis(10)))
        .aggregate_time(LONG, aggregate::Count)
        .for_each(move |n| t.lock().unwrap().push(n))
        .start();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = handle.shutdown(Shutdown::Drain, LONG).await.unwrap();
    assert_eq!((report.outcome, report.unfinalized), (Outcome::Drained, 0));
    assert_eq!(*total.lock().unwrap(), [ledger.pulled()]);
    all_delivered(&ledger);
}

#[test]
#[should_panic(expected = "Pipeline::aggregate_count: a window must hold at least 1 item")]
fn a_count_window_of_zero_items_is_refused_when_built() {
    let _ = Pipeline::from_iter(0..3).aggregate_count(0, aggregate::Count);
}

#[test]
#[should_panic(expected = "Pipeline::aggregate_time: a window must last longer than zero")]
fn a_time_window_of_zero_length_is_refused_when_built() {
    let _ = Pipeline::from_iter(0..3).aggregate_time(Duration::ZERO, aggregate::Count);
}
