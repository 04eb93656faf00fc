use std::fmt;

use super::{forward_flush, guard, held, run_held, Plan, Push, SyncRecover, TaskCx, Wiring};
use crate::ack::Token;
use crate::error::{BoxError, Error, ErrorKind};
use crate::runtime::Counters;

/// The plan node of [`Pipeline::map`](crate::Pipeline::map).
///
/// # Examples
///
/// ```
/// use weir::{stage::{IterSource, Map}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u32, Map<IterSource<_>, _>> = Pipeline::from_iter([1u32, 2]).map(|x| x * 10);
/// assert_eq!(p.collect().await.unwrap(), [10, 20]);
/// # });
/// ```
#[must_use]
pub struct Map<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

/// The plan node of [`Pipeline::try_map`](crate::Pipeline::try_map).
///
/// # Examples
///
/// ```
/// use weir::{stage::{IterSource, TryMap}, ErrorPolicy, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u16, TryMap<IterSource<_>, _>> =
///     Pipeline::from_iter(["8", "x"]).try_map(|s| s.parse::<u16>()).on_error(ErrorPolicy::Skip);
/// assert_eq!(p.collect().await.unwrap(), [8]);
/// # });
/// ```
#[must_use]
pub struct TryMap<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, F> fmt::Debug for Map<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P: fmt::Debug, F> fmt::Debug for TryMap<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryMap")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, F, U> Plan for Map<P, F>
where
    P: Plan,
    F: FnMut(P::Out) -> U + Send + 'static,
    U: Send + 'static,
{
    type Out = U;
    type Intake = P::Intake;

    fn attach<D: Push<U>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let c = w.counters(self.idx);
        self.prev.attach(MapStep { f: self.f, down, c }, w);
    }
}

impl<P, F, U, E> Plan for TryMap<P, F>
where
    P: Plan,
    F: FnMut(P::Out) -> Result<U, E> + Send + 'static,
    E: Into<BoxError>,
    U: Send + 'static,
{
    type Out = U;
    type Intake = P::Intake;

    fn attach<D: Push<U>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let c = w.counters(self.idx);
        match SyncRecover::take(w, self.idx) {
            None => self.prev.attach(TryMapStep { f: self.f, down, c }, w),
            Some(r) => self.prev.attach(
                TryMapRecoverStep {
                    f: self.f,
                    down,
                    c,
                    r,
                },
                w,
            ),
        }
    }
}

struct MapStep<F, D> {
    f: F,
    down: D,
    c: Counters,
}

impl<T, U, F, D> Push<T> for MapStep<F, D>
where
    F: FnMut(T) -> U + Send + 'static,
    D: Push<U>,
{
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        match guard(|| (self.f)(item)) {
            Ok(out) => self.down.push(out, token, cx),
            Err(e) => {
                self.c.failed += 1;
                cx.fail(self.c.stage(), token, e);
            }
        }
    }

    /// Into a step that takes runs ([`Push::takes_runs`]), the items as
    /// one iterator, mapped inside it: one loop from the source or channel
    /// through `f` into the output (see [`Push::push_run`]). Into any
    /// other, one at a time, each under its own panic guard.
    #[inline(always)]
    fn push_run<I: Iterator<Item = (T, Token)>>(&mut self, mut items: I, cx: &mut TaskCx) {
        if !self.down.takes_runs() {
            return items.for_each(|(item, token)| self.push(item, token, cx));
        }
        run_held(
            (self, &mut items, cx),
            |(this, items, cx), slot| {
                let f = &mut this.f;
                let mapped = items.by_ref().map(|(item, token)| held(token, slot, || f(item)));
                this.down.push_run(mapped, cx);
            },
            |(this, _, cx), token, e| {
                this.c.failed += 1;
                cx.fail(this.c.stage(), token, e);
            },
        );
    }

    #[inline(always)]
    fn takes_runs(&self) -> bool {
        self.down.takes_runs()
    }

    #[inline(always)]
    fn finishes_tokens(&self) -> bool {
        self.down.finishes_tokens()
    }

    forward_flush!(at_most_one);
}

struct TryMapStep<F, D> {
    f: F,
    down: D,
    c: Counters,
}

impl<T, U, E, F, D> Push<T> for TryMapStep<F, D>
where
    F: FnMut(T) -> Result<U, E> + Send + 'static,
    E: Into<BoxError>,
    D: Push<U>,
{
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        let error = match guard(|| (self.f)(item)) {
            Ok(Ok(out)) => return self.down.push(out, token, cx),
            Ok(Err(e)) => Error::caused_by(ErrorKind::Stage, e.into()),
            Err(e) => e,
        };
        self.c.failed += 1;
        cx.fail(self.c.stage(), token, error);
    }

    forward_flush!(at_most_one);
}

/// `try_map` with a dead-letter sink or a failure handler.
struct TryMapRecoverStep<F, D, T, U> {
    f: F,
    down: D,
    c: Counters,
    r: SyncRecover<T, U>,
}

impl<T, U, E, F, D> Push<T> for TryMapRecoverStep<F, D, T, U>
where
    T: Send + 'static,
    U: Send + 'static,
    F: FnMut(T) -> Result<U, E> + Send + 'static,
    E: Into<BoxError>,
    D: Push<U>,
{
    #[inline]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        let f = &mut self.f;
        let run = |item| match guard(|| f(item)) {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(Error::caused_by(ErrorKind::Stage, e.into())),
            Err(e) => Err(e),
        };
        match self.r.run(item, token.seq(), cx, run) {
            Ok(out) => self.down.push(out, token, cx),
            Err(error) => {
                self.c.failed += 1;
                cx.fail(self.c.stage(), token, error);
            }
        }
    }

    forward_flush!(at_most_one);
}
