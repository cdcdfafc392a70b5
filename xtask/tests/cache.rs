//! Issue 7: what the speed-ups promise, asserted without timings. A no-op rebuild writes no
//! file; an app-only change rewrites only that image's top layer, config, manifest and
//! archive; cold, warm, cached and concurrent builds give the same bytes; zstd layers carry the
//! same diff_id as gzip ones and skopeo and podman read them.
//!
//! The binaries come from the workspace's own build (`support::built_images()`, once per test
//! binary); variations drive the library API in temp dirs instead of recompiling fluxion. The
//! runtime layer's `.deb`s come from the download cache that build filled (offline here).
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{addon, run, tool, workspace, EPOCH};
use xtask::arch::Arch;
use xtask::bench::{snapshot, written};
use xtask::build::Binary;
use xtask::image::cache::LayerWriter;
use xtask::image::compress::{Compression, MEDIA_TYPE_TAR_ZSTD};
use xtask::image::hash::sha256;
use xtask::image::Image;
use xtask::pipeline::{self, Checked, ImageOutputs, Options};
use xtask::publish::{docker_archive, Format, Written};
use xtask::runtime::{self, cache::Cache, cache::Mode, Runtime};
use xtask::workspace::Workspace;

/// The workspace's built binaries (built by `support::built_images()`).
fn binaries() -> Vec<Binary> {
    support::built_images();
    Arch::ALL
        .iter()
        .map(|&arch| {
            let path = support::built_binary(arch);
            let bytes = std::fs::read(&path).unwrap();
            Binary::new(arch, path, bytes)
        })
        .collect()
}

fn rt() -> Runtime {
    Runtime::load(&workspace()).unwrap()
}

/// One image and its docker-archive, as the image step wrote them.
struct Built {
    image: Image,
    archive: PathBuf,
    written: Written,
}

/// The image step as `cargo xtask image` runs it (per arch: archive, result link, layout),
/// with the runtime `.deb`s from the cache.
fn step(ws: &Workspace, bins: &[Binary], c: Compression) -> Vec<Built> {
    step_at(ws, bins, c, EPOCH)
}

fn step_at(
    ws: &Workspace,
    bins: &[Binary],
    c: Compression,
    epoch: xtask::epoch::Epoch,
) -> Vec<Built> {
    let checked = Checked {
        addon: addon(),
        runtime: rt(),
    };
    let outputs = ImageOutputs::new(ws);
    let opts = Options {
        arches: bins.iter().map(|b| b.arch()).collect(),
        builder: Default::default(),
        compression: c,
        downloads: Mode::Offline,
        epoch,
        // Not the SBOM: a scratch workspace has no cargo project to ask for its crates
        // (tests/sbom.rs covers it on the real workspace).
        publishers: vec![&outputs.archives, &outputs.layouts],
    };
    let built = pipeline::image_step(ws, &checked, bins, &opts).unwrap();
    built
        .images
        .iter()
        .map(|image| {
            let o = built
                .output(Format::DockerArchive, Some(image.arch))
                .unwrap();
            Built {
                image: image.clone(),
                archive: o.path.clone().unwrap(),
                written: o.written.clone().unwrap(),
            }
        })
        .collect()
}

/// A scratch workspace: images under `<dir>/target/images`, result links in `<dir>`.
fn scratch(dir: &Path) -> Workspace {
    Workspace {
        root: dir.to_owned(),
        target_dir: dir.join("target"),
        fluxion_version: "unused".into(),
        out_dir: None,
    }
}

fn file_sha(path: &Path) -> String {
    sha256(&std::fs::read(path).unwrap())
}

