use std::fmt;
use std::future::poll_fn;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::future::BoxFuture;
use futures::{FutureExt, Stream};

use super::{flush_all, settle, token, Source};
use crate::ack::Room;
use crate::error::{Error, ErrorKind};
use crate::event::EventKind;
use crate::pipeline::{Pipeline, PipelineBuilder};
use crate::policy::ErrorPolicy;
use crate::runtime::Counters;
use crate::runtime::{guard, Flow, NoIntake, Plan, Push, TaskCx, Wiring};

/// The source node of [`Pipeline::merge`]: several [`Source`]s read
/// concurrently, at most [`max_concurrent`](Pipeline::max_concurrent) at
/// once.
///
/// # Examples
///
/// ```
/// use weir::{stage::{Merge, Streamed}, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<u32, Merge<Streamed<_>>> = Pipeline::merge([Streamed::from_iter(0..2), Streamed::from_iter(10..12)]);
/// let mut out = p.collect().await.unwrap();
/// out.sort();
/// assert_eq!(out, [0, 1, 10, 11]);
/// # });
/// ```
#[must_use]
pub struct Merge<S> {
    sources: Vec<S>,
    max: usize,
}

impl<S> fmt::Debug for Merge<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Merge")
            .field("sources", &self.sources.len())
            .field("max_concurrent", &self.max)
            .finish()
    }
}

impl PipelineBuilder {
    /// A pipeline over the items of several [`Source`]s of one item type,
    /// read concurrently (seed 002's `collect_parallel`): every source
    /// at once unless limited by [`max_concurrent`](Pipeline::max_concurrent).
    /// Reading is fair: each round takes up to a chunk of what each open
    /// source has ready, so a busy source cannot starve the others.
    ///
    /// A source whose `initialize` fails, or whose stream panics, is
    /// reported (an error naming it, and a
    /// [`SourceFailed`](crate::EventKind::SourceFailed) event) and routed
    /// by the source stage's error policy: fail-fast stops the pipeline,
    /// skip goes on with the other sources. Items keep their order within
    /// a source, not across sources.
    ///
    /// The sources are of one type: to mix kinds of one item type (an
    /// iterator, a stream, a channel, a connector), make each a
    /// [`BoxSource`](crate::BoxSource) ([`Source::boxed`],
    /// [`BoxSource::from_iter`](crate::BoxSource::from_iter),
    /// [`BoxSource::from_stream`](crate::BoxSource::from_stream)).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{stage::Streamed, BoxSource};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let feeds = (0..4).map(|f| Streamed::from_iter((0..100).map(move |i| (f, i))));
    /// let report = weir::PipelineBuilder::new().name("feeds").merge(feeds).max_concurrent(2).run().await.unwrap();
    /// assert_eq!(report.delivered, 400);
    ///
    /// let mixed = [BoxSource::from_iter([1, 2]), BoxSource::from_stream(futures::stream::iter([3]))];
    /// assert_eq!(weir::PipelineBuilder::new().merge(mixed).run().await.unwrap().delivered, 3);
    /// # });
    /// ```
    pub fn merge<S, I>(self, sources: I) -> Pipeline<S::Item, Merge<S>>
    where
        S: Source,
        I: IntoIterator<Item = S>,
    {
        let sources: Vec<S> = sources.into_iter().collect();
        let max = sources.len().max(1);
        self.start(Merge { sources, max }, (0, None))
    }
}

impl Pipeline<(), ()> {
    /// Several sources read concurrently, with default settings. See
    /// [`PipelineBuilder::merge`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::stage::Streamed;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let inputs = [Streamed::from_iter(vec!["a", "b"]), Streamed::from_iter(vec!["c"])];
    /// let mut out = weir::Pipeline::merge(inputs).collect().await.unwrap();
    /// out.sort();
    /// assert_eq!(out, ["a", "b", "c"]);
    /// # });
    /// ```
    pub fn merge<S, I>(sources: I) -> Pipeline<S::Item, Merge<S>>
    where
        S: Source,
        I: IntoIterator<Item = S>,
    {
        PipelineBuilder::new().merge(sources)
    }
}

impl<T, S> Pipeline<T, Merge<S>> {
    /// How many sources are read at once: the others wait (not yet
    /// initialized) until one ends. By default, all of them.
    ///
    /// # Panics
    ///
    /// If `k` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::stage::Streamed;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// // One at a time: the sources are read one after the other.
    /// let inputs = [Streamed::from_iter(0..3), Streamed::from_iter(3..6)];
    /// let out = weir::Pipeline::merge(inputs).max_concurrent(1).collect().await.unwrap();
    /// assert_eq!(out, [0, 1, 2, 3, 4, 5]);
    /// # });
    /// ```
    #[track_caller]
    pub fn max_concurrent(mut self, k: usize) -> Self {
        assert!(k > 0, "Pipeline::max_concurrent must be at least 1");
        self.plan.max = k;
        self
    }
}

