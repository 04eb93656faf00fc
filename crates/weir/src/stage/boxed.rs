use std::fmt;
use std::marker::PhantomData;

use futures::future::BoxFuture;

use super::{Flow, Plan, Push, TaskCx, Wiring};
use crate::ack::Token;

/// The object-safe face of [`Push`].
trait DynPush<T>: Send + 'static {
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx);
    fn settle(&mut self, pushed: u64);
    fn wants_flush(&self) -> bool;
    fn has_pending(&self) -> bool;
    fn flush<'a>(&'a mut self, cx: &'a mut TaskCx) -> BoxFuture<'a, Flow>;
    fn finish(self: Box<Self>, cx: &mut TaskCx) -> BoxFuture<'_, ()>;
}

impl<T: Send + 'static, D: Push<T>> DynPush<T> for D {
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        Push::push(self, item, token, cx)
    }

    fn settle(&mut self, pushed: u64) {
        Push::settle(self, pushed)
    }

    fn wants_flush(&self) -> bool {
        Push::wants_flush(self)
    }

    fn has_pending(&self) -> bool {
        Push::has_pending(self)
    }

    fn flush<'a>(&'a mut self, cx: &'a mut TaskCx) -> BoxFuture<'a, Flow> {
        Box::pin(Push::flush(self, cx))
    }

    fn finish(self: Box<Self>, cx: &mut TaskCx) -> BoxFuture<'_, ()> {
        Box::pin(Push::finish(*self, cx))
    }
}

/// A type-erased downstream step.
struct BoxPush<T>(Box<dyn DynPush<T>>);

impl<T: Send + 'static> Push<T> for BoxPush<T> {
    fn push(&mut self, item: T, token: Token, cx: &mut TaskCx) {
        self.0.push(item, token, cx)
    }

    fn settle(&mut self, pushed: u64) {
        self.0.settle(pushed)
    }

    fn wants_flush(&self) -> bool {
        self.0.wants_flush()
    }

    fn has_pending(&self) -> bool {
        self.0.has_pending()
    }

    async fn flush(&mut self, cx: &mut TaskCx) -> Flow {
        self.0.flush(cx).await
    }

    async fn finish(self, cx: &mut TaskCx) {
        self.0.finish(cx).await
    }
}

type Attach<T, I> = Box<dyn FnOnce(BoxPush<T>, &mut Wiring<I>) + Send>;

/// A type-erased plan: made by [`Pipeline::boxed`](crate::Pipeline::boxed).
///
/// The stages before the erasure stay fused with each other, and so do the
/// stages after it; the erased boundary costs one virtual call per item.
///
/// # Examples
///
/// ```
/// use weir::{stage::{BoxPlan, NoIntake}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // Pipelines of different shapes, one type.
/// let jobs: Vec<Pipeline<u32, BoxPlan<u32, NoIntake>>> = vec![
///     Pipeline::from_iter(0..3u32).boxed(),
///     Pipeline::from_iter([7u32]).map(|x| x + 1).boxed(),
/// ];
/// let mut out = Vec::new();
/// for job in jobs {
///     out.push(job.collect().await.unwrap());
/// }
/// assert_eq!(out, [vec![0, 1, 2], vec![8]]);
/// # });
/// ```
#[must_use]
pub struct BoxPlan<T, I> {
    attach: Attach<T, I>,
    _t: PhantomData<fn() -> (T, I)>,
}

impl<T, I> fmt::Debug for BoxPlan<T, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxPlan").finish_non_exhaustive()
    }
}

impl<T: Send + 'static, I: Send + 'static> BoxPlan<T, I> {
    pub(crate) fn new<P: Plan<Out = T, Intake = I>>(plan: P) -> BoxPlan<T, I> {
        BoxPlan {
            attach: Box::new(move |down, w| plan.attach(down, w)),
            _t: PhantomData,
        }
    }
}

impl<T: Send + 'static, I: Send + 'static> Plan for BoxPlan<T, I> {
    type Out = T;
    type Intake = I;

    fn attach<D: Push<T>>(self, down: D, w: &mut Wiring<I>) {
        (self.attach)(BoxPush(Box::new(down)), w)
    }
}
