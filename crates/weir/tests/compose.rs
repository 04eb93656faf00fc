//! Reusable stages, `>>`, the registry, the ETL helper, hooks and the
//! context, end to end.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Ledger;
use serde_json::{json, Value};
use weir::compose::{self, BoxStage, Registry, Stage};
use weir::{BoxError, Context, ErrorKind, ErrorPolicy, Hooks, Key, Pipeline, PipelineBuilder, Status};

/// 0 → dropped, 1 → one item, 2 → two items, 3 → fails, 4 → panics.
fn picky() -> impl Stage<u64, Out = u64> {
    compose::from_fn(
        "picky",
        |x: u64, _: &Context, out: &mut Vec<u64>| -> Result<(), BoxError> {
            match x % 5 {
                0 => {}
                1 => out.push(x),
                2 => out.extend([x, x]),
                3 => return Err(format!("{x} is odd-ish").into()),
                _ => panic!("picky panicked on {x}"),
            }
            Ok(())
        },
    )
}

#[tokio::test]
async fn a_piped_stage_finalizes_every_item_exactly_once() {
    let ledger = Ledger::default();
    let out = PipelineBuilder::new()
        .error_policy(ErrorPolicy::Skip)
        .from_acked(ledger.source(50))
        .pipe(picky().chain(compose::map("inc", |x: u64| x + 1)))
        .collect()
        .await
        .unwrap();
    assert_eq!(out.len(), 10 + 20);
    let statuses = ledger.assert_exactly_once();
    for (id, status) in statuses {
        let want = match id % 5 {
            0 => Status::Dropped,
            1 | 2 => Status::Delivered,
            _ => Status::Failed,
        };
        assert_eq!(status, want, "item {id}");
    }
}

#[tokio::test]
async fn a_chain_reports_the_failing_part_and_the_stage_is_named_after_the_chain() {
    let err = Pipeline::from_iter([3u64])
        .pipe(compose::map("first", |x: u64| x) >> picky())
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stage);
    assert_eq!(err.stage(), Some("first >> picky"));
    assert!(err.to_string().contains("stage `picky`: 3 is odd-ish"), "{err}");
}

/// Seed 003's `validate >> transform >> aggregate` as one named, typed
/// value: unit-tested alone, then plugged into a pipeline.
fn order_totals() -> impl Stage<&'static str, Out = weir::aggregate::Summary> {
    let validate = compose::validate("validate", |line: &&str| {
        if line.contains(',') {
            Ok(())
        } else {
            Err(format!("no comma in {line:?}"))
        }
    });
    let transform = compose::try_map("transform", |line: &str| {
        let (_, cents) = line.split_once(',').unwrap_or_default();
        cents.parse::<u32>()
    });
    let aggregate = compose::aggregate("aggregate", weir::aggregate::Stats::by(|c: &u32| f64::from(*c)));
    validate >> transform >> aggregate
}

/// Guards against a reusable stage that cannot end with an aggregate:
/// the stage's flush emits the summary at the end of the stream, in a
/// unit test and in a pipeline, and the validation failure keeps its kind.
#[tokio::test]
async fn seed_003_validate_transform_aggregate_is_one_stage() {
    let mut totals = order_totals();
    let s = totals.run_on(["a,100", "b,300"]).unwrap().remove(0);
    assert_eq!((s.count, s.sum, s.mean), (2, 400.0, 200.0));
    let err = order_totals().run_on(["a,100", "oops"]).unwrap_err();
    assert_eq!(err.stage(), "validate");

    let out = Pipeline::from_iter(["a,100", "oops", "b,300", "c,500"])
        .pipe(order_totals())
        .on_error(ErrorPolicy::Skip)
        .collect()
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].count, out[0].sum), (3, 900.0));

    let err = Pipeline::from_iter(["oops"])
        .pipe(order_totals())
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert!(err.to_string().contains("stage `validate`: no comma"), "{err}");
}

