//! The reproducibility check: build the images again from a copy of the workspace in another
//! directory, with its own target dir, and compare the archives byte for byte (by sha256): both
//! per-arch docker-archives, the multi-arch archive (`fluxion-ha.tar`, the OCI index) and both
//! SBOMs (`fluxion-ha-<arch>.spdx.json`).
//!
//! It runs once per `cargo xtask ci`, as that command's `reproducibility` step, on the very
//! archives `ci` has just built from the checkout with the commit's epoch: the one cold copy
//! build of a CI run. (There is no second copy build in the test suite; what a test adds, that
//! the comparison can fail, is checked cheaply: tests/cache.rs shows another epoch gives other
//! archives, and the unit tests below that `compare` names every differing archive.)
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use crate::epoch::Epoch;
use crate::image::hash;
use crate::workspace::{self, Workspace};

/// The key for the multi-arch archive in the maps `build_copy` and `compare` take.
pub const MULTI_ARCH: &str = "multi-arch";

/// The key for `arch`'s SBOM (`fluxion-ha-<arch>.spdx.json`) in those maps.
pub fn sbom_key(arch: &str) -> String {
    format!("sbom-{arch}")
}

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
/// arch -> archive sha256 as that build reported it, plus [`MULTI_ARCH`] -> the sha256 of the
/// multi-arch archive it wrote and [`sbom_key`]`(arch)` -> the sha256 of each SBOM (`multi_arch_file`, the name of ours in the images dir). The copy gets its own target dir and output dir (the caller's
/// `CARGO_TARGET_DIR` and `FLUXION_OUT_DIR` are not passed on).
pub fn build_copy(
    sh: &Shell,
    xtask: &Path,
    dest: &Path,
    epoch: Epoch,
    multi_arch_file: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let _dir = sh.push_dir(dest);
    let epoch = epoch.0.to_string();
    let out = cmd!(sh, "{xtask} image --arch all --json")
        .env("SOURCE_DATE_EPOCH", epoch)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove(workspace::OUT_DIR_ENV)
        .read()
        .with_context(|| format!("building the images in the copy at {}", dest.display()))?;
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&out).context("parsing the copy's `image --json` summary")?;
    let multi = dest.join("target").join("images").join(multi_arch_file);
    let mut theirs: BTreeMap<String, String> = rows
        .iter()
        .map(|r| {
            let arch = r["arch"].as_str().context("summary row without arch")?;
            let sha = r["archive_sha256"]
                .as_str()
                .context("summary row without archive_sha256")?;
            Ok((arch.to_owned(), sha.to_owned()))
        })
        .collect::<anyhow::Result<_>>()?;
    theirs.insert(MULTI_ARCH.to_owned(), file_sha256(&multi)?);
    let archs: Vec<String> = theirs
        .keys()
        .filter(|k| *k != MULTI_ARCH)
        .cloned()
        .collect();
    for arch in archs {
        let sbom = dest
            .join("target")
            .join("images")
            .join(format!("{}-{arch}.spdx.json", crate::publish::REPO));
        theirs.insert(sbom_key(&arch), file_sha256(&sbom)?);
    }
    Ok(theirs)
}

pub fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(hash::sha256(&bytes))
}

/// Compare two arch -> sha256 maps; print both; fail naming every arch that differs.
pub fn compare(
    ours: &BTreeMap<String, String>,
    theirs: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let mut bad = Vec::new();
    for (arch, a) in ours {
        let b = theirs.get(arch).map(String::as_str).unwrap_or("(missing)");
        println!("repro {arch:<10} here {a}\n           copy {b}");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn compare_names_every_archive_that_differs() {
        let ours = map(&[("aarch64", "a"), ("amd64", "b"), (MULTI_ARCH, "c")]);
        compare(&ours, &ours.clone()).unwrap();
        let theirs = map(&[("aarch64", "a"), ("amd64", "x")]);
        let err = compare(&ours, &theirs).unwrap_err().to_string();
        assert!(err.contains("amd64, multi-arch"), "{err}");
        assert!(!err.contains("aarch64"), "{err}");
    }

    #[test]
    fn mirror_copies_tracked_and_untracked_files_and_prunes_stale_ones() {
        let src = tempfile::tempdir().unwrap();
        let sh = Shell::new().unwrap();
        sh.change_dir(src.path());
        cmd!(sh, "git init -q").run().unwrap();
        std::fs::write(src.path().join(".gitignore"), "/target\n/ignored\n").unwrap();
        std::fs::create_dir_all(src.path().join("a")).unwrap();
        std::fs::write(src.path().join("a/tracked"), "t").unwrap();
        cmd!(sh, "git add -A").run().unwrap();
        std::fs::write(src.path().join("untracked"), "u").unwrap();
        std::fs::write(src.path().join("ignored"), "i").unwrap();
        let ws = Workspace {
            root: src.path().to_owned(),
            target_dir: src.path().join("target"),
            fluxion_version: "0".into(),
            out_dir: None,
        };
        let dest = tempfile::tempdir().unwrap();
        let d = dest.path();
        std::fs::create_dir_all(d.join("target")).unwrap();
        std::fs::write(d.join("target/keep"), "k").unwrap();
        std::fs::write(d.join("stale"), "s").unwrap();
        assert_eq!(mirror(&sh, &ws, d).unwrap(), 3);
        assert_eq!(std::fs::read_to_string(d.join("a/tracked")).unwrap(), "t");
        assert_eq!(std::fs::read_to_string(d.join("untracked")).unwrap(), "u");
        assert!(!d.join("ignored").exists(), "ignored files are not copied");
        assert!(
            !d.join("stale").exists(),
            "files gone from the source are dropped"
        );
        assert!(
            d.join("target/keep").exists(),
            "the copy's target dir is kept"
        );
    }
}
