//! `cargo xtask ci`: everything CI checks, in one command, failing on the first red step.
use std::collections::BTreeMap;

use anyhow::Context;
use xshell::{cmd, Shell};

use super::image::{build_images, print_summary};
use crate::epoch::Epoch;
use crate::flags::{self, ArchSel, BuilderKind};
use crate::repro;
use crate::workspace::Workspace;

impl flags::Ci {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        // No network: the committed lock must cover the declaration before anything builds.
        step("lock --check", || {
            crate::runtime::Runtime::load(&ws.root).map(|_| ())
        })?;
        step("cargo fmt --check", || {
            cmd!(sh, "cargo fmt --all --check")
                .run()
                .map_err(Into::into)
        })?;
        step("cargo clippy", || {
            cmd!(
                sh,
                "cargo clippy --workspace --all-targets --locked -- -D warnings"
            )
            .run()
            .map_err(Into::into)
        })?;
        step("cargo test", || {
            cmd!(sh, "cargo test --workspace --locked")
                .run()
                .map_err(Into::into)
        })?;

        // One epoch for both builds: the copy has no git history to read it from.
        let epoch = Epoch::discover(sh)?;
        let built = step("image --arch all", || {
            build_images(sh, ws, &ArchSel::All.arches(), BuilderKind::Auto, epoch)
        })?;
        print_summary(ws, &built, false);
        if self.no_repro {
            return Ok(());
        }
        step("reproducibility", || {
            let dir = self
                .repro_dir
                .clone()
                .unwrap_or_else(|| repro::default_dir(ws));
            repro::mirror(sh, ws, &dir)?;
            let xtask = std::env::current_exe().context("locating the running xtask binary")?;
            let theirs = repro::build_copy(sh, &xtask, &dir, epoch)?;
            let ours: BTreeMap<String, String> = built
                .iter()
                .map(|b| (b.image.arch.to_string(), b.written.sha256.clone()))
                .collect();
            repro::compare(&ours, &theirs)
        })
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
