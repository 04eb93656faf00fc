//! Pipeline configuration files: TOML (or YAML, same schema), with
//! `${VAR}` interpolation, checked against one [schema] with positions on
//! every problem.
//!
//! # Examples
//!
//! ```
//! use weir_cli::config::Config;
//!
//! let text = r#"
//! [[source]]
//! type = "file"
//! path = "in.jsonl"
//!
//! [[stage]]
//! type = "filtr"
//! jq = '.level != "info"'
//! "#;
//! let err = Config::parse("p.toml", text, &[]).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "p.toml:7:8: stage[0].type: unknown stage type \"filtr\" (did you mean \"filter\"?)"
//! );
//! ```

pub mod env;
pub mod schema;
pub mod tree;
pub mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schema::{Kind, Opt, Role, TypeDef};
use tree::{Node, Pos, Value};
pub use validate::Problem;

/// A configuration that parsed and passed every check.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// The checked tree (variables expanded).
    pub root: Node,
}

/// Why a configuration cannot be used: every problem found, each with its
/// position.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, in document order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}: ", self.path.display(), p.pos)?;
            if !p.path.is_empty() {
                write!(f, "{}: ", p.path)?;
            }
            write!(f, "{}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and checks the file at `path` (`.yaml`/`.yml`: YAML; else TOML).
    /// `custom` names the custom stages the binary registered.
    pub fn load(path: &Path, custom: &[&str]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            problems: vec![Problem {
                pos: Pos { line: 0, col: 0 },
                path: String::new(),
                message: format!("cannot read the configuration: {e}"),
            }],
        })?;
        Config::parse(path, &text, custom)
    }

    /// Checks configuration text (the environment supplies `${VAR}`s).
    pub fn parse(path: impl Into<PathBuf>, text: &str, custom: &[&str]) -> Result<Config, ConfigError> {
        Config::parse_with_env(path, text, custom, &|name| std::env::var(name).ok())
    }

    /// [`Config::parse`] with the variables from `lookup`.
    pub fn parse_with_env(
        path: impl Into<PathBuf>,
        text: &str,
        custom: &[&str],
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let path = path.into();
        let yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        let parsed = if yaml {
            tree::parse_yaml(text)
        } else {
            tree::parse_toml(text)
        };
        let mut root = parsed.map_err(|e| ConfigError {
            path: path.clone(),
            problems: vec![Problem {
                pos: e.pos,
                path: String::new(),
                message: format!(
                    "{} syntax error: {}",
                    if yaml { "YAML" } else { "TOML" },
                    e.message
                ),
            }],
        })?;
        let mut problems = Vec::new();
        env::interpolate(&mut root, "", lookup, &mut problems);
        let jq = |src: &str| {
            crate::jq::Jq::compile(src)
                .map(drop)
                .map_err(|e| (e.to_string(), Some(e.position())))
        };
        let mut checker = validate::Checker {
            jq: &jq,
            custom,
            problems,
        };
        checker.root(&root);
        let mut problems = checker.problems;
        semantic_checks(&root, &mut problems);
        if problems.is_empty() {
            Ok(Config { path, root })
        } else {
            problems.sort_by_key(|p| p.pos);
            Err(ConfigError { path, problems })
        }
    }

    /// The `[checkpoint]` options.
    pub fn checkpoint(&self) -> Opts<'_> {
        Opts::new(self.root.get("checkpoint"), schema::CHECKPOINT, "checkpoint")
    }

    /// The `[pipeline]` options.
    pub fn pipeline(&self) -> Opts<'_> {
        Opts::new(self.root.get("pipeline"), schema::PIPELINE, "pipeline")
    }

    /// The sources (one table or an array of them).
    pub fn sources(&self) -> Vec<Typed<'_>> {
        match self.root.get("source") {
            Some(Node {
                value: Value::Array(items),
                ..
            }) => items
                .iter()
                .enumerate()
                .map(|(i, n)| Typed::new(n, Role::Source, format!("source[{i}]")))
                .collect(),
            Some(n) => vec![Typed::new(n, Role::Source, "source".to_owned())],
            None => Vec::new(),
        }
    }

    /// The main stages.
    pub fn stages(&self) -> Vec<Typed<'_>> {
        stages_of(self.root.get("stage"), "stage")
    }

    /// The main sink, if any.
    pub fn sink(&self) -> Option<Typed<'_>> {
        self.root
            .get("sink")
            .map(|n| Typed::new(n, Role::Sink, "sink".to_owned()))
    }

    /// The dead-letter sink, if any.
    pub fn dead_letter(&self) -> Option<Typed<'_>> {
        self.root
            .get("dead_letter")
            .map(|n| Typed::new(n, Role::DeadLetter, "dead_letter".to_owned()))
    }

    /// The `[[test]]` cases.
    pub fn tests(&self) -> Vec<Opts<'_>> {
        list_of(self.root.get("test"), "test", "test")
    }
}

