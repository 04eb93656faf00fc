//! weir's error type.

use std::fmt;
use std::sync::OnceLock;

/// A boxed error from a user's stage, sink or source.
///
/// # Examples
///
/// ```
/// use weir::{BoxError, Pipeline};
///
/// fn parse(line: &str) -> Result<u32, BoxError> {
///     if line.is_empty() {
///         return Err("empty line".into());
///     }
///     Ok(line.trim().parse()?) // any error type converts
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let err = Pipeline::from_iter(["1", ""]).try_map(parse).run().await.unwrap_err();
/// assert_eq!(err.message(), "empty line");
/// # });
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of thing went wrong.
///
/// # Examples
///
/// ```
/// use weir::{ErrorKind, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let err = Pipeline::from_iter([-1i32])
///     .validate(|x| if *x >= 0 { Ok(()) } else { Err("negative") })
///     .run()
///     .await
///     .unwrap_err();
/// match err.kind() {
///     ErrorKind::Validation => {} // bad data: report it, do not retry
///     other => panic!("unexpected {other:?}"),
/// }
/// assert!(!err.is_retryable());
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A stage's function returned an error for an item.
    Stage,
    /// A stage's function panicked on an item.
    Panic,
    /// An item's work took longer than its stage's
    /// [`timeout`](crate::Pipeline::timeout).
    Timeout,
    /// An item failed a [`validate`](crate::Pipeline::validate) check.
    Validation,
    /// A sink refused an item or failed to flush.
    Sink,
    /// A source failed.
    Source,
    /// The pipeline was configured wrongly.
    Config,
    /// weir itself failed (a runtime task died). Please report it.
    Internal,
    /// The stage's [`circuit breaker`](crate::Pipeline::circuit_breaker)
    /// was open and set to [`WhenOpen::Fail`](crate::WhenOpen::Fail).
    CircuitOpen,
    /// Reading or writing a file failed (an [event
    /// log](crate::event::log::EventLog)).
    Io,
}

impl ErrorKind {
    /// The short name used as `error_type` in events and reports.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(weir::ErrorKind::Panic.as_str(), "panic");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Stage => "error",
            ErrorKind::Panic => "panic",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Validation => "validation",
            ErrorKind::Sink => "sink",
            ErrorKind::Source => "source",
            ErrorKind::Config => "config",
            ErrorKind::Internal => "internal",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Io => "io",
        }
    }
}

/// weir's error: what went wrong, where (stage, item, attempt) and why (the
/// cause chain through [`source`](std::error::Error::source)).
///
/// # Examples
///
/// ```
/// use weir::{ErrorKind, Pipeline};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let err = Pipeline::from_iter(["1", "2", "x", "4"])
///     .try_map(|s| s.parse::<u32>())
///     .name("parse")
///     .run()
///     .await
///     .unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Stage);
/// assert_eq!(err.stage(), Some("parse"));
/// assert_eq!(err.item(), Some(2));
/// assert_eq!(err.to_string(), "stage `parse` failed on item 2 (attempt 1): invalid digit found in string");
/// # });
/// ```
pub struct Error {
    // Boxed: a `Result<T, Error>` travels with every item through async
    // stages, and an unboxed error made it ~100 bytes.
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    stage: Option<String>,
    item: Option<u64>,
    attempt: u32,
    /// Whether another attempt could succeed, when it was decided (by
    /// [`Error::permanent`]/[`Error::transient`] or a retry classifier).
    retryable: Option<bool>,
    /// Set when the error is made, or (an error caused by a source, whose
    /// message is the source's) on first use: a failure that a retry then
    /// fixes never formats its message (formatting is an allocation per
    /// failed attempt: callgrind on the `retry` bench, docs/BENCHMARKS.md).
    message: OnceLock<String>,
    source: Option<BoxError>,
    /// Where the failure goes next (a dead-letter copy of the item, a
    /// handler's decision); taken by the failure router, never shown.
    /// Behind a mutex so that `Error` stays `Sync` whatever the item is.
    routing: Option<std::sync::Mutex<crate::policy::Routing>>,
}

impl Inner {
    fn message(&self) -> &str {
        self.message
            .get_or_init(|| self.source.as_ref().map(|s| s.to_string()).unwrap_or_default())
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("stage", &self.stage)
            .field("item", &self.item)
            .field("attempt", &self.attempt)
            .field("retryable", &self.retryable)
            .field("message", &self.message())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::made(kind, OnceLock::from(message.into()), None)
    }

    /// An error caused by `source`; the message is the source's own.
    pub(crate) fn caused_by(kind: ErrorKind, source: BoxError) -> Error {
        Error::made(kind, OnceLock::new(), Some(source))
    }

    fn made(kind: ErrorKind, message: OnceLock<String>, source: Option<BoxError>) -> Error {
        Error {
            inner: Box::new(Inner {
                kind,
                stage: None,
                item: None,
                attempt: 0,
                retryable: None,
                message,
                source,
                routing: None,
            }),
        }
    }

