//! The bench scenarios (issue 7, issue 11): the pipeline measured side by side with its
//! baselines, as ratios of medians (the machines are shared and noisy), into a `Report` that
//! `cargo xtask bench` prints as a table and writes to target/bench/report.json. Never part of
//! `cargo xtask ci`: timings live here, not in tests.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use serde::Serialize;
use xshell::Shell;

use crate::arch::Arch;
use crate::bench::{self, baseline, Machine, Ratio, Stat};
use crate::build::{self, Binary, Builder};
use crate::epoch::Epoch;
use crate::image::compress::Compression;
use crate::image::Image;
use crate::pipeline::{self, Checked, ImageOutputs, Options};
use crate::repro;
use crate::runtime::cache::{Cache, Mode};
use crate::units::human;
use crate::workspace::Workspace;

/// The one-line change the app-only rebuild makes, in the scratch copy only.
const EDIT_FILE: &str = "fluxion/src/main.rs";
const EDIT_FROM: &str = "\"listening\"";
const EDIT_TO: &str = "\"listening (bench: one-line change)\"";

#[derive(Serialize)]
pub struct Report {
    /// When the bench ran (UTC). A report, not image content: the clock is allowed here.
    date: String,
    machine: Machine,
    epoch: u64,
    assembly: Assembly,
    noop: Noop,
    app_only: AppOnly,
    sizes: Vec<Sizes>,
}

#[derive(Serialize)]
struct Assembly {
    /// Empty images dir (so an empty layer cache), the unpacked-package cache warm.
    ours_cold_gzip: Stat,
    /// Empty images dir and an empty unpacked-package cache: every data.tar.xz decoded.
    ours_cold_unpacked_empty_gzip: Stat,
    ours_warm_gzip: Stat,
    ours_cold_zstd: Stat,
    baseline_tar_gzip: Stat,
    baseline_sha256: Vec<(String, String)>,
    ratio_cold: Ratio,
    ratio_cold_unpacked_empty: Ratio,
    ratio_warm: Ratio,
    ratio_zstd_vs_gzip: Ratio,
}

#[derive(Serialize)]
struct Noop {
    xtask_image: Stat,
    cargo_build: Stat,
    ratio: Ratio,
    files_written: Vec<PathBuf>,
}

#[derive(Serialize)]
struct AppOnly {
    app_only_image_step: Stat,
    cold_image_step: Stat,
    ratio: Ratio,
    /// What one app-only image step wrote, named: e.g. `layer 1/1 (top)`, `config`, `archive`.
    written: Vec<String>,
}

#[derive(Serialize)]
struct Sizes {
    arch: String,
    compression: Compression,
    layers: Vec<LayerSize>,
    total_compressed: u64,
    goal_met: bool,
}

#[derive(Serialize)]
struct LayerSize {
    layer: String,
    compressed: u64,
    uncompressed: u64,
}

/// Per-image compressed-size goal (issue 7).
const MAX_IMAGE_BYTES: u64 = 8 << 20;

/// Every scenario, `runs` timed runs each; scratch state goes to `dir`.
pub fn run(sh: &Shell, ws: &Workspace, dir: &Path, runs: usize) -> anyhow::Result<Report> {
    let epoch = Epoch::discover(sh)?;
    let arches = Arch::ALL.to_vec();
    let checked = pipeline::check(ws, &arches)?;
    std::fs::create_dir_all(dir)?;

    tracing::info!("bench: building what it needs (fluxion-main for every arch)");
    let binaries = build::build(sh, ws, &arches, Builder::Auto)?;

    tracing::info!("bench 1/4: assembly vs tar | gzip");
    // Every .deb the runtime layers need, in the download cache before any timing.
    let cache = Cache::open_default()?;
    crate::runtime::fetch(&checked.runtime, &cache, &arches, Mode::Online)?;
    let assembly = assembly(dir, &checked, &cache, &binaries, epoch, runs)?;
    let (gzip_images, zstd_images) = (&assembly.1, &assembly.2);
    let mut sizes = sizes(gzip_images, Compression::Gzip);
    sizes.extend(self::sizes(zstd_images, Compression::Zstd));

    tracing::info!("bench 2/4: no-op rebuild vs no-op cargo build");
    let noop = noop(sh, ws, &arches, runs)?;

    tracing::info!("bench 3/4: app-only rebuild vs cold image step, in a scratch copy");
    let app_only = app_only(sh, ws, &checked, dir, epoch, runs, &binaries)?;

    Ok(Report {
        date: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        machine: Machine::probe(),
        epoch: epoch.0,
        assembly: assembly.0,
        noop,
        app_only,
        sizes,
    })
}

