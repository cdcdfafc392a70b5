//! The SBOM of each image (issue 14): an SPDX 2.3 JSON document describing the image by its
//! manifest digest, with every Debian package of the runtime layer and every Rust crate
//! compiled into `fluxion-main` for the image's target, and the OCI 1.1 artifact manifest that
//! attaches it to the image as a referrer (publish/registry/referrer.rs).
//!
//! Deterministic: the document is a function of the image manifest, addon/runtime.lock (and
//! the copyright files in the runtime layer), Cargo.lock with `cargo metadata`'s view of the
//! workspace, and the epoch. The document namespace is derived from the manifest digest and
//! `created` is the epoch (SPDX 2.3 clauses 6.5 and 6.9), never the clock. Serialised by
//! image/json.rs (sorted keys), packages sorted by SPDX id, relationships sorted.
//!
//! - `spdx`: the SPDX 2.3 model (serde structs) and why it is ours;
//! - `crates`: the crates of the binary, from `cargo metadata --filter-platform`;
//! - `licence`: Debian copyright files and Cargo `license` fields as SPDX expressions.
pub mod crates;
pub mod licence;
pub mod spdx;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha2::{Digest as _, Sha256};

use self::crates::{Crate, Crates};
use self::licence::{Declared, NOASSERTION};
use self::spdx::{
    Checksum, CreationInfo, Document, ExternalRef, ExtractedLicence, Package, Relationship,
};
use crate::arch::Arch;
use crate::epoch::Epoch;
use crate::image::compress::MEDIA_TYPE_TAR_ZSTD;
use crate::image::store::{Blob, BlobStore, VerifyingReader};
use crate::image::{json, manifest, Image};
use crate::publish::REPO;
use crate::runtime::lock::Lock;
use crate::stamp::{self, Stamp};

/// The SBOM's media type, and the referrer's `artifactType` (IANA: application/spdx+json).
pub const ARTIFACT_TYPE: &str = "application/spdx+json";
/// image-spec 1.1 manifest.md "Guidance for an empty descriptor": the config of an artifact
/// that has none.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY: &[u8] = b"{}";
/// The tool named in `creationInfo.creators`; bump `FORMAT` with any change to the document
/// for the same inputs.
pub const FORMAT: u32 = 1;
const CREATOR: &str = "Tool: fluxion-xtask-sbom-1";
/// The image's SPDX id (the element the document describes).
pub const IMAGE_ID: &str = "SPDXRef-Image";
const TITLE: &str = "org.opencontainers.image.title";
const CREATED: &str = "org.opencontainers.image.created";

/// Bytes with their descriptor facts, not yet in the blob store: an SBOM is written to the
/// images dir as a file and goes into the store only when a push needs blobs to upload (so
/// `clean --cache` has nothing of it to keep, and a no-op writes no blob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub bytes: std::sync::Arc<[u8]>,
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

impl Content {
    fn new(bytes: Vec<u8>, media_type: &str) -> Content {
        Content {
            digest: crate::image::hash::sha256(&bytes),
            size: bytes.len() as u64,
            media_type: media_type.to_owned(),
            bytes: bytes.into(),
        }
    }

    /// Bytes whose digest was checked already (a stamp that holds).
    fn known(bytes: Vec<u8>, digest: String, media_type: &str) -> Content {
        Content {
            digest,
            size: bytes.len() as u64,
            media_type: media_type.to_owned(),
            bytes: bytes.into(),
        }
    }

    /// Put into `store` (unless there with these bytes already), for an upload.
    pub fn stored(&self, store: &BlobStore) -> anyhow::Result<Blob> {
        store.put(&self.bytes, &self.media_type)
    }

