//! Checks a configuration tree against the [schema](super::schema):
//! unknown keys and types (with the nearest valid name), kinds, required
//! keys, jq expressions. Every problem is collected with its position, so
//! one `weir check` shows them all.

use std::time::Duration;

use super::schema::{self, Kind, Opt, Role, TypeDef};
use super::tree::{Node, Pos, Value};

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Where.
    pub pos: Pos,
    /// The key's path: `stage[2].retry.backoff`.
    pub path: String,
    /// What is wrong, and what was expected.
    pub message: String,
}

/// Compiles a jq expression: `Err((message, position inside it))`.
pub type JqCheck<'a> = &'a dyn Fn(&str) -> Result<(), (String, Option<(usize, usize)>)>;

/// What the validator needs besides the tree.
pub struct Checker<'a> {
    /// Compiles jq expressions.
    pub jq: JqCheck<'a>,
    /// Names of custom stages registered by the binary.
    pub custom: &'a [&'a str],
    /// The problems found so far.
    pub problems: Vec<Problem>,
}

impl std::fmt::Debug for Checker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("problems", &self.problems)
            .finish()
    }
}

/// `"1.5 s"` → `(1.5, "s")`: a number and the unit after it, if the text
/// starts with a number.
fn number_and_unit(text: &str) -> Option<(f64, &str)> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    Some((number.parse().ok()?, unit.trim()))
}

/// Parses a duration: `"250ms"`, `"1.5s"`, `"2m"`, `"1h"`, `"100us"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (n, unit) = number_and_unit(text)
        .ok_or_else(|| format!("expected a duration such as \"500ms\" or \"2s\", found \"{text}\""))?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "" => return Err(format!("\"{text}\" needs a unit: ms, s, m or h")),
        other => {
            return Err(format!(
                "unknown unit \"{other}\" in \"{text}\" (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("\"{text}\" is not a valid duration"))
}

/// Parses a size: an integer number of bytes, or `"64KiB"`, `"16MiB"`,
/// `"1GiB"`, `"10MB"`, `"512B"`.
pub fn parse_size(node: &Node) -> Result<u64, String> {
    match &node.value {
        Value::Int(i) if *i >= 0 => Ok(*i as u64),
        Value::Str(text) => {
            let (n, unit) = number_and_unit(text)
                .ok_or_else(|| format!("expected a size such as \"16MiB\", found \"{text}\""))?;
            let mult: f64 = match unit {
                "" | "B" => 1.0,
                "KB" | "kB" => 1e3,
                "MB" => 1e6,
                "GB" => 1e9,
                "KiB" => 1024.0,
                "MiB" => 1024.0 * 1024.0,
                "GiB" => 1024.0 * 1024.0 * 1024.0,
                other => {
                    return Err(format!(
                        "unknown unit \"{other}\" in \"{text}\" (use B, KiB, MiB, GiB, KB, MB, GB)"
                    ))
                }
            };
            Ok((n * mult) as u64)
        }
        other => Err(format!(
            "expected a size (bytes, or \"16MiB\"), found {}",
            other.type_name()
        )),
    }
}

