//! The content-addressed blob store that assembly writes into and publishers read from.
//!
//! Each blob is written once, through a hashing writer, then renamed to its digest: build
//! once, publish many ways, and the digests can never diverge between output formats. What
//! leaves the store for an output goes through a `VerifyingReader`: a blob whose bytes no
//! longer match its digest is refused (and removed), never shipped.
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest as _, Sha256};

use super::hash::HashWriter;
use super::layer::FileRef;
use crate::atomic::AtomicFile;

/// A stored blob and the descriptor facts about it (OCI image-spec descriptor.md).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    #[serde(skip)]
    pub path: PathBuf,
}

impl Blob {
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    pub fn open(dir: &Path) -> anyhow::Result<BlobStore> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the blob store {}", dir.display()))?;
        Ok(BlobStore {
            dir: dir.to_owned(),
        })
    }

    pub fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(digest.trim_start_matches("sha256:"))
    }

    /// The directory the blobs are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Store `bytes` (a config, manifest or index: small). A blob already stored with these
    /// exact bytes is not written again (issue 7: a no-op rebuild writes no file); one that
    /// differs (a flipped byte) is replaced.
    pub fn put(&self, bytes: &[u8], media_type: &str) -> anyhow::Result<Blob> {
        let digest = super::hash::sha256(bytes);
        let path = self.path(&digest);
        let same = std::fs::metadata(&path)
            .is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64)
            && std::fs::read(&path).is_ok_and(|b| b == bytes);
        if same {
            return Ok(Blob {
                digest,
                size: bytes.len() as u64,
                media_type: media_type.to_owned(),
                path,
            });
        }
        let mut w = self.writer()?;
        w.write_all(bytes).context("writing a blob")?;
        self.commit(w, media_type)
    }

    /// A writer whose bytes become a blob on `commit`.
    pub fn writer(&self) -> anyhow::Result<HashWriter<AtomicFile>> {
        Ok(HashWriter::new(AtomicFile::create(&self.dir.join("blob"))?))
    }

    pub fn commit(&self, w: HashWriter<AtomicFile>, media_type: &str) -> anyhow::Result<Blob> {
        let (file, digest, size) = w.finish();
        let path = self.path(&digest);
        // Same digest, same bytes: renaming over an existing blob is harmless, and a reader
        // never sees a partial blob.
        file.commit_to(&path)
            .with_context(|| format!("storing blob {digest}"))?;
        Ok(Blob {
            digest,
            size,
            media_type: media_type.to_owned(),
            path,
        })
    }
}

/// Reads a stored blob (or a file of known digest) while hashing it. When the bytes run out,
/// a size or digest other than the expected one is an error that names the file; a corrupt
/// store blob is also removed, so running the build again rewrites it. Publishers copy every
/// blob through one of these.
pub struct VerifyingReader {
    file: io::BufReader<std::fs::File>,
    path: PathBuf,
    digest: String,
    size: u64,
    /// A store blob (removed when corrupt), or another file (left alone).
    in_store: bool,
    hasher: Sha256,
    count: u64,
    verified: bool,
}

impl VerifyingReader {
    pub fn open(blob: &Blob) -> io::Result<VerifyingReader> {
        Self::open_at(&blob.path, &blob.digest, blob.size, true)
    }

    /// A file outside the store (a built binary): a mismatch means it changed meanwhile.
    pub fn open_file(f: &FileRef) -> io::Result<VerifyingReader> {
        Self::open_at(&f.path, &f.digest, f.size, false)
    }

    fn open_at(
        path: &Path,
        digest: &str,
        size: u64,
        in_store: bool,
    ) -> io::Result<VerifyingReader> {
        let file = std::fs::File::open(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "opening {digest} at {}: {e}; run the build again to rewrite it",
                    path.display()
                ),
            )
        })?;
        Ok(VerifyingReader {
            file: io::BufReader::with_capacity(1 << 16, file),
            path: path.to_owned(),
            digest: digest.to_owned(),
            size,
            in_store,
            hasher: Sha256::new(),
            count: 0,
            verified: false,
        })
    }

    /// Read to the end (if not already there) and check; Ok only for the right bytes.
    pub fn finish(mut self) -> io::Result<()> {
        if !self.verified {
            io::copy(&mut self, &mut io::sink())?;
        }
        Ok(())
    }

    fn check(&mut self) -> io::Result<()> {
        let actual = format!("sha256:{:x}", std::mem::take(&mut self.hasher).finalize());
        if actual == self.digest && self.count == self.size {
            self.verified = true;
            return Ok(());
        }
        let msg = if self.in_store {
            let removed = std::fs::remove_file(&self.path).is_ok();
            format!(
                "blob {} in the store ({}) is corrupt: expected {} bytes with that digest, read \
                 {} bytes hashing to {actual}; refusing to publish it. {}",
                self.digest,
                self.path.display(),
                self.size,
                self.count,
                if removed {
                    "It has been removed from the store: run the same command again to rebuild it"
                } else {
                    "Remove it (or run `cargo xtask clean --cache`), then run the command again"
                }
            )
        } else {
            format!(
                "{} changed while the image was built: expected {} bytes with {}, read {} \
                 bytes hashing to {actual}; run the command again",
                self.path.display(),
                self.size,
                self.digest,
                self.count
            )
        };
        Err(io::Error::new(io::ErrorKind::InvalidData, msg))
    }
}
impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if !self.verified {
                self.check()?;
            }
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_that_no_longer_matches_its_digest_is_refused_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let store = BlobStore::open(d.path()).unwrap();
        let blob = store.put(b"{\"a\":1}", "application/json").unwrap();
        let mut out = Vec::new();
        VerifyingReader::open(&blob)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"{\"a\":1}");
        std::fs::write(&blob.path, b"{\"a\":2}").unwrap();
        let err = VerifyingReader::open(&blob)
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&blob.digest) && err.contains("run the same command again"),
            "{err}"
        );
        assert!(!blob.path.exists(), "the corrupt blob was removed");
        // put() notices a flipped byte too, and writes the blob again.
        std::fs::write(&blob.path, b"{\"a\":2}").unwrap();
        let again = store.put(b"{\"a\":1}", "application/json").unwrap();
        assert_eq!(std::fs::read(&again.path).unwrap(), b"{\"a\":1}");
    }
}