fn read_binaries(binaries: &[Binary]) -> anyhow::Result<Vec<Binary>> {
    binaries
        .iter()
        .map(|b| {
            let bytes = std::fs::read(b.path())
                .with_context(|| format!("reading {}", b.path().display()))?;
            Ok(Binary::new(b.arch(), b.path().to_owned(), bytes))
        })
        .collect()
}

/// 1 and 5: our assembly (reading the binaries, both arches concurrently, from the cached
/// `.deb`s) into an empty images dir with the unpacked-package cache warm, with it empty too,
/// into a warm images dir, and with zstd; the baseline recipe over the same rootfs, arch after
/// arch.
fn assembly(
    dir: &Path,
    checked: &Checked,
    cache: &Cache,
    binaries: &[Binary],
    epoch: Epoch,
    runs: usize,
) -> anyhow::Result<(Assembly, Vec<Image>, Vec<Image>)> {
    let assemble = |scratch: &Path, c: Compression, cache: &Cache| -> anyhow::Result<Vec<Image>> {
        let bins = read_binaries(binaries)?;
        let a = pipeline::assemble(
            scratch,
            checked,
            cache,
            &bins,
            c,
            epoch,
            Mode::Offline,
            false,
        )?;
        Ok(a.images)
    };
    // A download cache of links to the user's `.deb`s whose unpacked cache can be emptied.
    let cold_cache = dir.join("download-cache");
    bench::remove_dir(&cold_cache)?;
    let sha_dir = cold_cache.join("sha256");
    std::fs::create_dir_all(&sha_dir)?;
    // With the signed package indexes and the markers of their passed checks (verify.rs): the
    // bench times unpacking, not the one-off check of a new lock.
    let rt = &checked.runtime;
    let mut files: Vec<String> = Vec::new();
    for &a in &Arch::ALL {
        files.extend(rt.wanted(a)?.into_iter().map(|w| w.sha256));
    }
    files.extend(
        rt.index_checks(&Arch::ALL)?
            .into_iter()
            .map(|c| c.wanted.sha256),
    );
    let mut links: Vec<(PathBuf, PathBuf)> = files
        .iter()
        .map(|sha| (cache.path(sha), sha_dir.join(sha)))
        .collect();
    let cold_verified = Cache::open(&cold_cache)?.verified_dir();
    std::fs::create_dir_all(&cold_verified)?;
    if let Ok(rd) = std::fs::read_dir(cache.verified_dir()) {
        for e in rd.flatten() {
            links.push((e.path(), cold_verified.join(e.file_name())));
        }
    }
    for (from, to) in links {
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)
                .with_context(|| format!("copying {} for the bench", from.display()))?;
        }
    }
    let cold_cache = Cache::open(&cold_cache)?;
    let mut out = Vec::new();
    let mut result = |c: Compression, cold: bool, cache: &Cache| -> anyhow::Result<Stat> {
        let scratch = dir.join(format!("assembly-{c}"));
        let unpacked = cache.unpacked_dir();
        let empty_unpacked = std::ptr::eq(cache, &cold_cache);
        let stat = bench::measure(
            runs,
            || {
                if empty_unpacked {
                    bench::remove_dir(&unpacked)?;
                }
                match cold {
                    true => bench::remove_dir(&scratch),
                    false => Ok(()),
                }
            },
            || assemble(&scratch, c, cache).map(drop),
        )?;
        out.push((c, assemble(&scratch, c, cache)?));
        Ok(stat)
    };
    let cold_gzip = result(Compression::Gzip, true, cache)?;
    let cold_unpacked_empty = result(Compression::Gzip, true, &cold_cache)?;
    let warm_gzip = result(Compression::Gzip, false, cache)?;
    let cold_zstd = result(Compression::Zstd, true, cache)?;
    let gzip_images = out[0].1.clone();
    let zstd_images = out[3].1.clone();
    for (c, images) in &out[1..3] {
        let same = images
            .iter()
            .zip(&gzip_images)
            .all(|(a, b)| a.manifest == b.manifest);
        if *c == Compression::Gzip && !same {
            bail!("the bench's cached and uncached assemblies gave different images");
        }
    }

    let rootfs: Vec<(Arch, PathBuf)> = gzip_images
        .iter()
        .map(|i| (i.arch, dir.join("rootfs").join(i.arch.to_string())))
        .collect();
    for (image, (_, path)) in gzip_images.iter().zip(&rootfs) {
        baseline::unpack(image, path)?;
    }
    let mut sums = Vec::new();
    let base = bench::measure(
        runs,
        || Ok(()),
        || {
            sums.clear();
            for (arch, path) in &rootfs {
                sums.push((arch.to_string(), baseline::tar_gzip_sha256(path, epoch)?));
            }
            Ok(())
        },
    )?;
    let a = Assembly {
        ratio_cold: Ratio::of(&cold_gzip, &base, Some(0.5)),
        ratio_cold_unpacked_empty: Ratio::of(&cold_unpacked_empty, &base, None),
        ratio_warm: Ratio::of(&warm_gzip, &base, Some(0.5)),
        ratio_zstd_vs_gzip: Ratio::of(&cold_zstd, &cold_gzip, None),
        ours_cold_gzip: cold_gzip,
        ours_cold_unpacked_empty_gzip: cold_unpacked_empty,
        ours_warm_gzip: warm_gzip,
        ours_cold_zstd: cold_zstd,
        baseline_tar_gzip: base,
        baseline_sha256: sums,
    };
    Ok((a, gzip_images, zstd_images))
}

