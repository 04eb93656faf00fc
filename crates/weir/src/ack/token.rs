//! The token every item carries through the runtime, packed in one word.
//!
//! This is weir's one module with `unsafe` code (the workspace forbids it
//! elsewhere). A token was a `u64` sequence number and an
//! `Option<Arc<Node>>`: 16 bytes, making each `(u64, Token)` of a chunk 24.
//! Packed, a plain token is the address `seq << 1 | 1` and an
//! acknowledged one is the node's `Arc` pointer (always even: `Node` is
//! 8-aligned), its sequence number kept in the node. Every chunk moved
//! between tasks shrinks by a third, and finishing or dropping a plain
//! token stays one bit test (measured on the `chain` bench's `weir-tasks`:
//! docs/BENCHMARKS.md).
//!
//! Safety rests on one invariant, kept by every function here: when the
//! low bit of `raw`'s address is 0, `raw` is a pointer obtained from
//! `Arc::into_raw` on a live `Arc<Node>` whose strong count this token
//! owns (exactly one), and nothing else turns it back into an `Arc`.
//!
//! The word is a pointer, not an integer, and keeps to strict provenance:
//! a plain token is made with [`ptr::without_provenance`] (an address no
//! one dereferences), the tag is read with `.addr()`, and a node's pointer
//! only ever travels as the pointer `Arc::into_raw` gave (never through an
//! integer), so it keeps the provenance `Arc::from_raw` needs.
//! `scripts/miri` runs this module's tests (and the rest of `ack`'s)
//! under Miri with `-Zmiri-strict-provenance`, which checks all of that.
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{finish_node, Ack, Group, InFlight, Node, Status};

/// What travels beside every item inside the runtime: the item's sequence
/// number at the source (used in errors and events) and, for acknowledging
/// sources, its acknowledgement reference. Finishing consumes the token;
/// dropping an unfinished one reports [`Status::Aborted`].
pub struct Token {
    /// The address `seq << 1 | 1` without provenance (plain), or an owned
    /// `Arc<Node>` pointer (even).
    raw: *const Node,
    /// Owns what an `Arc<Node>` owns (for drop checking).
    _node: PhantomData<Arc<Node>>,
}

// SAFETY: a token is a sequence number or one strong count of an
// `Arc<Node>` (the invariant), so it may be sent and shared exactly when
// that `Arc` may; the bounds make the compiler check that it may.
unsafe impl Send for Token where Arc<Node>: Send {}
// SAFETY: as for `Send`: `&Token` only reads the node (`seq`, `key`) or
// adds a count (`split`), as `&Arc<Node>` may.
unsafe impl Sync for Token where Arc<Node>: Sync {}

/// The tag bit of `raw`'s address: set on a plain token.
const PLAIN: usize = 1;

// A plain token keeps a 63-bit sequence number in a pointer's address.
const _: () = assert!(usize::BITS == 64, "weir's tokens need 64-bit pointers");

impl Token {
    /// A token for an in-memory item: nothing to acknowledge. `seq` must
    /// be below 2⁶³ (a source would need centuries to count that far).
    #[inline(always)]
    pub(crate) fn plain(seq: u64) -> Token {
        debug_assert!(seq < 1 << 63, "sequence number {seq} out of range");
        Token {
            raw: ptr::without_provenance(plain_addr(seq)),
            _node: PhantomData,
        }
    }

    /// A token owning `node` (one strong count), numbered `seq`.
    fn owning(seq: u64, node: Arc<Node>) -> Token {
        node.seq.store(seq, Ordering::Relaxed);
        let raw = Arc::into_raw(node);
        debug_assert_eq!(raw.addr() & PLAIN, 0, "an odd Node pointer");
        Token {
            raw,
            _node: PhantomData,
        }
    }

    /// A token for an item that holds `room` in flight (and, with `ack`,
    /// a source's acknowledgement reference too): the room is given back
    /// when the item is finalized, whatever its status.
    pub(crate) fn holding(seq: u64, ack: Option<Ack>, room: Arc<InFlight>) -> Token {
        let node = match ack.and_then(|mut a| a.node.take()) {
            Some(mut node) => match Arc::get_mut(&mut node) {
                // A fresh `Ack` is its node's only owner.
                Some(n) => {
                    n.room = Some(room);
                    node
                }
                None => unreachable!("an Ack's node has one owner"),
            },
            None => Arc::new(Node {
                id: seq,
                seq: seq.into(),
                pending: 1.into(),
                rank: 0.into(),
                acker: None,
                keyed: false,
                room: Some(room),
            }),
        };
        Token::owning(seq, node)
    }

    pub(crate) fn acked(seq: u64, mut ack: Ack) -> Token {
        match ack.node.take() {
            // A fresh `Ack` is its node's only owner (`Ack` is not
            // `Clone`), so numbering the node numbers only this item.
            Some(node) => Token::owning(seq, node),
            None => Token::plain(seq),
        }
    }

