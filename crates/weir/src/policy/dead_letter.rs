//! Dead letters: failed items kept, with why they failed, in a sink of the
//! user's choosing.
//!
//! A stage with a dead-letter sink keeps a clone of each input while the
//! item is processed (only that stage pays for it). On failure the clone
//! rides on the [`Error`] (as a type-erased [`Routing`]) to the failure
//! router (`TaskCx::fail`), which turns it into a [`Letter`] and sends it,
//! with the item's token, to the stage's dead-letter task. That task writes
//! a [`DeadLetter`] record to the sink and finalizes the item
//! [`DeadLettered`](crate::Status::DeadLettered) once a flush after the
//! write succeeded. A sink that refuses a record fails the item and the
//! run: nothing is lost silently.

use std::any::Any;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::ErrorPolicy;
use crate::ack::{Status, Token};
use crate::error::{Error, ErrorKind};
use crate::event::{EventBus, EventKind};
use crate::metrics::StageMetrics;
use crate::stage::Sink;

/// The record a [`dead_letter`](crate::Pipeline::dead_letter) sink
/// receives for each item that failed in its stage: the original item and
/// everything known about its failure. Serializable (e.g. as one JSON line)
/// when the item is.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use weir::{DeadLetter, Pipeline, Status};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let letters = Arc::new(Mutex::new(Vec::new()));
/// let kept = letters.clone();
/// let report = Pipeline::from_iter(["1", "x", "3"])
///     .try_then(|s: &str| async move { s.parse::<u8>() })
///     .name("parse")
///     .dead_letter(weir::sink_fn(move |letter: DeadLetter<&str>| {
///         kept.lock().unwrap().push(letter);
///         async { Ok::<_, std::io::Error>(()) }
///     }))
///     .run()
///     .await
///     .unwrap();
/// assert_eq!((report.delivered, report.dead_lettered, report.failed), (2, 1, 0));
/// let letters = letters.lock().unwrap();
/// let letter = &letters[0];
/// assert_eq!((letter.item, letter.stage.as_str(), letter.item_seq), ("x", "parse", 1));
/// assert_eq!(letter.error, "invalid digit found in string");
/// assert_eq!((letter.error_type.as_str(), letter.attempts), ("error", 1));
/// let json = serde_json::to_value(letter).unwrap();
/// assert_eq!(json["item"], "x");
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeadLetter<T> {
    /// The item as it entered the failing stage.
    pub item: T,
    /// The error message (without context).
    pub error: String,
    /// The messages of the error's causes, outermost first.
    pub causes: Vec<String>,
    /// `error`, `panic`, `timeout`, … ([`ErrorKind::as_str`]).
    pub error_type: String,
    /// The stage's name.
    pub stage: String,
    /// The item's sequence number at its source.
    pub item_seq: u64,
    /// How many attempts were made (1 without retries).
    pub attempts: u32,
    /// When the first attempt failed, in milliseconds since the Unix epoch.
    pub first_failure_ms: u64,
    /// When the last attempt failed, in milliseconds since the Unix epoch.
    pub last_failure_ms: u64,
    /// The run's id ([`Context::id`](crate::Context::id)).
    pub pipeline: String,
}

impl<T> DeadLetter<T> {
    /// The same record with its item replaced by `f(item)` (to convert it,
    /// or keep only its key).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{DeadLetter, Pipeline};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let kept = Arc::new(Mutex::new(Vec::new()));
    /// let letters = kept.clone();
    /// Pipeline::from_iter(["a", "bb"])
    ///     .try_map(|s: &str| if s.len() > 1 { Err("too long") } else { Ok(s) })
    ///     .dead_letter(weir::sink_fn(move |l: DeadLetter<&str>| {
    ///         letters.lock().unwrap().push(l.map(str::len));
    ///         async { Ok::<_, std::io::Error>(()) }
    ///     }))
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// let kept = kept.lock().unwrap();
    /// assert_eq!((kept[0].item, kept[0].error.as_str()), (2, "too long"));
    /// # });
    /// ```
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> DeadLetter<U> {
        DeadLetter {
            item: f(self.item),
            error: self.error,
            causes: self.causes,
            error_type: self.error_type,
            stage: self.stage,
            item_seq: self.item_seq,
            attempts: self.attempts,
            first_failure_ms: self.first_failure_ms,
            last_failure_ms: self.last_failure_ms,
            pipeline: self.pipeline,
        }
    }
}

/// Where a failure goes next, carried on its [`Error`] from the stage's
/// work to the failure router.
#[derive(Default)]
pub(crate) struct Routing {
    /// A copy of the failed input, for the dead-letter sink.
    pub(crate) item: Option<Box<dyn Any + Send>>,
    /// The stage's dead-letter task.
    pub(crate) to: Option<mpsc::Sender<Letter>>,
    /// A handler's decision, instead of the stage's error policy.
    pub(crate) policy: Option<ErrorPolicy>,
    pub(crate) first_failure_ms: Option<u64>,
}

impl fmt::Debug for Letter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Letter")
            .field("item_seq", &self.item_seq)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routing")
            .field("kept", &self.item.is_some())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A dead letter on its way to the stage's dead-letter task: the record
