//! Fan-out and fan-in stages: broadcast, route, branch_join, merge.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Ledger;
use futures::StreamExt;
use weir::{ErrorKind, ErrorPolicy, Outcome, Pipeline, PipelineBuilder, Status};

type Seen<T> = Arc<Mutex<Vec<T>>>;

fn seen<T>() -> Seen<T> {
    Arc::new(Mutex::new(Vec::new()))
}

fn sorted(v: &Seen<u64>) -> Vec<u64> {
    let mut v = v.lock().unwrap().clone();
    v.sort_unstable();
    v
}

/// A sink that sleeps `ms` per item.
async fn slow(ms: u64) -> Result<(), std::io::Error> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(())
}

// ---------------------------------------------------------------- broadcast

#[tokio::test]
async fn broadcast_delivers_every_item_to_every_branch() {
    let ledger = Ledger::default();
    let (a, b, c) = (seen(), seen(), seen());
    let (a2, b2, c2) = (a.clone(), b.clone(), c.clone());
    let report = PipelineBuilder::new()
        .chunk_size(7)
        .from_acked(ledger.source(1000))
        .broadcast(|br| {
            br.branch("a", |p| p.for_each(move |x| a2.lock().unwrap().push(x)))
                .branch("b", |p| {
                    p.map(|x| x * 2).for_each(move |x| b2.lock().unwrap().push(x))
                })
                .branch("c", |p| {
                    p.then(|x| async move { x + 1 }).for_each_async(move |x| {
                        c2.lock().unwrap().push(x);
                        async { Ok::<_, std::io::Error>(()) }
                    })
                })
        })
        .run()
        .await
        .unwrap();
    assert_eq!(*a.lock().unwrap(), (0..1000).collect::<Vec<_>>());
    assert_eq!(*b.lock().unwrap(), (0..1000).map(|x| x * 2).collect::<Vec<_>>());
    assert_eq!(*c.lock().unwrap(), (1..=1000).collect::<Vec<_>>());
    assert_eq!(
        (report.pulled, report.delivered, report.unfinalized),
        (1000, 3000, 0)
    );
    assert_eq!(report.stage("broadcast#9").unwrap().items_out, 3000);
    assert_eq!(report.stage("b").unwrap().items_out, 1000);
    assert_eq!(report.stage("b/map#4").unwrap().items_out, 1000);
    assert_eq!(report.stage("c/then#7").unwrap().items_out, 1000);
    let statuses = ledger.assert_exactly_once();
    assert!(statuses.values().all(|s| *s == Status::Delivered));
}

#[tokio::test]
async fn broadcast_of_nothing_and_of_one_item() {
    let report = Pipeline::from_iter(Vec::<u64>::new())
        .broadcast(|b| {
            b.branch("a", |p| p.for_each(|_| {}))
                .branch("b", |p| p.for_each(|_| {}))
        })
        .run()
        .await
        .unwrap();
    assert_eq!(
        (report.pulled, report.delivered, report.outcome),
        (0, 0, Outcome::Completed)
    );

    let ledger = Ledger::default();
    let got = seen();
    let g = got.clone();
    let report = Pipeline::from_acked(ledger.source(1))
        .broadcast(|b| b.branch("only", |p| p.for_each(move |x| g.lock().unwrap().push(x))))
        .run()
        .await
        .unwrap();
    assert_eq!(*got.lock().unwrap(), [0]);
    assert_eq!(report.delivered, 1);
    assert_eq!(ledger.assert_exactly_once()[&0], Status::Delivered);
}

#[tokio::test(start_paused = true)]
async fn a_slow_branch_under_backpressure_paces_the_source() {
    const CAPACITY: usize = 16;
    const CHUNK: usize = 4;
    let ledger = Ledger::default();
    let fast = Arc::new(AtomicU64::new(0));
    let f = fast.clone();
    let handle = PipelineBuilder::new()
        .capacity(CAPACITY)
        .chunk_size(CHUNK)
        .from_acked(ledger.source(1_000_000))
        .broadcast(|b| {
            b.branch("fast", |p| {
                p.for_each(move |_| {
                    f.fetch_add(1, Ordering::SeqCst);
                })
            })
            .branch("slow", |p| p.for_each_async(|_| slow(1000)))
        })
        .start();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pulled = ledger.pulled();
    // What waits in the slow branch's channel and chunks, plus the one
    // item a second its sink takes.
    let bound = (2 * (CAPACITY + 2 * CHUNK)) as u64;
    assert!(pulled <= bound + 10, "pulled {pulled} > {bound} + 10");
    assert!(pulled >= CAPACITY as u64, "pulled {pulled}: buffers should fill");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let later = ledger.pulled();
    assert!(later <= bound + 20, "the source ran ahead: {later}");
    assert!(fast.load(Ordering::SeqCst) <= ledger.pulled());
    let report = handle
        .shutdown(weir::Shutdown::Abort, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Aborted);
    ledger.assert_exactly_once();
    // An item can be unfinished in both branches: counted twice in the
    // report, once by its source.
    let aborted = ledger.count(Status::Aborted) as u64;
    assert!(aborted > 0 && aborted <= report.unfinalized);
}

