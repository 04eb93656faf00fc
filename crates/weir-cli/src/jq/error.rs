//! The two errors of the jq engine: one when an expression does not
//! compile, one when it fails on an input.

use std::fmt;

/// Longest error message kept from jaq: its messages quote the offending
/// value, which may be a whole (large) input.
const MAX_MESSAGE_CHARS: usize = 300;

/// A jq expression that does not compile: a syntax error, an unknown
/// filter or variable.
///
/// Displays as `jq: <what> at <line>:<column>[: <detail>]`, the position
/// being that of the offending token inside the expression (1-based; the
/// column counts characters).
///
/// # Examples
///
/// ```
/// use weir_cli::jq::Jq;
///
/// let err = Jq::compile("selct(.a)").unwrap_err();
/// assert_eq!(err.position(), (1, 1));
/// assert!(err.to_string().contains("undefined filter `selct/1`"), "{err}");
/// assert!(err.to_string().contains("did you mean `select/1`?"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    message: String,
    detail: Option<String>,
    line: usize,
    column: usize,
}

impl CompileError {
    pub(super) fn new(message: String, detail: Option<String>, source: &str, offset: usize) -> Self {
        let (line, column) = line_column(source, offset);
        CompileError {
            message,
            detail,
            line,
            column,
        }
    }

    /// The line and column (both 1-based; columns count characters) of the
    /// offending token inside the expression.
    ///
    /// A caller that embedded the expression in a larger text (a config
    /// file) adds its own position to this one.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    ///
    /// let err = Jq::compile(".a |\n  .b +").unwrap_err();
    /// assert_eq!(err.position(), (2, 7)); // the end of the expression
    /// ```
    pub fn position(&self) -> (usize, usize) {
        (self.line, self.column)
    }

    /// What is wrong, without the position: ``unexpected `b` ``,
    /// ``undefined filter `selct/1` ``, ``unclosed `(` ``…
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    ///
    /// let err = Jq::compile("$nope").unwrap_err();
    /// assert_eq!(err.message(), "undefined variable `$nope`");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What the parser expected or what was probably meant, if known:
    /// ``expected `,` or `}` ``, ``did you mean `select/1`?``.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    ///
    /// let err = Jq::compile("{a: 1 b}").unwrap_err();
    /// assert_eq!(err.detail(), Some("expected `,` or `}`"));
    /// assert_eq!(err.message(), "unexpected `b`");
    /// ```
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "jq: {} at {}:{}", self.message, self.line, self.column)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CompileError {}

/// A jq expression that failed on one input: an error raised by the
/// expression (`error("…")`, indexing a number, adding a string to a
/// number…).
///
/// Displays as ``jq `<expression>`: <jq's message>``.
///
/// # Examples
///
/// ```
/// use weir_cli::jq::Jq;
/// use serde_json::json;
///
/// let jq = Jq::compile(".a + 1").unwrap();
/// let err = jq.run(json!({"a": "x"})).unwrap_err();
/// assert_eq!(err.to_string(), r#"jq `.a + 1`: cannot calculate "x" + 1"#);
/// assert_eq!(err.message(), r#"cannot calculate "x" + 1"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    expression: String,
    message: String,
}

impl EvalError {
    pub(super) fn new(expression: &str, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
            message.truncate(cut);
            message.push('…');
        }
        EvalError {
            expression: expression.to_owned(),
            message,
        }
    }

    /// jq's message, without the expression.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    /// use serde_json::json;
    ///
    /// let err = Jq::compile(r#"error("bad item")"#).unwrap().run(json!(1)).unwrap_err();
    /// assert_eq!(err.message(), "bad item");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The expression that failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_cli::jq::Jq;
    /// use serde_json::json;
    ///
    /// let err = Jq::compile(".a.b").unwrap().run(json!({"a": 1})).unwrap_err();
    /// assert_eq!(err.expression(), ".a.b");
    /// ```
    pub fn expression(&self) -> &str {
        &self.expression
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "jq `{}`: {}", self.expression, self.message)
    }
}

impl std::error::Error for EvalError {}

/// The 1-based line and character column of byte `offset` in `source`.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_lines_and_characters_from_one() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("abc", 3), (1, 4));
        assert_eq!(line_column("a\nbc", 3), (2, 2));
        assert_eq!(line_column("é.x", "é".len()), (1, 2));
        assert_eq!(line_column("ab", 99), (1, 3));
    }

    #[test]
    fn eval_error_truncates_huge_messages() {
        let err = EvalError::new(".", "x".repeat(10_000));
        assert_eq!(err.message().chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(err.message().ends_with('…'));
    }

    #[test]
    fn errors_are_send_sync_static() {
        fn check<T: Send + Sync + 'static + std::error::Error>() {}
        check::<EvalError>();
        check::<CompileError>();
    }
}
