//! Loading an archive into a container engine: docker (honouring DOCKER_HOST), else podman.
use std::path::Path;

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use super::docker_archive::DockerArchives;
use super::{Assembled, Format, Output, Publisher};
use crate::host::which;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Docker,
    Podman,
}

/// The engine to load into: docker when its daemon answers, else podman when installed.
pub fn pick(sh: &Shell) -> Option<Engine> {
    if which("docker").is_some() {
        let fmt = "{{.Server.Version}}";
        let up = cmd!(sh, "docker version --format {fmt}")
            .quiet()
            .ignore_stderr()
            .read();
        match up {
            Ok(v) if !v.trim().is_empty() => return Some(Engine::Docker),
            _ => {
                tracing::info!("docker has no reachable engine (DOCKER_HOST or the default socket)")
            }
        }
    }
    which("podman").map(|_| Engine::Podman)
}

/// Load `archive`; returns the engine and the image names it reported.
pub fn load(sh: &Shell, archive: &Path) -> anyhow::Result<(Engine, Vec<String>)> {
    let Some(engine) = pick(sh) else {
        bail!(
            "no container engine to load into: docker has no reachable daemon and podman is not \
             installed; the image is at {} — load it later with `docker load -i {0}` or \
             `podman load -i {0}`",
            archive.display()
        );
    };
    let out = match engine {
        Engine::Docker => cmd!(sh, "docker load -i {archive}").read(),
        Engine::Podman => cmd!(sh, "podman load -i {archive}").read(),
    }
    .with_context(|| format!("loading {} into {engine:?}", archive.display()))?;
    let names: Vec<String> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Loaded image:"))
        .flat_map(|rest| rest.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        bail!(
            "{engine:?} loaded {} but named no image; its output was:\n{out}",
            archive.display()
        );
    }
    Ok((engine, names))
}

/// Loads each image into docker or podman from its docker-archive, which `archives` writes
/// first (and which stays, for a later `docker load -i`).
pub struct Daemon<'a> {
    pub sh: &'a Shell,
    pub archives: DockerArchives,
}

impl Publisher for Daemon<'_> {
    fn format(&self) -> Format {
        Format::Daemon
    }

    fn publish(&self, a: &Assembled) -> anyhow::Result<Vec<Output>> {
        let mut out = self.archives.publish(a)?;
        for archive in out.clone() {
            let path = archive.path.as_deref().expect("a docker-archive is a file");
            let (engine, names) = load(self.sh, path)?;
            out.push(Output {
                format: Format::Daemon,
                arch: archive.arch,
                location: format!("{engine:?}"),
                path: None,
                names,
                written: None,
            });
        }
        Ok(out)
    }
}
