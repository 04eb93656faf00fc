//! From a checked [`Config`] to a runnable weir pipeline.
//!
//! Two steps: [`spec`] reads the configuration into stages, sinks and
//! inputs (everything that can fail, with positions); [`assemble`] puts
//! them together with the engine's builder, which cannot fail. Items are
//! [`Record`]s (a JSON value and the file:line it came from); sources
//! yield [`Input`]s, which the `parse` stage decodes, so a malformed line
//! is that item's failure under the source's error policy, with the raw
//! line and its position in the dead letter.

pub(crate) mod aggregate;
pub(crate) mod ahead;
pub(crate) mod connect;
mod resume;
pub(crate) mod sinks;
pub(crate) mod sources;
pub(crate) mod spec;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde::{Serialize, Serializer};
use weir::compose::Registry;
use weir::stage::{BoxPlan, NoIntake, Recoverable, Streamed};
use weir::{DeadLetters, ErrorPolicy, EventLevel, Mode, Pipeline, PipelineBuilder};
use weir_io::format::Projection;
use weir_io::{Line, Record};

use crate::config::{Config, ConfigError, Problem, Typed};
use sinks::{AnySink, DeadSink};
use spec::{Branch, Collected, JqKind, Reader, Sink, Stage, Work};

/// A pipeline of erased shape carrying `T`.
pub(crate) type Dyn<T> = Pipeline<T, BoxPlan<T, NoIntake>>;

/// What a source yields, before the `parse` stage.
#[derive(Debug, Clone)]
pub(crate) enum Input {
    /// A raw line (or CSV row) and the decoder of its source.
    Line(Line, Arc<weir_io::format::Decoder>),
    /// An item that needs no decoding.
    Record(Record),
    /// A line decoded on a decoding thread (or why it did not decode).
    Decoded(weir_io::parallel::Decoded),
    /// A line decoded and run through the leading stages on a decoding
    /// thread (see [`ahead`]).
    Ahead(ahead::Ahead),
    /// A source failed after `n` items (a generator's template, a read
    /// error): the whole message.
    Failed(String, u64),
}

impl Serialize for Input {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Input::Line(line, _) => line.serialize(s),
            Input::Record(r) | Input::Decoded(Ok(r)) => r.serialize(s),
            Input::Decoded(Err(u)) => u.line.serialize(s),
            Input::Ahead(a) => ahead::Staged::Ahead(a.clone()).serialize(s),
            Input::Failed(_, n) => s.serialize_u64(*n),
        }
    }
}

impl Input {
    /// [`decode`](Input::decode) for a pipeline that works ahead: outcomes
    /// found ahead go on to their stages.
    fn decode_staged(self) -> Result<ahead::Staged, weir::BoxError> {
        match self {
            Input::Ahead(a) => Ok(ahead::Staged::Ahead(a)),
            other => other.decode().map(ahead::Staged::Plain),
        }
    }

    fn decode(self) -> Result<Record, weir::BoxError> {
        match self {
            Input::Line(line, decoder) => decoder.decode(line).map_err(Into::into),
            Input::Record(r) | Input::Decoded(Ok(r)) => Ok(r),
            Input::Decoded(Err(u)) => Err(u.error.into()),
            Input::Ahead(ahead::Ahead::Kept(r)) => Ok(r),
            Input::Ahead(ahead::Ahead::Written(text, origin)) => Ok(ahead::written(&text, &origin)),
            Input::Ahead(a) => Err(format!(
                "internal: an outcome found ahead reached a pipeline without its stages: {a:?}"
            )
            .into()),
            Input::Failed(e, _) => Err(e.into()),
        }
    }
}

/// How to build.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// Stop the sources after this many items.
    pub(crate) limit: Option<u64>,
    /// Replace sources and sinks (`weir test`).
    pub(crate) test: Option<TestIo>,
    /// Checkpoint the file source in this store and resume from it.
    pub(crate) checkpoint: Option<CheckpointOptions>,
    /// Skip the items these event logs say were delivered
    /// (`--resume-from-events`).
    pub(crate) resume_from: Vec<PathBuf>,
}

/// `--checkpoint` / `[checkpoint]`: where positions are kept and how often
/// they are committed.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointOptions {
    /// The store.
    pub(crate) store: StoreAt,
    /// Commit at most this often (and at the end of the run).
    pub(crate) interval: std::time::Duration,
    /// Ignore the stored positions: read from the start (then commit).
    pub(crate) from_start: bool,
}

/// Where checkpoints are kept.
#[derive(Clone)]
pub(crate) enum StoreAt {
    /// A SQLite file (`path`).
    File(PathBuf),
    /// A PostgreSQL server (`url`), shared by several machines.
    Server(String),
}

impl std::fmt::Debug for StoreAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl StoreAt {
    /// `--checkpoint`'s or `weir checkpoints`'s argument: a PostgreSQL URL
    /// (`postgres://…`) or a SQLite file.
    pub(crate) fn from_arg(arg: PathBuf) -> StoreAt {
        match arg.to_str().filter(|s| crate::config::is_postgres_url(s)) {
            Some(url) => StoreAt::Server(url.to_owned()),
            None => StoreAt::File(arg),
        }
    }

    /// The store for messages: the file, or the server's database and
    /// host (never the URL: it may hold a password).
    pub(crate) fn name(&self) -> String {
        match self {
            StoreAt::File(path) => path.display().to_string(),
            StoreAt::Server(url) => {
                weir_io::postgres::check_url(url).unwrap_or_else(|_| "an invalid PostgreSQL URL".into())
            }
        }
    }

    /// Opens the store (a file is created if missing; a server's table
    /// too).
    pub(crate) fn open(&self) -> Result<Arc<dyn weir_io::checkpoint::CheckpointStore>, weir_io::IoError> {
        Ok(match self {
            StoreAt::File(path) => Arc::new(weir_io::checkpoint::SqliteCheckpoints::open(path)?),
            StoreAt::Server(url) => Arc::new(weir_io::checkpoint::PostgresCheckpoints::open(url)?),
        })
    }

    /// Every position in the store.
    pub(crate) fn list(&self) -> Result<Vec<weir_io::checkpoint::StoredPosition>, weir_io::IoError> {
        match self {
            StoreAt::File(path) => weir_io::checkpoint::SqliteCheckpoints::open(path)?.list(),
            StoreAt::Server(url) => weir_io::checkpoint::PostgresCheckpoints::open(url)?.list(),
        }
    }
}

/// Where a line lies, for its checkpoint's acknowledgement.
struct Span {
    file: Arc<str>,
    line: u64,
    begin: u64,
    end: u64,
}

impl Span {
    fn of(line: &Line) -> Span {
        Span {
            file: line.origin.file.clone(),
            line: line.origin.line,
            begin: line.origin.offset,
            end: line.end,
        }
    }
}

/// Inputs with the acknowledgements that move their file's checkpoint;
/// the read error at the end (if any) tracks nothing.
fn acked(
    spanned: impl Iterator<Item = (Span, Input)> + Send + 'static,
    tail: impl Iterator<Item = Input> + Send + 'static,
    checkpointer: weir_io::checkpoint::Checkpointer,
) -> BoxAcked {
    let untracked = |input| weir::Acked::new(input, weir::Ack::new(0, Arc::new(|_, _| {})));
    // Acks in blocks of consecutive lines: dropped with the lines'
    // iterator at the end of the input (or of the run), which seals the
    // last block.
    let mut acks = checkpointer.line_acks();
    futures::stream::iter(
        spanned
            .map(move |(span, input)| {
                let ack = acks.ack_span(&span.file, span.line, span.begin, span.end);
                weir::Acked::new(input, ack)
            })
            .chain(tail.map(untracked)),
    )
    .boxed()
}