#[tokio::test(start_paused = true)]
async fn a_slow_drop_newest_branch_drops_and_counts_while_others_get_everything() {
    const N: u64 = 5000;
    let ledger = Ledger::default();
    let (all, some) = (seen(), seen());
    let (a, s) = (all.clone(), some.clone());
    let report = PipelineBuilder::new()
        .capacity(64)
        .chunk_size(16)
        .from_acked(ledger.source(N))
        .broadcast(|b| {
            b.branch("all", |p| p.for_each(move |x| a.lock().unwrap().push(x)))
                .branch("some", |p| {
                    p.for_each_async(move |x| {
                        s.lock().unwrap().push(x);
                        slow(100)
                    })
                })
                .buffer(8)
                .drop_newest()
        })
        .run()
        .await
        .unwrap();
    assert_eq!(*all.lock().unwrap(), (0..N).collect::<Vec<_>>());
    let got = some.lock().unwrap().len() as u64;
    let branch = report.stage("some").unwrap();
    assert!(got < N / 10, "the slow branch got {got}: it should drop most");
    assert!(got >= 8, "the slow branch got {got}: its buffer should fill");
    assert_eq!(branch.items_in, N);
    assert_eq!(branch.dropped, N - got);
    assert_eq!(branch.items_out, got);
    assert_eq!(report.dropped, N - got);
    assert_eq!(report.delivered, N + got);
    assert_eq!(report.unfinalized, 0);
    // Each item was delivered by the `all` branch: that outranks a drop.
    let statuses = ledger.assert_exactly_once();
    assert!(statuses.values().all(|s| *s == Status::Delivered));
}

/// The `ItemsDropped` events of a run: `(stage, branch, count)`.
fn drop_events(events: &[weir::Event]) -> Vec<(String, String, u64)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            weir::EventKind::ItemsDropped {
                stage,
                branch,
                count,
                reason,
            } => {
                assert_eq!(reason, "buffer_full");
                Some((stage.clone(), branch.clone(), *count))
            }
            _ => None,
        })
        .collect()
}

fn final_report(events: &[weir::Event]) -> weir::Report {
    match &events.last().expect("events").kind {
        weir::EventKind::PipelineFinished { report, .. } => (**report).clone(),
        other => panic!("the last event is {other:?}"),
    }
}

/// Guards against drop-newest drops that are counted but never evented,
/// and against one event per dropped item: each flush that drops reports
/// once, with the fan-out stage, the branch and how many.
#[tokio::test(start_paused = true)]
async fn drop_newest_drops_are_evented_once_per_flush_with_branch_and_count() {
    const N: u64 = 2000;
    let events: Vec<_> = PipelineBuilder::new()
        .capacity(64)
        .chunk_size(16)
        .from_iter(0..N)
        .broadcast(|b| {
            b.branch("all", |p| p.for_each(|_| {}))
                .branch("some", |p| p.for_each_async(|_| slow(100)))
                .buffer(8)
                .drop_newest()
        })
        .name("fan")
        .events()
        .collect()
        .await;
    let report = final_report(&events);
    let dropped = report.stage("some").unwrap().dropped;
    assert!(dropped > N / 2, "{dropped}");
    let drops = drop_events(&events);
    assert!(
        drops
            .iter()
            .all(|(stage, branch, _)| stage == "fan" && branch == "some"),
        "{drops:?}"
    );
    assert_eq!(drops.iter().map(|d| d.2).sum::<u64>(), dropped);
    // Aggregated: at most a chunk's worth per event, far fewer events than drops.
    assert!(drops.iter().all(|d| (1..=16).contains(&d.2)), "{drops:?}");
    assert!(
        (drops.len() as u64) < dropped / 4,
        "{} events for {dropped} drops",
        drops.len()
    );

    // A branch whose buffer has room drops nothing and says nothing.
    let events: Vec<_> = PipelineBuilder::new()
        .chunk_size(16)
        .from_iter(0..N)
        .broadcast(|b| {
            b.branch("fast", |p| p.for_each(|_| {}))
                .buffer(N as usize)
                .drop_newest()
        })
        .events()
        .collect()
        .await;
    assert_eq!(final_report(&events).stage("fast").unwrap().dropped, 0);
    assert!(drop_events(&events).is_empty());
}

