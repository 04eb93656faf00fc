//! Circuit breakers: stop calling a failing dependency for a while, then
//! probe it before letting traffic through again.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::{Error, ErrorKind};
use crate::event::{EventBus, EventKind};
use crate::metrics::StageMetrics;

/// What an item does when it reaches a stage whose circuit is open (or
/// half-open with every probe taken).
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use weir::{Breaker, ErrorPolicy, EventKind, Pipeline, WhenOpen};
///
/// assert_eq!(WhenOpen::default(), WhenOpen::Wait);
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let events: Vec<_> = Pipeline::from_iter(0..5u32)
///     .try_then(|_| async { Err::<u32, _>("down") })
///     .circuit_breaker(Breaker::new().window_count(2).min_calls(2).when_open(WhenOpen::Fail))
///     .on_error(ErrorPolicy::Skip)
///     .events()
///     .collect()
///     .await;
/// let types: Vec<_> = events
///     .iter()
///     .filter_map(|e| match &e.kind {
///         EventKind::ItemFailed { error_type, .. } => Some(error_type.as_str()),
///         _ => None,
///     })
///     .collect();
/// assert_eq!(types, ["error", "error", "circuit_open", "circuit_open", "circuit_open"]);
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhenOpen {
    /// Wait until the breaker admits it: the stage stops taking input and
    /// backpressure reaches the source. The default.
    #[default]
    Wait,
    /// Fail at once with [`ErrorKind::CircuitOpen`] (error type
    /// `circuit_open`, not retryable by default), routed by the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy).
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    Count(usize),
    Time(Duration),
}

/// A stage's circuit breaker: set it with
/// [`Pipeline::circuit_breaker`](crate::Pipeline::circuit_breaker).
///
/// **Closed** (the start): calls go through and their outcomes are kept
/// in a rolling window, the last [`window_count`](Self::window_count)
/// calls (default 20) or those of the last
/// [`window_time`](Self::window_time). Once the window holds at least
/// [`min_calls`](Self::min_calls) outcomes (default 10) and the share of
/// failures is at least [`failure_rate`](Self::failure_rate) (default
/// 0.5), the breaker opens.
///
/// **Open**: no call goes through for [`open_for`](Self::open_for)
/// (default 30s); items wait or fail, as [`when_open`](Self::when_open)
/// says. Then it turns **half-open**: [`half_open_probes`](Self::half_open_probes)
/// calls (default 1) go through. If all of them succeed the breaker
/// closes with an empty window; if one fails it opens again.
///
/// A call is one attempt of an item's work (with a [`Retry`](crate::Retry),
/// each attempt asks the breaker again), or on a sink one attempt of a
/// [`write`](crate::Sink::write); every error counts as a failure,
/// timeouts included. Calls that started before the breaker changed state
/// do not count in the new state. Each change is a
/// [`StageStateChanged`](crate::EventKind::StageStateChanged) event; the
/// stage's report says how often it opened and its current state.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use weir::{Breaker, ErrorPolicy, Pipeline, WhenOpen};
///
/// let breaker = Breaker::new()
///     .failure_rate(0.5)
///     .window_count(10)
///     .min_calls(5)
///     .open_for(Duration::from_secs(5))
///     .half_open_probes(2)
///     .when_open(WhenOpen::Fail);
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let calls = Arc::new(AtomicU32::new(0));
/// let c = calls.clone();
/// let report = Pipeline::from_iter(0..100u32)
///     .try_then(move |_| {
///         let c = c.clone();
///         async move {
///             c.fetch_add(1, Ordering::Relaxed);
///             Err::<u32, _>("service unavailable")
///         }
///     })
///     .circuit_breaker(breaker)
///     .on_error(ErrorPolicy::Skip)
///     .run()
///     .await
///     .unwrap();
/// // Five failed calls opened the breaker; the other 95 items failed without a call.
/// assert_eq!(calls.load(Ordering::Relaxed), 5);
/// assert_eq!(report.failed, 100);
/// assert_eq!(report.stages[1].breaker.as_deref(), Some("open"));
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Breaker {
    failure_rate: f64,
    window: Window,
    min_calls: usize,
    open_for: Duration,
    probes: usize,
    when_open: WhenOpen,
}

impl Default for Breaker {
    fn default() -> Breaker {
        Breaker::new()
    }
}

impl Breaker {
    /// A breaker with the defaults: failure rate 0.5 over the last 20
    /// calls, at least 10 calls, open for 30s, 1 probe, items wait while
    /// it is open.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = weir::Breaker::new();
    /// assert_eq!(format!("{b:?}"), format!("{:?}", weir::Breaker::default()));
    /// assert!(format!("{b:?}").contains("failure_rate: 0.5"));
    /// ```
    pub fn new() -> Breaker {
        Breaker {
            failure_rate: 0.5,
            window: Window::Count(20),
            min_calls: 10,
            open_for: Duration::from_secs(30),
            probes: 1,
            when_open: WhenOpen::Wait,
        }
    }

