//! The layer cache: a compressed layer reused, without re-tarring or recompressing, when its
//! inputs (the tree's paths, kinds, modes, link targets and file contents; the epoch; the tar
//! format and the compressor's identity) are the same as when it was written (issue 7).
//!
//! One small index file per key, `<cache dir>/<key>.json`, pointing at a blob in the store;
//! written atomically (atomic.rs). A hit needs the blob to still be in the store with the
//! recorded size, else the layer is rebuilt. The cache only skips work: a hit and a miss give
//! the same bytes, which tests/cache.rs checks.
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest as _, Sha256};

use super::compress::{locked_version, Compression};
use super::layer::{Data, Layer, Node, Tree};
use super::store::{Blob, BlobStore};
use crate::atomic;
use crate::epoch::Epoch;
use crate::image::json;

/// Bump when `Tree::write_tar` changes the bytes it writes for the same tree.
const TAR_FORMAT: &str = "fluxion-layer-tar v1 (gnu headers, sorted, uid/gid 0, mtime=epoch)";

/// What the index file records: everything a `Layer` is, so a hit reads nothing else.
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    digest: String,
    size: u64,
    media_type: String,
    diff_id: String,
    uncompressed_size: u64,
}

#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    pub fn open(dir: &Path) -> anyhow::Result<LayerCache> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the layer cache {}", dir.display()))?;
        Ok(LayerCache {
            dir: dir.to_owned(),
        })
    }

    /// The stored layer for `key`, if its blob is still in the store.
    pub fn get(&self, store: &BlobStore, key: &str) -> Option<Layer> {
        let bytes = std::fs::read(self.dir.join(format!("{key}.json"))).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        let path = store.path(&e.digest);
        let meta = std::fs::metadata(&path).ok()?;
        (meta.is_file() && meta.len() == e.size).then_some(Layer {
            blob: Blob {
                digest: e.digest,
                size: e.size,
                media_type: e.media_type,
                path,
            },
            diff_id: e.diff_id,
            uncompressed_size: e.uncompressed_size,
        })
    }

    pub fn put(&self, key: &str, layer: &Layer) -> anyhow::Result<()> {
        let e = Entry {
            digest: layer.blob.digest.clone(),
            size: layer.blob.size,
            media_type: layer.blob.media_type.clone(),
            diff_id: layer.diff_id.clone(),
            uncompressed_size: layer.uncompressed_size,
        };
        atomic::write(
            &self.dir.join(format!("{key}.json")),
            &json::to_canonical(&e),
        )
        .context("recording a layer in the layer cache")
    }
}

/// The cache key of a layer: sha256 over every input of its bytes, as length-prefixed fields
/// (so no two different inputs can produce the same byte stream).
pub fn key(tree: &Tree, epoch: Epoch, compression: Compression) -> anyhow::Result<String> {
    let mut h = Fields(Sha256::new());
    h.field(TAR_FORMAT.as_bytes());
    h.field(locked_version("tar").as_bytes());
    h.field(compression.identity().as_bytes());
    h.field(&epoch.0.to_be_bytes());
    for (path, node) in tree.iter() {
        h.field(path.as_bytes());
        match node {
            Node::Dir { mode } => {
                h.field(b"dir");
                h.field(&mode.to_be_bytes());
            }
            Node::File { mode, data } => {
                h.field(b"file");
                h.field(&mode.to_be_bytes());
                let (len, digest) = match data {
                    Data::Bytes(b) => (b.len() as u64, Sha256::digest(b)),
                    Data::File(p) => hash_file(p)
                        .with_context(|| format!("hashing {} for {path}", p.display()))?,
                };
                h.field(&len.to_be_bytes());
                h.field(&digest);
            }
            Node::Symlink { target } => {
                h.field(b"symlink");
                h.field(target.as_bytes());
            }
            Node::Hardlink { target } => {
                h.field(b"hardlink");
                h.field(target.as_bytes());
            }
        }
    }
    Ok(format!("{:x}", h.0.finalize()))
}

struct Fields(Sha256);

