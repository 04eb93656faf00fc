//! Custom failure handlers: a function that looks at each failure of its
//! stage and decides what happens to the item.

use std::fmt;
use std::time::Duration;

use crate::error::Error;

/// The most attempts a [`Decision::RetryAfter`] loop makes on one item;
/// the next failure after that goes to the stage's error policy.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use weir::{Decision, Pipeline, MAX_HANDLER_ATTEMPTS};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let calls = Arc::new(AtomicU32::new(0));
/// let c = calls.clone();
/// let err = Pipeline::from_iter([1u8])
///     .try_map(move |_| {
///         c.fetch_add(1, Ordering::Relaxed);
///         Err::<u8, _>("always busy")
///     })
///     .on_failure(|_| Decision::RetryAfter(Duration::ZERO)) // retry forever, it says
///     .run()
///     .await
///     .unwrap_err();
/// assert_eq!(calls.load(Ordering::Relaxed), MAX_HANDLER_ATTEMPTS);
/// assert_eq!(err.attempt(), MAX_HANDLER_ATTEMPTS);
/// # });
/// ```
pub const MAX_HANDLER_ATTEMPTS: u32 = 100;

/// One failure of an item, as shown to an
/// [`on_failure`](crate::Pipeline::on_failure) handler.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use weir::{Decision, ErrorKind, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let s = seen.clone();
/// let out = Pipeline::from_iter([4u32, 0, 5])
///     .try_map(|x| 100u32.checked_div(x).ok_or("division by zero"))
///     .on_failure(move |f| {
///         s.lock().unwrap().push((*f.item, f.error.kind(), f.attempt));
///         Decision::Replace(0)
///     })
///     .collect()
///     .await
///     .unwrap();
/// assert_eq!(out, [25, 0, 20]);
/// assert_eq!(*seen.lock().unwrap(), [(0, ErrorKind::Stage, 1)]);
/// # });
/// ```
#[non_exhaustive]
pub struct Failure<'a, T> {
    /// The item as it entered the stage.
    pub item: &'a T,
    /// What went wrong (its [`kind`](Error::kind) says whether it was a
    /// panic, a timeout, …).
    pub error: &'a Error,
    /// Which attempt failed: 1 for the first, more after
    /// [`Decision::RetryAfter`].
    pub attempt: u32,
}

impl<T: fmt::Debug> fmt::Debug for Failure<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failure")
            .field("item", self.item)
            .field("error", self.error)
            .field("attempt", &self.attempt)
            .finish()
    }
}

/// What an [`on_failure`](crate::Pipeline::on_failure) handler wants done
/// with a failed item.
///
/// # Examples
///
/// ```
/// use weir::{Decision, Failure, Pipeline};
///
/// fn decide(f: &Failure<'_, String>) -> Decision<usize> {
///     if f.item.is_empty() { Decision::Replace(0) } else { Decision::Skip }
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let r = Pipeline::from_iter(["12", "", "x"].map(String::from))
///     .try_map(|s: String| s.parse::<usize>())
///     .on_failure(decide)
///     .run()
///     .await
///     .unwrap();
/// assert_eq!((r.delivered, r.failed), (2, 1)); // "" became 0, "x" was skipped
/// assert_eq!(r.stages[1].replaced, 1);
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision<U> {
    /// Finalize the item as failed and go on, whatever the stage's error
    /// policy (as [`ErrorPolicy::Skip`](crate::ErrorPolicy::Skip)):
    /// counted and reported, never fatal.
    Skip,
    /// Hand the failure to the stage's error policy: fail-fast by default,
    /// the dead-letter sink if the stage has one.
    Fail,
    /// Wait this long, then run the stage's function again on a copy of
    /// the item. Waiting happens inside the item's work, so other items
    /// keep flowing through an unordered or keyed stage (the synchronous
    /// `try_map` and `validate` cannot wait: they run again at once). After
    /// [`MAX_HANDLER_ATTEMPTS`] attempts the failure goes to the stage's
    /// error policy as with [`Fail`](Decision::Fail).
    RetryAfter(Duration),
    /// Send this item downstream instead: it counts as the stage's output
    /// (and in the stage's `replaced` count), not as a failure.
    Replace(U),
}
