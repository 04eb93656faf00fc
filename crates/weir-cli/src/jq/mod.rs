//! jq expressions over the pipeline's JSON items.
//!
//! [`Jq::compile`] accepts the jq language as [jaq] implements it, with
//! jaq's standard library (`map`, `select`, `reduce`, string
//! interpolation, `@base64`, `ascii_downcase`, `split`, `sort_by`, regexes,
//! dates…). Items cross the API as `serde_json::Value`s.
//!
//! # Two evaluators
//!
//! Converting every item into jaq's value type and back costs more than
//! most filters themselves, so an expression made only of the common
//! shapes below runs on a direct evaluator over `serde_json::Value`
//! instead ([`Jq::is_fast`] says which one an expression got):
//!
//! - `.`, `.a`, `.a.b`, `.["a"]`, `.[0]`, `.[-1]`, `.a?`, `try e`, `(e)?`
//! - literals: numbers, strings without interpolation, `true`, `false`,
//!   `null`, `[]`, `empty`
//! - `{a, b: e, "c": e, $v}`, `[e1, e2]`, `e | e`, `if … then … elif … else … end`
//! - `== != < <= > >=` (jq's total order over all types), `and`, `or`,
//!   `not`, `//`, `select(e)`, `has(e)`
//! - `+ - * / %` and unary `-`, `length`, `tostring`, `tonumber`,
//!   `ascii_downcase`, `ascii_upcase`
//! - variables declared with [`Jq::compile_with_vars`]
//!
//! Its semantics are jaq's, including for inputs of unexpected types; where
//! an input makes it fail (an error, an integer overflowing into jaq's big
//! integers, a rarely used case) that input is run through jaq instead, so
//! results and error messages are always jaq's. A differential test checks
//! the two evaluators against each other on random inputs; the ignored test
//! `jq::tests::bench_fast_vs_jaq_per_item` measures both (run it by hand
//! with `--release -- --ignored --nocapture`).
//!
//! # Numbers, strings and key order
//!
//! Integers stay integers, `u64` and `i64` extremes and floats round-trip
//! exactly. jaq's big-integer results that no `u64`/`i64` holds become the
//! nearest float; NaN becomes `null` and the infinities ±`f64::MAX` (as jq
//! prints them). The workspace builds serde_json without `preserve_order`,
//! so objects — inputs and outputs — iterate in key order: `{b, a}`
//! outputs `{"a": …, "b": …}`.
//!
//! [jaq]: https://github.com/01mf02/jaq

mod convert;
mod error;
mod eval;
mod fast;
mod raw;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use jaq_core::data::JustLut;
use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars};
use jaq_json::Val;
use serde_json::Value;

pub use error::{CompileError, EvalError};

type Filter = jaq_core::Filter<JustLut<Val>>;

/// A compiled jq filter: cheap to clone (shared), `Send + Sync`,
/// evaluated in-process.
///
/// # Examples
///
/// ```
/// use weir_cli::jq::Jq;
/// use serde_json::json;
///
/// let reshape = Jq::compile("{ts, path: .http.path}").unwrap();
/// let out = reshape.run(json!({"ts": 1, "http": {"path": "/"}, "x": 0})).unwrap();
/// assert_eq!(out.into_vec(), [json!({"ts": 1, "path": "/"})]);
///
/// let errors = Jq::compile(r#".level != "info" or .status >= 500"#).unwrap();
/// assert!(errors.test(&json!({"level": "warn", "status": 200})).unwrap());
/// assert!(!errors.test(&json!({"level": "info", "status": 200})).unwrap());
/// ```
#[derive(Clone)]
pub struct Jq {
    inner: Arc<Inner>,
}

struct Inner {
    source: String,
    vars: Vec<String>,
    filter: Filter,
    fast: Option<fast::Expr>,
    /// The expression as a predicate on raw field text, where it is one.
    raw: Option<raw::Pred>,
    /// The expression as an object of fields built from raw text, where
    /// it is one.
    shape: Option<raw::Shape>,
    /// The same object, written as JSON text from raw field text.
    reshape: Option<weir_io::format::Reshape>,
}

