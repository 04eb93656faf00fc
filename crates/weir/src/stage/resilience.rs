//! Retries and circuit breakers for concurrent stages:
//! `.then(f).retry(policy)`, `.then(f).circuit_breaker(breaker)`. Sinks
//! take the same settings (`.sink(s).retry(..)`, `.circuit_breaker(..)`)
//! and apply them in the same order in their own task (see `sink.rs`).
//!
//! Like [`timeout`](super::timeout), they are settings of the stage (in
//! its `StageSpec`), applied when the stage's driver is built: its work is
//! wrapped in [`Resilient`], outside the per-attempt `Timed` limit. An
//! item's whole life (attempts, waits for the breaker, backoff sleeps)
//! is its own future, so the stage's other items keep running while one
//! waits: an unordered stage emits them, an ordered stage holds back only
//! their emission order. Stages without these settings run the unwrapped
//! work.
//!
//! The windowed driver starts each item with [`Work::start_in`]: while
//! its attempts finish when first polled (a cache hit, a ready future),
//! the item runs in the driver's slot with the stage's own work, and a
//! failed attempt due for a retry at once (zero backoff, no event to send)
//! is retried right there. Such an item pays one clone of its input (for
//! a retry) and, with a breaker, its ticket per attempt: no shared count,
//! no lock, no boxed continuation. Only an item that has to wait (an
//! attempt pending, a backoff, an event, a breaker that is not closed)
//! holds the shared context ([`Ctx`], which has the work while any item
//! holds it) and goes on in its own future, in a boxed continuation
//! ([`recover`]) once an attempt failed. Other drivers (serial, keyed) and
//! wrappers (recovery, per-item events) start items with
//! [`Work::start`], whose futures always hold the context.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use super::{Blocking, KeyedThen, Plan, SinkStage, Then, Wiring};
use crate::error::{Error, ErrorKind};
use crate::event::EventKind;
use crate::policy::{Backoff, Breaker, CircuitBreaker, Retry, Ticket};
use crate::runtime::{Shared, Work};
use crate::Pipeline;

/// A stage's retry setting: the policy and how to copy the stage's input
/// for another attempt, recorded where the input type is known to be
/// `Clone`.
#[derive(Clone)]
pub(crate) struct RetrySpec {
    policy: Retry,
    /// A `fn(&T) -> T` for the stage's input type `T`.
    clone: Arc<dyn Any + Send + Sync>,
}

impl fmt::Debug for RetrySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.policy.fmt(f)
    }
}

impl RetrySpec {
    fn new<T: Clone + 'static>(policy: Retry) -> RetrySpec {
        let clone: fn(&T) -> T = T::clone;
        RetrySpec {
            policy,
            clone: Arc::new(clone),
        }
    }

    /// The running policy for input type `T`: `None` only if the setting
    /// was recorded for another type, which the setters' types rule out.
    pub(crate) fn start<T: 'static>(&self) -> Option<Retrier<T>> {
        let clone = *self.clone.downcast_ref::<fn(&T) -> T>()?;
        Some(Retrier {
            backoff: Backoff::new(self.policy.clone()),
            clone,
        })
    }
}

/// A stage's running retry policy for input type `T`.
#[derive(Debug)]
pub(crate) struct Retrier<T> {
    backoff: Backoff,
    clone: fn(&T) -> T,
}

impl<T> Retrier<T> {
    /// A copy of `item` for another attempt if attempt `attempt` may be
    /// followed by one.
    pub(crate) fn spare(&self, item: &T, attempt: u32) -> Option<T> {
        (attempt < self.backoff.policy.attempts()).then(|| (self.clone)(item))
    }

    /// The final error of an item whose last allowed attempt, `attempt`,
    /// failed with `e`.
    pub(crate) fn last(&self, e: Error, attempt: u32) -> Error {
        let retryable = self.backoff.policy.retryable(&e);
        e.with_attempt(attempt).with_retryable(retryable)
    }

    /// When the item's first attempt started, if the policy limits the
    /// time spent on an item.
    pub(crate) fn clock(&self) -> Option<Instant> {
        self.backoff.policy.elapsed_limit().map(|_| Instant::now())
    }

