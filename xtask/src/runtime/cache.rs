//! The download cache: content-addressed by sha256 (`<cache>/sha256/<hex>`), every file
//! verified by size and digest before use; bad files are removed, never used, never kept.
//!
//! Location: `$FLUXION_CACHE_DIR`, else `$XDG_CACHE_HOME/fluxion-xtask`, else
//! `~/.cache/fluxion-xtask`; the unpacked-package cache (runtime/unpacked.rs) lives beside it
//! in `unpacked/`. Downloads run concurrently (a few threads: the work is waiting on
//! the network, not CPU) with an indicatif progress bar.
//!
//! Locks that keep building (issue 14): each file names its mirrors in order (the suite's
//! mirror, then its `fallback_mirrors`). When one answers 404, or bytes that are not the
//! locked ones, the next is asked, with the same size and sha256 check; when none has it the
//! error names the file, every URL tried with what it answered, and the fix. The fallback is
//! decided here, above `Net`'s plain GET, so it does not depend on the HTTP client.
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use super::net::{self, Net};
use crate::atomic::AtomicFile;
use crate::image::hash::HashWriter;

/// How many downloads run at once.
const PARALLEL: usize = 4;

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    dir: PathBuf,
}

/// Something the cache should hold: a display name for messages, where to get it (the base
/// URLs to try in order, and the path below each), and what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub what: String,
    pub mirrors: Vec<String>,
    pub url_path: String,
    pub size: u64,
    pub sha256: String,
}

/// Whether downloads are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Online,
    Offline,
}

impl Cache {
    pub fn default_dir() -> anyhow::Result<PathBuf> {
        crate::host::cache_dir()
    }

    pub fn open_default() -> anyhow::Result<Cache> {
        Cache::open(&Cache::default_dir()?)
    }

    pub fn open(dir: &Path) -> anyhow::Result<Cache> {
        let root = dir.to_owned();
        let dir = dir.join("sha256");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the download cache {}", dir.display()))?;
        Ok(Cache { root, dir })
    }

    /// The unpacked-package cache beside the downloads.
    pub fn unpacked(&self) -> anyhow::Result<super::unpacked::Unpacked> {
        super::unpacked::Unpacked::open(&self.unpacked_dir())
    }

    pub fn unpacked_dir(&self) -> PathBuf {
        self.root.join("unpacked")
    }

    /// The directories this cache writes files into (for the temp-file sweeps).
    pub fn dirs(&self) -> Vec<PathBuf> {
        vec![self.dir.clone(), self.unpacked_dir(), self.verified_dir()]
    }

    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    /// The marker of a check that passed (`verify.rs`), beside the content-addressed files:
    /// `<cache>/verified/<key>`.
    pub fn marker_path(&self, key: &str) -> PathBuf {
        self.verified_dir().join(key)
    }

    /// Where the markers of passed checks are.
    pub fn verified_dir(&self) -> PathBuf {
        self.root.join("verified")
    }

    /// The verified bytes of `w`, or None when it is not cached. A cached file with the wrong
    /// size or digest is removed (and reported in the log) and counts as not cached.
    pub fn get(&self, w: &Wanted) -> anyhow::Result<Option<Vec<u8>>> {
        let path = self.path(&w.sha256);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        match verify(w, &bytes) {
            Ok(()) => Ok(Some(bytes)),
            Err(e) => {
                tracing::warn!("removing a corrupt cache entry: {e:#}");
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing the corrupt {}", path.display()))?;
                Ok(None)
            }
        }
    }

    /// Like `get`, but a missing or corrupt entry is an error saying how to fetch it.
    pub fn load(&self, w: &Wanted) -> anyhow::Result<Vec<u8>> {
        self.get(w)?.with_context(|| {
            format!(
                "{} is not in the download cache {} (or was corrupt and has been removed); run \
                 `cargo xtask fetch`",
                w.what,
                self.dir.display()
            )
        })
    }

