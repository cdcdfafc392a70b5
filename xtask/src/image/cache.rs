//! The layer cache, one for every layer: a compressed layer is reused, without re-tarring or
//! recompressing, when everything its bytes depend on is what it was when it was written:
//!
//! - what it is made from (`Source`): a tree's paths, kinds, modes, link targets and file
//!   contents (the app layer), or inputs its producer declares (the runtime layer: the locked
//!   packages and the prune rules, so a hit needs no `.deb`);
//! - the epoch its entries are stamped with;
//! - the tar format (`TAR_FORMAT`) and the `tar` crate version, and the compressor's identity
//!   (`Compression::identity`: algorithm, level, crate versions), the versions read from
//!   Cargo.lock at build time (xtask/build.rs);
//! - `FORMAT_VERSION`, the one number to bump when any of this changes meaning.
//!
//! One entry per key, `<images dir>/cache/layers/<key>.json`, written atomically, records the
//! layer and a `Stamp` of its blob in the store. A hit follows the one validation rule
//! (stamp.rs): size and mtime as recorded, or else a re-hash that must give the digest; a
//! corrupt blob is removed and the layer rebuilt. The cache only skips work: a hit and a miss
//! give the same bytes (tests/cache.rs).
use std::borrow::Borrow;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest as _, Sha256};

use super::compress::Compression;
use super::layer::{Data, Layer, Node, Tree};
use super::listing::Listing;
use super::store::{Blob, BlobStore};
use crate::epoch::Epoch;
use crate::image::json;
use crate::stamp::{self, Stamp};
use crate::{atomic, locked, parallel};

/// Bump when the key's fields, the entry's layout or the bytes written for the same inputs
/// change (a `Tree::write_tar` change also bumps `TAR_FORMAT`).
pub const FORMAT_VERSION: u32 = 2;

/// What `Tree::write_tar` writes, in words.
const TAR_FORMAT: &str = "fluxion-layer-tar v1 (gnu headers, sorted, uid/gid 0, mtime=epoch)";

/// What a layer is made from, besides the tar format, the compressor and the epoch.
pub enum Source<'a> {
    /// A file tree, keyed by every entry (the file contents by sha256; a file whose digest
    /// is known, `Data::File`, is not read).
    Tree(&'a Tree),
    /// Inputs the producer declares, as canonical bytes (the runtime layer: arch, locked
    /// packages with their sha256, prune and keep rules), under a kind that keeps producers
    /// apart.
    Declared { kind: &'a str, inputs: &'a [u8] },
}

/// A layer cache key: sha256 over length-prefixed fields, so no two different inputs can
/// produce the same byte stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    pub fn new(source: Source<'_>, epoch: Epoch, compression: Compression) -> anyhow::Result<Key> {
        let mut h = Fields(Sha256::new());
        h.field(&FORMAT_VERSION.to_be_bytes());
        h.field(TAR_FORMAT.as_bytes());
        h.field(locked::TAR.as_bytes());
        h.field(compression.identity().as_bytes());
        h.field(&epoch.0.to_be_bytes());
        match source {
            Source::Declared { kind, inputs } => {
                h.field(b"declared").field(kind.as_bytes()).field(inputs);
            }
            Source::Tree(tree) => {
                h.field(b"tree");
                tree_fields(&mut h, tree)?;
            }
        }
        Ok(Key(format!("{:x}", h.0.finalize())))
    }

    pub fn hex(&self) -> &str {
        &self.0
    }
}

fn tree_fields(h: &mut Fields, tree: &Tree) -> anyhow::Result<()> {
    for (path, node) in tree.iter() {
        h.field(path.as_bytes());
        match node {
            Node::Dir { mode } => {
                h.field(b"dir").field(&mode.to_be_bytes());
            }
            Node::File { mode, data } => {
                h.field(b"file").field(&mode.to_be_bytes());
                match data {
                    Data::Bytes(b) => {
                        h.field(&(b.len() as u64).to_be_bytes())
                            .field(&Sha256::digest(b));
                    }
                    // The same fields as its bytes would give, from its known digest.
                    Data::File(f) => {
                        let digest = decode_digest(&f.digest)
                            .with_context(|| format!("the digest of {path}"))?;
                        h.field(&f.size.to_be_bytes()).field(&digest);
                    }
                    // A blob is named by its digest (content addressing).
                    Data::Blob(blob) => {
                        h.field(&blob.size.to_be_bytes())
                            .field(blob.digest.as_bytes());
                    }
                }
            }
            Node::Symlink { target } => {
                h.field(b"symlink").field(target.as_bytes());
            }
            Node::Hardlink { target } => {
                h.field(b"hardlink").field(target.as_bytes());
            }
        }
    }
    Ok(())
}