/// Guards against a stage that holds items finishing them when `process`
/// returns nothing: a batch's members are finished with the batch (here
/// failed by the sink), a filtered item is dropped, and the counts add up.
#[tokio::test]
async fn a_batch_stage_finishes_its_members_with_their_batch() {
    let ledger = Ledger::default();
    let stage = compose::filter("odd", |x: &u64| x % 2 == 1) >> compose::batch("threes", 3);
    let report = PipelineBuilder::new()
        .error_policy(ErrorPolicy::Skip)
        .from_acked(ledger.source(14))
        .pipe(stage)
        .try_for_each(|b: Vec<u64>| if b.contains(&7) { Err("refused") } else { Ok(()) })
        .run()
        .await
        .unwrap();
    // Odd: [1, 3, 5] [7, 9, 11] [13] (the last at the end of the stream).
    let statuses = ledger.assert_exactly_once();
    for (id, status) in statuses {
        let want = match id {
            _ if id % 2 == 0 => Status::Dropped,
            7 | 9 | 11 => Status::Failed,
            _ => Status::Delivered,
        };
        assert_eq!(status, want, "item {id}");
    }
    let s = report.stage("odd >> threes").unwrap();
    assert_eq!((s.items_in, s.items_out, s.dropped), (14, 3, 7));
    assert_eq!((report.delivered, report.failed, report.unfinalized), (2, 1, 0));
}

/// Guards against at-least-once loss: a batch emitted while the stage
/// still holds part of an input (one input became two items, split across
/// batches) must not finish that input before its other part is finished.
#[tokio::test]
async fn an_input_split_across_batches_is_finished_with_the_last_of_them() {
    let ledger = Ledger::default();
    let stage = compose::flat_map("twice", |x: u64| [x, x]) >> compose::batch("threes", 3);
    PipelineBuilder::new()
        .error_policy(ErrorPolicy::Skip)
        .from_acked(ledger.source(4))
        .pipe(stage)
        // Batches: [0, 0, 1] [1, 2, 2] [3, 3]; the second is refused.
        .try_for_each(|b: Vec<u64>| if b == [1, 2, 2] { Err("refused") } else { Ok(()) })
        .run()
        .await
        .unwrap();
    let statuses = ledger.assert_exactly_once();
    assert_eq!(statuses[&1], Status::Failed, "half of 1 was in the refused batch");
    assert_eq!(statuses[&2], Status::Failed);
    assert_eq!(statuses[&3], Status::Delivered);
}

/// A panic in the aggregator loses its window: the items it held fail
/// with the item that panicked, and the next window starts afresh.
#[tokio::test]
async fn a_panicking_aggregate_stage_fails_the_window_it_held() {
    let ledger = Ledger::default();
    let sum = weir::aggregate::fold(0u64, |a, x: u64| if x == 4 { panic!("boom") } else { a + x });
    let out = PipelineBuilder::new()
        .error_policy(ErrorPolicy::Skip)
        .from_acked(ledger.source(9))
        .pipe(compose::aggregate_count("sums", 3, sum))
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [3, 5 + 6 + 7, 8]); // [0 1 2], [3 4] lost, [5 6 7], [8]
    let statuses = ledger.assert_exactly_once();
    for (id, status) in statuses {
        let want = if (3..=4).contains(&id) {
            Status::Failed
        } else {
            Status::Delivered
        };
        assert_eq!(status, want, "item {id}");
    }
}

#[tokio::test]
async fn piping_the_same_stage_twice_keeps_names_unique() {
    let r = Pipeline::from_iter(0..3u64)
        .pipe(compose::map("inc", |x: u64| x + 1))
        .pipe(compose::map("inc", |x: u64| x + 1))
        .run()
        .await
        .unwrap();
    let names: Vec<_> = r.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["source#0", "inc", "inc#2", "run#3"]);
}

