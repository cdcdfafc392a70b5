//! The images as real tools see them: skopeo, a private dockerd, podman, qemu, and the OCI
//! image-spec schemas. Each test skips locally when its tool is missing and fails in CI.
mod support;

use std::process::Command;

use serde_json::Value;
use support::{built, run, tool};

fn expected(arch: &str) -> (&'static str, Option<&'static str>) {
    match arch {
        "amd64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        _ => unreachable!(),
    }
}

#[test]
fn skopeo_sees_labels_architecture_and_os() {
    let Some(skopeo) = tool("skopeo") else { return };
    let version = support::addon().version;
    for arch in ["amd64", "aarch64"] {
        let row = built(arch);
        let src = format!("docker-archive:{}", row.archive_path().display());
        let inspect: Value =
            serde_json::from_str(&run(Command::new(&skopeo).args(["inspect", &src]))).unwrap();
        let config: Value = serde_json::from_str(&run(
            Command::new(&skopeo).args(["inspect", "--config", &src])
        ))
        .unwrap();
        let (oci_arch, variant) = expected(arch);
        assert_eq!(inspect["Architecture"], oci_arch, "{arch}: {inspect}");
        assert_eq!(inspect["Os"], "linux");
        assert_eq!(config["architecture"], oci_arch);
        assert_eq!(config["os"], "linux");
        assert_eq!(config["variant"].as_str(), variant);
        let labels = &config["config"]["Labels"];
        assert_eq!(labels, &inspect["Labels"]);
        assert_eq!(labels["io.hass.version"], version.as_str());
        assert_eq!(labels["io.hass.arch"], arch);
        assert_eq!(labels["io.hass.type"], "addon");
        for key in ["io.hass.name", "io.hass.description", "io.hass.url"] {
            assert!(
                labels[key].as_str().is_some_and(|v| !v.is_empty()),
                "{arch}: {key}"
            );
        }
        for key in ["version", "created", "source", "title", "description"] {
            let k = format!("org.opencontainers.image.{key}");
            assert!(
                labels[&k].as_str().is_some_and(|v| !v.is_empty()),
                "{arch}: {k}"
            );
        }
        assert_eq!(
            config["config"]["Cmd"],
            serde_json::json!(["/bin/fluxion-main"])
        );
        assert_eq!(
            config["config"]["Env"],
            serde_json::json!(["PATH=/bin:/usr/bin"])
        );
        assert!(config["config"]["ExposedPorts"]["8099/tcp"].is_object());
        // The image ID is the config digest: skopeo's digest of the config blob agrees.
        let raw_config = run(Command::new(&skopeo).args(["inspect", "--config", "--raw", &src]));
        assert_eq!(
            xtask::image::hash::sha256(raw_config.as_bytes()),
            row.image_id
        );
    }
}

#[test]
fn manifest_and_config_validate_against_the_oci_schemas() {
    for arch in ["amd64", "aarch64"] {
        let row = built(arch);
        let blobs = support::images_dir().join("blobs/sha256");
        let read = |digest: &str| -> Value {
            let bytes = std::fs::read(blobs.join(digest.trim_start_matches("sha256:"))).unwrap();
            assert_eq!(
                xtask::image::hash::sha256(&bytes),
                digest,
                "blob content matches its name"
            );
            serde_json::from_slice(&bytes).unwrap()
        };
        let manifest = read(&row.manifest_digest);
        let config = read(&row.image_id);
        assert_eq!(manifest["config"]["digest"], row.image_id.as_str());
        for (schema, doc) in [
            ("image-manifest-schema.json", &manifest),
            ("config-schema.json", &config),
        ] {
            let Some(schemas) = support::oci_schemas() else {
                return;
            };
            let errors: Vec<String> = support::validator(&schemas, schema)
                .iter_errors(doc)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{arch}: {schema} rejects our document:\n{}\n{doc:#}",
                errors.join("\n")
            );
        }
        // The schema would accept a config without a platform; Supervisor would not.
        let (oci_arch, variant) = expected(arch);
        assert_eq!(config["architecture"], oci_arch);
        assert_eq!(config["variant"].as_str(), variant);
    }
}

#[test]
fn docker_loads_and_runs_both_images() {
    let Some(dockerd) = support::Dockerd::start(None) else {
        return;
    };
    let version = support::addon().version;
    // `cargo xtask load` honours DOCKER_HOST and reports the loaded name.
    for arch in ["amd64", "aarch64"] {
        let out = run(support::xtask()
            .args(["load", arch])
            .env("DOCKER_HOST", &dockerd.host));
        // "loaded fluxion-ha:<arch> (sha256:<config digest>) into Docker"
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("loaded fluxion-ha:{arch} (")))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(line.ends_with(") into Docker"), "{out}");
        let ours = line.split(['(', ')']).nth(1).unwrap();
        let id = run(dockerd.docker().args([
            "inspect",
            "--format",
            "{{.Id}}",
            &format!("fluxion-ha:{arch}"),
        ]));
        assert_eq!(id.trim(), ours, "docker's image ID is our config digest");
    }
    let out = run(dockerd.docker().args([
        "run",
        "--rm",
        "--network",
        "none",
        "fluxion-ha:amd64",
        "/bin/fluxion-main",
        "--version",
    ]));
    assert!(
        out.contains(&version) && out.contains("x86_64-unknown-linux-musl"),
        "{out}"
    );

    if let Err(why) = support::ensure_binfmt_aarch64() {
        support::require(
            &format!("arm64 containers through qemu binfmt ({why})"),
            false,
        );
        return;
    }
    let out = run(dockerd.docker().args([
        "run",
        "--rm",
        "--network",
        "none",
        "--platform",
        "linux/arm64",
        "fluxion-ha:aarch64",
        "/bin/fluxion-main",
        "--version",
    ]));
    assert!(
        out.contains(&version) && out.contains("aarch64-unknown-linux-musl"),
        "{out}"
    );
}

#[test]
fn arm64_binary_from_the_archive_runs_under_qemu() {
    let Some(qemu) = tool("qemu-aarch64-static") else {
        return;
    };
    let row = built("aarch64");
    let manifest: Value =
        serde_json::from_slice(&support::tar_member(&row.archive_path(), "manifest.json")).unwrap();
    let layer_path = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let layer = support::tar_member(&row.archive_path(), &layer_path);
    let (mode, bin) =
        support::layer_file(&layer, "bin/fluxion-main").expect("the app layer has the binary");
    assert_eq!(mode, 0o755);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fluxion-main");
    std::fs::write(&path, bin).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&path).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = run(Command::new(qemu).arg(&path).arg("--version"));
    assert!(
        out.contains(&support::addon().version) && out.contains("aarch64-unknown-linux-musl"),
        "{out}"
    );
}

#[test]
fn podman_loads_both_archives() {
    let Some(pm) = support::Podman::new() else {
        return;
    };
    for arch in ["amd64", "aarch64"] {
        let row = built(arch);
        let out = run(pm.podman().args(["load", "-i"]).arg(row.archive_path()));
        assert!(out.contains(&format!("fluxion-ha:{arch}")), "{out}");
        let id = run(pm.podman().args([
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            &format!("fluxion-ha:{arch}"),
        ]));
        assert_eq!(format!("sha256:{}", id.trim()), row.image_id);
    }
    let out = run(pm
        .run_container()
        .args(["fluxion-ha:amd64", "/bin/fluxion-main", "--version"]));
    assert!(out.contains(&support::addon().version), "{out}");
}
