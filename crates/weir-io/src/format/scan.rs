//! A validating scan of one JSON object line that finds its top-level
//! fields' raw text without building anything.
//!
//! Written here, not taken from a library, because both libraries measured
//! were in the way: on the `cli` benchmark's 190-byte log lines, finding
//! five fields and validating the rest cost ~5k instructions per line with
//! serde_json (a visitor with `IgnoredAny` / `RawValue`) and ~6.3k with
//! sonic-rs's lazy object iterator (no faster in wall time on this
//! machine's baseline x86-64 target), where this scan takes a fraction of
//! that (callgrind, see `docs/BENCHMARKS.md`).
//!
//! The scan may be *stricter* than serde_json, never more lenient: it
//! refuses keys with escapes, unpaired surrogate escapes and nesting deeper
//! than [`MAX_DEPTH`], and whatever it refuses is decoded by serde_json
//! instead, whose answer (value or error) is the one reported.

/// Deepest nesting the scan follows (serde_json's own limit is 128).
const MAX_DEPTH: u32 = 100;

/// Calls `field(key, raw)` for each top-level field of the JSON object
/// `text`, in order, and `Some(())` if the whole text is one well-formed
/// object (surrounding whitespace allowed). `None` if it is not, or uses
/// something the scan refuses (see the module docs); fields reported
/// before the scan gave up are then meaningless.
pub(crate) fn object_fields<'a>(text: &'a str, mut field: impl FnMut(&'a str, &'a str)) -> Option<()> {
    let b = text.as_bytes();
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let (end, escaped) = string(b, i)?;
            if escaped {
                return None;
            }
            // Both ends are ASCII quotes, so these are char boundaries.
            let key = &text[i + 1..end - 1];
            i = ws(b, end);
            if b.get(i) != Some(&b':') {
                return None;
            }
            let start = ws(b, i + 1);
            i = value(b, start, 1)?;
            field(key, &text[start..i]);
            i = ws(b, i);
            match b.get(i) {
                Some(b',') => i = ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (ws(b, i) == b.len()).then_some(())
}

/// The index of the first non-whitespace byte at or after `i`.
fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The end of the value starting at `i` (the index just past it).
fn value(b: &[u8], i: usize, depth: u32) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string(b, i).map(|(end, _)| end),
        b'{' => object(b, i, depth + 1),
        b'[' => array(b, i, depth + 1),
        b't' => literal(b, i, b"true"),
        b'f' => literal(b, i, b"false"),
        b'n' => literal(b, i, b"null"),
        b'-' | b'0'..=b'9' => number(b, i),
        _ => None,
    }
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b.get(i..i + word.len())
        .filter(|w| *w == word)
        .map(|_| i + word.len())
}

fn object(b: &[u8], i: usize, depth: u32) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut i = ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Some(i + 1);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        i = ws(b, string(b, i)?.0);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(b, value(b, ws(b, i + 1), depth)?);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b'}') => return Some(i + 1),
            _ => return None,
        }
    }
}

fn array(b: &[u8], i: usize, depth: u32) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut i = ws(b, i + 1);
    if b.get(i) == Some(&b']') {
        return Some(i + 1);
    }
    loop {
        i = ws(b, value(b, i, depth)?);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b']') => return Some(i + 1),
            _ => return None,
        }
    }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; its end. Refuses a
/// number whose magnitude may be past a double's (about 1e308), which
/// serde_json fails to decode where it builds the value: integer digits
/// plus exponent over 300 (a smaller number, or one that underflows to 0,
/// decodes).
fn number(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], mut i: usize| {
        let start = i;
        while let Some(b'0'..=b'9') = b.get(i) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    i = match b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(b, i)?,
        _ => return None,
    };
    let int_digits = (i - int_start) as i64;
    if b.get(i) == Some(&b'.') {
        i = digits(b, i + 1)?;
    }
    let mut exponent = 0i64;
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        let negative = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        i = digits(b, i)?;
        let magnitude = b[start..i].iter().fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
        exponent = if negative { -magnitude } else { magnitude };
    }
    (int_digits.saturating_add(exponent) <= 300).then_some(i)
}

/// The string starting at the quote at `i`: the index past its closing
/// quote, and whether it holds an escape.
fn string(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        // Eight bytes at a time past plain text (most of a line), straight
        // to the first quote, escape or control byte.
        while let Some(chunk) = b.get(j..j + 8) {
            let mask = special(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
            if mask != 0 {
                j += (mask.trailing_zeros() / 8) as usize;
                break;
            }
            j += 8;
        }
        // There (or byte by byte in the last few bytes of the line).
        match *b.get(j)? {
            b'"' => return Some((j + 1, escaped)),
            b'\\' => {
                escaped = true;
                j = escape(b, j)?;
            }
            0..0x20 => return None,
            _ => j += 1,
        }
    }
}

