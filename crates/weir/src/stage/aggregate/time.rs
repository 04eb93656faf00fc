use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::window::Window;
use super::Aggregator;
use crate::pipeline::Pipeline;
use crate::runtime::channel::Receiver;
use crate::runtime::Counters;
use crate::runtime::{flush_all, settle, ChannelOut};
use crate::runtime::{Flow, Plan, Push, TaskCx, Wiring};

/// The plan node of [`Pipeline::aggregate_time`]: a stage in a task of its
/// own, so that a window closes while no input arrives.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures::StreamExt;
/// use weir::{aggregate::{AggregateTime, Sum}, stage::StreamSource, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// // A reading every 400 ms, summed per second.
/// let readings = futures::stream::iter([1u64, 2, 3, 4]).then(|x| async move {
///     tokio::time::sleep(Duration::from_millis(400)).await;
///     x
/// });
/// let p: Pipeline<u64, AggregateTime<StreamSource<_>, Sum>> =
///     Pipeline::from_stream(readings).aggregate_time(Duration::from_secs(1), Sum);
/// assert_eq!(p.collect().await.unwrap(), [3, 7]); // at 400 800 | 1200 1600
/// # });
/// ```
#[must_use]
pub struct AggregateTime<P, A> {
    prev: P,
    agg: A,
    every: Duration,
    idx: usize,
}

impl<P: fmt::Debug, A> fmt::Debug for AggregateTime<P, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateTime")
            .field("prev", &self.prev)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl<P, A> Plan for AggregateTime<P, A>
where
    P: Plan,
    A: Aggregator<P::Out>,
{
    type Out = A::Out;
    type Intake = P::Intake;

    fn attach<D: Push<A::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let (tx, rx) = w.input_channel(self.idx);
        let window = Window::new(self.agg, self.idx);
        let c = w.counters(self.idx);
        w.spawn_stage(self.idx, run_windows(rx, window, self.every, down, c, w.cx()));
        let out = ChannelOut::new(tx, w.chunk_size());
        self.prev.attach(out, w);
    }
}

/// The end of the window that `now` falls in, windows being `every` long
/// from `start`; `None` if it cannot be represented (the window then
/// closes at the end of the stream).
fn window_end(start: Instant, now: Instant, every: Duration) -> Option<Instant> {
    let every = every.as_nanos();
    let offset = (now.saturating_duration_since(start).as_nanos() / every + 1).checked_mul(every)?;
    let secs = u64::try_from(offset / 1_000_000_000).ok()?;
    // The remainder of a division by 10⁹ fits.
    let nanos = (offset % 1_000_000_000) as u32;
    start.checked_add(Duration::new(secs, nanos))
}

async fn run_windows<T, A, D>(
    mut rx: Receiver<T>,
    mut window: Window<T, A>,
    every: Duration,
    mut down: D,
    c: Counters,
    mut cx: TaskCx,
) where
    T: Send + 'static,
    A: Aggregator<T>,
    D: Push<A::Out>,
{
    // In counts items, out counts windows.
    let mut c = c.into_explicit();
    let start = Instant::now();
    // When the open window closes; `None` while it is empty, so an idle
    // stage sets no timer.
    let mut due: Option<Instant> = None;
    'run: loop {
        settle(&mut down, &mut c);
        let chunk = match due {
            Some(at) => tokio::select! {
                // A window that is over closes before newer input joins it.
                biased;
                () = tokio::time::sleep_until(at) => {
                    due = None;
                    window.emit(&mut down, &mut c, &mut cx);
                    if flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
                        break 'run;
                    }
                    continue 'run;
                }
                chunk = rx.recv() => chunk,
            },
            None => rx.recv().await,
        };
        let Some(mut chunk) = chunk else {
            window.emit(&mut down, &mut c, &mut cx);
            break;
        };
        // One clock reading per chunk: a chunk's items arrived together.
        let now = Instant::now();
        if due.is_some_and(|at| now >= at) {
            window.emit(&mut down, &mut c, &mut cx);
        }
        for (item, token) in chunk.drain(..) {
            c.items_in += 1;
            window.add(item, token, &mut c, &mut cx);
        }
        rx.recycle(chunk);
        due = if window.len() == 0 {
            None
        } else if due.is_some_and(|at| now < at) {
            due
        } else {
            window_end(start, now, every)
        };
        if flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
            break;
        }
    }
    settle(&mut down, &mut c);
    cx.flush_events().await;
    down.finish(&mut cx).await;
}

impl<T, P> Pipeline<T, P>
where
    T: Send + 'static,
    P: Plan<Out = T>,
{
    /// Folds the items of each `every`-long span of time (tumbling windows
    /// by time, counted from the pipeline's start) with `agg` and emits one
    /// output per window that received items, when the window closes (a
    /// `tokio::time` timer, which fires while no input arrives). Windows
    /// without items emit nothing; the last window is emitted at the end
    /// of the stream or of a drain. An item belongs to the window in which
    /// it reached the stage. The stage runs in a task of its own.
    ///
    /// A window's output stands for its items: they are finished when it
    /// is. A panic in the aggregator fails the window's items.
    ///
    /// # Panics
    ///
    /// If `every` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use weir::aggregate::Count;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// // One item every 30 ms; count them per 100 ms.
    /// let ticks = futures::stream::iter(0..7).then(|i| async move {
    ///     tokio::time::sleep(Duration::from_millis(30)).await;
    ///     i
    /// });
    /// let counts = weir::Pipeline::from_stream(ticks)
    ///     .aggregate_time(Duration::from_millis(100), Count)
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(counts, [3, 3, 1]); // at 30 60 90 | 120 150 180 | 210
    /// # });
    /// ```
    #[track_caller]
    pub fn aggregate_time<A: Aggregator<T>>(
        self,
        every: Duration,
        agg: A,
    ) -> Pipeline<A::Out, AggregateTime<P, A>> {
        assert!(
            !every.is_zero(),
            "Pipeline::aggregate_time: a window must last longer than zero"
        );
        self.stage("aggregate_time", |prev, idx| AggregateTime {
            prev,
            agg,
            every,
            idx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_to_the_start() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let every = ms(100);
        assert_eq!(window_end(start, start, every), Some(start + ms(100)));
        assert_eq!(window_end(start, start + ms(99), every), Some(start + ms(100)));
        assert_eq!(window_end(start, start + ms(100), every), Some(start + ms(200)));
        assert_eq!(window_end(start, start + ms(1234), every), Some(start + ms(1300)));
        assert_eq!(window_end(start, start + ms(5), Duration::MAX), None);
    }
}
