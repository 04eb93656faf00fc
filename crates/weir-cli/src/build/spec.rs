//! A checked configuration turned into what the pipeline is made of:
//! compiled jq, opened inputs, created outputs. Everything that can fail
//! happens here, with the option's position in the error, so that putting
//! the pipeline together afterwards cannot fail.

use std::sync::Arc;
use std::time::Duration;

use weir::compose::{BoxStage, Registry};
use weir::{Breaker, ErrorPolicy, Retry, WhenOpen};
use weir_io::Record;

use super::sinks::AnySink;
use super::SinkProblem;
use crate::config::schema::Role;
use crate::config::{Opts, Problem, Typed};
use crate::jq::Jq;

/// What one jq stage does with its expression's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JqKind {
    /// Exactly one output.
    Map,
    /// Keep when the first output is truthy.
    Filter,
    /// Every output.
    FlatMap,
}

/// How a stage's work is run: in the fused loop, or as concurrent work.
#[derive(Debug, Clone, Default)]
pub(crate) struct Work {
    pub(crate) concurrency: usize,
    pub(crate) ordered: bool,
    pub(crate) key_by: Option<Jq>,
    pub(crate) retry: Option<Retry>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) breaker: Option<Breaker>,
}

impl Work {
    /// Whether the stage runs as separate work (not fused).
    pub(crate) fn concurrent(&self) -> bool {
        self.concurrency > 1
            || self.key_by.is_some()
            || self.retry.is_some()
            || self.timeout.is_some()
            || self.breaker.is_some()
    }
}

/// One aggregate output field.
#[derive(Debug, Clone)]
pub(crate) enum Field {
    Count,
    Sum(Jq),
    Min(Jq),
    Max(Jq),
    Avg(Jq),
    First(Jq),
    Last(Jq),
}

/// A stage, ready to assemble.
pub(crate) enum Stage {
    Jq {
        kind: JqKind,
        jq: Jq,
        name: String,
        policy: Option<ErrorPolicy>,
        work: Work,
    },
    Dedup {
        key: Jq,
        capacity: usize,
        ttl: Option<Duration>,
        name: String,
    },
    Validate {
        jq: Jq,
        message: String,
        name: String,
        policy: Option<ErrorPolicy>,
    },
    Batch {
        max_items: usize,
        max_wait: Duration,
        name: String,
    },
    Unbatch {
        name: String,
        policy: Option<ErrorPolicy>,
    },
    Aggregate {
        key: Option<Jq>,
        window: Option<Duration>,
        window_items: Option<usize>,
        fields: Vec<(String, Field)>,
        name: String,
        policy: Option<ErrorPolicy>,
    },
    Take {
        count: usize,
        name: String,
    },
    Skip {
        count: usize,
        name: String,
    },
    RateLimit {
        per_second: u32,
        burst: u32,
        name: String,
    },
    Boundary {
        name: String,
    },
    Route {
        name: String,
        policy: Option<ErrorPolicy>,
        branches: Vec<Branch>,
    },
    Broadcast {
        name: String,
        branches: Vec<Branch>,
    },
    Custom {
        stage: BoxStage<Record, Record>,
        name: String,
        policy: Option<ErrorPolicy>,
    },
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Stage {
    /// The stage's name.
    pub(crate) fn name(&self) -> &str {
        match self {
            Stage::Jq { name, .. }
            | Stage::Dedup { name, .. }
            | Stage::Validate { name, .. }
            | Stage::Batch { name, .. }
            | Stage::Unbatch { name, .. }
            | Stage::Aggregate { name, .. }
            | Stage::Take { name, .. }
            | Stage::Skip { name, .. }
            | Stage::RateLimit { name, .. }
            | Stage::Boundary { name }
            | Stage::Route { name, .. }
            | Stage::Broadcast { name, .. }
            | Stage::Custom { name, .. } => name,
        }
    }
}

/// A branch of a route or broadcast: a named sub-pipeline with its sink.
#[derive(Debug)]
pub(crate) struct Branch {
    pub(crate) name: String,
    pub(crate) when: Option<Jq>,
    pub(crate) stages: Vec<Stage>,
    pub(crate) sink: Sink,
    pub(crate) buffer: Option<usize>,
    pub(crate) drop_newest: bool,
}

/// A sink with its settings.
#[derive(Debug)]
pub(crate) struct Sink {
    pub(crate) sink: AnySink,
    pub(crate) name: String,
    pub(crate) policy: Option<ErrorPolicy>,
    pub(crate) retry: Option<Retry>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) breaker: Option<Breaker>,
}

