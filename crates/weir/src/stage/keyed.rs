//! Keyed async stages: `key_by(key).then(f)`, with per-key order and
//! parallelism across keys (Akka's `mapAsyncPartitioned`).
//!
//! The driver keeps one window of at most `concurrency` items: those
//! running and those parked because an earlier item of their key is still
//! running. A key is busy while one of its items runs; its parked items
//! wait in a queue of their own and start, one at a time, as the previous
//! one finishes. Results are emitted as they finish, so items of one key
//! leave in input order while different keys overtake each other.
//!
//! An item whose work is ready when first polled (started in a pinned slot
//! from a pool, as the other concurrent drivers do) never enters the
//! `FuturesUnordered` of running work: no allocation or task node per
//! item. Only pending work does, in its slot.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use futures::stream::FuturesUnordered;
use futures::StreamExt;

use super::resilience::with_policies;
use super::then::ThenWork;
use super::{guard, with_recovery, Flow, Plan, Push, SpawnWork, TaskCx, Wiring};
use crate::ack::Token;
use crate::error::BoxError;
use crate::pipeline::InfallibleFuture;
use crate::runtime::channel::Receiver;
use crate::runtime::Counters;
use crate::runtime::{current_waker, flush_all, route, settle, ChannelOut, ItemEvents, Slot, Work};
use crate::Pipeline;

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Partitions the items by `key` for the async stage that follows
    /// ([`KeyBy::then`] or [`KeyBy::try_then`]): items with the same key are
    /// processed one at a time, in input order, and emitted in input order;
    /// items with different keys run concurrently, up to the stage's
    /// [`concurrency`](Pipeline::concurrency), and are emitted as they
    /// finish. Use it for work that must not overlap per entity (updates to
    /// one account, one user's session) but may run in parallel across
    /// entities.
    ///
    /// A panic in `key` fails that item (error type `panic`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// // (user, delay in ms): user 1's slow first event does not hold up user 2.
    /// let events = [(1, 50u64), (2, 10), (1, 0), (2, 0)];
    /// let out = weir::Pipeline::from_iter(events)
    ///     .key_by(|(user, _)| *user)
    ///     .then(|(user, ms)| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         (user, ms)
    ///     })
    ///     .concurrency(4)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [(2, 10), (2, 0), (1, 50), (1, 0)]);
    /// # });
    /// ```
    pub fn key_by<K, KF>(self, key: KF) -> KeyBy<T, P, KF>
    where
        KF: FnMut(&T) -> K + Send + 'static,
        K: Hash + Eq + Clone + Send + 'static,
    {
        KeyBy { pipeline: self, key }
    }
}

/// The half-built keyed stage [`Pipeline::key_by`] returns: say what to do
/// with each item with [`then`](Self::then) or [`try_then`](Self::try_then).
///
/// # Examples
///
/// ```
/// use weir::{stage::{IterSource, KeyBy}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let events = [(1u32, "login"), (2, "login"), (1, "logout")];
/// let keyed: KeyBy<(u32, &str), IterSource<_>, _> = Pipeline::from_iter(events).key_by(|(user, _)| *user);
/// let out = keyed.then(|(user, what)| async move { format!("{user}:{what}") }).collect().await.unwrap();
/// let user1: Vec<_> = out.iter().filter(|e| e.starts_with("1:")).collect();
/// assert_eq!(user1, ["1:login", "1:logout"]); // in order, per user
/// # });
/// ```
#[must_use = "a keyed stage does nothing until `then` or `try_then` gives it work"]
pub struct KeyBy<T, P, KF> {
    pipeline: Pipeline<T, P>,
    key: KF,
}

impl<T, P: fmt::Debug, KF> fmt::Debug for KeyBy<T, P, KF> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBy")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

