//! CSV decoding: [`CsvOptions`], typed and inferred columns.

use serde_json::{Map, Number, Value};

use super::error::{DecodeError, DecodeErrorKind};
use crate::record::CsvRow;

/// The type of a CSV column named in [`CsvOptions::columns`]. An empty
/// field is `null` for every type but [`String`](ColumnType::String).
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// use weir_io::{ColumnType, CsvOptions, Format, Line, Origin};
///
/// let options = CsvOptions::default().has_header(false).column("zip", ColumnType::String);
/// let record = Format::Csv(options).decode(Line::new("02134", Origin::new("a.csv", 1, 0))).unwrap();
/// assert_eq!(record.value, json!({"zip": "02134"})); // not the number 2134
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ColumnType {
    /// The text as it is.
    String,
    /// A whole number (64-bit, signed or unsigned).
    Integer,
    /// Any finite number.
    Number,
    /// `true` or `false` (in any case).
    Boolean,
    /// JSON text, parsed.
    Json,
}

impl ColumnType {
    fn name(self) -> &'static str {
        match self {
            ColumnType::String => "a string",
            ColumnType::Integer => "an integer",
            ColumnType::Number => "a number",
            ColumnType::Boolean => "a boolean",
            ColumnType::Json => "JSON",
        }
    }
}

/// How CSV is read and decoded.
///
/// | setting | default |
/// |---|---|
/// | [`delimiter`](Self::delimiter) | `b','` |
/// | [`has_header`](Self::has_header) | `true` |
/// | [`columns`](Self::columns) | none |
/// | [`infer`](Self::infer) | `true` |
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// use weir_io::{ColumnType, CsvOptions, Format, Line, Origin};
///
/// let options = CsvOptions::default().delimiter(b';').has_header(false).infer(false);
/// let record = Format::Csv(options).decode(Line::new("1;x", Origin::new("a.csv", 1, 0))).unwrap();
/// assert_eq!(record.value, json!({"1": "1", "2": "x"}));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// The field separator. By default, `b','`.
    pub delimiter: u8,
    /// Whether each file's first record names the columns. Without one,
    /// columns take the names in [`columns`](Self::columns), in order,
    /// and the rest are named by position: `"1"`, `"2"`, … By default,
    /// `true`.
    pub has_header: bool,
    /// Columns with an explicit type, by name (a column not listed here
    /// is typed by [`infer`](Self::infer)). By default, none.
    pub columns: Vec<(String, ColumnType)>,
    /// Whether untyped fields that look like integers, floats or
    /// `true`/`false` become JSON numbers and booleans (and empty fields
    /// `null`); without it they are all strings. Numbers with leading
    /// zeros (`007`) stay strings. By default, `true`.
    pub infer: bool,
}

impl Default for CsvOptions {
    fn default() -> CsvOptions {
        CsvOptions {
            delimiter: b',',
            has_header: true,
            columns: Vec::new(),
            infer: true,
        }
    }
}

impl CsvOptions {
    /// Sets the field separator. By default, `b','`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(weir_io::CsvOptions::default().delimiter(b'\t').delimiter, b'\t');
    /// ```
    pub fn delimiter(mut self, delimiter: u8) -> CsvOptions {
        self.delimiter = delimiter;
        self
    }

    /// Sets whether each file starts with a header row. By default, `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!weir_io::CsvOptions::default().has_header(false).has_header);
    /// ```
    pub fn has_header(mut self, has_header: bool) -> CsvOptions {
        self.has_header = has_header;
        self
    }

    /// Gives column `name` the type `ty` (appended to
    /// [`columns`](Self::columns)). By default, no column has an explicit
    /// type.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::{ColumnType, CsvOptions};
    /// let options = CsvOptions::default().column("id", ColumnType::Integer);
    /// assert_eq!(options.columns, [("id".to_owned(), ColumnType::Integer)]);
    /// ```
    pub fn column(mut self, name: impl Into<String>, ty: ColumnType) -> CsvOptions {
        self.columns.push((name.into(), ty));
        self
    }

