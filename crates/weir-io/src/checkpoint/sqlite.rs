//! The SQLite checkpoint store: one table in a database file, written in
//! WAL mode, each commit one transaction.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};

use super::{position, CheckpointStore, FilePosition, StoredPosition};
use crate::error::{IoError, IoErrorKind};

/// The table the positions live in.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS weir_checkpoints (
    source TEXT NOT NULL,
    file TEXT NOT NULL,
    offset INTEGER NOT NULL,
    lines INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    committed_at_ms INTEGER NOT NULL,
    PRIMARY KEY (source, file)
)";

/// Checkpoints in a SQLite database file (created if missing; the table
/// `weir_checkpoints` in it): the embedded default, nothing to install.
/// Each [`commit`](CheckpointStore::commit) replaces a source's positions
/// in one transaction, so a crash leaves the old ones or the new ones.
///
/// # Examples
///
/// ```
/// use weir_io::checkpoint::{CheckpointStore, Fingerprint, FilePosition, SqliteCheckpoints};
/// # let dir = tempfile::tempdir().unwrap();
/// let db = dir.path().join("state.db");
/// let store = SqliteCheckpoints::open(&db).unwrap();
/// let fingerprint = Fingerprint { dev: 1, inode: 2, size: 30, head_len: 30, head_hash: 9 };
/// let at = FilePosition { file: "in.jsonl".into(), offset: 12, lines: 2, fingerprint };
/// store.commit("logs", &[at.clone()]).unwrap();
///
/// // Another process (here: another handle) reads it back.
/// let again = SqliteCheckpoints::open(&db).unwrap();
/// assert_eq!(again.load("logs").unwrap(), [at]);
/// assert_eq!(again.list().unwrap()[0].source, "logs");
/// ```
#[derive(Debug)]
pub struct SqliteCheckpoints {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteCheckpoints {
    /// Opens (or creates) the store at `path`.
    ///
    /// # Errors
    ///
    /// An [`IoError`] of kind [`Store`](IoErrorKind::Store) naming the
    /// file when it cannot be opened or is not a SQLite database.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let bad = dir.path().join("not.db");
    /// std::fs::write(&bad, "this is not a database, just text long enough to tell").unwrap();
    /// let err = weir_io::checkpoint::SqliteCheckpoints::open(&bad).unwrap_err();
    /// assert!(err.to_string().contains("not.db"), "{err}");
    /// ```
    pub fn open(path: &Path) -> Result<SqliteCheckpoints, IoError> {
        let fail = |e: rusqlite::Error| store_error(path, "cannot open the checkpoint store", &e);
        // The sinks' opening (parent directories, WAL, busy timeout), as a
        // store's error.
        let conn = crate::sqlite::open(path)
            .map_err(|e| IoError::new(IoErrorKind::Store, Some(path), e.to_string()))?;
        // A checkpoint must outlive a power cut, not only the process.
        conn.pragma_update(None, "synchronous", "FULL").map_err(fail)?;
        conn.execute_batch(SCHEMA).map_err(fail)?;
        Ok(SqliteCheckpoints {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    /// Every position in the store, by source and file.
    ///
    /// # Errors
    ///
    /// The store's error.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = weir_io::checkpoint::SqliteCheckpoints::open(&dir.path().join("s.db")).unwrap();
    /// assert!(store.list().unwrap().is_empty());
    /// ```
    pub fn list(&self) -> Result<Vec<StoredPosition>, IoError> {
        let conn = self.conn.lock().expect("checkpoint store lock");
        let fail = |e: rusqlite::Error| store_error(&self.path, "cannot read the checkpoints", &e);
        let mut stmt = conn
            .prepare(
                "SELECT source, file, offset, lines, fingerprint, committed_at_ms FROM weir_checkpoints ORDER BY source, file",
            )
            .map_err(fail)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, i64>(5)?,
                ))
            })
            .map_err(fail)?;
        let mut out = Vec::new();
        for row in rows {
            let (source, file, offset, lines, fingerprint, at) = row.map_err(fail)?;
            out.push(StoredPosition {
                source,
                position: self.position(file, offset, lines, &fingerprint)?,
                committed_at_ms: at as u64,
            });
        }
        Ok(out)
    }

    fn position(
        &self,
        file: String,
        offset: i64,
        lines: i64,
        fingerprint: &str,
    ) -> Result<FilePosition, IoError> {
        let store = self.path.display().to_string();
        position(Some(&self.path), &store, file, offset, lines, fingerprint)
    }
}

fn store_error(path: &Path, what: &str, e: &rusqlite::Error) -> IoError {
    IoError::new(
        IoErrorKind::Store,
        Some(path),
        format!("{what} `{}`: {e}", path.display()),
    )
}

impl CheckpointStore for SqliteCheckpoints {
    fn load(&self, source: &str) -> Result<Vec<FilePosition>, IoError> {
        let conn = self.conn.lock().expect("checkpoint store lock");
        let fail = |e: rusqlite::Error| store_error(&self.path, "cannot read the checkpoints", &e);
        let mut stmt = conn
            .prepare("SELECT file, offset, lines, fingerprint FROM weir_checkpoints WHERE source = ?1 ORDER BY file")
            .map_err(fail)?;
        let rows = stmt
            .query_map([source], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(fail)?;
        let mut out = Vec::new();
        for row in rows {
            let (file, offset, lines, fingerprint) = row.map_err(fail)?;
            out.push(self.position(file, offset, lines, &fingerprint)?);
        }
        Ok(out)
    }

    fn commit(&self, source: &str, positions: &[FilePosition]) -> Result<(), IoError> {
        let mut conn = self.conn.lock().expect("checkpoint store lock");
        let fail = |e: rusqlite::Error| store_error(&self.path, "cannot commit the checkpoint to", &e);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let tx = conn.transaction().map_err(fail)?;
        tx.execute("DELETE FROM weir_checkpoints WHERE source = ?1", [source])
            .map_err(fail)?;
        for p in positions {
            let fingerprint = serde_json::to_string(&p.fingerprint).expect("a fingerprint always encodes");
            tx.execute(
                "INSERT INTO weir_checkpoints (source, file, offset, lines, fingerprint, committed_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![source, p.file, p.offset as i64, p.lines as i64, fingerprint, now],
            )
            .map_err(fail)?;
        }
        tx.commit().map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Fingerprint;

    #[test]
    fn a_commit_replaces_the_sources_positions_and_leaves_other_sources_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteCheckpoints::open(&dir.path().join("s.db")).unwrap();
        let fp = Fingerprint {
            dev: 0,
            inode: 0,
            size: 1,
            head_len: 1,
            head_hash: 1,
        };
        let at = |file: &str, offset| FilePosition {
            file: file.into(),
            offset,
            lines: offset / 10,
            fingerprint: fp.clone(),
        };
        store.commit("a", &[at("1", 10), at("2", 20)]).unwrap();
        store.commit("b", &[at("9", 90)]).unwrap();
        store.commit("a", &[at("2", 30)]).unwrap();
        assert_eq!(store.load("a").unwrap(), [at("2", 30)]);
        assert_eq!(store.load("b").unwrap(), [at("9", 90)]);
        assert!(store.load("c").unwrap().is_empty());
        let listed: Vec<(String, u64)> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|p| (p.source, p.position.offset))
            .collect();
        assert_eq!(listed, [("a".to_owned(), 30), ("b".to_owned(), 90)]);
    }
}
