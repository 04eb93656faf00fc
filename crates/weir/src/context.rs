//! The run's [`Context`]: its id, start time and a metadata map that
//! stages, hooks and the caller share (seed 003's PipelineContext).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

use serde::Serialize;

use crate::event::{EventBus, EventKind, WeakEventBus};

/// A typed key into a [`Context`]'s metadata: the name says where, the
/// type says what. Declare keys as constants next to the stages that use
/// them.
///
/// # Examples
///
/// ```
/// use weir::{Context, Key};
///
/// const ROWS: Key<u64> = Key::new("rows");
/// let ctx = Context::new("import");
/// ctx.set(&ROWS, 10);
/// assert_eq!(ctx.get(&ROWS), Some(10));
/// ```
pub struct Key<T> {
    name: &'static str,
    _t: PhantomData<fn() -> T>,
}

impl<T> Key<T> {
    /// A key named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// const SEEN: weir::Key<Vec<String>> = weir::Key::new("seen");
    /// assert_eq!(SEEN.name(), "seen");
    /// ```
    pub const fn new(name: &'static str) -> Key<T> {
        Key {
            name,
            _t: PhantomData,
        }
    }

    /// The key's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Context, Key};
    /// const ROWS: Key<u64> = Key::new("rows");
    /// assert_eq!(ROWS.name(), "rows");
    /// let ctx = Context::new("import");
    /// ctx.set(&ROWS, 10);
    /// assert_eq!(ctx.keys(), [ROWS.name()]);
    /// ```
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?}: {})", self.name, std::any::type_name::<T>())
    }
}

type Value = (TypeId, Box<dyn Any + Send + Sync>);

struct Inner {
    id: String,
    started: SystemTime,
    metadata: Mutex<HashMap<&'static str, Value>>,
    /// The run the context serves, for [`Context::emit`]: weak, since the
    /// run holds its context.
    run: Mutex<Run>,
}

/// The run a context serves: weak handles to its event bus and its
/// checkpoint count.
struct Run {
    bus: WeakEventBus,
    checkpoints: Weak<AtomicU64>,
}

/// What a run shares with its stages and hooks: a unique id, the start
/// time, a metadata map with typed [`Key`]s, and (in a stage's or a hook's
/// hands) the name of the stage at hand.
///
/// Cloning is cheap and every clone sees the same metadata. Give a
/// pipeline your own context with
/// [`PipelineBuilder::context`](crate::PipelineBuilder::context) to
/// pre-populate it and to read it after the run; otherwise each run makes
/// one. The map is behind a mutex: fine for counters and flags a stage
/// touches now and then, not for per-item hot paths.
///
/// # Examples
///
/// ```
/// use weir::{compose, Context, Key, PipelineBuilder};
///
/// const LONGEST: Key<usize> = Key::new("longest");
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let ctx = Context::new("words");
/// let measure = compose::from_fn("measure", |w: &'static str, ctx: &Context, out: &mut Vec<usize>| {
///     ctx.update(&LONGEST, |m| *m = Some(m.unwrap_or(0).max(w.len())));
///     out.push(w.len());
///     Ok::<_, weir::BoxError>(())
/// });
/// PipelineBuilder::new().context(ctx.clone()).from_iter(["a", "abc", "ab"]).pipe(measure).run().await.unwrap();
/// assert_eq!(ctx.get(&LONGEST), Some(3));
/// # });
/// ```
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
    stage: Option<Arc<str>>,
}

impl Context {
    /// A fresh context whose id is `name` followed by a suffix unique in
    /// this process (`import-1732360000000-3`).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = weir::Context::new("import");
    /// let b = weir::Context::new("import");
    /// assert!(a.id().starts_with("import-"));
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn new(name: &str) -> Context {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let started = SystemTime::now();
        let ms = started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Context {
            inner: Arc::new(Inner {
                id: format!("{name}-{ms}-{n}"),
                started,
                metadata: Mutex::new(HashMap::new()),
                run: Mutex::new(Run {
                    bus: WeakEventBus::none(),
                    checkpoints: Weak::new(),
                }),
            }),
            stage: None,
        }
    }

    /// The run's unique id.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let ctx = weir::Context::new("nightly");
    /// assert!(ctx.id().starts_with("nightly-"));
    /// let events: Vec<_> = weir::PipelineBuilder::new().context(ctx.clone()).from_iter(0..3).events().collect().await;
    /// assert!(events.iter().all(|e| e.run_id == ctx.id())); // tells this run's events apart in a shared log
    /// # });
    /// ```
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// When the context was made (the run's start, unless you made it
    /// earlier yourself).
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = weir::Context::new("x");
    /// assert!(ctx.started() <= std::time::SystemTime::now());
    /// ```
    pub fn started(&self) -> SystemTime {
        self.inner.started
    }

