//! The multi-arch outputs of `cargo xtask image --arch all`: the OCI layout with a nested
//! index, the hybrid OCI + docker archive and the single-arch layouts — checked for the
//! digests they share, against the OCI schemas, and by loading them in docker, podman,
//! skopeo and umoci.
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::Command;

use support::*;
use xtask::arch::Arch;
use xtask::image::hash::sha256;

/// Every entry of a tar: path -> bytes.
fn tar_entries(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            (p, b)
        })
        .collect()
}

#[test]
fn layout_archive_and_single_arch_layouts_share_digests() {
    let dir = tempfile::tempdir().unwrap();
    let (m, singles) = publish(dir.path(), "v1");
    let version = addon().version;
    let name = format!("docker.io/library/fluxion-ha:{version}");
    assert_eq!(m.name, name);

    // index.json: exactly one descriptor, the nested index, named by the full reference.
    let index_json = read_json(&m.layout.join("index.json"));
    let entries = index_json["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index_json}");
    let top = &entries[0];
    assert_eq!(top["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(top["digest"], m.multi.index.digest.as_str());
    assert_eq!(
        top["annotations"]["org.opencontainers.image.ref.name"],
        name.as_str()
    );
    assert_eq!(
        top["annotations"]["io.containerd.image.name"],
        name.as_str()
    );
    assert_eq!(
        read_json(&m.layout.join("oci-layout")),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );

    // The nested index lists both manifests with their platforms.
    let nested = read_json(&m.layout.join("blobs/sha256").join(m.multi.index.hex()));
    let listed: Vec<_> = nested["manifests"].as_array().unwrap().iter().collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0]["platform"],
        serde_json::json!({"architecture": "amd64", "os": "linux"})
    );
    assert_eq!(
        listed[1]["platform"],
        serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
    );
    for (entry, image) in listed.iter().zip(&m.multi.images) {
        assert_eq!(entry["digest"], image.manifest.digest.as_str());
        assert_eq!(entry["size"], image.manifest.size);
        // The single-arch layout names the same manifest by the bare version.
        let single = read_json(&singles[&image.arch].join("index.json"));
        assert_eq!(
            single["manifests"][0]["digest"],
            image.manifest.digest.as_str()
        );
        assert_eq!(
            single["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            version.as_str()
        );
        assert_eq!(single["manifests"][0]["platform"], entry["platform"]);
    }

    // Every blob file in the layout is named by its own digest; nothing else is there.
    let layout_blobs: BTreeSet<String> = std::fs::read_dir(m.layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let hex = e.file_name().to_string_lossy().into_owned();
            assert_eq!(
                sha256(&std::fs::read(e.path()).unwrap()),
                format!("sha256:{hex}")
            );
            hex
        })
        .collect();
    let expected: BTreeSet<String> = m.multi.blobs().iter().map(|b| b.hex().to_owned()).collect();
    assert_eq!(layout_blobs, expected);
    // 2 app layers + 1 shared base layer + 2 configs + 2 manifests + the index.
    assert_eq!(expected.len(), 8);

    // The archive: each path once, blobs = the layout's, the same index.json and oci-layout,
    // plus a docker manifest.json with one per-arch tag per image.
    let tar = tar_entries(&m.archive);
    let mut seen = BTreeSet::new();
    for (p, _) in &tar {
        assert!(seen.insert(p.clone()), "{p} twice in the archive");
    }
    let files: BTreeMap<&str, &Vec<u8>> = tar.iter().map(|(p, b)| (p.as_str(), b)).collect();
    let tar_blobs: BTreeSet<String> = files
        .keys()
        .filter_map(|p| p.strip_prefix("blobs/sha256/"))
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(tar_blobs, expected);
    assert_eq!(
        **files["index.json"],
        std::fs::read(m.layout.join("index.json")).unwrap()
    );
    assert_eq!(
        **files["oci-layout"],
        std::fs::read(m.layout.join("oci-layout")).unwrap()
    );
    let docker: serde_json::Value = serde_json::from_slice(files["manifest.json"]).unwrap();
    let items = docker.as_array().unwrap();
    assert_eq!(items.len(), 2);
    for (item, image) in items.iter().zip(&m.multi.images) {
        let tag = format!("fluxion-ha:{version}-{}", image.arch.hass_arch());
        assert_eq!(item["RepoTags"], serde_json::json!([tag]));
        assert_eq!(
            item["Config"],
            format!("blobs/sha256/{}", image.config.hex())
        );
        let layers: Vec<String> = image
            .layers
            .iter()
            .map(|l| format!("blobs/sha256/{}", l.blob.hex()))
            .collect();
        assert_eq!(item["Layers"], serde_json::json!(layers));
    }
    assert_eq!(
        sha256(&std::fs::read(&m.archive).unwrap()),
        m.written.sha256
    );

    // Written again from the same inputs: the same bytes (and the old outputs replaced whole).
    let again = tempfile::tempdir().unwrap();
    let (m2, _) = publish(again.path(), "v1");
    assert_eq!(m2.written, m.written);
    assert_eq!(m2.multi.index.digest, m.multi.index.digest);
    let (m3, _) = publish(dir.path(), "v2");
    assert_ne!(m3.multi.index.digest, m.multi.index.digest);
    let idx = read_json(&m3.layout.join("index.json"));
    assert_eq!(
        idx["manifests"][0]["digest"],
        m3.multi.index.digest.as_str()
    );
    assert!(
        !m3.layout
            .join("blobs/sha256")
            .join(m.multi.index.hex())
            .exists(),
        "stale blob in the replaced layout"
    );
}