    /// Decides on attempt `attempt`'s failure `e`: `Ok` with the wait
    /// before the next attempt (jittered if the policy says so), or the
    /// item's final error. Either way the error says which attempt it
    /// was and whether it was retryable.
    pub(crate) fn decide(
        &self,
        e: Error,
        attempt: u32,
        started: Option<Instant>,
    ) -> Result<(Duration, Error), Error> {
        let policy = &self.backoff.policy;
        let retryable = policy.retryable(&e);
        let e = e.with_attempt(attempt).with_retryable(retryable);
        if !retryable || attempt >= policy.attempts() {
            return Err(e);
        }
        let delay = self.backoff.next_delay(attempt);
        if let (Some(max), Some(t0)) = (policy.elapsed_limit(), started) {
            if t0.elapsed().saturating_add(delay) > max {
                return Err(e);
            }
        }
        Ok((delay, e))
    }

    /// Counts a retry in stage `stage`'s `retried`.
    fn count(shared: &Shared, stage: usize) {
        shared.stages[stage]
            .metrics
            .retried
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A retry that [`decide`](Self::decide) scheduled after attempt
    /// `attempt` failed with `e`: counted, announced when events are on,
    /// and waited for.
    pub(crate) async fn wait(
        &self,
        e: &Error,
        delay: Duration,
        attempt: u32,
        shared: &Shared,
        stage: usize,
        seq: u64,
    ) {
        Self::count(shared, stage);
        if shared.events.is_some() {
            shared
                .emit(EventKind::RetryScheduled {
                    stage: shared.stages[stage].spec.name.clone(),
                    item: seq,
                    attempt,
                    delay_ms: delay.as_millis().try_into().unwrap_or(u64::MAX),
                    error: e.message().to_owned(),
                    error_type: e.kind().as_str().to_owned(),
                })
                .await;
        }
        // tokio's timers tick in milliseconds: a zero wait must not cost one.
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    /// Decides on attempt `attempt`'s failure `e` and waits as decided:
    /// `Ok` once the backoff has passed and the next attempt may start
    /// (counted, and announced when events are on), or the item's final
    /// error.
    pub(crate) async fn after_failure(
        &self,
        e: Error,
        attempt: u32,
        started: Option<Instant>,
        shared: &Shared,
        stage: usize,
        seq: u64,
    ) -> Result<(), Error> {
        let (delay, e) = self.decide(e, attempt, started)?;
        self.wait(&e, delay, attempt, shared, stage, seq).await;
        Ok(())
    }
}

/// Wraps a concurrent stage's work in its timeout, retry and breaker
/// settings, binds it to `$v` and evaluates `$spawn` (each combination is
/// its own type).
macro_rules! with_policies {
    ($w:ident, $idx:expr, $in:ty, $work:expr, |$v:ident| $spawn:expr) => {{
        let limit = $w.spec($idx).timeout;
        match $crate::stage::resilience::Resilience::<$in>::of($w, $idx) {
            None => match limit {
                None => {
                    let $v = $work;
                    $spawn
                }
                Some(limit) => {
                    let $v = $crate::stage::timeout::Timed::new($work, limit);
                    $spawn
                }
            },
            Some(r) => match limit {
                None => {
                    let $v = r.wrap($work);
                    $spawn
                }
                Some(limit) => {
                    let $v = r.wrap($crate::stage::timeout::Timed::new($work, limit));
                    $spawn
                }
            },
        }
    }};
}
pub(crate) use with_policies;

/// A stage's retry and breaker settings, ready to wrap its work.
pub(crate) struct Resilience<T> {
    retry: Option<Retrier<T>>,
    breaker: Option<Arc<CircuitBreaker>>,
    shared: Arc<Shared>,
    stage: usize,
}

impl<T: Send + 'static> Resilience<T> {
    /// The stage's settings, if it has any.
    pub(crate) fn of<I>(w: &Wiring<I>, stage: usize) -> Option<Resilience<T>> {
        let spec = w.spec(stage);
        let retry = spec.retry.as_ref().and_then(RetrySpec::start::<T>);
        let breaker = spec
            .breaker
            .clone()
            .map(|b| Arc::new(CircuitBreaker::new(b, w.shared.clone(), stage)));
        (retry.is_some() || breaker.is_some()).then(|| Resilience {
            retry,
            breaker,
            shared: w.shared.clone(),
            stage,
        })
    }

    pub(crate) fn wrap<W: Work<T>>(self, work: W) -> Resilient<T, W> {
        Resilient {
            own: Some(work),
            ctx: Arc::new(Ctx {
                work: Mutex::new(None),
                retry: self.retry,
                breaker: self.breaker,
                shared: self.shared,
                stage: self.stage,
            }),
        }
    }
}

/// What an item's future needs to go on after an attempt, shared by the
/// stage's futures that do: the settings, and the work.
struct Ctx<T, W> {
    /// The stage's work while futures hold this context (see
    /// [`Resilient`]). Locked only to start an attempt, never across an
    /// await.
    work: Mutex<Option<W>>,
    retry: Option<Retrier<T>>,
    breaker: Option<Arc<CircuitBreaker>>,
    shared: Arc<Shared>,
    stage: usize,
}

impl<T: Send + 'static, W: Work<T>> Ctx<T, W> {
    /// Starts an attempt with the shared work.
    fn start(&self, item: T, seq: u64) -> Result<W::Fut, Error> {
        match self.work.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            Some(work) => Ok(work.start(item, seq)),
            None => Err(Error::new(ErrorKind::Internal, "the stage's work is not shared")),
        }
    }

    /// One attempt: admitted by the breaker (perhaps after a wait), run,
    /// and its outcome recorded.
    async fn attempt(&self, item: T, seq: u64) -> Result<W::Out, Error> {
        let ticket = match &self.breaker {
            Some(b) => Some(b.admit().await?),
            None => None,
        };
        let result = match self.start(item, seq) {
            Ok(fut) => fut.await,
            Err(e) => Err(e),
        };
        if let (Some(ticket), Some(b)) = (ticket, &self.breaker) {
            if ticket.record(result.is_ok()) {
                b.send_events().await;
            }
        }
        result
    }
}

