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
//! A stage may also hold items for a later output and emit what it holds
//! at the end of the stream ([`Stage::flush`]): [`batch`], [`aggregate`]
//! and [`aggregate_count`] do, so every step of seed 003's
//! `validate >> transform >> aggregate` is a stage, and so is the chain.
//! Their outputs stand for the inputs they hold ([`Stage::holds`]).
//!
//! ```
//! use weir::aggregate::Sum;
//! use weir::compose::{self, Stage};
//!
//! /// Seed 003's ETL core: one named, typed value.
//! fn total_cents() -> impl Stage<&'static str, Out = u64> {
//!     compose::validate("validate", |s: &&str| if s.starts_with('$') { Ok(()) } else { Err("no $") })
//!         >> compose::try_map("transform", |s: &str| s[1..].parse::<u64>())
//!         >> compose::aggregate("aggregate", Sum)
//! }
//!
//! assert_eq!(total_cents().run_on(["$120", "$30"]).unwrap(), [150]);
//! assert_eq!(total_cents().run_on(["$1", "2"]).unwrap_err().stage(), "validate");
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let out = weir::Pipeline::from_iter(["$5", "bad", "$7"])
//!     .pipe(total_cents())
//!     .on_error(weir::ErrorPolicy::Skip)
//!     .collect()
//!     .await
//!     .unwrap();
//! assert_eq!(out, [12]);
//! # });
//! ```
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
mod aggregate;
mod batch;
mod etl;
mod pipe;
mod registry;

pub use adapters::{
    filter, flat_map, from_fn, map, try_map, validate, FilterStage, FlatMapStage, FnStage, MapStage,
    TryMapStage, ValidateStage,
};
pub use aggregate::{aggregate, aggregate_count, AggregateStage};
pub use batch::{batch, BatchStage};
pub use etl::{etl, Etl};
pub use pipe::Piped;
pub use registry::{BoxStage, Registry};

use std::fmt;
use std::marker::PhantomData;
use std::ops::Shr;

