//! [`Pipeline::pipe`]: a [`Stage`] as a fused pipeline stage.

use std::fmt;

use super::{error_kind, Stage};
use crate::ack::{Status, Token};
use crate::context::Context;
use crate::error::Error;
use crate::pipeline::Pipeline;
use crate::runtime::Counters;
use crate::runtime::{forward_flush, guard, Plan, Push, TaskCx, Wiring};
use crate::stage::Members;

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
            // Out is counted: a stage that holds items emits later.
            c: w.counters(self.idx).into_explicit(),
            held: Held::default(),
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
    held: Held,
}

/// The tokens of what a stage that holds items ([`Stage::holds`]) holds:
/// the inputs taken since its last output and, once it emitted while
/// still holding, the group those outputs stand for, kept open so that
/// its later outputs stand for that group too. Plain tokens are only
/// counted (`Members`).
#[derive(Default)]
struct Held {
    open: Option<Token>,
    members: Members,
}

impl Held {
    fn is_empty(&self) -> bool {
        self.open.is_none() && self.members.len() == 0
    }

    /// One token for everything held, and how many inputs it holds that
    /// no output stood for yet.
    fn take(&mut self) -> (Token, u64) {
        let (joined, n) = self.members.take();
        let token = match self.open.take() {
            None => joined,
            Some(open) => {
                let seq = open.seq();
                Token::join(vec![open, joined], seq)
            }
        };
        (token, n)
    }
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
            Ok(Err(e)) => Some(Error::caused_by(error_kind(&e), e)),
            Err(e) => Some(e),
        };
        if self.held.is_empty() && !self.stage.holds() {
            self.emit_own(token, error, cx);
        } else {
            self.emit_held::<T>(token, error, cx);
        }
    }

    forward_flush!(end: Self::flush_stage::<T>);
}

impl<S, O, D> PipeStep<S, O, D>
where
    O: Send + 'static,
    D: Push<O>,
{
    /// The outputs of an input that nothing else stands with: they share
    /// its token; none drops it.
    #[inline]
    fn emit_own(&mut self, token: Token, error: Option<Error>, cx: &mut TaskCx) {
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
                self.c.count_out();
                let x = self.out.pop().expect("one output");
                self.down.push(x, token, cx);
            }
            n => {
                self.c.expanded += n as u64 - 1;
                self.c.add_out(n as u64);
                let last = self.out.pop().expect("outputs");
                for x in self.out.drain(..) {
                    self.down.push(x, token.split(), cx);
                }
                self.down.push(last, token, cx);
            }
        }
    }

    /// Pushes the outputs at hand, standing for everything held; once the
    /// stage holds nothing (`holds` false), closes the group (dropping it
    /// if no output stood for it).
    fn release(&mut self, holds: bool, cx: &mut TaskCx) {
        let n = self.out.len() as u64;
        if n == 0 {
            if !holds {
                let (group, m) = self.held.take();
                self.c.dropped += m;
                group.finish(Status::Dropped);
            }
            return;
        }
        let (group, m) = self.held.take();
        self.c.add_out(n);
        if m > n {
            self.c.merged += m - n;
        } else {
            self.c.expanded += n - m;
        }
        if holds {
            for x in self.out.drain(..) {
                self.down.push(x, group.split(), cx);
            }
            self.held.open = Some(group);
        } else {
            let last = self.out.pop().expect("outputs");
            for x in self.out.drain(..) {
                self.down.push(x, group.split(), cx);
            }
            self.down.push(last, group, cx);
        }
    }

    /// Fails everything held with `e` (the stage let go of it).
    fn fail_held(&mut self, e: Error, cx: &mut TaskCx) {
        self.out.clear();
        let (group, n) = self.held.take();
        self.c.failed += n;
        cx.fail(self.c.stage(), group, e);
    }

    /// The outputs of an input taken while the stage holds items (or now
    /// that it does).
    fn emit_held<T>(&mut self, token: Token, error: Option<Error>, cx: &mut TaskCx)
    where
        S: Stage<T, Out = O>,
    {
        match error {
            // The stage still holds the others: the input fails alone.
            Some(e) if self.stage.holds() => {
                self.out.clear();
                self.c.failed += 1;
                cx.fail(self.c.stage(), token, e);
            }
            // It let go of what it held with the error: those fail too.
            Some(e) => {
                self.held.members.add(token);
                self.fail_held(e, cx);
            }
            None => {
                if self.out.is_empty() && !self.stage.kept() {
                    // Dropped on its own, whatever the stage holds.
                    self.c.dropped += 1;
                    token.finish(Status::Dropped);
                } else {
                    self.held.members.add(token);
                }
                let holds = self.stage.holds();
                self.release(holds, cx);
            }
        }
    }

    /// The end of the input: the stage's [`Stage::flush`], whose outputs
    /// stand for everything it held.
    fn flush_stage<T>(&mut self, cx: &mut TaskCx)
    where
        S: Stage<T, Out = O>,
    {
        let (stage, out, ctx) = (&mut self.stage, &mut self.out, &self.ctx);
        match guard(|| stage.flush(ctx, out)) {
            Ok(Ok(())) => self.release(false, cx),
            Ok(Err(e)) => self.fail_held(Error::caused_by(error_kind(&e), e), cx),
            Err(e) => self.fail_held(e, cx),
        }
    }
}
