//! Acknowledgements: every source item is finalized exactly once.
//!
//! A source that needs to know what became of its items (a message broker
//! that must ack, a file that commits an offset) attaches an [`Ack`] to each
//! item it emits. The runtime carries that reference alongside the item
//! through every stage and finalizes it exactly once with a [`Status`]:
//! delivered when a sink confirmed it, dropped when a stage filtered it out,
//! failed or dead-lettered when it failed, and [`Status::Aborted`] when the
//! pipeline was aborted before the item was finished (an at-least-once source
//! redelivers those). In-memory sources attach nothing and pay nothing.
//!
//! A `flat_map` child shares its parent's reference: the parent is finalized
//! once, when its last child is, with the most severe status of its children.
//! The reverse, an item made of many source items (a `batch`, a window's
//! aggregate), holds a group reference: finishing it finishes every member
//! with the same status.

mod acker_panic;
mod limit;
mod offset;

pub(crate) use acker_panic::hold_acker_panics;
pub(crate) use limit::{InFlight, Room};
pub use offset::OffsetTracker;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

mod token;
pub(crate) use token::Token;

/// How a source item ended.
///
/// Ordered by severity: when the children of one `flat_map` parent end
/// differently, the parent ends with the greatest status among them.
///
/// # Examples
///
/// ```
/// use weir::Status;
/// assert!(Status::Aborted > Status::Failed);
/// assert!(Status::Delivered > Status::Dropped);
/// assert!(Status::Delivered.is_final());
/// assert!(!Status::Aborted.is_final());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A stage filtered the item out on purpose.
    Dropped,
    /// A sink confirmed the item.
    Delivered,
    /// The item failed and its dead-letter record was accepted.
    DeadLettered,
    /// The item failed and the error policy recorded the failure
    /// ([`Skip`](crate::ErrorPolicy::Skip), or a dead-letter sink that
    /// did not take it): done with.
    Failed,
    /// The item failed under [`FailFast`](crate::ErrorPolicy::FailFast)
    /// (or its dead letter was refused) and its failure stopped the run.
    /// Like [`Aborted`](Status::Aborted), not done with: an at-least-once
    /// source redelivers it and a checkpoint does not pass it, so the
    /// next run tries it again.
    Halted,
    /// The pipeline was aborted before the item was finished; it was not
    /// delivered and an at-least-once source should redeliver it.
    Aborted,
}

impl Status {
    const ALL: [Status; 6] = [
        Status::Dropped,
        Status::Delivered,
        Status::DeadLettered,
        Status::Failed,
        Status::Halted,
        Status::Aborted,
    ];

    /// Whether the item is done with for good (everything but
    /// [`Status::Halted`] and [`Status::Aborted`]): a source may
    /// acknowledge or commit it.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::Status;
    /// assert!(Status::Dropped.is_final() && Status::Failed.is_final());
    /// assert!(!Status::Halted.is_final() && !Status::Aborted.is_final());
    /// ```
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Halted | Status::Aborted)
    }

    fn from_rank(rank: u8) -> Status {
        Status::ALL[usize::from(rank).min(Status::ALL.len() - 1)]
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Dropped => "dropped",
            Status::Delivered => "delivered",
            Status::DeadLettered => "dead_lettered",
            Status::Failed => "failed",
            Status::Halted => "halted",
            Status::Aborted => "aborted",
        })
    }
}

