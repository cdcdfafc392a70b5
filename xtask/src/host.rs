//! What this machine has: tools on PATH, for the builders, the daemon publisher and the tests.
use std::path::PathBuf;

/// The first `tool` on PATH that is a file, like `command -v` (no shell involved).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}
