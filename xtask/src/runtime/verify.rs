//! Offline verification of the lock against what Debian signed (issue 14): a lock edited to
//! match a hostile `.deb` (its sha256, its version, a zeroed InRelease digest) must be refused
//! before anything is fetched or unpacked, not only when the bytes fail their lock entry.
//!
//! The chain, every link checked without network:
//! 1. each suite's InRelease, kept beside the lock in `addon/runtime.lock.d/<suite>.InRelease`
//!    (committed: a fresh clone has it, and no mirror serves an old InRelease), has the lock's
//!    `inrelease_sha256`, carries a good signature by a key in `xtask/keys/` (valid at the
//!    release's date: an old lock stays verifiable after a key expires, never after it is
//!    revoked), and is the release of that suite at the lock's date;
//! 2. it lists each locked `Packages.xz` with the locked size and sha256;
//! 3. each locked package is in its suite's `Packages` (from the download cache, checked
//!    against that sha256) with the same version, pool path, size and sha256.
//!
//! 1 and 2 run whenever the lock is loaded; 3 where packages are fetched or unpacked (`fetch`,
//! `image`) and in `lock --check` for the indexes already cached. A check of 3 that passed is
//! remembered in the cache (`verified/<key>`, the key a digest of the index's sha256 and the
//! entries checked), so it costs one decompression per lock, not one per build.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;

use super::cache::{Cache, Wanted};
use super::deb822;
use super::lock::{self, Lock, Locked, SuiteLock};
use super::release::Release;
use super::trust::Keyring;
use crate::arch::Arch;
use crate::image::{hash, json};

/// The InRelease of `suite` in the lock's directory.
pub fn inrelease_path(dir: &Path, suite: &str) -> PathBuf {
    dir.join(format!("{suite}.InRelease"))
}

/// Steps 1 and 2 (see the module doc) for every suite; every disagreement in one error.
pub fn verify_releases(
    lock: &Lock,
    dir: &Path,
    keyring: &Keyring,
) -> anyhow::Result<BTreeMap<String, Release>> {
    let mut problems = Vec::new();
    let mut releases = BTreeMap::new();
    for s in &lock.source.suites {
        match verify_release(lock, s, dir, keyring) {
            Ok(r) => {
                releases.insert(s.name.clone(), r);
            }
            Err(e) => problems.push(format!("suite {}: {e:#}", s.name)),
        }
    }
    let newest = lock
        .source
        .suites
        .iter()
        .filter_map(|s| lock::release_date_key(&s.date).ok().map(|k| (k, &s.date)))
        .max();
    if let Some((_, newest)) = newest {
        if *newest != lock.source.date {
            problems.push(format!(
                "the lock's date {:?} is not its newest suite's date {newest:?}",
                lock.source.date
            ));
        }
    }
    refuse(
        "addon/runtime.lock disagrees with the signed Debian releases it names",
        problems,
    )?;
    Ok(releases)
}

fn verify_release(
    lock: &Lock,
    s: &SuiteLock,
    dir: &Path,
    keyring: &Keyring,
) -> anyhow::Result<Release> {
    let path = inrelease_path(dir, &s.name);
    let raw = std::fs::read(&path).with_context(|| {
        format!(
            "reading {} (the InRelease the lock was made from; `cargo xtask lock` writes it)",
            path.display()
        )
    })?;
    let actual = hex_sha256(&raw);
    if actual != s.inrelease_sha256 {
        bail!(
            "the lock's inrelease_sha256 is {} but {} has sha256 {actual}",
            s.inrelease_sha256,
            path.display()
        );
    }
    let text = std::str::from_utf8(&raw).context("InRelease is not UTF-8")?;
    let signed_at = lock::release_date_unix(&s.date)?;
    let at = pgp::types::Timestamp::from_secs(u32::try_from(signed_at).unwrap_or(u32::MAX));
    let (signed, _) = keyring
        .verify_inrelease(text, at)
        .with_context(|| format!("verifying {}", path.display()))?;
    let release = Release::parse(&signed)?;
    if release.suite != s.name {
        bail!(
            "{} is the release of {:?}, not {:?}",
            path.display(),
            release.suite,
            s.name
        );
    }
    if release.date != s.date {
        bail!(
            "the lock says the release is dated {:?}, the signed release says {:?}",
            s.date,
            release.date
        );
    }
    if release.acquire_by_hash != s.acquire_by_hash {
        bail!("the lock's acquire_by_hash is not what the signed release says");
    }
    for (arch, i) in &s.index {
        let want = format!("{}/binary-{arch}/Packages.xz", lock.source.component);
        if i.path != want {
            bail!("the index for {arch} is {:?}, not {want:?}", i.path);
        }
        let (size, sha) = release.index(&i.path)?;
        if size != i.size || sha != i.sha256 {
            bail!(
                "the lock says {} is {} bytes with sha256 {}; the signed release lists {size} \
                 bytes with sha256 {sha}",
                i.path,
                i.size,
                i.sha256
            );
        }
    }
    Ok(release)
}

/// One suite's Packages index for one arch, and the locked packages it must list.
pub struct IndexCheck<'a> {
    pub suite: &'a SuiteLock,
    pub arch: String,
    pub wanted: Wanted,
    pub packages: Vec<&'a Locked>,
}