/// Receives the final status of every item of an acknowledging source.
///
/// Called exactly once per [`Ack`], from whichever task finished the item;
/// implementations must be cheap and must not block (record, then ack in a
/// task of their own if that needs I/O). Closures `Fn(u64, Status)` implement
/// it.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use weir::{Ack, Acker, Status};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = seen.clone();
/// let acker: Arc<dyn Acker> = Arc::new(move |id, status| log.lock().unwrap().push((id, status)));
/// drop(Ack::new(7, acker)); // never finished: reported as aborted
/// assert_eq!(*seen.lock().unwrap(), vec![(7, Status::Aborted)]);
/// ```
pub trait Acker: Send + Sync + 'static {
    /// Item `id` ended with `status`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{Ack, Acked, Acker, Pipeline, Status};
    ///
    /// /// Collects the ids a broker may acknowledge.
    /// #[derive(Default)]
    /// struct Acks(Mutex<Vec<u64>>);
    ///
    /// impl Acker for Acks {
    ///     fn finalize(&self, id: u64, status: Status) {
    ///         if status.is_final() {
    ///             self.0.lock().unwrap().push(id);
    ///         }
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let acks = Arc::new(Acks::default());
    /// let acker: Arc<dyn Acker> = acks.clone();
    /// let messages = (0..3u64).map(move |i| Acked::new(i, Ack::new(i, acker.clone())));
    /// Pipeline::from_acked(futures::stream::iter(messages)).run().await.unwrap();
    /// let mut ids = acks.0.lock().unwrap().clone();
    /// ids.sort();
    /// assert_eq!(ids, [0, 1, 2]);
    /// # });
    /// ```
    fn finalize(&self, id: u64, status: Status);
}

impl<F> Acker for F
where
    F: Fn(u64, Status) + Send + Sync + 'static,
{
    fn finalize(&self, id: u64, status: Status) {
        self(id, status)
    }
}

struct Node {
    id: u64,
    /// The runtime's sequence number of the item (or group) the node
    /// stands for: an acknowledged [`Token`] keeps it here, not inline.
    seq: AtomicU64,
    /// Outstanding references (the item and its `flat_map` descendants).
    pending: AtomicUsize,
    /// Greatest status rank seen so far.
    rank: AtomicU8,
    /// Who to tell; `None` for an item that only holds room in flight or
    /// only carries a key ([`Ack::keyed`]).
    acker: Option<Arc<dyn Acker>>,
    /// Whether `id` is the source's own id for the item (its key in
    /// events), not a group's or a bare room's number.
    keyed: bool,
    /// The room in flight the item holds, given back when it is finalized
    /// ([`PipelineBuilder::max_in_flight`](crate::PipelineBuilder::max_in_flight)).
    room: Option<Arc<InFlight>>,
}

impl Node {
    fn finish(&self, status: Status) {
        self.rank.fetch_max(status as u8, Ordering::AcqRel);
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let status = Status::from_rank(self.rank.load(Ordering::Acquire));
            // Inside a run's task an acker's panic is held back till the
            // poll returns (a chunk loop it unwound through would leak
            // the run: `acker_panic.rs`); outside, raised once the room
            // is given back.
            let panicked = self
                .acker
                .as_deref()
                .and_then(|acker| acker_panic::finalize(acker, self.id, status));
            if let Some(room) = &self.room {
                room.give_back(1);
            }
            if let Some(payload) = panicked {
                std::panic::resume_unwind(payload);
            }
        }
    }
}

/// An acknowledgement reference from a source: the item's id and who to tell
/// when it is finished.
///
/// Dropping an `Ack` that the runtime did not finish reports
/// [`Status::Aborted`], so no item is ever forgotten silently.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use weir::{Ack, Acked, Pipeline, Status};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let delivered = Arc::new(AtomicU64::new(0));
/// let d = delivered.clone();
/// let acker = Arc::new(move |_id, status| {
///     if status == Status::Delivered { d.fetch_add(1, Ordering::Relaxed); }
/// });
/// let items = (0..10u64).map(move |i| Acked::new(i, Ack::new(i, acker.clone())));
/// Pipeline::from_acked(futures::stream::iter(items)).run().await.unwrap();
/// assert_eq!(delivered.load(Ordering::Relaxed), 10);
/// # });
/// ```
pub struct Ack {
    node: Option<Arc<Node>>,
}

impl Ack {
    /// A reference for source item `id`, reported to `acker` when finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use weir::{Ack, Status};
    /// let seen = Arc::new(Mutex::new(None));
    /// let s = seen.clone();
    /// let ack = Ack::new(42, Arc::new(move |id: u64, status: Status| *s.lock().unwrap() = Some((id, status))));
    /// assert_eq!(ack.id(), 42);
    /// drop(ack); // never finished by a pipeline
    /// assert_eq!(*seen.lock().unwrap(), Some((42, Status::Aborted)));
    /// ```
    pub fn new(id: u64, acker: Arc<dyn Acker>) -> Ack {
        Ack {
            node: Some(Arc::new(Node {
                id,
                seq: AtomicU64::new(0),
                pending: AtomicUsize::new(1),
                rank: AtomicU8::new(0),
                acker: Some(acker),
                keyed: true,
                room: None,
            })),
        }
    }

