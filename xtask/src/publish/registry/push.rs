//! The push itself: every blob each repository lacks (a per-arch repository mounts them from
//! the main one), then per-arch manifests by digest, then the index by digest, then each
//! image's SBOM as its referrer, tags last — an
//! interrupted push never leaves a tag pointing at something incomplete, and re-running it
//! finishes the job; and the publisher that checks the Supervisor contract before it pushes.
use std::cell::RefCell;

use anyhow::Context;

use super::client::{Access, Repo, Sent};
use super::reference::{check_tag, Reference};
use super::referrer::{self, Attached};
use crate::addon::AddonConfig;
use crate::image::index::MultiArch;
use crate::image::store::Blob;
use crate::publish::{contract, Assembled, Format, Output, Publisher};
use crate::sbom::Sbom;

/// What a push did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Digests uploaded, in order (repository-qualified duplicates counted once per repo).
    pub uploaded: Vec<String>,
    /// Digests a per-arch repository mounted from the main one (no bytes sent).
    pub mounted: Vec<String>,
    pub skipped: Vec<String>,
    /// Bytes of the blobs uploaded.
    pub bytes: u64,
    /// `repo@digest` of every manifest and index put, in order.
    pub manifests: Vec<String>,
    /// `repo:tag` -> digest, written last.
    pub tags: Vec<(String, String)>,
    /// Every request retried, as logged.
    pub retries: Vec<String>,
    /// Each image's SBOM, attached as a referrer of its manifest in each repository.
    pub referrers: Vec<Attached>,
}

/// Push `multi` to `target` under `tags`, and with `per_arch` each image to
/// `<registry>/<dir>/<hass arch>-<name>` too. Order: every blob in every repository, then
/// per-arch manifests by digest, then the index by digest, then the tags.
pub fn push(
    target: &Reference,
    multi: &MultiArch,
    tags: &[String],
    per_arch: bool,
    access: &Access,
) -> anyhow::Result<Report> {
    push_with(target, multi, &[], tags, per_arch, access)
}

/// `push`, with each of `sboms` attached as a referrer of its image's manifest in every
/// repository holding that manifest (referrer.rs), after the index and before the tags: a tag
/// never names an image whose SBOM is not findable yet.
pub fn push_with(
    target: &Reference,
    multi: &MultiArch,
    sboms: &[Sbom],
    tags: &[String],
    per_arch: bool,
    access: &Access,
) -> anyhow::Result<Report> {
    for t in tags {
        check_tag(t)?;
    }
    let mut report = Report::default();
    let mut main = Repo::connect(target, access, None)?;
    let mut arch_repos = Vec::new();
    if per_arch {
        for image in &multi.images {
            let r = target.per_arch(image.arch.hass_arch());
            arch_repos.push((image, Repo::connect(&r, access, Some(target))?));
        }
    }
    let result = push_to(&mut main, &mut arch_repos, multi, sboms, tags, &mut report);
    for repo in std::iter::once(&mut main).chain(arch_repos.iter_mut().map(|(_, r)| r)) {
        report.retries.append(&mut repo.retries);
    }
    result.map(|()| report)
}

fn push_to(
    main: &mut Repo,
    arch_repos: &mut [(&crate::image::Image, Repo)],
    multi: &MultiArch,
    sboms: &[Sbom],
    tags: &[String],
    report: &mut Report,
) -> anyhow::Result<()> {
    // 1. blobs (layers and configs), skipping what each repository already has.
    let all: Vec<&Blob> = multi
        .images
        .iter()
        .flat_map(|i| i.layers.iter().map(|l| &l.blob).chain([&i.config]))
        .collect();
    push_blobs(main, &all, None, report)?;
    // Every blob is in the main repository now: the per-arch ones mount them from there.
    for (image, repo) in arch_repos.iter_mut() {
        let blobs: Vec<&Blob> = image
            .layers
            .iter()
            .map(|l| &l.blob)
            .chain([&image.config])
            .collect();
        push_blobs(repo, &blobs, Some(&main.reference), report)?;
    }
    // 2. per-arch manifests, by digest (untagged until step 4).
    for image in &multi.images {
        main.put_manifest(&image.manifest.digest, &image.manifest)?;
        report
            .manifests
            .push(format!("{}@{}", main.reference, image.manifest.digest));
    }
    for (image, repo) in arch_repos.iter_mut() {
        repo.put_manifest(&image.manifest.digest, &image.manifest)?;
        report
            .manifests
            .push(format!("{}@{}", repo.reference, image.manifest.digest));
    }
    // 3. the index, by digest: every manifest it lists is now present.
    main.put_manifest(&multi.index.digest, &multi.index)?;
    report
        .manifests
        .push(format!("{}@{}", main.reference, multi.index.digest));
    // 4. the SBOMs, each a referrer of its image's manifest.
    for sbom in sboms {
        report.referrers.push(referrer::attach(main, sbom)?);
        for (image, repo) in arch_repos.iter_mut() {
            if image.arch == sbom.arch {
                report.referrers.push(referrer::attach(repo, sbom)?);
            }
        }
    }
    // 5. tags, last.
    let mut tag_targets: Vec<(&mut Repo, &Blob)> = vec![(main, &multi.index)];
    for (image, repo) in arch_repos.iter_mut() {
        tag_targets.push((repo, &image.manifest));
    }
    for (repo, manifest) in tag_targets {
        for tag in tags {
            repo.put_tag(tag, manifest).with_context(|| {
                let done: Vec<&str> = report.tags.iter().map(|(t, _)| t.as_str()).collect();
                format!(
                    "tags written before this one, all as pushed: {}",
                    if done.is_empty() {
                        "none".to_owned()
                    } else {
                        done.join(", ")
                    }
                )
            })?;
            report
                .tags
                .push((format!("{}:{tag}", repo.reference), manifest.digest.clone()));
        }
    }
    Ok(())
}

