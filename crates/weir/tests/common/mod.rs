//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use weir::{Ack, Acked, Acker, Status};

/// Records every finalization an acknowledging source receives.
#[derive(Clone, Default)]
pub struct Ledger {
    calls: Arc<Mutex<Vec<(u64, Status)>>>,
    pulled: Arc<AtomicU64>,
}

impl Ledger {
    pub fn acker(&self) -> Arc<dyn Acker> {
        let calls = self.calls.clone();
        Arc::new(move |id, status| calls.lock().unwrap().push((id, status)))
    }

    /// A stream of `n` acked items `0..n`; counts what the pipeline pulls.
    pub fn source(&self, n: u64) -> impl futures::Stream<Item = Acked<u64>> + Send + 'static {
        let acker = self.acker();
        let pulled = self.pulled.clone();
        futures::stream::iter((0..n).map(move |i| {
            pulled.fetch_add(1, Ordering::SeqCst);
            Acked::new(i, Ack::new(i, acker.clone()))
        }))
    }

    pub fn pulled(&self) -> u64 {
        self.pulled.load(Ordering::SeqCst)
    }

    pub fn calls(&self) -> Vec<(u64, Status)> {
        self.calls.lock().unwrap().clone()
    }

    /// [`assert_exactly_once`](Self::assert_exactly_once), and each id
    /// finalized with `failing`'s status if `failing(id)`, else delivered.
    #[track_caller]
    pub fn assert_each(&self, failing: impl Fn(u64) -> bool, status: Status) {
        for (id, got) in self.assert_exactly_once() {
            let want = if failing(id) { status } else { Status::Delivered };
            assert_eq!(got, want, "item {id}");
        }
    }

    /// Every pulled id finalized exactly once, and nothing else: returns
    /// each id's status.
    #[track_caller]
    pub fn assert_exactly_once(&self) -> HashMap<u64, Status> {
        let mut seen = HashMap::new();
        for (id, status) in self.calls() {
            if let Some(prev) = seen.insert(id, status) {
                panic!("item {id} finalized twice: {prev:?} then {status:?}");
            }
        }
        let pulled = self.pulled();
        assert_eq!(
            seen.len() as u64,
            pulled,
            "pulled {pulled} items, finalized {}",
            seen.len()
        );
        assert!(
            seen.keys().all(|id| *id < pulled),
            "finalized an item never pulled"
        );
        seen
    }

    pub fn count(&self, status: Status) -> usize {
        self.calls().iter().filter(|(_, s)| *s == status).count()
    }
}

/// A counter of items pulled from an iterator source.
pub fn counted(n: u64, pulled: Arc<AtomicU64>) -> impl Iterator<Item = u64> + Send + 'static {
    (0..n).inspect(move |_| {
        pulled.fetch_add(1, Ordering::SeqCst);
    })
}

/// An async sink for `for_each_async` that takes one permit of `gate` per
/// item: it stalls until the test adds permits.
pub fn gated<T>(
    gate: Arc<tokio::sync::Semaphore>,
) -> impl FnMut(T) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), std::io::Error>> + Send>>
       + Send
       + 'static {
    move |_| {
        let g = gate.clone();
        Box::pin(async move {
            g.acquire().await.unwrap().forget();
            Ok(())
        })
    }
}

/// Waits (on the paused clock) until a pipeline behind a stalled sink
/// stops pulling, checks it stopped between `floor` and `bound` items and
/// stays there, and returns how many it pulled.
#[track_caller]
pub fn assert_stalls(
    pulled: &AtomicU64,
    bound: u64,
    floor: u64,
) -> impl std::future::Future<Output = u64> + '_ {
    let caller = std::panic::Location::caller();
    async move {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let stalled_at = pulled.load(Ordering::SeqCst);
        assert!(
            stalled_at <= bound,
            "pulled {stalled_at} > bound {bound} ({caller})"
        );
        assert!(
            stalled_at >= floor,
            "the pipeline should fill its buffers ({caller})"
        );
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        assert_eq!(
            pulled.load(Ordering::SeqCst),
            stalled_at,
            "the source kept pulling ({caller})"
        );
        stalled_at
    }
}
