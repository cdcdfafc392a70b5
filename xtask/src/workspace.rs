//! Where things are: the workspace root, cargo's target dir, where outputs go, the fluxion
//! crate's version; and the environment switches the checks read.
//!
//! cargo owns the last two (`cargo metadata`), and asking it costs a process start, a sixth
//! of a no-op rebuild (issue 11); so its answer is remembered in the xtask's cache directory
//! with the stat of every file and the value of every variable cargo reads to give it (the
//! workspace and fluxion manifests, every `.cargo/config{,.toml}` from the root up and in
//! CARGO_HOME, CARGO_TARGET_DIR, CARGO_BUILD_TARGET_DIR, CARGO_HOME, HOME), and cargo is asked
//! again as soon as one of them differs. Where outputs go (`FLUXION_OUT_DIR`) is not cargo's:
//! it is read on every run, never remembered.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use xshell::{cmd, Shell};

use crate::image::json;
use crate::{atomic, host, stamp};

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
        let out_dir = std::env::var_os(OUT_DIR_ENV)
            .filter(|d| !d.is_empty())
            .map(|d| cwd.join(d));
        let remembered = host::cache_dir().ok().map(|d| {
            d.join("workspaces").join(format!(
                "{:x}.json",
                Sha256::digest(root.as_os_str().as_encoded_bytes())
            ))
        });
        if let Some(r) = remembered
            .as_deref()
            .and_then(|p| Remembered::load(p, &root))
        {
            return Ok(Workspace {
                root,
                target_dir: r.target_dir,
                fluxion_version: r.fluxion_version,
                out_dir,
            });
        }
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
        let fluxion = meta["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "fluxion");
        let (Some(fluxion_version), Some(manifest)) = (
            fluxion.and_then(|p| p["version"].as_str()),
            fluxion.and_then(|p| p["manifest_path"].as_str()),
        ) else {
            bail!(
                "the workspace at {} has no `fluxion` package; it must be a member",
                root.display()
            )
        };
        let ws = Workspace {
            root,
            target_dir,
            fluxion_version: fluxion_version.to_owned(),
            out_dir,
        };
        if let Some(path) = remembered {
            let r = Remembered::of(&ws, Path::new(manifest));
            // Only a speed-up: a cache that cannot be written is asked again next time.
            if let Err(e) = atomic::write(&path, &json::to_canonical(&r)) {
                tracing::debug!("not remembering the workspace: {e:#}");
            }
        }
        Ok(ws)
    }

    /// Where images and the blob store go.
    pub fn images_dir(&self) -> PathBuf {
        match &self.out_dir {
            Some(out) => out.join("images"),
            None => self.target_dir.join("images"),
        }
    }

    /// Where the `result-<arch>` links (as `nix build` leaves them) go: the workspace root, or
    /// `FLUXION_OUT_DIR`.
    pub fn result_links_dir(&self) -> &Path {
        self.out_dir.as_deref().unwrap_or(&self.root)
    }

    pub fn addon_config(&self) -> PathBuf {
        self.root.join("addon").join("config.yaml")
    }
}

/// `cargo metadata`'s answer for a root, and what decided it.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct Remembered {
    root: PathBuf,
    target_dir: PathBuf,
    fluxion_version: String,
    fluxion_manifest: PathBuf,
    /// Every file cargo reads for the answer, and its size and mtime (None: absent).
    files: Vec<(PathBuf, Option<(u64, u128)>)>,
    env: Vec<(String, Option<String>)>,
}

/// The variables that move cargo's target dir or its config.
const ENV: [&str; 4] = [
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_HOME",
    "HOME",
];

impl Remembered {
    fn of(ws: &Workspace, fluxion_manifest: &Path) -> Remembered {
        Remembered {
            root: ws.root.clone(),
            target_dir: ws.target_dir.clone(),
            fluxion_version: ws.fluxion_version.clone(),
            fluxion_manifest: fluxion_manifest.to_owned(),
            files: inputs(&ws.root, fluxion_manifest)
                .into_iter()
                .map(|p| {
                    let s = stamp::stat(&p);
                    (p, s)
                })
                .collect(),
            env: env(),
        }
    }

    /// The remembered answer for `root`, if nothing that decides it changed since.
    fn load(path: &Path, root: &Path) -> Option<Remembered> {
        let r: Remembered = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        let same = r.root == root
            && r.env == env()
            && r.files
                .iter()
                .map(|(p, _)| p.clone())
                .eq(inputs(root, &r.fluxion_manifest))
            && r.files.iter().all(|(p, s)| stamp::stat(p) == *s);
        same.then_some(r)
    }
}

fn env() -> Vec<(String, Option<String>)> {
    ENV.iter()
        .map(|v| ((*v).to_owned(), std::env::var(v).ok()))
        .collect()
}

fn inputs(root: &Path, fluxion_manifest: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("Cargo.toml"), fluxion_manifest.to_owned()];
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let config_dirs = root.ancestors().map(|d| d.join(".cargo")).chain(cargo_home);
    for dir in config_dirs {
        files.push(dir.join("config.toml"));
        files.push(dir.join("config"));
    }
    files
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