/// A concurrent stage's work with retries and/or a circuit breaker.
///
/// The stage owns its work (`own`) while no item's future needs it. The
/// windowed driver starts items with [`start_in`](Work::start_in): an
/// item whose attempts finish when first polled is started, retried (if
/// its backoff is zero and no event is due) and finished there, with
/// nothing shared or locked. An item whose future outlives that
/// call (an attempt pending, a backoff or an event to wait for, a breaker
/// that is not closed) starts its later attempts itself: the work moves
/// into the shared `ctx`, which such futures hold, and comes back once
/// none does. Items started with [`start`](Work::start) (other drivers,
/// other wrappers) always hold `ctx`.
pub(crate) struct Resilient<T, W> {
    own: Option<W>,
    ctx: Arc<Ctx<T, W>>,
}

impl<T: Send + 'static, W: Work<T>> Resilient<T, W> {
    /// Takes the work back from `ctx` if no item's future holds it; whether
    /// the stage owns its work.
    #[inline]
    fn reclaim(&mut self) -> bool {
        // The count is a hint (a plain load); `get_mut` decides.
        if self.own.is_none() && Arc::strong_count(&self.ctx) == 1 {
            if let Some(ctx) = Arc::get_mut(&mut self.ctx) {
                self.own = ctx.work.get_mut().unwrap_or_else(PoisonError::into_inner).take();
            }
        }
        self.own.is_some()
    }

    /// The context for an item's future that starts attempts itself: the
    /// work moves into it first.
    fn share(&mut self) -> Arc<Ctx<T, W>> {
        if let Some(work) = self.own.take() {
            *self.ctx.work.lock().unwrap_or_else(PoisonError::into_inner) = Some(work);
        }
        self.ctx.clone()
    }
}

