//! Layers: a file tree written as a deterministic tar, gzip-compressed, hashed while streaming.
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use super::compress::Compression;
use super::hash::HashWriter;
use super::store::{Blob, BlobStore, VerifyingReader};
use crate::epoch::Epoch;
use anyhow::{bail, Context};

pub const MEDIA_TYPE_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A layer in the store: its compressed blob and the sha256 of the uncompressed tar
/// (the `diff_id` that the config's rootfs lists; OCI image-spec config.md "layer DiffID").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Layer {
    pub blob: Blob,
    pub diff_id: String,
    pub uncompressed_size: u64,
}

/// A file outside the store whose size and sha256 are known (a built binary, build/): read
/// only when a layer is written, and checked then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub path: PathBuf,
    pub size: u64,
    /// `sha256:<hex>`
    pub digest: String,
}

#[derive(Debug, Clone)]
pub enum Data {
    Bytes(Arc<[u8]>),
    File(FileRef),
    /// A blob in the store, shipped by a publisher: read through a `VerifyingReader`, so a
    /// corrupt store can never put other bytes under its digest.
    Blob(Blob),
}

#[derive(Debug, Clone)]
pub enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        data: Data,
    },
    Symlink {
        target: String,
    },
    /// A hard link to another path in the same layer (tar "link" entry).
    Hardlink {
        target: String,
    },
}

/// The files of one layer, keyed by normalised relative path (`bin/fluxion-main`). A BTreeMap
/// so entries come out sorted (parents before children), whatever order they went in.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    entries: BTreeMap<String, Node>,
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Insert `node` at `path`, creating missing parent directories (mode 0755).
    /// Returns what was there before, so callers can decide whether a repeat is a conflict.
    pub fn insert(&mut self, path: &str, node: Node) -> anyhow::Result<Option<Node>> {
        let path = normalise(path)?;
        let mut parent = String::new();
        for comp in path.split('/').take(path.split('/').count() - 1) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(comp);
            match self.entries.get(&parent) {
                None => {
                    self.entries
                        .insert(parent.clone(), Node::Dir { mode: 0o755 });
                }
                Some(Node::Dir { .. }) => {}
                Some(_) => bail!("{path}: parent {parent} is not a directory"),
            }
        }
        Ok(self.entries.insert(path, node))
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        normalise(path).ok().and_then(|p| self.entries.get(&p))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes of its files (what a tar of it is about as long as): for ordering work.
    pub fn content_len(&self) -> u64 {
        self.entries
            .values()
            .map(|n| match n {
                Node::File {
                    data: Data::Bytes(b),
                    ..
                } => b.len() as u64,
                Node::File {
                    data: Data::Blob(b),
                    ..
                } => b.size,
                Node::File {
                    data: Data::File(f),
                    ..
                } => f.size,
                _ => 0,
            })
            .sum()
    }

    /// Write the tree as a tar stream: sorted, uid/gid 0, empty user/group names, mtime =
    /// epoch, modes as given. Returns nothing but what it wrote to `out`.
    pub fn write_tar<W: Write>(&self, out: W, epoch: Epoch) -> anyhow::Result<W> {
        let mut tar = tar::Builder::new(out);
        for (path, node) in &self.entries {
            append(&mut tar, path, node, epoch.0)
                .with_context(|| format!("adding {path} to a layer"))?;
        }
        tar.into_inner().context("finishing a layer tar")
    }

    /// Write the tree as a gzip layer into the store (see `write_layer_with`).
    pub fn write_layer(&self, store: &BlobStore, epoch: Epoch) -> anyhow::Result<Layer> {
        self.write_layer_with(store, epoch, Compression::Gzip)
    }

    /// Write the tree as a layer into the store. Both digests are computed while the bytes
    /// stream: tar -> sha256 (diff_id) -> compressor -> sha256 (digest) -> temp file. The
    /// compressed digest depends on the compressor's implementation and level, which
    /// image/compress.rs pins.
    pub fn write_layer_with(
        &self,
        store: &BlobStore,
        epoch: Epoch,
        compression: Compression,
    ) -> anyhow::Result<Layer> {
        let file = store.writer()?;
        let enc = compression
            .encoder(file)
            .with_context(|| format!("starting {compression} compression of a layer"))?;
        let tar_hash = self.write_tar(HashWriter::new(enc), epoch)?;
        let (enc, diff_id, uncompressed_size) = tar_hash.finish();
        let file = enc
            .finish()
            .with_context(|| format!("finishing {compression} compression of a layer"))?;
        let blob = store.commit(file, compression.media_type())?;
        Ok(Layer {
            blob,
            diff_id,
            uncompressed_size,
        })
    }
}

