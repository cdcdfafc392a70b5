//! Step 1, build: compile `fluxion-main` per target with a backend, then check each binary.
pub mod cargo;
pub mod cross;
pub mod elf;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use xshell::Shell;

use crate::arch::Arch;
use crate::image::json;
use crate::image::layer::{Data, FileRef};
use crate::workspace::Workspace;
use crate::{atomic, stamp};

/// How `fluxion-main` is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Builder {
    /// cargo, unless the workspace has a Cross.toml (then cross).
    #[default]
    Auto,
    /// cargo with rustup's musl targets, linked by rust-lld.
    Cargo,
    /// `cross build`.
    Cross,
}

/// A checked binary: right ELF machine, statically linked, with its size and sha256 (the app
/// layer's cache key needs them). When `build` read it, its bytes are kept so the assembler
/// never reads the file a second time; when the file was unchanged since an earlier run
/// checked and hashed it (a stamp), it is not read at all. The fields are private so the
/// digest cannot drift from the bytes.
#[derive(Debug, Clone)]
pub struct Binary {
    arch: Arch,
    path: PathBuf,
    size: u64,
    sha256: String,
    bytes: Option<Arc<[u8]>>,
}

impl Binary {
    /// A binary from its bytes (hashed here).
    pub fn new(arch: Arch, path: PathBuf, bytes: Vec<u8>) -> Binary {
        Binary {
            arch,
            path,
            size: bytes.len() as u64,
            sha256: crate::image::hash::sha256(&bytes),
            bytes: Some(Arc::from(bytes)),
        }
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `sha256:<hex>` of its bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Its bytes as a layer file: in memory, or the file itself (read, and checked against the
    /// digest, only if the layer has to be written).
    pub fn data(&self) -> Data {
        match &self.bytes {
            Some(b) => Data::Bytes(b.clone()),
            None => Data::File(FileRef {
                path: self.path.clone(),
                size: self.size,
                digest: self.sha256.clone(),
            }),
        }
    }

    /// Its bytes (read from the file if they are not in memory).
    pub fn bytes(&self) -> anyhow::Result<Arc<[u8]>> {
        if let Some(b) = &self.bytes {
            return Ok(b.clone());
        }
        let bytes = std::fs::read(&self.path)
            .with_context(|| format!("reading the built binary {}", self.path.display()))?;
        if crate::image::hash::sha256(&bytes) != self.sha256 {
            anyhow::bail!(
                "{} changed while the image was built; run the command again",
                self.path.display()
            );
        }
        Ok(Arc::from(bytes))
    }
}

pub const PACKAGE: &str = "fluxion";
pub const BIN: &str = "fluxion-main";

/// Build `fluxion-main` for each arch with the chosen backend and verify what came out.
pub fn build(
    sh: &Shell,
    ws: &Workspace,
    arches: &[Arch],
    builder: Builder,
) -> anyhow::Result<Vec<Binary>> {
    let builder = resolve(ws, builder);
    tracing::info!(?builder, targets = ?arches.iter().map(|a| a.rust_target()).collect::<Vec<_>>(), "building {BIN}");
    let paths = match builder {
        Builder::Cross => cross::build(sh, ws, arches)?,
        _ => cargo::build(sh, ws, arches)?,
    };
    arches
        .iter()
        .zip(paths)
        .map(|(&arch, path)| checked(ws, arch, path))
        .collect()
}

/// The binary at `path`, checked. A sidecar in the images dir's cache stamps each binary that
/// passed the check (sha256, size, mtime: the stamp rule, stamp.rs): while the file still has
/// that size and mtime it is the same binary, and is neither read, checked nor hashed again
/// (issue 11: a no-op rebuild). Otherwise it is read, checked, hashed and stamped; a file that
/// changes while being read is not stamped.
fn checked(ws: &Workspace, arch: Arch, path: PathBuf) -> anyhow::Result<Binary> {
    let sidecar = ws
        .images_dir()
        .join("cache")
        .join("binaries")
        .join(format!("{}.json", arch.rust_target()));
    let before = stamp::stat(&path);
    let recorded: Option<stamp::Stamp> = std::fs::read(&sidecar)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let (Some(r), Some((size, mtime))) = (&recorded, before) {
        if size == r.size && mtime == r.mtime_ns {
            return Ok(Binary {
                arch,
                path,
                size,
                sha256: r.digest.clone(),
                bytes: None,
            });
        }
    }
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading the built binary {}", path.display()))?;
    elf::check(&bytes, arch)
        .with_context(|| format!("refusing to package {} for {arch}", path.display()))?;
    let binary = Binary::new(arch, path, bytes);
    if let Some((size, mtime_ns)) = before.filter(|&b| stamp::stat(&binary.path) == Some(b)) {
        let s = stamp::Stamp {
            digest: binary.sha256.clone(),
            size,
            mtime_ns,
        };
        atomic::write(&sidecar, &json::to_canonical(&s))?;
    }
    Ok(binary)
}

/// `auto` means cargo, unless the workspace has a Cross.toml (the user's way of saying that
/// cross is how this project builds).
fn resolve(ws: &Workspace, builder: Builder) -> Builder {
    match builder {
        Builder::Auto if ws.root.join("Cross.toml").is_file() => Builder::Cross,
        Builder::Auto => Builder::Cargo,
        b => b,
    }
}

/// `--remap-path-prefix` flags that make the binary independent of where the checkout,
/// cargo home, rustup home and target dir are: the same bytes from any directory.
pub fn remap_flags(ws: &Workspace) -> Vec<String> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cargo"));
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".rustup"));
    remap_pairs(cargo_home, rustup_home, &ws.root, &ws.target_dir)
        .into_iter()
        .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display()))
        .collect()
}

