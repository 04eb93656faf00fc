//! Measuring and reporting: interleaved rounds, medians, result rows, and
//! the two output formats (a table, or one JSON object per line).
//!
//! Every number a suite reports is a median over rounds. Within a round each
//! variant runs once, in an order rotated from round to round, so a slow
//! patch of a noisy machine hits every variant alike. Ratios are paired:
//! the median, over rounds, of (variant ÷ baseline) measured in the same
//! round.

use std::time::{Duration, Instant};

use serde_json::Value;

/// One measurement of one variant: how long it took and a checksum of its
/// output (compared across variants, so a variant that skipped work is
/// caught instead of reported as fast).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) seconds: f64,
    pub(crate) check: u64,
    /// Peak resident set size, for variants run in a child process.
    pub(crate) peak_rss_kb: Option<u64>,
}

impl Sample {
    /// Times `f`, whose result becomes the checksum.
    pub(crate) fn time(f: impl FnOnce() -> u64) -> Sample {
        let start = Instant::now();
        let check = f();
        Sample {
            seconds: start.elapsed().as_secs_f64(),
            check,
            peak_rss_kb: None,
        }
    }

    /// Times `f`, whose `Ok` result becomes the checksum; an error voids
    /// the measurement.
    pub(crate) fn try_time<E: std::fmt::Display>(
        f: impl FnOnce() -> Result<u64, E>,
    ) -> Result<Sample, String> {
        let start = Instant::now();
        let result = f();
        let seconds = start.elapsed().as_secs_f64();
        Ok(Sample {
            seconds,
            check: result.map_err(|e| e.to_string())?,
            peak_rss_kb: None,
        })
    }
}

/// A variant of a suite: a name and how to run it once.
pub(crate) struct Variant<'a> {
    pub(crate) name: &'static str,
    run: Box<dyn FnMut() -> Result<Sample, String> + 'a>,
}

impl std::fmt::Debug for Variant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Variant")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'a> Variant<'a> {
    pub(crate) fn new(name: &'static str, run: impl FnMut() -> Result<Sample, String> + 'a) -> Variant<'a> {
        Variant {
            name,
            run: Box::new(run),
        }
    }
}

/// The samples of every variant of a suite, one per round, in the order the
/// variants were given.
#[derive(Debug)]
pub(crate) struct Samples {
    names: Vec<&'static str>,
    /// `by_variant[v][round]`.
    by_variant: Vec<Vec<Sample>>,
}

/// Runs every variant once per round, rotating the order each round, after
/// one untimed warm-up pass if `warmup`. Progress goes to stderr.
pub(crate) fn interleave(
    suite: &str,
    rounds: usize,
    warmup: bool,
    variants: &mut [Variant<'_>],
) -> Result<Samples, String> {
    let k = variants.len();
    if warmup {
        eprintln!("{suite}: warm-up");
        for v in variants.iter_mut() {
            (v.run)().map_err(|e| format!("{suite}/{}: {e}", v.name))?;
        }
    }
    let mut by_variant = vec![Vec::with_capacity(rounds); k];
    for round in 0..rounds {
        eprintln!("{suite}: round {}/{rounds}", round + 1);
        for i in 0..k {
            let v = (round + i) % k;
            let sample = (variants[v].run)().map_err(|e| format!("{suite}/{}: {e}", variants[v].name))?;
            by_variant[v].push(sample);
        }
    }
    Ok(Samples {
        names: variants.iter().map(|v| v.name).collect(),
        by_variant,
    })
}

impl Samples {
    fn index(&self, name: &str) -> usize {
        self.names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("no variant named `{name}` was measured"))
    }

    /// The samples of variant `name`, one per round.
    pub(crate) fn of(&self, name: &str) -> &[Sample] {
        &self.by_variant[self.index(name)]
    }

    /// Median seconds of variant `name`.
    pub(crate) fn median_seconds(&self, name: &str) -> f64 {
        median(self.of(name).iter().map(|s| s.seconds))
    }

    /// Median peak RSS of variant `name`, if it was measured.
    pub(crate) fn median_rss_kb(&self, name: &str) -> Option<u64> {
        let rss: Option<Vec<f64>> = self
            .of(name)
            .iter()
            .map(|s| s.peak_rss_kb.map(|kb| kb as f64))
            .collect();
        rss.map(|v| median(v).round() as u64)
    }

    /// The names of the variants, in the order they were given.
    pub(crate) fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// A paired statistic: the median over rounds of `f(a's sample, b's
    /// sample)`, both taken from the same round (for a ratio, `f` divides).
    pub(crate) fn paired(&self, a: &str, b: &str, f: impl Fn(&Sample, &Sample) -> f64) -> f64 {
        median(self.of(a).iter().zip(self.of(b)).map(|(x, y)| f(x, y)))
    }

    /// Checks that every sample of `name` has checksum `expected`.
    pub(crate) fn expect_check(&self, name: &str, expected: u64) -> Result<(), String> {
        match self.of(name).iter().find(|s| s.check != expected) {
            Some(s) => Err(format!(
                "variant `{name}` computed {} where {expected} was expected: its measurement is void",
                s.check
            )),
            None => Ok(()),
        }
    }
}