    /// The hex of the sha256 digest.
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

/// One image's SBOM: the document, and the artifact manifest that makes it a referrer of the
/// image's manifest (`subject`).
#[derive(Debug, Clone)]
pub struct Sbom {
    pub arch: Arch,
    /// The store a push puts these into (it keeps the referrers index there too).
    pub store: BlobStore,
    /// The SPDX JSON document (media type `application/spdx+json`).
    pub document: Content,
    /// The empty config (`{}`, `application/vnd.oci.empty.v1+json`).
    pub config: Content,
    /// The artifact manifest (`artifactType: application/spdx+json`, `subject`).
    pub manifest: Content,
    /// The image manifest it describes.
    pub subject: Blob,
    /// The artifact manifest's annotations (repeated in a referrers list).
    pub annotations: BTreeMap<String, String>,
}

impl Sbom {
    /// The file name of the document (`fluxion-ha-amd64.spdx.json`).
    pub fn file_name(arch: Arch) -> String {
        format!("{REPO}-{arch}.spdx.json")
    }
}

/// The SBOMs of `images`, through `<images_dir>/cache/sbom/`: what is slow to learn — the
/// crates (two cargo processes) and the copyright files (reading the runtime layer) — under
/// `facts_key`, which an app-only change keeps, so an app-only rebuild asks cargo nothing; and
/// the document under `document_key`, so a no-op rebuild makes nothing and writes nothing.
pub fn for_images(
    images_dir: &Path,
    store: &BlobStore,
    root: &Path,
    lock: &Lock,
    images: &[Image],
    version: &str,
    epoch: Epoch,
) -> anyhow::Result<Vec<Sbom>> {
    let dir = images_dir.join("cache").join("sbom");
    let inputs = workspace_inputs(root)?;
    let lock_bytes = std::fs::read(crate::runtime::lock_path(root)).unwrap_or_default();
    images
        .iter()
        .map(|image| {
            let facts_key = facts_key(&inputs, image);
            // The document itself, when nothing it is made from changed (a no-op rebuild):
            // its bytes and their stamp (stamp.rs, the one validation rule).
            let doc_key = document_key(&facts_key, image, version, epoch, &lock_bytes);
            let arch = image.arch;
            let (doc_path, doc_stamp) = (
                dir.join(format!("document-{arch}-{doc_key}.spdx.json")),
                dir.join(format!("document-{arch}-{doc_key}.stamp.json")),
            );
            let remembered = std::fs::read(&doc_stamp)
                .ok()
                .and_then(|b| serde_json::from_slice::<Stamp>(&b).ok())
                .filter(|st| {
                    matches!(
                        stamp::check(&doc_path, st),
                        stamp::Check::Intact | stamp::Check::Restamped(_)
                    )
                })
                .and_then(|st| Some((std::fs::read(&doc_path).ok()?, st)))
                .filter(|(bytes, st)| bytes.len() as u64 == st.size);
            if let Some((bytes, st)) = remembered {
                let document = Content::known(bytes, st.digest, ARTIFACT_TYPE);
                return Ok(attach(store, image, document, epoch));
            }
            let entry = dir.join(format!("facts-{arch}-{facts_key}.json"));
            let remembered = std::fs::read(&entry)
                .ok()
                .and_then(|b| serde_json::from_slice::<Facts>(&b).ok());
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let facts = match remembered {
                Some(f) => f,
                None => {
                    let f = Facts {
                        crates: crates::of(root, image.arch)?,
                        copyrights: copyright_files(image)?,
                    };
                    crate::atomic::write(&entry, &json::to_canonical(&f))?;
                    forget_others(&dir, &format!("facts-{arch}-"), &[&entry]);
                    f
                }
            };
            let doc = document(
                image,
                version,
                epoch,
                lock,
                &facts.copyrights,
                &facts.crates,
            )?;
            let document = Content::new(json::to_canonical(&doc), ARTIFACT_TYPE);
            crate::atomic::write(&doc_path, &document.bytes)?;
            let st = Stamp::of_written(&doc_path, &document.digest)?;
            crate::atomic::write(&doc_stamp, &json::to_canonical(&st))?;
            forget_others(&dir, &format!("document-{arch}-"), &[&doc_path, &doc_stamp]);
            Ok(attach(store, image, document, epoch))
        })
        .collect()
}

/// Remove the entries named `<prefix>…` in `dir` other than `keep`: one arch's previous
/// facts or document, which the next build would not ask for again (each app change makes a
/// new document; the cache keeps the latest per arch, not every one).
fn forget_others(dir: &Path, prefix: &str, keep: &[&Path]) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let path = e.path();
        let name = e.file_name();
        let ours = name.to_str().is_some_and(|n| n.starts_with(prefix));
        if ours && !keep.contains(&path.as_path()) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The document's key: its facts, the image manifest, version, epoch and addon/runtime.lock
/// (the packages, their suites and digests), and `FORMAT` (in the facts key).
fn document_key(
    facts_key: &str,
    image: &Image,
    version: &str,
    epoch: Epoch,
    lock: &[u8],
) -> String {
    let mut h = Sha256::new();
    let epoch = epoch.0.to_string();
    for field in [
        facts_key.as_bytes(),
        image.manifest.digest.as_bytes(),
        version.as_bytes(),
        epoch.as_bytes(),
        lock,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    format!("{:x}", h.finalize())
}

/// What the SBOM of an image needs besides the lock: its crates and its copyright files.
#[derive(serde::Serialize, serde::Deserialize)]
struct Facts {
    crates: Crates,
    copyrights: BTreeMap<String, String>,
}

/// What decides the crates: Cargo.lock and the workspace's manifests (what `cargo metadata`
/// and `cargo tree` answer from), and this module's `FORMAT`.
fn workspace_inputs(root: &Path) -> anyhow::Result<Vec<u8>> {
    let mut files = vec![root.join("Cargo.lock"), root.join("Cargo.toml")];
    let mut members: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("listing {}", root.display()))?
        .flatten()
        .map(|e| e.path().join("Cargo.toml"))
        .filter(|p| p.is_file())
        .collect();
    members.sort();
    files.extend(members);
    let mut h = Sha256::new();
    h.update(FORMAT.to_be_bytes());
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        h.update([0]);
        let bytes = std::fs::read(&f).unwrap_or_default();
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(&bytes);
    }
    Ok(h.finalize().to_vec())
}

