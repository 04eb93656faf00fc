//! Records to bytes: JSON lines and CSV rows.

use serde_json::Value;

use super::OutputFormat;
use crate::error::{IoError, IoErrorKind};
use crate::record::JsonText;

/// Encodes records one line at a time, in an [`OutputFormat`]; for CSV,
/// knows the header (given, or taken from the first record's keys).
#[derive(Debug)]
pub(crate) struct RecordEncoder {
    csv: Option<Csv>,
}

#[derive(Debug)]
struct Csv {
    columns: Option<Vec<String>>,
    header: Option<Vec<u8>>,
}

impl RecordEncoder {
    pub(crate) fn new(format: &OutputFormat) -> RecordEncoder {
        let csv = match format {
            OutputFormat::JsonLines => None,
            OutputFormat::Csv { columns } => {
                let header = columns.as_deref().map(header_line);
                Some(Csv {
                    columns: columns.clone(),
                    header,
                })
            }
        };
        RecordEncoder { csv }
    }

    /// The CSV header line, once known.
    pub(crate) fn header(&self) -> Option<&[u8]> {
        self.csv.as_ref().and_then(|c| c.header.as_deref())
    }

    /// Appends the value `text` holds as one line to `out`: for JSON lines
    /// the text itself (already as `serde_json` writes it), for CSV its
    /// decoded value's columns. On error `out` is unchanged.
    pub(crate) fn encode_text(&mut self, text: &JsonText, out: &mut Vec<u8>) -> Result<(), IoError> {
        if self.csv.is_some() {
            return self.encode(&text.to_value(), out);
        }
        out.extend_from_slice(text.as_str().as_bytes());
        out.push(b'\n');
        Ok(())
    }

    /// Appends `value` as one line to `out`; on error `out` is unchanged.
    pub(crate) fn encode(&mut self, value: &Value, out: &mut Vec<u8>) -> Result<(), IoError> {
        let Some(csv) = &mut self.csv else {
            let start = out.len();
            if let Err(e) = serde_json::to_writer(&mut *out, value) {
                out.truncate(start);
                return Err(encode_error(format!("cannot write the record as JSON: {e}")));
            }
            out.push(b'\n');
            return Ok(());
        };
        let Value::Object(object) = value else {
            return Err(encode_error(format!(
                "CSV output needs a JSON object per record, not {}",
                kind_of(value)
            )));
        };
        let columns = csv
            .columns
            .get_or_insert_with(|| object.keys().cloned().collect());
        if csv.header.is_none() {
            csv.header = Some(header_line(columns));
        }
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match object.get(column) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => push_field(out, s),
                Some(Value::Bool(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
                Some(Value::Number(n)) => out.extend_from_slice(n.to_string().as_bytes()),
                Some(nested) => push_field(out, &nested.to_string()),
            }
        }
        out.push(b'\n');
        Ok(())
    }
}

fn encode_error(message: String) -> IoError {
    IoError::new(IoErrorKind::Encode, None, message)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn header_line(columns: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_field(&mut out, column);
    }
    out.push(b'\n');
    out
}

/// Appends one CSV field, quoted if it must be.
fn push_field(out: &mut Vec<u8>, s: &str) {
    let quote = s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if !quote {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn encode_all(format: OutputFormat, values: &[Value]) -> (String, Option<String>) {
        let mut encoder = RecordEncoder::new(&format);
        let mut out = Vec::new();
        for v in values {
            encoder.encode(v, &mut out).unwrap();
        }
        let header = encoder.header().map(|h| String::from_utf8(h.to_vec()).unwrap());
        (String::from_utf8(out).unwrap(), header)
    }

    #[test]
    fn json_lines_are_one_compact_value_a_line() {
        let (out, header) = encode_all(OutputFormat::JsonLines, &[json!({"a": [1, 2]}), json!("x")]);
        assert_eq!(out, "{\"a\":[1,2]}\n\"x\"\n");
        assert_eq!(header, None);
    }

    #[test]
    fn csv_rows_follow_the_first_records_keys_with_scalars_as_text_and_nested_values_as_json() {
        let values = [
            json!({"id": 1, "name": "a, b", "tags": ["x"], "ok": true}),
            json!({"id": 2, "name": null, "extra": 5}),
        ];
        let (out, header) = encode_all(OutputFormat::Csv { columns: None }, &values);
        assert_eq!(header.as_deref(), Some("id,name,ok,tags\n"));
        assert_eq!(out, "1,\"a, b\",true,\"[\"\"x\"\"]\"\n2,,,\n");
    }

    #[test]
    fn csv_with_given_columns_writes_them_in_order() {
        let format = OutputFormat::Csv {
            columns: Some(vec!["b".into(), "a".into()]),
        };
        let (out, header) = encode_all(format, &[json!({"a": 1, "b": 2.5})]);
        assert_eq!((out.as_str(), header.as_deref()), ("2.5,1\n", Some("b,a\n")));
    }

    #[test]
    fn a_non_object_record_cannot_be_a_csv_row() {
        let mut encoder = RecordEncoder::new(&OutputFormat::Csv { columns: None });
        let mut out = Vec::new();
        let err = encoder.encode(&json!(3), &mut out).unwrap_err();
        assert_eq!(err.kind(), IoErrorKind::Encode);
        assert_eq!(
            err.to_string(),
            "CSV output needs a JSON object per record, not a number"
        );
        assert!(out.is_empty());
    }
}