    /// The share of failed calls in the window, in `(0, 1]`, at which the
    /// breaker opens (default 0.5).
    ///
    /// # Panics
    ///
    /// If `rate` is not in `(0, 1]`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Breaker, ErrorPolicy, Pipeline, WhenOpen};
    ///
    /// // How often the breaker opens over 30 calls, a third of which fail.
    /// async fn trips(breaker: Breaker) -> u64 {
    ///     let r = Pipeline::from_iter(0..30u32)
    ///         .try_then(|x| async move { if x % 3 == 0 { Err("503") } else { Ok(x) } })
    ///         .circuit_breaker(breaker.when_open(WhenOpen::Fail))
    ///         .on_error(ErrorPolicy::Skip)
    ///         .run()
    ///         .await
    ///         .unwrap();
    ///     r.stages[1].breaker_trips
    /// }
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// assert_eq!(trips(Breaker::new()).await, 0); // a third is under 0.5
    /// assert_eq!(trips(Breaker::new().failure_rate(0.25)).await, 1);
    /// # });
    /// ```
    #[track_caller]
    pub fn failure_rate(mut self, rate: f64) -> Breaker {
        assert!(
            rate > 0.0 && rate <= 1.0,
            "Breaker::failure_rate must be in (0, 1], got {rate}"
        );
        self.failure_rate = rate;
        self
    }

    /// Judges the last `n` calls (the default, with 20).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Breaker, ErrorPolicy, Pipeline, WhenOpen};
    ///
    /// // 10 good calls, a burst of 4 failures, then good calls again.
    /// async fn trips(breaker: Breaker) -> u64 {
    ///     let r = Pipeline::from_iter(0..30u32)
    ///         .try_then(|x| async move { if (10..14).contains(&x) { Err("timeout") } else { Ok(x) } })
    ///         .circuit_breaker(breaker.when_open(WhenOpen::Fail))
    ///         .on_error(ErrorPolicy::Skip)
    ///         .run()
    ///         .await
    ///         .unwrap();
    ///     r.stages[1].breaker_trips
    /// }
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// assert_eq!(trips(Breaker::new()).await, 0); // at most 4 of the last 20 calls
    /// assert_eq!(trips(Breaker::new().window_count(4).min_calls(4)).await, 1); // 4 of the last 4
    /// # });
    /// ```
    #[track_caller]
    pub fn window_count(mut self, n: usize) -> Breaker {
        assert!(n > 0, "Breaker::window_count must be at least 1");
        self.window = Window::Count(n);
        self
    }

    /// Judges the calls that finished in the last `window` instead of the
    /// last n calls. Calls are counted in 20 slices of the window, so a
    /// call leaves the window between `window` and `window × 1.05` after
    /// it finished; memory stays bounded whatever the throughput.
    ///
    /// # Panics
    ///
    /// If `window` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::{Breaker, ErrorPolicy, Pipeline, WhenOpen};
    ///
    /// // A call a second: 10 good ones, a burst of 4 failures, then good ones.
    /// async fn trips(breaker: Breaker) -> u64 {
    ///     let r = Pipeline::from_iter(0..30u32)
    ///         .try_then(|x| async move {
    ///             tokio::time::sleep(Duration::from_secs(1)).await;
    ///             if (10..14).contains(&x) { Err("timeout") } else { Ok(x) }
    ///         })
    ///         .circuit_breaker(breaker.when_open(WhenOpen::Fail))
    ///         .on_error(ErrorPolicy::Skip)
    ///         .run()
    ///         .await
    ///         .unwrap();
    ///     r.stages[1].breaker_trips
    /// }
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// assert_eq!(trips(Breaker::new()).await, 0); // at most 4 of the last 20 calls
    /// let last_5s = Breaker::new().window_time(Duration::from_secs(5)).min_calls(4);
    /// assert_eq!(trips(last_5s).await, 1); // 4 of the 5 or so calls of the last 5 s
    /// # });
    /// ```
    #[track_caller]
    pub fn window_time(mut self, window: Duration) -> Breaker {
        assert!(!window.is_zero(), "Breaker::window_time must not be zero");
        self.window = Window::Time(window);
        self
    }

