//! `cargo xtask push` against a real registry (Debian `docker-registry` on 127.0.0.1): the
//! round trip through skopeo and a private dockerd, HEAD-before-upload skipping, and the
//! Supervisor contract refusing bad pushes.
mod support;

use std::collections::BTreeSet;
use std::process::Command;

use support::*;
use xtask::arch::Arch;
use xtask::image::index::{self, MultiArch};
use xtask::image::store::BlobStore;
use xtask::image::{json, Image};
use xtask::publish::{contract, registry};

fn target(reg: &Registry, repo: &str) -> registry::Reference {
    registry::Reference::parse(&format!("{}/{repo}", reg.addr)).unwrap()
}

fn layer_and_config_digests(images: &[Image]) -> BTreeSet<String> {
    images
        .iter()
        .flat_map(|i| {
            i.layers
                .iter()
                .map(|l| l.blob.digest.clone())
                .chain([i.config.digest.clone()])
        })
        .collect()
}

fn skopeo_raw(reference: &str) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn push_round_trip_skopeo_sees_our_index_and_docker_pulls_arm64() {
    if !have("skopeo") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = publish(dir.path(), "v1");
    let version = addon().version;
    let to = target(&reg, "fluxion");
    let tags = vec![version.clone(), "latest".to_owned()];
    contract::check(&addon(), &version, &m.multi, &tags).unwrap();
    let report = registry::push(&to, &m.multi, &tags, true, &access(None)).unwrap();

    // main repo: 2 app layers + the shared base + 2 configs, uploaded; each per-arch repo:
    // its 3, mounted from the main repository (tests/push_users.rs counts the bytes).
    assert_eq!(report.uploaded.len(), 5, "{report:?}");
    assert_eq!(report.mounted.len(), 3 + 3, "{report:?}");
    assert!(report.skipped.is_empty());
    let expected_bytes: u64 = m
        .multi
        .images
        .iter()
        .map(|i| i.compressed_size() + i.config.size)
        .sum::<u64>()
        - m.multi.images[0].layers[0].blob.size; // the base layer is shared in the main repo
    assert_eq!(report.bytes, expected_bytes);
    // Tags come last, and point at the index (main) or the arch's manifest (per-arch repos).
    assert_eq!(
        report
            .tags
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<Vec<_>>(),
        [
            format!("{to}:{version}"),
            format!("{to}:latest"),
            format!("{}:{version}", to.per_arch("amd64")),
            format!("{}:latest", to.per_arch("amd64")),
            format!("{}:{version}", to.per_arch("aarch64")),
            format!("{}:latest", to.per_arch("aarch64")),
        ]
    );

    // The registry serves our index, byte for byte, under the version tag.
    let index_bytes = std::fs::read(&m.multi.index.path).unwrap();
    assert_eq!(skopeo_raw(&format!("{to}:{version}")), index_bytes);
    let arm = m.multi.image(Arch::Aarch64).unwrap();
    assert_eq!(
        skopeo_raw(&format!("{}:{version}", to.per_arch("aarch64"))),
        std::fs::read(&arm.manifest.path).unwrap()
    );
    // And the registry's own digest for the tag is ours.
    assert_eq!(
        manifest_digest(&reg.addr, "fluxion", &version),
        m.multi.index.digest
    );

    // docker pulls the arm64 image by platform from the index.
    let Some(d) = Dockerd::start(Some(&reg.addr)) else {
        return;
    };
    let reference = format!("{to}:{version}");
    run(d
        .docker()
        .args(["pull", "--platform", "linux/arm64", &reference]));
    let v: serde_json::Value =
        serde_json::from_str(&run(d.docker().args(["image", "inspect", &reference]))).unwrap();
    assert_eq!(
        v[0]["Id"],
        arm.config.digest.as_str(),
        "docker pulled another image than our arm64 one"
    );
    assert_eq!(v[0]["Architecture"], "arm64");
    assert_eq!(v[0]["Variant"], "v8");
    // docker records the digest it pulled by: the index's.
    let repo_digest = format!("{to}@{}", m.multi.index.digest);
    assert!(
        v[0]["RepoDigests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == repo_digest.as_str()),
        "{}",
        v[0]["RepoDigests"]
    );
}

#[test]
fn pushes_skip_what_the_registry_has_and_upload_only_what_changed() {
    let Some(reg) = Registry::start() else { return };
    let to = target(&reg, "fluxion");
    let version = addon().version;
    let tags = vec![version.clone()];
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = publish(dir.path(), "v1");
    let r1 = registry::push(&to, &first.multi, &tags, false, &access(None)).unwrap();
    assert_eq!(r1.uploaded.len(), 5);

    // The same images again: nothing to upload, manifests and tags re-put (idempotent).
    let r2 = registry::push(&to, &first.multi, &tags, false, &access(None)).unwrap();
    assert!(r2.uploaded.is_empty(), "{r2:?}");
    assert_eq!(r2.bytes, 0);
    assert_eq!(r2.skipped.len(), 5);
    assert_eq!(r2.manifests.len(), 3);

    // Only the app changed (both arches): the base layer is skipped; exactly the two app
    // layers and the two configs go up, then the two manifests and the index.
    let (second, _) = publish(dir.path(), "v2");
    let r3 = registry::push(&to, &second.multi, &tags, false, &access(None)).unwrap();
    let changed: BTreeSet<String> = &layer_and_config_digests(&second.multi.images)
        - &layer_and_config_digests(&first.multi.images);
    assert_eq!(changed.len(), 4);
    assert_eq!(
        r3.uploaded.iter().cloned().collect::<BTreeSet<_>>(),
        changed
    );
    assert_eq!(
        r3.skipped,
        vec![second.multi.images[0].layers[0].blob.digest.clone()]
    );
    let mut manifests: Vec<String> = second
        .multi
        .images
        .iter()
        .map(|i| format!("{to}@{}", i.manifest.digest))
        .collect();
    manifests.push(format!("{to}@{}", second.multi.index.digest));
    assert_eq!(r3.manifests, manifests);
    assert_eq!(
        r3.tags,
        vec![(format!("{to}:{version}"), second.multi.index.digest.clone())]
    );
}

#[test]
fn contract_refuses_wrong_versions_tags_and_platforms() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = publish(dir.path(), "v1");
    let addon = addon();
    let v = addon.version.clone();
    let only_v = vec![v.clone()];
    contract::check(&addon, &v, &m.multi, &only_v).unwrap();

    let err = |r: anyhow::Result<()>| format!("{:#}", r.unwrap_err());
    assert!(err(contract::check(&addon, "9.9.9", &m.multi, &only_v)).contains("9.9.9"));
    assert!(
        err(contract::check(&addon, &v, &m.multi, &["latest".into()])).contains("do not include")
    );
    assert!(err(contract::check(
        &addon,
        &v,
        &m.multi,
        &[v.clone(), "2.0.0".into()]
    ))
    .contains("2.0.0"));

    // A config.yaml whose version moved on after the images were built.
    let mut newer = addon.clone();
    newer.version = "0.0.1-other".into();
    let e = err(contract::check(
        &newer,
        "0.0.1-other",
        &m.multi,
        &["0.0.1-other".into()],
    ));
    assert!(e.contains("io.hass.version"), "{e}");

    // An index that announces the amd64 manifest as arm64.
    let store = BlobStore::open(&dir.path().join("blobs/sha256")).unwrap();
    let mut entries: Vec<_> = m
        .multi
        .images
        .iter()
        .map(|i| index::manifest_descriptor(i).unwrap())
        .collect();
    entries[0].set_platform(Some(index::platform(Arch::Aarch64).unwrap()));
    let bad = store
        .put(
            &json::to_canonical(&index::build(entries).unwrap()),
            index::MEDIA_TYPE,
        )
        .unwrap();
    let lying = MultiArch {
        images: m.multi.images.clone(),
        index: bad,
    };
    let e = err(contract::check(&addon, &v, &lying, &only_v));
    assert!(e.contains("config says"), "{e}");
}