impl fmt::Debug for Jq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jq")
            .field("source", &self.inner.source)
            .field("vars", &self.inner.vars)
            .field("fast", &self.is_fast())
            .finish()
    }
}

impl Jq {
    /// Compiles a jq expression with jaq's standard library.
    ///
    /// # Errors
    ///
    /// A [`CompileError`] with the position of the offending token for a
    /// syntax error or an undefined filter or variable.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    /// use serde_json::json;
    ///
    /// let jq = Jq::compile("[.[] | ascii_downcase] | sort").unwrap();
    /// assert_eq!(jq.first(&json!(["b", "A"])).unwrap(), json!(["a", "b"]));
    ///
    /// let err = Jq::compile(".foo |").unwrap_err();
    /// assert_eq!(err.position(), (1, 7));
    /// ```
    pub fn compile(source: &str) -> Result<Jq, CompileError> {
        Self::compile_with_vars(source, &[])
    }

    /// Compiles a jq expression that may use the variables `vars`
    /// (`"$i"` or `"i"`), whose values are given at each run, in the same
    /// order, to [`run_with_vars`](Jq::run_with_vars) and its siblings.
    ///
    /// # Errors
    ///
    /// As [`compile`](Jq::compile); a variable used but not declared is
    /// undefined.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    /// use serde_json::json;
    ///
    /// let jq = Jq::compile_with_vars("{n: $i, id}", &["$i"]).unwrap();
    /// let out = jq.first_with_vars(&json!({"id": "x"}), &[json!(7)]).unwrap();
    /// assert_eq!(out, json!({"n": 7, "id": "x"}));
    /// ```
    pub fn compile_with_vars(source: &str, vars: &[&str]) -> Result<Jq, CompileError> {
        let vars: Vec<String> = vars
            .iter()
            .map(|v| {
                if v.starts_with('$') {
                    (*v).to_owned()
                } else {
                    format!("${v}")
                }
            })
            .collect();
        let filter = compile_jaq(source, &vars)?;
        let fast = fast::lower_source(source, &vars);
        let raw = fast.as_ref().and_then(raw::Pred::lower);
        let shape = fast.as_ref().and_then(raw::Shape::lower);
        let reshape = shape.as_ref().map(raw::Shape::reshape);
        Ok(Jq {
            inner: Arc::new(Inner {
                source: source.to_owned(),
                vars,
                filter,
                fast,
                raw,
                shape,
                reshape,
            }),
        })
    }