    /// Store `bytes` (already in memory) after checking them.
    pub fn put(&self, w: &Wanted, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        verify(w, bytes)?;
        let path = self.path(&w.sha256);
        crate::atomic::write(&path, bytes)?;
        Ok(path)
    }

    /// Make sure every wanted file is cached and intact, downloading what is missing unless
    /// `mode` is offline or a mirror is unreachable; then every missing file is listed in
    /// one error.
    pub fn ensure(&self, net: &Net, wanted: &[Wanted], mode: Mode) -> anyhow::Result<()> {
        let mut missing = Vec::new();
        for w in wanted {
            if self.get(w)?.is_none() {
                missing.push(w);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let why = match mode {
            Mode::Offline => Some("--offline was given".to_owned()),
            // Only the first mirror of each file is probed: when it is down, so is the network
            // more often than not, and the build should behave as offline, not wait on timeouts.
            Mode::Online => {
                let firsts: std::collections::BTreeSet<&str> = missing
                    .iter()
                    .filter_map(|w| w.mirrors.first().map(String::as_str))
                    .collect();
                firsts.iter().find_map(|m| {
                    reachable(m)
                        .err()
                        .map(|e| format!("the mirror {m} is unreachable ({e:#})"))
                })
            }
        };
        if let Some(why) = why {
            let list: Vec<String> = missing.iter().map(|w| format!("  - {}", w.what)).collect();
            bail!(
                "{} package file(s) are not in the download cache {} and {why}:\n{}\nrun \
                 `cargo xtask fetch` with network access to download them",
                missing.len(),
                self.dir.display(),
                list.join("\n")
            );
        }
        self.download(net, &missing)
    }

    fn download(&self, net: &Net, items: &[&Wanted]) -> anyhow::Result<()> {
        let total: u64 = items.iter().map(|w| w.size).sum();
        let bar = indicatif::ProgressBar::new(total).with_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("a valid progress template")
            .progress_chars("=> "),
        );
        bar.set_message("fetching");
        tracing::info!(
            files = items.len(),
            bytes = total,
            "downloading into {}",
            self.dir.display()
        );
        let next = Mutex::new(items.iter());
        let errors = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..PARALLEL.min(items.len()) {
                s.spawn(|| loop {
                    let Some(w) = next.lock().expect("queue lock").next() else {
                        break;
                    };
                    if let Err(e) = self.fetch_one(net, w, &bar) {
                        errors.lock().expect("error lock").push(format!("{e:#}"));
                    }
                });
            }
        });
        bar.finish_and_clear();
        let errors = errors.into_inner().expect("error lock");
        if !errors.is_empty() {
            bail!(
                "{} download(s) failed:\n  - {}",
                errors.len(),
                errors.join("\n  - ")
            );
        }
        Ok(())
    }

    /// Fetch `w` from the first of its mirrors that has it (see the module doc).
    fn fetch_one(&self, net: &Net, w: &Wanted, bar: &indicatif::ProgressBar) -> anyhow::Result<()> {
        let mut tried = Vec::new();
        for mirror in &w.mirrors {
            let url = format!("{}/{}", mirror.trim_end_matches('/'), w.url_path);
            match self.download_one(net, &url, w, bar) {
                Ok(()) => {
                    if !tried.is_empty() {
                        tracing::info!(what = %w.what, %url, "fetched from a fallback mirror");
                    }
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(what = %w.what, %url, "not fetched: {e:#}");
                    tried.push((url, e));
                }
            }
        }
        let gone = tried.iter().any(|(_, e)| {
            net::is_not_found(e) || e.chain().any(|c| c.downcast_ref::<Mismatch>().is_some())
        });
        let list: Vec<String> = tried
            .iter()
            .map(|(url, e)| format!("      {url}: {e:#}"))
            .collect();
        let fix = if gone {
            "no mirror has the locked file any more (Debian drops superseded versions): run \
             `cargo xtask lock` and commit the new addon/runtime.lock, or add a mirror that \
             keeps old versions (snapshot.debian.org) to `fallback_mirrors` in addon/runtime.toml"
        } else {
            "check the network and the mirrors in addon/runtime.toml"
        };
        bail!(
            "{}: tried {} URL(s):\n{}\n    {fix}",
            w.what,
            tried.len(),
            list.join("\n")
        )
    }

    /// Stream one file to a temp file beside its final place, hashing as it goes; it is
    /// renamed into the cache only when size and sha256 match, and removed otherwise.
    fn download_one(
        &self,
        net: &Net,
        url: &str,
        w: &Wanted,
        bar: &indicatif::ProgressBar,
    ) -> anyhow::Result<()> {
        let dest = self.path(&w.sha256);
        let mut out = HashWriter::new(AtomicFile::create(&dest)?);
        let mut counted = 0;
        let got = net.get_to(url, &mut out, w.size, |n| {
            counted += n;
            bar.inc(n)
        });
        let (file, digest, size) = out.finish();
        let actual = digest.trim_start_matches("sha256:");
        let bad = match got {
            Err(e) => Some(e),
            Ok(_) if size != w.size || actual != w.sha256 => Some(
                Mismatch(format!(
                    "expected {} bytes with sha256 {}, got {size} bytes with sha256 {actual}; \
                     discarded",
                    w.size, w.sha256
                ))
                .into(),
            ),
            Ok(_) => None,
        };
        if let Some(e) = bad {
            drop(file); // removes the temp file
            bar.dec(counted); // the next mirror counts its own bytes
            return Err(e);
        }
        file.commit()
            .with_context(|| format!("storing the download of {}", w.what))?;
        tracing::debug!(what = %w.what, %url, "cached");
        Ok(())
    }
}

