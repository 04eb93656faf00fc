//! Aggregation: fold items into one value per window, or over the whole
//! stream.
//!
//! An [`Aggregator`] says how: start an accumulator, add each item, turn
//! the accumulator into the output. [`Pipeline::aggregate`] applies it to
//! the whole stream, [`Pipeline::aggregate_count`] to tumbling windows of
//! `n` items and [`Pipeline::aggregate_time`] to tumbling windows of time.
//! Ready-made aggregators: [`Count`], [`Sum`], [`Stats`]; closures go
//! through [`fold`]. A window's output stands for all its items: they are
//! finished when it is (delivered, failed, aborted).
//!
//! There is no separate fold stage: `aggregate(aggregate::fold(init, f))`
//! is one.
//!
//! # Examples
//!
//! ```
//! use weir::{aggregate, Pipeline};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let sums = Pipeline::from_iter(1..=7u64)
//!     .aggregate_count(3, aggregate::Sum)
//!     .collect()
//!     .await
//!     .unwrap();
//! assert_eq!(sums, [6, 15, 7]);
//! # });
//! ```
//!
//! [`Pipeline::aggregate`]: crate::Pipeline::aggregate
//! [`Pipeline::aggregate_count`]: crate::Pipeline::aggregate_count
//! [`Pipeline::aggregate_time`]: crate::Pipeline::aggregate_time

mod time;
mod window;

pub use time::AggregateTime;
pub use window::Aggregate;

use std::fmt;
use std::ops::AddAssign;

/// How to fold items of type `T` into one output.
///
/// Methods take `&self`: the aggregator is configuration, the state lives
/// in the accumulator, one per window. A panic in any method fails the
/// window's items (its accumulator may be half updated); the next window
/// starts afresh.
///
/// # Examples
///
/// ```
/// use weir::aggregate::Aggregator;
///
/// /// The longest string.
/// struct Longest;
///
/// impl Aggregator<String> for Longest {
///     type Acc = String;
///     type Out = String;
///     fn init(&self) -> String {
///         String::new()
///     }
///     fn add(&self, acc: &mut String, item: String) {
///         if item.len() > acc.len() {
///             *acc = item;
///         }
///     }
///     fn finish(&self, acc: String) -> String {
///         acc
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let out = weir::Pipeline::from_iter(["a", "abc", "ab"])
///     .map(str::to_owned)
///     .aggregate(Longest)
///     .collect()
///     .await
///     .unwrap();
/// assert_eq!(out, ["abc"]);
/// # });
/// ```
pub trait Aggregator<T>: Send + 'static {
    /// The running state of one window.
    type Acc: Send + 'static;
    /// What a window emits.
    type Out: Send + 'static;

    /// A fresh accumulator, for a window's first item.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::aggregate::{Aggregator, Sum};
    /// let acc = Aggregator::<u32>::init(&Sum); // a window's fresh start
    /// assert_eq!(acc, 0);
    /// ```
    fn init(&self) -> Self::Acc;
    /// Adds one item.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::aggregate::{Aggregator, Sum};
    /// let mut acc = Aggregator::<f64>::init(&Sum);
    /// Sum.add(&mut acc, 1.5);
    /// Sum.add(&mut acc, 2.0);
    /// assert_eq!(Sum.finish(acc), 3.5);
    /// ```
    fn add(&self, acc: &mut Self::Acc, item: T);
    /// The window's output.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::aggregate::Aggregator;
    ///
    /// /// The mean of each window: a sum and a count, divided at the end.
    /// struct Mean;
    ///
    /// impl Aggregator<u32> for Mean {
    ///     type Acc = (u64, u64);
    ///     type Out = f64;
    ///     fn init(&self) -> (u64, u64) {
    ///         (0, 0)
    ///     }
    ///     fn add(&self, acc: &mut (u64, u64), x: u32) {
    ///         acc.0 += u64::from(x);
    ///         acc.1 += 1;
    ///     }
    ///     fn finish(&self, (sum, n): (u64, u64)) -> f64 {
    ///         sum as f64 / n as f64
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let means = weir::Pipeline::from_iter([1u32, 2, 3, 5]).aggregate_count(2, Mean).collect().await.unwrap();
    /// assert_eq!(means, [1.5, 4.0]);
    /// # });
    /// ```
    fn finish(&self, acc: Self::Acc) -> Self::Out;
}

/// An [`Aggregator`] from a starting value and a closure, as
/// [`Iterator::fold`]: each window starts from a clone of `init`.
///
/// # Examples
///
/// ```
/// use weir::{aggregate, Pipeline};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let words = Pipeline::from_iter(["a", "b", "c"])
///     .aggregate(aggregate::fold(String::new(), |s, w| s + w))
///     .collect()
///     .await
///     .unwrap();
/// assert_eq!(words, ["abc"]);
/// # });
/// ```
pub fn fold<A, F>(init: A, f: F) -> Fold<A, F> {
    Fold { init, f }
}

