//! Ordering of concurrent stages (paused clock: delays are exact).

use std::time::Duration;

use weir::Pipeline;

/// A deterministic pseudo-random delay per item (a small LCG).
fn delay(i: u64) -> Duration {
    Duration::from_millis(
        (i.wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 33)
            % 50,
    )
}

#[tokio::test(start_paused = true)]
async fn ordered_concurrent_stage_keeps_input_order_under_random_delays() {
    let out = Pipeline::from_iter(0..500u64)
        .then(|i| async move {
            tokio::time::sleep(delay(i)).await;
            i
        })
        .concurrency(16)
        .ordered()
        .collect()
        .await
        .unwrap();
    assert_eq!(out, (0..500).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn ordered_is_the_default_and_blocking_stages_keep_order_too() {
    let out = Pipeline::from_iter(0..200u64)
        .then(|i| async move {
            tokio::time::sleep(delay(i)).await;
            i
        })
        .concurrency(8)
        .blocking(|i| i * 2)
        .concurrency(4)
        .collect()
        .await
        .unwrap();
    assert_eq!(out, (0..200).map(|i| i * 2).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn unordered_emits_in_completion_order() {
    // Everything fits in the window, so completion order is delay order.
    let delays = [50u64, 10, 40, 20, 30, 0];
    let out = Pipeline::from_iter(delays)
        .then(|ms| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ms
        })
        .concurrency(8)
        .unordered()
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [0, 10, 20, 30, 40, 50]);
}

#[tokio::test(start_paused = true)]
async fn unordered_with_a_small_window_never_exceeds_its_concurrency() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let out = Pipeline::from_iter(0..300u64)
        .then(move |i| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(delay(i)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                i
            }
        })
        .concurrency(5)
        .unordered()
        .collect()
        .await
        .unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 5);
    let mut sorted = out.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..300).collect::<Vec<_>>());
    assert_ne!(
        out, sorted,
        "with random delays, completion order differs from input order"
    );
}

#[tokio::test(start_paused = true)]
async fn ordered_window_holds_back_at_most_concurrency_items() {
    // Item 0 is slow; the others finish at once. An ordered stage with
    // concurrency 4 must not start item 4 before item 0 is emitted.
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let started = Arc::new(AtomicU64::new(0));
    let s = started.clone();
    let handle = tokio::spawn(
        Pipeline::from_iter(0..10u64)
            .then(move |i| {
                s.fetch_add(1, Ordering::SeqCst);
                async move {
                    if i == 0 {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                    }
                    i
                }
            })
            .concurrency(4)
            .collect(),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(started.load(Ordering::SeqCst), 4);
    assert_eq!(handle.await.unwrap().unwrap(), (0..10).collect::<Vec<_>>());
}

/// Guards the windowed driver's fast path: futures that are ready at once
/// are routed without entering the window, which must not let them pass
/// earlier items still in flight in an ordered stage.
#[tokio::test(start_paused = true)]
async fn ordered_stage_keeps_order_when_ready_futures_follow_pending_ones() {
    use futures::future::{ready, Either};
    let out = Pipeline::from_iter(0..600u64)
        .then(|i| {
            if i % 3 == 0 {
                Either::Left(async move {
                    tokio::time::sleep(delay(i) + Duration::from_millis(1)).await;
                    i
                })
            } else {
                Either::Right(ready(i))
            }
        })
        .concurrency(8)
        .collect()
        .await
        .unwrap();
    assert_eq!(out, (0..600).collect::<Vec<_>>());
}

/// The same fast path in an unordered stage: ready items are emitted at
/// once, ahead of slower pending ones, and none is lost or doubled.
#[tokio::test(start_paused = true)]
async fn unordered_stage_emits_ready_futures_ahead_of_pending_ones() {
    use futures::future::{ready, Either};
    let out = Pipeline::from_iter(0..600u64)
        .then(|i| {
            if i % 3 == 0 {
                Either::Left(async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    i
                })
            } else {
                Either::Right(ready(i))
            }
        })
        .concurrency(8)
        .unordered()
        .collect()
        .await
        .unwrap();
    let mut sorted = out.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..600).collect::<Vec<_>>());
    // Item 1 is ready at once; item 0 sleeps: 1 comes out first.
    assert_eq!(out[0], 1);
    assert!(out.iter().position(|&i| i == 0).unwrap() > 0);
}
