//! Selecting records for `mcpgate audit tail` and `export`: by principal, tool, verdict,
//! type and time; and a one-line rendering for people.

use serde_json::Value;

/// Which records to show. Empty fields match everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// `principal.id`, exactly.
    pub principal: Option<String>,
    /// The person an agent acted for under a delegation (`on_behalf_of`), exactly.
    pub on_behalf_of: Option<String>,
    /// `server.tool`, `tool`, or a glob with `*` over `server.name`.
    pub tool: Option<String>,
    /// `allow`, `deny`, `hide`, `approve`.
    pub verdict: Option<String>,
    /// `decision`, `outcome`, `list`, `event`.
    pub kind: Option<String>,
    /// Records at or after this time.
    pub since: Option<jiff::Timestamp>,
}

impl Filter {
    /// Whether `record` is selected.
    pub fn matches(&self, record: &Value) -> bool {
        let s = |p: &str| record.pointer(p).and_then(Value::as_str);
        if let Some(p) = &self.principal
            && s("/principal/id") != Some(p.as_str())
        {
            return false;
        }
        if let Some(p) = &self.on_behalf_of
            && s("/on_behalf_of") != Some(p.as_str())
        {
            return false;
        }
        if let Some(v) = &self.verdict
            && s("/verdict") != Some(v.as_str())
        {
            return false;
        }
        if let Some(k) = &self.kind
            && s("/type") != Some(k.as_str())
        {
            return false;
        }
        if let Some(since) = self.since
            && s("/time")
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_none_or(|t| t < since)
        {
            return false;
        }
        if let Some(t) = &self.tool {
            let (Some(server), Some(name)) = (s("/server"), s("/target/name")) else {
                return false;
            };
            let full = format!("{server}.{name}");
            if !(glob(t, &full) || glob(t, name)) {
                return false;
            }
        }
        true
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == text;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// `--since`: an RFC 3339 time with any offset (`2026-12-06T10:00:00+02:00`, `...Z`), a
/// date (midnight UTC), or a duration back from now (`90s`, `15m`, `2h`, `7d`, `1h 30m`).
///
/// # Errors
/// When it is none of them.
pub fn parse_since(text: &str, now_secs: u64) -> Result<jiff::Timestamp, String> {
    let t = text.trim();
    if let Ok(time) = t.parse::<jiff::Timestamp>() {
        return Ok(time);
    }
    if let Ok(date) = t.parse::<jiff::civil::Date>() {
        return date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|e| format!("`{t}`: {e}"));
    }
    let back = mcpgate_compiler::duration::parse(t).map_err(|_| {
        format!(
            "cannot read `{t}` as a time (`2026-12-06T10:00:00+02:00`, `2026-12-06`) or a \
             duration back from now (`15m`, `1h 30m`)"
        )
    })?;
    let secs = now_secs.saturating_sub(back.as_secs());
    jiff::Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX))
        .map_err(|e| format!("`{t}`: {e}"))
}

/// One line for people: time, seq, type and what the record says.
pub fn render(record: &Value) -> String {
    let s = |p: &str| record.pointer(p).and_then(Value::as_str).unwrap_or("-");
    let seq = record.get("seq").and_then(Value::as_u64).unwrap_or(0);
    let head = format!("{} #{seq}", s("/time"));
    let id = |p: &str| s(p).chars().take(8).collect::<String>();
    // An agent acting under a delegation: for whom, by which delegation, why.
    let delegated = match record.get("on_behalf_of").and_then(Value::as_str) {
        Some(person) => format!(
            " for={person} delegation={} reason={}",
            s("/delegation/id"),
            Value::String(s("/delegation/reason").to_owned())
        ),
        None => String::new(),
    };
    match s("/type") {
        "decision" => format!(
            "{head} decision {} {}.{} {} rule={} action={} req={}{delegated}",
            s("/principal/id"),
            s("/server"),
            s("/target/name"),
            s("/verdict"),
            s("/rule"),
            s("/action"),
            id("/request_id")
        ),
        "outcome" => {
            let ns = record
                .get("upstream_ns")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            format!(
                "{head} outcome {} {} {:.2}ms req={}",
                s("/server"),
                s("/status"),
                ns as f64 / 1e6,
                id("/request_id")
            )
        }
        "list" => format!(
            "{head} list {} {} {} shown={} hidden={}",
            s("/principal/id"),
            s("/method"),
            s("/server"),
            record.get("shown").unwrap_or(&Value::Null),
            record.get("hidden").unwrap_or(&Value::Null)
        ),
        "event" => format!(
            "{head} event {} {}",
            s("/event"),
            record.get("data").unwrap_or(&Value::Null)
        ),
        other => format!("{head} {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_select_by_principal_tool_verdict_and_time() {
        let r = json!({"type": "decision", "time": "2026-01-02T00:00:00.000000Z",
            "principal": {"id": "ana"}, "server": "github", "target": {"name": "create_issue"},
            "verdict": "deny"});
        assert!(Filter::default().matches(&r));
        let f = |f: Filter| f.matches(&r);
        assert!(f(Filter {
            principal: Some("ana".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            principal: Some("bob".into()),
            ..Filter::default()
        }));
        assert!(f(Filter {
            tool: Some("github.create_*".into()),
            ..Filter::default()
        }));
        assert!(f(Filter {
            tool: Some("create_issue".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            tool: Some("stripe.*".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            verdict: Some("allow".into()),
            ..Filter::default()
        }));
        let since = |t: &str| Some(parse_since(t, 0).unwrap());
        assert!(f(Filter {
            since: since("2026-01-01"),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            since: since("2026-01-03"),
            ..Filter::default()
        }));
        // 01:00 at +02:00 is 23:00 UTC the day before: the record is after it (as text,
        // "2026-01-02T00..." sorts before "2026-01-02T01...").
        assert!(f(Filter {
            since: since("2026-01-02T01:00:00+02:00"),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            since: since("2026-01-02T03:00:00+02:00"),
            ..Filter::default()
        }));
    }

    #[test]
    fn since_takes_times_and_durations() {
        let at = |t: &str, now: u64| parse_since(t, now).unwrap().as_second();
        assert_eq!(at("2026-01-01T00:00:00Z", 0), 1_767_225_600);
        assert_eq!(at("2026-01-01", 0), 1_767_225_600);
        // An offset is a time, not text: 02:00 at +02:00 is midnight UTC.
        assert_eq!(at("2026-01-01T02:00:00+02:00", 0), 1_767_225_600);
        assert_eq!(at("1h", 7200), 3600);
        assert_eq!(at("1h 30m", 7200), 1800);
        assert!(parse_since("soon", 0).is_err());
        assert!(glob("a*c", "abbc") && !glob("a*c", "abbd") && glob("*", "") && glob("x", "x"));
    }
}
