//! The runtime layer (issue 3): bash + coreutils from pinned Debian packages, below the app
//! layer. Declared in addon/runtime.toml, pinned in addon/runtime.lock, verified from the
//! signed InRelease down to every `.deb`, cached, unpacked without running any package code.
pub mod cache;
pub mod deb;
pub mod deb822;
pub mod layer;
pub mod limits;
pub mod lock;
pub mod locking;
pub mod net;
pub mod release;
pub mod resolve;
pub mod trust;
pub mod verify;
pub mod version;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use self::cache::{Cache, Mode, Wanted};
use self::deb::Prune;
use self::layer::{Inputs, LayerCache, Listing};
use self::lock::{Declaration, Lock, Locked};
use self::net::Net;
use self::trust::Keyring;
use self::verify::Uncached;
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

/// The InRelease files the lock was resolved from (`<suite>.InRelease`), committed with it.
pub fn lock_dir(root: &Path) -> PathBuf {
    root.join("addon").join("runtime.lock.d")
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
    /// Load both files, check the lock covers the declaration and agrees with the signed
    /// releases beside it (no network; `verify.rs` steps 1 and 2).
    pub fn load(root: &Path) -> anyhow::Result<Runtime> {
        let decl = Declaration::load(&declaration_path(root))?;
        let lock = Lock::load(&lock_path(root))?;
        lock.check_covers(&decl)?;
        let keyring = Keyring::load_dir(&keys_dir(root))?;
        verify::verify_releases(&lock, &lock_dir(root), &keyring)?;
        let prune = Prune::new(&decl.prune, &decl.keep)?;
        Ok(Runtime { decl, lock, prune })
    }

    pub fn arches(&self) -> Vec<Arch> {
        self.decl.arches()
    }

    /// Where the files of `suite` are: its mirror, then its fallback mirrors (`{date}` = the
    /// lock's date).
    pub fn mirrors(&self, suite: &str) -> anyhow::Result<Vec<String>> {
        let (Some(d), Some(l)) = (self.decl.suite(suite), self.lock.suite(suite)) else {
            bail!("suite {suite} is not in both addon/runtime.toml and addon/runtime.lock; run `cargo xtask lock`");
        };
        let mut m = vec![l.mirror.trim_end_matches('/').to_owned()];
        m.extend(d.fallbacks(&self.lock.source.date)?);
        Ok(m)
    }

    pub fn wanted(&self, arch: Arch) -> anyhow::Result<Vec<Wanted>> {
        self.lock
            .for_arch(arch)
            .into_iter()
            .map(|p| self.want(p))
            .collect()
    }

    pub fn want(&self, p: &Locked) -> anyhow::Result<Wanted> {
        Ok(Wanted {
            what: format!("{} {} ({}, {})", p.name, p.version, p.arch, p.suite),
            mirrors: self.mirrors(&p.suite)?,
            url_path: p.filename.clone(),
            size: p.size,
            sha256: p.sha256.clone(),
        })
    }

    /// The signed indexes that vouch for the packages of `arches` (`verify.rs` step 3).
    pub fn index_checks(&self, arches: &[Arch]) -> anyhow::Result<Vec<verify::IndexCheck<'_>>> {
        verify::index_checks(&self.lock, arches, |s| self.mirrors(s))
    }

    /// Fetch (unless offline) the indexes of `arches` and check every locked package of them
    /// is in its suite's index exactly as locked; nothing is downloaded from the pool before.
    pub fn verify_packages(
        &self,
        cache: &Cache,
        arches: &[Arch],
        mode: Mode,
    ) -> anyhow::Result<()> {
        let mut checks = self.index_checks(arches)?;
        checks.retain(|c| !verify::passed(c, cache));
        let wanted: Vec<Wanted> = checks.iter().map(|c| c.wanted.clone()).collect();
        cache.ensure(&Net::new(), &wanted, mode)?;
        verify::verify_packages(&checks, cache, Uncached::Fail).map(drop)
    }
}

/// `cargo xtask lock --check` (no network): the lock covers the declaration and agrees with
/// the signed releases, and every package with its index in the cache agrees with it. Returns
/// the indexes not cached (their packages are checked by `fetch` and `image`).
pub fn check_lock(root: &Path, cache: &Cache) -> anyhow::Result<(Runtime, Vec<String>)> {
    let rt = Runtime::load(root)?;
    let checks = rt.index_checks(&rt.arches())?;
    let skipped = verify::verify_packages(&checks, cache, Uncached::Skip)?;
    Ok((rt, skipped))
}

/// Download every `.deb` the lock lists for `arches` into the cache (`cargo xtask fetch`),
/// after checking the lock against the signed indexes (fetched too).
pub fn fetch(rt: &Runtime, cache: &Cache, arches: &[Arch], mode: Mode) -> anyhow::Result<usize> {
    rt.verify_packages(cache, arches, mode)?;
    let mut wanted = Vec::new();
    for &a in arches {
        wanted.extend(rt.wanted(a)?);
    }
    cache.ensure(&Net::new(), &wanted, mode)?;
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
    // The lock against the signed indexes first (issue 14): a hostile entry is refused before
    // its .deb is fetched or unpacked.
    let building: Vec<Arch> = todo.iter().map(|(a, _, _)| *a).collect();
    rt.verify_packages(cache, &building, mode)?;
    let mut all = Vec::new();
    for (_, _, locked) in &todo {
        for p in locked {
            all.push(rt.want(p)?);
        }
    }
    cache.ensure(&Net::new(), &all, mode)?;
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
                    bytes: cache.load(&rt.want(p)?)?,
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
        let (layer, listing) = layer::build(
            store,
            *arch,
            packages,
            &rt.prune,
            &rt.decl.limits,
            epoch,
            compression,
        )?;
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

/// The mtime of the runtime layer's entries: the base suite's release date (`bookworm`'s,
/// which moves only at point releases), clamped to the build epoch (SOURCE_DATE_EPOCH
/// semantics: never later than it). With the commit time as epoch, every commit would
/// otherwise give the runtime layer a new digest, and every add-on update would make users
/// download bash and libc again; and with the newest suite's date, every re-lock would, as
/// the security and updates suites are re-signed daily. This way the runtime layer changes
/// only when its packages or the base release do, and is still a pure function of the inputs.
pub fn layer_epoch(lock: &Lock, build: Epoch) -> Epoch {
    match lock::release_date_unix(&lock.base_suite().date) {
        Ok(t) => Epoch(t.min(build.0)),
        Err(_) => build,
    }
}

/// Decompress a Packages.xz.
pub fn packages_text(xz: &[u8]) -> anyhow::Result<String> {
    let mut out = Vec::with_capacity(xz.len() * 6);
    lzma_rs::xz_decompress(&mut &xz[..], &mut out)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .context("decompressing Packages.xz")?;
    String::from_utf8(out).context("Packages is not UTF-8")
}
