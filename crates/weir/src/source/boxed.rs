//! [`BoxSource`]: sources of one item type but different kinds, as one
//! type, so that [`Pipeline::merge`](crate::Pipeline::merge) mixes them.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use futures::FutureExt;

use super::{Source, Streamed};
use crate::error::BoxError;

/// A [`Source`] of `T` items whose kind is erased: an iterator, a stream,
/// a channel's receiving end, or any `Source`, all of one type, so that
/// one [`merge`](crate::Pipeline::merge) reads them together. Made by
/// [`Source::boxed`], [`BoxSource::from_iter`] and
/// [`BoxSource::from_stream`]; it costs one allocation per source and one
/// virtual call per item.
///
/// # Examples
///
/// ```
/// use futures::SinkExt;
/// use weir::{BoxSource, Pipeline, Source};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // An intake: items pushed by other code through a channel.
/// let (mut tx, rx) = futures::channel::mpsc::channel(8);
/// tx.send(100).await.unwrap();
/// drop(tx);
///
/// let mut out = Pipeline::merge([
///     BoxSource::from_iter(0..2),                                 // an iterator
///     BoxSource::from_stream(futures::stream::iter([10, 11])),   // a stream
///     BoxSource::from_stream(rx).named("intake"),                // a channel
///     weir::stage::Streamed::from_iter([20]).boxed(),            // any Source
/// ])
/// .collect()
/// .await
/// .unwrap();
/// out.sort();
/// assert_eq!(out, [0, 1, 10, 11, 20, 100]);
/// # });
/// ```
pub struct BoxSource<T> {
    name: Option<String>,
    inner: Box<dyn ErasedSource<Item = T>>,
}

impl<T> fmt::Debug for BoxSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxSource")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> BoxSource<T> {
    /// Erases `source`'s type (the same as [`Source::boxed`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{stage::Streamed, BoxSource, Source};
    /// let input: BoxSource<u8> = BoxSource::new(Streamed::from_iter([1u8]).named("one"));
    /// assert_eq!(input.name().as_deref(), Some("one"));
    /// ```
    pub fn new<S: Source<Item = T>>(source: S) -> BoxSource<T> {
        BoxSource {
            name: None,
            inner: Box::new(source),
        }
    }

    /// The items of an iterator as a source.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{BoxSource, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = Pipeline::merge([BoxSource::from_iter(vec!["a", "b"])]).collect().await.unwrap();
    /// assert_eq!(out, ["a", "b"]);
    /// # });
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn from_iter<I>(items: I) -> BoxSource<T>
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        BoxSource::from_stream(stream::iter(items))
    }

    /// The items of a stream as a source (a channel's receiving end is
    /// one).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{BoxSource, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let squares = futures::stream::iter(1..=3u32).map(|x| x * x);
    /// let out = Pipeline::merge([BoxSource::from_stream(squares)]).collect().await.unwrap();
    /// assert_eq!(out, [1, 4, 9]);
    /// # });
    /// ```
    pub fn from_stream<S>(stream: S) -> BoxSource<T>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        BoxSource::new(Streamed::new(stream))
    }

    /// Names the source in errors and events (instead of the name of the
    /// source it erases, if any).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{BoxSource, Source};
    /// let backlog = BoxSource::from_iter(0..3).named("backlog");
    /// assert_eq!(backlog.name().as_deref(), Some("backlog"));
    /// assert_eq!(BoxSource::from_iter(0..3).name(), None);
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> BoxSource<T> {
        self.name = Some(name.into());
        self
    }
}

impl<T: Send + 'static> Source for BoxSource<T> {
    type Item = T;
    type Stream = BoxSourceStream<T>;

    fn name(&self) -> Option<String> {
        self.name.clone().or_else(|| self.inner.name())
    }

    fn initialize(&mut self) -> impl std::future::Future<Output = Result<(), BoxError>> + Send {
        self.inner.initialize()
    }

    fn stream(&mut self) -> BoxSourceStream<T> {
        BoxSourceStream(self.inner.stream())
    }

    fn close(&mut self) -> impl std::future::Future<Output = ()> + Send {
        self.inner.close()
    }
}

/// The stream of a [`BoxSource`].
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use weir::{stage::BoxSourceStream, BoxSource, Source};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let stream: BoxSourceStream<u8> = BoxSource::from_iter([1u8, 2]).stream();
/// assert_eq!(stream.collect::<Vec<_>>().await, [1, 2]);
/// # });
/// ```
pub struct BoxSourceStream<T>(BoxStream<'static, T>);

impl<T> fmt::Debug for BoxSourceStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxSourceStream").finish_non_exhaustive()
    }
}

impl<T> Stream for BoxSourceStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_next_unpin(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

/// [`Source`] with its futures and stream boxed: what [`BoxSource`] holds.
trait ErasedSource: Send {
    type Item;
    fn name(&self) -> Option<String>;
    fn initialize(&mut self) -> BoxFuture<'_, Result<(), BoxError>>;
    fn stream(&mut self) -> BoxStream<'static, Self::Item>;
    fn close(&mut self) -> BoxFuture<'_, ()>;
}

impl<S: Source> ErasedSource for S {
    type Item = S::Item;

    fn name(&self) -> Option<String> {
        Source::name(self)
    }

    fn initialize(&mut self) -> BoxFuture<'_, Result<(), BoxError>> {
        Source::initialize(self).boxed()
    }

    fn stream(&mut self) -> BoxStream<'static, S::Item> {
        Source::stream(self).boxed()
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Source::close(self).boxed()
    }
}