    /// The expression as written.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    ///
    /// assert_eq!(Jq::compile(".a | .b").unwrap().source(), ".a | .b");
    /// ```
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Whether the direct evaluator runs this expression (else every item
    /// goes through jaq). See the [module docs](self) for its subset.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    ///
    /// assert!(Jq::compile(r#"select(.status >= 500) | {ts, path: .http.path}"#).unwrap().is_fast());
    /// assert!(!Jq::compile("map(.a)").unwrap().is_fast());
    /// ```
    pub fn is_fast(&self) -> bool {
        self.inner.fast.is_some()
    }

    /// All outputs of the expression for one input (zero or more).
    ///
    /// # Errors
    ///
    /// An [`EvalError`] if the expression raises an error before its last
    /// output, or if it was compiled with variables.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    /// use serde_json::json;
    ///
    /// let jq = Jq::compile(".[] | select(. > 1)").unwrap();
    /// assert_eq!(jq.run(json!([1, 2, 3])).unwrap().into_vec(), [json!(2), json!(3)]);
    /// assert!(jq.run(json!(1)).is_err());
    /// ```
    pub fn run(&self, input: Value) -> Result<Outputs, EvalError> {
        self.run_with_vars(input, &[])
    }

    /// [`run`](Jq::run) with the values of the variables declared at
    /// [`compile_with_vars`](Jq::compile_with_vars), in their order.
    ///
    /// # Errors
    ///
    /// As [`run`](Jq::run); also if `vars` does not have one value per
    /// declared variable.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    /// use serde_json::json;
    ///
    /// let jq = Jq::compile_with_vars(".a + $x", &["$x"]).unwrap();
    /// assert_eq!(jq.run_with_vars(json!({"a": 1}), &[json!(2)]).unwrap().into_vec(), [json!(3)]);
    /// assert!(jq.run_with_vars(json!({"a": 1}), &[]).is_err());
    /// ```
    pub fn run_with_vars(&self, input: Value, vars: &[Value]) -> Result<Outputs, EvalError> {
        self.check_vars(vars)?;
        if let Some(fast) = &self.inner.fast {
            if let Ok(out) = fast.eval(&input, vars) {
                let out = match out {
                    None => return Ok(Outputs::default()),
                    // The output is the input itself: move it.
                    Some(Cow::Borrowed(v)) if std::ptr::eq(v, &input) => None,
                    Some(v) => Some(v.into_owned()),
                };
                return Ok(Outputs::one(out.unwrap_or(input)));
            }
        }
        let mut outputs = Outputs::default();
        for out in self.jaq_outputs(input, vars) {
            outputs.push(out?);
        }
        Ok(outputs)
    }

    /// Whether the input passes the expression as a `select` predicate:
    /// its first output is truthy (neither `false` nor `null`); no output
    /// is `false`.
    ///
    /// # Errors
    ///
    /// An [`EvalError`] if the expression raises an error before its first
    /// output.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    /// use serde_json::json;
    ///
    /// let jq = Jq::compile(".status >= 500").unwrap();
    /// assert!(jq.test(&json!({"status": 503})).unwrap());
    /// assert!(!jq.test(&json!({"status": 200})).unwrap());
    /// assert!(!Jq::compile(".a").unwrap().test(&json!({"a": null})).unwrap());
    /// assert!(!Jq::compile("empty").unwrap().test(&json!(1)).unwrap());
    /// assert!(Jq::compile(".a").unwrap().test(&json!(1)).is_err());
    /// ```
    pub fn test(&self, input: &Value) -> Result<bool, EvalError> {
        self.test_with_vars(input, &[])
    }

    /// [`test`](Jq::test) with variable values, as
    /// [`run_with_vars`](Jq::run_with_vars).
    ///
    /// # Errors
    ///
    /// As [`test`](Jq::test) and [`run_with_vars`](Jq::run_with_vars).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    /// use serde_json::json;
    ///
    /// let jq = Jq::compile_with_vars(".n > $min", &["min"]).unwrap();
    /// assert!(jq.test_with_vars(&json!({"n": 5}), &[json!(3)]).unwrap());
    /// ```
    pub fn test_with_vars(&self, input: &Value, vars: &[Value]) -> Result<bool, EvalError> {
        self.check_vars(vars)?;
        if let Some(fast) = &self.inner.fast {
            if let Ok(truth) = fast.truth(input, vars) {
                return Ok(truth.unwrap_or(false));
            }
        }
        match self.jaq_outputs(input.clone(), vars).next() {
            None => Ok(false),
            Some(out) => out.map(|v| eval::truthy(&v)),
        }
    }

    /// [`test`](Jq::test) decided on an object's raw field text, before
    /// it is decoded: `raw(k)` is field `k`'s JSON text (`Some(None)` when
    /// the object has no such field, `None` when it is not known). `None`
    /// when the expression is not a predicate of top-level fields with
    /// constants, or a field it reads is not a plain scalar: decode the
    /// object and [`test`](Jq::test) it then. Where it answers, the answer
    /// is `test`'s on the decoded object.
    pub(crate) fn test_raw<'a>(&self, raw: &impl Fn(&str) -> Option<Option<&'a str>>) -> Option<bool> {
        self.inner.raw.as_ref()?.test(raw)
    }