#[test]
fn a_registry_that_rewrites_a_manifest_is_an_error() {
    // A registry answering with another Docker-Content-Digest than ours must stop the push
    // before any tag is written: a tiny fake that accepts everything and lies about digests.
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut puts = Vec::new();
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            std::io::Read::read_exact(&mut reader, &mut body).unwrap();
            let (method, path) = {
                let mut p = line.split(' ');
                (p.next().unwrap().to_owned(), p.next().unwrap().to_owned())
            };
            let resp = match method.as_str() {
                "GET" => {
                    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                }
                "HEAD" => {
                    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                }
                "PUT" => {
                    puts.push(path.clone());
                    format!("HTTP/1.1 201 Created\r\ndocker-content-digest: sha256:{}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", "0".repeat(64))
                }
                _ => "HTTP/1.1 500 No\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
            };
            stream.write_all(resp.as_bytes()).unwrap();
            if method == "PUT" {
                return puts;
            }
        }
        puts
    });
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = publish(dir.path(), "v1");
    let to = registry::Reference::parse(&format!("{addr}/fluxion")).unwrap();
    let e = registry::push(&to, &m.multi, &[addon().version], false, &access(None)).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("rewrote"), "{msg}");
    let puts = server.join().unwrap();
    // The only PUT was the first manifest, by digest: no tag was written.
    assert_eq!(
        puts,
        vec![format!(
            "/v2/fluxion/manifests/{}",
            m.multi.images[0].manifest.digest
        )]
    );
}

