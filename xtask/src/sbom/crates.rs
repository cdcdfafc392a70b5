//! The Rust crates compiled into `fluxion-main` for one target.
//!
//! Two questions to cargo, both `--locked --offline` (the answer is Cargo.lock's, never a fresh
//! resolution): `cargo metadata --filter-platform <target>` for what each package is (licence,
//! source), and `cargo tree -p fluxion --target <target> -e normal,no-proc-macro` for which
//! packages that build compiles and what depends on what. `cargo metadata`'s resolve alone is
//! not enough: it unifies features across the whole workspace, so the xtask's dependencies
//! switch on optional dependencies that `fluxion-main` never compiles (22 extra crates for
//! amd64 when measured: aho-corasick, indexmap, log, ...); `cargo tree -p` resolves features
//! for the one package, as `cargo build -p fluxion` does (resolver 2). Build dependencies and
//! proc-macros run on the build host and put no code of their own into the binary, so they are
//! not listed. Each crate is resolved against Cargo.lock for its checksum (the sha256 of the
//! `.crate` file cargo verified).
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;
use xshell::{cmd, Shell};

use crate::arch::Arch;

/// One crate in the binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, Deserialize)]
pub struct Crate {
    pub name: String,
    pub version: String,
    /// Cargo's `license` field, if any.
    pub license: Option<String>,
    /// sha256 of the `.crate` (Cargo.lock `checksum`); None for workspace members.
    pub checksum: Option<String>,
    /// From crates.io (the only registry the workspace uses), else a path or git source.
    pub registry: bool,
    /// The crates it depends on, as `(name, version)`.
    pub deps: BTreeSet<(String, String)>,
}

/// The root crate (`fluxion`) and every crate compiled into its binary for `arch`.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct Crates {
    pub root: Crate,
    pub deps: Vec<Crate>,
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    license: Option<String>,
    source: Option<String>,
}

#[derive(Deserialize)]
struct CargoLock {
    #[serde(default)]
    package: Vec<LockedCrate>,
}