    /// The one output of an object-of-fields expression (`{a, b: .c.d}`),
    /// built from an object's raw field text as for
    /// [`test_raw`](Jq::test_raw); `None` when the expression is not one,
    /// or a path meets what it cannot index on raw text: run it on the
    /// decoded object then. Where it answers, the answer is
    /// [`run`](Jq::run)'s on the decoded object.
    pub(crate) fn map_raw<'a>(&self, raw: &impl Fn(&str) -> Option<Option<&'a str>>) -> Option<Value> {
        self.inner.shape.as_ref()?.build(raw)
    }

    /// [`map_raw`](Jq::map_raw)'s object as a reshape that writes its JSON
    /// text straight from a line's captured fields
    /// ([`Captured::reshape`](weir_io::format::Captured::reshape)), for a
    /// sink that writes the text and needs no value.
    pub(crate) fn reshape(&self) -> Option<&weir_io::format::Reshape> {
        self.inner.reshape.as_ref()
    }

    /// The first output, for expressions that compute a key (dedup,
    /// routing, partitioning).
    ///
    /// # Errors
    ///
    /// An [`EvalError`] if the expression raises an error before its first
    /// output or has no output.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    /// use serde_json::json;
    ///
    /// let key = Jq::compile(".user.id").unwrap();
    /// assert_eq!(key.first(&json!({"user": {"id": 7}})).unwrap(), json!(7));
    /// let err = Jq::compile("empty").unwrap().first(&json!(1)).unwrap_err();
    /// assert_eq!(err.to_string(), "jq `empty`: no output");
    /// ```
    pub fn first(&self, input: &Value) -> Result<Value, EvalError> {
        self.first_with_vars(input, &[])
    }

    /// [`first`](Jq::first) with variable values, as
    /// [`run_with_vars`](Jq::run_with_vars).
    ///
    /// # Errors
    ///
    /// As [`first`](Jq::first) and [`run_with_vars`](Jq::run_with_vars).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    /// use serde_json::json;
    ///
    /// let jq = Jq::compile_with_vars("[$shard, .id]", &["$shard"]).unwrap();
    /// assert_eq!(jq.first_with_vars(&json!({"id": 1}), &[json!("a")]).unwrap(), json!(["a", 1]));
    /// ```
    pub fn first_with_vars(&self, input: &Value, vars: &[Value]) -> Result<Value, EvalError> {
        self.check_vars(vars)?;
        if let Some(fast) = &self.inner.fast {
            match fast.eval(input, vars) {
                Ok(Some(v)) => return Ok(v.into_owned()),
                Ok(None) => return Err(self.error("no output")),
                Err(_) => {}
            }
        }
        match self.jaq_outputs(input.clone(), vars).next() {
            None => Err(self.error("no output")),
            Some(out) => out,
        }
    }

    fn error(&self, message: impl Into<String>) -> EvalError {
        EvalError::new(&self.inner.source, message)
    }

    fn check_vars(&self, vars: &[Value]) -> Result<(), EvalError> {
        let declared = &self.inner.vars;
        if vars.len() == declared.len() {
            Ok(())
        } else {
            Err(self.error(format!(
                "{} variable value(s) given for the {} declared ({})",
                vars.len(),
                declared.len(),
                declared.join(", ")
            )))
        }
    }

    /// The outputs of jaq itself (the evaluator for everything outside the
    /// fast subset, and for the inputs that the fast one gives up on).
    fn jaq_outputs<'a>(
        &'a self,
        input: Value,
        vars: &[Value],
    ) -> impl Iterator<Item = Result<Value, EvalError>> + 'a {
        let filter = &self.inner.filter;
        let vars = Vars::new(vars.iter().cloned().map(convert::to_val));
        let ctx = Ctx::<JustLut<Val>>::new(&filter.lut, vars);
        let mut start = Some((ctx, convert::to_val(input)));
        let mut outputs = None;
        let mut done = false;
        std::iter::from_fn(move || {
            // jq stops at the first error.
            if done {
                return None;
            }
            // Bad input never panics the pipeline, not even through a bug of
            // jaq's (`length` of `i64::MIN` overflows in it, for one). jaq
            // computes some outputs as soon as it starts: start it in here.
            let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if let Some(cv) = start.take() {
                    outputs = Some(filter.id.run(cv));
                }
                outputs.as_mut().and_then(Iterator::next)
            }));
            let out = match next {
                Ok(None) => return None,
                Ok(Some(Ok(v))) => convert::from_val(v).map_err(|e| self.error(e)),
                Ok(Some(Err(exn))) => Err(self.error(exception_message(exn))),
                Err(_) => Err(self.error("jaq panicked on this input (a bug in jaq)")),
            };
            done = out.is_err();
            Some(out)
        })
    }

    /// The same expression, always run by jaq (for differential tests).
    #[cfg(test)]
    fn compile_jaq_only(source: &str, vars: &[&str]) -> Result<Jq, CompileError> {
        let mut jq = Self::compile_with_vars(source, vars)?;
        if let Some(inner) = Arc::get_mut(&mut jq.inner) {
            inner.fast = None;
        }
        Ok(jq)
    }

    /// The paths of its input the expression reads (each read whole,
    /// covering everything below it; an empty path is the whole input), or
    /// `None` when that is not known (an expression the direct evaluator
    /// does not run). With [`weir_io::format::Projection`], a decoder
    /// then builds only these fields.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    ///
    /// let reshape = Jq::compile("{ts, path: .http.path}").unwrap();
    /// assert_eq!(reshape.reads(), Some(vec![vec!["ts".to_owned()], vec!["http".to_owned(), "path".to_owned()]]));
    /// let filter = Jq::compile(r#"select(.level != "info") | {level}"#).unwrap();
    /// assert_eq!(filter.reads(), Some(vec![vec!["level".to_owned()], vec!["level".to_owned()]]));
    /// assert_eq!(Jq::compile(".").unwrap().reads(), Some(vec![vec![]])); // all of it
    /// assert_eq!(Jq::compile("[.[] | . + 1]").unwrap().reads(), None);  // not known
    /// ```
    pub fn reads(&self) -> Option<Vec<Vec<String>>> {
        let mut out = Vec::new();
        self.fast_expr()?.reads(&fast::Src::Item(Vec::new()), &mut out);
        Some(out)
    }

    fn fast_expr(&self) -> Option<&fast::Expr> {
        self.inner.fast.as_ref()
    }
}