/// Append one entry the way every tar the xtask writes has it: GNU headers (long names and
/// link targets go in ././@LongLink entries, which every tool reads), uid/gid 0, empty
/// user/group names, the given mtime, modes as given (symlinks 0777, hard links 0644),
/// directories with a trailing `/`; store blobs and known files read through a
/// `VerifyingReader`.
pub fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    node: &Node,
    mtime: u64,
) -> anyhow::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    match node {
        Node::Dir { mode } => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(*mode);
            h.set_size(0);
            tar.append_data(&mut h, format!("{path}/"), io::empty())
        }
        Node::File { mode, data } => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(*mode);
            match data {
                Data::Bytes(b) => {
                    h.set_size(b.len() as u64);
                    tar.append_data(&mut h, path, &b[..])
                }
                Data::Blob(blob) => {
                    h.set_size(blob.size);
                    let mut r = VerifyingReader::open(blob)?;
                    tar.append_data(&mut h, path, &mut r)
                        .and_then(|()| r.finish())
                }
                Data::File(f) => {
                    h.set_size(f.size);
                    let mut r = VerifyingReader::open_file(f)?;
                    tar.append_data(&mut h, path, &mut r)
                        .and_then(|()| r.finish())
                }
            }
        }
        Node::Symlink { target } => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            tar.append_link(&mut h, path, target)
        }
        Node::Hardlink { target } => {
            h.set_entry_type(tar::EntryType::Link);
            h.set_mode(0o644);
            h.set_size(0);
            tar.append_link(&mut h, path, normalise(target)?)
        }
    }?;
    Ok(())
}

/// `/a/./b/` -> `a/b`; refuses `..`, empty paths and NUL bytes (a layer must never write
/// outside the root it is unpacked into).
pub fn normalise(path: &str) -> anyhow::Result<String> {
    if path.contains('\0') {
        bail!("path {path:?} contains a NUL byte");
    }
    let mut parts = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => bail!("path {path:?} contains `..`"),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        bail!("empty path {path:?} in a layer");
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar_bytes: &[u8]) -> Vec<(String, u32, u64, u64, u64)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn sorted_owned_by_root_with_epoch_mtime() {
        let mut t = Tree::new();
        t.insert("/tmp", Node::Dir { mode: 0o1777 }).unwrap();
        t.insert(
            "bin/z",
            Node::File {
                mode: 0o755,
                data: Data::Bytes(Arc::from(&b"z"[..])),
            },
        )
        .unwrap();
        t.insert("./bin/a", Node::Symlink { target: "z".into() })
            .unwrap();
        let out = t.write_tar(Vec::new(), Epoch(1234)).unwrap();
        let e = entries(&out);
        let names: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["bin/", "bin/a", "bin/z", "tmp/"]);
        assert!(e.iter().all(|x| x.2 == 0 && x.3 == 0 && x.4 == 1234));
        assert_eq!(e[3].1, 0o1777);
        assert_eq!(e[2].1, 0o755);
    }

    #[test]
    fn refuses_escapes() {
        let mut t = Tree::new();
        assert!(t
            .insert("../etc/passwd", Node::Dir { mode: 0o755 })
            .is_err());
        assert!(t.insert("a/../../b", Node::Dir { mode: 0o755 }).is_err());
        assert!(t.insert("/", Node::Dir { mode: 0o755 }).is_err());
    }

    #[test]
    fn layer_digests_match_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut t = Tree::new();
        t.insert(
            "etc/hello",
            Node::File {
                mode: 0o644,
                data: Data::Bytes(Arc::from(&b"hi\n"[..])),
            },
        )
        .unwrap();
        let layer = t.write_layer(&store, Epoch(7)).unwrap();
        let gz = std::fs::read(&layer.blob.path).unwrap();
        assert_eq!(super::super::hash::sha256(&gz), layer.blob.digest);
        assert_eq!(gz.len() as u64, layer.blob.size);
        let mut raw = Vec::new();
        io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
        assert_eq!(super::super::hash::sha256(&raw), layer.diff_id);
        // gzip header: no name flag, mtime 0, OS 255.
        assert_eq!(gz[3] & 0x08, 0);
        assert_eq!(&gz[4..8], &[0, 0, 0, 0]);
        assert_eq!(gz[9], 255);
        // Same input, same digest.
        assert_eq!(t.write_layer(&store, Epoch(7)).unwrap(), layer);
    }
}