/// The facts of `image`: the workspace inputs, its target, and the layers below its app layer
/// (the copyright files are theirs). The app layer is not in it: an app-only change keeps it.
fn facts_key(inputs: &[u8], image: &Image) -> String {
    let mut h = Sha256::new();
    h.update(inputs);
    let below_app = &image.layers[..image.layers.len().saturating_sub(1)];
    let fields = std::iter::once(image.arch.rust_target())
        .chain(below_app.iter().map(|l| l.blob.digest.as_str()));
    for field in fields {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    format!("{:x}", h.finalize())
}

/// The SBOM of `image` (built for `root`'s workspace from `lock`), to be pushed from `store`,
/// with no cache: what `for_images` remembers, and what the tests compare it with.
pub fn make(
    store: &BlobStore,
    root: &Path,
    lock: &Lock,
    image: &Image,
    version: &str,
    epoch: Epoch,
) -> anyhow::Result<Sbom> {
    let crates = crates::of(root, image.arch)?;
    let copyrights = copyright_files(image)?;
    let doc = document(image, version, epoch, lock, &copyrights, &crates)?;
    let document = Content::new(json::to_canonical(&doc), ARTIFACT_TYPE);
    Ok(attach(store, image, document, epoch))
}

/// The artifact manifest for `document` with `image` as its subject.
fn attach(store: &BlobStore, image: &Image, document: Content, epoch: Epoch) -> Sbom {
    let arch = image.arch;
    let config = Content::new(EMPTY.to_vec(), EMPTY_MEDIA_TYPE);
    let annotations = BTreeMap::from([
        (CREATED.to_owned(), epoch.rfc3339()),
        (TITLE.to_owned(), Sbom::file_name(arch)),
    ]);
    let desc = |b: &Blob| serde_json::json!({"mediaType": b.media_type, "digest": b.digest, "size": b.size});
    // image-spec 1.1 manifest.md: an artifact is an image manifest with `artifactType`, the
    // empty config, its blob as the one layer, and `subject` naming what it refers to.
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": config.digest,
            "size": config.size,
            "data": "e30=",
        },
        "layers": [{
            "mediaType": ARTIFACT_TYPE,
            "digest": document.digest,
            "size": document.size,
            "annotations": {TITLE: Sbom::file_name(arch)},
        }],
        "subject": desc(&image.manifest),
        "annotations": annotations,
    });
    let manifest = Content::new(json::to_canonical(&m), manifest::MEDIA_TYPE);
    tracing::debug!(%arch, document = %document.digest, size = document.size, "SBOM");
    Sbom {
        arch,
        store: store.clone(),
        document,
        config,
        manifest,
        subject: image.manifest.clone(),
        annotations,
    }
}

