//! The runtime layer: the locked packages of one arch merged into a `Tree`, checked, written
//! as a layer, and cached by its inputs so an app-only rebuild never touches a `.deb`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use super::deb::{self, Prune};
use super::lock::Locked;
use crate::epoch::Epoch;
use crate::image::arch::Arch;
use crate::image::compress::Compression;
use crate::image::layer::{normalise, Layer, Node, Tree};
use crate::image::store::{Blob, BlobStore};
use crate::image::{hash, json};

/// A package's `.deb`, verified, ready to unpack.
pub struct Package<'a> {
    pub locked: &'a Locked,
    pub bytes: Vec<u8>,
}

/// Merge the packages, in the order given (the lock's), into one tree. A path provided twice
/// with different content is an error naming both packages; a directory may be provided by
/// several packages when they agree on its mode.
pub fn merge(packages: &[Package<'_>], prune: &Prune) -> anyhow::Result<Tree> {
    let mut tree = Tree::new();
    let mut owner: BTreeMap<String, &str> = BTreeMap::new();
    // Decompressing data.tar.xz dominates; packages are independent, so read them on all
    // cores, then merge in lock order (the order, not the threads, decides the result).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = packages.len().div_ceil(threads).max(1);
    let read: Vec<anyhow::Result<Vec<deb::Entry>>> = std::thread::scope(|s| {
        let handles: Vec<_> = packages
            .chunks(chunk)
            .map(|ps| {
                s.spawn(move || {
                    ps.iter()
                        .map(|p| deb::read(&p.locked.name, &p.bytes, prune))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a .deb reader thread panicked"))
            .collect()
    });
    for (p, entries) in packages.iter().zip(read) {
        let name = p.locked.name.as_str();
        for e in entries? {
            if let Some(prev) = owner.get(e.path.as_str()) {
                let old = tree.get(&e.path).expect("owned paths are in the tree");
                if !same(old, &e.node) {
                    bail!(
                        "{} is provided by both {prev} and {name} with different content; the \
                         runtime layer cannot hold both",
                        e.path
                    );
                }
                continue;
            }
            tree.insert(&e.path, e.node).with_context(|| {
                format!(
                    "{name}: refusing {}: it would pass through a symlink or a file",
                    e.path
                )
            })?;
            owner.insert(e.path, name);
        }
    }
    check_links(&tree, &owner)?;
    Ok(tree)
}

fn same(a: &Node, b: &Node) -> bool {
    use crate::image::layer::Data;
    match (a, b) {
        (Node::Dir { mode: x }, Node::Dir { mode: y }) => x == y,
        (Node::Symlink { target: x }, Node::Symlink { target: y }) => x == y,
        (Node::Hardlink { target: x }, Node::Hardlink { target: y }) => x == y,
        (
            Node::File {
                mode: mx,
                data: Data::Bytes(x),
            },
            Node::File {
                mode: my,
                data: Data::Bytes(y),
            },
        ) => mx == my && x == y,
        _ => false,
    }
}

/// Every symlink must stay inside the root: a relative target may not climb above `/`, and an
/// absolute target must name something the layer itself provides (otherwise it points at
/// whatever the host or another image has there — a dangling or escaping link).
fn check_links(tree: &Tree, owner: &BTreeMap<String, &str>) -> anyhow::Result<()> {
    for (path, node) in tree.iter() {
        let Node::Symlink { target } = node else {
            continue;
        };
        let pkg = owner.get(path.as_str()).copied().unwrap_or("(unknown)");
        let mut comps: Vec<&str> = if target.starts_with('/') {
            Vec::new()
        } else {
            path.split('/').collect::<Vec<_>>()[..path.split('/').count() - 1].to_vec()
        };
        for c in target.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if comps.pop().is_none() {
                        bail!("{pkg}: refusing the symlink /{path} -> {target}: it points outside the root");
                    }
                }
                c => comps.push(c),
            }
        }
        if target.starts_with('/') && resolve(tree, &comps, 0).is_none() {
            bail!(
                "{pkg}: refusing the symlink /{path} -> {target}: an absolute target outside \
                 what the runtime layer provides"
            );
        }
    }
    Ok(())
}

/// Follow `comps` through the tree, resolving symlinks (at most 40, as Linux does).
fn resolve<'a>(tree: &'a Tree, comps: &[&str], hops: usize) -> Option<&'a Node> {
    if hops > 40 {
        return None;
    }
    let mut cur: Vec<String> = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        cur.push((*c).to_owned());
        let node = tree.get(&cur.join("/"))?;
        if let Node::Symlink { target } = node {
            let mut next: Vec<String> = if target.starts_with('/') {
                Vec::new()
            } else {
                cur[..cur.len() - 1].to_vec()
            };
            for t in target.split('/') {
                match t {
                    "" | "." => {}
                    ".." => {
                        next.pop()?;
                    }
                    t => next.push(t.to_owned()),
                }
            }
            next.extend(comps[i + 1..].iter().map(|s| (*s).to_owned()));
            let refs: Vec<&str> = next.iter().map(String::as_str).collect();
            return resolve(tree, &refs, hops + 1);
        }
    }
    if cur.is_empty() {
        return None;
    }
    tree.get(&cur.join("/"))
}

