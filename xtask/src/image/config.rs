//! The image config (OCI image-spec config.md): platform, run settings, labels, rootfs.
use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use oci_spec::image::{
    Arch as OciArch, ConfigBuilder, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder,
    Os, RootFsBuilder,
};

use super::app::BINARY_PATH;
use super::layer::Layer;
use crate::arch::Arch;
use crate::epoch::Epoch;

pub const MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// What one layer is, for `docker history` (`created_by`).
pub struct LayerInfo<'a> {
    pub layer: &'a Layer,
    pub created_by: &'a str,
}

pub fn build(
    arch: Arch,
    labels: &BTreeMap<String, String>,
    layers: &[LayerInfo<'_>],
    epoch: Epoch,
) -> anyhow::Result<ImageConfiguration> {
    let created = epoch.rfc3339();
    let run = ConfigBuilder::default()
        .cmd(vec![BINARY_PATH.to_owned()])
        .env(vec!["PATH=/bin:/usr/bin".to_owned()])
        // Home Assistant ingress talks to the add-on on 8099 (config.yaml ingress_port default).
        .exposed_ports(vec![format!("{}/tcp", crate::addon::SERVICE_PORT)])
        .labels(
            labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        )
        .build()
        .context("building the image run config")?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(
            layers
                .iter()
                .map(|l| l.layer.diff_id.clone())
                .collect::<Vec<_>>(),
        )
        .build()
        .context("building the image rootfs")?;
    let history = layers
        .iter()
        .map(|l| {
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(l.created_by.to_owned())
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .context("building the image history")?;
    let architecture = match arch {
        Arch::Amd64 => OciArch::Amd64,
        Arch::Aarch64 => OciArch::ARM64,
    };
    let mut b = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(architecture)
        .os(Os::Linux)
        .config(run)
        .rootfs(rootfs)
        .history(history);
    if let Some(v) = arch.oci_variant() {
        b = b.variant(v.to_owned());
    }
    b.build().context("building the image config")
}
