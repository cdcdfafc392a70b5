//! The runtime layer (issue 3) end to end: the real signed bookworm release and resolver,
//! fixture `.deb`s built here (ar + tar, in Rust) for the safety checks, the cache and the
//! golden diff_id, and the real images run with real tools.
//!
//! Network: only the tests marked "network" reach http://deb.debian.org, and only when the
//! download cache (`cargo xtask lock`/`fetch` fill it) lacks what they need; when the mirror
//! is unreachable they skip, except under FLUXION_REQUIRE_TOOLS=1 where they fail. Everything else talks
//! to 127.0.0.1 at most.
mod support;

use std::path::{Path, PathBuf};

use support::require;
use xtask::runtime::cache::{Cache, Mode, Wanted};
use xtask::runtime::lock::Lock;
use xtask::runtime::{self, net, trust::Keyring};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn keyring() -> Keyring {
    Keyring::load_dir(&runtime::keys_dir(&workspace())).unwrap()
}

fn lock() -> Lock {
    Lock::load(&runtime::lock_path(&workspace())).unwrap()
}

/// The cache `cargo xtask lock`/`fetch` use, or None (after skipping) when what we need is
/// neither cached nor downloadable.
fn cache_with(wanted: &[Wanted], mirror: &str) -> Option<Cache> {
    let cache = Cache::open_default().unwrap();
    let cached = wanted.iter().all(|w| cache.get(w).unwrap().is_some());
    if !cached {
        if let Err(e) = net::probe(mirror) {
            require(
                &format!("the Debian mirror is unreachable ({e:#}) and the cache lacks the files"),
                false,
            );
            return None;
        }
    }
    cache
        .ensure(&net::Net::new(), mirror, wanted, Mode::Online)
        .unwrap();
    Some(cache)
}

/// Like `cache_with`, but a failed download leaves the decision to the caller (None only
/// when the mirror is unreachable and that may be skipped).
fn cache_with_fallback(wanted: &[Wanted], mirror: &str) -> Option<Cache> {
    let cache = Cache::open_default().unwrap();
    if wanted.iter().all(|w| cache.get(w).unwrap().is_some()) {
        return Some(cache);
    }
    if let Err(e) = net::probe(mirror) {
        require(
            &format!("the Debian mirror is unreachable ({e:#}) and the cache lacks the files"),
            false,
        );
        return None;
    }
    if let Err(e) = cache.ensure(&net::Net::new(), mirror, wanted, Mode::Online) {
        eprintln!("could not fetch the locked files: {e:#}");
    }
    Some(cache)
}

