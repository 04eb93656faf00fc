//! Closure adapters: stages from a name and a function.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use super::Stage;
use crate::context::Context;
use crate::error::BoxError;

macro_rules! adapter {
    ($(#[$doc:meta])* $ty:ident<$($p:ident),*>) => {
        $(#[$doc])*
        pub struct $ty<$($p),*> {
            name: Cow<'static, str>,
            f: F,
            _t: PhantomData<fn() -> ($($p,)*)>,
        }

        impl<$($p),*> fmt::Debug for $ty<$($p),*> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty)).field("name", &self.name).finish_non_exhaustive()
            }
        }
    };
}

adapter!(
    /// A stage that transforms each item: made by [`map`].
    MapStage<I, F>
);
adapter!(
    /// A stage that transforms each item or fails it: made by [`try_map`].
    TryMapStage<I, F>
);
adapter!(
    /// A stage that keeps the items a predicate accepts: made by [`filter`].
    FilterStage<I, F>
);
adapter!(
    /// A stage that turns each item into zero or more: made by [`flat_map`].
    FlatMapStage<I, F>
);
adapter!(
    /// A stage that checks each item and passes it on unchanged, or fails
    /// it: made by [`validate`].
    ValidateStage<I, F>
);
adapter!(
    /// A stage from a function with the whole [`Stage::process`]
    /// signature: made by [`from_fn`].
    FnStage<I, O, F>
);

fn new<S>(name: impl Into<Cow<'static, str>>, f: impl FnOnce(Cow<'static, str>) -> S) -> S {
    f(name.into())
}

