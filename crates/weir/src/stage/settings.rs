//! The settings of the stages that make calls (`then`, `blocking`, keyed
//! `then`, sinks): retry, timeout, circuit breaker, concurrency and output
//! order, each written once for every node that takes it.
//!
//! Which node takes which setting is said by three sealed traits, so a
//! setting a stage cannot honour is a compile error (`concurrency` after
//! a `map`, `ordered` after a keyed stage, `retry` after a `filter`):
//!
//! | setting | trait | nodes |
//! | --- | --- | --- |
//! | `retry`, `timeout`, `circuit_breaker` | [`CallSettings`] | `Then`, `Blocking`, `KeyedThen`, `SinkStage` |
//! | `concurrency` | [`ConcurrencySettings`] | `Then`, `Blocking`, `KeyedThen`, `BranchJoin`, `TapAsync` |
//! | `ordered`, `unordered` | [`OrderSettings`] | `Then`, `Blocking`, `BranchJoin`, `TapAsync` |

use std::time::Duration;

use super::{Blocking, BranchJoin, KeyedThen, SinkStage, TapAsync, Then};
use crate::policy::{Breaker, Retry};
use crate::runtime::Plan;
use crate::runtime::RetrySpec;
use crate::Pipeline;

mod sealed {
    /// Only the nodes of this crate take settings: more may be added.
    #[allow(unreachable_pub)] // public in a private module: the seal
    pub trait Sealed {}
}

/// A stage whose items are calls, which takes
/// [`retry`](Pipeline::retry), [`timeout`](Pipeline::timeout) and
/// [`circuit_breaker`](Pipeline::circuit_breaker). Sealed: implemented by
/// [`Then`], [`Blocking`], [`KeyedThen`] and [`SinkStage`] only.
///
#[doc = include_str!("../../../../docs/resilience.md")]
pub trait CallSettings: sealed::Sealed {
    /// The items the stage takes: an attempt runs on a clone of one.
    type Input: Send + 'static;
}

/// A stage that works on several items at once, which takes
/// [`concurrency`](Pipeline::concurrency). Sealed: implemented by
/// [`Then`], [`Blocking`], [`KeyedThen`], [`BranchJoin`] and [`TapAsync`].
///
/// # Examples
///
/// ```
/// use weir::{stage::ConcurrencySettings, Pipeline};
///
/// // A helper that sets every concurrent stage it is given the same way.
/// fn wide<T, N: ConcurrencySettings>(p: Pipeline<T, N>) -> Pipeline<T, N> {
///     p.concurrency(4)
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let out = wide(Pipeline::from_iter(0..3).then(|x| async move { x + 1 })).collect().await.unwrap();
/// assert_eq!(out, [1, 2, 3]);
/// # });
/// ```
pub trait ConcurrencySettings: sealed::Sealed {}

/// A concurrent stage whose output order can be chosen, which takes
/// [`ordered`](Pipeline::ordered) and [`unordered`](Pipeline::unordered).
/// Sealed: implemented by [`Then`], [`Blocking`], [`BranchJoin`] and
/// [`TapAsync`] (a keyed stage keeps order within each key only).
///
/// # Examples
///
/// ```
/// use weir::{stage::OrderSettings, Pipeline};
///
/// fn as_they_finish<T, N: OrderSettings>(p: Pipeline<T, N>) -> Pipeline<T, N> {
///     p.concurrency(8).unordered()
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut out = as_they_finish(Pipeline::from_iter(0..3).then(|x| async move { x })).collect().await.unwrap();
/// out.sort();
/// assert_eq!(out, [0, 1, 2]);
/// # });
/// ```
pub trait OrderSettings: ConcurrencySettings {}

impl<P, F> sealed::Sealed for Then<P, F> {}
impl<P, F> sealed::Sealed for Blocking<P, F> {}
impl<P, K, F> sealed::Sealed for KeyedThen<P, K, F> {}
impl<P, S> sealed::Sealed for SinkStage<P, S> {}
impl<P, A> sealed::Sealed for BranchJoin<P, A> {}
impl<P, F> sealed::Sealed for TapAsync<P, F> {}

