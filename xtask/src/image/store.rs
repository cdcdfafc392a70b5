//! The content-addressed blob store that assembly writes into and publishers read from.
//!
//! Each blob is written once, through a hashing writer, then renamed to its digest: build
//! once, publish many ways, and the digests can never diverge between output formats.
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::hash::HashWriter;
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

    /// Store `bytes`. A blob already stored with this digest and size is not written again
    /// (issue 7: a no-op rebuild writes no file); content addressing makes that safe.
    pub fn put(&self, bytes: &[u8], media_type: &str) -> anyhow::Result<Blob> {
        let digest = super::hash::sha256(bytes);
        let path = self.path(&digest);
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64) {
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
