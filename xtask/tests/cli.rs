//! The command line on bad input (clear error, non-zero exit, nothing written) and the `cross`
//! backend, driven through a shim `cross` on PATH in a scratch workspace.
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{output, xtask_bin};

const CONFIG: &str = "name: FluxION\nversion: \"0.9.0\"\nslug: fluxion\ndescription: test\n\
                      url: https://example.invalid\narch: [aarch64, amd64]\ninit: false\n";

/// A minimal workspace with a `fluxion` package and an add-on manifest.
fn scratch(crate_version: &str, config_yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    support::fixture::workspace_files(d, crate_version, config_yaml);
    // The runtime layer's declaration and lock, with the InRelease files it was made from and
    // the keys they are verified with, as committed: the .debs come from the shared download
    // cache (filled by the real workspace's build).
    for f in ["addon/runtime.toml", "addon/runtime.lock"] {
        std::fs::copy(support::workspace().join(f), d.join(f)).unwrap();
    }
    for dir in ["addon/runtime.lock.d", "xtask/keys"] {
        std::fs::create_dir_all(d.join(dir)).unwrap();
        for e in std::fs::read_dir(support::workspace().join(dir)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), d.join(dir).join(e.file_name())).unwrap();
        }
    }
    dir
}

fn xtask(ws: &Path, args: &[&str]) -> Output {
    output(
        Command::new(xtask_bin())
            .args(args)
            .current_dir(ws)
            .env_remove("CARGO_TARGET_DIR"),
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_failed_and_wrote_nothing(o: &Output, ws: &Path, needles: &[&str]) {
    assert!(
        !o.status.success(),
        "expected failure; stderr:\n{}",
        stderr(o)
    );
    let err = stderr(o);
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    assert!(
        !ws.join("target/images").exists(),
        "an image dir was written"
    );
    assert!(!ws.join("result-amd64").exists() && !ws.join("result-aarch64").exists());
}

#[test]
fn unknown_arch_is_rejected() {
    let ws = scratch("0.9.0", CONFIG);
    let o = xtask(ws.path(), &["image", "--arch", "riscv64"]);
    assert_failed_and_wrote_nothing(&o, ws.path(), &["riscv64", "amd64", "aarch64", "all"]);
    assert_eq!(o.status.code(), Some(2), "clap's usage error code");
}

#[test]
fn malformed_addon_config_is_rejected() {
    let ws = scratch("0.9.0", "name: FluxION\nversion: [unclosed\n");
    let o = xtask(ws.path(), &["image", "--arch", "amd64"]);
    assert_failed_and_wrote_nothing(
        &o,
        ws.path(),
        &["config.yaml", "not a valid add-on manifest"],
    );

    let ws = scratch("0.9.0", &CONFIG.replace("[aarch64, amd64]", "[armv7]"));
    let o = xtask(ws.path(), &["image", "--arch", "amd64"]);
    assert_failed_and_wrote_nothing(&o, ws.path(), &["armv7", "not supported"]);

    let ws = scratch("0.9.0", &CONFIG.replace("[aarch64, amd64]", "[amd64]"));
    let o = xtask(ws.path(), &["image", "--arch", "aarch64"]);
    assert_failed_and_wrote_nothing(&o, ws.path(), &["does not list arch aarch64"]);
}

#[test]
fn version_mismatch_names_both_versions() {
    let ws = scratch("0.9.1", CONFIG);
    let o = xtask(ws.path(), &["image", "--arch", "all"]);
    assert_failed_and_wrote_nothing(
        &o,
        ws.path(),
        &["version mismatch", "\"0.9.0\"", "\"0.9.1\""],
    );
}

#[test]
fn bad_source_date_epoch_is_rejected() {
    let ws = scratch("0.9.0", CONFIG);
    let o = output(
        Command::new(xtask_bin())
            .args(["image", "--arch", "amd64"])
            .current_dir(ws.path())
            .env("SOURCE_DATE_EPOCH", "last tuesday"),
    );
    assert_failed_and_wrote_nothing(&o, ws.path(), &["SOURCE_DATE_EPOCH"]);
}

/// A lock edited as an attacker would (a zeroed InRelease digest, a changed index digest) is
/// refused by `lock --check`, `fetch` and `image`, naming what disagrees and what to run, and
/// nothing is written. No network: the signed releases are beside the lock.
#[test]
fn tampered_lock_is_refused_by_check_fetch_and_image() {
    let ws = scratch("0.9.0", CONFIG);
    let lock = ws.path().join("addon/runtime.lock");
    let o = xtask(ws.path(), &["lock", "--check"]);
    assert!(
        o.status.success(),
        "the committed lock passes: {}",
        stderr(&o)
    );
    let text = std::fs::read_to_string(&lock).unwrap();
    let real = xtask::runtime::lock::Lock::parse(&text).unwrap();
    let security = &real.source.suites[2];
    let index = &real.source.suites[0].index["arm64"].sha256;
    for (tampered, needles) in [
        (
            text.replace(&security.inrelease_sha256, &"0".repeat(64)),
            ["suite bookworm-security", "inrelease_sha256"],
        ),
        (
            text.replace(index, &"1".repeat(64)),
            ["suite bookworm:", "main/binary-arm64/Packages.xz"],
        ),
    ] {
        assert_ne!(tampered, text);
        std::fs::write(&lock, &tampered).unwrap();
        for args in [
            &["lock", "--check"][..],
            &["fetch", "--offline"],
            &["image", "--arch", "amd64"],
        ] {
            let o = xtask(ws.path(), args);
            let mut want = needles.to_vec();
            want.extend([
                "disagrees with the signed Debian releases",
                "cargo xtask lock",
            ]);
            assert_failed_and_wrote_nothing(&o, ws.path(), &want);
        }
    }
}

/// A `cross` that records its arguments and "builds" by copying a given binary per target.
fn shim_dir(log: &Path, bins: &[(&str, PathBuf)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut script = String::from("#!/bin/bash\nset -eu\n");
    script += &format!("printf '%s\\n' \"$*\" >> '{}'\n", log.display());
    script += &format!(
        "printf 'rustflags %s\\n' \"${{CARGO_ENCODED_RUSTFLAGS//$'\\x1f'/ }}\" >> '{}'\n",
        log.display()
    );
    script += "target=''; prev=''\nfor a in \"$@\"; do [ \"$prev\" = --target ] && target=$a; prev=$a; done\n";
    script += "mkdir -p \"target/$target/release\"\ncase \"$target\" in\n";
    for (t, bin) in bins {
        script += &format!(
            "  {t}) cp '{}' \"target/$target/release/fluxion-main\" ;;\n",
            bin.display()
        );
    }
    script += "  *) echo \"shim: unexpected target $target\" >&2; exit 1 ;;\nesac\n";
    let path = dir.path().join("cross");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    dir
}

/// The real fluxion-main binaries of the workspace (built by the tests' `image` run).
fn real_binaries() -> (PathBuf, PathBuf) {
    use xtask::arch::Arch;
    (
        support::built_binary(Arch::Amd64),
        support::built_binary(Arch::Aarch64),
    )
}

/// A scratch workspace, its shim's log, and a `cross` shim that "builds" both arches by
/// copying the real binaries.
fn scratch_with_cross_shim() -> (tempfile::TempDir, PathBuf, tempfile::TempDir) {
    let (amd64, aarch64) = real_binaries();
    let ws = scratch("0.9.0", CONFIG);
    let log = ws.path().join("cross.log");
    let shim = shim_dir(
        &log,
        &[
            ("x86_64-unknown-linux-musl", amd64),
            ("aarch64-unknown-linux-musl", aarch64),
        ],
    );
    (ws, log, shim)
}

fn with_shim(ws: &Path, shim: &Path, args: &[&str]) -> Output {
    let path = format!("{}:{}", shim.display(), std::env::var("PATH").unwrap());
    output(
        Command::new(xtask_bin())
            .args(args)
            .current_dir(ws)
            .env_remove("CARGO_TARGET_DIR")
            .env("PATH", path),
    )
}

#[test]
fn cross_backend_runs_cross_and_packages_its_artifacts() {
    let (ws, log, shim) = scratch_with_cross_shim();
    // No Cross.toml: auto means cargo; ask for cross explicitly.
    let o = with_shim(
        ws.path(),
        shim.path(),
        &["image", "--arch", "all", "--builder", "cross", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let calls = std::fs::read_to_string(&log).unwrap();
    for t in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"] {
        let want =
            format!("build --release --locked --package fluxion --bin fluxion-main --target {t}");
        assert!(
            calls.lines().any(|l| l == want),
            "cross was not called with {want:?}:\n{calls}"
        );
    }
    let root = ws.path().canonicalize().unwrap();
    assert!(
        calls.contains(&format!("--remap-path-prefix={}=/fluxion", root.display())),
        "cross got no path remapping:\n{calls}"
    );
    let rows: Vec<support::Row> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(ws.path().join(&r.archive).is_file(), "{}", r.archive);
    }
    // A Cross.toml makes `auto` pick cross.
    std::fs::write(ws.path().join("Cross.toml"), "[build]\n").unwrap();
    std::fs::remove_file(&log).unwrap();
    let o = with_shim(ws.path(), shim.path(), &["image", "--arch", "amd64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("--target x86_64-unknown-linux-musl"));
}

/// `FLUXION_OUT_DIR` (what every test's xtask run gets) moves all of `image`'s outputs: the
/// checkout's `target/images` and `result-*` are not touched.
#[test]
fn out_dir_takes_every_output_away_from_the_checkout() {
    let (ws, _log, shim) = scratch_with_cross_shim();
    let out = tempfile::tempdir().unwrap();
    let path = format!(
        "{}:{}",
        shim.path().display(),
        std::env::var("PATH").unwrap()
    );
    let o = output(
        Command::new(xtask_bin())
            .args(["image", "--arch", "all", "--builder", "cross", "--json"])
            .current_dir(ws.path())
            .env_remove("CARGO_TARGET_DIR")
            .env("PATH", path)
            .env(xtask::workspace::OUT_DIR_ENV, out.path()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<support::Row> = serde_json::from_slice(&o.stdout).unwrap();
    for r in &rows {
        let archive = ws.path().join(&r.archive);
        assert!(archive.starts_with(out.path()), "{}", archive.display());
        assert!(archive.is_file());
        let link = out.path().join(format!("result-{}", r.arch));
        assert_eq!(
            std::fs::canonicalize(&link).unwrap(),
            archive.canonicalize().unwrap()
        );
    }
    assert!(out
        .path()
        .join("images/fluxion-ha.oci/index.json")
        .is_file());
    assert!(
        !ws.path().join("target/images").exists(),
        "wrote target/images"
    );
    assert!(!ws.path().join("result-amd64").exists() && !ws.path().join("result-aarch64").exists());
}

#[test]
fn binary_of_the_wrong_architecture_is_refused() {
    let (amd64, _) = real_binaries();
    let ws = scratch("0.9.0", CONFIG);
    let log = ws.path().join("cross.log");
    // The shim "builds" the aarch64 target by handing back the x86_64 binary.
    let shim = shim_dir(&log, &[("aarch64-unknown-linux-musl", amd64)]);
    let o = with_shim(
        ws.path(),
        shim.path(),
        &["image", "--arch", "aarch64", "--builder", "cross"],
    );
    assert_failed_and_wrote_nothing(
        &o,
        ws.path(),
        &[
            "refusing to package",
            "aarch64-unknown-linux-musl/release/fluxion-main",
            "wrong architecture",
        ],
    );
}

#[test]
fn missing_cross_is_a_clear_error() {
    let ws = scratch("0.9.0", CONFIG);
    let empty = tempfile::tempdir().unwrap();
    // PATH with only cargo's directory, so `cross` cannot be found.
    let cargo = support::tool("cargo").unwrap();
    let path = format!(
        "{}:{}",
        empty.path().display(),
        cargo.parent().unwrap().display()
    );
    let o = output(
        Command::new(xtask_bin())
            .args(["image", "--arch", "amd64", "--builder", "cross"])
            .current_dir(ws.path())
            .env("PATH", path),
    );
    assert_failed_and_wrote_nothing(&o, ws.path(), &["needs `cross` on PATH"]);
}

#[test]
fn image_prints_what_lint_finds_as_warnings() {
    // A default-valued key (the linter rejects it): `image` says so before it builds, and
    // that `push` would refuse. (The version mismatch stops it before compiling anything.)
    let ws = scratch("0.9.1", &format!("{CONFIG}boot: auto\n"));
    let o = xtask(ws.path(), &["image", "--arch", "amd64"]);
    let err = stderr(&o);
    let lint = err
        .find("boot")
        .unwrap_or_else(|| panic!("no lint warning about `boot`:\n{err}"));
    assert!(err.contains("`cargo xtask push` refuses"), "{err}");
    let mismatch = err
        .find("Error: version mismatch")
        .expect("the build's own error");
    assert!(
        lint < mismatch,
        "the lint ran after the build started:\n{err}"
    );
}
