//! Skip rewriting an output whose inputs did not change (issue 7: a no-op rebuild writes no
//! file), while still noticing any change in any input or in the output itself.
//!
//! Beside each output `X` a sidecar `X.inputs.json` records a key over every input of `X` and
//! what `X` was when written (size, mtime, sha256). The output is fresh when the sidecar's key
//! equals the new key and `X` still has that size and mtime; anything else means rewrite. A
//! directory output (an OCI layout) records the size and mtime of every file in it instead.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest as _, Sha256};

use super::Written;
use crate::atomic::{self, AtomicFile};
use crate::epoch::Epoch;
use crate::image::hash::HashWriter;
use crate::image::json;
use crate::image::layer::{Data, Node, Tree};
use crate::stamp::stat;

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Eq)]
struct Sidecar {
    key: String,
    size: u64,
    mtime_ns: u128,
    sha256: String,
}

/// A key over length-prefixed input fields.
#[derive(Default)]
pub struct Key(Sha256);

impl Key {
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }

    pub fn finish(self) -> String {
        format!("{:x}", self.0.finalize())
    }
}

pub fn sidecar_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_owned();
    name.push(".inputs.json");
    dest.with_file_name(name)
}

/// `(sha256, size)` of `dest` as recorded, when `dest` is what `key`'s inputs produce.
pub fn check(dest: &Path, key: &str) -> Option<(String, u64)> {
    let bytes = std::fs::read(sidecar_path(dest)).ok()?;
    let s: Sidecar = serde_json::from_slice(&bytes).ok()?;
    let (size, mtime_ns) = stat(dest)?;
    (s.key == key && s.size == size && s.mtime_ns == mtime_ns).then_some((s.sha256, s.size))
}

/// Record that `dest` (just written, with this sha256) is what `key`'s inputs produce.
pub fn record(dest: &Path, key: &str, sha256: &str) -> anyhow::Result<()> {
    let (size, mtime_ns) = stat(dest)
        .ok_or_else(|| anyhow::anyhow!("{} vanished right after writing it", dest.display()))?;
    let s = Sidecar {
        key: key.to_owned(),
        size,
        mtime_ns,
        sha256: sha256.to_owned(),
    };
    atomic::write(&sidecar_path(dest), &json::to_canonical(&s))
}

/// A key over an output written from `t` by a writer of `format` at `epoch`: every path, kind
/// and mode; the bytes of generated files (manifest.json, index.json, ...); and for blobs
/// from the store, their digest and size (content addressing names the bytes).
pub fn tree_key(format: &str, epoch: Epoch, t: &Tree) -> anyhow::Result<String> {
    let mut key = Key::default();
    key.field(format.as_bytes()).field(&epoch.0.to_be_bytes());
    for (path, node) in t.iter() {
        key.field(path.as_bytes());
        match node {
            Node::Dir { mode } => {
                key.field(b"dir").field(&mode.to_be_bytes());
            }
            Node::File { mode, data } => {
                key.field(b"file").field(&mode.to_be_bytes());
                match data {
                    Data::Bytes(b) => {
                        key.field(b"bytes").field(b);
                    }
                    Data::Blob(blob) => {
                        key.field(b"blob")
                            .field(blob.digest.as_bytes())
                            .field(&blob.size.to_be_bytes());
                    }
                    Data::File(f) => {
                        key.field(b"file")
                            .field(f.digest.as_bytes())
                            .field(&f.size.to_be_bytes());
                    }
                }
            }
            Node::Symlink { target } => {
                key.field(b"symlink").field(target.as_bytes());
            }
            Node::Hardlink { target } => {
                key.field(b"hardlink").field(target.as_bytes());
            }
        }
    }
    Ok(key.finish())
}

