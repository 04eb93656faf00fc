//! [`Pipeline::pipe`]: a [`Stage`] as a fused pipeline stage.

use std::fmt;

use super::Stage;
use crate::ack::{Status, Token};
use crate::context::Context;
use crate::error::{Error, ErrorKind};
use crate::metrics::Counters;
use crate::pipeline::Pipeline;
use crate::runtime::{forward_flush, guard, Plan, Push, TaskCx, Wiring};

/// The plan node of [`Pipeline::pipe`].
///
/// # Examples
///
/// ```
/// use weir::{compose::{self, Piped}, stage::IterSource, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u32, Piped<IterSource<_>, _>> =
///     Pipeline::from_iter(["1", "2"]).pipe(compose::try_map("parse", |s: &str| s.parse::<u32>()));
/// assert_eq!(p.collect().await.unwrap(), [1, 2]);
/// # });
/// ```
#[must_use]
pub struct Piped<P, S> {
    prev: P,
    stage: S,
    idx: usize,
}

impl<P: fmt::Debug, S> fmt::Debug for Piped<P, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Piped")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Adds a reusable [`Stage`], fused with its synchronous neighbours and
    /// named after it (`name#position` if that name is taken). Its outputs
    /// share the input's acknowledgement; an input with no output is
    /// finalized as dropped; an `Err` or a panic fails the input, routed by
    /// the stage's [`ErrorPolicy`](crate::ErrorPolicy).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::compose;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let words = compose::flat_map("words", |s: &str| s.split(' ').map(str::len).collect::<Vec<_>>());
    /// let r = weir::Pipeline::from_iter(["a bb", "ccc"]).pipe(words).run().await.unwrap();
    /// assert_eq!(r.stage("words").unwrap().items_out, 3);
    /// # });
    /// ```
    pub fn pipe<S: Stage<T>>(self, stage: S) -> Pipeline<S::Out, Piped<P, S>> {
        let name = stage.name().to_owned();
        let mut p = self.stage("stage", |prev, idx| Piped { prev, stage, idx });
        let idx = p.stages.len() - 1;
        if !p.stages.iter().any(|s| s.name == name) {
            p.last().name = name;
        } else {
            p.last().name = format!("{name}#{idx}");
        }
        p
    }
}

impl<P, S> Plan for Piped<P, S>
where
    P: Plan,
    S: Stage<P::Out>,
{
    type Out = S::Out;
    type Intake = P::Intake;

    fn attach<D: Push<S::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let ctx = w.shared.context.for_stage(&w.spec(self.idx).name);
        let step = PipeStep {
            stage: self.stage,
            out: Vec::new(),
            ctx,
            down,
            c: w.counters(self.idx),
        };
        self.prev.attach(step, w);
    }
}

struct PipeStep<S, O, D> {
    stage: S,
    /// The outputs of the item at hand, reused.
    out: Vec<O>,
    ctx: Context,
    down: D,
    c: Counters,
}

impl<T, S, D> Push<T> for PipeStep<S, S::Out, D>
where
    S: Stage<T>,
    D: Push<S::Out>,
{
    #[inline]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        let (stage, out, ctx) = (&mut self.stage, &mut self.out, &self.ctx);
        let error = match guard(|| stage.process(item, ctx, out)) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(Error::caused_by(ErrorKind::Stage, e)),
            Err(e) => Some(e),
        };
        if let Some(e) = error {
            self.out.clear();
            self.c.failed += 1;
            return cx.fail(self.c.stage(), token, e);
        }
        match self.out.len() {
            0 => {
                self.c.dropped += 1;
                token.finish(Status::Dropped);
            }
            1 => {
                let x = self.out.pop().expect("one output");
                self.down.push(x, token, cx);
            }
            n => {
                self.c.expanded += n as u64 - 1;
                let last = self.out.pop().expect("outputs");
                for x in self.out.drain(..) {
                    self.down.push(x, token.split(), cx);
                }
                self.down.push(last, token, cx);
            }
        }
    }

    forward_flush!();
}
