//! `cargo xtask image`: build -> assemble -> publish docker-archives, then print a summary.
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use xshell::Shell;

use crate::addon::AddonConfig;
use crate::build::Binary;
use crate::epoch::Epoch;
use crate::flags::{self, BuilderKind};
use crate::image::arch::Arch;
use crate::image::cache::LayerWriter;
use crate::image::compress::Compression;
use crate::image::{self as img, json, Image};
use crate::publish::docker_archive;
use crate::workspace::Workspace;
use crate::{atomic, build};

pub const REPO: &str = "fluxion-ha";

/// An image and where it was published.
#[derive(Debug, Clone)]
pub struct Built {
    pub image: Image,
    pub tag: String,
    pub archive: PathBuf,
    pub written: docker_archive::Written,
}

impl flags::Image {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        let epoch = Epoch::discover(sh)?;
        let built = build_images_with(
            sh,
            ws,
            &self.arch.arches(),
            self.build.builder,
            epoch,
            self.compression,
        )?;
        print_summary(ws, &built, self.json);
        Ok(())
    }
}

/// Validate the inputs, then build, assemble and publish one docker-archive per arch.
/// Every check that can fail on bad input runs before anything is written.
pub fn build_images(
    sh: &Shell,
    ws: &Workspace,
    arches: &[Arch],
    builder: BuilderKind,
    epoch: Epoch,
) -> anyhow::Result<Vec<Built>> {
    build_images_with(sh, ws, arches, builder, epoch, Compression::default())
}

/// `build_images` with a choice of layer compression.
pub fn build_images_with(
    sh: &Shell,
    ws: &Workspace,
    arches: &[Arch],
    builder: BuilderKind,
    epoch: Epoch,
    compression: Compression,
) -> anyhow::Result<Vec<Built>> {
    let addon = AddonConfig::load(&ws.addon_config())?;
    addon.check_version(&ws.fluxion_version)?;
    for &arch in arches {
        addon.check_arch(arch)?;
    }
    let binaries = build::build(sh, ws, arches, builder)?;
    image_step(ws, &addon, &binaries, epoch, compression)
}

// ---- issue 7: the image step alone (assemble + publish), cached and concurrent ----

/// Assemble and publish an image per binary into `ws.images_dir()`, the arches concurrently.
/// Layers come from the layer cache when their inputs are known (image/cache.rs); archives
/// and links are left alone when already right (publish/fresh.rs). Neither changes a byte.
pub fn image_step(
    ws: &Workspace,
    addon: &AddonConfig,
    binaries: &[Binary],
    epoch: Epoch,
    compression: Compression,
) -> anyhow::Result<Vec<Built>> {
    let images_dir = ws.images_dir();
    let writer = LayerWriter::open(&images_dir, compression)?;
    concurrently(binaries, |binary| {
        let arch = binary.arch;
        let image = img::assemble(&writer, addon, binary, epoch)?;
        let tag = format!("{REPO}:{arch}");
        let archive = images_dir.join(format!("{REPO}-{arch}.tar"));
        let written = docker_archive::write(&archive, &[(&image, vec![tag.clone()])], epoch)?;
        link_result(ws, arch, &archive)?;
        tracing::info!(%arch, archive = %archive.display(), id = image.id(), "image written");
        Ok(Built {
            image,
            tag,
            archive,
            written,
        })
    })
}

/// Assemble (no publishing) an image per binary, the arches concurrently.
pub fn assemble_all(
    writer: &LayerWriter,
    addon: &AddonConfig,
    binaries: &[Binary],
    epoch: Epoch,
) -> anyhow::Result<Vec<Image>> {
    concurrently(binaries, |b| img::assemble(writer, addon, b, epoch))
}

/// `f` over `items`, one scoped thread each (compression is CPU-bound and the arches are
/// independent); results in input order, the first error in that order wins.
pub fn concurrently<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|i| s.spawn(move || f(i))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// `result-<arch>` at the workspace root, as Nix users expect from `nix build`.
fn link_result(ws: &Workspace, arch: Arch, archive: &Path) -> anyhow::Result<()> {
    let target = archive.strip_prefix(&ws.root).unwrap_or(archive);
    let link = ws.root.join(format!("result-{arch}"));
    // Already right: leave it (issue 7, a no-op rebuild writes nothing).
    if std::fs::read_link(&link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    atomic::symlink(target, &link).with_context(|| format!("linking result-{arch}"))
}

#[derive(Serialize)]
struct Row<'a> {
    arch: String,
    platform: String,
    tag: &'a str,
    archive: String,
    archive_sha256: &'a str,
    archive_size: u64,
    image_id: &'a str,
    manifest_digest: &'a str,
    compressed_size: u64,
    layers: usize,
}

fn rows<'a>(ws: &Workspace, built: &'a [Built]) -> Vec<Row<'a>> {
    built
        .iter()
        .map(|b| Row {
            arch: b.image.arch.to_string(),
            platform: b.image.arch.platform(),
            tag: &b.tag,
            archive: b
                .archive
                .strip_prefix(&ws.root)
                .unwrap_or(&b.archive)
                .display()
                .to_string(),
            archive_sha256: &b.written.sha256,
            archive_size: b.written.size,
            image_id: b.image.id(),
            manifest_digest: &b.image.manifest.digest,
            compressed_size: b.image.compressed_size(),
            layers: b.image.layers.len(),
        })
        .collect()
}

pub fn print_summary(ws: &Workspace, built: &[Built], as_json: bool) {
    let rows = rows(ws, built);
    if as_json {
        println!("{}", json::to_pretty(&rows));
        return;
    }
    println!(
        "{:<8} {:<36} {:<73} {:>10} {:>6}",
        "ARCH", "ARCHIVE", "IMAGE ID (config digest)", "COMPRESSED", "LAYERS"
    );
    for r in rows {
        println!(
            "{:<8} {:<36} {:<73} {:>10} {:>6}",
            r.arch,
            r.archive,
            r.image_id,
            human(r.compressed_size),
            r.layers
        );
    }
}

pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.2} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}