/// The app layer goes on top of the runtime layer: a path in both is an error unless both
/// are directories with the same mode (then the upper one, the app's, would win anyway).
/// /etc/passwd and /etc/group come from the app layer; Debian's base-passwd is not in the
/// closure, so no package provides them. A symlink of the app layer (`/bin/sh -> bash`) must
/// name a path one of the two layers has.
pub fn check_app_over_runtime(runtime: &Listing, app: &Tree) -> anyhow::Result<()> {
    let mut dangling = Vec::new();
    for (path, node) in app.iter() {
        let Node::Symlink { target } = node else {
            continue;
        };
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        let joined = if target.starts_with('/') {
            target.clone()
        } else {
            format!("{dir}/{target}")
        };
        let found = normalise(&joined)
            .is_ok_and(|t| runtime.paths.contains_key(&t) || app.get(&t).is_some());
        if !found {
            dangling.push(format!("/{path} -> {target}"));
        }
    }
    if !dangling.is_empty() {
        bail!(
            "the app layer's symlinks point at nothing in the image: {}; add the package that \
             provides the target to addon/runtime.toml",
            dangling.join(", ")
        );
    }
    let mut clashes = Vec::new();
    for (path, node) in app.iter() {
        let Some(kind) = runtime.paths.get(path) else {
            continue;
        };
        let app_kind = kind_of(node);
        if !(app_kind == *kind && app_kind.starts_with('d')) {
            clashes.push(format!("/{path} (runtime: {kind}, app: {app_kind})"));
        }
    }
    if !clashes.is_empty() {
        bail!(
            "the app layer would shadow files of the runtime layer: {}; rename the app's file or \
             prune the package's in addon/runtime.toml",
            clashes.join(", ")
        );
    }
    Ok(())
}

fn kind_of(node: &Node) -> String {
    match node {
        Node::Dir { mode } => format!("dir {mode:04o}"),
        Node::File { mode, .. } => format!("file {mode:04o}"),
        Node::Symlink { .. } => "symlink".to_owned(),
        Node::Hardlink { .. } => "hardlink".to_owned(),
    }
}

/// The path -> kind listing of a runtime layer, kept in the cache index so the collision
/// check with the app layer needs no `.deb`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub paths: BTreeMap<String, String>,
}

impl Listing {
    pub fn of(tree: &Tree) -> Listing {
        Listing {
            paths: tree.iter().map(|(p, n)| (p.clone(), kind_of(n))).collect(),
        }
    }
}

/// Everything that determines the runtime layer's bytes. Its canonical JSON's sha256 is the
/// cache key: change any input and the layer is rebuilt.
#[derive(Debug, Clone, Serialize)]
pub struct Inputs<'a> {
    /// Bumped whenever the way the layer is built changes.
    pub format: u32,
    pub arch: &'a str,
    pub packages: Vec<&'a Locked>,
    pub prune: &'a [String],
    pub keep: &'a [String],
    pub epoch: u64,
    /// The compressor's identity (`Compression::identity`: algorithm, level, the pinned
    /// versions of the code): the layer digest depends on all of them.
    pub compressor: String,
}

pub const FORMAT: u32 = 1;

impl Inputs<'_> {
    pub fn key(&self) -> String {
        hash::sha256(&json::to_canonical(self))
            .trim_start_matches("sha256:")
            .to_owned()
    }
}

/// One cache index entry: target/images/runtime-cache/<key>.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    digest: String,
    size: u64,
    media_type: String,
    diff_id: String,
    uncompressed_size: u64,
    listing: Listing,
}

pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    pub fn new(dir: &Path) -> LayerCache {
        LayerCache {
            dir: dir.to_owned(),
        }
    }

    fn index(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The cached layer for `key`, if its index entry exists and its blob is intact.
    pub fn get(&self, store: &BlobStore, key: &str) -> Option<(Layer, Listing)> {
        let bytes = std::fs::read(self.index(key)).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        let path = store.path(&e.digest);
        let blob = std::fs::read(&path).ok()?;
        if blob.len() as u64 != e.size || hash::sha256(&blob) != e.digest {
            tracing::warn!(
                key,
                "cached runtime layer blob is missing or corrupt; rebuilding"
            );
            return None;
        }
        Some((
            Layer {
                blob: Blob {
                    digest: e.digest,
                    size: e.size,
                    media_type: e.media_type,
                    path,
                },
                diff_id: e.diff_id,
                uncompressed_size: e.uncompressed_size,
            },
            e.listing,
        ))
    }

    pub fn put(&self, key: &str, layer: &Layer, listing: &Listing) -> anyhow::Result<()> {
        let e = Entry {
            digest: layer.blob.digest.clone(),
            size: layer.blob.size,
            media_type: layer.blob.media_type.clone(),
            diff_id: layer.diff_id.clone(),
            uncompressed_size: layer.uncompressed_size,
            listing: listing.clone(),
        };
        crate::atomic::write(&self.index(key), &json::to_canonical(&e))
            .context("writing the runtime layer cache index")
    }
}

/// Build (not cached) the runtime layer of `arch` from verified packages.
pub fn build(
    store: &BlobStore,
    arch: Arch,
    packages: &[Package<'_>],
    prune: &Prune,
    epoch: Epoch,
    compression: Compression,
) -> anyhow::Result<(Layer, Listing)> {
    let t = std::time::Instant::now();
    let tree = merge(packages, prune)
        .with_context(|| format!("assembling the runtime layer for {arch}"))?;
    tracing::debug!(%arch, took = ?t.elapsed(), entries = tree.len(), "unpacked and merged");
    let layer = tree
        .write_layer_with(store, epoch, compression)
        .with_context(|| format!("writing the runtime layer for {arch}"))?;
    Ok((layer, Listing::of(&tree)))
}