/// network: the real bookworm arm64 index resolves to exactly what apt installs.
#[test]
fn resolver_matches_apt_on_real_bookworm_arm64() {
    let lock = lock();
    let idx = &lock.source.index["arm64"];
    let w = Wanted {
        what: "bookworm main/binary-arm64/Packages.xz".into(),
        url_path: format!(
            "dists/{}/{}/binary-arm64/by-hash/SHA256/{}",
            lock.source.suite, lock.source.component, idx.sha256
        ),
        size: idx.size,
        sha256: idx.sha256.clone(),
    };
    let Some(cache) = cache_with_fallback(std::slice::from_ref(&w), &lock.source.mirror) else {
        return;
    };
    let (text, from_lock) = match cache.get(&w).unwrap() {
        Some(xz) => (runtime::packages_text(&xz).unwrap(), true),
        None => {
            // The mirror dropped the locked index (a Debian point release since the lock was
            // made): resolve the current, verified one instead; the package names must match.
            let decl = Declaration::load(&runtime::declaration_path(&workspace())).unwrap();
            let (_, release) = runtime::fetch_release(&net::Net::new(), &decl, &keyring()).unwrap();
            let (size, sha256) = release.index(&idx.path).unwrap();
            let cur = Wanted {
                url_path: format!("dists/{}/{}", decl.suite, idx.path),
                size,
                sha256,
                ..w.clone()
            };
            cache
                .ensure(
                    &net::Net::new(),
                    decl.mirror(),
                    std::slice::from_ref(&cur),
                    Mode::Online,
                )
                .unwrap();
            (
                runtime::packages_text(&cache.load(&cur).unwrap()).unwrap(),
                false,
            )
        }
    };
    let index = runtime::resolve::Index::parse(&text).unwrap();
    assert!(
        index.len() > 50_000,
        "a full bookworm index, got {}",
        index.len()
    );
    let closure = index
        .resolve(&["bash".to_owned(), "coreutils".to_owned()])
        .unwrap();
    let names: Vec<&str> = closure.iter().map(|p| p.name.as_str()).collect();
    // `apt-get install --no-install-recommends bash coreutils` into an empty arm64 root.
    assert_eq!(
        names,
        [
            "base-files",
            "bash",
            "coreutils",
            "debianutils",
            "gcc-12-base",
            "libacl1",
            "libattr1",
            "libc6",
            "libgcc-s1",
            "libgmp10",
            "libpcre2-8-0",
            "libselinux1",
            "libtinfo6",
            "mawk"
        ]
    );
    if !from_lock {
        eprintln!("the locked index is gone from the mirror: run `cargo xtask lock`");
        return;
    }
    // And the lock holds exactly that resolution.
    let locked: Vec<(String, String, String)> = lock
        .packages
        .iter()
        .filter(|p| p.arch == "arm64")
        .map(|p| (p.name.clone(), p.version.clone(), p.sha256.clone()))
        .collect();
    let resolved: Vec<(String, String, String)> = closure
        .iter()
        .map(|p| (p.name.clone(), p.version.to_string(), p.sha256.clone()))
        .collect();
    assert_eq!(locked, resolved);
}

/// network: the real InRelease verifies against the shipped keys (all three signatures), the
/// lock's index digests are the signed ones, and one changed byte breaks it.
#[test]
fn real_inrelease_verifies_and_tampering_is_caught() {
    let lock = lock();
    let cache = Cache::open_default().unwrap();
    let raw = match std::fs::read(cache.path(&lock.source.inrelease_sha256)) {
        Ok(raw) => raw,
        Err(_) => {
            if let Err(e) = net::probe(&lock.source.mirror) {
                require(&format!(
                    "InRelease is not cached (run `cargo xtask lock`) and the mirror is unreachable ({e:#})"
                ), false);
                return;
            }
            let url = format!(
                "{}/dists/{}/InRelease",
                lock.source.mirror, lock.source.suite
            );
            net::Net::new().get_bytes(&url, 16 << 20).unwrap()
        }
    };
    let text = String::from_utf8(raw.clone()).unwrap();
    let (signed, good) = keyring()
        .verify_inrelease(&text, pgp::types::Timestamp::now())
        .unwrap();
    let mut primaries: Vec<&str> = good.iter().map(|g| g.primary.as_str()).collect();
    primaries.sort();
    let shipped = keyring().fingerprints();
    assert!(primaries.iter().all(|p| shipped.iter().any(|s| s == p)));
    if cache.path(&lock.source.inrelease_sha256).exists() {
        // The release the lock was made from carries three signatures, all by shipped keys
        // (a later one may add signers we do not know; those are skipped, not trusted).
        assert_eq!(
            primaries,
            [
                "04B54C3CDCA79751B16BC6B5225629DF75B188BD",
                "4D64FEC119C2029067D6E791F8D2585B8783D481",
                "B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8"
            ]
        );
        assert!(
            good.iter().any(|g| g.signer != g.primary),
            "subkey signatures verified"
        );
    }
    let release = runtime::release::Release::parse(&signed).unwrap();
    if cache.path(&lock.source.inrelease_sha256).exists() {
        runtime::verify_cached_release(&lock, &cache, &keyring()).unwrap();
        assert_eq!(release.date, lock.source.date);
    }
    // One byte of the signed text changed: every signature is bad, so it is refused.
    let tampered = text.replacen("Origin: Debian", "Origin: Debiam", 1);
    assert_ne!(tampered, text);
    let err = keyring()
        .verify_inrelease(&tampered, pgp::types::Timestamp::now())
        .unwrap_err();
    assert!(format!("{err:#}").contains("not authentic"), "{err:#}");
    // A keyring without Debian's keys trusts nothing.
    let empty = Keyring::parse(&[]).unwrap();
    assert!(empty
        .verify_inrelease(&text, pgp::types::Timestamp::now())
        .is_err());
}

