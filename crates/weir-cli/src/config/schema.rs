//! The configuration's schema: every source, stage and sink type with its
//! options, their kinds and defaults. The validator checks a file against
//! it, the builder reads options through it (a name missing here is a bug
//! a test catches), and `weir stages` prints it: one definition, so the
//! three cannot drift apart.

use std::fmt::Write as _;

/// What a type is used as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A `[[source]]`.
    Source,
    /// A `[[stage]]`.
    Stage,
    /// A `[sink]` (also a branch's sink).
    Sink,
    /// The `[dead_letter]` sink.
    DeadLetter,
}

impl Role {
    /// The role's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Stage => "stage",
            Role::Sink => "sink",
            Role::DeadLetter => "dead-letter sink",
        }
    }
}

/// The kind of value an option takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A string.
    Str,
    /// A jq expression (a string, compiled when the config is checked).
    Jq,
    /// A whole number.
    Int,
    /// A number.
    Float,
    /// `true` / `false`.
    Bool,
    /// A duration: `"250ms"`, `"1.5s"`, `"2m"`, `"1h"`.
    Duration,
    /// A size in bytes: an integer or `"64KiB"`, `"16MiB"`, `"1GiB"`, `"10MB"`.
    Size,
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
    /// A table with these keys.
    Table(&'static [Opt]),
    /// A table with keys of the user's choosing, each value of this kind.
    Map(&'static Kind),
    /// An array of values of this kind.
    List(&'static Kind),
    /// An array of tables of these keys.
    Tables(&'static [Opt]),
    /// An array of `[[stage]]` tables: a sub-pipeline.
    Stages,
    /// A sink table (with its `type`).
    Sink,
    /// Any value (passed on as JSON).
    Any,
}

impl Kind {
    /// What the kind expects, for messages and `weir stages`.
    pub fn describe(&self) -> String {
        match self {
            Kind::Str => "string".into(),
            Kind::Jq => "jq expression".into(),
            Kind::Int => "integer".into(),
            Kind::Float => "number".into(),
            Kind::Bool => "boolean".into(),
            Kind::Duration => "duration (\"500ms\", \"2s\", \"1m\")".into(),
            Kind::Size => "size (bytes, or \"64KiB\", \"16MiB\")".into(),
            Kind::Enum(names) => format!("one of {}", quoted(names)),
            Kind::Table(_) => "table".into(),
            Kind::Map(Kind::Table(_)) => "table of tables".into(),
            Kind::Map(k) => format!("table of {}", k.describe()),
            Kind::List(k) => format!("array of {}", k.describe()),
            Kind::Tables(_) => "array of tables".into(),
            Kind::Stages => "array of stages".into(),
            Kind::Sink => "sink table".into(),
            Kind::Any => "any value".into(),
        }
    }
}

/// `"a", "b" or "c"`.
pub fn quoted(names: &[&str]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    match q.len() {
        0 => String::new(),
        1 => q[0].clone(),
        n => format!("{} or {}", q[..n - 1].join(", "), q[n - 1]),
    }
}

/// One option of a type or table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Opt {
    /// The key.
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// The default, as it would be written; `None` when required or when
    /// absence means "off".
    pub default: Option<&'static str>,
    /// Whether the key must be given.
    pub required: bool,
    /// One line of documentation.
    pub doc: &'static str,
}

const fn opt(name: &'static str, kind: Kind, default: &'static str, doc: &'static str) -> Opt {
    Opt {
        name,
        kind,
        default: Some(default),
        required: false,
        doc,
    }
}

const fn req(name: &'static str, kind: Kind, doc: &'static str) -> Opt {
    Opt {
        name,
        kind,
        default: None,
        required: true,
        doc,
    }
}

const fn off(name: &'static str, kind: Kind, doc: &'static str) -> Opt {
    Opt {
        name,
        kind,
        default: None,
        required: false,
        doc,
    }
}

/// A source, stage or sink type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TypeDef {
    /// The `type = "…"` name.
    pub name: &'static str,
    /// Where it may be used.
    pub role: Role,
    /// What it does.
    pub doc: &'static str,
    /// Its options (besides `type`).
    pub options: &'static [Opt],
}

impl TypeDef {
    /// The option named `name`.
    pub fn option(&self, name: &str) -> Option<&'static Opt> {
        self.options.iter().find(|o| o.name == name)
    }
}

