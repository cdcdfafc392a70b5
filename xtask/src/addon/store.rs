//! The add-on store's view of this repository: what Supervisor does when a user adds its git URL
//! under Add-on Store -> Repositories, checked on the working tree as a clone would hold it.
//!
//! Supervisor (home-assistant/supervisor, `supervisor/store/`):
//! - `repository.py`, `RepositoryGit.validate()`: the clone's root must hold `repository.yaml`,
//!   `.yml` or `.json` (tried in that order, `FILE_SUFFIX_CONFIGURATION`), read by
//!   `read_json_or_yaml_file` and valid under `SCHEMA_REPOSITORY_CONFIG` (`validate.py`):
//!   `name` required (str), `url` optional (`vol.Url()`), `maintainer` optional (str), other keys
//!   dropped. Otherwise the URL is refused ("not a valid add-on repository").
//! - `data.py`, `_read_git_repository()`: reads the first `**/repository.*` the glob yields
//!   (the root comes first), `_find_addons()`: every `**/config.*` whose suffix is `.json`,
//!   `.yaml` or `.yml`, skipping paths with a part that starts with `.` or is `rootfs`; each
//!   one is an add-on (`<repository id>_<slug>`), so the tree must hold exactly
//!   `addon/config.yaml`.
//! - `utils.py`, `get_hash_from_repository()`: the repository id is the first 8 hex digits of
//!   the sha1 of the URL as added, lowercased; the container is `addon_<id>_<slug>`.
//! - `utils/apparmor.py`, `get_profile_name()`: `apparmor.txt` must hold exactly one line
//!   `profile <name> ...`, which Supervisor renames to the add-on's slug before loading it.
//!
//! The add-on manifest's own rules (`SCHEMA_ADDON_CONFIG`) are `lint.rs`'s; this module checks
//! that the manifest Supervisor finds is the one the pipeline builds from and that it points at
//! what `cargo xtask push` publishes.
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};
use xshell::{cmd, Shell};

use super::lint::{Finding, Severity};
use super::yaml11::{self, PyValue};
use super::AddonConfig;
use crate::publish::registry::Reference;

/// `FILE_SUFFIX_CONFIGURATION` (supervisor/const.py), in its order.
pub const SUFFIXES: [&str; 3] = [".yaml", ".yml", ".json"];
/// The one add-on manifest, relative to the repository root.
pub const ADDON_CONFIG: &str = "addon/config.yaml";

/// What the check found: the findings (any error fails) and, when they allow, what Supervisor
/// would show and pull.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// One line each: the repository, the add-on's store id and container, the images.
    pub summary: Vec<String>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    fn error(&mut self, key: impl Into<String>, rule: &'static str, message: impl Into<String>) {
        self.push(Severity::Error, key, rule, message);
    }

    fn warning(&mut self, key: impl Into<String>, rule: &'static str, message: impl Into<String>) {
        self.push(Severity::Warning, key, rule, message);
    }

    fn push(
        &mut self,
        severity: Severity,
        key: impl Into<String>,
        rule: &'static str,
        message: impl Into<String>,
    ) {
        self.findings.push(Finding {
            severity,
            key: key.into(),
            rule,
            message: message.into(),
        });
    }
}

/// Check the repository at `root` as Supervisor's store loads it; `fluxion_version` is the
/// crate version `push` tags and labels. Fails only when the tree cannot be listed.
pub fn check(sh: &Shell, root: &Path, fluxion_version: &str) -> anyhow::Result<Report> {
    let files = tree(sh, root)?;
    let mut report = Report::default();
    let repo = repository_file(root, &files, &mut report);
    let addons = find_addons(&files);
    for path in &addons {
        if path != ADDON_CONFIG {
            report.error(
                path.as_str(),
                "store-addons",
                format!(
                    "Supervisor takes every config.{{json,yaml,yml}} outside hidden and rootfs \
                     folders as an add-on, so this would be a second (broken) add-on in users' \
                     stores; keep exactly {ADDON_CONFIG}: rename it (e.g. config.example.yaml is \
                     found too: use example-config.yaml) or move it under a hidden folder"
                ),
            );
        }
    }
    if !addons.iter().any(|p| p == ADDON_CONFIG) {
        report.error(
            ADDON_CONFIG,
            "store-addons",
            "is missing (or ignored by git), so Supervisor finds no FluxION add-on in the \
             repository; restore it",
        );
        return Ok(report);
    }
    addon_vs_push(root, &files, repo.as_ref(), fluxion_version, &mut report);
    Ok(report)
}

