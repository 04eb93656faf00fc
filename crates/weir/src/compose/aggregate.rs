//! [`aggregate`] and [`aggregate_count`]: reusable stages that fold items
//! with an [`Aggregator`].

use std::borrow::Cow;
use std::fmt;

use super::Stage;
use crate::context::Context;
use crate::error::BoxError;
use crate::stage::aggregate::Aggregator;

/// A stage that folds items with an [`Aggregator`], over the whole stream
/// or tumbling windows by count: made by [`aggregate`] and
/// [`aggregate_count`].
pub struct AggregateStage<In, A: Aggregator<In>> {
    name: Cow<'static, str>,
    agg: A,
    /// Items per window (`u64::MAX`: the whole stream).
    every: u64,
    /// The open window's accumulator and item count; `None` while no
    /// window is open (and after a panic in the aggregator, which loses
    /// the window).
    open: Option<(A::Acc, u64)>,
}

impl<In, A: Aggregator<In>> fmt::Debug for AggregateStage<In, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateStage")
            .field("name", &self.name)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// A stage named `name` that folds the whole stream with `agg` and emits
/// its output once, at the end of the stream ([`flush`](Stage::flush));
/// an empty stream emits nothing (seed 003's `AggregateStage`). In a
/// pipeline the output stands for every item: they are finished when it
/// is, as with [`Pipeline::aggregate`](crate::Pipeline::aggregate).
///
/// # Examples
///
/// ```
/// use weir::aggregate::{self, Count};
/// use weir::compose::{self, Stage};
///
/// assert_eq!(compose::aggregate("n", Count).run_on(["a", "b"]).unwrap(), [2]);
/// let mut longest = compose::aggregate("longest", aggregate::fold(0, |m: usize, s: &str| m.max(s.len())));
/// assert_eq!(longest.run_on(["ab", "abcd", "a"]).unwrap(), [4]);
/// assert!(longest.run_on([]).unwrap().is_empty());
/// ```
pub fn aggregate<In, A>(name: impl Into<Cow<'static, str>>, agg: A) -> AggregateStage<In, A>
where
    A: Aggregator<In>,
{
    AggregateStage {
        name: name.into(),
        agg,
        every: u64::MAX,
        open: None,
    }
}

/// A stage named `name` that folds each run of `n` consecutive items
/// (tumbling windows by count) with `agg` and emits one output per
/// window; the last, partial window is emitted at the end of the stream.
/// As [`Pipeline::aggregate_count`](crate::Pipeline::aggregate_count).
///
/// # Panics
///
/// If `n` is 0.
///
/// # Examples
///
/// ```
/// use weir::aggregate::Sum;
/// use weir::compose::{self, Stage};
///
/// let mut sums = compose::aggregate_count("sums", 3, Sum);
/// assert_eq!(sums.run_on(1..=7u64).unwrap(), [6, 15, 7]);
/// ```
#[track_caller]
pub fn aggregate_count<In, A>(name: impl Into<Cow<'static, str>>, n: usize, agg: A) -> AggregateStage<In, A>
where
    A: Aggregator<In>,
{
    assert!(
        n > 0,
        "compose::aggregate_count: a window must hold at least 1 item"
    );
    AggregateStage {
        every: n as u64,
        ..aggregate(name, agg)
    }
}

impl<In, A> Stage<In> for AggregateStage<In, A>
where
    In: 'static,
    A: Aggregator<In>,
{
    type Out = A::Out;

    fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn process(&mut self, item: In, _: &Context, out: &mut Vec<A::Out>) -> Result<(), BoxError> {
        // Taken out while the aggregator runs: a panic there loses the
        // window (its accumulator may be half updated), and the stage
        // then holds nothing, so a pipeline fails the window's items.
        let (mut acc, n) = match self.open.take() {
            Some(open) => open,
            None => (self.agg.init(), 0),
        };
        self.agg.add(&mut acc, item);
        if n + 1 >= self.every {
            out.push(self.agg.finish(acc));
        } else {
            self.open = Some((acc, n + 1));
        }
        Ok(())
    }

    fn flush(&mut self, _: &Context, out: &mut Vec<A::Out>) -> Result<(), BoxError> {
        if let Some((acc, _)) = self.open.take() {
            out.push(self.agg.finish(acc));
        }
        Ok(())
    }

    fn holds(&self) -> bool {
        self.open.is_some()
    }
}
