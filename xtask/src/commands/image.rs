//! `cargo xtask image`: the add-on lint's findings as warnings, flags -> pipeline options ->
//! the pipeline -> a summary table.
use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use xshell::Shell;

use crate::arch::Arch;
use crate::epoch::Epoch;
use crate::flags;
use crate::image::json;
use crate::pipeline::{self, Built, ImageOutputs, Options};
use crate::publish::Format;
use crate::units::human;
use crate::workspace::Workspace;

impl flags::Image {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        warn_lint(sh, ws);
        let arches = self.arch.arches();
        let outputs = ImageOutputs::new(ws);
        let publishers = outputs.publishers(arches.len() > 1);
        let built = pipeline::run(
            sh,
            ws,
            &self
                .build
                .options(sh, arches, self.compression, publishers)?,
        )?;
        print_summary(ws, &built, self.json);
        print_multi_arch(ws, &built, self.json);
        Ok(())
    }
}

/// What `cargo xtask lint` finds, as warnings on stderr: `image` builds anyway (a local image
/// is for trying things), `push` refuses the errors.
fn warn_lint(sh: &Shell, ws: &Workspace) {
    match super::lint::findings(sh, ws) {
        Ok(found) => {
            for (_, line) in &found.lines {
                tracing::warn!("lint: {line}");
            }
            if !found.errors().is_empty() {
                tracing::warn!(
                    "lint: {} error(s): `cargo xtask push` refuses to push this add-on until they \
                     are fixed",
                    found.errors().len()
                );
            }
        }
        Err(e) => tracing::warn!("lint: could not run: {e:#}"),
    }
}

/// `image --arch all` with the defaults, as `ci` runs it.
pub fn build_all(sh: &Shell, ws: &Workspace, epoch: Epoch) -> anyhow::Result<Built> {
    let outputs = ImageOutputs::new(ws);
    pipeline::run(
        sh,
        ws,
        &Options {
            publishers: outputs.publishers(true),
            arches: Arch::ALL.to_vec(),
            builder: Default::default(),
            compression: Default::default(),
            downloads: crate::runtime::cache::Mode::Online,
            epoch,
        },
    )
}

/// arch -> sha256 of its docker-archive, as the summary reports it.
pub fn archive_sha256s(built: &Built) -> BTreeMap<String, String> {
    rows(Path::new(""), built)
        .into_iter()
        .map(|r| (r.arch, r.archive_sha256.to_owned()))
        .collect()
}

fn rel(ws: &Path, p: &Path) -> String {
    p.strip_prefix(ws).unwrap_or(p).display().to_string()
}

fn print_multi_arch(ws: &Workspace, b: &Built, as_json: bool) {
    let (Some(multi), Some(layout), Some(archive)) = (
        &b.multi,
        b.output(Format::OciLayout, None),
        b.output(Format::HybridArchive, None),
    ) else {
        return;
    };
    let name = layout.names.first().map(String::as_str).unwrap_or_default();
    if as_json {
        // stdout stays one JSON document (the per-arch rows, which `ci`'s repro check
        // parses); the multi-arch facts go to the log.
        tracing::info!(index = %multi.index.digest, name, "multi-arch index");
        return;
    }
    let path =
        |o: &crate::publish::Output| rel(&ws.root, o.path.as_deref().unwrap_or(Path::new("")));
    println!();
    println!("multi-arch {name} -> {}, {}", path(layout), path(archive));
    println!("{:<8} {:<8} {}", "all", "index", multi.index.digest);
    for i in &multi.images {
        println!(
            "{:<8} {:<8} {}",
            i.arch.to_string(),
            "manifest",
            i.manifest.digest
        );
    }
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

/// One row per image that has a docker-archive.
fn rows<'a>(root: &Path, built: &'a Built) -> Vec<Row<'a>> {
    built
        .images
        .iter()
        .filter_map(|image| {
            let o = built.output(Format::DockerArchive, Some(image.arch))?;
            let written = o.written.as_ref()?;
            Some(Row {
                arch: image.arch.to_string(),
                platform: image.arch.platform(),
                tag: o.names.first().map(String::as_str).unwrap_or_default(),
                archive: rel(root, o.path.as_deref()?),
                archive_sha256: &written.sha256,
                archive_size: written.size,
                image_id: image.id(),
                manifest_digest: &image.manifest.digest,
                compressed_size: image.compressed_size(),
                layers: image.layers.len(),
            })
        })
        .collect()
}

pub fn print_summary(ws: &Workspace, built: &Built, as_json: bool) {
    let rows = rows(&ws.root, built);
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