#[test]
fn a_noop_rebuild_writes_no_file() {
    let rows = support::built_images();
    // The tests' builds go to their scratch dir (FLUXION_OUT_DIR), never the checkout's.
    let root = support::out_dir();
    let images = support::images_dir();
    // Every kind of output `image --arch all` writes is there to be checked.
    for p in [
        "fluxion-ha-amd64.tar",
        "fluxion-ha-aarch64.tar",
        "fluxion-ha-amd64.oci/index.json",
        "fluxion-ha-aarch64.oci/index.json",
        "fluxion-ha.oci/index.json",
        "fluxion-ha.tar",
        "fluxion-ha.tar.inputs.json",
        "fluxion-ha.oci.inputs.json",
    ] {
        assert!(images.join(p).is_file(), "{p} was written by the build");
    }
    // Runtime layer entries are the ones that record a listing (for the app layer's check).
    let runtime_cache = std::fs::read_dir(images.join("cache/layers"))
        .unwrap()
        .filter(|e| support::read_json(&e.as_ref().unwrap().path())["listing"].is_object())
        .count();
    assert!(runtime_cache >= 2, "a runtime layer cache entry per arch");
    let links = |r: &Path| -> Vec<(PathBuf, u64)> {
        use std::os::unix::fs::MetadataExt;
        ["result-amd64", "result-aarch64"]
            .iter()
            .map(|l| {
                let p = r.join(l);
                (
                    std::fs::read_link(&p).unwrap(),
                    std::fs::symlink_metadata(&p).unwrap().ino(),
                )
            })
            .collect()
    };
    let (before, links_before) = (snapshot(&images).unwrap(), links(&root));
    assert!(before.len() > 4, "the images dir holds the built images");
    let out = run(support::xtask().args(["image", "--arch", "all", "--json"]));
    let again: Vec<support::Row> = serde_json::from_str(&out).unwrap();
    let after = snapshot(&images).unwrap();
    assert_eq!(
        written(&before, &after),
        Vec::<PathBuf>::new(),
        "a no-op rebuild rewrote files"
    );
    assert_eq!(links(&root), links_before, "result links were replaced");
    for (a, b) in rows.iter().zip(&again) {
        assert_eq!(a.archive_sha256, b.archive_sha256);
    }
}

#[test]
fn cold_warm_cached_sequential_and_concurrent_builds_are_byte_identical() {
    let (bins, addon) = (binaries(), addon());
    let tmp = tempfile::tempdir().unwrap();

    // Concurrent, empty cache.
    let a = scratch(&tmp.path().join("a"));
    let cold = step(&a, &bins, Compression::Gzip);
    assert!(
        cold.iter().all(|b| b.image.layers.len() == 2),
        "runtime + app"
    );
    let shas = |b: &[Built]| -> Vec<String> { b.iter().map(|b| file_sha(&b.archive)).collect() };
    let cold_shas = shas(&cold);
    for b in &cold {
        assert_eq!(b.written.sha256, file_sha(&b.archive));
    }
    // Warm: everything cached, nothing rewritten, same bytes.
    let before = snapshot(&a.images_dir()).unwrap();
    let warm = step(&a, &bins, Compression::Gzip);
    assert_eq!(shas(&warm), cold_shas);
    assert_eq!(
        written(&before, &snapshot(&a.images_dir()).unwrap()),
        Vec::<PathBuf>::new()
    );
    // Cached layers, archives and config/manifest blobs gone: rebuilt from the cache, same bytes.
    for b in &cold {
        std::fs::remove_file(&b.archive).unwrap();
        std::fs::remove_file(&b.image.config.path).unwrap();
    }
    assert_eq!(shas(&step(&a, &bins, Compression::Gzip)), cold_shas);
    // A damaged archive is noticed and rewritten; so is a damaged OCI layout.
    std::fs::write(&cold[0].archive, b"damaged").unwrap();
    let layout = a.images_dir().join("fluxion-ha-amd64.oci");
    let index = std::fs::read(layout.join("index.json")).unwrap();
    std::fs::write(layout.join("index.json"), b"{}").unwrap();
    let fixed = step(&a, &bins, Compression::Gzip);
    assert_eq!(shas(&fixed), cold_shas);
    assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), index);

    // One arch at a time, in another directory.
    let b = scratch(&tmp.path().join("b"));
    let seq: Vec<String> = bins
        .iter()
        .map(|bin| {
            let built = step(&b, std::slice::from_ref(bin), Compression::Gzip);
            file_sha(&built[0].archive)
        })
        .collect();
    assert_eq!(seq, cold_shas);

    // No cache at all (neither layer cache), straight through the writers.
    let c = tmp.path().join("c");
    let w = LayerWriter::uncached(
        xtask::image::store::BlobStore::open(&c.join("blobs")).unwrap(),
        Compression::Gzip,
    );
    let rt = rt();
    let rls = runtime::layers_in(
        &w,
        &rt,
        &Cache::open_default().unwrap(),
        &Arch::ALL,
        EPOCH,
        Mode::Offline,
    )
    .unwrap();
    assert!(rls.values().all(|r| !r.cached));
    for (bin, want) in bins.iter().zip(&cold_shas) {
        let rl = &rls[&bin.arch()];
        let created_by = format!(
            "cargo xtask image: runtime layer, {} Debian {} packages from addon/runtime.lock",
            rl.packages,
            rt.lock.base_suite().name
        );
        let base = xtask::image::Base {
            layer: &rl.layer,
            listing: &rl.listing,
            created_by: &created_by,
        };
        let image = xtask::image::assemble_on(&w, &addon, bin, EPOCH, Some(base)).unwrap();
        let dest = c.join(format!("{}.tar", bin.arch()));
        let tag = format!("fluxion-ha:{}", bin.arch());
        let out = docker_archive::write(&dest, &[(&image, vec![tag])], EPOCH).unwrap();
        assert_eq!(&out.sha256, want, "{}: uncached differs", bin.arch());
    }
}

