use std::fmt;
use std::mem::ManuallyDrop;

use super::{Flow, Plan, Push, TaskCx, Wiring};
use crate::ack::Token;
use crate::metrics::Counters;
use crate::runtime::channel::Receiver;
use crate::runtime::{flush_all, settle, ChannelOut};

/// The plan node of [`Pipeline::boundary`](crate::Pipeline::boundary): ends
/// the fused segment, so the stages after it run in a task of their own
/// behind a chunk channel.
///
/// # Examples
///
/// ```
/// use weir::{stage::{Boundary, IterSource, Map}, Pipeline};
/// # tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap().block_on(async {
/// let p: Pipeline<u64, Boundary<Map<IterSource<_>, _>>> = Pipeline::from_iter(0..4u64).map(|x| x * x).boundary();
/// assert_eq!(p.map(|x| x + 1).collect().await.unwrap(), [1, 2, 5, 10]);
/// # });
/// ```
#[must_use]
pub struct Boundary<P> {
    pub(crate) prev: P,
    pub(crate) idx: usize,
}

impl<P: fmt::Debug> fmt::Debug for Boundary<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Boundary")
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl<P: Plan> Plan for Boundary<P> {
    type Out = P::Out;
    type Intake = P::Intake;

    fn attach<D: Push<P::Out>>(self, down: D, w: &mut Wiring<P::Intake>) {
        let (tx, rx) = w.input_channel(self.idx);
        let c = w.counters(self.idx);
        w.spawn_stage(self.idx, forward(Some(rx), down, c, w.cx(), true));
        let out = ChannelOut::new(tx, w.chunk_size());
        self.prev.attach(out, w);
    }
}

/// A task that forwards the chunks of `rx` into the fused stages `down`
/// until every sender is gone or everything downstream is: the task of a
/// [`Boundary`] and of a fan-out's branch. Counts the items it forwards as
/// taken in (a boundary's; a fan-out counts what it sends its branches
/// itself) and, on explicit counters, out.
pub(crate) async fn forward<T, D>(
    rx: Option<Receiver<T>>,
    mut down: D,
    mut c: Counters,
    mut cx: TaskCx,
    count_in: bool,
) where
    T: Send + 'static,
    D: Push<T>,
{
    if let Some(mut rx) = rx {
        'run: while let Some(mut chunk) = rx.recv().await {
            let mut items = chunk.drain(..);
            loop {
                let (it, d, taken) = push_ready(items, down, &mut cx);
                (items, down) = (it, d);
                if count_in {
                    c.items_in += taken;
                }
                c.add_out(taken);
                if items.len() == 0 {
                    break;
                }
                // `down` wants a flush before it takes more.
                if flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
                    break 'run;
                }
            }
            drop(items);
            rx.recycle(chunk);
            if flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
                break;
            }
        }
    }
    settle(&mut down, &mut c);
    down.finish(&mut cx).await;
}

/// Pushes items into `down` until they are used up or `down` wants a
/// flush. The same loop twice: in the first copy the compiler knows the
/// chain is steady ([`Push::steady`]: a fold holds its accumulator) and
/// drops those per-item tests.
#[inline(always)]
#[allow(clippy::if_same_then_else)] // the point: one loop compiled twice
fn push_ready<T, D, I>(items: I, down: D, cx: &mut TaskCx) -> (I, D, u64)
where
    D: Push<T>,
    I: ExactSizeIterator<Item = (T, Token)>,
{
    if down.steady() {
        push_loop(items, down, cx)
    } else {
        push_loop(items, down, cx)
    }
}

/// [`push_ready`]'s loop: when `down` has room for the whole rest
/// ([`Push::room`]), one loop whose only test is the iterator's end; when
/// it has room for some, as many in a counted loop; then one at a time,
/// testing for a flush after each. Takes `down` by value and hands it back,
/// without drop glue, so its fields (the output's length) stay in
/// registers for the whole chunk, as in the source's `pull_range` and the
/// concurrent driver's `run_ready`. Returns how many it took.
#[inline(always)]
fn push_loop<T, D, I>(items: I, down: D, cx: &mut TaskCx) -> (I, D, u64)
where
    D: Push<T>,
    I: ExactSizeIterator<Item = (T, Token)>,
{
    let mut items = ManuallyDrop::new(items);
    let mut down = ManuallyDrop::new(down);
    let before = items.len();
    let room = down.room();
    'run: {
        if room >= before {
            (&mut *items).for_each(|(item, token)| down.push(item, token, cx));
            break 'run;
        }
        for _ in 0..room {
            let Some((item, token)) = items.next() else {
                break 'run;
            };
            down.push(item, token, cx);
        }
        if room > 0 && down.wants_flush() {
            break 'run;
        }
        for (item, token) in &mut *items {
            down.push(item, token, cx);
            if down.wants_flush() {
                break;
            }
        }
    }
    let taken = (before - items.len()) as u64;
    (
        ManuallyDrop::into_inner(items),
        ManuallyDrop::into_inner(down),
        taken,
    )
}
