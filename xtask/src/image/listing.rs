//! What a lower layer holds, path by path, and the check that an upper layer does not shadow
//! it. Kept in the layer cache entry, so stacking the app layer on a cached runtime layer
//! needs neither the lower layer's tree nor its sources.
use std::collections::BTreeMap;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::layer::{normalise, Node, Tree};

/// The path -> kind listing of a layer (`dir 0755`, `file 0644`, `symlink`, `hardlink`).
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

fn kind_of(node: &Node) -> String {
    match node {
        Node::Dir { mode } => format!("dir {mode:04o}"),
        Node::File { mode, .. } => format!("file {mode:04o}"),
        Node::Symlink { .. } => "symlink".to_owned(),
        Node::Hardlink { .. } => "hardlink".to_owned(),
    }
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
