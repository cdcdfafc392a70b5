//! The image manifest (OCI image-spec manifest.md): config descriptor plus layer descriptors.
use anyhow::Context;
use oci_spec::image::{Descriptor, ImageManifest, ImageManifestBuilder, MediaType};

use super::store::Blob;

pub const MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

pub fn descriptor(blob: &Blob) -> anyhow::Result<Descriptor> {
    let digest = blob
        .digest
        .parse::<oci_spec::image::Digest>()
        .with_context(|| format!("{} is not a valid digest", blob.digest))?;
    Ok(Descriptor::new(
        MediaType::from(blob.media_type.as_str()),
        blob.size,
        digest,
    ))
}

pub fn build(config: &Blob, layers: &[&Blob]) -> anyhow::Result<ImageManifest> {
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(config)?)
        .layers(
            layers
                .iter()
                .map(|b| descriptor(b))
                .collect::<anyhow::Result<Vec<_>>>()?,
        )
        .build()
        .context("building the image manifest")
}
