use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{guard, Plan, Push, Wiring};
use crate::error::{BoxError, Error, ErrorKind};
use crate::pipeline::Pipeline;
use crate::runtime::{run_concurrent, ChannelOut, Work};

type ArmFn<T, V> = Box<dyn FnMut(&T) -> BoxFuture<'static, Result<V, BoxError>> + Send>;
/// Makes a stage's output from an item, the arms' names and their values.
type JoinFn<T, V, O> = fn(T, Arc<[Arc<str>]>, Vec<V>) -> O;

/// The arms of a [`branch_join`](Pipeline::branch_join): named async
/// functions of the same item, run concurrently.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let out = weir::Pipeline::from_iter(["ab", "abc"])
///     .branch_join(|j| {
///         j.arm("len", |s: &&str| {
///             let n = s.len();
///             async move { n }
///         })
///         .arm("vowels", |s: &&str| {
///             let n = s.chars().filter(|c| "aeiou".contains(*c)).count();
///             async move { n }
///         })
///     })
///     .map(|j| (j.get("len").copied(), j.get("vowels").copied()))
///     .collect()
///     .await
///     .unwrap();
/// assert_eq!(out, [(Some(2), Some(1)), (Some(3), Some(1))]);
/// # });
/// ```
#[must_use]
pub struct Arms<T, V> {
    arms: Vec<(Arc<str>, ArmFn<T, V>)>,
}

impl<T, V> fmt::Debug for Arms<T, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arms")
            .field("arms", &self.arms.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .finish()
    }
}

impl<T: 'static, V: Send + 'static> Arms<T, V> {
    /// Adds an arm named `name`: `f` looks at the item and returns the
    /// future of the arm's value. A panic in `f` or its future fails the
    /// item.
    ///
    /// # Panics
    ///
    /// If an arm is already named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([3u64])
    ///     .branch_join(|j| j.arm("double", |x: &u64| std::future::ready(x * 2)))
    ///     .map(|j| j.into_map())
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out[0]["double"], 6);
    /// # });
    /// ```
    #[track_caller]
    pub fn arm<F, Fut>(self, name: impl Into<String>, mut f: F) -> Self
    where
        F: FnMut(&T) -> Fut + Send + 'static,
        Fut: Future<Output = V> + Send + 'static,
    {
        self.add(name.into(), Box::new(move |item| f(item).map(Ok).boxed()))
    }

    /// Adds a fallible arm: an `Err` fails the item, with an error that
    /// names the arm.
    ///
    /// # Panics
    ///
    /// If an arm is already named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::ErrorPolicy;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let report = weir::Pipeline::from_iter(["1", "x"])
    ///     .branch_join(|j| {
    ///         j.try_arm("parse", |s: &&str| std::future::ready(s.parse::<u32>()))
    ///     })
    ///     .on_error(ErrorPolicy::Skip)
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((report.delivered, report.failed), (1, 1));
    /// # });
    /// ```
    #[track_caller]
    pub fn try_arm<E, F, Fut>(self, name: impl Into<String>, mut f: F) -> Self
    where
        F: FnMut(&T) -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.add(
            name.into(),
            Box::new(move |item| f(item).map(|r| r.map_err(Into::into)).boxed()),
        )
    }

    #[track_caller]
    fn add(mut self, name: String, f: ArmFn<T, V>) -> Self {
        assert!(
            !self.arms.iter().any(|(n, _)| **n == *name),
            "Arms::arm: an arm is already named `{name}`"
        );
        self.arms.push((name.into(), f));
        self
    }
}

/// The output of a [`branch_join`](Pipeline::branch_join): the item and
/// the value of each arm, in the order the arms were added.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let joined = weir::Pipeline::from_iter(["hello"])
///     .branch_join(|j| {
///         j.arm("upper", |s: &&str| std::future::ready(s.to_uppercase()))
///             .arm("rev", |s: &&str| std::future::ready(s.chars().rev().collect()))
///     })
///     .collect()
///     .await
///     .unwrap()
///     .remove(0);
/// assert_eq!(joined.item, "hello");
/// assert_eq!(joined.get("rev").map(String::as_str), Some("olleh"));
/// let arms: Vec<_> = joined.iter().map(|(name, v)| format!("{name}={v}")).collect();
/// assert_eq!(arms, ["upper=HELLO", "rev=olleh"]);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Joined<T, V> {
    /// The item the arms looked at.
    pub item: T,
    names: Arc<[Arc<str>]>,
    values: Vec<V>,
}