    /// The stage this view of the context belongs to: set for stages and
    /// stage hooks, `None` for the pipeline's own view.
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = weir::Context::new("x");
    /// assert_eq!(ctx.stage(), None);
    /// ```
    pub fn stage(&self) -> Option<&str> {
        self.stage.as_deref()
    }

    /// The same context seen from stage `name`.
    pub(crate) fn for_stage(&self, name: &str) -> Context {
        Context {
            inner: self.inner.clone(),
            stage: Some(name.into()),
        }
    }

    /// Makes [`emit`](Self::emit) send to `bus` and
    /// [`emit_checkpoint`](Self::emit_checkpoint) count in `checkpoints`
    /// (those of the latest run started with this context).
    pub(crate) fn attach(&self, bus: &EventBus, checkpoints: &Arc<AtomicU64>) {
        *self.inner.run.lock().unwrap_or_else(|p| p.into_inner()) = Run {
            bus: bus.downgrade(),
            checkpoints: Arc::downgrade(checkpoints),
        };
    }

    /// The bus of the run, while it lasts.
    fn bus(&self) -> Option<EventBus> {
        self.inner
            .run
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bus
            .upgrade()
    }

    /// Emits a [`Custom`](crate::EventKind::Custom) event from this stage
    /// (or from the pipeline, for its own context): `data` is serialized
    /// to JSON only if someone listens to the run's events. Never waits,
    /// and still lossless for [`events`](crate::Pipeline::events): what
    /// the consumer is not ready for is queued and sent, with
    /// backpressure, at the stage's next flush (a chunk at the latest).
    /// Does nothing outside a run. Data that fails to serialize is sent as
    /// a string saying why.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{compose, Context, EventKind, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let big = compose::from_fn("big", |x: u32, ctx: &Context, out: &mut Vec<u32>| {
    ///     if x > 1 {
    ///         ctx.emit("big_value", serde_json::json!({ "x": x }));
    ///     }
    ///     out.push(x);
    ///     Ok::<_, weir::BoxError>(())
    /// });
    /// let events: Vec<_> = PipelineBuilder::new().from_iter(0..3u32).pipe(big).events().collect().await;
    /// let custom: Vec<_> = events.iter().filter_map(|e| match &e.kind {
    ///     EventKind::Custom { stage, name, data } => Some((stage.clone(), name.clone(), data["x"].clone())),
    ///     _ => None,
    /// }).collect();
    /// assert_eq!(custom, [(Some("big".to_owned()), "big_value".to_owned(), serde_json::json!(2))]);
    /// # });
    /// ```
    pub fn emit(&self, name: &str, data: impl Serialize) {
        let Some(bus) = self.bus().filter(EventBus::listening) else {
            return;
        };
        let data = serde_json::to_value(data)
            .unwrap_or_else(|e| serde_json::Value::String(format!("unserializable event data: {e}")));
        bus.emit_now(EventKind::Custom {
            stage: self.stage().map(str::to_owned),
            name: name.to_owned(),
            data,
        });
    }

    /// Emits a [`CheckpointCommitted`](crate::EventKind::CheckpointCommitted)
    /// event: for sources and sinks that commit positions (offsets,
    /// cursors), so that a log of the run says how far it got. Sent like
    /// [`emit`](Self::emit)'s events.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{compose, Context, EventKind, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let commit = compose::from_fn("commit", |x: u32, ctx: &Context, out: &mut Vec<u32>| {
    ///     ctx.emit_checkpoint(format!("offset={x}"));
    ///     out.push(x);
    ///     Ok::<_, weir::BoxError>(())
    /// });
    /// let events: Vec<_> = PipelineBuilder::new().from_iter([7u32]).pipe(commit).events().collect().await;
    /// assert!(events.iter().any(|e| matches!(&e.kind,
    ///     EventKind::CheckpointCommitted { stage, position } if stage == "commit" && position == "offset=7")));
    /// # });
    /// ```
    pub fn emit_checkpoint(&self, position: impl Into<String>) {
        let (bus, checkpoints) = {
            let run = self.inner.run.lock().unwrap_or_else(|p| p.into_inner());
            (run.bus.upgrade(), run.checkpoints.upgrade())
        };
        let Some(checkpoints) = checkpoints else {
            return;
        };
        checkpoints.fetch_add(1, Ordering::Relaxed);
        let Some(bus) = bus.filter(EventBus::listening) else {
            return;
        };
        bus.emit_now(EventKind::CheckpointCommitted {
            stage: self.stage().unwrap_or_default().to_owned(),
            position: position.into(),
        });
    }

