//! Keeping the images dir and the caches free of debris: stale temp files of earlier runs
//! (swept at the start of every run), and for `cargo xtask clean --cache` also layer cache
//! entries whose blob is gone or corrupt, unpacked packages that fail their check, and store
//! blobs that no output and no cache entry references.
//!
//! Runs and `clean` do not race: every run holds a shared lock on `<images dir>/.pipeline.lock`
//! while it uses the dir (two runs at once are fine), and `clean` takes it exclusively or
//! refuses. Temp files of a live run are never touched (atomic.rs: `sweep`).
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};

use crate::atomic::{self, Swept};
use crate::image::cache::{self as layer_cache, LayerCache};
use crate::runtime::cache::Cache;
use crate::workspace::Workspace;

const LOCK: &str = ".pipeline.lock";

fn open_lock(images_dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(images_dir)
        .with_context(|| format!("creating {}", images_dir.display()))?;
    let path = images_dir.join(LOCK);
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Hold this while using `images_dir` (shared: concurrent runs do not exclude each other).
pub fn use_images_dir(images_dir: &Path) -> anyhow::Result<File> {
    let f = open_lock(images_dir)?;
    f.lock_shared()
        .with_context(|| format!("locking {} for this run", images_dir.display()))?;
    Ok(f)
}

/// The directories the pipeline writes temp files into, and a name prefix to limit a sweep to
/// (the links' dir, usually the workspace root, holds only the `result-<arch>` links' temp
/// files).
fn temp_dirs(ws: &Workspace, cache: &Cache) -> Vec<(PathBuf, &'static str)> {
    let images = ws.images_dir();
    let mut dirs = vec![
        (images.clone(), ""),
        (images.join("blobs").join("sha256"), ""),
        (layer_cache::dir_in(&images), ""),
        (ws.result_links_dir().to_owned(), ".result-"),
    ];
    dirs.extend(cache.dirs().into_iter().map(|d| (d, "")));
    dirs
}

/// Remove the temp files of runs that are no longer running (a kill, a full disk).
pub fn sweep_stale(ws: &Workspace, cache: &Cache) -> anyhow::Result<Vec<Swept>> {
    let mut out = Vec::new();
    for (dir, prefix) in temp_dirs(ws, cache) {
        out.extend(atomic::sweep(&dir, prefix)?);
    }
    if !out.is_empty() {
        let bytes: u64 = out.iter().map(|s| s.bytes).sum();
        tracing::info!(
            files = out.len(),
            bytes,
            "removed temp files left by earlier runs"
        );
    }
    Ok(out)
}

/// What `clean` removed, by reason.
#[derive(Debug, Default)]
pub struct Freed {
    pub groups: Vec<(String, Vec<Swept>)>,
}

impl Freed {
    fn add(&mut self, why: &str, items: Vec<Swept>) {
        if !items.is_empty() {
            self.groups.push((why.to_owned(), items));
        }
    }

    pub fn files(&self) -> usize {
        self.groups.iter().map(|(_, v)| v.len()).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.groups
            .iter()
            .flat_map(|(_, v)| v)
            .map(|s| s.bytes)
            .sum()
    }
}

fn remove(path: &Path) -> anyhow::Result<Option<Swept>> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(None);
    };
    let (bytes, gone) = if meta.is_dir() {
        (atomic::dir_bytes(path), std::fs::remove_dir_all(path))
    } else {
        (meta.len(), std::fs::remove_file(path))
    };
    gone.with_context(|| format!("removing {}", path.display()))?;
    Ok(Some(Swept {
        path: path.to_owned(),
        bytes,
    }))
}

