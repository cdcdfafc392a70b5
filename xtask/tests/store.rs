//! The repository as Home Assistant's add-on store loads it (`cargo xtask lint`'s store check,
//! xtask/src/addon/store.rs): the checkout passes, and copies of it broken the ways a user's
//! store would break (built in temp dirs at test time, so no stray config.yaml is ever
//! committed) fail with the file named. Where PyYAML and voluptuous are installed, the verdict on
//! repository files is compared with theirs.
mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::workspace;

fn lint_store(dir: &Path) -> (bool, String) {
    let out: Output = Command::new(support::xtask_bin())
        .args(["lint", "--store"])
        .arg(dir)
        .current_dir(workspace())
        .env("XTASK_LOG", "warn")
        .env_remove("FLUXION_REQUIRE_TOOLS")
        .output()
        .expect("running the xtask binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A copy of what Supervisor reads from the checkout: repository.yaml and addon/'s config and
/// profile.
fn store_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["repository.yaml", "addon/config.yaml", "addon/apparmor.txt"] {
        let to = dir.path().join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(workspace().join(f), to).unwrap();
    }
    dir
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn the_checkout_is_a_valid_store() {
    let (ok, out) = lint_store(&workspace());
    assert!(ok, "{out}");
    let addon = support::addon();
    let image = addon.image.clone().unwrap();
    for want in [
        "store: repository \"FluxION\", url https://gitlab.com/fluxion/fluxion-ha".to_owned(),
        // sha1("https://gitlab.com/fluxion/fluxion-ha")[:8], as Supervisor names it.
        "repository id 2cd16dbf, add-on 2cd16dbf_fluxion, container addon_2cd16dbf_fluxion"
            .to_owned(),
        format!(
            "Supervisor pulls {image}:{} for linux/arm64/v8, linux/amd64",
            addon.version
        ),
        format!("`cargo xtask push {image}` publishes it"),
        "store: ok".to_owned(),
    ] {
        assert!(out.contains(&want), "no {want:?} in:\n{out}");
    }
    // DOCS.md tells users the URL that repository.yaml names and the container it gives.
    let docs = std::fs::read_to_string(workspace().join("addon/DOCS.md")).unwrap();
    let repo = std::fs::read_to_string(workspace().join("repository.yaml")).unwrap();
    let url = repo
        .lines()
        .find_map(|l| l.strip_prefix("url: "))
        .unwrap()
        .trim();
    let id = xtask::addon::store::repository_id(url);
    for want in [
        format!("add `{url}`"),
        format!("docker exec -it addon_{id}_{} bash", addon.slug),
    ] {
        assert!(docs.contains(&want), "DOCS.md lacks {want:?}");
    }
    // The plain `lint` runs the store check too.
    let out = support::run(
        Command::new(support::xtask_bin())
            .arg("lint")
            .current_dir(workspace())
            .env_remove("FLUXION_REQUIRE_TOOLS"),
    );
    assert!(out.contains("store: ok"), "{out}");
}

#[test]
fn a_copy_passes_and_each_break_fails() {
    let dir = store_copy();
    let (ok, out) = lint_store(dir.path());
    assert!(ok, "{out}");

    // Supervisor skips hidden folders and rootfs/, and finds only config.{json,yaml,yml}.
    write(dir.path(), ".github/config.yaml", "name: x\n");
    write(dir.path(), "addon/rootfs/config.json", "{}\n");
    write(dir.path(), "docs/config.toml", "x = 1\n");
    let (ok, out) = lint_store(dir.path());
    assert!(ok, "{out}");

    // No repository file: Supervisor refuses the URL.
    let d = store_copy();
    std::fs::remove_file(d.path().join("repository.yaml")).unwrap();
    let (ok, out) = lint_store(d.path());
    assert!(!ok, "{out}");
    assert!(
        out.contains("store: error: repository.yaml: Supervisor accepts a git repository only with repository.yaml"),
        "{out}"
    );

    // A second config.yaml anywhere else is a second add-on.
    let d = store_copy();
    write(
        d.path(),
        "xtask/tests/fixtures/config.yaml",
        "name: fixture\n",
    );
    write(d.path(), "docs/config.example.yml", "name: example\n");
    let (ok, out) = lint_store(d.path());
    assert!(!ok, "{out}");
    for p in [
        "xtask/tests/fixtures/config.yaml",
        "docs/config.example.yml",
    ] {
        assert!(
            out.contains(&format!(
                "store: error: {p}: Supervisor takes every config."
            )),
            "{p} not named in:\n{out}"
        );
    }

    // A repository file without a name.
    let d = store_copy();
    write(
        d.path(),
        "repository.yaml",
        "url: https://gitlab.com/fluxion/fluxion-ha\nmaintainer: m\n",
    );
    let (ok, out) = lint_store(d.path());
    assert!(!ok, "{out}");
    assert!(
        out.contains("store: error: repository.yaml: name: required key not provided"),
        "{out}"
    );

    // YAML 1.1 as PyYAML reads it: an unquoted `yes` is a bool, not the str the schema wants.
    let d = store_copy();
    write(d.path(), "repository.yaml", "name: yes\n");
    let (ok, out) = lint_store(d.path());
    assert!(!ok && out.contains("expected str, got bool"), "{out}");

    // Two repository files at the root are ambiguous; an add-on pulled from nowhere is refused.
    let d = store_copy();
    write(d.path(), "repository.json", "{\"name\": \"FluxION\"}\n");
    let cfg = std::fs::read_to_string(d.path().join("addon/config.yaml")).unwrap();
    let image = support::addon().image.unwrap();
    write(
        d.path(),
        "addon/config.yaml",
        &cfg.replace(&format!("image: {image}\n"), ""),
    );
    let (ok, out) = lint_store(d.path());
    assert!(!ok, "{out}");
    assert!(out.contains("repository.yaml and repository.json"), "{out}");
    assert!(
        out.contains("addon/config.yaml: image: is missing"),
        "{out}"
    );

    // A profile file with two profiles is refused by Supervisor's get_profile_name.
    let d = store_copy();
    let profile = std::fs::read_to_string(d.path().join("addon/apparmor.txt")).unwrap();
    write(
        d.path(),
        "addon/apparmor.txt",
        &format!("{profile}\nprofile other {{\n}}\n"),
    );
    let (ok, out) = lint_store(d.path());
    assert!(!ok && out.contains("addon/apparmor.txt"), "{out}");
}

#[test]
fn in_a_git_checkout_only_what_a_clone_holds_counts() {
    if !support::have("git") {
        return;
    }
    let dir = store_copy();
    let d = dir.path();
    let git = |args: &[&str]| {
        support::run(Command::new("git").arg("-C").arg(d).args(args));
    };
    git(&["init", "-q"]);
    write(d, ".gitignore", "/target\n/repository.yml\n");
    // Build output is not in a clone: an ignored config.json is no add-on.
    write(d, "target/debug/build/x/out/config.json", "{}\n");
    let (ok, out) = lint_store(d);
    assert!(ok, "{out}");
    // An untracked, not ignored file would be committed: it counts.
    write(d, "tools/config.yaml", "name: x\n");
    let (ok, out) = lint_store(d);
    assert!(!ok && out.contains("tools/config.yaml"), "{out}");
    std::fs::remove_file(d.join("tools/config.yaml")).unwrap();
    // A repository file that git ignores is missing from every clone.
    std::fs::rename(d.join("repository.yaml"), d.join("repository.yml")).unwrap();
    let (ok, out) = lint_store(d);
    assert!(
        !ok && out.contains("repository.yml exists but git ignores it"),
        "{out}"
    );
}

/// Supervisor's own reading of a repository file (supervisor/utils/yaml.py and
/// store/validate.py), run by the real PyYAML and voluptuous.
const SUPERVISOR_PY: &str = r#"
import sys, yaml, voluptuous as vol
try:
    from yaml import CSafeLoader as SafeLoader
except ImportError:
    from yaml import SafeLoader
SCHEMA = vol.Schema({vol.Required("name"): str, vol.Optional("url"): vol.Url(),
                     vol.Optional("maintainer"): str}, extra=vol.REMOVE_EXTRA)
for path in sys.argv[1:]:
    try:
        with open(path, encoding="utf-8") as f:
            SCHEMA(yaml.load(f, Loader=SafeLoader) or {})
        print("valid")
    except (yaml.YAMLError, vol.Invalid, AttributeError):
        print("invalid")
"#;

#[test]
fn repository_files_are_judged_as_supervisor_judges_them() {
    // Debian's python3-yaml and python3-voluptuous (.ci/install-tools) live in the system
    // interpreter; a `python3` found first on PATH (pyenv, a venv) may lack them. A missing one
    // skips with the reason printed, and fails under FLUXION_REQUIRE_TOOLS=1.
    let python = ["python3", "/usr/bin/python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import yaml, voluptuous"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !support::require(
        "python3 with PyYAML and voluptuous (Debian python3-yaml, python3-voluptuous), for the \
         cross-check with Supervisor's own libraries",
        python.is_some(),
    ) {
        return;
    }
    let python = python.unwrap();
    let docs = [
        "name: FluxION\nurl: https://gitlab.com/fluxion/fluxion-ha\nmaintainer: M <m@e.org>\n",
        "name: yes\n",
        "name: \"yes\"\n",
        "name: 1e5\n",
        "name: 1_000\n",
        "name: 1:30\n",
        "name: 0o17\n",
        "name: 2024-01-01\n",
        "name: ! 42\n",
        "name: ! '42'\n",
        "name: !!str 42\n",
        "name: =\n",
        "name: ~\n",
        "name: |\n  multi\n",
        "name: [a]\n",
        "url: https://e.org\n",
        "",
        "- name: x\n",
        "name: x\nurl: e.org/x\n",
        "name: x\nurl: https://\n",
        "name: x\nurl: http://[::1/\n",
        "name: x\nurl: git+ssh://h/x\n",
        "name: x\nurl: 5\n",
        "name: x\nmaintainer: 2024-01-01\n",
        "name: x\nmaintainer: null\n",
        "name: x\nextra: [1, 2]\n",
        "base: &b {name: x}\n<<: *b\n",
        "name: a\nname: 3\n",
        "name: x\n---\nname: y\n",
        "name: [unclosed\n",
        "? [a]\n: x\nname: y\n",
        "name: ! abc\n",
        "name: !!binary aGk=\n",
        "name: !custom x\n",
        "name: <<\n",
        "name: on\n",
        "name: 'on'\nurl: \"  https://h/x\"\n",
        "name: x\nurl: https://h/x\nurl: nope\n",
        "{\"name\": \"json in yaml\"}\n",
        "name: .5\n",
        "name: -.inf\n",
        "name: 0b101\n",
        "name: 12e3\n",
        "name: 2024-1-1 1:00:00\n",
        "%YAML 1.1\n---\nname: x\n",
    ];
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = docs
        .iter()
        .enumerate()
        .map(|(i, doc)| {
            let p = dir.path().join(format!("{i}.yaml"));
            std::fs::write(&p, doc).unwrap();
            p
        })
        .collect();
    let theirs = support::run(
        Command::new(python)
            .args(["-c", SUPERVISOR_PY])
            .args(&paths),
    );
    let theirs: Vec<&str> = theirs.lines().collect();
    assert_eq!(theirs.len(), docs.len());
    // The library's check (what `lint --store` prints), on one copy rewritten per document.
    let sh = xshell::Shell::new().unwrap();
    let d = store_copy();
    let version = support::addon().version;
    for (i, doc) in docs.iter().enumerate() {
        write(d.path(), "repository.yaml", doc);
        let report = xtask::addon::store::check(&sh, d.path(), &version).unwrap();
        let ours = if report.errors() == 0 {
            "valid"
        } else {
            "invalid"
        };
        assert_eq!(
            ours, theirs[i],
            "{doc:?}: Supervisor says {}, we say {ours}: {:?}",
            theirs[i], report.findings
        );
    }
}
