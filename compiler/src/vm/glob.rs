//! Precompiled globs: the common shapes (literal, `*`, `pre*`, `*suf`, `pre*suf`) become
//! string tests; anything else runs the reference matcher, which allocates nothing.

use crate::ir::glob_match;

/// A compiled name or URI glob with exactly the meaning of [`crate::ir::glob_match`].
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    pattern: String,
    segments: bool,
    shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Literal,
    Any,
    /// `pattern[..n]` is the prefix.
    Prefix(usize),
    /// `pattern[n..]` is the suffix.
    Suffix(usize),
    /// `pattern[..a]` prefix, `pattern[b..]` suffix.
    PrefixSuffix(usize, usize),
    General,
}

/// How a pattern is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum GlobMode {
    /// Equality: a quoted name, where `*` is an ordinary character.
    Exact,
    /// A name glob: `*` matches any run of characters.
    Name,
    /// A URI glob: `*` stays within a `/` segment, `**` crosses segments.
    Uri,
}

impl Glob {
    pub fn new(pattern: &str, mode: GlobMode) -> Glob {
        let segments = mode == GlobMode::Uri;
        let stars: Vec<usize> = pattern.match_indices('*').map(|(i, _)| i).collect();
        let n = pattern.len();
        let shape = match stars.as_slice() {
            _ if mode == GlobMode::Exact => Shape::Literal,
            [] => Shape::Literal,
            // In segment mode a single `*` stops at `/`: only `**` runs are plain.
            _ if segments => match stars.as_slice() {
                [a, b] if *a + 1 == *b && *b + 1 == n => Shape::Prefix(*a),
                _ => Shape::General,
            },
            _ if stars.len() == n => Shape::Any,
            [a] if *a + 1 == n => Shape::Prefix(*a),
            [0] => Shape::Suffix(1),
            [a] => Shape::PrefixSuffix(*a, *a + 1),
            _ => Shape::General,
        };
        Glob {
            pattern: pattern.to_owned(),
            segments,
            shape,
        }
    }

    #[inline]
    pub fn matches(&self, text: &str) -> bool {
        let p = self.pattern.as_str();
        match self.shape {
            Shape::Literal => p == text,
            Shape::Any => true,
            Shape::Prefix(i) => p.get(..i).is_some_and(|pre| text.starts_with(pre)),
            Shape::Suffix(i) => p.get(i..).is_some_and(|suf| text.ends_with(suf)),
            Shape::PrefixSuffix(a, b) => match (p.get(..a), p.get(b..)) {
                (Some(pre), Some(suf)) => {
                    text.len() >= pre.len() + suf.len()
                        && text.starts_with(pre)
                        && text.ends_with(suf)
                }
                _ => false,
            },
            Shape::General => glob_match(p.as_bytes(), text.as_bytes(), self.segments),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_agree_with_the_reference_matcher() {
        let pats = [
            "",
            "*",
            "**",
            "a*",
            "*a",
            "a*b",
            "ab*ba",
            "*a*",
            "a**",
            "get_*",
            "x",
            "a.*.b",
            "file:///srv/**",
            "file:///srv/*",
            "**.md",
            "a**b",
        ];
        let texts = [
            "",
            "a",
            "b",
            "ab",
            "aba",
            "abba",
            "abxba",
            "get_file",
            "get_",
            "a.x.b",
            "x",
            "file:///srv/docs/a.md",
            "file:///srv/a",
            "file:///srv/",
            "readme.md",
            "a/b",
        ];
        for p in pats {
            for seg in [false, true] {
                let g = Glob::new(p, if seg { GlobMode::Uri } else { GlobMode::Name });
                for t in texts {
                    assert_eq!(
                        g.matches(t),
                        glob_match(p.as_bytes(), t.as_bytes(), seg),
                        "{p:?} {t:?} segments={seg}"
                    );
                }
            }
            assert!(Glob::new(p, GlobMode::Exact).matches(p));
        }
        assert!(!Glob::new("a*", GlobMode::Exact).matches("ab"));
    }
}
