//! [`batch`]: a reusable stage that groups items into `Vec`s.

use std::borrow::Cow;
use std::fmt;

use super::Stage;
use crate::context::Context;
use crate::error::BoxError;

/// A stage that groups items into `Vec`s of up to `max_items`: made by
/// [`batch`].
pub struct BatchStage<In> {
    name: Cow<'static, str>,
    max_items: usize,
    open: Vec<In>,
}

impl<In> fmt::Debug for BatchStage<In> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchStage")
            .field("name", &self.name)
            .field("max_items", &self.max_items)
            .field("open", &self.open.len())
            .finish()
    }
}

/// A stage named `name` that groups items into `Vec`s of up to
/// `max_items`, in order (seed 003's `BatchStage`); the last, partial
/// batch is emitted at the end of the stream
/// ([`flush`](Stage::flush)). Empty batches are never emitted.
///
/// Batches are bounded by count only: a reusable stage has no timer. For a
/// batch that also closes after a wait, use
/// [`Pipeline::batch`](crate::Pipeline::batch). In a pipeline a batch
/// stands for its items: they are finished when it is.
///
/// # Panics
///
/// If `max_items` is 0.
///
/// # Examples
///
/// ```
/// use weir::compose::{self, Stage};
///
/// let mut rows = compose::batch("rows", 2);
/// assert_eq!(rows.run_on(1..=5).unwrap(), [vec![1, 2], vec![3, 4], vec![5]]);
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sizes = compose::batch("rows", 2) >> compose::map("size", |b: Vec<u8>| b.len());
/// assert_eq!(weir::Pipeline::from_iter([1u8, 2, 3]).pipe(sizes).collect().await.unwrap(), [2, 1]);
/// # });
/// ```
#[track_caller]
pub fn batch<In>(name: impl Into<Cow<'static, str>>, max_items: usize) -> BatchStage<In> {
    assert!(max_items > 0, "compose::batch: max_items must be at least 1");
    BatchStage {
        name: name.into(),
        max_items,
        open: Vec::new(),
    }
}

impl<In: Send + 'static> Stage<In> for BatchStage<In> {
    type Out = Vec<In>;

    fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn process(&mut self, item: In, _: &Context, out: &mut Vec<Vec<In>>) -> Result<(), BoxError> {
        self.open.push(item);
        if self.open.len() >= self.max_items {
            out.push(std::mem::take(&mut self.open));
        }
        Ok(())
    }

    fn flush(&mut self, _: &Context, out: &mut Vec<Vec<In>>) -> Result<(), BoxError> {
        if !self.open.is_empty() {
            out.push(std::mem::take(&mut self.open));
        }
        Ok(())
    }

    fn holds(&self) -> bool {
        !self.open.is_empty()
    }
}
