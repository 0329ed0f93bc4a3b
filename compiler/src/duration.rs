//! The one duration syntax of config and command line: `250ms`, `90s`, `15m`, `8h`, `7d`,
//! `2w`, and sums such as `1h 30m` (humantime's reading); a bare number is seconds, as the
//! `*_secs` keys always were.

use std::time::Duration;

/// What [`parse`] reads, as a JSON Schema pattern for the YAML formats.
pub const PATTERN: &str =
    r"^\s*[0-9]+\s*(ns|us|ms|s|m|h|d|w)?(\s*[0-9]+\s*(ns|us|ms|s|m|h|d|w))*\s*$";

/// Reads a duration.
///
/// # Errors
/// What is wrong, with an example of what would be read.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    // humantime also takes long unit names and months and years; the syntax here is the
    // short units only, so that config reads the same everywhere.
    let letters = t.split(|c: char| c.is_ascii_digit() || c.is_whitespace());
    if let Some(bad) = letters
        .filter(|u| !u.is_empty())
        .find(|u| !matches!(*u, "ns" | "us" | "ms" | "s" | "m" | "h" | "d" | "w"))
    {
        return Err(format!(
            "unknown unit `{bad}` in `{t}`; use ms, s, m, h, d or w (e.g. `15m`, `1h 30m`)"
        ));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("cannot read `{t}` as a duration (e.g. `15m`, `1h 30m`): {e}"))
}

/// Writes a duration in the same syntax, as [`parse`] reads it back: `15m`, `1h 30m`,
/// `250ms`, `3d` (sub-millisecond parts are dropped).
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    let mut parts = Vec::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= size {
            parts.push(format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    if ms > 0 || parts.is_empty() {
        parts.push(format!("{ms}ms"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_units_sums_and_bare_seconds() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse(" 45 "), Ok(Duration::from_secs(45)));
        for d in ["15m", "1h 30m", "250ms", "3d 4h 1s", "0ms"] {
            assert_eq!(format(parse(d).unwrap()), d);
        }
        for bad in ["", "soon", "15 minutes", "1y", "-5s", "1.5h", "m"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_schema_pattern_reads_what_parse_reads() {
        let re = regex::Regex::new(PATTERN).unwrap();
        for ok in ["250ms", "90s", "1h 30m", "45", "2w"] {
            assert!(re.is_match(ok) && parse(ok).is_ok(), "{ok}");
        }
        for bad in ["soon", "1y", "m", ""] {
            assert!(!re.is_match(bad) && parse(bad).is_err(), "{bad}");
        }
    }
}
