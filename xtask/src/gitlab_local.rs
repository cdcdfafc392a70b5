//! Runs .gitlab-ci.yml's `check` and `build:*` jobs for real with gitlab-ci-local (shell
//! executor), as the last step of `cargo xtask ci`, so the pipeline file is tested, not trusted.
//!
//! Each test runs once: the `check` job itself runs `cargo xtask ci`. The jobs get
//! `FLUXION_CI_NESTED=1`, and a `cargo xtask ci` that sees it skips this step and every step
//! the outer run has just done on the same files (fmt, clippy, tests, the reproducibility
//! build; commands/ci.rs), saying so; the build jobs run for real (no-op rebuilds after the
//! outer run's `image --arch all`). The `integration` jobs are not run here: they are the real-
//! tool tests the outer `cargo test` already ran.
//!
//! Cost: gitlab-ci-local 4.73 runs shell-executor jobs in the checkout itself unless
//! `--shell-isolation` is given, and the jobs get the outer run's `CARGO_TARGET_DIR`, so they
//! reuse its compiled crates and images instead of building everything from scratch.
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use crate::workspace::{self, Workspace};

/// Set in the jobs' environment; `cargo xtask ci` skips this step when it is set.
pub const NESTED_ENV: &str = "FLUXION_CI_NESTED";

/// Why the steps the outer run has done are skipped, when this `cargo xtask ci` runs inside a
/// gitlab-ci-local job of another one; `None` otherwise.
pub fn nested() -> Option<&'static str> {
    std::env::var_os(NESTED_ENV).is_some().then_some(
        "FLUXION_CI_NESTED is set: this runs inside gitlab-ci-local's `check` job of an outer \
         `cargo xtask ci`, which has just done this step on the same files",
    )
}
/// The jobs run here. Not `build:aarch64-nix` (no nixpkgs on these machines) nor `release`
/// (tags only; it pushes to a registry).
pub const JOBS: [&str; 3] = ["check", "build:amd64", "build:aarch64"];
/// The version this was tested with; others may differ in executor behaviour.
pub const VERSION: &str = "4.73.0";

/// Why this step does not run here, if it does not; `Err` when it must run but cannot.
pub fn skip_reason(sh: &Shell) -> anyhow::Result<Option<String>> {
    if let Some(why) = nested() {
        return Ok(Some(why.to_owned()));
    }
    let version = cmd!(sh, "gitlab-ci-local --version")
        .quiet()
        .ignore_stderr()
        .read();
    match version {
        Ok(v) if v.trim() == VERSION => Ok(None),
        Ok(v) => {
            tracing::warn!("gitlab-ci-local {} found; tested with {VERSION}", v.trim());
            Ok(None)
        }
        Err(_) if workspace::tools_required() => bail!(
            "gitlab-ci-local is not on PATH and {}=1: install it with .ci/install-tools \
             (`npm install -g gitlab-ci-local@{VERSION}`; it also needs rsync)",
            workspace::REQUIRE_TOOLS_ENV
        ),
        Err(_) => Ok(Some(format!(
            "gitlab-ci-local is not on PATH (npm install -g gitlab-ci-local@{VERSION}; \
             this fails under {}=1)",
            workspace::REQUIRE_TOOLS_ENV
        ))),
    }
}

/// Run each job in turn and return how long each took; the first failing job fails the step.
pub fn run_jobs(sh: &Shell, ws: &Workspace) -> anyhow::Result<Vec<(&'static str, Duration)>> {
    // The pipeline keeps CARGO_HOME and the package cache in the project dir for GitLab's
    // cache; here they must stay where the outer run has them, or every crate would be fetched
    // and compiled again (their paths are part of cargo's fingerprints).
    let home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .context("HOME is not set")?;
    let env_or = |var: &str, default: std::path::PathBuf| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .unwrap_or(default)
    };
    let vars = [
        format!("{NESTED_ENV}=1"),
        format!("CARGO_TARGET_DIR={}", ws.target_dir.display()),
        format!(
            "CARGO_HOME={}",
            env_or("CARGO_HOME", home.join(".cargo")).display()
        ),
        format!(
            "XDG_CACHE_HOME={}",
            env_or("XDG_CACHE_HOME", home.join(".cache")).display()
        ),
    ];
    let args: Vec<String> = vars
        .iter()
        .flat_map(|v| ["--variable".to_owned(), v.clone()])
        .collect();
    let mut times = Vec::new();
    for job in JOBS {
        let t = Instant::now();
        let args = &args;
        cmd!(
            sh,
            "gitlab-ci-local --force-shell-executor --no-shell-isolation {args...} {job}"
        )
        .run()
        .with_context(|| {
            format!(
                "gitlab-ci-local job `{job}` failed; its log is in .gitlab-ci-local/output/ \
                 (gitlab-ci-local writes `:` in job names as `Og`)"
            )
        })?;
        let took = t.elapsed();
        tracing::info!("gitlab-ci-local: job {job} passed in {took:.1?}");
        times.push((job, took));
    }
    for (job, took) in &times {
        println!(
            "gitlab-ci-local {job:<14} passed in {:>7.1} s",
            took.as_secs_f64()
        );
    }
    Ok(times)
}
