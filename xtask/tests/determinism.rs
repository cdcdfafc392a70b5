//! Reproducibility: two checkouts in different directories give byte-identical archives.
mod support;

use std::collections::BTreeMap;
use std::process::Command;

use support::{run, workspace, xtask_bin};
use xtask::epoch::Epoch;

#[test]
fn two_checkouts_in_different_directories_give_identical_archives() {
    support::tool("git").expect("git is needed to list the workspace's files");
    // A fixed epoch for both builds: the copy has no git history.
    let epoch = Epoch(1_700_000_000);
    let out = run(Command::new(xtask_bin())
        .args(["image", "--arch", "all", "--json"])
        .env("SOURCE_DATE_EPOCH", epoch.0.to_string())
        .current_dir(workspace()));
    let rows: Vec<support::Row> = serde_json::from_str(&out).unwrap();
    let ours: BTreeMap<String, String> = rows
        .iter()
        .map(|r| (r.arch.clone(), r.archive_sha256.clone()))
        .collect();
    assert_eq!(ours.len(), 2);

    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(workspace());
    let ws = xtask::workspace::Workspace::discover(&sh).unwrap();
    let copy = xtask::repro::default_dir(&ws);
    assert_ne!(copy, ws.root, "the copy must live in another directory");
    let n = xtask::repro::mirror(&sh, &ws, &copy).unwrap();
    assert!(n > 10, "mirrored only {n} files");
    let theirs = xtask::repro::build_copy(&sh, &xtask_bin(), &copy, epoch).unwrap();
    xtask::repro::compare(&ours, &theirs).unwrap();

    // And the comparison is not vacuous: another epoch gives other bytes.
    let other = run(Command::new(xtask_bin())
        .args(["image", "--arch", "amd64", "--json"])
        .env("SOURCE_DATE_EPOCH", (epoch.0 + 1).to_string())
        .current_dir(workspace()));
    let other: Vec<support::Row> = serde_json::from_str(&other).unwrap();
    assert_ne!(other[0].archive_sha256, ours["amd64"]);
}