impl<P: Plan, F> CallSettings for Then<P, F> {
    type Input = P::Out;
}
impl<P: Plan, F> CallSettings for Blocking<P, F> {
    type Input = P::Out;
}
impl<P: Plan, K, F> CallSettings for KeyedThen<P, K, F> {
    type Input = P::Out;
}
impl<P: Plan, S> CallSettings for SinkStage<P, S> {
    type Input = P::Out;
}

impl<P, F> ConcurrencySettings for Then<P, F> {}
impl<P, F> ConcurrencySettings for Blocking<P, F> {}
impl<P, K, F> ConcurrencySettings for KeyedThen<P, K, F> {}
impl<P, A> ConcurrencySettings for BranchJoin<P, A> {}
impl<P, F> ConcurrencySettings for TapAsync<P, F> {}

impl<P, F> OrderSettings for Then<P, F> {}
impl<P, F> OrderSettings for Blocking<P, F> {}
impl<P, A> OrderSettings for BranchJoin<P, A> {}
impl<P, F> OrderSettings for TapAsync<P, F> {}

impl<T, N: CallSettings> Pipeline<T, N> {
    /// Retries items that fail in this stage, as `policy` says: with
    /// backoff, up to a number of attempts or a time, for the errors its
    /// classifier deems retryable (see [`Retry`]). The stage's
    /// [`timeout`](Pipeline::timeout) applies to each attempt; a timeout
    /// is retryable by default. An item that runs out of attempts fails
    /// with its last error, routed by the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy), and its
    /// [`Error::attempt`](crate::Error::attempt) says how many attempts it had.
    ///
    /// Each attempt runs the function on a clone of the item (hence
    /// `Clone`). An item waiting for its next attempt keeps its place in
    /// the [`concurrency`](Pipeline::concurrency) window but does not hold
    /// up other items: an unordered stage emits them as they finish, an
    /// ordered one only keeps them behind it in the output. Each retry is a
    /// [`RetryScheduled`](crate::EventKind::RetryScheduled) event and
    /// counts in the stage's [`retried`](crate::StageReport::retried).
    ///
    /// The runtime must have timers enabled (`enable_time`/`enable_all`).
    ///
    /// By default, a failed item is not retried.
    ///
    /// # Examples
    ///
    /// `then` stages:
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use weir::Retry;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let c = calls.clone();
    /// // Fails twice, then works.
    /// let flaky = move |x: u32| {
    ///     let n = c.fetch_add(1, Ordering::SeqCst);
    ///     async move { if n < 2 { Err("unavailable") } else { Ok(x * 10) } }
    /// };
    /// let started = tokio::time::Instant::now();
    /// let report = weir::Pipeline::from_iter([4u32])
    ///     .try_then(flaky)
    ///     .retry(Retry::exponential(Duration::from_millis(100)).full_jitter(false))
    ///     .name("fetch")
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(report.delivered, 1);
    /// assert_eq!(report.stage("fetch").unwrap().retried, 2);
    /// assert_eq!(started.elapsed(), Duration::from_millis(300)); // 100 + 200
    /// # });
    /// ```
    ///
    /// ## `blocking` stages
    ///
    /// The backoff waits are timers, not blocked threads.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::{ErrorPolicy, Retry};
    /// # tokio::runtime::Builder::new_multi_thread().enable_time().build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter(["1", "x"])
    ///     .try_blocking(|s| s.parse::<u8>())
    ///     .retry(Retry::fixed(Duration::from_millis(1)).max_attempts(2))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((r.delivered, r.failed, r.stages[1].retried), (1, 1, 1));
    /// # });
    /// ```
    ///
    /// ## Keyed stages
    ///
    /// A retrying item keeps its key busy: the next item of that key waits for it, so per-key order holds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::Retry;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// let out = weir::Pipeline::from_iter([(1, 'a'), (1, 'b')])
    ///     .key_by(|(k, _)| *k)
    ///     .try_then(move |(_, c)| {
    ///         let mut seen = s.lock().unwrap();
    ///         seen.push(c);
    ///         let first = seen.len() == 1;
    ///         async move { if first { Err("busy") } else { Ok(c) } }
    ///     })
    ///     .retry(Retry::fixed(Duration::from_millis(5)))
    ///     .concurrency(2)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, ['a', 'b']);
    /// assert_eq!(*seen.lock().unwrap(), ['a', 'a', 'b']);
    /// # });
    /// ```
    ///
    /// ## Sinks
    ///
    /// Retries a sink's failed writes and flushes, as `policy` says (see
    /// [`Retry`]): a failed [`write`](crate::Sink::write) is called again
    /// on a clone of the item after the backoff; a failed
    /// [`flush`](crate::Sink::flush) is called again (the sink must keep
    /// what it buffered across a failed flush for that to help). The sink
    /// takes no other item meanwhile. Retries are
    /// [`RetryScheduled`](crate::EventKind::RetryScheduled) events (for a
    /// flush, with the first item of the batch) and count in the stage's
    /// [`retried`](crate::StageReport::retried). A write or flush that
    /// outlives the stage's [`timeout`](Pipeline::timeout) is retried like
    /// a failed one, and with a [`circuit_breaker`](Pipeline::circuit_breaker)
    /// each write attempt asks the breaker again. By default, a failed
    /// write or flush is not retried.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::Retry;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let mut fails = 2;
    /// let r = weir::Pipeline::from_iter([1, 2])
    ///     .for_each_async(move |_| {
    ///         let result = if fails > 0 { fails -= 1; Err("connection reset") } else { Ok(()) };
    ///         async move { result }
    ///     })
    ///     .retry(Retry::fixed(Duration::from_millis(10)))
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((r.delivered, r.stages[1].retried), (2, 2));
    /// # });
    /// ```
    pub fn retry(mut self, policy: Retry) -> Self
    where
        N::Input: Clone,
    {
        self.last().retry = Some(RetrySpec::new::<N::Input>(policy));
        self
    }