impl<T: Send + 'static, W: Work<T>> Work<T> for Resilient<T, W> {
    type Out = W::Out;
    type Fut = ResilientFuture<T, W>;

    /// An item's future that handles its failures itself.
    fn start(&mut self, item: T, seq: u64) -> ResilientFuture<T, W> {
        let ctx = self.share();
        let started = ctx.retry.as_ref().and_then(Retrier::clock);
        let ticket = match &ctx.breaker {
            None => None,
            Some(b) => match b.admit_closed() {
                Some(ticket) => Some(ticket),
                None => {
                    let slow = recover(ctx, seq, Some(item), Next::Attempt, 0, started);
                    return ResilientFuture::recovering(slow);
                }
            },
        };
        let spare = ctx.retry.as_ref().and_then(|r| r.spare(&item, 1));
        match ctx.start(item, seq) {
            Ok(fut) => ResilientFuture {
                fast: Some(fut),
                slow: None,
                ctx: Some(ctx),
                spare,
                ticket,
                started,
                seq,
                attempt: 1,
            },
            Err(e) => ResilientFuture::recovering(std::future::ready(Err(e))),
        }
    }

    /// Runs the item's attempts in `slot` while they finish when first
    /// polled, with the stage's own work: a failed attempt whose retry is
    /// due at once (zero backoff, no event to send) is followed by the
    /// next one here. Anything that has to wait goes on in the item's
    /// future, with the shared context ([`Resilient::go_slow`], out of
    /// line so that this fast path inlines into the driver's loop).
    #[inline(always)]
    fn start_in(
        &mut self,
        mut slot: Pin<&mut Option<ResilientFuture<T, W>>>,
        mut item: T,
        seq: u64,
        task: &mut Context<'_>,
    ) -> Poll<Result<W::Out, Error>> {
        if !self.reclaim() {
            return self.start_shared(slot, item, seq, task);
        }
        let started = self.ctx.retry.as_ref().and_then(Retrier::clock);
        let mut attempt = 1;
        loop {
            let ticket = match &self.ctx.breaker {
                None => None,
                Some(b) => match b.admit_closed() {
                    Some(ticket) => Some(ticket),
                    None => {
                        return self.go_slow(slot, seq, Some(item), Next::Attempt, attempt - 1, started, task)
                    }
                },
            };
            // The copy for a retry stays here unless the future goes on alone.
            let mut spare = self.ctx.retry.as_ref().and_then(|r| r.spare(&item, attempt));
            let work = self.own.as_mut().expect("reclaimed");
            let mut fut = ResilientFuture::begin(slot.as_mut(), work.start(item, seq));
            let mut this = fut.as_mut().project();
            let fast = this.fast.as_mut().as_pin_mut().expect("just begun");
            let Poll::Ready(result) = fast.poll(task) else {
                // The future handles its outcome itself, with the work
                // shared; only now does it need the item's particulars.
                let this = fut.project();
                (*this.ticket, *this.started, *this.seq, *this.attempt) = (ticket, started, seq, attempt);
                *this.ctx = Some(self.share());
                *this.spare = spare;
                return Poll::Pending;
            };
            this.fast.set(None);
            let changed = ticket.is_some_and(|t| t.record(result.is_ok()));
            let e = match result {
                Ok(out) if !changed => return Poll::Ready(Ok(out)),
                Err(e) if !changed => e,
                // The breaker changed state: its events are sent first.
                result => {
                    return self.go_slow(slot, seq, spare, Next::Outcome(result), attempt, started, task)
                }
            };
            let Some(retry) = &self.ctx.retry else {
                return Poll::Ready(Err(e));
            };
            let Some(next) = spare.take() else {
                // No copy was kept: this was the last attempt allowed.
                return Poll::Ready(Err(retry.last(e, attempt)));
            };
            let (delay, e) = match retry.decide(e, attempt, started) {
                Ok(retry) => retry,
                Err(e) => return Poll::Ready(Err(e)),
            };
            if !delay.is_zero() || self.ctx.shared.events.is_some() {
                return self.go_slow(
                    slot,
                    seq,
                    Some(next),
                    Next::Retry(delay, e),
                    attempt,
                    started,
                    task,
                );
            }
            Retrier::<T>::count(&self.ctx.shared, self.ctx.stage);
            (item, attempt) = (next, attempt + 1);
        }
    }
}

