//! Durations as Prometheus writes them (`prometheus/common` `model.ParseDuration`): integers with
//! the units `y`, `w`, `d`, `h`, `m`, `s`, `ms`, in that order, each at most once — `1h30m`,
//! `500ms`, `10m`, `2d` — or `0`. Exactly that grammar, so a value that works in a Prometheus
//! configuration works here and a typo (`5s5s`, `0.5s`, `1.5h`, `5`) is an error, not a guess.

use std::time::Duration;

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a Prometheus duration; the error says why, quoting the text.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match text {
        "" => return Err("empty duration string".into()),
        "0" => return Ok(Duration::ZERO),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {text:?}");
    let mut rest = text;
    let mut next_unit = 0;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        let after = &rest[digits..];
        let unit_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let unit = &after[..unit_len];
        // Units must come in order, each once: find this one at or after the last one used.
        let Some(i) = UNITS[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(invalid());
        };
        let ms = UNITS[next_unit + i].1;
        next_unit += i + 1;
        total = value
            .checked_mul(ms)
            .and_then(|v| total.checked_add(v))
            .filter(|t| *t <= i64::MAX as u64)
            .ok_or_else(|| format!("duration out of range: {text:?}"))?;
        rest = &after[unit_len..];
    }
    Ok(Duration::from_millis(total))
}

/// Parses a Go duration (`time.ParseDuration`), as exporter-toolkit's web configuration file
/// writes them: decimal numbers with the units `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`, in any
/// order — `1.5s`, `100ms`, `1h30m` — or `0`. Negative durations are refused.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err(format!("time: negative duration {text:?}"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let number = &rest[..num_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let after = &rest[num_len..];
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let nanos = match &after[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {text:?}")),
            other => return Err(format!("time: unknown unit {other:?} in duration {text:?}")),
        };
        total += value * nanos;
        rest = &after[unit_len..];
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of prometheus/common's own tests.
    #[test]
    fn prometheus_examples() {
        let ok = [
            ("0", 0),
            ("0s", 0),
            ("324ms", 324),
            ("3s", 3_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("4d", 4 * 86_400_000),
            ("4d1h", 4 * 86_400_000 + 3_600_000),
            ("14d", 14 * 86_400_000),
            ("3w", 21 * 86_400_000),
            ("3w2d1h", 23 * 86_400_000 + 3_600_000),
            ("10y", 3650 * 86_400_000),
            ("1m30s", 90_000),
            ("1h30m15s500ms", 5_415_500),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in [
            "0.5s", "5s5s", "1.5h", "5", "5y1y", "1s1m", "-1s", "1S", " 5s", "5s ", "ms", "5 s",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(format!("not a valid duration string: {bad:?}")),
                "{bad}"
            );
        }
        assert_eq!(parse_duration(""), Err("empty duration string".into()));
        assert_eq!(
            parse_duration("99999999999999999999y"),
            Err("not a valid duration string: \"99999999999999999999y\"".into())
        );
        assert_eq!(
            parse_duration("999999999y"),
            Err("duration out of range: \"999999999y\"".into())
        );
    }

    /// The examples of Go's time package tests.
    #[test]
    fn go_examples() {
        let ok = [
            ("0", 0),
            ("5s", 5_000_000_000),
            ("30s", 30_000_000_000),
            ("1478s", 1_478_000_000_000),
            ("+5s", 5_000_000_000),
            ("5.0s", 5_000_000_000),
            ("5.6s", 5_600_000_000),
            ("5.s", 5_000_000_000),
            (".5s", 500_000_000),
            ("1.004s", 1_004_000_000),
            ("100ms", 100_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12µs", 12_000),
            ("3h", 10_800_000_000_000),
            ("3h30m", 12_600_000_000_000),
            ("10.5s4m", 250_500_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
        ];
        for (text, ns) in ok {
            assert_eq!(
                parse_go_duration(text),
                Ok(Duration::from_nanos(ns)),
                "{text}"
            );
        }
        assert_eq!(
            parse_go_duration(""),
            Err("time: invalid duration \"\"".into())
        );
        assert_eq!(
            parse_go_duration("3"),
            Err("time: missing unit in duration \"3\"".into())
        );
        assert_eq!(
            parse_go_duration("."),
            Err("time: invalid duration \".\"".into())
        );
        assert_eq!(
            parse_go_duration(".s"),
            Err("time: invalid duration \".s\"".into())
        );
        assert_eq!(
            parse_go_duration("3d"),
            Err("time: unknown unit \"d\" in duration \"3d\"".into())
        );
        assert_eq!(
            parse_go_duration("-1s"),
            Err("time: negative duration \"-1s\"".into())
        );
    }
}
