//! Retry policies: how long to wait between attempts, how many attempts,
//! and which errors are worth another one.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::error::Error;

/// Says whether an error is worth another attempt. Implement it for your
/// error type and pass the type to [`Retry::classify`]; weir's own
/// [`Error`] implements it with [`Error::is_retryable`].
///
/// # Examples
///
/// ```
/// use weir::Retryable;
///
/// #[derive(Debug, thiserror::Error)]
/// enum ApiError {
///     #[error("rate limited")]
///     RateLimited,
///     #[error("not found")]
///     NotFound,
/// }
///
/// impl Retryable for ApiError {
///     fn is_retryable(&self) -> bool {
///         matches!(self, ApiError::RateLimited)
///     }
/// }
/// assert!(ApiError::RateLimited.is_retryable());
/// assert!(!ApiError::NotFound.is_retryable());
/// ```
pub trait Retryable {
    /// Whether another attempt could succeed.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Error, Retryable};
    /// // weir's own error implements it, as `Error::is_retryable`:
    /// let errors: [&dyn Retryable; 2] = [&Error::transient("503 unavailable"), &Error::permanent("400 bad request")];
    /// assert!(errors[0].is_retryable());
    /// assert!(!errors[1].is_retryable());
    /// ```
    fn is_retryable(&self) -> bool;
}

impl Retryable for Error {
    fn is_retryable(&self) -> bool {
        Error::is_retryable(self)
    }
}

type Classifier = Arc<dyn Fn(&Error) -> bool + Send + Sync>;

/// How a stage retries a failed item: set it with
/// [`Pipeline::retry`](crate::Pipeline::retry).
///
/// **Delays.** After the `n`-th failed attempt (n = 1, 2, …) the item
/// waits
///
/// ```text
/// delay_n = min(max_delay, base × factor^(n-1))
/// ```
///
/// and, with full jitter (the default for [`exponential`](Self::exponential)),
/// a uniformly random duration in `[0, delay_n]` instead, which spreads
/// retries of many items over time rather than sending them back in
/// waves. [`fixed`](Self::fixed) waits `delay` every time.
///
/// **Limits.** At most [`max_attempts`](Self::max_attempts) attempts,
/// the first included (default 3); with [`max_elapsed`](Self::max_elapsed),
/// no attempt is scheduled to start later than that after the first one
/// started. The item then fails with the last attempt's error, routed by
/// the stage's [`ErrorPolicy`](crate::ErrorPolicy); [`Error::attempt`]
/// says how many attempts were made.
///
/// **What is retried.** By default, what [`Error::is_retryable`] says:
/// errors returned by the stage (or sink) and per-attempt
/// [`timeout`](crate::Pipeline::timeout)s are retried, unless the error is
/// an [`Error::permanent`]; panics, validation failures and an open
/// circuit are not. Override with [`retry_if`](Self::retry_if) or
/// [`classify`](Self::classify).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir::Retry;
///
/// let policy = Retry::exponential(Duration::from_millis(100))
///     .factor(3.0)
///     .max_delay(Duration::from_secs(1))
///     .full_jitter(false)
///     .max_attempts(5);
/// assert_eq!(policy.delay(1), Duration::from_millis(100));
/// assert_eq!(policy.delay(2), Duration::from_millis(300));
/// assert_eq!(policy.delay(3), Duration::from_millis(900));
/// assert_eq!(policy.delay(4), Duration::from_secs(1)); // capped
/// ```
#[derive(Clone)]
pub struct Retry {
    base: Duration,
    factor: f64,
    max_delay: Option<Duration>,
    jitter: bool,
    max_attempts: u32,
    max_elapsed: Option<Duration>,
    classifier: Option<Classifier>,
    seed: Option<u64>,
}

impl fmt::Debug for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("base", &self.base)
            .field("factor", &self.factor)
            .field("max_delay", &self.max_delay)
            .field("full_jitter", &self.jitter)
            .field("max_attempts", &self.max_attempts)
            .field("max_elapsed", &self.max_elapsed)
            .field("custom_classifier", &self.classifier.is_some())
            .field("seed", &self.seed)
            .finish()
    }
}

impl Retry {
    /// Exponential backoff from `base`: factor 2, no cap on the delay,
    /// full jitter, 3 attempts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = weir::Retry::exponential(Duration::from_millis(10)).full_jitter(false);
    /// assert_eq!([p.delay(1), p.delay(2), p.delay(3)], [10, 20, 40].map(Duration::from_millis));
    /// ```
    pub fn exponential(base: Duration) -> Retry {
        Retry {
            base,
            factor: 2.0,
            max_delay: None,
            jitter: true,
            max_attempts: 3,
            max_elapsed: None,
            classifier: None,
            seed: None,
        }
    }