/// `cargo xtask ci`'s reproducibility step compares archive digests between two checkouts;
/// that comparison can fail: the one time input, the epoch, changes every archive.
#[test]
fn another_epoch_gives_other_archives() {
    let bins = binaries();
    let tmp = tempfile::tempdir().unwrap();
    let build = |dir: &str, epoch: xtask::epoch::Epoch| {
        step_at(
            &scratch(&tmp.path().join(dir)),
            &bins,
            Compression::Gzip,
            epoch,
        )
    };
    let a = build("a", EPOCH);
    let b = build("b", xtask::epoch::Epoch(EPOCH.0 + 1));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.image.arch, y.image.arch);
        assert_ne!(x.written.sha256, y.written.sha256, "{}", x.image.arch);
    }
}

#[test]
fn an_app_only_change_rewrites_only_that_images_top_layer_config_manifest_and_archive() {
    let mut bins = binaries();
    let tmp = tempfile::tempdir().unwrap();
    let ws = scratch(tmp.path());
    let first = step(&ws, &bins, Compression::Gzip);
    let before = snapshot(tmp.path()).unwrap();

    // The app changed for amd64 only: one more byte at the end of the binary.
    let mut bytes = bins[0].bytes().unwrap().to_vec();
    bytes.push(0);
    bins[0] = Binary::new(bins[0].arch(), bins[0].path().to_owned(), bytes);
    let second = step(&ws, &bins, Compression::Gzip);
    let changed = written(&before, &snapshot(tmp.path()).unwrap());

    let (old, new) = (&first[0].image, &second[0].image);
    let n = new.layers.len();
    assert_ne!(
        old.layers[n - 1],
        new.layers[n - 1],
        "the app layer changed"
    );
    assert!(n >= 2, "the runtime layer is below the app layer");
    assert_eq!(
        old.layers[..n - 1],
        new.layers[..n - 1],
        "layers below the app"
    );
    // The runtime blob itself is untouched (not in `changed`, checked below by path).
    let runtime_blob = PathBuf::from("target/images/blobs/sha256").join(new.layers[0].blob.hex());
    let blob = |hex: &str| PathBuf::from("target/images/blobs/sha256").join(hex);
    let mut allowed = vec![
        blob(new.layers[n - 1].blob.hex()),
        blob(new.config.hex()),
        blob(new.manifest.hex()),
        PathBuf::from("target/images/fluxion-ha-amd64.tar"),
        PathBuf::from("target/images/fluxion-ha-amd64.tar.inputs.json"),
    ];
    allowed.sort();
    assert!(
        !changed.contains(&runtime_blob),
        "the runtime blob was rewritten"
    );
    let (index, rest): (Vec<PathBuf>, Vec<PathBuf>) = changed
        .into_iter()
        .partition(|p| p.starts_with("target/images/cache/layers"));
    // The amd64 OCI layout is an output too: its directory is replaced as a whole.
    let layout = PathBuf::from("target/images/fluxion-ha-amd64.oci");
    let (layout_files, rest): (Vec<PathBuf>, Vec<PathBuf>) = rest.into_iter().partition(|p| {
        p.starts_with(&layout) || p == Path::new("target/images/fluxion-ha-amd64.oci.inputs.json")
    });
    assert!(
        layout_files.contains(&layout.join("index.json")),
        "the amd64 layout was rewritten: {layout_files:?}"
    );
    assert!(
        layout_files
            .iter()
            .all(|p| !p.starts_with("target/images/fluxion-ha-aarch64.oci")),
        "{layout_files:?}"
    );
    assert_eq!(rest, allowed, "files written by an app-only rebuild");
    assert_eq!(index.len(), 1, "one new layer cache entry: {index:?}");
    // The aarch64 image is the same value, its files untouched (checked above by path).
    assert_eq!(first[1].written, second[1].written);
    assert_eq!(first[1].image.manifest, second[1].image.manifest);
}

