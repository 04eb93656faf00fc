//! Tests of the jq engine through its public API, the differential test of
//! the direct evaluator against jaq, and a hand-run benchmark.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::eval::Fail;
use super::{Jq, Outputs};

fn run(source: &str, input: Value) -> Vec<Value> {
    Jq::compile(source).unwrap().run(input).unwrap().into_vec()
}

fn run_err(source: &str, input: Value) -> String {
    Jq::compile(source).unwrap().run(input).unwrap_err().to_string()
}

fn compile_err(source: &str) -> super::CompileError {
    Jq::compile(source).unwrap_err()
}

// ---- compile errors ----------------------------------------------------

#[test]
fn a_dangling_pipe_is_reported_at_the_end_of_the_expression() {
    let err = compile_err(".foo |");
    assert_eq!(err.position(), (1, 7));
    assert_eq!(err.message(), "unexpected end of expression");
    assert_eq!(
        err.to_string(),
        "jq: unexpected end of expression at 1:7: expected a term (a value, a path like `.a`, a call…)"
    );
}

#[test]
fn a_misspelt_filter_is_undefined_with_a_suggestion() {
    let err = compile_err(".a | selct(.b)");
    assert_eq!(err.position(), (1, 6));
    assert_eq!(
        err.to_string(),
        "jq: undefined filter `selct/1` at 1:6: did you mean `select/1`?"
    );
}

#[test]
fn an_unknown_filter_without_a_close_name_has_no_suggestion() {
    let err = compile_err(".a | frobnicate_all");
    assert_eq!(err.message(), "undefined filter `frobnicate_all/0`");
    assert_eq!(err.detail(), None);
    assert_eq!(err.position(), (1, 6));
}

#[test]
fn a_known_filter_with_the_wrong_arity_is_undefined() {
    let err = compile_err("select(.a; .b)");
    assert_eq!(err.message(), "undefined filter `select/2`");
    assert_eq!(err.detail(), Some("did you mean `select/1`?"));
}