// ---- fixtures: everything below talks to 127.0.0.1 at most ----

use support::fixture::{self, Comp, Mirror, E};
use xtask::epoch::Epoch;
use xtask::image::cache::LayerWriter;
use xtask::image::compress::Compression;
use xtask::image::store::BlobStore;
use xtask::runtime::deb::Prune;
use xtask::runtime::layer::{self as rlayer, Package};
use xtask::runtime::lock::{Declaration, IndexRef, Locked, Source, LOCK_VERSION};
use xtask::runtime::Runtime;
use xtask::workspace::Workspace;

const EPOCH: Epoch = Epoch(1_700_000_000);

fn fixture_debs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "fx-base",
            fixture::deb(
                "fx-base",
                &[
                    E::Dir("./", 0o755),
                    E::Dir("./bin/", 0o755),
                    E::Dir("./etc/", 0o755),
                    E::File("./etc/fx.conf", 0o644, b"answer=42\n"),
                    E::Dir("./tmp/", 0o1777),
                    E::Dir("./usr/", 0o755),
                    E::Dir("./usr/share/", 0o755),
                    E::Dir("./usr/share/doc/", 0o755),
                    E::Dir("./usr/share/doc/fx-base/", 0o755),
                    E::File("./usr/share/doc/fx-base/README", 0o644, b"pruned\n"),
                    E::File("./usr/share/doc/fx-base/copyright", 0o644, b"MIT\n"),
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
                    E::File("./bin/fxsh", 0o755, b"\x7fELF not really\n"),
                    // As Debian's: the shell package has bash (no /bin/sh: dash owns that, and
                    // the app layer adds /bin/sh -> bash on top).
                    E::Symlink("./bin/bash", "fxsh"),
                    E::Hardlink("./bin/fxsh2", "./bin/fxsh"),
                    E::Dir("./lib64/", 0o755),
                    E::Symlink("./lib64/ld.so", "/bin/fxsh"),
                    E::Dir("./usr/", 0o755),
                    E::Dir("./usr/share/", 0o755),
                    E::Dir("./usr/share/man/", 0o755),
                    E::File("./usr/share/man/fxsh.1", 0o644, b"pruned\n"),
                ],
                Comp::Xz,
            ),
        ),
        (
            "fx-zst",
            fixture::deb(
                "fx-zst",
                &[
                    E::Dir("./usr/", 0o755),
                    E::Dir("./usr/lib/", 0o755),
                    E::File("./usr/lib/libfx.so.1", 0o644, b"library bytes"),
                    E::Dir("./usr/share/", 0o755),
                ],
                Comp::Zst,
            ),
        ),
    ]
}

fn locked(name: &str, bytes: &[u8]) -> Locked {
    Locked {
        arch: "amd64".into(),
        name: name.into(),
        version: "1.0-1".into(),
        filename: format!("pool/main/f/{name}/{name}_1.0-1_amd64.deb"),
        size: bytes.len() as u64,
        sha256: fixture::sha256_hex(bytes),
    }
}