/// The text of a jaq exception: an error's message (a string raised with
/// `error("…")` as is, other values as JSON), or a halt.
fn exception_message(exn: jaq_core::Exn<'_, Val>) -> String {
    match exn.get_err() {
        Ok(err) => match err.into_val() {
            Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(&b).into_owned(),
            other => other.to_string(),
        },
        Err(exn) => match exn.get_halt() {
            Ok(code) => format!("halted with exit code {code}"),
            Err(_) => "internal jaq exception escaped the filter".to_owned(),
        },
    }
}

/// Compiles with jaq: parse (with the standard library's definitions),
/// then resolve names (with its native filters).
fn compile_jaq(source: &str, vars: &[String]) -> Result<Filter, CompileError> {
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(
            &arena,
            File {
                code: source,
                path: (),
            },
        )
        .map_err(|errs| load_error(source, errs))?;
    let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
    Compiler::default()
        .with_funs(funs)
        .with_global_vars(vars.iter().map(String::as_str))
        .compile(modules)
        .map_err(|errs| undefined_error(source, errs))
}

/// The byte offset of `part` in `whole`, if it is a slice of it (jaq's
/// errors point into the source; anything else is reported at the start).
fn offset_in(whole: &str, part: &str) -> usize {
    let (start, base) = (part.as_ptr() as usize, whole.as_ptr() as usize);
    if start >= base && start + part.len() <= base + whole.len() {
        load::span(whole, part).start
    } else {
        0
    }
}

