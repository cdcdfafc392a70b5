//! The runtime layer (issue 3): bash + coreutils from pinned Debian packages, below the app
//! layer. Declared in addon/runtime.toml, pinned in addon/runtime.lock, verified from the
//! signed InRelease down to every `.deb`, cached, unpacked without running any package code.
pub mod cache;
pub mod deb;
pub mod deb822;
pub mod layer;
pub mod lock;
pub mod net;
pub mod release;
pub mod resolve;
pub mod trust;
pub mod version;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use self::cache::{Cache, Mode, Wanted};
use self::deb::Prune;
use self::layer::{Inputs, LayerCache, Listing};
use self::lock::{Declaration, IndexRef, Lock, Locked, Source, LOCK_VERSION};
use self::net::Net;
use self::release::Release;
use self::resolve::Index;
use self::trust::Keyring;
use crate::epoch::Epoch;
use crate::image::arch::Arch;
use crate::image::cache::LayerWriter;
use crate::image::compress::Compression;
use crate::image::layer::Layer;
use crate::image::store::BlobStore;
use crate::workspace::Workspace;

pub fn declaration_path(root: &Path) -> PathBuf {
    root.join("addon").join("runtime.toml")
}

pub fn lock_path(root: &Path) -> PathBuf {
    root.join("addon").join("runtime.lock")
}

/// The Debian archive keys we trust, shipped verbatim from debian-archive-keyring.
pub fn keys_dir(root: &Path) -> PathBuf {
    root.join("xtask").join("keys")
}

/// The declaration and a lock that covers it: what the pipeline builds the layer from.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub decl: Declaration,
    pub lock: Lock,
    pub prune: Prune,
}

impl Runtime {
    /// Load both files and check the lock covers the declaration (no network).
    pub fn load(root: &Path) -> anyhow::Result<Runtime> {
        let decl = Declaration::load(&declaration_path(root))?;
        let lock = Lock::load(&lock_path(root))?;
        lock.check_covers(&decl)?;
        let prune = Prune::new(&decl.prune, &decl.keep)?;
        Ok(Runtime { decl, lock, prune })
    }

    pub fn arches(&self) -> Vec<Arch> {
        self.decl.arches()
    }

    pub fn wanted(&self, arch: Arch) -> Vec<Wanted> {
        self.lock.for_arch(arch).into_iter().map(wanted).collect()
    }
}

pub fn wanted(p: &Locked) -> Wanted {
    Wanted {
        what: format!("{} {} ({})", p.name, p.version, p.arch),
        url_path: p.filename.clone(),
        size: p.size,
        sha256: p.sha256.clone(),
    }
}

/// Download every `.deb` the lock lists for `arches` into the cache (`cargo xtask fetch`).
pub fn fetch(rt: &Runtime, cache: &Cache, arches: &[Arch], mode: Mode) -> anyhow::Result<usize> {
    let wanted: Vec<Wanted> = arches.iter().flat_map(|&a| rt.wanted(a)).collect();
    cache.ensure(&Net::new(), rt.decl.mirror(), &wanted, mode)?;
    Ok(wanted.len())
}

/// A runtime layer ready for assembly, and whether it came from the layer cache.
#[derive(Debug, Clone)]
pub struct Ready {
    pub layer: Layer,
    pub listing: Listing,
    pub packages: usize,
    pub cached: bool,
}

/// The runtime layer of each arch, gzip-compressed, cached in target/images/runtime-cache
/// (see `layers_in`).
pub fn layers(
    ws: &Workspace,
    store: &BlobStore,
    rt: &Runtime,
    cache: &Cache,
    arches: &[Arch],
    epoch: Epoch,
    mode: Mode,
) -> anyhow::Result<BTreeMap<Arch, Ready>> {
    let writer = LayerWriter::uncached(store.clone(), Compression::Gzip);
    layers_in(&ws.images_dir(), &writer, rt, cache, arches, epoch, mode)
}

