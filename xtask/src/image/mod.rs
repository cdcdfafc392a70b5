//! Step 2, assemble: layers, config and manifest per architecture, as blobs in the store.
pub mod app;
pub mod arch;
pub mod cache;
pub mod compress;
pub mod config;
pub mod hash;
pub mod json;
pub mod layer;
pub mod manifest;
pub mod store;

use anyhow::Context;

use self::arch::Arch;
use self::cache::LayerWriter;
use self::layer::Layer;
use self::store::Blob;
use crate::addon::AddonConfig;
use crate::build::Binary;
use crate::epoch::Epoch;

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
    let arch = binary.arch;
    let store = &writer.store;
    let app = writer
        .write(&app::tree(binary)?, epoch)
        .with_context(|| format!("writing the app layer for {arch}"))?;
    let layers = vec![app];
    let infos = [config::LayerInfo {
        layer: &layers[0],
        created_by: "cargo xtask image: /bin/fluxion-main, /etc/passwd, /etc/group, /tmp, /data",
    }];
    let cfg = config::build(arch, &addon.labels(arch, epoch), &infos, epoch)?;
    let config = store.put(&json::to_canonical(&cfg), config::MEDIA_TYPE)?;
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
