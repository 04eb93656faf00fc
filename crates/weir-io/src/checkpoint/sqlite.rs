//! The SQLite checkpoint store: one table in a database file, written in
//! WAL mode, each commit one transaction.
//!
//! A store made before key positions existed has no `kind` and `key`
//! columns: they are added when it is opened (its rows are file
//! positions), so it stays readable.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};

use super::{CheckpointStore, Position, StoredPosition, StoredRow};
use crate::error::{IoError, IoErrorKind};

/// The table the positions live in.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS weir_checkpoints (
    source TEXT NOT NULL,
    file TEXT NOT NULL,
    offset INTEGER NOT NULL,
    lines INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    committed_at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL DEFAULT 'file',
    key TEXT,
    PRIMARY KEY (source, file)
)";

/// What a store of the first schema (file positions only) lacks.
const MIGRATE: &str = "ALTER TABLE weir_checkpoints ADD COLUMN kind TEXT NOT NULL DEFAULT 'file';
    ALTER TABLE weir_checkpoints ADD COLUMN key TEXT;";

/// The columns of a position, as [`StoredRow`] has them.
const COLUMNS: &str = "kind, file, offset, lines, fingerprint, key";

/// Checkpoints in a SQLite database file (created if missing; the table
/// `weir_checkpoints` in it): the embedded default, nothing to install.
/// Each [`commit`](CheckpointStore::commit) replaces a source's positions
/// in one transaction, so a crash leaves the old ones or the new ones.
///
/// # Examples
///
/// ```
/// use weir_io::checkpoint::{CheckpointStore, Fingerprint, FilePosition, Position, SqliteCheckpoints};
/// # let dir = tempfile::tempdir().unwrap();
/// let db = dir.path().join("state.db");
/// let store = SqliteCheckpoints::open(&db).unwrap();
/// let fingerprint = Fingerprint { dev: 1, inode: 2, size: 30, head_len: 30, head_hash: 9 };
/// let at = Position::File(FilePosition { file: "in.jsonl".into(), offset: 12, lines: 2, fingerprint });
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
        let has_kind: bool = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('weir_checkpoints') WHERE name = 'kind'",
                [],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )
            .map_err(fail)?;
        if !has_kind {
            conn.execute_batch(&format!("BEGIN IMMEDIATE; {MIGRATE} COMMIT"))
                .map_err(|e| store_error(path, "cannot add key positions to the checkpoint store", &e))?;
        }
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
        let sql =
            format!("SELECT source, committed_at_ms, {COLUMNS} FROM weir_checkpoints ORDER BY source, file");
        let mut stmt = conn.prepare(&sql).map_err(fail)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, stored(row, 2)?))
            })
            .map_err(fail)?;
        let mut out = Vec::new();
        for row in rows {
            let (source, at, stored) = row.map_err(fail)?;
            out.push(StoredPosition {
                source,
                position: self.position(stored)?,
                committed_at_ms: at as u64,
            });
        }
        Ok(out)
    }

    fn position(&self, row: StoredRow) -> Result<Position, IoError> {
        row.position(Some(&self.path), &self.path.display().to_string())
    }
}