impl<T, V> Joined<T, V> {
    /// The value of the arm named `arm`.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let joined = weir::Pipeline::from_iter([7u32])
    ///     .branch_join(|j| {
    ///         j.arm("double", |x: &u32| std::future::ready(x * 2))
    ///             .arm("square", |x: &u32| std::future::ready(x * x))
    ///     })
    ///     .collect()
    ///     .await
    ///     .unwrap()
    ///     .remove(0);
    /// assert_eq!(joined.get("square"), Some(&49));
    /// assert_eq!(joined.get("cube"), None);
    /// # });
    /// ```
    pub fn get(&self, arm: &str) -> Option<&V> {
        let i = self.names.iter().position(|n| &**n == arm)?;
        self.values.get(i)
    }

    /// Each arm's name and value, in the order the arms were added.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let joined = weir::Pipeline::from_iter([7u32])
    ///     .branch_join(|j| {
    ///         j.arm("double", |x: &u32| std::future::ready(x * 2))
    ///             .arm("square", |x: &u32| std::future::ready(x * x))
    ///     })
    ///     .collect()
    ///     .await
    ///     .unwrap()
    ///     .remove(0);
    /// let arms: Vec<(&str, u32)> = joined.iter().map(|(name, v)| (name, *v)).collect();
    /// assert_eq!(arms, [("double", 14), ("square", 49)]);
    /// # });
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.names.iter().map(|n| &**n).zip(&self.values)
    }

    /// The values by arm name (the item is dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let joined = weir::Pipeline::from_iter([7u32])
    ///     .branch_join(|j| {
    ///         j.arm("double", |x: &u32| std::future::ready(x * 2))
    ///             .arm("square", |x: &u32| std::future::ready(x * x))
    ///     })
    ///     .collect()
    ///     .await
    ///     .unwrap()
    ///     .remove(0);
    /// let by_name = joined.into_map();
    /// assert_eq!(by_name["double"], 14);
    /// assert_eq!(by_name.keys().collect::<Vec<_>>(), ["double", "square"]);
    /// # });
    /// ```
    pub fn into_map(self) -> BTreeMap<String, V> {
        self.names
            .iter()
            .map(|n| n.to_string())
            .zip(self.values)
            .collect()
    }
}

/// The plan node of [`Pipeline::branch_join`]: in a task of its own, with
/// up to `concurrency` items in flight.
///
/// # Examples
///
/// ```
/// use weir::{stage::{Arms, BranchJoin, IterSource, Joined}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<Joined<u32, u32>, BranchJoin<IterSource<_>, Arms<u32, u32>>> =
///     Pipeline::from_iter([3u32]).branch_join(|j| j.arm("next", |x: &u32| std::future::ready(x + 1)));
/// assert_eq!(p.collect().await.unwrap()[0].get("next"), Some(&4));
/// # });
/// ```
#[must_use]
pub struct BranchJoin<P, A> {
    prev: P,
    arms: A,
    idx: usize,
}

