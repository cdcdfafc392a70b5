//! flake.nix: it parses (`nix-instantiate --parse`, Debian nix-bin), and the output names it
//! builds (from nix/names.nix, evaluated for real; no nixpkgs needed) are the ones README.md
//! and docs/images.md promise.
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// `nix-instantiate` on PATH; otherwise skip (pass) locally, fail under CI=true.
fn nix_instantiate() -> Option<&'static str> {
    let found = Command::new("nix-instantiate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("nix-instantiate");
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("nix-instantiate is not on PATH and CI=true: apt-get install nix-bin");
    }
    eprintln!("skipping: nix-instantiate is not on PATH (Debian package nix-bin)");
    None
}

#[test]
fn flake_parses() {
    let Some(nix) = nix_instantiate() else { return };
    let out = Command::new(nix)
        .args(["--parse", "flake.nix"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nix-instantiate --parse flake.nix failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And a broken copy does not (the check can fail).
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("flake.nix")).unwrap();
    std::fs::write(dir.path().join("flake.nix"), text.replacen('}', "", 1)).unwrap();
    let out = Command::new(nix)
        .args(["--parse", "flake.nix"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// The flake's output names, by evaluating nix/names.nix with the arches from the meta file.
fn output_names(nix: &str) -> serde_json::Value {
    let expr = "(import ./nix/names.nix { arches = (builtins.fromJSON \
                (builtins.readFile ./nix/addon-meta.json)).arches; }).all";
    let out = Command::new(nix)
        .args(["--eval", "--strict", "--json", "-E", expr])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "evaluating nix/names.nix failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn flake_builds_its_outputs_from_names_nix() {
    let flake = std::fs::read_to_string(root().join("flake.nix")).unwrap();
    assert!(
        flake.contains("import ./nix/names.nix"),
        "flake.nix must name outputs via nix/names.nix"
    );
    for attr in ["names.package arch", "names.load arch", "names.buildAll"] {
        assert!(flake.contains(attr), "flake.nix does not use {attr}");
    }
    assert!(
        flake.contains("architecture = m.architecture"),
        "architecture must be explicit"
    );
}

#[test]
fn readme_and_docs_promise_the_flake_outputs() {
    let Some(nix) = nix_instantiate() else { return };
    let names = output_names(nix);
    let mut promised = Vec::new();
    for kind in ["packages", "apps"] {
        for n in names[kind].as_array().unwrap() {
            promised.push(format!(".#{}", n.as_str().unwrap()));
        }
    }
    assert_eq!(names["devShells"], serde_json::json!(["default"]));
    promised.push("nix develop".to_owned());
    assert!(
        promised.iter().any(|p| p == ".#dockerImage-aarch64"),
        "{promised:?}"
    );
    for doc in ["README.md", "docs/images.md"] {
        let text = std::fs::read_to_string(root().join(doc))
            .unwrap_or_else(|e| panic!("reading {doc}: {e}"));
        let missing: Vec<&String> = promised
            .iter()
            .filter(|p| !text.contains(p.as_str()))
            .collect();
        assert!(missing.is_empty(), "{doc} does not mention {missing:?}");
    }
}