    /// The node, borrowed, if the token owns one.
    #[inline(always)]
    fn node(&self) -> Option<&Node> {
        if self.is_plain() {
            return None;
        }
        // SAFETY: by the module's invariant an even `raw` is a live
        // `Arc<Node>` this token holds a count of, so the node outlives
        // the borrow of `self`.
        Some(unsafe { &*self.raw })
    }

    /// Whether the tag bit is set: no node.
    #[inline(always)]
    fn is_plain(&self) -> bool {
        self.raw.addr() & PLAIN == PLAIN
    }

    /// Takes the node out (leaving a plain token with the same number).
    #[inline(always)]
    fn take_node(&mut self) -> Option<Arc<Node>> {
        if self.is_plain() {
            return None;
        }
        // SAFETY: `raw` came from `Arc::into_raw` and its count is this
        // token's; the token turns plain before anything else can see the
        // pointer again, so the count is taken back exactly once.
        let node = unsafe { Arc::from_raw(self.raw) };
        self.raw = ptr::without_provenance(plain_addr(node.seq.load(Ordering::Relaxed)));
        Some(node)
    }

    /// The item's sequence number at its source.
    #[inline(always)]
    pub fn seq(&self) -> u64 {
        match self.node() {
            None => (self.raw.addr() >> 1) as u64,
            Some(node) => node.seq.load(Ordering::Relaxed),
        }
    }

    /// The source's own id for the item (its [`Ack`]'s), if it has one:
    /// `None` for in-memory items and for a batch standing for several.
    #[inline]
    pub(crate) fn key(&self) -> Option<u64> {
        self.node().filter(|n| n.keyed).map(|n| n.id)
    }

    /// Finishes the item with `status`.
    #[inline(always)]
    pub(crate) fn finish(self, status: Status) {
        // Not dropped afterwards: a plain token then costs one bit test, not
        // two (callgrind), and an acknowledged one skips the renumbering
        // that `take_node` does for the drop that would follow.
        let this = std::mem::ManuallyDrop::new(self);
        if !this.is_plain() {
            // SAFETY: an even `raw` is an `Arc::into_raw` pointer whose
            // count this token owns (the invariant); `this` is never
            // dropped, so the count is taken back exactly once.
            let node = unsafe { Arc::from_raw(this.raw) };
            finish_node(node, status);
        }
    }

    /// This token, known to be plain, rebuilt so that the compiler sees it
    /// is: finishing or dropping it then compiles to nothing, and a loop
    /// that only carries it along can be vectorised (a fold's, measured on
    /// the `chain` bench: docs/BENCHMARKS.md). For runs whose source makes
    /// only plain tokens ([`Shared::acked`](crate::runtime::Shared) down).
    /// On an acknowledged token it would leak the node's count and lose the
    /// item's status (memory-safe, but wrong): debug builds assert.
    #[inline(always)]
    pub(crate) fn assume_plain(self) -> Token {
        debug_assert!(!self.is_acked(), "assume_plain on an acknowledged token");
        let this = std::mem::ManuallyDrop::new(self);
        Token {
            raw: this.raw.map_addr(|a| a | PLAIN),
            _node: PhantomData,
        }
    }

    /// Whether finishing the token tells a source anything.
    #[inline(always)]
    pub(crate) fn is_acked(&self) -> bool {
        !self.is_plain()
    }

    /// A token standing for every one of `tokens` (a batch, a window's
    /// aggregate): finishing it finishes each member with the same status,
    /// dropping it unfinished reports [`Status::Aborted`] for each. Plain
    /// members need nothing, so if no member is acknowledged the result is
    /// plain too; a single acknowledged member numbered `seq` is passed on
    /// as it is.
    pub(crate) fn join(tokens: Vec<Token>, seq: u64) -> Token {
        let mut members: Vec<Arc<Node>> = tokens.into_iter().filter_map(|mut t| t.take_node()).collect();
        if members.is_empty() {
            return Token::plain(seq);
        }
        if members.len() == 1 {
            let node = members.pop().expect("one member");
            // Renumbered only if no other token shares it (a `flat_map`
            // sibling keeps its own number).
            if node.seq.load(Ordering::Relaxed) == seq || Arc::strong_count(&node) == 1 {
                return Token::owning(seq, node);
            }
            members.push(node);
        }
        let group = Node {
            id: seq,
            seq: seq.into(),
            pending: 1.into(),
            rank: 0.into(),
            acker: Some(Arc::new(Group(std::sync::Mutex::new(members)))),
            keyed: false,
            room: None,
        };
        Token::owning(seq, Arc::new(group))
    }

    /// A second reference to the same source item (for `flat_map` children).
    #[inline]
    pub(crate) fn split(&self) -> Token {
        match self.node() {
            None => Token {
                raw: self.raw,
                _node: PhantomData,
            },
            Some(node) => {
                node.pending.fetch_add(1, Ordering::AcqRel);
                // SAFETY: `raw` is a live `Arc<Node>` pointer (the
                // invariant); the new token owns the count added here.
                unsafe { Arc::increment_strong_count(self.raw) };
                Token {
                    raw: self.raw,
                    _node: PhantomData,
                }
            }
        }
    }
}

