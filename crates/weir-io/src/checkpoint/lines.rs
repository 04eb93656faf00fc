//! A file's lines tracked in blocks: one [`Acker`] and one counter per
//! block of consecutive lines, one lock per block instead of two per line.
//!
//! A block's lines share its acker: finalizing a line is one atomic
//! decrement (and, for a status that is not final, an atomic minimum).
//! When the last line of a sealed block is finalized, the block is
//! retired under the file's lock: the position moves past it if all its
//! lines are final, or stops for good at its first line that is not
//! (a line not finalized for good is read again next time). A block is
//! sealed by whoever hands out its acks ([`LineAcks`]) when it is full,
//! when a line of another file comes, and when the handle is dropped.
//!
//! The counter starts at 0 and is decremented once per finalized line,
//! and the seal adds the number of lines: it reaches 0 exactly once, after
//! the seal and the last finalization, whichever comes last; whoever
//! makes it 0 retires the block. The seal registers the block with its
//! file before adding, so a retirement always finds it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use weir::{Ack, Acker, Status};

use super::{Checkpointer, Fingerprint};
use crate::record::Line;

/// Lines in a block of [`LineAcks`] unless set otherwise.
const BLOCK_LINES: usize = 128;

/// One file's tracking.
pub(super) struct FileTrack {
    pub(super) name: String,
    pub(super) state: Mutex<FileState>,
}

pub(super) struct FileState {
    pub(super) fingerprint: Fingerprint,
    /// Sealed blocks not retired yet, in file order.
    blocks: VecDeque<Sealed>,
    /// The end of the last block retired (or the resumed position) and
    /// the number of lines before it.
    done: (u64, u64),
    /// Whether the file is part of the positions (read from, or resumed).
    pub(super) touched: bool,
}

/// A sealed block, as its file keeps it.
struct Sealed {
    /// Each line's start and number, in order (never empty).
    lines: Vec<(u64, u64)>,
    /// Where the next line starts.
    end: u64,
    state: Retired,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Retired {
    /// Lines are still out.
    No,
    /// Every line is final.
    Final,
    /// Every line is finalized; the one starting at this offset (the
    /// first such) is not final: the position never passes it.
    Stuck(u64),
}

impl FileState {
    /// A file's state, resumed at `at` (offset, lines before it) or not.
    pub(super) fn new(fingerprint: Fingerprint, at: Option<(u64, u64)>) -> FileState {
        FileState {
            fingerprint,
            blocks: VecDeque::new(),
            done: at.unwrap_or((0, 0)),
            touched: at.is_some(),
        }
    }

    /// The offset below which every line is final, and the number of
    /// lines before it.
    pub(super) fn position(&self) -> (u64, u64) {
        match self.blocks.front() {
            None => self.done,
            Some(block) => {
                let at = match block.state {
                    Retired::Stuck(begin) => begin,
                    _ => block.lines[0].0,
                };
                let i = block.lines.partition_point(|&(b, _)| b < at);
                (at, block.lines[i].1.saturating_sub(1))
            }
        }
    }

    fn retire(&mut self, begin: u64, state: Retired) {
        if let Ok(i) = self.blocks.binary_search_by_key(&begin, |b| b.lines[0].0) {
            self.blocks[i].state = state;
        }
        while let Some(block) = self.blocks.front() {
            if block.state != Retired::Final {
                break;
            }
            let last = block.lines[block.lines.len() - 1].1;
            self.done = (block.end, last);
            self.blocks.pop_front();
        }
    }
}

impl FileTrack {
    /// Registers the sealed block of `lines` ending at `end`, then adds
    /// their count to `block`'s counter: the last step of a block.
    fn seal(self: &Arc<FileTrack>, block: &Block, lines: Vec<(u64, u64)>, end: u64) {
        let n = lines.len() as i64;
        {
            let mut state = self.state.lock().expect("checkpoint lock");
            // A source's programming error, not bad data (as
            // `OffsetTracker::track`'s): positions would go backwards.
            // Not under the lock: the acks still out finalize after it.
            let last = state.blocks.back().map_or(state.done.0, |b| b.end);
            if lines[0].0 < last {
                drop(state);
                panic!(
                    "checkpoint: a line of {} at byte {} is not after byte {last}",
                    self.name, lines[0].0
                );
            }
            state.touched = true;
            state.blocks.push_back(Sealed {
                lines,
                end,
                state: Retired::No,
            });
        }
        if block.pending.fetch_add(n, Ordering::AcqRel) + n == 0 {
            block.retire();
        }
    }
}

/// The acker of one block's lines (an ack's id is its line's offset).
pub(super) struct Block {
    file: Arc<FileTrack>,
    /// The block's first line's offset: its key in the file.
    begin: u64,
    /// Minus the lines finalized, plus the lines once sealed.
    pending: AtomicI64,
    /// The least offset of a line finalized with a status that is not
    /// final (`u64::MAX`: none).
    stuck: AtomicU64,
}

impl Block {
    fn new(file: Arc<FileTrack>, begin: u64) -> Arc<Block> {
        Arc::new(Block {
            file,
            begin,
            pending: AtomicI64::new(0),
            stuck: AtomicU64::new(u64::MAX),
        })
    }