impl<T: Send + 'static, W: Work<T>> Resilient<T, W> {
    /// Starts an item while futures in flight share the work: its future
    /// shares it too.
    #[cold]
    #[inline(never)]
    fn start_shared(
        &mut self,
        slot: Pin<&mut Option<ResilientFuture<T, W>>>,
        item: T,
        seq: u64,
        task: &mut Context<'_>,
    ) -> Poll<Result<W::Out, Error>> {
        let fut = self.start(item, seq);
        poll_in(slot, fut, task)
    }

    /// The rest of the item's life from `next` goes on in its future, with
    /// the shared context (a wait, an event, a breaker's decision).
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn go_slow(
        &mut self,
        slot: Pin<&mut Option<ResilientFuture<T, W>>>,
        seq: u64,
        item: Option<T>,
        next: Next<W::Out>,
        attempt: u32,
        started: Option<Instant>,
        task: &mut Context<'_>,
    ) -> Poll<Result<W::Out, Error>> {
        let slow = recover(self.share(), seq, item, next, attempt, started);
        poll_in(slot, ResilientFuture::recovering(slow), task)
    }
}

/// Sets `fut` in `slot` and polls it there.
fn poll_in<F: Future>(mut slot: Pin<&mut Option<F>>, fut: F, task: &mut Context<'_>) -> Poll<F::Output> {
    slot.set(Some(fut));
    slot.as_pin_mut().expect("just set").poll(task)
}

type Slow<O> = Pin<Box<dyn Future<Output = Result<O, Error>> + Send>>;

pin_project_lite::pin_project! {
    /// An item's life in a resilient stage: the attempt in progress inline,
    /// the rest (if any) boxed.
    pub(crate) struct ResilientFuture<T, W: Work<T>> {
        #[pin]
        fast: Option<W::Fut>,
        slow: Option<Slow<W::Out>>,
        // To go on after `fast` fails; `None` while `start_in` handles the
        // attempt's outcome itself.
        ctx: Option<Arc<Ctx<T, W>>>,
        spare: Option<T>,
        ticket: Option<Ticket>,
        started: Option<Instant>,
        seq: u64,
        attempt: u32,
    }
}

impl<T: Send + 'static, W: Work<T>> ResilientFuture<T, W> {
    /// An item's future that goes on in `slow`.
    fn recovering(slow: impl Future<Output = Result<W::Out, Error>> + Send + 'static) -> Self {
        ResilientFuture::alone(None, Some(Box::pin(slow)))
    }

    /// A future with no item particulars yet.
    fn alone(fast: Option<W::Fut>, slow: Option<Slow<W::Out>>) -> Self {
        ResilientFuture {
            fast,
            slow,
            ctx: None,
            spare: None,
            ticket: None,
            started: None,
            seq: 0,
            attempt: 0,
        }
    }

    /// Puts an attempt in `slot`, for [`Resilient`]'s fast path. A slot
    /// whose future finished there is reused in place: only the attempt is
    /// written (the item's particulars follow only if it has to wait).
    /// Replacing the whole future dropped and rewrote every field per item,
    /// a third of what a retry policy cost a stage whose items all succeed
    /// (callgrind, docs/BENCHMARKS.md).
    #[inline(always)]
    fn begin(mut slot: Pin<&mut Option<Self>>, fast: W::Fut) -> Pin<&mut Self> {
        let at_rest = slot.as_ref().as_pin_ref().is_some_and(|f| {
            let f = f.get_ref();
            f.fast.is_none() && f.slow.is_none() && f.ctx.is_none() && f.spare.is_none() && f.ticket.is_none()
        });
        if at_rest {
            let mut this = slot.as_mut().as_pin_mut().expect("at rest").project();
            this.fast.set(Some(fast));
        } else {
            slot.set(Some(ResilientFuture::alone(Some(fast), None)));
        }
        slot.as_pin_mut().expect("just set")
    }

    /// Polls the attempt in progress: its result, and whether recording it
    /// changed the breaker's state.
    #[inline]
    fn poll_attempt(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(Result<W::Out, Error>, bool)> {
        let mut this = self.project();
        let Some(fast) = this.fast.as_mut().as_pin_mut() else {
            return Poll::Ready((
                Err(Error::new(ErrorKind::Internal, "no attempt in progress")),
                false,
            ));
        };
        let result = ready!(fast.poll(cx));
        this.fast.set(None);
        let changed = this.ticket.take().is_some_and(|t| t.record(result.is_ok()));
        Poll::Ready((result, changed))
    }
}