/// A stage named `name` that maps each item with `f`.
///
/// # Examples
///
/// ```
/// use weir::compose::{self, Stage};
/// assert_eq!(compose::map("len", |s: &str| s.len()).run_on(["ab", ""]).unwrap(), [2, 0]);
/// ```
pub fn map<In, U, F>(name: impl Into<Cow<'static, str>>, f: F) -> MapStage<In, F>
where
    F: FnMut(In) -> U + Send + 'static,
{
    new(name, |name| MapStage {
        name,
        f,
        _t: PhantomData,
    })
}

/// A stage named `name` that maps each item with a fallible `f`: an `Err`
/// fails the item.
///
/// # Examples
///
/// ```
/// use weir::compose::{self, Stage};
/// let mut parse = compose::try_map("parse", |s: &str| s.parse::<u8>());
/// assert_eq!(parse.run_on(["1", "2"]).unwrap(), [1, 2]);
/// assert!(parse.run_on(["300"]).is_err());
/// ```
pub fn try_map<In, U, E, F>(name: impl Into<Cow<'static, str>>, f: F) -> TryMapStage<In, F>
where
    F: FnMut(In) -> Result<U, E> + Send + 'static,
    E: Into<BoxError>,
{
    new(name, |name| TryMapStage {
        name,
        f,
        _t: PhantomData,
    })
}

/// A stage named `name` that keeps the items `f` accepts; the others are
/// dropped (finalized as dropped in a pipeline).
///
/// # Examples
///
/// ```
/// use weir::compose::{self, Stage};
/// assert_eq!(compose::filter("even", |x: &u8| x % 2 == 0).run_on(1..=4).unwrap(), [2, 4]);
/// ```
pub fn filter<In, F>(name: impl Into<Cow<'static, str>>, f: F) -> FilterStage<In, F>
where
    F: FnMut(&In) -> bool + Send + 'static,
{
    new(name, |name| FilterStage {
        name,
        f,
        _t: PhantomData,
    })
}

/// A stage named `name` that checks each item with `f` (seed 003's
/// `ValidateStage`): `Ok(())` passes the item on unchanged, `Err(message)`
/// fails it. In a pipeline the failure is of kind
/// [`Validation`](crate::ErrorKind::Validation), as with
/// [`Pipeline::validate`](crate::Pipeline::validate), routed by the
/// stage's [`ErrorPolicy`](crate::ErrorPolicy).
///
/// # Examples
///
/// ```
/// use weir::compose::{self, Stage};
/// use weir::{ErrorKind, ErrorPolicy, Pipeline};
///
/// let mut adult = compose::validate("adult", |age: &u32| if *age >= 18 { Ok(()) } else { Err(format!("{age} is under 18")) });
/// assert_eq!(adult.run_on([30, 41]).unwrap(), [30, 41]);
/// assert_eq!(adult.run_on([30, 12]).unwrap_err().to_string(), "stage `adult`: 12 is under 18");
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let err = Pipeline::from_iter([30, 12]).pipe(adult).run().await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Validation);
/// # });
/// ```
pub fn validate<In, E, F>(name: impl Into<Cow<'static, str>>, f: F) -> ValidateStage<In, F>
where
    F: FnMut(&In) -> Result<(), E> + Send + 'static,
    E: Into<String>,
{
    new(name, |name| ValidateStage {
        name,
        f,
        _t: PhantomData,
    })
}

/// A [`validate`] stage's failure: its message, recognised by the
/// pipeline as a validation error.
#[derive(Debug)]
pub(super) struct Invalid(String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// A stage named `name` that turns each item into the items `f` returns.
///
/// # Examples
///
/// ```
/// use weir::compose::{self, Stage};
/// let mut s = compose::flat_map("repeat", |n: usize| vec![n; n]);
/// assert_eq!(s.run_on([0, 2, 1]).unwrap(), [2, 2, 1]);
/// ```
pub fn flat_map<In, It, F>(name: impl Into<Cow<'static, str>>, f: F) -> FlatMapStage<In, F>
where
    F: FnMut(In) -> It + Send + 'static,
    It: IntoIterator,
{
    new(name, |name| FlatMapStage {
        name,
        f,
        _t: PhantomData,
    })
}

/// A stage named `name` from a function with the whole
/// [`Stage::process`] signature: it sees the [`Context`] and may emit any
/// number of items.
///
/// # Examples
///
/// ```
/// use weir::compose::{self, Stage};
/// use weir::Context;
///
/// let mut pairs = compose::from_fn("pairs", |x: u32, ctx: &Context, out: &mut Vec<(String, u32)>| {
///     if x > 100 {
///         return Err(format!("{x} is too big"));
///     }
///     out.push((ctx.stage().unwrap_or("?").to_owned(), x));
///     Ok(())
/// });
/// assert_eq!(pairs.run_on([7]).unwrap(), [("pairs".to_owned(), 7)]);
/// assert_eq!(pairs.run_on([700]).unwrap_err().to_string(), "stage `pairs`: 700 is too big");
/// ```
pub fn from_fn<In, Out, E, F>(name: impl Into<Cow<'static, str>>, f: F) -> FnStage<In, Out, F>
where
    F: FnMut(In, &Context, &mut Vec<Out>) -> Result<(), E> + Send + 'static,
    E: Into<BoxError>,
{
    new(name, |name| FnStage {
        name,
        f,
        _t: PhantomData,
    })
}

impl<In, U, F> Stage<In> for MapStage<In, F>
where
    In: 'static,
    U: Send + 'static,
    F: FnMut(In) -> U + Send + 'static,
{
    type Out = U;

    fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn process(&mut self, item: In, _: &Context, out: &mut Vec<U>) -> Result<(), BoxError> {
        out.push((self.f)(item));
        Ok(())
    }
}

impl<In, U, E, F> Stage<In> for TryMapStage<In, F>
where
    In: 'static,
    U: Send + 'static,
    E: Into<BoxError>,
    F: FnMut(In) -> Result<U, E> + Send + 'static,
{
    type Out = U;

    fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn process(&mut self, item: In, _: &Context, out: &mut Vec<U>) -> Result<(), BoxError> {
        out.push((self.f)(item).map_err(Into::into)?);
        Ok(())
    }
}

impl<In, F> Stage<In> for FilterStage<In, F>
where
    In: Send + 'static,
    F: FnMut(&In) -> bool + Send + 'static,
{
    type Out = In;

    fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn process(&mut self, item: In, _: &Context, out: &mut Vec<In>) -> Result<(), BoxError> {
        if (self.f)(&item) {
            out.push(item);
        }
        Ok(())
    }
}

impl<In, It, F> Stage<In> for FlatMapStage<In, F>
where
    In: 'static,
    It: IntoIterator,
    It::Item: Send + 'static,
    F: FnMut(In) -> It + Send + 'static,
{
    type Out = It::Item;

    fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn process(&mut self, item: In, _: &Context, out: &mut Vec<It::Item>) -> Result<(), BoxError> {
        out.extend((self.f)(item));
        Ok(())
    }
}

impl<In, Out, E, F> Stage<In> for FnStage<In, Out, F>
where
    In: 'static,
    Out: Send + 'static,
    E: Into<BoxError>,
    F: FnMut(In, &Context, &mut Vec<Out>) -> Result<(), E> + Send + 'static,
{
    type Out = Out;

    fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn process(&mut self, item: In, ctx: &Context, out: &mut Vec<Out>) -> Result<(), BoxError> {
        (self.f)(item, ctx, out).map_err(Into::into)
    }
}

impl<In, E, F> Stage<In> for ValidateStage<In, F>
where
    In: Send + 'static,
    E: Into<String>,
    F: FnMut(&In) -> Result<(), E> + Send + 'static,
{
    type Out = In;

    fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn process(&mut self, item: In, _: &Context, out: &mut Vec<In>) -> Result<(), BoxError> {
        match (self.f)(&item) {
            Ok(()) => {
                out.push(item);
                Ok(())
            }
            Err(message) => Err(Box::new(Invalid(message.into()))),
        }
    }
}
