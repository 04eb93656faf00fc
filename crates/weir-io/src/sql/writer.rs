//! The half of a table sink that runs in the pipeline's task: it buffers
//! rows, hands them to the sink's database thread in batches (or one at a
//! time, isolated), and counts the rows committed. The SQLite and the
//! PostgreSQL sinks share it; each has its own database thread, which
//! answers the same [`Job`]s.

use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

use super::Row;
use crate::error::{IoError, IoErrorKind};
use crate::sink::Written;

/// How the database thread answers a job.
pub(crate) type Reply = oneshot::Sender<Result<(), IoError>>;

/// What the sink's task asks of its database thread.
pub(crate) enum Job {
    /// Rows to insert in the open transaction (batched).
    Rows(Vec<Row>),
    /// One row to execute now (isolated): the reply says whether it went in.
    Row(Row, Reply),
    /// Commit the transaction (after inserting what is not yet inserted).
    Commit(Reply),
    /// Drop the rows of a failed flush: the engine failed their items.
    Abandon,
    /// Close the connection.
    Close(Reply),
}

/// The sink's side of the channel to its database thread.
#[derive(Debug)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    /// What is written, for messages: "table `t` of `out.db`".
    target: String,
    /// The database file, for errors (none for a server).
    path: Option<PathBuf>,
    per_batch: usize,
    isolate: bool,
    /// Rows not yet handed to the database thread (batched).
    buffered: Vec<Row>,
    /// Items written since the last successful flush.
    pending: u64,
    /// The last flush failed: its rows wait on the database thread for a
    /// retried flush, or to be dropped by the next write.
    failed: bool,
    written: Written,
    closed: bool,
}

impl Writer {
    /// A writer sending to `jobs`: batches of `per_batch` rows, or each row
    /// alone when `isolate`.
    pub(crate) fn new(
        jobs: mpsc::Sender<Job>,
        target: String,
        path: Option<PathBuf>,
        per_batch: usize,
        isolate: bool,
    ) -> Writer {
        Writer {
            jobs,
            target,
            path,
            per_batch,
            isolate,
            buffered: Vec::new(),
            pending: 0,
            failed: false,
            written: Written::default(),
            closed: false,
        }
    }

    /// The live count of rows committed.
    pub(crate) fn written(&self) -> &Written {
        &self.written
    }

    /// An error about the target: "cannot write to {target}: {why}".
    pub(crate) fn error(&self, kind: IoErrorKind, why: impl std::fmt::Display) -> IoError {
        IoError::new(
            kind,
            self.path.as_deref(),
            format!("cannot write to {}: {why}", self.target),
        )
    }

    /// Takes a row that fits the columns: buffers it (batched), or has it
    /// executed now (isolated).
    pub(crate) async fn write(&mut self, row: Row) -> Result<(), IoError> {
        if self.closed {
            return Err(self.error(IoErrorKind::Write, "the sink is closed"));
        }
        if std::mem::take(&mut self.failed) {
            self.send(Job::Abandon).await?;
            self.pending = 0;
        }
        if self.isolate {
            self.ask(|reply| Job::Row(row, reply)).await?;
        } else {
            self.buffered.push(row);
            if self.buffered.len() >= self.per_batch {
                let rows = std::mem::take(&mut self.buffered);
                self.send(Job::Rows(rows)).await?;
            }
        }
        self.pending += 1;
        Ok(())
    }

    /// Commits every row written since the last commit.
    pub(crate) async fn commit(&mut self) -> Result<(), IoError> {
        if self.closed {
            return Err(self.error(IoErrorKind::Write, "the sink is closed"));
        }
        if !self.buffered.is_empty() {
            let rows = std::mem::take(&mut self.buffered);
            self.send(Job::Rows(rows)).await?;
        }
        match self.ask(Job::Commit).await {
            Ok(()) => {
                self.written.add(std::mem::take(&mut self.pending));
                self.failed = false;
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Commits what is pending (unless its flush failed), then closes the
    /// connection. Closing twice does nothing.
    pub(crate) async fn close(&mut self) -> Result<(), IoError> {
        if self.closed {
            return Ok(());
        }
        if self.pending > 0 && !self.failed {
            self.commit().await?;
        }
        self.closed = true;
        self.ask(Job::Close).await
    }

    /// Sends `job` to the database thread.
    async fn send(&self, job: Job) -> Result<(), IoError> {
        self.jobs.send(job).await.map_err(|_| self.stopped())
    }

    /// Sends a job that replies, and waits for the reply.
    async fn ask(&self, job: impl FnOnce(Reply) -> Job) -> Result<(), IoError> {
        let (reply, answer) = oneshot::channel();
        self.send(job(reply)).await?;
        answer.await.map_err(|_| self.stopped())?
    }

    fn stopped(&self) -> IoError {
        self.error(IoErrorKind::Write, "its database thread has stopped")
    }
}