    fn retire(&self) {
        let state = match self.stuck.load(Ordering::Acquire) {
            u64::MAX => Retired::Final,
            at => Retired::Stuck(at),
        };
        self.file
            .state
            .lock()
            .expect("checkpoint lock")
            .retire(self.begin, state);
    }
}

impl Acker for Block {
    fn finalize(&self, id: u64, status: Status) {
        // A line the run did not finish (aborted, halted) holds the
        // position back: it is read again next time.
        if !status.is_final() {
            self.stuck.fetch_min(id, Ordering::AcqRel);
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.retire();
        }
    }
}

/// The block being filled.
struct Open {
    /// Which of the checkpointer's files.
    file: usize,
    block: Arc<Block>,
    lines: Vec<(u64, u64)>,
    end: u64,
}

impl Open {
    fn seal(self, c: &Checkpointer) {
        c.inner.files[self.file].seal(&self.block, self.lines, self.end);
    }
}

/// One block of `lines` sealed at once: what [`Checkpointer::ack_span`]
/// does for each line.
pub(super) fn single(file: &Arc<FileTrack>, line: u64, begin: u64, end: u64) -> Ack {
    let block = single_block(file, line, begin, end);
    Ack::new(begin, block)
}

/// The block of [`single`], its one line registered.
fn single_block(file: &Arc<FileTrack>, line: u64, begin: u64, end: u64) -> Arc<Block> {
    let block = Block::new(file.clone(), begin);
    file.seal(&block, vec![(begin, line)], end);
    block
}

/// For tests: [`Checkpointer::ack`] of `line` in the checkpointer's first
/// file, with the block whose acker finalizes it.
#[cfg(test)]
pub(super) fn ack_with_block(c: &Checkpointer, line: &Line) -> (Ack, Arc<Block>) {
    let block = single_block(&c.inner.files[0], line.origin.line, line.origin.offset, line.end);
    (Ack::new(line.origin.offset, block.clone()), block)
}

/// Hands out the [`Ack`]s of one source's lines, read in order, a block of
/// consecutive lines sharing one acknowledgement
/// ([`Checkpointer::line_acks`]): the per-line work is a few
/// instructions, and each block takes the file's lock once to be
/// registered and once to be retired.
///
/// A file's position moves past a block once every line of it is
/// finalized for good, so it never runs ahead of what the sinks have
/// durably accepted. A block's lines count only once it is sealed: when
/// it is full, when a line of another file comes, and when the handle is
/// dropped (at the end of the input, or when the run stops reading).
/// Until then, a commit leaves them out.
///
/// | setting | default |
/// |---|---|
/// | [`block_lines`](LineAcks::block_lines) | 128 |
///
/// # Examples
///
/// ```
/// use weir::Status;
/// use weir_io::checkpoint::Checkpointer;
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("a.txt");
/// std::fs::write(&path, "a\nb\nc\n").unwrap();
/// let file = path.to_str().unwrap();
/// let c = Checkpointer::new("a", &[path.clone()], &[]).unwrap();
///
/// let mut acks = c.line_acks().block_lines(2);
/// let all: Vec<_> = (0..3).map(|i| acks.ack_span(file, i + 1, 2 * i, 2 * i + 2)).collect();
/// drop(acks); // seals the last block, of one line
/// assert_eq!(c.positions()[0].offset, 0);
/// // What a pipeline does: finalize each line once (here by dropping
/// // the acks unfinished: aborted, so nothing moves).
/// drop(all);
/// assert_eq!((c.positions()[0].offset, c.positions()[0].lines), (0, 0));
/// ```
pub struct LineAcks {
    checkpointer: Checkpointer,
    block_lines: usize,
    open: Option<Open>,
    /// The block sealed last for being full (for tests).
    #[cfg(test)]
    sealed: Option<Arc<Block>>,
}

impl std::fmt::Debug for LineAcks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineAcks")
            .field("source", &self.checkpointer.source())
            .field("block_lines", &self.block_lines)
            .finish_non_exhaustive()
    }
}

impl LineAcks {
    pub(super) fn new(checkpointer: Checkpointer) -> LineAcks {
        LineAcks {
            checkpointer,
            block_lines: BLOCK_LINES,
            open: None,
            #[cfg(test)]
            sealed: None,
        }
    }