/// The aggregator [`fold`] makes.
///
/// # Examples
///
/// ```
/// use weir::aggregate::{self, Fold};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let max: Fold<u32, _> = aggregate::fold(0, |m: u32, x: u32| m.max(x));
/// let out = weir::Pipeline::from_iter([3, 9, 4, 1, 2]).aggregate_count(2, max).collect().await.unwrap();
/// assert_eq!(out, [9, 4, 2]); // each window starts again from 0
/// # });
/// ```
#[derive(Clone)]
pub struct Fold<A, F> {
    init: A,
    f: F,
}

impl<A: fmt::Debug, F> fmt::Debug for Fold<A, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fold")
            .field("init", &self.init)
            .finish_non_exhaustive()
    }
}

/// The accumulator of a [`Fold`]: the value folded so far.
///
/// # Examples
///
/// ```
/// use weir::aggregate::{self, Aggregator, FoldAcc};
/// // An aggregator unit-tested by hand, outside a pipeline.
/// let max = aggregate::fold(0u32, |m: u32, x: u32| m.max(x));
/// let mut acc: FoldAcc<u32> = max.init();
/// for x in [3, 9, 4] {
///     max.add(&mut acc, x);
/// }
/// assert_eq!(max.finish(acc), 9);
/// ```
#[derive(Debug)]
pub struct FoldAcc<A>(Option<A>);

impl<T, A, F> Aggregator<T> for Fold<A, F>
where
    A: Clone + Send + 'static,
    F: Fn(A, T) -> A + Send + 'static,
{
    type Acc = FoldAcc<A>;
    type Out = A;

    fn init(&self) -> FoldAcc<A> {
        FoldAcc(Some(self.init.clone()))
    }

    fn add(&self, acc: &mut FoldAcc<A>, item: T) {
        // Empty only while `f` runs: a panic there leaves it empty, and
        // weir drops an accumulator whose `add` panicked.
        if let Some(a) = acc.0.take() {
            acc.0 = Some((self.f)(a, item));
        }
    }

    fn finish(&self, acc: FoldAcc<A>) -> A {
        acc.0.unwrap_or_else(|| self.init.clone())
    }
}

/// Counts the items of a window.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let n = weir::Pipeline::from_iter('a'..='e').aggregate(weir::aggregate::Count).collect().await.unwrap();
/// assert_eq!(n, [5]);
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Count;

impl<T> Aggregator<T> for Count {
    type Acc = u64;
    type Out = u64;

    fn init(&self) -> u64 {
        0
    }

    #[inline]
    fn add(&self, acc: &mut u64, _item: T) {
        *acc += 1;
    }

    fn finish(&self, acc: u64) -> u64 {
        acc
    }
}

/// Sums the items of a window, starting from `T::default()`. Integer
/// overflow panics in debug builds, which fails the window.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let s = weir::Pipeline::from_iter([0.5, 1.5]).aggregate(weir::aggregate::Sum).collect().await.unwrap();
/// assert_eq!(s, [2.0]);
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Sum;

impl<T> Aggregator<T> for Sum
where
    T: AddAssign + Default + Send + 'static,
{
    type Acc = T;
    type Out = T;

    fn init(&self) -> T {
        T::default()
    }

    #[inline]
    fn add(&self, acc: &mut T, item: T) {
        *acc += item;
    }

    fn finish(&self, acc: T) -> T {
        acc
    }
}

/// Count, sum, min, max, mean and variance of a value taken from each item
/// (Welford's algorithm: one pass, numerically stable). Emits a
/// [`Summary`].
///
/// # Examples
///
/// ```
/// use weir::aggregate::Stats;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let out = weir::Pipeline::from_iter([("a", 2u32), ("b", 4), ("c", 9)])
///     .aggregate(Stats::by(|(_, ms): &(&str, u32)| f64::from(*ms)))
///     .collect()
///     .await
///     .unwrap();
/// let s = &out[0];
/// assert_eq!((s.count, s.sum, s.min, s.max, s.mean), (3, 15.0, 2.0, 9.0, 5.0));
/// assert!((s.variance - 26.0 / 3.0).abs() < 1e-12);
/// # });
/// ```
#[derive(Clone, Copy)]
pub struct Stats<K> {
    key: K,
}

impl<K> fmt::Debug for Stats<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stats").finish_non_exhaustive()
    }
}

impl<K> Stats<K> {
    /// Statistics of `key(item)` over each window.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::aggregate::Stats;
    ///
    /// struct Order {
    ///     cents: u64,
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let orders = [250, 100, 400].map(|cents| Order { cents });
    /// let s = weir::Pipeline::from_iter(orders)
    ///     .aggregate(Stats::by(|o: &Order| o.cents as f64))
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((s[0].count, s[0].min, s[0].max, s[0].mean), (3, 100.0, 400.0, 250.0));
    /// # });
    /// ```
    pub fn by<T>(key: K) -> Stats<K>
    where
        K: Fn(&T) -> f64,
    {
        Stats { key }
    }
}

impl Stats<fn(&f64) -> f64> {
    /// Statistics of the items themselves.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([1.0, 3.0])
    ///     .aggregate(weir::aggregate::Stats::values())
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!((out[0].mean, out[0].variance), (2.0, 1.0));
    /// # });
    /// ```
    pub fn values() -> Stats<fn(&f64) -> f64> {
        Stats { key: |x| *x }
    }
}

