//! The spine: build -> assemble -> publish, from one `Options` value, returning what was built.
//! `cargo xtask image`, `load`, `push`, `ci`, `bench` and the tests all come through here; the
//! command layer only turns flags into `Options` and prints the result.
//!
//! 1. check: everything that can fail on bad input (the add-on manifest and its version, the
//!    arches, the runtime lock) runs before anything is built or written;
//! 2. build: `fluxion-main` per arch, each binary checked (build/);
//! 3. assemble: every arch's runtime and app layers, from the layer cache or written with the
//!    independent layers compressed in parallel, then config and manifest, and the index when
//!    a publisher needs it (image/, runtime/);
//! 4. publish: each publisher, in the caller's order, writes or sends the same images
//!    (publish/); build once, publish many ways.
use std::path::Path;

use anyhow::Context;
use xshell::Shell;

use crate::addon::AddonConfig;
use crate::arch::Arch;
use crate::build::{self, Binary, Builder};
use crate::epoch::Epoch;
use crate::gc;
use crate::image::cache::{LayerWriter, Pending, Source};
use crate::image::compress::Compression;
use crate::image::layer::Layer;
use crate::image::{self, app, index, listing, Image};
use crate::publish::docker_archive::DockerArchives;
use crate::publish::hybrid_archive::HybridArchive;
use crate::publish::oci_layout::{MultiArchLayout, PerArchLayouts};
use crate::publish::spdx::SpdxFiles;
use crate::publish::{Assembled, Format, Output, Publisher};
use crate::runtime::cache::{Cache, Mode};
use crate::runtime::{self, Runtime};
use crate::sbom;
use crate::workspace::Workspace;

/// Everything a run needs besides the workspace.
pub struct Options<'a> {
    pub arches: Vec<Arch>,
    pub builder: Builder,
    pub compression: Compression,
    /// Whether the runtime layer's `.deb`s may be downloaded.
    pub downloads: Mode,
    pub epoch: Epoch,
    /// Who writes the images, in order (`ImageOutputs` has the ones `image` writes).
    pub publishers: Vec<&'a dyn Publisher>,
}

/// The checked inputs: the add-on manifest and the runtime declaration with its lock.
pub struct Checked {
    pub addon: AddonConfig,
    pub runtime: Runtime,
}

/// Step 1: every check that can fail on bad input, before anything is built or written.
pub fn check(ws: &Workspace, arches: &[Arch]) -> anyhow::Result<Checked> {
    let addon = AddonConfig::load(&ws.addon_config())?;
    addon.check_version(&ws.fluxion_version)?;
    for &arch in arches {
        addon.check_arch(arch)?;
    }
    let runtime = Runtime::load(&ws.root)?;
    Ok(Checked { addon, runtime })
}

/// What a run built: the images (and the index, when published) and every output.
#[derive(Debug, Clone)]
pub struct Built {
    pub images: Vec<Image>,
    pub multi: Option<index::MultiArch>,
    pub outputs: Vec<Output>,
}

impl Built {
    /// The output of `format` for `arch` (None: the multi-arch one).
    pub fn output(&self, format: Format, arch: Option<Arch>) -> Option<&Output> {
        self.outputs
            .iter()
            .find(|o| o.format == format && o.arch == arch)
    }
}

/// Check, build, assemble, publish.
pub fn run(sh: &Shell, ws: &Workspace, opts: &Options<'_>) -> anyhow::Result<Built> {
    let t = std::time::Instant::now();
    let checked = check(ws, &opts.arches)?;
    tracing::debug!(took = ?t.elapsed(), "inputs checked");
    // Binaries first: a binary that fails its check (issue 2) must leave nothing written.
    let t = std::time::Instant::now();
    let binaries = build::build(sh, ws, &opts.arches, opts.builder)?;
    tracing::debug!(took = ?t.elapsed(), "built and checked the binaries");
    image_step(ws, &checked, &binaries, opts)
}

/// Assemble and publish (no build) images of `binaries` into `ws`'s images dir.
pub fn image_step(
    ws: &Workspace,
    checked: &Checked,
    binaries: &[Binary],
    opts: &Options<'_>,
) -> anyhow::Result<Built> {
    let images_dir = ws.images_dir();
    // Shared with concurrent runs; `clean --cache` waits for none of them to hold it.
    let _in_use = gc::use_images_dir(&images_dir)?;
    let cache = Cache::open_default()?;
    gc::sweep_stale(ws, &cache)?;
    let with_index = opts.publishers.iter().any(|p| p.needs_index());
    let t = std::time::Instant::now();
    let assembled = assemble(
        &images_dir,
        checked,
        &cache,
        binaries,
        opts.compression,
        opts.epoch,
        opts.downloads,
        with_index,
    )?;
    tracing::debug!(took = ?t.elapsed(), "assembled");
    let mut assembled = assembled;
    if opts.publishers.iter().any(|p| p.needs_sbom()) {
        let t = std::time::Instant::now();
        let store = crate::image::store::BlobStore::open(&images_dir.join("blobs").join("sha256"))?;
        assembled.sboms = sbom::for_images(
            &images_dir,
            &store,
            &ws.root,
            &checked.runtime.lock,
            &assembled.images,
            &assembled.version,
            assembled.epoch,
        )?;
        tracing::debug!(took = ?t.elapsed(), "SBOMs made");
    }
    let t = std::time::Instant::now();
    let outputs = publish(&assembled, &opts.publishers)?;
    tracing::debug!(took = ?t.elapsed(), "published");
    Ok(Built {
        images: assembled.images,
        multi: assembled.multi,
        outputs,
    })
}