type BoxAcked = futures::stream::BoxStream<'static, weir::Acked<Input>>;

/// The inputs and collectors of one `weir test` case.
#[derive(Debug, Default)]
pub(crate) struct TestIo {
    /// The case's items.
    pub(crate) inputs: Vec<Input>,
    /// The dead letters collected.
    pub(crate) dead_letters: Collected,
}

/// A pipeline ready to start, and what the display and report need.
pub(crate) struct Built {
    /// The pipeline.
    pub(crate) pipeline: Dyn<()>,
    /// Progress of the file inputs (bytes read of a known total).
    pub(crate) inputs: Vec<weir_io::file::ReadProgress>,
    /// Files the sinks write.
    pub(crate) outputs: Vec<PathBuf>,
    /// Where dead letters go and its counter of records written.
    pub(crate) dead_letters: Option<sinks::DeadPlace>,
    /// `weir test`: each sink's items, by its owner (`"sink"` or a branch name).
    pub(crate) collected: HashMap<String, Collected>,
    /// The checkpoint's committer (finish it when the run has ended).
    pub(crate) committer: Option<weir_io::checkpoint::Committer>,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Built")
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

/// Context threaded through assembly.
struct Ctx {
    default: ErrorPolicy,
    dlq: Option<DeadLetters<DeadSink>>,
}

impl Ctx {
    fn recover<T, N>(&self, p: Pipeline<T, N>, policy: Option<ErrorPolicy>) -> Pipeline<T, N>
    where
        N: Recoverable<Out = T>,
        T: Send + 'static,
        N::In: Clone + Serialize,
    {
        match (policy.unwrap_or(self.default), &self.dlq) {
            (ErrorPolicy::DeadLetter, Some(dlq)) => p.dead_letter(dlq.clone()),
            (ErrorPolicy::DeadLetter, None) => p.on_error(ErrorPolicy::FailFast),
            (other, _) => p.on_error(other),
        }
    }
}

/// Builds the pipeline of `config` (sources, stages, sinks), with custom
/// stages from `registry`.
pub(crate) fn build(
    config: &Config,
    registry: &Registry<Record>,
    mut options: Options,
) -> Result<Built, ConfigError> {
    let mut outputs = Vec::new();
    let testing = options.test.is_some();
    let mut made: HashMap<String, Collected> = HashMap::new();
    let mut make_sink = |t: &Typed<'_>, owner: &str| -> Result<AnySink, SinkProblem> {
        let owner = if owner.is_empty() { "sink" } else { owner };
        if testing {
            // `weir check` and `weir test` check a sink's settings, and
            // collect its items instead of writing them.
            match t.type_name {
                "sqlite" => drop(sinks::sqlite_config(t)?),
                "postgres" => drop(sinks::postgres_config(t)?),
                _ => {}
            }
            let c = made.entry(owner.to_owned()).or_default().clone();
            return Ok(AnySink::Collect(c));
        }
        make_real_sink(t, &mut outputs)
    };
    let mut reader = Reader {
        problems: Vec::new(),
        registry,
        names: vec!["parse".to_owned()],
        sinks: Vec::new(),
        make_sink: &mut make_sink,
    };
    let stages = reader.stages(&config.stages());
    let sink = config.sink().and_then(|s| reader.sink(&s, ""));
    let Reader {
        mut problems,
        sinks: sink_names,
        ..
    } = reader;

    let pipe = config.pipeline();
    let default = spec::policy(pipe.str("on_error").as_deref().unwrap_or("fail_fast"));
    let mut dead_letters = None;
    let dlq = if let Some(test) = &options.test {
        Some(DeadLetters::new(DeadSink::Collect(test.dead_letters.clone())))
    } else if let Some(dl) = config.dead_letter() {
        match DeadSink::open(&dl) {
            Ok((sink, place)) => {
                dead_letters = Some(place);
                Some(DeadLetters::new(sink))
            }
            Err((key, message)) => {
                problems.push(Problem {
                    pos: dl.opts.pos_of(key),
                    path: format!("dead_letter.{key}"),
                    message,
                });
                None
            }
        }
    } else {
        None
    };