/// Collects problems while reading options.
pub(crate) struct Reader<'r> {
    pub(crate) problems: Vec<Problem>,
    pub(crate) registry: &'r Registry<Record>,
    /// Names given so far (stage names must be unique).
    pub(crate) names: Vec<String>,
    /// The names of the sinks read (the main one and the branches').
    pub(crate) sinks: Vec<String>,
    /// Sinks are made by this (the real ones, or collectors for `weir test`).
    pub(crate) make_sink: &'r mut dyn FnMut(&Typed<'_>, &str) -> Result<AnySink, SinkProblem>,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("problems", &self.problems)
            .finish()
    }
}

/// Parses an error policy as written.
pub(crate) fn policy(name: &str) -> ErrorPolicy {
    match name {
        "skip" => ErrorPolicy::Skip,
        "dead_letter" => ErrorPolicy::DeadLetter,
        _ => ErrorPolicy::FailFast,
    }
}

impl Reader<'_> {
    fn problem(&mut self, opts: &Opts<'_>, key: &str, message: impl Into<String>) {
        let path = if key.is_empty() {
            opts.path.clone()
        } else {
            format!("{}.{key}", opts.path)
        };
        self.problems.push(Problem {
            pos: if key.is_empty() {
                opts.pos()
            } else {
                opts.pos_of(key)
            },
            path,
            message: message.into(),
        });
    }

    fn jq(&mut self, opts: &Opts<'_>, key: &str) -> Option<Jq> {
        let src = opts.str(key)?;
        match Jq::compile(&src) {
            Ok(jq) => Some(jq),
            Err(e) => {
                self.problem(opts, key, format!("invalid jq expression: {e}"));
                None
            }
        }
    }

    fn name(&mut self, opts: &Opts<'_>, default: &str) -> String {
        let name = opts.str("name").unwrap_or_else(|| default.to_owned());
        let mut unique = name.clone();
        let mut n = 2;
        while self.names.contains(&unique) {
            if opts.node("name").is_some() {
                self.problem(opts, "name", format!("another stage is already named \"{name}\""));
                break;
            }
            unique = format!("{name}#{n}");
            n += 1;
        }
        self.names.push(unique.clone());
        unique
    }

    fn policy(opts: &Opts<'_>) -> Option<ErrorPolicy> {
        opts.node("on_error").and_then(|n| n.as_str()).map(policy)
    }

    fn retry(opts: &Opts<'_>) -> Option<Retry> {
        let r = opts.table("retry")?;
        let mut retry = Retry::exponential(r.duration("backoff").unwrap_or(Duration::from_millis(100)))
            .factor(r.float("factor").unwrap_or(2.0))
            .full_jitter(r.bool("jitter").unwrap_or(true))
            .max_attempts(r.int("max_attempts").unwrap_or(3).max(1) as u32);
        if let Some(d) = r.duration("max_backoff") {
            retry = retry.max_delay(d);
        }
        if let Some(d) = r.duration("max_elapsed") {
            retry = retry.max_elapsed(d);
        }
        Some(retry)
    }

    fn breaker(opts: &Opts<'_>) -> Option<Breaker> {
        let b = opts.table("circuit_breaker")?;
        let mut breaker = Breaker::new()
            .failure_rate(b.float("failure_rate").unwrap_or(0.5).clamp(0.0, 1.0))
            .min_calls(b.int("min_calls").unwrap_or(10) as usize)
            .open_for(b.duration("open_for").unwrap_or(Duration::from_secs(30)))
            .half_open_probes(b.int("half_open_probes").unwrap_or(1).max(1) as usize)
            .when_open(if b.str("when_open").as_deref() == Some("fail") {
                WhenOpen::Fail
            } else {
                WhenOpen::Wait
            });
        breaker = match b.duration("window_time") {
            Some(d) => breaker.window_time(d),
            None => breaker.window_count(b.int("window").unwrap_or(100).max(1) as usize),
        };
        Some(breaker)
    }

    fn work(&mut self, opts: &Opts<'_>) -> Work {
        let concurrency = opts.int("concurrency").unwrap_or(1) as usize;
        if concurrency == 0 {
            self.problem(opts, "concurrency", "must be at least 1");
        }
        let key_by = if opts.node("key_by").is_some() {
            self.jq(opts, "key_by")
        } else {
            None
        };
        Work {
            concurrency: concurrency.max(1),
            ordered: opts.bool("ordered").unwrap_or(true),
            key_by,
            retry: Reader::retry(opts),
            timeout: opts.duration("timeout"),
            breaker: Reader::breaker(opts),
        }
    }

    fn positive(&mut self, opts: &Opts<'_>, key: &str) -> Option<usize> {
        match opts.int(key) {
            Some(0) => {
                self.problem(opts, key, "must be at least 1");
                None
            }
            Some(n) => Some(n as usize),
            None => None,
        }
    }

    /// Reads a list of stages.
    pub(crate) fn stages(&mut self, stages: &[Typed<'_>]) -> Vec<Stage> {
        stages.iter().filter_map(|s| self.stage(s)).collect()
    }

    fn stage(&mut self, t: &Typed<'_>) -> Option<Stage> {
        let o = &t.opts;
        let kind = match t.type_name {
            "map" => Some(JqKind::Map),
            "filter" => Some(JqKind::Filter),
            "flat_map" => Some(JqKind::FlatMap),
            _ => None,
        };
        if let Some(kind) = kind {
            let name = self.name(o, t.type_name);
            let jq = self.jq(o, "jq");
            let work = self.work(o);
            return Some(Stage::Jq {
                kind,
                jq: jq?,
                name,
                policy: Reader::policy(o),
                work,
            });
        }
        Some(match t.type_name {
            "dedup" => Stage::Dedup {
                name: self.name(o, "dedup"),
                key: self.jq(o, "key")?,
                capacity: self.positive(o, "capacity").unwrap_or(100_000),
                ttl: o.duration("ttl"),
            },
            "validate" => {
                let name = self.name(o, "validate");
                let jq = self.jq(o, "jq")?;
                Stage::Validate {
                    message: o
                        .str("message")
                        .unwrap_or_else(|| format!("validation failed: {}", jq.source())),
                    jq,
                    name,
                    policy: Reader::policy(o),
                }
            }
            "batch" => Stage::Batch {
                name: self.name(o, "batch"),
                max_items: self.positive(o, "max_items")?,
                max_wait: o.duration("max_wait").unwrap_or(Duration::from_secs(1)),
            },
            "unbatch" => Stage::Unbatch {
                name: self.name(o, "unbatch"),
                policy: Reader::policy(o),
            },
            "aggregate" => {
                let name = self.name(o, "aggregate");
                let key = if o.node("key").is_some() {
                    Some(self.jq(o, "key")?)
                } else {
                    None
                };
                let mut fields = Vec::new();
                for (field, node) in o.entries("fields") {
                    let text = node.as_str().unwrap_or_default();
                    match parse_field(text) {
                        Ok(f) => fields.push((field, f)),
                        Err(e) => self.problems.push(Problem {
                            pos: node.pos,
                            path: format!("{}.fields.{field}", o.path),
                            message: e,
                        }),
                    }
                }
                if fields.is_empty() {
                    self.problem(o, "fields", "needs at least one field, such as `n = \"count\"`");
                }
                if o.node("window_items").is_some() && o.int("window_items") == Some(0) {
                    self.problem(o, "window_items", "must be at least 1");
                }
                Stage::Aggregate {
                    key,
                    window: o.duration("window").filter(|d| !d.is_zero()),
                    window_items: o.int("window_items").filter(|n| *n > 0).map(|n| n as usize),
                    fields,
                    name,
                    policy: Reader::policy(o),
                }
            }
            "take" => Stage::Take {
                name: self.name(o, "take"),
                count: o.int("count")? as usize,
            },
            "skip" => Stage::Skip {
                name: self.name(o, "skip"),
                count: o.int("count")? as usize,
            },
            "rate_limit" => {
                let name = self.name(o, "rate_limit");
                let per_second = self.positive(o, "per_second")?;
                let burst = if o.node("burst").is_some() {
                    self.positive(o, "burst")?
                } else {
                    per_second
                };
                Stage::RateLimit {
                    per_second: u32::try_from(per_second).unwrap_or(u32::MAX),
                    burst: u32::try_from(burst).unwrap_or(u32::MAX),
                    name,
                }
            }
            "boundary" => Stage::Boundary {
                name: self.name(o, "boundary"),
            },
            "route" => {
                let name = self.name(o, "route");
                let branches = self.branches(o, "route", true);
                Stage::Route {
                    name,
                    policy: Reader::policy(o),
                    branches,
                }
            }
            "broadcast" => {
                let name = self.name(o, "broadcast");
                let branches = self.branches(o, "branch", false);
                Stage::Broadcast { name, branches }
            }
            custom => {
                let name = self.name(o, custom);
                let config = o.node("config").map_or(serde_json::Value::Null, |n| n.to_json());
                match self.registry.build(custom, &config) {
                    Ok(stage) => Stage::Custom {
                        stage,
                        name,
                        policy: Reader::policy(o),
                    },
                    Err(e) => {
                        self.problem(
                            o,
                            "",
                            format!("custom stage \"{custom}\" refused its config: {e}"),
                        );
                        return None;
                    }
                }
            }
        })
    }

    fn branches(&mut self, o: &Opts<'_>, key: &str, route: bool) -> Vec<Branch> {
        let mut out = Vec::new();
        for b in o.tables(key) {
            let name = b.str("name").unwrap_or_default();
            if self.names.contains(&name) {
                self.problem(
                    &b,
                    "name",
                    format!("another stage or branch is already named \"{name}\""),
                );
                continue;
            }
            self.names.push(name.clone());
            let when = if route && b.node("when").is_some() {
                self.jq(&b, "when")
            } else {
                None
            };
            let stages = self.stages(&b.stages("stage"));
            let Some(sink) = b.sink("sink").and_then(|s| self.sink(&s, &name)) else {
                continue;
            };
            out.push(Branch {
                name,
                when,
                stages,
                sink,
                buffer: b.int("buffer").filter(|n| *n > 0).map(|n| n as usize),
                drop_newest: b.bool("drop_newest").unwrap_or(false),
            });
        }
        out
    }

    /// Reads a sink table (`role` Sink).
    pub(crate) fn sink(&mut self, t: &Typed<'_>, default_name: &str) -> Option<Sink> {
        debug_assert_eq!(t.def.map(|d| d.role), Some(Role::Sink));
        let o = &t.opts;
        let name = match o.str("name") {
            Some(n) => n,
            None if default_name.is_empty() => "sink".to_owned(),
            None => format!("{default_name}.sink"),
        };
        let owner = if default_name.is_empty() {
            "sink"
        } else {
            default_name
        };
        let sink = match (self.make_sink)(t, owner) {
            Ok(s) => s,
            Err((key, e)) => {
                self.problem(o, if o.node(key).is_some() { key } else { "" }, e);
                return None;
            }
        };
        let has = |k: &str| t.def.is_some_and(|d| d.option(k).is_some());
        self.sinks.push(name.clone());
        Some(Sink {
            sink,
            name,
            policy: Reader::policy(o),
            retry: if has("retry") { Reader::retry(o) } else { None },
            timeout: if has("timeout") {
                o.duration("timeout")
            } else {
                None
            },
            breaker: if has("circuit_breaker") {
                Reader::breaker(o)
            } else {
                None
            },
        })
    }
}

