//! `cargo xtask ci`: everything CI checks, in one command, failing on the first red step.
//!
//! Each test runs once: inside the gitlab-ci-local step's `check` job (`FLUXION_CI_NESTED` set,
//! see gitlab_local.rs) the steps the outer run has just done on the same files (fmt, clippy,
//! the tests, the reproducibility build) are skipped with a printed reason; what is left checks
//! that the job's script and environment work (lint, meta, lock, a no-op image build).
use std::collections::BTreeMap;

use anyhow::Context;
use xshell::{cmd, Shell};

use super::image::{archive_sha256s, build_all, print_summary};
use crate::addon::AddonConfig;
use crate::epoch::Epoch;
use crate::flags;
use crate::publish::Format;
use crate::workspace::Workspace;
use crate::{gitlab_local, repro};

impl flags::Ci {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        // Cheap checks of the add-on's files first: they need no compilation.
        // The same checks as `cargo xtask lint`: the manifest's rule table and the store check.
        step("lint (addon/config.yaml and the store check)", || {
            flags::Lint::default().run(sh, ws)
        })?;
        step("meta --check", || {
            let addon = AddonConfig::load(&ws.addon_config())?;
            super::meta::check(&super::meta::default_path(ws), &super::meta::render(&addon))
        })?;
        // No network: the committed lock must cover the declaration and agree with the signed
        // releases before anything builds.
        step("lock --check", || {
            super::lock::check(ws).map(|s| println!("{s}"))
        })?;
        let nested = gitlab_local::nested();
        once("cargo fmt --check", nested, || {
            cmd!(sh, "cargo fmt --all --check")
                .run()
                .map_err(Into::into)
        })?;
        once("cargo clippy", nested, || {
            cmd!(
                sh,
                "cargo clippy --workspace --all-targets --locked -- -D warnings"
            )
            .run()
            .map_err(Into::into)
        })?;
        once("cargo test", nested, || {
            cmd!(sh, "cargo test --workspace --locked")
                .run()
                .map_err(Into::into)
        })?;

        // One epoch for both builds: the copy has no git history to read it from.
        let epoch = Epoch::discover(sh)?;
        let built = step(
            "image --arch all (with the multi-arch layout and archive)",
            || build_all(sh, ws, epoch),
        )?;
        print_summary(ws, &built, false);
        if self.no_repro {
            println!("ci: reproducibility step skipped: --no-repro was given");
        } else {
            once("reproducibility", nested, || {
                let dir = self
                    .repro_dir
                    .clone()
                    .unwrap_or_else(|| repro::default_dir(ws));
                repro::mirror(sh, ws, &dir)?;
                let xtask = running_xtask()?;
                let multi = built
                    .output(Format::HybridArchive, None)
                    .context("`image --arch all` wrote no multi-arch archive")?;
                let name = multi
                    .path
                    .as_deref()
                    .and_then(|p| p.file_name())
                    .and_then(|n| n.to_str())
                    .context("the multi-arch archive has no file name")?;
                let theirs = repro::build_copy(sh, &xtask, &dir, epoch, name)?;
                let mut ours: BTreeMap<String, String> = archive_sha256s(&built);
                let sha = multi
                    .written
                    .as_ref()
                    .context("the multi-arch archive's digest was not recorded")?;
                ours.insert(repro::MULTI_ARCH.to_owned(), sha.sha256.clone());
                for o in built.outputs.iter().filter(|o| o.format == Format::Spdx) {
                    if let (Some(arch), Some(w)) = (o.arch, &o.written) {
                        ours.insert(repro::sbom_key(&arch.to_string()), w.sha256.clone());
                    }
                }
                repro::compare(&ours, &theirs)
            })?;
        }
        // Last: the jobs reuse everything the steps above compiled and built.
        step("gitlab-ci-local (check, build:*)", || {
            let reason = if self.no_gitlab_ci_local {
                Some("--no-gitlab-ci-local was given".to_owned())
            } else if let Some(why) = nested {
                Some(why.to_owned())
            } else {
                gitlab_local::skip_reason(sh)?
            };
            if let Some(reason) = reason {
                println!("ci: gitlab-ci-local step skipped: {reason}");
                return Ok(());
            }
            gitlab_local::run_jobs(sh, ws).map(drop)
        })
    }
}

/// The running xtask binary, to build the copy with. `cargo test` (an earlier step) re-links
/// target/debug/xtask from the same sources while this process runs, after which Linux reports
/// our executable as `<path> (deleted)`; the file now at `<path>` is that same build.
fn running_xtask() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("locating the running xtask binary")?;
    if exe.is_file() {
        return Ok(exe);
    }
    let relinked = exe
        .to_str()
        .and_then(|s| s.strip_suffix(" (deleted)"))
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file());
    relinked.with_context(|| {
        format!(
            "the running xtask binary {} is gone; run `cargo xtask ci` again",
            exe.display()
        )
    })
}

/// A step the outer `cargo xtask ci` has already run when this one is nested (`nested` holds
/// why): skipped with the reason printed, so nothing is checked twice.
fn once(
    name: &str,
    nested: Option<&str>,
    f: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match nested {
        Some(why) => {
            println!("ci: {name} skipped: {why}");
            Ok(())
        }
        None => step(name, f),
    }
}

fn step<T>(name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    tracing::info!("ci: {name}");
    let t = std::time::Instant::now();
    let r = f().with_context(|| format!("ci step `{name}` failed"));
    tracing::info!(
        "ci: {name}: {} in {:.1?}",
        if r.is_ok() { "ok" } else { "FAILED" },
        t.elapsed()
    );
    r
}
