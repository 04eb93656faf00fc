//! Small text formatters shared by the live lines, the plain lines and the
//! reports: counts with thousands separators, rates, durations, byte sizes
//! and text bars.

use std::time::Duration;

/// `1234567` → `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        // ASCII digits: always UTF-8.
        .map(|group| std::str::from_utf8(group).unwrap_or("?"))
        .collect();
    groups.join(",")
}

/// Items per second: `102,345/s`, or one decimal under 10/s (`2.5/s`).
pub(crate) fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        "0/s".to_owned()
    } else if per_sec < 10.0 {
        format!("{per_sec:.1}/s")
    } else {
        // Saturating: rates above u64::MAX are not a real case.
        format!("{}/s", count(per_sec.round() as u64))
    }
}

/// Time since the start: `0.4s`, `12.0s`, `2m05s`, `1h02m03s`.
pub(crate) fn elapsed(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        whole(secs)
    }
}

/// Time left, to the second: `0s`, `14s`, `2m05s`, `1h02m03s`.
pub(crate) fn eta(d: Duration) -> String {
    // Round up: "0s" only when nothing is left.
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    whole(secs)
}

fn whole(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A latency with three significant digits: `850ns`, `12.3µs`, `1.25ms`,
/// `3.40s`.
pub(crate) fn latency(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    let (value, unit) = if ns < 1e3 {
        return format!("{ns:.0}ns");
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    significant(value, unit)
}

/// A byte size in binary units: `512 B`, `1.50 KiB`, `2.34 GiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    significant(value, &format!(" {}", UNITS[unit]))
}

fn significant(value: f64, unit: &str) -> String {
    if value < 10.0 {
        format!("{value:.2}{unit}")
    } else if value < 100.0 {
        format!("{value:.1}{unit}")
    } else {
        format!("{value:.0}{unit}")
    }
}

/// A fraction (clamped to 0..=1) as a whole percentage: `45%`.
pub(crate) fn percent(fraction: f64) -> String {
    format!("{:.0}%", clamp_fraction(fraction) * 100.0)
}

/// A text bar `width` cells wide, filled to `fraction`: `██████░░░░`.
pub(crate) fn bar(fraction: f64, width: usize) -> String {
    let filled = (clamp_fraction(fraction) * width as f64).round() as usize;
    let mut out = String::with_capacity(width * 3);
    out.extend(std::iter::repeat_n('█', filled.min(width)));
    out.extend(std::iter::repeat_n('░', width - filled.min(width)));
    out
}

/// Aligns `rows` in columns, one space apart: the first `left` columns
/// aligned left (names), the others right (numbers). Lines keep no
/// trailing spaces.
pub(crate) fn table(rows: &[Vec<String>], left: usize) -> Vec<String> {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        if widths.len() < row.len() {
            widths.resize(row.len(), 0);
        }
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (c, (cell, &w)) in row.iter().zip(&widths).enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                if c < left {
                    line += &format!("{cell:<w$}");
                } else {
                    line += &format!("{cell:>w$}");
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
}

fn clamp_fraction(f: f64) -> f64 {
    if f.is_nan() {
        0.0
    } else {
        f.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_names_left_and_numbers_right() {
        let rows = [
            vec!["stage".to_owned(), "in".to_owned()],
            vec!["parse".to_owned(), "1,000".to_owned()],
            vec!["s".to_owned(), "7".to_owned()],
        ];
        assert_eq!(table(&rows, 1), ["stage     in", "parse  1,000", "s          7"]);
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn rates_are_whole_above_ten_and_never_nan() {
        assert_eq!(rate(102_345.4), "102,345/s");
        assert_eq!(rate(2.54), "2.5/s");
        assert_eq!(rate(0.0), "0/s");
        assert_eq!(rate(f64::NAN), "0/s");
        assert_eq!(rate(-3.0), "0/s");
    }

    #[test]
    fn durations_read_as_seconds_minutes_hours() {
        assert_eq!(elapsed(Duration::from_millis(12_040)), "12.0s");
        assert_eq!(elapsed(Duration::from_secs(125)), "2m05s");
        assert_eq!(elapsed(Duration::from_secs(3723)), "1h02m03s");
        assert_eq!(eta(Duration::ZERO), "0s");
        assert_eq!(eta(Duration::from_millis(13_100)), "14s"); // rounded up
        assert_eq!(eta(Duration::from_secs(60)), "1m00s");
    }

    #[test]
    fn latencies_keep_three_significant_digits() {
        assert_eq!(latency(Duration::from_nanos(850)), "850ns");
        assert_eq!(latency(Duration::from_nanos(12_340)), "12.3µs");
        assert_eq!(latency(Duration::from_micros(1250)), "1.25ms");
        assert_eq!(latency(Duration::from_millis(3400)), "3.40s");
    }

    #[test]
    fn byte_sizes_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024 / 2), "2.50 GiB");
    }

    #[test]
    fn bars_and_percentages_clamp_their_fraction() {
        assert_eq!(bar(0.6, 10), "██████░░░░");
        assert_eq!(bar(0.0, 4), "░░░░");
        assert_eq!(bar(7.0, 4), "████");
        assert_eq!(bar(f64::NAN, 2), "░░");
        assert_eq!(percent(0.456), "46%");
        assert_eq!(percent(1.5), "100%");
    }
}
