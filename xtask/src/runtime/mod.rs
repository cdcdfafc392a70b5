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
pub mod unpacked;
pub mod verify;
pub mod version;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use self::cache::{Cache, Mode, Wanted};
use self::deb::Prune;
use self::layer::Inputs;
use self::limits::Budget;
use self::lock::{Declaration, Lock, Locked};
use self::net::Net;
use self::trust::Keyring;
use self::unpacked::Unpacked;
use self::verify::Uncached;
use crate::arch::Arch;
use crate::epoch::Epoch;
use crate::image::cache::{self as layer_cache, LayerCache, LayerWriter, Pending};
use crate::image::compress::Compression;
use crate::image::layer::Layer;
use crate::image::listing::Listing;
use crate::image::store::BlobStore;
use crate::parallel;
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

/// The runtime layer of each arch, gzip-compressed, through the layer cache of `ws`'s images
/// dir (see `layers_in`).
pub fn layers(
    ws: &Workspace,
    store: &BlobStore,
    rt: &Runtime,
    cache: &Cache,
    arches: &[Arch],
    epoch: Epoch,
    mode: Mode,
) -> anyhow::Result<BTreeMap<Arch, Ready>> {
    let writer = LayerWriter {
        store: store.clone(),
        cache: Some(LayerCache::open(&layer_cache::dir_in(&ws.images_dir()))?),
        compression: Compression::Gzip,
    };
    layers_in(&writer, rt, cache, arches, epoch, mode)
}

/// The runtime layer of each arch, written through `writer` (its store, compressor and layer
/// cache): `prepare`, then the missing layers written concurrently.
pub fn layers_in(
    writer: &LayerWriter,
    rt: &Runtime,
    cache: &Cache,
    arches: &[Arch],
    epoch: Epoch,
    mode: Mode,
) -> anyhow::Result<BTreeMap<Arch, Ready>> {
    let plan = prepare(writer, rt, cache, arches, epoch, mode)?;
    let layers = writer.write_all(&plan.pending)?;
    Ok(plan.finish(layers))
}

/// The runtime layers: those the layer cache has, and the trees (with their cache keys and
/// listings) of those still to write, which the caller writes with its other layers.
pub struct Plan {
    pub ready: BTreeMap<Arch, Ready>,
    /// The layers to write, and for each its arch and package count.
    pub pending: Vec<Pending>,
    pending_arches: Vec<(Arch, usize)>,
}

impl Plan {
    /// The listing of `arch`'s runtime layer, cached or pending.
    pub fn listing(&self, arch: Arch) -> Option<&Listing> {
        if let Some(r) = self.ready.get(&arch) {
            return Some(&r.listing);
        }
        let i = self.pending_arches.iter().position(|(a, _)| *a == arch)?;
        self.pending[i].listing.as_ref()
    }

    /// Every runtime layer, given the written `layers` of `pending` (in its order).
    pub fn finish(mut self, layers: Vec<Layer>) -> BTreeMap<Arch, Ready> {
        for (((arch, packages), p), layer) in self
            .pending_arches
            .into_iter()
            .zip(self.pending)
            .zip(layers)
        {
            tracing::info!(%arch, packages, diff_id = %layer.diff_id, "runtime layer built");
            self.ready.insert(
                arch,
                Ready {
                    layer,
                    listing: p.listing.unwrap_or_default(),
                    packages,
                    cached: false,
                },
            );
        }
        self.ready
    }
}