impl<T: Send + 'static, W: Work<T>> Future for ResilientFuture<T, W> {
    type Output = Result<W::Out, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.as_mut().project().fast.is_some() {
            let (result, changed) = ready!(self.as_mut().poll_attempt(cx));
            let this = self.as_mut().project();
            match this.ctx.take() {
                Some(ctx) if changed || (result.is_err() && ctx.retry.is_some()) => {
                    let spare = this.spare.take();
                    let next = Next::Outcome(result);
                    *this.slow = Some(Box::pin(recover(
                        ctx,
                        *this.seq,
                        spare,
                        next,
                        *this.attempt,
                        *this.started,
                    )));
                }
                // Done (a future without its context is `start_in`'s, which
                // does not poll it here).
                _ => return Poll::Ready(result),
            }
        }
        let this = self.project();
        let Some(slow) = this.slow.as_mut() else {
            return Poll::Ready(Err(Error::new(ErrorKind::Internal, "polled after completion")));
        };
        let out = ready!(slow.as_mut().poll(cx));
        *this.slow = None;
        Poll::Ready(out)
    }
}

/// Where an item's life goes on in [`recover`].
enum Next<O> {
    /// The next attempt is due.
    Attempt,
    /// The last attempt's outcome, to act on.
    Outcome(Result<O, Error>),
    /// The retry decided after the last attempt failed (with this error),
    /// to announce and wait for.
    Retry(Duration, Error),
}

/// The rest of an item's life after `attempt` attempts, from `next`;
/// `input` is the item for the next attempt, if one may follow.
async fn recover<T, W>(
    ctx: Arc<Ctx<T, W>>,
    seq: u64,
    mut input: Option<T>,
    mut next: Next<W::Out>,
    mut attempt: u32,
    started: Option<Instant>,
) -> Result<W::Out, Error>
where
    T: Send + 'static,
    W: Work<T>,
{
    loop {
        let result = match std::mem::replace(&mut next, Next::Attempt) {
            Next::Outcome(result) => result,
            Next::Retry(delay, e) => {
                if let Some(retry) = &ctx.retry {
                    retry.wait(&e, delay, attempt, &ctx.shared, ctx.stage, seq).await;
                }
                continue;
            }
            Next::Attempt => {
                attempt += 1;
                let Some(item) = input.take() else {
                    return Err(Error::new(ErrorKind::Internal, "no input left for an attempt"));
                };
                input = ctx.retry.as_ref().and_then(|r| r.spare(&item, attempt));
                ctx.attempt(item, seq).await.map_err(|e| e.with_attempt(attempt))
            }
        };
        if let Some(b) = &ctx.breaker {
            b.send_events().await;
        }
        let e = match result {
            Ok(out) => return Ok(out),
            Err(e) => e,
        };
        let Some(retry) = &ctx.retry else {
            return Err(e.with_attempt(attempt));
        };
        if input.is_none() {
            // No copy was kept: this was the last attempt allowed.
            return Err(retry.last(e, attempt));
        }
        next = match retry.decide(e, attempt, started) {
            Ok((delay, e)) => Next::Retry(delay, e),
            Err(e) => return Err(e),
        };
    }
}