impl Fields {
    fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }
}

fn hash_file(path: &Path) -> std::io::Result<(u64, sha2::digest::Output<Sha256>)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h)?;
    Ok((n, h.finalize()))
}

/// How layers get written: into which store, with which compressor, through which cache.
/// Assembly writes every layer through one of these.
#[derive(Debug, Clone)]
pub struct LayerWriter {
    pub store: BlobStore,
    pub cache: Option<LayerCache>,
    pub compression: Compression,
}

impl LayerWriter {
    /// A store and cache under `images_dir` (blobs/sha256, cache/layers).
    pub fn open(images_dir: &Path, compression: Compression) -> anyhow::Result<LayerWriter> {
        Ok(LayerWriter {
            store: BlobStore::open(&images_dir.join("blobs").join("sha256"))?,
            cache: Some(LayerCache::open(&images_dir.join("cache").join("layers"))?),
            compression,
        })
    }

    /// No cache: every layer is written (tests, and callers that keep their own cache).
    pub fn uncached(store: BlobStore, compression: Compression) -> LayerWriter {
        LayerWriter {
            store,
            cache: None,
            compression,
        }
    }

    /// The layer for `tree`: from the cache when its inputs are known, else written (and
    /// recorded).
    pub fn write(&self, tree: &Tree, epoch: Epoch) -> anyhow::Result<Layer> {
        let Some(cache) = &self.cache else {
            return tree.write_layer_with(&self.store, epoch, self.compression);
        };
        let key = key(tree, epoch, self.compression)?;
        if let Some(layer) = cache.get(&self.store, &key) {
            tracing::debug!(key, digest = layer.blob.digest, "layer cache hit");
            return Ok(layer);
        }
        let layer = tree.write_layer_with(&self.store, epoch, self.compression)?;
        cache.put(&key, &layer)?;
        Ok(layer)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn tree(data: &[u8]) -> Tree {
        let mut t = Tree::new();
        t.insert(
            "bin/x",
            Node::File {
                mode: 0o755,
                data: Data::Bytes(Arc::from(data)),
            },
        )
        .unwrap();
        t
    }

    #[test]
    fn key_follows_every_input() {
        let g = Compression::Gzip;
        let base = key(&tree(b"a"), Epoch(1), g).unwrap();
        assert_eq!(base, key(&tree(b"a"), Epoch(1), g).unwrap());
        assert_ne!(base, key(&tree(b"b"), Epoch(1), g).unwrap());
        assert_ne!(base, key(&tree(b"a"), Epoch(2), g).unwrap());
        assert_ne!(base, key(&tree(b"a"), Epoch(1), Compression::Zstd).unwrap());
        let mut t = tree(b"a");
        t.insert("bin/x", Node::Symlink { target: "a".into() })
            .unwrap();
        assert_ne!(base, key(&t, Epoch(1), g).unwrap());
        let mut t = tree(b"a");
        t.insert(
            "bin/x",
            Node::File {
                mode: 0o644,
                data: Data::Bytes(Arc::from(&b"a"[..])),
            },
        )
        .unwrap();
        assert_ne!(base, key(&t, Epoch(1), g).unwrap());
    }

    #[test]
    fn a_hit_gives_the_same_layer_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let w = LayerWriter::open(dir.path(), Compression::Gzip).unwrap();
        let cold = w.write(&tree(b"hello"), Epoch(3)).unwrap();
        let mtime = std::fs::metadata(&cold.blob.path)
            .unwrap()
            .modified()
            .unwrap();
        let warm = w.write(&tree(b"hello"), Epoch(3)).unwrap();
        assert_eq!(cold, warm);
        let after = std::fs::metadata(&warm.blob.path)
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(mtime, after, "a hit must not rewrite the blob");
        // A blob gone from the store is a miss, and the layer comes back identical.
        std::fs::remove_file(&cold.blob.path).unwrap();
        assert_eq!(w.write(&tree(b"hello"), Epoch(3)).unwrap(), cold);
        assert!(cold.blob.path.is_file());
    }
}