/// The files a clone of the working tree would hold, relative and `/`-separated: what git
/// would commit (tracked and untracked, not ignored) in a git checkout, else every file.
/// Symlinks are listed, not followed (git stores them as links).
pub fn tree(sh: &Shell, root: &Path) -> anyhow::Result<Vec<String>> {
    use anyhow::Context;
    if root.join(".git").exists() {
        let _dir = sh.push_dir(root);
        let out = cmd!(sh, "git ls-files -z --cached --others --exclude-standard")
            .quiet()
            .read()
            .with_context(|| {
                format!(
                    "listing the files of {} with git (is git installed?)",
                    root.display()
                )
            })?;
        let mut files: Vec<String> = out
            .split('\0')
            .filter(|f| !f.is_empty() && root.join(f).symlink_metadata().is_ok())
            .map(str::to_owned)
            .collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    let mut files = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        let dir = root.join(&rel);
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let path = rel.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                dirs.push(path);
            } else {
                files.push(path.to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Python's `PurePath.suffix`: from the last dot, unless the name starts or ends with it.
fn py_suffix(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) if i > 0 && i < name.len() - 1 => &name[i..],
        _ => "",
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `StoreData._find_addons`: `glob("**/config.*")`, suffix in `SUFFIXES`, no part starting
/// with `.` and none equal to `rootfs`.
pub fn find_addons(files: &[String]) -> Vec<String> {
    files
        .iter()
        .filter(|p| {
            let name = file_name(p);
            name.starts_with("config.")
                && SUFFIXES.contains(&py_suffix(name))
                && !p
                    .split('/')
                    .any(|part| part.starts_with('.') || part == "rootfs")
        })
        .cloned()
        .collect()
}

/// `RepositoryGit.validate()` and `SCHEMA_REPOSITORY_CONFIG`; returns the parsed file when it
/// validates.
fn repository_file(root: &Path, files: &[String], report: &mut Report) -> Option<PyValue> {
    let at_root: Vec<String> = SUFFIXES
        .iter()
        .map(|s| format!("repository{s}"))
        .filter(|name| files.contains(name))
        .collect();
    // `_read_git_repository` globs `**/repository.*` (hidden folders included): the root
    // comes first, so a deeper one is read only when the root has none.
    for p in files.iter().filter(|p| {
        p.contains('/')
            && file_name(p).starts_with("repository.")
            && SUFFIXES.contains(&py_suffix(file_name(p)))
    }) {
        report.warning(
            p.as_str(),
            "store-repository",
            "Supervisor reads the repository file at the root only; this one is ignored",
        );
    }
    let Some(name) = at_root.first() else {
        let on_disk = SUFFIXES
            .iter()
            .map(|s| format!("repository{s}"))
            .find(|n| root.join(n).exists());
        let why = match on_disk {
            Some(n) => format!("{n} exists but git ignores it, so a clone lacks it"),
            None => "there is none".to_owned(),
        };
        report.error(
            "repository.yaml",
            "store-repository",
            format!(
                "Supervisor accepts a git repository only with repository.yaml (or .yml/.json) at \
                 its root and refuses the URL otherwise (\"not a valid add-on repository\"); {why}: \
                 add repository.yaml with at least `name:`"
            ),
        );
        return None;
    };
    if at_root.len() > 1 {
        report.error(
            name.as_str(),
            "store-repository",
            format!(
                "the root holds {}: Supervisor validates the first of .yaml/.yml/.json but loads \
                 whichever its glob meets first; keep one",
                at_root.join(" and ")
            ),
        );
    }
    let path = root.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            report.error(
                name.as_str(),
                "store-repository",
                format!("cannot be read: {e}"),
            );
            return None;
        }
    };
    let parsed = if py_suffix(name) == ".json" {
        serde_json::from_str::<serde_json::Value>(&text)
            .map(|v| PyValue::from_json(&v))
            .map_err(|e| format!("not valid JSON: {e}"))
    } else {
        // supervisor/utils/yaml.py: `load(f, Loader=SafeLoader) or {}`.
        yaml11::load(&text).map(|v| {
            if falsy(&v) {
                PyValue::Dict(Vec::new())
            } else {
                v
            }
        })
    };
    let doc = match parsed {
        Ok(doc) => doc,
        Err(e) => {
            report.error(name.as_str(), "store-repository", e);
            return None;
        }
    };
    let before = report.errors();
    validate_repository(name, &doc, report);
    (report.errors() == before).then_some(doc)
}

/// Python truthiness of what `yaml.load` returned (`or {}` replaces a falsy document). A zero
/// number counts as truthy here: the verdict is the same (no `name`), only the message differs.
fn falsy(v: &PyValue) -> bool {
    match v {
        PyValue::Null | PyValue::Bool(false) => true,
        PyValue::Str(s) => s.is_empty(),
        PyValue::List(l) => l.is_empty(),
        PyValue::Dict(d) => d.is_empty(),
        _ => false,
    }
}

/// `SCHEMA_REPOSITORY_CONFIG` as voluptuous applies it: every problem, with its messages.
pub fn validate_repository(file: &str, doc: &PyValue, report: &mut Report) {
    let PyValue::Dict(items) = doc else {
        report.error(
            file,
            "store-repository",
            format!(
                "expected a dictionary, got {} (write `name: ...` at the top level)",
                doc.type_name()
            ),
        );
        return;
    };
    let key = |k: &str| format!("{file}: {k}");
    match doc.get("name") {
        None => report.error(
            key("name"),
            "store-repository",
            "required key not provided: Supervisor refuses the repository without a name; add `name: FluxION`",
        ),
        Some(v) if v.as_str().is_none() => report.error(
            key("name"),
            "store-repository",
            format!("expected str, got {} (YAML 1.1 reads it so; quote it)", v.type_name()),
        ),
        Some(_) => {}
    }
    match doc.get("url") {
        None => {}
        Some(PyValue::Str(u)) if url_ok(u) => {}
        Some(v) => report.error(
            key("url"),
            "store-repository",
            format!(
                "expected a URL (vol.Url: a scheme and a host, e.g. https://gitlab.com/...), got {}",
                match v {
                    PyValue::Str(s) => format!("{s:?}"),
                    v => v.type_name().to_owned(),
                }
            ),
        ),
    }
    if let Some(v) = doc.get("maintainer") {
        if v.as_str().is_none() {
            report.error(
                key("maintainer"),
                "store-repository",
                format!("expected str, got {} (quote it)", v.type_name()),
            );
        }
    }
    for (k, _) in items {
        let known = matches!(k.as_str(), Some("name" | "url" | "maintainer"));
        if !known {
            let shown = k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned);
            report.warning(
                key(&shown),
                "store-repository",
                "is not read by Supervisor (its schema drops unknown keys)",
            );
        }
    }
}