impl<T, P, F> Pipeline<T, Then<P, F>>
where
    P: Plan,
    P::Out: Clone,
{
    /// Retries items that fail in this stage, as `policy` says: with
    /// backoff, up to a number of attempts or a time, for the errors its
    /// classifier deems retryable (see [`Retry`]). The stage's
    /// [`timeout`](Pipeline::timeout) applies to each attempt; a timeout
    /// is retryable by default. An item that runs out of attempts fails
    /// with its last error, routed by the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy), and its
    /// [`Error::attempt`] says how many attempts it had.
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
    /// # Examples
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
    pub fn retry(mut self, policy: Retry) -> Self {
        self.last().retry = Some(RetrySpec::new::<P::Out>(policy));
        self
    }
}

impl<T, P, F> Pipeline<T, Blocking<P, F>>
where
    P: Plan,
    P::Out: Clone,
{
    /// Retries items whose blocking call fails, as `policy` says; see
    /// [`Pipeline::retry`] on `then` stages. The backoff waits are timers,
    /// not blocked threads.
    ///
    /// # Examples
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
    pub fn retry(mut self, policy: Retry) -> Self {
        self.last().retry = Some(RetrySpec::new::<P::Out>(policy));
        self
    }
}

impl<T, P, K, F> Pipeline<T, KeyedThen<P, K, F>>
where
    P: Plan,
    P::Out: Clone,
{
    /// Retries items that fail, as `policy` says; see [`Pipeline::retry`]
    /// on `then` stages. A retrying item keeps its key busy: the next item
    /// of that key waits for it, so per-key order holds.
    ///
    /// # Examples
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
    pub fn retry(mut self, policy: Retry) -> Self {
        self.last().retry = Some(RetrySpec::new::<P::Out>(policy));
        self
    }
}

impl<P, S> Pipeline<(), SinkStage<P, S>>
where
    P: Plan,
    P::Out: Clone,
{
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
    /// # Examples
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
    pub fn retry(mut self, policy: Retry) -> Self {
        self.last().retry = Some(RetrySpec::new::<P::Out>(policy));
        self
    }
}

impl<T, P, F> Pipeline<T, Then<P, F>> {
    /// Puts a circuit breaker in front of this stage's work (see
    /// [`Breaker`]): once too many calls fail, calls stop for a while and
    /// items wait (backpressure) or fail with
    /// [`ErrorKind::CircuitOpen`], until probes show the dependency is
    /// back. With a [`retry`](Pipeline::retry), each attempt is a call.
    ///
    /// The runtime must have timers enabled (`enable_time`/`enable_all`).
    ///
    /// # Examples
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
    pub fn circuit_breaker(mut self, breaker: Breaker) -> Self {
        self.last().breaker = Some(breaker);
        self
    }
}

impl<T, P, F> Pipeline<T, Blocking<P, F>> {
    /// Puts a circuit breaker in front of this stage's blocking calls; see
    /// [`Pipeline::circuit_breaker`] on `then` stages.
    ///
    /// # Examples
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
    pub fn circuit_breaker(mut self, breaker: Breaker) -> Self {
        self.last().breaker = Some(breaker);
        self
    }
}

impl<T, P, K, F> Pipeline<T, KeyedThen<P, K, F>> {
    /// Puts a circuit breaker in front of this stage's work, shared by all
    /// keys; see [`Pipeline::circuit_breaker`] on `then` stages.
    ///
    /// # Examples
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
    pub fn circuit_breaker(mut self, breaker: Breaker) -> Self {
        self.last().breaker = Some(breaker);
        self
    }
}

impl<P, S> Pipeline<(), SinkStage<P, S>> {
    /// Puts a circuit breaker in front of a sink's writes (see
    /// [`Breaker`]): every [`write`](crate::Sink::write) attempt is a call,
    /// admitted by the breaker before it starts and its outcome (a
    /// returned error, a panic or a [`timeout`](Pipeline::timeout) is a
    /// failure) recorded after it. Once too many writes fail, the breaker
    /// opens: the sink stops writing and, as
    /// [`when_open`](Breaker::when_open) says, waits (backpressure reaches
    /// the source) or fails items at once with
    /// [`ErrorKind::CircuitOpen`], routed by the stage's
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
    /// # Examples
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