#[test]
fn zstd_layers_have_the_gzip_diff_id_and_skopeo_and_podman_read_them() {
    let bins = binaries();
    let amd64 = &bins[..1];
    let tmp = tempfile::tempdir().unwrap();
    let gz = step(&scratch(&tmp.path().join("gz")), amd64, Compression::Gzip);
    let zs = step(&scratch(&tmp.path().join("zs")), amd64, Compression::Zstd);
    let (g, z) = (&gz[0].image, &zs[0].image);
    assert_eq!(g.layers.len(), 2, "runtime + app");
    assert_eq!(g.layers.len(), z.layers.len());
    for (gl, zl) in g.layers.iter().zip(&z.layers) {
        assert_eq!(zl.blob.media_type, MEDIA_TYPE_TAR_ZSTD);
        let bytes = std::fs::read(&zl.blob.path).unwrap();
        assert_eq!(&bytes[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame magic");
        let raw = zstd::decode_all(&bytes[..]).unwrap();
        assert_eq!(sha256(&raw), gl.diff_id, "same tar under both compressors");
        assert_eq!(zl.diff_id, gl.diff_id);
        assert!(zl.blob.size < gl.blob.size, "zstd is smaller");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&z.manifest.path).unwrap()).unwrap();
    assert_eq!(manifest["layers"][0]["mediaType"], MEDIA_TYPE_TAR_ZSTD);
    // The config's rootfs is the same: diff_ids do not depend on compression.
    let cfg = |i: &xtask::image::Image| -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(&i.config.path).unwrap())
            .unwrap()["rootfs"]
            .clone()
    };
    assert_eq!(cfg(g), cfg(z));

    let archive = zs[0].archive.to_str().unwrap().to_owned();
    if let Some(skopeo) = tool("skopeo") {
        let src = format!("docker-archive:{archive}");
        let inspect: serde_json::Value =
            serde_json::from_str(&run(Command::new(&skopeo).args(["inspect", &src]))).unwrap();
        assert_eq!(inspect["Architecture"], "amd64");
        let layout = tmp.path().join("oci");
        // A full copy reads and decompresses every layer, checking it against the diff_ids.
        run(Command::new(&skopeo).args(["copy", &src, &format!("oci:{}:zstd", layout.display())]));
    }
    if let Some(pm) = support::Podman::new() {
        let podman = |args: &[&str]| {
            let mut c = pm.podman();
            c.args(args);
            c
        };
        let out = run(&mut podman(&["load", "-i", &archive]));
        assert!(out.contains("fluxion-ha:amd64"), "{out}");
        let id = run(&mut podman(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "fluxion-ha:amd64",
        ]));
        assert_eq!(format!("sha256:{}", id.trim()), z.id());
        // The files podman unpacked from both zstd layers: the binary we put in, run by the
        // runtime layer's bash.
        let out = run(pm.run_container().args([
            "--entrypoint",
            "/bin/bash",
            "fluxion-ha:amd64",
            "-c",
            "/bin/fluxion-main --version",
        ]));
        assert!(out.contains(&addon().version), "{out}");
    }
}

#[test]
fn bad_compression_is_refused() {
    let out = support::output(support::xtask().args(["image", "--compression", "brotli"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gzip") && err.contains("zstd"), "{err}");
}
