//! Key positions: where a source that reads a table in key order (the
//! SQLite and PostgreSQL sources) was left — the last key below which
//! every row is finalized.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use weir::{Ack, Acker, OffsetTracker, Status};

use super::{Position, Positions};
use crate::error::{IoError, IoErrorKind};

/// The value of a key column: an integer or text, compared by the
/// database's own `ORDER BY` (SQLite: integers before text, text by the
/// column's collation, `BINARY` by default; PostgreSQL: by the column's
/// type and collation).
///
/// Serializes tagged with its type, so that the integer `5` and the text
/// `"5"` stay apart: `{"integer": 5}`, `{"text": "a"}`.
///
/// # Examples
///
/// ```
/// use weir_io::checkpoint::KeyValue;
///
/// let key = KeyValue::Integer(5);
/// assert_eq!(serde_json::to_string(&key).unwrap(), r#"{"integer":5}"#);
/// assert_eq!(KeyValue::from("a").to_string(), "'a'");
/// assert_eq!(key.to_json(), serde_json::json!(5));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyValue {
    /// A 64-bit signed integer.
    Integer(i64),
    /// Text.
    Text(String),
}

impl KeyValue {
    /// The key as the row's JSON holds it: a number or a string.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::checkpoint::KeyValue;
    /// assert_eq!(KeyValue::from("x").to_json(), serde_json::json!("x"));
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            KeyValue::Integer(i) => (*i).into(),
            KeyValue::Text(s) => s.as_str().into(),
        }
    }
}

/// `5`, `'a'` (text quoted as SQL writes it).
impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Integer(i) => write!(f, "{i}"),
            KeyValue::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
        }
    }
}

impl From<i64> for KeyValue {
    fn from(v: i64) -> KeyValue {
        KeyValue::Integer(v)
    }
}

impl From<&str> for KeyValue {
    fn from(v: &str) -> KeyValue {
        KeyValue::Text(v.to_owned())
    }
}

impl From<String> for KeyValue {
    fn from(v: String) -> KeyValue {
        KeyValue::Text(v)
    }
}

/// Where reading a table in key order resumes: after `key`, every row up
/// to it (`rows` of them, over every run) being finalized. `read` names
/// what was read (`sqlite table events by id`, `postgres query (…) by
/// id`), so that a position is never applied to another table, query or
/// key.
///
/// # Examples
///
/// ```
/// use weir_io::checkpoint::{KeyPosition, KeyValue};
///
/// let p = KeyPosition { read: "sqlite table events by id".into(), key: KeyValue::Integer(42), rows: 40 };
/// let json = serde_json::to_value(&p).unwrap();
/// assert_eq!(json["key"]["integer"], 42);
/// assert_eq!(serde_json::from_value::<KeyPosition>(json).unwrap(), p);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPosition {
    /// What the source reads: its kind, table or query, and key column.
    pub read: String,
    /// The last key below which (inclusive) every row is finalized.
    pub key: KeyValue,
    /// How many rows that is, over every run.
    pub rows: u64,
}

/// The key position of `source` among the positions a store holds for
/// it, for a source that reads `read`: `None` when there is none (a new
/// source). Positions written by a file source, or by a source that read
/// another table, query or key, are refused with an error of kind
/// [`Store`](IoErrorKind::Store) saying what they were written for: they
/// would be misread.
///
/// # Errors
///
/// As above.
///
/// # Examples
///
/// ```
/// use weir_io::checkpoint::{key_position, KeyPosition, KeyValue, Position};
///
/// let stored = [Position::Key(KeyPosition { read: "sqlite table a by id".into(), key: KeyValue::Integer(9), rows: 9 })];
/// assert_eq!(key_position("in", &stored, "sqlite table a by id").unwrap().unwrap().key, KeyValue::Integer(9));
/// assert!(key_position("in", &[], "sqlite table a by id").unwrap().is_none());
/// let err = key_position("in", &stored, "sqlite table b by id").unwrap_err();
/// assert!(err.to_string().contains("was written for sqlite table a by id"), "{err}");
/// ```
pub fn key_position(
    source: &str,
    positions: &[Position],
    read: &str,
) -> Result<Option<KeyPosition>, IoError> {
    let refused = |what: String| {
        IoError::new(
            IoErrorKind::Store,
            None,
            format!(
                "the checkpoint of source `{source}` was written for {what}, and this source reads {read}: \
                 resuming from it would skip the wrong rows; give this source another `name`, or start over \
                 without the checkpoint (`--from-start`)"
            ),
        )
    };
    match positions {
        [] => Ok(None),
        [Position::Key(p)] if p.read == read => Ok(Some(p.clone())),
        [Position::Key(p)] => Err(refused(p.read.clone())),
        [Position::Key(_), ..] => Err(refused("several key positions".into())),
        [Position::File(f), ..] => Err(refused(format!("a file source (reading `{}`)", f.file))),
    }
}

