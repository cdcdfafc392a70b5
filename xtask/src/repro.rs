//! The reproducibility check: build the images again from a copy of the workspace in another
//! directory, with its own target dir, and compare the archives byte for byte (by sha256).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use crate::epoch::Epoch;
use crate::workspace::Workspace;

/// Where the copy lives unless told otherwise. A fixed place (not a fresh temp dir) so the
/// copy's own target dir stays warm between runs: the flags that make builds independent of
/// the checkout path contain that path, so a new path would mean rebuilding every crate.
pub fn default_dir(ws: &Workspace) -> PathBuf {
    ws.target_dir.join("repro").join("workspace")
}

/// Mirror the workspace's files (tracked, plus untracked ones git does not ignore) into `dest`,
/// rewriting only files whose content differs so unchanged sources keep their mtimes.
pub fn mirror(sh: &Shell, ws: &Workspace, dest: &Path) -> anyhow::Result<usize> {
    let listing = cmd!(sh, "git ls-files -z --cached --others --exclude-standard")
        .quiet()
        .read()
        .context("listing the workspace's files with git (the repro check needs a git checkout)")?;
    let files: Vec<&str> = listing.split('\0').filter(|f| !f.is_empty()).collect();
    let keep: std::collections::BTreeSet<PathBuf> = files.iter().map(PathBuf::from).collect();
    std::fs::create_dir_all(dest)?;
    // Drop files that no longer exist in the source (but never the copy's target dir).
    prune(dest, dest, &keep)?;
    for f in &files {
        let (from, to) = (ws.root.join(f), dest.join(f));
        let Ok(bytes) = std::fs::read(&from) else {
            continue;
        }; // deleted but not yet staged
        if std::fs::read(&to).ok().as_deref() == Some(&bytes[..]) {
            continue;
        }
        std::fs::create_dir_all(to.parent().expect("a file has a parent"))?;
        std::fs::write(&to, &bytes).with_context(|| format!("copying {f} to {}", to.display()))?;
        let mode = std::fs::metadata(&from)?.permissions();
        std::fs::set_permissions(&to, mode)?;
    }
    Ok(files.len())
}

fn prune(
    root: &Path,
    dir: &Path,
    keep: &std::collections::BTreeSet<PathBuf>,
) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let rel = path.strip_prefix(root).expect("under root").to_path_buf();
        if rel == Path::new("target") {
            continue;
        }
        if path.is_dir() && !path.is_symlink() {
            prune(root, &path, keep)?;
        } else if !keep.contains(&rel) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Build `image --arch all` in the copy with the given xtask binary and return
/// arch -> archive sha256 as that build reported it.
pub fn build_copy(
    sh: &Shell,
    xtask: &Path,
    dest: &Path,
    epoch: Epoch,
) -> anyhow::Result<BTreeMap<String, String>> {
    let _dir = sh.push_dir(dest);
    let epoch = epoch.0.to_string();
    let out = cmd!(sh, "{xtask} image --arch all --json")
        .env("SOURCE_DATE_EPOCH", epoch)
        .env_remove("CARGO_TARGET_DIR")
        .read()
        .with_context(|| format!("building the images in the copy at {}", dest.display()))?;
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&out).context("parsing the copy's `image --json` summary")?;
    rows.iter()
        .map(|r| {
            let arch = r["arch"].as_str().context("summary row without arch")?;
            let sha = r["archive_sha256"]
                .as_str()
                .context("summary row without archive_sha256")?;
            Ok((arch.to_owned(), sha.to_owned()))
        })
        .collect()
}

/// Compare two arch -> sha256 maps; print both; fail naming every arch that differs.
pub fn compare(
    ours: &BTreeMap<String, String>,
    theirs: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let mut bad = Vec::new();
    for (arch, a) in ours {
        let b = theirs.get(arch).map(String::as_str).unwrap_or("(missing)");
        println!("repro {arch:<8} here {a}\n         copy {b}");
        if a != b {
            bad.push(arch.as_str());
        }
    }
    if !bad.is_empty() {
        bail!(
            "not reproducible: the archives for {} differ between two checkouts; compare them \
             with `diffoscope` to see which bytes depend on the directory",
            bad.join(", ")
        );
    }
    Ok(())
}