/// A declaration + lock for the fixture packages, served by `mirror`.
fn fixture_runtime(mirror: &Mirror, debs: &[(&str, Vec<u8>)]) -> Runtime {
    let decl: Declaration = toml::from_str(&format!(
        r#"suite = "fixture"
mirror = "{}"
architectures = ["amd64"]
packages = [{}]
prune = ["usr/share/doc", "usr/share/man"]
keep = ["usr/share/doc/*/copyright"]
"#,
        mirror.url,
        debs.iter()
            .map(|(n, _)| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .unwrap();
    let mut packages = Vec::new();
    for (name, bytes) in debs {
        let l = locked(name, bytes);
        mirror.serve(&l.filename, bytes.clone());
        packages.push(l);
    }
    let lock = Lock {
        version: LOCK_VERSION,
        source: Source {
            suite: "fixture".into(),
            mirror: mirror.url.clone(),
            component: "main".into(),
            date: "Sat, 08 Nov 2025 09:46:04 UTC".into(),
            inrelease_sha256: "0".repeat(64),
            packages: decl.packages.clone(),
            architectures: vec!["amd64".into()],
            index: [(
                "amd64".to_owned(),
                IndexRef {
                    path: "main/binary-amd64/Packages.xz".into(),
                    size: 1,
                    sha256: "0".repeat(64),
                },
            )]
            .into(),
        },
        packages,
    };
    lock.validate().unwrap();
    lock.check_covers(&decl).unwrap();
    let prune = Prune::new(&decl.prune, &decl.keep).unwrap();
    Runtime { decl, lock, prune }
}

struct Scratch {
    _dir: tempfile::TempDir,
    ws: Workspace,
    store: BlobStore,
    cache: Cache,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace {
        root: workspace(), // only its Cargo.lock is read (the compressor identity)
        target_dir: dir.path().join("target"),
        fluxion_version: "0.0.0".into(),
        out_dir: None,
    };
    let store = BlobStore::open(&ws.images_dir().join("blobs").join("sha256")).unwrap();
    let cache = Cache::open(&dir.path().join("cache")).unwrap();
    Scratch {
        _dir: dir,
        ws,
        store,
        cache,
    }
}

fn tar_entries(gz: &[u8]) -> Vec<(String, u32, u64, u64, String)> {
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut raw).unwrap();
    let mut a = tar::Archive::new(&raw[..]);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.mtime().unwrap(),
                e.link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

const GOLDEN: &str = "tests/golden/runtime-layer.diff_id";

/// Golden: the fixture runtime layer's diff_id at a fixed epoch equals the committed value.
/// Regenerate (only after a deliberate format change) with
/// `UPDATE_GOLDEN=1 cargo test -p xtask --test runtime golden`.
#[test]
fn golden_fixture_layer_and_its_contents() {
    let s = scratch();
    let mirror = Mirror::start();
    let rt = fixture_runtime(&mirror, &fixture_debs());
    let layers = runtime::layers(
        &s.ws,
        &s.store,
        &rt,
        &s.cache,
        &[xtask::arch::Arch::Amd64],
        EPOCH,
        Mode::Online,
    )
    .unwrap();
    let ready = &layers[&xtask::arch::Arch::Amd64];
    assert!(!ready.cached);
    assert_eq!(ready.packages, 3);
    let entries = tar_entries(&std::fs::read(&ready.layer.blob.path).unwrap());
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "bin/",
            "bin/bash",
            "bin/fxsh",
            "bin/fxsh2",
            "etc/",
            "etc/fx.conf",
            "lib64/",
            "lib64/ld.so",
            "tmp/",
            "usr/",
            "usr/lib/",
            "usr/lib/libfx.so.1",
            "usr/share/",
            "usr/share/doc/",
            "usr/share/doc/fx-base/",
            "usr/share/doc/fx-base/copyright",
        ],
        "sorted, pruned (README, man page gone), copyright kept"
    );
    assert!(
        entries.iter().all(|e| e.2 == 0 && e.3 == EPOCH.0),
        "uid 0, mtime = epoch"
    );
    let get = |n: &str| entries.iter().find(|e| e.0 == n).unwrap();
    assert_eq!(get("tmp/").1, 0o1777, "modes as packaged");
    assert_eq!(get("bin/fxsh").1, 0o755);
    assert_eq!(get("bin/fxsh2").4, "bin/fxsh", "hard link kept");
    assert_eq!(get("lib64/ld.so").4, "/bin/fxsh");

    let golden = workspace().join("xtask").join(GOLDEN);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(
            &golden,
            format!(
                "# diff_id of the fixture runtime layer (xtask/tests/runtime.rs, epoch {}).\n\
                 # Regenerate only by `UPDATE_GOLDEN=1 cargo test -p xtask --test runtime golden`.\n{}\n",
                EPOCH.0, ready.layer.diff_id
            ),
        )
        .unwrap();
    }
    let want = std::fs::read_to_string(&golden).expect("the golden file exists (see its header)");
    let want = want.lines().find(|l| !l.starts_with('#')).unwrap().trim();
    assert_eq!(ready.layer.diff_id, want);
}