    /// Seals a block after `lines` lines (at least 1). More lines a block
    /// mean less work per line, and as many more lines read again after a
    /// crash at most. By default, 128.
    ///
    /// # Examples
    ///
    /// ```
    /// # let c = weir_io::checkpoint::Checkpointer::new("a", &[], &[]).unwrap();
    /// let acks = c.line_acks().block_lines(1); // one line a block: as `Checkpointer::ack`
    /// # drop(acks);
    /// ```
    #[must_use]
    pub fn block_lines(mut self, lines: usize) -> LineAcks {
        self.block_lines = lines.max(1);
        self
    }

    /// The acknowledgement of `line` (read in order from one of the
    /// files), as [`Checkpointer::ack`].
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{Line, Origin};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("a");
    /// std::fs::write(&path, "x\n").unwrap();
    /// let c = weir_io::checkpoint::Checkpointer::new("a", &[path.clone()], &[]).unwrap();
    /// let mut line = Line::new("x", Origin::new(path.to_str().unwrap(), 1, 0));
    /// line.end = 2;
    /// let mut acks = c.line_acks();
    /// assert_eq!(acks.ack(&line).id(), 0); // its offset
    /// ```
    pub fn ack(&mut self, line: &Line) -> Ack {
        self.ack_span(&line.origin.file, line.origin.line, line.origin.offset, line.end)
    }

    /// [`ack`](LineAcks::ack) for a line known by its parts: its file, its
    /// number, where it starts and where the next one starts. A line of a
    /// file the checkpointer does not know gets an ack that tracks
    /// nothing.
    ///
    /// # Panics
    ///
    /// When a block is sealed whose first line starts before the end of
    /// the file's block sealed before it: lines must come in file order
    /// (a source's programming error, as for [`weir::OffsetTracker::track`]).
    ///
    /// # Examples
    ///
    /// See [`LineAcks`].
    pub fn ack_span(&mut self, file: &str, line: u64, begin: u64, end: u64) -> Ack {
        let same = match &self.open {
            Some(open) => self.checkpointer.inner.files[open.file].name == file,
            None => false,
        };
        if !same {
            let Some(at) = self.checkpointer.file(file) else {
                return Ack::new(begin, Arc::new(|_, _| {}));
            };
            if let Some(open) = self.open.take() {
                open.seal(&self.checkpointer);
            }
            self.open = Some(Open {
                file: at,
                block: Block::new(self.checkpointer.inner.files[at].clone(), begin),
                lines: Vec::with_capacity(self.block_lines),
                end,
            });
        }
        let open = self.open.as_mut().expect("a block is open");
        open.lines.push((begin, line));
        open.end = end;
        let ack = Ack::new(begin, open.block.clone());
        if open.lines.len() >= self.block_lines {
            if let Some(open) = self.open.take() {
                #[cfg(test)]
                {
                    self.sealed = Some(open.block.clone());
                }
                open.seal(&self.checkpointer);
            }
        }
        ack
    }
}

