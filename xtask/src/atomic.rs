//! Outputs are written to a temp file beside their destination and renamed into place, so an
//! interrupted run never leaves a half-written archive, blob or link behind — and no temp
//! file either:
//!
//! - temp names carry the writer's pid and start time (`.<name>.tmp-<pid>.<start>-<n>`), and
//!   every live one is registered here until it is renamed or removed;
//! - a failed write or commit removes its temp file;
//! - on SIGINT/SIGTERM (`exit_on_signals`, installed by main.rs) the registered temp files and
//!   directories are removed and the process exits with 130;
//! - a later run removes the temp files of runs that are no longer running (`sweep`), never
//!   those of a concurrent live run (its pid is alive with the same start time).
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use anyhow::Context;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// What is being removed when a run is interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
}

#[derive(Default)]
struct Live {
    paths: BTreeMap<PathBuf, Kind>,
    /// Set by the signal handler: no new temp file may appear after it cleaned up.
    stopping: bool,
}

static LIVE: Mutex<Live> = Mutex::new(Live {
    paths: BTreeMap::new(),
    stopping: false,
});

fn live() -> MutexGuard<'static, Live> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Create a temp path with `create` and register it, atomically with respect to the signal
/// handler (so every temp file that exists is either registered or already renamed).
fn create_registered<T>(
    temp: &Path,
    kind: Kind,
    create: impl FnOnce() -> io::Result<T>,
) -> anyhow::Result<T> {
    let made = {
        let mut l = live();
        if l.stopping {
            anyhow::bail!("interrupted");
        }
        let made = create()?;
        l.paths.insert(temp.to_owned(), kind);
        made
    };
    pause_if_asked(temp);
    Ok(made)
}

fn unregister(path: &Path) {
    live().paths.remove(path);
}

/// Rename `from` to `to` and stop tracking `from`, without the signal handler in between.
fn rename_registered(from: &Path, to: &Path) -> io::Result<()> {
    let mut l = live();
    std::fs::rename(from, to)?;
    l.paths.remove(from);
    Ok(())
}

/// Remove every registered temp path; afterwards no new one can be created. Returns how many
/// were removed.
fn remove_all_registered() -> usize {
    let mut l = live();
    l.stopping = true;
    let paths = std::mem::take(&mut l.paths);
    // The guard is kept until the process exits: no other thread creates or renames now.
    std::mem::forget(l);
    let mut n = 0;
    for (path, kind) in paths {
        let gone = match kind {
            Kind::File => std::fs::remove_file(&path),
            Kind::Dir => std::fs::remove_dir_all(&path),
        };
        n += usize::from(gone.is_ok());
    }
    n
}

/// On SIGINT or SIGTERM: remove this run's temp files and directories, say so, exit 130.
/// (Child processes such as cargo get a terminal's Ctrl-C themselves.)
pub fn exit_on_signals() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing the SIGINT/SIGTERM handler")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                let n = remove_all_registered();
                eprintln!("xtask: {name}: stopped, removed {n} temp file(s) of this run");
                std::process::exit(130);
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// A test seam: with `FLUXION_XTASK_PAUSE_AT=<text>`, the first temp path containing `<text>`
/// makes the run print `xtask: paused at <path>` and wait (for a signal), so tests can
/// interrupt a run at each kind of temp file.
fn pause_if_asked(temp: &Path) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| {
        std::env::var("FLUXION_XTASK_PAUSE_AT")
            .ok()
            .filter(|s| !s.is_empty())
    });
    let Some(at) = at else { return };
    if temp.to_string_lossy().contains(at.as_str()) {
        eprintln!("xtask: paused at {}", temp.display());
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

/// This process's start time (clock ticks since boot, /proc/<pid>/stat field 22): with the
/// pid it names a process uniquely, even after the pid is reused.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: skip past it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn my_start_time() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| start_time(std::process::id()).unwrap_or(0))
}

/// A temp path in the same directory as `dest` (so the rename stays on one filesystem).
pub fn temp_path_for(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dest.with_file_name(format!(
        ".{name}.tmp-{}.{}-{n}",
        std::process::id(),
        my_start_time()
    ))
}

/// The writer of a temp file (pid, start time if the name has one), from its name.
fn temp_owner(name: &str) -> Option<(u32, Option<u64>)> {
    if !name.starts_with('.') {
        return None;
    }
    let (_, tail) = name.rsplit_once(".tmp-")?;
    let (owner, n) = tail.rsplit_once('-')?;
    n.parse::<u64>().ok()?;
    match owner.split_once('.') {
        Some((pid, start)) => Some((pid.parse().ok()?, Some(start.parse().ok()?))),
        // `.x.tmp-<pid>-<n>`, as runs before issue 11 named them.
        None => Some((owner.parse().ok()?, None)),
    }
}