/// Tracks, for a source reading rows in key order, the key below which
/// every row is finalized: [`ack`](KeyCheckpointer::ack) gives each row
/// read its [`Ack`] (rows must be acked in key order), and
/// [`position`](KeyCheckpointer::position) says where the source stands.
/// A [`Committer`](super::Committer) commits it. Cheap to clone
/// (shared).
///
/// A row that was never finalized (the run aborted, the process was
/// killed) holds the position back: the next run reads it again.
///
/// # Examples
///
/// ```
/// use weir_io::checkpoint::{KeyCheckpointer, KeyValue};
///
/// let c = KeyCheckpointer::new("in", "sqlite table t by id", None);
/// let (a, b) = (c.ack(KeyValue::Integer(1)), c.ack(KeyValue::Integer(3)));
/// assert!(c.position().is_none()); // nothing finalized yet
/// # drop((a, b));
/// ```
#[derive(Clone)]
pub struct KeyCheckpointer {
    inner: Arc<KeyAcker>,
}

impl fmt::Debug for KeyCheckpointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCheckpointer")
            .field("source", &self.inner.source)
            .field("read", &self.inner.read)
            .finish_non_exhaustive()
    }
}

/// The tracking, and the [`Acker`] of the rows' acks (an ack's id is its
/// row's sequence number in this run).
struct KeyAcker {
    source: String,
    read: String,
    state: Mutex<KeyState>,
}

struct KeyState {
    /// Sequence numbers: row `n` covers `[n, n + 1)`.
    seqs: OffsetTracker,
    next: u64,
    /// The key of each tracked row not yet below the committed sequence.
    keys: VecDeque<(u64, KeyValue)>,
    /// The last key below which every row is finalized, and how many
    /// rows that is.
    committed: Option<(KeyValue, u64)>,
}

impl Acker for KeyAcker {
    fn finalize(&self, id: u64, status: Status) {
        if !status.is_final() {
            return;
        }
        let mut state = self.state.lock().expect("checkpoint lock");
        state.seqs.finish(id);
        let below = state.seqs.committed();
        while state.keys.front().is_some_and(|&(seq, _)| seq < below) {
            let (_, key) = state.keys.pop_front().expect("a key");
            let rows = state.committed.as_ref().map_or(0, |(_, n)| *n) + 1;
            state.committed = Some((key, rows));
        }
    }
}

impl KeyCheckpointer {
    /// A checkpointer for source `source` reading `read` (its
    /// [`KeyPosition::read`]), which resumed from `resumed`, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::checkpoint::{KeyCheckpointer, KeyPosition, KeyValue};
    /// let at = KeyPosition { read: "r".into(), key: KeyValue::from("m"), rows: 12 };
    /// let c = KeyCheckpointer::new("in", "r", Some(&at));
    /// assert_eq!(c.position(), Some(at));
    /// ```
    pub fn new(source: &str, read: &str, resumed: Option<&KeyPosition>) -> KeyCheckpointer {
        KeyCheckpointer {
            inner: Arc::new(KeyAcker {
                source: source.to_owned(),
                read: read.to_owned(),
                state: Mutex::new(KeyState {
                    seqs: OffsetTracker::new(0),
                    next: 0,
                    keys: VecDeque::new(),
                    committed: resumed.map(|p| (p.key.clone(), p.rows)),
                }),
            }),
        }
    }

