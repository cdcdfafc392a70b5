//! OCI image layout (image-spec image-layout.md): `oci-layout`, `index.json`, `blobs/sha256/`,
//! as a directory; the same file tree is reused by the hybrid archive (publish/hybrid_archive.rs).
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use oci_spec::image::Descriptor;

use crate::atomic;
use crate::epoch::Epoch;
use crate::image::index::{self, MultiArch, CONTAINERD_NAME, REF_NAME};
use crate::image::layer::{Data, Node, Tree};
use crate::image::store::Blob;
use crate::image::{json, manifest, Image};
use crate::publish::fresh;

/// image-layout.md "oci-layout file".
pub const LAYOUT_VERSION: &str = "1.0.0";

fn blob_node(blob: &Blob) -> Node {
    Node::File {
        mode: 0o644,
        data: Data::File(blob.path.clone()),
    }
}

fn bytes_node(bytes: Vec<u8>) -> Node {
    Node::File {
        mode: 0o644,
        data: Data::Bytes(Arc::from(bytes)),
    }
}

/// The path of a blob inside a layout (and inside a docker-archive since Docker 25).
pub fn blob_path(blob: &Blob) -> String {
    format!("blobs/sha256/{}", blob.hex())
}

/// A layout tree: every blob once, `oci-layout`, and `index.json` listing `entries`.
pub fn tree<'a>(
    blobs: impl IntoIterator<Item = &'a Blob>,
    entries: Vec<Descriptor>,
) -> anyhow::Result<Tree> {
    let mut t = Tree::new();
    for blob in blobs {
        t.insert(&blob_path(blob), blob_node(blob))?;
    }
    t.insert(
        "oci-layout",
        bytes_node(json::to_canonical(
            &serde_json::json!({ "imageLayoutVersion": LAYOUT_VERSION }),
        )),
    )?;
    t.insert(
        "index.json",
        bytes_node(json::to_canonical(&index::build(entries)?)),
    )?;
    Ok(t)
}

/// The multi-arch layout: index.json holds exactly one descriptor, the nested index, named by
/// the full reference `name` (e.g. `docker.io/library/fluxion-ha:0.1.0`). podman and
/// containerd take the image name from these annotations; a flat two-entry index.json would
/// make podman fall back to the docker-archive reading and lose the multi-arch name (issue 4).
pub fn multi_arch_tree(multi: &MultiArch, name: &str) -> anyhow::Result<Tree> {
    let annotations: BTreeMap<String, String> = [REF_NAME, CONTAINERD_NAME]
        .into_iter()
        .map(|k| (k.to_owned(), name.to_owned()))
        .collect();
    let entry = index::annotated(manifest::descriptor(&multi.index)?, &annotations)?;
    tree(multi.blobs(), vec![entry])
}

/// A single-arch layout: index.json lists the image's manifest (with its platform) named by
/// the bare tag, as `umoci --image <dir>:<tag>` and `skopeo oci:<dir>:<tag>` look it up.
/// The manifest is the same blob as in the multi-arch index, so the digests are equal.
pub fn single_arch_tree(image: &Image, tag: &str) -> anyhow::Result<Tree> {
    let annotations = BTreeMap::from([(REF_NAME.to_owned(), tag.to_owned())]);
    let entry = index::annotated(index::manifest_descriptor(image)?, &annotations)?;
    let blobs = image
        .layers
        .iter()
        .map(|l| &l.blob)
        .chain([&image.config, &image.manifest]);
    tree(blobs, vec![entry])
}

/// Bump when this writer changes the layout's files for the same tree (publish/fresh.rs).
const FORMAT: &str = "oci-layout dir v1 (files copied, modes from the tree)";

/// Write `t` as the directory `dest`: filled in a temp dir beside it, then swapped in, so a
/// reader never sees a half-written layout (atomic::replace_dir); unless `dest` is already
/// what `t` produces and untouched since (publish/fresh.rs, issue 7: a no-op writes nothing).
pub fn write_dir(dest: &Path, t: &Tree) -> anyhow::Result<()> {
    // Nothing in a layout directory depends on the epoch (files carry their write time).
    let key = fresh::tree_key(FORMAT, Epoch(0), t)?;
    if fresh::check_dir(dest, &key) {
        tracing::debug!(layout = %dest.display(), "unchanged inputs: not rewriting");
        return Ok(());
    }
    atomic::replace_dir(dest, |dir| materialise(t, dir))
        .with_context(|| format!("writing the OCI layout {}", dest.display()))?;
    fresh::record_dir(dest, &key)
}

fn materialise(t: &Tree, dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (path, node) in t.iter() {
        let to = dir.join(path);
        match node {
            Node::Dir { mode } => {
                std::fs::create_dir_all(&to)?;
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(*mode))?;
            }
            Node::File { mode, data } => {
                match data {
                    Data::Bytes(b) => std::fs::write(&to, b)?,
                    // A copy, not a hard link: tools that garbage-collect a layout (umoci gc)
                    // must never be able to touch the store's blobs.
                    Data::File(p) => std::fs::copy(p, &to).map(|_| ())?,
                }
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(*mode))?;
            }
            Node::Symlink { .. } | Node::Hardlink { .. } => {
                anyhow::bail!("{path}: an OCI layout holds only files and directories")
            }
        }
    }
    Ok(())
}