/// What [`Stats`] emits for a window (never empty: empty windows emit
/// nothing). A NaN value makes the sum, mean and variance NaN; min and max
/// skip it.
///
/// # Examples
///
/// ```
/// use weir::aggregate::{Stats, Summary};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let windows: Vec<Summary> = weir::Pipeline::from_iter([1.0, 2.0, 3.0, 10.0])
///     .aggregate_count(2, Stats::values())
///     .collect()
///     .await
///     .unwrap();
/// assert_eq!((windows[0].count, windows[0].mean, windows[0].variance), (2, 1.5, 0.25));
/// assert_eq!((windows[1].min, windows[1].max, windows[1].sum), (3.0, 10.0, 13.0));
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Items in the window.
    pub count: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean of the values.
    pub mean: f64,
    /// Population variance (divided by `count`).
    pub variance: f64,
}

impl Summary {
    /// Population standard deviation.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = weir::aggregate::Summary { count: 2, sum: 2.0, min: 0.0, max: 2.0, mean: 1.0, variance: 1.0 };
    /// assert_eq!(s.std_dev(), 1.0);
    /// ```
    pub fn std_dev(&self) -> f64 {
        self.variance.sqrt()
    }

    /// Sample variance (divided by `count - 1`); `None` for one item.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = weir::aggregate::Summary { count: 2, sum: 2.0, min: 0.0, max: 2.0, mean: 1.0, variance: 1.0 };
    /// assert_eq!(s.sample_variance(), Some(2.0));
    /// ```
    pub fn sample_variance(&self) -> Option<f64> {
        (self.count > 1).then(|| self.variance * self.count as f64 / (self.count - 1) as f64)
    }
}

/// The running state of [`Stats`].
///
/// # Examples
///
/// ```
/// use weir::aggregate::{Aggregator, Stats, StatsAcc};
/// let stats = Stats::values();
/// let mut acc: StatsAcc = Aggregator::<f64>::init(&stats);
/// for x in [2.0, 4.0] {
///     stats.add(&mut acc, x);
/// }
/// assert_eq!(stats.finish(acc).mean, 3.0);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct StatsAcc {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    mean: f64,
    /// Sum of squared differences from the running mean.
    m2: f64,
}

impl<T, K> Aggregator<T> for Stats<K>
where
    K: Fn(&T) -> f64 + Send + 'static,
{
    type Acc = StatsAcc;
    type Out = Summary;

    fn init(&self) -> StatsAcc {
        StatsAcc {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            mean: 0.0,
            m2: 0.0,
        }
    }

    #[inline]
    fn add(&self, acc: &mut StatsAcc, item: T) {
        let x = (self.key)(&item);
        acc.count += 1;
        acc.sum += x;
        acc.min = acc.min.min(x);
        acc.max = acc.max.max(x);
        let delta = x - acc.mean;
        acc.mean += delta / acc.count as f64;
        acc.m2 += delta * (x - acc.mean);
    }

    fn finish(&self, acc: StatsAcc) -> Summary {
        let n = acc.count.max(1) as f64;
        Summary {
            count: acc.count,
            sum: acc.sum,
            min: acc.min,
            max: acc.max,
            mean: acc.mean,
            variance: acc.m2 / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T, A: Aggregator<T>>(agg: &A, items: impl IntoIterator<Item = T>) -> A::Out {
        let mut acc = agg.init();
        for item in items {
            agg.add(&mut acc, item);
        }
        agg.finish(acc)
    }

    #[test]
    fn welford_matches_the_two_pass_formula() {
        let xs: Vec<f64> = (0..1000).map(|i| 1e9 + f64::from(i % 17) * 0.25).collect();
        let s = run(&Stats::values(), xs.iter().copied());
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert_eq!(s.count, 1000);
        assert!((s.mean - mean).abs() < 1e-6);
        assert!((s.variance - var).abs() < 1e-6, "{} vs {var}", s.variance);
        assert_eq!((s.min, s.max), (1e9, 1e9 + 4.0));
    }

    #[test]
    fn one_value_has_no_spread() {
        let s = run(&Stats::values(), [4.5]);
        assert_eq!(
            (s.count, s.min, s.max, s.mean, s.variance),
            (1, 4.5, 4.5, 4.5, 0.0)
        );
        assert_eq!(s.sample_variance(), None);
    }

    #[test]
    fn nan_poisons_the_mean_but_not_the_extremes() {
        let s = run(&Stats::values(), [1.0, f64::NAN, 3.0]);
        assert!(s.mean.is_nan() && s.sum.is_nan());
        assert_eq!((s.min, s.max), (1.0, 3.0));
    }

    #[test]
    fn count_sum_and_fold() {
        assert_eq!(run(&Count, ["x", "y"]), 2);
        assert_eq!(run(&Sum, [1u8, 2, 3]), 6);
        assert_eq!(run(&fold(10, |a, x: i32| a - x), [1, 2]), 7);
    }
}
