//! The sinks a configuration can name, behind one type (so that branches
//! and `weir test`'s collectors fit the same pipeline).

use std::fmt;
use std::sync::{Arc, Mutex};

use weir::{BoxError, DeadLetter, Sink};
use weir_io::sink::{DeadLetterFileSink, FileSink, StdoutSink};
use weir_io::Record;

/// Any sink of the configuration.
pub(crate) enum AnySink {
    /// A file (renamed into place on close).
    File(Box<FileSink>),
    /// Standard output.
    Stdout(StdoutSink),
    /// Values kept in memory (`weir test`).
    Collect(Arc<Mutex<Vec<serde_json::Value>>>),
}

impl fmt::Debug for AnySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnySink::File(_) => "File",
            AnySink::Stdout(_) => "Stdout",
            AnySink::Collect(_) => "Collect",
        })
    }
}

impl Sink<Record> for AnySink {
    type Error = BoxError;

    async fn write(&mut self, item: Record) -> Result<(), BoxError> {
        match self {
            AnySink::File(s) => Sink::<Record>::write(s.as_mut(), item).await.map_err(Into::into),
            AnySink::Stdout(s) => Sink::<Record>::write(s, item).await.map_err(Into::into),
            AnySink::Collect(v) => {
                v.lock().expect("collector lock").push(item.value);
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> Result<(), BoxError> {
        match self {
            AnySink::File(s) => Sink::<Record>::flush(s.as_mut()).await.map_err(Into::into),
            AnySink::Stdout(s) => Sink::<Record>::flush(s).await.map_err(Into::into),
            AnySink::Collect(_) => Ok(()),
        }
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        match self {
            AnySink::File(s) => Sink::<Record>::close(s.as_mut()).await.map_err(Into::into),
            AnySink::Stdout(s) => Sink::<Record>::close(s).await.map_err(Into::into),
            AnySink::Collect(_) => Ok(()),
        }
    }
}

/// The dead-letter sink.
pub(crate) enum DeadSink {
    /// A JSON-lines file.
    File(Box<DeadLetterFileSink>),
    /// Records kept in memory (`weir test`).
    Collect(Arc<Mutex<Vec<serde_json::Value>>>),
}

impl fmt::Debug for DeadSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeadSink::File(_) => "File",
            DeadSink::Collect(_) => "Collect",
        })
    }
}

impl Sink<DeadLetter<serde_json::Value>> for DeadSink {
    type Error = BoxError;

    async fn write(&mut self, letter: DeadLetter<serde_json::Value>) -> Result<(), BoxError> {
        match self {
            DeadSink::File(s) => s.as_mut().write(letter).await.map_err(Into::into),
            DeadSink::Collect(v) => {
                let json = serde_json::to_value(&letter)?;
                v.lock().expect("collector lock").push(json);
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> Result<(), BoxError> {
        match self {
            DeadSink::File(s) => Sink::<DeadLetter<serde_json::Value>>::flush(s.as_mut())
                .await
                .map_err(Into::into),
            DeadSink::Collect(_) => Ok(()),
        }
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        match self {
            DeadSink::File(s) => Sink::<DeadLetter<serde_json::Value>>::close(s.as_mut())
                .await
                .map_err(Into::into),
            DeadSink::Collect(_) => Ok(()),
        }
    }
}