#[derive(Deserialize)]
struct LockedCrate {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

/// Ask cargo (offline, locked) for the crates of `fluxion-main` on `arch`.
pub fn of(root: &Path, arch: Arch) -> anyhow::Result<Crates> {
    let sh = Shell::new()?;
    let _dir = sh.push_dir(root);
    let target = arch.rust_target();
    let hint = "Cargo.lock must be up to date and the crates downloaded: run `cargo fetch`";
    let metadata = cmd!(
        sh,
        "cargo metadata --format-version 1 --filter-platform {target} --locked --offline"
    )
    .quiet()
    .read()
    .with_context(|| {
        format!("running `cargo metadata --filter-platform {target}` for the SBOM ({hint})")
    })?;
    let format = "{p}";
    let tree = cmd!(
        sh,
        "cargo tree -p fluxion --target {target} -e normal,no-proc-macro --prefix depth -f {format} --locked --offline"
    )
    .quiet()
    .read()
    .with_context(|| format!("running `cargo tree -p fluxion --target {target}` for the SBOM ({hint})"))?;
    let lock = std::fs::read_to_string(root.join("Cargo.lock"))
        .with_context(|| format!("reading {}", root.join("Cargo.lock").display()))?;
    walk(&metadata, &tree, &lock)
}

/// `name vVERSION` of one `cargo tree -f {p}` line (after the depth), and its depth.
fn tree_line(line: &str) -> anyhow::Result<(usize, (String, String))> {
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    let depth = line[..digits]
        .parse()
        .with_context(|| format!("`cargo tree` printed {line:?}, which has no depth"))?;
    let mut words = line[digits..].split_whitespace();
    match (words.next(), words.next().and_then(|v| v.strip_prefix('v'))) {
        (Some(name), Some(version)) => Ok((depth, (name.to_owned(), version.to_owned()))),
        _ => bail!("`cargo tree` printed {line:?}, not `name vVERSION`"),
    }
}

/// The crates from `cargo metadata`'s JSON, `cargo tree --prefix depth -f {p}`'s text and
/// Cargo.lock's text.
pub fn walk(metadata: &str, tree: &str, cargo_lock: &str) -> anyhow::Result<Crates> {
    let m: Metadata = serde_json::from_str(metadata).context("parsing `cargo metadata` output")?;
    let lock: CargoLock = toml::from_str(cargo_lock).context("parsing Cargo.lock")?;
    // The dependency edges, from the tree's indentation: a line's parent is the nearest line
    // above it one level up. A repeated subtree (`(*)`) is listed once, its edges with it.
    let mut edges: BTreeMap<(String, String), BTreeSet<(String, String)>> = BTreeMap::new();
    let mut path: Vec<(String, String)> = Vec::new();
    for line in tree.lines().filter(|l| !l.trim().is_empty()) {
        let (depth, node) = tree_line(line)?;
        if depth > path.len() {
            bail!("`cargo tree` printed {line:?} below no parent");
        }
        path.truncate(depth);
        if let Some(parent) = path.last() {
            edges
                .entry(parent.clone())
                .or_default()
                .insert(node.clone());
        }
        edges.entry(node.clone()).or_default();
        path.push(node);
    }
    let Some(root) = tree
        .lines()
        .next()
        .map(tree_line)
        .transpose()?
        .map(|(_, n)| n)
    else {
        bail!("`cargo tree -p fluxion` printed nothing");
    };
    let packages: BTreeMap<(&str, &str), &Package> = m
        .packages
        .iter()
        .map(|p| ((p.name.as_str(), p.version.as_str()), p))
        .collect();
    let checksums: BTreeMap<(&str, &str, Option<&str>), Option<&str>> = lock
        .package
        .iter()
        .map(|p| {
            (
                (p.name.as_str(), p.version.as_str(), p.source.as_deref()),
                p.checksum.as_deref(),
            )
        })
        .collect();
    let mut root_crate = None;
    let mut deps = Vec::new();
    for ((name, version), to) in edges {
        let Some(p) = packages.get(&(name.as_str(), version.as_str())) else {
            bail!("`cargo tree` lists {name} {version}, which `cargo metadata` does not");
        };
        let Some(checksum) = checksums.get(&(name.as_str(), version.as_str(), p.source.as_deref()))
        else {
            bail!(
                "{name} {version} is not in Cargo.lock; run `cargo update -p {name}` or \
                 `cargo build` to update the lock"
            );
        };
        let c = Crate {
            license: p.license.clone(),
            checksum: checksum.map(str::to_owned),
            registry: p
                .source
                .as_deref()
                .is_some_and(|s| s.starts_with("registry+") || s.starts_with("sparse+")),
            deps: to,
            name,
            version,
        };
        if (c.name.as_str(), c.version.as_str()) == (root.0.as_str(), root.1.as_str()) {
            root_crate = Some(c);
        } else {
            deps.push(c);
        }
    }
    Ok(Crates {
        root: root_crate.context("the root of `cargo tree` is missing")?,
        deps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = r#"{"packages":[
 {"name":"fluxion","version":"0.9.0","license":"MIT","source":null},
 {"name":"tokio","version":"1.0.0","license":"MIT","source":"registry+https://github.com/rust-lang/crates.io-index"},
 {"name":"bytes","version":"1.1.0","license":null,"source":"registry+https://github.com/rust-lang/crates.io-index"},
 {"name":"indexmap","version":"2.0.0","license":"MIT/Apache-2.0","source":"registry+https://github.com/rust-lang/crates.io-index"}
]}"#;

    // What `cargo tree --prefix depth -f {p}` prints: bytes twice, the second time `(*)`.
    const TREE: &str =
        "0fluxion v0.9.0 (/w/fluxion)\n1bytes v1.1.0\n1tokio v1.0.0\n2bytes v1.1.0 (*)\n";

    const LOCK: &str = r#"version = 4
[[package]]
name = "fluxion"
version = "0.9.0"

[[package]]
name = "tokio"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "aa"

[[package]]
name = "bytes"
version = "1.1.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "dd"

[[package]]
name = "indexmap"
version = "2.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "ee"
"#;

    #[test]
    fn the_crates_of_the_tree_with_metadata_and_lock_facts() {
        let c = walk(META, TREE, LOCK).unwrap();
        assert_eq!(c.root.name, "fluxion");
        assert_eq!(c.root.checksum, None);
        assert!(!c.root.registry);
        let names: Vec<(&str, Option<&str>)> = c
            .deps
            .iter()
            .map(|d| (d.name.as_str(), d.checksum.as_deref()))
            .collect();
        // indexmap is in the metadata (another workspace member wants it), not in the tree.
        assert_eq!(names, [("bytes", Some("dd")), ("tokio", Some("aa"))]);
        let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        assert_eq!(
            c.root.deps,
            BTreeSet::from([pair("bytes", "1.1.0"), pair("tokio", "1.0.0")])
        );
        assert_eq!(c.deps[1].deps, BTreeSet::from([pair("bytes", "1.1.0")]));
        // A crate missing from the lock is an error naming it.
        let err = walk(META, TREE, &LOCK.replace("\"bytes\"", "\"bytez\"")).unwrap_err();
        assert!(
            err.to_string().contains("bytes 1.1.0 is not in Cargo.lock"),
            "{err}"
        );
        assert!(walk(META, "1orphan v1.0.0\n", LOCK).is_err());
    }
}