/// The address of plain token `seq`: odd, so never a node's.
#[inline(always)]
fn plain_addr(seq: u64) -> usize {
    (seq as usize) << 1 | PLAIN
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("seq", &self.seq())
            .field("ack", &self.node().map(|n| n.id))
            .finish()
    }
}

// The hot path (in-memory items, no node) must inline to a bit test: the
// acknowledging path stays out of line so that dropping or finishing a
// plain token never costs a call. Measured: an out-of-line
// `drop_in_place<Token>` took 35% of a fused map/filter/map/fold loop.
impl Drop for Token {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(node) = self.take_node() {
            finish_node(node, Status::Aborted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    type Log = Arc<Mutex<Vec<(u64, Status)>>>;

    fn ack(id: u64) -> (Ack, Log) {
        let seen: Log = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (
            Ack::new(id, Arc::new(move |id, st| s.lock().unwrap().push((id, st)))),
            seen,
        )
    }

    #[test]
    fn a_token_is_one_word_and_plain_ones_keep_their_number() {
        assert_eq!(std::mem::size_of::<Token>(), 8);
        assert_eq!(std::mem::size_of::<(u64, Token)>(), 16);
        for seq in [0, 1, 41, (1 << 63) - 1] {
            let t = Token::plain(seq);
            assert_eq!((t.seq(), t.is_acked()), (seq, false));
            assert_eq!(t.split().seq(), seq);
        }
    }

    #[test]
    fn plain_tokens_rebuilt_as_plain_keep_their_number_and_tokens_cross_threads() {
        for seq in [0, 3, (1 << 63) - 1] {
            let t = Token::plain(seq).assume_plain();
            assert_eq!((t.seq(), t.is_acked(), t.node().is_none()), (seq, false, true));
        }
        fn send_sync<T: Send + Sync>(t: T) -> T {
            t
        }
        let (a, seen) = ack(5);
        let t = send_sync(Token::acked(9, a));
        let seq = std::thread::spawn(move || {
            let seq = t.seq();
            t.finish(Status::Dropped);
            seq
        })
        .join()
        .unwrap();
        assert_eq!(seq, 9);
        assert_eq!(*seen.lock().unwrap(), [(5, Status::Dropped)]);
    }

    #[test]
    fn acked_tokens_keep_their_number_and_finish_exactly_once() {
        let (a, seen) = ack(7);
        let t = Token::acked(42, a);
        assert!(t.is_acked());
        assert_eq!(t.seq(), 42);
        let child = t.split();
        assert_eq!(child.seq(), 42);
        t.finish(Status::Delivered);
        assert!(seen.lock().unwrap().is_empty(), "a child is still out");
        drop(child);
        assert_eq!(*seen.lock().unwrap(), [(7, Status::Aborted)]);
    }

    #[test]
    fn joins_number_their_group_and_pass_a_lone_member_on() {
        let (a, seen_a) = ack(1);
        let (b, seen_b) = ack(2);
        let group = Token::join(
            vec![Token::acked(10, a), Token::plain(11), Token::acked(12, b)],
            10,
        );
        assert_eq!((group.seq(), group.is_acked()), (10, true));
        group.finish(Status::Delivered);
        assert_eq!(*seen_a.lock().unwrap(), [(1, Status::Delivered)]);
        assert_eq!(*seen_b.lock().unwrap(), [(2, Status::Delivered)]);

        let (c, seen_c) = ack(3);
        let lone = Token::join(vec![Token::plain(5), Token::acked(6, c)], 6);
        assert_eq!(lone.seq(), 6);
        // A lone member numbered otherwise takes the join's number, unless
        // a sibling shares its node: then it is grouped.
        let (d, _) = ack(4);
        let renumbered = Token::join(vec![Token::acked(9, d)], 8);
        assert_eq!((renumbered.seq(), renumbered.node().map(|n| n.id)), (8, Some(4)));
        let (e, _) = ack(5);
        let parent = Token::acked(20, e);
        let sibling = parent.split();
        let grouped = Token::join(vec![parent], 21);
        assert_eq!((grouped.seq(), sibling.seq()), (21, 20));
        assert_eq!(grouped.node().map(|n| n.id), Some(21));
        lone.finish(Status::Failed);
        assert_eq!(*seen_c.lock().unwrap(), [(3, Status::Failed)]);
        assert!(!Token::join(vec![Token::plain(1)], 1).is_acked());
    }

    #[test]
    fn an_acked_token_finished_or_dropped_releases_its_node() {
        let (a, _) = ack(1);
        let t = Token::acked(0, a);
        // The `Arc::into_raw` pointer itself: one made from `&Node` would
        // not reach the counts in front of the node (Miri says so).
        let node = t.raw;
        let extra = t.split();
        // SAFETY (test): the node is alive while `t` holds it.
        let count = || unsafe {
            Arc::increment_strong_count(node);
            let arc = Arc::from_raw(node);
            Arc::strong_count(&arc) - 1
        };
        assert_eq!(count(), 2);
        drop(extra);
        assert_eq!(count(), 1);
        t.finish(Status::Delivered);
    }
}