#[test]
fn an_unclosed_string_is_reported_at_its_opening_quote() {
    let err = compile_err(r#".a == "abc"#);
    assert_eq!(err.position(), (1, 7));
    assert_eq!(err.message(), "unclosed `\"`");
}

#[test]
fn an_unclosed_parenthesis_is_reported_at_its_opening() {
    let err = compile_err("select((.a)");
    assert_eq!(err.position(), (1, 7));
    assert_eq!(err.message(), "unclosed `(`");
}

#[test]
fn a_stray_token_is_unexpected() {
    let err = compile_err(".a b");
    assert_eq!(err.position(), (1, 4));
    assert_eq!(err.message(), "unexpected `b`");
    assert_eq!(
        err.detail(),
        Some("expected an operator or the end of the expression")
    );
    let err = compile_err(".a & 1");
    assert_eq!(err.to_string(), "jq: unexpected character `&` at 1:4");
    let err = compile_err("{é: .a}");
    assert_eq!(err.to_string(), "jq: unexpected character `é` at 1:2");
    let err = compile_err(r#"".\q""#);
    assert_eq!(err.position(), (1, 4));
}

#[test]
fn an_undeclared_variable_is_undefined() {
    let err = compile_err(".a + $limit");
    assert_eq!(err.message(), "undefined variable `$limit`");
    assert_eq!(err.position(), (1, 6));
}

#[test]
fn positions_count_lines_and_characters() {
    let err = compile_err("{a: .a,\n  b: nope}");
    assert_eq!(err.position(), (2, 6));
    let err = compile_err(r#""é" + nope"#);
    assert_eq!(err.position(), (1, 7));
}

#[test]
fn imports_are_not_allowed() {
    let err = compile_err(r#"import "x" as x; ."#);
    assert!(err.message().starts_with("cannot import"), "{err}");
}

// ---- evaluation errors -------------------------------------------------

#[test]
fn eval_errors_name_the_expression_and_jaqs_message() {
    assert_eq!(
        run_err(".a + 1", json!({"a": "x"})),
        r#"jq `.a + 1`: cannot calculate "x" + 1"#
    );
    assert_eq!(run_err(".a", json!(1)), r#"jq `.a`: cannot index 1 with "a""#);
    assert_eq!(
        run_err(".a.b", json!({"a": [1]})),
        r#"jq `.a.b`: cannot index [1] with "b""#
    );
    assert_eq!(
        run_err(r#"error("boom")"#, json!(null)),
        "jq `error(\"boom\")`: boom"
    );
    assert_eq!(
        run_err(r#"error({a: 1})"#, json!(null)),
        r#"jq `error({a: 1})`: {"a":1}"#
    );
    assert_eq!(
        run_err("true | length", json!(null)),
        "jq `true | length`: true has no length"
    );
}

#[test]
fn an_error_after_outputs_fails_the_run() {
    let jq = Jq::compile(".[] | .a").unwrap();
    assert!(jq.run(json!([{"a": 1}, 2])).is_err());
    // but `first` only needs the first output
    assert_eq!(jq.first(&json!([{"a": 1}, 2])).unwrap(), json!(1));
}

#[test]
fn a_panic_inside_jaq_is_an_error_not_a_crash() {
    // jaq's `length` negates `i64::MIN` unchecked: a panic in debug builds.
    let out = Jq::compile("length").unwrap().run(json!(i64::MIN));
    if let Err(err) = out {
        assert!(err.message().contains("jaq panicked"), "{err}");
    }
}

#[test]
fn halt_is_an_error_not_an_exit() {
    let err = run_err("halt_error(3)", json!("bye"));
    assert!(err.contains("halted with exit code 3"), "{err}");
}

#[test]
fn a_wrong_number_of_variable_values_is_an_error_not_a_panic() {
    let jq = Jq::compile_with_vars("$a", &["$a"]).unwrap();
    let err = jq.run(json!(1)).unwrap_err();
    assert!(
        err.message()
            .contains("0 variable value(s) given for the 1 declared ($a)"),
        "{err}"
    );
    assert!(Jq::compile("1")
        .unwrap()
        .run_with_vars(json!(1), &[json!(2)])
        .is_err());
}

#[test]
fn a_huge_value_in_an_error_is_cut_short() {
    let big: Vec<u32> = (0..10_000).collect();
    let err = Jq::compile(".a").unwrap().run(json!(big)).unwrap_err();
    assert!(err.message().chars().count() <= 301);
}

// ---- test / first ------------------------------------------------------

#[test]
fn test_is_the_truthiness_of_the_first_output() {
    let jq = Jq::compile(".v").unwrap();
    for (v, truthy) in [
        (json!(null), false),
        (json!(false), false),
        (json!(true), true),
        (json!(0), true),
        (json!(""), true),
        (json!([]), true),
        (json!({}), true),
    ] {
        assert_eq!(jq.test(&json!({ "v": v })).unwrap(), truthy, "{v}");
    }
    // no output is false; only the first output counts
    assert!(!Jq::compile("empty").unwrap().test(&json!(1)).unwrap());
    assert!(Jq::compile("true, false").unwrap().test(&json!(1)).unwrap());
    assert!(!Jq::compile("null, true").unwrap().test(&json!(1)).unwrap());
    // for the jaq path too
    assert!(!Jq::compile(".[] | select(. > 5)")
        .unwrap()
        .test(&json!([1, 2]))
        .unwrap());
}

#[test]
fn test_fails_on_an_error_before_the_first_output() {
    assert!(Jq::compile(".a > 1").unwrap().test(&json!("s")).is_err());
    assert!(Jq::compile(".[] | .a").unwrap().test(&json!([3])).is_err());
}

#[test]
fn first_without_output_is_an_error() {
    let jq = Jq::compile("select(.ok) | .id").unwrap();
    assert_eq!(jq.first(&json!({"ok": true, "id": 3})).unwrap(), json!(3));
    let err = jq.first(&json!({"ok": false, "id": 3})).unwrap_err();
    assert_eq!(err.to_string(), "jq `select(.ok) | .id`: no output");
    let err = Jq::compile(".[]").unwrap().first(&json!([])).unwrap_err();
    assert_eq!(err.message(), "no output");
}

// ---- values ------------------------------------------------------------

#[test]
fn non_ascii_keys_and_strings_survive_both_evaluators() {
    let input = json!({"clé": "héllo ✓", "ключ": {"日本": 1}});
    assert_eq!(run(r#".["clé"]"#, input.clone()), [json!("héllo ✓")]);
    assert_eq!(
        run(r#"{"ключ": .["ключ"]["日本"]}"#, input.clone()),
        [json!({"ключ": 1})]
    );
    assert_eq!(run(r#".["clé"] | length"#, input.clone()), [json!(7)]);
    assert_eq!(
        run(r#"[.["clé"] | explode | length]"#, input.clone()),
        [json!([7])]
    );
    assert_eq!(run(r#".["clé"] | ascii_upcase"#, input), [json!("HéLLO ✓")]);
}

#[test]
fn big_integers_round_trip_and_compare_exactly() {
    let input = json!({"u": u64::MAX, "i": i64::MIN, "m": i64::MAX});
    assert_eq!(run(".u", input.clone()), [json!(u64::MAX)]);
    assert_eq!(run("[.i, .m]", input.clone()), [json!([i64::MIN, i64::MAX])]);
    assert_eq!(run(".u > .m", input.clone()), [json!(true)]);
    assert_eq!(run(".u == 18446744073709551615", input.clone()), [json!(true)]);
    // overflow goes to jaq's big integers, and back to JSON as exact as it can
    assert_eq!(run(".m + 1", input.clone()), [json!(i64::MAX as u64 + 1)]);
    assert_eq!(run(".u + .u", input.clone()), [json!(3.6893488147419103e19)]);
    assert_eq!(run(".i - 1 | . < 0", input), [json!(true)]);
}

#[test]
fn floats_keep_their_kind_and_value() {
    assert_eq!(
        run(".a + .b", json!({"a": 0.1, "b": 0.2})),
        [json!(0.30000000000000004)]
    );
    assert_eq!(run("1 / 3", json!(null)), [json!(1.0 / 3.0)]);
    assert_eq!(run("4 / 2", json!(null)), [json!(2.0)]);
    assert_eq!(run(". * 1", json!(1.5e300)), [json!(1.5e300)]);
    assert_eq!(run(". == 1", json!(1.0)), [json!(true)]);
    // jq's way with non-finite numbers
    assert_eq!(run("1 / 0", json!(null)), [json!(f64::MAX)]);
    assert_eq!(run("[nan]", json!(null)), [json!([null])]);
}

#[test]
fn integers_stay_integers() {
    let out = run(".a + 1", json!({"a": 41}));
    assert!(out[0].is_i64(), "{out:?}");
    assert_eq!(out, [json!(42)]);
    assert!(run("length", json!([1, 2]))[0].is_u64());
}

#[test]
fn object_keys_come_out_in_serde_jsons_order() {
    let out = Jq::compile("{b, a}")
        .unwrap()
        .first(&json!({"a": 1, "b": 2}))
        .unwrap();
    assert_eq!(out.to_string(), r#"{"a":1,"b":2}"#);
}

#[test]
fn an_object_with_a_non_string_key_is_an_error() {
    // jaq builds it; JSON cannot hold it
    let err = run_err("{(1): 2}", json!(null));
    assert!(err.contains("object key"), "{err}");
}

// ---- the jaq path ------------------------------------------------------

#[test]
fn the_full_language_runs_through_jaq() {
    let cases = [
        ("map(. * 2)", json!([1, 2]), json!([2, 4])),
        ("reduce .[] as $x (0; . + $x)", json!([1, 2, 3]), json!(6)),
        (r#""\(.a)-\(.b)""#, json!({"a": 1, "b": "x"}), json!("1-x")),
        ("@base64", json!("hi"), json!("aGk=")),
        ("@base64d", json!("aGk="), json!("hi")),
        (r#"ascii_downcase | ltrimstr("a")"#, json!("AbC"), json!("bc")),
        (r#"split(",")"#, json!("a,b"), json!(["a", "b"])),
        (
            "sort_by(.n) | map(.n)",
            json!([{"n": 2}, {"n": 1}]),
            json!([1, 2]),
        ),
        ("to_entries | map(.key)", json!({"x": 1}), json!(["x"])),
        (r#"test("^a.c$")"#, json!("abc"), json!(true)),
        (
            "[.[] | select(type == \"number\")]",
            json!([1, "a", 2]),
            json!([1, 2]),
        ),
        (
            ". as [$a, $b] | {a: $a, b: $b}",
            json!([1, 2]),
            json!({"a": 1, "b": 2}),
        ),
        ("del(.a)", json!({"a": 1, "b": 2}), json!({"b": 2})),
        (".a |= . + 1", json!({"a": 1}), json!({"a": 2})),
        ("keys", json!({"b": 1, "a": 2}), json!(["a", "b"])),
        ("[limit(2; .[])]", json!([1, 2, 3]), json!([1, 2])),
        ("tojson", json!({"a": [1]}), json!(r#"{"a":[1]}"#)),
        ("def inc: . + 1; inc | inc", json!(1), json!(3)),
    ];
    for (source, input, expected) in cases {
        let jq = Jq::compile(source).unwrap();
        assert!(!jq.is_fast(), "{source} is expected on the jaq path");
        assert_eq!(jq.run(input).unwrap().into_vec(), [expected], "{source}");
    }
}

#[test]
fn strings_repeat_as_in_jaq() {
    for (source, expected) in [
        (r#""ab" * 3"#, json!("ababab")),
        (r#"3 * "ab""#, json!("ababab")),
        (r#""ab" * 0"#, json!(null)),
        (r#""ab" * -1"#, json!(null)),
    ] {
        assert!(Jq::compile(source).unwrap().is_fast());
        let jaq = Jq::compile_jaq_only(source, &[]).unwrap();
        assert_eq!(
            jaq.run(json!(null)).unwrap().into_vec(),
            run(source, json!(null)),
            "{source}"
        );
        assert_eq!(run(source, json!(null)), [expected], "{source}");
    }
    assert!(Jq::compile(r#""ab" * 1.5"#).unwrap().run(json!(null)).is_err());
}

#[test]
fn multiple_outputs_come_in_order() {
    assert_eq!(run(".[], .[0]", json!([1, 2])), [json!(1), json!(2), json!(1)]);
    let out: Outputs = Jq::compile("range(3)").unwrap().run(json!(null)).unwrap();
    assert_eq!(out.as_slice(), [json!(0), json!(1), json!(2)]);
    assert_eq!((&out).into_iter().count(), 3);
    assert_eq!(out.into_iter().len(), 3);
}

#[test]
fn variables_bind_in_declaration_order_on_both_paths() {
    let fast = Jq::compile_with_vars("[$a, $b, .x]", &["$a", "b"]).unwrap();
    assert!(fast.is_fast());
    let slow = Jq::compile_with_vars("[$a, $b, .x] | map(.)", &["a", "$b"]).unwrap();
    assert!(!slow.is_fast());
    for jq in [fast, slow] {
        let out = jq.run_with_vars(json!({"x": 3}), &[json!(1), json!(2)]).unwrap();
        assert_eq!(out.into_vec(), [json!([1, 2, 3])]);
    }
}

#[test]
fn jq_is_send_sync_and_shared_on_clone() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Jq>();
    check::<Outputs>();
    let a = Jq::compile(".a").unwrap();
    let b = a.clone();
    assert!(std::sync::Arc::ptr_eq(&a.inner, &b.inner));
    let handle = std::thread::spawn(move || b.first(&json!({"a": 1})).unwrap());
    assert_eq!(handle.join().unwrap(), json!(1));
}

// ---- the direct evaluator ----------------------------------------------

/// Expressions the direct evaluator must take (all compiled with `$v`).
const FAST: &[&str] = &[
    ".",
    ".a",
    ".a.b",
    r#".["a"]"#,
    r#"."a""#,
    ".a?",
    ".a?.b",
    ".a.b?",
    ".[0]",
    ".[-1]",
    ".a[1]",
    ".[0]?",
    ".a[0].b",
    "1",
    "-1",
    "1.5",
    "-0.0",
    r#""s\n\u00e9""#,
    "true",
    "false",
    "null",
    "[]",
    "{}",
    "empty",
    "select(.a)",
    "select(.a == 1)",
    "{a, b: .b}",
    r#"{"x y": .a, level}"#,
    "{a: .a?}",
    "{a: empty}",
    "{a: .a, a: .b}",
    "{(\"k\"): .a}",
    "{$v}",
    "[.a, .b]",
    "[.a?, .b]",
    "[.a, empty, 1]",
    ".a == .b",
    ".a != .b",
    ".a < .b",
    ".a <= .b",
    ".a > .b",
    ".a >= .b",
    ". == $v",
    ". < $v",
    ".a and .b",
    ".a or .b",
    ".a and .a.b",
    ".a | not",
    "not",
    ".a // .b",
    r#".a // "d""#,
    ".a.b // 1",
    "empty // 2",
    ".a // empty",
    ".a | .b",
    "{a: .b} | .a",
    ".a | length",
    "length",
    "tostring",
    ".a | tostring",
    "tonumber",
    ".a | tonumber",
    ".a + .b",
    ".a - .b",
    // (no `.a * .b`: jaq aborts the process on `"s" * 9223372036854775807`)
    ".a * 2",
    ".a / .b",
    ".a % .b",
    "-.a",
    "-.",
    ". + 1",
    ". * 2",
    ". - 0.5",
    ". / 2",
    ". % 3",
    ". % -2",
    ". + $v",
    "$v - .",
    ". + null",
    "null + .",
    r#"has("a")"#,
    "has(0)",
    "has(-1)",
    "has($v)",
    "ascii_downcase",
    "ascii_upcase",
    "if .a then .b else .a end",
    "if .a then .b end",
    "if .a then 1 elif .b then 2 else 3 end",
    "try .a",
    "(.a.b)?",
    "try (. + 1)",
    ".a.b.c == null",
    "[.[0], .[1]] | .[0] + .[1]",
    "{a: (.a + 1)} | .a",
    "$v",
    r#"select(.level != "info" or .status >= 500)"#,
    r#".level != "info" or .status >= 500"#,
    "{ts, level, status, path: .http.path, ms: .latency_ms}",
    r#"select(.level != "info" or .status >= 500) | {ts, level, status, path: .http.path, ms: .latency_ms}"#,
];

#[test]
fn every_fast_shape_is_taken_by_the_direct_evaluator() {
    for source in FAST {
        let jq = Jq::compile_with_vars(source, &["$v"]).unwrap();
        assert!(jq.is_fast(), "{source}");
    }
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a"),
        Just("b"),
        Just("level"),
        Just("status"),
        Just("http"),
        Just("path"),
        Just("é"),
        Just(""),
    ]
    .prop_map(String::from)
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        arb_key(),
        prop_oneof![
            Just("info"),
            Just("warn"),
            Just("500"),
            Just("-1.5e2"),
            Just("01"),
            Just("1e999"),
            Just(" 7"),
            Just("Héllo ✓"),
            Just("x y"),
        ]
        .prop_map(String::from),
        prop::collection::vec(any::<char>(), 0..4).prop_map(String::from_iter),
    ]
}

fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-600i64..600).prop_map(Value::from),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), Just(500)].prop_map(Value::from),
        prop_oneof![Just(u64::MAX), Just(i64::MAX as u64 + 1)].prop_map(Value::from),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(0.5),
            Just(1e300),
            Just(-1e300),
            Just(500.0),
            Just(2.0)
        ]
        .prop_map(|f| json!(f)),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Each of [`FAST`] compiled twice: for the direct evaluator and for jaq
/// only (compiling loads jaq's standard library: do it once).
fn fast_and_reference() -> &'static [(&'static str, Jq, Jq)] {
    static PAIRS: std::sync::OnceLock<Vec<(&'static str, Jq, Jq)>> = std::sync::OnceLock::new();
    PAIRS.get_or_init(|| {
        FAST.iter()
            .map(|source| {
                let fast = Jq::compile_with_vars(source, &["$v"]).unwrap();
                let reference = Jq::compile_jaq_only(source, &["$v"]).unwrap();
                assert!(fast.is_fast() && !reference.is_fast(), "{source}");
                (*source, fast, reference)
            })
            .collect()
    })
}

/// Checks the direct evaluator's answers for `input` against jaq's (all
/// outputs, and the truth of the first as `test` uses it): the same
/// answer, or an error exactly where jaq raises one (where the evaluator
/// defers to jaq there is nothing to compare).
fn agree(source: &str, fast: &Jq, reference: &Jq, input: &Value, var: &Value) -> Result<(), TestCaseError> {
    let vars = std::slice::from_ref(var);
    let expected = reference
        .run_with_vars(input.clone(), vars)
        .map(Outputs::into_vec);
    match fast.fast_expr().expect(source).eval(input, vars) {
        Ok(out) => {
            let out: Vec<Value> = out.map(std::borrow::Cow::into_owned).into_iter().collect();
            prop_assert_eq!(
                Ok(out),
                expected.map_err(|e| e.to_string()),
                "{} on {} with $v = {}",
                source,
                input,
                var
            );
        }
        Err(Fail::Error) => {
            prop_assert!(
                expected.is_err(),
                "{} on {}: jaq gave {:?}",
                source,
                input,
                expected
            );
        }
        Err(Fail::Unsupported) => {}
    }
    let expected = reference.test_with_vars(input, vars);
    match fast.fast_expr().expect(source).truth(input, vars) {
        Ok(truth) => {
            prop_assert_eq!(
                Ok(truth.unwrap_or(false)),
                expected.map_err(|e| e.to_string()),
                "test: {} on {}",
                source,
                input
            );
        }
        Err(Fail::Error) => prop_assert!(
            expected.is_err(),
            "test: {} on {}: jaq gave {:?}",
            source,
            input,
            expected
        ),
        Err(Fail::Unsupported) => {}
    }
    Ok(())
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The direct evaluator answers as jaq does: the same outputs, or an
    /// error exactly where jaq raises one.
    #[test]
    fn the_direct_evaluator_agrees_with_jaq(input in arb_value(), var in arb_value()) {
        for (source, fast, reference) in fast_and_reference() {
            agree(source, fast, reference, &input, &var)?;
        }
    }

    /// Log-shaped inputs, the benchmark's, with fields of every type.
    #[test]
    fn the_direct_evaluator_agrees_with_jaq_on_log_lines(
        level in prop_oneof![Just(json!("info")), Just(json!("error")), arb_value()],
        status in prop_oneof![arb_number(), arb_value()],
        path in arb_value(),
        http in prop_oneof![Just(true), Just(false)],
    ) {
        let http = if http { json!({"path": path}) } else { path };
        let input = json!({"ts": "t", "level": level, "status": status, "http": http, "latency_ms": 1.5});
        let pairs = fast_and_reference();
        for (source, fast, reference) in &pairs[pairs.len() - 4..] {
            agree(source, fast, reference, &input, &Value::Null)?;
        }
    }
}

/// The evaluator defers to jaq only on odd inputs, not on everyday ones.
#[test]
fn everyday_inputs_do_not_defer_to_jaq() {
    let line = json!({"ts": "t", "level": "warn", "status": 503, "http": {"path": "/x"}, "latency_ms": 2.5});
    for source in &FAST[FAST.len() - 4..] {
        let jq = Jq::compile(source).unwrap();
        assert!(jq.fast_expr().unwrap().eval(&line, &[]).is_ok(), "{source}");
    }
    let jq = Jq::compile(". + 1").unwrap();
    assert_eq!(
        jq.fast_expr().unwrap().eval(&json!(i64::MAX), &[]),
        Err(Fail::Unsupported)
    );
    assert_eq!(
        jq.run(json!(i64::MAX)).unwrap().into_vec(),
        [json!(i64::MAX as u64 + 1)]
    );
}

#[test]
fn identity_outputs_the_input_itself() {
    let input = json!({"level": "error", "big": "x".repeat(100)});
    let out = Jq::compile("select(.level == \"error\")")
        .unwrap()
        .run(input.clone())
        .unwrap();
    assert_eq!(out.into_vec(), [input]);
}

/// `input` decoded keeping only what `jq.reads()` names, as the `parse`
/// stage does when every stage's expression says what it reads.
fn projected(jq: &Jq, input: &Value) -> Option<Value> {
    let paths = jq.reads()?;
    let mut keep = weir_io::format::Projection::default();
    for p in &paths {
        keep.add(p);
    }
    let decoder = weir_io::Format::JsonLines.decoder().project(keep);
    let line = weir_io::Line::new(input.to_string(), weir_io::Origin::new("t", 1, 0));
    Some(decoder.decode(line).expect("valid JSON").value)
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        // Each case runs every fast expression twice: fewer cases keep it quick.
        cases: 24,
        ..ProptestConfig::default()
    })]

    /// Projection is invisible: every fast expression without variables
    /// gives the same outputs (or fails alike) on the fields it says it
    /// reads as on the whole input.
    #[test]
    fn an_expression_sees_the_same_through_the_projection_of_what_it_reads(input in arb_value()) {
        for source in FAST.iter().filter(|s| !s.contains('$')) {
            let jq = Jq::compile(source).unwrap();
            let Some(small) = projected(&jq, &input) else { continue };
            let (full, part) = (jq.run(input.clone()), jq.run(small.clone()));
            match (full, part) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a.into_vec(), b.into_vec(), "{} on {} (projected {})", source, input, small),
                (Err(_), Err(_)) => {}
                (a, b) => prop_assert!(false, "{} on {}: {:?} vs {:?} (projected {})", source, input, a.map(|o| o.into_vec()), b.map(|o| o.into_vec()), small),
            }
        }
    }
}

/// Filters in the raw predicate subset (`raw.rs`).
const RAW: &[&str] = &[
    ".a",
    ".a == 1",
    ".a != \"x\"",
    ".a < .b",
    ".a >= 2.5",
    ".a == null",
    "select(.a > 0)",
    ".a or .b",
    ".a and (.b | not)",
    "(.a == \"é\") or .b == true",
    ".a? == false",
    "1 < .a",
    "\"m\" > .b",
    ".missing == null",
    "true",
    "null",
];

#[test]
fn the_raw_subset_decides_plain_scalar_fields() {
    let text = [("a", "3"), ("b", r#""q\"x""#)];
    let raw = |k: &str| Some(text.iter().find(|(n, _)| *n == k).map(|(_, t)| *t));
    for source in RAW {
        let jq = Jq::compile(source).unwrap();
        let input = json!({"a": 3, "b": "q\"x"});
        assert_eq!(jq.test_raw(&raw), Some(jq.test(&input).unwrap()), "{source}");
    }
    // Not in the subset, or not decidable on raw text: `None`.
    let jq = Jq::compile(".a.b == 1").unwrap();
    assert_eq!(jq.test_raw(&raw), None);
    let jq = Jq::compile(".a == 1").unwrap();
    assert_eq!(jq.test_raw(&|_| Some(Some("[1]"))), None);
    assert_eq!(jq.test_raw(&|_| None), None); // field not captured
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        cases: 128,
        ..ProptestConfig::default()
    })]

    /// Where a raw predicate answers, it answers as `test` on the decoded
    /// object.
    #[test]
    fn a_raw_predicate_agrees_with_test_on_the_decoded_object(
        a in proptest::option::of(arb_value()),
        b in proptest::option::of(arb_value()),
    ) {
        let mut obj = serde_json::Map::new();
        let mut text = Vec::new();
        for (k, v) in [("a", a), ("b", b)] {
            if let Some(v) = v {
                text.push((k, serde_json::to_string(&v).unwrap()));
                obj.insert(k.to_owned(), v);
            }
        }
        let input = Value::Object(obj);
        let raw = |k: &str| Some(text.iter().find(|(n, _)| *n == k).map(|(_, t)| t.as_str()));
        for source in RAW {
            let jq = Jq::compile(source).unwrap();
            if let Some(got) = jq.test_raw(&raw) {
                prop_assert_eq!(got, jq.test(&input).unwrap(), "{} on {}", source, input);
            }
        }
    }
}
