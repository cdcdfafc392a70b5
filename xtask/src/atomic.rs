//! Outputs are written to a temp file beside their destination and renamed into place, so an
//! interrupted run never leaves a half-written archive, blob or link behind.
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp path in the same directory as `dest` (so the rename stays on one filesystem).
pub fn temp_path_for(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dest.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// A file being written; it appears at `dest` only on `commit`, and is removed if dropped.
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
        let file = File::create(&temp)
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
    /// it must be in the same directory.
    pub fn commit_to(mut self, dest: &Path) -> anyhow::Result<()> {
        let file = self.file.take().expect("committed once");
        let file = file
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", self.temp.display()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", self.temp.display()))?;
        drop(file);
        std::fs::rename(&self.temp, dest)
            .with_context(|| format!("renaming {} to {}", self.temp.display(), dest.display()))
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
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
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
    std::os::unix::fs::symlink(target, &temp)
        .with_context(|| format!("creating the symlink {}", temp.display()))?;
    std::fs::rename(&temp, link).with_context(|| {
        let _ = std::fs::remove_file(&temp);
        format!("replacing the symlink {}", link.display())
    })
}

/// Replace the directory `dest` with one that `fill` writes into a temp dir beside it.
///
/// The new tree is complete before it appears; the old one is first renamed aside and then
/// removed. std has no rename-exchange (renameat2 RENAME_EXCHANGE), so for an instant between
/// the two renames `dest` is absent — but it is never half-written. If `fill` fails, `dest`
/// is untouched and the temp dir is removed.
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
    std::fs::create_dir(&temp)
        .with_context(|| format!("creating the temp dir {}", temp.display()))?;
    if let Err(e) = fill(&temp) {
        let _ = std::fs::remove_dir_all(&temp);
        return Err(e);
    }
    let old = temp_path_for(dest);
    let had_old = match std::fs::rename(dest, &old) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&temp);
            return Err(e).with_context(|| format!("moving the old {} aside", dest.display()));
        }
    };
    std::fs::rename(&temp, dest)
        .with_context(|| format!("renaming {} to {}", temp.display(), dest.display()))?;
    if had_old {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("removing the old {}", old.display()))?;
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
}
