//! Keys for source items, and `weir run --resume-from-events LOG.jsonl`:
//! seed 001's resume, by skipping the items a past run's event log says
//! were delivered.
//!
//! When items are keyed (the run's `event_level` is `items`, or it
//! resumes), the `n`-th item of the `i`-th source gets the key
//! [`key`]`(i, n)` (its [`weir::Ack::keyed`] id), and a sink's
//! `item_completed` event — sent once the flush that delivers the item
//! succeeded — carries it. A later run of the same config over the same
//! input reads those events back and skips the keys found: what was
//! delivered is not delivered again; what was not (in flight when the run
//! stopped, failed, or filtered out) is processed again.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use serde::Deserialize;

use super::Input;

/// Bits of a key that number the items of one source: 2^40 (a trillion)
/// items a source; the bits above number the sources.
const ITEM_BITS: u32 = 40;

/// The key of the `n`-th item (from 0) of the `source`-th source.
pub(crate) fn key(source: usize, n: u64) -> u64 {
    ((source as u64) << ITEM_BITS) | (n & ((1 << ITEM_BITS) - 1))
}

/// The keys that past runs delivered, read from their event logs.
#[derive(Debug, Default)]
pub(crate) struct Delivered {
    keys: HashSet<u64>,
}

/// The fields of an event line that resuming reads (the rest are
/// ignored).
#[derive(Deserialize)]
struct Seen {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    key: Option<u64>,
}

impl Delivered {
    /// Reads `logs`: the keys of `item_completed` events of the stages
    /// named in `sinks`. A torn last line (the run was killed while
    /// writing it) is ignored; any other line that is not an event is an
    /// error naming its file and line.
    pub(crate) fn read(logs: &[PathBuf], sinks: &[String]) -> Result<Delivered, String> {
        let mut keys = HashSet::new();
        for log in logs {
            read_log(log, sinks, &mut keys)?;
        }
        Ok(Delivered { keys })
    }

    /// How many keys were read.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }

    fn contains(&self, key: u64) -> bool {
        self.keys.contains(&key)
    }
}

fn read_log(log: &Path, sinks: &[String], keys: &mut HashSet<u64>) -> Result<(), String> {
    let file =
        std::fs::File::open(log).map_err(|e| format!("cannot read the event log {}: {e}", log.display()))?;
    let mut lines = BufReader::new(file).lines().enumerate().peekable();
    let mut keyed = false;
    while let Some((n, line)) = lines.next() {
        let line = line.map_err(|e| format!("{}:{}: {e}", log.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let seen: Seen = match serde_json::from_str(&line) {
            Ok(seen) => seen,
            // The last line of a killed run's log may be cut short.
            Err(_) if lines.peek().is_none() => break,
            Err(e) => return Err(format!("{}:{}: not an event: {e}", log.display(), n + 1)),
        };
        if seen.kind != "item_completed" {
            continue;
        }
        if let (Some(stage), Some(key)) = (seen.stage, seen.key) {
            keyed = true;
            if sinks.contains(&stage) {
                keys.insert(key);
            }
        }
    }
    if !keyed {
        return Err(format!(
            "the event log {} has no item events with keys: write it with event_level = \"items\" in [pipeline] (and --events)",
            log.display()
        ));
    }
    Ok(())
}

/// The sources' inputs as one stream of keyed items, those `delivered`
/// before left out; inputs are taken from the sources in turn as they
/// are ready.
pub(crate) fn keyed(
    sources: Vec<BoxStream<'static, Input>>,
    delivered: Option<Arc<Delivered>>,
) -> BoxStream<'static, weir::Acked<Input>> {
    let each = sources.into_iter().enumerate().map(move |(i, inputs)| {
        let delivered = delivered.clone();
        inputs
            .enumerate()
            .filter_map(move |(n, input)| {
                let key = key(i, n as u64);
                let skip = delivered.as_ref().is_some_and(|d| d.contains(key));
                std::future::ready((!skip).then(|| weir::Acked::new(input, weir::Ack::keyed(key))))
            })
            .boxed()
    });
    stream::select_all(each).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_number_items_within_their_source() {
        assert_eq!(key(0, 0), 0);
        assert_eq!(key(0, 41), 41);
        assert_eq!(key(1, 0), 1 << 40);
        assert_ne!(key(1, 5), key(2, 5));
    }

    fn log(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn only_sink_completions_with_keys_count_and_a_torn_last_line_is_ignored() {
        let (_dir, path) = log(concat!(
            "{\"type\":\"pipeline_started\",\"stages\":[]}\n",
            "{\"type\":\"item_completed\",\"stage\":\"parse\",\"item\":1,\"key\":1,\"duration_us\":1}\n",
            "{\"type\":\"item_completed\",\"stage\":\"sink\",\"item\":1,\"key\":1,\"duration_us\":1}\n",
            "{\"type\":\"item_completed\",\"stage\":\"sink\",\"item\":2,\"key\":2,\"duration_us\":1}\n",
            "{\"type\":\"item_failed\",\"stage\":\"sink\",\"item\":3,\"key\":3}\n",
            "{\"type\":\"item_completed\",\"stage\":\"sink\",\"ite",
        ));
        let d = Delivered::read(&[path], &["sink".to_owned()]).unwrap();
        assert_eq!(d.len(), 2);
        assert!(d.contains(1) && d.contains(2) && !d.contains(3));
    }

    #[test]
    fn a_broken_line_before_the_last_and_a_log_without_keys_are_errors() {
        let (_dir, path) = log("{\"type\":\"progress\"}\nnot json\n{\"type\":\"progress\"}\n");
        let e = Delivered::read(&[path], &["sink".to_owned()]).unwrap_err();
        assert!(
            e.ends_with("events.jsonl:2: not an event: expected ident at line 1 column 2"),
            "{e}"
        );
        let (_dir, path) = log("{\"type\":\"item_completed\",\"stage\":\"sink\",\"item\":1}\n");
        let e = Delivered::read(&[path], &["sink".to_owned()]).unwrap_err();
        assert!(e.contains("event_level = \"items\""), "{e}");
        let e = Delivered::read(&[PathBuf::from("/no/such/log")], &[]).unwrap_err();
        assert!(e.starts_with("cannot read the event log /no/such/log"), "{e}");
    }

    #[tokio::test]
    async fn keyed_items_skip_the_delivered_keys_of_each_source() {
        let inputs = |n: u64| stream::iter((0..n).map(|i| Input::Failed(String::new(), i))).boxed();
        let delivered = Delivered {
            keys: [key(0, 1), key(1, 0)].into_iter().collect(),
        };
        let mut keys = Vec::new();
        let mut items = keyed(vec![inputs(3), inputs(2)], Some(Arc::new(delivered)));
        while let Some(item) = items.next().await {
            if let Input::Failed(_, n) = item.item {
                keys.push((item.ack.id(), n));
            }
        }
        keys.sort_unstable();
        assert_eq!(keys, [(key(0, 0), 0), (key(0, 2), 2), (key(1, 1), 1)]);
    }
}