/// Error policies, as written in configs.
pub const ERROR_POLICIES: &[&str] = &["fail_fast", "skip", "dead_letter"];
/// Input formats.
pub const FORMATS: &[&str] = &["lines", "jsonl", "csv"];
/// Output formats.
pub const OUTPUT_FORMATS: &[&str] = &["jsonl", "csv"];
/// Compression choices.
pub const COMPRESSIONS: &[&str] = &["auto", "none", "gzip", "zstd"];
/// Typed CSV columns.
pub const COLUMN_TYPES: &[&str] = &["string", "integer", "number", "boolean", "json"];
/// Table sinks' column types (`weir_io::sql::SqlType`'s names).
pub const SQL_TYPES: &[&str] = &["integer", "real", "text", "blob", "json"];
/// How a table sink (`sqlite`, `postgres`) treats the table's rows.
pub const SQL_MODES: &[&str] = &["append", "upsert", "replace"];
/// Event levels.
pub const EVENT_LEVELS: &[&str] = &["lifecycle", "progress", "items"];
/// Pipeline modes (`weir::Mode`).
pub const MODES: &[&str] = &["throughput", "balanced", "debug"];

const RETRY: &[Opt] = &[
    opt(
        "max_attempts",
        Kind::Int,
        "3",
        "attempts in all, the first included",
    ),
    opt(
        "backoff",
        Kind::Duration,
        "100ms",
        "the first retry's delay; each next one is `factor` times longer",
    ),
    opt("factor", Kind::Float, "2.0", "growth of the delay per attempt"),
    off("max_backoff", Kind::Duration, "a cap on one delay"),
    off(
        "max_elapsed",
        Kind::Duration,
        "give up once this long has passed since the first attempt",
    ),
    opt(
        "jitter",
        Kind::Bool,
        "true",
        "full jitter: each delay is random between 0 and its value",
    ),
];

const BREAKER: &[Opt] = &[
    opt(
        "failure_rate",
        Kind::Float,
        "0.5",
        "open when this fraction of calls in the window failed",
    ),
    opt("window", Kind::Int, "100", "the window, in calls"),
    off("window_time", Kind::Duration, "a window in time instead of calls"),
    opt(
        "min_calls",
        Kind::Int,
        "10",
        "calls needed in the window before it may open",
    ),
    opt(
        "open_for",
        Kind::Duration,
        "30s",
        "how long it stays open before probing",
    ),
    opt(
        "half_open_probes",
        Kind::Int,
        "1",
        "probe calls let through when half open",
    ),
    opt(
        "when_open",
        Kind::Enum(&["wait", "fail"]),
        "wait",
        "wait for it to close, or fail the item at once",
    ),
];

const NAME: Opt = off(
    "name",
    Kind::Str,
    "the stage's name in the display, events, reports and dead letters",
);
const ON_ERROR: Opt = off(
    "on_error",
    Kind::Enum(ERROR_POLICIES),
    "what to do with an item that fails here; by default, the pipeline's `on_error`",
);
const CONCURRENCY: Opt = opt(
    "concurrency",
    Kind::Int,
    "1",
    "items worked on at once; more than 1 runs the stage on the blocking pool, over all cores",
);
const ORDERED: Opt = opt(
    "ordered",
    Kind::Bool,
    "true",
    "with concurrency: emit in input order",
);
const RETRY_OPT: Opt = off(
    "retry",
    Kind::Table(RETRY),
    "retry a failed item with exponential backoff",
);
const TIMEOUT: Opt = off("timeout", Kind::Duration, "limit on each attempt");
const BREAKER_OPT: Opt = off(
    "circuit_breaker",
    Kind::Table(BREAKER),
    "stop calling after too many failures; probe later",
);
const KEY_BY: Opt = off(
    "key_by",
    Kind::Jq,
    "with concurrency: items of one key (this jq expression) in order, keys in parallel",
);

