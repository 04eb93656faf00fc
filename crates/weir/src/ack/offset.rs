use std::collections::VecDeque;

/// Tracks which positions of an ordered source are finished, and reports the
/// position below which everything is: the place a file source commits and
/// resumes from.
///
/// Items are registered in source order as half-open ranges
/// `[begin, end)` (byte offsets of a line, a message sequence and the next
/// one, …) and finished in any order. [`committed`](Self::committed) is the
/// `begin` of the oldest unfinished item, or the `end` of the last item when
/// all are finished. Memory is bounded by the number of unfinished items (at
/// most what is in flight in the pipeline), not by the stream length.
///
/// # Examples
///
/// ```
/// use weir::OffsetTracker;
///
/// let mut t = OffsetTracker::new(0);
/// t.track(0, 10);
/// t.track(10, 25);
/// t.track(25, 30);
/// t.finish(10);                 // the second line is done, the first is not
/// assert_eq!(t.committed(), 0);
/// t.finish(0);
/// assert_eq!(t.committed(), 25); // both done: resume at the third
/// t.finish(25);
/// assert_eq!(t.committed(), 30);
/// assert_eq!(t.pending(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct OffsetTracker {
    /// Unretired items in order: (begin, end, finished).
    window: VecDeque<(u64, u64, bool)>,
    committed: u64,
}

impl OffsetTracker {
    /// A tracker whose committed position starts at `start` (where the
    /// source resumed).
    ///
    /// # Examples
    ///
    /// ```
    /// let t = weir::OffsetTracker::new(1024); // the source resumed at byte 1024
    /// assert_eq!(t.committed(), 1024);
    /// assert_eq!(t.pending(), 0);
    /// ```
    pub fn new(start: u64) -> OffsetTracker {
        OffsetTracker {
            window: VecDeque::new(),
            committed: start,
        }
    }

    /// Registers the next item, covering `[begin, end)`.
    ///
    /// # Panics
    ///
    /// If `begin` is before the end of the previously tracked item or `end <
    /// begin`: positions must be registered in source order. That is a
    /// source's programming error, not bad data.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut t = weir::OffsetTracker::new(0);
    /// t.track(0, 4);
    /// t.track(8, 12); // bytes 4..8 were skipped by the source on purpose
    /// assert_eq!(t.pending(), 2);
    /// t.finish(0);
    /// assert_eq!(t.committed(), 8);
    /// ```
    #[track_caller]
    pub fn track(&mut self, begin: u64, end: u64) {
        let last_end = self.window.back().map_or(self.committed, |w| w.1);
        assert!(
            begin >= last_end && end >= begin,
            "OffsetTracker::track: [{begin}, {end}) is not after {last_end}"
        );
        self.window.push_back((begin, end, false));
    }

    /// Marks the item that starts at `begin` as finished. Returns `false` if
    /// no unfinished item starts there (already finished, or never tracked).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut t = weir::OffsetTracker::new(0);
    /// t.track(0, 10);
    /// assert!(t.finish(0));
    /// assert!(!t.finish(0)); // already finished
    /// assert!(!t.finish(5)); // no item starts there
    /// assert_eq!(t.committed(), 10);
    /// ```
    pub fn finish(&mut self, begin: u64) -> bool {
        let Ok(i) = self.window.binary_search_by_key(&begin, |w| w.0) else {
            return false;
        };
        if std::mem::replace(&mut self.window[i].2, true) {
            return false;
        }
        while let Some(&(_, end, true)) = self.window.front() {
            self.committed = end;
            self.window.pop_front();
        }
        true
    }

    /// The position below which every tracked item is finished.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut t = weir::OffsetTracker::new(100);
    /// t.track(100, 150);
    /// t.track(150, 190);
    /// t.finish(150);
    /// assert_eq!(t.committed(), 100); // the line at 100 is still in flight
    /// t.finish(100);
    /// assert_eq!(t.committed(), 190); // resume there after a restart
    /// ```
    pub fn committed(&self) -> u64 {
        self.window.front().map_or(self.committed, |w| w.0)
    }

    /// Tracked items not yet retired (unfinished, or finished behind an
    /// unfinished one).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut t = weir::OffsetTracker::new(0);
    /// t.track(0, 1);
    /// t.track(1, 2);
    /// t.track(2, 3);
    /// t.finish(1);
    /// assert_eq!(t.pending(), 3); // 1 is finished, behind the unfinished 0
    /// t.finish(0);
    /// assert_eq!(t.pending(), 1); // 0 and 1 retired; 2 is left
    /// ```
    pub fn pending(&self) -> usize {
        self.window.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_finish_and_unknown_positions_are_refused() {
        let mut t = OffsetTracker::new(5);
        assert_eq!(t.committed(), 5);
        t.track(5, 6);
        assert!(t.finish(5));
        assert!(!t.finish(5));
        assert!(!t.finish(100));
        assert_eq!(t.committed(), 6);
    }

    #[test]
    #[should_panic(expected = "not after")]
    fn out_of_order_tracking_is_a_programming_error() {
        let mut t = OffsetTracker::new(0);
        t.track(10, 20);
        t.track(0, 5);
    }

    #[test]
    fn gaps_between_ranges_commit_to_the_next_begin() {
        let mut t = OffsetTracker::new(0);
        t.track(0, 4);
        t.track(8, 9); // bytes 4..8 were skipped by the source on purpose
        t.finish(0);
        assert_eq!(t.committed(), 8);
    }
}