    fn map(&self) -> MutexGuard<'_, HashMap<&'static str, Value>> {
        // Every critical section is one map operation: a panic inside one
        // (in a user's `update` closure) leaves the map consistent.
        self.inner.metadata.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets `key` to `value`, replacing what was there.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Context, Key};
    /// const BATCH: Key<String> = Key::new("batch");
    /// let ctx = Context::new("import");
    /// ctx.set(&BATCH, "2024-06-01".to_owned());
    /// ctx.set(&BATCH, "2024-06-02".to_owned()); // replaces the first
    /// assert_eq!(ctx.get(&BATCH).as_deref(), Some("2024-06-02"));
    /// ```
    pub fn set<T: Send + Sync + 'static>(&self, key: &Key<T>, value: T) {
        self.map().insert(key.name, (TypeId::of::<T>(), Box::new(value)));
    }

    /// A copy of `key`'s value; `None` if unset or set with another type
    /// under the same name.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Context, Key};
    /// const COUNT: Key<u64> = Key::new("count");
    /// const COUNT_TEXT: Key<String> = Key::new("count");
    /// let ctx = Context::new("x");
    /// assert_eq!(ctx.get(&COUNT), None);
    /// ctx.set(&COUNT, 5);
    /// assert_eq!(ctx.get(&COUNT), Some(5));
    /// assert_eq!(ctx.get(&COUNT_TEXT), None); // the same name with another type
    /// ```
    pub fn get<T: Clone + Send + Sync + 'static>(&self, key: &Key<T>) -> Option<T> {
        self.map()
            .get(key.name)
            .and_then(|(_, v)| v.downcast_ref::<T>())
            .cloned()
    }

    /// Updates `key`'s value in place under the lock (`None` when unset;
    /// leave `None` to unset it) and returns what `f` returns.
    ///
    /// # Examples
    ///
    /// ```
    /// const N: weir::Key<u32> = weir::Key::new("n");
    /// let ctx = weir::Context::new("x");
    /// for _ in 0..3 {
    ///     ctx.update(&N, |n| *n = Some(n.unwrap_or(0) + 1));
    /// }
    /// assert_eq!(ctx.get(&N), Some(3));
    /// ```
    pub fn update<T: Send + Sync + 'static, R>(
        &self,
        key: &Key<T>,
        f: impl FnOnce(&mut Option<T>) -> R,
    ) -> R {
        let mut map = self.map();
        let mut value = match map.remove(key.name) {
            Some((id, v)) if id == TypeId::of::<T>() => v.downcast::<T>().ok().map(|b| *b),
            Some(other) => {
                // Another type under this name: leave it alone.
                map.insert(key.name, other);
                return f(&mut None);
            }
            None => None,
        };
        let r = f(&mut value);
        if let Some(v) = value {
            map.insert(key.name, (TypeId::of::<T>(), Box::new(v)));
        }
        r
    }

    /// Removes `key`, returning its value.
    ///
    /// # Examples
    ///
    /// ```
    /// const K: weir::Key<&str> = weir::Key::new("k");
    /// let ctx = weir::Context::new("x");
    /// ctx.set(&K, "v");
    /// assert_eq!(ctx.remove(&K), Some("v"));
    /// assert_eq!(ctx.get(&K), None);
    /// ```
    pub fn remove<T: Send + Sync + 'static>(&self, key: &Key<T>) -> Option<T> {
        let mut map = self.map();
        match map.remove(key.name) {
            Some((id, v)) if id == TypeId::of::<T>() => v.downcast::<T>().ok().map(|b| *b),
            Some(other) => {
                map.insert(key.name, other);
                None
            }
            None => None,
        }
    }

    /// The names of the keys set now, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = weir::Context::new("x");
    /// ctx.set(&weir::Key::<u8>::new("b"), 1);
    /// ctx.set(&weir::Key::<u8>::new("a"), 2);
    /// assert_eq!(ctx.keys(), ["a", "b"]);
    /// ```
    pub fn keys(&self) -> Vec<&'static str> {
        let mut keys: Vec<_> = self.map().keys().copied().collect();
        keys.sort_unstable();
        keys
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.inner.id)
            .field("stage", &self.stage)
            .field("keys", &self.keys())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_holds_one_type() {
        let ctx = Context::new("t");
        ctx.set(&Key::<u32>::new("k"), 1);
        assert_eq!(ctx.get(&Key::<String>::new("k")), None);
        assert_eq!(ctx.remove(&Key::<String>::new("k")), None);
        ctx.update(&Key::<String>::new("k"), |v| assert!(v.is_none()));
        assert_eq!(ctx.get(&Key::<u32>::new("k")), Some(1), "left alone");
    }

    #[test]
    fn stage_views_share_the_map() {
        let ctx = Context::new("t");
        let s = ctx.for_stage("parse");
        s.set(&Key::<u8>::new("x"), 7);
        assert_eq!(s.stage(), Some("parse"));
        assert_eq!(ctx.get(&Key::<u8>::new("x")), Some(7));
        assert_eq!(s.id(), ctx.id());
    }

    #[test]
    fn a_panicking_update_leaves_the_map_usable() {
        let ctx = Context::new("t");
        const K: Key<u8> = Key::new("k");
        ctx.set(&K, 1);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ctx.update(&K, |_| panic!("boom"));
        }));
        assert!(r.is_err());
        ctx.set(&K, 2);
        assert_eq!(ctx.get(&K), Some(2));
    }
}
