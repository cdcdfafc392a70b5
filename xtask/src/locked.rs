//! The versions Cargo.lock pins for the crates that write layer bytes (the tar writer, the
//! compressors, the xz decoder), read at build time by xtask/build.rs.
include!(concat!(env!("OUT_DIR"), "/locked.rs"));