/// The high bit of each byte of `word` (little-endian) that is a quote, a
/// backslash or below 0x20 (the bytes that end plain string text), by the
/// classic "has a zero byte" and "has a byte less than n" tests. A mask
/// may also flag bytes above a flagged one, never below: its lowest bit is
/// always a true one.
fn special(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero(word ^ (ONES * u64::from(b'"')));
    let backslash = zero(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

/// The end of the escape at the backslash at `j`.
fn escape(b: &[u8], j: usize) -> Option<usize> {
    match *b.get(j + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(j + 2),
        b'u' => {
            let unit = hex4(b, j + 2)?;
            match unit {
                0xD800..=0xDBFF => {
                    // A lead surrogate must be followed by a trail one.
                    if b.get(j + 6..j + 8) != Some(b"\\u") {
                        return None;
                    }
                    matches!(hex4(b, j + 8)?, 0xDC00..=0xDFFF).then_some(j + 12)
                }
                0xDC00..=0xDFFF => None,
                _ => Some(j + 6),
            }
        }
        _ => None,
    }
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let digits = b.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |n, &d| {
        let v = (d as char).to_digit(16)?;
        Some(n * 16 + v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(text: &str) -> Option<Vec<(&str, &str)>> {
        let mut out = Vec::new();
        object_fields(text, |k, v| out.push((k, v)))?;
        Some(out)
    }

    #[test]
    fn a_word_is_special_exactly_when_a_byte_is() {
        for byte in 0..=255u8 {
            for at in 0..8 {
                let mut word = *b"abcdefgh";
                word[at] = byte;
                let want = byte == b'"' || byte == b'\\' || byte < 0x20;
                let mask = special(u64::from_le_bytes(word));
                assert_eq!(mask != 0, want, "{byte:#x} at {at}");
                if want {
                    assert_eq!(mask.trailing_zeros() / 8, at as u32, "{byte:#x} at {at}");
                }
            }
        }
    }

    #[test]
    fn the_first_special_byte_of_a_word_is_found_whatever_follows() {
        for (text, at) in [
            (*b"ab\"\\\x01cde", 2),
            (*b"\x1f\"\"\"\"\"\"\"", 0),
            (*b"abcdefg\\", 7),
        ] {
            assert_eq!(special(u64::from_le_bytes(text)).trailing_zeros() / 8, at);
        }
    }

    #[test]
    fn finds_each_top_level_field_raw() {
        assert_eq!(
            fields(r#" { "a" : [1, {"x": "}"}] , "b":"q\"uo\u00e9", "c":-0.5e+3, "d":{} }  "#),
            Some(vec![
                ("a", r#"[1, {"x": "}"}]"#),
                ("b", r#""q\"uo\u00e9""#),
                ("c", "-0.5e+3"),
                ("d", "{}"),
            ])
        );
        assert_eq!(fields("{}"), Some(vec![]));
        assert_eq!(fields(r#"{"a":1,"a":2}"#), Some(vec![("a", "1"), ("a", "2")]));
    }

    #[test]
    fn refuses_what_it_does_not_plainly_accept() {
        for text in [
            "",
            "[1]",
            "1",
            r#"{"a":1} x"#,
            r#"{"a\n":1}"#,
            r#"{"\u0061":1}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"a":"\ud800\u0041"}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":+1}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":{"b":1,}}"#,
            r#"{"a":{1:2}}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":1 "b":2}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12"}"#,
            r#"{"a":"unterminated}"#,
            r#"{"a":1e400}"#,
            r#"{"a":-2.5E+309}"#,
            r#"{"a":[1,{"b":1e99999999999999999999}]}"#,
        ] {
            assert_eq!(fields(text), None, "{text:?}");
        }
        let long = format!("{{\"a\":{}}}", "9".repeat(400));
        assert_eq!(fields(&long), None);
        // Small, or underflowing to 0: decoded fine, so read.
        assert!(fields(r#"{"a":1e-400,"b":1e299,"c":0.000001e5}"#).is_some());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(fields(&deep), None);
    }

    /// Text that is mostly JSON-ish, so that the interesting cases (almost
    /// valid lines) come up often.
    fn jsonish() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(":".to_owned()),
            Just(",".to_owned()),
            Just(" ".to_owned()),
            Just("\"k\"".to_owned()),
            Just("\"a\\u00e9\\n\"".to_owned()),
            Just("\"\\ud83d\\ude00\"".to_owned()),
            Just("\"\\ud83d\"".to_owned()),
            Just("true".to_owned()),
            Just("null".to_owned()),
            Just("-0.5e3".to_owned()),
            Just("12".to_owned()),
            Just("1e400".to_owned()),
            "[ -~]{0,3}".prop_map(|s| s),
        ];
        prop::collection::vec(atom, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        // The promise the callers rely on: never more lenient than
        // serde_json, and the fields are the object's own.
        #[test]
        fn never_accepts_what_serde_json_rejects(text in jsonish()) {
            if let Some(found) = fields(&text) {
                // Decoded whole (numbers range-checked), not just skipped.
                let checked: Result<serde_json::Value, _> = serde_json::from_str(&text);
                prop_assert!(checked.is_ok(), "{:?} accepted by the scan, not by serde_json", text);
                if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&text) {
                    for (k, raw) in found {
                        prop_assert!(map.contains_key(k));
                        prop_assert!(serde_json::from_str::<serde::de::IgnoredAny>(raw).is_ok());
                    }
                }
            }
        }

        #[test]
        fn accepts_what_serde_json_writes(v in prop::collection::btree_map(
            "\\PC{0,6}",
            (any::<i32>(), any::<Option<bool>>(), prop::collection::vec(any::<f32>(), 0..3), "\\PC{0,10}"),
            0..6,
        )) {
            let text = serde_json::to_string(&v).unwrap();
            let found = fields(&text);
            // Keys with escapes are refused on purpose; anything else is read.
            if !v.keys().any(|k| serde_json::to_string(k).unwrap().contains('\\')) {
                prop_assert_eq!(found.map(|f| f.len()), Some(v.len()), "{}", text);
            }
        }
    }
}
