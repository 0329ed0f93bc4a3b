//! The page frame every console page shares: head, navigation, who is signed in, sign-out.
//! maud escapes every interpolated value; nothing here writes raw HTML.

use maud::{DOCTYPE, Markup, html};

/// The navigation's pages: path and title.
const NAV: &[(&str, &str)] = &[
    ("/console", "Approvals"),
    ("/console/audit", "Audit"),
    ("/console/status", "Status"),
    ("/console/who-can", "Who can"),
];

/// Who is signed in, as the frame shows them.
pub struct Viewer<'a> {
    pub id: &'a str,
    pub groups: &'a [String],
    pub csrf: &'a str,
}

/// A whole page: `current` is the navigation entry to mark.
pub fn page(title: &str, current: &str, viewer: Option<&Viewer<'_>>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · mcpgate" }
                link rel="stylesheet" href="/console/assets/console.css";
                link rel="icon" href="/console/assets/icon.svg";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header.top {
                    span.brand { "mcpgate" }
                    @if let Some(v) = viewer {
                        nav {
                            @for (path, name) in NAV {
                                a href=(path) class=[(*path == current).then_some("current")] { (name) }
                            }
                        }
                        div.who {
                            span.principal { (v.id) }
                            @if !v.groups.is_empty() {
                                span.groups { " (" (v.groups.join(", ")) ")" }
                            }
                            form method="post" action="/console/logout" {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page that only says something went wrong (no details a stranger should see).
pub fn message(title: &str, text: &str) -> Markup {
    page(title, "", None, &html! { h1 { (title) } p { (text) } })
}

/// Seconds since the epoch as an RFC 3339 time (UTC).
pub fn time_secs(secs: u64) -> String {
    time_ms(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX))
}

/// Milliseconds since the epoch as an RFC 3339 time (UTC, seconds).
pub fn time_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(
        |_| ms.to_string(),
        |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}