/// A mirror served bytes that are not the locked file (a newer file under the same name, a
/// broken mirror or proxy).
#[derive(Debug)]
struct Mismatch(String);

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

/// The mirror is reachable, or why not. Behind an HTTP proxy the probe is skipped: only the
/// proxy knows.
fn reachable(mirror: &str) -> anyhow::Result<()> {
    let proxied = [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    if proxied {
        return Ok(());
    }
    net::probe(mirror)
}

/// Size and sha256 of `bytes` against what the lock says; the error names the file and both
/// digests.
pub fn verify(w: &Wanted, bytes: &[u8]) -> anyhow::Result<()> {
    let actual = format!("{:x}", Sha256::digest(bytes));
    if bytes.len() as u64 != w.size || actual != w.sha256 {
        bail!(
            "{}: expected {} bytes with sha256 {}, found {} bytes with sha256 {actual}",
            w.what,
            w.size,
            w.sha256,
            bytes.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(bytes: &[u8]) -> Wanted {
        Wanted {
            what: "demo 1.0 (arm64)".into(),
            mirrors: vec!["http://127.0.0.1:9".into()],
            url_path: "pool/main/d/demo.deb".into(),
            size: bytes.len() as u64,
            sha256: format!("{:x}", Sha256::digest(bytes)),
        }
    }

    #[test]
    fn corrupt_entries_are_removed_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let w = wanted(b"the real bytes");
        cache.put(&w, b"the real bytes").unwrap();
        assert_eq!(cache.get(&w).unwrap().unwrap(), b"the real bytes");
        // Truncate it in place: it must be detected, removed, and reported as missing.
        std::fs::write(cache.path(&w.sha256), b"the real").unwrap();
        assert!(cache.get(&w).unwrap().is_none());
        assert!(!cache.path(&w.sha256).exists());
        let err = cache
            .ensure(&Net::new(), std::slice::from_ref(&w), Mode::Offline)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("demo 1.0 (arm64)") && err.contains("cargo xtask fetch"),
            "{err}"
        );
        // Refuses to store bytes that do not match.
        let err = cache.put(&w, b"other").unwrap_err().to_string();
        assert!(err.contains(&w.sha256), "{err}");
    }
}