/// Changing only the app leaves the runtime layer's digest and diff_id unchanged, and the
/// second build does not read a single .deb (they are deleted from the cache first).
#[test]
fn app_only_change_keeps_the_runtime_layer() {
    use xtask::arch::Arch;
    let s = scratch();
    let mirror = Mirror::start();
    let rt = fixture_runtime(&mirror, &fixture_debs());
    let first = runtime::layers(
        &s.ws,
        &s.store,
        &rt,
        &s.cache,
        &[Arch::Amd64],
        EPOCH,
        Mode::Online,
    )
    .unwrap();
    for p in &rt.lock.packages {
        std::fs::remove_file(s.cache.path(&p.sha256)).unwrap();
    }
    let second = runtime::layers(
        &s.ws,
        &s.store,
        &rt,
        &s.cache,
        &[Arch::Amd64],
        EPOCH,
        Mode::Offline,
    )
    .unwrap();
    assert!(second[&Arch::Amd64].cached);
    assert_eq!(first[&Arch::Amd64].layer, second[&Arch::Amd64].layer);

    let addon =
        xtask::addon::AddonConfig::load(&workspace().join("addon").join("config.yaml")).unwrap();
    let image = |bytes: &[u8]| {
        let r = &second[&Arch::Amd64];
        xtask::image::assemble_on(
            &LayerWriter::uncached(s.store.clone(), Compression::Gzip),
            &addon,
            &xtask::build::Binary::new(Arch::Amd64, "fluxion-main".into(), bytes.to_vec()),
            EPOCH,
            Some(xtask::image::Base {
                layer: &r.layer,
                listing: &r.listing,
                created_by: "runtime",
            }),
        )
        .unwrap()
    };
    let (a, b) = (image(b"app version 1"), image(b"app version 2"));
    assert_eq!(a.layers.len(), 2);
    assert_eq!(a.layers[0], b.layers[0], "runtime layer unchanged");
    assert_eq!(a.layers[0], first[&Arch::Amd64].layer);
    assert_ne!(
        a.layers[1].diff_id, b.layers[1].diff_id,
        "app layer changed"
    );
    // The config lists the runtime layer first (bottom), then the app.
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&a.config.path).unwrap()).unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"][0], a.layers[0].diff_id.as_str());
    assert_eq!(cfg["rootfs"]["diff_ids"][1], a.layers[1].diff_id.as_str());
    assert_eq!(cfg["history"].as_array().unwrap().len(), 2);

    // A later commit (a later build epoch, past the lock's release date) leaves the runtime
    // layer as it is: its entries are dated by the release, clamped to the epoch.
    let later = |e| {
        runtime::layers(
            &s.ws,
            &s.store,
            &rt,
            &s.cache,
            &[Arch::Amd64],
            Epoch(e),
            Mode::Online,
        )
        .unwrap()[&Arch::Amd64]
            .layer
            .clone()
    };
    let (x, y) = (later(1_800_000_000), later(1_900_000_000));
    assert_eq!(x, y);
    assert_ne!(
        x.diff_id,
        first[&Arch::Amd64].layer.diff_id,
        "epoch 1.7e9 predates the release: clamped"
    );
    let entries = tar_entries(&std::fs::read(&x.blob.path).unwrap());
    assert!(
        entries.iter().all(|e| e.3 == 1_762_595_164),
        "dated by the release"
    );
}

