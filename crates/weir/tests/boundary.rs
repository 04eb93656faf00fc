//! `Pipeline::boundary`: a fused segment split into tasks.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Ledger;
use tokio::sync::Semaphore;
use weir::{ErrorPolicy, Outcome, PipelineBuilder, Shutdown, Status};

const CAPACITY: usize = 64;
const CHUNK: usize = 16;

/// Small channels and chunks, so that runs span many chunks and rounds.
fn small() -> PipelineBuilder {
    PipelineBuilder::new().capacity(CAPACITY).chunk_size(CHUNK)
}

/// [`small`], skipping failed items.
fn small_skipping() -> PipelineBuilder {
    small().error_policy(ErrorPolicy::Skip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boundaries_keep_order_through_every_loop_of_the_forwarder() {
    // A flat_map after a boundary has no room to tell (one at a time), a
    // map into a channel has a chunk's room (counted), a fold all of it.
    let out = small()
        .from_iter(0..50_000u64)
        .map(|x| x * 2)
        .boundary()
        .flat_map(|x| [x, x + 1])
        .boundary()
        .filter(|x| x % 3 != 0)
        .boundary()
        .collect()
        .await
        .unwrap();
    let want: Vec<u64> = (0..100_000u64).filter(|x| x % 3 != 0).collect();
    assert_eq!(out, want);
}

#[tokio::test(start_paused = true)]
async fn a_boundary_is_a_stage_with_counts_and_a_measured_queue() {
    let r = PipelineBuilder::new()
        .capacity(CAPACITY)
        .from_iter(0..1_000u64)
        .filter(|x| x % 4 != 0)
        .boundary()
        .name("split")
        .map(|x| x + 1)
        .run()
        .await
        .unwrap();
    let split = r.stage("split").unwrap();
    assert_eq!(split.kind, "boundary");
    assert_eq!((split.items_in, split.items_out), (750, 750));
    assert_eq!((split.dropped, split.failed), (0, 0));
    assert_eq!(split.queue_capacity, Some(CAPACITY as u64));
    assert_eq!((r.delivered, r.dropped, r.unfinalized), (750, 250, 0));
    assert_eq!(r.stages[2].name, "split");
    assert_eq!(r.stages[3].name, "map#3");
}

#[tokio::test(start_paused = true)]
async fn a_stalled_segment_after_a_boundary_stops_the_source_at_the_bound() {
    let pulled = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let run = tokio::spawn(
        small()
            .from_iter(common::counted(100_000, pulled.clone()))
            .boundary()
            .map(|x| x + 1)
            .for_each_async(common::gated(gate.clone()))
            .run(),
    );
    // Two channels (source → boundary, boundary → sink), each its capacity
    // plus a chunk at the sender and one at the receiver.
    let bound = 2 * (CAPACITY + 2 * CHUNK) as u64;
    common::assert_stalls(&pulled, bound, CAPACITY as u64).await;
    gate.add_permits(usize::MAX >> 4);
    let report = run.await.unwrap().unwrap();
    assert_eq!((report.delivered, report.unfinalized), (100_000, 0));
}

#[tokio::test(start_paused = true)]
async fn a_panic_after_a_boundary_fails_that_item_in_its_stage() {
    let ledger = Ledger::default();
    let r = PipelineBuilder::new()
        .chunk_size(CHUNK)
        .error_policy(ErrorPolicy::Skip)
        .from_acked(ledger.source(100))
        .boundary()
        .map(|x| if x == 42 { panic!("no 42") } else { x })
        .name("picky")
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.failed), (99, 1));
    assert_eq!(r.stage("picky").unwrap().failed, 1);
    let statuses = ledger.assert_exactly_once();
    assert_eq!(statuses[&42], Status::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_take_after_a_boundary_stops_the_source() {
    let pulled = Arc::new(AtomicU64::new(0));
    let out = small()
        .from_iter(common::counted(u64::MAX, pulled.clone()))
        .boundary()
        .take(10)
        .collect()
        .await
        .unwrap();
    assert_eq!(out, (0..10).collect::<Vec<_>>());
    let bound = (CAPACITY + 3 * CHUNK) as u64;
    let got = pulled.load(Ordering::SeqCst);
    assert!(
        got <= bound,
        "pulled {got} of an endless source after take(10) had all"
    );
}

#[tokio::test(start_paused = true)]
async fn drain_and_abort_finalize_every_item_across_boundaries() {
    for shutdown in [Shutdown::Drain, Shutdown::Abort] {
        let ledger = Ledger::default();
        let handle = small()
            .from_acked(ledger.source(10_000))
            .boundary()
            .then(|x| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                x
            })
            .boundary()
            .map(|x| x + 1)
            .start();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = handle.shutdown(shutdown, Duration::from_secs(5)).await.unwrap();
        let statuses = ledger.assert_exactly_once();
        let lost = statuses.values().filter(|s| **s == Status::Aborted).count() as u64;
        assert_eq!(statuses.len() as u64, ledger.pulled());
        match shutdown {
            Shutdown::Drain => {
                assert_eq!(r.outcome, Outcome::Drained);
                assert_eq!((lost, r.unfinalized), (0, 0));
                assert!(
                    r.delivered > 0 && r.delivered < 10_000,
                    "delivered {}",
                    r.delivered
                );
            }
            Shutdown::Abort => {
                assert_eq!(r.outcome, Outcome::Aborted);
                assert!(lost > 0, "an abort mid-run leaves items in flight");
                assert_eq!(r.unfinalized, lost);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_inside_bulk_runs_fail_only_their_items_in_their_own_stages() {
    // A range source and a boundary both push whole runs through fused
    // maps into a channel; a panic there must fail that one item in the
    // stage whose closure panicked (the inner map sees the outer one's
    // panic go by and must not claim it), and the run go on in order.
    use futures::StreamExt;
    use weir::EventKind;
    let events: Vec<_> = small_skipping()
        .from_iter(0..5_000u64)
        .map(|x| if x % 1_000 == 7 { panic!("first {x}") } else { x })
        .name("first")
        .map(|x| if x % 1_000 == 8 { panic!("second {x}") } else { x })
        .name("second")
        .boundary()
        .map(|x| if x % 1_000 == 9 { panic!("third {x}") } else { x })
        .name("third")
        .events()
        .collect()
        .await;
    let mut failed: Vec<(String, u64, String)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ItemFailed {
                stage,
                item,
                error_type,
                ..
            } => Some((stage.clone(), *item, error_type.clone())),
            _ => None,
        })
        .collect();
    failed.sort();
    let mut want: Vec<(String, u64, String)> = Vec::new();
    for (stage, rest) in [("first", 7), ("second", 8), ("third", 9)] {
        want.extend((0..5).map(|k| (stage.to_owned(), k * 1_000 + rest, "panic".to_owned())));
    }
    want.sort();
    assert_eq!(failed, want);
    let report = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::PipelineFinished { report, .. } => Some(report.clone()),
            _ => None,
        })
        .expect("a finished event");
    assert_eq!(
        (report.delivered, report.failed, report.unfinalized),
        (4_985, 15, 0)
    );
    for stage in ["first", "second", "third"] {
        assert_eq!(report.stage(stage).unwrap().failed, 5, "{stage}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_map_in_a_bulk_run_keeps_the_order_of_the_rest() {
    let out = small_skipping()
        .from_iter(0..2_000u64)
        .map(|x| if x % 3 == 0 { panic!("thirds") } else { x * 2 })
        .boundary()
        .map(|x| if x % 10 == 4 { panic!("fours") } else { x + 1 })
        .collect()
        .await
        .unwrap();
    let want: Vec<u64> = (0..2_000u64)
        .filter(|x| x % 3 != 0)
        .map(|x| x * 2)
        .filter(|x| x % 10 != 4)
        .map(|x| x + 1)
        .collect();
    assert_eq!(out, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_between_boundaries_fails_that_acknowledged_item_once() {
    // The map runs inside the forwarder's run into the next channel, with
    // tokens that own acknowledgements: the panicking item's token must
    // reach the stage (Failed), not be dropped by the unwinding (Aborted).
    let ledger = Ledger::default();
    let r = small_skipping()
        .from_acked(ledger.source(1_000))
        .boundary()
        .map(|x| if x % 100 == 42 { panic!("no {x}") } else { x })
        .name("picky")
        .boundary()
        .run()
        .await
        .unwrap();
    assert_eq!((r.delivered, r.failed, r.unfinalized), (990, 10, 0));
    assert_eq!(r.stage("picky").unwrap().failed, 10);
    assert_eq!(ledger.pulled(), 1_000);
    ledger.assert_each(|id| id % 100 == 42, Status::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_into_a_map_before_a_filter_fails_that_acknowledged_item_once() {
    // A map whose next step takes items one at a time (a filter) takes a
    // run one item at a time, each under its own panic guard, not as one
    // guarded run: the panicking item's token must still reach the stage
    // (Failed, not Aborted), the rest go on in order, each finalized once.
    let ledger = Ledger::default();
    let out = small_skipping()
        .from_acked(ledger.source(1_000))
        .boundary()
        .map(|x| if x % 100 == 42 { panic!("no {x}") } else { x })
        .name("picky")
        .filter(|x| x % 2 == 0)
        .collect()
        .await
        .unwrap();
    let want: Vec<u64> = (0..1_000u64).filter(|x| x % 100 != 42 && x % 2 == 0).collect();
    assert_eq!(out, want);
    assert_eq!(ledger.pulled(), 1_000);
    for (id, got) in ledger.assert_exactly_once() {
        let want = match id {
            _ if id % 100 == 42 => Status::Failed,
            _ if id % 2 == 1 => Status::Dropped,
            _ => Status::Delivered,
        };
        assert_eq!(got, want, "item {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_map_before_a_fold_and_a_channel_fails_only_its_items() {
    // Plain tokens, rebuilt as visibly plain before the fold: the runs end
    // in a channel (the second segment) and in the fold (the last).
    let sum = small_skipping()
        .from_iter(0..10_000u64)
        .boundary()
        .map(|x| if x % 1_000 == 3 { panic!("threes") } else { x })
        .boundary()
        .map(|x| if x % 1_000 == 4 { panic!("fours") } else { x + 1 })
        .fold(0u64, |acc, x| acc + x)
        .await
        .unwrap();
    let want: u64 = (0..10_000u64)
        .filter(|x| x % 1_000 != 3 && x % 1_000 != 4)
        .map(|x| x + 1)
        .sum();
    assert_eq!(sum, want);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_acker_fails_the_run_instead_of_hanging_it() {
    // The acker is the source's code, run by whichever task finishes the
    // item (here the filter's, between two boundaries, inside its chunk
    // loop): its panic takes that task down (once the poll returns:
    // `ack/acker_panic.rs`), and the run must end (failed, the rest
    // aborted) rather than leave the task after it waiting forever.
    use futures::StreamExt;
    use weir::{Ack, Acked, Acker};
    let acker: Arc<dyn Acker> = Arc::new(|id: u64, _status: Status| {
        if id == 500 {
            panic!("acker broke on {id}");
        }
    });
    let source = {
        let acker = acker.clone();
        futures::stream::iter(0..100_000u64).map(move |i| Acked::new(i, Ack::new(i, acker.clone())))
    };
    let run = small()
        .from_acked(source)
        .boundary()
        .filter(|x| *x != 500)
        .boundary()
        .map(|x| x + 1)
        .run();
    let r = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run ended");
    let err = r.expect_err("a task panicked");
    assert_eq!(err.kind(), weir::ErrorKind::Internal, "{err}");
    assert!(err.to_string().contains("acker broke on 500"), "{err}");
    // The failed run let go of everything: each item's acknowledgement
    // node holds the acker, so a leaked one (the chunk loop the panic
    // unwound through once leaked its whole state) keeps a count here.
    assert_eq!(
        Arc::strong_count(&acker),
        1,
        "items of the failed run were leaked"
    );
}
