//! Issue 11: never ship a corrupt blob, never leave debris. Whole `cargo xtask image` runs in a
//! scratch workspace (the real fluxion-main binaries through a shim `cross`, a fixture runtime
//! layer served by a loopback mirror, a private download cache): a byte flipped in each kind of
//! stored file never reaches an output; a run interrupted (SIGINT or SIGTERM) at each kind of
//! temp file exits 130 and leaves no temp file, and the next run finishes with the same bytes
//! as an uninterrupted one; stale temp files are swept, a concurrent live run's are not; and
//! `clean --cache` removes orphans, keeps what is used and says what it freed.
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use support::fixture::{self, Comp, Mirror, E};
use support::{output, xtask_bin, Row};
use xtask::runtime::lock::{Declaration, IndexRef, Lock, Locked, Source, SuiteLock, LOCK_VERSION};

const CONFIG: &str = "name: FluxION\nversion: \"0.9.0\"\nslug: fluxion\ndescription: test\n\
                      url: https://example.invalid\narch: [aarch64, amd64]\ninit: false\n";
const EPOCH: &str = "1700000000";

/// A scratch workspace whose `image` runs need no compiler and no network beyond loopback.
struct Scratch {
    dir: tempfile::TempDir,
    shim: PathBuf,
    _mirror: Mirror,
}

fn debs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "fx-base",
            fixture::deb(
                "fx-base",
                &[
                    E::Dir("./", 0o755),
                    E::Dir("./etc/", 0o755),
                    E::File("./etc/fx.conf", 0o644, b"answer=42\n"),
                    E::Dir("./usr/", 0o755),
                    E::Dir("./usr/share/", 0o755),
                    E::Dir("./usr/share/doc/", 0o755),
                    E::File("./usr/share/doc/README", 0o644, b"pruned\n"),
                ],
                Comp::Gz,
            ),
        ),
        (
            "fx-shell",
            fixture::deb(
                "fx-shell",
                &[
                    E::Dir("./", 0o755),
                    E::Dir("./bin/", 0o755),
                    // The app layer's /bin/sh points at bash.
                    E::File("./bin/bash", 0o755, &[7u8; 70_000]),
                    E::Symlink("./bin/rbash", "bash"),
                ],
                Comp::Xz,
            ),
        ),
    ]
}

