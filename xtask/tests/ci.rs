//! The CI files agree with the tests and with each other: the name filters that split the GitLab
//! `integration` jobs catch every test that needs a privileged runner, `.ci/install-tools` is
//! the one install script (executable, used by `.ci/run` and by `.gitlab-ci.yml`), and `.ci/run`
//! runs the README's test command with the switches docs/images.md describes.
mod support;

use std::os::unix::fs::PermissionsExt;

fn read(rel: &str) -> String {
    std::fs::read_to_string(support::workspace().join(rel))
        .unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// What in a test's body means it needs a privileged runner: a private dockerd, podman
/// containers, a binfmt_misc registration.
const PRIVILEGED: [&str; 3] = ["Dockerd::", "Podman::", "ensure_binfmt_aarch64"];

/// Every `#[test] fn` of a test file with its body (up to the next test).
fn tests_of(text: &str) -> Vec<(String, String)> {
    text.split("#[test]")
        .skip(1)
        .filter_map(|chunk| {
            let start = chunk.find("fn ")? + 3;
            let name: String = chunk[start..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            Some((name, chunk.to_owned()))
        })
        .collect()
}

#[test]
fn tests_that_need_a_privileged_runner_are_named_so() {
    let yml = read(".gitlab-ci.yml");
    assert!(
        yml.contains("cargo test --workspace --locked -- --skip docker --skip podman"),
        "the unprivileged integration job skips the docker and podman tests"
    );
    assert!(
        yml.contains("cargo test --workspace --locked -- docker podman"),
        "the privileged integration job runs exactly those"
    );
    let mut privileged = Vec::new();
    for dir in ["xtask/tests", "fluxion/tests"] {
        for entry in std::fs::read_dir(support::workspace().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (name, body) in tests_of(&text) {
                let needs = PRIVILEGED.iter().any(|p| body.contains(p));
                let named = name.contains("docker") || name.contains("podman");
                assert!(
                    !needs || named,
                    "{}: test `{name}` starts dockerd or podman but has neither `docker` nor \
                     `podman` in its name, so the unprivileged `integration` job would run it",
                    path.display()
                );
                if needs {
                    privileged.push(name);
                }
            }
        }
    }
    // The scan finds the tests it is about (it is not vacuous).
    assert!(
        privileged.len() >= 5
            && privileged.iter().any(|n| n.contains("docker"))
            && privileged.iter().any(|n| n.contains("podman")),
        "{privileged:?}"
    );
}

#[test]
fn one_install_script_used_everywhere() {
    let script = support::workspace().join(".ci/install-tools");
    let mode = std::fs::metadata(&script).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, ".ci/install-tools is executable");
    let run = read(".ci/run");
    assert!(
        run.contains("\n.ci/install-tools\n"),
        ".ci/run installs everything"
    );
    assert!(
        run.contains("export FLUXION_REQUIRE_TOOLS=1"),
        ".ci/run requires the tools"
    );
    assert!(
        run.contains("export FLUXION_REF_DIR=\"$ref\"") && run.contains("/shared/ref\""),
        ".ci/run names the reference schemas by absolute path"
    );
    // The README's test command, and only it, runs the suite.
    let readme = read("README.md");
    assert!(readme.contains("cargo xtask ci                   # run every check CI runs"));
    assert!(
        run.trim_end().ends_with("\ncargo xtask ci"),
        ".ci/run ends with the README's test command"
    );
    // No second package list: apt-get and npm installs happen in install-tools only.
    for (file, text) in [
        (".ci/run", &run),
        (".gitlab-ci.yml", &read(".gitlab-ci.yml")),
    ] {
        for installer in [
            "apt-get install",
            "npm install",
            "rustup target add",
            "pip install",
        ] {
            assert!(
                !text.contains(installer),
                "{file} runs `{installer}` itself"
            );
        }
    }
    let yml = read(".gitlab-ci.yml");
    assert!(
        yml.contains(".ci/install-tools rust"),
        "every job adds the rust targets"
    );
    assert!(
        yml.contains(".ci/install-tools debian"),
        "the integration jobs install the tools"
    );
}
