//! The `cross` backend: `cross build` with the same flags, then pick up the artifact.
//!
//! cross runs cargo in a container image of its own; here it is only invoked, never required.
//! Tests drive it through a shim `cross` on PATH (cross's images live on a registry that is not
//! reachable from CI, and every invocation of the real tool touches the rustup toolchain).
use std::path::PathBuf;

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use super::{remap_flags, BIN, PACKAGE};
use crate::arch::Arch;
use crate::host::which;
use crate::workspace::Workspace;

pub fn build(sh: &Shell, ws: &Workspace, arches: &[Arch]) -> anyhow::Result<Vec<PathBuf>> {
    if which("cross").is_none() {
        bail!(
            "--builder cross needs `cross` on PATH (cargo install cross), or use --builder cargo"
        );
    }
    let flags = remap_flags(ws).join("\x1f");
    arches
        .iter()
        .map(|arch| {
            let target = arch.rust_target();
            cmd!(
                sh,
                "cross build --release --locked --package {PACKAGE} --bin {BIN} --target {target}"
            )
            .env("CARGO_ENCODED_RUSTFLAGS", &flags)
            .env_remove("RUSTFLAGS")
            .run()
            .with_context(|| format!("building {BIN} for {target} with cross"))?;
            // cross mounts the target dir at the same place, so the artifact lands where
            // cargo would put it.
            let path = ws.target_dir.join(target).join("release").join(BIN);
            if !path.is_file() {
                bail!("cross finished but left no binary at {}", path.display());
            }
            Ok(path)
        })
        .collect()
}
