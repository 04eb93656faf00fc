//! Reusable stages: define a [`Stage`] once, unit-test it on its own, plug
//! it into any pipeline with [`Pipeline::pipe`](crate::Pipeline::pipe),
//! and compose stages with `>>` (seed 003).
//!
//! A `Stage<In>` turns one input item into zero, one or more outputs (a
//! map, a filter and a flat_map are all stages), or fails it. Piped into a
//! pipeline it runs fused with its synchronous neighbours; its outputs
//! share the input's acknowledgement, and an input with no output is
//! finalized as dropped.
//!
//! ```
//! use weir::compose::{self, Stage};
//!
//! let parse = compose::try_map("parse", |s: &str| s.trim().parse::<i64>());
//! let positive = compose::filter("positive", |n: &i64| *n > 0);
//! let double = compose::map("double", |n: i64| n * 2);
//! let mut clean = parse >> positive >> double;
//!
//! // Unit-tested alone, without a runtime:
//! assert_eq!(clean.run_on([" 4", "-1", "5"]).unwrap(), [8, 10]);
//! assert!(clean.run_on(["x"]).unwrap_err().to_string().starts_with("stage `parse`"));
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // ... and plugged into a pipeline:
//! let out = weir::Pipeline::from_iter(["1", "2"]).pipe(clean).collect().await.unwrap();
//! assert_eq!(out, [2, 4]);
//! # });
//! ```

mod adapters;
mod etl;
mod pipe;
mod registry;

pub use adapters::{
    filter, flat_map, from_fn, map, try_map, FilterStage, FlatMapStage, FnStage, MapStage, TryMapStage,
};
pub use etl::{etl, Etl};
pub use pipe::Piped;
pub use registry::{BoxStage, Registry};

use std::fmt;
use std::marker::PhantomData;
use std::ops::Shr;

use crate::context::Context;
use crate::error::BoxError;

/// A reusable, named step from `In` items to [`Out`](Self::Out) items.
///
/// Implement it for stages with state or configuration of their own; the
/// closure adapters ([`map`], [`try_map`], [`filter`], [`flat_map`],
/// [`from_fn`]) cover the rest. Compose with [`chain`](Self::chain) or,
/// for weir's own stage types, `>>`.
///
/// # Examples
///
/// ```
/// use weir::compose::Stage;
/// use weir::{BoxError, Context};
///
/// /// Splits lines into words, keeping at most `max` per line.
/// struct Words { max: usize }
///
/// impl Stage<String> for Words {
///     type Out = String;
///     fn name(&self) -> &str { "words" }
///     fn process(&mut self, line: String, _: &Context, out: &mut Vec<String>) -> Result<(), BoxError> {
///         out.extend(line.split_whitespace().take(self.max).map(str::to_owned));
///         Ok(())
///     }
/// }
///
/// let mut words = Words { max: 2 };
/// assert_eq!(words.run_on(["a b c".to_owned(), "".to_owned()]).unwrap(), ["a", "b"]);
/// ```
pub trait Stage<In>: Send + 'static {
    /// The items the stage emits.
    type Out: Send + 'static;

    /// The stage's name, used for the pipeline stage it becomes and in
    /// errors from composed stages.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::compose::{self, Stage};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let double = compose::map("double", |x: u8| x * 2);
    /// assert_eq!(double.name(), "double");
    /// let r = weir::Pipeline::from_iter([1u8, 2]).pipe(double).run().await.unwrap();
    /// assert_eq!(r.stage("double").unwrap().items_out, 2); // the pipeline stage's name
    /// # });
    /// ```
    fn name(&self) -> &str;

    /// Processes one item, pushing its outputs (none, one or many) onto
    /// `out`. An `Err` fails the item: outputs pushed before it are
    /// discarded.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::compose::{self, Stage};
    /// use weir::Context;
    /// let mut split = compose::flat_map("split", |s: &str| s.split(',').collect::<Vec<_>>());
    /// let mut out = Vec::new();
    /// split.process("a,b", &Context::new("test"), &mut out).unwrap();
    /// split.process("c", &Context::new("test"), &mut out).unwrap();
    /// assert_eq!(out, ["a", "b", "c"]);
    /// ```
    fn process(&mut self, item: In, ctx: &Context, out: &mut Vec<Self::Out>) -> Result<(), BoxError>;

    /// Runs the stage over `items` outside any pipeline, with a fresh
    /// context: the unit-test entry point. Stops at the first error,
    /// which names the stage.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::compose::{self, Stage};
    /// let mut parse = compose::try_map("parse", |s: &str| s.parse::<u8>());
    /// assert_eq!(parse.run_on(["1", "2"]).unwrap(), [1, 2]);
    /// let err = parse.run_on(["1", "x", "3"]).unwrap_err(); // stops at the first error
    /// assert_eq!(err.stage(), "parse");
    /// ```
    fn run_on<I>(&mut self, items: I) -> Result<Vec<Self::Out>, StageError>
    where
        I: IntoIterator<Item = In>,
        Self: Sized,
    {
        let ctx = Context::new("test").for_stage(self.name());
        let mut out = Vec::new();
        for item in items {
            self.process(item, &ctx, &mut out)
                .map_err(|e| match e.downcast::<StageError>() {
                    Ok(named) => *named,
                    Err(e) => StageError::new(self.name(), e),
                })?;
        }
        Ok(out)
    }

    /// This stage followed by `next`: one stage, type-checked (`next` takes
    /// this stage's output).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::compose::{self, Stage};
    /// let mut s = compose::map("inc", |x: u8| x + 1).chain(compose::map("dbl", |x: u8| x * 2));
    /// assert_eq!(s.run_on([1, 2]).unwrap(), [4, 6]);
    /// assert_eq!(s.name(), "inc >> dbl");
    /// ```
    fn chain<B>(self, next: B) -> Chain<In, Self, B>
    where
        B: Stage<Self::Out>,
        Self: Sized,
        In: 'static,
    {
        Chain {
            name: format!("{} >> {}", self.name(), next.name()),
            first: self,
            second: next,
            between: Vec::new(),
            _in: PhantomData,
        }
    }
}

