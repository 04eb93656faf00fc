//! weir's error type.

use std::fmt;

/// A boxed error from a user's stage, sink or source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of thing went wrong.
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

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    stage: Option<String>,
    item: Option<u64>,
    attempt: u32,
    message: String,
    source: Option<BoxError>,
    /// Where the failure goes next (a dead-letter copy of the item, a
    /// handler's decision); taken by the failure router, never shown.
    /// Behind a mutex so that `Error` stays `Sync` whatever the item is.
    routing: Option<std::sync::Mutex<crate::policy::Routing>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            inner: Box::new(Inner {
                kind,
                stage: None,
                item: None,
                attempt: 0,
                message: message.into(),
                source: None,
                routing: None,
            }),
        }
    }

    /// An error caused by `source`; the message is the source's own.
    pub(crate) fn caused_by(kind: ErrorKind, source: BoxError) -> Error {
        let mut e = Error::new(kind, source.to_string());
        e.inner.source = Some(source);
        e
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

    /// The same error, failed on attempt `attempt` (1 for the first).
    pub(crate) fn on_attempt(mut self, attempt: u32) -> Error {
        self.inner.attempt = attempt;
        self
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
        if next.is_some_and(|e| e.to_string() == self.inner.message) {
            next = next.and_then(|e| e.source());
        }
        while let Some(e) = next {
            out.push(e.to_string());
            next = e.source();
        }
        out
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The stage where it happened, if a stage is to blame.
    pub fn stage(&self) -> Option<&str> {
        self.inner.stage.as_deref()
    }

    /// The item's sequence number at its source (0-based), if an item is
    /// to blame.
    pub fn item(&self) -> Option<u64> {
        self.inner.item
    }

    /// Which attempt failed (1 for the first), or 0 when no item is to blame.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// The message, without the context.
    pub fn message(&self) -> &str {
        &self.inner.message
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
                message: i.message.clone(),
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
                i.attempt, i.message
            ),
            (Some(stage), None) => write!(f, "stage `{stage}` {verb}: {}", i.message),
            _ => f.write_str(&i.message),
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
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
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
