//! The PostgreSQL checkpoint store: one table on a server, so that several
//! machines can share it, each commit one transaction.
//!
//! [`CheckpointStore`]'s methods are synchronous: the [`Committer`] calls
//! them from a plain thread, and the CLI at startup from inside its tokio
//! runtime, where `block_on` (which the blocking `postgres` crate uses
//! under the hood) would panic. So the store owns a thread with a
//! current-thread runtime and the connection; a call sends it a request
//! and waits for the answer on a standard channel, which is allowed from
//! any thread (it blocks a tokio worker for one round trip, as the SQLite
//! store blocks it on its file).
//!
//! [`Committer`]: super::Committer

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::{CheckpointStore, Position, StoredPosition, StoredRow};
use crate::error::{IoError, IoErrorKind};
use crate::postgres::{error, spawn_thread, Target};

/// The table the positions live in (`offset` is a keyword: quoted).
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS weir_checkpoints (
    source TEXT NOT NULL,
    file TEXT NOT NULL,
    \"offset\" BIGINT NOT NULL,
    lines BIGINT NOT NULL,
    fingerprint JSONB NOT NULL,
    committed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (source, file)
);
ALTER TABLE weir_checkpoints ADD COLUMN IF NOT EXISTS kind TEXT NOT NULL DEFAULT 'file';
ALTER TABLE weir_checkpoints ADD COLUMN IF NOT EXISTS key JSONB";

const SELECT: &str =
    "SELECT source, committed_at_ms, kind, file, \"offset\", lines, fingerprint::text, key::text \
     FROM weir_checkpoints";

type Reply<T> = std::sync::mpsc::Sender<Result<T, IoError>>;

/// What a call asks of the store's thread.
enum Request {
    Load(String, Reply<Vec<Position>>),
    Commit(String, Vec<Position>, Reply<()>),
    List(Reply<Vec<StoredPosition>>),
}

/// Checkpoints in a PostgreSQL table, `weir_checkpoints` (created if
/// missing) in the first schema of the connection's `search_path` (set
/// another with `options=-c search_path=…` in the URL): for several
/// machines sharing one store. Each [`commit`](CheckpointStore::commit)
/// replaces a source's positions in one transaction, so a crash leaves the
/// old ones or the new ones; machines sharing a store must name their
/// sources apart (a source's positions are replaced by whoever commits
/// them).
///
/// The same table shape as [`SqliteCheckpoints`](super::SqliteCheckpoints)'s
/// (source, file, offset, lines, fingerprint as JSON, committed_at_ms,
/// kind, key as JSON); a table made before key positions existed gets
/// the last two columns when the store opens.
/// The connection lives on a thread of the store's own (see the module
/// source for why); a broken connection is made anew at the next call.
///
/// # Examples
///
/// ```no_run
/// use weir_io::checkpoint::{CheckpointStore, Fingerprint, FilePosition, Position, PostgresCheckpoints};
///
/// let url = "postgres://postgres@127.0.0.1/test";
/// let store = PostgresCheckpoints::open(url).unwrap();
/// let fingerprint = Fingerprint { dev: 1, inode: 2, size: 30, head_len: 30, head_hash: 9 };
/// let at = Position::File(FilePosition { file: "in.jsonl".into(), offset: 12, lines: 2, fingerprint });
/// store.commit("machine-a/logs", &[at.clone()]).unwrap();
///
/// // Another machine (here: another handle) reads it back.
/// let again = PostgresCheckpoints::open(url).unwrap();
/// assert_eq!(again.load("machine-a/logs").unwrap(), [at]);
/// assert!(again.list().unwrap().iter().any(|p| p.source == "machine-a/logs"));
/// ```
#[derive(Debug)]
pub struct PostgresCheckpoints {
    target: Target,
    requests: mpsc::UnboundedSender<Request>,
}

impl PostgresCheckpoints {
    /// Connects to the server at `url` (`postgres://user@host:port/db`)
    /// and creates the table if it is missing. Blocks until the server
    /// answers (at most the URL's `connect_timeout`, 10 s by default).
    ///
    /// # Errors
    ///
    /// An [`IoError`] of kind [`Store`](IoErrorKind::Store) naming the
    /// database (never the password) when the URL is invalid, the server
    /// cannot be reached or the table cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::checkpoint::PostgresCheckpoints;
    /// let err = PostgresCheckpoints::open("postgres://h:notaport/db").unwrap_err();
    /// assert_eq!(err.kind(), weir_io::IoErrorKind::Store);
    /// assert!(err.to_string().starts_with("invalid PostgreSQL URL"), "{err}");
    /// ```
    pub fn open(url: &str) -> Result<PostgresCheckpoints, IoError> {
        let target = Target::parse(url, IoErrorKind::Store)?;
        let (requests, inbox) = mpsc::unbounded_channel();
        let (ready, opened) = std::sync::mpsc::channel();
        let worker = Worker {
            target: target.clone(),
            client: None,
        };
        spawn_thread("weir-checkpoints", move || worker.run(inbox, ready)).map_err(|e| {
            IoError::new(
                IoErrorKind::Store,
                None,
                format!("cannot start the thread for {}: {e}", target.name),
            )
        })?;
        let store = PostgresCheckpoints { target, requests };
        opened.recv().map_err(|_| store.stopped())??;
        Ok(store)
    }

