//! `cargo xtask lint` and `cargo xtask meta` end to end: the real binary, run in this
//! workspace, on bad manifests written to a temp dir; exit status and output are checked. And
//! the optional cross-check of the lint's rule table against the add-on linter's own schema,
//! when `FLUXION_REF_DIR` names a copy (skipped with a reason otherwise).
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use xtask::addon::lint::{self, keys, Severity};
use xtask::addon::AddonConfig;
use xtask::arch::Arch;
use xtask::epoch::Epoch;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn xtask(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args).current_dir(root()).env("XTASK_LOG", "warn");
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
    let out = xtask(&["lint"]);
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
    let out = xtask(&["lint", "--file", file.to_str().unwrap()]);
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

/// The failure a fresh clone met: the lint needs nothing beside the checkout. A workspace in a
/// temp dir (nothing next to it) lints clean under everything CI sets, and still finds errors.
#[test]
fn lint_needs_nothing_outside_the_checkout() {
    let ws = tempfile::tempdir().unwrap();
    let d = ws.path().join("clone");
    std::fs::create_dir_all(d.join("fluxion/src")).unwrap();
    std::fs::create_dir_all(d.join("addon")).unwrap();
    std::fs::write(
        d.join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"fluxion\"]\n",
    )
    .unwrap();
    let version = AddonConfig::load(&root().join("addon/config.yaml"))
        .unwrap()
        .version;
    std::fs::write(
        d.join("fluxion/Cargo.toml"),
        format!("[package]\nname = \"fluxion\"\nversion = \"{version}\"\nedition = \"2021\"\n"),
    )
    .unwrap();
    std::fs::write(d.join("fluxion/src/lib.rs"), "").unwrap();
    // What `lint` reads: the manifest and, for the store check, the repository file.
    for f in ["addon/config.yaml", "repository.yaml"] {
        std::fs::copy(root().join(f), d.join(f)).unwrap();
    }
    let run = |d: &Path| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("lint")
            .current_dir(d)
            .env("XTASK_LOG", "warn")
            .env("CI", "true")
            .env("GITLAB_CI", "true")
            .env(xtask::workspace::REQUIRE_TOOLS_ENV, "1")
            .env_remove(support::REF_DIR_ENV)
            .output()
            .unwrap()
    };
    let out = run(&d);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(": ok ("), "{stdout}");
    assert!(!stdout.contains("skipped"), "{stdout}");
    // Every rule still runs there: a default value and an unknown key are found.
    let bad = std::fs::read_to_string(d.join("addon/config.yaml"))
        .unwrap()
        .replace("init: false", "init: true")
        + "frobnicate: 1\n";
    std::fs::write(d.join("addon/config.yaml"), bad).unwrap();
    let out = run(&d);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("init: ") && stdout.contains("[default-value]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("frobnicate: ") && stdout.contains("[unknown-key]"),
        "{stdout}"
    );
}

#[test]
fn a_schema_asked_for_must_exist() {
    let out = xtask(&["lint", "--schema", "/nonexistent/config.schema.json"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("/nonexistent/config.schema.json"),
        "{stderr}"
    );
}

/// The reference copy of the linter's schema, when `FLUXION_REF_DIR` names it.
fn linter_schema() -> Option<Value> {
    let path = support::reference("ha-addon-linter/config.schema.json")?;
    Some(support::read_json(&path))
}

/// Keys whose schema entry our table does not copy, and why (the ref README's quirks).
const SCHEMA_QUIRKS: &[(&str, &str)] = &[(
    "homeassistant",
    "declares default false on a string; that default can never match, so it is no default",
)];

/// Cross-check: the table has the schema's keys, required keys, types and defaults.
#[test]
fn rule_table_agrees_with_the_linters_schema() {
    let Some(schema) = linter_schema() else {
        return;
    };
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown keys are errors"
    );
    let props = schema["properties"].as_object().unwrap();
    let theirs: BTreeSet<&str> = props.keys().map(String::as_str).collect();
    let ours: BTreeSet<&str> = keys::linter_keys().map(|k| k.name).collect();
    assert_eq!(
        ours, theirs,
        "the table's linter keys are the schema's keys"
    );
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let ours_required: BTreeSet<&str> = keys::KEYS
        .iter()
        .filter(|k| k.required)
        .map(|k| k.name)
        .collect();
    assert_eq!(ours_required, required);
    for key in keys::linter_keys() {
        let mut theirs = props[key.name].clone();
        let default = theirs.as_object_mut().unwrap().remove("default");
        assert_eq!(
            key.ty.json_schema(),
            theirs,
            "{}: the table's type differs from the schema's",
            key.name
        );
        let quirk = SCHEMA_QUIRKS.iter().any(|(k, _)| *k == key.name);
        match (key.default, default) {
            (Some(d), Some(t)) => assert!(
                d.linter && lint::py_eq(&d.value.to_json(), &t),
                "{}: default {:?}, schema says {t}",
                key.name,
                d
            ),
            (Some(d), None) => assert!(!d.linter, "{}: the schema declares no default", key.name),
            (None, Some(t)) => assert!(quirk, "{}: the schema's default {t} is missing", key.name),
            (None, None) => {}
        }
    }
}

