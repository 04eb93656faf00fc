//! The direct evaluator's program: a small expression tree over
//! `serde_json::Value`, lowered from jaq's own parse tree when every node
//! of the expression is one it handles (so precedence and syntax are
//! jaq's), else not at all.
//!
//! Every expression here yields at most one output, which keeps
//! evaluation a plain recursive function (see `eval.rs`).

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Term};
use jaq_core::ops::{Cmp, Math};
use jaq_core::path::{Opt, Part};
use serde_json::{Number, Value};

/// An expression the direct evaluator runs.
#[derive(Debug, Clone)]
pub(super) enum Expr {
    /// `.`
    Id,
    /// `1`, `"a"`, `true`, `[]`: a constant.
    Lit(Value),
    /// `$name`: the n-th variable given at run time.
    Var(usize),
    /// `H.a.b[0]`: index the output of H step by step; a step written with
    /// `?` yields nothing where indexing fails.
    Path(Box<Expr>, Vec<(Key, bool)>),
    /// `l | r`
    Pipe(Box<Expr>, Box<Expr>),
    /// `{k: v, …}`
    Obj(Vec<(String, Expr)>),
    /// `[a, b, …]`: collects the outputs (each yields at most one).
    Arr(Vec<Expr>),
    /// `l == r`, `l < r`, …
    Cmp(Box<Expr>, Cmp, Box<Expr>),
    /// `l + r`, `l - r`, …
    Math(Box<Expr>, Math, Box<Expr>),
    /// `-e`
    Neg(Box<Expr>),
    /// `l or r` (stop at `true`) and `l and r` (stop at `false`).
    Logic(Box<Expr>, bool, Box<Expr>),
    /// `l // r`
    Alt(Box<Expr>, Box<Expr>),
    /// `if c then t else e end` (`select(c)` is `if c then . else empty end`).
    Ite(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `try e` and `e?`: an error yields nothing.
    Try(Box<Expr>),
    /// `empty`
    Empty,
    /// `not`
    Not,
    /// `length`
    Length,
    /// `tostring`
    ToString,
    /// `tonumber`
    ToNumber,
    /// `ascii_downcase` (`true`) and `ascii_upcase` (`false`).
    AsciiCase(bool),
    /// `has(k)`
    Has(Box<Expr>),
}

/// One step of a path: a literal key or array index.
#[derive(Debug, Clone)]
pub(super) enum Key {
    /// `.a`, `.["a"]`
    Field(String),
    /// `.[0]`, `.[-1]`
    Index(i64),
}

/// Parses `source` and lowers it if the whole expression is in the
/// direct evaluator's subset; `vars` are the declared variables
/// (`$`-prefixed), in run-time order.
pub(super) fn lower_source(source: &str, vars: &[String]) -> Option<Expr> {
    let term = jaq_core::load::parse(source, |p| p.term())?;
    Lower { vars }.term(&term)
}

struct Lower<'v> {
    vars: &'v [String],
}