/// The runtime layer of each arch, written into `writer`'s store with its compression: from
/// the layer cache (`<images_dir>/runtime-cache`) when its inputs, the compressor's identity
/// among them, are unchanged (no `.deb` is read), else built from verified cached `.deb`s,
/// downloading missing ones first unless offline. Every `.deb` of every arch is present and
/// verified before any layer is written, so a bad lock fails the build with nothing written.
/// The runtime layer keeps this input-keyed cache rather than `writer`'s tree-keyed one: a
/// tree key would need every `.deb` unpacked first.
pub fn layers_in(
    images_dir: &Path,
    writer: &LayerWriter,
    rt: &Runtime,
    cache: &Cache,
    arches: &[Arch],
    epoch: Epoch,
    mode: Mode,
) -> anyhow::Result<BTreeMap<Arch, Ready>> {
    let store = &writer.store;
    let compression = writer.compression;
    let epoch = layer_epoch(&rt.lock, epoch);
    let layer_cache = LayerCache::new(&images_dir.join("runtime-cache"));
    // Issue 7: the compressed bytes depend on the compressor, so gzip and zstd builds never
    // share a cached runtime layer.
    let compressor = compression.identity();
    let mut out = BTreeMap::new();
    let mut todo = Vec::new();
    for &arch in arches {
        if !rt.arches().contains(&arch) {
            bail!(
                "addon/runtime.toml does not declare the architecture {}; add it to \
                 `architectures` and run `cargo xtask lock`",
                arch.debian_arch()
            );
        }
        let locked = rt.lock.for_arch(arch);
        let key = Inputs {
            format: layer::FORMAT,
            arch: arch.debian_arch(),
            packages: locked.clone(),
            prune: &rt.decl.prune,
            keep: &rt.decl.keep,
            epoch: epoch.0,
            compressor: compressor.clone(),
        }
        .key();
        match layer_cache.get(store, &key) {
            Some((layer, listing)) => {
                tracing::info!(%arch, diff_id = %layer.diff_id, "runtime layer unchanged (cached)");
                out.insert(
                    arch,
                    Ready {
                        layer,
                        listing,
                        packages: locked.len(),
                        cached: true,
                    },
                );
            }
            None => todo.push((arch, key, locked)),
        }
    }
    if todo.is_empty() {
        return Ok(out);
    }
    let all: Vec<Wanted> = todo
        .iter()
        .flat_map(|(_, _, l)| l.iter().map(|p| wanted(p)))
        .collect();
    cache.ensure(&Net::new(), rt.decl.mirror(), &all, mode)?;
    let t = std::time::Instant::now();
    let mut loaded = Vec::new();
    for (arch, key, locked) in todo {
        let packages = locked
            .iter()
            .map(|p| {
                Ok(layer::Package {
                    locked: p,
                    // Verified again on the bytes actually used (the cache file could change
                    // between the check and now).
                    bytes: cache.load(&wanted(p))?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        loaded.push((arch, key, packages));
    }
    tracing::debug!(took = ?t.elapsed(), "loaded and verified the .debs");
    // The arches are independent and compression is CPU-bound: build them concurrently
    // (issue 7). Each layer's bytes depend only on its own inputs.
    let built = crate::commands::image::concurrently(&loaded, |(arch, _, packages)| {
        let t = std::time::Instant::now();
        let (layer, listing) = layer::build(store, *arch, packages, &rt.prune, epoch, compression)?;
        tracing::info!(%arch, packages = packages.len(), diff_id = %layer.diff_id, took = ?t.elapsed(), "runtime layer built");
        Ok((layer, listing))
    })?;
    for ((arch, key, packages), (layer, listing)) in loaded.iter().zip(built) {
        layer_cache.put(key, &layer, &listing)?;
        out.insert(
            *arch,
            Ready {
                layer,
                listing,
                packages: packages.len(),
                cached: false,
            },
        );
    }
    Ok(out)
}

/// The mtime of the runtime layer's entries: the locked release's date, clamped to the build
/// epoch (SOURCE_DATE_EPOCH semantics: never later than it). With the commit time as epoch,
/// every commit would otherwise give the runtime layer a new digest, and every add-on update
/// would make users download bash and libc again; this way the runtime layer changes only
/// when the lock does, and is still a pure function of the inputs.
pub fn layer_epoch(lock: &Lock, build: Epoch) -> Epoch {
    match lock::release_date_unix(&lock.source.date) {
        Ok(t) => Epoch(t.min(build.0)),
        Err(_) => build,
    }
}

/// Where a suite's files are on the mirror.
fn dists_url(decl: &Declaration, rest: &str) -> String {
    format!("{}/dists/{}/{rest}", decl.mirror(), decl.suite)
}

/// Fetch and verify InRelease; returns (raw InRelease bytes, parsed Release).
pub fn fetch_release(
    net: &Net,
    decl: &Declaration,
    keyring: &Keyring,
) -> anyhow::Result<(Vec<u8>, Release)> {
    let url = dists_url(decl, "InRelease");
    let raw = net.get_bytes(&url, 16 << 20)?;
    let text = std::str::from_utf8(&raw).context("InRelease is not UTF-8")?;
    let (signed, good) = keyring
        .verify_inrelease(text, pgp::types::Timestamp::now())
        .with_context(|| format!("verifying {url}"))?;
    for g in &good {
        tracing::info!(key = %g.primary, signer = %g.signer, uid = %g.user_id, "good signature on InRelease");
    }
    let release = Release::parse(&signed)?;
    if release.suite != decl.suite {
        bail!(
            "{url} is signed for suite {:?}, not {:?}: refusing a release for another suite",
            release.suite,
            decl.suite
        );
    }
    Ok((raw, release))
}

/// `cargo xtask lock`: verify the suite, resolve every arch, return the new lock.
pub fn resolve_lock(
    decl: &Declaration,
    old: Option<&Lock>,
    cache: &Cache,
    keyring: &Keyring,
) -> anyhow::Result<Lock> {
    let net = Net::new();
    let (raw, release) = fetch_release(&net, decl, keyring)?;
    if let Some(old) = old {
        let (new_d, old_d) = (
            lock::release_date_key(&release.date)?,
            lock::release_date_key(&old.source.date),
        );
        if let Ok(old_d) = old_d {
            if new_d < old_d && old.source.suite == decl.suite {
                bail!(
                    "the mirror's release is dated {} but the lock was made from {}: refusing to \
                     go back in time (a stale mirror, or a replayed release)",
                    release.date,
                    old.source.date
                );
            }
        }
    }
    let inrelease_sha = hash_hex(&raw);
    cache.put(
        &Wanted {
            what: format!("InRelease of {}", decl.suite),
            url_path: String::new(),
            size: raw.len() as u64,
            sha256: inrelease_sha.clone(),
        },
        &raw,
    )?;
    let mut index = BTreeMap::new();
    let mut packages = Vec::new();
    for arch in &decl.architectures {
        let path = format!("{}/binary-{arch}/Packages.xz", decl.component);
        let (size, sha256) = release.index(&path)?;
        let url_path = if release.acquire_by_hash {
            format!(
                "dists/{}/{}/binary-{arch}/by-hash/SHA256/{sha256}",
                decl.suite, decl.component
            )
        } else {
            format!("dists/{}/{path}", decl.suite)
        };
        let w = Wanted {
            what: format!("{path} of {}", decl.suite),
            url_path,
            size,
            sha256: sha256.clone(),
        };
        cache.ensure(&net, decl.mirror(), std::slice::from_ref(&w), Mode::Online)?;
        let text = packages_text(&cache.load(&w)?)?;
        let idx = Index::parse(&text).with_context(|| format!("reading {path}"))?;
        let closure = idx
            .resolve(&decl.packages)
            .with_context(|| format!("resolving {} for {arch}", decl.packages.join(", ")))?;
        tracing::info!(arch, packages = closure.len(), "resolved");
        for p in closure {
            packages.push(Locked {
                arch: arch.clone(),
                name: p.name.clone(),
                version: p.version.to_string(),
                filename: p.filename.clone(),
                size: p.size,
                sha256: p.sha256.clone(),
            });
        }
        index.insert(arch.clone(), IndexRef { path, size, sha256 });
    }
    packages.sort();
    let mut declared = decl.packages.clone();
    declared.sort();
    let mut arches = decl.architectures.clone();
    arches.sort();
    let lock = Lock {
        version: LOCK_VERSION,
        source: Source {
            suite: decl.suite.clone(),
            mirror: decl.mirror().to_owned(),
            component: decl.component.clone(),
            date: release.date.clone(),
            inrelease_sha256: inrelease_sha,
            packages: declared,
            architectures: arches,
            index,
        },
        packages,
    };
    lock.validate()?;
    Ok(lock)
}

/// Decompress a Packages.xz.
pub fn packages_text(xz: &[u8]) -> anyhow::Result<String> {
    let mut out = Vec::with_capacity(xz.len() * 6);
    lzma_rs::xz_decompress(&mut &xz[..], &mut out)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .context("decompressing Packages.xz")?;
    String::from_utf8(out).context("Packages is not UTF-8")
}

fn hash_hex(bytes: &[u8]) -> String {
    crate::image::hash::sha256(bytes)
        .trim_start_matches("sha256:")
        .to_owned()
}

/// The whole chain for a cached InRelease (tests and `lock --check --verify`): signature,
/// then the index digests the lock recorded.
pub fn verify_cached_release(
    lock: &Lock,
    cache: &Cache,
    keyring: &Keyring,
) -> anyhow::Result<Release> {
    let s = &lock.source;
    let w = Wanted {
        what: format!("InRelease of {}", s.suite),
        url_path: String::new(),
        size: 0,
        sha256: s.inrelease_sha256.clone(),
    };
    let raw = std::fs::read(cache.path(&w.sha256))
        .with_context(|| format!("{} is not cached; run `cargo xtask lock`", w.what))?;
    if hash_hex(&raw) != s.inrelease_sha256 {
        bail!("the cached {} does not match the lock's sha256", w.what);
    }
    let (signed, _) = keyring.verify_inrelease(
        std::str::from_utf8(&raw).context("InRelease is not UTF-8")?,
        pgp::types::Timestamp::now(),
    )?;
    let release = Release::parse(&signed)?;
    for (arch, i) in &s.index {
        let (size, sha) = release.index(&i.path)?;
        if size != i.size || sha != i.sha256 {
            bail!("the lock's index for {arch} is not the one the signed release lists");
        }
    }
    Ok(release)
}