#[tokio::test(start_paused = true)]
async fn route_drop_newest_drops_are_evented_for_their_branch() {
    let events: Vec<_> = PipelineBuilder::new()
        .capacity(64)
        .chunk_size(16)
        .from_iter(0..1000u64)
        .route(
            |x| if x % 2 == 0 { "even" } else { "odd" },
            |r| {
                r.branch("even", |p| p.for_each(|_| {}))
                    .branch("odd", |p| p.for_each_async(|_| slow(100)).name("slow"))
                    .buffer(4)
                    .drop_newest()
            },
        )
        .events()
        .collect()
        .await;
    let report = final_report(&events);
    let route = report
        .stages
        .iter()
        .find(|s| s.kind == "route")
        .unwrap()
        .name
        .clone();
    let drops = drop_events(&events);
    assert!(!drops.is_empty());
    assert!(
        drops
            .iter()
            .all(|(stage, branch, _)| *stage == route && branch == "odd"),
        "{drops:?}"
    );
    assert_eq!(
        drops.iter().map(|d| d.2).sum::<u64>(),
        report.stage("odd").unwrap().dropped
    );
    assert_eq!(report.stage("even").unwrap().dropped, 0);
}

#[tokio::test]
async fn a_failing_branch_item_fails_the_parent_item_and_finalization_stays_exact() {
    let ledger = Ledger::default();
    let report = PipelineBuilder::new()
        .error_policy(ErrorPolicy::Skip)
        .chunk_size(5)
        .from_acked(ledger.source(100))
        .broadcast(|b| {
            b.branch("ok", |p| p.for_each(|_| {}))
                .branch("picky", |p| {
                    p.try_map(|x| if x % 10 == 3 { Err("no threes") } else { Ok(x) })
                        .filter(|x| x % 10 != 4)
                        .for_each(|_| {})
                })
                .branch("panicky", |p| {
                    p.for_each(|x| {
                        if x == 55 {
                            panic!("boom");
                        }
                    })
                })
        })
        .run()
        .await
        .unwrap();
    let statuses = ledger.assert_exactly_once();
    for (id, status) in &statuses {
        let expected = if id % 10 == 3 || *id == 55 {
            Status::Failed
        } else {
            Status::Delivered // delivered outranks dropped (x % 10 == 4)
        };
        assert_eq!(*status, expected, "item {id}");
    }
    assert_eq!(report.failed, 11);
    assert_eq!(report.stage("picky/map#4").unwrap().failed, 10);
    assert_eq!(report.stage("picky/filter#5").unwrap().dropped, 10);
    assert_eq!(report.stage("panicky/sink#8").unwrap().failed, 1);
    assert_eq!(report.delivered, 100 + 80 + 99);
    assert_eq!(report.unfinalized, 0);
}

#[tokio::test]
async fn a_fail_fast_error_in_a_branch_stops_the_run_and_names_the_branch_stage() {
    let ledger = Ledger::default();
    let err = Pipeline::from_acked(ledger.source(10_000))
        .broadcast(|b| {
            b.branch("ok", |p| p.for_each(|_| {})).branch("strict", |p| {
                p.try_map(|x| if x == 500 { Err("bad") } else { Ok(x) })
                    .for_each(|_| {})
            })
        })
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.stage(), Some("strict/map#4"));
    assert_eq!(err.item(), Some(500));
    assert_eq!(ledger.assert_exactly_once()[&500], Status::Halted);
}

