//! The ends of a pipeline: `count` beside `collect` and `fold` (seed
//! 002's collect, count, drain), and `for_each_async` with closures that
//! can and cannot fail.

mod common;

use common::Ledger;
use weir::{ErrorKind, ErrorPolicy, Pipeline, Status};

/// Guards against `count` counting source items instead of the items that
/// reach the end (a flat_map adds, a filter removes), and against it
/// finalizing anything but as delivered.
#[tokio::test]
async fn count_counts_the_items_that_reach_the_end_and_delivers_them() {
    let ledger = Ledger::default();
    let n = Pipeline::from_acked(ledger.source(10))
        .filter(|x| x % 2 == 0)
        .flat_map(|x| [x, x])
        .count()
        .await
        .unwrap();
    assert_eq!(n, 10); // five even numbers, each twice
    ledger.assert_exactly_once();
    assert_eq!(ledger.count(Status::Delivered), 5);
    assert_eq!(ledger.count(Status::Dropped), 5);
}

/// The same pipeline, counted and collected, agree, empty or not.
#[tokio::test]
async fn count_agrees_with_collect() {
    let p = || Pipeline::from_iter(0..1000u32).filter(|x| x % 3 == 0);
    let collected = p().collect().await.unwrap().len() as u64;
    assert_eq!(p().count().await.unwrap(), collected);
    assert_eq!(Pipeline::from_iter(Vec::<u8>::new()).count().await.unwrap(), 0);
}

/// A pipeline that ends in a sink passes nothing on: `count` is what the
/// sink delivered, not 0.
#[tokio::test]
async fn count_of_a_pipeline_ending_in_a_sink_is_what_the_sink_delivered() {
    let n = Pipeline::from_iter(0..5)
        .try_for_each(|x| if x == 3 { Err("refused") } else { Ok(()) })
        .on_error(ErrorPolicy::Skip)
        .count()
        .await
        .unwrap();
    assert_eq!(n, 4);
}

/// A fail-fast failure is the count's error, as it is `collect`'s.
#[tokio::test]
async fn count_returns_a_fail_fast_error() {
    let err = Pipeline::from_iter(["1", "x"])
        .try_map(|s| s.parse::<u8>())
        .count()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stage);
}

/// Guards against `for_each_async` needing `Ok::<_, Infallible>(())` from
/// a closure that cannot fail: a future of `()` is a write that succeeds.
#[tokio::test]
async fn for_each_async_takes_a_closure_that_cannot_fail() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let report = Pipeline::from_iter(0..4)
        .for_each_async(move |x| {
            let s = s.clone();
            async move { s.lock().unwrap().push(x) }
        })
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.failed), (4, 0));
    assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 3]);
}
