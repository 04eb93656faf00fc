use std::fmt;

use super::{guard, Flow, Plan, Push, TaskCx, Wiring};
use crate::ack::Token;
use crate::error::{Error, ErrorKind};
use crate::pipeline::Pipeline;
use crate::runtime::Counters;

/// The plan node of [`Pipeline::map_batch`].
///
/// # Examples
///
/// ```
/// use weir::{stage::{IterSource, MapBatch}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<usize, MapBatch<IterSource<_>, _>> =
///     Pipeline::from_iter(["a", "bb"]).map_batch(|words| words.into_iter().map(str::len).collect());
/// assert_eq!(p.collect().await.unwrap(), [1, 2]);
/// # });
/// ```
#[must_use]
pub struct MapBatch<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, F> fmt::Debug for MapBatch<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapBatch")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, F, U> Plan for MapBatch<P, F>
where
    P: Plan,
    F: FnMut(Vec<P::Out>) -> Vec<U> + Send + 'static,
    U: Send + 'static,
{
    type Out = U;
    type Intake = P::Intake;

    fn attach<D: Push<U>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let size = w.chunk_size();
        let step = MapBatchStep {
            f: self.f,
            items: Vec::with_capacity(size),
            tokens: Vec::with_capacity(size),
            size,
            down,
            // Output leaves a batch at a time, not as items come in.
            c: w.counters(self.idx).into_explicit(),
        };
        self.prev.attach(step, w);
    }
}

struct MapBatchStep<T, F, D> {
    f: F,
    items: Vec<T>,
    /// The tokens of `items`, in the same order.
    tokens: Vec<Token>,
    size: usize,
    down: D,
    c: Counters,
}

impl<T, U, F, D> MapBatchStep<T, F, D>
where
    F: FnMut(Vec<T>) -> Vec<U>,
    D: Push<U>,
{
    /// Runs `f` on the buffered batch and pushes its output, output `i`
    /// with input `i`'s token.
    fn run(&mut self, cx: &mut TaskCx) {
        let expected = self.items.len();
        let items = std::mem::replace(&mut self.items, Vec::with_capacity(expected));
        let error = match guard(|| (self.f)(items)) {
            Ok(out) if out.len() == expected => {
                for (out, token) in out.into_iter().zip(self.tokens.drain(..)) {
                    self.c.count_out();
                    self.down.push(out, token, cx);
                }
                return;
            }
            Ok(out) => Error::new(
                ErrorKind::Stage,
                format!(
                    "map_batch must return one output per input: expected {expected} items, got {}",
                    out.len()
                ),
            ),
            Err(panic) => panic,
        };
        // Which outputs belong to which inputs is unknown: the whole batch fails.
        for token in self.tokens.drain(..) {
            self.c.failed += 1;
            cx.fail(self.c.stage(), token, error.shallow_clone());
        }
    }

    /// Runs what is buffered and settles its output downstream, before the
    /// caller awaits.
    async fn run_pending(&mut self, cx: &mut TaskCx) {
        if self.tokens.is_empty() {
            return;
        }
        self.run(cx);
        let out = self.c.publish();
        self.down.settle(out);
        cx.flush_events().await;
    }
}

impl<T, U, F, D> Push<T> for MapBatchStep<T, F, D>
where
    T: Send + 'static,
    F: FnMut(Vec<T>) -> Vec<U> + Send + 'static,
    D: Push<U>,
{
    #[inline]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        self.items.push(item);
        self.tokens.push(token);
        if self.items.len() >= self.size {
            self.run(cx);
        }
    }

    #[inline]
    fn settle(&mut self, pushed: u64) {
        self.c.items_in += pushed;
        let out = self.c.publish();
        self.down.settle(out);
    }

    #[inline]
    fn wants_flush(&self) -> bool {
        self.down.wants_flush()
    }

    #[inline]
    fn has_pending(&self) -> bool {
        !self.tokens.is_empty() || self.down.has_pending()
    }

    async fn flush(&mut self, cx: &mut TaskCx) -> Flow {
        self.run_pending(cx).await;
        self.down.flush(cx).await
    }

    async fn finish(mut self, cx: &mut TaskCx) {
        self.run_pending(cx).await;
        self.down.finish(cx).await
    }
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Transforms items a batch at a time, for vectorised work (one query,
    /// one model call, one SIMD pass for many items). `f` gets up to
    /// [`chunk_size`](crate::PipelineBuilder::chunk_size) items and must
    /// return exactly as many, in the same order: output `i` carries input
    /// `i`'s acknowledgement.
    ///
    /// Fused with its neighbours. A batch is cut when it is full, whenever
    /// the task is about to wait (the end of each incoming chunk) and at
    /// the end of input, so items never sit in a batch while the pipeline
    /// waits for more: under light load, batches are small.
    ///
    /// If `f` panics or returns a different number of items, every item of
    /// that batch fails (the error says how many were expected and how many
    /// came back), routed by the stage's [`ErrorPolicy`](crate::ErrorPolicy).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::PipelineBuilder::new()
    ///     .chunk_size(2)
    ///     .from_iter([1.0f64, 2.0, 3.0])
    ///     .map_batch(|xs| {
    ///         let total: f64 = xs.iter().sum();
    ///         xs.into_iter().map(|x| x / total).collect()
    ///     })
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [1.0 / 3.0, 2.0 / 3.0, 1.0]); // batches [1, 2] and [3]
    /// # });
    /// ```
    pub fn map_batch<U, F>(self, f: F) -> Pipeline<U, MapBatch<P, F>>
    where
        F: FnMut(Vec<T>) -> Vec<U> + Send + 'static,
        U: Send + 'static,
    {
        self.stage("map_batch", |prev, idx| MapBatch { prev, f, idx })
    }
}
