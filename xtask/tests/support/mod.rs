//! Shared test support: finding real tools (skip locally, fail under CI=true), building the
//! images once per test binary, private daemons stopped by PID, and the reference schemas.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod dockerd;
pub mod schema;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// True when running in CI, where a missing tool is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skip the calling test (return `None`) with a printed reason, or panic under CI=true.
pub fn skip(reason: &str) -> Option<()> {
    if in_ci() {
        panic!("required under CI=true but unavailable: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

/// A tool on PATH, or a skip (panic in CI).
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        skip(&format!("`{name}` is not on PATH (.ci/run installs it)"))?;
    }
    found
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn xtask_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xtask"))
}

/// Run a command, panicking with its output when it fails.
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"))
}

/// One row of `cargo xtask image --json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Row {
    pub arch: String,
    pub platform: String,
    pub tag: String,
    pub archive: String,
    pub archive_sha256: String,
    pub image_id: String,
    pub manifest_digest: String,
    pub layers: usize,
}

impl Row {
    pub fn archive_path(&self) -> PathBuf {
        workspace_root().join(&self.archive)
    }
}

/// Build both images in the real workspace once per test binary (cargo makes repeats cheap).
pub fn images() -> &'static [Row] {
    static ROWS: OnceLock<Vec<Row>> = OnceLock::new();
    ROWS.get_or_init(|| {
        let out = run_ok(
            Command::new(xtask_bin())
                .args(["image", "--arch", "all", "--json"])
                .current_dir(workspace_root()),
        );
        serde_json::from_str(&out).expect("image --json prints the summary rows")
    })
}

pub fn image(arch: &str) -> &'static Row {
    images()
        .iter()
        .find(|r| r.arch == arch)
        .expect("both arches are built")
}

/// The workspace's version of addon/config.yaml `version`.
pub fn addon_version() -> String {
    let text = std::fs::read_to_string(workspace_root().join("addon/config.yaml")).unwrap();
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    v["version"].as_str().unwrap().to_owned()
}

/// Read one member of a tar archive.
pub fn tar_member(archive: &Path, name: &str) -> Vec<u8> {
    let mut a = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut buf).unwrap();
            return buf;
        }
    }
    panic!("{name} not in {}", archive.display());
}

/// Extract one file from a gzip layer blob.
pub fn layer_file(layer_gz: &[u8], name: &str) -> Option<(u32, Vec<u8>)> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(layer_gz));
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            let mode = e.header().mode().unwrap();
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut buf).unwrap();
            return Some((mode, buf));
        }
    }
    None
}

/// Make arm64 binaries run through qemu-user-static via binfmt_misc (needed for
/// `docker run` of arm64 images). Registers from Debian's qemu-aarch64.conf when needed.
pub fn ensure_binfmt_aarch64() -> Result<(), String> {
    let entry = Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64");
    if entry.exists() {
        return Ok(());
    }
    let register = Path::new("/proc/sys/fs/binfmt_misc/register");
    if !register.exists() {
        let st = Command::new("mount")
            .args([
                "-t",
                "binfmt_misc",
                "binfmt_misc",
                "/proc/sys/fs/binfmt_misc",
            ])
            .status()
            .map_err(|e| format!("mount binfmt_misc: {e}"))?;
        if !st.success() {
            return Err("mounting binfmt_misc failed (needs root)".into());
        }
    }
    let conf = std::fs::read_to_string("/usr/lib/binfmt.d/qemu-aarch64.conf")
        .map_err(|e| format!("reading qemu-user-static's binfmt conf: {e}"))?;
    let line = conf
        .lines()
        .find(|l| l.starts_with(':'))
        .ok_or("no registration line")?;
    std::fs::write(register, line).map_err(|e| format!("registering qemu-aarch64: {e}"))?;
    if entry.exists() {
        Ok(())
    } else {
        Err("qemu-aarch64 binfmt entry did not appear".into())
    }
}
