//! The hybrid archive: one tar that is an OCI image layout (image-layout.md, with the nested
//! multi-arch index) *and* a docker-archive (`manifest.json` with one entry per arch), the way
//! `docker save` has written archives since Docker 25. Every blob appears once.
//!
//! Readers: docker 20.10 follows manifest.json (a docker-archive cannot express an index, so
//! each arch gets its own tag `<name>:<version>-<hass arch>`); podman reads the OCI side and
//! names the host platform's image from the index.json annotations; skopeo reads either side
//! (`oci-archive:` / `docker-archive:`).
use std::path::{Path, PathBuf};

use super::{docker_archive, fresh, full_name, oci_layout};
use super::{Assembled, Format, Output, Publisher, Written, REPO};
use crate::arch::Arch;
use crate::epoch::Epoch;
use crate::image::index::MultiArch;
use crate::image::layer::Tree;

/// The per-arch docker tag in manifest.json: `<repo>:<version>-<hass arch>`.
pub fn arch_tag(repo: &str, version: &str, arch: Arch) -> String {
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

/// Write the archive to `dest` (temp file + rename), hashing it on the way out and every blob
/// on the way in; unless `dest` is already what these images, names and epoch produce
/// (publish/fresh.rs, issue 7).
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
    // by its digest and size.
    let key = fresh::tree_key(FORMAT, epoch, &t)?;
    fresh::write_tar_file(dest, &t, &key, epoch, "OCI + docker archive")
}

/// `<dir>/fluxion-ha.tar`.
#[derive(Debug, Clone)]
pub struct HybridArchive {
    pub dir: PathBuf,
}

impl HybridArchive {
    pub fn path(&self) -> PathBuf {
        self.dir.join(format!("{REPO}.tar"))
    }
}

impl Publisher for HybridArchive {
    fn format(&self) -> Format {
        Format::HybridArchive
    }

    fn needs_index(&self) -> bool {
        true
    }

    fn publish(&self, a: &Assembled) -> anyhow::Result<Vec<Output>> {
        let multi = a.multi("the OCI + docker archive")?;
        let name = full_name(&a.version);
        let path = self.path();
        let written = write(&path, multi, REPO, &a.version, &name, a.epoch)?;
        tracing::info!(index = %multi.index.digest, archive = %path.display(), "multi-arch archive written");
        let mut names: Vec<String> = multi
            .images
            .iter()
            .map(|i| arch_tag(REPO, &a.version, i.arch))
            .collect();
        names.push(name);
        Ok(vec![Output {
            format: Format::HybridArchive,
            arch: None,
            location: path.display().to_string(),
            path: Some(path),
            names,
            written: Some(written),
        }])
    }
}
