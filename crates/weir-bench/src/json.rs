//! The `json` suite: JSON lines parsed, filtered, mapped and serialised.
//!
//! The input is N generated lines of about 200 bytes, each an event object
//! (id, user, kind among four values, amount, a tags array, a nested
//! object); one line in 1000 is cut short, so it fails to parse and is
//! skipped. The lines are generated once per run of the suite, untimed.
//! Every variant parses each line into an `Event`, keeps the purchases (a
//! quarter), maps each to a `Summary`, serialises it and sums the output's
//! bytes (the checksum):
//!
//! | row | what |
//! |---|---|
//! | `serde-loop` | a `for` loop over the lines with `serde_json` |
//! | `weir-json` | `from_iter(0..n)` → `try_map(parse).on_error(Skip)` → `filter` → `map` → `try_map(to_string)` → `fold`: one fused loop |
//! | `weir-json-blocking` | the same with the parse as `try_blocking(parse).concurrency(2)`: each line a job on tokio's blocking pool |
//!
//! The weir rows' ratio is their time ÷ `serde-loop`'s (paired by round).
//! The weir variants run on a two-worker runtime, `serde-loop` on the
//! calling thread. The sources index a shared `Arc<Vec<String>>`: a
//! pipeline's items must be `'static`, and indexing keeps the lines
//! unowned, as the loop's are.

use std::hint::black_box;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weir::{ErrorPolicy, Pipeline};

use crate::report::{interleave, Reporter, Row, Sample, Variant};
use crate::Options;

const SUITE: &str = "json";
/// Parse jobs in flight in `weir-json-blocking`.
const BLOCKING_CONCURRENCY: usize = 2;
/// One line in this many is malformed.
const BAD_EVERY: usize = 1000;
/// The kinds of event, equally frequent; the variants keep the first.
const KINDS: [&str; 4] = ["purchase", "view", "click", "refund"];

/// Lines per run.
fn items(quick: bool) -> usize {
    if quick {
        20_000
    } else {
        1_000_000
    }
}

/// An input line.
#[derive(Debug, Deserialize)]
struct Event {
    id: u64,
    user: String,
    kind: String,
    amount: f64,
    tags: Vec<String>,
    meta: Meta,
}

/// An event's nested object.
#[derive(Debug, Deserialize)]
struct Meta {
    region: String,
    device: String,
    session: String,
    ts: u64,
}

/// An output line.
#[derive(Debug, Serialize)]
struct Summary {
    id: u64,
    user: String,
    cents: u64,
    tags: usize,
    region: String,
    mobile: bool,
    session: String,
    ts: u64,
}

/// The filter.
fn is_purchase(e: &Event) -> bool {
    e.kind == "purchase"
}

/// The map.
fn summarize(e: Event) -> Summary {
    Summary {
        id: e.id,
        user: e.user,
        cents: (e.amount * 100.0).round() as u64,
        tags: e.tags.len(),
        region: e.meta.region,
        mobile: e.meta.device != "desktop",
        session: e.meta.session,
        ts: e.meta.ts,
    }
}