/// The median of some numbers (the mean of the middle two for an even
/// count). NaN for none.
pub(crate) fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Median of `f` over `samples` runs of `f`, in seconds (for calibration
/// measurements such as the length of one timer sleep).
pub(crate) fn median_duration(samples: usize, mut f: impl FnMut() -> Duration) -> f64 {
    median((0..samples).map(|_| f().as_secs_f64()))
}

/// One output row.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) suite: &'static str,
    pub(crate) variant: String,
    /// The variant this row's ratio is against; `None` for baseline rows.
    pub(crate) baseline: Option<String>,
    pub(crate) items: u64,
    pub(crate) seconds: Option<f64>,
    pub(crate) ratio: Option<f64>,
    pub(crate) peak_rss_kb: Option<u64>,
    /// Suite-specific numbers, printed as notes under the table and as
    /// extra keys in JSON.
    pub(crate) extra: Vec<(&'static str, f64)>,
}

impl Row {
    /// A row for `variant` over `items` items, with its median time.
    pub(crate) fn new(suite: &'static str, variant: &str, items: u64, seconds: Option<f64>) -> Row {
        Row {
            suite,
            variant: variant.to_owned(),
            baseline: None,
            items,
            seconds,
            ratio: None,
            peak_rss_kb: None,
            extra: Vec::new(),
        }
    }

    /// Sets the baseline and the ratio against it.
    pub(crate) fn against(mut self, baseline: &str, ratio: f64) -> Row {
        self.baseline = Some(baseline.to_owned());
        self.ratio = Some(ratio);
        self
    }

    /// Sets the peak RSS.
    pub(crate) fn rss(mut self, kb: Option<u64>) -> Row {
        self.peak_rss_kb = kb;
        self
    }

    /// Adds a suite-specific number.
    pub(crate) fn with(mut self, key: &'static str, value: f64) -> Row {
        self.extra.push((key, value));
        self
    }

    fn items_per_sec(&self) -> Option<f64> {
        self.seconds.filter(|s| *s > 0.0).map(|s| self.items as f64 / s)
    }

    fn ns_per_item(&self) -> Option<f64> {
        self.seconds
            .filter(|_| self.items > 0)
            .map(|s| s * 1e9 / self.items as f64)
    }

    fn to_json(&self) -> String {
        let num = |x: Option<f64>| {
            x.and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number)
        };
        let mut fields: Vec<(&str, Value)> = vec![
            ("suite", Value::from(self.suite)),
            ("variant", Value::from(self.variant.as_str())),
            (
                "baseline",
                self.baseline.as_deref().map_or(Value::Null, Value::from),
            ),
            ("items", Value::from(self.items)),
            ("seconds", num(self.seconds)),
            ("items_per_sec", num(self.items_per_sec())),
            ("ns_per_item", num(self.ns_per_item())),
            ("ratio_to_baseline", num(self.ratio)),
            ("peak_rss_kb", self.peak_rss_kb.map_or(Value::Null, Value::from)),
        ];
        fields.extend(self.extra.iter().map(|(k, v)| (*k, num(Some(*v)))));
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

/// Where rows and notes go: a table on stdout, or JSON lines on stdout with
/// the notes on stderr.
#[derive(Debug)]
pub(crate) struct Reporter {
    json: bool,
    header_done: bool,
}

const TABLE: [(&str, usize); 9] = [
    ("suite", 8),
    ("variant", 27),
    ("baseline", 24),
    ("items", 10),
    ("median s", 10),
    ("items/s", 9),
    ("ns/item", 9),
    ("ratio", 7),
    ("peak_rss_kb", 11),
];

impl Reporter {
    pub(crate) fn new(json: bool) -> Reporter {
        Reporter {
            json,
            header_done: false,
        }
    }

    fn line(cells: [String; 9]) -> String {
        let mut s = String::new();
        for (i, (cell, (_, width))) in cells.iter().zip(TABLE).enumerate() {
            if i < 3 {
                s.push_str(&format!("{cell:<width$} "));
            } else {
                s.push_str(&format!("{cell:>width$} "));
            }
        }
        s.trim_end().to_owned()
    }

    /// Prints a suite's rows, then their extra numbers as notes.
    pub(crate) fn rows(&mut self, rows: &[Row]) {
        if self.json {
            for row in rows {
                println!("{}", row.to_json());
            }
            return;
        }
        if !self.header_done {
            self.header_done = true;
            println!("{}", Self::line(TABLE.map(|(h, _)| h.to_owned())));
        }
        let dash = || "-".to_owned();
        for r in rows {
            println!(
                "{}",
                Self::line([
                    r.suite.to_owned(),
                    r.variant.clone(),
                    r.baseline.clone().unwrap_or_else(dash),
                    r.items.to_string(),
                    r.seconds.map_or_else(dash, |s| format!("{s:.4}")),
                    r.items_per_sec().map_or_else(dash, si),
                    r.ns_per_item().map_or_else(dash, |n| format!("{n:.2}")),
                    r.ratio.map_or_else(dash, |x| format!("{x:.2}")),
                    r.peak_rss_kb.map_or_else(dash, |kb| kb.to_string()),
                ])
            );
        }
        for r in rows.iter().filter(|r| !r.extra.is_empty()) {
            let extra: Vec<String> = r
                .extra
                .iter()
                .map(|(k, v)| format!("{k} = {}", sig(*v)))
                .collect();
            println!(
                "  # {}/{} ({} items): {}",
                r.suite,
                r.variant,
                r.items,
                extra.join(", ")
            );
        }
    }

    /// Prints a free-form note (stderr in JSON mode, to keep stdout JSON).
    pub(crate) fn note(&self, text: &str) {
        if self.json {
            eprintln!("# {text}");
        } else {
            println!("  # {text}");
        }
    }
}

/// A verdict against a target: `met` or `MISSED`.
pub(crate) fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// `x` with an SI suffix: 812.3M.
fn si(x: f64) -> String {
    let (v, unit) = if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    format!("{v:.1}{unit}")
}

/// `x` with about four significant digits.
fn sig(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else if x.abs() >= 1.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median([]).is_nan());
    }

    #[test]
    fn json_rows_keep_the_field_order_and_use_null() {
        let row = Row::new("chain", "hand-loop", 10, Some(2.0));
        assert_eq!(
            row.to_json(),
            r#"{"suite":"chain","variant":"hand-loop","baseline":null,"items":10,"seconds":2.0,"items_per_sec":5.0,"ns_per_item":200000000.0,"ratio_to_baseline":null,"peak_rss_kb":null}"#
        );
    }
}