    /// Fails an item whose future has not finished `limit` after it
    /// started (error type `timeout`, [`ErrorKind::Timeout`](crate::ErrorKind::Timeout)), routed by
    /// the stage's [`ErrorPolicy`](crate::ErrorPolicy); its future is
    /// dropped, which cancels it. The clock starts when the item's work
    /// starts, not when the item reaches the stage, so time spent waiting
    /// for room in the [`concurrency`](Pipeline::concurrency) window does
    /// not count. By default, no limit.
    ///
    /// The runtime must have timers enabled
    /// (`enable_time`/`enable_all`).
    ///
    /// # Examples
    ///
    /// `then` stages:
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::{ErrorKind, ErrorPolicy};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([10u64, 500, 20])
    ///     .then(|ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .timeout(Duration::from_millis(100))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [10, 20]);
    ///
    /// let err = weir::Pipeline::from_iter([500u64])
    ///     .then(|ms| async move { tokio::time::sleep(Duration::from_millis(ms)).await })
    ///     .timeout(Duration::from_millis(100))
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Timeout);
    /// assert_eq!(err.kind().as_str(), "timeout");
    /// # });
    /// ```
    ///
    /// ## `blocking` stages
    ///
    /// Fails an item whose blocking call has not returned `limit` after it
    /// started (error type `timeout`), routed by the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy). By default, no limit.
    ///
    /// A blocking call cannot be cancelled: the item fails and frees its
    /// place in the [`concurrency`](Pipeline::concurrency) window, but the
    /// call goes on running on tokio's blocking pool until it returns, and
    /// its result is thrown away. A stage whose calls keep timing out can
    /// therefore have more than `concurrency` calls running at once.
    ///
    /// The runtime must have timers enabled (`enable_time`/`enable_all`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::ErrorPolicy;
    /// # tokio::runtime::Builder::new_multi_thread().enable_time().build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter([0u64, 300])
    ///     .blocking(|ms| std::thread::sleep(Duration::from_millis(ms)))
    ///     .timeout(Duration::from_millis(100))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((r.delivered, r.failed), (1, 1));
    /// # });
    /// ```
    ///
    /// ## Keyed stages
    ///
    /// The next item of the timed-out item's key starts at once; the clock starts when the item's work starts, so time spent waiting behind earlier items of its key does not count.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::ErrorPolicy;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([(1, 10u64), (1, 500), (1, 20)])
    ///     .key_by(|(user, _)| *user)
    ///     .then(|(_, ms)| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .timeout(Duration::from_millis(100))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [10, 20]);
    /// # });
    /// ```
    ///
    /// ## Sinks
    ///
    /// Fails a sink's [`write`](crate::Sink::write) or
    /// [`flush`](crate::Sink::flush) that has not returned `limit` after
    /// it started (error type `timeout`, [`ErrorKind::Timeout`](crate::ErrorKind::Timeout),
    /// retryable by default); its future is dropped, which cancels it. A
    /// timed-out write or flush is a failed one: it goes through the
    /// stage's [`retry`](Pipeline::retry) policy, then its
    /// [`ErrorPolicy`](crate::ErrorPolicy),
    /// [`dead_letter`](Pipeline::dead_letter) sink or
    /// [`on_failure`](Pipeline::on_failure) handler, like a write or flush
    /// that returned an error.
    ///
    /// The limits apply as on a [`then`](Pipeline::then) stage: the retry
    /// policy is outermost and the limit is per attempt (each retry gets
    /// the full `limit` again; backoff waits do not count); with a
    /// [`circuit_breaker`](Pipeline::circuit_breaker), each write attempt
    /// first waits for the breaker (not counted either) and its timeout
    /// counts as a failed call.
    ///
    /// The runtime must have timers enabled (`enable_time`/`enable_all`).
    /// By default, no limit.
    ///
    /// A write that hangs past the limit once: without a retry the item
    /// fails with the timeout, with one its second attempt writes it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::{ErrorKind, Retry};
    ///
    /// // The first write hangs for a minute, later ones take 10 ms.
    /// fn slow_once() -> impl weir::Sink<u32> {
    ///     let mut first = true;
    ///     weir::sink_fn(move |_: u32| {
    ///         let wait = if std::mem::take(&mut first) { 60_000 } else { 10 };
    ///         async move {
    ///             tokio::time::sleep(Duration::from_millis(wait)).await;
    ///             Ok::<_, std::io::Error>(())
    ///         }
    ///     })
    /// }
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let err = weir::Pipeline::from_iter([1u32])
    ///     .sink(slow_once())
    ///     .timeout(Duration::from_millis(100))
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Timeout);
    ///
    /// let started = tokio::time::Instant::now();
    /// let r = weir::Pipeline::from_iter([1u32])
    ///     .sink(slow_once())
    ///     .timeout(Duration::from_millis(100))
    ///     .retry(Retry::fixed(Duration::from_millis(50)))
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((r.delivered, r.stages[1].retried), (1, 1));
    /// assert_eq!(started.elapsed(), Duration::from_millis(160)); // 100 + 50 + 10
    /// # });
    /// ```
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.last().timeout = Some(limit);
        self
    }

    /// Puts a circuit breaker in front of this stage's work (see
    /// [`Breaker`]): once too many calls fail, calls stop for a while and
    /// items wait (backpressure) or fail with
    /// [`ErrorKind::CircuitOpen`](crate::ErrorKind::CircuitOpen), until probes show the dependency is
    /// back. With a [`retry`](Pipeline::retry), each attempt is a call.
    ///
    /// The runtime must have timers enabled (`enable_time`/`enable_all`).
    ///
    /// By default, no breaker: every call is attempted.
    ///
    /// # Examples
    ///
    /// `then` stages:
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::{Breaker, ErrorKind, ErrorPolicy, WhenOpen};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter(0..10)
    ///     .try_then(|_: i32| async { Err::<(), _>("down") })
    ///     .circuit_breaker(
    ///         Breaker::new().window_count(4).min_calls(4).when_open(WhenOpen::Fail),
    ///     )
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// let stage = &r.stages[1];
    /// assert_eq!(stage.failed, 10); // 4 calls failed, then 6 items met the open circuit
    /// assert_eq!(stage.breaker_trips, 1);
    /// assert_eq!(stage.breaker.as_deref(), Some("open"));
    /// # let _ = ErrorKind::CircuitOpen;
    /// # });
    /// ```
    ///
    /// ## `blocking` stages
    ///
    /// ```
    /// use weir::{Breaker, ErrorPolicy, WhenOpen};
    /// # tokio::runtime::Builder::new_multi_thread().enable_time().build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter(["x", "y", "z"])
    ///     .try_blocking(|s| s.parse::<u8>())
    ///     .circuit_breaker(Breaker::new().min_calls(1).when_open(WhenOpen::Fail))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((r.failed, r.stages[1].breaker_trips), (3, 1));
    /// # });
    /// ```
    ///
    /// ## Keyed stages
    ///
    /// One breaker, shared by all keys.
    ///
    /// ```
    /// use weir::{Breaker, ErrorPolicy, WhenOpen};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter([1, 2, 3])
    ///     .key_by(|x| x % 2)
    ///     .try_then(|_| async { Err::<(), _>("down") })
    ///     .circuit_breaker(Breaker::new().min_calls(1).when_open(WhenOpen::Fail))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(r.stages[1].breaker.as_deref(), Some("open"));
    /// # });
    /// ```
    ///
    /// ## Sinks
    ///
    /// Puts a circuit breaker in front of a sink's writes (see
    /// [`Breaker`]): every [`write`](crate::Sink::write) attempt is a call,
    /// admitted by the breaker before it starts and its outcome (a
    /// returned error, a panic or a [`timeout`](Pipeline::timeout) is a
    /// failure) recorded after it. Once too many writes fail, the breaker
    /// opens: the sink stops writing and, as
    /// [`when_open`](Breaker::when_open) says, waits (backpressure reaches
    /// the source) or fails items at once with
    /// [`ErrorKind::CircuitOpen`](crate::ErrorKind::CircuitOpen), routed by the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy), dead-letter sink or failure
    /// handler; probes then show when the destination is back. Its state
    /// changes are [`StageStateChanged`](crate::EventKind::StageStateChanged)
    /// events and the stage's report has its trips and state, as for a
    /// [`then`](Pipeline::then) stage.
    ///
    /// The order is a `then` stage's: the [`retry`](Pipeline::retry)
    /// policy is outermost and each attempt asks the breaker again (an
    /// open circuit is not retried by default); the timeout limits the
    /// write itself, not the wait for the breaker. Flushes do not go
    /// through the breaker (a sink's default flush does nothing, and would
    /// count as a success): a sink that only talks to its destination in
    /// [`flush`](crate::Sink::flush) should fail its next write while the
    /// destination is down for the breaker to see it.
    ///
    /// The runtime must have timers enabled (`enable_time`/`enable_all`).
    /// By default, no breaker: every write is attempted.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use weir::{Breaker, ErrorPolicy, WhenOpen};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let writes = Arc::new(AtomicU32::new(0));
    /// let w = writes.clone();
    /// let r = weir::Pipeline::from_iter(0..10)
    ///     .for_each_async(move |_: i32| {
    ///         w.fetch_add(1, Ordering::SeqCst);
    ///         async { Err::<(), _>("connection refused") }
    ///     })
    ///     .circuit_breaker(
    ///         Breaker::new().window_count(4).min_calls(4).when_open(WhenOpen::Fail),
    ///     )
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(writes.load(Ordering::SeqCst), 4); // then 6 items met the open circuit
    /// let stage = &r.stages[1];
    /// assert_eq!((stage.failed, stage.breaker_trips), (10, 1));
    /// assert_eq!(stage.breaker.as_deref(), Some("open"));
    /// # });
    /// ```
    pub fn circuit_breaker(mut self, breaker: Breaker) -> Self {
        self.last().breaker = Some(breaker);
        self
    }
}