/// `"count"`, `"sum(.bytes)"`, … into a [`Field`].
pub(crate) fn parse_field(text: &str) -> Result<Field, String> {
    let text = text.trim();
    if text == "count" {
        return Ok(Field::Count);
    }
    let Some((op, rest)) = text.split_once('(') else {
        return Err(format!(
            "expected \"count\" or OP(JQ) with OP one of sum, min, max, avg, first, last; found \"{text}\""
        ));
    };
    let Some(expr) = rest.strip_suffix(')') else {
        return Err(format!("missing `)` in \"{text}\""));
    };
    let jq = Jq::compile(expr).map_err(|e| format!("invalid jq expression in \"{text}\": {e}"))?;
    Ok(match op.trim() {
        "sum" => Field::Sum(jq),
        "min" => Field::Min(jq),
        "max" => Field::Max(jq),
        "avg" => Field::Avg(jq),
        "first" => Field::First(jq),
        "last" => Field::Last(jq),
        other => {
            let hint = crate::config::schema::nearest(other, ["sum", "min", "max", "avg", "first", "last"])
                .map(|n| format!(" (did you mean \"{n}\"?)"))
                .unwrap_or_default();
            return Err(format!("unknown aggregate \"{other}\"{hint}"));
        }
    })
}

/// Shared handle to values collected by `weir test`.
pub(crate) type Collected = Arc<std::sync::Mutex<Vec<serde_json::Value>>>;