fn merge_err(name: &str, entries: &[E<'_>]) -> String {
    let bytes = fixture::deb(name, entries, Comp::Gz);
    let l = locked(name, &bytes);
    let err = rlayer::merge(&[Package { locked: &l, bytes }], &Prune::default()).unwrap_err();
    format!("{err:#}")
}

#[test]
fn hostile_packages_are_refused() {
    let e = merge_err(
        "evil-dotdot",
        &[E::Dir("./", 0o755), E::File("./../escape", 0o644, b"x")],
    );
    assert!(e.contains("evil-dotdot") && e.contains("../escape"), "{e}");
    let e = merge_err("evil-abs", &[E::File("/etc/cron.d/x", 0o644, b"x")]);
    assert!(e.contains("evil-abs") && e.contains("absolute path"), "{e}");
    let e = merge_err(
        "evil-link",
        &[
            E::Dir("./etc/", 0o755),
            E::Symlink("./etc/evil", "/home/user/.ssh/id_ed25519"),
        ],
    );
    assert!(
        e.contains("evil-link") && e.contains("/etc/evil") && e.contains("outside"),
        "{e}"
    );
    let e = merge_err(
        "evil-rel",
        &[
            E::Dir("./etc/", 0o755),
            E::Symlink("./etc/up", "../../../etc/shadow"),
        ],
    );
    assert!(
        e.contains("evil-rel") && e.contains("outside the root"),
        "{e}"
    );
    // A symlink to a directory, then an entry through it: would write outside via the link.
    let e = merge_err(
        "evil-through",
        &[
            E::Symlink("./etc", "/tmp"),
            E::Dir("./tmp/", 0o1777),
            E::File("./etc/passwd", 0o644, b"x"),
        ],
    );
    assert!(
        e.contains("evil-through") && e.contains("etc/passwd"),
        "{e}"
    );
    let e = merge_err("evil-dev", &[E::CharDev("./dev/mem")]);
    assert!(e.contains("evil-dev") && e.contains("device node"), "{e}");
}

#[test]
fn the_same_path_from_two_packages_must_agree() {
    let a = fixture::deb("pkg-a", &[E::File("./etc/x", 0o644, b"one")], Comp::Gz);
    let b = fixture::deb("pkg-b", &[E::File("./etc/x", 0o644, b"two")], Comp::Gz);
    let (la, lb) = (locked("pkg-a", &a), locked("pkg-b", &b));
    let err = rlayer::merge(
        &[
            Package {
                locked: &la,
                bytes: a,
            },
            Package {
                locked: &lb,
                bytes: b,
            },
        ],
        &Prune::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("pkg-a") && err.contains("pkg-b") && err.contains("etc/x"),
        "{err}"
    );
}

/// A truncated .deb in the cache is detected: re-fetched when online, reported when offline.
#[test]
fn truncated_cached_deb_is_refetched_or_reported() {
    use xtask::arch::Arch;
    let s = scratch();
    let mirror = Mirror::start();
    let rt = fixture_runtime(&mirror, &fixture_debs());
    runtime::fetch(&rt, &s.cache, &[Arch::Amd64], Mode::Online).unwrap();
    let victim = &rt.lock.packages[1];
    let path = s.cache.path(&victim.sha256);
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();

    // Offline: one error naming the package and the command to run; nothing written.
    let err = runtime::layers(
        &s.ws,
        &s.store,
        &rt,
        &s.cache,
        &[Arch::Amd64],
        EPOCH,
        Mode::Offline,
    )
    .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("fx-shell 1.0-1 (amd64)") && err.contains("cargo xtask fetch"),
        "{err}"
    );
    assert!(!path.exists(), "the truncated file was removed, not used");

    // Online: fetched again from the (loopback) mirror, and the build works.
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();
    let before = mirror.hits.lock().unwrap().len();
    runtime::layers(
        &s.ws,
        &s.store,
        &rt,
        &s.cache,
        &[Arch::Amd64],
        EPOCH,
        Mode::Online,
    )
    .unwrap();
    let hits = mirror.hits.lock().unwrap()[before..].to_vec();
    assert_eq!(hits, std::slice::from_ref(&victim.filename));
    assert_eq!(std::fs::read(&path).unwrap(), full);
}

