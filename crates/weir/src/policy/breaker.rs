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