impl<T, P, KF, K> KeyBy<T, P, KF>
where
    T: Send + 'static,
    P: Plan<Out = T>,
    KF: FnMut(&T) -> K + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
{
    /// Transforms each item with an async function, one item per key at a
    /// time, in a task of its own. Set the number of items the stage holds
    /// with [`concurrency`](Pipeline::concurrency) (default 1) and a time
    /// limit per item with [`timeout`](Pipeline::timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let mut out = weir::Pipeline::from_iter(0..6u32)
    ///     .key_by(|x| x % 2)
    ///     .then(|x| async move { x * 10 })
    ///     .concurrency(2)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// out.sort();
    /// assert_eq!(out, [0, 10, 20, 30, 40, 50]);
    /// # });
    /// ```
    #[allow(clippy::type_complexity)] // an opaque closure adaptor, named by nobody
    pub fn then<U, Fut, F>(
        self,
        mut f: F,
    ) -> Pipeline<U, KeyedThen<P, KF, impl FnMut(T) -> InfallibleFuture<Fut> + Send + 'static>>
    where
        F: FnMut(T) -> Fut + Send + 'static,
        Fut: Future<Output = U> + Send + 'static,
        U: Send + 'static,
    {
        let f = move |item| InfallibleFuture::new(f(item));
        self.try_then(f)
    }

    /// Like [`then`](Self::then) with a fallible async function: an `Err`
    /// fails the item, routed by the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy). The next item of its key runs
    /// all the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::ErrorPolicy;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter(["a1", "a2", "bx", "b3"])
    ///     .key_by(|s| s.as_bytes()[0])
    ///     .try_then(|s| async move { s[1..].parse::<u8>() })
    ///     .concurrency(4)
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((r.delivered, r.failed), (3, 1));
    /// # });
    /// ```
    pub fn try_then<U, E, Fut, F>(self, f: F) -> Pipeline<U, KeyedThen<P, KF, F>>
    where
        F: FnMut(T) -> Fut + Send + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        E: Into<BoxError>,
        U: Send + 'static,
    {
        let key = self.key;
        self.pipeline
            .stage("key_by", |prev, idx| KeyedThen { prev, key, f, idx })
    }
}

/// The plan node of [`KeyBy::then`] and [`KeyBy::try_then`]: an async
/// stage in a task of its own, one item per key at a time.
///
/// # Examples
///
/// ```
/// use weir::{stage::{IterSource, KeyedThen}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u32, KeyedThen<IterSource<_>, _, _>> = Pipeline::from_iter([1u32, 2, 3, 4])
///     .key_by(|x| x % 2)
///     .then(|x| async move { x * 10 })
///     .concurrency(2);
/// let mut out = p.collect().await.unwrap();
/// out.sort();
/// assert_eq!(out, [10, 20, 30, 40]);
/// # });
/// ```
#[must_use]
pub struct KeyedThen<P, KF, F> {
    prev: P,
    key: KF,
    f: F,
    idx: usize,
}

impl<P: fmt::Debug, KF, F> fmt::Debug for KeyedThen<P, KF, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedThen")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, KF, K, F, Fut, U, E> Plan for KeyedThen<P, KF, F>
where
    P: Plan,
    KF: FnMut(&P::Out) -> K + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
    F: FnMut(P::Out) -> Fut + Send + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    E: Into<BoxError>,
    U: Send + 'static,
{
    type Out = U;
    type Intake = P::Intake;

    fn attach<D: Push<U>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let (tx, rx) = w.input_channel(self.idx);
        let n = w.spec(self.idx).concurrency;
        let (c, cx, work) = (w.counters(self.idx), w.cx(), ThenWork(self.f));
        let driver = Keyed {
            rx,
            key: self.key,
            down,
            c,
            cx,
            n,
            idx: self.idx,
        };
        with_policies!(w, self.idx, P::Out, work, |work| with_recovery(
            w, self.idx, work, driver
        ));
        let out = ChannelOut::new(tx, w.chunk_size());
        self.prev.attach(out, w);
    }
}

/// An item's work that was pending when first polled, in its pooled slot:
/// done, it gives back its result, token, key and slot.
struct KeyedRun<F, K> {
    slot: Option<Slot<F>>,
    token: Option<Token>,
    key: Option<K>,
}

impl<F: Future, K> Unpin for KeyedRun<F, K> {}