impl<T, N: ConcurrencySettings> Pipeline<T, N> {
    /// How many items the stage works on at once. By default, 1.
    ///
    /// On a keyed stage ([`key_by`](Pipeline::key_by)), `n` counts the items the stage holds: those running (at most one per key) plus those waiting for an earlier item of their key to finish; see the keyed example.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let started = tokio::time::Instant::now();
    /// let out = weir::Pipeline::from_iter(0..8u64)
    ///     .then(|x| async move {
    ///         tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    ///         x
    ///     })
    ///     .concurrency(8) // all eight sleep at once
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, (0..8).collect::<Vec<_>>());
    /// // On the paused clock of this example, exactly one sleep's time.
    /// assert_eq!(started.elapsed(), std::time::Duration::from_millis(50));
    /// # });
    /// ```
    ///
    /// ## Keyed stages
    ///
    /// How many items the keyed stage holds at once: those running (at
    /// most one per key) plus those waiting for an earlier item of their
    /// key to finish. By default, 1 (one item at a time, whatever its key).
    ///
    /// Parked items count against the window so that memory stays bounded
    /// whatever the key distribution: the stage holds at most `n` items
    /// (running, parked, or finished and not yet passed on), plus the chunk
    /// of input it is reading and a chunk of output waiting to be shipped,
    /// as any concurrent stage does. The price is head-of-line blocking under
    /// skew: when the window is full of one hot key's items, only one of
    /// them runs until the window frees up.
    ///
    /// Output keeps input order within each key; across keys, items leave
    /// as they finish (there is no `ordered` setting for keyed stages).
    ///
    /// ```
    /// use std::time::Duration;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let started = tokio::time::Instant::now();
    /// let out = weir::Pipeline::from_iter(0..8u64)
    ///     .key_by(|x| *x) // eight keys: all eight run at once
    ///     .then(|x| async move {
    ///         tokio::time::sleep(Duration::from_millis(50)).await;
    ///         x
    ///     })
    ///     .concurrency(8)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out.len(), 8);
    /// assert_eq!(started.elapsed(), Duration::from_millis(50));
    /// # });
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[track_caller]
    pub fn concurrency(mut self, n: usize) -> Self {
        assert!(n > 0, "Pipeline::concurrency must be at least 1");
        self.last().concurrency = n;
        self
    }
}

impl<T, N: OrderSettings> Pipeline<T, N> {
    /// Emit items in input order, holding back those that finish
    /// early (at most `concurrency` of them). The default.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([30u64, 10, 20])
    ///     .then(|ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await; // a call of varying latency
    ///         ms
    ///     })
    ///     .concurrency(3)
    ///     .ordered()
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [30, 10, 20]); // input order, although 10 finished first
    /// # });
    /// ```
    pub fn ordered(mut self) -> Self {
        self.last().ordered = true;
        self
    }

    /// Emit items as they finish.
    ///
    /// By default, stages emit in input order ([`ordered`](Pipeline::ordered)).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([40u64, 0, 20])
    ///     .then(|ms| async move {
    ///         tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .concurrency(3)
    ///     .unordered()
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [0, 20, 40]);
    /// # });
    /// ```
    pub fn unordered(mut self) -> Self {
        self.last().ordered = false;
        self
    }
}