/// Step 3: an image per binary into `images_dir` (its store and layer cache). The runtime
/// layers and app layers come from the layer cache when their inputs are unchanged; the rest
/// are written together, the independent layers compressed in parallel. Every `.deb` needed
/// is verified, and the app layer checked against the runtime layer, before any layer is
/// written. None of it changes a byte (tests/cache.rs).
#[allow(clippy::too_many_arguments)]
pub fn assemble(
    images_dir: &Path,
    checked: &Checked,
    cache: &Cache,
    binaries: &[Binary],
    compression: Compression,
    epoch: Epoch,
    downloads: Mode,
    with_index: bool,
) -> anyhow::Result<Assembled> {
    let writer = LayerWriter::open(images_dir, compression)?;
    let arches: Vec<Arch> = binaries.iter().map(|b| b.arch()).collect();
    let rt = &checked.runtime;
    let plan = runtime::prepare(&writer, rt, cache, &arches, epoch, downloads)?;

    // The app layers: cached, or to write with the runtime layers still missing.
    let mut app_layers: Vec<Option<Layer>> = Vec::new();
    let mut app_pending: Vec<Pending> = Vec::new();
    for b in binaries {
        let arch = b.arch();
        let tree = app::tree(b)?;
        let below = plan.listing(arch).expect("a runtime layer per arch");
        listing::check_app_over_runtime(below, &tree)
            .with_context(|| format!("stacking the app layer on the runtime layer for {arch}"))?;
        // The binary goes in by its known digest (build/): a hit reads nothing of it.
        let key = writer.key(Source::Tree(&tree), epoch)?;
        match writer.lookup(key.as_ref()) {
            Some(hit) => app_layers.push(Some(hit.layer)),
            None => {
                app_layers.push(None);
                app_pending.push(Pending {
                    what: format!("the app layer for {arch}"),
                    key,
                    tree,
                    epoch,
                    listing: None,
                });
            }
        }
    }
    let all: Vec<&Pending> = plan.pending.iter().chain(&app_pending).collect();
    let mut written = writer.write_all(&all)?;
    let mut app_written = written.split_off(plan.pending.len()).into_iter();
    let runtime_layers = plan.finish(written);
    for l in app_layers.iter_mut().filter(|l| l.is_none()) {
        *l = app_written.next();
    }

    let mut images = Vec::new();
    for (b, app) in binaries.iter().zip(app_layers) {
        let arch = b.arch();
        let rl = &runtime_layers[&arch];
        let app = app.expect("every app layer cached or written");
        let created_by = format!(
            "cargo xtask image: runtime layer, {} Debian {} packages from addon/runtime.lock",
            rl.packages,
            rt.lock.base_suite().name
        );
        let layers = vec![
            (rl.layer.clone(), created_by.as_str()),
            (app, image::APP_CREATED_BY),
        ];
        let image = image::from_layers(&writer.store, &checked.addon, arch, layers, epoch)?;
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
        images.push(image);
    }
    let multi = if with_index {
        Some(index::assemble(&writer.store, images.clone())?)
    } else {
        None
    };
    Ok(Assembled {
        images,
        multi,
        epoch,
        version: checked.addon.version.clone(),
        sboms: Vec::new(),
    })
}

/// Step 4: every publisher in order, each with the same assembled images.
pub fn publish(
    assembled: &Assembled,
    publishers: &[&dyn Publisher],
) -> anyhow::Result<Vec<Output>> {
    let mut out = Vec::new();
    for p in publishers {
        out.extend(p.publish(assembled)?);
    }
    Ok(out)
}

/// The outputs `cargo xtask image` writes into the images dir: per arch the docker-archive
/// (with its `result-<arch>` link at the workspace root or in FLUXION_OUT_DIR), the
/// single-arch OCI layout and the SBOM; with several arches also the multi-arch layout and the
/// OCI + docker archive.
pub struct ImageOutputs {
    pub archives: DockerArchives,
    pub layouts: PerArchLayouts,
    pub sboms: SpdxFiles,
    pub multi_layout: MultiArchLayout,
    pub hybrid: HybridArchive,
}

impl ImageOutputs {
    pub fn new(ws: &Workspace) -> ImageOutputs {
        let dir = ws.images_dir();
        ImageOutputs {
            archives: DockerArchives {
                dir: dir.clone(),
                result_links: Some(ws.result_links_dir().to_owned()),
            },
            layouts: PerArchLayouts { dir: dir.clone() },
            sboms: SpdxFiles { dir: dir.clone() },
            multi_layout: MultiArchLayout { dir: dir.clone() },
            hybrid: HybridArchive { dir },
        }
    }

    pub fn publishers(&self, multi_arch: bool) -> Vec<&dyn Publisher> {
        let mut p: Vec<&dyn Publisher> = vec![&self.archives, &self.layouts, &self.sboms];
        if multi_arch {
            p.push(&self.multi_layout);
            p.push(&self.hybrid);
        }
        p
    }
}