/// Checks across keys that the schema cannot express.
fn semantic_checks(root: &Node, problems: &mut Vec<Problem>) {
    let default_policy = root
        .get("pipeline")
        .and_then(|p| p.get("on_error"))
        .and_then(Node::as_str)
        .unwrap_or("fail_fast");
    let has_dlq = root.get("dead_letter").is_some();
    let check_stages = |stages: Option<&Node>, path: &str, problems: &mut Vec<Problem>, top: bool| {
        let Some(Node {
            value: Value::Array(items),
            ..
        }) = stages
        else {
            return;
        };
        for (i, s) in items.iter().enumerate() {
            let t = s.get("type").and_then(Node::as_str).unwrap_or("");
            let policy = s.get("on_error").and_then(Node::as_str).unwrap_or(default_policy);
            if policy == "dead_letter" && !has_dlq && s.get("on_error").is_some() {
                problems.push(Problem {
                    pos: s.get("on_error").map_or(s.pos, |n| n.pos),
                    path: format!("{path}[{i}].on_error"),
                    message: "\"dead_letter\" needs a [dead_letter] sink".into(),
                });
            }
            if matches!(t, "route" | "broadcast") && i + 1 != items.len() {
                problems.push(Problem {
                    pos: s.pos,
                    path: format!("{path}[{i}]"),
                    message: format!(
                        "a {t} ends its pipeline: it must be the last stage (its branches have their own)"
                    ),
                });
            }
            if matches!(t, "route" | "broadcast") && top && root.get("sink").is_some() {
                problems.push(Problem {
                    pos: root.get("sink").map_or(s.pos, |n| n.pos),
                    path: "sink".into(),
                    message: format!("the pipeline ends in a {t}: give each branch its sink, not [sink]"),
                });
            }
            if t == "aggregate" && s.get("window").is_some() && s.get("window_items").is_some() {
                problems.push(Problem {
                    pos: s.pos,
                    path: format!("{path}[{i}]"),
                    message: "give `window` (time) or `window_items` (count), not both".into(),
                });
            }
            if matches!(t, "route" | "broadcast") {
                let key = if t == "route" { "route" } else { "branch" };
                if let Some(Node {
                    value: Value::Array(branches),
                    ..
                }) = s.get(key)
                {
                    let mut defaults = 0;
                    for (j, b) in branches.iter().enumerate() {
                        if t == "route" && b.get("when").is_none() {
                            defaults += 1;
                            if defaults > 1 {
                                problems.push(Problem {
                                    pos: b.pos,
                                    path: format!("{path}[{i}].{key}[{j}]"),
                                    message: "only one branch may omit `when` (the default)".into(),
                                });
                            }
                        }
                        if t == "broadcast" && b.get("when").is_some() {
                            problems.push(Problem {
                                pos: b.get("when").map_or(b.pos, |n| n.pos),
                                path: format!("{path}[{i}].{key}[{j}].when"),
                                message: "a broadcast sends every item to every branch: `when` is for route"
                                    .into(),
                            });
                        }
                    }
                }
            }
        }
    };
    check_stages(root.get("stage"), "stage", problems, true);
    if default_policy == "dead_letter" && !has_dlq {
        problems.push(Problem {
            pos: root
                .get("pipeline")
                .and_then(|p| p.get("on_error"))
                .map_or(root.pos, |n| n.pos),
            path: "pipeline.on_error".into(),
            message: "\"dead_letter\" needs a [dead_letter] sink".into(),
        });
    }
    if let Some(checkpoint) = root.get("checkpoint") {
        checkpoint_store(checkpoint, problems);
    }
}

