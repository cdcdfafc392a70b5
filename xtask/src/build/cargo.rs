//! The `cargo` backend: rustup's musl targets linked by rust-lld; no C toolchain, no engine.
use std::path::PathBuf;

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use super::{remap_flags, BIN, PACKAGE};
use crate::arch::Arch;
use crate::workspace::Workspace;

pub fn build(sh: &Shell, ws: &Workspace, arches: &[Arch]) -> anyhow::Result<Vec<PathBuf>> {
    // Asking rustc whether a target's standard library is there costs a process start per
    // arch, a third of a no-op rebuild (issue 7): build first, and only when that fails look
    // for (and add) a missing target, then build again.
    let out = match command(sh, ws, arches).read() {
        Ok(out) => out,
        Err(first) => {
            let mut added = false;
            for &arch in arches {
                added |= ensure_target(sh, arch)?;
            }
            if !added {
                return Err(first).with_context(|| format!("building {BIN} with cargo"));
            }
            command(sh, ws, arches)
                .read()
                .with_context(|| format!("building {BIN} with cargo"))?
        }
    };

    let mut found: Vec<(String, PathBuf)> = Vec::new();
    // One message per compiled unit: parse only the few that can name the binary.
    for line in out.lines().filter(|l| l.contains(BIN)) {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == BIN {
            if let Some(exe) = msg["executable"].as_str() {
                found.push((exe.to_owned(), PathBuf::from(exe)));
            }
        }
    }
    arches
        .iter()
        .map(|arch| {
            let needle = format!("/{}/release/{BIN}", arch.rust_target());
            match found.iter().find(|(exe, _)| exe.ends_with(&needle)) {
                Some((_, p)) => Ok(p.clone()),
                None => bail!(
                    "cargo reported no {BIN} executable for {}",
                    arch.rust_target()
                ),
            }
        })
        .collect()
}

/// The cargo invocation that builds `fluxion-main` for `arches` (also timed by `cargo xtask
/// bench` as the no-op baseline: the same flags, so it is a real no-op).
pub fn command<'a>(sh: &'a Shell, ws: &Workspace, arches: &[Arch]) -> xshell::Cmd<'a> {
    let targets: Vec<String> = arches
        .iter()
        .flat_map(|a| ["--target".to_owned(), a.rust_target().to_owned()])
        .collect();
    // CARGO_ENCODED_RUSTFLAGS (0x1f-separated) keeps paths with spaces intact; it also wins
    // over any RUSTFLAGS in the environment, which would change the bytes anyway.
    let flags = remap_flags(ws).join("\x1f");
    // One cargo invocation for all targets shares the jobserver across them.
    cmd!(
        sh,
        "cargo build --release --locked --package {PACKAGE} --bin {BIN} {targets...} --message-format=json-render-diagnostics"
    )
    .env("CARGO_ENCODED_RUSTFLAGS", flags)
    .env_remove("RUSTFLAGS")
}

/// Add the rustup target when its standard library is missing (RUSTUP_AUTO_INSTALL may be 0);
/// true when it was added.
fn ensure_target(sh: &Shell, arch: Arch) -> anyhow::Result<bool> {
    let target = arch.rust_target();
    let libdir = cmd!(sh, "rustc --print target-libdir --target {target}")
        .quiet()
        .read()
        .with_context(|| format!("asking rustc where the {target} standard library is"))?;
    if std::path::Path::new(libdir.trim()).is_dir() {
        return Ok(false);
    }
    tracing::info!("adding the rustup target {target}");
    cmd!(sh, "rustup target add {target}")
        .run()
        .with_context(|| {
            format!(
            "the Rust standard library for {target} is missing and `rustup target add {target}` \
             failed; install it, or use --builder cross"
        )
        })?;
    Ok(true)
}
