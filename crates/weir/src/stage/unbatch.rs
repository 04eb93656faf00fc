use super::{FlatMap, Plan};
use crate::pipeline::Pipeline;

/// The plan node of [`Pipeline::unbatch`] and [`Pipeline::flatten`]: a
/// `flat_map` whose function is the identity.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir::{stage::{Batch, IterSource, Unbatch}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let p: Pipeline<u32, Unbatch<Batch<IterSource<_>>, Vec<u32>>> =
///     Pipeline::from_iter(1..=3u32).batch(2, Duration::from_secs(1)).unbatch();
/// assert_eq!(p.collect().await.unwrap(), [1, 2, 3]);
/// # });
/// ```
pub type Unbatch<P, T> = FlatMap<P, fn(T) -> T>;

impl<T, P> Pipeline<T, P>
where
    T: IntoIterator + Send + 'static,
    T::Item: Send + 'static,
    P: Plan<Out = T>,
{
    /// Emits the elements of each item (a batch, a `Vec`, an `Option`) one
    /// by one, in order: the reverse of [`batch`](Pipeline::batch). Fused
    /// with neighbouring sync stages.
    ///
    /// The elements share their batch's acknowledgement, as `flat_map`
    /// children do: the batch's source items are finished once every
    /// element is, with the most severe status among the elements (one
    /// failed element fails the whole batch's items). An empty item counts
    /// as dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter(0..10)
    ///     .batch(4, Duration::from_secs(1))
    ///     .map(|mut batch| { batch.reverse(); batch })
    ///     .unbatch()
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [3, 2, 1, 0, 7, 6, 5, 4, 9, 8]);
    /// # });
    /// ```
    pub fn unbatch(self) -> Pipeline<T::Item, Unbatch<P, T>> {
        self.stage("unbatch", |prev, idx| FlatMap {
            prev,
            f: identity::<T> as fn(T) -> T,
            idx,
        })
    }

    /// Another name for [`unbatch`](Pipeline::unbatch), after
    /// [`Iterator::flatten`].
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = weir::Pipeline::from_iter([Some(1), None, Some(3)]).flatten().collect().await.unwrap();
    /// assert_eq!(out, [1, 3]);
    /// # });
    /// ```
    pub fn flatten(self) -> Pipeline<T::Item, Unbatch<P, T>> {
        self.stage("flatten", |prev, idx| FlatMap {
            prev,
            f: identity::<T> as fn(T) -> T,
            idx,
        })
    }
}

fn identity<T>(item: T) -> T {
    item
}
