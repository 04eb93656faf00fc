use std::fmt;

use super::{forward_flush, guard, Plan, Push, SyncRecover, TaskCx, Wiring};
use crate::ack::Token;
use crate::error::{Error, ErrorKind};
use crate::pipeline::Pipeline;
use crate::runtime::Counters;

/// The plan node of [`Pipeline::validate`].
///
/// # Examples
///
/// ```
/// use weir::{stage::{IterSource, Validate}, ErrorPolicy, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<&str, Validate<IterSource<_>, _>> = Pipeline::from_iter(["ok@x.org", "nope"])
///     .validate(|email| if email.contains('@') { Ok(()) } else { Err("no @") })
///     .on_error(ErrorPolicy::Skip);
/// assert_eq!(p.collect().await.unwrap(), ["ok@x.org"]);
/// # });
/// ```
#[must_use]
pub struct Validate<P, F> {
    pub(crate) prev: P,
    pub(crate) f: F,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug, F> fmt::Debug for Validate<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validate")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P, F, E> Plan for Validate<P, F>
where
    P: Plan,
    F: FnMut(&P::Out) -> Result<(), E> + Send + 'static,
    E: Into<String>,
{
    type Out = P::Out;
    type Intake = P::Intake;

    fn attach<D: Push<P::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let c = w.counters(self.idx);
        match SyncRecover::take(w, self.idx) {
            None => self.prev.attach(ValidateStep { f: self.f, down, c }, w),
            Some(r) => self.prev.attach(
                ValidateRecoverStep {
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

struct ValidateStep<F, D> {
    f: F,
    down: D,
    c: Counters,
}

impl<T, F, E, D> Push<T> for ValidateStep<F, D>
where
    F: FnMut(&T) -> Result<(), E> + Send + 'static,
    E: Into<String>,
    D: Push<T>,
{
    #[inline(always)]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        let error = match guard(|| (self.f)(&item)) {
            Ok(Ok(())) => return self.down.push(item, token, cx),
            Ok(Err(message)) => Error::new(ErrorKind::Validation, message),
            Err(panic) => panic,
        };
        self.c.failed += 1;
        cx.fail(self.c.stage(), token, error);
    }

    forward_flush!();
}

/// `validate` with a dead-letter sink or a failure handler.
struct ValidateRecoverStep<F, D, T> {
    f: F,
    down: D,
    c: Counters,
    r: SyncRecover<T, T>,
}

impl<T, F, E, D> Push<T> for ValidateRecoverStep<F, D, T>
where
    T: Send + 'static,
    F: FnMut(&T) -> Result<(), E> + Send + 'static,
    E: Into<String>,
    D: Push<T>,
{
    #[inline]
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        let f = &mut self.f;
        let run = |item| match guard(|| f(&item)) {
            Ok(Ok(())) => Ok(item),
            Ok(Err(message)) => Err(Error::new(ErrorKind::Validation, message)),
            Err(panic) => Err(panic),
        };
        match self.r.run(item, token.seq(), cx, run) {
            Ok(out) => self.down.push(out, token, cx),
            Err(error) => {
                self.c.failed += 1;
                cx.fail(self.c.stage(), token, error);
            }
        }
    }

    forward_flush!();
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Checks each item: `Ok(())` passes it on unchanged, `Err(message)`
    /// fails it with an error of kind
    /// [`Validation`](crate::ErrorKind::Validation) carrying the message,
    /// routed by the stage's [`ErrorPolicy`](crate::ErrorPolicy) (set with
    /// [`on_error`](Self::on_error)). Put it early, to reject bad data
    /// before any work is spent on it.
    ///
    /// A panic in `f` fails that item too (error type `panic`). Failed
    /// items can go to a [`dead_letter`](Self::dead_letter) sink or an
    /// [`on_failure`](Self::on_failure) handler.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{ErrorKind, ErrorPolicy, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let check = |age: &i32| if *age >= 0 { Ok(()) } else { Err(format!("negative age {age}")) };
    ///
    /// let kept = Pipeline::from_iter([30, -1, 41])
    ///     .validate(check)
    ///     .on_error(ErrorPolicy::Skip)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(kept, [30, 41]);
    ///
    /// let err = Pipeline::from_iter([30, -1, 41]).validate(check).run().await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Validation);
    /// assert_eq!(err.message(), "negative age -1");
    /// # });
    /// ```
    pub fn validate<E, F>(self, f: F) -> Pipeline<T, Validate<P, F>>
    where
        F: FnMut(&T) -> Result<(), E> + Send + 'static,
        E: Into<String>,
    {
        self.stage("validate", |prev, idx| Validate { prev, f, idx })
    }
}