#[tokio::test(start_paused = true)]
async fn broadcast_drains_mid_way_with_every_item_finalized() {
    let ledger = Ledger::default();
    let handle = PipelineBuilder::new()
        .capacity(8)
        .chunk_size(2)
        .from_acked(ledger.source(1_000_000))
        .broadcast(|b| {
            b.branch("fast", |p| p.for_each(|_| {}))
                .branch("slow", |p| p.for_each_async(|_| slow(10)))
        })
        .start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = handle
        .shutdown(weir::Shutdown::Drain, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.unfinalized, 0);
    assert!(report.pulled < 1000);
    let statuses = ledger.assert_exactly_once();
    assert!(statuses.values().all(|s| *s == Status::Delivered));
}

#[test]
#[should_panic(expected = "must end in a sink")]
fn a_branch_must_end_in_a_sink() {
    let _ = Pipeline::from_iter(0..3u32).broadcast(|b| b.branch("x", |p| p.map(|_| ())));
}

#[test]
#[should_panic(expected = "already named `source#0`")]
fn branch_names_are_unique_stage_names() {
    let _ = Pipeline::from_iter(0..3u32).broadcast(|b| b.branch("source#0", |p| p.for_each(|_| {})));
}

// -------------------------------------------------------------------- route

#[tokio::test]
async fn route_sends_each_item_to_the_branch_its_key_names() {
    let ledger = Ledger::default();
    let (small, big, rest) = (seen(), seen(), seen());
    let (s, b, r) = (small.clone(), big.clone(), rest.clone());
    let report = PipelineBuilder::new()
        .chunk_size(3)
        .from_acked(ledger.source(300))
        .route(
            |x| match x % 3 {
                0 => "small",
                1 => "big",
                _ => "neither",
            },
            |rt| {
                rt.branch("small", |p| p.for_each(move |x| s.lock().unwrap().push(x)))
                    .branch("big", |p| {
                        p.then(|x| async move { x })
                            .for_each(move |x| b.lock().unwrap().push(x))
                    })
                    .default_branch("rest", |p| p.for_each(move |x| r.lock().unwrap().push(x)))
            },
        )
        .run()
        .await
        .unwrap();
    assert_eq!(
        sorted(&small),
        (0..300).filter(|x| x % 3 == 0).collect::<Vec<_>>()
    );
    assert_eq!(sorted(&big), (0..300).filter(|x| x % 3 == 1).collect::<Vec<_>>());
    assert_eq!(sorted(&rest), (0..300).filter(|x| x % 3 == 2).collect::<Vec<_>>());
    assert_eq!((report.delivered, report.unfinalized), (300, 0));
    assert_eq!(report.stage("big").unwrap().items_in, 100);
    let statuses = ledger.assert_exactly_once();
    assert!(statuses.values().all(|s| *s == Status::Delivered));
}

#[tokio::test]
async fn an_unknown_key_fails_the_item_through_the_route_stage_policy() {
    let ledger = Ledger::default();
    let report = Pipeline::from_acked(ledger.source(10))
        .route(
            |x| {
                if *x == 4 {
                    "nowhere".to_owned()
                } else {
                    "here".to_owned()
                }
            },
            |r| r.branch("here", |p| p.for_each(|_| {})),
        )
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.failed), (9, 1));
    assert_eq!(report.stage("route#3").unwrap().failed, 1);
    assert_eq!(ledger.assert_exactly_once()[&4], Status::Failed);

    let err = Pipeline::from_iter(0..10u32)
        .route(|_| "nowhere", |r| r.branch("here", |p| p.for_each(|_| {})))
        .name("dispatch")
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stage);
    assert_eq!(err.stage(), Some("dispatch"));
    assert!(err.message().contains("no branch for key `nowhere`"), "{err}");
}

#[tokio::test]
async fn a_panicking_key_fails_the_item() {
    let report = Pipeline::from_iter(0..5u32)
        .route(
            |x| if *x == 2 { panic!("bad key") } else { "a" },
            |r| r.branch("a", |p| p.for_each(|_| {})),
        )
        .on_error(ErrorPolicy::Skip)
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.failed), (4, 1));
}

// -------------------------------------------------------------- branch_join

