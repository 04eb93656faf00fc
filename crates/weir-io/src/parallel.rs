//! Decoding on several threads: lines are read in order on one thread,
//! decoded in chunks on `n` others, and handed back in their original
//! order.
//!
//! Decoding JSON into values is most of the work of a pipeline that
//! reads JSON lines and does little with them; one core decodes about a
//! million short lines a second. [`decode_parallel`] spreads it over the
//! cores while keeping what a sequential reader promises: the same items,
//! in the same order, memory bounded (at most `2 × (threads + 1)` chunks
//! in flight), and a line that does not decode handed back with its error
//! instead of being dropped.
//!
//! Chunks go round-robin: chunk `i` to worker `i % n`, and the results are
//! taken from worker `i % n` in turn, so order needs no reassembly
//! buffer. Dropping the iterator stops the threads at their next send.

use std::fmt;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread;

use crate::format::{DecodeError, Decoder};
use crate::read::Lines;
use crate::record::{Line, Record};

/// Lines per chunk: large enough that a chunk's handoff costs little per
/// line, small enough that the first items arrive at once.
const CHUNK: usize = 256;

/// A line that did not decode, with why.
#[derive(Debug, Clone)]
pub struct Undecoded {
    /// The line as read (for a dead letter).
    pub line: Line,
    /// Why it did not decode (names the file, line and column).
    pub error: DecodeError,
}

/// What [`decode_parallel`] yields for each line.
pub type Decoded = Result<Record, Box<Undecoded>>;

/// The decoded lines, in their original order: made by [`decode_parallel`].
pub type ParallelDecode = ParallelMap<Decoded>;

/// `f` of every line, in the lines' order: made by [`map_parallel`].
pub struct ParallelMap<T> {
    outputs: Vec<Receiver<Vec<T>>>,
    next: usize,
    current: std::vec::IntoIter<T>,
}

impl<T> fmt::Debug for ParallelMap<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParallelDecode")
            .field("threads", &self.outputs.len())
            .finish_non_exhaustive()
    }
}

/// Reads `lines` on a thread of its own and decodes them with `decoder`
/// on `threads` others (at least one), in order.
///
/// The lines' [`ReadProgress`](crate::read::ReadProgress) (and its
/// [`error`](crate::read::ReadProgress::error) when the input failed) is
/// the same as for a sequential read: take it with
/// [`Lines::progress`] before calling this.
///
/// # Examples
///
/// ```
/// use weir_io::file::{FileSource, FileSourceConfig};
/// use weir_io::parallel::decode_parallel;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("in.jsonl");
/// let text: String = (0..1000).map(|i| if i == 500 { "{oops\n".to_owned() } else { format!("{{\"n\":{i}}}\n") }).collect();
/// std::fs::write(&path, text).unwrap();
/// let source = FileSource::open(FileSourceConfig::new(path.to_str().unwrap())).unwrap();
/// let decoder = source.decoder();
/// let out: Vec<_> = decode_parallel(source.lines(), decoder, 2).collect();
/// assert_eq!(out.len(), 1000);
/// assert_eq!(out[999].as_ref().unwrap().value["n"], 999); // in order
/// let bad = out[500].as_ref().unwrap_err();
/// assert_eq!((bad.line.text.as_str(), bad.line.origin.line), ("{oops", 501));
/// ```
pub fn decode_parallel(lines: Lines, decoder: Decoder, threads: usize) -> ParallelDecode {
    map_parallel(lines, threads, move |line| decode(&decoder, line))
}

/// Reads `lines` on a thread of its own and applies `f` to each on
/// `threads` others (at least one), yielding the results in the lines'
/// order: [`decode_parallel`] with work of the caller's choosing (decode,
/// then whatever else can run per line beside the pipeline).
///
/// # Examples
///
/// ```
/// use weir_io::file::{FileSource, FileSourceConfig};
/// use weir_io::parallel::map_parallel;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("in.txt");
/// std::fs::write(&path, "a\nbb\nccc\n").unwrap();
/// let source = FileSource::open(FileSourceConfig::new(path.to_str().unwrap())).unwrap();
/// let lengths: Vec<usize> = map_parallel(source.lines(), 2, |line| line.text.len()).collect();
/// assert_eq!(lengths, [1, 2, 3]);
/// ```
pub fn map_parallel<T, F>(lines: Lines, threads: usize, f: F) -> ParallelMap<T>
where
    T: Send + 'static,
    F: Fn(Line) -> T + Clone + Send + 'static,
{
    let threads = threads.max(1);
    let mut inputs: Vec<SyncSender<Vec<Line>>> = Vec::with_capacity(threads);
    let mut outputs = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (in_tx, in_rx) = sync_channel::<Vec<Line>>(2);
        let (out_tx, out_rx) = sync_channel::<Vec<T>>(2);
        let f = f.clone();
        thread::Builder::new()
            .name("weir-decode".into())
            .spawn(move || {
                for chunk in in_rx {
                    let decoded: Vec<T> = chunk.into_iter().map(&f).collect();
                    if out_tx.send(decoded).is_err() {
                        return;
                    }
                }
            })
            .expect("spawn a decoding thread");
        inputs.push(in_tx);
        outputs.push(out_rx);
    }
    thread::Builder::new()
        .name("weir-read".into())
        .spawn(move || {
            let mut lines = lines;
            for worker in (0..threads).cycle() {
                // Sized up front: `take` gives no lower bound, so `collect`
                // would grow the vector several times per chunk.
                let mut chunk: Vec<Line> = Vec::with_capacity(CHUNK);
                chunk.extend(lines.by_ref().take(CHUNK));
                if chunk.is_empty() || inputs[worker].send(chunk).is_err() {
                    return;
                }
            }
        })
        .expect("spawn the reading thread");
    ParallelMap {
        outputs,
        next: 0,
        current: Vec::new().into_iter(),
    }
}

