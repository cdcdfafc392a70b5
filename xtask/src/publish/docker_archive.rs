//! docker-archive: the tarball `docker save` writes and `docker load`, podman and skopeo read.
//!
//! Layout as written by `docker save` since Docker 25 (blobs addressed by digest under
//! `blobs/sha256/`, plus `manifest.json` naming the config, layers and tags); Docker 20.10's
//! loader follows the paths in manifest.json, so it reads this layout too, and it decompresses
//! gzip layers itself, checking each against the config's diff_ids.
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use crate::atomic::AtomicFile;
use crate::epoch::Epoch;
use crate::image::hash::HashWriter;
use crate::image::json;
use crate::image::layer::{Data, Node, Tree};
use crate::image::store::Blob;
use crate::image::Image;
use crate::publish::fresh;

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

/// What was written: the archive's own sha256 and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    pub sha256: String,
    pub size: u64,
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
                    data: Data::File(blob.path.clone()),
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

/// Write the archive to `dest` (temp file + rename), hashing it on the way out; unless `dest`
/// is already what these images, tags and epoch produce (publish/fresh.rs, issue 7).
///
/// Layers are copied as they are in the store: with `--compression zstd` the archive holds
/// zstd layers, which podman, skopeo and Docker >= 23 load, but Docker 20.10 does not.
pub fn write(
    dest: &Path,
    images: &[(&Image, Vec<String>)],
    epoch: Epoch,
) -> anyhow::Result<Written> {
    let t = tree(images)?;
    // Every input of the archive: the writer, the epoch, manifest.json (which names every
    // blob by digest and every tag) and each blob's digest and size (content-addressed).
    let mut key = fresh::Key::default();
    key.field(FORMAT.as_bytes()).field(&epoch.0.to_be_bytes());
    for (path, node) in t.iter() {
        key.field(path.as_bytes());
        if let Node::File {
            data: Data::Bytes(b),
            ..
        } = node
        {
            key.field(b);
        }
    }
    for (image, _) in images {
        for blob in image.layers.iter().map(|l| &l.blob).chain([&image.config]) {
            key.field(blob.digest.as_bytes())
                .field(&blob.size.to_be_bytes());
        }
    }
    let key = key.finish();
    if let Some((sha256, size)) = fresh::check(dest, &key) {
        tracing::debug!(archive = %dest.display(), "unchanged inputs: not rewriting");
        return Ok(Written { sha256, size });
    }
    let out = t
        .write_tar(HashWriter::new(AtomicFile::create(dest)?), epoch)
        .with_context(|| format!("writing the docker-archive {}", dest.display()))?;
    let (file, sha256, size) = out.finish();
    file.commit()?;
    fresh::record(dest, &key, &sha256)?;
    Ok(Written { sha256, size })
}
