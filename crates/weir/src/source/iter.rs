use std::fmt;

use super::ship;
use crate::ack::Token;
use crate::error::{Error, ErrorKind};
use crate::metrics::Counters;
use crate::stage::{guard, Flow, Plan, Push, TaskCx, Wiring};

/// The source node of [`Pipeline::from_iter`](crate::Pipeline::from_iter).
#[must_use]
pub struct IterSource<I> {
    pub(crate) iter: I,
}

impl<I> fmt::Debug for IterSource<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IterSource").finish_non_exhaustive()
    }
}

impl<I> Plan for IterSource<I>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
{
    type Out = I::Item;
    type Intake = crate::stage::NoIntake;

    fn attach<D: Push<I::Item>>(self, down: D, w: &mut Wiring<Self::Intake>) {
        let task = drive(self.iter, down, w.counters(0), w.cx(), w.chunk_size());
        w.spawn(task);
    }
}

async fn drive<I, D>(mut iter: I, mut down: D, mut c: Counters, mut cx: TaskCx, chunk: usize)
where
    I: Iterator + Send + 'static,
    D: Push<I::Item>,
{
    let shared = cx.shared.clone();
    let chunk = chunk as u64;
    let mut seq = 0u64;
    loop {
        if shared.drain.is_raised() {
            break;
        }
        shared.events_gate().await;
        let start = seq;
        let mut exhausted = false;
        while seq - start < chunk {
            match guard(|| iter.next()) {
                Ok(Some(item)) => {
                    down.push(item, Token::plain(seq), &mut cx);
                    seq += 1;
                    if down.wants_flush() {
                        break;
                    }
                }
                Ok(None) => {
                    exhausted = true;
                    break;
                }
                Err(e) => {
                    exhausted = true;
                    let name = &shared.stages[0].spec.name;
                    shared.fail(Error::new(
                        ErrorKind::Source,
                        format!("source `{name}` panicked after item {seq}: {}", e.message()),
                    ));
                    break;
                }
            }
        }
        c.items_in += seq - start;
        if ship(&mut down, &mut c, &mut cx).await == Flow::Stop || exhausted {
            break;
        }
        tokio::task::consume_budget().await;
    }
    c.publish();
    down.finish(&mut cx).await;
}