impl<S: Source> Plan for Merge<S> {
    type Out = S::Item;
    type Intake = NoIntake;

    fn attach<D: Push<S::Item>>(self, down: D, w: &mut Wiring<NoIntake>) {
        let task = drive(
            self.sources,
            self.max,
            down,
            w.counters(0),
            w.cx(),
            w.chunk_size(),
        );
        w.spawn_stage(0, task);
    }
}

/// Where one source is in its lifecycle.
enum State<S: Source> {
    Starting(BoxFuture<'static, (S, Result<(), Error>)>),
    Running(S, Pin<Box<S::Stream>>),
    Closing(BoxFuture<'static, ()>),
    Done,
}

/// What polling a source gave.
enum Pulled<T> {
    Item(T),
    Failed(Error),
    Ended,
}

struct Input<S: Source> {
    name: String,
    state: State<S>,
    /// Initialized, and not announced yet (a `SourceConnected` event).
    connected: bool,
}

fn close<S: Source>(mut source: S) -> BoxFuture<'static, ()> {
    async move {
        // A panicking close has nothing left to release.
        let _ = AssertUnwindSafe(source.close()).catch_unwind().await;
    }
    .boxed()
}

impl<S: Source> Input<S> {
    fn new(position: usize, mut source: S) -> Input<S> {
        let name = guard(|| source.name())
            .ok()
            .flatten()
            .unwrap_or_else(|| format!("#{position}"));
        let init = async move {
            let r = match AssertUnwindSafe(source.initialize()).catch_unwind().await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Error::caused_by(ErrorKind::Source, e)),
                Err(p) => Err(Error::panicked(&*p)),
            };
            (source, r)
        };
        Input {
            name,
            state: State::Starting(init.boxed()),
            connected: false,
        }
    }

    fn failed(&self, what: &str, e: &Error) -> Error {
        Error::new(
            ErrorKind::Source,
            format!("input `{}` {what}: {}", self.name, e.message()),
        )
    }

    fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn start_closing(&mut self) {
        if let State::Running(source, stream) = std::mem::replace(&mut self.state, State::Done) {
            drop(stream);
            self.state = State::Closing(close(source));
        }
    }

    fn poll_pull(&mut self, cx: &mut Context<'_>) -> Poll<Pulled<S::Item>> {
        loop {
            match &mut self.state {
                State::Starting(init) => {
                    let (mut source, r) = ready!(init.poll_unpin(cx));
                    if let Err(e) = r {
                        self.state = State::Done;
                        return Poll::Ready(Pulled::Failed(self.failed("failed to initialize", &e)));
                    }
                    match guard(|| source.stream()) {
                        Ok(stream) => {
                            self.state = State::Running(source, Box::pin(stream));
                            self.connected = true;
                        }
                        Err(e) => {
                            self.state = State::Closing(close(source));
                            return Poll::Ready(Pulled::Failed(self.failed("panicked", &e)));
                        }
                    }
                }
                State::Running(_, stream) => match guard(|| stream.as_mut().poll_next(cx)) {
                    Ok(Poll::Ready(Some(item))) => return Poll::Ready(Pulled::Item(item)),
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(None)) => self.start_closing(),
                    Err(e) => {
                        self.start_closing();
                        return Poll::Ready(Pulled::Failed(self.failed("panicked", &e)));
                    }
                },
                State::Closing(closing) => {
                    ready!(closing.poll_unpin(cx));
                    self.state = State::Done;
                }
                State::Done => return Poll::Ready(Pulled::Ended),
            }
        }
    }

    /// Ends the source early (drain): waits for a pending initialization
    /// and closes what was opened.
    async fn shut(self) {
        match self.state {
            State::Starting(init) => {
                if let (source, Ok(())) = init.await {
                    close(source).await;
                }
            }
            State::Running(source, stream) => {
                drop(stream);
                close(source).await;
            }
            State::Closing(closing) => closing.await,
            State::Done => {}
        }
    }
}