impl<F: Future, K> Future for KeyedRun<F, K> {
    type Output = (F::Output, Token, K, Slot<F>);

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let slot = this.slot.as_mut().expect("polled after completion");
        let out = std::task::ready!(slot.as_mut().as_pin_mut().expect("a running future").poll(task));
        slot.set(None);
        Poll::Ready((
            out,
            this.token.take().expect("polled after completion"),
            this.key.take().expect("polled after completion"),
            this.slot.take().expect("polled after completion"),
        ))
    }
}

/// Items waiting for their key, by key. A key is present while one of its
/// items runs.
struct Parked<K, T> {
    queues: HashMap<K, VecDeque<(T, Token)>>,
    len: usize,
}

impl<K: Hash + Eq + Clone, T> Parked<K, T> {
    /// Takes `item` in: `Some` with its key if the key is free (the caller
    /// starts it, and marks the key busy with [`occupy`](Self::occupy) if
    /// its work does not finish at once), `None` if it was parked behind
    /// its key's running item. One hash lookup.
    fn admit(&mut self, key: K, item: T, token: Token) -> Option<(T, Token, K)> {
        match self.queues.get_mut(&key) {
            Some(busy) => {
                busy.push_back((item, token));
                self.len += 1;
                None
            }
            None => Some((item, token, key)),
        }
    }

    /// Marks `key` busy: one of its items runs.
    fn occupy(&mut self, key: K) {
        self.queues.insert(key, VecDeque::new());
    }

    /// `key`'s running item finished: its next item, if one waits (the key
    /// stays busy), or the key is freed.
    fn release(&mut self, key: K) -> Option<(T, Token, K)> {
        let queue = self.queues.get_mut(&key)?;
        match queue.pop_front() {
            Some((item, token)) => {
                self.len -= 1;
                Some((item, token, key))
            }
            None => {
                self.queues.remove(&key);
                None
            }
        }
    }
}

/// Spawns [`run_keyed`] over a stage's work, recovered or not.
struct Keyed<T, KF, D> {
    rx: Receiver<T>,
    key: KF,
    down: D,
    c: Counters,
    cx: TaskCx,
    n: usize,
    idx: usize,
}

impl<T, K, KF, U, D> SpawnWork<T, U> for Keyed<T, KF, D>
where
    T: Send + 'static,
    KF: FnMut(&T) -> K + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
    U: Send + 'static,
    D: Push<U>,
{
    fn spawn<I, W: Work<T, Out = U>>(self, w: &mut Wiring<I>, work: W) {
        let Keyed {
            rx,
            key,
            down,
            c,
            cx,
            n,
            idx,
        } = self;
        if w.shared.config.event_level >= crate::event::EventLevel::Items {
            let work = ItemEvents {
                work,
                shared: w.shared.clone(),
                stage: idx,
            };
            w.spawn_stage(idx, run_keyed(rx, key, work, down, c, cx, n));
        } else {
            w.spawn_stage(idx, run_keyed(rx, key, work, down, c, cx, n));
        }
    }
}