/// Whether `store` names a PostgreSQL server rather than a SQLite file
/// (`--checkpoint`, `weir checkpoints`).
pub fn is_postgres_url(store: &str) -> bool {
    store.starts_with("postgres://") || store.starts_with("postgresql://")
}

/// `[checkpoint]` names its store with `path` (a SQLite file) or `url` (a
/// PostgreSQL server, checked without connecting), not both.
fn checkpoint_store(checkpoint: &Node, problems: &mut Vec<Problem>) {
    let mut problem = |node: &Node, path: &str, message: String| {
        problems.push(Problem {
            pos: node.pos,
            path: path.into(),
            message,
        });
    };
    match (checkpoint.get("path"), checkpoint.get("url")) {
        (Some(_), Some(url)) => problem(
            url,
            "checkpoint.url",
            "give `path` (a SQLite file) or `url` (a PostgreSQL server), not both".into(),
        ),
        (None, None) => problem(
            checkpoint,
            "checkpoint",
            "missing key `path` (a SQLite file) or `url` (a PostgreSQL server)".into(),
        ),
        (None, Some(url)) => {
            let Some(text) = url.as_str() else { return };
            if !is_postgres_url(text) {
                problem(
                    url,
                    "checkpoint.url",
                    "expected a PostgreSQL URL: postgres://user@host:port/db".into(),
                );
            } else if let Err(e) = weir_io::postgres::check_url(text) {
                problem(url, "checkpoint.url", e.to_string());
            }
        }
        (Some(_), None) => {}
    }
}

fn stages_of<'a>(node: Option<&'a Node>, path: &str) -> Vec<Typed<'a>> {
    match node {
        Some(Node {
            value: Value::Array(items),
            ..
        }) => items
            .iter()
            .enumerate()
            .map(|(i, n)| Typed::new(n, Role::Stage, format!("{path}[{i}]")))
            .collect(),
        _ => Vec::new(),
    }
}

fn list_of<'a>(node: Option<&'a Node>, path: &str, table: &str) -> Vec<Opts<'a>> {
    let opts = schema::ROOT
        .iter()
        .find(|o| o.name == table)
        .map(|o| match o.kind {
            Kind::Tables(t) => t,
            _ => &[],
        })
        .unwrap_or(&[]);
    match node {
        Some(Node {
            value: Value::Array(items),
            ..
        }) => items
            .iter()
            .enumerate()
            .map(|(i, n)| Opts::new(Some(n), opts, format!("{path}[{i}]")))
            .collect(),
        _ => Vec::new(),
    }
}

/// A checked table with a `type`: its definition and options.
#[derive(Debug, Clone)]
pub struct Typed<'a> {
    /// `type = "…"`.
    pub type_name: &'a str,
    /// The type's definition; `None` for a custom stage.
    pub def: Option<&'static TypeDef>,
    /// Its options.
    pub opts: Opts<'a>,
}

impl<'a> Typed<'a> {
    fn new(node: &'a Node, role: Role, path: String) -> Typed<'a> {
        let type_name = node.get("type").and_then(Node::as_str).unwrap_or("");
        let def = schema::find(role, type_name);
        let options = def.map_or(schema::CUSTOM, |d| d.options);
        Typed {
            type_name,
            def,
            opts: Opts::new(Some(node), options, path),
        }
    }
}

/// Typed access to a checked table's options, defaults applied from the
/// schema. Asking for a key the schema does not define is a bug (it
/// panics in debug builds and tests), so the reader cannot drift from the
/// schema.
#[derive(Debug, Clone)]
pub struct Opts<'a> {
    node: Option<&'a Node>,
    opts: &'static [Opt],
    /// The table's path, for messages: `stage[2]`.
    pub path: String,
}

