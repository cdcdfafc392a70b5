//! The hybrid archive: one tar that is an OCI image layout (image-layout.md, with the nested
//! multi-arch index) *and* a docker-archive (`manifest.json` with one entry per arch), the way
//! `docker save` has written archives since Docker 25. Every blob appears once.
//!
//! Readers: docker 20.10 follows manifest.json (a docker-archive cannot express an index, so
//! each arch gets its own tag `<name>:<version>-<hass arch>`); podman reads the OCI side and
//! names the host platform's image from the index.json annotations; skopeo reads either side
//! (`oci-archive:` / `docker-archive:`).
use std::path::Path;

use anyhow::Context;

use super::docker_archive::{self, Written};
use super::{fresh, oci_layout};
use crate::atomic::AtomicFile;
use crate::epoch::Epoch;
use crate::image::hash::HashWriter;
use crate::image::index::MultiArch;
use crate::image::layer::Tree;

/// The per-arch docker tag in manifest.json: `<repo>:<version>-<hass arch>`.
pub fn arch_tag(repo: &str, version: &str, arch: crate::image::arch::Arch) -> String {
    format!("{repo}:{version}-{}", arch.hass_arch())
}

/// The archive's tree: the docker-archive tree (blobs + manifest.json) merged with the
/// multi-arch layout tree (the same blob paths, plus oci-layout, index.json and the manifests).
pub fn tree(multi: &MultiArch, repo: &str, version: &str, name: &str) -> anyhow::Result<Tree> {
    let tagged: Vec<_> = multi
        .images
        .iter()
        .map(|i| (i, vec![arch_tag(repo, version, i.arch)]))
        .collect();
    let mut t = docker_archive::tree(&tagged)?;
    for (path, node) in oci_layout::multi_arch_tree(multi, name)?.iter() {
        t.insert(path, node.clone())?;
    }
    Ok(t)
}

/// Bump when this writer changes the archive's bytes for the same tree (publish/fresh.rs).
const FORMAT: &str = "hybrid oci-layout + docker-archive v1";

/// Write the archive to `dest` (temp file + rename), hashing it on the way out; unless `dest`
/// is already what these images, names and epoch produce (publish/fresh.rs, issue 7).
pub fn write(
    dest: &Path,
    multi: &MultiArch,
    repo: &str,
    version: &str,
    name: &str,
    epoch: Epoch,
) -> anyhow::Result<Written> {
    let t = tree(multi, repo, version, name)?;
    // The tree holds every input: manifest.json, index.json, oci-layout as bytes, every blob
    // by its store path (its digest) and size.
    let key = fresh::tree_key(FORMAT, epoch, &t)?;
    if let Some((sha256, size)) = fresh::check(dest, &key) {
        tracing::debug!(archive = %dest.display(), "unchanged inputs: not rewriting");
        return Ok(Written { sha256, size });
    }
    let out = t
        .write_tar(HashWriter::new(AtomicFile::create(dest)?), epoch)
        .with_context(|| format!("writing the OCI + docker archive {}", dest.display()))?;
    let (file, sha256, size) = out.finish();
    file.commit()?;
    fresh::record(dest, &key, &sha256)?;
    Ok(Written { sha256, size })
}
