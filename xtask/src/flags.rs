//! The command line, as clap derive structs: one struct per command; doc comments are the help.
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::image::arch::Arch;
use crate::image::compress::Compression;

/// FluxION's image pipeline: reproducible Home Assistant add-on images, no Docker daemon needed.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
pub struct Xtask {
    #[command(subcommand)]
    pub cmd: Cmd,
    /// Log more (debug level); `XTASK_LOG` takes a full tracing filter.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    Image(Image),
    Load(Load),
    Ci(Ci),
    Bench(Bench),
}

/// Build the add-on images as docker-archive tarballs in target/images (+ result-<arch> links).
#[derive(Debug, clap::Args)]
pub struct Image {
    /// Which architecture(s) to build.
    #[arg(long, value_enum, default_value_t = ArchSel::All)]
    pub arch: ArchSel,
    #[command(flatten)]
    pub build: BuildOpts,
    /// Layer compression: gzip loads everywhere; zstd is smaller and faster to write, and
    /// Docker >= 23, podman, containerd and skopeo read it (Docker 20.10 does not).
    #[arg(long, value_enum, default_value_t = Compression::Gzip)]
    pub compression: Compression,
    /// Print the summary as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Build one image and load it into docker (or podman when docker has no reachable engine).
#[derive(Debug, clap::Args)]
pub struct Load {
    /// The architecture to build and load.
    #[arg(value_enum)]
    pub arch: Arch,
    #[command(flatten)]
    pub build: BuildOpts,
}

/// Everything CI checks: fmt, clippy, tests, both images, and a reproducibility check.
#[derive(Debug, clap::Args)]
pub struct Ci {
    /// Skip the second build from a copy of the workspace (the reproducibility check).
    #[arg(long)]
    pub no_repro: bool,
    /// Where to put the copy for the reproducibility check (default: a fresh temp dir).
    #[arg(long)]
    pub repro_dir: Option<PathBuf>,
}

/// Measure the pipeline against its baselines (assembly vs `tar | gzip`, no-op and app-only
/// rebuilds, sizes, gzip vs zstd): prints a table, writes target/bench/report.json. Builds what
/// it needs first; takes minutes. Not part of `ci`.
#[derive(Debug, clap::Args)]
pub struct Bench {
    /// Timed runs per figure, after one warm-up (median, min and max are reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(5..))]
    pub runs: u32,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BuildOpts {
    /// How to compile fluxion-main: `cargo` (rustup targets + rust-lld), `cross`, or `auto`
    /// (cross only when a Cross.toml asks for it, else cargo).
    #[arg(long, value_enum, default_value_t = BuilderKind::Auto)]
    pub builder: BuilderKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArchSel {
    Amd64,
    Aarch64,
    All,
}

impl ArchSel {
    pub fn arches(self) -> Vec<Arch> {
        match self {
            ArchSel::Amd64 => vec![Arch::Amd64],
            ArchSel::Aarch64 => vec![Arch::Aarch64],
            ArchSel::All => Arch::ALL.to_vec(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuilderKind {
    Auto,
    Cargo,
    Cross,
}
