//! Every policy pack keeps a committed `WHO-CAN.md`: the `who-can` report of each target it
//! names. Regenerated here; a pack change that changes who can do what fails until the
//! report is regenerated (`MCPGATE_BLESS=1 cargo test -p mcpgate-compiler --test
//! analysis_packs`) and reviewed with it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_compiler::analysis::{self, Model};
use mcpgate_compiler::repo;
use std::path::Path;

fn report(pack: &Path) -> String {
    let files = repo::read_dir(pack).unwrap();
    let checked = repo::check_files(files);
    assert!(!checked.has_errors(), "{}", checked.rendered);
    let model = Model::of(&checked);
    let name = pack.file_name().unwrap().to_string_lossy();
    analysis::markdown(
        &format!("Who can do what: the `{name}` pack"),
        &analysis::who_can_all(&model),
        true,
    )
}

#[test]
fn committed_who_can_reports_are_current() {
    let packs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut stale = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&packs).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("policies").is_dir() {
            continue;
        }
        seen += 1;
        let fresh = report(&dir);
        let path = dir.join("WHO-CAN.md");
        if std::env::var_os("MCPGATE_BLESS").is_some() {
            std::fs::write(&path, &fresh).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != fresh {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        seen >= 5,
        "the packs were not found under {}",
        packs.display()
    );
    assert!(
        stale.is_empty(),
        "stale who-can reports (regenerate with MCPGATE_BLESS=1 and review): {stale:?}"
    );
}
