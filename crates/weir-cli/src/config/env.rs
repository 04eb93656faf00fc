//! `${VAR}` and `${VAR:-default}` in configuration strings, from the
//! environment (secrets and paths stay out of the file). `$${` writes a
//! literal `${`.

use super::tree::{Node, Value};
use super::validate::Problem;

/// Replaces every `${…}` in the tree's strings, looking names up with
/// `lookup`; an undefined variable without a default is a problem at its
/// string's position.
pub fn interpolate(
    node: &mut Node,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    match &mut node.value {
        Value::Str(s) if s.contains('$') => match expand(s, lookup) {
            Ok(new) => *s = new,
            Err(message) => problems.push(Problem {
                pos: node.pos,
                path: path.to_owned(),
                message,
            }),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{path}[{i}]"), lookup, problems);
            }
        }
        Value::Table(entries) => {
            for e in entries {
                let p = super::validate::join(path, &e.key);
                interpolate(&mut e.node, &p, lookup, problems);
            }
        }
        _ => {}
    }
}

/// Expands one string.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in \"{text}\""))?;
            let inner = &tail[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid variable name `{name}` in `${{{inner}}}`"));
            }
            match (
                lookup(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                    "environment variable `{name}` is not set (write `${{{name}:-default}}` for a default)"
                ))
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/w".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_defaults_and_escapes_expand() {
        assert_eq!(expand("${HOME}/x", &env).unwrap(), "/home/w/x");
        assert_eq!(expand("${NOPE:-out}/x", &env).unwrap(), "out/x");
        assert_eq!(expand("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(expand("$${HOME} $x .a", &env).unwrap(), "${HOME} $x .a");
    }

    #[test]
    fn undefined_and_malformed_variables_are_errors() {
        assert!(expand("${NOPE}", &env).unwrap_err().contains("`NOPE` is not set"));
        assert!(expand("${HOME", &env).unwrap_err().contains("unclosed"));
        assert!(expand("${a b}", &env)
            .unwrap_err()
            .contains("invalid variable name"));
    }

    #[test]
    fn problems_carry_the_string_position() {
        let mut root = super::super::tree::parse_toml("a = 1\n[x]\npath = \"${NOPE}/y\"\n").unwrap();
        let mut problems = Vec::new();
        interpolate(&mut root, "", &env, &mut problems);
        assert_eq!(problems[0].path, "x.path");
        assert_eq!((problems[0].pos.line, problems[0].pos.col), (3, 8));
    }
}