    // Sources, decoding only the fields the stages read when that is known,
    // and running the leading stages ahead on the decoding threads then.
    let keep = projection(&stages, default);
    let mut stages = stages;
    let leading: Vec<(ahead::Step, String, Option<ErrorPolicy>)> = if keep.is_some() {
        let n = stages
            .iter()
            .position(|s| {
                matches!(
                    s,
                    Stage::Jq {
                        kind: JqKind::Map,
                        ..
                    }
                )
            })
            .map_or(0, |i| i + 1);
        stages
            .drain(..n)
            .filter_map(|s| match s {
                Stage::Jq {
                    kind,
                    jq,
                    name,
                    policy,
                    ..
                } => Some((ahead::Step { kind, jq }, name, policy)),
                _ => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    let steps: Option<Arc<Vec<ahead::Step>>> =
        (!leading.is_empty()).then(|| Arc::new(leading.iter().map(|(s, _, _)| s.clone()).collect()));
    // With nothing but the sink after the leading stages, a map's output
    // may go to the sink as JSON text.
    let text_out = !leading.is_empty() && stages.is_empty();
    let mut inputs = Vec::new();
    let sources = config.sources();
    let parse_policy = sources
        .iter()
        .find_map(|s| s.opts.node("on_error").and_then(|n| n.as_str()))
        .map(spec::policy);
    let name = pipe
        .str("name")
        .or_else(|| config.path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "weir".to_owned());
    // The run's context: the checkpoint's commits are events of the run.
    let context = weir::Context::new(&name);
    // The mode's defaults, then what the table sets: a key wins over the
    // mode.
    let mode = match pipe.str("mode").as_deref() {
        Some("throughput") => Mode::Throughput,
        Some("debug") => Mode::Debug,
        _ => Mode::Balanced,
    };
    let event_level = match pipe.str("event_level").as_deref() {
        Some("lifecycle") => Some(EventLevel::Lifecycle),
        Some("progress") => Some(EventLevel::Progress),
        Some("items") => Some(EventLevel::Items),
        _ => None,
    };
    let mut builder = PipelineBuilder::new()
        .mode(mode)
        .context(context.clone())
        .name(name)
        .error_policy(if default == ErrorPolicy::DeadLetter {
            ErrorPolicy::FailFast
        } else {
            default
        });
    if let Some(n) = pipe.int("capacity") {
        builder = builder.capacity(n.max(1) as usize);
    }
    if let Some(n) = pipe.int("chunk_size") {
        builder = builder.chunk_size(n.max(1) as usize);
    }
    if let Some(every) = pipe.duration("progress_interval") {
        builder = builder.progress_interval(every);
    }
    if let Some(level) = event_level {
        builder = builder.event_level(level);
    }
    let builder = match pipe.int("max_in_flight") {
        Some(n) if n >= 1 => builder.max_in_flight(usize::try_from(n).unwrap_or(usize::MAX)),
        Some(_) => {
            problems.push(Problem {
                pos: pipe.pos_of("max_in_flight"),
                path: "pipeline.max_in_flight".into(),
                message: "expected at least 1 item in flight, found 0".into(),
            });
            builder
        }
        None => builder,
    };

    // Checkpoints: one file source (lines or JSON lines), its positions in
    // a SQLite store.
    // One way to resume at a time: a checkpoint store or event logs.
    let resuming = !options.resume_from.is_empty() && options.test.is_none();
    let checkpoint = if resuming {
        None // left in `options`, for `resume_problem` to refuse
    } else {
        options.checkpoint.take().filter(|_| options.test.is_none())
    };
    let checkpointing = match checkpoint {
        None => None,
        Some(c) => match Checkpointing::open(&c, &sources, config.sink().as_ref()) {
            Ok(c) => Some(c),
            Err(problem) => {
                problems.push(problem);
                None
            }
        },
    };
    // Keys for the source items: their events then name them, and a run
    // can resume from a past run's event log.
    // The run's level: the table's, else the mode's (`weir::Mode`'s table:
    // only `debug` has item events).
    let event_items = event_level.unwrap_or(match mode {
        Mode::Debug => EventLevel::Items,
        _ => EventLevel::Progress,
    }) == EventLevel::Items;
    let delivered = if resuming {
        resume_problem(&options, config.sink().as_ref())
            .map_or_else(|| resume::Delivered::read(&options.resume_from, &sink_names), Err)
            .map_err(|message| {
                problems.push(Problem {
                    pos: Default::default(),
                    path: "--resume-from-events".into(),
                    message,
                });
            })
            .ok()
            .map(Arc::new)
    } else {
        None
    };
    let keyed = (event_items || resuming) && checkpointing.is_none() && options.test.is_none();
    let mut acked = None;
    if testing {
        // `weir check` and `weir test` check a table source's settings
        // without opening it.
        for s in sources.iter().filter(|s| sources::is_table(s)) {
            if let Err((key, message)) = sources::config(s) {
                problems.push(option_problem(s, key, message));
            }
        }
    }
    let source: Option<Dyn<Input>> = if let Some(test) = options.test.take() {
        Some(builder.from_iter(test.inputs).boxed())
    } else {
        let mut streams = Vec::new();
        let mut iters = Vec::new();
        for s in &sources {
            let opened = if sources::is_table(s) {
                open_table(s, checkpointing.as_ref())
            } else {
                let at = if s.type_name == "file" { "path" } else { "type" };
                open_source(
                    s,
                    keep.as_ref(),
                    steps.clone(),
                    text_out,
                    checkpointing.as_ref(),
                    &mut inputs,
                )
                .map_err(|message| (at, message))
            };
            match opened {
                Ok(Opened::Iter(it, name)) => iters.push((it, name)),
                Ok(Opened::Stream(st, name)) => streams.push((st, name)),
                Ok(Opened::Acked(it)) => acked = Some(it),
                Err((key, message)) => problems.push(option_problem(s, key, message)),
            }
        }
        if !problems.is_empty() {
            None
        } else if let Some(it) = acked {
            Some(builder.from_acked(it).boxed())
        } else if keyed {
            let all = iters
                .into_iter()
                .map(|(it, _)| futures::stream::iter(it).boxed())
                .chain(streams.into_iter().map(|(st, _)| st))
                .collect();
            Some(builder.from_acked(resume::keyed(all, delivered)).boxed())
        } else if iters.len() == 1 && streams.is_empty() {
            let (it, _) = iters.pop().expect("one input");
            Some(builder.from_iter(it).boxed())
        } else if streams.len() == 1 && iters.is_empty() {
            let (st, _) = streams.pop().expect("one input");
            Some(builder.from_stream(st).boxed())
        } else {
            let all: Vec<Streamed<futures::stream::BoxStream<'static, Input>>> = iters
                .into_iter()
                .map(|(it, name)| (futures::stream::iter(it).boxed(), name))
                .chain(streams)
                .map(|(st, name)| Streamed::new(st).named(name))
                .collect();
            Some(builder.merge(all).boxed())
        }
    };
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.pos);
        return Err(ConfigError {
            path: config.path.clone(),
            problems,
        });
    }
    let mut source = source.expect("sources opened");
    if let Some(n) = options.limit {
        source = source
            .take(usize::try_from(n).unwrap_or(usize::MAX))
            .name("limit")
            .boxed();
    }
    let ctx = Ctx { default, dlq };
    let pipeline = if leading.is_empty() {
        let parsed = ctx
            .recover(source.try_map(Input::decode).name("parse"), parse_policy)
            .boxed();
        assemble(parsed, stages, sink, &ctx)
    } else {
        let staged = ctx
            .recover(source.try_map(Input::decode_staged).name("parse"), parse_policy)
            .boxed();
        let staged = ahead::stages(staged, leading, &ctx);
        if text_out {
            into_sink(ahead::outs(staged), sink, &ctx)
        } else {
            assemble(ahead::records(staged), stages, sink, &ctx)
        }
    };
    drop(ctx);
    let committer = checkpointing.and_then(|c| c.start(&context));
    Ok(Built {
        pipeline,
        inputs,
        outputs,
        dead_letters,
        collected: made,
        committer,
    })
}

/// Why `--resume-from-events` cannot be used with this run, if it cannot.
fn resume_problem(options: &Options, sink: Option<&Typed<'_>>) -> Option<String> {
    if options.checkpoint.is_some() {
        return Some("--resume-from-events and a checkpoint store both say where to resume: use one".into());
    }
    if let Some(file) = sink.filter(|s| s.type_name == "file") {
        let path = file.opts.str("path").unwrap_or_default();
        return Some(format!(
            "the `file` sink ({path}) writes its output when the run ends, so a stopped run's delivered items \
             would be lost while its event log says they were delivered: resume into a store that keeps each \
             flush (a `sqlite` or `postgres` sink) or stdout"
        ));
    }
    None
}

/// A run's checkpointing: the store, and the checkpointer of its source
/// once opened.
pub(crate) struct Checkpointing {
    store: Arc<dyn weir_io::checkpoint::CheckpointStore>,
    options: CheckpointOptions,
    made: std::cell::RefCell<Option<Made>>,
}

/// The checkpointer of a file source, or of a table source.
enum Made {
    Files(weir_io::checkpoint::Checkpointer),
    Key(weir_io::checkpoint::KeyCheckpointer),
}

impl Checkpointing {
    /// Opens the store, if the sources can be checkpointed: one `file`
    /// source reading lines or JSON lines, or one table source (`sqlite`,
    /// `postgres`).
    fn open(
        options: &CheckpointOptions,
        sources: &[Typed<'_>],
        sink: Option<&Typed<'_>>,
    ) -> Result<Checkpointing, Problem> {
        // `type` is not an option of the schema: the table's position.
        let problem = |t: Option<&Typed<'_>>, key: &str, message: String| match t {
            Some(t) => option_problem(t, key, message),
            None => Problem {
                pos: Default::default(),
                path: "checkpoint".to_owned(),
                message,
            },
        };
        match sources {
            [one] if one.type_name == "file" => {
                if one.opts.str("format").as_deref() == Some("csv") {
                    return Err(problem(
                        Some(one),
                        "format",
                        "checkpoints resume lines and JSON lines; a CSV source cannot be checkpointed yet"
                            .into(),
                    ));
                }
            }
            [one] if sources::is_table(one) => {}
            [one] => {
                return Err(problem(
                    Some(one),
                    "type",
                    format!(
                    "checkpoints need a `file`, `sqlite` or `postgres` source; a `{}` source cannot resume",
                    one.type_name
                ),
                ))
            }
            _ => {
                return Err(problem(
                    sources.get(1),
                    "type",
                    format!(
                        "checkpoints need exactly one source (a `file`, `sqlite` or `postgres` one), not {}",
                        sources.len()
                    ),
                ))
            }
        }
        // A file sink puts its output in place when the run ends: the
        // output of a killed run would be lost while its checkpoint says
        // the lines are done.
        if let Some(file) = sink.filter(|s| s.type_name == "file") {
            return Err(problem(
                Some(file),
                "path",
                "a `file` sink writes its output when the run ends, so a killed run's items would be lost \
                 behind its checkpoint: with checkpoints, write to a store that keeps each flush (a `sqlite` \
                 or `postgres` sink) or to stdout"
                    .into(),
            ));
        }
        let store = options.store.open().map_err(|e| Problem {
            pos: Default::default(),
            path: "checkpoint".to_owned(),
            message: e.to_string(),
        })?;
        Ok(Checkpointing {
            store,
            options: options.clone(),
            made: std::cell::RefCell::new(None),
        })
    }

