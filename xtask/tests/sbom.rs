//! The SBOMs (issue 14): both real images' SPDX documents pass the SPDX reference validator
//! (`pyspdxtools`, PyPI spdx-tools), name bash and tokio at their locked versions with purls,
//! are the same bytes when made again from nothing, and a push to a real registry (Debian's
//! `docker-registry` on 127.0.0.1, which has no referrers API) makes each findable as a
//! referrer of its image's manifest through the referrers tag schema — from the library and
//! from `cargo xtask push` with the real images; a registry with the referrers API (a
//! stand-in) gets no tag-schema index.
mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::*;
use xtask::arch::Arch;
use xtask::image::store::BlobStore;
use xtask::publish::registry;
use xtask::runtime::lock::Lock;
use xtask::sbom::{self, purl_encode, Sbom, ARTIFACT_TYPE};

/// `pyspdxtools`: `$FLUXION_VENV/bin/pyspdxtools` (the venv .ci/install-tools makes), else on
/// PATH; None after a printed skip (a failure under FLUXION_REQUIRE_TOOLS=1).
fn pyspdxtools() -> Option<PathBuf> {
    let in_venv = std::env::var_os("FLUXION_VENV")
        .map(|v| PathBuf::from(v).join("bin").join("pyspdxtools"))
        .filter(|p| p.is_file());
    let found = in_venv.or_else(|| xtask::host::which("pyspdxtools"));
    let what = "`pyspdxtools` (PyPI spdx-tools; in $FLUXION_VENV/bin or on PATH: \
                .ci/install-tools python)";
    if require(what, found.is_some()) {
        found
    } else {
        None
    }
}

/// The tests on the real images' SBOM files take turns (one removes and rewrites them).
static FILES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock() -> Lock {
    Lock::load(&workspace().join("addon/runtime.lock")).unwrap()
}

fn sbom_path(arch: &str) -> PathBuf {
    images_dir().join(format!("fluxion-ha-{arch}.spdx.json"))
}

/// The package named `name` (one only) of `doc`.
fn package<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let found: Vec<&Value> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "exactly one package {name}");
    found[0]
}