#[test]
fn index_manifests_configs_and_layout_validate_against_the_oci_schemas() {
    let Some(schemas) = oci_schemas() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (m, singles) = publish(dir.path(), "v1");
    let index = validator(&schemas, "image-index-schema.json");
    let manifest = validator(&schemas, "image-manifest-schema.json");
    let config = validator(&schemas, "config-schema.json");
    let layout = validator(&schemas, "image-layout-schema.json");
    let valid = |v: &jsonschema::Validator, doc: serde_json::Value, what: &str| {
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{what} is invalid: {errors:?}\n{doc}");
    };
    let blob = |hex: &str| read_json(&m.layout.join("blobs/sha256").join(hex));
    valid(
        &index,
        read_json(&m.layout.join("index.json")),
        "index.json",
    );
    valid(&index, blob(m.multi.index.hex()), "the nested index");
    valid(
        &layout,
        read_json(&m.layout.join("oci-layout")),
        "oci-layout",
    );
    for image in &m.multi.images {
        valid(&manifest, blob(image.manifest.hex()), "a manifest");
        valid(&config, blob(image.config.hex()), "a config");
        valid(
            &index,
            read_json(&singles[&image.arch].join("index.json")),
            "a single-arch index.json",
        );
    }
    // The validator does reject what the spec forbids (so the checks above can fail).
    let mut bad = blob(m.multi.images[0].manifest.hex());
    bad["config"]["digest"] = "sha256:NOT-HEX".into();
    bad["layers"] = serde_json::json!([]);
    assert!(
        !manifest.is_valid(&bad),
        "a manifest with a bad digest and no layers passed"
    );
    let mut bad = blob(m.multi.index.hex());
    bad["manifests"][0]["mediaType"] = 7.into();
    assert!(!index.is_valid(&bad));
}

#[test]
fn docker_loads_both_per_arch_tags_from_the_hybrid_archive() {
    let Some(d) = Dockerd::start(None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = publish(dir.path(), "v1");
    let version = addon().version;
    let out = run(d.docker().arg("load").arg("-i").arg(&m.archive));
    for image in &m.multi.images {
        let tag = format!("fluxion-ha:{version}-{}", image.arch.hass_arch());
        assert!(out.contains(&format!("Loaded image: {tag}")), "{out}");
        let inspect = run(d.docker().args(["image", "inspect", &tag]));
        let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        // docker's image ID is the config digest: the same image as everywhere else.
        assert_eq!(v[0]["Id"], image.config.digest.as_str());
        assert_eq!(v[0]["Architecture"], image.arch.oci_arch());
        assert_eq!(v[0]["Os"], "linux");
        if let Some(variant) = image.arch.oci_variant() {
            assert_eq!(v[0]["Variant"], variant);
        }
        assert_eq!(
            v[0]["Config"]["Labels"]["io.hass.arch"],
            image.arch.hass_arch()
        );
        let diff_ids: Vec<&str> = image.layers.iter().map(|l| l.diff_id.as_str()).collect();
        assert_eq!(v[0]["RootFS"]["Layers"], serde_json::json!(diff_ids));
    }
}

#[test]
fn podman_loads_the_host_platform_from_the_nested_index_with_its_full_name() {
    let Some(p) = Podman::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = publish(dir.path(), "v1");
    let out = run(p.podman().arg("load").arg("-i").arg(&m.archive));
    assert!(
        out.contains(&format!("Loaded image: {}", m.name)),
        "podman load said: {out}"
    );
    let host = match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::Aarch64,
        other => panic!("no image for host arch {other}"),
    };
    let want = m.multi.image(host).unwrap();
    let inspect = run(p.podman().args(["image", "inspect", &m.name]));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(
        format!("sha256:{}", v[0]["Id"].as_str().unwrap()),
        want.config.digest
    );
    assert_eq!(v[0]["Architecture"], host.oci_arch());
    assert_eq!(v[0]["Labels"]["io.hass.arch"], host.hass_arch());
}