/// `sha256:<hex>` as its 32 bytes.
fn decode_digest(d: &str) -> anyhow::Result<[u8; 32]> {
    let hex = d
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64)
        .ok_or_else(|| anyhow::anyhow!("{d:?} is not a sha256 digest"))?;
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    Ok(out)
}

struct Fields(Sha256);

impl Fields {
    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }
}

/// What an entry records: everything a `Layer` is, the blob's stamp, and for a lower layer
/// its listing (so the app layer can be checked against it without its tree).
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    format: u32,
    blob: Stamp,
    media_type: String,
    diff_id: String,
    uncompressed_size: u64,
    listing: Option<Listing>,
}

/// A cached layer.
#[derive(Debug, Clone)]
pub struct Hit {
    pub layer: Layer,
    pub listing: Option<Listing>,
}

#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
}

/// Where `LayerWriter::open` keeps the cache under an images dir.
pub fn dir_in(images_dir: &Path) -> PathBuf {
    images_dir.join("cache").join("layers")
}

impl LayerCache {
    pub fn open(dir: &Path) -> anyhow::Result<LayerCache> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the layer cache {}", dir.display()))?;
        Ok(LayerCache {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.dir.join(format!("{}.json", key.hex()))
    }

    /// The layer for `key`, if its entry is of this format and its blob passes the
    /// validation rule. A corrupt blob is removed from the store (and reported), so the
    /// layer is rebuilt.
    pub fn get(&self, store: &BlobStore, key: &Key) -> Option<Hit> {
        let entry_path = self.path(key);
        let mut e = read_entry(&entry_path)?;
        let path = store.path(&e.blob.digest);
        match stamp::check(&path, &e.blob) {
            stamp::Check::Intact => {}
            stamp::Check::Restamped(s) => {
                // Same bytes, new mtime (rewritten by another run, or copied): record it so
                // the next run trusts it without reading it again.
                tracing::debug!(digest = %s.digest, "layer blob re-hashed: intact");
                e.blob = s;
                if let Err(err) = atomic::write(&entry_path, &json::to_canonical(&e)) {
                    tracing::warn!("could not update the layer cache entry: {err:#}");
                }
            }
            stamp::Check::Missing => return None,
            stamp::Check::Corrupt { found } => {
                tracing::warn!(
                    "the store's layer blob {} ({}) is corrupt: expected {} bytes with that \
                     digest, found {found}; removing it and rebuilding the layer",
                    e.blob.digest,
                    path.display(),
                    e.blob.size
                );
                let _ = std::fs::remove_file(&path);
                return None;
            }
        }
        Some(Hit {
            layer: Layer {
                blob: Blob {
                    digest: e.blob.digest,
                    size: e.blob.size,
                    media_type: e.media_type,
                    path,
                },
                diff_id: e.diff_id,
                uncompressed_size: e.uncompressed_size,
            },
            listing: e.listing,
        })
    }

    /// `get` by an entry's file stem (`clean --cache` walks the entries).
    pub fn get_by_name(&self, store: &BlobStore, name: &str) -> Option<Hit> {
        self.get(store, &Key(name.to_owned()))
    }

    pub fn put(&self, key: &Key, layer: &Layer, listing: Option<&Listing>) -> anyhow::Result<()> {
        let e = Entry {
            format: FORMAT_VERSION,
            blob: Stamp::of_written(&layer.blob.path, &layer.blob.digest)?,
            media_type: layer.blob.media_type.clone(),
            diff_id: layer.diff_id.clone(),
            uncompressed_size: layer.uncompressed_size,
            listing: listing.cloned(),
        };
        atomic::write(&self.path(key), &json::to_canonical(&e))
            .context("recording a layer in the layer cache")
    }

    /// Every entry file and the blob digest it names; `None` for a file that is not an entry
    /// of this format (for `cargo xtask clean --cache`).
    pub fn entries(&self) -> anyhow::Result<Vec<(PathBuf, Option<String>)>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("listing {}", self.dir.display())),
        };
        for entry in rd {
            let path = entry?.path();
            if atomic::is_temp(&path) {
                continue;
            }
            let digest = read_entry(&path).map(|e| e.blob.digest);
            out.push((path, digest));
        }
        out.sort();
        Ok(out)
    }
}

fn read_entry(path: &Path) -> Option<Entry> {
    let bytes = std::fs::read(path).ok()?;
    let e: Entry = serde_json::from_slice(&bytes).ok()?;
    (e.format == FORMAT_VERSION).then_some(e)
}