impl Lower<'_> {
    fn term(&self, t: &Term<&str>) -> Option<Expr> {
        let boxed = |t| self.term(t).map(Box::new);
        Some(match t {
            Term::Id => Expr::Id,
            Term::Num(n) => Expr::Lit(Value::Number(number_literal(n)?)),
            Term::Str(None, parts) => Expr::Lit(Value::String(string_literal(parts)?)),
            Term::Arr(None) => Expr::Lit(Value::Array(Vec::new())),
            Term::Arr(Some(items)) => {
                let mut out = Vec::new();
                self.comma_items(items, &mut out)?;
                Expr::Arr(out)
            }
            Term::Obj(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    out.push(self.obj_entry(k, v.as_ref())?);
                }
                Expr::Obj(out)
            }
            Term::Neg(e) => Expr::Neg(boxed(e)?),
            Term::BinOp(l, op, r) => {
                let (l, r) = (boxed(l)?, boxed(r)?);
                match op {
                    BinaryOp::Pipe(None) => Expr::Pipe(l, r),
                    BinaryOp::Alt => Expr::Alt(l, r),
                    BinaryOp::Or => Expr::Logic(l, true, r),
                    BinaryOp::And => Expr::Logic(l, false, r),
                    BinaryOp::Math(m) => Expr::Math(l, *m, r),
                    BinaryOp::Cmp(c) => Expr::Cmp(l, *c, r),
                    _ => return None,
                }
            }
            Term::TryCatch(e, None) => Expr::Try(boxed(e)?),
            Term::IfThenElse(branches, otherwise) => {
                let mut acc = match otherwise {
                    Some(e) => self.term(e)?,
                    None => Expr::Id,
                };
                for (cond, then) in branches.iter().rev() {
                    acc = Expr::Ite(boxed(cond)?, boxed(then)?, Box::new(acc));
                }
                acc
            }
            Term::Call(name, args) => self.call(name, args)?,
            Term::Var(name) => Expr::Var(self.var(name)?),
            Term::Path(head, path) => {
                let mut keys = Vec::with_capacity(path.0.len());
                for (part, opt) in &path.0 {
                    let Part::Index(index) = part else {
                        return None;
                    };
                    keys.push((key_literal(index)?, matches!(opt, Opt::Optional)));
                }
                Expr::Path(boxed(head)?, keys)
            }
            _ => return None,
        })
    }

    /// The items of `a, b, c` inside an array constructor.
    fn comma_items(&self, t: &Term<&str>, out: &mut Vec<Expr>) -> Option<()> {
        if let Term::BinOp(l, BinaryOp::Comma, r) = t {
            self.comma_items(l, out)?;
            self.comma_items(r, out)
        } else {
            out.push(self.term(t)?);
            Some(())
        }
    }

    fn obj_entry(&self, key: &Term<&str>, value: Option<&Term<&str>>) -> Option<(String, Expr)> {
        match (key, value) {
            // `{$x}` is `{x: $x}`
            (Term::Var(name), None) => {
                let var = self.var(name)?;
                Some((name.strip_prefix('$')?.to_owned(), Expr::Var(var)))
            }
            (key, value) => {
                let key = match self.term(key)? {
                    Expr::Lit(Value::String(key)) => key,
                    _ => return None,
                };
                let value = match value {
                    Some(v) => self.term(v)?,
                    // `{a}` is `{a: .a}`
                    None => Expr::Path(Box::new(Expr::Id), vec![(Key::Field(key.clone()), false)]),
                };
                Some((key, value))
            }
        }
    }

    fn call(&self, name: &str, args: &[Term<&str>]) -> Option<Expr> {
        Some(match (name, args) {
            ("select", [cond]) => Expr::Ite(
                Box::new(self.term(cond)?),
                Box::new(Expr::Id),
                Box::new(Expr::Empty),
            ),
            ("has", [key]) => Expr::Has(Box::new(self.term(key)?)),
            ("not", []) => Expr::Not,
            ("length", []) => Expr::Length,
            ("tostring", []) => Expr::ToString,
            ("tonumber", []) => Expr::ToNumber,
            ("ascii_downcase", []) => Expr::AsciiCase(true),
            ("ascii_upcase", []) => Expr::AsciiCase(false),
            ("empty", []) => Expr::Empty,
            ("true", []) => Expr::Lit(Value::Bool(true)),
            ("false", []) => Expr::Lit(Value::Bool(false)),
            ("null", []) => Expr::Lit(Value::Null),
            _ => return None,
        })
    }

    fn var(&self, name: &str) -> Option<usize> {
        self.vars.iter().position(|v| v == name)
    }
}

/// A number literal as jaq reads it: an integer if it is all digits, else
/// a float. Integers beyond `u64` and literals beyond `f64` are left to
/// jaq (its big numbers).
fn number_literal(text: &str) -> Option<Number> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>().ok().map(Number::from)
    } else {
        text.parse::<f64>().ok().and_then(Number::from_f64)
    }
}

/// A string literal without interpolation or format.
fn string_literal(parts: &[StrPart<&str, Term<&str>>]) -> Option<String> {
    let mut out = String::new();
    for part in parts {
        match part {
            StrPart::Str(s) => out.push_str(s),
            StrPart::Char(c) => out.push(*c),
            StrPart::Term(_) => return None,
        }
    }
    Some(out)
}