/// The options of a jq stage (`map`, `filter`, `flat_map`): its
/// expression, then the work settings they share.
macro_rules! jq_stage {
    ($doc:expr) => {
        &[
            req("jq", Kind::Jq, $doc),
            NAME,
            ON_ERROR,
            CONCURRENCY,
            ORDERED,
            KEY_BY,
            RETRY_OPT,
            TIMEOUT,
            BREAKER_OPT,
        ]
    };
}

const MAP: &[Opt] = jq_stage!("the new item (exactly one output)");
const FILTER: &[Opt] = jq_stage!("keep the item when the first output is neither false nor null");
const FLAT_MAP: &[Opt] = jq_stage!("every output becomes an item");

const CSV: &[Opt] = &[
    opt("delimiter", Kind::Str, ",", "the field separator (one byte)"),
    opt("header", Kind::Bool, "true", "the first row names the columns"),
    opt(
        "infer",
        Kind::Bool,
        "true",
        "numbers and booleans become JSON numbers and booleans",
    ),
    off(
        "columns",
        Kind::Map(&Kind::Enum(COLUMN_TYPES)),
        "types by column name: string, integer, number, boolean, json",
    ),
];

const SQL_COLUMN: &[Opt] = &[
    req("type", Kind::Enum(SQL_TYPES), "integer, real, text, blob or json"),
    off(
        "jq",
        Kind::Jq,
        "the value, from the item; by default, the item's field of the column's name (missing: NULL)",
    ),
];

/// The columns of a table sink (`sqlite`, `postgres`).
const TABLE_COLUMNS: Opt = req(
    "columns",
    Kind::Map(&Kind::Table(SQL_COLUMN)),
    "the columns in order: name = { type, jq }",
);
const TABLE_MODE: Opt = opt(
    "mode",
    Kind::Enum(SQL_MODES),
    "append",
    "append, upsert (by `key`: the latest row of a key wins) or replace (the old rows are deleted in the first transaction)",
);
const TABLE_KEY: Opt = off("key", Kind::List(&Kind::Str), "upsert: the key columns");
const ISOLATE_ROWS: Opt = opt(
    "isolate_rows",
    Kind::Bool,
    "false",
    "insert each row as it comes, so a row the table refuses fails alone (slower); otherwise it fails every item of its transaction",
);

/// A table source's (`sqlite`, `postgres`) table, or its query.
const TABLE_SOURCE_TABLE: Opt = off(
    "table",
    Kind::Str,
    "the table (ASCII letters, digits and `_`; PostgreSQL: also schema.table); or `query`",
);
const TABLE_SOURCE_QUERY: Opt = off(
    "query",
    Kind::Str,
    "a SELECT whose rows are read (the key one of its columns), in a read-only connection; or `table`",
);
const TABLE_SOURCE_KEY: Opt = req(
    "key",
    Kind::Str,
    "the key column (unique, never NULL; integers or text): rows are read in its order, and a checkpointed run resumes after the last finalized key",
);
const TABLE_SOURCE_PAGE: Opt = opt(
    "page_size",
    Kind::Int,
    "1000",
    "rows per SELECT (the next page is read while this one is worked on)",
);