fn purl(p: &Value) -> &str {
    p["externalRefs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["referenceType"] == "purl")
        .and_then(|r| r["referenceLocator"].as_str())
        .expect("a purl")
}

fn sha256_of(p: &Value) -> &str {
    p["checksums"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["algorithm"] == "SHA256")
        .and_then(|c| c["checksumValue"].as_str())
        .expect("a SHA256 checksum")
}

fn has_relationship(doc: &Value, from: &Value, kind: &str, to: &Value) -> bool {
    doc["relationships"].as_array().unwrap().iter().any(|r| {
        r["spdxElementId"] == from["SPDXID"]
            && r["relationshipType"] == kind
            && r["relatedSpdxElement"] == to["SPDXID"]
    })
}

/// tokio's version and checksum in Cargo.lock.
fn locked_crate(name: &str) -> (String, String) {
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(workspace().join("Cargo.lock")).unwrap()).unwrap();
    let found: Vec<&toml::Value> = lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"].as_str() == Some(name))
        .collect();
    assert_eq!(found.len(), 1, "one {name} in Cargo.lock");
    (
        found[0]["version"].as_str().unwrap().to_owned(),
        found[0]["checksum"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn both_sboms_validate_and_list_bash_and_tokio_at_their_locked_versions() {
    let Some(validator) = pyspdxtools() else {
        return;
    };
    let _turn = FILES.lock().unwrap_or_else(|e| e.into_inner());
    let lock = lock();
    let (tokio_version, tokio_sha) = locked_crate("tokio");
    for row in built_images() {
        let arch = Arch::from_hass(&row.arch).unwrap();
        let path = sbom_path(&row.arch);
        let out = output(Command::new(&validator).arg("-i").arg(&path));
        assert!(
            out.status.success(),
            "pyspdxtools refuses {}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let doc = read_json(&path);
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");

        // It describes this image, by its manifest digest.
        let image = package(&doc, "fluxion-ha");
        assert_eq!(
            doc["documentDescribes"],
            serde_json::json!([image["SPDXID"]])
        );
        let hex = row.manifest_digest.trim_start_matches("sha256:");
        assert_eq!(sha256_of(image), hex);
        assert!(doc["documentNamespace"].as_str().unwrap().ends_with(hex));

        // Every locked Debian package of the arch, with its .deb's sha256; bash as locked.
        let debs = lock.for_arch(arch);
        for p in &debs {
            let got = package(&doc, &p.name);
            assert_eq!(got["versionInfo"], p.version.as_str(), "{}", p.name);
            assert_eq!(sha256_of(got), p.sha256, "{}", p.name);
            assert_eq!(
                purl(got),
                format!(
                    "pkg:deb/debian/{}@{}?arch={}",
                    p.name,
                    purl_encode(&p.version),
                    arch.debian_arch()
                )
            );
            assert!(has_relationship(&doc, image, "CONTAINS", got), "{}", p.name);
        }
        let bash = package(&doc, "bash");
        // bash's copyright file is machine-readable (DEP-5): GPL-3+ at least.
        let bash_licence = bash["licenseDeclared"].as_str().unwrap();
        assert!(bash_licence.contains("GPL-3.0-or-later"), "{bash_licence}");
        // libc6's is not: no licence is claimed for it.
        assert_eq!(package(&doc, "libc6")["licenseDeclared"], "NOASSERTION");

        // tokio as Cargo.lock has it, a dependency of fluxion, contained in the image.
        let tokio = package(&doc, "tokio");
        assert_eq!(tokio["versionInfo"], tokio_version.as_str());
        assert_eq!(purl(tokio), format!("pkg:cargo/tokio@{tokio_version}"));
        assert_eq!(sha256_of(tokio), tokio_sha);
        let fluxion = package(&doc, "fluxion");
        assert!(has_relationship(&doc, image, "CONTAINS", fluxion));
        assert!(has_relationship(&doc, fluxion, "DEPENDS_ON", tokio));
        // Proc-macros run on the build host: not in the binary, not listed.
        assert!(!doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "tokio-macros" || p["name"] == "serde_derive"));

        let crates = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| purl(p).starts_with("pkg:cargo/"))
            .count();
        eprintln!(
            "{}: {} bytes, {} Debian packages, {crates} crates, bash {}, tokio {}",
            path.display(),
            std::fs::metadata(&path).unwrap().len(),
            debs.len(),
            bash["versionInfo"],
            tokio["versionInfo"]
        );
    }
}

#[test]
fn the_sbom_is_the_same_bytes_when_made_again_from_nothing() {
    let _turn = FILES.lock().unwrap_or_else(|e| e.into_inner());
    built_images();
    let path = sbom_path("amd64");
    let first = std::fs::read(&path).unwrap();
    // No remembered SBOM and no file: `sbom` asks cargo and reads the layer again.
    let _ = std::fs::remove_dir_all(images_dir().join("cache").join("sbom"));
    std::fs::remove_file(&path).unwrap();
    let out = run(xtask().args(["sbom", "amd64"]));
    assert_eq!(std::fs::read(&path).unwrap(), first, "{}", path.display());
    // The summary table names the packages, versions and licences.
    let bash = package(&read_json(&path), "bash").clone();
    let row = out
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("bash"))
        .unwrap_or_else(|| panic!("no bash row in:\n{out}"));
    assert!(row.starts_with("deb"), "{row}");
    assert!(row.contains(bash["versionInfo"].as_str().unwrap()), "{row}");
    assert!(row.contains("GPL-3.0-or-later"), "{row}");
    assert!(out.contains("Debian packages,"), "{out}");

    // A remembered document with a flipped byte is noticed (stamp.rs) and made again.
    let cached: Vec<PathBuf> = std::fs::read_dir(images_dir().join("cache").join("sbom"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with("document-amd64-") && n.ends_with(".spdx.json")
        })
        .collect();
    assert_eq!(cached.len(), 1, "one remembered amd64 document: {cached:?}");
    let mut bytes = std::fs::read(&cached[0]).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&cached[0], &bytes).unwrap();
    run(xtask().args(["sbom", "amd64"]));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        first,
        "a corrupt cached SBOM was published"
    );

    // And the bytes depend on what they should: another epoch, another document.
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path()).unwrap();
    let (m, _) = publish(&tmp.path().join("fixture"), "v1");
    let image = &m.multi.images[0];
    let version = addon().version;
    let a = sbom::make(&store, &workspace(), &lock(), image, &version, EPOCH).unwrap();
    let b = sbom::make(&store, &workspace(), &lock(), image, &version, EPOCH).unwrap();
    assert_eq!(a.document, b.document);
    let c = sbom::make(
        &store,
        &workspace(),
        &lock(),
        image,
        &version,
        xtask::epoch::Epoch(EPOCH.0 + 1),
    )
    .unwrap();
    assert_ne!(a.document.digest, c.document.digest);
}

