//! OCI image layout (image-spec image-layout.md): `oci-layout`, `index.json`, `blobs/sha256/`,
//! as a directory; the same file tree is reused by the hybrid archive (publish/hybrid_archive.rs).
//!
//! Blobs come from the store as hard links (one inode, no bytes written; a copy where linking
//! is impossible), each verified against its digest first, so an app-only rebuild writes no
//! runtime-layer blob again. OCI tools never modify a blob in place (they write new blobs and
//! rename), and `umoci gc` unlinking a layout's blob leaves the store's link intact.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use oci_spec::image::Descriptor;

use super::{full_name, Assembled, Format, Output, Publisher, REPO};
use crate::atomic;
use crate::epoch::Epoch;
use crate::image::index::{self, MultiArch, CONTAINERD_NAME, REF_NAME};
use crate::image::layer::{Data, Node, Tree};
use crate::image::store::{Blob, VerifyingReader};
use crate::image::{json, manifest, Image};
use crate::publish::fresh;

/// image-layout.md "oci-layout file".
pub const LAYOUT_VERSION: &str = "1.0.0";

fn blob_node(blob: &Blob) -> Node {
    Node::File {
        mode: 0o644,
        data: Data::Blob(blob.clone()),
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
const FORMAT: &str = "oci-layout dir v2 (blobs hard-linked from the store, modes from the tree)";

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
    let mut linked = BTreeMap::new();
    atomic::replace_dir(dest, |dir| materialise(t, dir, &mut linked))
        .with_context(|| format!("writing the OCI layout {}", dest.display()))?;
    fresh::record_dir_linked(dest, &key, linked)
}

/// Write `t`'s files into `dir`; `linked` gets each file made a hard link to a store blob.
fn materialise(t: &Tree, dir: &Path, linked: &mut BTreeMap<String, PathBuf>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (path, node) in t.iter() {
        let to = dir.join(path);
        match node {
            Node::Dir { mode } => {
                std::fs::create_dir_all(&to)?;
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(*mode))?;
            }
            Node::File { mode, data } => match data {
                Data::Bytes(b) => {
                    std::fs::write(&to, b)?;
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(*mode))?;
                }
                Data::File(f) => {
                    let mut r = VerifyingReader::open_file(f)?;
                    std::io::copy(&mut r, &mut std::fs::File::create(&to)?)?;
                    r.finish()?;
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(*mode))?;
                }
                Data::Blob(blob) => {
                    if link_or_copy(blob, &to)? {
                        linked.insert(path.clone(), blob.path.clone());
                    }
                    // On a link this sets the store file's mode too: the same inode.
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(*mode))?;
                }
            },
            Node::Symlink { .. } | Node::Hardlink { .. } => {
                anyhow::bail!("{path}: an OCI layout holds only files and directories")
            }
        }
    }
    Ok(())
}

/// `to` as a hard link to the store's blob after checking the blob's bytes (true), or, where
/// a link cannot be made (another filesystem), a copy through the verifying reader (false).
fn link_or_copy(blob: &Blob, to: &Path) -> anyhow::Result<bool> {
    let mut r = VerifyingReader::open(blob)?;
    if std::fs::hard_link(&blob.path, to).is_ok() {
        // The same inode: hashing the store's file checks the layout's.
        std::io::copy(&mut r, &mut std::io::sink())?;
        return r.finish().map(|()| true).map_err(|e| {
            let _ = std::fs::remove_file(to);
            e.into()
        });
    }
    let mut out =
        std::fs::File::create(to).with_context(|| format!("creating {}", to.display()))?;
    std::io::copy(&mut r, &mut out)
        .with_context(|| format!("copying blob {} into {}", blob.digest, to.display()))?;
    r.finish()?;
    Ok(false)
}

/// `<dir>/fluxion-ha-<arch>.oci/` per image: the image alone, named by the bare version tag
/// (for umoci, which cannot pick a platform inside a nested index).
#[derive(Debug, Clone)]
pub struct PerArchLayouts {
    pub dir: PathBuf,
}

impl PerArchLayouts {
    pub fn path(&self, image: &Image) -> PathBuf {
        self.dir.join(format!("{REPO}-{}.oci", image.arch))
    }
}

impl Publisher for PerArchLayouts {
    fn format(&self) -> Format {
        Format::OciLayout
    }

    fn publish(&self, a: &Assembled) -> anyhow::Result<Vec<Output>> {
        a.images
            .iter()
            .map(|image| {
                let path = self.path(image);
                write_dir(&path, &single_arch_tree(image, &a.version)?)?;
                Ok(Output {
                    format: Format::OciLayout,
                    arch: Some(image.arch),
                    location: path.display().to_string(),
                    path: Some(path),
                    names: vec![a.version.clone()],
                    written: None,
                })
            })
            .collect()
    }
}

/// `<dir>/fluxion-ha.oci/`: every image under the nested index, named by the full reference.
#[derive(Debug, Clone)]
pub struct MultiArchLayout {
    pub dir: PathBuf,
}

impl MultiArchLayout {
    pub fn path(&self) -> PathBuf {
        self.dir.join(format!("{REPO}.oci"))
    }
}

impl Publisher for MultiArchLayout {
    fn format(&self) -> Format {
        Format::OciLayout
    }

    fn needs_index(&self) -> bool {
        true
    }

    fn publish(&self, a: &Assembled) -> anyhow::Result<Vec<Output>> {
        let multi = a.multi("the multi-arch OCI layout")?;
        let name = full_name(&a.version);
        let path = self.path();
        write_dir(&path, &multi_arch_tree(multi, &name)?)?;
        tracing::info!(index = %multi.index.digest, layout = %path.display(), "multi-arch layout written");
        Ok(vec![Output {
            format: Format::OciLayout,
            arch: None,
            location: path.display().to_string(),
            path: Some(path),
            names: vec![name],
            written: None,
        }])
    }
}