/// `cargo xtask clean --cache`: remove every orphan, keep everything an output or a cache
/// entry uses. Refuses while a run uses the images dir.
pub fn clean(ws: &Workspace, cache: &Cache) -> anyhow::Result<Freed> {
    let images = ws.images_dir();
    let lock = open_lock(&images)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "a build is using {} right now; run `cargo xtask clean --cache` when it has finished",
            images.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", images.display()))
        }
    }
    let mut freed = Freed::default();
    freed.add("temp files of earlier runs", sweep_stale(ws, cache)?);

    // Layer cache entries: of another format (older xtask), unreadable, or whose blob is
    // missing or corrupt (the validation rule, so a corrupt blob goes too).
    let layers = LayerCache::open(&layer_cache::dir_in(&images))?;
    let store = crate::image::store::BlobStore::open(&images.join("blobs").join("sha256"))?;
    let mut keep: BTreeSet<String> = BTreeSet::new();
    let mut stale = Vec::new();
    for (path, digest) in layers.entries()? {
        let key = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let hit = digest.and_then(|_| layers.get_by_name(&store, key));
        match hit {
            Some(hit) => {
                keep.insert(hit.layer.blob.hex().to_owned());
            }
            None => stale.extend(remove(&path)?),
        }
    }
    freed.add(
        "layer cache entries that are outdated or whose blob is gone or corrupt",
        stale,
    );
    // The per-layer caches of xtasks before issue 11.
    freed.add(
        "the old runtime layer cache (now one layer cache)",
        remove(&images.join("runtime-cache"))?.into_iter().collect(),
    );

    // Outputs, and the blobs they hold.
    let mut orphans = Vec::new();
    for entry in
        std::fs::read_dir(&images).with_context(|| format!("listing {}", images.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if let Some(output) = name.strip_suffix(".inputs.json") {
            if !images.join(output).exists() {
                orphans.extend(remove(&path)?);
            }
        } else if name.ends_with(".oci") && path.is_dir() {
            keep.extend(layout_blobs(&path));
        } else if name.ends_with(".tar") && path.is_file() {
            keep.extend(archive_blobs(&path)?);
        }
    }
    freed.add("sidecars of outputs that are gone", orphans);
    let mut unreferenced = Vec::new();
    for entry in std::fs::read_dir(store.dir())? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !atomic::is_temp(&path) && !keep.contains(name) {
            unreferenced.extend(remove(&path)?);
        }
    }
    freed.add(
        "blobs no output and no layer cache entry references",
        unreferenced,
    );
    freed.add(
        "unpacked packages that fail their check",
        clean_unpacked(cache)?,
    );
    Ok(freed)
}

/// Blob names (hex) in a layout directory.
fn layout_blobs(layout: &Path) -> Vec<String> {
    std::fs::read_dir(layout.join("blobs").join("sha256"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect()
}

/// Blob names (hex) an archive holds under `blobs/sha256/`.
fn archive_blobs(archive: &Path) -> anyhow::Result<Vec<String>> {
    let f = File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut a = tar::Archive::new(f);
    let mut out = Vec::new();
    for e in a
        .entries_with_seek()
        .with_context(|| format!("reading {}", archive.display()))?
    {
        let e = e.with_context(|| format!("reading {}", archive.display()))?;
        let p = e.path()?.to_string_lossy().into_owned();
        if let Some(hex) = p.strip_prefix("blobs/sha256/") {
            out.push(hex.to_owned());
        }
    }
    Ok(out)
}

/// A tar without its sidecar younger than this may be one a concurrent run (of another
/// checkout sharing the cache) is about to record: left alone.
const UNRECORDED_GRACE: Duration = Duration::from_secs(600);

fn clean_unpacked(cache: &Cache) -> anyhow::Result<Vec<Swept>> {
    let unpacked = cache.unpacked()?;
    let mut out = Vec::new();
    let mut tars = BTreeSet::new();
    let mut sides = BTreeSet::new();
    for entry in std::fs::read_dir(unpacked.dir())? {
        let path = entry?.path();
        if atomic::is_temp(&path) {
            continue;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("tar") => tars.insert(path),
            Some("json") => sides.insert(path),
            _ => false,
        };
    }
    for side in &sides {
        let key = side
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if !unpacked.verify(key) {
            out.extend(remove(side)?);
            out.extend(remove(&side.with_extension("tar"))?);
        }
    }
    for tar in tars {
        let recorded = sides.contains(&tar.with_extension("json"));
        let old = std::fs::metadata(&tar)
            .and_then(|m| m.modified())
            .is_ok_and(|t| {
                SystemTime::now().duration_since(t).unwrap_or_default() > UNRECORDED_GRACE
            });
        if !recorded && old {
            out.extend(remove(&tar)?);
        }
    }
    Ok(out)
}
