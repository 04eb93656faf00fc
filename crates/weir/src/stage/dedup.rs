use std::fmt;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::time::Duration;

use lru::LruCache;
use tokio::time::Instant;

use super::{guard, Flow, Plan, Push, TaskCx, Wiring};
use crate::ack::{Status, Token};
use crate::pipeline::Pipeline;
use crate::runtime::Counters;

/// How many keys [`Pipeline::dedup`] remembers unless told otherwise.
const DEFAULT_CAPACITY: usize = 100_000;

/// The plan node of [`Pipeline::dedup`]; configure it with
/// [`capacity`](Pipeline::capacity) and [`ttl`](Pipeline::ttl).
///
/// # Examples
///
/// ```
/// use weir::{stage::{Dedup, IterSource}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<&str, Dedup<IterSource<_>, _>> =
///     Pipeline::from_iter(["a", "b", "a", "c", "b"]).dedup(|s| s.to_owned()).capacity(100);
/// assert_eq!(p.collect().await.unwrap(), ["a", "b", "c"]);
/// # });
/// ```
#[must_use]
pub struct Dedup<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) capacity: NonZeroUsize,
    pub(crate) ttl: Option<Duration>,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, F> fmt::Debug for Dedup<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dedup")
            .field("prev", &self.prev)
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<P, F, K> Plan for Dedup<P, F>
where
    P: Plan,
    F: FnMut(&P::Out) -> K + Send + 'static,
    K: Hash + Eq + Send + 'static,
{
    type Out = P::Out;
    type Intake = P::Intake;

    fn attach<D: Push<P::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let step = DedupStep {
            f: self.f,
            // Sparse: the table grows with the keys actually seen instead
            // of reserving `capacity` slots up front.
            seen: LruCache::sparse(self.capacity),
            ttl: self.ttl,
            now: None,
            down,
            c: w.counters(self.idx),
        };
        self.prev.attach(step, w);
    }
}

struct DedupStep<K, F, D> {
    f: F,
    /// Each remembered key and, with a ttl, when it last passed.
    seen: LruCache<K, Option<Instant>>,
    ttl: Option<Duration>,
    /// The clock, read once per chunk: items between two settles are
    /// processed without an await, so they may share one reading.
    now: Option<Instant>,
    down: D,
    c: Counters,
}

impl<K, F, D> DedupStep<K, F, D>
where
    K: Hash + Eq,
{
    /// Whether `key` passes: unseen, forgotten, or expired. Remembers it
    /// (as the most recently used key) either way.
    #[inline]
    fn admit(&mut self, key: K) -> bool {
        let now = match self.ttl {
            Some(_) => Some(*self.now.get_or_insert_with(Instant::now)),
            None => None,
        };
        let mut fresh = false;
        let passed = self.seen.get_or_insert_mut(key, || {
            fresh = true;
            now
        });
        if let (false, Some(ttl), Some(at), Some(now)) = (fresh, self.ttl, *passed, now) {
            if now.saturating_duration_since(at) >= ttl {
                *passed = Some(now);
                fresh = true;
            }
        }
        fresh
    }
}