/// voluptuous `Url()`: `urllib.parse.urlparse(v)` must give a scheme and a netloc. Follows
/// CPython's `urlsplit`: leading C0 controls and spaces stripped, tab/CR/LF removed, a scheme
/// is `[A-Za-z][A-Za-z0-9+.-]*` before the first `:`, the netloc follows `//` up to `/?#`, and
/// unbalanced `[`/`]` in it raise (an invalid URL).
pub fn url_ok(url: &str) -> bool {
    let url: String = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !"\t\r\n".contains(*c))
        .collect();
    let mut rest = url.as_str();
    let mut scheme = "";
    if let Some(i) = rest.find(':') {
        let s = &rest[..i];
        if i > 0
            && s.as_bytes()[0].is_ascii_alphabetic()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            scheme = s;
            rest = &rest[i + 1..];
        }
    }
    let Some(after) = rest.strip_prefix("//") else {
        return false;
    };
    let netloc = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
    let balanced = netloc.contains('[') == netloc.contains(']');
    !scheme.is_empty() && !netloc.is_empty() && balanced
}

/// `get_hash_from_repository`: Supervisor's id for a repository URL.
pub fn repository_id(url: &str) -> String {
    let digest = Sha1::digest(url.to_lowercase().as_bytes());
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The add-on Supervisor finds against what the pipeline builds and `push` publishes.
fn addon_vs_push(
    root: &Path,
    files: &[String],
    repo: Option<&PyValue>,
    fluxion_version: &str,
    report: &mut Report,
) {
    let addon = match AddonConfig::load(&root.join(ADDON_CONFIG)) {
        Ok(a) => a,
        Err(e) => {
            report.error(ADDON_CONFIG, "store-addon", format!("{e:#}"));
            return;
        }
    };
    if let Err(e) = addon.check_version(fluxion_version) {
        report.error(
            format!("{ADDON_CONFIG}: version"),
            "store-addon",
            e.to_string(),
        );
    }
    if addon.arch.is_empty() {
        report.error(
            format!("{ADDON_CONFIG}: arch"),
            "store-addon",
            "lists no architecture, so Supervisor offers the add-on on no machine",
        );
    }
    let push_target = match addon.image.as_deref() {
        None => {
            report.error(
                format!("{ADDON_CONFIG}: image"),
                "store-addon",
                "is missing: Supervisor would then build the add-on on the device from \
                 addon/Dockerfile, which needs addon/bin/<arch>/fluxion-main that a clone does \
                 not have; set it to where `cargo xtask push` publishes",
            );
            None
        }
        Some(image) => image_vs_push(image, report),
    };
    let profiles = profile_lines(root, files);
    if let Some(n) = profiles.filter(|n| *n != 1) {
        report.error(
            "addon/apparmor.txt",
            "store-apparmor",
            format!(
                "has {n} lines `profile <name> ...`; Supervisor's get_profile_name needs exactly \
                 one (it renames it to the add-on's slug) and refuses to install otherwise"
            ),
        );
    }
    if report.errors() > 0 {
        return;
    }
    if let Some(repo) = repo {
        let name = repo
            .get("name")
            .and_then(PyValue::as_str)
            .unwrap_or_default();
        let url = repo.get("url").and_then(PyValue::as_str);
        let maintainer = repo.get("maintainer").and_then(PyValue::as_str);
        report.summary.push(format!(
            "repository {name:?}{}{}",
            url.map(|u| format!(", url {u}")).unwrap_or_default(),
            maintainer
                .map(|m| format!(", maintainer {m:?}"))
                .unwrap_or_default(),
        ));
        if let Some(url) = url {
            let id = repository_id(url);
            report.summary.push(format!(
                "added as {url}: repository id {id}, add-on {id}_{slug}, container addon_{id}_{slug}",
                slug = addon.slug
            ));
        }
    }
    let platforms: Vec<String> = addon
        .arch
        .iter()
        .filter_map(|a| crate::arch::Arch::from_hass(a))
        .map(|a| a.platform())
        .collect();
    if let (Some(image), Some(target)) = (addon.image.as_deref(), push_target) {
        report.summary.push(format!(
            "1 add-on: {ADDON_CONFIG} (slug {}, version {}, arch {}): Supervisor pulls {image}:{} \
             for {}; `cargo xtask push {target}` publishes it",
            addon.slug,
            addon.version,
            addon.arch.join(", "),
            addon.version,
            platforms.join(", "),
        ));
    }
}

/// The `cargo xtask push` arguments that publish where `image` points, or a finding.
fn image_vs_push(image: &str, report: &mut Report) -> Option<String> {
    let key = format!("{ADDON_CONFIG}: image");
    if image.contains("{machine}") {
        report.error(
            key,
            "store-addon",
            "uses {machine}, but `cargo xtask push` publishes per architecture only",
        );
        return None;
    }
    // `push --per-arch-repos` publishes <dir>/<arch>-<name> (registry::Reference::per_arch).
    let (base, per_arch) = match image.rsplit_once('/') {
        Some((dir, name)) if image.contains("{arch}") => match name.strip_prefix("{arch}-") {
            Some(n) if !dir.contains("{arch}") && !n.contains("{arch}") => {
                (format!("{dir}/{n}"), true)
            }
            _ => {
                report.error(
                    key,
                    "store-addon",
                    format!(
                        "{image:?}: with {{arch}}, `cargo xtask push --per-arch-repos` publishes \
                         only <registry>/<path>/{{arch}}-<name>"
                    ),
                );
                return None;
            }
        },
        _ => (image.to_owned(), false),
    };
    match Reference::parse(&base) {
        Ok(r) => Some(if per_arch {
            format!("{r} --per-arch-repos")
        } else {
            r.to_string()
        }),
        Err(e) => {
            report.error(
                key,
                "store-addon",
                format!("{image:?} is not a target `cargo xtask push` can publish to: {e:#}"),
            );
            None
        }
    }
}

/// Lines of addon/apparmor.txt that Supervisor's `RE_PROFILE` (`^profile ([^ ]+).*$`) takes as
/// a profile name, or None without a profile file.
fn profile_lines(root: &Path, files: &[String]) -> Option<usize> {
    let path = "addon/apparmor.txt";
    if !files.iter().any(|f| f == path) {
        return None;
    }
    let text = std::fs::read_to_string(root.join(path)).unwrap_or_default();
    let names: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("profile "))
        .filter_map(|rest| rest.split(' ').next().filter(|n| !n.is_empty()))
        .collect();
    Some(names.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn addon_search_follows_supervisor() {
        let found = find_addons(&files(&[
            "addon/config.yaml",
            "addon/translations/en.yaml",
            ".github/config.yml",
            "a/.hidden/config.json",
            "x/rootfs/config.yaml",
            "docs/config.example.yaml",
            "docs/config.toml",
            "docs/config.",
            "docs/config.YAML",
            "config.json",
            "xtask/tests/fixtures/config.yml",
        ]));
        assert_eq!(
            found,
            [
                "addon/config.yaml",
                "docs/config.example.yaml",
                "config.json",
                "xtask/tests/fixtures/config.yml"
            ]
        );
    }

    #[test]
    fn urls_as_voluptuous_reads_them() {
        for ok in [
            "https://gitlab.com/fluxion/fluxion-ha",
            "  git+ssh://h/x",
            "http://[::1]:80/",
            "https://h?x",
        ] {
            assert!(url_ok(ok), "{ok}");
        }
        for bad in [
            "gitlab.com/fluxion",
            "https://",
            "https:///path",
            "localhost:8080",
            "",
            "1http://h",
            "http://[::1/",
        ] {
            assert!(!url_ok(bad), "{bad}");
        }
    }

    #[test]
    fn repository_id_is_supervisors() {
        // hashlib.sha1("https://github.com/hassio-addons/repository".lower().encode()).hexdigest()[:8]
        assert_eq!(
            repository_id("https://github.com/hassio-addons/repository"),
            "a0d7b954"
        );
        assert_eq!(
            repository_id("https://GitHub.com/hassio-addons/repository"),
            repository_id("https://github.com/hassio-addons/repository")
        );
    }

    fn findings(doc: &str) -> Vec<String> {
        let mut r = Report::default();
        validate_repository("repository.yaml", &yaml11::load(doc).unwrap(), &mut r);
        r.findings.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn repository_schema() {
        assert!(
            findings("name: FluxION\nurl: https://e.org/x\nmaintainer: Me <m@e.org>\n").is_empty()
        );
        let f = findings("url: https://e.org/x\n");
        assert!(f.len() == 1 && f[0].contains("name: required key"), "{f:?}");
        assert!(findings("name: yes\n")[0].contains("expected str, got bool"));
        assert!(findings("name: \"yes\"\n").is_empty());
        assert!(findings("name: x\nurl: e.org\n")[0].contains("expected a URL"));
        assert!(findings("name: x\nurl: 5\n")[0].contains("got int"));
        assert!(findings("name: x\nmaintainer: 2024-01-01\n")[0].contains("got datetime"));
        assert!(findings("- name: x\n")[0].contains("expected a dictionary"));
        let f = findings("name: x\nextra: 1\n");
        assert!(f.len() == 1 && f[0].starts_with("warning:"), "{f:?}");
    }

    #[test]
    fn push_targets_for_images() {
        let mut r = Report::default();
        assert_eq!(
            image_vs_push("ghcr.io/o/fluxion", &mut r).as_deref(),
            Some("ghcr.io/o/fluxion")
        );
        assert_eq!(
            image_vs_push("ghcr.io/o/{arch}-fluxion", &mut r).as_deref(),
            Some("ghcr.io/o/fluxion --per-arch-repos")
        );
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        for bad in [
            "ghcr.io/o/fluxion-{arch}",
            "ghcr.io/{machine}/x",
            "o/fluxion",
            "ghcr.io/O/x",
        ] {
            let mut r = Report::default();
            assert!(image_vs_push(bad, &mut r).is_none(), "{bad}");
            assert_eq!(r.errors(), 1, "{bad}");
        }
    }

    #[test]
    fn python_suffix() {
        assert_eq!(py_suffix("config.yaml"), ".yaml");
        assert_eq!(py_suffix("config.tar.json"), ".json");
        assert_eq!(py_suffix(".yaml"), "");
        assert_eq!(py_suffix("config."), "");
    }
}