fn sizes(images: &[Image], c: Compression) -> Vec<Sizes> {
    images
        .iter()
        .map(|i| {
            let n = i.layers.len();
            let total = i.compressed_size();
            Sizes {
                arch: i.arch.to_string(),
                compression: c,
                layers: i
                    .layers
                    .iter()
                    .enumerate()
                    .map(|(k, l)| LayerSize {
                        layer: layer_name(k, n),
                        compressed: l.blob.size,
                        uncompressed: l.uncompressed_size,
                    })
                    .collect(),
                total_compressed: total,
                goal_met: total <= MAX_IMAGE_BYTES,
            }
        })
        .collect()
}

/// `layer 1/2 (bottom)`, `layer 2/2 (top)`: generic over however many layers an image has.
fn layer_name(k: usize, n: usize) -> String {
    let pos = match (k, n) {
        (0, 1) => " (only)",
        (0, _) => " (bottom)",
        (k, n) if k + 1 == n => " (top)",
        _ => "",
    };
    format!("layer {}/{n}{pos}", k + 1)
}

/// 2: `xtask image --arch all` with nothing changed vs the same `cargo build` it runs.
fn noop(sh: &Shell, ws: &Workspace, arches: &[Arch], runs: usize) -> anyhow::Result<Noop> {
    let exe = std::env::current_exe().context("locating the running xtask binary")?;
    let xtask = || -> anyhow::Result<()> {
        let st = Command::new(&exe)
            .args(["image", "--arch", "all"])
            .current_dir(&ws.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running `xtask image --arch all`")?;
        if !st.success() {
            bail!("`xtask image --arch all` failed ({st}); run it by hand to see why");
        }
        Ok(())
    };
    // Bring the workspace's images up to date first, then count what the no-ops write.
    xtask()?;
    let images = ws.images_dir();
    let before = bench::snapshot(&images)?;
    // Interleaved, so both see the same load on a shared machine.
    let (ours, cargo) = bench::measure_pair(runs, xtask, || {
        build::cargo::command(sh, ws, arches)
            .quiet()
            .ignore_stderr()
            .read()
            .map(drop)
            .context("no-op cargo build")
    })?;
    let files_written = bench::written(&before, &bench::snapshot(&images)?);
    Ok(Noop {
        ratio: Ratio::of(&ours, &cargo, Some(1.2)),
        xtask_image: ours,
        cargo_build: cargo,
        files_written,
    })
}

/// Puts the edited file in the scratch copy back, even on error. The user's own fluxion/ is
/// never touched (the change is made in a copy); after a Ctrl-C, which skips this, the next
/// bench's `repro::mirror` rewrites the copy's file from the checkout anyway.
struct Restore(PathBuf, Vec<u8>);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, &self.1);
    }
}

