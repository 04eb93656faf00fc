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

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use super::Wiring;
use crate::error::{Error, ErrorKind};
use crate::event::EventKind;
use crate::policy::{Backoff, CircuitBreaker, Retry, Ticket};
use crate::runtime::{RetrySpec, Shared, Work};

impl RetrySpec {
    pub(crate) fn new<T: Clone + 'static>(policy: Retry) -> RetrySpec {
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
        if shared.bus.has_stream() {
            shared
                .bus
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
        let breaker = spec.breaker.clone().map(|b| w.shared.circuit_breaker(stage, b));
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
            if !delay.is_zero() || self.ctx.shared.bus.has_stream() {
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