    /// How many calls the window must hold before the breaker may open
    /// (default 10): a few early failures do not open it.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Breaker, ErrorPolicy, Pipeline, WhenOpen};
    ///
    /// // The first 3 calls fail (a cold cache), the rest succeed.
    /// async fn trips(breaker: Breaker) -> u64 {
    ///     let r = Pipeline::from_iter(0..30u32)
    ///         .try_then(|x| async move { if x < 3 { Err("cache miss") } else { Ok(x) } })
    ///         .circuit_breaker(breaker.when_open(WhenOpen::Fail))
    ///         .on_error(ErrorPolicy::Skip)
    ///         .run()
    ///         .await
    ///         .unwrap();
    ///     r.stages[1].breaker_trips
    /// }
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// assert_eq!(trips(Breaker::new()).await, 0); // judged after 10 calls: 0.3
    /// assert_eq!(trips(Breaker::new().min_calls(3)).await, 1); // judged after 3: 1.0
    /// # });
    /// ```
    pub fn min_calls(mut self, n: usize) -> Breaker {
        self.min_calls = n.max(1);
        self
    }

    /// How long the breaker stays open before it probes (default 30s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// use weir::{Breaker, ErrorPolicy, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let started = Instant::now();
    /// let r = Pipeline::from_iter(0..10u32)
    ///     .try_then(|x| async move { if x < 4 { Err("connection refused") } else { Ok(x) } })
    ///     .circuit_breaker(Breaker::new().window_count(4).min_calls(4).open_for(Duration::from_secs(5)))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// // Four failures opened the breaker; item 4 waited 5 s, probed, and the
    /// // service was back.
    /// assert_eq!((r.failed, r.delivered), (4, 6));
    /// let waited = started.elapsed();
    /// assert!(waited >= Duration::from_secs(5) && waited < Duration::from_secs(6), "{waited:?}");
    /// # });
    /// ```
    pub fn open_for(mut self, d: Duration) -> Breaker {
        self.open_for = d;
        self
    }

    /// How many calls a half-open breaker lets through; it closes when all
    /// of them succeed (default 1).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::{Breaker, ErrorPolicy, Pipeline};
    ///
    /// // Calls 0 to 3 fail and open the breaker; a second later call 4 succeeds,
    /// // call 5 fails, and the others succeed.
    /// async fn trips(probes: usize) -> u64 {
    ///     let breaker = Breaker::new()
    ///         .window_count(4)
    ///         .min_calls(4)
    ///         .open_for(Duration::from_secs(1))
    ///         .half_open_probes(probes);
    ///     let r = Pipeline::from_iter(0..10u32)
    ///         .try_then(|x| async move { if x < 4 || x == 5 { Err("503") } else { Ok(x) } })
    ///         .circuit_breaker(breaker)
    ///         .on_error(ErrorPolicy::Skip)
    ///         .run()
    ///         .await
    ///         .unwrap();
    ///     r.stages[1].breaker_trips
    /// }
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// assert_eq!(trips(1).await, 1); // call 4 closed the breaker
    /// assert_eq!(trips(2).await, 2); // call 5 was the second probe: open again
    /// # });
    /// ```
    #[track_caller]
    pub fn half_open_probes(mut self, n: usize) -> Breaker {
        assert!(n > 0, "Breaker::half_open_probes must be at least 1");
        self.probes = n;
        self
    }

    /// What items do while the breaker refuses calls (default
    /// [`WhenOpen::Wait`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use weir::{Breaker, ErrorPolicy, Pipeline, WhenOpen};
    ///
    /// // How many of 10 items reach a service whose first 4 calls fail.
    /// async fn calls(when_open: WhenOpen) -> u32 {
    ///     let calls = Arc::new(AtomicU32::new(0));
    ///     let c = calls.clone();
    ///     let breaker = Breaker::new()
    ///         .window_count(4)
    ///         .min_calls(4)
    ///         .open_for(Duration::from_secs(1))
    ///         .when_open(when_open);
    ///     Pipeline::from_iter(0..10u32)
    ///         .try_then(move |x| {
    ///             let c = c.clone();
    ///             async move {
    ///                 c.fetch_add(1, Ordering::Relaxed);
    ///                 if x < 4 { Err("503") } else { Ok(x) }
    ///             }
    ///         })
    ///         .circuit_breaker(breaker)
    ///         .on_error(ErrorPolicy::Skip)
    ///         .run()
    ///         .await
    ///         .unwrap();
    ///     calls.load(Ordering::Relaxed)
    /// }
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// assert_eq!(calls(WhenOpen::Wait).await, 10); // the others waited out the open second
    /// assert_eq!(calls(WhenOpen::Fail).await, 4); // the others failed at once
    /// # });
    /// ```
    pub fn when_open(mut self, w: WhenOpen) -> Breaker {
        self.when_open = w;
        self
    }
}

/// A breaker's state, as stored in the stage's metrics (0 = no breaker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakerState {
    Closed = 1,
    Open = 2,
    HalfOpen = 3,
}