    /// The source's name (its position's key in a store).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(weir_io::checkpoint::KeyCheckpointer::new("in", "r", None).source(), "in");
    /// ```
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The acknowledgement of the row with key `key`, the next in key
    /// order: finalizing it moves the position to its key once every row
    /// before it is finalized too.
    ///
    /// # Examples
    ///
    /// See [`position`](KeyCheckpointer::position).
    pub fn ack(&self, key: KeyValue) -> Ack {
        let mut state = self.inner.state.lock().expect("checkpoint lock");
        let seq = state.next;
        state.next += 1;
        state.seqs.track(seq, seq + 1);
        state.keys.push_back((seq, key));
        drop(state);
        Ack::new(seq, self.inner.clone())
    }

    /// The position now: the last key below which every row is
    /// finalized (`None` when no row is, and the source did not resume).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::checkpoint::{KeyCheckpointer, KeyValue};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let c = KeyCheckpointer::new("in", "r", None);
    /// let rows: Vec<_> = [1, 2, 5].into_iter().map(|k| weir::Acked::new(k, c.ack(KeyValue::Integer(k)))).collect();
    /// weir::Pipeline::from_acked(futures::stream::iter(rows)).run().await.unwrap();
    /// let at = c.position().unwrap();
    /// assert_eq!((at.key, at.rows), (KeyValue::Integer(5), 3));
    /// # });
    /// ```
    pub fn position(&self) -> Option<KeyPosition> {
        let state = self.inner.state.lock().expect("checkpoint lock");
        state.committed.as_ref().map(|(key, rows)| KeyPosition {
            read: self.inner.read.clone(),
            key: key.clone(),
            rows: *rows,
        })
    }
}

impl super::sealed::Sealed for KeyCheckpointer {}

impl Positions for KeyCheckpointer {
    fn name(&self) -> &str {
        self.source()
    }

    fn current(&self) -> Vec<Position> {
        self.position().map(Position::Key).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finish(c: &KeyCheckpointer, ack: Ack, status: Status) {
        c.inner.finalize(ack.id(), status);
        std::mem::forget(ack);
    }

    #[test]
    fn the_position_is_the_last_key_of_the_finalized_prefix() {
        let c = KeyCheckpointer::new("s", "r", None);
        let a = c.ack(KeyValue::Integer(10));
        let b = c.ack(KeyValue::Integer(20));
        let d = c.ack(KeyValue::from("z"));
        finish(&c, b, Status::Delivered);
        assert_eq!(c.position(), None);
        drop(a); // aborted: holds the position back
        assert_eq!(c.position(), None);
        let e = c.ack(KeyValue::from("zz"));
        finish(&c, d, Status::Dropped);
        finish(&c, e, Status::Failed);
        assert_eq!(c.position(), None);
    }

    #[test]
    fn a_resumed_position_counts_on() {
        let at = KeyPosition {
            read: "r".into(),
            key: KeyValue::Integer(5),
            rows: 5,
        };
        let c = KeyCheckpointer::new("s", "r", Some(&at));
        let a = c.ack(KeyValue::Integer(6));
        let b = c.ack(KeyValue::Integer(8));
        finish(&c, b, Status::DeadLettered);
        assert_eq!(c.position().unwrap().key, KeyValue::Integer(5));
        finish(&c, a, Status::Delivered);
        let p = c.position().unwrap();
        assert_eq!((p.key, p.rows), (KeyValue::Integer(8), 7));
        assert_eq!(c.current().len(), 1);
    }

    #[test]
    fn positions_of_files_or_other_reads_are_refused() {
        let key = Position::Key(KeyPosition {
            read: "sqlite table a by id".into(),
            key: KeyValue::Integer(1),
            rows: 1,
        });
        let e = key_position("s", std::slice::from_ref(&key), "postgres table a by id").unwrap_err();
        assert_eq!(e.kind(), IoErrorKind::Store);
        assert!(e.to_string().contains("--from-start"), "{e}");
        let file = Position::File(super::super::FilePosition {
            file: "in.jsonl".into(),
            offset: 1,
            lines: 1,
            fingerprint: super::super::Fingerprint {
                dev: 0,
                inode: 0,
                size: 1,
                head_len: 1,
                head_hash: 1,
            },
        });
        let e = key_position("s", &[file], "sqlite table a by id").unwrap_err();
        assert!(
            e.to_string().contains("a file source (reading `in.jsonl`)"),
            "{e}"
        );
    }
}
