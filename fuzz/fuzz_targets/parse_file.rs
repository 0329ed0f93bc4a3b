//! Any input: the parsers return, never panic, and every error points inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpgate_grammar::{TargetKind, parse_expr, parse_file, parse_target};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let (_, errors) = parse_file(src);
    let mut all = errors;
    if let Err(e) = parse_expr(src) {
        all.extend(e);
    }
    if let Err(e) = parse_target(src, TargetKind::Tool) {
        all.extend(e);
    }
    for e in all {
        let (start, end) = (e.span.start as usize, e.span.end as usize);
        assert!(start <= end && end <= src.len());
        assert!(src.is_char_boundary(start) && src.is_char_boundary(end));
    }
});