impl BreakerState {
    pub(crate) fn from_u8(v: u8) -> Option<BreakerState> {
        match v {
            1 => Some(BreakerState::Closed),
            2 => Some(BreakerState::Open),
            3 => Some(BreakerState::HalfOpen),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { admitted: usize, succeeded: usize },
}

impl Phase {
    fn state(&self) -> BreakerState {
        match self {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// One slice of a time window.
#[derive(Debug)]
struct Slice {
    start: Instant,
    calls: usize,
    failures: usize,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// Bumped at every change, so that calls admitted before it are not
    /// counted after it.
    generation: u64,
    /// Count windows: one outcome per call (true = failed).
    outcomes: VecDeque<bool>,
    /// Time windows: calls per slice.
    slices: VecDeque<Slice>,
    calls: usize,
    failures: usize,
    /// State changes not yet sent as events, in order.
    events: VecDeque<EventKind>,
}

/// A stage's running circuit breaker, shared by its items' futures.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    cfg: Breaker,
    state: Mutex<State>,
    /// Woken at every state change and when a probe's place frees up.
    changed: Notify,
    /// Where state changes are reported.
    bus: EventBus,
    /// The stage's name, for the events.
    stage: String,
    /// The stage's metrics: its breaker's state and trips.
    metrics: Arc<StageMetrics>,
}

/// What the breaker says to a call.
enum Admit {
    Go(Ticket),
    /// Open until then.
    WaitUntil(Instant),
    /// Half-open with every probe place taken.
    WaitProbe,
    Refused(Error),
}

/// An admitted call; [`record`](Ticket::record) its outcome. A probe's
/// ticket dropped unrecorded (its item's future was dropped) frees the
/// probe's place.
#[derive(Debug)]
pub(crate) struct Ticket {
    breaker: Arc<CircuitBreaker>,
    generation: u64,
    probe: bool,
    recorded: bool,
}

impl Ticket {
    /// Records the call's outcome; true if it changed the breaker's state.
    pub(crate) fn record(mut self, ok: bool) -> bool {
        self.recorded = true;
        self.breaker.record(self.generation, self.probe, ok)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.recorded && self.probe {
            self.breaker.release_probe(self.generation);
        }
    }
}

impl CircuitBreaker {
    /// The breaker `cfg` of stage `stage`, closed, keeping its state in
    /// `metrics` and reporting its changes on `bus`.
    pub(crate) fn new(
        cfg: Breaker,
        bus: EventBus,
        stage: String,
        metrics: Arc<StageMetrics>,
    ) -> CircuitBreaker {
        metrics
            .breaker_state
            .store(BreakerState::Closed as u8, Ordering::Relaxed);
        CircuitBreaker {
            cfg,
            state: Mutex::new(State {
                phase: Phase::Closed,
                generation: 0,
                outcomes: VecDeque::new(),
                slices: VecDeque::new(),
                calls: 0,
                failures: 0,
                events: VecDeque::new(),
            }),
            changed: Notify::new(),
            bus,
            stage,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a call at once if the breaker is closed (the common case,
    /// which changes no state); `None` otherwise.
    pub(crate) fn admit_closed(self: &Arc<Self>) -> Option<Ticket> {
        let s = self.lock();
        matches!(s.phase, Phase::Closed).then(|| self.ticket(s.generation, false))
    }

    fn ticket(self: &Arc<Self>, generation: u64, probe: bool) -> Ticket {
        Ticket {
            breaker: self.clone(),
            generation,
            probe,
            recorded: false,
        }
    }

    /// Decides on a call now, turning half-open once the open time is up.
    fn try_admit(self: &Arc<Self>) -> Admit {
        let mut s = self.lock();
        let now = Instant::now();
        if let Phase::Open { until } = s.phase {
            if now < until {
                return match self.cfg.when_open {
                    WhenOpen::Wait => Admit::WaitUntil(until),
                    WhenOpen::Fail => Admit::Refused(Error::new(ErrorKind::CircuitOpen, "circuit open")),
                };
            }
            let reason = format!("open for {:?} elapsed", self.cfg.open_for);
            self.change(
                &mut s,
                Phase::HalfOpen {
                    admitted: 0,
                    succeeded: 0,
                },
                reason,
                None,
            );
        }
        let generation = s.generation;
        match &mut s.phase {
            Phase::Closed => Admit::Go(self.ticket(generation, false)),
            Phase::HalfOpen { admitted, .. } if *admitted < self.cfg.probes => {
                *admitted += 1;
                Admit::Go(self.ticket(generation, true))
            }
            Phase::HalfOpen { .. } | Phase::Open { .. } => match self.cfg.when_open {
                WhenOpen::Wait => Admit::WaitProbe,
                WhenOpen::Fail => Admit::Refused(Error::new(
                    ErrorKind::CircuitOpen,
                    "circuit half-open: every probe is taken",
                )),
            },
        }
    }

    /// Admits a call, waiting while the breaker refuses calls (unless it
    /// is set to fail them).
    pub(crate) async fn admit(self: &Arc<Self>) -> Result<Ticket, Error> {
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            let decision = self.try_admit();
            self.send_events().await;
            match decision {
                Admit::Go(ticket) => return Ok(ticket),
                Admit::Refused(e) => return Err(e),
                Admit::WaitUntil(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = changed => {}
                    }
                }
                Admit::WaitProbe => changed.await,
            }
        }
    }

    fn record(&self, generation: u64, probe: bool, ok: bool) -> bool {
        let mut s = self.lock();
        if s.generation != generation {
            return false;
        }
        match s.phase {
            Phase::Closed => {
                self.count(&mut s, ok);
                let (calls, failures) = (s.calls, s.failures);
                let rate = failures as f64 / calls as f64;
                if calls >= self.cfg.min_calls && rate >= self.cfg.failure_rate {
                    let reason = format!(
                        "failure rate {rate:.2} >= {:.2} over {calls} calls",
                        self.cfg.failure_rate
                    );
                    self.open(&mut s, reason, Some(rate));
                    return true;
                }
                false
            }
            Phase::HalfOpen {
                ref mut succeeded, ..
            } if probe => {
                if !ok {
                    self.open(&mut s, "probe failed".to_owned(), None);
                    return true;
                }
                *succeeded += 1;
                if *succeeded >= self.cfg.probes {
                    s.outcomes.clear();
                    s.slices.clear();
                    (s.calls, s.failures) = (0, 0);
                    self.change(&mut s, Phase::Closed, "probes succeeded".to_owned(), None);
                    return true;
                }
                false
            }
            Phase::HalfOpen { .. } | Phase::Open { .. } => false,
        }
    }

    fn release_probe(&self, generation: u64) {
        let mut s = self.lock();
        if s.generation != generation {
            return;
        }
        if let Phase::HalfOpen { admitted, .. } = &mut s.phase {
            *admitted -= 1;
            drop(s);
            self.changed.notify_waiters();
        }
    }

    /// Adds an outcome to the closed window.
    fn count(&self, s: &mut State, ok: bool) {
        let failed = usize::from(!ok);
        match self.cfg.window {
            Window::Count(n) => {
                s.outcomes.push_back(!ok);
                if s.outcomes.len() > n && s.outcomes.pop_front() == Some(true) {
                    s.failures -= 1;
                }
                s.calls = s.outcomes.len();
                s.failures += failed;
            }
            Window::Time(window) => {
                let now = Instant::now();
                let width = (window / 20).max(Duration::from_nanos(1));
                while let Some(first) = s.slices.front() {
                    if first.start + width + window > now {
                        break;
                    }
                    let (calls, failures) = (first.calls, first.failures);
                    s.slices.pop_front();
                    s.calls -= calls;
                    s.failures -= failures;
                }
                match s.slices.back_mut() {
                    Some(last) if now < last.start + width => {
                        last.calls += 1;
                        last.failures += failed;
                    }
                    _ => s.slices.push_back(Slice {
                        start: now,
                        calls: 1,
                        failures: failed,
                    }),
                }
                s.calls += 1;
                s.failures += failed;
            }
        }
    }

    fn open(&self, s: &mut State, reason: String, rate: Option<f64>) {
        s.outcomes.clear();
        s.slices.clear();
        (s.calls, s.failures) = (0, 0);
        let until = Instant::now() + self.cfg.open_for;
        self.metrics.breaker_trips.fetch_add(1, Ordering::Relaxed);
        self.change(s, Phase::Open { until }, reason, rate);
    }

    fn change(&self, s: &mut State, to: Phase, reason: String, failure_rate: Option<f64>) {
        let from = s.phase.state();
        s.phase = to;
        s.generation += 1;
        let state = s.phase.state();
        self.metrics.breaker_state.store(state as u8, Ordering::Relaxed);
        if self.bus.has_stream() {
            s.events.push_back(EventKind::StageStateChanged {
                stage: self.stage.clone(),
                from: from.as_str().to_owned(),
                to: state.as_str().to_owned(),
                reason,
                failure_rate,
            });
        }
        self.changed.notify_waiters();
    }

    /// Sends the state changes not sent yet, in the order they happened
    /// (each is taken from the queue just before its send starts, and the
    /// event channel serves senders in order).
    pub(crate) async fn send_events(&self) {
        loop {
            let Some(event) = self.lock().events.pop_front() else {
                return;
            };
            self.bus.emit(event).await;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The state machine alone, on tokio's paused clock: a breaker built
    //! from an event bus and a stage's metrics, no pipeline.

    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use super::{Breaker, BreakerState, CircuitBreaker, WhenOpen};
    use crate::error::{Error, ErrorKind};
    use crate::event::{Event, EventBus, EventKind, EventLevel};
    use crate::metrics::StageMetrics;

    /// A breaker of stage `call`, its events and its metrics.
    struct Fixture {
        breaker: Arc<CircuitBreaker>,
        events: mpsc::Receiver<Event>,
        metrics: Arc<StageMetrics>,
    }

    /// One state change, as its event says it.
    #[derive(Debug, PartialEq)]
    struct Change {
        from: &'static str,
        to: &'static str,
        reason: String,
        failure_rate: Option<f64>,
    }

    fn change(from: &'static str, to: &'static str, reason: &str, failure_rate: Option<f64>) -> Change {
        Change {
            from,
            to,
            reason: reason.to_owned(),
            failure_rate,
        }
    }

    fn fixture(cfg: Breaker) -> Fixture {
        let (tx, events) = mpsc::channel(64);
        let bus = EventBus::new(
            "p".to_owned(),
            "p-1".to_owned(),
            Instant::now(),
            EventLevel::Lifecycle,
            Some(tx),
            None,
        );
        let metrics = Arc::new(StageMetrics::default());
        let breaker = Arc::new(CircuitBreaker::new(cfg, bus, "call".to_owned(), metrics.clone()));
        Fixture {
            breaker,
            events,
            metrics,
        }
    }

    impl Fixture {
        fn state(&self) -> BreakerState {
            BreakerState::from_u8(self.metrics.breaker_state.load(Ordering::Relaxed)).unwrap()
        }

        fn trips(&self) -> u64 {
            self.metrics.breaker_trips.load(Ordering::Relaxed)
        }

        /// One call: admitted (or refused), then its outcome recorded;
        /// true if it changed the state.
        async fn call(&self, ok: bool) -> Result<bool, Error> {
            let ticket = self.breaker.admit().await?;
            Ok(ticket.record(ok))
        }

        /// The state changes sent on the bus so far.
        async fn changes(&mut self) -> Vec<Change> {
            let sent = tokio::time::timeout(Duration::from_secs(60), self.breaker.send_events()).await;
            assert!(sent.is_ok(), "the breaker's events were not all sent");
            let mut out = Vec::new();
            while let Ok(e) = self.events.try_recv() {
                match e.kind {
                    EventKind::StageStateChanged {
                        stage,
                        from,
                        to,
                        reason,
                        failure_rate,
                    } => {
                        assert_eq!(stage, "call");
                        let name = |s: &str| match s {
                            "closed" => "closed",
                            "open" => "open",
                            "half_open" => "half_open",
                            other => panic!("unknown state {other}"),
                        };
                        out.push(Change {
                            from: name(&from),
                            to: name(&to),
                            reason,
                            failure_rate,
                        });
                    }
                    other => panic!("unexpected event {other:?}"),
                }
            }
            out
        }
    }

    /// Outcomes written `x` (failed) and `.` (succeeded).
    fn outcomes(s: &str) -> impl Iterator<Item = bool> + '_ {
        s.chars().map(|c| c == '.')
    }

    /// Guards the closed state's judgement over the last n calls: the
    /// rate is over the window (an outcome that leaves it stops counting),
    /// never before `min_calls`, and the state changes on the call that
    /// reaches the rate.
    #[tokio::test(start_paused = true)]
    async fn closed_opens_on_the_failure_rate_over_the_last_n_calls() {
        let count = |n, min, rate| Breaker::new().window_count(n).min_calls(min).failure_rate(rate);
        // (case, breaker, outcomes, the call that opens it)
        let cases = [
            ("half of 4 at 0.5", count(4, 4, 0.5), "xx..", Some(3)),
            ("a quarter of 4 at 0.5", count(4, 4, 0.5), "x...", None),
            (
                "every call fails, judged at min_calls",
                count(10, 3, 0.5),
                "xxxxx",
                Some(2),
            ),
            ("under min_calls nothing opens", count(10, 5, 0.5), "xxxx", None),
            // The first failure leaves the window at call 4: without that,
            // call 5 would make 2 of 4 and open it.
            (
                "old failures leave the window",
                count(4, 4, 0.5),
                "x....xx",
                Some(6),
            ),
            ("the rate is inclusive", count(5, 5, 0.4), "..x.x", Some(4)),
            ("below the rate", count(5, 5, 0.6), "..x.x", None),
        ];
        for (case, cfg, calls, opens_at) in cases {
            let f = fixture(cfg.when_open(WhenOpen::Fail));
            assert_eq!(f.state(), BreakerState::Closed, "{case}");
            let mut opened = None;
            for (i, ok) in outcomes(calls).enumerate() {
                if f.call(ok).await.unwrap() {
                    opened = Some(i);
                    break;
                }
            }
            assert_eq!(opened, opens_at, "{case}");
            let want = if opens_at.is_some() {
                BreakerState::Open
            } else {
                BreakerState::Closed
            };
            assert_eq!(
                (f.state(), f.trips()),
                (want, u64::from(opens_at.is_some())),
                "{case}"
            );
        }
    }

    /// Guards the time window: calls older than `window_time` (give or
    /// take a slice) stop counting, calls inside it count whatever their
    /// number.
    #[tokio::test(start_paused = true)]
    async fn closed_opens_on_the_failure_rate_over_the_last_window_time() {
        let cfg = || {
            Breaker::new()
                .window_time(Duration::from_secs(10))
                .min_calls(2)
                .failure_rate(0.6)
                .when_open(WhenOpen::Fail)
        };
        const X: bool = false;
        const OK: bool = true;
        type Case = (&'static str, &'static [(u64, bool)], bool);
        // (case, (seconds waited before the call, outcome)…, opens)
        let cases: [Case; 4] = [
            ("two failures 5 s apart", &[(0, X), (5, X)], true),
            // 11 s later the first failure has left: 2 of the last 4 fail.
            (
                "an old failure has left",
                &[(0, X), (11, OK), (0, OK), (0, X), (0, X)],
                false,
            ),
            // 9 s later it is still in: 3 of 5 fail.
            (
                "a recent failure counts",
                &[(0, X), (9, OK), (0, OK), (0, X), (0, X)],
                true,
            ),
            ("many calls in one slice", &[(0, OK), (0, X), (0, X)], true),
        ];
        for (case, calls, opens) in cases {
            let f = fixture(cfg());
            let mut opened = false;
            for &(wait, ok) in calls {
                tokio::time::advance(Duration::from_secs(wait)).await;
                opened |= f.call(ok).await.unwrap();
            }
            assert_eq!(opened, opens, "{case}");
            assert_eq!(f.state() == BreakerState::Open, opens, "{case}");
        }
    }

    /// Guards `open_for`: an open breaker refuses (or holds) every call
    /// until it is up, then turns half-open and admits a probe.
    #[tokio::test(start_paused = true)]
    async fn open_turns_half_open_after_open_for() {
        let cfg = Breaker::new()
            .window_count(2)
            .min_calls(2)
            .open_for(Duration::from_secs(5));

        // WhenOpen::Fail: refused until then, at once.
        let f = fixture(cfg.clone().when_open(WhenOpen::Fail));
        f.call(false).await.unwrap();
        assert!(f.call(false).await.unwrap());
        tokio::time::advance(Duration::from_millis(4_999)).await;
        let refused = f.call(true).await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::CircuitOpen);
        assert_eq!(f.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_millis(1)).await;
        let probe = f.breaker.admit().await.unwrap();
        assert_eq!(f.state(), BreakerState::HalfOpen);
        assert!(probe.probe);

        // WhenOpen::Wait: the call waits out the open time, and no longer.
        let f = fixture(cfg.when_open(WhenOpen::Wait));
        f.call(false).await.unwrap();
        f.call(false).await.unwrap();
        let opened = Instant::now();
        let early = tokio::time::timeout(Duration::from_millis(4_999), f.breaker.admit()).await;
        assert!(early.is_err(), "admitted while open");
        let ticket = f.breaker.admit().await.unwrap();
        assert_eq!(opened.elapsed(), Duration::from_secs(5));
        assert!(ticket.probe);
        assert_eq!(f.state(), BreakerState::HalfOpen);
    }

    /// Guards the half-open state: it closes only when every probe
    /// succeeded, opens again on the first that fails, and admits no more
    /// than `half_open_probes` calls at once.
    #[tokio::test(start_paused = true)]
    async fn half_open_probes_close_or_reopen_the_breaker() {
        // (probes, the probes' outcomes, state after them, times opened)
        let cases = [
            (1, ".", BreakerState::Closed, 1),
            (1, "x", BreakerState::Open, 2),
            (2, "..", BreakerState::Closed, 1),
            (2, ".x", BreakerState::Open, 2),
            (2, "x", BreakerState::Open, 2),
            (3, "..", BreakerState::HalfOpen, 1),
        ];
        for (probes, results, state, trips) in cases {
            let case = format!("{probes} probe(s), outcomes {results:?}");
            let f = fixture(
                Breaker::new()
                    .window_count(1)
                    .min_calls(1)
                    .open_for(Duration::from_secs(1))
                    .half_open_probes(probes)
                    .when_open(WhenOpen::Fail),
            );
            f.call(false).await.unwrap();
            tokio::time::advance(Duration::from_secs(1)).await;
            // Every probe is admitted before any finishes.
            let mut tickets = Vec::new();
            for _ in 0..probes {
                tickets.push(f.breaker.admit().await.unwrap());
            }
            let full = f.breaker.admit().await.unwrap_err();
            assert_eq!(full.kind(), ErrorKind::CircuitOpen, "{case}");
            assert_eq!(
                full.message(),
                "circuit half-open: every probe is taken",
                "{case}"
            );
            for (ticket, ok) in tickets.into_iter().zip(outcomes(results)) {
                ticket.record(ok);
            }
            assert_eq!((f.state(), f.trips()), (state, trips), "{case}");
        }
    }

    /// Guards the probe's place: a probe dropped unrecorded (its item's
    /// future was dropped) frees it for a waiting call.
    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_frees_its_place_for_a_waiting_call() {
        let f = fixture(
            Breaker::new()
                .window_count(1)
                .min_calls(1)
                .open_for(Duration::from_secs(1)),
        );
        f.call(false).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let probe = f.breaker.admit().await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_secs(60), f.breaker.admit()).await;
        assert!(
            waiting.is_err(),
            "a second call was admitted beside the only probe"
        );
        let breaker = f.breaker.clone();
        let waiter = tokio::spawn(async move { breaker.admit().await.map(|t| t.probe) });
        tokio::task::yield_now().await;
        drop(probe);
        let admitted = tokio::time::timeout(Duration::from_secs(60), waiter).await;
        assert!(admitted.expect("the freed place was not given").unwrap().unwrap());
    }

    /// Guards counting per state: a call admitted before a change does
    /// not count after it, neither as a probe nor in the next closed
    /// window.
    #[tokio::test(start_paused = true)]
    async fn a_call_admitted_before_a_change_does_not_count_after_it() {
        let f = fixture(
            Breaker::new()
                .window_count(2)
                .min_calls(2)
                .open_for(Duration::from_secs(1))
                .when_open(WhenOpen::Fail),
        );
        let late = f.breaker.admit().await.unwrap();
        f.call(false).await.unwrap();
        f.call(false).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let probe = f.breaker.admit().await.unwrap();
        // The late call's failure belongs to the closed state: the
        // half-open breaker does not reopen on it.
        assert!(!late.record(false));
        assert_eq!(f.state(), BreakerState::HalfOpen);
        assert!(probe.record(true));
        assert_eq!(f.state(), BreakerState::Closed);
        let later = f.breaker.admit().await.unwrap();
        let stale = f.breaker.admit().await.unwrap();
        f.call(false).await.unwrap();
        f.call(false).await.unwrap(); // opens: 2 of 2
        assert_eq!(f.trips(), 2);
        tokio::time::advance(Duration::from_secs(1)).await;
        f.call(true).await.unwrap(); // the probe closes it again
                                     // Admitted in the closed state before the last opening: counts
                                     // neither now nor later.
        assert!(!stale.record(false));
        assert!(
            !f.call(false).await.unwrap(),
            "a stale failure counted in the new window"
        );
        assert!(!later.record(false));
        assert_eq!(f.state(), BreakerState::Closed);
    }

    /// Guards the events: each change is one `StageStateChanged` on the
    /// bus, in order, with its reason and (on opening) the failure rate.
    #[tokio::test(start_paused = true)]
    async fn every_change_is_an_event_with_its_reason_and_rate() {
        let mut f = fixture(
            Breaker::new()
                .window_count(4)
                .min_calls(4)
                .failure_rate(0.5)
                .open_for(Duration::from_secs(2))
                .when_open(WhenOpen::Fail),
        );
        for ok in outcomes("x.xx") {
            f.call(ok).await.unwrap();
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        f.call(false).await.unwrap(); // the probe fails
        tokio::time::advance(Duration::from_secs(2)).await;
        f.call(true).await.unwrap(); // this one succeeds
        assert_eq!(
            f.changes().await,
            [
                change(
                    "closed",
                    "open",
                    "failure rate 0.75 >= 0.50 over 4 calls",
                    Some(0.75)
                ),
                change("open", "half_open", "open for 2s elapsed", None),
                change("half_open", "open", "probe failed", None),
                change("open", "half_open", "open for 2s elapsed", None),
                change("half_open", "closed", "probes succeeded", None),
            ]
        );
        assert_eq!(f.trips(), 2);
        // Nothing more to send, and nothing is sent twice.
        assert!(f.changes().await.is_empty());
    }

    /// Guards the cost when nobody reads the stream: no events are built.
    #[tokio::test(start_paused = true)]
    async fn without_an_events_stream_no_change_is_queued() {
        let bus = EventBus::new(
            "p".to_owned(),
            "p-1".to_owned(),
            Instant::now(),
            EventLevel::Lifecycle,
            None,
            None,
        );
        let metrics = Arc::new(StageMetrics::default());
        let cfg = Breaker::new()
            .window_count(1)
            .min_calls(1)
            .when_open(WhenOpen::Fail);
        let b = Arc::new(CircuitBreaker::new(cfg, bus, "call".to_owned(), metrics.clone()));
        assert!(b.admit().await.unwrap().record(false));
        assert!(b.lock().events.is_empty());
        assert_eq!(metrics.breaker_trips.load(Ordering::Relaxed), 1);
    }
}
