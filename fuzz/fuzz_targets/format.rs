//! Whatever parses formats, idempotently, to a source with the same rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpgate_compiler::format::format_source;
use mcpgate_grammar::parse_file;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(once) = format_source(src) else {
        return;
    };
    let twice = format_source(&once).expect("formatted output parses");
    assert_eq!(once, twice, "formatting is not idempotent");
    assert_eq!(parse_file(&once).0.rules, parse_file(src).0.rules);
});