impl<T, K, F, D> Push<T> for DedupStep<K, F, D>
where
    F: FnMut(&T) -> K + Send + 'static,
    K: Hash + Eq + Send + 'static,
    D: Push<T>,
{
    #[inline]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        // The key's own Hash and Eq are user code too: guard the lookup.
        match guard(|| {
            let key = (self.f)(&item);
            self.admit(key)
        }) {
            Ok(true) => self.down.push(item, token, cx),
            Ok(false) => {
                self.c.dropped += 1;
                token.finish(Status::Dropped);
            }
            Err(e) => {
                self.c.failed += 1;
                cx.fail(self.c.stage(), token, e);
            }
        }
    }

    #[inline]
    fn settle(&mut self, pushed: u64) {
        // The driver is about to await: time may pass before the next item.
        self.now = None;
        self.c.items_in += pushed;
        let out = self.c.publish();
        self.down.settle(out);
    }

    #[inline]
    fn wants_flush(&self) -> bool {
        self.down.wants_flush()
    }

    #[inline]
    fn has_pending(&self) -> bool {
        self.down.has_pending()
    }

    async fn flush(&mut self, cx: &mut TaskCx) -> Flow {
        self.down.flush(cx).await
    }

    async fn finish(self, cx: &mut TaskCx) {
        self.down.finish(cx).await
    }
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Drops items whose key (`key_fn(&item)`) was already seen, with
    /// bounded memory. Duplicates are finalized as
    /// [`Dropped`](crate::Status::Dropped) and counted as dropped.
    ///
    /// | Setting | Default |
    /// |---|---|
    /// | [`capacity`](Pipeline::capacity) | 100 000 keys |
    /// | [`ttl`](Pipeline::ttl) | none: keys are remembered until evicted |
    ///
    /// The trade-offs of bounded memory: the stage remembers at most
    /// `capacity` keys and forgets the least recently *seen* one to make
    /// room (a duplicate counts as seeing its key again), so a key that
    /// was evicted, or that expired after its `ttl`, passes again. Memory
    /// is O(`capacity`) keys whatever the stream's length; exact
    /// deduplication of an unbounded key space needs an external store.
    ///
    /// A panic in `key_fn` (or in the key's `Hash`/`Eq`) fails that item,
    /// routed by the stage's [`ErrorPolicy`](crate::ErrorPolicy).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter(["a1", "b1", "a2", "c1", "b2"])
    ///     .dedup(|s| s.as_bytes()[0])
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, ["a1", "b1", "c1"]);
    /// # });
    /// ```
    pub fn dedup<K, F>(self, key_fn: F) -> Pipeline<T, Dedup<P, F>>
    where
        F: FnMut(&T) -> K + Send + 'static,
        K: Hash + Eq + Send + 'static,
    {
        let capacity = NonZeroUsize::new(DEFAULT_CAPACITY).expect("a non-zero constant");
        self.stage("dedup", |prev, idx| Dedup {
            prev,
            f: key_fn,
            capacity,
            ttl: None,
            idx,
        })
    }
}

impl<T, P, F> Pipeline<T, Dedup<P, F>> {
    /// How many keys the [`dedup`](Pipeline::dedup) stage remembers; when
    /// full, it forgets the least recently seen key, which may then pass
    /// again. By default, 100 000.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([1, 2, 1, 3, 1])
    ///     .dedup(|x| *x)
    ///     .capacity(2)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// // 3 pushed out 2 (1 was seen more recently), so the last 1 is still a duplicate.
    /// assert_eq!(out, [1, 2, 3]);
    /// # });
    /// ```
    #[track_caller]
    pub fn capacity(mut self, n: usize) -> Self {
        self.plan.capacity = NonZeroUsize::new(n).expect("Pipeline::capacity (dedup) must be at least 1");
        self
    }

    /// How long the [`dedup`](Pipeline::dedup) stage suppresses a key
    /// after it passed; the key passes again once `ttl` has elapsed (on
    /// tokio's clock, read once per chunk). Duplicates do not extend it.
    /// By default, keys do not expire.
    ///
    /// # Panics
    ///
    /// If `ttl` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use tokio::time::{sleep_until, Instant};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let start = Instant::now();
    /// // (key, milliseconds since the start)
    /// let arrivals = futures::stream::iter([("a", 0), ("a", 10), ("b", 10), ("a", 60), ("a", 70)])
    ///     .then(move |(key, at)| async move {
    ///         sleep_until(start + Duration::from_millis(at)).await;
    ///         (key, at)
    ///     });
    /// let out = weir::Pipeline::from_stream(arrivals)
    ///     .dedup(|(key, _)| *key)
    ///     .ttl(Duration::from_millis(50))
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [("a", 0), ("b", 10), ("a", 60)]);
    /// # });
    /// ```
    #[track_caller]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        assert!(!ttl.is_zero(), "Pipeline::ttl (dedup) must be more than zero");
        self.plan.ttl = Some(ttl);
        self
    }
}