/// A lock whose sha256 was tampered with fails the build before any layer is written, and
/// the mismatching download is not cached.
#[test]
fn tampered_lock_fails_before_any_layer_is_written() {
    use xtask::arch::Arch;
    let s = scratch();
    let mirror = Mirror::start();
    let mut rt = fixture_runtime(&mirror, &fixture_debs());
    let bad = "f".repeat(64);
    rt.lock.packages[2].sha256 = bad.clone();
    let err = runtime::layers(
        &s.ws,
        &s.store,
        &rt,
        &s.cache,
        &[Arch::Amd64],
        EPOCH,
        Mode::Online,
    )
    .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("fx-zst") && err.contains(&bad), "{err}");
    let blobs: Vec<_> = std::fs::read_dir(s.ws.images_dir().join("blobs").join("sha256"))
        .unwrap()
        .collect();
    assert!(blobs.is_empty(), "no layer written: {blobs:?}");
    let entries = std::fs::read_dir(s.ws.images_dir().join("cache/layers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(entries, 0, "no layer cache entry written");
    assert!(!s.cache.path(&bad).exists());
}

// ---- the real runtime layers, run with real tools ----

/// network (first run only): both images' runtime works — bash, coreutils, the user table —
/// amd64 natively and arm64 through qemu-user binfmt, each under a private dockerd.
#[test]
fn real_images_run_bash_and_coreutils_under_docker() {
    use xtask::arch::Arch;
    let rt = Runtime::load(&workspace()).unwrap();
    let wanted: Vec<Wanted> = Arch::ALL.iter().flat_map(|&a| rt.wanted(a)).collect();
    let Some(cache) = cache_with(&wanted, rt.decl.mirror()) else {
        return;
    };
    let Some(docker) = support::Dockerd::start(None) else {
        return;
    };
    let s = scratch();
    let layers = runtime::layers(
        &s.ws,
        &s.store,
        &rt,
        &cache,
        &Arch::ALL,
        EPOCH,
        Mode::Offline,
    )
    .unwrap();
    let addon =
        xtask::addon::AddonConfig::load(&workspace().join("addon").join("config.yaml")).unwrap();
    for arch in Arch::ALL {
        if arch == Arch::Aarch64 {
            if let Err(why) = support::ensure_binfmt_aarch64() {
                require(
                    &format!("arm64 containers through qemu binfmt ({why})"),
                    false,
                );
                continue;
            }
        }
        let r = &layers[&arch];
        let image = xtask::image::assemble_on(
            &LayerWriter::uncached(s.store.clone(), Compression::Gzip),
            &addon,
            // The runtime is under test, not the service: any bytes do for the app.
            &xtask::build::Binary::new(arch, "fluxion-main".into(), b"not the service".to_vec()),
            EPOCH,
            Some(xtask::image::Base {
                layer: &r.layer,
                listing: &r.listing,
                created_by: "runtime",
            }),
        )
        .unwrap();
        let tag = format!("fluxion-runtime-test:{arch}");
        let archive = s.ws.images_dir().join(format!("{arch}.tar"));
        xtask::publish::docker_archive::write(&archive, &[(&image, vec![tag.clone()])], EPOCH)
            .unwrap();
        docker.load(&archive);
        let script = "echo ok; ls /bin | head; id -u; id -un; printf hi | sha256sum; cat /etc/debian_version; uname -m";
        let platform = arch.platform();
        let o = support::output(docker.docker().args([
            "run",
            "--rm",
            "--network",
            "none",
            "--platform",
            &platform,
            &tag,
            "/bin/bash",
            "-c",
            script,
        ]));
        let ok = o.status.success();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(ok, "{arch}: docker run failed: {out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ok", "{arch}: {out}");
        assert!(
            lines[1..11].contains(&"bash") && lines[1..11].contains(&"cat"),
            "{arch}: ls /bin: {out}"
        );
        assert!(
            lines.contains(&"0") && lines.contains(&"root"),
            "{arch}: id: {out}"
        );
        assert!(
            out.contains("8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4  -"),
            "{arch}: sha256sum: {out}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("12.")),
            "{arch}: debian_version: {out}"
        );
        let machine = if arch == Arch::Amd64 {
            "x86_64"
        } else {
            "aarch64"
        };
        assert_eq!(lines.last().copied(), Some(machine), "{arch}: {out}");
        eprintln!("{arch}: ran under docker:\n{out}");
    }
}