/// A layer to write: its tree, the epoch its entries carry, and its cache key (none when the
/// writer has no cache); `listing` is recorded with it for layers others stack on.
pub struct Pending {
    pub what: String,
    pub key: Option<Key>,
    pub tree: Tree,
    pub epoch: Epoch,
    pub listing: Option<Listing>,
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
            cache: Some(LayerCache::open(&dir_in(images_dir))?),
            compression,
        })
    }

    /// No cache: every layer is written (tests, and callers that want no cache at all).
    pub fn uncached(store: BlobStore, compression: Compression) -> LayerWriter {
        LayerWriter {
            store,
            cache: None,
            compression,
        }
    }

    /// The cache key of a layer from `source` at `epoch` with this writer's compressor; None
    /// without a cache (nothing is hashed then).
    pub fn key(&self, source: Source<'_>, epoch: Epoch) -> anyhow::Result<Option<Key>> {
        match self.cache {
            Some(_) => Key::new(source, epoch, self.compression).map(Some),
            None => Ok(None),
        }
    }

    /// The cached layer for `key`, if any.
    pub fn lookup(&self, key: Option<&Key>) -> Option<Hit> {
        let hit = self.cache.as_ref()?.get(&self.store, key?)?;
        tracing::debug!(key = key.map(Key::hex), digest = %hit.layer.blob.digest, "layer cache hit");
        Some(hit)
    }

    /// Write every pending layer, independent layers compressed in parallel (largest first,
    /// so the last one to start is a short one), and record each in the cache. Results in
    /// input order.
    pub fn write_all<P: Borrow<Pending> + Sync>(
        &self,
        pending: &[P],
    ) -> anyhow::Result<Vec<Layer>> {
        let mut order: Vec<usize> = (0..pending.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(pending[i].borrow().tree.content_len()));
        let written = parallel::map(&order, |&i| {
            let p = pending[i].borrow();
            let t = std::time::Instant::now();
            let layer = p
                .tree
                .write_layer_with(&self.store, p.epoch, self.compression)
                .with_context(|| format!("writing {}", p.what))?;
            tracing::debug!(what = %p.what, took = ?t.elapsed(), diff_id = %layer.diff_id, "layer written");
            if let (Some(cache), Some(key)) = (&self.cache, &p.key) {
                cache.put(key, &layer, p.listing.as_ref())?;
            }
            Ok((i, layer))
        })?;
        let mut out: Vec<Option<Layer>> = vec![None; pending.len()];
        for (i, layer) in written {
            out[i] = Some(layer);
        }
        Ok(out
            .into_iter()
            .map(|l| l.expect("every pending layer written"))
            .collect())
    }

    /// The layer for `tree`: from the cache when its inputs are known, else written (and
    /// recorded).
    pub fn write(&self, tree: &Tree, epoch: Epoch) -> anyhow::Result<Layer> {
        let key = self.key(Source::Tree(tree), epoch)?;
        if let Some(hit) = self.lookup(key.as_ref()) {
            return Ok(hit.layer);
        }
        let pending = Pending {
            what: "a layer".to_owned(),
            key,
            tree: tree.clone(),
            epoch,
            listing: None,
        };
        Ok(self.write_all(std::slice::from_ref(&pending))?.remove(0))
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

    fn key(t: &Tree, e: Epoch, c: Compression) -> anyhow::Result<Key> {
        Key::new(Source::Tree(t), e, c)
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
        // Declared inputs: by kind and bytes, never equal to a tree's key.
        let d =
            |kind, inputs: &[u8]| Key::new(Source::Declared { kind, inputs }, Epoch(1), g).unwrap();
        assert_eq!(d("k", b"x"), d("k", b"x"));
        assert_ne!(d("k", b"x"), d("k", b"y"));
        assert_ne!(d("k", b"x"), d("j", b"x"));
        assert_ne!(d("k", b"x"), base);
        // A file of known digest gives the key its bytes would.
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("x"), b"a").unwrap();
        let mut t = Tree::new();
        let file = crate::image::layer::FileRef {
            path: d.path().join("x"),
            size: 1,
            digest: crate::image::hash::sha256(b"a"),
        };
        t.insert(
            "bin/x",
            Node::File {
                mode: 0o755,
                data: Data::File(file),
            },
        )
        .unwrap();
        assert_eq!(key(&t, Epoch(1), g).unwrap(), base);
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

    #[test]
    fn a_corrupt_blob_of_the_same_size_is_removed_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let w = LayerWriter::open(dir.path(), Compression::Gzip).unwrap();
        let good = w.write(&tree(b"hello"), Epoch(3)).unwrap();
        let bytes = std::fs::read(&good.blob.path).unwrap();
        let mut bad = bytes.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x01;
        std::fs::write(&good.blob.path, &bad).unwrap();
        let again = w.write(&tree(b"hello"), Epoch(3)).unwrap();
        assert_eq!(again, good);
        assert_eq!(std::fs::read(&again.blob.path).unwrap(), bytes);
    }
}