#[tokio::test]
async fn registry_stages_run_in_a_pipeline() {
    let mut registry: Registry<Value> = Registry::new();
    registry
        .register("scale", |c: &Value| {
            let k = c["by"].as_f64().ok_or("`by` must be a number")?;
            Ok(BoxStage::new(compose::try_map("scale", move |v: Value| {
                v.as_f64().map(|x| json!(x * k)).ok_or("not a number")
            })))
        })
        .unwrap();
    registry
        .register("positive", |_: &Value| {
            Ok(BoxStage::new(compose::filter("positive", |v: &Value| {
                v.as_f64().is_some_and(|x| x > 0.0)
            })))
        })
        .unwrap();
    let stage = registry.build("scale", &json!({"by": 2})).unwrap()
        >> registry.build("positive", &json!(null)).unwrap();
    let out = Pipeline::from_iter([json!(1), json!(-1), json!(2.5)])
        .pipe(stage)
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [json!(2.0), json!(5.0)]);
    let e = registry.build("scale", &json!({"by": "x"})).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn etl_extracts_transforms_and_loads() {
    #[derive(Clone, Default)]
    struct Rows(Arc<Mutex<Vec<u64>>>);
    impl weir::Sink<u64> for Rows {
        type Error = BoxError;
        async fn write(&mut self, x: u64) -> Result<(), BoxError> {
            self.0.lock().unwrap().push(x);
            Ok(())
        }
    }
    let rows = Rows::default();
    let transform = compose::filter("even", |x: &u64| x % 2 == 0) >> compose::map("square", |x: u64| x * x);
    let report = compose::etl(0..10u64, transform, rows.clone())
        .run()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dropped), (5, 5));
    assert_eq!(*rows.0.lock().unwrap(), [0, 4, 16, 36, 64]);
    assert_eq!(report.stages[1].name, "even >> square");
}

#[tokio::test(start_paused = true)]
async fn hooks_run_in_order_and_async_ones_are_awaited() {
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (a, b, c, d) = (log.clone(), log.clone(), log.clone(), log.clone());
    let hooks = Hooks::new()
        .before_stage_async(move |stage, ctx| {
            let a = a.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                a.lock()
                    .unwrap()
                    .push(format!("before {stage} {}", ctx.stage().unwrap()));
            }
        })
        .on_error(move |e, ctx| {
            b.lock().unwrap().push(format!(
                "error {} {} {}",
                e.stage().unwrap(),
                e.item().unwrap(),
                ctx.stage().unwrap()
            ))
        })
        .after_stage_async(move |r, _| {
            let c = c.clone();
            async move { c.lock().unwrap().push(format!("after {} {}", r.name, r.failed)) }
        })
        .on_complete(move |r, _| d.lock().unwrap().push(format!("complete {:?}", r.outcome)));
    let ledger = Ledger::default();
    PipelineBuilder::new()
        .hooks(hooks)
        .error_policy(ErrorPolicy::Skip)
        .from_acked(ledger.source(10))
        .pipe(picky())
        .run()
        .await
        .unwrap();
    ledger.assert_exactly_once();
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "before source#0 source#0",
            "before picky picky",
            "before run#2 run#2",
            "error picky 3 picky",
            "error picky 4 picky",
            "error picky 8 picky",
            "error picky 9 picky",
            "after source#0 0",
            "after picky 4",
            "after run#2 0",
            "complete Completed",
        ]
    );
}

#[tokio::test]
async fn on_complete_does_not_run_when_the_run_fails() {
    let ran = Arc::new(Mutex::new(false));
    let r = ran.clone();
    let hooks = Hooks::new().on_complete(move |_, _| *r.lock().unwrap() = true);
    let err = PipelineBuilder::new()
        .hooks(hooks)
        .from_iter([3u64])
        .pipe(picky())
        .run()
        .await;
    assert!(err.is_err());
    assert!(!*ran.lock().unwrap());
}