impl Scratch {
    fn new() -> Scratch {
        let rows = support::built_images();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |rel: &str, text: &str| {
            let p = d.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        fixture::workspace_files(&d.join("ws"), "0.9.0", CONFIG);

        // The fixture runtime layer, the same packages for both arches, served on loopback,
        // with its Packages indexes, an InRelease listing them and the key that signed it.
        const DATE: &str = "Sat, 08 Nov 2025 09:46:04 UTC";
        let mirror = Mirror::start();
        let debs = debs();
        let mut packages = Vec::new();
        let mut indexes = Vec::new();
        for arch in ["amd64", "arm64"] {
            let mut index = String::new();
            for (name, bytes) in &debs {
                let filename = format!("pool/main/f/{name}/{name}_1.0-1_{arch}.deb");
                mirror.serve(&filename, bytes.clone());
                index += &fixture::stanza(name, "1.0-1", &filename, bytes);
                packages.push(Locked {
                    arch: arch.into(),
                    name: (*name).into(),
                    version: "1.0-1".into(),
                    suite: "fixture".into(),
                    filename,
                    size: bytes.len() as u64,
                    sha256: fixture::sha256_hex(bytes),
                });
            }
            let path = format!("main/binary-{arch}/Packages.xz");
            let xz = fixture::xz(index.as_bytes());
            mirror.serve(&format!("dists/fixture/{path}"), xz.clone());
            indexes.push((path, xz));
        }
        let key = fixture::ArchiveKey::generate();
        write("ws/xtask/keys/fixture.asc", &key.public_armored());
        let inrelease = key.inrelease("fixture", DATE, &indexes);
        write("ws/addon/runtime.lock.d/fixture.InRelease", &inrelease);
        let names: Vec<String> = debs.iter().map(|(n, _)| format!("{n:?}")).collect();
        let decl = format!(
            "architectures = [\"amd64\", \"arm64\"]\npackages = [{}]\n\
             prune = [\"usr/share/doc\"]\n\n[[suite]]\nname = \"fixture\"\nmirror = \"{}\"\n",
            names.join(", "),
            mirror.url,
        );
        write("ws/addon/runtime.toml", &decl);
        let parsed: Declaration = toml::from_str(&decl).unwrap();
        let mut lock = Lock {
            version: LOCK_VERSION,
            source: Source {
                component: "main".into(),
                date: DATE.into(),
                packages: parsed.packages.clone(),
                architectures: vec!["amd64".into(), "arm64".into()],
                suites: vec![SuiteLock {
                    name: "fixture".into(),
                    mirror: mirror.url.clone(),
                    date: DATE.into(),
                    inrelease_sha256: fixture::sha256_hex(inrelease.as_bytes()),
                    acquire_by_hash: false,
                    index: indexes
                        .iter()
                        .map(|(path, xz)| {
                            let arch = path.split(['/', '-']).nth(2).unwrap().to_owned();
                            let index = IndexRef {
                                path: path.clone(),
                                size: xz.len() as u64,
                                sha256: fixture::sha256_hex(xz),
                            };
                            (arch, index)
                        })
                        .collect(),
                }],
            },
            packages,
        };
        lock.packages.sort();
        lock.check_covers(&parsed).unwrap();
        write("ws/addon/runtime.lock", &lock.render().unwrap());

        // `cross` that "builds" by copying the real binaries (tests/cli.rs does the same).
        let bin = |t: &str| {
            support::ws()
                .target_dir
                .join(t)
                .join("release/fluxion-main")
        };
        assert_eq!(rows.len(), 2);
        let mut script = String::from("#!/bin/bash\nset -eu\ntarget=''; prev=''\n");
        script += "for a in \"$@\"; do [ \"$prev\" = --target ] && target=$a; prev=$a; done\n";
        script += "mkdir -p \"target/$target/release\"\n";
        script += &format!(
            "case \"$target\" in\n  x86_64-unknown-linux-musl) src='{}' ;;\n  \
             aarch64-unknown-linux-musl) src='{}' ;;\nesac\n",
            bin("x86_64-unknown-linux-musl").display(),
            bin("aarch64-unknown-linux-musl").display()
        );
        // Copy only when it differs, as cargo leaves an up-to-date binary alone.
        script += "cmp -s \"$src\" \"target/$target/release/fluxion-main\" || \
                   cp \"$src\" \"target/$target/release/fluxion-main\"\n";
        let shim = d.join("shim");
        std::fs::create_dir_all(&shim).unwrap();
        std::fs::write(shim.join("cross"), script).unwrap();
        std::fs::set_permissions(
            shim.join("cross"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        Scratch {
            dir,
            shim,
            _mirror: mirror,
        }
    }

    fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn images(&self) -> PathBuf {
        self.ws().join("target/images")
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(xtask_bin());
        let path = format!("{}:{}", self.shim.display(), std::env::var("PATH").unwrap());
        c.args(args)
            .current_dir(self.ws())
            .env("PATH", path)
            .env("FLUXION_CACHE_DIR", self.cache())
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .env_remove("CARGO_TARGET_DIR")
            // Its outputs in its own scratch workspace, wherever the caller's go.
            .env_remove(xtask::workspace::OUT_DIR_ENV)
            .env_remove("FLUXION_XTASK_PAUSE_AT");
        c
    }

    fn image(&self) -> Output {
        output(&mut self.command(&["image", "--arch", "all", "--builder", "cross", "--json"]))
    }

    /// `image` that must succeed; the archive sha256 of each arch.
    fn built(&self) -> Vec<(String, String)> {
        let o = self.image();
        assert!(o.status.success(), "image failed:\n{}", stderr(&o));
        let rows: Vec<Row> = serde_json::from_slice(&o.stdout).unwrap();
        rows.into_iter()
            .map(|r| (r.arch, r.archive_sha256))
            .collect()
    }

    /// `image`, paused (by the test seam in atomic.rs) at the first temp path containing
    /// `at`; returns the running process and the temp path.
    fn paused_at(&self, at: &str) -> (Child, PathBuf) {
        let mut child = self
            .command(&["image", "--arch", "all", "--builder", "cross"])
            .env("FLUXION_XTASK_PAUSE_AT", at)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        loop {
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait().unwrap();
                panic!(
                    "the run ended ({status}) before a temp file matched {at:?}:\n{}",
                    seen.join("\n")
                );
            };
            if let Some(p) = line.strip_prefix("xtask: paused at ") {
                // Keep draining stderr so the child never blocks on a full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return (child, PathBuf::from(p));
            }
            seen.push(line);
        }
    }

    /// Every temp file or directory of atomic.rs' naming left in the workspace or the cache.
    fn debris(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for root in [self.ws(), self.cache()] {
            walk(&root, &mut out);
        }
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if xtask::atomic::is_temp(&p) {
            out.push(p.clone());
        }
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            walk(&p, out);
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Every file under `dir` (relative path -> sha256), for comparing whole output trees.
fn tree_shas(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let mut files = Vec::new();
    fn all(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                all(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    all(dir, &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            (rel, xtask::image::hash::sha256(&std::fs::read(&p).unwrap()))
        })
        .collect()
}

/// The outputs a user loads: the archives and the layouts (not the caches).
fn outputs(images: &Path) -> std::collections::BTreeMap<String, String> {
    tree_shas(images)
        .into_iter()
        .filter(|(p, _)| p.starts_with("fluxion-ha") && !p.ends_with(".inputs.json"))
        .collect()
}

/// A reference build, uninterrupted, in its own scratch workspace.
fn reference() -> (
    Vec<(String, String)>,
    std::collections::BTreeMap<String, String>,
) {
    let s = Scratch::new();
    let shas = s.built();
    (shas, outputs(&s.images()))
}

#[test]
fn interrupting_a_run_at_each_temp_file_leaves_no_debris_and_the_next_run_finishes() {
    let (want, want_outputs) = reference();
    let s = Scratch::new();
    let cache = s.cache().display().to_string();
    // In the order a first run meets them, so each interrupted run gets one step further.
    let kinds = [
        format!("{cache}/workspaces/."),
        "/cache/binaries/.".to_owned(),
        format!("{cache}/sha256/."),
        format!("{cache}/unpacked/."),
        "/blobs/sha256/.blob.tmp".to_owned(),
        "/cache/layers/.".to_owned(),
        "/cache/sbom/.".to_owned(),
        ".fluxion-ha-amd64.tar.tmp".to_owned(),
        ".fluxion-ha-amd64.tar.inputs.json.tmp".to_owned(),
        ".result-amd64.tmp".to_owned(),
        ".fluxion-ha-amd64.oci.tmp".to_owned(),
        ".fluxion-ha-amd64.spdx.json.tmp".to_owned(),
        ".fluxion-ha.oci.tmp".to_owned(),
        ".fluxion-ha.tar.tmp".to_owned(),
    ];
    for (i, at) in kinds.iter().enumerate() {
        let (mut child, temp) = s.paused_at(at);
        assert!(
            temp.exists() || std::fs::symlink_metadata(&temp).is_ok(),
            "{at}: the temp path exists while paused"
        );
        let sig = if i % 2 == 0 { "INT" } else { "TERM" };
        signal(&child, sig);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{at}: SIG{sig} exits 130");
        assert_eq!(s.debris(), Vec::<PathBuf>::new(), "{at}: temp files left");
    }
    // The next run finishes, with the bytes an uninterrupted build gives.
    assert_eq!(s.built(), want);
    assert_eq!(outputs(&s.images()), want_outputs);
    assert_eq!(s.debris(), Vec::<PathBuf>::new());
}

#[test]
fn stale_temp_files_are_swept_but_not_those_of_a_concurrent_live_run() {
    let (want, _) = reference();
    let s = Scratch::new();
    assert_eq!(s.built(), want);
    // Debris of a run that was killed: a pid that is no longer running.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let store = s.images().join("blobs/sha256");
    let stale = [
        store.join(format!(".blob.tmp-{dead}.1-0")),
        s.images()
            .join(format!(".fluxion-ha-amd64.tar.tmp-{dead}-7")),
        s.cache()
            .join(format!("sha256/.{}.tmp-{dead}.5-2", "a".repeat(64))),
    ];
    for p in &stale {
        std::fs::write(p, b"half-written").unwrap();
    }
    let stale_dir = s.images().join(format!(".fluxion-ha.oci.tmp-{dead}.9-1"));
    std::fs::create_dir_all(stale_dir.join("blobs")).unwrap();

    // A live run, paused while writing a blob (its app layer: the binaries are new to it).
    std::fs::remove_dir_all(s.images().join("cache/layers")).unwrap();
    let (mut live, temp) = s.paused_at("/blobs/sha256/.blob.tmp");
    // `clean --cache` waits for no run: it refuses while one uses the images dir.
    let o = output(&mut s.command(&["clean", "--cache"]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("a build is using"), "{}", stderr(&o));
    // A concurrent run works, sweeps the stale files, and leaves the live run's alone.
    assert_eq!(s.built(), want);
    for p in stale.iter().chain([&stale_dir]) {
        assert!(!p.exists(), "{} was not swept", p.display());
    }
    assert!(temp.exists(), "the live run's temp file was swept");
    signal(&live, "TERM");
    assert_eq!(live.wait().unwrap().code(), Some(130));
    assert!(!temp.exists());
    assert_eq!(s.debris(), Vec::<PathBuf>::new());
    assert_eq!(s.built(), want);
}

#[test]
fn clean_cache_removes_orphans_keeps_what_is_used_and_says_what_it_freed() {
    let s = Scratch::new();
    let want = s.built();
    let images = s.images();
    let store = images.join("blobs/sha256");
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let orphans = [
        store.join(format!(".blob.tmp-{dead}.1-0")),
        store.join("f".repeat(64)),
        images
            .join("cache/layers")
            .join(format!("{}.json", "e".repeat(64))),
        images.join("runtime-cache"),
        images.join("gone.tar.inputs.json"),
        s.cache().join(format!("unpacked/.x.tar.tmp-{dead}-0")),
    ];
    for p in &orphans {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"orphan bytes").unwrap();
    }
    // The runtime layers' own cache of xtasks before issue 11 (a directory).
    std::fs::remove_file(&orphans[3]).unwrap();
    std::fs::create_dir_all(&orphans[3]).unwrap();
    std::fs::write(orphans[3].join("old.json"), b"{}").unwrap();
    let kept_before = tree_shas(&images);
    let o = output(&mut s.command(&["clean", "--cache"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    for p in &orphans {
        assert!(!p.exists(), "{} was not removed", p.display());
        assert!(
            said.contains(&p.display().to_string()),
            "not named: {}\n{said}",
            p.display()
        );
    }
    assert!(said.contains("freed "), "{said}");
    // Everything else stays (a layer cache entry may be re-stamped: both fixture runtime
    // layers are one blob, written twice), and the next build is a no-op that writes nothing.
    let after = tree_shas(&images);
    for (p, sha) in &kept_before {
        let gone = orphans.iter().any(|o| images.join(p).starts_with(o));
        if !gone {
            assert!(after.contains_key(p), "{p} was removed");
            if !p.starts_with("cache/layers/") {
                assert_eq!(after.get(p), Some(sha), "{p} changed");
            }
        }
    }
    let snap = xtask::bench::snapshot(&images).unwrap();
    assert_eq!(s.built(), want);
    assert_eq!(
        xtask::bench::written(&snap, &xtask::bench::snapshot(&images).unwrap()),
        Vec::<PathBuf>::new()
    );
    // A second clean finds nothing.
    let o = output(&mut s.command(&["clean", "--cache"]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing to free"));
}

/// Flip one byte in the middle of `path` (same size), as a bad disk or a stray write would.
fn flip(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

#[test]
fn a_flipped_byte_in_any_stored_file_never_reaches_an_output() {
    let (want, want_outputs) = reference();
    let s = Scratch::new();
    assert_eq!(s.built(), want);
    let images = s.images();
    let store = images.join("blobs/sha256");
    let blob = |digest: &str| store.join(digest.trim_start_matches("sha256:"));
    let manifest_of = |arch: &str| -> serde_json::Value {
        let index = support::read_json(&images.join(format!("fluxion-ha-{arch}.oci/index.json")));
        let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
        support::read_json(&blob(&digest))
    };
    let m = manifest_of("amd64");
    let kinds = [
        (
            "the runtime layer blob",
            blob(m["layers"][0]["digest"].as_str().unwrap()),
        ),
        (
            "the app layer blob",
            blob(m["layers"][1]["digest"].as_str().unwrap()),
        ),
        (
            "the config blob",
            blob(m["config"]["digest"].as_str().unwrap()),
        ),
        (
            "the manifest blob",
            blob(
                support::read_json(&images.join("fluxion-ha-amd64.oci/index.json"))["manifests"][0]
                    ["digest"]
                    .as_str()
                    .unwrap(),
            ),
        ),
        (
            "the index blob",
            blob(
                support::read_json(&images.join("fluxion-ha.oci/index.json"))["manifests"][0]
                    ["digest"]
                    .as_str()
                    .unwrap(),
            ),
        ),
    ];
    for (what, path) in &kinds {
        flip(path);
        // The outputs that carry it are rewritten too, so the flip is really tested.
        std::fs::remove_file(images.join("fluxion-ha-amd64.tar")).unwrap();
        std::fs::remove_file(images.join("fluxion-ha.tar")).unwrap();
        std::fs::remove_dir_all(images.join("fluxion-ha-amd64.oci")).unwrap();
        std::fs::remove_dir_all(images.join("fluxion-ha.oci")).unwrap();
        assert_eq!(s.built(), want, "after flipping {what}");
        assert_eq!(outputs(&images), want_outputs, "after flipping {what}");
    }

    // The unpacked-package cache and a downloaded .deb, read when a runtime layer is built.
    let unpacked = s.cache().join("unpacked");
    let tar = std::fs::read_dir(&unpacked)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "tar"))
        .unwrap();
    flip(&tar);
    let deb = std::fs::read_dir(s.cache().join("sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    flip(&deb);
    // The runtime layers must be built again to read them: drop their cache entries; and an
    // app layer's entry that is not JSON any more.
    for e in std::fs::read_dir(images.join("cache/layers"))
        .unwrap()
        .flatten()
    {
        if support::read_json(&e.path())["listing"].is_object() {
            std::fs::remove_file(e.path()).unwrap();
        } else {
            std::fs::write(e.path(), b"{not json").unwrap();
        }
    }
    for f in [
        "fluxion-ha-amd64.tar",
        "fluxion-ha-aarch64.tar",
        "fluxion-ha.tar",
    ] {
        std::fs::remove_file(images.join(f)).unwrap();
    }
    assert_eq!(
        s.built(),
        want,
        "after flipping the unpacked tar and a .deb"
    );
    assert_eq!(outputs(&images), want_outputs);

    // A flip that even keeps the mtime (so no stat can tell) is caught by the publisher's
    // hashing reader: refused, naming the blob and what to do, and the next run is right.
    let victim = blob(m["layers"][1]["digest"].as_str().unwrap());
    let mtime = std::fs::metadata(&victim).unwrap().modified().unwrap();
    flip(&victim);
    std::fs::File::options()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::fs::remove_file(images.join("fluxion-ha-amd64.tar")).unwrap();
    let o = s.image();
    assert!(!o.status.success(), "a corrupt blob was shipped");
    let err = stderr(&o);
    assert!(
        err.contains(m["layers"][1]["digest"].as_str().unwrap())
            && err.contains("corrupt")
            && err.contains("run the same command again"),
        "{err}"
    );
    assert!(
        !images.join("fluxion-ha-amd64.tar").exists(),
        "nothing half-written"
    );
    assert_eq!(s.debris(), Vec::<PathBuf>::new());
    assert_eq!(s.built(), want);
    assert_eq!(outputs(&images), want_outputs);
}

/// A full disk: the write or the commit fails, and the temp file goes with it (not only on a
/// failed rename). Needs a small tmpfs, so root.
#[test]
fn a_full_disk_leaves_no_temp_file() {
    let dir = support::short_tempdir("full");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !support::require("a 64 KiB tmpfs (mount -t tmpfs, needs root)", mounted) {
        return;
    }
    struct Umount<'a>(&'a Path);
    impl Drop for Umount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _umount = Umount(dir.path());
    use std::io::Write;
    // Fails while writing (more than the buffer holds).
    let mut f = xtask::atomic::AtomicFile::create(&dir.path().join("big")).unwrap();
    let failed = f.write_all(&vec![1u8; 4 << 20]).is_err();
    drop(f);
    assert!(failed);
    // Fails at the commit's flush (the buffer took it all).
    let mut f = xtask::atomic::AtomicFile::create(&dir.path().join("late")).unwrap();
    f.write_all(&vec![2u8; 200 << 10]).unwrap();
    assert!(f.commit().is_err());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(left, Vec::<PathBuf>::new(), "debris on the full disk");
}
