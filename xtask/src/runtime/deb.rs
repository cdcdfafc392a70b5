//! Reading a `.deb` (deb(5): an ar archive of `debian-binary`, `control.tar.*`, `data.tar.*`)
//! into layer entries: data only, pruned, with every path checked before it can land.
//!
//! Why maintainer scripts are never run: we unpack data only, the way `dpkg --unpack` does
//! before `--configure`. libc6, bash and coreutils' scripts only register alternatives, update
//! the ld.so cache or /etc/shells, and create nothing bash and coreutils need at run time
//! (the dynamic loader finds the libraries in the standard multiarch directories without an
//! ld.so.cache). Running them would need an emulator for the foreign architecture, which the
//! pipeline refuses (issue 3), and would make the layer depend on the host.
use std::io::Read;
use std::sync::Arc;

use anyhow::{bail, Context};

use super::limits::{Budget, Capped, Exceeded};
use crate::image::layer::{Data, Node};

/// A path pattern from runtime.toml: components relative to `/`, `*` matching exactly one
/// component. A pattern matches a path when it matches the path or one of its ancestors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern(Vec<String>);

impl std::fmt::Display for PathPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

impl PathPattern {
    pub fn parse(s: &str) -> anyhow::Result<PathPattern> {
        let comps: Vec<String> = s
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_owned)
            .collect();
        if comps.is_empty() || comps.iter().any(|c| c == "..") {
            bail!("prune/keep pattern {s:?} must name a path below / without `..`");
        }
        Ok(PathPattern(comps))
    }

    fn matches(&self, path: &[&str]) -> bool {
        path.len() >= self.0.len() && self.0.iter().zip(path).all(|(p, c)| p == "*" || p == c)
    }
}

/// What to drop from every package: `prune` patterns, except what a `keep` pattern matches.
#[derive(Debug, Clone, Default)]
pub struct Prune {
    prune: Vec<PathPattern>,
    keep: Vec<PathPattern>,
}

