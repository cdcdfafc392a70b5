//! The unpacked-package cache: a package's data entries, decompressed from its `.deb` once and
//! pruned, kept as a plain tar beside the download cache (`<cache>/unpacked/<key>.tar`), keyed
//! by the `.deb`'s sha256, the prune and keep rules, the per-package unpacking limit, the
//! setuid/setgid rule, the `tar` crate version and `FORMAT_VERSION`. A cold runtime layer then
//! decodes no xz at all after the first build.
//!
//! Each tar has a sidecar `<key>.json` holding its `Stamp`, the size the package's data.tar
//! unpacked to and the setuid/setgid bits cleared, and follows the one validation rule
//! (stamp.rs); a corrupt entry is removed and the package unpacked from its `.deb` again. Read
//! back, the tar goes through `deb::entries`, the same checks a `.deb` gets (setuid/setgid
//! cleared again), and gives the same entries in the same order (tests in this file and
//! tests/runtime.rs). No entry bypasses the limits (limits.rs): one made under another
//! per-package limit has another key, and a hit is charged its recorded unpacked size against
//! both limits, as a fresh unpack would be.
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest as _, Sha256};

use super::deb::{self, Contents, Entry, Prune};
use super::limits::Limits;
use crate::atomic::{self, AtomicFile};
use crate::image::hash::HashWriter;
use crate::image::json;
use crate::image::layer;
use crate::locked;
use crate::stamp::{self, Stamp};

/// Bump when the tar written here or what it holds for the same inputs changes.
/// 2: setuid/setgid cleared, the unpacked size and the cleared bits recorded (issue 14).
pub const FORMAT_VERSION: u32 = 2;

/// What happens to setuid/setgid bits, in words (in the key: entries unpacked under another
/// rule are never served).
const SETID_RULE: &str = "setuid/setgid cleared (deb.rs SUID_SGID)";

#[derive(serde::Serialize, serde::Deserialize)]
struct Sidecar {
    format: u32,
    package: String,
    deb_sha256: String,
    /// What the package's data.tar unpacked to, charged to the limits on every hit.
    unpacked: u64,
    /// The setuid/setgid bits cleared, by path (listed again at `--verbose` on a hit).
    cleared: std::collections::BTreeMap<String, u32>,
    tar: Stamp,
}

#[derive(Debug, Clone)]
pub struct Unpacked {
    dir: PathBuf,
}

impl Unpacked {
    pub fn open(dir: &Path) -> anyhow::Result<Unpacked> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the unpacked-package cache {}", dir.display()))?;
        Ok(Unpacked {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of a package's unpacked entries.
    pub fn key(deb_sha256: &str, prune: &Prune, limits: &Limits) -> String {
        let mut h = Sha256::new();
        let (prune, keep) = prune.patterns();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        field(&FORMAT_VERSION.to_be_bytes());
        field(locked::TAR.as_bytes());
        field(SETID_RULE.as_bytes());
        field(&limits.package_unpacked_mib.to_be_bytes());
        field(deb_sha256.as_bytes());
        for p in prune {
            field(b"prune");
            field(p.as_bytes());
        }
        for k in keep {
            field(b"keep");
            field(k.as_bytes());
        }
        format!("{:x}", h.finalize())
    }

    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{key}.tar")),
            self.dir.join(format!("{key}.json")),
        )
    }

    /// Whether the entry under `key` is recorded, of this format, and passes the validation
    /// rule; a corrupt one is removed.
    pub fn verify(&self, key: &str) -> bool {
        let (tar, side) = self.paths(key);
        let Some(mut s) = std::fs::read(&side)
            .ok()
            .and_then(|b| serde_json::from_slice::<Sidecar>(&b).ok())
        else {
            return false;
        };
        if s.format != FORMAT_VERSION {
            return false;
        }
        match stamp::check(&tar, &s.tar) {
            stamp::Check::Intact => true,
            stamp::Check::Restamped(now) => {
                s.tar = now;
                let _ = atomic::write(&side, &json::to_canonical(&s));
                true
            }
            stamp::Check::Missing => false,
            stamp::Check::Corrupt { found } => {
                tracing::warn!(
                    "the unpacked {} in {} is corrupt ({found}); unpacking its .deb again",
                    s.package,
                    tar.display()
                );
                let _ = std::fs::remove_file(&tar);
                let _ = std::fs::remove_file(&side);
                false
            }
        }
    }

    /// The contents of `package` under `key`, if cached and intact.
    pub fn get(&self, key: &str, package: &str) -> Option<Contents> {
        if !self.verify(key) {
            return None;
        }
        let (tar, side) = self.paths(key);
        let s: Sidecar = serde_json::from_slice(&std::fs::read(side).ok()?).ok()?;
        let bytes = std::fs::read(&tar).ok()?;
        match deb::entries(package, &bytes, &Prune::default()) {
            Ok(mut entries) => {
                for e in &mut entries {
                    e.cleared |= s.cleared.get(&e.path).copied().unwrap_or(0);
                }
                Some(Contents {
                    entries,
                    unpacked: s.unpacked,
                })
            }
            Err(e) => {
                tracing::warn!("the unpacked {package} cannot be read ({e:#}); unpacking again");
                None
            }
        }
    }

