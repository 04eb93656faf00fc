//! [`Mode::Plain`](super::Mode::Plain): one compact line per interval.

use super::format;
use super::Frame;

/// `[12.0s] 1,234,567 items, 102,345/s, 12 failed, 3 dead-lettered, in
/// flight 4,096, bottleneck: parse, 45% ETA 14s` (dead letters when there
/// are some, the bottleneck when known, the percentage when the input's
/// size is known, the ETA when it is moving).
pub(super) fn line(frame: &Frame) -> String {
    let mut line = format!(
        "[{}] {} items, {}, {} failed",
        format::elapsed(frame.elapsed),
        format::count(frame.items),
        format::rate(frame.rate),
        format::count(frame.failed),
    );
    if frame.dead_lettered > 0 {
        line += &format!(", {} dead-lettered", format::count(frame.dead_lettered));
    }
    line += &format!(", in flight {}", format::count(frame.in_flight));
    if let Some(b) = &frame.bottleneck {
        line += &format!(", bottleneck: {b}");
    }
    if let Some(input) = &frame.input {
        if let Some(fraction) = input.progress.fraction() {
            line += &format!(", {}", format::percent(fraction));
            if let Some(eta) = input.eta {
                line += &format!(" ETA {}", format::eta(eta));
            }
        }
    }
    line
}