impl Prune {
    pub fn new(prune: &[String], keep: &[String]) -> anyhow::Result<Prune> {
        Ok(Prune {
            prune: prune
                .iter()
                .map(|p| PathPattern::parse(p))
                .collect::<Result<_, _>>()?,
            keep: keep
                .iter()
                .map(|p| PathPattern::parse(p))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The rules in normal form (`prune` then `keep` patterns), for cache keys.
    pub fn patterns(&self) -> (Vec<String>, Vec<String>) {
        let show = |ps: &[PathPattern]| ps.iter().map(|p| p.to_string()).collect();
        (show(&self.prune), show(&self.keep))
    }

    pub fn drops(&self, path: &str) -> bool {
        let comps: Vec<&str> = path.split('/').collect();
        self.prune.iter().any(|p| p.matches(&comps)) && !self.keep.iter().any(|k| k.matches(&comps))
    }
}

/// One entry of a package's data, path normalised (`usr/bin/bash`).
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub node: Node,
    /// The setuid/setgid bits the package had on this entry, cleared in `node` (0: none).
    pub cleared: u32,
}

/// setuid and setgid: nothing in the closure needs them (no su, no mount), and a layer that
/// keeps them hands root to whoever can run the file (issue 14). The sticky bit stays (/tmp).
const SUID_SGID: u32 = 0o6000;

/// What a package's data holds: its entries, and how many bytes its data.tar unpacked to
/// (what it charged to the limits; the unpacked-package cache records it so a cached package
/// is charged the same).
#[derive(Debug, Clone)]
pub struct Contents {
    pub entries: Vec<Entry>,
    pub unpacked: u64,
}

/// The data entries of the `.deb` `bytes` of package `pkg`, pruned, setuid/setgid cleared.
/// Refuses (naming the package and path) absolute paths, `..`, device nodes and other special
/// files, and sizes past the `budget` or past what the archive holds.
pub fn read(pkg: &str, bytes: &[u8], prune: &Prune, budget: &Budget) -> anyhow::Result<Contents> {
    let data = data_tar(pkg, bytes, budget)?;
    Ok(Contents {
        entries: entries(pkg, &data, prune)?,
        unpacked: data.len() as u64,
    })
}

/// The entries of a plain (uncompressed) data tar of package `pkg`, pruned, with every check
/// `read` makes (setuid/setgid cleared too). The unpacked-package cache (runtime/unpacked.rs)
/// reads its tars through this, so a cached package passes the same checks as a fresh one.
pub fn entries(pkg: &str, data: &[u8], prune: &Prune) -> anyhow::Result<Vec<Entry>> {
    let mut tar = tar::Archive::new(data);
    let mut out = Vec::new();
    for e in tar
        .entries()
        .with_context(|| format!("{pkg}: reading data.tar"))?
    {
        let mut e = e.with_context(|| format!("{pkg}: reading data.tar"))?;
        let raw = String::from_utf8(e.path_bytes().into_owned())
            .with_context(|| format!("{pkg}: a data.tar path is not UTF-8"))?;
        let Some(path) = safe_path(pkg, &raw)? else {
            continue; // `./`, the root itself
        };
        let h = e.header();
        let mode = h
            .mode()
            .with_context(|| format!("{pkg}: {raw}: bad mode"))?
            & 0o7777;
        let cleared = mode & SUID_SGID;
        let mode = mode & !SUID_SGID;
        let kind = h.entry_type();
        let node = match kind {
            tar::EntryType::Directory => Node::Dir { mode },
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                // The header's size is a claim: the bytes must be in the (already bounded)
                // data.tar before anything is reserved for them.
                let size = e.size();
                if size > data.len() as u64 {
                    bail!(
                        "{pkg}: {raw} declares {size} bytes but the whole data.tar holds {}; \
                         refusing a corrupt or hostile package",
                        data.len()
                    );
                }
                // Grown as the bytes arrive, never reserved from the header's claim.
                let mut buf = Vec::new();
                e.read_to_end(&mut buf)
                    .with_context(|| format!("{pkg}: reading {raw}"))?;
                if buf.len() as u64 != size {
                    bail!(
                        "{pkg}: {raw} declares {size} bytes but data.tar ends after {}; \
                         refusing a truncated package",
                        buf.len()
                    );
                }
                Node::File {
                    mode,
                    data: Data::Bytes(Arc::from(buf)),
                }
            }
            tar::EntryType::Symlink => {
                let target = link_name(pkg, &raw, &e)?;
                if target.is_empty() {
                    bail!("{pkg}: symlink {raw} has an empty target");
                }
                Node::Symlink { target }
            }
            tar::EntryType::Link => {
                let target = link_name(pkg, &raw, &e)?;
                let Some(target) = safe_path(pkg, &target)? else {
                    bail!("{pkg}: hard link {raw} points at the root directory");
                };
                Node::Hardlink { target }
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                bail!("{pkg}: {raw} is a device node; a runtime layer may not create devices")
            }
            other => bail!(
                "{pkg}: {raw} has unsupported tar entry type {other:?} (fifo or special file)"
            ),
        };
        if prune.drops(&path) {
            continue;
        }
        out.push(Entry {
            path,
            node,
            cleared: if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                0 // a link's own mode means nothing
            } else {
                cleared
            },
        });
    }
    // A hard link whose target was pruned would point at nothing.
    let kept: std::collections::BTreeSet<&str> = out.iter().map(|e| e.path.as_str()).collect();
    for e in &out {
        if let Node::Hardlink { target } = &e.node {
            if !kept.contains(target.as_str()) {
                bail!(
                    "{pkg}: hard link {} points at {target}, which is pruned or missing; adjust \
                     `prune`/`keep` in addon/runtime.toml",
                    e.path
                );
            }
        }
    }
    Ok(out)
}

fn link_name(pkg: &str, raw: &str, e: &tar::Entry<'_, &[u8]>) -> anyhow::Result<String> {
    let l = e
        .link_name_bytes()
        .with_context(|| format!("{pkg}: link {raw} has no target"))?;
    String::from_utf8(l.into_owned())
        .with_context(|| format!("{pkg}: link target of {raw} is not UTF-8"))
}

/// `./usr/bin/x` -> `usr/bin/x`; None for the root; refuses absolute paths and `..`.
fn safe_path(pkg: &str, raw: &str) -> anyhow::Result<Option<String>> {
    if raw.starts_with('/') {
        bail!("{pkg}: refusing the absolute path {raw:?} in data.tar");
    }
    if raw.contains('\0') {
        bail!("{pkg}: refusing a path with a NUL byte in data.tar");
    }
    let mut comps = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => bail!("{pkg}: refusing the path {raw:?} in data.tar: it contains `..`"),
            c => comps.push(c),
        }
    }
    Ok((!comps.is_empty()).then(|| comps.join("/")))
}