/// The committed manifest validates against the linter's schema (and its default rule).
#[test]
fn committed_manifest_validates_against_the_linters_schema() {
    let Some(schema) = linter_schema() else {
        return;
    };
    let manifest = std::fs::read_to_string(root().join("addon/config.yaml")).unwrap();
    let doc = lint::parse(&manifest).unwrap();
    let mut found = lint::schema_findings(&doc, &schema);
    lint::default_values_from_schema(&schema, &doc, "", &mut found);
    assert!(found.is_empty(), "{found:#?}");
    // And `lint --schema` runs the same validation from the command line.
    let path = support::reference("ha-addon-linter/config.schema.json").unwrap();
    let out = xtask(&["lint", "--schema", path.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("and the given linter schema"), "{stdout}");
}

/// Rejected by the table's type, default and unknown-key rules (not by Supervisor's extras or
/// the rules beyond the schema).
fn table_rejects(doc: &Value) -> bool {
    lint::table_findings(doc).iter().any(|f| {
        f.severity == Severity::Error
            && ["type", "unknown-key", "required", "default-value"].contains(&f.rule)
    })
}

/// Rejected by the reference schema (Draft 7) or its default rule.
fn schema_rejects(doc: &Value, schema: &Value) -> bool {
    let mut found = lint::schema_findings(doc, schema);
    lint::default_values_from_schema(schema, doc, "", &mut found);
    !found.is_empty()
}

/// Cross-check by behaviour: on a corpus of one-key changes, the table accepts exactly what the
/// linter's schema accepts.
#[test]
fn rule_table_and_linter_schema_accept_the_same_manifests() {
    let Some(schema) = linter_schema() else {
        return;
    };
    let base = std::fs::read_to_string(root().join("addon/config.yaml")).unwrap();
    let cases = [
        "frobnicate: 1",
        "init: nope",
        "init: true",
        "boot: manual",
        "boot: sometimes",
        "boot: auto",
        "ingress_port: 70000",
        "ingress_port: -1",
        "ingress_port: 8098.0",
        "timeout: 20",
        "timeout: 10",
        "timeout: ten",
        "map: []",
        "map:\n  - share\n  - type: ssl",
        "map:\n  - share:rw\n  - ssl",
        "map:\n  - data",
        "map:\n  - type: data\n    path: /x",
        "map:\n  - type: data\n    mode: rw",
        "ulimits:\n  nofile: 5",
        "ulimits:\n  nofile:\n    soft: 1",
        "ulimits:\n  nofile:\n    soft: 1\n    hard: 2",
        "ulimits: {}",
        "ports:\n  8080/tcp: 8080",
        "ports:\n  8080/tcp: null",
        "ports:\n  8080/tcp: 0",
        "ports_description:\n  8080/tcp: 3",
        "privileged: [SYS_ADMIN]",
        "privileged: [CHEESE]",
        "services: [mqtt:need]",
        "services: [mqtt:steal]",
        "machine: [raspberrypi4-64]",
        "machine: [vax]",
        "apparmor: custom",
        "apparmor: true",
        "apparmor: 3",
        "tmpfs: true",
        "tmpfs: size=1m",
        "environment:\n  A: b",
        "environment: []",
        "stage: experimental",
        "stage: beta",
        "backup: cold",
        "backup: warm",
        "hassio_role: manager",
        "homeassistant: 2024.3.0",
        "homeassistant: false",
        "panel_admin: 1",
        "panel_icon: mdi:puzzle",
        "breaking_versions: [\"0.1.0\"]",
        "devices: [/dev/ttyUSB0]",
        "devices: /dev/ttyUSB0",
        "discovery: [mqtt]",
        "url: 3",
        "labels: {}",
        "name: 3",
        "arch: amd64",
        "arch: [amd64, vax]",
        "usb: yes",
    ];
    let mut disagree = Vec::new();
    for case in cases {
        let key = case.split(':').next().unwrap();
        // The committed manifest without that key, then the case.
        let mut text = String::new();
        let mut skipping = false;
        for line in base.lines() {
            if !line.starts_with([' ', '#', '-']) && !line.is_empty() {
                skipping = line.split(':').next() == Some(key);
            }
            if !skipping {
                text.push_str(line);
                text.push('\n');
            }
        }
        text.push_str(case);
        text.push('\n');
        let doc = lint::parse(&text).unwrap_or_else(|f| panic!("{case}: {f}"));
        let (ours, theirs) = (table_rejects(&doc), schema_rejects(&doc, &schema));
        // `labels` has its own rule (an error) outside the table; the schema rejects it too.
        let ours = ours
            || (key == "labels"
                && lint::lint(&text, None, &lint_ctx())
                    .iter()
                    .any(|f| f.rule == "labels"));
        if ours != theirs {
            disagree.push(format!(
                "{case:?}: table rejects {ours}, schema rejects {theirs}"
            ));
        }
    }
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));
}

fn lint_ctx() -> lint::Context<'static> {
    lint::Context::new("0.1.0")
}

#[test]
fn meta_file_is_current_and_holds_the_pipelines_labels() {
    let out = xtask(&["meta", "--check"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("meta.json");
    let out = xtask(&["meta", "--out", fresh.to_str().unwrap()]);
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
    let out = xtask(&["meta", "--check", "--out", fresh.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("cargo xtask meta"),
        "{:?}",
        text(&out)
    );
}