    /// A reference that only carries the source's id `key` for the item:
    /// nobody is told how it ends, but the item's events name it
    /// (the `key` of [`ItemCompleted`](crate::EventKind::ItemCompleted)
    /// and [`ItemFailed`](crate::EventKind::ItemFailed)), so that a
    /// consumer of [`events`](crate::Pipeline::events) maps them back to
    /// its own ids without keeping the input list. For sources with
    /// nothing to acknowledge; [`Ack::new`]'s items carry their `id` the
    /// same way.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weir::{Ack, Acked, EventKind, EventLevel, PipelineBuilder};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let docs = [(1001, "a"), (1002, "b")]; // the source's own ids
    /// let events: Vec<_> = PipelineBuilder::new()
    ///     .event_level(EventLevel::Items)
    ///     .from_acked(futures::stream::iter(docs.map(|(id, doc)| Acked::new(doc, Ack::keyed(id)))))
    ///     .sink(weir::sink_fn(|_: &str| async {}))
    ///     .name("store")
    ///     .events()
    ///     .collect()
    ///     .await;
    /// let delivered: Vec<_> = events
    ///     .iter()
    ///     .filter_map(|e| match &e.kind {
    ///         EventKind::ItemCompleted { stage, key, .. } if stage == "store" => *key,
    ///         _ => None,
    ///     })
    ///     .collect();
    /// assert_eq!(delivered, [1001, 1002]);
    /// # });
    /// ```
    pub fn keyed(key: u64) -> Ack {
        Ack {
            node: Some(Arc::new(Node {
                id: key,
                seq: AtomicU64::new(0),
                pending: AtomicUsize::new(1),
                rank: AtomicU8::new(0),
                acker: None,
                keyed: true,
                room: None,
            })),
        }
    }

    /// The source's id for the item: also its `key` in the item's events
    /// ([`ItemCompleted`](crate::EventKind::ItemCompleted),
    /// [`ItemFailed`](crate::EventKind::ItemFailed)).
    ///
    /// # Examples
    ///
    /// ```
    /// let ack = weir::Ack::new(3, std::sync::Arc::new(|_, _| {}));
    /// assert_eq!(ack.id(), 3);
    /// ```
    pub fn id(&self) -> u64 {
        self.node.as_ref().map_or(0, |n| n.id)
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ack").field("id", &self.id()).finish()
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            node.finish(Status::Aborted);
        }
    }
}

/// An item together with its source's acknowledgement reference.
///
/// # Examples
///
/// ```
/// let acked = weir::Acked::new("line", weir::Ack::new(0, std::sync::Arc::new(|_, _| {})));
/// assert_eq!(acked.item, "line");
/// ```
#[derive(Debug)]
pub struct Acked<T> {
    /// The item.
    pub item: T,
    /// Its acknowledgement reference.
    pub ack: Ack,
}

impl<T> Acked<T> {
    /// Pairs `item` with `ack`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::{Ack, Acked};
    /// let acked = Acked::new("payload", Ack::new(7, std::sync::Arc::new(|_, _| {})));
    /// assert_eq!((acked.item, acked.ack.id()), ("payload", 7));
    /// ```
    pub fn new(item: T, ack: Ack) -> Acked<T> {
        Acked { item, ack }
    }
}

/// The acker of a joined token's node: passes the group's final status on
/// to each member.
struct Group(Mutex<Vec<Arc<Node>>>);

impl Acker for Group {
    fn finalize(&self, _id: u64, status: Status) {
        // Called once per group; taking the members makes a second call
        // (impossible by `Node`'s count) harmless rather than a double ack.
        let members = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        for member in members {
            member.finish(status);
        }
    }
}

