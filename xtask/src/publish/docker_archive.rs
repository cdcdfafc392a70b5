//! docker-archive: the tarball `docker save` writes and `docker load`, podman and skopeo read.
//!
//! Layout as written by `docker save` since Docker 25 (blobs addressed by digest under
//! `blobs/sha256/`, plus `manifest.json` naming the config, layers and tags); Docker 20.10's
//! loader follows the paths in manifest.json, so it reads this layout too, and it decompresses
//! gzip layers itself, checking each against the config's diff_ids.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use super::{fresh, Assembled, Format, Output, Publisher, Written, REPO};
use crate::arch::Arch;
use crate::atomic;
use crate::epoch::Epoch;
use crate::image::json;
use crate::image::layer::{Data, Node, Tree};
use crate::image::store::Blob;
use crate::image::Image;
use crate::parallel;

/// One `manifest.json` entry (moby image/tarexport: `manifestItem`).
#[derive(Serialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn blob_path(blob: &Blob) -> String {
    format!("blobs/sha256/{}", blob.hex())
}

/// The archive's file tree: every blob once, and manifest.json with one entry per image.
pub fn tree(images: &[(&Image, Vec<String>)]) -> anyhow::Result<Tree> {
    let mut t = Tree::new();
    let mut items = Vec::new();
    for (image, tags) in images {
        for blob in image.layers.iter().map(|l| &l.blob).chain([&image.config]) {
            t.insert(
                &blob_path(blob),
                Node::File {
                    mode: 0o644,
                    data: Data::Blob(blob.clone()),
                },
            )?;
        }
        items.push(ManifestItem {
            config: blob_path(&image.config),
            repo_tags: tags.clone(),
            layers: image.layers.iter().map(|l| blob_path(&l.blob)).collect(),
        });
    }
    t.insert(
        "manifest.json",
        Node::File {
            mode: 0o644,
            data: Data::Bytes(Arc::from(json::to_canonical(&items))),
        },
    )?;
    Ok(t)
}

/// Bump when this writer changes the archive's bytes for the same images (publish/fresh.rs).
const FORMAT: &str = "docker-archive v1 (blobs/sha256, manifest.json)";

/// Write the archive to `dest` (temp file + rename), hashing it on the way out and every blob
/// on the way in; unless `dest` is already what these images, tags and epoch produce
/// (publish/fresh.rs, issue 7).
///
/// Layers are copied as they are in the store: with `--compression zstd` the archive holds
/// zstd layers, which podman, skopeo and Docker >= 23 load, but Docker 20.10 does not.
pub fn write(
    dest: &Path,
    images: &[(&Image, Vec<String>)],
    epoch: Epoch,
) -> anyhow::Result<Written> {
    let t = tree(images)?;
    // The tree holds every input: manifest.json (which names every blob by digest and every
    // tag) as bytes, each blob by its digest and size.
    let key = fresh::tree_key(FORMAT, epoch, &t)?;
    fresh::write_tar_file(dest, &t, &key, epoch, "docker-archive")
}

/// `<dir>/fluxion-ha-<arch>.tar` per image, tagged `fluxion-ha:<arch>`, and with `result_links`
/// a `result-<arch>` symlink to it in that directory (as Nix users expect from `nix build`).
#[derive(Debug, Clone)]
pub struct DockerArchives {
    pub dir: PathBuf,
    pub result_links: Option<PathBuf>,
}

impl DockerArchives {
    pub fn path(&self, arch: Arch) -> PathBuf {
        self.dir.join(format!("{REPO}-{arch}.tar"))
    }

    pub fn tag(arch: Arch) -> String {
        format!("{REPO}:{arch}")
    }
}

impl Publisher for DockerArchives {
    fn format(&self) -> Format {
        Format::DockerArchive
    }

    /// The arches concurrently: copying a blob while hashing it is CPU as much as I/O.
    fn publish(&self, a: &Assembled) -> anyhow::Result<Vec<Output>> {
        parallel::map(&a.images, |image| {
            let arch = image.arch;
            let (path, tag) = (self.path(arch), Self::tag(arch));
            let written = write(&path, &[(image, vec![tag.clone()])], a.epoch)?;
            if let Some(root) = &self.result_links {
                link_result(root, arch, &path)?;
            }
            tracing::info!(%arch, archive = %path.display(), id = image.id(), "image written");
            Ok(Output {
                format: Format::DockerArchive,
                arch: Some(arch),
                location: path.display().to_string(),
                path: Some(path),
                names: vec![tag],
                written: Some(written),
            })
        })
    }
}

/// `result-<arch>` in `root`, pointing at the archive (relative when it is below `root`).
fn link_result(root: &Path, arch: Arch, archive: &Path) -> anyhow::Result<()> {
    let target = archive.strip_prefix(root).unwrap_or(archive);
    let link = root.join(format!("result-{arch}"));
    // Already right: leave it (issue 7, a no-op rebuild writes nothing).
    if std::fs::read_link(&link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    atomic::symlink(target, &link).with_context(|| format!("linking result-{arch}"))
}