/// A path step: a string literal or an integer literal, maybe negated.
fn key_literal(index: &Term<&str>) -> Option<Key> {
    match index {
        Term::Str(None, parts) => Some(Key::Field(string_literal(parts)?)),
        Term::Num(n) => Some(Key::Index(number_literal(n)?.as_i64()?)),
        Term::Neg(inner) => match &**inner {
            Term::Num(n) => Some(Key::Index(number_literal(n)?.as_i64()?.checked_neg()?)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lowers(source: &str) -> bool {
        lower_source(source, &["$i".to_owned()]).is_some()
    }

    #[test]
    fn the_benchmark_expressions_are_in_the_subset() {
        assert!(lowers(r#"select(.level != "info" or .status >= 500)"#));
        assert!(lowers(r#".level != "info" or .status >= 500"#));
        assert!(lowers("{ts, level, status, path: .http.path, ms: .latency_ms}"));
        assert!(lowers(
            r#"select(.level != "info" or .status >= 500) | {ts, level, status, path: .http.path, ms: .latency_ms}"#
        ));
    }

    #[test]
    fn expressions_outside_the_subset_are_not_lowered() {
        for source in [
            ".[]",
            "map(.a)",
            ".a, .b",
            "def f: .; f",
            r#""\(.a)""#,
            "@base64",
            ".a as $x | $x",
            "$undeclared",
            ".[1:2]",
            ".[.i]",
            "reduce .[] as $x (0; . + $x)",
            ".a = 1",
            "try .a catch .",
            "{(.k): 1}",
            "123456789012345678901234567890",
            "select(.a; .b)",
        ] {
            assert!(!lowers(source), "{source}");
        }
    }

    #[test]
    fn literals_keep_their_integer_or_float_kind() {
        assert_eq!(number_literal("500"), Some(Number::from(500u64)));
        assert_eq!(
            number_literal("18446744073709551615"),
            Some(Number::from(u64::MAX))
        );
        assert_eq!(number_literal("18446744073709551616"), None);
        assert_eq!(number_literal("1.5"), Number::from_f64(1.5));
        assert_eq!(number_literal("1e400"), None);
    }
}

/// What an expression's input is, for [`Expr::reads`]: a part of the
/// pipeline's item (the path from its root), or a value computed from
/// parts already accounted for.
#[derive(Debug, Clone)]
pub(super) enum Src {
    /// The item's value at this path (empty: the whole item).
    Item(Vec<String>),
    /// A computed value.
    Computed,
}

impl Expr {
    /// Adds to `out` the paths of the item this expression reads when its
    /// input is `src` (a path read whole covers everything below it).
    pub(super) fn reads(&self, src: &Src, out: &mut Vec<Vec<String>>) {
        let whole = |out: &mut Vec<Vec<String>>| {
            if let Src::Item(p) = src {
                out.push(p.clone());
            }
        };
        match self {
            Expr::Lit(_) | Expr::Var(_) | Expr::Empty => {}
            Expr::Id | Expr::Not | Expr::Length | Expr::ToString | Expr::ToNumber | Expr::AsciiCase(_) => {
                whole(out)
            }
            Expr::Has(k) => {
                k.reads(src, out);
                whole(out);
            }
            Expr::Path(head, keys) => match (head.as_ref(), src) {
                (Expr::Id, Src::Item(p)) => {
                    let mut path = p.clone();
                    for (key, _) in keys {
                        match key {
                            Key::Field(f) => path.push(f.clone()),
                            Key::Index(_) => break,
                        }
                    }
                    out.push(path);
                }
                _ => head.reads(src, out),
            },
            Expr::Pipe(l, r) => {
                let next = match (l.as_ref(), src) {
                    (Expr::Id, _) => src.clone(),
                    (Expr::Path(h, keys), Src::Item(p))
                        if matches!(h.as_ref(), Expr::Id)
                            && keys.iter().all(|(k, _)| matches!(k, Key::Field(_))) =>
                    {
                        let mut path = p.clone();
                        path.extend(keys.iter().filter_map(|(k, _)| match k {
                            Key::Field(f) => Some(f.clone()),
                            Key::Index(_) => None,
                        }));
                        Src::Item(path)
                    }
                    // `select(c) | r`: c reads the input, r gets it unchanged.
                    (Expr::Ite(c, t, e), _)
                        if matches!(t.as_ref(), Expr::Id) && matches!(e.as_ref(), Expr::Empty) =>
                    {
                        c.reads(src, out);
                        src.clone()
                    }
                    _ => {
                        l.reads(src, out);
                        Src::Computed
                    }
                };
                r.reads(&next, out);
            }
            Expr::Obj(fields) => fields.iter().for_each(|(_, v)| v.reads(src, out)),
            Expr::Arr(items) => items.iter().for_each(|v| v.reads(src, out)),
            Expr::Cmp(a, _, b) | Expr::Math(a, _, b) | Expr::Logic(a, _, b) | Expr::Alt(a, b) => {
                a.reads(src, out);
                b.reads(src, out);
            }
            Expr::Neg(a) | Expr::Try(a) => a.reads(src, out),
            Expr::Ite(c, t, e) => {
                c.reads(src, out);
                t.reads(src, out);
                e.reads(src, out);
            }
        }
    }
}