#[cold]
#[inline(never)]
fn finish_node(node: Arc<Node>, status: Status) {
    node.finish(status);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    type Log = Arc<Mutex<Vec<(u64, Status)>>>;

    fn recorder() -> (Arc<dyn Acker>, Log) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (Arc::new(move |id, st| s.lock().unwrap().push((id, st))), seen)
    }

    #[test]
    fn parent_finishes_once_after_all_children_with_worst_status() {
        let (acker, seen) = recorder();
        let t = Token::acked(0, Ack::new(9, acker));
        let a = t.split();
        let b = t.split();
        t.finish(Status::Delivered);
        a.finish(Status::Dropped);
        assert!(seen.lock().unwrap().is_empty());
        b.finish(Status::Failed);
        assert_eq!(*seen.lock().unwrap(), vec![(9, Status::Failed)]);
    }

    #[test]
    fn dropped_token_reports_aborted_exactly_once() {
        let (acker, seen) = recorder();
        let t = Token::acked(0, Ack::new(1, acker));
        let child = t.split();
        drop(t);
        child.finish(Status::Delivered);
        assert_eq!(*seen.lock().unwrap(), vec![(1, Status::Aborted)]);
    }

    fn acked(ids: std::ops::Range<u64>, acker: &Arc<dyn Acker>) -> Vec<Token> {
        ids.map(|i| Token::acked(i, Ack::new(i, acker.clone()))).collect()
    }

    #[test]
    fn a_joined_token_finishes_every_member_with_its_status() {
        let (acker, seen) = recorder();
        let joined = Token::join(acked(0..3, &acker), 0);
        assert!(seen.lock().unwrap().is_empty());
        joined.finish(Status::Failed);
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        assert_eq!(
            got,
            vec![(0, Status::Failed), (1, Status::Failed), (2, Status::Failed)]
        );
    }

    #[test]
    fn dropping_a_joined_token_aborts_each_member_once() {
        let (acker, seen) = recorder();
        drop(Token::join(acked(0..4, &acker), 0));
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, (0..4).map(|i| (i, Status::Aborted)).collect::<Vec<_>>());
    }

    #[test]
    fn splits_of_a_joined_token_finish_the_members_once_all_are_done() {
        let (acker, seen) = recorder();
        let joined = Token::join(acked(0..2, &acker), 5);
        assert_eq!(joined.seq(), 5);
        let child = joined.split();
        joined.finish(Status::Delivered);
        assert!(seen.lock().unwrap().is_empty());
        child.finish(Status::Dropped);
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, vec![(0, Status::Delivered), (1, Status::Delivered)]);
    }

    #[test]
    fn joins_nest() {
        let (acker, seen) = recorder();
        let inner = Token::join(acked(0..2, &acker), 0);
        let outer = Token::join(vec![inner, Token::acked(2, Ack::new(2, acker.clone()))], 0);
        outer.finish(Status::Delivered);
        assert_eq!(seen.lock().unwrap().len(), 3);
        assert!(seen.lock().unwrap().iter().all(|(_, s)| *s == Status::Delivered));
    }

    #[test]
    fn a_join_of_plain_tokens_is_plain() {
        let joined = Token::join((0..100).map(Token::plain).collect(), 7);
        assert!(!joined.is_acked());
        assert_eq!(joined.seq(), 7);
        assert!(!Token::join(Vec::new(), 0).is_acked());
    }

    #[test]
    fn a_join_of_one_acked_member_is_that_member() {
        let (acker, seen) = recorder();
        let mut tokens = vec![Token::plain(0)];
        tokens.extend(acked(1..2, &acker));
        let joined = Token::join(tokens, 0);
        assert_eq!(format!("{joined:?}"), "Token { seq: 0, ack: Some(1) }");
        joined.finish(Status::Dropped);
        assert_eq!(*seen.lock().unwrap(), vec![(1, Status::Dropped)]);
    }

    #[test]
    fn plain_tokens_cost_nothing_and_report_nothing() {
        assert_eq!(std::mem::size_of::<Token>(), 8);
        Token::plain(3).finish(Status::Delivered);
    }
}