use crate::context::Context;
use crate::error::{BoxError, ErrorKind};

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

    /// The end of the stream: pushes onto `out` what the stage still
    /// holds (the last, partial batch; the aggregate of the whole stream).
    /// Called once, after the last [`process`](Self::process): in a
    /// pipeline when its input ends or it drains (not when it aborts), and
    /// by [`run_on`](Self::run_on). An `Err` fails the items the stage
    /// held. By default, emits nothing.
    ///
    /// A stage that keeps items for a later output must also say so with
    /// [`holds`](Self::holds), so that a pipeline finishes those items
    /// (an acknowledging source's references) when that output is
    /// finished, not when `process` returns nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::compose::{self, Stage};
    /// use weir::{BoxError, Context};
    ///
    /// /// Joins lines into paragraphs, which end at an empty line.
    /// #[derive(Default)]
    /// struct Paragraphs { open: Vec<String> }
    ///
    /// impl Stage<String> for Paragraphs {
    ///     type Out = String;
    ///     fn name(&self) -> &str { "paragraphs" }
    ///     fn process(&mut self, line: String, _: &Context, out: &mut Vec<String>) -> Result<(), BoxError> {
    ///         if line.is_empty() {
    ///             return self.flush(&Context::new("-"), out);
    ///         }
    ///         self.open.push(line);
    ///         Ok(())
    ///     }
    ///     fn flush(&mut self, _: &Context, out: &mut Vec<String>) -> Result<(), BoxError> {
    ///         if !self.open.is_empty() {
    ///             out.push(self.open.drain(..).collect::<Vec<_>>().join(" "));
    ///         }
    ///         Ok(())
    ///     }
    ///     fn holds(&self) -> bool { !self.open.is_empty() }
    /// }
    ///
    /// let lines = ["a", "b", "", "c"].map(str::to_owned);
    /// assert_eq!(Paragraphs::default().run_on(lines.clone()).unwrap(), ["a b", "c"]);
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let upper = compose::map("upper", |s: String| s.to_uppercase());
    /// let out = weir::Pipeline::from_iter(lines).pipe(Paragraphs::default().chain(upper)).collect().await.unwrap();
    /// assert_eq!(out, ["A B", "C"]);
    /// # });
    /// ```
    fn flush(&mut self, ctx: &Context, out: &mut Vec<Self::Out>) -> Result<(), BoxError> {
        let _ = (ctx, out);
        Ok(())
    }

    /// Whether the stage now holds input that a later output, or
    /// [`flush`](Self::flush), will stand for (an open batch or window).
    /// In a pipeline, the inputs taken while a stage holds are finished
    /// when the outputs made after them are (all of them, if it emits
    /// while still holding); an input that makes no output while the
    /// stage holds nothing is dropped. By default, `false`: each input's
    /// outputs are made by its own `process`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::compose::{self, Stage};
    /// use weir::Context;
    /// let mut pairs = compose::batch("pairs", 2);
    /// let mut out = Vec::new();
    /// pairs.process(1, &Context::new("test"), &mut out).unwrap();
    /// assert!(pairs.holds() && out.is_empty());
    /// pairs.process(2, &Context::new("test"), &mut out).unwrap();
    /// assert!(!pairs.holds());
    /// assert_eq!(out, [vec![1, 2]]);
    /// ```
    fn holds(&self) -> bool {
        false
    }

    /// Whether the last [`process`](Self::process) kept its input, or
    /// part of it, for a later output, rather than dropping it: in a
    /// pipeline an input that makes no output and is not kept is finished
    /// as dropped at once, even while the stage holds others. By default,
    /// [`holds`](Self::holds) (a stage that holds something after taking
    /// an input is taken to hold that input: safe, as the input is then
    /// finished with a later output); a [`Chain`] asks its parts, so a
    /// filter before a batch still drops.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::compose::{self, Stage};
    /// use weir::Context;
    /// let mut odd_pairs = compose::filter("odd", |x: &u8| x % 2 == 1) >> compose::batch("pairs", 2);
    /// let (ctx, mut out) = (Context::new("test"), Vec::new());
    /// odd_pairs.process(1, &ctx, &mut out).unwrap();
    /// assert!(odd_pairs.kept()); // in the open batch
    /// odd_pairs.process(2, &ctx, &mut out).unwrap();
    /// assert!(!odd_pairs.kept() && odd_pairs.holds()); // filtered out; 1 still held
    /// ```
    fn kept(&self) -> bool {
        self.holds()
    }

    /// Runs the stage over `items` outside any pipeline, with a fresh
    /// context, then [`flush`](Self::flush)es it: the unit-test entry
    /// point. Stops at the first error, which names the stage.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::compose::{self, Stage};
    /// let mut parse = compose::try_map("parse", |s: &str| s.parse::<u8>());
    /// assert_eq!(parse.run_on(["1", "2"]).unwrap(), [1, 2]);
    /// let err = parse.run_on(["1", "x", "3"]).unwrap_err(); // stops at the first error
    /// assert_eq!(err.stage(), "parse");
    /// let mut total = compose::aggregate("total", weir::aggregate::Sum);
    /// assert_eq!(total.run_on([1, 2, 3]).unwrap(), [6]); // flushed at the end
    /// ```
    fn run_on<I>(&mut self, items: I) -> Result<Vec<Self::Out>, StageError>
    where
        I: IntoIterator<Item = In>,
        Self: Sized,
    {
        let ctx = Context::new("test").for_stage(self.name());
        let mut out = Vec::new();
        let named = |name: &str, e: BoxError| match e.downcast::<StageError>() {
            Ok(named) => *named,
            Err(e) => StageError::new(name, e),
        };
        for item in items {
            self.process(item, &ctx, &mut out)
                .map_err(|e| named(self.name(), e))?;
        }
        self.flush(&ctx, &mut out).map_err(|e| named(self.name(), e))?;
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
            kept: false,
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

/// The kind of error a stage's failure becomes in a pipeline:
/// [`Validation`](ErrorKind::Validation) for a [`validate`] stage's
/// (named by a chain or not), [`Stage`](ErrorKind::Stage) for the rest.
pub(crate) fn error_kind(e: &BoxError) -> ErrorKind {
    let inner: &(dyn std::error::Error + 'static) = match e.downcast_ref::<StageError>() {
        Some(named) => &*named.source,
        None => &**e,
    };
    if inner.is::<adapters::Invalid>() {
        ErrorKind::Validation
    } else {
        ErrorKind::Stage
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
    /// Whether either part kept the last input, or part of it.
    kept: bool,
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
        self.between.clear();
        let first = self.first.process(item, ctx, &mut self.between);
        first.map_err(|e| name_error(self.first.name(), e))?;
        self.kept = self.first.kept();
        self.feed_second(ctx, out)
    }

    fn flush(&mut self, ctx: &Context, out: &mut Vec<B::Out>) -> Result<(), BoxError> {
        self.between.clear();
        let first = self.first.flush(ctx, &mut self.between);
        first.map_err(|e| name_error(self.first.name(), e))?;
        self.feed_second(ctx, out)?;
        let second = self.second.flush(ctx, out);
        second.map_err(|e| name_error(self.second.name(), e))
    }

    fn holds(&self) -> bool {
        self.first.holds() || self.second.holds()
    }

    fn kept(&self) -> bool {
        self.kept
    }
}

impl<In, A, B> Chain<In, A, B>
where
    In: 'static,
    A: Stage<In>,
    B: Stage<A::Out>,
{
    /// Passes the first stage's outputs to the second, noting whether it
    /// kept any.
    fn feed_second(&mut self, ctx: &Context, out: &mut Vec<B::Out>) -> Result<(), BoxError> {
        for x in self.between.drain(..) {
            self.second
                .process(x, ctx, out)
                .map_err(|e| name_error(self.second.name(), e))?;
            self.kept |= self.second.kept();
        }
        Ok(())
    }
}

/// `a >> b` for weir's stage types (each names its input type): the same
/// as [`Stage::chain`], type-checked where it is written.
macro_rules! shr_chains {
    ($($ty:ident<$in:ident $(, $p:ident)*> $([$($bound:tt)*])?),* $(,)?) => {$(
        impl<$in, $($p,)* Rhs> Shr<Rhs> for $ty<$in $(, $p)*>
        where
            $in: 'static,
            Self: Stage<$in>,
            Rhs: Stage<<Self as Stage<$in>>::Out>,
            $($($bound)*)?
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
    ValidateStage<I, F>,
    BatchStage<I>,
    AggregateStage<I, A> [A: crate::stage::aggregate::Aggregator<I>],
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
