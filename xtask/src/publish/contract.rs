//! The Home Assistant Supervisor contract, checked before anything is pushed (DESIGN.md,
//! "The Home Assistant contract"): Supervisor pulls `{image}:{version}` for platform
//! `linux/<arch>` and trusts the labels, so a push that breaks any of these is refused.
use anyhow::{bail, Context};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use crate::addon::AddonConfig;
use crate::image::index::MultiArch;
use crate::image::store::Blob;

fn read<T: serde::de::DeserializeOwned>(blob: &Blob, what: &str) -> anyhow::Result<T> {
    let bytes = std::fs::read(&blob.path)
        .with_context(|| format!("reading the {what} {} from the blob store", blob.digest))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing the {what} {}", blob.digest))
}

/// Refuse unless: the version tag is pushed and no other tag claims another version; the
/// tag == addon/config.yaml version == fluxion crate version == every `io.hass.version`; each
/// image's `io.hass.arch` is its arch; each index entry's platform equals its config's
/// os/architecture/variant and points at that image's manifest, which names that config.
pub fn check(
    addon: &AddonConfig,
    crate_version: &str,
    multi: &MultiArch,
    tags: &[String],
) -> anyhow::Result<()> {
    let version = &addon.version;
    addon.check_version(crate_version)?;
    if !tags.iter().any(|t| t == version) {
        bail!("the tags {tags:?} do not include the add-on version {version:?}; Supervisor pulls {{image}}:{version}");
    }
    for t in tags {
        if t != version && t.starts_with(|c: char| c.is_ascii_digit()) {
            bail!(
                "tag {t:?} looks like a version but addon/config.yaml says {version:?}; \
                 Supervisor would install images whose io.hass.version disagrees with their tag"
            );
        }
    }
    let index: ImageIndex = read(&multi.index, "index")?;
    if index.manifests().len() != multi.images.len() {
        bail!(
            "the index lists {} manifests for {} images; rebuild with `cargo xtask image`",
            index.manifests().len(),
            multi.images.len()
        );
    }
    for image in &multi.images {
        let arch = image.arch;
        let config: ImageConfiguration = read(&image.config, "config")?;
        let labels = config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone())
            .unwrap_or_default();
        let label = |k: &str| labels.get(k).map(String::as_str).unwrap_or("<missing>");
        if label("io.hass.version") != version {
            bail!(
                "the {arch} image's io.hass.version label is {:?} but addon/config.yaml version is {version:?}; rebuild the image",
                label("io.hass.version")
            );
        }
        if label("io.hass.arch") != arch.hass_arch() {
            bail!(
                "the {arch} image's io.hass.arch label is {:?}, expected {:?}",
                label("io.hass.arch"),
                arch.hass_arch()
            );
        }
        let manifest: ImageManifest = read(&image.manifest, "manifest")?;
        if manifest.config().digest().to_string() != image.config.digest {
            bail!(
                "the {arch} manifest {} names config {} but the image's config is {}",
                image.manifest.digest,
                manifest.config().digest(),
                image.config.digest
            );
        }
        let Some(entry) = index
            .manifests()
            .iter()
            .find(|d| d.digest().to_string() == image.manifest.digest)
        else {
            bail!(
                "the index {} does not list the {arch} manifest {}",
                multi.index.digest,
                image.manifest.digest
            );
        };
        let Some(p) = entry.platform() else {
            bail!("the index entry for the {arch} manifest has no platform; Supervisor pulls by platform");
        };
        let ours = (
            p.os().to_string(),
            p.architecture().to_string(),
            p.variant().clone(),
        );
        let theirs = (
            config.os().to_string(),
            config.architecture().to_string(),
            config.variant().clone(),
        );
        if ours != theirs {
            bail!(
                "the index says {arch}'s manifest is for {ours:?} (os, architecture, variant) but its config says {theirs:?}; \
                 docker/Supervisor would pull the wrong image"
            );
        }
        if (ours.0.as_str(), ours.1.as_str(), ours.2.as_deref())
            != ("linux", arch.oci_arch(), arch.oci_variant())
        {
            bail!(
                "the {arch} image is for {ours:?}, expected linux/{}{}",
                arch.oci_arch(),
                arch.oci_variant()
                    .map(|v| format!("/{v}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}