impl<P: fmt::Debug, A> fmt::Debug for BranchJoin<P, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BranchJoin")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Runs several named async functions of each item concurrently and
    /// joins their values into one [`Joined`] record (seed 003's
    /// `BranchStage`). The item fails as soon as one arm fails, with an
    /// error that names the arm; the other arms of that item are cancelled.
    ///
    /// Runs in a task of its own; set how many items are in flight with
    /// [`concurrency`](Pipeline::concurrency) (default 1) and the output
    /// order with [`ordered`](Pipeline::ordered) /
    /// [`unordered`](Pipeline::unordered).
    ///
    /// # Panics
    ///
    /// If no arm is added.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([1u64, 2])
    ///     .branch_join(|j| {
    ///         j.arm("slow", |x: &u64| {
    ///             let x = *x;
    ///             async move {
    ///                 tokio::time::sleep(Duration::from_millis(20)).await;
    ///                 x * 10
    ///             }
    ///         })
    ///         .arm("fast", |x: &u64| std::future::ready(x + 1))
    ///     })
    ///     .concurrency(2)
    ///     .map(|j| j.into_map())
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out[1]["slow"], 20);
    /// assert_eq!(out[1]["fast"], 3);
    /// # });
    /// ```
    #[track_caller]
    pub fn branch_join<V, B>(self, build: B) -> Pipeline<Joined<T, V>, BranchJoin<P, Arms<T, V>>>
    where
        V: Send + 'static,
        B: FnOnce(Arms<T, V>) -> Arms<T, V>,
    {
        let arms = build(Arms { arms: Vec::new() });
        assert!(
            !arms.arms.is_empty(),
            "Pipeline::branch_join: add at least one arm"
        );
        self.stage("branch_join", |prev, idx| BranchJoin { prev, arms, idx })
    }

    /// [`branch_join`](Self::branch_join) with arms of different value
    /// types, joined into a tuple: the item, then each arm's value in the
    /// order the arms were added (up to 8 arms). Map the tuple into a
    /// struct of your own with a [`map`](Self::map) after it. Runs, fails
    /// and takes settings as `branch_join` does; the stage is named
    /// `branch_join` too.
    ///
    /// # Panics
    ///
    /// If no arm is added.
    ///
    /// # Examples
    ///
    /// ```
    /// #[derive(Debug, PartialEq)]
    /// struct Enriched { id: u32, name: String, in_stock: bool }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([1u32, 2])
    ///     .branch_zip(|z| {
    ///         z.arm("customer", |id: &u32| std::future::ready(format!("customer {id}")))
    ///             .arm("stock", |id: &u32| std::future::ready(id % 2 == 0))
    ///     })
    ///     .concurrency(2)
    ///     .map(|(id, name, in_stock)| Enriched { id, name, in_stock })
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out[1], Enriched { id: 2, name: "customer 2".into(), in_stock: true });
    /// # });
    /// ```
    #[track_caller]
    pub fn branch_zip<L, B>(self, build: B) -> Pipeline<L::Tuple, BranchJoin<P, ZipArms<T, L>>>
    where
        L: ArmTypes<T>,
        B: FnOnce(ZipArms<T, ()>) -> ZipArms<T, L>,
    {
        let arms = build(ZipArms {
            arms: Arms { arms: Vec::new() },
            _l: PhantomData,
        });
        assert!(
            !arms.arms.arms.is_empty(),
            "Pipeline::branch_zip: add at least one arm"
        );
        self.stage("branch_join", |prev, idx| BranchJoin { prev, arms, idx })
    }
}

impl<P, T, V> Plan for BranchJoin<P, Arms<T, V>>
where
    P: Plan<Out = T>,
    T: Send + 'static,
    V: Send + 'static,
{
    type Out = Joined<T, V>;
    type Intake = P::Intake;

    fn attach<D: Push<Joined<T, V>>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let join = |item, names, values| Joined { item, names, values };
        attach_arms(self.prev, self.arms, join, self.idx, down, w);
    }
}

impl<P, T, L> Plan for BranchJoin<P, ZipArms<T, L>>
where
    P: Plan<Out = T>,
    T: Send + 'static,
    L: ArmTypes<T>,
{
    type Out = L::Tuple;
    type Intake = P::Intake;

    fn attach<D: Push<L::Tuple>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let join = |item, _, values| L::tuple(item, values);
        attach_arms(self.prev, self.arms.arms, join, self.idx, down, w);
    }
}

