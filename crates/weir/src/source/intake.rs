use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;

use super::{flush_all, settle};
use crate::runtime::channel::Receiver;
use crate::runtime::Counters;
use crate::runtime::{Flow, Plan, Push, TaskCx, Wiring};

/// The source node of [`Pipeline::intake`](crate::Pipeline::intake): items
/// pushed through the [`Handle`](crate::Handle).
///
/// # Examples
///
/// ```
/// use weir::{stage::IntakeSource, Pipeline};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let p: Pipeline<String, IntakeSource<String>> = Pipeline::intake();
/// let handle = p.start();
/// handle.push("hello".to_owned()).await.unwrap();
/// assert_eq!(handle.wait().await.unwrap().delivered, 1);
/// # });
/// ```
#[must_use]
pub struct IntakeSource<T> {
    pub(crate) _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for IntakeSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntakeSource").finish()
    }
}

impl<T: Send + 'static> Plan for IntakeSource<T> {
    type Out = T;
    type Intake = T;

    fn attach<D: Push<T>>(self, down: D, w: &mut Wiring<T>) {
        let (tx, rx) = w.input_channel(0);
        w.intake = Some(tx);
        let task = drive(rx, down, w.counters(0), w.cx());
        w.spawn_stage(0, task);
    }
}

/// Forwards pushed chunks. On drain, or once a stage is satisfied, it
/// closes the intake (pushers get `Closed`) and still forwards everything
/// that was accepted before.
async fn drive<T, D>(mut rx: Receiver<T>, mut down: D, mut c: Counters, mut cx: TaskCx)
where
    T: Send + 'static,
    D: Push<T>,
{
    let shared = cx.shared.clone();
    let mut closing = false;
    let mut ran_out = false;
    'run: loop {
        let chunk = if closing {
            rx.recv().await
        } else {
            tokio::select! {
                biased;
                chunk = rx.recv() => chunk,
                () = shared.stop_requested() => {
                    rx.close();
                    closing = true;
                    continue;
                }
            }
        };
        let Some(chunk) = chunk else {
            // Every pusher is gone (closing on a drain is no running out).
            ran_out = !closing;
            break;
        };
        shared.bus.events_gate().await;
        for (item, token) in chunk {
            c.items_in += 1;
            shared.e2e.pulled(token.seq(), token.seq() + 1);
            down.push(item, token, &mut cx);
            if down.wants_flush() && flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
                break 'run;
            }
        }
        if flush_all(&mut down, &mut c, &mut cx).await == Flow::Stop {
            break;
        }
    }
    settle(&mut down, &mut c);
    if ran_out {
        let taken = shared.stages[c.stage()].metrics.items_in.load(Ordering::Relaxed);
        shared.source_exhausted(taken).await;
    }
    down.finish(&mut cx).await;
}