impl Drop for LineAcks {
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            open.seal(&self.checkpointer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpointer of one file, its name, and where its position is.
    fn one_file(dir: &tempfile::TempDir) -> (Checkpointer, String) {
        let path = dir.path().join("a");
        std::fs::write(&path, "0123456789").unwrap();
        let c = Checkpointer::new("s", std::slice::from_ref(&path), &[]).unwrap();
        (c, path.to_str().unwrap().to_owned())
    }

    fn at(c: &Checkpointer) -> Option<(u64, u64)> {
        c.positions().first().map(|p| (p.offset, p.lines))
    }

    /// The acks of lines 1..=n, one byte each but line 3, which is blank
    /// and skipped (lines start at 0, 1, 3, 4, …).
    fn lines(acks: &mut LineAcks, file: &str, n: u64) -> Vec<(u64, Ack, Arc<Block>)> {
        (1..=n + 1)
            .filter(|&i| i != 3)
            .take(n as usize)
            .map(|i| {
                let begin = i - 1;
                let ack = acks.ack_span(file, i, begin, begin + 1);
                let block = match &acks.open {
                    Some(open) if open.lines.last() == Some(&(begin, i)) => open.block.clone(),
                    _ => acks.sealed.clone().expect("the block just sealed"),
                };
                (begin, ack, block)
            })
            .collect()
    }

    /// Finalizes a line as the runtime would (once; never the drop's
    /// `Aborted` afterwards).
    fn finish((begin, ack, block): (u64, Ack, Arc<Block>), status: Status) {
        block.finalize(begin, status);
        std::mem::forget(ack);
    }

    #[test]
    fn a_block_counts_once_sealed_and_all_its_lines_final() {
        let dir = tempfile::tempdir().unwrap();
        let (c, file) = one_file(&dir);
        let mut acks = c.line_acks().block_lines(3);
        let mut got = lines(&mut acks, &file, 4).into_iter();
        assert_eq!(at(&c), Some((0, 0)), "the first block is sealed");
        let (a, b, d, e) = (
            got.next().unwrap(),
            got.next().unwrap(),
            got.next().unwrap(),
            got.next().unwrap(),
        );
        finish(e, Status::Delivered); // the second block: not sealed yet
        finish(b, Status::Delivered);
        finish(a, Status::Dropped);
        assert_eq!(at(&c), Some((0, 0)), "line 4 of the first block is out");
        finish(d, Status::Failed);
        assert_eq!(at(&c), Some((4, 4)), "the first block is final: lines 1, 2 and 4");
        drop(acks); // seals the second block, its line already delivered
        assert_eq!(at(&c), Some((5, 5)));
    }

    #[test]
    fn a_line_not_final_holds_the_position_at_itself_not_at_its_block() {
        for stuck in [Status::Aborted, Status::Halted] {
            let dir = tempfile::tempdir().unwrap();
            let (c, file) = one_file(&dir);
            let mut acks = c.line_acks().block_lines(4);
            let mut got = lines(&mut acks, &file, 8).into_iter();
            for _ in 0..2 {
                finish(got.next().unwrap(), Status::Delivered);
            }
            finish(got.next().unwrap(), stuck); // line 4, at offset 3
            for rest in got {
                finish(rest, Status::Delivered);
            }
            drop(acks);
            assert_eq!(at(&c), Some((3, 3)), "{stuck}: read again from line 4");
        }
    }

    #[test]
    fn a_line_of_another_file_seals_the_block_and_unknown_files_track_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "x\n").unwrap();
        std::fs::write(&b, "y\n").unwrap();
        let c = Checkpointer::new("s", &[a.clone(), b.clone()], &[]).unwrap();
        let mut acks = c.line_acks();
        let first = acks.ack_span(a.to_str().unwrap(), 1, 0, 2);
        let first_block = acks.open.as_ref().unwrap().block.clone();
        let unknown = acks.ack_span("elsewhere", 1, 0, 2);
        assert!(
            acks.open.as_ref().is_some_and(|o| o.file == 0),
            "an unknown file leaves the block open"
        );
        let second = acks.ack_span(b.to_str().unwrap(), 1, 0, 2);
        let second_block = acks.open.as_ref().unwrap().block.clone();
        drop(unknown);
        finish((0, first, first_block), Status::Delivered);
        let offsets = |c: &Checkpointer| c.positions().iter().map(|p| p.offset).collect::<Vec<_>>();
        assert_eq!(offsets(&c), [2], "a's block was sealed by b's line; b's is open");
        drop(acks);
        finish((0, second, second_block), Status::Delivered);
        assert_eq!(offsets(&c), [2, 2]);
    }

    #[test]
    #[should_panic(expected = "is not after byte 4")]
    fn lines_out_of_order_are_a_programming_error() {
        let dir = tempfile::tempdir().unwrap();
        let (c, file) = one_file(&dir);
        let mut acks = c.line_acks().block_lines(1);
        let _ahead = acks.ack_span(&file, 2, 2, 4);
        let _behind = acks.ack_span(&file, 1, 0, 2);
    }

    #[test]
    fn lines_finalized_on_other_threads_retire_every_block_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        std::fs::write(&path, "").unwrap();
        let c = Checkpointer::new("s", std::slice::from_ref(&path), &[]).unwrap();
        let file = path.to_str().unwrap().to_owned();
        let (tx, rx) = std::sync::mpsc::channel::<Vec<(u64, Ack, Arc<Block>)>>();
        let rx = Arc::new(Mutex::new(rx));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || loop {
                    let Ok(batch) = rx.lock().unwrap().recv() else {
                        return;
                    };
                    for line in batch.into_iter().rev() {
                        finish(line, Status::Delivered);
                    }
                })
            })
            .collect();
        let mut acks = c.line_acks().block_lines(7);
        let mut begin = 0;
        for chunk in 0..100u64 {
            // Chunks cut across blocks: blocks are finished by several threads.
            let batch = (0..10)
                .map(|i| {
                    let n = chunk * 10 + i + 1;
                    let ack = acks.ack_span(&file, n, begin, begin + 2);
                    let block = match &acks.open {
                        Some(open) if open.lines.last() == Some(&(begin, n)) => open.block.clone(),
                        _ => acks.sealed.clone().unwrap(),
                    };
                    begin += 2;
                    (begin - 2, ack, block)
                })
                .collect();
            tx.send(batch).unwrap();
        }
        drop(acks);
        drop(tx);
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(at(&c), Some((2000, 1000)));
        assert!(c.inner.files[0].state.lock().unwrap().blocks.is_empty());
    }
}