#[tokio::test(start_paused = true)]
async fn branch_join_runs_the_arms_concurrently_and_joins_their_values() {
    let started = tokio::time::Instant::now();
    let out = Pipeline::from_iter(0..4u64)
        .branch_join(|j| {
            j.arm("ms100", |x: &u64| {
                let x = *x;
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    x * 100
                }
            })
            .arm("ms50", |x: &u64| {
                let x = *x;
                async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    x + 1
                }
            })
        })
        .collect()
        .await
        .unwrap();
    // One item at a time, its two arms at once: 4 × 100 ms, not 4 × 150.
    assert_eq!(started.elapsed(), Duration::from_millis(400));
    assert_eq!(out.len(), 4);
    for (i, j) in out.iter().enumerate() {
        let i = i as u64;
        assert_eq!(j.item, i);
        assert_eq!(j.get("ms100"), Some(&(i * 100)));
        assert_eq!(j.get("ms50"), Some(&(i + 1)));
        assert_eq!(j.get("nope"), None);
    }
    assert_eq!(
        out[2].clone().into_map().into_iter().collect::<Vec<_>>(),
        [("ms100".to_owned(), 200), ("ms50".to_owned(), 3)]
    );
}

#[tokio::test]
async fn a_failing_or_panicking_arm_fails_the_item_and_names_the_arm() {
    let ledger = Ledger::default();
    let events: Vec<_> = {
        use futures::StreamExt;
        PipelineBuilder::new()
            .error_policy(ErrorPolicy::Skip)
            .from_acked(ledger.source(20))
            .branch_join(|j| {
                j.try_arm("even", |x: &u64| {
                    let r = if x % 2 == 0 { Ok(*x) } else { Err("odd") };
                    std::future::ready(r)
                })
                .arm("boom", |x: &u64| {
                    assert!(*x != 6, "six");
                    std::future::ready(0)
                })
                .arm("late", |x: &u64| {
                    let x = *x;
                    async move {
                        assert!(x != 8, "eight");
                        0
                    }
                })
            })
            .concurrency(4)
            .events()
            .collect()
            .await
    };
    let failures: Vec<(u64, String, String)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            weir::EventKind::ItemFailed {
                item,
                error,
                error_type,
                ..
            } => Some((*item, error.clone(), error_type.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 12);
    assert!(failures
        .iter()
        .any(|(i, e, t)| *i == 1 && e.contains("arm `even` failed: odd") && t == "error"));
    assert!(failures
        .iter()
        .any(|(i, e, t)| *i == 6 && e.contains("arm `boom` failed: six") && t == "panic"));
    assert!(failures
        .iter()
        .any(|(i, e, t)| *i == 8 && e.contains("arm `late` failed: eight") && t == "panic"));
    let statuses = ledger.assert_exactly_once();
    assert_eq!(statuses.values().filter(|s| **s == Status::Failed).count(), 12);
    assert_eq!(statuses.values().filter(|s| **s == Status::Delivered).count(), 8);
}

#[tokio::test]
async fn branch_join_fail_fast_returns_the_arm_error_and_handles_empty_input() {
    let err = Pipeline::from_iter(["1", "2", "x", "4"])
        .branch_join(|j| j.try_arm("parse", |s: &&str| std::future::ready(s.parse::<u8>())))
        .name("join")
        .run()
        .await
        .unwrap_err();
    assert_eq!((err.stage(), err.item()), (Some("join"), Some(2)));
    assert!(err.message().starts_with("arm `parse` failed"), "{err}");

    let out = Pipeline::from_iter(Vec::<u8>::new())
        .branch_join(|j| j.arm("id", |x: &u8| std::future::ready(*x)))
        .collect()
        .await
        .unwrap();
    assert!(out.is_empty());
}

#[test]
#[should_panic(expected = "already named `a`")]
fn arm_names_are_unique() {
    let _ = Pipeline::from_iter(0..1u8).branch_join(|j| {
        j.arm("a", |x: &u8| std::future::ready(*x))
            .arm("a", |x: &u8| std::future::ready(*x))
    });
}

// -------------------------------------------------------------------- merge

/// A source that records how many sources are open at once.
struct Tracked {
    name: &'static str,
    items: u64,
    fail_init: bool,
    open: Arc<AtomicU64>,
    peak: Arc<AtomicU64>,
    closed: Arc<AtomicU64>,
}

impl weir::Source for Tracked {
    type Item = (&'static str, u64);
    type Stream = futures::stream::BoxStream<'static, (&'static str, u64)>;

    fn name(&self) -> Option<String> {
        Some(self.name.to_owned())
    }

    async fn initialize(&mut self) -> Result<(), weir::BoxError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if self.fail_init {
            return Err("connection refused".into());
        }
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Ok(())
    }

    fn stream(&mut self) -> Self::Stream {
        use futures::StreamExt;
        let name = self.name;
        futures::stream::iter(0..self.items)
            .then(move |i| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                (name, i)
            })
            .boxed()
    }

    async fn close(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default, Clone)]