fn load_error(source: &str, errs: load::Errors<&str, ()>) -> CompileError {
    use jaq_core::load::lex::Expect as Lex;
    let Some((_, err)) = errs.into_iter().next() else {
        return CompileError::new("cannot load the expression".into(), None, source, 0);
    };
    match err {
        load::Error::Lex(errs) => {
            // A bad character inside a block also leaves the block unclosed:
            // report the character, the cause.
            let first = errs
                .iter()
                .filter(|(expect, _)| !matches!(expect, Lex::Delim(_)))
                .chain(errs.iter())
                .min_by_key(|(expect, at)| (matches!(expect, Lex::Delim(_)), offset_in(source, at)));
            let Some((expect, at)) = first else {
                return CompileError::new("syntax error".into(), None, source, 0);
            };
            let offset = offset_in(source, at);
            let found = at
                .chars()
                .next()
                .map_or("end of expression".to_owned(), |c| format!("`{c}`"));
            match expect {
                Lex::Delim(open) => {
                    let close = match open.chars().next() {
                        Some('(') => "`)`",
                        Some('[') => "`]`",
                        Some('{') => "`}`",
                        _ => "closing quote `\"`",
                    };
                    CompileError::new(
                        format!("unclosed `{open}`"),
                        Some(format!("expected {close} before the end of the expression")),
                        source,
                        offset_in(source, open),
                    )
                }
                Lex::Token => {
                    CompileError::new(format!("unexpected character {found}"), None, source, offset)
                }
                other => CompileError::new(
                    format!("unexpected {found}"),
                    Some(format!("expected {}", other.as_str())),
                    source,
                    offset,
                ),
            }
        }
        load::Error::Parse(errs) => {
            let Some((expect, at)) = errs.into_iter().min_by_key(|(_, at)| offset_in(source, at)) else {
                return CompileError::new("syntax error".into(), None, source, 0);
            };
            let offset = if at.is_empty() {
                source.len()
            } else {
                offset_in(source, at)
            };
            CompileError::new(
                format!("unexpected {}", describe_token(at)),
                Some(format!("expected {}", describe_expect(&expect))),
                source,
                offset,
            )
        }
        load::Error::Io(errs) => {
            let (path, msg) = errs.into_iter().next().unwrap_or(("", String::new()));
            CompileError::new(
                format!("cannot import `{path}`"),
                Some(msg),
                source,
                offset_in(source, path),
            )
        }
    }
}

/// A token for an error message: its first characters, or "end of
/// expression" where there is none.
fn describe_token(at: &str) -> String {
    let token: String = at.chars().take(20).collect();
    match token.trim_end() {
        "" => "end of expression".to_owned(),
        t if token.len() < at.len() => format!("`{t}…`"),
        t => format!("`{t}`"),
    }
}

fn describe_expect(expect: &load::parse::Expect<&str>) -> String {
    use jaq_core::load::parse::Expect;
    match expect {
        Expect::Just(s) => format!("`{s}`"),
        Expect::Term => "a term (a value, a path like `.a`, a call…)".to_owned(),
        Expect::Nothing => "an operator or the end of the expression".to_owned(),
        Expect::Key => "a key after `.`".to_owned(),
        Expect::Ident => "an identifier".to_owned(),
        Expect::Var => "a variable".to_owned(),
        Expect::Pattern => "a pattern".to_owned(),
        Expect::Str => "a string".to_owned(),
        Expect::Arg => "an argument".to_owned(),
        Expect::ElseOrEnd => "`else` or `end`".to_owned(),
        Expect::CommaOrRBrack => "`,` or `]`".to_owned(),
        Expect::CommaOrRBrace => "`,` or `}`".to_owned(),
        Expect::SemicolonOrRParen => "`;` or `)`".to_owned(),
        other => other.as_str().to_owned(),
    }
}

fn undefined_error(source: &str, errs: jaq_core::compile::Errors<&str, ()>) -> CompileError {
    use jaq_core::compile::Undefined;
    let errs = errs.into_iter().flat_map(|(_, errs)| errs);
    let Some((name, undefined)) = errs.min_by_key(|(name, _)| offset_in(source, name)) else {
        return CompileError::new("cannot compile the expression".into(), None, source, 0);
    };
    let (what, detail) = match undefined {
        Undefined::Filter(arity) => (
            format!("undefined filter `{name}/{arity}`"),
            suggest_filter(name, arity).map(|s| format!("did you mean `{s}`?")),
        ),
        other => (format!("undefined {} `{name}`", other.as_str()), None),
    };
    CompileError::new(what, detail, source, offset_in(source, name))
}

/// The closest filter of the standard library to a misspelt one, by edit
/// distance (at most 2, or 1 for short names), the same arity first.
fn suggest_filter(name: &str, arity: usize) -> Option<String> {
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let defs = defs.map(|d| (d.name, d.args.len()));
    let funs = jaq_core::funs::<JustLut<Val>>()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .map(|(name, args, _)| (name, args.len()));
    let max = if name.chars().count() <= 4 { 1 } else { 2 };
    defs.chain(funs)
        .filter(|(n, _)| n.chars().next().is_some_and(char::is_alphabetic))
        .map(|(n, a)| (strsim::levenshtein(name, n), a != arity, n, a))
        .filter(|&(d, wrong_arity, ..)| d <= max && (d > 0 || wrong_arity))
        .min()
        .map(|(_, _, n, a)| format!("{n}/{a}"))
}