    /// The error for a panic caught in a stage, from its payload.
    pub(crate) fn panicked(payload: &(dyn std::any::Any + Send)) -> Error {
        Error::new(ErrorKind::Panic, panic_message(payload))
    }

    pub(crate) fn at(mut self, stage: &str, item: u64, attempt: u32) -> Error {
        self.inner.stage = Some(stage.to_owned());
        self.inner.item = Some(item);
        self.inner.attempt = attempt;
        self
    }

    /// Sets which attempt failed.
    pub(crate) fn with_attempt(mut self, attempt: u32) -> Error {
        self.inner.attempt = attempt;
        self
    }

    /// Records whether another attempt could succeed, as a classifier
    /// decided.
    pub(crate) fn with_retryable(mut self, retryable: bool) -> Error {
        self.inner.retryable = Some(retryable);
        self
    }

    /// An error that retrying cannot fix (a malformed request, a missing
    /// permission): return it from a stage or sink (it converts into
    /// [`BoxError`]) and a [`Retry`](crate::Retry) policy with the default
    /// classifier fails the item at once. The message and the cause are
    /// `error`'s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use weir::{Error, Retry};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let c = calls.clone();
    /// let err = weir::Pipeline::from_iter([1])
    ///     .try_then(move |_: i32| {
    ///         c.fetch_add(1, Ordering::SeqCst);
    ///         async { Err::<i32, _>(Error::permanent("bad request")) }
    ///     })
    ///     .retry(Retry::fixed(std::time::Duration::from_millis(10)).max_attempts(5))
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(calls.load(Ordering::SeqCst), 1);
    /// assert_eq!((err.attempt(), err.is_retryable()), (1, false));
    /// assert_eq!(err.message(), "bad request");
    /// # });
    /// ```
    pub fn permanent(error: impl Into<BoxError>) -> Error {
        Error::caused_by(ErrorKind::Stage, error.into()).with_retryable(false)
    }

    /// An error that another attempt may fix (a timeout, an overloaded
    /// server). User errors are retryable by default, so this only matters
    /// to classifiers that look at [`is_retryable`](Self::is_retryable),
    /// and to make the intent explicit.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(weir::Error::transient("503 service unavailable").is_retryable());
    /// assert!(!weir::Error::permanent("404 not found").is_retryable());
    /// ```
    pub fn transient(error: impl Into<BoxError>) -> Error {
        Error::caused_by(ErrorKind::Stage, error.into()).with_retryable(true)
    }