    /// The stored positions of the source `name` (none when the run
    /// starts over).
    fn stored(&self, name: &str) -> Result<Vec<weir_io::checkpoint::Position>, String> {
        if self.options.from_start {
            return Ok(Vec::new());
        }
        self.store.load(name).map_err(|e| e.to_string())
    }

    /// Resumes the file source `source` (named `name`) from its stored
    /// positions, unless the run starts over, and makes its checkpointer.
    fn resume(
        &self,
        name: &str,
        source: &mut weir_io::file::FileSource,
    ) -> Result<weir_io::checkpoint::Checkpointer, String> {
        let resumed =
            weir_io::checkpoint::file_positions(name, self.stored(name)?).map_err(|e| e.to_string())?;
        source.resume(&resumed).map_err(|e| e.to_string())?;
        let checkpointer = weir_io::checkpoint::Checkpointer::new(name, source.files(), &resumed)
            .map_err(|e| e.to_string())?;
        *self.made.borrow_mut() = Some(Made::Files(checkpointer.clone()));
        Ok(checkpointer)
    }

    /// Resumes the table source `source` (named `name`) after its stored
    /// key, unless the run starts over.
    fn resume_table(&self, name: &str, source: &mut sources::TableSource) -> Result<(), String> {
        let checkpointer = source
            .resume(name, &self.stored(name)?)
            .map_err(|e| e.to_string())?;
        *self.made.borrow_mut() = Some(Made::Key(checkpointer));
        Ok(())
    }