/// The two-arch fixture images (support::publish) in `dir`, and an SBOM of each.
fn fixture_with_sboms(dir: &std::path::Path) -> (MultiBuilt, Vec<Sbom>) {
    let (m, _) = publish(dir, "v1");
    let store = BlobStore::open(&dir.join("blobs/sha256")).unwrap();
    let version = addon().version;
    let sboms = m
        .multi
        .images
        .iter()
        .map(|i| sbom::make(&store, &workspace(), &lock(), i, &version, EPOCH).unwrap())
        .collect();
    (m, sboms)
}

/// GET `url` (loopback): the status and body.
fn http_get(url: &str) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.get(url).call().unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_vec().unwrap())
}

fn skopeo_raw(reference: &str) -> Value {
    let out = output(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}")),
    );
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_push_makes_each_sbom_a_referrer_of_its_arch_manifest() {
    if !have("skopeo") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (m, sboms) = fixture_with_sboms(dir.path());
    let version = addon().version;
    let to = registry::Reference::parse(&format!("{}/fluxion", reg.addr)).unwrap();
    let tags = vec![version.clone()];
    let report = registry::push_with(&to, &m.multi, &sboms, &tags, true, &access(None)).unwrap();
    // Each SBOM in the multi-arch repository and in its arch's own.
    assert_eq!(report.referrers.len(), 4, "{report:?}");

    for s in &sboms {
        let image = m.multi.image(s.arch).unwrap();
        for repo in [
            "fluxion".to_owned(),
            format!("{}-fluxion", s.arch.hass_arch()),
        ] {
            // docker-registry 2.8 has no referrers API: the spec's fallback is the index
            // tagged `sha256-<hex>` of the subject.
            let (status, _) = http_get(&format!(
                "http://{}/v2/{repo}/referrers/{}",
                reg.addr, image.manifest.digest
            ));
            assert_eq!(status, 404, "this registry has no referrers API");
            let tag = format!("sha256-{}", image.manifest.hex());
            let index = skopeo_raw(&format!("{}/{repo}:{tag}", reg.addr));
            assert_eq!(
                index["mediaType"],
                "application/vnd.oci.image.index.v1+json"
            );
            let listed = index["manifests"].as_array().unwrap();
            assert_eq!(listed.len(), 1, "{index}");
            assert_eq!(listed[0]["digest"], s.manifest.digest.as_str());
            assert_eq!(listed[0]["artifactType"], ARTIFACT_TYPE);
            assert_eq!(
                listed[0]["annotations"]["org.opencontainers.image.title"],
                format!("fluxion-ha-{}.spdx.json", s.arch)
            );
            // The artifact manifest names the image as its subject and carries the document.
            let artifact = skopeo_raw(&format!("{}/{repo}@{}", reg.addr, s.manifest.digest));
            assert_eq!(artifact["artifactType"], ARTIFACT_TYPE);
            assert_eq!(
                artifact["subject"]["digest"],
                image.manifest.digest.as_str()
            );
            assert_eq!(artifact["subject"]["size"], image.manifest.size);
            assert_eq!(artifact["config"]["mediaType"], sbom::EMPTY_MEDIA_TYPE);
            let layer = &artifact["layers"][0];
            assert_eq!(layer["mediaType"], ARTIFACT_TYPE);
            assert_eq!(layer["digest"], s.document.digest.as_str());
            let (_, blob) = http_get(&format!(
                "http://{}/v2/{repo}/blobs/{}",
                reg.addr, s.document.digest
            ));
            assert_eq!(&blob[..], &s.document.bytes[..]);
        }
    }

    // Pushing again lists each SBOM once, not twice.
    registry::push_with(&to, &m.multi, &sboms, &tags, true, &access(None)).unwrap();
    let image = &m.multi.images[0];
    let index = skopeo_raw(&format!(
        "{}/fluxion:sha256-{}",
        reg.addr,
        image.manifest.hex()
    ));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
}