const BRANCH: &[Opt] = &[
    req("name", Kind::Str, "the branch's name"),
    off(
        "when",
        Kind::Jq,
        "route: items for which this is true go here (first match wins); no `when`: the default branch",
    ),
    off("stage", Kind::Stages, "the branch's stages"),
    req("sink", Kind::Sink, "where the branch's items go"),
    off(
        "buffer",
        Kind::Int,
        "a buffer of this many items before the branch",
    ),
    opt(
        "drop_newest",
        Kind::Bool,
        "false",
        "when the buffer is full, drop (and count) instead of waiting",
    ),
];

/// Every source, stage and sink type, in the order `weir stages` lists them.
pub const TYPES: &[TypeDef] = &[
    TypeDef {
        name: "file",
        role: Role::Source,
        doc: "Read files: one path or a glob (matches read in order); .gz and .zst decompressed",
        options: &[
            req("path", Kind::Str, "a path or a glob such as \"logs/*.jsonl.gz\""),
            opt("format", Kind::Enum(FORMATS), "jsonl", "lines (each a string), jsonl or csv"),
            opt("compression", Kind::Enum(COMPRESSIONS), "auto", "auto: by extension (.gz, .zst)"),
            opt("max_line_bytes", Kind::Size, "16MiB", "longer lines are failed (dead-lettered), never buffered"),
            off("csv", Kind::Table(CSV), "CSV options"),
            opt(
                "decode_threads",
                Kind::Int,
                "0",
                "threads decoding lines beside the pipeline, order kept (0: one per core plus one; 1: none, decode in `parse`)",
            ),
            opt("name", Kind::Str, "file", "the source's name"),
            ON_ERROR,
        ],
    },
    TypeDef {
        name: "stdin",
        role: Role::Source,
        doc: "Read standard input",
        options: &[
            opt("format", Kind::Enum(FORMATS), "jsonl", "lines (each a string), jsonl or csv"),
            opt("max_line_bytes", Kind::Size, "16MiB", "longer lines are failed (dead-lettered), never buffered"),
            off("csv", Kind::Table(CSV), "CSV options"),
            opt("name", Kind::Str, "stdin", "the source's name"),
            ON_ERROR,
        ],
    },
    TypeDef {
        name: "generate",
        role: Role::Source,
        doc: "Generate items from a jq template whose input is the item's number (0, 1, …)",
        options: &[
            off("count", Kind::Int, "how many; by default, without end"),
            off("rate", Kind::Float, "items per second; by default, as fast as they are taken"),
            opt("template", Kind::Jq, "{id: .}", "the item, from its number"),
            opt("name", Kind::Str, "generate", "the source's name"),
            ON_ERROR,
        ],
    },
    TypeDef {
        name: "sqlite",
        role: Role::Source,
        doc: "Read a SQLite table (or a query's rows) in key order, a page at a time, each row a JSON object; \
              checkpointed by the last finalized key",
        options: &[
            req("path", Kind::Str, "the database file (it must exist; opened read-only)"),
            TABLE_SOURCE_TABLE,
            TABLE_SOURCE_QUERY,
            TABLE_SOURCE_KEY,
            TABLE_SOURCE_PAGE,
            opt("name", Kind::Str, "sqlite", "the source's name (its checkpoint's key)"),
            ON_ERROR,
        ],
    },
    TypeDef {
        name: "postgres",
        role: Role::Source,
        doc: "Read a PostgreSQL table (or a query's rows) in key order, a page at a time, each row a JSON \
              object; checkpointed by the last finalized key",
        options: &[
            req("url", Kind::Str, "the server: postgres://user:password@host:port/db (`${VAR}` for secrets)"),
            TABLE_SOURCE_TABLE,
            TABLE_SOURCE_QUERY,
            TABLE_SOURCE_KEY,
            TABLE_SOURCE_PAGE,
            opt("name", Kind::Str, "postgres", "the source's name (its checkpoint's key)"),
            ON_ERROR,
        ],
    },
    TypeDef {
        name: "map",
        role: Role::Stage,
        doc: "Replace each item with a jq expression's output",
        options: MAP,
    },
    TypeDef {
        name: "filter",
        role: Role::Stage,
        doc: "Keep the items a jq predicate holds for",
        options: FILTER,
    },
    TypeDef {
        name: "flat_map",
        role: Role::Stage,
        doc: "Replace each item with every output of a jq expression (0 or more)",
        options: FLAT_MAP,
    },
    TypeDef {
        name: "dedup",
        role: Role::Stage,
        doc: "Drop items whose key was seen recently",
        options: &[
            req("key", Kind::Jq, "the key"),
            opt("capacity", Kind::Int, "100000", "keys remembered (least recently seen forgotten first)"),
            off("ttl", Kind::Duration, "forget a key after this long"),
            NAME,
        ],
    },
    TypeDef {
        name: "validate",
        role: Role::Stage,
        doc: "Fail the items a jq predicate does not hold for (their error policy applies)",
        options: &[
            req("jq", Kind::Jq, "the predicate"),
            off("message", Kind::Str, "the failure's message; by default, the expression"),
            NAME,
            ON_ERROR,
        ],
    },
    TypeDef {
        name: "batch",
        role: Role::Stage,
        doc: "Group items into arrays (members are delivered when their batch is)",
        options: &[
            req("max_items", Kind::Int, "items per batch"),
            opt("max_wait", Kind::Duration, "1s", "send a partial batch after this long"),
            NAME,
        ],
    },
    TypeDef {
        name: "unbatch",
        role: Role::Stage,
        doc: "Split array items into their elements",
        options: &[NAME, ON_ERROR],
    },
    TypeDef {
        name: "aggregate",
        role: Role::Stage,
        doc: "Fold items per key into one record per window: {key, <field>: …}",
        options: &[
            off("key", Kind::Jq, "group by this; by default, one group"),
            off("window", Kind::Duration, "tumbling windows of time"),
            off("window_items", Kind::Int, "tumbling windows of this many items; neither: the whole stream"),
            req(
                "fields",
                Kind::Map(&Kind::Str),
                "output fields: \"count\", \"sum(JQ)\", \"min(JQ)\", \"max(JQ)\", \"avg(JQ)\", \"first(JQ)\", \"last(JQ)\"",
            ),
            NAME,
            ON_ERROR,
        ],
    },
    TypeDef {
        name: "take",
        role: Role::Stage,
        doc: "Pass the first `count` items, then stop the sources",
        options: &[req("count", Kind::Int, "items to pass"), NAME],
    },
    TypeDef {
        name: "skip",
        role: Role::Stage,
        doc: "Drop the first `count` items",
        options: &[req("count", Kind::Int, "items to drop"), NAME],
    },
    TypeDef {
        name: "rate_limit",
        role: Role::Stage,
        doc: "At most `per_second` items a second (bursts up to `burst`); waits, drops nothing",
        options: &[
            req("per_second", Kind::Int, "the rate"),
            off("burst", Kind::Int, "the burst; by default, `per_second`"),
            NAME,
        ],
    },
    TypeDef {
        name: "boundary",
        role: Role::Stage,
        doc: "Run the stages after this one in a task of their own (another core)",
        options: &[NAME],
    },
    TypeDef {
        name: "route",
        role: Role::Stage,
        doc: "Send each item to the first branch whose `when` holds (last stage)",
        options: &[
            req("route", Kind::Tables(BRANCH), "the branches, in order"),
            NAME,
            ON_ERROR,
        ],
    },
    TypeDef {
        name: "broadcast",
        role: Role::Stage,
        doc: "Send every item to every branch (last stage)",
        options: &[req("branch", Kind::Tables(BRANCH), "the branches"), NAME],
    },
    TypeDef {
        name: "file",
        role: Role::Sink,
        doc: "Write a file, renamed into place when the run ends; rotated by size",
        options: &[
            req("path", Kind::Str, "the file (parent directories are created)"),
            opt("format", Kind::Enum(OUTPUT_FORMATS), "jsonl", "jsonl or csv"),
            off("columns", Kind::List(&Kind::Str), "CSV columns; by default, the first item's keys"),
            off("rotate_bytes", Kind::Size, "start a new part after this many bytes"),
            opt("compression", Kind::Enum(COMPRESSIONS), "auto", "auto: by extension (.gz, .zst)"),
            NAME,
            ON_ERROR,
            RETRY_OPT,
            TIMEOUT,
            BREAKER_OPT,
        ],
    },
    TypeDef {
        name: "stdout",
        role: Role::Sink,
        doc: "Write to standard output",
        options: &[
            opt("format", Kind::Enum(OUTPUT_FORMATS), "jsonl", "jsonl or csv"),
            off("columns", Kind::List(&Kind::Str), "CSV columns; by default, the first item's keys"),
            NAME,
            ON_ERROR,
        ],
    },
    TypeDef {
        name: "sqlite",
        role: Role::Sink,
        doc: "Write rows into a SQLite table (WAL; each flush commits one transaction); append, upsert or replace",
        options: &[
            req("path", Kind::Str, "the database file (created, with its parent directories)"),
            req("table", Kind::Str, "the table (ASCII letters, digits and `_`)"),
            TABLE_COLUMNS,
            TABLE_MODE,
            TABLE_KEY,
            opt("create_table", Kind::Bool, "true", "create the table if missing (the key as its PRIMARY KEY)"),
            opt("batch_rows", Kind::Int, "500", "rows per INSERT statement (fewer within SQLite's limit of 32766 values)"),
            ISOLATE_ROWS,
            NAME,
            ON_ERROR,
            RETRY_OPT,
            TIMEOUT,
            BREAKER_OPT,
        ],
    },
    TypeDef {
        name: "postgres",
        role: Role::Sink,
        doc: "Write rows into a PostgreSQL table (binary COPY; each flush commits one transaction); append, upsert or replace",
        options: &[
            req("url", Kind::Str, "the server: postgres://user:password@host:port/db (`${VAR}` for secrets)"),
            req("table", Kind::Str, "the table, or schema.table (ASCII letters, digits and `_`; case-sensitive)"),
            TABLE_COLUMNS,
            TABLE_MODE,
            TABLE_KEY,
            opt(
                "create_table",
                Kind::Bool,
                "true",
                "create the table if missing (bigint, double precision, text, bytea, jsonb; the key as its PRIMARY KEY)",
            ),
            opt("batch_rows", Kind::Int, "5000", "rows per COPY"),
            ISOLATE_ROWS,
            NAME,
            ON_ERROR,
            RETRY_OPT,
            TIMEOUT,
            BREAKER_OPT,
        ],
    },
    TypeDef {
        name: "file",
        role: Role::DeadLetter,
        doc: "One JSON line per failed item: the item (with file:line), error, causes, stage, attempts",
        options: &[
            req("path", Kind::Str, "the file (parent directories are created)"),
            off("rotate_bytes", Kind::Size, "start a new part after this many bytes"),
        ],
    },
    TypeDef {
        name: "sqlite",
        role: Role::DeadLetter,
        doc: "A row per failed item in a SQLite table (created if missing): failed_at_ms, pipeline, stage, item_seq, attempts, error_type, error, causes, first_failure_ms, item",
        options: &[
            req("path", Kind::Str, "the database file (created, with its parent directories)"),
            req("table", Kind::Str, "the table (ASCII letters, digits and `_`)"),
        ],
    },
    TypeDef {
        name: "postgres",
        role: Role::DeadLetter,
        doc: "A row per failed item in a PostgreSQL table (created if missing; the columns of the sqlite dead-letter table, JSON as jsonb)",
        options: &[
            req("url", Kind::Str, "the server: postgres://user:password@host:port/db (`${VAR}` for secrets)"),
            req("table", Kind::Str, "the table, or schema.table (ASCII letters, digits and `_`; case-sensitive)"),
        ],
    },
];

