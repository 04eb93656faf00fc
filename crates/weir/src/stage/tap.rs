use super::{Inspect, Plan};
use crate::pipeline::Pipeline;

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// A synchronous side effect on each item, which passes on unchanged.
    /// An alias of [`inspect`](Self::inspect) under the name pipelines
    /// written in the "tap" vocabulary expect; the stage is named `tap#n`.
    /// For an async side effect, see [`tap_async`](Self::tap_async).
    ///
    /// A panic in `f` fails that item, routed by the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let l = log.clone();
    /// let out = weir::Pipeline::from_iter([1, 2, 3])
    ///     .tap(move |x| l.lock().unwrap().push(*x))
    ///     .map(|x| x * 10)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, [10, 20, 30]);
    /// assert_eq!(*log.lock().unwrap(), [1, 2, 3]);
    /// # });
    /// ```
    pub fn tap<F>(self, f: F) -> Pipeline<T, Inspect<P, F>>
    where
        F: FnMut(&T) + Send + 'static,
    {
        self.stage("tap", |prev, idx| Inspect { prev, f, idx })
    }
}