    /// Sets whether untyped fields are inferred. By default, `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!weir_io::CsvOptions::default().infer(false).infer);
    /// ```
    pub fn infer(mut self, infer: bool) -> CsvOptions {
        self.infer = infer;
        self
    }

    fn type_of(&self, name: &str) -> Option<ColumnType> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
    }
}

/// Decodes one CSV record: its fields as read (`row`), or else `text`
/// parsed as one record.
pub(super) fn decode(options: &CsvOptions, text: String, row: Option<CsvRow>) -> Result<Value, DecodeError> {
    let row = match row {
        Some(row) => row,
        None => CsvRow {
            fields: split(options, &text)?,
            header: None,
        },
    };
    let CsvRow { fields, header } = row;
    if let Some(header) = &header {
        if header.len() != fields.len() {
            return Err(DecodeError::new(
                DecodeErrorKind::Csv,
                format!(
                    "the record has {} fields but the header has {}",
                    fields.len(),
                    header.len()
                ),
            ));
        }
    }
    let mut object = Map::new();
    for (i, field) in fields.into_iter().enumerate() {
        let name = match &header {
            Some(header) => header[i].clone(),
            None => match options.columns.get(i) {
                Some((name, _)) if !options.has_header => name.clone(),
                _ => (i + 1).to_string(),
            },
        };
        let value = match options.type_of(&name) {
            Some(ty) => typed(field, ty).map_err(|detail| {
                DecodeError::new(DecodeErrorKind::Column, format!("column `{name}`: {detail}"))
            })?,
            None if options.infer => infer(field),
            None => Value::String(field),
        };
        object.insert(name, value);
    }
    Ok(Value::Object(object))
}

/// Splits a line made by hand into the fields of one CSV record.
fn split(options: &CsvOptions, text: &str) -> Result<Vec<String>, DecodeError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(options.delimiter)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(_) => Ok(record.iter().map(str::to_owned).collect()),
        Err(e) => Err(DecodeError::new(DecodeErrorKind::Csv, e.to_string())),
    }
}

/// `field` as a value of type `ty`, or why it is not one.
fn typed(field: String, ty: ColumnType) -> Result<Value, String> {
    if field.is_empty() && ty != ColumnType::String {
        return Ok(Value::Null);
    }
    let wrong = |field: &str| format!("`{field}` is not {}", ty.name());
    match ty {
        ColumnType::String => Ok(Value::String(field)),
        ColumnType::Integer => match number_shape(field.trim()) {
            Some(Shape::Integer) => integer(field.trim()).ok_or_else(|| wrong(&field)),
            _ => Err(wrong(&field)),
        },
        ColumnType::Number => match number_shape(field.trim()) {
            Some(Shape::Integer) => integer(field.trim())
                .or_else(|| float(field.trim()))
                .ok_or_else(|| wrong(&field)),
            Some(Shape::Float) => float(field.trim()).ok_or_else(|| wrong(&field)),
            None => Err(wrong(&field)),
        },
        ColumnType::Boolean => match boolean(field.trim()) {
            Some(b) => Ok(Value::Bool(b)),
            None => Err(wrong(&field)),
        },
        ColumnType::Json => serde_json::from_str(&field).map_err(|e| format!("`{field}` is not JSON: {e}")),
    }
}

/// An untyped field's value: number, boolean, null (empty) or string.
fn infer(field: String) -> Value {
    if field.is_empty() {
        return Value::Null;
    }
    let inferred = match number_shape(&field) {
        Some(Shape::Integer) if !leading_zero(&field) => integer(&field).or_else(|| float(&field)),
        Some(Shape::Float) if !leading_zero(&field) => float(&field),
        Some(_) => None,
        None => boolean(&field).map(Value::Bool),
    };
    inferred.unwrap_or(Value::String(field))
}

fn boolean(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn integer(s: &str) -> Option<Value> {
    if let Ok(i) = s.parse::<i64>() {
        Some(Value::Number(i.into()))
    } else {
        s.parse::<u64>().ok().map(|u| Value::Number(u.into()))
    }
}

fn float(s: &str) -> Option<Value> {
    let f = s.parse::<f64>().ok()?;
    Number::from_f64(f).map(Value::Number)
}

/// `007`, `-01.5`: zero-padded codes, kept as text when inferring.
fn leading_zero(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s).as_bytes();
    digits.len() > 1 && digits[0] == b'0' && digits[1].is_ascii_digit()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Integer,
    Float,
}