    /// The same `delay` before every retry, without jitter; 3 attempts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = weir::Retry::fixed(Duration::from_millis(50));
    /// assert_eq!(p.delay(1), p.delay(7));
    /// ```
    pub fn fixed(delay: Duration) -> Retry {
        Retry {
            factor: 1.0,
            jitter: false,
            ..Retry::exponential(delay)
        }
    }

    /// The growth factor of [`exponential`](Self::exponential) delays
    /// (default 2).
    ///
    /// # Panics
    ///
    /// If `factor` is not a finite number of at least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = weir::Retry::exponential(Duration::from_secs(1)).factor(1.5).full_jitter(false);
    /// assert_eq!(p.delay(3), Duration::from_millis(2250));
    /// ```
    #[track_caller]
    pub fn factor(mut self, factor: f64) -> Retry {
        assert!(
            factor.is_finite() && factor >= 1.0,
            "Retry::factor must be a finite number >= 1, got {factor}"
        );
        self.factor = factor;
        self
    }

    /// The longest delay between two attempts, before jitter. By default,
    /// no cap.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = weir::Retry::exponential(Duration::from_secs(1)).max_delay(Duration::from_secs(5));
    /// assert_eq!(p.full_jitter(false).delay(10), Duration::from_secs(5));
    /// ```
    pub fn max_delay(mut self, max: Duration) -> Retry {
        self.max_delay = Some(max);
        self
    }

    /// Whether each delay is drawn uniformly from `[0, delay_n]` (full
    /// jitter) rather than being `delay_n` exactly. On by default for
    /// [`exponential`](Self::exponential), off for [`fixed`](Self::fixed).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = weir::Retry::exponential(Duration::from_secs(1)).full_jitter(false);
    /// assert_eq!(p.delay(2), Duration::from_secs(2));
    /// ```
    pub fn full_jitter(mut self, on: bool) -> Retry {
        self.jitter = on;
        self
    }

    /// How many attempts an item gets, the first included (default 3).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::ErrorPolicy;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter([1])
    ///     .try_then(|_: i32| async { Err::<(), _>("down") })
    ///     .retry(weir::Retry::fixed(Duration::from_millis(1)).max_attempts(4))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((r.failed, r.stages[1].retried), (1, 3));
    /// # });
    /// ```
    #[track_caller]
    pub fn max_attempts(mut self, n: u32) -> Retry {
        assert!(n > 0, "Retry::max_attempts must be at least 1");
        self.max_attempts = n;
        self
    }