    /// Every position in the store, by source and file.
    ///
    /// # Errors
    ///
    /// The store's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let store = weir_io::checkpoint::PostgresCheckpoints::open("postgres://postgres@127.0.0.1/test").unwrap();
    /// for p in store.list().unwrap() {
    ///     println!("{} {} {}", p.source, p.position.what(), p.position);
    /// }
    /// ```
    pub fn list(&self) -> Result<Vec<StoredPosition>, IoError> {
        self.ask(Request::List)
    }

    /// Sends a request to the store's thread and waits for its answer.
    fn ask<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, IoError> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.requests.send(request(reply)).map_err(|_| self.stopped())?;
        answer.recv().map_err(|_| self.stopped())?
    }

    fn stopped(&self) -> IoError {
        IoError::new(
            IoErrorKind::Store,
            None,
            format!(
                "the checkpoint store's thread for {} has stopped",
                self.target.name
            ),
        )
    }
}

impl CheckpointStore for PostgresCheckpoints {
    fn load(&self, source: &str) -> Result<Vec<Position>, IoError> {
        self.ask(|reply| Request::Load(source.to_owned(), reply))
    }

    fn commit(&self, source: &str, positions: &[Position]) -> Result<(), IoError> {
        self.ask(|reply| Request::Commit(source.to_owned(), positions.to_vec(), reply))
    }
}

/// The store's thread: the connection, made anew when it breaks.
struct Worker {
    target: Target,
    client: Option<Client>,
}

impl Worker {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Request>, ready: Reply<()>) {
        let opened = self.client().await.map(drop);
        let failed = opened.is_err();
        if ready.send(opened).is_err() || failed {
            return;
        }
        while let Some(request) = inbox.recv().await {
            match request {
                Request::Load(source, reply) => {
                    let _ = reply.send(self.load(&source).await);
                }
                Request::Commit(source, positions, reply) => {
                    let _ = reply.send(self.commit(&source, &positions).await);
                }
                Request::List(reply) => {
                    let _ = reply.send(self.list().await);
                }
            }
        }
    }

    fn fail(&self, what: &str, e: &tokio_postgres::Error) -> IoError {
        error(IoErrorKind::Store, &format!("{what} {}", self.target.name), e)
    }

    /// The connection (made, with the table, if there is none or it
    /// broke).
    async fn client(&mut self) -> Result<&mut Client, IoError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let client = self.target.connect(IoErrorKind::Store).await?;
            // Two machines creating the table at once: one of them fails
            // on the catalog's unique index; the table is there then.
            if let Err(e) = client.batch_execute(SCHEMA).await {
                let raced = e
                    .code()
                    .is_some_and(|c| matches!(c.code(), "23505" | "42P07" | "42701"));
                if !raced {
                    return Err(self.fail("cannot create the checkpoint table in", &e));
                }
            }
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("a connection"))
    }

    async fn read(&mut self, sql: &str, source: Option<&str>) -> Result<Vec<StoredPosition>, IoError> {
        let client = self.client().await?;
        let rows = match source {
            Some(source) => client.query(sql, &[&source]).await,
            None => client.query(sql, &[]).await,
        };
        let rows = rows.map_err(|e| self.fail("cannot read the checkpoints of", &e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let at: i64 = row.get(1);
            let stored = StoredRow {
                kind: row.get(2),
                file: row.get(3),
                offset: row.get(4),
                lines: row.get(5),
                fingerprint: row.get(6),
                key: row.get(7),
            };
            out.push(StoredPosition {
                source: row.get(0),
                position: stored.position(None, &self.target.name)?,
                committed_at_ms: at as u64,
            });
        }
        Ok(out)
    }

    async fn load(&mut self, source: &str) -> Result<Vec<Position>, IoError> {
        let sql = format!("{SELECT} WHERE source = $1 ORDER BY file");
        let stored = self.read(&sql, Some(source)).await?;
        Ok(stored.into_iter().map(|p| p.position).collect())
    }

    async fn list(&mut self) -> Result<Vec<StoredPosition>, IoError> {
        self.read(&format!("{SELECT} ORDER BY source, file"), None).await
    }

    async fn commit(&mut self, source: &str, positions: &[Position]) -> Result<(), IoError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let name = self.target.name.clone();
        let fail = |e: tokio_postgres::Error| {
            error(
                IoErrorKind::Store,
                &format!("cannot commit the checkpoint to {name}"),
                &e,
            )
        };
        let client = self.client().await?;
        let tx = client.transaction().await.map_err(fail)?;
        tx.execute("DELETE FROM weir_checkpoints WHERE source = $1", &[&source])
            .await
            .map_err(fail)?;
        let insert = tx
            .prepare(
                "INSERT INTO weir_checkpoints (source, file, \"offset\", lines, fingerprint, committed_at_ms, kind, key) \
                 VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8::text::jsonb)",
            )
            .await
            .map_err(fail)?;
        for p in positions {
            let r = StoredRow::of(p);
            tx.execute(
                &insert,
                &[
                    &source,
                    &r.file,
                    &r.offset,
                    &r.lines,
                    &r.fingerprint,
                    &now,
                    &r.kind,
                    &r.key,
                ],
            )
            .await
            .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)
    }
}
