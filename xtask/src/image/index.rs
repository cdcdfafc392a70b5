//! The image index (OCI image-spec image-index.md): one manifest per platform, the value that
//! multi-arch layouts nest and registries serve under the version tag.
use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context};
use oci_spec::image::{
    Arch as OciArch, Descriptor, ImageIndex, ImageIndexBuilder, MediaType, Os, Platform,
    PlatformBuilder,
};

use super::manifest;
use super::store::{Blob, BlobStore};
use super::{json, Image};
use crate::arch::Arch;

pub const MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// image-spec annotations.md: the reference name of a descriptor in a layout's index.json.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// What containerd (and podman's oci-archive transport) name an imported image from.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Several per-arch images and the index over their manifests. A value like `Image`: built
/// once from the store, then written as layouts and archives and pushed, never changed.
#[derive(Debug, Clone)]
pub struct MultiArch {
    /// In `Arch` order (amd64, aarch64), one per arch.
    pub images: Vec<Image>,
    pub index: Blob,
}

/// The platform an index entry announces: `linux/<oci_arch>[/<variant>]`, the same values the
/// config carries (image-index.md "platform"; Supervisor pulls by platform).
pub fn platform(arch: Arch) -> anyhow::Result<Platform> {
    let mut b = PlatformBuilder::default()
        .architecture(OciArch::from(arch.oci_arch()))
        .os(Os::Linux);
    if let Some(v) = arch.oci_variant() {
        b = b.variant(v.to_owned());
    }
    b.build().context("building an index platform")
}

/// The descriptor of one image's manifest, with its platform.
pub fn manifest_descriptor(image: &Image) -> anyhow::Result<Descriptor> {
    let mut d = manifest::descriptor(&image.manifest)?;
    d.set_platform(Some(platform(image.arch)?));
    Ok(d)
}

/// A descriptor for `blob` with annotations (used for the entries of a layout's index.json).
pub fn annotated(
    mut d: Descriptor,
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<Descriptor> {
    if !annotations.is_empty() {
        d.set_annotations(Some(
            annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        ));
    }
    Ok(d)
}

/// An index listing `manifests` as they are (no annotations on the index itself, so the same
/// bytes can be pushed to any repository under any tag).
pub fn build(manifests: Vec<Descriptor>) -> anyhow::Result<ImageIndex> {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .context("building the image index")
}

/// Store the index over `images` (one per arch, any order) and return the multi-arch value.
pub fn assemble(store: &BlobStore, mut images: Vec<Image>) -> anyhow::Result<MultiArch> {
    if images.is_empty() {
        bail!("a multi-arch index needs at least one image");
    }
    images.sort_by_key(|i| i.arch);
    if let Some(w) = images.windows(2).find(|w| w[0].arch == w[1].arch) {
        bail!(
            "two images for {} in one index; build each architecture once",
            w[0].arch
        );
    }
    let manifests = images
        .iter()
        .map(manifest_descriptor)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let index = store.put(&json::to_canonical(&build(manifests)?), MEDIA_TYPE)?;
    Ok(MultiArch { images, index })
}

impl MultiArch {
    pub fn image(&self, arch: Arch) -> Option<&Image> {
        self.images.iter().find(|i| i.arch == arch)
    }

    /// Every blob the index reaches, each once: layers and configs, then manifests, then the
    /// index itself (the order a registry push needs).
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for blob in self
            .images
            .iter()
            .flat_map(|i| i.layers.iter().map(|l| &l.blob).chain([&i.config]))
            .chain(self.images.iter().map(|i| &i.manifest))
            .chain([&self.index])
        {
            if seen.insert(blob.digest.as_str()) {
                out.push(blob);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm64_platform_has_variant_v8() {
        let v = serde_json::to_value(platform(Arch::Aarch64).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
        );
        let v = serde_json::to_value(platform(Arch::Amd64).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"architecture": "amd64", "os": "linux"})
        );
    }
}