struct Gauges {
    open: Arc<AtomicU64>,
    peak: Arc<AtomicU64>,
    closed: Arc<AtomicU64>,
}

impl Gauges {
    fn source(&self, name: &'static str, items: u64, fail_init: bool) -> Tracked {
        Tracked {
            name,
            items,
            fail_init,
            open: self.open.clone(),
            peak: self.peak.clone(),
            closed: self.closed.clone(),
        }
    }
}

#[tokio::test]
async fn merge_is_fair_between_busy_sources() {
    use weir::stage::Streamed;
    const N: u64 = 200_000;
    let first = seen();
    let f = first.clone();
    let tagged = |tag| Streamed::from_iter((0..N).map(move |i| (tag, i)));
    let report = Pipeline::merge([tagged('a'), tagged('b')])
        .for_each(move |(tag, i)| {
            let mut f = f.lock().unwrap();
            if f.len() < 20_000 {
                f.push((tag, i));
            }
        })
        .run()
        .await
        .unwrap();
    assert_eq!(report.delivered, 2 * N);
    let first = first.lock().unwrap();
    let from_a = first.iter().filter(|(t, _)| *t == 'a').count();
    // Round-robin by chunk: each source is at most a chunk ahead.
    assert!(
        (from_a as i64 - 10_000).abs() <= 1024,
        "{from_a} of the first 20000 from `a`"
    );
    // Order is kept within each source.
    for tag in ['a', 'b'] {
        let mine: Vec<u64> = first.iter().filter(|(t, _)| *t == tag).map(|(_, i)| *i).collect();
        assert!(mine.windows(2).all(|w| w[0] + 1 == w[1]));
    }
}