/// A stage's failure, naming the stage: what [`Stage::run_on`] returns
/// and what a [`Chain`] wraps its parts' errors in.
///
/// # Examples
///
/// ```
/// use weir::compose::{self, Stage, StageError};
/// let mut parse = compose::try_map("parse", |s: &str| s.parse::<u8>());
/// let err: StageError = parse.run_on(["1", "x"]).unwrap_err();
/// assert_eq!(err.stage(), "parse");
/// assert_eq!(err.to_string(), "stage `parse`: invalid digit found in string");
/// assert!(std::error::Error::source(&err).is_some());
/// ```
#[derive(Debug)]
pub struct StageError {
    stage: String,
    source: BoxError,
}

impl StageError {
    fn new(stage: &str, source: BoxError) -> StageError {
        StageError {
            stage: stage.to_owned(),
            source,
        }
    }

    /// The name of the stage that failed (the innermost, in a chain).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::compose::{self, Stage};
    /// let mut s = compose::map("a", |x: u8| x) >> compose::try_map("b", |x: u8| x.checked_sub(1).ok_or("zero"));
    /// assert_eq!(s.run_on([0]).unwrap_err().stage(), "b");
    /// ```
    pub fn stage(&self) -> &str {
        &self.stage
    }
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stage `{}`: {}", self.stage, self.source)
    }
}

impl std::error::Error for StageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// Names the failing part of a chain, once (errors already naming their
/// stage pass through).
fn name_error(stage: &str, e: BoxError) -> BoxError {
    if e.is::<StageError>() {
        e
    } else {
        Box::new(StageError::new(stage, e))
    }
}

/// Two stages in a row: made by `a >> b` or [`Stage::chain`].
///
/// # Examples
///
/// ```
/// use weir::compose::{self, Chain, Stage};
/// let mut clean: Chain<&str, _, _> =
///     compose::map("trim", |s: &str| s.trim()) >> compose::filter("non-empty", |s: &&str| !s.is_empty());
/// assert_eq!(clean.name(), "trim >> non-empty");
/// assert_eq!(clean.run_on([" a ", "  "]).unwrap(), ["a"]);
/// ```
pub struct Chain<In, A: Stage<In>, B> {
    first: A,
    second: B,
    name: String,
    /// The first stage's outputs for the item at hand, reused.
    between: Vec<A::Out>,
    _in: PhantomData<fn(In)>,
}

impl<In, A: Stage<In>, B> fmt::Debug for Chain<In, A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<In, A, B> Stage<In> for Chain<In, A, B>
where
    In: 'static,
    A: Stage<In>,
    B: Stage<A::Out>,
{
    type Out = B::Out;

    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, item: In, ctx: &Context, out: &mut Vec<B::Out>) -> Result<(), BoxError> {
        let between = &mut self.between;
        between.clear();
        let first = self.first.process(item, ctx, between);
        first.map_err(|e| name_error(self.first.name(), e))?;
        for x in between.drain(..) {
            self.second
                .process(x, ctx, out)
                .map_err(|e| name_error(self.second.name(), e))?;
        }
        Ok(())
    }
}

/// `a >> b` for weir's stage types (each names its input type): the same
/// as [`Stage::chain`], type-checked where it is written.
macro_rules! shr_chains {
    ($($ty:ident<$in:ident $(, $p:ident)*>),* $(,)?) => {$(
        impl<$in, $($p,)* Rhs> Shr<Rhs> for $ty<$in $(, $p)*>
        where
            $in: 'static,
            Self: Stage<$in>,
            Rhs: Stage<<Self as Stage<$in>>::Out>,
        {
            type Output = Chain<$in, Self, Rhs>;

            fn shr(self, next: Rhs) -> Self::Output {
                self.chain(next)
            }
        }
    )*};
}

shr_chains!(
    MapStage<I, F>,
    TryMapStage<I, F>,
    FilterStage<I, F>,
    FlatMapStage<I, F>,
    FnStage<I, O, F>,
    BoxStage<I, O>,
);

impl<In, A, B, Rhs> Shr<Rhs> for Chain<In, A, B>
where
    In: 'static,
    A: Stage<In>,
    B: Stage<A::Out>,
    Rhs: Stage<B::Out>,
{
    type Output = Chain<In, Self, Rhs>;

    fn shr(self, next: Rhs) -> Self::Output {
        self.chain(next)
    }
}
