//! FluxION's image pipeline as a library: build -> assemble -> publish, used by `main.rs`
//! and by the integration tests in `xtask/tests/`.
pub mod addon;
pub mod atomic;
pub mod bench;
pub mod build;
pub mod commands;
pub mod epoch;
pub mod flags;
pub mod gitlab_local;
pub mod image;
pub mod publish;
pub mod repro;
pub mod runtime;
pub mod workspace;
