//! The command line, as clap derive structs: one struct per command; doc comments are the help.
use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand, ValueEnum};

use crate::arch::Arch;
use crate::build::Builder;
use crate::image::compress::Compression;
use crate::runtime::cache::Mode;

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
    Push(Push),
    Ci(Ci),
    Lint(Lint),
    Meta(Meta),
    Lock(Lock),
    Fetch(Fetch),
    Sbom(Sbom),
    Bench(Bench),
    Clean(Clean),
}

/// Build the add-on images as docker-archive tarballs in target/images (+ result-<arch> links).
#[derive(Debug, clap::Args)]
pub struct Image {
    /// Which architecture(s) to build.
    #[arg(long, value_parser = arch_sel_parser(), default_value = "all")]
    pub arch: ArchSel,
    #[command(flatten)]
    pub build: BuildOpts,
    /// Layer compression: gzip loads everywhere; zstd is smaller and faster to write, and
    /// Docker >= 23, podman, containerd and skopeo read it (Docker 20.10 does not).
    #[arg(long, value_parser = compression_parser(), default_value = "gzip")]
    pub compression: Compression,
    /// Print the summary as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Build one image and load it into docker (or podman when docker has no reachable engine).
#[derive(Debug, clap::Args)]
pub struct Load {
    /// The architecture to build and load.
    #[arg(value_parser = arch_parser())]
    pub arch: Arch,
    #[command(flatten)]
    pub build: BuildOpts,
}

/// Build both images and push them with their multi-arch index to a registry (OCI
/// distribution API): blobs the registry lacks, manifests, the index, then the tags.
#[derive(Debug, clap::Args)]
pub struct Push {
    /// Where to: `<registry>/<repository>`, e.g. `ghcr.io/owner/fluxion` (no tag).
    pub target: String,
    /// Tags besides the add-on version from addon/config.yaml (which is always pushed).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Also push each image alone to `<registry>/<dir>/<arch>-<name>`, for add-ons whose
    /// config.yaml `image` uses `{arch}`.
    #[arg(long)]
    pub per_arch_repos: bool,
    /// Registry user; the password is read from stdin (--password-stdin). Without them:
    /// CI_REGISTRY_USER/CI_REGISTRY_PASSWORD, then ~/.docker/config.json auths.
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password (or token) for --username from stdin.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Allow plain HTTP to a registry other than localhost/127.0.0.1.
    #[arg(long)]
    pub insecure: bool,
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
    /// Skip running .gitlab-ci.yml's check and build jobs with gitlab-ci-local.
    #[arg(long)]
    pub no_gitlab_ci_local: bool,
}

/// Check addon/config.yaml: every key's type and default (Supervisor's and the HA add-on
/// linter's) plus their further rules, and the repository as Supervisor's add-on store loads
/// it; every finding names its key and rule, and any error fails.
#[derive(Debug, Default, clap::Args)]
pub struct Lint {
    /// The manifest to check (default: addon/config.yaml).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Also validate against this copy of the linter's config.schema.json (Draft 7); the
    /// built-in rule table is always checked.
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// The repository to check as Supervisor's add-on store loads it (default: the workspace).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

/// Write nix/addon-meta.json (name, version, labels per arch) for flake.nix from
/// addon/config.yaml; `--check` fails if it is out of date instead of writing.
#[derive(Debug, clap::Args)]
pub struct Meta {
    /// Compare with the file on disk; do not write.
    #[arg(long)]
    pub check: bool,
    /// Where to write (default: nix/addon-meta.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Resolve addon/runtime.toml across its signed Debian suites and write addon/runtime.lock
/// (with the InRelease files in addon/runtime.lock.d/); prints what changed.
#[derive(Debug, clap::Args)]
pub struct Lock {
    /// Only check (no network) that addon/runtime.lock covers addon/runtime.toml and agrees
    /// with the signed releases (and with the signed package indexes already cached).
    #[arg(long)]
    pub check: bool,
}

/// Download the .debs addon/runtime.lock lists into the download cache, after checking the
/// lock against the signed package indexes (fetched too); every file verified by sha256.
#[derive(Debug, clap::Args)]
pub struct Fetch {
    /// Which architecture(s) to fetch for.
    #[arg(long, value_parser = arch_sel_parser(), default_value = "all")]
    pub arch: ArchSel,
    /// Only check that the cache holds every package, intact; download nothing.
    #[arg(long)]
    pub offline: bool,
}

/// Build one image and write its SBOM (SPDX 2.3 JSON: the Debian packages of the runtime layer
/// and the crates of fluxion-main) to target/images/fluxion-ha-<arch>.spdx.json; print a table
/// of the packages, their versions and licences.
#[derive(Debug, clap::Args)]
pub struct Sbom {
    /// The architecture whose image the SBOM describes.
    #[arg(value_parser = arch_parser())]
    pub arch: Arch,
    #[command(flatten)]
    pub build: BuildOpts,
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

/// Remove debris: with `--cache`, temp files of runs that are no longer running, layer cache
/// entries and unpacked packages that are outdated or corrupt, and blobs no output and no cache
/// entry references; prints what it freed. Everything in use stays.
#[derive(Debug, clap::Args)]
pub struct Clean {
    /// Clean the images dir's store and caches and the download cache of orphans.
    #[arg(long, required = true)]
    pub cache: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BuildOpts {
    /// How to compile fluxion-main: `cargo` (rustup targets + rust-lld), `cross`, or `auto`
    /// (cross only when a Cross.toml asks for it, else cargo).
    #[arg(long, value_enum, default_value_t = BuilderKind::Auto)]
    pub builder: BuilderKind,
    /// Use only the download cache for the runtime layer's .debs (also automatic when the
    /// mirror is unreachable); a missing package is an error naming `cargo xtask fetch`.
    #[arg(long)]
    pub offline: bool,
}

impl BuildOpts {
    /// Whether the runtime layer's .debs may be downloaded.
    pub fn downloads(&self) -> Mode {
        if self.offline {
            Mode::Offline
        } else {
            Mode::Online
        }
    }
}

/// `--arch`: one architecture by its Home Assistant name (arch.rs has every name), or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchSel(Option<Arch>);

impl ArchSel {
    pub const ALL: ArchSel = ArchSel(None);

    pub fn arches(self) -> Vec<Arch> {
        match self.0 {
            Some(a) => vec![a],
            None => Arch::ALL.to_vec(),
        }
    }
}

fn arch_parser() -> impl TypedValueParser<Value = Arch> {
    PossibleValuesParser::new(Arch::ALL.map(Arch::hass_arch))
        .map(|s| Arch::from_hass(&s).expect("clap allows only the possible values"))
}

fn arch_sel_parser() -> impl TypedValueParser<Value = ArchSel> {
    let names = Arch::ALL.map(Arch::hass_arch).into_iter().chain(["all"]);
    PossibleValuesParser::new(names).map(|s| ArchSel(Arch::from_hass(&s)))
}

fn compression_parser() -> impl TypedValueParser<Value = Compression> {
    PossibleValuesParser::new(Compression::ALL.map(Compression::name))
        .map(|s| Compression::from_name(&s).expect("clap allows only the possible values"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuilderKind {
    Auto,
    Cargo,
    Cross,
}

impl From<BuilderKind> for Builder {
    fn from(k: BuilderKind) -> Builder {
        match k {
            BuilderKind::Auto => Builder::Auto,
            BuilderKind::Cargo => Builder::Cargo,
            BuilderKind::Cross => Builder::Cross,
        }
    }
}
