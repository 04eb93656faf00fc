use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{guard, Plan, Push, Wiring};
use crate::error::{BoxError, Error, ErrorKind};
use crate::pipeline::Pipeline;
use crate::runtime::{run_concurrent, ChannelOut, Work};

type ArmFn<T, V> = Box<dyn FnMut(&T) -> BoxFuture<'static, Result<V, BoxError>> + Send>;

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
        let (tx, rx) = w.input_channel(self.idx);
        let spec = w.spec(self.idx);
        let (n, ordered) = (spec.concurrency, spec.ordered);
        let names = self.arms.arms.iter().map(|(n, _)| n.clone()).collect();
        let fns = self.arms.arms.into_iter().map(|(_, f)| f).collect();
        let work = JoinWork { names, fns };
        let task = run_concurrent(rx, work, down, w.counters(self.idx), w.cx(), n, ordered);
        w.spawn_stage(self.idx, task);
        let out = ChannelOut::new(tx, w.chunk_size());
        self.prev.attach(out, w);
    }
}

struct JoinWork<T, V> {
    names: Arc<[Arc<str>]>,
    fns: Vec<ArmFn<T, V>>,
}

/// An arm's failure, named after the arm.
fn arm_failed(arm: &str, e: &Error) -> Error {
    Error::new(e.kind(), format!("arm `{arm}` failed: {}", e.message()))
}

impl<T, V> Work<T> for JoinWork<T, V>
where
    T: Send + 'static,
    V: Send + 'static,
{
    type Out = Joined<T, V>;
    type Fut = BoxFuture<'static, Result<Joined<T, V>, Error>>;
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
        let names = self.names.clone();
        async move {
            let values = futures::future::try_join_all(arms).await?;
            Ok(Joined { item, names, values })
        }
        .boxed()
    }
}