/// Put each blob `repo` lacks: mounted from `mount_from` when given (falling back to an
/// upload when the registry declines), else uploaded.
fn push_blobs(
    repo: &mut Repo,
    blobs: &[&Blob],
    mount_from: Option<&Reference>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for blob in blobs {
        if !seen.insert(&blob.digest) {
            continue;
        }
        if repo.has_blob(blob)? {
            tracing::debug!(digest = %blob.digest, repo = %repo.reference, "already there");
            report.skipped.push(blob.digest.clone());
        } else {
            tracing::info!(digest = %blob.digest, size = blob.size, repo = %repo.reference, mount = mount_from.is_some(), "sending");
            match repo.put_blob(blob, mount_from)? {
                Sent::Mounted => report.mounted.push(blob.digest.clone()),
                Sent::Uploaded => {
                    report.uploaded.push(blob.digest.clone());
                    report.bytes += blob.size;
                }
            }
        }
    }
    Ok(())
}

/// Pushes the multi-arch index (and with `per_arch` each image alone) to `target` under
/// `tags`, after checking the Home Assistant Supervisor contract; `report` tells what it did.
pub struct Registry {
    pub target: Reference,
    pub tags: Vec<String>,
    pub per_arch: bool,
    pub access: Access,
    /// The add-on the images are for, and the fluxion crate version (contract.rs).
    pub addon: AddonConfig,
    pub fluxion_version: String,
    report: RefCell<Option<Report>>,
}

impl Registry {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        target: Reference,
        tags: Vec<String>,
        per_arch: bool,
        access: Access,
        addon: AddonConfig,
        fluxion_version: String,
    ) -> Registry {
        Registry {
            target,
            tags,
            per_arch,
            access,
            addon,
            fluxion_version,
            report: RefCell::new(None),
        }
    }

    /// What the last `publish` pushed and skipped.
    pub fn report(&self) -> Option<Report> {
        self.report.borrow().clone()
    }
}

impl Publisher for Registry {
    fn format(&self) -> Format {
        Format::Registry
    }

    fn needs_index(&self) -> bool {
        true
    }

    fn needs_sbom(&self) -> bool {
        true
    }

    fn publish(&self, a: &Assembled) -> anyhow::Result<Vec<Output>> {
        let multi = a.multi("a registry push")?;
        let sboms = multi
            .images
            .iter()
            .map(|i| a.sbom(i.arch, "a registry push").cloned())
            .collect::<anyhow::Result<Vec<_>>>()?;
        contract::check(&self.addon, &self.fluxion_version, multi, &self.tags)
            .context("refusing to push: the images break the Home Assistant Supervisor contract")?;
        let report = push_with(
            &self.target,
            multi,
            &sboms,
            &self.tags,
            self.per_arch,
            &self.access,
        )
        .with_context(|| format!("pushing to {}", self.target))?;
        let out = report
            .tags
            .iter()
            .map(|(tag, digest)| Output {
                format: Format::Registry,
                arch: None,
                location: tag.clone(),
                path: None,
                names: vec![digest.clone()],
                written: None,
            })
            .collect();
        *self.report.borrow_mut() = Some(report);
        Ok(out)
    }
}