async fn run_keyed<T, K, KF, W, D>(
    mut rx: Receiver<T>,
    mut key_fn: KF,
    mut work: W,
    mut down: D,
    c: Counters,
    mut cx: TaskCx,
    n: usize,
) where
    T: Send + 'static,
    KF: FnMut(&T) -> K + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
    W: Work<T>,
    D: Push<W::Out>,
{
    // Output is counted as it is routed: items held are neither out nor
    // failed yet.
    let mut c = c.into_explicit();
    let mut running = FuturesUnordered::new();
    let mut parked = Parked {
        queues: HashMap::new(),
        len: 0,
    };
    let mut done = VecDeque::new();
    // Items whose key came free (its running item finished), to start.
    let mut next_up: VecDeque<(T, Token, K)> = VecDeque::new();
    let mut pool: Vec<Slot<W::Fut>> = Vec::new();
    let mut input = Vec::new().into_iter();
    let mut input_done = false;
    // The finished item's result goes out; the next of its key is up.
    macro_rules! finished {
        ($finished:expr) => {{
            let (result, token, key, slot) = $finished;
            pool.push(slot);
            done.push_back((result, token));
            if let Some(next) = parked.release(key) {
                next_up.push_back(next);
            }
        }};
    }
    // Starts an item in a pooled slot and polls it once: a ready result
    // goes out, pending work joins `running` in its slot. `busy` says
    // whether the key is marked busy already (an item parked behind it,
    // now up): then the key's next parked item starts the same way when
    // this one is ready at once. A free key is marked busy only if the
    // work is pending, so a ready item costs one hash lookup (`admit`).
    macro_rules! launch {
        ($task:expr, $item:expr, $token:expr, $key:expr, $busy:expr) => {{
            let (mut item, mut token, mut key) = ($item, $token, $key);
            let busy: bool = $busy;
            loop {
                let mut slot = pool.pop().unwrap_or_else(|| Box::pin(None));
                match work.start_in(slot.as_mut(), item, crate::runtime::seq_of::<T, W>(&token), $task) {
                    Poll::Ready(result) => {
                        pool.push(slot);
                        done.push_back((result, token));
                        if !busy {
                            break;
                        }
                        match parked.release(key) {
                            Some(next) => (item, token, key) = next,
                            None => break,
                        }
                    }
                    Poll::Pending => {
                        if !busy {
                            parked.occupy(key.clone());
                        }
                        running.push(KeyedRun {
                            slot: Some(slot),
                            token: Some(token),
                            key: Some(key),
                        });
                        break;
                    }
                }
            }
        }};
    }
    loop {
        // 1. Start the items whose key came free, then take in what the
        // window allows from input already here.
        let waker = current_waker().await;
        {
            let mut task = Context::from_waker(&waker);
            while let Some((item, token, key)) = next_up.pop_front() {
                launch!(&mut task, item, token, key, true);
            }
            while running.len() + parked.len + done.len() < n {
                if let Some((item, token)) = input.next() {
                    c.items_in += 1;
                    match guard(|| key_fn(&item)) {
                        Ok(key) => {
                            if let Some((item, token, key)) = parked.admit(key, item, token) {
                                launch!(&mut task, item, token, key, false);
                            }
                        }
                        Err(e) => {
                            c.failed += 1;
                            cx.fail(c.stage(), token, e);
                        }
                    }
                } else if input_done {
                    break;
                } else {
                    match rx.try_recv() {
                        Ok(chunk) => input = chunk.into_iter(),
                        Err(finished) => {
                            input_done = finished;
                            break;
                        }
                    }
                }
            }
        }
        drop(waker);
        // 2. Collect what finished, without waiting.
        futures::future::poll_fn(|task| {
            while let Poll::Ready(Some(r)) = running.poll_next_unpin(task) {
                finished!(r);
            }
            Poll::Ready(())
        })
        .await;
        // 3. Route it downstream, up to a chunk.
        while let Some((result, token)) = done.pop_front() {
            route(result, token, &mut c, &mut down, &mut cx);
            if down.wants_flush() {
                break;
            }
        }
        if input_done && running.is_empty() && done.is_empty() && next_up.is_empty() && input.len() == 0 {
            break;
        }
        // 4. Ship what is buffered, still polling the work in flight.
        if down.has_pending() || cx.has_events() {
            let mut flush = pin!(flush_all(&mut down, &mut c, &mut cx));
            let flow = loop {
                tokio::select! {
                    biased;
                    flow = &mut flush => break flow,
                    Some(r) = running.next(), if !running.is_empty() => finished!(r),
                }
            };
            if flow == Flow::Stop {
                break;
            }
            continue;
        }
        let room = running.len() + parked.len + done.len() + next_up.len() < n;
        if !next_up.is_empty() || (room && input.len() > 0) {
            continue;
        }
        settle(&mut down, &mut c);
        // 5. Wait for a result, or for input if the window has room. Here
        // `done` is empty and either the window is full (so an item runs:
        // every parked item waits behind a running one) or no input is in
        // hand: one branch is always enabled.
        tokio::select! {
            Some(r) = running.next(), if !running.is_empty() => finished!(r),
            chunk = rx.recv(), if room && !input_done => match chunk {
                Some(chunk) => input = chunk.into_iter(),
                None => input_done = true,
            },
        }
    }
    settle(&mut down, &mut c);
    // The last round's failures were routed after the last flush.
    cx.flush_events().await;
    down.finish(&mut cx).await;
}
