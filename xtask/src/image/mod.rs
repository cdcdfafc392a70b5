//! Step 2, assemble: layers, config and manifest per architecture, as blobs in the store.
pub mod app;
pub mod cache;
pub mod compress;
pub mod config;
pub mod hash;
pub mod index;
pub mod json;
pub mod layer;
pub mod listing;
pub mod manifest;
pub mod store;

use anyhow::Context;

use self::cache::LayerWriter;
use self::layer::Layer;
use self::store::{Blob, BlobStore};
use crate::addon::AddonConfig;
use crate::arch::Arch;
use crate::build::Binary;
use crate::epoch::Epoch;

/// The app layer's `created_by` in the image config's history.
pub const APP_CREATED_BY: &str =
    "cargo xtask image: /bin/fluxion-main, /bin/sh -> bash, /etc/passwd, /etc/group, /tmp, /data";

/// One assembled image. A value: publishers write it many ways and never change it.
#[derive(Debug, Clone)]
pub struct Image {
    pub arch: Arch,
    /// Bottom first, as the config's rootfs lists them.
    pub layers: Vec<Layer>,
    pub config: Blob,
    pub manifest: Blob,
}

impl Image {
    /// The image ID docker and podman show: the config's digest.
    pub fn id(&self) -> &str {
        &self.config.digest
    }

    pub fn compressed_size(&self) -> u64 {
        self.layers.iter().map(|l| l.blob.size).sum()
    }
}

/// Assemble one image. Layers go through `writer` (store, compressor, layer cache: issue 7).
pub fn assemble(
    writer: &LayerWriter,
    addon: &AddonConfig,
    binary: &Binary,
    epoch: Epoch,
) -> anyhow::Result<Image> {
    assemble_on(writer, addon, binary, epoch, None)
}

/// A layer below the app layer (the runtime layer, issue 3) and what it contains.
pub struct Base<'a> {
    pub layer: &'a Layer,
    pub listing: &'a listing::Listing,
    pub created_by: &'a str,
}

/// `assemble` with an optional base layer under the app layer: rootfs lists the base first.
/// The base layer comes already written (the runtime layer is keyed by its declared inputs).
pub fn assemble_on(
    writer: &LayerWriter,
    addon: &AddonConfig,
    binary: &Binary,
    epoch: Epoch,
    base: Option<Base<'_>>,
) -> anyhow::Result<Image> {
    let arch = binary.arch();
    let store = &writer.store;
    let app_tree = app::tree(binary)?;
    if let Some(b) = &base {
        listing::check_app_over_runtime(b.listing, &app_tree)
            .with_context(|| format!("stacking the app layer on the runtime layer for {arch}"))?;
    }
    let app = writer
        .write(&app_tree, epoch)
        .with_context(|| format!("writing the app layer for {arch}"))?;
    let mut layers: Vec<(Layer, &str)> = Vec::new();
    if let Some(b) = &base {
        layers.push((b.layer.clone(), b.created_by));
    }
    layers.push((app, APP_CREATED_BY));
    from_layers(store, addon, arch, layers, epoch)
}

/// Config and manifest over already-written layers (bottom first, each with what made it).
pub fn from_layers(
    store: &BlobStore,
    addon: &AddonConfig,
    arch: Arch,
    layers: Vec<(Layer, &str)>,
    epoch: Epoch,
) -> anyhow::Result<Image> {
    let infos: Vec<config::LayerInfo<'_>> = layers
        .iter()
        .map(|(layer, created_by)| config::LayerInfo { layer, created_by })
        .collect();
    let cfg = config::build(arch, &addon.labels(arch, epoch), &infos, epoch)?;
    let config = store.put(&json::to_canonical(&cfg), config::MEDIA_TYPE)?;
    let layers: Vec<Layer> = layers.into_iter().map(|(l, _)| l).collect();
    let layer_blobs: Vec<&Blob> = layers.iter().map(|l| &l.blob).collect();
    let manifest = manifest::build(&config, &layer_blobs)?;
    let manifest = store.put(&json::to_canonical(&manifest), manifest::MEDIA_TYPE)?;
    Ok(Image {
        arch,
        layers,
        config,
        manifest,
    })
}
