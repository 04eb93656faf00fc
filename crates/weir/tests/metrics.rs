//! Live metrics: latency percentiles, queue depth, in flight, throughput,
//! utilization and the bottleneck.

use std::time::Duration;

use weir::{Pipeline, PipelineBuilder, Shutdown};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test(start_paused = true)]
async fn percentiles_match_a_known_latency_distribution() {
    // Item i sleeps i ms: a uniform distribution over 1..=1000 ms.
    let report = Pipeline::from_iter(1..=1000u64)
        .then(|i| async move {
            tokio::time::sleep(Duration::from_millis(i)).await;
            i
        })
        .concurrency(50)
        .unordered()
        .run()
        .await
        .unwrap();
    let l = report.stages[1].latency.expect("a concurrent stage is timed");
    assert_eq!(l.count, 1000);
    let near = |d: Duration, want: f64| (ms(d) - want).abs() <= want * 0.01 + 1.0;
    assert!(near(l.p50, 500.0), "{l:?}");
    assert!(near(l.p95, 950.0), "{l:?}");
    assert!(near(l.p99, 990.0), "{l:?}");
    assert!(near(l.max, 1000.0), "{l:?}");
    // Fused stages are not timed per item.
    assert!(report.stages[0].latency.is_none());
}

#[tokio::test(start_paused = true)]
async fn the_slow_stage_is_named_the_bottleneck() {
    let report = PipelineBuilder::new()
        .capacity(64)
        .chunk_size(16)
        .from_iter(0..2000u64)
        .then(|x| async move { x + 1 })
        .name("fast-a")
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        })
        .name("slow")
        .then(|x| async move { x })
        .name("fast-b")
        .run()
        .await
        .unwrap();
    assert_eq!(report.bottleneck.as_deref(), Some("slow"), "{report}");
    let u = |name: &str| report.stage(name).unwrap().utilization.unwrap();
    assert!(u("slow").busy > 0.9, "{:?}", u("slow"));
    // Upstream waits for room, downstream waits for input.
    assert!(u("fast-a").backpressured > 0.9, "{:?}", u("fast-a"));
    assert!(u("fast-b").idle > 0.9, "{:?}", u("fast-b"));
    for s in ["fast-a", "slow", "fast-b"] {
        let u = u(s);
        assert!((u.busy + u.backpressured + u.idle - 1.0).abs() < 1e-9);
    }
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_shows_queue_depth_in_flight_and_active_work() {
    let handle = PipelineBuilder::new()
        .capacity(32)
        .chunk_size(8)
        .from_iter(0..1000u64)
        .then(|x| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            x
        })
        .concurrency(4)
        .start();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let m = handle.metrics();
    let then = &m.stages[1];
    assert_eq!(then.queue_capacity, Some(32));
    assert!(then.queue_depth.unwrap() >= 24, "{then:?}");
    assert_eq!(then.active, Some(4));
    // Four in the window, plus the rest of the chunk the driver holds.
    assert!(then.in_flight >= 4 && then.in_flight <= 4 + 8, "{then:?}");
    assert_eq!(
        m.stages[0].queue_capacity, None,
        "the source has no input channel"
    );
    let r = handle
        .shutdown(Shutdown::Abort, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(r.unfinalized > 0);
}

#[tokio::test(start_paused = true)]
async fn throughput_is_measured_over_a_recent_window() {
    // 100 items/s for 20 s, then 10 items/s: the window follows the change.
    let items = futures::stream::unfold(0u64, |i| async move {
        let pause = if i < 2000 { 10 } else { 100 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
        Some((i, i + 1))
    });
    let handle = PipelineBuilder::new().chunk_size(1).from_stream(items).start();
    let mut last = 0.0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        last = handle.metrics().stages[0].throughput;
    }
    assert!((last - 10.0).abs() < 2.0, "after the slowdown: {last}");
    handle
        .shutdown(Shutdown::Abort, Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_report_table_shows_latency_and_busy_columns() {
    let r = Pipeline::from_iter(0..10u64)
        .then(|x| async move { x })
        .run()
        .await
        .unwrap();
    let table = r.to_string();
    assert!(table.contains("p99") && table.contains("busy"), "{table}");
    assert!(table.contains("bottleneck: "), "{table}");
}

#[tokio::test(start_paused = true)]
async fn end_to_end_latency_covers_the_whole_trip() {
    // Every item waits 10 ms in one stage and 5 ms in the sink.
    let report = PipelineBuilder::new()
        .from_iter(0..640u64)
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            x
        })
        .concurrency(64)
        .for_each_async(|_| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, std::io::Error>(())
        })
        .run()
        .await
        .unwrap();
    let l = report.latency.expect("sampled end-to-end latency");
    assert_eq!(l.count, 10, "one item in 64");
    assert!(l.p50 >= Duration::from_millis(15), "{l:?}");
    assert!(report.stage("sink#2").unwrap().latency.unwrap().p50 >= Duration::from_millis(5));
}
