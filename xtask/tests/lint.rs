//! `cargo xtask lint` and `cargo xtask meta` end to end: the real binary, run in this
//! workspace, on bad manifests written to a temp dir; exit status and output are checked.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use xtask::addon::AddonConfig;
use xtask::arch::Arch;
use xtask::epoch::Epoch;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn xtask(args: &[&str], ci: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args).current_dir(root()).env("XTASK_LOG", "warn");
    match ci {
        Some(v) => cmd.env("CI", v),
        None => cmd.env_remove("CI"),
    };
    cmd.output().expect("running the xtask binary")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The committed manifest with some lines changed, written to a temp file.
fn bad_manifest(dir: &Path, edits: &[(&str, &str)], extra: &str) -> PathBuf {
    let mut text = std::fs::read_to_string(root().join("addon/config.yaml")).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "config.yaml has no {from:?}");
        text = text.replacen(from, to, 1);
    }
    // Keys in `extra` replace the manifest's own (options/schema exist already).
    let replaced: Vec<&str> = extra
        .lines()
        .filter(|l| !l.starts_with([' ', '#']) && l.contains(':'))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    let mut kept = String::new();
    let mut dropping = false;
    for line in text.lines() {
        if !line.starts_with([' ', '#']) && !line.is_empty() {
            dropping = replaced.contains(&line.split(':').next().unwrap());
        }
        if !dropping {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    let mut text = kept;
    text.push_str(extra);
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_committed_manifest_passes() {
    let out = xtask(&["lint"], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
}

#[test]
fn bad_manifest_fails_with_every_finding_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = bad_manifest(
        dir.path(),
        &[
            ("slug: fluxion", "slug: \"flux ion\""),
            ("  - amd64\n", "  - armv7\n"),
            ("init: false", "init: true"),
            (
                "image: ghcr.io/fluxion-ha/fluxion",
                "image: ghcr.io/Fluxion/x:1",
            ),
            ("version: \"0.1.0\"", "version: \"9.9.9\""),
        ],
        "labels:\n  a: b\ningress_port: 8080\noptions:\n  debug: true\nschema:\n  level: int\n",
    );
    let out = xtask(&["lint", "--file", file.to_str().unwrap()], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for (key, rule) in [
        ("slug", "[slug]"),
        ("arch[1]", "[arch]"),
        ("init", "[default-value]"),
        ("image", "[image]"),
        ("version", "[version]"),
        ("labels", "[labels]"),
        ("ingress_port", "[ingress-port]"),
        ("options.debug", "[options-schema]"),
        ("schema.level", "[options-schema]"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(&format!("error: {key}: ")) && l.ends_with(rule)),
            "no finding for {key} {rule} in:\n{stdout}"
        );
    }
    assert!(stderr.contains("error(s)"), "{stderr}");
}

#[test]
fn missing_schema_is_skipped_locally_and_fatal_under_ci() {
    let args = ["lint", "--schema", "/nonexistent/config.schema.json"];
    let out = xtask(&args, None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("schema check skipped"), "{stdout}");

    let out = xtask(&args, Some("true"));
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("CI=true"), "{stderr}");

    // Supervisor's rules still run without the schema.
    let dir = tempfile::tempdir().unwrap();
    let file = bad_manifest(dir.path(), &[("init: false", "init: true")], "");
    let out = xtask(
        &[
            "lint",
            "--file",
            file.to_str().unwrap(),
            "--schema",
            "/nonexistent/x.json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).0.contains("init: "), "{}", text(&out).0);
}

#[test]
fn meta_file_is_current_and_holds_the_pipelines_labels() {
    let out = xtask(&["meta", "--check"], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("meta.json");
    let out = xtask(&["meta", "--out", fresh.to_str().unwrap()], None);
    assert!(out.status.success(), "{:?}", text(&out));
    let committed = std::fs::read(root().join("nix/addon-meta.json")).unwrap();
    assert_eq!(std::fs::read(&fresh).unwrap(), committed);

    // The labels the flake reads are the labels the image config gets.
    let meta: serde_json::Value = serde_json::from_slice(&committed).unwrap();
    let addon = AddonConfig::load(&root().join("addon/config.yaml")).unwrap();
    for arch in Arch::ALL {
        let want = serde_json::to_value(addon.labels(arch, Epoch(meta["epoch"].as_u64().unwrap())))
            .unwrap();
        let img = &meta["images"][arch.hass_arch()];
        assert_eq!(img["labels"], want, "{arch}");
        assert_eq!(img["architecture"], arch.oci_arch());
    }

    // A stale file is refused, and the message says how to fix it.
    std::fs::write(&fresh, b"{}\n").unwrap();
    let out = xtask(&["meta", "--check", "--out", fresh.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("cargo xtask meta"),
        "{:?}",
        text(&out)
    );
}