/// The outputs of a jq expression for one input: usually zero or one, so
/// those need no allocation beyond the values themselves.
///
/// # Examples
///
/// ```
/// use weir_cli::jq::Jq;
/// use serde_json::json;
///
/// let out = Jq::compile(".a, .b").unwrap().run(json!({"a": 1, "b": 2})).unwrap();
/// assert_eq!(out.len(), 2);
/// assert_eq!(out.as_slice(), [json!(1), json!(2)]);
/// let doubled: Vec<_> = out.into_iter().map(|v| v.as_i64().unwrap() * 2).collect();
/// assert_eq!(doubled, [2, 4]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs(Repr);

#[derive(Debug, Clone, Default, PartialEq)]
enum Repr {
    #[default]
    Zero,
    One(Value),
    Many(Vec<Value>),
}

impl Outputs {
    fn one(v: Value) -> Self {
        Outputs(Repr::One(v))
    }

    fn push(&mut self, v: Value) {
        self.0 = match std::mem::take(&mut self.0) {
            Repr::Zero => Repr::One(v),
            Repr::One(first) => Repr::Many(vec![first, v]),
            Repr::Many(mut all) => {
                all.push(v);
                Repr::Many(all)
            }
        };
    }

    /// The outputs, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    /// use serde_json::json;
    ///
    /// let out = Jq::compile(".a").unwrap().run(json!({"a": 1})).unwrap();
    /// assert_eq!(out.as_slice(), [json!(1)]);
    /// ```
    pub fn as_slice(&self) -> &[Value] {
        match &self.0 {
            Repr::Zero => &[],
            Repr::One(v) => std::slice::from_ref(v),
            Repr::Many(all) => all,
        }
    }

    /// How many outputs there are.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    /// use serde_json::json;
    ///
    /// assert_eq!(Jq::compile(".[]").unwrap().run(json!([1, 2, 3])).unwrap().len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there is no output (a filtered-out item).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    /// use serde_json::json;
    ///
    /// assert!(Jq::compile("select(.ok)").unwrap().run(json!({"ok": false})).unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        matches!(self.0, Repr::Zero)
    }

    /// The outputs as a vector.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    /// use serde_json::json;
    ///
    /// let out = Jq::compile(".[] * 10").unwrap().run(json!([1, 2])).unwrap();
    /// assert_eq!(out.into_vec(), [json!(10), json!(20)]);
    /// ```
    pub fn into_vec(self) -> Vec<Value> {
        match self.0 {
            Repr::Zero => Vec::new(),
            Repr::One(v) => vec![v],
            Repr::Many(all) => all,
        }
    }
}

impl IntoIterator for Outputs {
    type Item = Value;
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter(match self.0 {
            Repr::Zero => IterRepr::One(None),
            Repr::One(v) => IterRepr::One(Some(v)),
            Repr::Many(all) => IterRepr::Many(all.into_iter()),
        })
    }
}

impl<'a> IntoIterator for &'a Outputs {
    type Item = &'a Value;
    type IntoIter = std::slice::Iter<'a, Value>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

/// The iterator over [`Outputs`] by value.
///
/// # Examples
///
/// ```
/// use weir_cli::jq::Jq;
/// use serde_json::json;
///
/// let mut it = Jq::compile(".a").unwrap().run(json!({"a": 1})).unwrap().into_iter();
/// assert_eq!(it.next(), Some(json!(1)));
/// assert_eq!(it.next(), None);
/// ```
#[derive(Debug)]
pub struct IntoIter(IterRepr);

#[derive(Debug)]
enum IterRepr {
    One(Option<Value>),
    Many(std::vec::IntoIter<Value>),
}

impl Iterator for IntoIter {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        match &mut self.0 {
            IterRepr::One(v) => v.take(),
            IterRepr::Many(all) => all.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            IterRepr::One(v) => usize::from(v.is_some()),
            IterRepr::Many(all) => all.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for IntoIter {}