impl Checker<'_> {
    fn problem(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            pos,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Checks the whole document.
    pub fn root(&mut self, root: &Node) {
        self.table(root, schema::ROOT, "");
        match root.get("source") {
            Some(Node {
                value: Value::Array(items),
                ..
            }) => {
                if items.is_empty() {
                    self.problem(root.pos, "source", "expected at least one [[source]]");
                }
                for (i, item) in items.iter().enumerate() {
                    self.typed(item, Role::Source, &format!("source[{i}]"));
                }
            }
            Some(
                table @ Node {
                    value: Value::Table(_),
                    ..
                },
            ) => {
                self.typed(table, Role::Source, "source");
            }
            Some(other) => self.problem(
                other.pos,
                "source",
                format!(
                    "expected a source table or an array of them, found {}",
                    other.value.type_name()
                ),
            ),
            None => {}
        }
        if let Some(dl) = root.get("dead_letter") {
            self.typed(dl, Role::DeadLetter, "dead_letter");
        }
    }

    /// Checks a table with a `type` key against the types of `role`.
    pub fn typed(&mut self, node: &Node, role: Role, path: &str) -> Option<&'static TypeDef> {
        let Value::Table(_) = &node.value else {
            self.problem(
                node.pos,
                path,
                format!(
                    "expected a {} table, found {}",
                    role.as_str(),
                    node.value.type_name()
                ),
            );
            return None;
        };
        let Some(type_node) = node.get("type") else {
            self.problem(
                node.pos,
                path,
                format!("missing key `type` (one of {})", self.type_names(role)),
            );
            return None;
        };
        let Some(name) = type_node.as_str() else {
            self.problem(
                type_node.pos,
                &format!("{path}.type"),
                format!("expected a string, found {}", type_node.value.type_name()),
            );
            return None;
        };
        if let Some(def) = schema::find(role, name) {
            self.table_with_type(node, def.options, path);
            return Some(def);
        }
        if role == Role::Stage && self.custom.contains(&name) {
            self.table_with_type(node, schema::CUSTOM, path);
            return None;
        }
        let names: Vec<&str> = schema::types(role)
            .map(|t| t.name)
            .chain(if role == Role::Stage {
                self.custom.to_vec()
            } else {
                Vec::new()
            })
            .collect();
        let hint = hint(name, &names, '"');
        self.problem(
            type_node.pos,
            &format!("{path}.type"),
            format!("unknown {} type \"{name}\"{hint}", role.as_str()),
        );
        None
    }

    fn type_names(&self, role: Role) -> String {
        let names: Vec<&str> = schema::types(role).map(|t| t.name).collect();
        schema::quoted(&names)
    }

    fn table_with_type(&mut self, node: &Node, opts: &'static [Opt], path: &str) {
        self.table_keys(node, opts, path, &["type"]);
    }

    /// Checks a table's keys and values against `opts`.
    pub fn table(&mut self, node: &Node, opts: &'static [Opt], path: &str) {
        self.table_keys(node, opts, path, &[]);
    }

    fn table_keys(&mut self, node: &Node, opts: &'static [Opt], path: &str, extra: &[&str]) {
        let Value::Table(entries) = &node.value else {
            self.problem(
                node.pos,
                path,
                format!("expected a table, found {}", node.value.type_name()),
            );
            return;
        };
        for e in entries {
            let key_path = join(path, &e.key);
            if extra.contains(&e.key.as_str()) {
                continue;
            }
            match opts.iter().find(|o| o.name == e.key) {
                Some(o) => self.value(&e.node, &o.kind, &key_path),
                None => {
                    let names: Vec<&str> = opts.iter().map(|o| o.name).collect();
                    let hint = hint(&e.key, &names, '`');
                    self.problem(e.pos, &key_path, format!("unknown key `{}`{hint}", e.key));
                }
            }
        }
        for o in opts.iter().filter(|o| o.required) {
            if node.get(o.name).is_none() {
                self.problem(
                    node.pos,
                    &join(path, o.name),
                    format!("missing required key `{}` ({})", o.name, o.kind.describe()),
                );
            }
        }
    }

    fn value(&mut self, node: &Node, kind: &Kind, path: &str) {
        let wrong = |this: &mut Self| {
            this.problem(
                node.pos,
                path,
                format!("expected {}, found {}", kind.describe(), describe_found(node)),
            )
        };
        match (kind, &node.value) {
            (Kind::Any, _) => {}
            (Kind::Str, Value::Str(_)) => {}
            (Kind::Jq, Value::Str(src)) => {
                if let Err((message, _)) = (self.jq)(src) {
                    let message = message.strip_prefix("jq: ").unwrap_or(&message).to_owned();
                    self.problem(node.pos, path, format!("invalid jq expression: {message}"));
                }
            }
            (Kind::Int, Value::Int(i)) if *i >= 0 => {}
            (Kind::Int, Value::Int(_)) => self.problem(node.pos, path, "expected a non-negative integer"),
            (Kind::Float, Value::Int(_) | Value::Float(_)) => {}
            (Kind::Bool, Value::Bool(_)) => {}
            (Kind::Duration, Value::Str(s)) => {
                if let Err(e) = parse_duration(s) {
                    self.problem(node.pos, path, e);
                }
            }
            (Kind::Size, _) => {
                if let Err(e) = parse_size(node) {
                    self.problem(node.pos, path, e);
                }
            }
            (Kind::Enum(names), Value::Str(s)) => {
                if !names.contains(&s.as_str()) {
                    let hint = schema::nearest(s, names.iter().copied())
                        .map(|n| format!(" (did you mean \"{n}\"?)"))
                        .unwrap_or_default();
                    self.problem(
                        node.pos,
                        path,
                        format!("expected one of {}, found \"{s}\"{hint}", schema::quoted(names)),
                    );
                }
            }
            (Kind::Table(opts), Value::Table(_)) => self.table(node, opts, path),
            (Kind::Map(inner), Value::Table(entries)) => {
                for e in entries {
                    self.value(&e.node, inner, &join(path, &e.key));
                }
            }
            (Kind::List(inner), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.value(item, inner, &format!("{path}[{i}]"));
                }
            }
            (Kind::Tables(opts), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.table(item, opts, &format!("{path}[{i}]"));
                }
            }
            (Kind::Stages, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.typed(item, Role::Stage, &format!("{path}[{i}]"));
                }
            }
            (Kind::Sink, Value::Table(_)) => {
                self.typed(node, Role::Sink, path);
            }
            _ => wrong(self),
        }
    }
}