    /// Starts committing, once the source is open; each commit is an
    /// event of the run whose context is `context`.
    fn start(self, context: &weir::Context) -> Option<weir_io::checkpoint::Committer> {
        use weir_io::checkpoint::Committer;
        let (store, interval) = (self.store, self.options.interval);
        Some(match self.made.into_inner()? {
            Made::Files(c) => Committer::start_in(c, store, interval, context),
            Made::Key(c) => Committer::start_in(c, store, interval, context),
        })
    }
}

/// A problem with the option `key` of `t` (`type`: the table itself).
fn option_problem(t: &Typed<'_>, key: &str, message: String) -> Problem {
    Problem {
        pos: if key == "type" {
            t.opts.pos()
        } else {
            t.opts.pos_of(key)
        },
        path: if key == "type" {
            t.opts.path.clone()
        } else {
            format!("{}.{key}", t.opts.path)
        },
        message,
    }
}

/// Opens the table source `t`, resumed from its checkpoint when the run
/// has one.
fn open_table(t: &Typed<'_>, checkpoint: Option<&Checkpointing>) -> Result<Opened, (&'static str, String)> {
    let name = t.opts.str("name").unwrap_or_else(|| t.type_name.to_owned());
    let mut source = sources::TableSource::open(t)?;
    match checkpoint {
        Some(c) => {
            let at = if t.opts.node("name").is_some() {
                "name"
            } else {
                "type"
            };
            c.resume_table(&name, &mut source).map_err(|m| (at, m))?;
            Ok(Opened::Acked(source.inputs()))
        }
        None => Ok(Opened::Stream(source.inputs().map(|a| a.item).boxed(), name)),
    }
}

/// Why a sink cannot be made: the option to point at, and the message.
pub(crate) type SinkProblem = (&'static str, String);

fn make_real_sink(t: &Typed<'_>, outputs: &mut Vec<PathBuf>) -> Result<AnySink, SinkProblem> {
    use weir_io::sink::{FileSinkConfig, OutputFormat};
    let o = &t.opts;
    if t.type_name == "sqlite" {
        let (config, columns) = sinks::sqlite_config(t)?;
        let path = config.path.clone();
        let sink = sinks::Records::sqlite(config, columns).map_err(|e| ("path", e))?;
        outputs.push(path);
        return Ok(AnySink::Sqlite(Box::new(sink)));
    }
    if t.type_name == "postgres" {
        let (config, columns) = sinks::postgres_config(t)?;
        let sink = sinks::Records::postgres(config, columns).map_err(|e| ("url", e))?;
        return Ok(AnySink::Postgres(Box::new(sink)));
    }
    let format = match o.str("format").as_deref() {
        Some("csv") => {
            let columns: Vec<String> = o
                .list("columns")
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect();
            OutputFormat::Csv {
                columns: (!columns.is_empty()).then_some(columns),
            }
        }
        _ => OutputFormat::JsonLines,
    };
    match t.type_name {
        "stdout" => Ok(AnySink::Stdout(weir_io::sink::StdoutSink::new(format))),
        _ => {
            let path = PathBuf::from(o.str("path").unwrap_or_default());
            let mut cfg = FileSinkConfig::new(&path)
                .format(format)
                .compression(compression(o.str("compression").as_deref()));
            if let Some(n) = o.size("rotate_bytes") {
                cfg = cfg.rotate_bytes(n);
            }
            let sink = weir_io::sink::FileSink::create(cfg).map_err(|e| ("path", e.to_string()))?;
            outputs.push(path);
            Ok(AnySink::File(Box::new(sink)))
        }
    }
}

fn compression(name: Option<&str>) -> weir_io::Compression {
    match name {
        Some("none") => weir_io::Compression::None,
        Some("gzip") => weir_io::Compression::Gzip,
        Some("zstd") => weir_io::Compression::Zstd,
        _ => weir_io::Compression::Auto,
    }
}

/// The fields the `parse` stage needs to build: what the leading `filter`
/// and `map` stages read, up to and including the first `map` (whose
/// output replaces the record). `None` (build everything) when a stage on
/// the way needs the whole record: one that is not a plain jq filter or
/// map, one whose expression's reads are not known, one that may
/// dead-letter the record (a dead letter holds the whole item), or the
/// sink. Invisible to the stages: see the `jq` module's projection test.
fn projection(stages: &[Stage], default: ErrorPolicy) -> Option<Projection> {
    let mut keep = Projection::default();
    for stage in stages {
        let Stage::Jq {
            kind,
            jq,
            policy,
            work,
            ..
        } = stage
        else {
            return None;
        };
        if *kind == JqKind::FlatMap
            || work.concurrent()
            || policy.unwrap_or(default) == ErrorPolicy::DeadLetter
        {
            return None;
        }
        for path in jq.reads()? {
            keep.add(&path);
        }
        if *kind == JqKind::Map {
            return (!keep.is_whole()).then_some(keep);
        }
    }
    None
}

fn project(decoder: weir_io::format::Decoder, keep: Option<&Projection>) -> weir_io::format::Decoder {
    match keep {
        Some(k) => decoder.project(k.clone()),
        None => decoder,
    }
}

type BoxIter = Box<dyn Iterator<Item = Input> + Send>;

enum Opened {
    Iter(BoxIter, String),
    /// A checkpointed source's inputs, each with its acknowledgement.
    Acked(BoxAcked),
    Stream(futures::stream::BoxStream<'static, Input>, String),
}

fn format_of(t: &Typed<'_>) -> Result<weir_io::Format, String> {
    use weir_io::format::{ColumnType, CsvOptions};
    let o = &t.opts;
    Ok(match o.str("format").as_deref() {
        Some("lines") => weir_io::Format::Lines,
        Some("csv") => {
            let mut csv = CsvOptions::default();
            if let Some(c) = o.table("csv") {
                let delim = c.str("delimiter").unwrap_or_else(|| ",".into());
                let [b] = delim.as_bytes() else {
                    return Err(format!("csv.delimiter must be one byte, found \"{delim}\""));
                };
                csv = csv
                    .delimiter(*b)
                    .has_header(c.bool("header").unwrap_or(true))
                    .infer(c.bool("infer").unwrap_or(true));
                for (name, node) in c.entries("columns") {
                    let ty = match node.as_str() {
                        Some("integer") => ColumnType::Integer,
                        Some("number") => ColumnType::Number,
                        Some("boolean") => ColumnType::Boolean,
                        Some("json") => ColumnType::Json,
                        _ => ColumnType::String,
                    };
                    csv = csv.column(name, ty);
                }
            }
            weir_io::Format::Csv(csv)
        }
        _ => weir_io::Format::JsonLines,
    })
}

/// A line of a source that works ahead, decoded and run through the
/// leading `steps` the usual way.
fn decode_ahead(decoder: &weir_io::format::Decoder, steps: &[ahead::Step], line: Line) -> Input {
    match decoder.decode_ref(&line) {
        Some(Ok(record)) => Input::Ahead(ahead::run(steps, record)),
        Some(Err(error)) => Input::Decoded(Err(Box::new(weir_io::parallel::Undecoded { line, error }))),
        None => Input::Line(line, Arc::new(decoder.clone())),
    }
}

fn open_source(
    t: &Typed<'_>,
    keep: Option<&Projection>,
    steps: Option<Arc<Vec<ahead::Step>>>,
    text_out: bool,
    checkpoint: Option<&Checkpointing>,
    inputs: &mut Vec<weir_io::file::ReadProgress>,
) -> Result<Opened, String> {
    let o = &t.opts;
    let name = o.str("name").unwrap_or_else(|| t.type_name.to_owned());
    match t.type_name {
        "file" => {
            let format = format_of(t)?;
            let decoder = Arc::new(project(format.decoder(), keep));
            let cfg = weir_io::file::FileSourceConfig::new(o.str("path").unwrap_or_default())
                .format(format)
                .compression(compression(o.str("compression").as_deref()))
                .max_line_bytes(o.size("max_line_bytes").unwrap_or(16 << 20));
            let mut source = weir_io::file::FileSource::open(cfg).map_err(|e| e.to_string())?;
            let checkpointer = match checkpoint {
                Some(c) => Some(c.resume(&name, &mut source)?),
                None => None,
            };
            inputs.push(source.progress());
            let lines = source.lines();
            let threads = match o.int("decode_threads").unwrap_or(0) {
                // One more than the cores: the reader and the pipeline's
                // tasks share the cores, and a decoder waiting for its turn
                // (order is kept) would leave a core idle (measured on the
                // `cli` job: 0.60-0.61 s against 0.65-0.79 s per 1M lines
                // on 2 cores).
                0 => std::thread::available_parallelism().map_or(1, |n| n.get() + 1),
                n => n as usize,
            };
            let json = matches!(o.str("format").as_deref(), None | Some("jsonl"));
            if let (true, true, Some(steps)) = (threads > 1, json, steps) {
                let progress = lines.progress();
                let decoder = (*decoder).clone();
                let captures = keep.and_then(|all| ahead::Captures::new(all, &steps, text_out));
                let work = move |line: Line| match captures.as_ref().and_then(|c| c.run(&line)) {
                    Some(found) => Input::Ahead(found),
                    None => decode_ahead(&decoder, &steps, line),
                };
                let tail = read_error(progress);
                if let Some(c) = checkpointer {
                    let spanned = move |line: Line| (Span::of(&line), work(line));
                    let ahead = weir_io::parallel::map_parallel(lines, threads, spanned);
                    return Ok(Opened::Acked(acked(ahead, tail, c)));
                }
                let ahead = weir_io::parallel::map_parallel(lines, threads, work);
                return Ok(Opened::Iter(Box::new(ahead.chain(tail)), name));
            }
            if threads > 1 {
                let progress = lines.progress();
                let tail = read_error(progress);
                if let Some(c) = checkpointer {
                    let decoder = (*decoder).clone();
                    let decode = move |line: Line| {
                        let span = Span::of(&line);
                        (span, Input::Decoded(weir_io::parallel::decode(&decoder, line)))
                    };
                    let decoded = weir_io::parallel::map_parallel(lines, threads, decode);
                    return Ok(Opened::Acked(acked(decoded, tail, c)));
                }
                let decoded = weir_io::parallel::decode_parallel(lines, (*decoder).clone(), threads);
                return Ok(Opened::Iter(
                    Box::new(decoded.map(Input::Decoded).chain(tail)),
                    name,
                ));
            }
            if let Some(c) = checkpointer {
                let tail = read_error(lines.progress());
                let spanned = lines.map(move |line| (Span::of(&line), Input::Line(line, decoder.clone())));
                return Ok(Opened::Acked(acked(spanned, tail, c)));
            }
            Ok(Opened::Iter(Box::new(lines_to_inputs(lines, decoder)), name))
        }
        "stdin" => {
            let format = format_of(t)?;
            let decoder = Arc::new(project(format.decoder(), keep));
            let source = weir_io::stdin::StdinSource::new()
                .format(format)
                .max_line_bytes(o.size("max_line_bytes").unwrap_or(16 << 20));
            Ok(Opened::Iter(
                Box::new(lines_to_inputs(source.lines(), decoder)),
                name,
            ))
        }
        _ => {
            let jq = crate::jq::Jq::compile(&o.str("template").unwrap_or_else(|| "{id: .}".into()))
                .map_err(|e| e.to_string())?;
            let template = move |n: u64| jq.first(&serde_json::Value::from(n)).map_err(|e| e.to_string());
            let mut generator = weir_io::generate::Generator::new(template);
            if let Some(count) = o.int("count") {
                generator = generator.count(count);
            }
            if let Some(rate) = o.float("rate") {
                if rate <= 0.0 {
                    return Err("rate must be more than 0".into());
                }
                generator = generator.rate(rate);
            }
            let stream = generator.stream().enumerate().map(|(n, r)| match r {
                Ok(r) => Input::Record(r),
                Err(e) => Input::Failed(format!("generator item {n}: {e}"), n as u64),
            });
            Ok(Opened::Stream(stream.boxed(), name))
        }
    }
}

/// The lines as inputs; a failure of the input itself (an I/O error, a
/// corrupt gzip stream) ends the lines and becomes one last failed item,
/// so the run's error policy sees it and the report counts it.
fn lines_to_inputs(
    lines: weir_io::read::Lines,
    decoder: Arc<weir_io::format::Decoder>,
) -> impl Iterator<Item = Input> + Send + 'static {
    let tail = read_error(lines.progress());
    lines
        .map(move |line| Input::Line(line, decoder.clone()))
        .chain(tail)
}

/// After the last line: the input's own failure, if it had one, as one
/// last failed item.
fn read_error(progress: weir_io::read::ReadProgress) -> impl Iterator<Item = Input> + Send + 'static {
    std::iter::once(()).filter_map(move |()| {
        progress
            .error()
            .map(|e| Input::Failed(e.to_string(), progress.lines_read()))
    })
}

/// Applies concurrent-work settings to a `then`-like stage (blocking or
/// keyed): the same six setters, written once here for both.
macro_rules! work_settings {
    ($p:expr, $w:expr, ordering) => {{
        let p = $p;
        let p = if $w.ordered { p.ordered() } else { p.unordered() };
        work_settings!(p, $w)
    }};
    ($p:expr, $w:expr) => {{
        let mut p = $p.concurrency($w.concurrency.max(1));
        if let Some(r) = $w.retry.clone() {
            p = p.retry(r);
        }
        if let Some(t) = $w.timeout {
            p = p.timeout(t);
        }
        if let Some(b) = $w.breaker.clone() {
            p = p.circuit_breaker(b);
        }
        p
    }};
}

/// Output of a jq stage before flattening.
type Many = Vec<Record>;

fn assemble(mut p: Dyn<Record>, stages: Vec<Stage>, sink: Option<Sink>, ctx: &Ctx) -> Dyn<()> {
    for stage in stages {
        p = match stage {
            Stage::Jq {
                kind,
                jq,
                name,
                policy,
                work,
            } => jq_stage(p, kind, jq, name, policy, work, ctx),
            Stage::Dedup {
                key,
                capacity,
                ttl,
                name,
            } => {
                let keyed = p
                    .try_map(move |r: Record| match key.first(&r.value) {
                        Ok(k) => Ok((k.to_string(), r)),
                        Err(e) => Err(at(r.origin.as_ref(), e)),
                    })
                    .name(format!("{name}:key"));
                let keyed = ctx.recover(keyed, None);
                let mut d = keyed
                    .dedup(|(k, _): &(String, Record)| k.clone())
                    .name(name.clone())
                    .capacity(capacity);
                if let Some(ttl) = ttl {
                    d = d.ttl(ttl);
                }
                d.map(|(_, r)| r).name(format!("{name}:out")).boxed()
            }
            Stage::Validate {
                jq,
                message,
                name,
                policy,
            } => {
                let v = p
                    .validate(move |r: &Record| match jq.test(&r.value) {
                        Ok(true) => Ok(()),
                        Ok(false) => Err(at(r.origin.as_ref(), &message).to_string()),
                        Err(e) => Err(at(r.origin.as_ref(), e).to_string()),
                    })
                    .name(name);
                ctx.recover(v, policy).boxed()
            }
            Stage::Batch {
                max_items,
                max_wait,
                name,
            } => p
                .batch(max_items, max_wait)
                .name(name.clone())
                .map(|batch: Vec<Record>| {
                    let origin = batch.first().and_then(|r| r.origin.clone());
                    let value = serde_json::Value::Array(batch.into_iter().map(|r| r.value).collect());
                    let mut r = Record::new(value);
                    r.origin = origin;
                    r
                })
                .name(format!("{name}:join"))
                .boxed(),
            Stage::Unbatch { name, policy } => {
                let split = p
                    .try_map(|r: Record| match r.value {
                        serde_json::Value::Array(items) => Ok(items
                            .into_iter()
                            .map(|v| {
                                let mut out = Record::new(v);
                                out.origin = r.origin.clone();
                                out
                            })
                            .collect::<Many>()),
                        other => Err(weir::BoxError::from(format!(
                            "unbatch: expected an array, found {}",
                            json_type(&other)
                        ))),
                    })
                    .name(name.clone());
                ctx.recover(split, policy)
                    .flatten()
                    .name(format!("{name}:emit"))
                    .boxed()
            }
            Stage::Aggregate {
                key,
                window,
                window_items,
                fields,
                name,
                policy,
            } => aggregate::stage(p, key, window, window_items, fields, name, policy, ctx),
            Stage::Take { count, name } => p.take(count).name(name).boxed(),
            Stage::Skip { count, name } => p.skip(count).name(name).boxed(),
            Stage::RateLimit {
                per_second,
                burst,
                name,
            } => p.rate_limit(per_second, burst).name(name).boxed(),
            Stage::Boundary { name } => p.boundary().name(name).boxed(),
            Stage::Custom {
                mut stage,
                name,
                policy,
            } => {
                let context = weir::Context::new(&name);
                let run = p
                    .try_map(move |r: Record| {
                        let mut out = Many::new();
                        weir::compose::Stage::process(&mut stage, r, &context, &mut out).map(|()| out)
                    })
                    .name(name.clone());
                ctx.recover(run, policy)
                    .flatten()
                    .name(format!("{name}:emit"))
                    .boxed()
            }
            Stage::Route {
                name,
                policy,
                branches,
            } => return route(p, name, policy, branches, ctx),
            Stage::Broadcast { name, branches } => return broadcast(p, name, branches, ctx),
        };
    }
    into_sink(p, sink, ctx)
}

/// `p` into the sink, with its policies (or discarded, with no sink).
fn into_sink<T>(p: Dyn<T>, sink: Option<Sink>, ctx: &Ctx) -> Dyn<()>
where
    T: Clone + Serialize + Send + 'static,
    AnySink: weir::Sink<T, Error = weir::BoxError>,
{
    match sink {
        Some(s) => {
            let mut q = p.sink(s.sink).name(s.name);
            if let Some(r) = s.retry {
                q = q.retry(r);
            }
            if let Some(t) = s.timeout {
                q = q.timeout(t);
            }
            if let Some(b) = s.breaker {
                q = q.circuit_breaker(b);
            }
            ctx.recover(q, s.policy).boxed()
        }
        None => p.for_each(|_| {}).name("discard").boxed(),
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// An error about record `r`, prefixed with where it came from
/// (`file:line: …`) when known.
fn at(origin: Option<&weir_io::Origin>, e: impl std::fmt::Display) -> weir::BoxError {
    match origin {
        Some(o) => format!("{o}: {e}").into(),
        None => e.to_string().into(),
    }
}

/// Runs one jq stage's expression on a record; errors name the record's
/// file:line.
fn jq_apply(kind: JqKind, jq: &crate::jq::Jq, r: Record) -> Result<Many, weir::BoxError> {
    let origin = r.origin.clone();
    jq_apply_inner(kind, jq, r).map_err(|e| at(origin.as_ref(), e))
}

fn jq_apply_inner(kind: JqKind, jq: &crate::jq::Jq, mut r: Record) -> Result<Many, weir::BoxError> {
    match kind {
        JqKind::Filter => Ok(if jq.test(&r.value)? { vec![r] } else { Vec::new() }),
        JqKind::Map => {
            let mut outs = jq.run(std::mem::take(&mut r.value))?.into_iter();
            match (outs.next(), outs.next()) {
                (Some(v), None) => {
                    r.value = v;
                    Ok(vec![r])
                }
                (None, _) => Err(format!(
                    "jq `{}` produced no output (a map must produce one; use a filter or flat_map to drop items)",
                    jq.source()
                )
                .into()),
                (Some(_), Some(_)) => Err(format!(
                    "jq `{}` produced more than one output (use flat_map for several)",
                    jq.source()
                )
                .into()),
            }
        }
        JqKind::FlatMap => Ok(jq
            .run(std::mem::take(&mut r.value))?
            .into_iter()
            .map(|v| {
                let mut out = Record::new(v);
                out.origin = r.origin.clone();
                out
            })
            .collect()),
    }
}

fn jq_stage(
    p: Dyn<Record>,
    kind: JqKind,
    jq: crate::jq::Jq,
    name: String,
    policy: Option<ErrorPolicy>,
    work: Work,
    ctx: &Ctx,
) -> Dyn<Record> {
    if work.concurrent() {
        let many: Dyn<Many> = if let Some(key) = work.key_by.clone() {
            let keyed = p
                .key_by(move |r: &Record| key.first(&r.value).map(|k| k.to_string()).unwrap_or_default())
                .try_then(move |r: Record| {
                    let out = jq_apply(kind, &jq, r);
                    async move { out }
                });
            let keyed = work_settings!(keyed.name(name.clone()), work);
            ctx.recover(keyed, policy).boxed()
        } else {
            let blocking = p.try_blocking(move |r: Record| jq_apply(kind, &jq, r));
            let blocking = work_settings!(blocking.name(name.clone()), work, ordering);
            ctx.recover(blocking, policy).boxed()
        };
        return many.flatten().name(format!("{name}:emit")).boxed();
    }
    match kind {
        JqKind::Map => {
            let m = p.try_map(move |r: Record| ahead::map(&jq, r)).name(name);
            ctx.recover(m, policy).boxed()
        }
        JqKind::Filter => {
            let m = p
                .try_map(move |r: Record| ahead::filter(&jq, r))
                .name(name.clone());
            ctx.recover(m, policy)
                .filter_map(|r| r)
                .name(format!("{name}:keep"))
                .boxed()
        }
        JqKind::FlatMap => {
            let m = p
                .try_map(move |r: Record| jq_apply(JqKind::FlatMap, &jq, r))
                .name(name.clone());
            ctx.recover(m, policy)
                .flatten()
                .name(format!("{name}:emit"))
                .boxed()
        }
    }
}

type Keyed = (Arc<str>, Record);

fn branch_pipeline(
    stages: Vec<Stage>,
    sink: Sink,
    ctx: &Ctx,
) -> impl FnOnce(Pipeline<Keyed, weir::stage::BranchSource<Keyed>>) -> Dyn<()> + '_ {
    move |p| {
        let records = p.map(|(_, r): Keyed| r).name(format!("{}:in", sink.name)).boxed();
        assemble(records, stages, Some(sink), ctx)
    }
}

/// Adds each branch (its stages, its sink, its buffer) to a route or
/// broadcast.
fn add_branches<M>(
    mut r: weir::stage::Branches<Keyed, M>,
    branches: Vec<Branch>,
    ctx: &Ctx,
) -> weir::stage::Branches<Keyed, M> {
    for b in branches {
        let (buffer, drop_newest) = (b.buffer, b.drop_newest);
        r = r.branch(b.name, branch_pipeline(b.stages, b.sink, ctx));
        if let Some(n) = buffer {
            r = r.buffer(n);
            if drop_newest {
                r = r.drop_newest();
            }
        }
    }
    r
}

fn route(
    p: Dyn<Record>,
    name: String,
    policy: Option<ErrorPolicy>,
    branches: Vec<Branch>,
    ctx: &Ctx,
) -> Dyn<()> {
    let rules: Vec<(Arc<str>, Option<crate::jq::Jq>)> = branches
        .iter()
        .map(|b| (Arc::from(b.name.as_str()), b.when.clone()))
        .collect();
    let keyed = p
        .try_map(move |r: Record| {
            let mut default = None;
            for (branch, when) in &rules {
                match when {
                    Some(jq) => match jq.test(&r.value) {
                        Ok(true) => return Ok((branch.clone(), r)),
                        Ok(false) => {}
                        Err(e) => return Err(at(r.origin.as_ref(), e)),
                    },
                    None => default = default.or(Some(branch.clone())),
                }
            }
            match default {
                Some(branch) => Ok((branch, r)),
                None => Err(at(
                    r.origin.as_ref(),
                    "no route matched (add a branch without `when` as the default)",
                )),
            }
        })
        .name(name.clone());
    let keyed = ctx.recover(keyed, policy);
    keyed
        .route(
            |(k, _): &Keyed| k.clone(),
            move |r| add_branches(r, branches, ctx),
        )
        .name(format!("{name}:out"))
        .boxed()
}

fn broadcast(p: Dyn<Record>, name: String, branches: Vec<Branch>, ctx: &Ctx) -> Dyn<()> {
    let empty: Arc<str> = Arc::from("");
    p.map(move |r: Record| (empty.clone(), r))
        .name(format!("{name}:in"))
        .broadcast(move |r| add_branches(r, branches, ctx))
        .name(name)
        .boxed()
}

/// A shared, growing list (for tests' collectors).
pub(crate) fn collector() -> Collected {
    Arc::new(Mutex::new(Vec::new()))
}

/// `weir check` beyond the schema: the stages build (jq compiles, custom
/// stages accept their config) and the inputs exist; nothing is read or
/// written. Returns a one-line summary.
pub(crate) fn check(config: &Config, registry: &Registry<Record>) -> Result<String, ConfigError> {
    build(
        config,
        registry,
        Options {
            limit: None,
            test: Some(TestIo::default()),
            checkpoint: None,
            resume_from: Vec::new(),
        },
    )?;
    let mut problems = Vec::new();
    let sources = config.sources();
    for s in &sources {
        if s.type_name == "file" {
            if let Err(message) = open_source(s, None, None, false, None, &mut Vec::new()) {
                problems.push(Problem {
                    pos: s.opts.pos_of("path"),
                    path: format!("{}.path", s.opts.path),
                    message,
                });
            }
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError {
            path: config.path.clone(),
            problems,
        });
    }
    let ends_in_branches = config
        .stages()
        .last()
        .is_some_and(|s| matches!(s.type_name, "route" | "broadcast"));
    let sink = match config.sink() {
        Some(s) => format!("sink {}", s.type_name),
        None if ends_in_branches => "a sink per branch".to_owned(),
        None => "no sink".to_owned(),
    };
    Ok(format!(
        "{} source{}, {} stage{}, {sink}",
        sources.len(),
        if sources.len() == 1 { "" } else { "s" },
        config.stages().len(),
        if config.stages().len() == 1 { "" } else { "s" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir::compose;

    fn registry() -> Registry<Record> {
        let mut r = Registry::new();
        r.register("shout", |config: &serde_json::Value| {
            let suffix = config
                .get("suffix")
                .and_then(|s| s.as_str())
                .unwrap_or("!")
                .to_owned();
            Ok(compose::BoxStage::new(compose::try_map(
                "shout",
                move |mut rec: Record| {
                    let Some(s) = rec.value.as_str() else {
                        return Err(format!("not a string: {}", rec.value));
                    };
                    rec.value = format!("{}{suffix}", s.to_uppercase()).into();
                    Ok(rec)
                },
            )))
        })
        .unwrap();
        r
    }

    async fn run_case(
        text: &str,
        inputs: Vec<serde_json::Value>,
    ) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
        let reg = registry();
        let config = Config::parse("t.toml", text, &reg.names()).unwrap();
        let dead = collector();
        let built = build(
            &config,
            &reg,
            Options {
                limit: None,
                test: Some(TestIo {
                    inputs: inputs
                        .into_iter()
                        .map(|v| Input::Record(Record::new(v)))
                        .collect(),
                    dead_letters: dead.clone(),
                }),
                checkpoint: None,
                resume_from: Vec::new(),
            },
        )
        .unwrap();
        built.pipeline.run().await.unwrap();
        let out = built
            .collected
            .get("sink")
            .map(|c| c.lock().unwrap().clone())
            .unwrap_or_default();
        let dead = dead.lock().unwrap().clone();
        (out, dead)
    }

    #[tokio::test]
    async fn custom_stages_from_the_registry_run_by_name_with_their_config_and_dead_letters() {
        let (out, dead) = run_case(
            "[pipeline]\non_error = \"dead_letter\"\n[[source]]\ntype = \"stdin\"\n[[stage]]\ntype = \"shout\"\nconfig = { suffix = \"?\" }\n[sink]\ntype = \"stdout\"\n[dead_letter]\ntype = \"file\"\npath = \"x\"\n",
            vec![json!("a"), json!(1), json!("b")],
        )
        .await;
        assert_eq!(out, [json!("A?"), json!("B?")]);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0]["stage"], "shout");
        assert_eq!(dead[0]["item"]["value"], 1);
        assert!(
            dead[0]["error"].as_str().unwrap().contains("not a string"),
            "{}",
            dead[0]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn batch_unbatch_take_skip_validate_and_flat_map_compose() {
        let (out, dead) = run_case(
            r#"
[pipeline]
on_error = "dead_letter"
[[source]]
type = "stdin"
[[stage]]
type = "skip"
count = 1
[[stage]]
type = "validate"
jq = '.n >= 0'
message = "negative"
[[stage]]
type = "flat_map"
jq = '.n, .n * 10'
[[stage]]
type = "batch"
max_items = 3
max_wait = "1s"
[[stage]]
type = "map"
jq = 'add'
[[stage]]
type = "take"
count = 2
[sink]
type = "stdout"
[dead_letter]
type = "file"
path = "x"
"#,
            vec![
                json!({"n": 100}),
                json!({"n": 1}),
                json!({"n": -1}),
                json!({"n": 2}),
                json!({"n": 3}),
            ],
        )
        .await;
        // 1, 10, 2 | 20, 3, 30 → sums 13 and 53
        assert_eq!(out, [json!(13), json!(53)]);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0]["error"], "negative");
    }

    #[tokio::test]
    async fn concurrent_and_keyed_jq_stages_keep_order_and_apply_retry_settings() {
        let (out, _) = run_case(
            "[[source]]\ntype = \"stdin\"\n[[stage]]\ntype = \"map\"\njq = '. + 1'\nconcurrency = 4\nretry = { max_attempts = 2, backoff = \"1ms\" }\ntimeout = \"5s\"\n[[stage]]\ntype = \"filter\"\njq = '. % 2 == 0'\nconcurrency = 2\nkey_by = '. % 3'\n[sink]\ntype = \"stdout\"\n",
            (0..100).map(|i| json!(i)).collect(),
        )
        .await;
        let mut want: Vec<_> = (1..=100).filter(|i| i % 2 == 0).map(|i| json!(i)).collect();
        let mut got = out.clone();
        // keyed output keeps per-key order; compare as sets, and check per-key order.
        got.sort_by_key(|v| v.as_i64());
        want.sort_by_key(|v| v.as_i64());
        assert_eq!(got, want);
        for k in 0..3 {
            let per_key: Vec<i64> = out
                .iter()
                .filter_map(|v| v.as_i64())
                .filter(|v| v % 3 == k)
                .collect();
            assert!(per_key.windows(2).all(|w| w[0] < w[1]), "{per_key:?}");
        }
    }

    #[tokio::test]
    async fn aggregate_over_the_whole_stream_groups_by_key() {
        let (out, _) = run_case(
            "[[source]]\ntype = \"stdin\"\n[[stage]]\ntype = \"aggregate\"\nkey = '.k'\nfields = { n = \"count\", total = \"sum(.v)\", last = \"last(.v)\" }\n[sink]\ntype = \"stdout\"\n",
            vec![json!({"k": "a", "v": 1}), json!({"k": "b", "v": 2}), json!({"k": "a", "v": 3})],
        )
        .await;
        assert_eq!(
            out,
            [
                json!({"key": "a", "n": 2, "total": 4, "last": 3}),
                json!({"key": "b", "n": 1, "total": 2, "last": 2})
            ]
        );
    }

    #[test]
    fn aggregate_fields_are_parsed_with_a_hint_for_typos() {
        assert!(matches!(spec::parse_field("count"), Ok(spec::Field::Count)));
        assert!(matches!(spec::parse_field("sum(.a)"), Ok(spec::Field::Sum(_))));
        let e = spec::parse_field("summ(.a)").err().unwrap();
        assert!(e.contains("did you mean \"sum\""), "{e}");
        assert!(spec::parse_field("sum(.a").is_err());
        assert!(spec::parse_field("total").is_err());
    }

    fn stages_of(text: &str) -> Vec<Stage> {
        let reg = registry();
        let config = Config::parse("t.toml", text, &reg.names()).unwrap();
        let mut make =
            |_: &Typed<'_>, _: &str| -> Result<AnySink, SinkProblem> { Ok(AnySink::Collect(collector())) };
        let mut reader = Reader {
            problems: Vec::new(),
            registry: &reg,
            names: Vec::new(),
            sinks: Vec::new(),
            make_sink: &mut make,
        };
        reader.stages(&config.stages())
    }

    #[test]
    fn the_parse_stage_builds_only_what_the_leading_filters_and_first_map_read() {
        let src = "[[source]]\ntype = \"stdin\"\n";
        let s = stages_of(&format!(
            "{src}[[stage]]\ntype = \"filter\"\njq = '.level != \"info\" or .status >= 500'\n[[stage]]\ntype = \"map\"\njq = '{{ts, path: .http.path}}'\n"
        ));
        let keep = projection(&s, ErrorPolicy::FailFast).unwrap();
        let paths: Vec<String> = keep.paths().iter().map(|p| p.join(".")).collect();
        assert_eq!(paths, ["http.path", "level", "status", "ts"]);
        // A filter alone passes the whole record on to the sink.
        let s = stages_of(&format!("{src}[[stage]]\ntype = \"filter\"\njq = '.a'\n"));
        assert!(projection(&s, ErrorPolicy::FailFast).is_none());
        // Dead letters hold whole records; unknown reads need everything.
        let s = stages_of(&format!("{src}[[stage]]\ntype = \"map\"\njq = '{{a}}'\n"));
        assert!(projection(&s, ErrorPolicy::FailFast).is_some());
        assert!(projection(&s, ErrorPolicy::DeadLetter).is_none());
        let s = stages_of(&format!("{src}[[stage]]\ntype = \"map\"\njq = '[.[] | 1]'\n"));
        assert!(projection(&s, ErrorPolicy::FailFast).is_none());
        let s = stages_of(&format!("{src}[[stage]]\ntype = \"map\"\njq = '.'\n"));
        assert!(projection(&s, ErrorPolicy::FailFast).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_boundary_and_a_circuit_breaker_are_reachable_from_config() {
        let start = tokio::time::Instant::now();
        let (out, _) = run_case(
            r#"
[[source]]
type = "stdin"
[[stage]]
type = "rate_limit"
per_second = 10
burst = 1
[[stage]]
type = "boundary"
[[stage]]
type = "map"
jq = '. * 3'
circuit_breaker = { failure_rate = 0.5, window = 10, min_calls = 5, open_for = "1s" }
timeout = "1s"
[sink]
type = "stdout"
"#,
            (0..21).map(|i| json!(i)).collect(),
        )
        .await;
        assert_eq!(out, (0..21).map(|i| json!(i * 3)).collect::<Vec<_>>());
        // 21 items at 10 a second with a burst of 1: at least 2 s of (virtual) time.
        assert!(
            start.elapsed() >= std::time::Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_route_without_a_default_fails_unmatched_items_by_policy() {
        let text = r#"
[pipeline]
on_error = "skip"
[[source]]
type = "stdin"
[[stage]]
type = "route"
[[stage.route]]
name = "big"
when = '. > 10'
sink = { type = "stdout" }
"#;
        let reg = registry();
        let config = Config::parse("t.toml", text, &reg.names()).unwrap();
        let built = build(
            &config,
            &reg,
            Options {
                limit: None,
                test: Some(TestIo {
                    inputs: [1, 20, 3, 40]
                        .into_iter()
                        .map(|v| Input::Record(Record::new(json!(v))))
                        .collect(),
                    dead_letters: collector(),
                }),
                checkpoint: None,
                resume_from: Vec::new(),
            },
        )
        .unwrap();
        let report = built.pipeline.run().await.unwrap();
        assert_eq!((report.delivered, report.failed), (2, 2));
        let big = built.collected.get("big").unwrap().lock().unwrap().clone();
        assert_eq!(big, [json!(20), json!(40)]);
    }
}