/// The remappings, least specific first. rustc applies the one listed last among those that
/// match (rustc book, "--remap-path-prefix": "the last matching one wins"), so a directory
/// inside another must come after it: GitLab jobs keep `CARGO_HOME` inside the checkout
/// (`$CI_PROJECT_DIR/.cache/cargo`), and with the checkout's remapping last the registry's
/// sources became `/fluxion/.cache/cargo/...` here but `/cargo/...` in a copy elsewhere, other
/// bytes. The target dir maps to `/fluxion/target` wherever it is.
fn remap_pairs(
    cargo_home: PathBuf,
    rustup_home: PathBuf,
    root: &Path,
    target_dir: &Path,
) -> Vec<(PathBuf, &'static str)> {
    let mut pairs = vec![
        (root.to_owned(), "/fluxion"),
        (target_dir.to_owned(), "/fluxion/target"),
        (cargo_home, "/cargo"),
        (rustup_home, "/rustup"),
    ];
    // Stable: of two equally deep paths the order above stays (they cannot both match one
    // file unless they are the same directory).
    pairs.sort_by_key(|(p, _)| p.components().count());
    pairs
}

#[cfg(test)]
mod remap_tests {
    use super::remap_pairs;
    use std::path::{Path, PathBuf};

    /// What rustc does with the flags: the last matching prefix wins.
    fn map(pairs: &[(PathBuf, &str)], file: &Path) -> String {
        let (from, to) = pairs
            .iter()
            .rev()
            .find(|(from, _)| file.starts_with(from))
            .expect("some remapping matches");
        format!("{to}/{}", file.strip_prefix(from).unwrap().display())
    }

    #[test]
    fn a_cargo_home_inside_the_checkout_maps_as_it_does_outside() {
        let src = "registry/src/index.crates.io-1/tokio-1.0/src/lib.rs";
        let file = |home: &str| Path::new(home).join(src);
        // The GitLab job: cargo home and target dir inside the checkout.
        let job = remap_pairs(
            "/builds/p/.cache/cargo".into(),
            "/usr/local/rustup".into(),
            Path::new("/builds/p"),
            Path::new("/builds/p/target"),
        );
        // ci's copy of the checkout in another directory, same cargo home.
        let copy = remap_pairs(
            "/builds/p/.cache/cargo".into(),
            "/usr/local/rustup".into(),
            Path::new("/builds/p/target/repro/workspace"),
            Path::new("/builds/p/target/repro/target"),
        );
        // A laptop: everything apart.
        let laptop = remap_pairs(
            "/home/u/.cargo".into(),
            "/home/u/.rustup".into(),
            Path::new("/home/u/src/fluxion"),
            Path::new("/tmp/t"),
        );
        let want = format!("/cargo/{src}");
        assert_eq!(map(&job, &file("/builds/p/.cache/cargo")), want);
        assert_eq!(map(&copy, &file("/builds/p/.cache/cargo")), want);
        assert_eq!(map(&laptop, &file("/home/u/.cargo")), want);
        let main = "fluxion/src/main.rs";
        assert_eq!(
            map(&job, &Path::new("/builds/p").join(main)),
            format!("/fluxion/{main}")
        );
        assert_eq!(
            map(
                &copy,
                &Path::new("/builds/p/target/repro/workspace").join(main)
            ),
            format!("/fluxion/{main}")
        );
        let out = "release/build/x/out/gen.rs";
        assert_eq!(
            map(&copy, &Path::new("/builds/p/target/repro/target").join(out)),
            format!("/fluxion/target/{out}")
        );
        assert_eq!(
            map(&laptop, &Path::new("/tmp/t").join(out)),
            format!("/fluxion/target/{out}")
        );
    }
}
