//! The Home Assistant add-on manifest (addon/config.yaml) and the image labels derived from it.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::arch::Arch;
use crate::epoch::Epoch;

pub mod lint;
pub mod store;
pub mod yaml11;

/// The port fluxion-main listens on (its `web.port` default, fluxion/src/config.rs), which is
/// also Supervisor's default `ingress_port`; the image config exposes it and the linter checks
/// `ingress_port` against it. A test compares it with fluxion's own default.
pub const SERVICE_PORT: u16 = 8099;

/// The keys of addon/config.yaml the pipeline reads. The file is the single source of truth
/// for version, name, description, url and architectures; other keys are Supervisor's.
#[derive(Debug, Clone, Deserialize)]
pub struct AddonConfig {
    pub name: String,
    pub version: String,
    pub slug: String,
    pub description: String,
    pub url: String,
    pub arch: Vec<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(flatten)]
    pub rest: BTreeMap<String, serde_yaml_ng::Value>,
}

impl AddonConfig {
    pub fn load(path: &Path) -> anyhow::Result<AddonConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the add-on manifest {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<AddonConfig> {
        let cfg: AddonConfig = serde_yaml_ng::from_str(text).context(
            "addon/config.yaml is not a valid add-on manifest (needs name, version, slug, \
             description, url and arch)",
        )?;
        for a in &cfg.arch {
            if Arch::from_hass(a).is_none() {
                bail!("addon/config.yaml arch {a:?} is not supported: use aarch64 and/or amd64");
            }
        }
        Ok(cfg)
    }

    /// Refuse to build an image whose label would disagree with what Supervisor pulls.
    pub fn check_version(&self, crate_version: &str) -> anyhow::Result<()> {
        if self.version != crate_version {
            bail!(
                "version mismatch: addon/config.yaml says {:?} but the fluxion crate \
                 (fluxion/Cargo.toml) says {:?}; make them equal (Supervisor pulls \
                 {{image}}:{{version}} and the image's io.hass.version label must match)",
                self.version,
                crate_version
            );
        }
        Ok(())
    }

    pub fn check_arch(&self, arch: Arch) -> anyhow::Result<()> {
        if !self.arch.iter().any(|a| a == arch.hass_arch()) {
            bail!(
                "addon/config.yaml does not list arch {}; add it to `arch:` or build another",
                arch.hass_arch()
            );
        }
        Ok(())
    }

    /// The labels Supervisor and OCI tools read, for one architecture.
    pub fn labels(&self, arch: Arch, epoch: Epoch) -> BTreeMap<String, String> {
        [
            ("io.hass.version", self.version.clone()),
            ("io.hass.type", "addon".to_owned()),
            ("io.hass.arch", arch.hass_arch().to_owned()),
            ("io.hass.name", self.name.clone()),
            ("io.hass.description", self.description.clone()),
            ("io.hass.url", self.url.clone()),
            ("org.opencontainers.image.version", self.version.clone()),
            ("org.opencontainers.image.created", epoch.rfc3339()),
            ("org.opencontainers.image.source", self.url.clone()),
            ("org.opencontainers.image.title", self.name.clone()),
            (
                "org.opencontainers.image.description",
                self.description.clone(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: X\nversion: \"1.2.3\"\nslug: x\ndescription: d\nurl: https://e\n\
                        arch: [aarch64, amd64]\ninit: false\n";

    #[test]
    fn parses_and_checks_version() {
        let cfg = AddonConfig::parse(GOOD).unwrap();
        cfg.check_version("1.2.3").unwrap();
        let err = cfg.check_version("1.2.4").unwrap_err().to_string();
        assert!(
            err.contains("\"1.2.3\"") && err.contains("\"1.2.4\""),
            "{err}"
        );
    }

    #[test]
    fn rejects_unknown_arch_and_missing_keys() {
        let err = AddonConfig::parse(&GOOD.replace("aarch64", "armv7")).unwrap_err();
        assert!(err.to_string().contains("armv7"), "{err}");
        assert!(AddonConfig::parse("name: X\n").is_err());
        assert!(AddonConfig::parse("name: [unclosed\n").is_err());
    }

    #[test]
    fn labels_use_hass_arch() {
        let cfg = AddonConfig::parse(GOOD).unwrap();
        let l = cfg.labels(Arch::Aarch64, Epoch(0));
        assert_eq!(l["io.hass.arch"], "aarch64");
        assert_eq!(l["io.hass.version"], "1.2.3");
        assert_eq!(
            l["org.opencontainers.image.created"],
            "1970-01-01T00:00:00Z"
        );
    }
}