/// A deterministic pseudo-random number for line `i`, field `salt`
/// (splitmix64).
fn noise(i: usize, salt: u64) -> u64 {
    let mut z = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` JSON lines of about 200 bytes.
fn lines(n: usize) -> Vec<String> {
    const TAGS: [&str; 6] = ["mobile", "promo", "eu", "returning", "beta", "gift"];
    const REGIONS: [&str; 4] = ["eu-west-1", "us-east-1", "ap-south-1", "sa-east-1"];
    const DEVICES: [&str; 3] = ["android", "ios", "desktop"];
    (0..n)
        .map(|i| {
            let pick = |salt, len| (noise(i, salt) % len) as usize;
            let amount = noise(i, 3) % 100_000;
            let tags: Vec<String> = (0..1 + pick(4, 3))
                .map(|t| format!("\"{}\"", TAGS[pick(5 + t as u64, 6)]))
                .collect();
            let mut line = format!(
                "{{\"id\":{},\"user\":\"user-{:05}\",\"kind\":\"{}\",\"amount\":{}.{:02},\"tags\":[{}],\
                 \"meta\":{{\"region\":\"{}\",\"device\":\"{}\",\"session\":\"{:016x}\",\"ts\":{}}}}}",
                1_000_000 + i,
                pick(1, 50_000),
                KINDS[pick(2, 4)],
                amount / 100,
                amount % 100,
                tags.join(","),
                REGIONS[pick(8, 4)],
                DEVICES[pick(9, 3)],
                noise(i, 10),
                1_700_000_000 + i as u64,
            );
            if i % BAD_EVERY == BAD_EVERY - 1 {
                line.truncate(line.len() / 2);
            }
            line
        })
        .collect()
}

/// `serde-loop`.
#[inline(never)]
fn serde_loop(lines: &[String]) -> Result<u64, serde_json::Error> {
    let mut bytes = 0u64;
    for line in lines {
        let Ok(event) = serde_json::from_str::<Event>(line) else {
            continue;
        };
        if is_purchase(&event) {
            bytes += serde_json::to_string(&summarize(event))?.len() as u64;
        }
    }
    Ok(black_box(bytes))
}

/// `weir-json`.
async fn weir_json(lines: Arc<Vec<String>>) -> Result<u64, weir::Error> {
    Pipeline::from_iter(0..lines.len())
        .try_map(move |i| serde_json::from_str::<Event>(&lines[i]))
        .on_error(ErrorPolicy::Skip)
        .filter(is_purchase)
        .map(summarize)
        .try_map(|s| serde_json::to_string(&s))
        .fold(0u64, |bytes, out| bytes + out.len() as u64)
        .await
}

/// `weir-json-blocking`.
async fn weir_json_blocking(lines: Arc<Vec<String>>) -> Result<u64, weir::Error> {
    Pipeline::from_iter(0..lines.len())
        .try_blocking(move |i| serde_json::from_str::<Event>(&lines[i]))
        .concurrency(BLOCKING_CONCURRENCY)
        .on_error(ErrorPolicy::Skip)
        .filter(is_purchase)
        .map(summarize)
        .try_map(|s| serde_json::to_string(&s))
        .fold(0u64, |bytes, out| bytes + out.len() as u64)
        .await
}

pub(crate) fn run(opts: &Options, out: &mut Reporter) -> Result<(), String> {
    let n = items(opts.quick);
    let input = Arc::new(lines(n));
    let mean_len = input.iter().map(String::len).sum::<usize>() as f64 / n as f64;
    let rt = crate::multi_thread();
    let mut variants = vec![
        Variant::new("serde-loop", || {
            Sample::try_time(|| serde_loop(black_box(&input)))
        }),
        Variant::new("weir-json", || {
            Sample::try_time(|| rt.block_on(weir_json(black_box(input.clone()))))
        }),
        Variant::new("weir-json-blocking", || {
            Sample::try_time(|| rt.block_on(weir_json_blocking(black_box(input.clone()))))
        }),
    ];
    let s = interleave(SUITE, opts.rounds, true, &mut variants)?;
    drop(variants);
    let expected = serde_loop(&input).map_err(|e| e.to_string())?;
    for name in s.names() {
        s.expect_check(name, expected)?;
    }
    let base = "serde-loop";
    let row = |name: &str| Row::new(SUITE, name, n as u64, Some(s.median_seconds(name)));
    let ratio = |a: &str, b: &str| s.paired(a, b, |x, y| x.seconds / y.seconds);
    out.rows(&[
        row(base),
        row("weir-json").against(base, ratio("weir-json", base)),
        row("weir-json-blocking")
            .against(base, ratio("weir-json-blocking", base))
            .with("vs_weir_json", ratio("weir-json-blocking", "weir-json")),
    ]);
    out.note(&format!(
        "json: ratio = time ÷ serde-loop's time (paired by round); {n} lines of {mean_len:.0} bytes on \
         average, 1 in {BAD_EVERY} malformed (skipped), {expected} output bytes; weir-json-blocking \
         parses on the blocking pool, {BLOCKING_CONCURRENCY} lines at a time"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_writes_the_same_bytes() {
        let input = Arc::new(lines(3_000));
        let want = serde_loop(&input).unwrap();
        assert!(want > 0);
        let rt = crate::multi_thread();
        assert_eq!(rt.block_on(weir_json(input.clone())).unwrap(), want);
        assert_eq!(rt.block_on(weir_json_blocking(input)).unwrap(), want);
    }

    #[test]
    fn the_lines_are_about_200_bytes_and_one_in_a_thousand_is_bad() {
        let input = lines(10_000);
        let parsed: Vec<Event> = input
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert_eq!(parsed.len(), 10_000 - 10);
        let mean = input.iter().map(String::len).sum::<usize>() / input.len();
        assert!((170..=230).contains(&mean), "mean line length {mean}");
        let purchases = parsed.iter().filter(|e| is_purchase(e)).count();
        assert!((2_000..3_000).contains(&purchases), "{purchases} purchases");
        assert_eq!(lines(5), lines(5));
    }
}