/// For each arch, the runtime layer from the layer cache when its inputs (the locked packages,
/// the prune rules, the limits, the epoch, the compressor: `layer::Inputs` and the cache key)
/// are unchanged, so no `.deb` is read; else its tree, merged from the unpacked-package cache
/// (runtime/unpacked.rs) or, for packages not in it, from verified cached `.deb`s, downloading
/// missing ones first unless offline. The locked packages are checked against the signed
/// indexes before anything is fetched or taken from the unpacked cache, and every `.deb` a
/// layer needs is present and verified before anything is unpacked, so a bad lock fails with
/// nothing written.
pub fn prepare(
    writer: &LayerWriter,
    rt: &Runtime,
    cache: &Cache,
    arches: &[Arch],
    epoch: Epoch,
    mode: Mode,
) -> anyhow::Result<Plan> {
    let epoch = layer_epoch(&rt.lock, epoch);
    let mut plan = Plan {
        ready: BTreeMap::new(),
        pending: Vec::new(),
        pending_arches: Vec::new(),
    };
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
        let inputs = Inputs {
            format: layer::FORMAT,
            arch: arch.debian_arch(),
            packages: locked.clone(),
            prune: &rt.decl.prune,
            keep: &rt.decl.keep,
            limits: &rt.decl.limits,
        }
        .canonical();
        let source = layer_cache::Source::Declared {
            kind: layer::KIND,
            inputs: &inputs,
        };
        let key = writer.key(source, epoch)?;
        match writer.lookup(key.as_ref()) {
            Some(hit) => {
                tracing::info!(%arch, diff_id = %hit.layer.diff_id, "runtime layer unchanged (cached)");
                plan.ready.insert(
                    arch,
                    Ready {
                        layer: hit.layer,
                        listing: hit.listing.unwrap_or_default(),
                        packages: locked.len(),
                        cached: true,
                    },
                );
            }
            None => todo.push((arch, key, locked)),
        }
    }
    if todo.is_empty() {
        return Ok(plan);
    }
    // The lock against the signed indexes first (issue 14): a hostile entry is refused before
    // its .deb is fetched or unpacked, or its unpacked entries are taken from the cache.
    let building: Vec<Arch> = todo.iter().map(|(a, _, _)| *a).collect();
    rt.verify_packages(cache, &building, mode)?;

    // Every package of every arch still to build, biggest .deb first (the longest unpack).
    let unpacked = cache.unpacked()?;
    let limits = &rt.decl.limits;
    let unpacked_key = |p: &Locked| Unpacked::key(&p.sha256, &rt.prune, limits);
    let mut jobs: Vec<(usize, usize, &Locked)> = todo
        .iter()
        .enumerate()
        .flat_map(|(a, (_, _, locked))| locked.iter().enumerate().map(move |(i, p)| (a, i, *p)))
        .collect();
    jobs.sort_by_key(|(_, _, p)| std::cmp::Reverse(p.size));
    let t = std::time::Instant::now();
    let from_cache = parallel::map(&jobs, |(_, _, p)| {
        Ok(unpacked.get(&unpacked_key(p), &p.name))
    })?;
    let missing = jobs
        .iter()
        .zip(&from_cache)
        .filter(|(_, got)| got.is_none())
        .map(|((_, _, p), _)| rt.want(p))
        .collect::<anyhow::Result<Vec<Wanted>>>()?;
    if !missing.is_empty() {
        cache.ensure(&Net::new(), &missing, mode)?;
    }
    // Each layer's unpacking limit is shared by its packages, cached or not (limits.rs).
    let budgets: Vec<Budget> = todo.iter().map(|_| Budget::new(*limits)).collect();
    let read = parallel::map(
        &jobs.iter().zip(from_cache).collect::<Vec<_>>(),
        |((a, _, p), got)| {
            if let Some(c) = got {
                budgets[*a]
                    .charge_cached(c.unpacked)
                    .map_err(|limit| anyhow::anyhow!("{}: data.tar {limit}", p.name))?;
                return Ok(c.entries.clone());
            }
            // Verified again on the bytes actually used (the cache file could change between the
            // check and now).
            let bytes = cache.load(&rt.want(p)?)?;
            let c = deb::read(&p.name, &bytes, &rt.prune, &budgets[*a])?;
            unpacked.put(&unpacked_key(p), &p.name, &p.sha256, &c)?;
            Ok(c.entries)
        },
    )?;
    tracing::debug!(took = ?t.elapsed(), unpacked = missing.len(), packages = jobs.len(), "read the packages");
    let mut per_arch: Vec<BTreeMap<usize, Vec<deb::Entry>>> = vec![BTreeMap::new(); todo.len()];
    for ((a, i, _), entries) in jobs.iter().zip(read) {
        per_arch[*a].insert(*i, entries);
    }
    for ((arch, key, locked), entries) in todo.into_iter().zip(per_arch) {
        let named = locked
            .iter()
            .map(|p| p.name.as_str())
            .zip(entries.into_values())
            .collect();
        let tree = layer::merge_entries(named)
            .with_context(|| format!("assembling the runtime layer for {arch}"))?;
        plan.pending_arches.push((arch, locked.len()));
        plan.pending.push(Pending {
            what: format!("the runtime layer for {arch}"),
            key,
            listing: Some(Listing::of(&tree)),
            tree,
            epoch,
        });
    }
    Ok(plan)
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
    use std::io::Read;
    let mut out = Vec::with_capacity(xz.len() * 6);
    liblzma::read::XzDecoder::new_multi_decoder(xz)
        .read_to_end(&mut out)
        .context("decompressing Packages.xz")?;
    String::from_utf8(out).context("Packages is not UTF-8")
}
