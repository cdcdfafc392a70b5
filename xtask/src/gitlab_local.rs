//! Runs .gitlab-ci.yml's `check` and `build:*` jobs for real with gitlab-ci-local (shell
//! executor), as the last step of `cargo xtask ci`, so the pipeline file is tested, not trusted.
//!
//! Recursion: the `check` job itself runs `cargo xtask ci`. The jobs get
//! `FLUXION_CI_NESTED=1`, and a `cargo xtask ci` that sees it skips this step (and says so),
//! so the nesting is exactly one level deep.
//!
//! Cost: gitlab-ci-local 4.73 runs shell-executor jobs in the checkout itself unless
//! `--shell-isolation` is given, and the jobs get the outer run's `CARGO_TARGET_DIR`, so they
//! reuse its compiled crates and images instead of building everything from scratch.
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use crate::workspace::Workspace;

/// Set in the jobs' environment; `cargo xtask ci` skips this step when it is set.
pub const NESTED_ENV: &str = "FLUXION_CI_NESTED";
/// The jobs run here. Not `build:aarch64-nix` (no nixpkgs on these machines) nor `release`
/// (tags only; it pushes to a registry).
pub const JOBS: [&str; 3] = ["check", "build:amd64", "build:aarch64"];
/// The version this was tested with; others may differ in executor behaviour.
pub const VERSION: &str = "4.73.0";

/// Why this step does not run here, if it does not; `Err` when it must run but cannot.
pub fn skip_reason(sh: &Shell) -> anyhow::Result<Option<String>> {
    if std::env::var_os(NESTED_ENV).is_some() {
        return Ok(Some(format!(
            "{NESTED_ENV} is set: this `cargo xtask ci` runs inside a gitlab-ci-local job, \
             which must not start gitlab-ci-local again"
        )));
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
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => bail!(
            "gitlab-ci-local is not on PATH and CI=true: install it with \
             `npm install -g gitlab-ci-local@{VERSION}` (it also needs rsync)"
        ),
        Err(_) => Ok(Some(format!(
            "gitlab-ci-local is not on PATH (npm install -g gitlab-ci-local@{VERSION})"
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