/// Decodes one line as [`decode_parallel`] does, keeping it when it does
/// not decode (for work of one's own on [`map_parallel`]'s threads).
///
/// # Examples
///
/// ```
/// use weir_io::{Format, Line, Origin};
/// let decoder = Format::JsonLines.decoder();
/// let ok = weir_io::parallel::decode(&decoder, Line::new("[1]", Origin::new("x", 1, 0)));
/// assert_eq!(ok.unwrap().value, serde_json::json!([1]));
/// let bad = weir_io::parallel::decode(&decoder, Line::new("[1", Origin::new("x", 2, 4)));
/// assert_eq!(bad.unwrap_err().line.text, "[1");
/// ```
pub fn decode(decoder: &Decoder, line: Line) -> Decoded {
    match decoder.decode_ref(&line) {
        Some(Ok(record)) => Ok(record),
        Some(Err(error)) => Err(Box::new(Undecoded { line, error })),
        None => {
            let kept = line.clone();
            decoder
                .decode(line)
                .map_err(|error| Box::new(Undecoded { line: kept, error }))
        }
    }
}

impl<T> Iterator for ParallelMap<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        loop {
            if let Some(item) = self.current.next() {
                return Some(item);
            }
            // The reader sends chunk i to worker i % n and stops at the
            // first empty chunk: the first worker with nothing more ends
            // the stream.
            let chunk = self.outputs[self.next].recv().ok()?;
            self.next = (self.next + 1) % self.outputs.len();
            self.current = chunk.into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{FileSource, FileSourceConfig};

    fn source(text: &str) -> (tempfile::TempDir, FileSource) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, text).unwrap();
        let s = FileSource::open(FileSourceConfig::new(path.to_str().unwrap())).unwrap();
        (dir, s)
    }

    #[test]
    fn every_line_comes_back_in_order_whatever_the_thread_count() {
        let text: String = (0..5000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        for threads in [1, 2, 3, 7] {
            let (_dir, s) = source(&text);
            let decoder = s.decoder();
            let ns: Vec<u64> = decode_parallel(s.lines(), decoder, threads)
                .map(|r| r.unwrap().value["n"].as_u64().unwrap())
                .collect();
            assert_eq!(ns, (0..5000).collect::<Vec<u64>>(), "{threads} threads");
        }
    }

    #[test]
    fn undecodable_lines_come_back_with_their_error_and_position() {
        let (_dir, s) = source("{\"a\":1}\n{\"a\":\n[1,2]\n");
        let decoder = s.decoder();
        let out: Vec<Decoded> = decode_parallel(s.lines(), decoder, 2).collect();
        assert_eq!(out.len(), 3);
        let bad = out[1].as_ref().unwrap_err();
        assert_eq!(bad.line.text, "{\"a\":");
        assert!(bad.error.to_string().contains("in.jsonl:2:"), "{}", bad.error);
        assert_eq!(out[2].as_ref().unwrap().value, serde_json::json!([1, 2]));
    }

    #[test]
    fn an_empty_input_ends_at_once_and_dropping_early_stops_the_threads() {
        let (_dir, s) = source("");
        let decoder = s.decoder();
        assert_eq!(decode_parallel(s.lines(), decoder, 2).count(), 0);
        let text: String = (0..100_000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        let (_dir, s) = source(&text);
        let decoder = s.decoder();
        let mut it = decode_parallel(s.lines(), decoder, 2);
        assert!(it.next().is_some());
        drop(it); // the threads see closed channels and end; nothing hangs
    }
}
