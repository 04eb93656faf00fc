//! The configuration as a tree of values that remember where they were
//! written: TOML and YAML both parse into it, so validation, interpolation
//! and error positions are written once for both.

use std::fmt;

/// A position in a configuration file (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// The line, from 1.
    pub line: usize,
    /// The column (in characters), from 1.
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A value of the configuration with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub pos: Pos,
    /// The value.
    pub value: Value,
}

/// A configuration value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// YAML's `null` / `~` (TOML has none).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string (also TOML's dates, as written).
    Str(String),
    /// An array.
    Array(Vec<Node>),
    /// A table, in document order: each key with its own position.
    Table(Vec<Entry>),
}

/// A key of a table, with its position and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// Where the key is written.
    pub pos: Pos,
    /// Its value.
    pub node: Node,
}

impl Value {
    /// The value's type as the configuration's docs name it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

impl Node {
    /// The entry named `key`, when this is a table that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Table(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.node),
            _ => None,
        }
    }

    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as JSON (positions dropped).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
            Value::Str(s) => s.clone().into(),
            Value::Array(items) => items.iter().map(Node::to_json).collect(),
            Value::Table(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.node.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Where a parse failed and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// Where, when known.
    pub pos: Pos,
    /// What the parser said.
    pub message: String,
}

/// Line and column (1-based, in characters) of byte `offset` in `text`.
pub fn position(text: &str, offset: usize) -> Pos {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Pos {
        line,
        col: before[line_start..].chars().count() + 1,
    }
}

/// Parses TOML text into a [`Node`] (the document's root table).
pub fn parse_toml(text: &str) -> Result<Node, SyntaxError> {
    let root = toml::de::DeTable::parse(text).map_err(|e| SyntaxError {
        pos: e.span().map(|s| position(text, s.start)).unwrap_or_default(),
        message: e.message().trim_end().to_owned(),
    })?;
    let pos = position(text, root.span().start);
    Ok(Node {
        pos,
        value: toml_table(text, root.into_inner()),
    })
}

fn toml_table(text: &str, table: toml::de::DeTable<'_>) -> Value {
    Value::Table(
        table
            .into_iter()
            .map(|(key, value)| Entry {
                pos: position(text, key.span().start),
                key: key.into_inner().into_owned(),
                node: toml_node(text, value),
            })
            .collect(),
    )
}

fn toml_node(text: &str, value: toml::Spanned<toml::de::DeValue<'_>>) -> Node {
    use toml::de::DeValue;
    let pos = position(text, value.span().start);
    let value = match value.into_inner() {
        DeValue::String(s) => Value::Str(s.into_owned()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Str(i.as_str().to_owned()),
        },
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(f) => Value::Float(f),
            Err(_) => Value::Str(f.as_str().to_owned()),
        },
        DeValue::Boolean(b) => Value::Bool(b),
        DeValue::Datetime(d) => Value::Str(d.to_string()),
        DeValue::Array(items) => Value::Array(items.into_iter().map(|v| toml_node(text, v)).collect()),
        DeValue::Table(t) => toml_table(text, t),
    };
    Node { pos, value }
}

/// Parses YAML text (one document) into a [`Node`].
pub fn parse_yaml(text: &str) -> Result<Node, SyntaxError> {
    use saphyr::{LoadableYamlNode, MarkedYaml};
    let docs = MarkedYaml::load_from_str(text).map_err(|e| SyntaxError {
        pos: Pos {
            line: e.marker().line(),
            col: e.marker().col() + 1,
        },
        message: e.info().to_owned(),
    })?;
    match docs.len() {
        0 => Ok(Node {
            pos: Pos { line: 1, col: 1 },
            value: Value::Table(Vec::new()),
        }),
        1 => yaml_node(docs.into_iter().next().expect("one document")),
        _ => Err(SyntaxError {
            pos: Pos { line: 1, col: 1 },
            message: format!("expected one YAML document, found {}", docs.len()),
        }),
    }
}

fn yaml_pos(start: &saphyr::Marker) -> Pos {
    Pos {
        line: start.line(),
        col: start.col() + 1,
    }
}

fn yaml_node(node: saphyr::MarkedYaml<'_>) -> Result<Node, SyntaxError> {
    use saphyr::{Scalar, YamlData};
    let pos = yaml_pos(&node.span.start);
    let value = match node.data {
        YamlData::Value(Scalar::Null) => Value::Null,
        YamlData::Value(Scalar::Boolean(b)) => Value::Bool(b),
        YamlData::Value(Scalar::Integer(i)) => Value::Int(i),
        YamlData::Value(Scalar::FloatingPoint(f)) => Value::Float(f.into_inner()),
        YamlData::Value(Scalar::String(s)) => Value::Str(s.into_owned()),
        YamlData::Representation(s, _, _) => Value::Str(s.into_owned()),
        YamlData::Sequence(items) => {
            Value::Array(items.into_iter().map(yaml_node).collect::<Result<_, _>>()?)
        }
        YamlData::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (key, value) in map {
                let key_pos = yaml_pos(&key.span.start);
                let key = match key.data {
                    YamlData::Value(Scalar::String(s)) => s.into_owned(),
                    YamlData::Value(Scalar::Integer(i)) => i.to_string(),
                    YamlData::Value(Scalar::Boolean(b)) => b.to_string(),
                    _ => {
                        return Err(SyntaxError {
                            pos: key_pos,
                            message: "a key must be a string".to_owned(),
                        })
                    }
                };
                entries.push(Entry {
                    key,
                    pos: key_pos,
                    node: yaml_node(value)?,
                });
            }
            Value::Table(entries)
        }
        YamlData::Tagged(_, inner) => return yaml_node(*inner),
        YamlData::Alias(_) | YamlData::BadValue => {
            return Err(SyntaxError {
                pos,
                message: "aliases and bad values are not supported".to_owned(),
            })
        }
    };
    Ok(Node { pos, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_yaml_give_the_same_tree_with_positions() {
        let toml = "[pipeline]\nname = \"x\"\n\n[[stage]]\ntype = \"map\"\nn = 3\n";
        let yaml = "pipeline:\n  name: x\nstage:\n  - type: map\n    n: 3\n";
        let (t, y) = (parse_toml(toml).unwrap(), parse_yaml(yaml).unwrap());
        assert_eq!(t.to_json(), y.to_json());
        let stage = &t.get("stage").unwrap();
        let Value::Array(items) = &stage.value else {
            panic!()
        };
        assert_eq!(items[0].get("n").unwrap().pos, Pos { line: 6, col: 5 });
        let Value::Array(items) = &y.get("stage").unwrap().value else {
            panic!()
        };
        assert_eq!(items[0].get("n").unwrap().pos, Pos { line: 5, col: 8 });
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse_toml("a = 1\nb = = 2\n").unwrap_err();
        assert_eq!(e.pos.line, 2);
        let e = parse_yaml("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
    }

    #[test]
    fn position_counts_characters() {
        assert_eq!(position("ab\ncdé f", 7), Pos { line: 2, col: 4 });
    }
}