/// Options every custom (registered) stage takes.
pub const CUSTOM: &[Opt] = &[
    off(
        "config",
        Kind::Any,
        "the stage's own settings, passed to its factory",
    ),
    NAME,
    ON_ERROR,
];

/// The `[pipeline]` table.
pub const PIPELINE: &[Opt] = &[
    off(
        "name",
        Kind::Str,
        "the run's name; by default, the config file's name",
    ),
    opt(
        "mode",
        Kind::Enum(MODES),
        "balanced",
        "the defaults of capacity, chunk_size, event_level and progress_interval: throughput, balanced or debug (weir::Mode); a key set here wins",
    ),
    off(
        "capacity",
        Kind::Int,
        "items a channel between tasks holds; by default, the mode's: 4096 (throughput 16384, debug 100)",
    ),
    off(
        "max_in_flight",
        Kind::Int,
        "items read but not yet finalized, over the whole pipeline (the source waits at the bound); by default, only the channels bound them",
    ),
    off(
        "chunk_size",
        Kind::Int,
        "items moved between tasks at once; by default, the mode's: 1024 (throughput 4096, debug 10)",
    ),
    off(
        "event_level",
        Kind::Enum(EVENT_LEVELS),
        "lifecycle, progress or items; by default, the mode's: progress (throughput lifecycle, debug items)",
    ),
    off(
        "progress_interval",
        Kind::Duration,
        "time between progress events; by default, the mode's: 1s (throughput 5s, debug 100ms)",
    ),
    opt(
        "on_error",
        Kind::Enum(ERROR_POLICIES),
        "fail_fast",
        "every stage's error policy unless it sets its own",
    ),
    opt(
        "drain_timeout",
        Kind::Duration,
        "30s",
        "on SIGINT/SIGTERM: how long to let in-flight items finish",
    ),
];

