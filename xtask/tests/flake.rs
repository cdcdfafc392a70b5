//! flake.nix's logic, without nixpkgs: its `outputs` function is evaluated for real with
//! `nix-instantiate --eval` (Debian nix-bin) on stand-in inputs (tests/flake/: a nixpkgs
//! offering only the functions the flake calls, each returning its arguments, and a
//! rust-overlay), and the result must be what a real evaluation would be given: per arch the
//! image's `architecture`, the labels from nix/addon-meta.json, `Cmd`, the contents and the
//! cross platform they are built for; the apps run the xtask; the output names are the ones
//! README.md and docs/images.md promise. Broken copies of the flake must fail.
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use xtask::arch::Arch;

fn root() -> PathBuf {
    support::workspace()
}

/// `nix-instantiate` on PATH; otherwise skip with a reason (a failure under
/// FLUXION_REQUIRE_TOOLS=1).
fn nix_instantiate() -> Option<PathBuf> {
    support::tool("nix-instantiate")
}

/// The flake's outputs (packages, apps, devShells) and input names, evaluated with the stubs,
/// or nix's error text.
fn evaluate(nix: &Path, flake: &Path) -> Result<Value, String> {
    let stubs = root().join("xtask/tests/flake/outputs.nix");
    let out = Command::new(nix)
        .args(["--eval", "--strict", "--json"])
        .arg(&stubs)
        .arg("--arg")
        .arg("flake")
        .arg(flake)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

fn meta() -> Value {
    support::read_json(&root().join("nix/addon-meta.json"))
}

/// `ensure!` for `check`: an `Err` naming what differs.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// What the real evaluation would be given, checked against the stubs' record of it.
fn check(outputs: &Value) -> Result<(), String> {
    let meta = meta();
    let version = meta["version"].as_str().unwrap();
    ensure!(
        outputs["inputs"] == serde_json::json!(["nixpkgs", "rust-overlay"]),
        "inputs: {}",
        outputs["inputs"]
    );
    for system in ["x86_64-linux", "aarch64-linux"] {
        for arch in Arch::ALL {
            let img = &outputs["packages"][system][format!("dockerImage-{arch}")];
            let at = format!("packages.{system}.dockerImage-{arch}");
            ensure!(img["stub"] == "streamLayeredImage", "{at}: {img}");
            ensure!(
                img["runsOn"] == system,
                "{at}: dockerTools not from buildPackages"
            );
            ensure!(img["name"] == "fluxion-ha", "{at}: name {}", img["name"]);
            ensure!(img["tag"] == arch.hass_arch(), "{at}: tag {}", img["tag"]);
            // The xtask's own mapping, and the meta file's, agree with what the flake sets.
            ensure!(
                img["architecture"] == arch.oci_arch()
                    && img["architecture"] == meta["images"][arch.hass_arch()]["architecture"],
                "{at}: architecture {} (want {})",
                img["architecture"],
                arch.oci_arch()
            );
            let config = &img["config"];
            ensure!(
                config["Labels"] == meta["images"][arch.hass_arch()]["labels"],
                "{at}: labels {}",
                config["Labels"]
            );
            ensure!(
                config["Labels"]["io.hass.arch"] == arch.hass_arch()
                    && config["Labels"]["io.hass.version"] == version,
                "{at}: io.hass labels {}",
                config["Labels"]
            );
            ensure!(
                config["Cmd"] == serde_json::json!(["/bin/fluxion-main"]),
                "{at}: Cmd {}",
                config["Cmd"]
            );
            ensure!(
                config["ExposedPorts"]["8099/tcp"].is_object(),
                "{at}: ExposedPorts {}",
                config["ExposedPorts"]
            );
            // Contents: bash, coreutils and fluxion-main, all for the arch's musl platform.
            let target = arch.rust_target();
            let contents = img["contents"]
                .as_array()
                .ok_or(format!("{at}: contents"))?;
            let names: Vec<&str> = contents
                .iter()
                .filter_map(|c| c["pname"].as_str())
                .collect();
            ensure!(
                names == ["bash", "coreutils", "fluxion-main"],
                "{at}: contents {names:?}"
            );
            for c in contents {
                ensure!(
                    c["hostPlatform"] == target,
                    "{at}: {} is built for {} (want {target})",
                    c["pname"],
                    c["hostPlatform"]
                );
            }
            let fluxion = &contents[2];
            ensure!(fluxion["stub"] == "buildRustPackage", "{at}: {fluxion}");
            ensure!(
                fluxion["version"] == version,
                "{at}: version {}",
                fluxion["version"]
            );
            ensure!(
                fluxion["cargoBuildFlags"]
                    == serde_json::json!(["--package", "fluxion", "--bin", "fluxion-main"]),
                "{at}: cargoBuildFlags {}",
                fluxion["cargoBuildFlags"]
            );
            ensure!(
                fluxion["cargoLock"]["lockFile"]
                    .as_str()
                    .is_some_and(|f| f.ends_with("/Cargo.lock")),
                "{at}: lockFile {}",
                fluxion["cargoLock"]
            );
            // The pinned toolchain, running on the build system, emitting code for the target.
            for tool in ["cargo", "rustc"] {
                let t = &fluxion[tool];
                ensure!(
                    t["stub"] == "fromRustupToolchainFile"
                        && t["file"]
                            .as_str()
                            .is_some_and(|f| f.ends_with("/rust-toolchain.toml"))
                        && t["runsOn"] == system
                        && t["targets"] == target,
                    "{at}: {tool} is {t}"
                );
            }
        }
        // Apps: `cargo xtask` with the pinned toolchain and git.
        let apps = &outputs["apps"][system];
        let mut want: Vec<(String, String)> = Arch::ALL
            .iter()
            .map(|a| (format!("load-{a}"), format!("load {a}")))
            .collect();
        want.push(("build-all-images".into(), "image --arch all".into()));
        for (name, args) in want {
            let app = &apps[&name];
            let at = format!("apps.{system}.{name}");
            ensure!(app["type"] == "app", "{at}: {app}");
            let program = app["program"].as_str().unwrap_or_default();
            let script = program
                .strip_prefix("stub-writeShellApplication:")
                .and_then(|p| p.strip_suffix(&format!("/bin/{name}")))
                .ok_or(format!("{at}: program {program}"))?;
            let script: Value = serde_json::from_str(script).map_err(|e| e.to_string())?;
            ensure!(script["name"] == name.as_str(), "{at}: {script}");
            ensure!(
                script["text"] == format!("exec cargo xtask {args} \"$@\""),
                "{at}: text {}",
                script["text"]
            );
            let inputs = script["runtimeInputs"].to_string();
            ensure!(
                inputs.contains("rust-toolchain.toml") && inputs.contains("\"git\""),
                "{at}: runtimeInputs {inputs}"
            );
        }
        let shell = &outputs["devShells"][system]["default"];
        let packages = shell["packages"].to_string();
        ensure!(
            shell["stub"] == "mkShell"
                && packages.contains("rust-toolchain.toml")
                && packages.contains("\"skopeo\"")
                && packages.contains("\"qemu\""),
            "devShells.{system}.default: {shell}"
        );
    }
    Ok(())
}

#[test]
fn flake_outputs_evaluate_to_the_images_apps_and_shell_promised() {
    let Some(nix) = nix_instantiate() else { return };
    let outputs = evaluate(&nix, &root().join("flake.nix")).unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = check(&outputs) {
        panic!("flake.nix: {e}");
    }
}

/// A copy of the flake with one edit, beside the files it reads (nix/, rust-toolchain.toml).
fn broken(dir: &Path, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("flake.nix")).unwrap();
    assert!(text.contains(from), "flake.nix has no {from:?}");
    std::fs::create_dir_all(dir.join("nix")).unwrap();
    for f in [
        "nix/addon-meta.json",
        "nix/names.nix",
        "rust-toolchain.toml",
    ] {
        std::fs::copy(root().join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("flake.nix"), text.replacen(from, to, 1)).unwrap();
    dir.join("flake.nix")
}

#[test]
fn a_broken_flake_fails() {
    let Some(nix) = nix_instantiate() else { return };
    for (from, to, why) in [
        // nixpkgs' default: the build host's architecture, wrong for cross-built images.
        ("architecture = m.architecture;", "", "architecture"),
        ("Labels = m.labels;", "Labels = { };", "labels"),
        (
            "aarch64 = lib.systems.examples.aarch64-multiplatform-musl;",
            "aarch64 = lib.systems.examples.musl64;",
            "built for",
        ),
        (
            "Cmd = [ \"/bin/fluxion-main\" ];",
            "Cmd = [ \"/bin/sh\" ];",
            "Cmd",
        ),
        (
            "contents = [ cross.bash cross.coreutils fluxion ];",
            "contents = [ fluxion ];",
            "contents",
        ),
        ("exec cargo xtask ${args}", "exec cargo run ${args}", "text"),
        ("inherit system overlays;", "inherit system;", "rust-bin"),
        (
            "outputs = { self, nixpkgs, rust-overlay }:",
            "outputs = { self, nixpkgs, rust-overlay, extra }:",
            "extra",
        ),
        ("image = system: arch:", "image = system: arch: {", "syntax"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let flake = broken(dir.path(), from, to);
        let result = evaluate(&nix, &flake).and_then(|o| check(&o));
        match result {
            Ok(()) => panic!("a flake with {from:?} -> {to:?} passed the check"),
            Err(e) => assert!(
                e.contains(why),
                "{from:?} -> {to:?} failed, but not for {why:?}:\n{e}"
            ),
        }
    }
}

/// The flake's output names, by evaluating nix/names.nix with the arches from the meta file.
fn output_names(nix: &Path) -> Value {
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
fn readme_and_docs_promise_the_flake_outputs() {
    let Some(nix) = nix_instantiate() else { return };
    let names = output_names(&nix);
    // The names the evaluated flake really has are the names nix/names.nix gives.
    let outputs = evaluate(&nix, &root().join("flake.nix")).unwrap_or_else(|e| panic!("{e}"));
    for kind in ["packages", "apps", "devShells"] {
        let mut have: Vec<&str> = outputs[kind]["x86_64-linux"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want: Vec<&str> = names[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        have.sort_unstable();
        want.sort_unstable();
        assert_eq!(have, want, "{kind}");
    }
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
