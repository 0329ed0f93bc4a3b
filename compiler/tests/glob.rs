//! The glob matcher against a direct reading of the glob rules (exponential, for short
//! inputs): `*` matches any run of bytes (in URI mode, of bytes other than `/`), and in URI
//! mode `**` matches any run at all.

use mcpgate_compiler::ir::glob_match;
use proptest::prelude::*;

fn spec(p: &[u8], t: &[u8], segments: bool) -> bool {
    match p {
        [] => t.is_empty(),
        [b'*', b'*', rest @ ..] if segments => (0..=t.len()).any(|i| spec(rest, &t[i..], true)),
        [b'*', rest @ ..] => {
            for i in 0..=t.len() {
                if spec(rest, &t[i..], segments) {
                    return true;
                }
                if segments && t.get(i) == Some(&b'/') {
                    return false;
                }
            }
            false
        }
        [c, rest @ ..] => t.first() == Some(c) && spec(rest, &t[1..], segments),
    }
}

fn bytes(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(proptest::sample::select(alphabet), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn agrees_with_the_rules(
        p in bytes(b"ab/**", 9),
        t in bytes(b"ab/", 10),
        segments in any::<bool>(),
    ) {
        prop_assert_eq!(glob_match(&p, &t, segments), spec(&p, &t, segments),
            "pattern {:?} text {:?} segments {}", String::from_utf8_lossy(&p),
            String::from_utf8_lossy(&t), segments);
    }
}

#[test]
fn crafted_cases() {
    let cases: &[(&str, &str, bool, bool)] = &[
        ("**/b/**/c", "a/b/x/y/c", true, true),
        ("**/b/*/c", "a/b/x/y/c", true, false),
        ("*/**", "a", true, false),
        ("*/**", "a/", true, true),
        ("a*b**c", "axxb/y/c", true, true),
        ("a*b**c", "ax/b/c", true, false),
        ("**a*b", "x/a/yb", true, false),
        ("**a*b", "x/ayb", true, true),
        (
            "file:///srv/**/*.md",
            "file:///srv/docs/a/readme.md",
            true,
            true,
        ),
        (
            "file:///srv/**/*.md",
            "file:///srv/docs/a.md/x",
            true,
            false,
        ),
    ];
    for &(p, t, segments, want) in cases {
        assert_eq!(
            glob_match(p.as_bytes(), t.as_bytes(), segments),
            want,
            "{p:?} {t:?}"
        );
        assert_eq!(
            spec(p.as_bytes(), t.as_bytes(), segments),
            want,
            "spec {p:?} {t:?}"
        );
    }
}

/// Many `**` against a long text that almost matches: the old recursive matcher took
/// O(n^k) steps here; this must finish at once (a hang fails the suite by its timeout).
#[test]
fn many_globstars_do_not_explode() {
    let pattern = "**a**a**a**a**a**a**a**a**b";
    let text = "a".repeat(4096);
    assert!(!glob_match(pattern.as_bytes(), text.as_bytes(), true));
}
