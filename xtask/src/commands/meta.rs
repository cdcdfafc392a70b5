//! `cargo xtask meta`: write nix/addon-meta.json, the add-on facts flake.nix reads (name,
//! version, description, url, per-arch platform and labels), so the Nix images never drift
//! from addon/config.yaml. `--check` compares instead of writing (CI).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;
use xshell::Shell;

use crate::addon::AddonConfig;
use crate::arch::Arch;
use crate::epoch::Epoch;
use crate::image::json;
use crate::workspace::Workspace;
use crate::{atomic, flags};

/// The epoch the Nix path stamps into `org.opencontainers.image.created`: 1, which is
/// dockerTools' own default `created` (1970-01-01T00:00:01Z). A flake cannot format its
/// `lastModified` as RFC 3339 without extra code, and a commit-time label in a committed file
/// would be stale by the commit that writes it.
pub const NIX_EPOCH: Epoch = Epoch(1);

pub fn default_path(ws: &Workspace) -> PathBuf {
    ws.root.join("nix").join("addon-meta.json")
}

#[derive(Debug, Serialize)]
pub struct Meta {
    pub name: String,
    pub slug: String,
    pub version: String,
    pub description: String,
    pub url: String,
    pub epoch: u64,
    /// The arches config.yaml lists, by their Home Assistant names.
    pub arches: Vec<String>,
    /// Per arch (Home Assistant name): what the Nix image must say about itself.
    pub images: BTreeMap<String, ArchMeta>,
}

#[derive(Debug, Serialize)]
pub struct ArchMeta {
    pub architecture: &'static str,
    pub variant: Option<&'static str>,
    pub rust_target: &'static str,
    /// Exactly `AddonConfig::labels(arch, NIX_EPOCH)`: the function the image config uses.
    pub labels: BTreeMap<String, String>,
}

pub fn meta(addon: &AddonConfig) -> Meta {
    let arches: Vec<Arch> = Arch::ALL
        .into_iter()
        .filter(|a| addon.arch.iter().any(|n| n == a.hass_arch()))
        .collect();
    Meta {
        name: addon.name.clone(),
        slug: addon.slug.clone(),
        version: addon.version.clone(),
        description: addon.description.clone(),
        url: addon.url.clone(),
        epoch: NIX_EPOCH.0,
        arches: addon.arch.clone(),
        images: arches
            .into_iter()
            .map(|a| {
                (
                    a.hass_arch().to_owned(),
                    ArchMeta {
                        architecture: a.oci_arch(),
                        variant: a.oci_variant(),
                        rust_target: a.rust_target(),
                        labels: addon.labels(a, NIX_EPOCH),
                    },
                )
            })
            .collect(),
    }
}

/// The file's bytes: sorted, pretty JSON with a trailing newline (diffs read well).
pub fn render(addon: &AddonConfig) -> Vec<u8> {
    let mut text = json::to_pretty(&meta(addon));
    text.push('\n');
    text.into_bytes()
}

impl flags::Meta {
    pub fn run(self, _sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        let addon = AddonConfig::load(&ws.addon_config())?;
        addon.check_version(&ws.fluxion_version)?;
        let out = self.out.unwrap_or_else(|| default_path(ws));
        let bytes = render(&addon);
        if self.check {
            return check(&out, &bytes);
        }
        atomic::write(&out, &bytes)?;
        println!("wrote {}", out.display());
        Ok(())
    }
}

pub fn check(path: &Path, expected: &[u8]) -> anyhow::Result<()> {
    let current = std::fs::read(path).with_context(|| {
        format!(
            "reading {}; run `cargo xtask meta` to create it",
            path.display()
        )
    })?;
    if current != expected {
        bail!(
            "{} is out of date with addon/config.yaml; run `cargo xtask meta` and commit it",
            path.display()
        );
    }
    println!("{} is up to date", path.display());
    Ok(())
}