impl<'a> Opts<'a> {
    fn new(node: Option<&'a Node>, opts: &'static [Opt], path: impl Into<String>) -> Opts<'a> {
        Opts {
            node,
            opts,
            path: path.into(),
        }
    }

    fn def(&self, key: &str) -> &'static Opt {
        self.opts
            .iter()
            .find(|o| o.name == key)
            .unwrap_or_else(|| panic!("`{key}` is not in the schema of `{}`", self.path))
    }

    /// The node of `key` as written (no default).
    pub fn node(&self, key: &str) -> Option<&'a Node> {
        self.def(key);
        self.node.and_then(|n| n.get(key))
    }

    /// The table itself.
    pub fn root(&self) -> Option<&'a Node> {
        self.node
    }

    /// Where the table is.
    pub fn pos(&self) -> Pos {
        self.node.map_or_else(Pos::default, |n| n.pos)
    }

    /// Where `key` is, or the table when it is absent.
    pub fn pos_of(&self, key: &str) -> Pos {
        self.node(key).map_or_else(|| self.pos(), |n| n.pos)
    }

    fn default_node(&self, key: &str) -> Option<Node> {
        let d = self.def(key).default?;
        let value = match self.def(key).kind {
            Kind::Int => Value::Int(d.parse().expect("schema default")),
            Kind::Float => Value::Float(d.parse().expect("schema default")),
            Kind::Bool => Value::Bool(d == "true"),
            _ => Value::Str(d.to_owned()),
        };
        Some(Node {
            pos: self.pos(),
            value,
        })
    }

    fn get(&self, key: &str) -> Option<Node> {
        self.node(key).cloned().or_else(|| self.default_node(key))
    }

    /// A string (also jq, enum) option.
    pub fn str(&self, key: &str) -> Option<String> {
        self.get(key).and_then(|n| n.as_str().map(str::to_owned))
    }

    /// An integer option.
    pub fn int(&self, key: &str) -> Option<u64> {
        match self.get(key)?.value {
            Value::Int(i) => u64::try_from(i).ok(),
            _ => None,
        }
    }

    /// A number option.
    pub fn float(&self, key: &str) -> Option<f64> {
        match self.get(key)?.value {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    /// A boolean option.
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)?.value {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// A duration option.
    pub fn duration(&self, key: &str) -> Option<Duration> {
        self.str(key).and_then(|s| validate::parse_duration(&s).ok())
    }

    /// A size option.
    pub fn size(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|n| validate::parse_size(&n).ok())
    }

    /// A sub-table option.
    pub fn table(&self, key: &str) -> Option<Opts<'a>> {
        let Kind::Table(opts) = self.def(key).kind else {
            panic!("`{key}` is not a table in the schema")
        };
        self.node(key)
            .map(|n| Opts::new(Some(n), opts, validate::join(&self.path, key)))
    }

    /// An array-of-tables option.
    pub fn tables(&self, key: &str) -> Vec<Opts<'a>> {
        let Kind::Tables(opts) = self.def(key).kind else {
            panic!("`{key}` is not an array of tables in the schema")
        };
        match self.node(key) {
            Some(Node {
                value: Value::Array(items),
                ..
            }) => items
                .iter()
                .enumerate()
                .map(|(i, n)| Opts::new(Some(n), opts, format!("{}.{key}[{i}]", self.path)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A sub-pipeline's stages.
    pub fn stages(&self, key: &str) -> Vec<Typed<'a>> {
        stages_of(self.node(key), &validate::join(&self.path, key))
    }

    /// A sink option.
    pub fn sink(&self, key: &str) -> Option<Typed<'a>> {
        self.node(key)
            .map(|n| Typed::new(n, Role::Sink, validate::join(&self.path, key)))
    }

    /// A map option's entries, in document order.
    pub fn entries(&self, key: &str) -> Vec<(String, &'a Node)> {
        match self.node(key) {
            Some(Node {
                value: Value::Table(entries),
                ..
            }) => entries.iter().map(|e| (e.key.clone(), &e.node)).collect(),
            _ => Vec::new(),
        }
    }

    /// A list option's items.
    pub fn list(&self, key: &str) -> Vec<&'a Node> {
        match self.node(key) {
            Some(Node {
                value: Value::Array(items),
                ..
            }) => items.iter().collect(),
            _ => Vec::new(),
        }
    }
}