/// Runs `arms` on each item in a task of their own, joining each item's
/// values with `join`.
fn attach_arms<P, T, V, O, D>(
    prev: P,
    arms: Arms<T, V>,
    join: JoinFn<T, V, O>,
    idx: usize,
    down: D,
    w: &mut Wiring<P::Intake>,
) where
    P: Plan<Out = T>,
    T: Send + 'static,
    V: Send + 'static,
    O: Send + 'static,
    D: Push<O>,
{
    let (tx, rx) = w.input_channel(idx);
    let spec = w.spec(idx);
    let (n, ordered) = (spec.concurrency, spec.ordered);
    let names = arms.arms.iter().map(|(n, _)| n.clone()).collect();
    let fns = arms.arms.into_iter().map(|(_, f)| f).collect();
    let work = JoinWork { names, fns, join };
    let task = run_concurrent(rx, work, down, w.counters(idx), w.cx(), n, ordered);
    w.spawn_stage(idx, task);
    let out = ChannelOut::new(tx, w.chunk_size());
    prev.attach(out, w);
}

struct JoinWork<T, V, O> {
    names: Arc<[Arc<str>]>,
    fns: Vec<ArmFn<T, V>>,
    join: JoinFn<T, V, O>,
}

/// An arm's failure, named after the arm.
fn arm_failed(arm: &str, e: &Error) -> Error {
    Error::new(e.kind(), format!("arm `{arm}` failed: {}", e.message()))
}

impl<T, V, O> Work<T> for JoinWork<T, V, O>
where
    T: Send + 'static,
    V: Send + 'static,
    O: Send + 'static,
{
    type Out = O;
    type Fut = BoxFuture<'static, Result<O, Error>>;
    const SEQ: bool = false;

    fn start(&mut self, item: T, _seq: u64) -> Self::Fut {
        let mut arms = Vec::with_capacity(self.fns.len());
        for (name, f) in self.names.iter().zip(&mut self.fns) {
            let fut = match guard(|| f(&item)) {
                Ok(fut) => fut,
                Err(e) => return futures::future::ready(Err(arm_failed(name, &e))).boxed(),
            };
            let name = name.clone();
            arms.push(async move {
                match AssertUnwindSafe(fut).catch_unwind().await {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(arm_failed(&name, &Error::caused_by(ErrorKind::Stage, e))),
                    Err(p) => Err(arm_failed(&name, &Error::panicked(&*p))),
                }
            });
        }
        let (names, join) = (self.names.clone(), self.join);
        async move {
            let values = futures::future::try_join_all(arms).await?;
            Ok(join(item, names, values))
        }
        .boxed()
    }
}

/// One arm's value in a [`branch_zip`](Pipeline::branch_zip), its type
/// erased until the values are joined into the output tuple. Public only
/// for the sealed [`ArmTypes`]' hidden method: nothing outside can name it.
#[allow(unreachable_pub)]
pub struct ArmValue(Box<dyn Any + Send>);

impl fmt::Debug for ArmValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArmValue").finish_non_exhaustive()
    }
}

impl ArmValue {
    fn new<V: Send + 'static>(v: V) -> ArmValue {
        ArmValue(Box::new(v))
    }

    /// The value, of the type its arm was built with.
    fn take<V: 'static>(self) -> V {
        *self.0.downcast().expect("each arm's value has its arm's type")
    }
}

/// The arms of a [`branch_zip`](Pipeline::branch_zip): named async
/// functions of the same item, each with a value type of its own, whose
/// values join into a tuple. `L` lists the value types so far, nested
/// (`((), A)`, then `(((), A), B)`, …).
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let out = weir::Pipeline::from_iter(["ab1"])
///     .branch_zip(|z| {
///         z.arm("len", |s: &&str| std::future::ready(s.len()))
///             .arm("upper", |s: &&str| std::future::ready(s.to_uppercase()))
///             .try_arm("last", |s: &&str| std::future::ready(s[2..].parse::<u8>()))
///     })
///     .collect()
///     .await
///     .unwrap();
/// assert_eq!(out, [("ab1", 3, "AB1".to_owned(), 1)]);
/// # });
/// ```
#[must_use]
pub struct ZipArms<T, L> {
    arms: Arms<T, ArmValue>,
    _l: PhantomData<fn() -> L>,
}

impl<T, L> fmt::Debug for ZipArms<T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ZipArms").field(&self.arms).finish()
    }
}