/// 3: the image step (no cargo) after a one-line change in fluxion/ vs the same step into an
/// empty images dir. The change is made and compiled in a scratch copy of the workspace, so the
/// user's fluxion/ is never modified, even on error or Ctrl-C.
fn app_only(
    sh: &Shell,
    ws: &Workspace,
    checked: &Checked,
    dir: &Path,
    epoch: Epoch,
    runs: usize,
    before_bins: &[Binary],
) -> anyhow::Result<AppOnly> {
    let copy = dir.join("workspace");
    repro::mirror(sh, ws, &copy)?;
    let copy_target = copy.join("target");
    let arches: Vec<Arch> = before_bins.iter().map(|b| b.arch()).collect();
    // Seed the copy's target dir with the workspace's compiled dependencies (a copy, never
    // links into the user's), and build with the workspace's own flags: cargo then recompiles
    // only the fluxion crate instead of every dependency.
    // `release/` holds the host's build scripts and proc macros, the others the musl targets.
    let seeds =
        std::iter::once(PathBuf::new()).chain(arches.iter().map(|a| a.rust_target().into()));
    for sub in seeds {
        let (from, to) = (
            ws.target_dir.join(&sub).join("release"),
            copy_target.join(&sub),
        );
        if from.is_dir() && !to.join("release").exists() {
            std::fs::create_dir_all(&to)?;
            xshell::cmd!(sh, "cp -a --reflink=auto {from} {to}")
                .quiet()
                .run()
                .context("seeding the scratch copy's target dir")?;
        }
    }
    let sh2 = Shell::new()?;
    sh2.change_dir(&copy);
    // Its own target dir, never the user's (their binaries stay as they are).
    sh2.set_var("CARGO_TARGET_DIR", &copy_target);
    let ws2 = Workspace {
        root: copy.clone(),
        target_dir: copy_target.clone(),
        fluxion_version: ws.fluxion_version.clone(),
        out_dir: None,
    };
    let images = ws2.images_dir();
    // What `image` writes for each arch (the multi-arch outputs aside): archive, link, layout.
    let outputs = ImageOutputs::new(&ws2);
    let opts = Options {
        arches: arches.clone(),
        builder: Builder::Auto,
        compression: Compression::Gzip,
        downloads: Mode::Offline,
        epoch,
        publishers: outputs.publishers(false),
    };
    let step = |bins: &[Binary]| pipeline::image_step(&ws2, checked, bins, &opts);

    let cold = bench::measure(
        runs,
        || bench::remove_dir(&images),
        || step(before_bins).map(drop),
    )?;
    let snapshot_dir = dir.join("images-before-change");
    bench::copy_dir(&images, &snapshot_dir)?;

    let file = copy.join(EDIT_FILE);
    let original = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let text = String::from_utf8_lossy(&original);
    if !text.contains(EDIT_FROM) {
        bail!("{EDIT_FILE} no longer contains {EDIT_FROM}; update EDIT_FROM in bench/scenarios.rs");
    }
    tracing::info!(copy = %copy.display(), "bench: compiling the one-line change in the scratch copy");
    let changed_bins = {
        let _restore = Restore(file.clone(), original.clone());
        std::fs::write(&file, text.replacen(EDIT_FROM, EDIT_TO, 1))?;
        build::cargo::build(&sh2, ws, &arches)?
            .into_iter()
            .zip(&arches)
            .map(|(path, &arch)| {
                let bytes = std::fs::read(&path)?;
                Ok(Binary::new(arch, path, bytes))
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    for (a, b) in before_bins.iter().zip(&changed_bins) {
        if a.sha256() == b.sha256() {
            bail!("the one-line change did not change the {} binary", a.arch());
        }
    }

    let mut snap = bench::Snapshot::new();
    let mut last: Vec<Image> = Vec::new();
    let warm = bench::measure(
        runs,
        || {
            bench::copy_dir(&snapshot_dir, &images)?;
            // Flush the copy now, or the step's own fsyncs would pay for it.
            let _ = Command::new("sync").status();
            snap = bench::snapshot(&images)?;
            Ok(())
        },
        || {
            last = step(&changed_bins)?.images;
            Ok(())
        },
    )?;
    let written = bench::written(&snap, &bench::snapshot(&images)?);
    let written = written.iter().map(|p| name_file(p, &last)).collect();
    Ok(AppOnly {
        ratio: Ratio::of(&warm, &cold, None),
        app_only_image_step: warm,
        cold_image_step: cold,
        written,
    })
}

/// What a path in the images dir is, for the report.
fn name_file(rel: &Path, images: &[Image]) -> String {
    let s = rel.display().to_string();
    let name = rel.file_name().map(|n| n.to_string_lossy().into_owned());
    let place = if s.starts_with("blobs/") {
        ""
    } else {
        " in a layout"
    };
    for image in images {
        let arch = image.arch;
        let n = image.layers.len();
        for (k, l) in image.layers.iter().enumerate() {
            if Some(l.blob.hex()) == name.as_deref() {
                return format!("{arch} {} blob{place}", layer_name(k, n));
            }
        }
        if Some(image.config.hex()) == name.as_deref() {
            return format!("{arch} config{place}");
        }
        if Some(image.manifest.hex()) == name.as_deref() {
            return format!("{arch} manifest{place}");
        }
    }
    if s.starts_with("cache/") {
        return format!("layer cache index ({s})");
    }
    s
}

pub fn print_table(r: &Report) {
    let a = &r.assembly;
    println!(
        "\ncargo xtask bench: {} | {} cpus, {:.0} GiB | load {:.1} | median of {} runs [min .. max]",
        r.date,
        r.machine.cpus,
        r.machine.mem_gib,
        r.machine.load_avg_1m.unwrap_or(0.0),
        a.ours_cold_gzip.runs
    );
    println!("{:-<100}", "");
    let row = |what: &str, s: &Stat| println!("{what:<58} {}", s.show());
    println!("1. assembly, both arches (amd64 + aarch64)");
    row(
        "   ours, gzip, empty layer cache (unpacked packages cached)",
        &a.ours_cold_gzip,
    );
    row(
        "   ours, gzip, empty layer and unpacked-package caches",
        &a.ours_cold_unpacked_empty_gzip,
    );
    row("   ours, gzip, layer cache warm", &a.ours_warm_gzip);
    row(
        "   tar --sort=name | gzip -n -6 | sha256sum, per arch",
        &a.baseline_tar_gzip,
    );
    println!("   ratio ours/baseline, cold: {}", a.ratio_cold.show());
    println!(
        "   ratio ours/baseline, cold, nothing unpacked yet: {}",
        a.ratio_cold_unpacked_empty.show()
    );
    println!("   ratio ours/baseline, warm: {}", a.ratio_warm.show());
    println!("2. no-op rebuild");
    row("   xtask image --arch all", &r.noop.xtask_image);
    row(
        "   cargo build --release, both targets (same flags)",
        &r.noop.cargo_build,
    );
    println!(
        "   ratio: {} | files written by {} no-op runs: {}",
        r.noop.ratio.show(),
        r.noop.xtask_image.runs + 1,
        r.noop.files_written.len()
    );
    println!("3. app-only rebuild (image step alone, after a one-line change in fluxion/)");
    row(
        "   image step, app changed",
        &r.app_only.app_only_image_step,
    );
    row(
        "   image step, cold (empty images dir)",
        &r.app_only.cold_image_step,
    );
    println!("   ratio app-only/cold: {}", r.app_only.ratio.show());
    println!("   written: {}", r.app_only.written.join(", "));
    println!("4. sizes (compressed / uncompressed)");
    for s in &r.sizes {
        let layers: Vec<String> = s
            .layers
            .iter()
            .map(|l| {
                format!(
                    "{} {} / {}",
                    l.layer,
                    human(l.compressed),
                    human(l.uncompressed)
                )
            })
            .collect();
        println!(
            "   {:<8} {:<5} {} | total {} (goal <= 8 MiB: {})",
            s.arch,
            s.compression.to_string(),
            layers.join("; "),
            human(s.total_compressed),
            if s.goal_met { "met" } else { "NOT met" }
        );
    }
    println!("5. compression");
    row("   ours, zstd, empty cache", &a.ours_cold_zstd);
    println!("   ratio zstd/gzip time: {}", a.ratio_zstd_vs_gzip.show());
}