/// Reports a failed source: an event, and a fail-fast error if the source
/// stage's policy says so.
async fn report(cx: &TaskCx, input: String, error: Error) {
    let shared = &cx.shared;
    let stage = &shared.stages[0];
    shared
        .bus
        .emit(EventKind::SourceFailed {
            stage: stage.spec.name.clone(),
            input,
            error: error.message().to_owned(),
        })
        .await;
    if stage.policy == ErrorPolicy::FailFast {
        let name = &stage.spec.name;
        shared.fail(Error::new(
            error.kind(),
            format!("source `{name}`: {}", error.message()),
        ));
    }
}

/// Announces the inputs that initialized since the last call.
async fn announce<S: Source>(cx: &TaskCx, inputs: &mut [Input<S>]) {
    for input in inputs {
        if std::mem::take(&mut input.connected) {
            let stage = cx.shared.stages[0].spec.name.clone();
            let input = input.name.clone();
            cx.shared
                .bus
                .emit(EventKind::SourceConnected { stage, input })
                .await;
        }
    }
}

/// Reads the sources in rounds: each open source gives up to a chunk of
/// what it has ready, in turn; when none has anything ready, waits for
/// the first that does.
async fn drive<S, D>(sources: Vec<S>, max: usize, mut down: D, mut c: Counters, mut cx: TaskCx, chunk: usize)
where
    S: Source,
    D: Push<S::Item>,
{
    let shared = cx.shared.clone();
    let mut waiting = sources.into_iter().enumerate();
    let mut open: Vec<Input<S>> = Vec::new();
    let mut failures = Vec::new();
    let mut seq = 0u64;
    let mut counted = 0u64;
    let limit = shared.in_flight.clone();
    // Room taken for the next item (under `max_in_flight` only).
    let mut room: Option<Room> = None;
    'run: loop {
        while open.len() < max {
            match waiting.next() {
                Some((i, source)) => open.push(Input::new(i, source)),
                None => break,
            }
        }
        if open.is_empty() || shared.drain.is_raised() {
            break;
        }
        shared.bus.events_gate().await;
        let start = seq;
        let mut progress = false;
        'round: for input in &mut open {
            let mut taken = 0;
            while taken < chunk {
                if let (Some(limit), None) = (&limit, &room) {
                    room = limit.try_room();
                    if room.is_none() {
                        break 'round;
                    }
                }
                match poll_fn(|t| Poll::Ready(input.poll_pull(t))).await {
                    Poll::Ready(Pulled::Item(item)) => {
                        down.push(item, token(seq, None, &mut room), &mut cx);
                        seq += 1;
                        taken += 1;
                        if down.wants_flush() {
                            c.items_in += seq - counted;
                            shared.e2e.pulled(counted, seq);
                            counted = seq;
                            if flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
                                break 'run;
                            }
                        }
                    }
                    Poll::Ready(Pulled::Failed(e)) => {
                        progress = true;
                        failures.push((input.name.clone(), e));
                    }
                    Poll::Ready(Pulled::Ended) => {
                        progress = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        announce(&cx, &mut open).await;
        open.retain(|input| !input.is_done());
        for (name, e) in failures.drain(..) {
            report(&cx, name, e).await;
        }
        if seq == start && !progress {
            // Nothing ready anywhere (or no room): wait for room, if there
            // is a bound, then for the first source that is ready.
            if let (Some(limit), None) = (&limit, &room) {
                tokio::select! {
                    biased;
                    () = shared.drain.raised() => break 'run,
                    r = limit.room() => room = Some(r),
                }
            }
            let next = poll_fn(|t| {
                for (i, input) in open.iter_mut().enumerate() {
                    if let Poll::Ready(p) = input.poll_pull(t) {
                        return Poll::Ready((i, p));
                    }
                }
                Poll::Pending
            });
            tokio::select! {
                biased;
                () = shared.drain.raised() => break 'run,
                (i, pulled) = next => match pulled {
                    Pulled::Item(item) => {
                        down.push(item, token(seq, None, &mut room), &mut cx);
                        seq += 1;
                    }
                    Pulled::Failed(e) => failures.push((open[i].name.clone(), e)),
                    Pulled::Ended => {}
                },
            }
        }
        c.items_in += seq - counted;
        shared.e2e.pulled(counted, seq);
        counted = seq;
        if flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
            break;
        }
        tokio::task::consume_budget().await;
    }
    drop(room);
    for (name, e) in failures.drain(..) {
        report(&cx, name, e).await;
    }
    announce(&cx, &mut open).await;
    c.items_in += seq - counted;
    settle(&mut down, &mut c);
    if open.is_empty() && waiting.len() == 0 && !shared.drain.is_raised() {
        shared.source_exhausted(seq).await;
    }
    futures::future::join_all(open.into_iter().map(Input::shut)).await;
    down.finish(&mut cx).await;
}