impl<T: 'static, L> ZipArms<T, L> {
    /// Adds an arm named `name` whose value, of type `V`, comes next in
    /// the output tuple. A panic in `f` or its future fails the item.
    ///
    /// # Panics
    ///
    /// If an arm is already named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([4u32])
    ///     .branch_zip(|z| z.arm("half", |x: &u32| std::future::ready(*x as f64 / 8.0)).arm("even", |x: &u32| std::future::ready(x % 2 == 0)))
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [(4, 0.5, true)]);
    /// # });
    /// ```
    #[track_caller]
    pub fn arm<V, F, Fut>(self, name: impl Into<String>, mut f: F) -> ZipArms<T, (L, V)>
    where
        V: Send + 'static,
        F: FnMut(&T) -> Fut + Send + 'static,
        Fut: Future<Output = V> + Send + 'static,
    {
        ZipArms {
            arms: self.arms.arm(name, move |item| f(item).map(ArmValue::new)),
            _l: PhantomData,
        }
    }

    /// Adds a fallible arm: an `Err` fails the item, with an error that
    /// names the arm; an `Ok` value comes next in the output tuple.
    ///
    /// # Panics
    ///
    /// If an arm is already named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::ErrorPolicy;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter(["7", "x"])
    ///     .branch_zip(|z| z.try_arm("parse", |s: &&str| std::future::ready(s.parse::<u8>())))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [("7", 7)]);
    /// # });
    /// ```
    #[track_caller]
    pub fn try_arm<V, E, F, Fut>(self, name: impl Into<String>, mut f: F) -> ZipArms<T, (L, V)>
    where
        V: Send + 'static,
        E: Into<BoxError>,
        F: FnMut(&T) -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        ZipArms {
            arms: self
                .arms
                .try_arm(name, move |item| f(item).map(|r| r.map(ArmValue::new))),
            _l: PhantomData,
        }
    }
}

mod sealed {
    /// Only the nested lists `ZipArms` builds are arm types.
    #[allow(unreachable_pub)] // public in a private module: the seal
    pub trait Sealed {}
}

/// The value types of a [`branch_zip`](Pipeline::branch_zip)'s arms, as
/// [`ZipArms`] nests them, and the tuple they join into: the item, then
/// each arm's value in the order the arms were added. Implemented for 1
/// to 8 arms; sealed.
///
/// # Examples
///
/// ```
/// use weir::stage::ArmTypes;
/// fn joined<L: ArmTypes<&'static str>>() -> &'static str {
///     std::any::type_name::<L::Tuple>()
/// }
/// assert_eq!(joined::<(((), u8), bool)>(), "(&str, u8, bool)");
/// ```
pub trait ArmTypes<T>: sealed::Sealed + 'static {
    /// `(T, A, B, …)`: the item and the arms' values.
    type Tuple: Send + 'static;

    #[doc(hidden)]
    fn tuple(item: T, values: Vec<ArmValue>) -> Self::Tuple;
}

/// `nest!(A, B, C)` is `((((), A), B), C)`.
macro_rules! nest {
    (@ $acc:ty;) => { $acc };
    (@ $acc:ty; $head:ident $(, $rest:ident)*) => { nest!(@ ($acc, $head); $($rest),*) };
    ($($v:ident),+) => { nest!(@ (); $($v),+) };
}

macro_rules! arm_types {
    ($($v:ident),+) => {
        impl<$($v: Send + 'static),+> sealed::Sealed for nest!($($v),+) {}

        impl<T: Send + 'static, $($v: Send + 'static),+> ArmTypes<T> for nest!($($v),+) {
            type Tuple = (T, $($v),+);

            fn tuple(item: T, values: Vec<ArmValue>) -> Self::Tuple {
                let mut values = values.into_iter();
                (item, $(values.next().expect("one value per arm").take::<$v>()),+)
            }
        }
    };
}

arm_types!(A);
arm_types!(A, B);
arm_types!(A, B, C);
arm_types!(A, B, C, D);
arm_types!(A, B, C, D, E);
arm_types!(A, B, C, D, E, F);
arm_types!(A, B, C, D, E, F, G);
arm_types!(A, B, C, D, E, F, G, H);
