use std::fmt;
use std::future::Future;

use futures::stream::{self, Stream, StreamExt};

use super::BoxSource;
use crate::error::BoxError;

/// A source with a lifecycle (seed 002's feed adapters): connect in
/// [`initialize`](Source::initialize), read a [`stream`](Source::stream),
/// release in [`close`](Source::close). Sources are read by
/// [`Pipeline::merge`](crate::Pipeline::merge).
///
/// `initialize` is called once, when the source's turn to be read comes;
/// if it succeeds, `stream` is called once and read to its end, then
/// `close` is called. A source whose `initialize` fails (or panics) is
/// reported and not read; `close` is not called for it.
///
/// # Examples
///
/// ```
/// use weir::{BoxError, Pipeline, Source};
///
/// /// A feed that must "connect" before it is read.
/// struct Feed { name: &'static str, connected: bool }
///
/// impl Source for Feed {
///     type Item = String;
///     type Stream = futures::stream::Iter<std::vec::IntoIter<String>>;
///
///     fn name(&self) -> Option<String> {
///         Some(self.name.to_owned())
///     }
///     async fn initialize(&mut self) -> Result<(), BoxError> {
///         self.connected = true;
///         Ok(())
///     }
///     fn stream(&mut self) -> Self::Stream {
///         assert!(self.connected);
///         futures::stream::iter(vec![format!("{}-1", self.name), format!("{}-2", self.name)])
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let feeds = ["a", "b"].map(|name| Feed { name, connected: false });
/// let mut out = Pipeline::merge(feeds).collect().await.unwrap();
/// out.sort();
/// assert_eq!(out, ["a-1", "a-2", "b-1", "b-2"]);
/// # });
/// ```
pub trait Source: Send + 'static {
    /// The items the source emits.
    type Item: Send + 'static;
    /// The stream of items.
    type Stream: Stream<Item = Self::Item> + Send + 'static;

    /// The source's name in errors and events. By default, none: the
    /// source is named after its position (`#0`, `#1`, …).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{stage::Streamed, EventKind, Pipeline, Source};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let backlog = Streamed::from_iter(0..2u32).named("backlog");
    /// assert_eq!(backlog.name().as_deref(), Some("backlog"));
    /// let events: Vec<_> = Pipeline::merge([backlog, Streamed::from_iter(5..6u32)]).events().collect().await;
    /// let mut inputs: Vec<_> = events
    ///     .iter()
    ///     .filter_map(|e| match &e.kind {
    ///         EventKind::SourceConnected { input, .. } => Some(input.clone()),
    ///         _ => None,
    ///     })
    ///     .collect();
    /// inputs.sort();
    /// assert_eq!(inputs, ["#1", "backlog"]); // unnamed: its position
    /// # });
    /// ```
    fn name(&self) -> Option<String> {
        None
    }

    /// Prepares the source (connect, open, authenticate). By default,
    /// does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{BoxError, ErrorPolicy, Pipeline, Source};
    ///
    /// /// A feed behind a connection that may be down.
    /// struct Feed {
    ///     up: bool,
    /// }
    ///
    /// impl Source for Feed {
    ///     type Item = u32;
    ///     type Stream = futures::stream::Iter<std::ops::Range<u32>>;
    ///     async fn initialize(&mut self) -> Result<(), BoxError> {
    ///         if self.up { Ok(()) } else { Err("connection refused".into()) }
    ///     }
    ///     fn stream(&mut self) -> Self::Stream {
    ///         futures::stream::iter(0..3)
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let r = Pipeline::merge([Feed { up: true }, Feed { up: false }])
    ///     .on_error(ErrorPolicy::Skip) // one input down is not fatal
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(r.delivered, 3); // the feed that connected was read; the other was not
    /// # });
    /// ```
    fn initialize(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }

    /// The source's items; called once, after `initialize` succeeded.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Pipeline, Source};
    ///
    /// /// Lines read once (a file, a table page).
    /// struct Lines(Vec<&'static str>);
    ///
    /// impl Source for Lines {
    ///     type Item = &'static str;
    ///     type Stream = futures::stream::Iter<std::vec::IntoIter<&'static str>>;
    ///     fn stream(&mut self) -> Self::Stream {
    ///         futures::stream::iter(std::mem::take(&mut self.0))
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = Pipeline::merge([Lines(vec!["a", "b"])]).collect().await.unwrap();
    /// assert_eq!(out, ["a", "b"]);
    /// # });
    /// ```
    fn stream(&mut self) -> Self::Stream;

    /// Releases the source's resources once its stream ended (or the
    /// pipeline drains). By default, does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use weir::{Pipeline, Source};
    ///
    /// struct Conn {
    ///     closed: Arc<AtomicBool>,
    /// }
    ///
    /// impl Source for Conn {
    ///     type Item = u8;
    ///     type Stream = futures::stream::Iter<std::ops::Range<u8>>;
    ///     fn stream(&mut self) -> Self::Stream {
    ///         futures::stream::iter(0..2)
    ///     }
    ///     async fn close(&mut self) {
    ///         self.closed.store(true, Ordering::SeqCst); // hang up
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let closed = Arc::new(AtomicBool::new(false));
    /// let r = Pipeline::merge([Conn { closed: closed.clone() }]).run().await.unwrap();
    /// assert_eq!(r.delivered, 2);
    /// assert!(closed.load(Ordering::SeqCst));
    /// # });
    /// ```
    fn close(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// This source with its type erased, so that sources of one item type
    /// but different kinds (an iterator, a stream, a connector) go into
    /// one [`merge`](crate::Pipeline::merge). See [`BoxSource`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{stage::Streamed, BoxSource, Pipeline, Source};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let inputs: [BoxSource<u32>; 2] = [
    ///     Streamed::from_iter(0..2u32).boxed(),
    ///     Streamed::new(futures::stream::iter([5u32])).named("late").boxed(),
    /// ];
    /// let mut out = Pipeline::merge(inputs).collect().await.unwrap();
    /// out.sort();
    /// assert_eq!(out, [0, 1, 5]);
    /// # });
    /// ```
    fn boxed(self) -> BoxSource<Self::Item>
    where
        Self: Sized,
    {
        BoxSource::new(self)
    }
}