/// without its type, and the item's token.
pub(crate) struct Letter {
    /// Behind a mutex so that task contexts holding letters stay `Sync`.
    pub(crate) item: Mutex<Box<dyn Any + Send>>,
    pub(crate) error: String,
    pub(crate) causes: Vec<String>,
    pub(crate) error_type: &'static str,
    pub(crate) item_seq: u64,
    pub(crate) attempts: u32,
    pub(crate) first_failure_ms: u64,
    pub(crate) last_failure_ms: u64,
    pub(crate) token: Token,
}

/// What a stage's dead-letter task needs from its run, and nothing more.
pub(crate) struct DeadLetterRun {
    /// Where a refused record's `ItemFailed` goes.
    pub(crate) bus: EventBus,
    /// The stage's name.
    pub(crate) stage: String,
    /// The run's id (the records' `pipeline`).
    pub(crate) run_id: String,
    /// The stage's metrics: dead letters written and refused.
    pub(crate) metrics: Arc<StageMetrics>,
    /// Fails the run (a refused record, a sink that fails to close).
    pub(crate) fail: Box<dyn Fn(Error) + Send + Sync>,
    /// Records written at most before a flush.
    pub(crate) chunk: usize,
}

impl fmt::Debug for DeadLetterRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetterRun")
            .field("stage", &self.stage)
            .field("run_id", &self.run_id)
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

/// Runs the dead-letter sink of a stage: writes each letter's record,
/// flushes after each burst, and finalizes the letters' items.
pub(crate) async fn run_dead_letters<T, S>(mut rx: mpsc::Receiver<Letter>, mut sink: S, run: DeadLetterRun)
where
    T: Send + 'static,
    S: Sink<DeadLetter<T>>,
{
    let name = format!("{}/dead_letter", run.stage);
    let chunk = run.chunk;
    let mut written: Vec<(Token, u32)> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(letter) = next.take() {
            let Letter {
                item,
                error,
                causes,
                error_type,
                item_seq,
                attempts,
                first_failure_ms,
                last_failure_ms,
                token,
            } = letter;
            let item = item.into_inner().unwrap_or_else(|p| p.into_inner());
            let outcome = match item.downcast::<T>() {
                Ok(item) => {
                    let record = DeadLetter {
                        item: *item,
                        error,
                        causes,
                        error_type: error_type.to_owned(),
                        stage: run.stage.clone(),
                        item_seq,
                        attempts,
                        first_failure_ms,
                        last_failure_ms,
                        pipeline: run.run_id.clone(),
                    };
                    match AssertUnwindSafe(sink.write(record)).catch_unwind().await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(Error::caused_by(ErrorKind::Sink, e.into())),
                        Err(p) => Err(Error::panicked(&*p)),
                    }
                }
                Err(_) => Err(Error::new(
                    ErrorKind::Internal,
                    "a dead letter of the wrong type (a weir bug: please report it)",
                )),
            };
            match outcome {
                Ok(()) => written.push((token, attempts)),
                Err(e) => refused(&run, &name, token, attempts, e).await,
            }
            if written.len() < chunk {
                next = rx.try_recv().ok();
            }
        }
        flush(&mut sink, &mut written, &run, &name).await;
    }
    let error = match AssertUnwindSafe(sink.close()).catch_unwind().await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => Error::caused_by(ErrorKind::Sink, e.into()),
        Err(p) => Error::panicked(&*p),
    };
    (run.fail)(Error::new(
        error.kind(),
        format!("dead-letter sink `{name}` failed to close: {error}"),
    ));
}

async fn flush<T, S: Sink<DeadLetter<T>>>(
    sink: &mut S,
    written: &mut Vec<(Token, u32)>,
    run: &DeadLetterRun,
    name: &str,
) {
    if written.is_empty() {
        return;
    }
    let error = match AssertUnwindSafe(sink.flush()).catch_unwind().await {
        Ok(Ok(())) => {
            let n = written.len() as u64;
            for (token, _) in written.drain(..) {
                token.finish(Status::DeadLettered);
            }
            run.metrics.dead_lettered.fetch_add(n, Ordering::Relaxed);
            return;
        }
        Ok(Err(e)) => Error::caused_by(ErrorKind::Sink, e.into()),
        Err(p) => Error::panicked(&*p),
    };
    // The first keeps the cause: it is the one a fail-fast run returns.
    let copy = error.shallow_clone();
    let mut first = Some(error);
    for (token, attempts) in written.drain(..) {
        let e = first.take().unwrap_or_else(|| copy.shallow_clone());
        refused(run, name, token, attempts, e).await;
    }
}

/// The dead-letter sink refused an item's record: the item fails for good
/// and the run stops with an error naming the dead-letter sink.
async fn refused(run: &DeadLetterRun, name: &str, token: Token, attempts: u32, error: Error) {
    let error = error.at(name, token.seq(), attempts);
    run.metrics.dead_letter_refused.fetch_add(1, Ordering::Relaxed);
    let key = token.key();
    token.finish(Status::Halted);
    run.bus
        .emit(EventKind::ItemFailed {
            stage: name.to_owned(),
            item: error.item().unwrap_or_default(),
            key,
            error: error.message().to_owned(),
            error_type: error.kind().as_str().to_owned(),
            attempt: attempts,
            retryable: false,
        })
        .await;
    (run.fail)(error);
}
