//! The runtime layer: the locked packages of one arch merged into a `Tree` and checked; the
//! layer cache (image/cache.rs) keys it by its declared inputs (`Inputs`), so an app-only
//! rebuild never touches a `.deb`.
use std::collections::BTreeMap;

use anyhow::{bail, Context};
use serde::Serialize;

use super::deb::{self, Prune};
use super::limits::{Budget, Limits};
use super::lock::Locked;
use crate::image::json;
use crate::image::layer::{Node, Tree};
use crate::parallel;

/// A package's `.deb`, verified, ready to unpack.
pub struct Package<'a> {
    pub locked: &'a Locked,
    pub bytes: Vec<u8>,
}

/// Merge the packages, in the order given (the lock's), into one tree. A path provided twice
/// with different content is an error naming both packages; a directory may be provided by
/// several packages when they agree on its mode. Unpacking stays within `limits` (per package
/// and for all of them together).
pub fn merge(packages: &[Package<'_>], prune: &Prune, limits: &Limits) -> anyhow::Result<Tree> {
    let budget = Budget::new(*limits);
    // Decompressing data.tar.xz dominates; packages are independent, so read them on all
    // cores, then merge in lock order (the order, not the threads, decides the result).
    let read = parallel::map(packages, |p| {
        deb::read(&p.locked.name, &p.bytes, prune, &budget)
    })?;
    let named: Vec<(&str, Vec<deb::Entry>)> = packages
        .iter()
        .map(|p| p.locked.name.as_str())
        .zip(read.into_iter().map(|c| c.entries))
        .collect();
    merge_entries(named)
}

/// Merge each package's entries (already read, pruned and bounded), in the order given.
pub fn merge_entries(packages: Vec<(&str, Vec<deb::Entry>)>) -> anyhow::Result<Tree> {
    let mut tree = Tree::new();
    let mut owner: BTreeMap<String, &str> = BTreeMap::new();
    let mut cleared = 0;
    for (name, entries) in packages {
        for e in entries {
            if e.cleared != 0 {
                // Listed in lock order (`--verbose`), whatever order the threads finished in.
                tracing::debug!(package = name, path = %format!("/{}", e.path), bits = %format!("{:04o}", e.cleared), "cleared setuid/setgid");
                cleared += 1;
            }
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
    if cleared > 0 {
        tracing::info!(
            paths = cleared,
            "cleared setuid/setgid bits (`--verbose` lists them)"
        );
    }
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

/// Everything the runtime layer is made from, besides what every layer cache key holds (the
/// epoch, the tar format, the compressor): the layer cache keys it by this value's canonical
/// JSON (`cache::Source::Declared`), so a hit needs no `.deb`.
#[derive(Debug, Clone, Serialize)]
pub struct Inputs<'a> {
    /// `FORMAT`.
    pub format: u32,
    pub arch: &'a str,
    pub packages: Vec<&'a Locked>,
    pub prune: &'a [String],
    pub keep: &'a [String],
    /// The unpacking limits: they decide whether the layer may be built at all, so a layer
    /// cached under higher limits is not reused under lower ones (its packages are then
    /// charged again, from the unpacked-package cache's recorded sizes).
    pub limits: &'a Limits,
}

/// The `kind` of the runtime layer's declared inputs in the layer cache key.
pub const KIND: &str = "debian runtime layer";

/// How the layer is made from its packages, in the key: bump when that changes the bytes.
/// 2: setuid/setgid bits are cleared (issue 14).
pub const FORMAT: u32 = 2;

impl Inputs<'_> {
    pub fn canonical(&self) -> Vec<u8> {
        json::to_canonical(self)
    }
}