/// A plain stream (or, through [`from_iter`](Streamed::from_iter), an
/// iterator) as a [`Source`] with nothing to initialize or close.
///
/// # Examples
///
/// ```
/// use weir::{stage::Streamed, Pipeline};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let inputs = vec![Streamed::from_iter(0..3), Streamed::from_iter(10..13)];
/// let mut out = Pipeline::merge(inputs).collect().await.unwrap();
/// out.sort();
/// assert_eq!(out, [0, 1, 2, 10, 11, 12]);
/// # });
/// ```
pub struct Streamed<S> {
    name: Option<String>,
    stream: Option<S>,
}

impl<S> fmt::Debug for Streamed<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streamed")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<S> Streamed<S> {
    /// `stream` as a source.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let input = weir::stage::Streamed::new(futures::stream::iter(["x"]));
    /// assert_eq!(weir::Pipeline::merge([input]).collect().await.unwrap(), ["x"]);
    /// # });
    /// ```
    pub fn new(stream: S) -> Streamed<S> {
        Streamed {
            name: None,
            stream: Some(stream),
        }
    }

    /// Names the source in errors and events.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::Source;
    /// let input = weir::stage::Streamed::from_iter(0..1).named("numbers");
    /// assert_eq!(input.name().as_deref(), Some("numbers"));
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Streamed<S> {
        self.name = Some(name.into());
        self
    }
}

impl<I: Iterator> Streamed<stream::Iter<I>> {
    /// The items of an iterator as a source.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{stage::Streamed, Pipeline};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let backlog = Streamed::from_iter(vec!["old-1", "old-2"]).named("backlog");
    /// let out = Pipeline::merge([backlog]).collect().await.unwrap();
    /// assert_eq!(out, ["old-1", "old-2"]);
    /// # });
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn from_iter<T: IntoIterator<IntoIter = I>>(items: T) -> Streamed<stream::Iter<I>> {
        Streamed::new(stream::iter(items))
    }
}

impl<S> Source for Streamed<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    type Item = S::Item;
    /// The stream, once (`stream` is called once).
    type Stream = stream::Flatten<stream::Iter<std::option::IntoIter<S>>>;

    fn name(&self) -> Option<String> {
        self.name.clone()
    }

    fn stream(&mut self) -> Self::Stream {
        stream::iter(self.stream.take()).flatten()
    }
}
