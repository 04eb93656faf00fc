//! The quickstart: stream the bundled sample of 5,000 JSON events (a few of
//! them truncated on purpose) through parse → dedup → validate → filter →
//! async enrichment → blocking scoring → sink, watching the typed event
//! stream, then print the report (per-stage counts, latency percentiles,
//! utilization, the bottleneck and the end-to-end latency).
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use weir::{ErrorPolicy, EventKind, PipelineBuilder};

const SAMPLE: &str = include_str!("data/events.jsonl");

#[derive(Debug, Deserialize)]
struct Record {
    id: u64,
    user: String,
    kind: String,
    city: String,
    amount: f64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let totals: Arc<Mutex<BTreeMap<String, (u64, f64)>>> = Arc::default();
    let sink_totals = totals.clone();

    let events = PipelineBuilder::new()
        .name("quickstart")
        .progress_interval(Duration::from_millis(100))
        .from_iter(SAMPLE.lines().enumerate())
        .try_map(|(n, line)| serde_json::from_str::<Record>(line).map_err(|e| format!("line {}: {e}", n + 1)))
        .name("parse")
        .on_error(ErrorPolicy::Skip) // a bad line is reported, not fatal
        .dedup(|r| r.id) // a redelivered event counts once
        .validate(|r| {
            if r.amount.is_finite() {
                Ok(())
            } else {
                Err("amount is not a number")
            }
        })
        .on_error(ErrorPolicy::Skip)
        .filter(|r| r.kind == "purchase")
        .name("purchases")
        .then(|r| async move {
            // Stands in for an HTTP lookup: 64 run at once.
            tokio::time::sleep(Duration::from_micros(200)).await;
            let region = if r.city.len() % 2 == 0 { "even" } else { "odd" };
            (r, region)
        })
        .concurrency(64)
        .name("enrich")
        .blocking(|(r, region)| {
            // Stands in for CPU-heavy work on the blocking pool.
            let score = r
                .user
                .bytes()
                .fold(r.id, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
            (r.city, region, r.amount, score % 100)
        })
        .concurrency(2)
        .name("score")
        .for_each(move |(city, _region, amount, _score)| {
            let mut t = sink_totals.lock().unwrap();
            let e = t.entry(city).or_default();
            e.0 += 1;
            e.1 += amount;
        })
        .name("totals")
        .events();

    tokio::pin!(events);
    let mut ok = true;
    while let Some(event) = events.next().await {
        match event.kind {
            EventKind::ItemFailed {
                stage, item, error, ..
            } => {
                println!("skipped item {item} in `{stage}`: {error}");
            }
            EventKind::Progress(p) => println!(
                "progress: {} done, {} in flight, {:.0} items/s{}",
                p.completed,
                p.in_flight,
                p.rate,
                p.eta_seconds
                    .map(|s| format!(", ETA {s:.1}s"))
                    .unwrap_or_default()
            ),
            EventKind::PipelineFinished { report, error } => {
                println!("\n{report}");
                if let Some(error) = error {
                    eprintln!("error: {error}");
                    ok = false;
                }
            }
            _ => {}
        }
    }
    println!("purchases per city:");
    for (city, (n, sum)) in totals.lock().unwrap().iter() {
        println!("  {city:<8} {n:>4} purchases, {sum:>10.2} total");
    }
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
