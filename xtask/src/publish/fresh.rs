//! Skip rewriting an output whose inputs did not change (issue 7: a no-op rebuild writes no
//! file), while still noticing any change in any input or in the output itself.
//!
//! Beside each output `X` a sidecar `X.inputs.json` records a key over every input of `X` and
//! what `X` was when written (size, mtime, sha256). The output is fresh when the sidecar's key
//! equals the new key and `X` still has that size and mtime; anything else means rewrite.
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest as _, Sha256};

use crate::atomic;
use crate::image::json;

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

fn stat(dest: &Path) -> Option<(u64, u128)> {
    let m = std::fs::symlink_metadata(dest).ok()?;
    let mtime = m
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_nanos();
    m.is_file().then_some((m.len(), mtime))
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
}
