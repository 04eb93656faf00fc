//! One dead-letter sink for a whole pipeline.
//!
//! Every stage's dead letters are typed by the item the stage takes in, so
//! stages of different types cannot share a `Sink<DeadLetter<T>>`.
//! [`DeadLetters`] is the bridge: a cloneable sink of `DeadLetter<T>` for
//! every serializable `T`, which converts each record's item to JSON and
//! writes it to one shared `Sink<DeadLetter<serde_json::Value>>`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Mutex;

use super::DeadLetter;
use crate::error::BoxError;
use crate::stage::Sink;

/// One dead-letter sink shared by any number of stages, whatever their
/// items' types: give each stage a clone with
/// [`dead_letter`](crate::Pipeline::dead_letter). Each record reaches the
/// shared sink as a `DeadLetter<serde_json::Value>`, its item converted
/// with `serde_json` and every other field unchanged (stage, error and
/// causes, attempts, failure times, pipeline id).
///
/// Writes from different stages are serialized through a lock, each
/// stage's flush flushes the shared sink, and the sink is closed once, by
/// the last clone to close (so keep no clone of your own: move the last
/// one into a stage). An item that cannot be converted to JSON (a map with
/// non-string keys, say) is refused like any record the sink refuses: the
/// item fails and the run returns an error naming the stage's dead-letter
/// sink. Nothing is dropped silently.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use weir::{DeadLetter, DeadLetters, ErrorPolicy, PipelineBuilder};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let kept = Arc::new(Mutex::new(Vec::new()));
/// let letters = kept.clone();
/// let dlq = DeadLetters::new(weir::sink_fn(move |letter: DeadLetter<serde_json::Value>| {
///     letters.lock().unwrap().push((letter.stage, letter.item, letter.error));
///     async { Ok::<_, std::io::Error>(()) }
/// }));
/// let report = PipelineBuilder::new()
///     .error_policy(ErrorPolicy::DeadLetter)
///     .from_iter(["1", "x", "300", "4"])
///     .try_map(|s: &str| s.parse::<u32>())
///     .name("parse")
///     .dead_letter(dlq.clone())
///     .try_map(u8::try_from)
///     .name("narrow")
///     .dead_letter(dlq)
///     .run()
///     .await
///     .unwrap();
/// assert_eq!((report.delivered, report.dead_lettered), (2, 2));
/// let mut kept = kept.lock().unwrap().clone();
/// kept.sort_by(|a, b| a.0.cmp(&b.0));
/// assert_eq!(kept[0].0, "narrow");
/// assert_eq!(kept[0].1, serde_json::json!(300));
/// assert_eq!((kept[1].0.as_str(), &kept[1].1), ("parse", &serde_json::json!("x")));
/// assert_eq!(kept[1].2, "invalid digit found in string");
/// # });
/// ```
pub struct DeadLetters<S> {
    shared: Arc<Shared<S>>,
    /// Whether this clone still counts among the open ones.
    open: bool,
}

struct Shared<S> {
    /// `None` once closed.
    sink: Mutex<Option<S>>,
    /// Clones not yet closed or dropped.
    open: AtomicUsize,
}

impl<S> DeadLetters<S>
where
    S: Sink<DeadLetter<serde_json::Value>>,
{
    /// Shares `sink` among the stages given a clone of the result.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{DeadLetter, DeadLetters, Pipeline};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let dlq = DeadLetters::new(weir::sink_fn(|l: DeadLetter<serde_json::Value>| async move {
    ///     assert_eq!(l.item, serde_json::json!([1, 2]));
    ///     Ok::<_, std::io::Error>(())
    /// }));
    /// let report = Pipeline::from_iter([vec![1, 2]])
    ///     .try_map(|v: Vec<i32>| if v.len() > 1 { Err("too long") } else { Ok(v) })
    ///     .dead_letter(dlq)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(report.dead_lettered, 1);
    /// # });
    /// ```
    pub fn new(sink: S) -> DeadLetters<S> {
        DeadLetters {
            shared: Arc::new(Shared {
                sink: Mutex::new(Some(sink)),
                open: AtomicUsize::new(1),
            }),
            open: true,
        }
    }
}

impl<S> Clone for DeadLetters<S> {
    fn clone(&self) -> Self {
        self.shared.open.fetch_add(1, Ordering::AcqRel);
        DeadLetters {
            shared: self.shared.clone(),
            open: true,
        }
    }
}

impl<S> Drop for DeadLetters<S> {
    fn drop(&mut self) {
        // A clone dropped without closing (never given to a stage, or its
        // stage never ran) no longer holds the sink open.
        if self.open {
            self.shared.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<S> std::fmt::Debug for DeadLetters<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("open", &self.shared.open.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

/// The shared sink was closed before this clone's write.
fn closed() -> BoxError {
    "the shared dead-letter sink is closed".into()
}

impl<T, S> Sink<DeadLetter<T>> for DeadLetters<S>
where
    T: Serialize + Send + 'static,
    S: Sink<DeadLetter<serde_json::Value>>,
{
    type Error = BoxError;

    async fn write(&mut self, letter: DeadLetter<T>) -> Result<(), BoxError> {
        let item = serde_json::to_value(&letter.item)
            .map_err(|e| format!("the dead letter's item cannot be written as JSON: {e}"))?;
        let letter = letter.map(|_| item);
        let mut sink = self.shared.sink.lock().await;
        let sink = sink.as_mut().ok_or_else(closed)?;
        sink.write(letter).await.map_err(Into::into)
    }

    async fn flush(&mut self) -> Result<(), BoxError> {
        let mut sink = self.shared.sink.lock().await;
        let sink = sink.as_mut().ok_or_else(closed)?;
        sink.flush().await.map_err(Into::into)
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        if !std::mem::replace(&mut self.open, false) {
            return Ok(());
        }
        let last = self.shared.open.fetch_sub(1, Ordering::AcqRel) == 1;
        let mut guard = self.shared.sink.lock().await;
        if !last {
            // Others still write: make this stage's records durable.
            return match guard.as_mut() {
                Some(sink) => Sink::<DeadLetter<serde_json::Value>>::flush(sink)
                    .await
                    .map_err(Into::into),
                None => Ok(()),
            };
        }
        match guard.take() {
            Some(mut sink) => Sink::<DeadLetter<serde_json::Value>>::close(&mut sink)
                .await
                .map_err(Into::into),
            None => Ok(()),
        }
    }
}
