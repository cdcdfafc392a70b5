//! FluxION's image pipeline as a library: build -> assemble -> publish (pipeline.rs), used by
//! `main.rs` and by the integration tests in `xtask/tests/`. Only `commands/` and `flags` know
//! the command line; no other module imports them.
pub mod addon;
pub mod arch;
pub mod atomic;
pub mod bench;
pub mod build;
pub mod commands;
pub mod epoch;
pub mod flags;
pub mod gc;
pub mod gitlab_local;
pub mod host;
pub mod image;
pub mod locked;
pub mod parallel;
pub mod pipeline;
pub mod publish;
pub mod repro;
pub mod runtime;
pub mod sbom;
pub mod stamp;
pub mod units;
pub mod workspace;
