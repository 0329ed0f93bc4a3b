//! Positions inside YAML scalars: a DSL fragment in a YAML string (`when: args.x > 1`) is
//! parsed on its own, and its spans are mapped back into the YAML file. Plain and quoted
//! scalars map exactly; escapes, folding and block scalars map as closely as possible.

use mcpgate_grammar::Span;
use mcpgate_grammar::ast::{Expr, ExprKind, Spanned, Target};

/// Maps byte offsets in a scalar's value to byte offsets in the file.
pub struct OffsetMap {
    /// One entry per value byte, plus one for the end.
    map: Vec<u32>,
}

impl OffsetMap {
    /// Aligns `value` with the scalar written at `span` of `src`.
    pub fn new(src: &str, span: Span, value: &str) -> OffsetMap {
        let end = (span.end as usize).min(src.len());
        let mut si = (span.start as usize).min(end);
        // Skip the opening quote of a quoted scalar.
        if matches!(src.as_bytes().get(si), Some(b'"' | b'\'')) && !value.starts_with(['"', '\'']) {
            si += 1;
        }
        let mut map = Vec::with_capacity(value.len() + 1);
        for ch in value.chars() {
            let rest = src.get(si..end).unwrap_or_default();
            let pos = match rest.find(ch) {
                Some(off) => si + off,
                // Escapes (`\n`, `\u00e9`) and folded line breaks have no literal match.
                None => si,
            };
            for k in 0..ch.len_utf8() {
                map.push(to_u32(pos + k));
            }
            if rest.contains(ch) {
                si = pos + ch.len_utf8();
            }
        }
        map.push(to_u32(si));
        OffsetMap { map }
    }

    fn at(&self, i: u32) -> u32 {
        let last = self.map.last().copied().unwrap_or(0);
        self.map.get(i as usize).copied().unwrap_or(last)
    }

    /// Maps a span of the value to a span of the file.
    pub fn span(&self, s: Span) -> Span {
        let start = self.at(s.start);
        let end = if s.end > s.start {
            // The end of the last character, not the start of whatever follows it.
            self.at(s.end - 1).saturating_add(1).max(start)
        } else {
            start
        };
        Span { start, end }
    }

    /// Maps every span of an expression.
    pub fn expr(&self, e: &mut Expr) {
        e.span = self.span(e.span);
        match &mut e.node {
            ExprKind::Lit(_) | ExprKind::Error => {}
            ExprKind::List(items) => items.iter_mut().for_each(|i| self.expr(i)),
            ExprKind::Path(p) => {
                p.root.span = self.span(p.root.span);
                for s in &mut p.segments {
                    s.span = self.span(s.span);
                }
            }
            ExprKind::Unary(_, x) => self.expr(x),
            ExprKind::Binary(_, l, r) => {
                self.expr(l);
                self.expr(r);
            }
            ExprKind::Call(name, args) => {
                name.span = self.span(name.span);
                args.iter_mut().for_each(|a| self.expr(a));
            }
        }
    }

    /// Maps every span of a target.
    pub fn target(&self, t: &mut Spanned<Target>) {
        t.span = self.span(t.span);
        match &mut t.node {
            Target::Tool { server, tool: name }
            | Target::Prompt { server, name }
            | Target::Resource { server, uri: name } => {
                server.span = self.span(server.span);
                name.span = self.span(name.span);
            }
        }
    }
}

fn to_u32(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(src: &str, value: &str, sub: &str) -> String {
        let start = src
            .find(['"', '\''])
            .unwrap_or_else(|| src.find(value).unwrap());
        let span = Span::new(start, src.trim_end().len());
        let m = OffsetMap::new(src, span, value);
        let i = value.find(sub).unwrap();
        let s = m.span(Span::new(i, i + sub.len()));
        src[s.range()].to_owned()
    }

    #[test]
    fn plain_and_quoted() {
        assert_eq!(mapped("when: args.x > 1", "args.x > 1", "x > 1"), "x > 1");
        assert_eq!(mapped("when: \"args.x > 1\"", "args.x > 1", "args"), "args");
        assert_eq!(
            mapped(r#"when: "args.x == \"a\"""#, "args.x == \"a\"", "\"a\""),
            r#""a\""#
        );
        assert_eq!(mapped("when: 'it''s == 1'", "it's == 1", "1"), "1");
    }
}