/// Whether `path` is a temp file or directory of this module's naming.
pub fn is_temp(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| temp_owner(n).is_some())
}

/// Whether the writer of a temp file is still running. Without /proc nothing can be told,
/// and a temp file is then never taken for stale.
fn owner_alive(pid: u32, start: Option<u64>) -> bool {
    if !Path::new("/proc/self/stat").exists() {
        return true;
    }
    match (start_time(pid), start) {
        (None, _) => false,
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
    }
}

/// A temp path a sweep removed, and how many bytes it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swept {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Remove the temp files and directories directly in `dir` (with names starting with
/// `prefix`) whose writer is no longer running (an earlier run killed or out of disk); those
/// of live runs, this one included, stay.
pub fn sweep(dir: &Path, prefix: &str) -> anyhow::Result<Vec<Swept>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for entry in rd {
        let entry = entry?;
        let name = entry.file_name();
        let Some((pid, start)) = name
            .to_str()
            .filter(|n| n.starts_with(prefix))
            .and_then(temp_owner)
        else {
            continue;
        };
        if owner_alive(pid, start) {
            continue;
        }
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        let (bytes, gone) = if meta.is_dir() {
            (dir_bytes(&path), std::fs::remove_dir_all(&path))
        } else {
            (meta.len(), std::fs::remove_file(&path))
        };
        match gone {
            Ok(()) => out.push(Swept { path, bytes }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("removing the stale {}", path.display()))
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Bytes of the regular files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match std::fs::symlink_metadata(e.path()) {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A file being written; it appears at `dest` only on `commit`, and is removed if dropped or
/// if the commit fails.
pub struct AtomicFile {
    temp: PathBuf,
    dest: PathBuf,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(dest: &Path) -> anyhow::Result<AtomicFile> {
        let dir = dest
            .parent()
            .context("output path has no parent directory")?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the output directory {}", dir.display()))?;
        let temp = temp_path_for(dest);
        let file = create_registered(&temp, Kind::File, || File::create(&temp))
            .with_context(|| format!("creating the temp file {}", temp.display()))?;
        Ok(AtomicFile {
            temp,
            dest: dest.to_owned(),
            file: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// Flush, sync and rename into place.
    pub fn commit(self) -> anyhow::Result<()> {
        let dest = self.dest.clone();
        self.commit_to(&dest)
    }

    /// Like `commit`, to a destination known only once the bytes are written (a digest);
    /// it must be in the same directory. On any error (a full disk at the flush, a failed
    /// rename) the temp file is removed.
    pub fn commit_to(mut self, dest: &Path) -> anyhow::Result<()> {
        let file = self.file.as_mut().expect("committed once");
        file.flush()
            .with_context(|| format!("writing {}", self.temp.display()))?;
        file.get_ref()
            .sync_all()
            .with_context(|| format!("syncing {}", self.temp.display()))?;
        rename_registered(&self.temp, dest)
            .with_context(|| format!("renaming {} to {}", self.temp.display(), dest.display()))?;
        // Renamed: nothing is left to remove.
        drop(self.file.take());
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("not committed").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(w) = self.file.take() {
            // Close without flushing what is buffered: the file goes anyway.
            drop(w.into_parts());
            let _ = std::fs::remove_file(&self.temp);
            unregister(&self.temp);
        }
    }
}

/// Write `bytes` to `dest` atomically.
pub fn write(dest: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", dest.display()))?;
    f.commit()
}

/// Point the symlink `link` at `target`, replacing what was there in one rename.
pub fn symlink(target: &Path, link: &Path) -> anyhow::Result<()> {
    let temp = temp_path_for(link);
    create_registered(&temp, Kind::File, || {
        std::os::unix::fs::symlink(target, &temp)
    })
    .with_context(|| format!("creating the symlink {}", temp.display()))?;
    rename_registered(&temp, link).with_context(|| {
        let _ = std::fs::remove_file(&temp);
        unregister(&temp);
        format!("replacing the symlink {}", link.display())
    })
}

/// Replace the directory `dest` with one that `fill` writes into a temp dir beside it.
///
/// The new tree is complete before it appears; the old one is first renamed aside and then
/// removed. std has no rename-exchange (renameat2 RENAME_EXCHANGE), so for an instant between
/// the two renames `dest` is absent — but it is never half-written, and a signal cannot land
/// in that instant (the handler waits for both renames). If `fill` fails, `dest` is untouched
/// and the temp dir is removed.
pub fn replace_dir(
    dest: &Path,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let parent = dest
        .parent()
        .context("output directory has no parent directory")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("creating the output directory {}", parent.display()))?;
    let temp = temp_path_for(dest);
    create_registered(&temp, Kind::Dir, || std::fs::create_dir(&temp))
        .with_context(|| format!("creating the temp dir {}", temp.display()))?;
    let discard = |e: anyhow::Error| {
        let _ = std::fs::remove_dir_all(&temp);
        unregister(&temp);
        e
    };
    fill(&temp).map_err(discard)?;
    let old = temp_path_for(dest);
    let had_old = {
        let mut l = live();
        let had_old = match std::fs::rename(dest, &old) {
            Ok(()) => {
                l.paths.insert(old.clone(), Kind::Dir);
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                drop(l);
                return Err(discard(
                    anyhow::Error::new(e)
                        .context(format!("moving the old {} aside", dest.display())),
                ));
            }
        };
        if let Err(e) = std::fs::rename(&temp, dest) {
            // Put the old tree back: dest must not vanish because of a failed swap.
            if had_old && std::fs::rename(&old, dest).is_ok() {
                l.paths.remove(&old);
            }
            drop(l);
            return Err(discard(anyhow::Error::new(e).context(format!(
                "renaming {} to {}",
                temp.display(),
                dest.display()
            ))));
        }
        l.paths.remove(&temp);
        had_old
    };
    if had_old {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("removing the old {}", old.display()))?;
        unregister(&old);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_dir_swaps_whole_trees_and_keeps_the_old_one_on_failure() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("out.oci");
        replace_dir(&dest, |d| Ok(std::fs::write(d.join("a"), "1")?)).unwrap();
        replace_dir(&dest, |d| Ok(std::fs::write(d.join("b"), "2")?)).unwrap();
        assert!(!dest.join("a").exists());
        assert_eq!(std::fs::read_to_string(dest.join("b")).unwrap(), "2");
        let err = replace_dir(&dest, |d| {
            std::fs::write(d.join("c"), "3")?;
            anyhow::bail!("disk full")
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(dest.join("b")).unwrap(), "2");
        let names: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp dirs left behind: {names:?}");
    }

    #[test]
    fn a_failed_commit_removes_its_temp_file() {
        let root = tempfile::tempdir().unwrap();
        // The destination is a non-empty directory: the rename fails.
        let dest = root.path().join("out");
        std::fs::create_dir_all(dest.join("x")).unwrap();
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"bytes").unwrap();
        assert!(f.commit().is_err());
        let names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out"], "the temp file is gone");
        assert!(live().paths.keys().all(|p| !p.starts_with(root.path())));
    }

    #[test]
    fn temp_names_name_their_writer_and_sweeps_spare_live_ones() {
        let root = tempfile::tempdir().unwrap();
        let mine = temp_path_for(&root.path().join("blob"));
        std::fs::write(&mine, b"live").unwrap();
        let name = mine.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            temp_owner(name),
            Some((std::process::id(), Some(my_start_time())))
        );
        // A run that has ended: a child we waited for (its pid is free, or reused by a
        // process with another start time).
        let child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        let mut child = child;
        child.wait().unwrap();
        let stale = root.path().join(format!(".blob.tmp-{dead}.1-0"));
        std::fs::write(&stale, b"stale bytes").unwrap();
        let stale_dir = root.path().join(format!(".x.oci.tmp-{dead}-3"));
        std::fs::create_dir_all(stale_dir.join("blobs")).unwrap();
        std::fs::write(stale_dir.join("blobs/b"), b"12345").unwrap();
        // Same pid as ours but another start time: an earlier process with our pid.
        let reused = root.path().join(format!(
            ".y.tmp-{}.{}-0",
            std::process::id(),
            my_start_time() + 1
        ));
        std::fs::write(&reused, b"x").unwrap();
        std::fs::write(root.path().join("blob"), b"not a temp file").unwrap();
        assert!(sweep(root.path(), ".none").unwrap().is_empty());
        let swept = sweep(root.path(), "").unwrap();
        let paths: Vec<&Path> = swept.iter().map(|s| s.path.as_path()).collect();
        assert_eq!(
            paths,
            [stale.as_path(), stale_dir.as_path(), reused.as_path()]
        );
        assert_eq!(swept.iter().map(|s| s.bytes).sum::<u64>(), 11 + 5 + 1);
        assert!(mine.exists(), "a live run's temp file stays");
        assert!(root.path().join("blob").exists());
        assert!(is_temp(&mine) && !is_temp(&root.path().join("blob")));
    }
}