#[test]
fn skopeo_reads_the_layout_and_both_sides_of_the_archive() {
    if !have("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = publish(dir.path(), "v1");
    let version = addon().version;
    let index_bytes = std::fs::read(&m.multi.index.path).unwrap();

    let raw = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}", m.layout.display()))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(
        raw.stdout, index_bytes,
        "skopeo shows another index than ours"
    );

    let copy = dir.path().join("copy");
    run(Command::new("skopeo")
        .args(["copy", "--all"])
        .arg(format!("oci-archive:{}", m.archive.display()))
        .arg(format!("dir:{}", copy.display())));
    // `dir:` keeps the top manifest (our index) byte for byte and every blob by digest.
    assert_eq!(
        std::fs::read(copy.join("manifest.json")).unwrap(),
        index_bytes
    );
    for image in &m.multi.images {
        for blob in image.layers.iter().map(|l| &l.blob).chain([&image.config]) {
            let copied = std::fs::read(copy.join(blob.hex())).unwrap();
            assert_eq!(sha256(&copied), blob.digest);
        }
        let per_arch =
            std::fs::read(copy.join(format!("{}.manifest.json", image.manifest.hex()))).unwrap();
        assert_eq!(sha256(&per_arch), image.manifest.digest);
    }

    let arm = m.multi.image(Arch::Aarch64).unwrap();
    let out = run(Command::new("skopeo").arg("inspect").arg(format!(
        "docker-archive:{}:fluxion-ha:{version}-aarch64",
        m.archive.display()
    )));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Architecture"], "arm64");
    assert_eq!(v["Labels"]["io.hass.arch"], "aarch64");
    assert_eq!(v["Labels"]["io.hass.version"], version.as_str());
    assert_eq!(v["Layers"].as_array().unwrap().len(), arm.layers.len());
}

#[test]
fn umoci_unpacks_each_single_arch_layout() {
    if !have("umoci") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (m, singles) = publish(dir.path(), "v1");
    let version = addon().version;
    for image in &m.multi.images {
        let bundle = dir.path().join(format!("bundle-{}", image.arch));
        run(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{version}", singles[&image.arch].display()))
            .arg(&bundle));
        let rootfs = bundle.join("rootfs");
        assert_eq!(
            std::fs::read(rootfs.join("bin/fluxion-main")).unwrap(),
            app_bytes(image.arch, "v1")
        );
        assert!(
            rootfs.join("etc/fluxion-test-base").is_file(),
            "base layer missing"
        );
        assert!(rootfs.join("etc/passwd").is_file());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(rootfs.join("tmp")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o7777, 0o1777);
        // umoci records the descriptor path it walked: ending at our manifest digest.
        let meta = read_json(&bundle.join("umoci.json"));
        let walk = meta["from_descriptor_path"]["descriptor_walk"]
            .as_array()
            .unwrap();
        assert_eq!(
            walk.last().unwrap()["digest"],
            image.manifest.digest.as_str(),
            "{meta}"
        );
        let cfg = read_json(&bundle.join("config.json"));
        assert_eq!(
            cfg["process"]["args"],
            serde_json::json!(["/bin/fluxion-main"])
        );
    }
}