/// Whether `s` is a JSON-style number (`-12`, `3.5`, `1e-3`; not `inf`,
/// `NaN`, `+1`, `.5`), and which kind.
fn number_shape(s: &str) -> Option<Shape> {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == start {
        return None;
    }
    let mut shape = Shape::Integer;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == frac {
            return None;
        }
        shape = Shape::Float;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp {
            return None;
        }
        shape = Shape::Float;
    }
    (i == b.len()).then_some(shape)
}

/// Joins `fields` into one CSV record's text (quoting where needed), so
/// that a dead letter shows the row as it was.
pub(crate) fn join(fields: &[String], delimiter: u8) -> String {
    let mut out = String::with_capacity(fields.iter().map(|f| f.len() + 1).sum());
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(char::from(delimiter));
        }
        let quote = field
            .bytes()
            .any(|b| b == delimiter || b == b'"' || b == b'\n' || b == b'\r');
        if quote {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn inference_turns_numbers_booleans_and_empties_into_json_and_keeps_codes_as_text() {
        let cases = [
            ("12", json!(12)),
            ("-3", json!(-3)),
            ("18446744073709551615", json!(18446744073709551615u64)),
            ("2.5", json!(2.5)),
            ("1e3", json!(1000.0)),
            ("true", json!(true)),
            ("FALSE", json!(false)),
            ("", Value::Null),
            ("007", json!("007")),
            ("0", json!(0)),
            ("0.5", json!(0.5)),
            ("inf", json!("inf")),
            ("NaN", json!("NaN")),
            ("+1", json!("+1")),
            (".5", json!(".5")),
            ("1.", json!("1.")),
            ("12ab", json!("12ab")),
            ("ann", json!("ann")),
        ];
        for (field, want) in cases {
            assert_eq!(infer(field.to_owned()), want, "{field:?}");
        }
    }

    #[test]
    fn typed_columns_parse_or_say_why_not() {
        assert_eq!(typed("42".into(), ColumnType::Integer), Ok(json!(42)));
        assert_eq!(typed("".into(), ColumnType::Integer), Ok(Value::Null));
        assert_eq!(typed("".into(), ColumnType::String), Ok(json!("")));
        assert_eq!(typed("4.5".into(), ColumnType::Number), Ok(json!(4.5)));
        assert_eq!(typed("007".into(), ColumnType::Number), Ok(json!(7)));
        assert_eq!(typed("True".into(), ColumnType::Boolean), Ok(json!(true)));
        assert_eq!(typed("[1]".into(), ColumnType::Json), Ok(json!([1])));
        assert_eq!(
            typed("4.5".into(), ColumnType::Integer),
            Err("`4.5` is not an integer".to_owned())
        );
        assert_eq!(
            typed("yes".into(), ColumnType::Boolean),
            Err("`yes` is not a boolean".to_owned())
        );
        assert!(typed("{".into(), ColumnType::Json)
            .unwrap_err()
            .starts_with("`{` is not JSON"));
    }

    #[test]
    fn joined_fields_are_quoted_only_where_needed() {
        let fields = ["a".to_owned(), "b,c".to_owned(), "say \"hi\"".to_owned()];
        assert_eq!(join(&fields, b','), r#"a,"b,c","say ""hi""""#);
        assert_eq!(join(&fields, b';'), r#"a;b,c;"say ""hi""""#);
    }

    #[test]
    fn a_record_wider_than_its_header_is_an_error() {
        let row = CsvRow {
            fields: vec!["1".into(), "2".into()],
            header: Some(vec!["a".to_owned()].into()),
        };
        let err = decode(&CsvOptions::default(), String::new(), Some(row)).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::Csv);
        assert_eq!(err.detail(), "the record has 2 fields but the header has 1");
    }
}