/// Write `t` as the tar file `dest` (temp file + rename), hashing it on the way out, unless
/// `dest` is already what `key`'s inputs produce; `what` names it in errors.
pub fn write_tar_file(
    dest: &Path,
    t: &Tree,
    key: &str,
    epoch: Epoch,
    what: &str,
) -> anyhow::Result<Written> {
    if let Some((sha256, size)) = check(dest, key) {
        tracing::debug!(archive = %dest.display(), "unchanged inputs: not rewriting");
        return Ok(Written { sha256, size });
    }
    let out = t
        .write_tar(HashWriter::new(AtomicFile::create(dest)?), epoch)
        .with_context(|| format!("writing the {what} {}", dest.display()))?;
    let (file, sha256, size) = out.finish();
    file.commit()?;
    record(dest, key, &sha256)?;
    Ok(Written { sha256, size })
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Eq)]
struct DirSidecar {
    key: String,
    /// Every file under the directory (relative path) with its size and mtime.
    files: BTreeMap<String, (u64, u128)>,
    /// Files that are hard links to store blobs (relative path -> the blob's path): fresh only
    /// while each is still the store's file. A store blob found corrupt is removed and written
    /// anew, and a layout still linking the old inode must then be rewritten too, whatever its
    /// mtimes say.
    #[serde(default)]
    linked: BTreeMap<String, PathBuf>,
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Size and mtime of every regular file under `dir`; `None` if anything else is there (a
/// symlink, a special file) or it cannot be read.
fn listing(dir: &Path) -> Option<BTreeMap<String, (u64, u128)>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, u128)>) -> Option<()> {
        for e in std::fs::read_dir(dir).ok()? {
            let path = e.ok()?.path();
            let m = std::fs::symlink_metadata(&path).ok()?;
            if m.is_dir() {
                walk(root, &path, out)?;
            } else if m.is_file() {
                let rel = path.strip_prefix(root).ok()?.to_str()?.to_owned();
                out.insert(rel, stat(&path)?);
            } else {
                return None;
            }
        }
        Some(())
    }
    std::fs::symlink_metadata(dir)
        .ok()?
        .is_dir()
        .then_some(())?;
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Some(out)
}

/// Whether the directory `dest` is what `key`'s inputs produce and untouched since.
pub fn check_dir(dest: &Path, key: &str) -> bool {
    let Ok(bytes) = std::fs::read(sidecar_path(dest)) else {
        return false;
    };
    let Ok(s) = serde_json::from_slice::<DirSidecar>(&bytes) else {
        return false;
    };
    s.key == key
        && listing(dest).is_some_and(|files| files == s.files)
        && s.linked
            .iter()
            .all(|(rel, blob)| same_file(&dest.join(rel), blob))
}

/// Record that the directory `dest` (just written) is what `key`'s inputs produce.
pub fn record_dir(dest: &Path, key: &str) -> anyhow::Result<()> {
    record_dir_linked(dest, key, BTreeMap::new())
}

/// `record_dir` for a directory whose `linked` files are hard links to those store blobs.
pub fn record_dir_linked(
    dest: &Path,
    key: &str,
    linked: BTreeMap<String, PathBuf>,
) -> anyhow::Result<()> {
    let files = listing(dest).ok_or_else(|| {
        anyhow::anyhow!("{} cannot be listed right after writing it", dest.display())
    })?;
    let s = DirSidecar {
        key: key.to_owned(),
        files,
        linked,
    };
    atomic::write(&sidecar_path(dest), &json::to_canonical(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_only_while_key_and_file_are_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tar");
        assert_eq!(check(&dest, "k"), None);
        std::fs::write(&dest, b"abc").unwrap();
        record(&dest, "k", "sha256:x").unwrap();
        assert_eq!(check(&dest, "k"), Some(("sha256:x".into(), 3)));
        assert_eq!(check(&dest, "other"), None, "another input");
        std::fs::write(&dest, b"abcd").unwrap();
        assert_eq!(check(&dest, "k"), None, "the output changed");
        let mut k1 = Key::default();
        k1.field(b"ab").field(b"c");
        let mut k2 = Key::default();
        k2.field(b"a").field(b"bc");
        assert_ne!(k1.finish(), k2.finish());
    }

    #[test]
    fn a_dir_is_fresh_only_while_key_and_every_file_are_unchanged() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("x.oci");
        assert!(!check_dir(&dest, "k"));
        std::fs::create_dir_all(dest.join("blobs/sha256")).unwrap();
        std::fs::write(dest.join("index.json"), b"{}").unwrap();
        std::fs::write(dest.join("blobs/sha256/ab"), b"blob").unwrap();
        record_dir(&dest, "k").unwrap();
        assert!(check_dir(&dest, "k"));
        assert!(!check_dir(&dest, "other"), "another input");
        std::fs::write(dest.join("blobs/sha256/ab"), b"blob!").unwrap();
        assert!(!check_dir(&dest, "k"), "a file changed");
        record_dir(&dest, "k").unwrap();
        std::fs::write(dest.join("blobs/sha256/cd"), b"extra").unwrap();
        assert!(!check_dir(&dest, "k"), "a file appeared");
        std::fs::remove_file(dest.join("blobs/sha256/cd")).unwrap();
        assert!(check_dir(&dest, "k"));
        std::fs::remove_file(dest.join("index.json")).unwrap();
        assert!(!check_dir(&dest, "k"), "a file vanished");
    }
}
