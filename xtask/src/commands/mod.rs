//! One file per `cargo xtask` command; each is `impl flags::X { fn run(...) }`.
pub mod bench;
pub mod ci;
pub mod image;
pub mod load;
