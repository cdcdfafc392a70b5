//! Where things are: the workspace root, cargo's target dir, the fluxion crate's version.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    /// `version` of the `fluxion` package, which must equal addon/config.yaml's.
    pub fluxion_version: String,
}

impl Workspace {
    /// The workspace that holds the current directory (so tests can point the xtask at a
    /// scratch workspace by running it there), asking cargo for the details it owns.
    pub fn discover(sh: &Shell) -> anyhow::Result<Workspace> {
        let cwd = sh.current_dir();
        let root = find_root(&cwd).with_context(|| {
            format!(
                "no cargo workspace (a Cargo.toml with [workspace]) at or above {}; \
                 run cargo xtask inside the FluxION checkout",
                cwd.display()
            )
        })?;
        let _dir = sh.push_dir(&root);
        let meta = cmd!(sh, "cargo metadata --no-deps --format-version 1 --offline")
            .quiet()
            .read()
            .context("running `cargo metadata` for the workspace")?;
        let meta: serde_json::Value =
            serde_json::from_str(&meta).context("parsing `cargo metadata` output")?;
        let target_dir = meta["target_directory"]
            .as_str()
            .context("`cargo metadata` gave no target_directory")?
            .into();
        let fluxion_version = meta["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "fluxion")
            .and_then(|p| p["version"].as_str())
            .map(str::to_owned);
        let Some(fluxion_version) = fluxion_version else {
            bail!(
                "the workspace at {} has no `fluxion` package; it must be a member",
                root.display()
            )
        };
        Ok(Workspace {
            root,
            target_dir,
            fluxion_version,
        })
    }

    /// Where images and the blob store go.
    pub fn images_dir(&self) -> PathBuf {
        self.target_dir.join("images")
    }

    pub fn addon_config(&self) -> PathBuf {
        self.root.join("addon").join("config.yaml")
    }
}

fn find_root(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
        manifest
            .lines()
            .any(|l| l.trim() == "[workspace]")
            .then(|| dir.to_path_buf())
    })
}
