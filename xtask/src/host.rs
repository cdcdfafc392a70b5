//! What this machine has: tools on PATH (for the builders, the daemon publisher and the
//! tests) and the user's cache directory.
use std::path::PathBuf;

use anyhow::Context;

/// The first `tool` on PATH that is a file, like `command -v` (no shell involved).
pub fn which(tool: &str) -> Option<PathBuf> {
    which_in(tool, &std::env::var_os("PATH")?)
}

/// `which` on a given search path (a `PATH` value).
pub fn which_in(tool: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// The xtask's cache directory (downloads, unpacked packages, remembered workspaces):
/// `$FLUXION_CACHE_DIR`, else `$XDG_CACHE_HOME/fluxion-xtask`, else `~/.cache/fluxion-xtask`.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("FLUXION_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("fluxion-xtask"));
    }
    let home = std::env::var_os("HOME").filter(|d| !d.is_empty()).context(
        "no FLUXION_CACHE_DIR, XDG_CACHE_HOME or HOME to put the download cache in; set \
         FLUXION_CACHE_DIR",
    )?;
    Ok(PathBuf::from(home).join(".cache").join("fluxion-xtask"))
}
