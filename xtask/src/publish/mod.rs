//! Step 3, publish: write assembled images in the formats tools load. One publisher per
//! output format (ko's shape), each in its own file, chosen by the caller: the pipeline hands
//! every publisher the same assembled images, so digests never diverge between formats.
pub mod contract;
pub mod daemon;
pub mod docker_archive;
pub mod fresh;
pub mod hybrid_archive;
pub mod oci_layout;
pub mod registry;
pub mod spdx;

use std::path::PathBuf;

use serde::Serialize;

use crate::arch::Arch;
use crate::epoch::Epoch;
use crate::image::index::MultiArch;
use crate::image::Image;
use crate::sbom::Sbom;

/// The repository name of every local output (`fluxion-ha-amd64.tar`, `fluxion-ha:amd64`).
pub const REPO: &str = "fluxion-ha";

/// The full reference podman and containerd name the loaded image by.
pub fn full_name(version: &str) -> String {
    format!("docker.io/library/{REPO}:{version}")
}

/// What assembly produced, as publishers see it: values, never changed by a publisher.
#[derive(Debug, Clone)]
pub struct Assembled {
    /// One per arch, in the order asked for.
    pub images: Vec<Image>,
    /// The index over `images`, when a publisher asked for it (`Publisher::needs_index`).
    pub multi: Option<MultiArch>,
    /// The time every tar entry of an output carries.
    pub epoch: Epoch,
    /// The add-on version (addon/config.yaml): the tag layouts and archives name.
    pub version: String,
    /// One SBOM per image, in the same order, when a publisher asked for them
    /// (`Publisher::needs_sbom`); else empty.
    pub sboms: Vec<Sbom>,
}

impl Assembled {
    /// The multi-arch value, or an error naming the publisher that needs it.
    pub fn multi(&self, who: &str) -> anyhow::Result<&MultiArch> {
        self.multi.as_ref().ok_or_else(|| {
            anyhow::anyhow!("{who} needs the multi-arch index, which was not assembled")
        })
    }

    /// The SBOM of `arch`'s image, or an error naming the publisher that needs it.
    pub fn sbom(&self, arch: Arch, who: &str) -> anyhow::Result<&Sbom> {
        self.sboms
            .iter()
            .find(|s| s.arch == arch)
            .ok_or_else(|| anyhow::anyhow!("{who} needs the SBOM of {arch}, which was not made"))
    }
}

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    DockerArchive,
    OciLayout,
    HybridArchive,
    Daemon,
    Registry,
    Spdx,
}

/// What a file output is: its own sha256 and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    pub sha256: String,
    pub size: u64,
}

/// One thing a publisher wrote or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub format: Format,
    /// The image's arch, or None for a multi-arch output.
    pub arch: Option<Arch>,
    /// Where: the file or directory written, the engine loaded into, the repository pushed to.
    pub location: String,
    pub path: Option<PathBuf>,
    /// The names (tags, references) the output carries.
    pub names: Vec<String>,
    /// For a file output: what was written.
    pub written: Option<Written>,
}

/// Writes or sends assembled images one way.
pub trait Publisher {
    fn format(&self) -> Format;

    /// Whether it publishes the multi-arch index (the pipeline assembles it only then).
    fn needs_index(&self) -> bool {
        false
    }

    /// Whether it publishes the images' SBOMs (the pipeline makes them only then).
    fn needs_sbom(&self) -> bool {
        false
    }

    fn publish(&self, assembled: &Assembled) -> anyhow::Result<Vec<Output>>;
}