/// `usr/share/doc/<package>/copyright` of every package, read from the image's layers below
/// the app layer (the runtime layer keeps them: addon/runtime.toml `keep`), so the licences
/// are those of the files the image really ships.
fn copyright_files(image: &Image) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let below_app = &image.layers[..image.layers.len().saturating_sub(1)];
    for layer in below_app {
        let blob = &layer.blob;
        let reader = VerifyingReader::open(blob)?;
        let tar: Box<dyn Read> = if blob.media_type == MEDIA_TYPE_TAR_ZSTD {
            Box::new(zstd::Decoder::new(reader)?)
        } else {
            Box::new(flate2::read::GzDecoder::new(reader))
        };
        let mut tar = tar::Archive::new(tar);
        let what = || format!("reading the runtime layer {} for the SBOM", blob.digest);
        for e in tar.entries().with_context(what)? {
            let mut e = e.with_context(what)?;
            let path = e.path().with_context(what)?.to_string_lossy().into_owned();
            let path = path.trim_start_matches("./");
            let Some(pkg) = path
                .strip_prefix("usr/share/doc/")
                .and_then(|p| p.strip_suffix("/copyright"))
                .filter(|p| !p.contains('/'))
            else {
                continue;
            };
            if e.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let mut text = String::new();
            // A copyright file that is not UTF-8 is not machine-readable (NOASSERTION).
            if (&mut e).take(4 << 20).read_to_string(&mut text).is_ok() {
                out.insert(pkg.to_owned(), text);
            }
        }
    }
    Ok(out)
}

/// The SPDX document of `image`.
pub fn document(
    image: &Image,
    version: &str,
    epoch: Epoch,
    lock: &Lock,
    copyrights: &BTreeMap<String, String>,
    crates: &Crates,
) -> anyhow::Result<Document> {
    let arch = image.arch;
    let hex = image.manifest.hex();
    let mut packages = vec![Package {
        spdx_id: IMAGE_ID.to_owned(),
        name: REPO.to_owned(),
        version_info: version.to_owned(),
        supplier: None,
        package_file_name: None,
        download_location: NOASSERTION.to_owned(),
        source_info: None,
        files_analyzed: false,
        checksums: vec![Checksum::sha256(hex)],
        license_concluded: NOASSERTION.to_owned(),
        license_declared: NOASSERTION.to_owned(),
        copyright_text: NOASSERTION.to_owned(),
        // purl-spec "oci": the version is the manifest digest.
        external_refs: vec![ExternalRef::purl(format!(
            "pkg:oci/{REPO}@{}?arch={}",
            purl_encode(&image.manifest.digest),
            arch.oci_arch()
        ))],
        primary_package_purpose: Some("CONTAINER".to_owned()),
    }];
    let mut relationships = vec![Relationship::new(spdx::DOCUMENT_ID, "DESCRIBES", IMAGE_ID)];
    let mut extracted: BTreeMap<String, ExtractedLicence> = BTreeMap::new();

    // The Debian packages of the runtime layer.
    for p in lock.for_arch(arch) {
        let Some(suite) = lock.suite(&p.suite) else {
            bail!(
                "{} {} comes from suite {}, which addon/runtime.lock does not list; run \
                 `cargo xtask lock`",
                p.name,
                p.version,
                p.suite
            );
        };
        let Declared {
            expression,
            extracted: refs,
        } = licence::debian(&p.name, copyrights.get(&p.name).map(String::as_str));
        for e in refs {
            extracted
                .entry(e.id.clone())
                .or_insert_with(|| ExtractedLicence {
                    license_id: e.id,
                    name: e.name,
                    extracted_text: e.text,
                });
        }
        let id = spdx_id("deb", &p.name, &p.version);
        packages.push(Package {
            spdx_id: id.clone(),
            name: p.name.clone(),
            version_info: p.version.clone(),
            supplier: None,
            package_file_name: p.filename.rsplit('/').next().map(str::to_owned),
            // Not the mirror's URL: where a file was fetched is no property of the package (the
            // same packages from a fallback mirror or a local one give the same SBOM); the
            // purl, the file name and the sha256 identify it.
            download_location: NOASSERTION.to_owned(),
            source_info: Some(format!(
                "Debian suite {} (addon/runtime.lock), pool file {}",
                suite.name, p.filename
            )),
            files_analyzed: false,
            checksums: vec![Checksum::sha256(&p.sha256)],
            license_concluded: NOASSERTION.to_owned(),
            license_declared: expression,
            copyright_text: NOASSERTION.to_owned(),
            external_refs: vec![ExternalRef::purl(format!(
                "pkg:deb/debian/{}@{}?arch={}",
                purl_encode(&p.name),
                purl_encode(&p.version),
                p.arch
            ))],
            primary_package_purpose: None,
        });
        relationships.push(Relationship::new(IMAGE_ID, "CONTAINS", &id));
    }

    // The crates of fluxion-main: the root is the application, contained in the image.
    let crate_id = |c: &Crate| spdx_id("crate", &c.name, &c.version);
    let root = crate_package(&crates.root, "APPLICATION");
    relationships.push(Relationship::new(IMAGE_ID, "CONTAINS", &root.spdx_id));
    packages.push(root);
    let by_key: BTreeMap<(&str, &str), &Crate> = crates
        .deps
        .iter()
        .map(|c| ((c.name.as_str(), c.version.as_str()), c))
        .collect();
    for c in std::iter::once(&crates.root).chain(&crates.deps) {
        for (name, version) in &c.deps {
            let Some(d) = by_key.get(&(name.as_str(), version.as_str())) else {
                bail!(
                    "{} {} depends on {name} {version}, which the walk missed",
                    c.name,
                    c.version
                );
            };
            relationships.push(Relationship::new(&crate_id(c), "DEPENDS_ON", &crate_id(d)));
        }
    }
    packages.extend(crates.deps.iter().map(|c| crate_package(c, "LIBRARY")));

    packages.sort_by(|a, b| a.spdx_id.cmp(&b.spdx_id));
    let mut ids = BTreeSet::new();
    for p in &packages {
        if !ids.insert(&p.spdx_id) {
            bail!("two SBOM packages share the SPDX id {}", p.spdx_id);
        }
    }
    relationships.sort();
    relationships.dedup();
    let name = format!("{REPO}-{arch}");
    Ok(Document {
        spdx_version: spdx::SPDX_VERSION.to_owned(),
        data_license: spdx::DATA_LICENSE.to_owned(),
        spdx_id: spdx::DOCUMENT_ID.to_owned(),
        // Clause 6.5: a unique URI per document; the manifest digest makes it so, and the
        // same image always gets the same one.
        document_namespace: format!("https://spdx.org/spdxdocs/{name}-{hex}"),
        name,
        creation_info: CreationInfo {
            created: epoch.rfc3339(),
            creators: vec![CREATOR.to_owned()],
        },
        document_describes: vec![IMAGE_ID.to_owned()],
        packages,
        has_extracted_licensing_infos: extracted.into_values().collect(),
        relationships,
    })
}

