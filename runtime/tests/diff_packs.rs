//! Every policy pack in `policies/` checks clean: no errors, no warnings, every test passes.

use mcpgate::cli::check::check_dir;
use mcpgate_compiler::diag::Format;
use std::path::Path;

#[test]
fn every_pack_checks_with_no_warnings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut packs: Vec<_> = std::fs::read_dir(&root)
        .expect("policies/ is readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    packs.sort();
    let names: Vec<String> = packs
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    for want in ["filesystem", "github", "slack", "sqlite", "stripe"] {
        assert!(
            names.iter().any(|n| n == want),
            "missing pack {want}: {names:?}"
        );
    }
    for pack in &packs {
        let (rendered, summary) = check_dir(pack, Format::Human).expect("the pack is readable");
        assert!(
            summary.errors == 0 && summary.warnings == 0 && summary.failed == 0,
            "{}: {}\n{rendered}",
            pack.display(),
            summary.line()
        );
        assert!(
            summary.rules > 0 && summary.tests >= summary.rules,
            "{}",
            summary.line()
        );
        assert!(
            pack.join("README.md").is_file(),
            "{} has no README",
            pack.display()
        );
    }
}
