//! Where things are: the workspace root, cargo's target dir, where outputs go, the fluxion
//! crate's version; and the environment switches the checks read.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    /// `version` of the `fluxion` package, which must equal addon/config.yaml's.
    pub fluxion_version: String,
    /// Where `image` puts its outputs instead of the checkout (`FLUXION_OUT_DIR`): images in
    /// `<out>/images`, the `result-<arch>` links in `<out>`. Tests set it so they never touch
    /// the user's `target/images` or `result-*`; cargo still compiles in `target_dir`.
    pub out_dir: Option<PathBuf>,
}

/// Names a directory for `image`'s outputs (see `Workspace::out_dir`).
pub const OUT_DIR_ENV: &str = "FLUXION_OUT_DIR";

/// `FLUXION_REQUIRE_TOOLS=1`: a check that needs an outside tool (dockerd, podman, skopeo,
/// gitlab-ci-local, ...) fails when it is missing instead of skipping with a printed reason.
/// `.ci/run` and the GitLab `integration` jobs set it. `CI=true` does not decide it: GitLab sets
/// that in every job, including those whose image has none of the tools.
pub const REQUIRE_TOOLS_ENV: &str = "FLUXION_REQUIRE_TOOLS";

pub fn tools_required() -> bool {
    std::env::var(REQUIRE_TOOLS_ENV).is_ok_and(|v| v == "1" || v == "true")
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
        let out_dir = std::env::var_os(OUT_DIR_ENV)
            .filter(|d| !d.is_empty())
            .map(|d| cwd.join(d));
        Ok(Workspace {
            root,
            target_dir,
            fluxion_version,
            out_dir,
        })
    }

    /// Where images and the blob store go.
    pub fn images_dir(&self) -> PathBuf {
        match &self.out_dir {
            Some(out) => out.join("images"),
            None => self.target_dir.join("images"),
        }
    }

    /// The `result-<arch>` link (as `nix build` leaves one) for an arch's archive.
    pub fn result_link(&self, arch: impl std::fmt::Display) -> PathBuf {
        self.out_dir
            .as_ref()
            .unwrap_or(&self.root)
            .join(format!("result-{arch}"))
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