/// The [`StoredRow`] in `row`'s columns from `at` on (as [`COLUMNS`]
/// lists them).
fn stored(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<StoredRow> {
    Ok(StoredRow {
        kind: row.get(at)?,
        file: row.get(at + 1)?,
        offset: row.get(at + 2)?,
        lines: row.get(at + 3)?,
        fingerprint: row.get(at + 4)?,
        key: row.get(at + 5)?,
    })
}

fn store_error(path: &Path, what: &str, e: &rusqlite::Error) -> IoError {
    IoError::new(
        IoErrorKind::Store,
        Some(path),
        format!("{what} `{}`: {e}", path.display()),
    )
}

impl CheckpointStore for SqliteCheckpoints {
    fn load(&self, source: &str) -> Result<Vec<Position>, IoError> {
        let conn = self.conn.lock().expect("checkpoint store lock");
        let fail = |e: rusqlite::Error| store_error(&self.path, "cannot read the checkpoints", &e);
        let sql = format!("SELECT {COLUMNS} FROM weir_checkpoints WHERE source = ?1 ORDER BY file");
        let mut stmt = conn.prepare(&sql).map_err(fail)?;
        let rows = stmt.query_map([source], |row| stored(row, 0)).map_err(fail)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(self.position(row.map_err(fail)?)?);
        }
        Ok(out)
    }

    fn commit(&self, source: &str, positions: &[Position]) -> Result<(), IoError> {
        let mut conn = self.conn.lock().expect("checkpoint store lock");
        let fail = |e: rusqlite::Error| store_error(&self.path, "cannot commit the checkpoint to", &e);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let tx = conn.transaction().map_err(fail)?;
        tx.execute("DELETE FROM weir_checkpoints WHERE source = ?1", [source])
            .map_err(fail)?;
        for p in positions {
            let r = StoredRow::of(p);
            tx.execute(
                &format!("INSERT INTO weir_checkpoints (source, committed_at_ms, {COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![source, now, r.kind, r.file, r.offset, r.lines, r.fingerprint, r.key],
            )
            .map_err(fail)?;
        }
        tx.commit().map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{FilePosition, Fingerprint, KeyPosition, KeyValue};

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
        let at = |file: &str, offset| {
            Position::File(FilePosition {
                file: file.into(),
                offset,
                lines: offset / 10,
                fingerprint: fp.clone(),
            })
        };
        store.commit("a", &[at("1", 10), at("2", 20)]).unwrap();
        store.commit("b", &[at("9", 90)]).unwrap();
        store.commit("a", &[at("2", 30)]).unwrap();
        assert_eq!(store.load("a").unwrap(), [at("2", 30)]);
        assert_eq!(store.load("b").unwrap(), [at("9", 90)]);
        assert!(store.load("c").unwrap().is_empty());
        let listed: Vec<(String, String)> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|p| (p.source, p.position.to_string()))
            .collect();
        assert_eq!(
            listed,
            [
                ("a".to_owned(), "byte 30 (line 3)".to_owned()),
                ("b".to_owned(), "byte 90 (line 9)".to_owned())
            ]
        );
    }

    #[test]
    fn key_positions_are_kept_beside_file_positions() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteCheckpoints::open(&dir.path().join("s.db")).unwrap();
        let key = |k: KeyValue| {
            Position::Key(KeyPosition {
                read: "sqlite table t by id".into(),
                key: k,
                rows: 3,
            })
        };
        store.commit("t", &[key(KeyValue::Integer(7))]).unwrap();
        assert_eq!(store.load("t").unwrap(), [key(KeyValue::Integer(7))]);
        // Text that looks like a number stays text.
        store.commit("t", &[key(KeyValue::from("7"))]).unwrap();
        assert_eq!(store.load("t").unwrap(), [key(KeyValue::from("7"))]);
    }

    /// Guards against a store of the first schema (file positions only,
    /// no `kind` column) becoming unreadable.
    #[test]
    fn a_store_of_the_first_schema_is_migrated_and_its_positions_read() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("old.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE weir_checkpoints (source TEXT NOT NULL, file TEXT NOT NULL, offset INTEGER NOT NULL, \
             lines INTEGER NOT NULL, fingerprint TEXT NOT NULL, committed_at_ms INTEGER NOT NULL, PRIMARY KEY (source, file));
             INSERT INTO weir_checkpoints VALUES ('in', 'a.jsonl', 12, 2, \
             '{\"dev\":1,\"inode\":2,\"size\":30,\"head_len\":30,\"head_hash\":9}', 0);",
        )
        .unwrap();
        drop(conn);
        let store = SqliteCheckpoints::open(&db).unwrap();
        let Position::File(p) = &store.load("in").unwrap()[0] else {
            panic!("not a file position");
        };
        assert_eq!((p.file.as_str(), p.offset, p.lines), ("a.jsonl", 12, 2));
        // Opened again: nothing left to migrate.
        drop(store);
        assert_eq!(SqliteCheckpoints::open(&db).unwrap().list().unwrap().len(), 1);
    }
}