    /// Record the `contents` of `package` (from the .deb with `deb_sha256`) under `key`.
    pub fn put(
        &self,
        key: &str,
        package: &str,
        deb_sha256: &str,
        contents: &Contents,
    ) -> anyhow::Result<()> {
        let (tar_path, side) = self.paths(key);
        let out = write_tar(
            HashWriter::new(AtomicFile::create(&tar_path)?),
            &contents.entries,
        )
        .with_context(|| format!("writing the unpacked {package}"))?;
        let (file, digest, _) = out.finish();
        file.commit()?;
        let s = Sidecar {
            format: FORMAT_VERSION,
            package: package.to_owned(),
            deb_sha256: deb_sha256.to_owned(),
            unpacked: contents.unpacked,
            cleared: contents
                .entries
                .iter()
                .filter(|e| e.cleared != 0)
                .map(|e| (e.path.clone(), e.cleared))
                .collect(),
            tar: Stamp::of_written(&tar_path, &digest)?,
        };
        atomic::write(&side, &json::to_canonical(&s))
    }
}

/// The entries as a plain tar, in their order, everything `deb::entries` reads back (the
/// layer tar's header conventions, layer::append, with mtime 0).
fn write_tar<W: Write>(out: W, entries: &[Entry]) -> anyhow::Result<W> {
    let mut tar = tar::Builder::new(out);
    for e in entries {
        layer::append(&mut tar, &e.path, &e.node, 0)
            .with_context(|| format!("adding {}", e.path))?;
    }
    tar.into_inner().context("finishing the tar")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::image::layer::{Data, Node};

    fn file(path: &str, mode: u32, bytes: &[u8]) -> Entry {
        Entry {
            path: path.into(),
            node: Node::File {
                mode,
                data: Data::Bytes(Arc::from(bytes)),
            },
            cleared: 0,
        }
    }

    fn entry(path: &str, node: Node) -> Entry {
        Entry {
            path: path.into(),
            node,
            cleared: 0,
        }
    }

    fn show(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| {
                let node = match &e.node {
                    Node::Dir { mode } => format!("dir {mode:o}"),
                    Node::File {
                        mode,
                        data: Data::Bytes(b),
                    } => format!("file {mode:o} {b:?}"),
                    Node::File { .. } => unreachable!(),
                    Node::Symlink { target } => format!("-> {target}"),
                    Node::Hardlink { target } => format!("=> {target}"),
                };
                format!("{} {node} (cleared {:o})", e.path, e.cleared)
            })
            .collect()
    }

    #[test]
    fn round_trips_every_kind_of_entry_in_order_and_refuses_corruption() {
        let long = format!("usr/share/{}/x", "d".repeat(120));
        // As deb::read gives them: the setuid bit of usr/b already cleared, and recorded.
        let entries = vec![
            entry("usr", Node::Dir { mode: 0o755 }),
            Entry {
                cleared: 0o4000,
                ..file("usr/b", 0o755, b"setuid")
            },
            file("usr/a", 0o644, b""),
            entry(
                "usr/sh",
                Node::Symlink {
                    target: format!("../{}", "t".repeat(150)),
                },
            ),
            entry(
                "usr/b2",
                Node::Hardlink {
                    target: "usr/b".into(),
                },
            ),
            file(&long, 0o600, b"long name"),
            entry("tmp", Node::Dir { mode: 0o1777 }),
        ];
        let contents = Contents {
            entries,
            unpacked: 12345,
        };
        let d = tempfile::tempdir().unwrap();
        let u = Unpacked::open(d.path()).unwrap();
        let limits = Limits::default();
        let key = Unpacked::key("ab", &Prune::default(), &limits);
        assert!(u.get(&key, "p").is_none());
        u.put(&key, "p", "ab", &contents).unwrap();
        let got = u.get(&key, "p").unwrap();
        assert_eq!(show(&got.entries), show(&contents.entries));
        assert_eq!(
            got.unpacked, 12345,
            "the size charged to the limits on a hit"
        );
        // Other prune rules or another per-package limit, another key.
        let other = Prune::new(&["usr/share".into()], &[]).unwrap();
        assert_ne!(Unpacked::key("ab", &other, &limits), key);
        let lower = Limits {
            package_unpacked_mib: 1,
            ..limits
        };
        assert_ne!(Unpacked::key("ab", &Prune::default(), &lower), key);
        // A flipped byte: noticed (the mtime moved), removed, a miss.
        let tar = d.path().join(format!("{key}.tar"));
        let mut bytes = std::fs::read(&tar).unwrap();
        let i = bytes.windows(6).position(|w| w == b"setuid").unwrap();
        bytes[i] ^= 0x20;
        std::fs::write(&tar, &bytes).unwrap();
        assert!(u.get(&key, "p").is_none());
        assert!(!tar.exists());
        // A tar that still carries a setuid bit (planted, or written under another rule) is
        // cleared on the way back, as a .deb's would be.
        let planted = Contents {
            entries: vec![file("usr/s", 0o4755, b"x")],
            unpacked: 1,
        };
        let key = Unpacked::key("cd", &Prune::default(), &limits);
        u.put(&key, "q", "cd", &planted).unwrap();
        let got = u.get(&key, "q").unwrap();
        assert_eq!(show(&got.entries), ["usr/s file 755 [120] (cleared 4000)"]);
    }
}
