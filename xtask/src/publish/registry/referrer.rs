//! Attaching each image's SBOM as an OCI 1.1 referrer (distribution-spec v1.1 "Pushing
//! Manifests with Subject", "Listing Referrers", "Referrers Tag Schema"): the SPDX document and
//! the empty config are uploaded, then the artifact manifest (`artifactType:
//! application/spdx+json`, `subject` = the per-arch image manifest) is put by digest.
//!
//! A registry with the referrers API lists it from then on. One without (it answers 404 on
//! `GET /v2/<name>/referrers/<digest>`; Debian's docker-registry 2.8 is one) gets the
//! fallback the spec prescribes: the image index tagged `<alg>-<hex>` of the subject digest
//! (`sha256-<hex>`) is fetched (404: none yet), our descriptor is added unless it is already
//! listed (with its `artifactType` and annotations, as the spec asks), and the index is put
//! back under that tag. Re-running the push leaves the list as it is.
//!
//! A step of the push (push.rs: after the index, before the tags), through the client's blob
//! upload, manifest and tag PUTs and GET.
use std::collections::BTreeMap;

use anyhow::Context;

use super::client::Repo;
use crate::image::index::MEDIA_TYPE as INDEX_MEDIA_TYPE;
use crate::image::json;
use crate::sbom::Sbom;

/// How the referrer can be found on the registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Found {
    /// The registry's referrers API lists it.
    ReferrersApi,
    /// Listed in the index tagged `sha256-<hex>` (the referrers tag schema).
    TagSchema(String),
}

/// One SBOM attached to one image manifest in one repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attached {
    /// `repo@<sbom manifest digest>`.
    pub referrer: String,
    /// The image manifest it refers to.
    pub subject: String,
    pub found: Found,
}

/// The referrers tag schema's tag for `digest` (`sha256:<hex>` -> `sha256-<hex>`).
pub fn tag_for(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// Upload `sbom` into `repo` and make it findable as a referrer of its subject there. The
/// updated fallback index goes into the SBOM's store first (pushed like every other manifest,
/// from a verified blob).
pub fn attach(repo: &mut Repo, sbom: &Sbom) -> anyhow::Result<Attached> {
    for content in [&sbom.config, &sbom.document] {
        let blob = content.stored(&sbom.store)?;
        if !repo.has_blob(&blob)? {
            repo.put_blob(&blob, None)?;
        }
    }
    repo.put_manifest(&sbom.manifest.digest, &sbom.manifest.stored(&sbom.store)?)
        .context("putting the SBOM's artifact manifest")?;
    let subject = &sbom.subject.digest;
    let referrer = format!("{}@{}", repo.reference, sbom.manifest.digest);
    let api = repo.get(&format!("referrers/{subject}"), INDEX_MEDIA_TYPE)?;
    if (200..300).contains(&api.status) {
        tracing::info!(%referrer, %subject, "SBOM attached (the registry's referrers API lists it)");
        return Ok(Attached {
            referrer,
            subject: subject.clone(),
            found: Found::ReferrersApi,
        });
    }
    if api.status != 404 {
        anyhow::bail!(
            "GET referrers/{subject} on {} answered {}; neither the referrers API nor its absence",
            repo.reference,
            api.status
        );
    }
    let tag = tag_for(subject);
    let current = repo.get(&format!("manifests/{tag}"), INDEX_MEDIA_TYPE)?;
    let mut index: serde_json::Value = match current.status {
        404 => serde_json::json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [],
        }),
        200..=299 => serde_json::from_slice(&current.body)
            .with_context(|| format!("{}:{tag} is not an image index", repo.reference))?,
        s => anyhow::bail!("GET manifests/{tag} on {} answered {s}", repo.reference),
    };
    let entries = index["manifests"]
        .as_array_mut()
        .with_context(|| format!("{}:{tag} lists no manifests", repo.reference))?;
    if !entries
        .iter()
        .any(|d| d["digest"] == sbom.manifest.digest.as_str())
    {
        entries.push(descriptor(sbom));
        let bytes = json::to_canonical(&index);
        let blob = sbom.store.put(&bytes, INDEX_MEDIA_TYPE)?;
        repo.put_tag(&tag, &blob)
            .context("updating the referrers tag schema index")?;
    }
    tracing::info!(%referrer, %subject, %tag, "SBOM attached (listed under the referrers tag schema)");
    Ok(Attached {
        referrer,
        subject: subject.clone(),
        found: Found::TagSchema(format!("{}:{tag}", repo.reference)),
    })
}

/// The referrer's descriptor as the referrers list holds it (distribution-spec v1.1: media
/// type, digest, size, `artifactType`, and the manifest's annotations).
fn descriptor(sbom: &Sbom) -> serde_json::Value {
    let annotations: BTreeMap<&str, &str> = sbom
        .annotations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    serde_json::json!({
        "mediaType": sbom.manifest.media_type,
        "digest": sbom.manifest.digest,
        "size": sbom.manifest.size,
        "artifactType": crate::sbom::ARTIFACT_TYPE,
        "annotations": annotations,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn tag_schema_names() {
        assert_eq!(super::tag_for("sha256:ab12"), "sha256-ab12");
    }
}