#[tokio::test]
async fn a_panicking_hook_fails_the_run_and_loses_nothing() {
    let ledger = Ledger::default();
    let hooks = Hooks::new().on_error_async(|_, _| async { panic!("hook down") });
    let err = PipelineBuilder::new()
        .hooks(hooks)
        .error_policy(ErrorPolicy::Skip)
        .from_acked(ledger.source(100))
        .pipe(picky())
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert!(
        err.to_string().contains("a `on_error` hook panicked: hook down"),
        "{err}"
    );
    ledger.assert_exactly_once();
}

#[tokio::test]
async fn stages_share_metadata_through_the_context() {
    const SEEN: Key<Vec<u64>> = Key::new("seen");
    let ctx = Context::new("meta");
    let record = compose::from_fn("record", |x: u64, ctx: &Context, out: &mut Vec<u64>| {
        ctx.update(&SEEN, |v| v.get_or_insert_with(Vec::new).push(x));
        out.push(x);
        Ok::<_, BoxError>(())
    });
    let check = compose::from_fn("check", |x: u64, ctx: &Context, out: &mut Vec<usize>| {
        // What an earlier stage wrote is visible downstream.
        let n = ctx.get(&SEEN).map_or(0, |v| v.len());
        assert!(n as u64 > x);
        out.push(n);
        Ok::<_, BoxError>(())
    });
    let out = PipelineBuilder::new()
        .context(ctx.clone())
        .from_iter(0..3u64)
        .pipe(record)
        .pipe(check)
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [1, 2, 3]);
    assert_eq!(ctx.get(&SEEN), Some(vec![0, 1, 2]));
}

#[tokio::test]
async fn each_run_gets_its_own_context_id() {
    let ids = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..2 {
        let ids = ids.clone();
        let hooks = Hooks::new().on_complete(move |_, ctx| ids.lock().unwrap().push(ctx.id().to_owned()));
        PipelineBuilder::new()
            .name("twice")
            .hooks(hooks)
            .from_iter(0..1)
            .run()
            .await
            .unwrap();
    }
    let ids = ids.lock().unwrap();
    assert!(ids[0].starts_with("twice-") && ids[1].starts_with("twice-"));
    assert_ne!(ids[0], ids[1]);
}

/// Guards against the per-item hook running anywhere but around its
/// stage's work on each item: with fused stages, before and after
/// interleave item by item, each with the hooked stage's context; a
/// sample runs on every nth item.
#[tokio::test]
async fn per_item_hooks_run_immediately_around_each_item_of_their_stage() {
    use weir::Sample;
    let log = Arc::new(Mutex::new(Vec::new()));
    let (b, a, s) = (log.clone(), log.clone(), log.clone());
    let out = Pipeline::from_iter(1..=3)
        .before_each(Sample::ALL, move |x, ctx| {
            b.lock().unwrap().push(format!("{} <- {x}", ctx.stage().unwrap()))
        })
        .map(|x| x * 10)
        .name("tens")
        .after_each(Sample::ALL, move |x, ctx| {
            a.lock().unwrap().push(format!("{} -> {x}", ctx.stage().unwrap()))
        })
        .filter(|_| true)
        .after_each(Sample::every(2), move |x, _| {
            s.lock().unwrap().push(format!("sampled {x}"))
        })
        .collect()
        .await
        .unwrap();
    assert_eq!(out, [10, 20, 30]);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "tens <- 1",
            "tens -> 10",
            "sampled 10",
            "tens <- 2",
            "tens -> 20",
            "tens <- 3",
            "tens -> 30",
            "sampled 30"
        ]
    );
}

/// A panicking per-item hook fails the run, naming the hook and its
/// stage, as a panicking `Hooks` hook does.
#[tokio::test]
async fn a_panicking_per_item_hook_fails_the_run() {
    let err = Pipeline::from_iter(0..5)
        .map(|x| x + 1)
        .name("inc")
        .after_each(weir::Sample::ALL, |x, _| assert!(*x < 3, "too big"))
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert!(
        err.to_string()
            .contains("a `after_each` hook of stage `inc` panicked"),
        "{err}"
    );
}
