//! `weir graph`: the stage graph of a config, as DOT or Mermaid, each
//! node labelled with its settings.

use std::fmt::Write as _;

use crate::cli::GraphFormat;
use crate::config::tree::{Node, Value};
use crate::config::{Config, Typed};

/// A node of the graph.
#[derive(Debug)]
struct Vertex {
    id: String,
    label: String,
    shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Source,
    Stage,
    Sink,
}

#[derive(Debug, Default)]
struct Graph {
    vertices: Vec<Vertex>,
    edges: Vec<(String, String, Option<String>)>,
}

impl Graph {
    fn add(&mut self, label: String, shape: Shape) -> String {
        let id = format!("n{}", self.vertices.len());
        self.vertices.push(Vertex {
            id: id.clone(),
            label,
            shape,
        });
        id
    }
}

/// `key=value` for every option written in the table (not `type`).
fn settings(node: &Node) -> Vec<String> {
    let Value::Table(entries) = &node.value else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|e| {
            !matches!(
                e.key.as_str(),
                "type" | "name" | "stage" | "sink" | "route" | "branch"
            )
        })
        .map(|e| format!("{} = {}", e.key, e.node.to_json()))
        .collect()
}

fn label(t: &Typed<'_>, node: Option<&Node>) -> String {
    let name = node
        .and_then(|n| n.get("name"))
        .and_then(Node::as_str)
        .unwrap_or(t.type_name)
        .to_owned();
    let mut lines = vec![if name == t.type_name {
        name
    } else {
        format!("{name} ({})", t.type_name)
    }];
    if let Some(n) = node {
        lines.extend(settings(n));
    }
    lines.join("\n")
}

fn stages(g: &mut Graph, mut prev: String, list: &[Typed<'_>], sink: Option<Typed<'_>>) {
    for t in list {
        let node = table_of(t);
        let id = g.add(label(t, node), Shape::Stage);
        g.edges.push((prev, id.clone(), None));
        prev = id;
        let key = match t.type_name {
            "route" => "route",
            "broadcast" => "branch",
            _ => continue,
        };
        for b in t.opts.tables(key) {
            let name = b.str("name").unwrap_or_default();
            let when = b
                .str("when")
                .map_or_else(|| name.clone(), |w| format!("{name}: {w}"));
            let first = g.add(format!("branch {name}"), Shape::Stage);
            g.edges.push((prev.clone(), first.clone(), Some(when)));
            stages(g, first, &b.stages("stage"), b.sink("sink"));
        }
        return;
    }
    let id = match sink {
        Some(s) => {
            let node = table_of(&s);
            g.add(label(&s, node), Shape::Sink)
        }
        None => g.add("discard".into(), Shape::Sink),
    };
    g.edges.push((prev, id, None));
}

fn table_of<'a>(t: &Typed<'a>) -> Option<&'a Node> {
    t.opts.root()
}

/// Renders the graph of `config`.
pub(crate) fn render(config: &Config, format: GraphFormat) -> String {
    let mut g = Graph::default();
    let parse = g.add("parse".into(), Shape::Stage);
    for s in config.sources() {
        let id = g.add(label(&s, table_of(&s)), Shape::Source);
        g.edges.push((id, parse.clone(), None));
    }
    if let Some(dl) = config.dead_letter() {
        let id = g.add(label(&dl, table_of(&dl)), Shape::Sink);
        g.edges.push(("failures".into(), id, None));
    }
    stages(&mut g, parse, &config.stages(), config.sink());
    let mut out = String::new();
    match format {
        GraphFormat::Dot => {
            let _ = writeln!(
                out,
                "digraph weir {{\n  rankdir=LR;\n  node [fontname=\"monospace\"];"
            );
            for v in &g.vertices {
                let shape = match v.shape {
                    Shape::Source => "cds",
                    Shape::Stage => "box",
                    Shape::Sink => "cylinder",
                };
                let _ = writeln!(
                    out,
                    "  {} [shape={shape}, label=\"{}\"];",
                    v.id,
                    dot_escape(&v.label)
                );
            }
            if g.edges.iter().any(|(from, _, _)| from == "failures") {
                let _ = writeln!(out, "  failures [shape=note, label=\"failed items\"];");
            }
            for (from, to, label) in &g.edges {
                match label {
                    Some(l) => {
                        let _ = writeln!(out, "  {from} -> {to} [label=\"{}\"];", dot_escape(l));
                    }
                    None => {
                        let _ = writeln!(out, "  {from} -> {to};");
                    }
                }
            }
            out.push_str("}\n");
        }
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            if g.edges.iter().any(|(from, _, _)| from == "failures") {
                out.push_str("  failures([\"failed items\"])\n");
            }
            for v in &g.vertices {
                let text = mermaid_escape(&v.label);
                let _ = match v.shape {
                    Shape::Source => writeln!(out, "  {}[/\"{text}\"/]", v.id),
                    Shape::Stage => writeln!(out, "  {}[\"{text}\"]", v.id),
                    Shape::Sink => writeln!(out, "  {}[(\"{text}\")]", v.id),
                };
            }
            for (from, to, label) in &g.edges {
                let _ = match label {
                    Some(l) => writeln!(out, "  {from} -->|\"{}\"| {to}", mermaid_escape(l)),
                    None => writeln!(out, "  {from} --> {to}"),
                };
            }
        }
    }
    out
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\l")
        + if s.contains('\n') { "\\l" } else { "" }
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;").replace('\n', "<br/>")
}
