//! `cargo xtask sbom <arch>`: build one image, write its SBOM, print what it lists.
use std::path::Path;

use anyhow::Context;
use xshell::Shell;

use crate::flags;
use crate::pipeline::{self, ImageOutputs};
use crate::publish::Format;
use crate::sbom::spdx::Document;
use crate::units::human;
use crate::workspace::Workspace;

impl flags::Sbom {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        let outputs = ImageOutputs::new(ws);
        let built = pipeline::run(
            sh,
            ws,
            &self.build.options(
                sh,
                vec![self.arch],
                Default::default(),
                vec![&outputs.sboms],
            )?,
        )?;
        let o = built
            .output(Format::Spdx, Some(self.arch))
            .context("the pipeline wrote no SBOM")?;
        let path = o.path.as_deref().unwrap_or(Path::new(""));
        let doc: Document = serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?;
        let written = o.written.as_ref().context("the SBOM output has no size")?;
        println!(
            "{} ({}, {}) describes {} {}",
            path.strip_prefix(&ws.root).unwrap_or(path).display(),
            human(written.size),
            written.sha256,
            built.images[0].arch,
            built.images[0].manifest.digest
        );
        print!("{}", table(&doc));
        Ok(())
    }
}

/// The packages of `doc` but the image itself: kind (from the purl), name, version, licence.
pub fn table(doc: &Document) -> String {
    let mut rows: Vec<(String, &str, &str, &str)> = doc
        .packages
        .iter()
        .filter(|p| p.spdx_id != crate::sbom::IMAGE_ID)
        .map(|p| {
            let kind = p
                .external_refs
                .iter()
                .find_map(|r| r.reference_locator.strip_prefix("pkg:"))
                .and_then(|l| l.split('/').next())
                .unwrap_or("?")
                .to_owned();
            (
                kind,
                p.name.as_str(),
                p.version_info.as_str(),
                p.license_declared.as_str(),
            )
        })
        .collect();
    rows.sort();
    let w = |f: fn(&(String, &str, &str, &str)) -> usize| rows.iter().map(f).max().unwrap_or(0);
    let (wk, wn, wv) = (
        w(|r| r.0.len()).max(4),
        w(|r| r.1.len()).max(4),
        w(|r| r.2.len()).max(7),
    );
    let mut out = format!(
        "{:<wk$}  {:<wn$}  {:<wv$}  LICENCE\n",
        "KIND", "NAME", "VERSION"
    );
    for (k, n, v, l) in &rows {
        out += &format!("{k:<wk$}  {n:<wn$}  {v:<wv$}  {l}\n");
    }
    let count = |kind: &str| rows.iter().filter(|r| r.0 == kind).count();
    out += &format!(
        "{} Debian packages, {} crates\n",
        count("deb"),
        count("cargo")
    );
    out
}
