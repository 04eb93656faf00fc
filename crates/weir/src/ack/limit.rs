//! The pipeline-wide bound on items in flight
//! ([`PipelineBuilder::max_in_flight`](crate::PipelineBuilder::max_in_flight)).
//!
//! A source takes a [`Room`] before it takes an item in and turns it into
//! the item's token ([`Room::token`]); the token's node gives the room back
//! when the item is finalized, whatever its status ([`Status::Aborted`]
//! included), and when every `flat_map` child of it or the batch holding
//! it is. Only runs with a bound pay for it: a node per item and two
//! atomic operations. Without one, sources make plain tokens as before.
//!
//! [`Status::Aborted`]: super::Status::Aborted

use std::fmt;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::{Ack, Token};

/// The room left for items in flight: one permit per item.
pub(crate) struct InFlight {
    permits: Semaphore,
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("room", &self.permits.available_permits())
            .finish()
    }
}

impl InFlight {
    /// Room for `limit` items.
    pub(crate) fn new(limit: usize) -> Arc<InFlight> {
        Arc::new(InFlight {
            permits: Semaphore::new(limit.min(Semaphore::MAX_PERMITS)),
        })
    }

    /// Room for one more item, if there is some now.
    pub(crate) fn try_room(self: &Arc<Self>) -> Option<Room> {
        let permit = self.permits.try_acquire().ok()?;
        permit.forget();
        Some(Room(Some(self.clone())))
    }

    /// Room for one more item, once an item in flight is finalized.
    pub(crate) async fn room(self: &Arc<Self>) -> Room {
        // Never closed: `acquire` cannot fail.
        if let Ok(permit) = self.permits.acquire().await {
            permit.forget();
        }
        Room(Some(self.clone()))
    }

    pub(super) fn give_back(&self, n: usize) {
        self.permits.add_permits(n);
    }
}

/// Room for one item in flight, taken by a source before it takes the item
/// in. Dropped unused, it is given back.
#[derive(Debug)]
pub(crate) struct Room(Option<Arc<InFlight>>);

impl Room {
    /// The token of item `seq` (with its source's `ack`, if it has one),
    /// holding this room until the item is finalized.
    pub(crate) fn token(mut self, seq: u64, ack: Option<Ack>) -> Token {
        let room = self.0.take().expect("a room is used once");
        Token::holding(seq, ack, room)
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        if let Some(room) = self.0.take() {
            room.give_back(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Status;
    use std::sync::Mutex;

    #[test]
    fn room_comes_back_when_the_item_is_finalized_and_not_before() {
        let limit = InFlight::new(2);
        let a = limit.try_room().unwrap().token(0, None);
        let b = limit.try_room().unwrap().token(1, None);
        assert!(limit.try_room().is_none(), "two in flight: full");
        let child = a.split();
        a.finish(Status::Delivered);
        assert!(limit.try_room().is_none(), "a flat_map child still holds it");
        child.finish(Status::Dropped);
        let c = limit.try_room().expect("room once every child is done");
        drop(c); // unused: given back
        drop(b); // aborted: given back too
        assert_eq!(limit.permits.available_permits(), 2);
    }

    #[test]
    fn a_held_acked_item_tells_its_source_and_gives_its_room_back() {
        let limit = InFlight::new(1);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let ack = Ack::new(42, Arc::new(move |id, st| s.lock().unwrap().push((id, st))));
        let t = limit.try_room().unwrap().token(7, Some(ack));
        assert_eq!(t.seq(), 7);
        let batch = Token::join(vec![t, Token::plain(8)], 7);
        assert!(limit.try_room().is_none());
        batch.finish(Status::Delivered);
        assert_eq!(*seen.lock().unwrap(), [(42, Status::Delivered)]);
        assert!(limit.try_room().is_some());
    }
}