    /// Schedules no attempt to start later than `max` after the item's
    /// first attempt started. By default, only
    /// [`max_attempts`](Self::max_attempts) limits retries.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let err = weir::Pipeline::from_iter([1])
    ///     .try_then(|_: i32| async { Err::<(), _>("down") })
    ///     .retry(
    ///         weir::Retry::fixed(Duration::from_secs(1))
    ///             .max_attempts(100)
    ///             .max_elapsed(Duration::from_millis(2500)),
    ///     )
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.attempt(), 3); // at 0s, 1s and 2s; one at 3s would be too late
    /// # });
    /// ```
    pub fn max_elapsed(mut self, max: Duration) -> Retry {
        self.max_elapsed = Some(max);
        self
    }

    /// Decides which errors are retried, instead of
    /// [`Error::is_retryable`]. A stage's own error is in `e`'s
    /// [`source`](std::error::Error::source) chain.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::ErrorKind;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// // Only timeouts are worth another attempt here.
    /// let err = weir::Pipeline::from_iter([1])
    ///     .try_then(|_: i32| async { Err::<(), _>("bad input") })
    ///     .retry(weir::Retry::fixed(Duration::from_millis(1)).retry_if(|e| e.kind() == ErrorKind::Timeout))
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!((err.attempt(), err.is_retryable()), (1, false));
    /// # });
    /// ```
    pub fn retry_if(mut self, f: impl Fn(&Error) -> bool + Send + Sync + 'static) -> Retry {
        self.classifier = Some(Arc::new(f));
        self
    }

    /// Decides with `E`'s [`Retryable`] implementation when an `E` is in
    /// the error's cause chain (a stage that returned an `E`), and with
    /// [`Error::is_retryable`] otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::{ErrorPolicy, Retryable};
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("http {0}")]
    /// struct Http(u16);
    ///
    /// impl Retryable for Http {
    ///     fn is_retryable(&self) -> bool {
    ///         self.0 >= 500
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let r = weir::Pipeline::from_iter([404u16, 503])
    ///     .try_then(|code| async move { Err::<(), _>(Http(code)) })
    ///     .retry(weir::Retry::fixed(Duration::from_millis(1)).classify::<Http>())
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((r.failed, r.stages[1].retried), (2, 2)); // only the 503 was retried
    /// # });
    /// ```
    pub fn classify<E>(self) -> Retry
    where
        E: Retryable + std::error::Error + 'static,
    {
        self.retry_if(|e| {
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                if let Some(typed) = c.downcast_ref::<E>() {
                    return typed.is_retryable();
                }
                cause = c.source();
            }
            e.is_retryable()
        })
    }

    /// Seeds the jitter's random generator, so that a run's delays can be
    /// replayed (tests). By default, each run seeds it from the operating
    /// system.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = weir::Retry::exponential(Duration::from_millis(100)).seed(7);
    /// assert_eq!(p.delay(3), Duration::from_millis(400)); // the bound jitter draws under
    /// ```
    pub fn seed(mut self, seed: u64) -> Retry {
        self.seed = Some(seed);
        self
    }

    /// The delay after the `n`-th failed attempt before jitter:
    /// `min(max_delay, base × factor^(n-1))` (saturating; `n` = 0 is
    /// taken as 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = weir::Retry::exponential(Duration::from_millis(1));
    /// assert_eq!(p.delay(1), Duration::from_millis(1));
    /// assert_eq!(p.delay(11), Duration::from_millis(1024));
    /// assert_eq!(p.delay(u32::MAX), Duration::MAX);
    /// ```
    pub fn delay(&self, n: u32) -> Duration {
        if self.base.is_zero() {
            // No float work for an immediate retry (as `Retry::fixed(ZERO)`).
            return Duration::ZERO;
        }
        let exp = n.max(1) - 1;
        let scale = self.factor.powf(f64::from(exp));
        let raw = Duration::try_from_secs_f64(self.base.as_secs_f64() * scale).unwrap_or(Duration::MAX);
        match self.max_delay {
            Some(max) => raw.min(max),
            None => raw,
        }
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.max_attempts
    }

    pub(crate) fn elapsed_limit(&self) -> Option<Duration> {
        self.max_elapsed
    }

    /// Whether `e` is worth another attempt.
    pub(crate) fn retryable(&self, e: &Error) -> bool {
        match &self.classifier {
            Some(f) => f(e),
            None => e.is_retryable(),
        }
    }
}

/// A stage's running retry policy: the policy and its jitter generator,
/// shared by the stage's items.
#[derive(Debug)]
pub(crate) struct Backoff {
    pub(crate) policy: Retry,
    rng: Mutex<SmallRng>,
}

impl Backoff {
    pub(crate) fn new(policy: Retry) -> Backoff {
        let rng = match policy.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::try_from_rng(&mut rand::rngs::SysRng).unwrap_or_else(|_| {
                // No OS entropy: any varying seed spreads retries as well.
                SmallRng::seed_from_u64(std::hash::BuildHasher::hash_one(
                    &std::collections::hash_map::RandomState::new(),
                    std::time::SystemTime::now(),
                ))
            }),
        };
        Backoff {
            policy,
            rng: Mutex::new(rng),
        }
    }

    /// The wait after the `n`-th failed attempt, jittered if the policy
    /// says so.
    pub(crate) fn next_delay(&self, n: u32) -> Duration {
        let delay = self.policy.delay(n);
        if !self.policy.jitter || delay.is_zero() {
            return delay;
        }
        let u: f64 = self.rng.lock().unwrap_or_else(|p| p.into_inner()).random();
        Duration::try_from_secs_f64(delay.as_secs_f64() * u).unwrap_or(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_under_the_bound_and_replays_with_a_seed() {
        let p = Retry::exponential(Duration::from_millis(100)).max_delay(Duration::from_secs(1));
        let a = Backoff::new(p.clone().seed(3));
        let b = Backoff::new(p.clone().seed(3));
        for n in 1..20 {
            let (da, db) = (a.next_delay(n), b.next_delay(n));
            assert_eq!(da, db);
            assert!(da <= p.delay(n), "{da:?} > {:?}", p.delay(n));
        }
        let mut rng = SmallRng::seed_from_u64(9);
        let c = Backoff::new(p.clone().seed(9));
        for n in 1..5 {
            let u: f64 = rng.random();
            let want = Duration::try_from_secs_f64(p.delay(n).as_secs_f64() * u).unwrap();
            assert_eq!(c.next_delay(n), want);
        }
    }

    #[test]
    fn huge_exponents_saturate() {
        let p = Retry::exponential(Duration::from_secs(1)).factor(10.0);
        assert_eq!(p.delay(400), Duration::MAX);
        assert_eq!(p.delay(0), Duration::from_secs(1));
        let capped = p.max_delay(Duration::from_secs(60));
        assert_eq!(capped.delay(400), Duration::from_secs(60));
    }
}