#[tokio::test(start_paused = true)]
async fn merge_opens_at_most_max_concurrent_sources_and_closes_each() {
    let g = Gauges::default();
    let sources: Vec<_> = ["s0", "s1", "s2", "s3", "s4"]
        .into_iter()
        .map(|n| g.source(n, 50, false))
        .collect();
    let out = Pipeline::merge(sources)
        .max_concurrent(2)
        .collect()
        .await
        .unwrap();
    assert_eq!(out.len(), 250);
    assert_eq!(g.peak.load(Ordering::SeqCst), 2);
    assert_eq!(g.closed.load(Ordering::SeqCst), 5);
    assert_eq!(g.open.load(Ordering::SeqCst), 0);
    for name in ["s0", "s1", "s2", "s3", "s4"] {
        let mine: Vec<u64> = out.iter().filter(|(n, _)| *n == name).map(|(_, i)| *i).collect();
        assert_eq!(mine, (0..50).collect::<Vec<_>>(), "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_source_that_fails_to_initialize_is_reported_and_the_others_go_on() {
    use futures::StreamExt;
    let g = Gauges::default();
    let sources = vec![
        g.source("a", 10, false),
        g.source("broken", 10, true),
        g.source("c", 10, false),
    ];
    let events: Vec<_> = PipelineBuilder::new()
        .error_policy(ErrorPolicy::Skip)
        .merge(sources)
        .name("feeds")
        .events()
        .collect()
        .await;
    let failed: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            weir::EventKind::SourceFailed { stage, input, error } => {
                Some((stage.clone(), input.clone(), error.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].0.as_str(), failed[0].1.as_str()), ("feeds", "broken"));
    assert!(failed[0].2.contains("connection refused"), "{}", failed[0].2);
    let weir::EventKind::PipelineFinished { report, error } = &events.last().unwrap().kind else {
        panic!("no finished event");
    };
    assert_eq!((report.delivered, error.is_none()), (20, true));
    assert_eq!(
        g.closed.load(Ordering::SeqCst),
        2,
        "the broken source is not closed"
    );

    // Fail-fast (the default): the run fails with an error naming it.
    let sources = vec![g.source("a", 1000, false), g.source("broken", 10, true)];
    let err = Pipeline::merge(sources).run().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Source);
    assert!(
        err.to_string()
            .contains("input `broken` failed to initialize: connection refused"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn merge_drains_mid_way_and_closes_open_sources() {
    let g = Gauges::default();
    let sources: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|n| g.source(n, u64::MAX, false))
        .collect();
    let handle = Pipeline::merge(sources).max_concurrent(2).start();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = handle
        .shutdown(weir::Shutdown::Drain, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Drained);
    assert!(
        report.delivered > 100 && report.delivered < 1000,
        "{}",
        report.delivered
    );
    assert_eq!(report.unfinalized, 0);
    assert_eq!(g.closed.load(Ordering::SeqCst), 2, "the open sources were closed");
    assert_eq!(g.open.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn merge_of_no_sources_and_of_empty_sources() {
    use weir::stage::Streamed;
    let report = Pipeline::merge(Vec::<Streamed<futures::stream::Iter<std::vec::IntoIter<u8>>>>::new())
        .run()
        .await
        .unwrap();
    assert_eq!((report.pulled, report.outcome), (0, Outcome::Completed));
    let out = Pipeline::merge([
        Streamed::from_iter(Vec::<u8>::new()),
        Streamed::from_iter(vec![7]),
    ])
    .collect()
    .await
    .unwrap();
    assert_eq!(out, [7]);
}

/// Guards against mixing kinds of source needing
/// `stage::Streamed<BoxStream<…>>`: an iterator, a stream, a channel (an
/// intake fed by other code) and a lifecycle source merge as `BoxSource`s,
/// and the boxed source keeps its name, initialize and close.
#[tokio::test(start_paused = true)]
async fn merge_mixes_sources_of_different_kinds_as_box_sources() {
    use futures::SinkExt;
    use weir::{BoxSource, EventKind, Source};

    let gauges = Gauges::default();
    let (mut intake, rx) = futures::channel::mpsc::channel(4);
    let pusher = tokio::spawn(async move {
        for i in 0..3 {
            intake.send(("intake", 100 + i)).await.unwrap();
        }
    });
    let events: Vec<_> = Pipeline::merge([
        BoxSource::from_iter([("iter", 0), ("iter", 1)]),
        BoxSource::from_stream(futures::stream::iter([("stream", 10)])).named("ticks"),
        BoxSource::from_stream(rx),
        gauges.source("feed", 2, false).boxed(),
    ])
    .events()
    .collect()
    .await;
    pusher.await.unwrap();
    let report = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::PipelineFinished { report, .. } => Some(report.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(report.delivered, 2 + 1 + 3 + 2);
    let mut inputs: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SourceConnected { input, .. } => Some(input.clone()),
            _ => None,
        })
        .collect();
    inputs.sort();
    assert_eq!(inputs, ["#0", "#2", "feed", "ticks"]);
    assert_eq!(
        gauges.closed.load(Ordering::SeqCst),
        1,
        "the boxed source was closed"
    );
}

/// Guards against `branch_join` arms having to share one value type:
/// `branch_zip` joins arms of different types into a typed tuple, keeps
/// the input order under concurrency, and fails an item whose arm fails
/// with an error naming the arm.
#[tokio::test]
async fn branch_zip_joins_arms_of_different_types_into_a_tuple() {
    let ledger = Ledger::default();
    let out = PipelineBuilder::new()
        .error_policy(ErrorPolicy::Skip)
        .from_acked(ledger.source(6))
        .branch_zip(|z| {
            z.arm("label", |x: &u64| std::future::ready(format!("#{x}")))
                .try_arm("half", |x: &u64| {
                    std::future::ready(if x % 3 == 2 {
                        Err("not halved")
                    } else {
                        Ok(*x as f64 / 2.0)
                    })
                })
                .arm("odd", |x: &u64| std::future::ready(x % 2 == 1))
        })
        .concurrency(3)
        .collect()
        .await
        .unwrap();
    let want: Vec<(u64, String, f64, bool)> = [0u64, 1, 3, 4]
        .into_iter()
        .map(|x| (x, format!("#{x}"), x as f64 / 2.0, x % 2 == 1))
        .collect();
    assert_eq!(out, want);
    ledger.assert_each(|id| id % 3 == 2, Status::Failed);

    let err = Pipeline::from_iter([2u64])
        .branch_zip(|z| z.try_arm("half", |_: &u64| std::future::ready(Err::<u8, _>("no"))))
        .run()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("arm `half` failed"), "{err}");
}
