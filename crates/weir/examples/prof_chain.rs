//! Scratch profiling driver (not committed).
use std::future::ready;
use std::hint::black_box;
use std::time::Instant;
use weir::Pipeline;

fn triple(x: u64) -> u64 {
    x.wrapping_mul(3)
}
fn keep(x: &u64) -> bool {
    x & 4 == 0
}
fn inc(x: u64) -> u64 {
    x.wrapping_add(1)
}
fn add(a: u64, x: u64) -> u64 {
    a.wrapping_add(x)
}

#[inline(never)]
fn hand(n: u64) -> u64 {
    let mut acc = 0u64;
    for x in 0..black_box(n) {
        let y = triple(x);
        if keep(&y) {
            acc = add(acc, inc(y));
        }
    }
    black_box(acc)
}

async fn fused(n: u64) -> u64 {
    Pipeline::from_iter(0..n)
        .map(triple)
        .filter(keep)
        .map(inc)
        .fold(0u64, add)
        .await
        .unwrap()
}
async fn tasks(n: u64) -> u64 {
    Pipeline::from_iter(0..n)
        .then(|x| ready(triple(x)))
        .then(|x| ready(Some(x).filter(keep)))
        .filter_map(|o| o)
        .then(|x| ready(inc(x)))
        .fold(0u64, add)
        .await
        .unwrap()
}
async fn tasks16(n: u64) -> u64 {
    Pipeline::from_iter(0..n)
        .then(|x| ready(triple(x)))
        .concurrency(16)
        .then(|x| ready(Some(x).filter(keep)))
        .concurrency(16)
        .filter_map(|o| o)
        .then(|x| ready(inc(x)))
        .concurrency(16)
        .fold(0u64, add)
        .await
        .unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("all");
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let want = hand(n);
    for r in 0..rounds {
        let mut line = format!("round {r}:");
        let mut t = |name: &str, f: &mut dyn FnMut() -> u64| {
            if which != "all" && !which.split(',').any(|w| w == name) {
                return;
            }
            let s = Instant::now();
            let got = f();
            let e = s.elapsed().as_secs_f64();
            assert_eq!(got, want, "{name}");
            line += &format!(" {name}={:.2}ns", e * 1e9 / n as f64);
        };
        t("hand", &mut || hand(n));
        t("fused", &mut || multi.block_on(fused(n)));
        t("tasks", &mut || multi.block_on(tasks(n)));
        t("tasks1", &mut || single.block_on(tasks(n)));
        t("tasks16", &mut || multi.block_on(tasks16(n)));
        println!("{line}");
    }
}