/// The decompressed `data.tar` member of a `.deb`, within `budget`.
fn data_tar(pkg: &str, bytes: &[u8], budget: &Budget) -> anyhow::Result<Vec<u8>> {
    check_ar_sizes(pkg, bytes)?;
    let mut ar = ar::Archive::new(bytes);
    let mut first = true;
    while let Some(m) = ar.next_entry() {
        let mut m = m.with_context(|| format!("{pkg}: not a valid .deb (ar archive)"))?;
        let name = String::from_utf8_lossy(m.header().identifier()).into_owned();
        if first {
            // deb(5): the first member is `debian-binary`, "2.0\n".
            let mut v = String::new();
            (&mut m)
                .take(16)
                .read_to_string(&mut v)
                .with_context(|| format!("{pkg}: reading debian-binary"))?;
            if name != "debian-binary" || !v.starts_with("2.") {
                bail!("{pkg}: not a Debian binary package (first member {name:?}, version {v:?})");
            }
            first = false;
            continue;
        }
        let Some(comp) = name.strip_prefix("data.tar") else {
            continue;
        };
        // Read as it comes: its size was checked against the .deb's length above.
        let mut raw = Vec::new();
        m.read_to_end(&mut raw)
            .with_context(|| format!("{pkg}: reading {name}"))?;
        let mut out = Vec::new();
        let decoded = match comp {
            "" => Capped::new(&raw[..], budget)
                .read_to_end(&mut out)
                .map(drop),
            // liblzma (xz-utils' own decoder, built static by liblzma-sys): 2.3x faster than
            // lzma-rs here, and it runs only when a package is not in the unpacked cache. The
            // cap wraps the decoder's output, so a bomb stops at the limit whatever it claims.
            ".xz" => Capped::new(
                liblzma::read::XzDecoder::new_multi_decoder(&raw[..]),
                budget,
            )
            .read_to_end(&mut out)
            .map(drop),
            ".zst" => ruzstd::decoding::StreamingDecoder::new(&raw[..])
                .map_err(std::io::Error::other)
                .and_then(|d| Capped::new(d, budget).read_to_end(&mut out))
                .map(drop),
            ".gz" => Capped::new(flate2::read::GzDecoder::new(&raw[..]), budget)
                .read_to_end(&mut out)
                .map(drop),
            other => bail!("{pkg}: unsupported data member compression data.tar{other}"),
        };
        if let Err(e) = decoded {
            if let Some(limit) = e.get_ref().and_then(|i| i.downcast_ref::<Exceeded>()) {
                bail!("{pkg}: {name} {limit}");
            }
            return Err(e).with_context(|| format!("{pkg}: decompressing {name}"));
        }
        return Ok(out);
    }
    bail!("{pkg}: the .deb has no data.tar member")
}

/// Walk the ar headers (deb(5): `!<arch>\n`, then 60-byte headers in the common format) and
/// refuse any member whose declared size passes the end of the file, and the GNU/BSD name
/// extensions (`/`, `//`, `#1/`) a .deb never uses: the `ar` crate allocates what those
/// headers declare before reading, so a hostile header must not reach it.
fn check_ar_sizes(pkg: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let Some(mut rest) = bytes.strip_prefix(b"!<arch>\n") else {
        bail!("{pkg}: not a valid .deb (no ar magic)");
    };
    while !rest.is_empty() {
        let Some((h, body)) = rest.split_first_chunk::<60>() else {
            bail!("{pkg}: not a valid .deb (a truncated ar member header)");
        };
        let name = String::from_utf8_lossy(&h[..16]).trim_end().to_owned();
        if name.starts_with('/') || name.starts_with("#1/") || &h[58..] != b"`\n" {
            bail!("{pkg}: not a valid .deb (ar member {name:?} uses an extension deb(5) does not allow)");
        }
        let size: u64 = std::str::from_utf8(&h[48..58])
            .ok()
            .and_then(|s| s.trim_end().parse().ok())
            .with_context(|| {
                format!("{pkg}: not a valid .deb (ar member {name:?} has a bad size)")
            })?;
        if size > body.len() as u64 {
            bail!(
                "{pkg}: ar member {name:?} declares {size} bytes but only {} remain in the .deb; \
                 refusing a corrupt or hostile package",
                body.len()
            );
        }
        // Members are padded to an even offset; the last one's padding may be missing.
        let next = (size + size % 2).min(body.len() as u64) as usize;
        rest = &body[next..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_components() {
        let p = Prune::new(
            &["usr/share/doc".into(), "usr/lib/*/gconv".into()],
            &["usr/share/doc/*/copyright".into()],
        )
        .unwrap();
        assert!(p.drops("usr/share/doc"));
        assert!(p.drops("usr/share/doc/bash/README"));
        assert!(!p.drops("usr/share/doc/bash/copyright"));
        assert!(p.drops("usr/lib/aarch64-linux-gnu/gconv/UTF-16.so"));
        assert!(!p.drops("usr/lib/aarch64-linux-gnu/libc.so.6"));
        assert!(!p.drops("usr/share/docs"));
        assert!(PathPattern::parse("../etc").is_err());
    }

    #[test]
    fn safe_paths() {
        assert_eq!(safe_path("p", "./usr/bin/x").unwrap().unwrap(), "usr/bin/x");
        assert_eq!(safe_path("p", "./").unwrap(), None);
        assert!(safe_path("p", "/etc/passwd").is_err());
        let e = safe_path("evil", "./usr/../../etc/passwd")
            .unwrap_err()
            .to_string();
        assert!(e.contains("evil") && e.contains("../"), "{e}");
    }
}
