//! Step 1, build: compile `fluxion-main` per target with a backend, then check each binary.
pub mod cargo;
pub mod cross;
pub mod elf;

use std::path::PathBuf;

use anyhow::Context;
use xshell::Shell;

use crate::arch::Arch;
use crate::workspace::Workspace;

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

/// A checked binary: right ELF machine, statically linked. Its bytes are kept so the
/// assembler never reads the file a second time.
#[derive(Debug, Clone)]
pub struct Binary {
    pub arch: Arch,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
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
        .map(|(&arch, path)| {
            let bytes = std::fs::read(&path)
                .with_context(|| format!("reading the built binary {}", path.display()))?;
            elf::check(&bytes, arch)
                .with_context(|| format!("refusing to package {} for {arch}", path.display()))?;
            Ok(Binary { arch, path, bytes })
        })
        .collect()
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
    // rustc applies the remapping listed last first, so the most specific paths come last.
    let mut pairs = vec![
        (cargo_home, "/cargo"),
        (rustup_home, "/rustup"),
        (ws.root.clone(), "/fluxion"),
    ];
    if !ws.target_dir.starts_with(&ws.root) {
        pairs.push((ws.target_dir.clone(), "/fluxion/target"));
    }
    pairs
        .into_iter()
        .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display()))
        .collect()
}
