//! The Ctrl-C helper: the first SIGINT drains, the second aborts. A test
//! binary of its own, because it sends real signals to its own process.
//! Signal delivery is the OS's, so this test uses the real clock (with
//! generous limits, asserting no durations).

use std::time::Duration;

use weir::{Outcome, Pipeline, PipelineBuilder};

fn sigint() {
    let status = std::process::Command::new("kill")
        .args(["-INT", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_ctrl_c_drains_second_aborts() {
    // A pipeline that drains quickly: one SIGINT ends it cleanly.
    let handle = PipelineBuilder::new()
        .capacity(16)
        .chunk_size(4)
        .from_stream(futures::stream::repeat(1u8))
        .then(|x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        })
        .start();
    handle.controller().on_ctrl_c();
    tokio::time::sleep(Duration::from_millis(200)).await; // the listener is installed
    sigint();
    let report = tokio::time::timeout(Duration::from_secs(30), handle.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.unfinalized, 0);

    // A pipeline whose in-flight item never finishes: the drain hangs, the
    // second SIGINT aborts it.
    let handle = Pipeline::from_iter(0..10u32)
        .then(|_| std::future::pending::<u32>())
        .start();
    handle.controller().on_ctrl_c();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sigint();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!handle.is_finished(), "a drain cannot finish a stuck item");
    sigint();
    let report = tokio::time::timeout(Duration::from_secs(30), handle.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.outcome, Outcome::Aborted);
    assert!(report.unfinalized >= 1);
}
