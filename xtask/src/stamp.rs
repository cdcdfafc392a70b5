//! The one rule for trusting a file the pipeline stored earlier (a layer blob behind a layer
//! cache entry, an unpacked package): its record says what it was when last checked (sha256,
//! size, mtime); when size and mtime still agree the file is taken as it is, without reading
//! it; when they disagree it is hashed again, and either re-stamped (same bytes, e.g. rewritten
//! by a concurrent run or copied with `cp -a`) or reported corrupt. A publisher never relies on
//! this alone: it copies blobs through `store::VerifyingReader`, which hashes what it ships.
use std::io::{self, Read};
use std::path::Path;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// What a stored file was when its digest was last checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// `sha256:<hex>` of the file's bytes.
    pub digest: String,
    pub size: u64,
    /// Modification time, ns since the Unix epoch.
    pub mtime_ns: u128,
}

/// Size and mtime (ns) of a regular file (symlinks are not followed); None for anything else.
pub fn stat(path: &Path) -> Option<(u64, u128)> {
    let m = std::fs::symlink_metadata(path).ok()?;
    let mtime = m
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_nanos();
    m.is_file().then_some((m.len(), mtime))
}

/// sha256 and length of everything `r` yields.
pub fn hash_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((format!("sha256:{:x}", h.finalize()), n))
}

impl Stamp {
    /// The stamp of a file just written whose digest was computed while writing it.
    pub fn of_written(path: &Path, digest: &str) -> anyhow::Result<Stamp> {
        let (size, mtime_ns) = stat(path)
            .ok_or_else(|| anyhow::anyhow!("{} vanished right after writing it", path.display()))?;
        Ok(Stamp {
            digest: digest.to_owned(),
            size,
            mtime_ns,
        })
    }

    /// Read and hash the file now.
    pub fn hash(path: &Path) -> io::Result<Stamp> {
        let f = std::fs::File::open(path)?;
        let (digest, size) = hash_reader(f)?;
        let (_, mtime_ns) = stat(path).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "not a regular file any more")
        })?;
        Ok(Stamp {
            digest,
            size,
            mtime_ns,
        })
    }
}

/// What `check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Size and mtime agree with the stamp: trusted without reading.
    Intact,
    /// They disagreed, but the bytes still hash to the digest: here is the new stamp.
    Restamped(Stamp),
    /// No such regular file.
    Missing,
    /// The bytes hash to something else (`found`) or cannot be read.
    Corrupt { found: String },
}

/// Apply the rule to the file at `path`, recorded as `stamp`.
pub fn check(path: &Path, stamp: &Stamp) -> Check {
    match stat(path) {
        None => Check::Missing,
        Some((size, mtime)) if size == stamp.size && mtime == stamp.mtime_ns => Check::Intact,
        Some(_) => match Stamp::hash(path) {
            Ok(now) if now.digest == stamp.digest => Check::Restamped(now),
            Ok(now) => Check::Corrupt {
                found: format!("{} bytes hashing to {}", now.size, now.digest),
            },
            Err(e) => Check::Corrupt {
                found: format!("unreadable ({e})"),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_while_size_and_mtime_agree_rehashed_when_not() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("blob");
        std::fs::write(&p, b"hello").unwrap();
        let s = Stamp::hash(&p).unwrap();
        assert_eq!(check(&p, &s), Check::Intact);
        // A copy with a new mtime but the same bytes: re-hashed and re-stamped.
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(UNIX_EPOCH + std::time::Duration::from_secs(5))
            .unwrap();
        let Check::Restamped(s2) = check(&p, &s) else {
            panic!("expected a re-stamp")
        };
        assert_eq!(s2.digest, s.digest);
        assert_eq!(check(&p, &s2), Check::Intact);
        // One byte flipped (same size, new mtime): corrupt.
        std::fs::write(&p, b"hellp").unwrap();
        assert!(matches!(check(&p, &s2), Check::Corrupt { .. }));
        // A flip that kept the mtime is trusted by this rule (publishers hash what they ship).
        f.set_modified(UNIX_EPOCH + std::time::Duration::from_nanos(s2.mtime_ns as u64))
            .unwrap();
        assert_eq!(check(&p, &s2), Check::Intact);
        std::fs::remove_file(&p).unwrap();
        assert_eq!(check(&p, &s2), Check::Missing);
    }
}