/// ` (did you mean "x"?)` for a likely typo, else ` (expected one of …)`.
fn hint(wrong: &str, names: &[&str], quote: char) -> String {
    match schema::nearest(wrong, names.iter().copied()) {
        Some(near) => format!(" (did you mean {quote}{near}{quote}?)"),
        None => format!(" (expected one of {})", schema::quoted(names)),
    }
}

fn describe_found(node: &Node) -> String {
    match &node.value {
        Value::Str(s) if s.len() <= 40 => format!("\"{s}\""),
        other => other.type_name().to_owned(),
    }
}

/// `a.b`, or `b` at the root.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::parse_toml;
    use super::*;

    fn check(text: &str) -> Vec<Problem> {
        let ok = |_: &str| Ok(());
        let mut c = Checker {
            jq: &ok,
            custom: &["enrich"],
            problems: Vec::new(),
        };
        c.root(&parse_toml(text).unwrap());
        c.problems
    }

    #[test]
    fn a_valid_config_has_no_problems() {
        let p = check(
            "[[source]]\ntype = \"file\"\npath = \"x\"\n[[stage]]\ntype = \"map\"\njq = \".\"\nretry = { max_attempts = 2, backoff = \"10ms\" }\n[[stage]]\ntype = \"enrich\"\nconfig = { a = 1 }\n[sink]\ntype = \"stdout\"\n",
        );
        assert_eq!(p, []);
    }

    #[test]
    fn unknown_keys_and_types_name_the_nearest_valid_one_with_positions() {
        let p = check("[[source]]\ntype = \"file\"\npath = \"x\"\n[[stage]]\ntype = \"fliter\"\njq = \".\"\n[[stage]]\ntype = \"map\"\njq = \".\"\nconcurency = 2\n");
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].pos, Pos { line: 5, col: 8 });
        assert!(
            p[0].message.contains("did you mean \"filter\""),
            "{}",
            p[0].message
        );
        assert_eq!(p[1].path, "stage[1].concurency");
        assert_eq!(p[1].pos, Pos { line: 10, col: 1 });
        assert!(
            p[1].message.contains("did you mean `concurrency`"),
            "{}",
            p[1].message
        );
    }

    #[test]
    fn type_errors_say_what_was_expected_and_found() {
        let p = check("[[source]]\ntype = \"file\"\npath = 3\n[pipeline]\ncapacity = \"big\"\nprogress_interval = \"5\"\n");
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p
            .iter()
            .any(|p| p.path == "source[0].path" && p.message == "expected string, found an integer"));
        assert!(p
            .iter()
            .any(|p| p.path == "pipeline.capacity" && p.message.contains("found \"big\"")));
        assert!(p.iter().any(|p| p.message.contains("needs a unit")));
    }

    #[test]
    fn missing_required_keys_and_sources_are_problems() {
        let p = check("[[source]]\ntype = \"file\"\n");
        assert_eq!(p[0].path, "source[0].path");
        let p = check("[pipeline]\nname = \"x\"\n");
        assert_eq!(p[0].path, "source");
    }

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("2 weeks").is_err());
        let n = |t: &str| parse_size(&parse_toml(&format!("x = {t}")).unwrap().get("x").unwrap().clone());
        assert_eq!(n("\"16MiB\"").unwrap(), 16 << 20);
        assert_eq!(n("100").unwrap(), 100);
        assert!(n("\"3 parsecs\"").is_err());
    }
}
