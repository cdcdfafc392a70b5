//! The classic reproducible-tar recipe the bench compares assembly against: the image's rootfs
//! unpacked to a directory, then `tar --sort=name ... | gzip -n -6 | sha256sum`, run as a real
//! pipeline of three processes (piped stdio, no shell).
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use crate::epoch::Epoch;
use crate::image::Image;

/// Unpack every layer of `image`, bottom first, into a fresh `rootfs` (GNU tar detects the
/// compression of each blob). Untimed setup.
pub fn unpack(image: &Image, rootfs: &Path) -> anyhow::Result<()> {
    super::remove_dir(rootfs)?;
    std::fs::create_dir_all(rootfs)?;
    for layer in &image.layers {
        let status = Command::new("tar")
            .arg("-xf")
            .arg(&layer.blob.path)
            .arg("-C")
            .arg(rootfs)
            .status()
            .context("running `tar -x` (GNU tar is needed for the baseline)")?;
        if !status.success() {
            bail!(
                "unpacking layer {} into {} failed ({status})",
                layer.blob.digest,
                rootfs.display()
            );
        }
    }
    Ok(())
}

/// `tar --sort=name --mtime=@<epoch> --owner=0 --group=0 --numeric-owner -cf - -C rootfs . |
/// gzip -n -6 | sha256sum`; returns the `sha256:<hex>` it printed.
pub fn tar_gzip_sha256(rootfs: &Path, epoch: Epoch) -> anyhow::Result<String> {
    let mut tar = Command::new("tar")
        .args(["--sort=name", &format!("--mtime=@{}", epoch.0)])
        .args([
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-cf",
            "-",
            "-C",
        ])
        .arg(rootfs)
        .arg(".")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting `tar`")?;
    let mut gzip = Command::new("gzip")
        .args(["-n", "-6"])
        .stdin(tar.stdout.take().expect("piped"))
        .stdout(Stdio::piped())
        .spawn()
        .context("starting `gzip`")?;
    let sum = Command::new("sha256sum")
        .stdin(gzip.stdout.take().expect("piped"))
        .stdout(Stdio::piped())
        .spawn()
        .context("starting `sha256sum`")?;
    let out = sum.wait_with_output().context("waiting for sha256sum")?;
    let (t, g) = (tar.wait()?, gzip.wait()?);
    if !(t.success() && g.success() && out.status.success()) {
        bail!(
            "the baseline pipeline failed: tar {t}, gzip {g}, sha256sum {}",
            out.status
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.split_whitespace().next().unwrap_or_default();
    if hex.len() != 64 {
        bail!("sha256sum printed {text:?}, not a digest");
    }
    Ok(format!("sha256:{hex}"))
}