/// The indexes that vouch for the locked packages of `arches` (those suites that supply at
/// least one); `mirrors(suite)` says where each can be fetched.
pub fn index_checks<'a>(
    lock: &'a Lock,
    arches: &[Arch],
    mirrors: impl Fn(&str) -> anyhow::Result<Vec<String>>,
) -> anyhow::Result<Vec<IndexCheck<'a>>> {
    let mut out = Vec::new();
    for &arch in arches {
        let a = arch.debian_arch();
        for s in &lock.source.suites {
            let packages: Vec<&Locked> = lock
                .for_arch(arch)
                .into_iter()
                .filter(|p| p.suite == s.name)
                .collect();
            if packages.is_empty() {
                continue;
            }
            let (Some(i), Some(url_path)) =
                (s.index.get(a), s.index_url_path(&lock.source.component, a))
            else {
                bail!(
                    "suite {}: the lock records no package index for {a}; run `cargo xtask lock`",
                    s.name
                );
            };
            out.push(IndexCheck {
                suite: s,
                arch: a.to_owned(),
                wanted: Wanted {
                    what: format!("{} of {}", i.path, s.name),
                    mirrors: mirrors(&s.name)?,
                    url_path,
                    size: i.size,
                    sha256: i.sha256.clone(),
                },
                packages,
            });
        }
    }
    Ok(out)
}

/// What step 3 does with an index that is not in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncached {
    /// It was fetched just before: its absence is an error.
    Fail,
    /// Report it (offline `lock --check` on a machine that never fetched).
    Skip,
}

/// Has step 3 passed for `c` before (with this very index and these entries)?
pub fn passed(c: &IndexCheck<'_>, cache: &Cache) -> bool {
    cache.marker_path(&memo_key(c)).exists()
}

/// Step 3 for `checks`; returns the indexes skipped as not cached (see `Uncached`).
pub fn verify_packages(
    checks: &[IndexCheck<'_>],
    cache: &Cache,
    uncached: Uncached,
) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut skipped = Vec::new();
    for c in checks {
        if passed(c, cache) {
            continue;
        }
        let xz = match (cache.get(&c.wanted)?, uncached) {
            (Some(xz), _) => xz,
            (None, Uncached::Skip) => {
                skipped.push(format!("{} ({})", c.wanted.what, c.arch));
                continue;
            }
            (None, Uncached::Fail) => bail!(
                "{} is not in the download cache; run `cargo xtask fetch`",
                c.wanted.what
            ),
        };
        let text = super::packages_text(&xz)?;
        let before = problems.len();
        check_entries(c, &text, &mut problems)?;
        if problems.len() == before {
            crate::atomic::write(&cache.marker_path(&memo_key(c)), b"")?;
        }
    }
    refuse(
        "addon/runtime.lock disagrees with Debian's signed package indexes",
        problems,
    )?;
    Ok(skipped)
}

/// Every package of `c` in the index `text`, exactly as locked.
fn check_entries(c: &IndexCheck<'_>, text: &str, problems: &mut Vec<String>) -> anyhow::Result<()> {
    let names: BTreeSet<&str> = c.packages.iter().map(|p| p.name.as_str()).collect();
    // Only the stanzas of locked names are parsed: the whole index is some 60 000.
    let mut found: BTreeMap<&str, Vec<deb822::Paragraph>> = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let first = stanza.trim_start_matches('\n').lines().next().unwrap_or("");
        let Some(name) = first.strip_prefix("Package:").map(str::trim) else {
            continue;
        };
        if let Some(&n) = names.get(name) {
            found
                .entry(n)
                .or_default()
                .extend(deb822::parse(stanza).context("parsing the Packages index")?);
        }
    }
    for p in &c.packages {
        let who = format!("{} {} ({}, {})", p.name, p.version, p.arch, p.suite);
        let entries = found.get(p.name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let Some(e) = entries
            .iter()
            .find(|e| e.get("Version") == Some(&p.version))
        else {
            let versions: Vec<&str> = entries.iter().filter_map(|e| e.get("Version")).collect();
            problems.push(if versions.is_empty() {
                format!("{who}: {} does not list {}", c.wanted.what, p.name)
            } else {
                format!(
                    "{who}: {} lists {} only at {}",
                    c.wanted.what,
                    p.name,
                    versions.join(", ")
                )
            });
            continue;
        };
        for (field, locked) in [
            ("Filename", p.filename.clone()),
            ("Size", p.size.to_string()),
            ("SHA256", p.sha256.clone()),
        ] {
            let signed = e.get(field).unwrap_or("(missing)");
            if signed != locked {
                problems.push(format!(
                    "{who}: the lock says {field} {locked}, the signed index says {signed}"
                ));
            }
        }
    }
    Ok(())
}

/// What a passed step 3 depends on: the index (by sha256) and the entries checked in it.
fn memo_key(c: &IndexCheck<'_>) -> String {
    #[derive(Serialize)]
    struct Key<'a> {
        check: &'static str,
        index_sha256: &'a str,
        packages: &'a [&'a Locked],
    }
    let key = Key {
        check: "runtime lock entries in Packages, v1",
        index_sha256: &c.wanted.sha256,
        packages: &c.packages,
    };
    hex_sha256(&json::to_canonical(&key))
}

fn refuse(what: &str, problems: Vec<String>) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "{what}:\n  - {}\nthe lock was edited by hand or tampered with, or the files beside it \
         are not the ones it was made from: run `cargo xtask lock` to resolve it again from the \
         signed release, and review the diff before committing",
        problems.join("\n  - ")
    )
}

fn hex_sha256(bytes: &[u8]) -> String {
    hash::sha256(bytes).trim_start_matches("sha256:").to_owned()
}
