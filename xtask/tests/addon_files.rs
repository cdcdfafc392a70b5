//! The add-on folder's other files: the AppArmor profile parses (apparmor_parser, Debian
//! `apparmor`), the images have the sizes Home Assistant asks for, the changelog covers the
//! current version.
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn addon() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../addon")
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn icon_and_logo() {
    // developers.home-assistant.io, "Presenting your add-on": icon 1:1, 128x128 recommended.
    assert_eq!(png_size(&addon().join("icon.png")), (128, 128));
    let (w, h) = png_size(&addon().join("logo.png"));
    assert!(w > h && w <= 500 && h <= 200, "logo.png is {w}x{h}");
}

#[test]
fn changelog_has_the_current_version() {
    let cfg = xtask::addon::AddonConfig::load(&addon().join("config.yaml")).unwrap();
    let log = std::fs::read_to_string(addon().join("CHANGELOG.md")).unwrap();
    assert!(
        log.contains(&format!("## [{}]", cfg.version)),
        "CHANGELOG.md has no ## [{}]",
        cfg.version
    );
    let docs = std::fs::read_to_string(addon().join("DOCS.md")).unwrap();
    assert!(docs.contains("## Configuration") && docs.contains("## Installation"));
}

#[test]
fn apparmor_profile_parses() {
    // Debian package apparmor (installed by .ci/install-tools).
    let found = Command::new("apparmor_parser")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !support::require("`apparmor_parser` (Debian package apparmor)", found) {
        return;
    }
    // -Q: do not load into the kernel; -K/-T: no cache. Parsing still needs the includes.
    let parse = |path: &Path| {
        Command::new("apparmor_parser")
            .args(["-Q", "-K", "-T"])
            .arg(path)
            .output()
            .unwrap()
    };
    let out = parse(&addon().join("apparmor.txt"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(addon().join("apparmor.txt")).unwrap();
    assert!(
        text.contains("profile fluxion "),
        "the profile is named after the slug"
    );
    // A profile with a broken rule is refused, so the check above can fail.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("apparmor.txt");
    std::fs::write(&bad, text.replace("/data/** rwk,", "/data/** rwz,")).unwrap();
    assert!(!parse(&bad).status.success());
}