    /// Whether another attempt could succeed, as the default
    /// [`Retry`](crate::Retry) classifier decides: the error's own flag if
    /// it has one (from [`permanent`](Self::permanent),
    /// [`transient`](Self::transient), or the retry classifier that saw it
    /// last), else the flag of the first weir error in its cause chain
    /// (a user error that *is* `Error::permanent(..)`), else by kind:
    /// errors returned by stages and sinks and timeouts are retryable;
    /// panics, validation failures, an open circuit, configuration and
    /// internal errors are not.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{ErrorKind, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let err = Pipeline::from_iter([1]).try_map(|_| Err::<u8, _>("nope")).run().await.unwrap_err();
    /// assert!(err.is_retryable());
    /// let err = Pipeline::from_iter([1]).map(|_: i32| -> u8 { panic!("bug") }).run().await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Panic);
    /// assert!(!err.is_retryable());
    /// # });
    /// ```
    pub fn is_retryable(&self) -> bool {
        if let Some(flag) = self.inner.retryable {
            return flag;
        }
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            if let Some(flag) = e.downcast_ref::<Error>().and_then(|e| e.inner.retryable) {
                return flag;
            }
            cause = e.source();
        }
        match self.inner.kind {
            ErrorKind::Stage | ErrorKind::Sink | ErrorKind::Source | ErrorKind::Timeout | ErrorKind::Io => {
                true
            }
            ErrorKind::Panic
            | ErrorKind::Validation
            | ErrorKind::Config
            | ErrorKind::Internal
            | ErrorKind::CircuitOpen => false,
        }
    }

    pub(crate) fn routed(mut self, routing: crate::policy::Routing) -> Error {
        self.inner.routing = Some(std::sync::Mutex::new(routing));
        self
    }

    pub(crate) fn take_routing(&mut self) -> Option<crate::policy::Routing> {
        self.inner
            .routing
            .take()
            .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    /// The messages of the causes below the [`message`](Self::message),
    /// outermost first: the chain of
    /// [`source`](std::error::Error::source)s, without the user's error
    /// whose text the message already is.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("lookup failed")]
    /// struct Lookup(#[source] std::io::Error);
    ///
    /// let err = weir::Pipeline::from_iter([1])
    ///     .try_map(|_| Err::<u8, _>(Lookup(std::io::Error::other("timed out"))))
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.message(), "lookup failed");
    /// assert_eq!(err.causes(), ["timed out"]);
    /// # });
    /// ```
    pub fn causes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut next = std::error::Error::source(self);
        if next.is_some_and(|e| e.to_string() == self.message()) {
            next = next.and_then(|e| e.source());
        }
        while let Some(e) = next {
            out.push(e.to_string());
            next = e.source();
        }
        out
    }

    /// What kind of failure this is.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{ErrorKind, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let err = Pipeline::from_iter([1, 2])
    ///     .map(|x: i32| if x == 2 { panic!("unexpected input") } else { x })
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Panic);
    /// assert_eq!(err.kind().as_str(), "panic");
    /// # });
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The stage where it happened, if a stage is to blame.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::Pipeline;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let err = Pipeline::from_iter([1]).try_for_each(|_| Err("disk full")).name("store").run().await.unwrap_err();
    /// assert_eq!(err.stage(), Some("store"));
    ///
    /// // Not every error has a stage to blame:
    /// let registry = weir::compose::Registry::<u8>::new();
    /// assert_eq!(registry.build("nope", &serde_json::Value::Null).unwrap_err().stage(), None);
    /// # });
    /// ```
    pub fn stage(&self) -> Option<&str> {
        self.inner.stage.as_deref()
    }

    /// The item's sequence number at its source (0-based), if an item is
    /// to blame.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::Pipeline;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let err = Pipeline::from_iter(0..10u32)
    ///     .filter(|x| x % 2 == 1)
    ///     .try_map(|x| if x == 7 { Err("unlucky") } else { Ok(x) })
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.item(), Some(7)); // the position at the source, not in the stage's input
    /// # });
    /// ```
    pub fn item(&self) -> Option<u64> {
        self.inner.item
    }

    /// Which attempt failed (1 for the first), or 0 when no item is to blame.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::{Pipeline, Retry};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let err = Pipeline::from_iter([1])
    ///     .try_then(|_: i32| async { Err::<i32, _>("connection reset") })
    ///     .retry(Retry::fixed(Duration::from_millis(100)).max_attempts(3))
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.attempt(), 3);
    /// # });
    /// ```
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// The message, without the context.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::Pipeline;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let err = Pipeline::from_iter(["x"]).try_map(|s| s.parse::<u8>()).name("parse").run().await.unwrap_err();
    /// assert_eq!(err.message(), "invalid digit found in string");
    /// assert_eq!(err.to_string(), "stage `parse` failed on item 0 (attempt 1): invalid digit found in string");
    /// # });
    /// ```
    pub fn message(&self) -> &str {
        self.inner.message()
    }

    /// A copy with the same kind, context and message whose source is a
    /// chain of the causes' messages, so that [`causes`](Self::causes)
    /// gives the same list (sources are not `Clone`).
    pub(crate) fn clone_with_causes(&self) -> Error {
        let mut copy = self.shallow_clone();
        let chain = self
            .causes()
            .into_iter()
            .rev()
            .fold(None, |next, message| Some(Box::new(Cause { message, next })));
        copy.inner.source = chain.map(|c| c as BoxError);
        copy
    }

    /// A copy with the same kind, context and message but no source object
    /// (sources are not `Clone`); the source's message is kept.
    pub(crate) fn shallow_clone(&self) -> Error {
        let i = &self.inner;
        Error {
            inner: Box::new(Inner {
                kind: i.kind,
                stage: i.stage.clone(),
                item: i.item,
                attempt: i.attempt,
                retryable: i.retryable,
                message: OnceLock::from(i.message().to_owned()),
                source: None,
                routing: None,
            }),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let verb = match i.kind {
            ErrorKind::Panic => "panicked",
            _ => "failed",
        };
        match (&i.stage, i.item) {
            (Some(stage), Some(item)) => write!(
                f,
                "stage `{stage}` {verb} on item {item} (attempt {}): {}",
                i.attempt,
                i.message()
            ),
            (Some(stage), None) => write!(f, "stage `{stage}` {verb}: {}", i.message()),
            _ => f.write_str(i.message()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Turns a caught panic's payload into its message.
/// One cause's message in a copied cause chain.
#[derive(Debug)]
struct Cause {
    message: String,
    next: Option<Box<Cause>>,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.next
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Runs `f` and turns a panic into an [`Error`].
#[inline(always)]
pub(crate) fn guard<R>(f: impl FnOnce() -> R) -> Result<R, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| Error::panicked(&*p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_stage_item_attempt_and_keeps_the_cause() {
        let io = std::io::Error::other("disk full");
        let e = Error::caused_by(ErrorKind::Sink, Box::new(io)).at("store", 41, 3);
        assert_eq!(
            e.to_string(),
            "stage `store` failed on item 41 (attempt 3): disk full"
        );
        let src = std::error::Error::source(&e).unwrap();
        assert_eq!(src.to_string(), "disk full");
        assert!(std::error::Error::source(&e.shallow_clone()).is_none());
    }

    #[test]
    fn panic_messages_are_recovered() {
        let p = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(&*p), "boom 1");
    }
}