const TEST: &[Opt] = &[
    req("name", Kind::Str, "the case's name"),
    off(
        "input",
        Kind::List(&Kind::Any),
        "input items (JSON values), given to the stages",
    ),
    off(
        "input_lines",
        Kind::List(&Kind::Str),
        "raw input lines, decoded as the first source's format",
    ),
    off(
        "expect",
        Kind::List(&Kind::Any),
        "the items expected at the sink, in order",
    ),
    off(
        "expect_routes",
        Kind::Map(&Kind::List(&Kind::Any)),
        "items expected at each branch's sink, by branch name",
    ),
    off(
        "expect_dead_letters",
        Kind::List(&Kind::Any),
        "expected dead letters, in order; each a table of the fields to compare (stage, error, item, …)",
    ),
    opt(
        "ordered",
        Kind::Bool,
        "true",
        "compare in order (false: as multisets)",
    ),
];

/// The top-level keys.
pub const ROOT: &[Opt] = &[
    off("pipeline", Kind::Table(PIPELINE), "the run's settings"),
    req("source", Kind::Any, "one or more sources (merged)"),
    off("stage", Kind::Stages, "the stages, in order"),
    off(
        "sink",
        Kind::Sink,
        "where items go; by default, nowhere (counted only)",
    ),
    off(
        "dead_letter",
        Kind::Any,
        "where failed items go (for on_error = \"dead_letter\")",
    ),
    off("test", Kind::Tables(TEST), "test cases for `weir test`"),
    off(
        "checkpoint",
        Kind::Table(CHECKPOINT),
        "keep the source's position (a file's offset, a table's key) in a store; a run resumes from it (`weir run --checkpoint`)",
    ),
];

