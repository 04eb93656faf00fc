//! The sinks a configuration can name, behind one type (so that branches
//! and `weir test`'s collectors fit the same pipeline).

use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Serialize, Serializer};
use weir::{BoxError, DeadLetter, Sink};
use weir_io::sink::{DeadLetterFileSink, FileSink, StdoutSink};
use weir_io::{JsonText, Origin, Record};

/// What reaches the sink of a pipeline that works ahead with nothing
/// between its leading stages and the sink (see `ahead`): a record, or a
/// map's output already written as JSON text. Serializes (in a dead
/// letter, say) as the record would.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    /// A record.
    Record(Record),
    /// A record's value as JSON text, and where it came from.
    Text(JsonText, Origin),
}

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Record(r) => r.serialize(s),
            Out::Text(text, origin) => super::ahead::written(text, origin).serialize(s),
        }
    }
}

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

impl Sink<Out> for AnySink {
    type Error = BoxError;

    async fn write(&mut self, item: Out) -> Result<(), BoxError> {
        let text = match item {
            Out::Record(r) => return Sink::<Record>::write(self, r).await,
            Out::Text(text, _) => text,
        };
        match self {
            AnySink::File(s) => s.as_mut().write(text).await.map_err(Into::into),
            AnySink::Stdout(s) => s.write(text).await.map_err(Into::into),
            AnySink::Collect(v) => {
                v.lock().expect("collector lock").push(text.to_value());
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> Result<(), BoxError> {
        Sink::<Record>::flush(self).await
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        Sink::<Record>::close(self).await
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