/// A registry with the referrers API (distribution-spec 1.1, as ghcr.io and registry 3 have
/// it; docker-registry 2.8 cannot play one): it keeps every manifest put by digest and answers
/// `GET /v2/<name>/referrers/<digest>` with an index of those whose `subject` is that digest.
/// Returns its address and the log of `method path` it served.
fn referrers_api_registry() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let server_log = log.clone();
    // Detached: it serves until the test process ends.
    std::thread::spawn(move || {
        let mut blobs = std::collections::BTreeSet::new();
        let mut manifests: Vec<(String, Value)> = Vec::new();
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let Some(req) = read_request(&stream) else {
                continue;
            };
            server_log
                .lock()
                .unwrap()
                .push(format!("{} {}", req.method, req.path));
            let path = req.path.split('?').next().unwrap().to_owned();
            let digest = xtask::image::hash::sha256(&req.body);
            let (status, headers, body): (&str, Vec<String>, String) = if path == "/v2/" {
                ("200 OK", vec![], String::new())
            } else if req.method == "HEAD" {
                let d = path.rsplit('/').next().unwrap().to_owned();
                let status = if blobs.contains(&d) {
                    "200 OK"
                } else {
                    "404 Not Found"
                };
                (status, vec![], String::new())
            } else if req.method == "POST" {
                let loc = "location: /v2/fluxion/blobs/uploads/u1".to_owned();
                ("202 Accepted", vec![loc], String::new())
            } else if req.method == "PUT" && path.contains("/blobs/uploads/") {
                blobs.insert(digest.clone());
                let h = format!("docker-content-digest: {digest}");
                ("201 Created", vec![h], String::new())
            } else if req.method == "PUT" && path.contains("/manifests/") {
                let m: Value = serde_json::from_slice(&req.body).unwrap();
                let mut h = vec![format!("docker-content-digest: {digest}")];
                if let Some(s) = m["subject"]["digest"].as_str() {
                    h.push(format!("oci-subject: {s}"));
                }
                manifests.push((digest, m));
                ("201 Created", h, String::new())
            } else if req.method == "GET" && path.contains("/referrers/") {
                let subject = path.rsplit('/').next().unwrap();
                let listed: Vec<Value> = manifests
                    .iter()
                    .filter(|(_, m)| m["subject"]["digest"] == subject)
                    .map(|(d, m)| {
                        serde_json::json!({"mediaType": m["mediaType"], "digest": d,
                            "size": serde_json::to_vec(m).unwrap().len(),
                            "artifactType": m["artifactType"]})
                    })
                    .collect();
                let index = serde_json::json!({"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": listed});
                let ct = "content-type: application/vnd.oci.image.index.v1+json".to_owned();
                ("200 OK", vec![ct], index.to_string())
            } else {
                ("404 Not Found", vec![], String::new())
            };
            write_response(&mut stream, status, &headers, &body);
        }
    });
    (addr, log)
}

#[test]
fn a_registry_with_the_referrers_api_gets_no_tag_schema_index() {
    let (addr, log) = referrers_api_registry();
    let dir = tempfile::tempdir().unwrap();
    let (m, sboms) = fixture_with_sboms(dir.path());
    let version = addon().version;
    let to = registry::Reference::parse(&format!("{addr}/fluxion")).unwrap();
    let report =
        registry::push_with(&to, &m.multi, &sboms, &[version], false, &access(None)).unwrap();
    assert_eq!(report.referrers.len(), 2, "{report:?}");
    for r in &report.referrers {
        assert_eq!(r.found, registry::referrer::Found::ReferrersApi, "{r:?}");
    }
    let log = log.lock().unwrap();
    // Each artifact manifest put by its digest, and no `sha256-<hex>` tag anywhere.
    for s in &sboms {
        let put = format!("PUT /v2/fluxion/manifests/{}", s.manifest.digest);
        assert!(log.contains(&put), "{put} missing from {log:?}");
    }
    assert!(
        !log.iter().any(|l| l.contains("/manifests/sha256-")),
        "a referrers-API registry got the fallback: {log:?}"
    );
}

#[test]
fn cargo_xtask_push_attaches_the_real_sboms_to_the_real_manifests() {
    if !have("skopeo") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let _turn = FILES.lock().unwrap_or_else(|e| e.into_inner());
    let rows = built_images();
    let target = format!("{}/fluxion", reg.addr);
    let out = run(xtask().args(["push", &target, "--per-arch-repos"]));
    for row in rows {
        let sbom = std::fs::read(sbom_path(&row.arch)).unwrap();
        let sbom_digest = xtask::image::hash::sha256(&sbom);
        let hex = row.manifest_digest.trim_start_matches("sha256:");
        for repo in ["fluxion".to_owned(), format!("{}-fluxion", row.arch)] {
            let index = skopeo_raw(&format!("{}/{repo}:sha256-{hex}", reg.addr));
            let listed = index["manifests"].as_array().unwrap();
            assert_eq!(listed.len(), 1, "{repo}: {index}");
            assert_eq!(listed[0]["artifactType"], ARTIFACT_TYPE);
            let digest = listed[0]["digest"].as_str().unwrap();
            assert!(out.contains(digest), "push does not name {digest}:\n{out}");
            let artifact = skopeo_raw(&format!("{}/{repo}@{digest}", reg.addr));
            assert_eq!(artifact["subject"]["digest"], row.manifest_digest.as_str());
            // The document the registry holds is the file `image` wrote.
            assert_eq!(artifact["layers"][0]["digest"], sbom_digest.as_str());
        }
    }
}
