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
pub mod unpacked;
pub mod version;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use self::cache::{Cache, Mode, Wanted};
use self::deb::Prune;
use self::layer::Inputs;
use self::lock::{Declaration, IndexRef, Lock, Locked, Source, LOCK_VERSION};
use self::net::Net;
use self::release::Release;
use self::resolve::Index;
use self::trust::Keyring;
use self::unpacked::Unpacked;
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
/// the prune rules, the epoch, the compressor: `layer::Inputs` and the cache key) are
/// unchanged, so no `.deb` is read; else its tree, merged from the unpacked-package cache
/// (runtime/unpacked.rs) or, for packages not in it, from verified cached `.deb`s, downloading
/// missing ones first unless offline. Every `.deb` a layer needs is present and verified
/// before anything is unpacked, so a bad lock fails with nothing written.
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
            arch: arch.debian_arch(),
            packages: locked.clone(),
            prune: &rt.decl.prune,
            keep: &rt.decl.keep,
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

    // Every package of every arch still to build, biggest .deb first (the longest unpack).
    let unpacked = cache.unpacked()?;
    let mut jobs: Vec<(usize, usize, &Locked)> = todo
        .iter()
        .enumerate()
        .flat_map(|(a, (_, _, locked))| locked.iter().enumerate().map(move |(i, p)| (a, i, *p)))
        .collect();
    jobs.sort_by_key(|(_, _, p)| std::cmp::Reverse(p.size));
    let t = std::time::Instant::now();
    let from_cache = parallel::map(&jobs, |(_, _, p)| {
        Ok(unpacked.get(&Unpacked::key(&p.sha256, &rt.prune), &p.name))
    })?;
    let missing: Vec<Wanted> = jobs
        .iter()
        .zip(&from_cache)
        .filter(|(_, got)| got.is_none())
        .map(|((_, _, p), _)| wanted(p))
        .collect();
    if !missing.is_empty() {
        cache.ensure(&Net::new(), rt.decl.mirror(), &missing, mode)?;
    }
    let read = parallel::map(
        &jobs.iter().zip(from_cache).collect::<Vec<_>>(),
        |((_, _, p), got)| {
            if let Some(entries) = got {
                return Ok(entries.clone());
            }
            // Verified again on the bytes actually used (the cache file could change between the
            // check and now).
            let bytes = cache.load(&wanted(p))?;
            let entries = deb::read(&p.name, &bytes, &rt.prune)?;
            unpacked.put(
                &Unpacked::key(&p.sha256, &rt.prune),
                &p.name,
                &p.sha256,
                &entries,
            )?;
            Ok(entries)
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
    use std::io::Read;
    let mut out = Vec::with_capacity(xz.len() * 6);
    liblzma::read::XzDecoder::new_multi_decoder(xz)
        .read_to_end(&mut out)
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
