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
use crate::image::index::{self, MultiArch};
use crate::image::store::BlobStore;
use crate::image::{self as img, json, Image};
use crate::publish::{docker_archive, hybrid_archive, oci_layout};
use crate::runtime::{self, cache::Cache, cache::Mode};
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
            self.build.cache_mode(),
            self.compression,
        )?;
        print_summary(ws, &built, self.json);
        if built.len() > 1 {
            let multi = write_multi_arch(ws, &built, epoch)?;
            print_multi_arch(ws, &multi, self.json);
        }
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
    build_images_mode(sh, ws, arches, builder, epoch, Mode::Online)
}

/// `build_images`, saying whether the runtime layer's .debs may be downloaded.
pub fn build_images_mode(
    sh: &Shell,
    ws: &Workspace,
    arches: &[Arch],
    builder: BuilderKind,
    epoch: Epoch,
    mode: Mode,
) -> anyhow::Result<Vec<Built>> {
    build_images_with(sh, ws, arches, builder, epoch, mode, Compression::default())
}

/// `build_images_mode` with a choice of layer compression (issue 7).
pub fn build_images_with(
    sh: &Shell,
    ws: &Workspace,
    arches: &[Arch],
    builder: BuilderKind,
    epoch: Epoch,
    mode: Mode,
    compression: Compression,
) -> anyhow::Result<Vec<Built>> {
    let addon = AddonConfig::load(&ws.addon_config())?;
    addon.check_version(&ws.fluxion_version)?;
    for &arch in arches {
        addon.check_arch(arch)?;
    }
    let rt = runtime::Runtime::load(&ws.root)?;
    // Binaries first: a binary that fails its check (issue 2) must leave nothing written. Then
    // the runtime layers: every .deb is fetched and verified (or the layer found in the layer
    // cache) before any layer is written, so a bad lock still writes nothing.
    let binaries = build::build(sh, ws, arches, builder)?;
    image_step(ws, &addon, &rt, &binaries, epoch, mode, compression)
}

// ---- issue 7: the image step alone (assemble + publish), cached and concurrent ----

/// Assemble and publish an image per binary into `ws.images_dir()`, the arches concurrently.
/// The runtime layers come from their input-keyed cache (runtime/layer.rs), the app layers
/// from the layer cache when their inputs are known (image/cache.rs); archives, layouts and
/// links are left alone when already right (publish/fresh.rs). None of it changes a byte.
pub fn image_step(
    ws: &Workspace,
    addon: &AddonConfig,
    rt: &runtime::Runtime,
    binaries: &[Binary],
    epoch: Epoch,
    mode: Mode,
    compression: Compression,
) -> anyhow::Result<Vec<Built>> {
    let images_dir = ws.images_dir();
    let writer = LayerWriter::open(&images_dir, compression)?;
    let arches: Vec<Arch> = binaries.iter().map(|b| b.arch).collect();
    let runtime_layers = runtime::layers_in(
        &images_dir,
        &writer,
        rt,
        &Cache::open_default()?,
        &arches,
        epoch,
        mode,
    )?;
    concurrently(binaries, |binary| {
        let arch = binary.arch;
        let image = assemble_one(&writer, addon, rt, &runtime_layers[&arch], binary, epoch)?;
        for (i, l) in image.layers.iter().enumerate() {
            tracing::info!(
                %arch,
                layer = if i + 1 == image.layers.len() { "app" } else { "runtime" },
                compressed = l.blob.size,
                uncompressed = l.uncompressed_size,
                diff_id = %l.diff_id,
                "layer"
            );
        }
        let tag = format!("{REPO}:{arch}");
        let archive = images_dir.join(format!("{REPO}-{arch}.tar"));
        let written = docker_archive::write(&archive, &[(&image, vec![tag.clone()])], epoch)?;
        link_result(ws, arch, &archive)?;
        write_single_arch_layout(&images_dir, &image, &addon.version)?;
        tracing::info!(%arch, archive = %archive.display(), id = image.id(), "image written");
        Ok(Built {
            image,
            tag,
            archive,
            written,
        })
    })
}

/// One image: the app layer (through `writer`) on the arch's runtime layer.
fn assemble_one(
    writer: &LayerWriter,
    addon: &AddonConfig,
    rt: &runtime::Runtime,
    rl: &runtime::Ready,
    binary: &Binary,
    epoch: Epoch,
) -> anyhow::Result<Image> {
    let created_by = format!(
        "cargo xtask image: runtime layer, {} Debian {} packages from addon/runtime.lock",
        rl.packages, rt.lock.source.suite
    );
    img::assemble_on(
        writer,
        addon,
        binary,
        epoch,
        Some(img::Base {
            layer: &rl.layer,
            listing: &rl.listing,
            created_by: &created_by,
        }),
    )
}

