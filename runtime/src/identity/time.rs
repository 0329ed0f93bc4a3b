//! Times in the consent record: seconds since the epoch, shown as UTC (`2026-11-22T03:08:33Z`),
//! and lifetimes written `30s`, `15m`, `8h`, `7d`, `2w`.

/// `secs` since the epoch as an RFC 3339 UTC timestamp.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX / 2));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date of a day count.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// Parses a lifetime: `90s`, `15m`, `8h`, `7d`, `2w` (a bare number is seconds); `never` is
/// `None`.
///
/// # Errors
/// When the text is not a positive duration with one of those units.
pub fn parse_ttl(s: &str) -> Result<Option<u64>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let d = mcpgate_compiler::duration::parse(s)
        .map_err(|e| format!("{e}; a lifetime is e.g. `8h`, `30d` or `never`"))?;
    if d.as_secs() == 0 {
        return Err(format!("`{s}` is no lifetime; give a positive duration"));
    }
    Ok(Some(d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_316_913), "2026-11-22T03:08:33Z");
    }

    #[test]
    fn lifetimes_parse_with_units() {
        assert_eq!(parse_ttl("8h"), Ok(Some(8 * 3600)));
        assert_eq!(parse_ttl("30d"), Ok(Some(30 * 86_400)));
        assert_eq!(parse_ttl("45"), Ok(Some(45)));
        assert_eq!(parse_ttl("never"), Ok(None));
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("8 parsecs").is_err());
        assert!(parse_ttl("").is_err());
    }
}