fn crate_package(c: &Crate, purpose: &str) -> Package {
    Package {
        spdx_id: spdx_id("crate", &c.name, &c.version),
        name: c.name.clone(),
        version_info: c.version.clone(),
        supplier: None,
        package_file_name: None,
        download_location: if c.registry {
            format!(
                "https://static.crates.io/crates/{0}/{0}-{1}.crate",
                c.name, c.version
            )
        } else {
            NOASSERTION.to_owned()
        },
        source_info: None,
        files_analyzed: false,
        checksums: c.checksum.iter().map(|h| Checksum::sha256(h)).collect(),
        license_concluded: NOASSERTION.to_owned(),
        license_declared: licence::cargo(c.license.as_deref()),
        copyright_text: NOASSERTION.to_owned(),
        external_refs: vec![ExternalRef::purl(format!(
            "pkg:cargo/{}@{}",
            purl_encode(&c.name),
            purl_encode(&c.version)
        ))],
        primary_package_purpose: Some(purpose.to_owned()),
    }
}

/// `SPDXRef-<kind>-<name>-<version>`, in the characters SPDX ids allow (clause 7.2).
fn spdx_id(kind: &str, name: &str, version: &str) -> String {
    format!(
        "SPDXRef-{kind}-{}",
        licence::idstring(&format!("{name}-{version}"))
    )
}

/// Percent-encoding for a purl component (purl-spec "Character encoding"): everything but
/// ASCII letters, digits and `.-_~` (so a Debian epoch's `:` and a `+` are `%3A`, `%2B`).
pub fn purl_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b".-_~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_encode_epochs_and_plus() {
        assert_eq!(purl_encode("1:2.36-9+deb12u14"), "1%3A2.36-9%2Bdeb12u14");
        assert_eq!(purl_encode("sha256:ab"), "sha256%3Aab");
        assert_eq!(
            spdx_id("deb", "libc6", "2.36-9+deb12u14"),
            "SPDXRef-deb-libc6-2.36-9-deb12u14"
        );
    }
}
