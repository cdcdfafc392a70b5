//! One file per `cargo xtask` command; each is `impl flags::X { fn run(...) }`.
pub mod bench;
pub mod ci;
pub mod clean;
pub mod fetch;
pub mod image;
pub mod lint;
pub mod load;
pub mod lock;
pub mod meta;
pub mod push;
pub mod sbom;
