//! `cargo xtask push <registry>/<repository>`: build both images (a no-op when up to date),
//! check the Supervisor contract, then push blobs, manifests, the index and tags.
use std::io::IsTerminal;

use anyhow::Context;
use xshell::Shell;

use super::image::{build_images, human, write_multi_arch};
use crate::addon::AddonConfig;
use crate::epoch::Epoch;
use crate::flags;
use crate::image::arch::Arch;
use crate::publish::{contract, registry};
use crate::workspace::Workspace;

impl flags::Push {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        // Everything that can be refused without building is checked first.
        let target = registry::Reference::parse(&self.target)?;
        let addon = AddonConfig::load(&ws.addon_config())?;
        let mut tags = vec![addon.version.clone()];
        for t in self.tag {
            registry::check_tag(&t)?;
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let mut stdin = std::io::stdin();
        if self.password_stdin && stdin.is_terminal() {
            anyhow::bail!("--password-stdin reads the password from a pipe: `echo $TOKEN | cargo xtask push ... --password-stdin`");
        }
        let creds = registry::credentials(
            &target.registry,
            self.username,
            self.password_stdin
                .then_some(&mut stdin as &mut dyn std::io::Read),
        )?;

        let epoch = Epoch::discover(sh)?;
        let arches: Vec<Arch> = addon
            .arch
            .iter()
            .filter_map(|a| Arch::from_hass(a))
            .collect();
        let built = build_images(sh, ws, &arches, self.build.builder, epoch)?;
        let multi = write_multi_arch(ws, &built, epoch)?.multi;
        contract::check(&addon, &ws.fluxion_version, &multi, &tags)
            .context("refusing to push: the images break the Home Assistant Supervisor contract")?;

        let report = registry::push(
            &target,
            &multi,
            &tags,
            self.per_arch_repos,
            creds,
            self.insecure,
        )
        .with_context(|| format!("pushing to {target}"))?;
        println!(
            "blobs: {} uploaded ({}), {} already there",
            report.uploaded.len(),
            human(report.bytes),
            report.skipped.len()
        );
        for m in &report.manifests {
            println!("manifest {m}");
        }
        for (tag, digest) in &report.tags {
            println!("tagged   {tag} -> {digest}");
        }
        Ok(())
    }
}