/// The `[checkpoint]` table.
pub const CHECKPOINT: &[Opt] = &[
    off(
        "path",
        Kind::Str,
        "the SQLite store (created if missing), like every path relative to the working directory; or `url`",
    ),
    off(
        "url",
        Kind::Str,
        "a PostgreSQL store shared by several machines: postgres://user:password@host:port/db; or `path`",
    ),
    opt(
        "interval",
        Kind::Duration,
        "1s",
        "commit the position at most this often (and when the run ends)",
    ),
];

/// The types that may be used as `role`.
pub fn types(role: Role) -> impl Iterator<Item = &'static TypeDef> {
    TYPES.iter().filter(move |t| t.role == role)
}

/// The type named `name` in `role`.
pub fn find(role: Role, name: &str) -> Option<&'static TypeDef> {
    types(role).find(|t| t.name == name)
}

/// The name in `candidates` closest to `wrong`, if close enough to be a
/// likely typo.
pub fn nearest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wrong, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn write_opts(out: &mut String, opts: &[Opt], indent: usize) {
    let width = opts.iter().map(|o| o.name.len()).max().unwrap_or(0);
    for o in opts {
        let default = match (o.required, o.default) {
            (true, _) => " (required)".to_owned(),
            (false, Some(d)) => format!(" (default: {d})"),
            (false, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "{:indent$}{:width$}  {}{} — {}",
            "",
            o.name,
            o.kind.describe(),
            default,
            o.doc
        );
        match o.kind {
            Kind::Table(sub) | Kind::Tables(sub) => write_opts(out, sub, indent + 4),
            Kind::Map(Kind::Table(sub)) => write_opts(out, sub, indent + 4),
            _ => {}
        }
    }
}

/// The text of `weir stages`: every type with its options and defaults,
/// and the names of custom stages registered by the binary.
pub fn describe(custom: &[&str]) -> String {
    let mut out = String::new();
    for (role, title) in [
        (Role::Source, "SOURCES ([[source]])"),
        (Role::Stage, "STAGES ([[stage]])"),
        (Role::Sink, "SINKS ([sink], a branch's sink)"),
        (Role::DeadLetter, "DEAD-LETTER SINKS ([dead_letter])"),
    ] {
        let _ = writeln!(out, "{title}\n");
        for t in types(role) {
            let _ = writeln!(out, "  {} — {}", t.name, t.doc);
            write_opts(&mut out, t.options, 6);
            out.push('\n');
        }
    }
    if !custom.is_empty() {
        let _ = writeln!(out, "CUSTOM STAGES (registered by this binary)\n");
        for name in custom {
            let _ = writeln!(out, "  {name}");
            write_opts(&mut out, CUSTOM, 6);
            out.push('\n');
        }
    }
    let _ = writeln!(out, "[pipeline]\n");
    write_opts(&mut out, PIPELINE, 6);
    out.push('\n');
    let _ = writeln!(out, "[[test]] (weir test)\n");
    write_opts(&mut out, TEST, 6);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_types_and_names_are_unique_per_role() {
        for role in [Role::Source, Role::Stage, Role::Sink, Role::DeadLetter] {
            let names: Vec<_> = types(role).map(|t| t.name).collect();
            assert!(!names.is_empty());
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{role:?}");
        }
    }

    #[test]
    fn nearest_suggests_typos_only() {
        assert_eq!(nearest("fliter", ["filter", "map"]), Some("filter"));
        assert_eq!(
            nearest("concurency", ["concurrency", "ordered"]),
            Some("concurrency")
        );
        assert_eq!(nearest("zzz", ["filter", "map"]), None);
    }

    #[test]
    fn describe_lists_every_type_and_option() {
        let text = describe(&["enrich"]);
        for t in TYPES {
            assert!(text.contains(t.name));
            for o in t.options {
                assert!(text.contains(o.name), "{} {}", t.name, o.name);
            }
        }
        assert!(text.contains("enrich"));
        assert!(text.contains("(default: 16MiB)"));
        // A map of tables shows the tables' keys.
        assert!(text.contains("the item's field of the column's name"));
    }

    #[test]
    fn table_sinks_column_types_are_weir_ios() {
        let names: Vec<&str> = weir_io::sql::SqlType::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names, SQL_TYPES);
    }
}