/// Assemble (no publishing) an image per binary into `images_dir` (its store and both layer
/// caches), the arches concurrently: runtime layers from cached `.deb`s (never downloading),
/// app layers through the layer cache.
pub fn assemble_all(
    images_dir: &Path,
    compression: Compression,
    addon: &AddonConfig,
    rt: &runtime::Runtime,
    binaries: &[Binary],
    epoch: Epoch,
) -> anyhow::Result<Vec<Image>> {
    let writer = LayerWriter::open(images_dir, compression)?;
    let arches: Vec<Arch> = binaries.iter().map(|b| b.arch).collect();
    let runtime_layers = runtime::layers_in(
        images_dir,
        &writer,
        rt,
        &Cache::open_default()?,
        &arches,
        epoch,
        Mode::Offline,
    )?;
    concurrently(binaries, |b| {
        assemble_one(&writer, addon, rt, &runtime_layers[&b.arch], b, epoch)
    })
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

/// The multi-arch outputs, written from the same images (and so the same manifest digests).
#[derive(Debug, Clone)]
pub struct MultiBuilt {
    pub multi: MultiArch,
    /// The full reference the layout's index.json names: `docker.io/library/fluxion-ha:<v>`.
    pub name: String,
    pub layout: PathBuf,
    pub archive: PathBuf,
    pub written: docker_archive::Written,
}

/// The full reference podman and containerd name the loaded image by.
pub fn full_name(version: &str) -> String {
    format!("docker.io/library/{REPO}:{version}")
}

/// Store the index over `built` and write `fluxion-ha.oci/` (OCI layout with the nested
/// index) and `fluxion-ha.tar` (the same layout that is also a docker-archive).
pub fn write_multi_arch(
    ws: &Workspace,
    built: &[Built],
    epoch: Epoch,
) -> anyhow::Result<MultiBuilt> {
    let addon = AddonConfig::load(&ws.addon_config())?;
    let images = built.iter().map(|b| b.image.clone()).collect();
    write_multi_arch_to(&ws.images_dir(), &addon.version, images, epoch)
}

/// `write_multi_arch` for any images dir (its blob store is `<dir>/blobs/sha256`).
pub fn write_multi_arch_to(
    images_dir: &Path,
    version: &str,
    images: Vec<Image>,
    epoch: Epoch,
) -> anyhow::Result<MultiBuilt> {
    let store = BlobStore::open(&images_dir.join("blobs").join("sha256"))?;
    let multi = index::assemble(&store, images)?;
    let name = full_name(version);
    let layout = images_dir.join(format!("{REPO}.oci"));
    oci_layout::write_dir(&layout, &oci_layout::multi_arch_tree(&multi, &name)?)?;
    let archive = images_dir.join(format!("{REPO}.tar"));
    let written = hybrid_archive::write(&archive, &multi, REPO, version, &name, epoch)?;
    tracing::info!(index = %multi.index.digest, layout = %layout.display(), archive = %archive.display(), "multi-arch image written");
    Ok(MultiBuilt {
        multi,
        name,
        layout,
        archive,
        written,
    })
}

/// `fluxion-ha-<arch>.oci/`: the image alone, named by the bare version tag (for umoci,
/// which cannot pick a platform inside a nested index).
pub fn write_single_arch_layout(
    images_dir: &Path,
    image: &Image,
    version: &str,
) -> anyhow::Result<PathBuf> {
    let layout = images_dir.join(format!("{REPO}-{}.oci", image.arch));
    oci_layout::write_dir(&layout, &oci_layout::single_arch_tree(image, version)?)?;
    Ok(layout)
}

fn print_multi_arch(ws: &Workspace, m: &MultiBuilt, as_json: bool) {
    let rel = |p: &Path| p.strip_prefix(&ws.root).unwrap_or(p).display().to_string();
    if as_json {
        // stdout stays one JSON document (the per-arch rows, which `ci`'s repro check
        // parses); the multi-arch facts go to the log.
        tracing::info!(index = %m.multi.index.digest, name = %m.name, "multi-arch index");
        return;
    }
    println!();
    println!(
        "multi-arch {} -> {}, {}",
        m.name,
        rel(&m.layout),
        rel(&m.archive)
    );
    println!("{:<8} {:<8} {}", "all", "index", m.multi.index.digest);
    for i in &m.multi.images {
        println!(
            "{:<8} {:<8} {}",
            i.arch.to_string(),
            "manifest",
            i.manifest.digest
        );
    }
}

/// `result-<arch>` at the workspace root (or in `FLUXION_OUT_DIR`), as Nix users expect from
/// `nix build`; relative, so the checkout can move.
fn link_result(ws: &Workspace, arch: Arch, archive: &Path) -> anyhow::Result<()> {
    let link = ws.result_link(arch);
    let dir = link.parent().unwrap_or(&ws.root);
    let target = archive.strip_prefix(dir).unwrap_or(archive);
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