#[test]
fn push_command_refuses_bad_targets_before_building() {
    let out = support::xtask()
        .args(["push", "fluxion-ha"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("names no registry"), "{err}");
    assert!(
        !err.contains("building fluxion-main"),
        "it built before refusing: {err}"
    );

    let out = support::xtask()
        .args(["push", "127.0.0.1:1/fluxion", "--tag", "bad/tag"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not valid"));
}

#[test]
fn bearer_token_flow_with_credentials_from_the_client_config() {
    // A stand-in for a token-auth registry (distribution's "token" scheme, as ghcr.io and
    // GitLab use): every /v2/ call without the bearer token gets 401 + a challenge; the
    // token endpoint wants Basic credentials and the repository scope. It stores what it is
    // sent and answers with the real sha256 of it, as a registry does.
    use base64::Engine as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let server_log = log.clone();
    // Detached: it serves until the test process ends.
    std::thread::spawn(move || {
        let mut blobs = BTreeSet::new();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ci-user:s3cret")
        );
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let Some(req) = read_request(&stream) else {
                continue;
            };
            server_log
                .lock()
                .unwrap()
                .push((req.method.clone(), req.path.clone()));
            let path = req.path.split('?').next().unwrap().to_owned();
            let query = req
                .path
                .split_once('?')
                .map(|x| x.1.to_owned())
                .unwrap_or_default();
            let (status, headers, body): (&str, Vec<String>, String) = if path == "/token" {
                if req.auth.as_deref() == Some(&basic)
                    && query.contains("scope=repository%3Aowner%2Ffluxion%3Apull%2Cpush")
                    && query.contains("service=fake")
                {
                    ("200 OK", vec![], r#"{"token":"tok-1"}"#.into())
                } else {
                    ("401 Unauthorized", vec![], String::new())
                }
            } else if req.auth.as_deref() != Some("Bearer tok-1") {
                let realm = format!("http://{addr}/token");
                (
                    "401 Unauthorized",
                    vec![format!(
                        r#"www-authenticate: Bearer realm="{realm}",service="fake",scope="repository:owner/fluxion:pull,push""#
                    )],
                    String::new(),
                )
            } else if path == "/v2/" {
                ("200 OK", vec![], String::new())
            } else if req.method == "HEAD" {
                let digest = path.rsplit('/').next().unwrap().to_owned();
                if blobs.contains(&digest) {
                    ("200 OK", vec![], String::new())
                } else {
                    ("404 Not Found", vec![], String::new())
                }
            } else if req.method == "POST" {
                (
                    "202 Accepted",
                    vec!["location: /v2/owner/fluxion/blobs/uploads/u1?state=x".into()],
                    String::new(),
                )
            } else if req.method == "PUT" {
                let digest = xtask::image::hash::sha256(&req.body);
                if path.contains("/blobs/uploads/") {
                    assert!(
                        query.contains("state=x"),
                        "upload PUT lost the session state: {query}"
                    );
                    assert_eq!(
                        query.rsplit("digest=").next().unwrap().replace("%3A", ":"),
                        digest
                    );
                    blobs.insert(digest.clone());
                }
                (
                    "201 Created",
                    vec![format!("docker-content-digest: {digest}")],
                    String::new(),
                )
            } else {
                ("500 Internal Server Error", vec![], String::new())
            };
            write_response(&mut stream, status, &headers, &body);
        }
    });

    let auth = base64::engine::general_purpose::STANDARD.encode("ci-user:s3cret");
    let config = format!(r#"{{"auths":{{"https://{addr}":{{"auth":"{auth}"}}}}}}"#);
    let creds = registry::docker_config_auth(&config, &addr.to_string()).unwrap();
    assert!(creds.is_some());
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = publish(dir.path(), "v1");
    let to = registry::Reference::parse(&format!("{addr}/owner/fluxion")).unwrap();
    let tags = vec![addon().version, "latest".into()];
    let report = registry::push(&to, &m.multi, &tags, false, &access(creds)).unwrap();
    assert_eq!(report.uploaded.len(), 5);
    let log = std::mem::take(&mut *log.lock().unwrap());
    // One challenge, one token, then everything with the token; tags are the last PUTs.
    assert_eq!(
        log.iter().filter(|(_, p)| p.starts_with("/token")).count(),
        1,
        "{log:?}"
    );
    let puts: Vec<&str> = log
        .iter()
        .filter(|(m, p)| m == "PUT" && p.contains("/manifests/"))
        .map(|(_, p)| p.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        puts,
        [
            m.multi.images[0].manifest.digest.as_str(),
            &m.multi.images[1].manifest.digest,
            &m.multi.index.digest,
            &tags[0],
            "latest"
        ]
    );

    // Without credentials the token endpoint refuses, and the error says how to log in.
    let e = registry::push(&to, &m.multi, &tags, false, &access(None)).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("needs credentials") && msg.contains("--password-stdin"),
        "{msg}"
    );
}

#[test]
fn basic_auth_registry_needs_and_takes_credentials() {
    if !have("skopeo") {
        return;
    }
    let Some(reg) = Registry::start_with(true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = publish(dir.path(), "v1");
    let to = target(&reg, "fluxion");
    let tags = vec![addon().version];

    let e = registry::push(&to, &m.multi, &tags, false, &access(None)).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("needs credentials"), "{msg}");

    let mut wrong: &[u8] = b"nope\n";
    let bad = registry::credentials(&reg.addr, Some("ci-user".into()), Some(&mut wrong)).unwrap();
    let e = registry::push(&to, &m.multi, &tags, false, &access(bad)).unwrap_err();
    assert!(
        format!("{e:#}").contains("refused the credentials"),
        "{e:#}"
    );

    let mut stdin: &[u8] = b"s3cret\n";
    let creds = registry::credentials(&reg.addr, Some("ci-user".into()), Some(&mut stdin)).unwrap();
    let report = registry::push(&to, &m.multi, &tags, false, &access(creds)).unwrap();
    assert_eq!(report.uploaded.len(), 5);
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "ci-user:s3cret",
        ])
        .arg(format!("docker://{to}:{}", tags[0]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, std::fs::read(&m.multi.index.path).unwrap());
}
