//! `cargo xtask push <registry>/<repository>`: lint the add-on (refusing on any error), build
//! both images (a no-op when up to date), then publish them locally and to the registry, which
//! checks the Supervisor contract first.
use std::io::IsTerminal;

use xshell::Shell;

use crate::addon::AddonConfig;
use crate::arch::Arch;
use crate::flags;
use crate::pipeline::{self, ImageOutputs};
use crate::publish::registry::referrer::Found;
use crate::publish::registry::{self, Access, Registry};
use crate::units::human;
use crate::workspace::Workspace;

impl flags::Push {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        // Everything that can be refused without building is checked first.
        let target = registry::Reference::parse(&self.target)?;
        for t in &self.tag {
            registry::check_tag(t)?;
        }
        // The add-on as `cargo xtask lint` sees it: what lint rejects is never pushed.
        let lint = super::lint::findings(sh, ws)?;
        let errors = lint.errors();
        if !errors.is_empty() {
            anyhow::bail!(
                "refusing to push: `cargo xtask lint` finds {} error(s) in the add-on, which \
                 Supervisor or the add-on store would reject:\n  {}\nfix them (`cargo \
                 xtask lint` shows every finding) and push again",
                errors.len(),
                errors.join("\n  ")
            );
        }
        for (_, line) in &lint.lines {
            tracing::warn!("lint: {line}");
        }
        let addon = AddonConfig::load(&ws.addon_config())?;
        let mut tags = vec![addon.version.clone()];
        for t in self.tag {
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

        let arches: Vec<Arch> = addon
            .arch
            .iter()
            .filter_map(|a| Arch::from_hass(a))
            .collect();
        let outputs = ImageOutputs::new(ws);
        let registry = Registry::new(
            target,
            tags,
            self.per_arch_repos,
            Access {
                creds,
                insecure: self.insecure,
                ..Access::default()
            },
            addon,
            ws.fluxion_version.clone(),
        );
        let mut publishers = outputs.publishers(true);
        publishers.push(&registry);
        pipeline::run(
            sh,
            ws,
            &self
                .build
                .options(sh, arches, Default::default(), publishers)?,
        )?;
        let report = registry.report().expect("the registry publisher ran");
        let mounted = if self.per_arch_repos {
            format!(", {} mounted from {}", report.mounted.len(), self.target)
        } else {
            String::new()
        };
        println!(
            "blobs: {} uploaded ({}){mounted}, {} already there",
            report.uploaded.len(),
            human(report.bytes),
            report.skipped.len()
        );
        if !report.retries.is_empty() {
            println!("retried: {} request(s) (see the log)", report.retries.len());
        }
        for m in &report.manifests {
            println!("manifest {m}");
        }
        for r in &report.referrers {
            let how = match &r.found {
                Found::ReferrersApi => "the referrers API".to_owned(),
                Found::TagSchema(index) => index.clone(),
            };
            println!(
                "sbom     {} -> subject {} (listed by {how})",
                r.referrer, r.subject
            );
        }
        for (tag, digest) in &report.tags {
            println!("tagged   {tag} -> {digest}");
        }
        Ok(())
    }
}
