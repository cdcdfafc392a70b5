//! `cargo xtask lock`: fetch and verify each declared suite's InRelease, resolve the declared
//! packages across all of them the way apt does (issue 14: the highest version in any suite
//! wins, so `bookworm-security` and `bookworm-updates` fixes are taken as soon as they exist),
//! and say what changed against the previous lock.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};

use super::cache::{Cache, Mode, Wanted};
use super::lock::{self, Declaration, IndexRef, Lock, Locked, Source, SuiteDecl, SuiteLock};
use super::net::Net;
use super::release::Release;
use super::resolve::Index;
use super::trust::Keyring;
use super::verify;

/// A new lock and the verified InRelease of each of its suites (to keep beside it).
pub struct Resolved {
    pub lock: Lock,
    pub inreleases: Vec<(String, Vec<u8>)>,
}

/// Fetch and verify a suite's InRelease; returns (raw InRelease bytes, parsed Release).
pub fn fetch_release(
    net: &Net,
    suite: &SuiteDecl,
    keyring: &Keyring,
) -> anyhow::Result<(Vec<u8>, Release)> {
    let url = format!("{}/dists/{}/InRelease", suite.mirror(), suite.name);
    let raw = net.get_bytes(&url, 16 << 20)?;
    let text = std::str::from_utf8(&raw).context("InRelease is not UTF-8")?;
    let (signed, good) = keyring
        .verify_inrelease(text, pgp::types::Timestamp::now())
        .with_context(|| format!("verifying {url}"))?;
    for g in &good {
        tracing::info!(suite = %suite.name, key = %g.primary, signer = %g.signer, uid = %g.user_id, "good signature on InRelease");
    }
    let release = Release::parse(&signed)?;
    if release.suite != suite.name {
        bail!(
            "{url} is signed for suite {:?}, not {:?}: refusing a release for another suite",
            release.suite,
            suite.name
        );
    }
    Ok((raw, release))
}

/// Resolve `decl` against the suites' current, verified releases.
pub fn resolve_lock(
    decl: &Declaration,
    old: Option<&Previous>,
    cache: &Cache,
    keyring: &Keyring,
) -> anyhow::Result<Resolved> {
    let net = Net::new();
    let mut suites = Vec::new();
    let mut inreleases = Vec::new();
    // arch -> the Packages text of each suite, in declaration order.
    let mut texts: BTreeMap<&str, Vec<(&str, String)>> = BTreeMap::new();
    for s in &decl.suites {
        let (raw, release) = fetch_release(&net, s, keyring)?;
        if let Some(old_date) = old.and_then(|o| o.dates.get(&s.name)) {
            if let (Ok(new_d), Ok(old_d)) = (
                lock::release_date_key(&release.date),
                lock::release_date_key(old_date),
            ) {
                if new_d < old_d {
                    bail!(
                        "the mirror's release of {} is dated {} but the lock was made from {}: \
                         refusing to go back in time (a stale mirror, or a replayed release)",
                        s.name,
                        release.date,
                        old_date
                    );
                }
            }
        }
        let mut index = BTreeMap::new();
        for arch in &decl.architectures {
            let path = format!("{}/binary-{arch}/Packages.xz", decl.component);
            let (size, sha256) = release.index(&path)?;
            let locked = SuiteLock {
                name: s.name.clone(),
                mirror: s.mirror().to_owned(),
                date: release.date.clone(),
                inrelease_sha256: String::new(),
                acquire_by_hash: release.acquire_by_hash,
                index: [(
                    arch.clone(),
                    IndexRef {
                        path: path.clone(),
                        size,
                        sha256: sha256.clone(),
                    },
                )]
                .into(),
            };
            let w = Wanted {
                what: format!("{path} of {}", s.name),
                mirrors: vec![s.mirror().to_owned()],
                url_path: locked
                    .index_url_path(&decl.component, arch)
                    .expect("the index was just recorded"),
                size,
                sha256: sha256.clone(),
            };
            cache.ensure(&net, std::slice::from_ref(&w), Mode::Online)?;
            let text = super::packages_text(&cache.load(&w)?)?;
            texts
                .entry(arch.as_str())
                .or_default()
                .push((s.name.as_str(), text));
            index.insert(arch.clone(), IndexRef { path, size, sha256 });
        }
        suites.push(SuiteLock {
            name: s.name.clone(),
            mirror: s.mirror().to_owned(),
            date: release.date.clone(),
            inrelease_sha256: crate::image::hash::sha256(&raw)
                .trim_start_matches("sha256:")
                .to_owned(),
            acquire_by_hash: release.acquire_by_hash,
            index,
        });
        inreleases.push((s.name.clone(), raw));
    }
    let mut packages = Vec::new();
    for (arch, per_suite) in &texts {
        let refs: Vec<(&str, &str)> = per_suite.iter().map(|(s, t)| (*s, t.as_str())).collect();
        let idx = Index::parse_suites(&refs)?;
        let closure = idx
            .resolve(&decl.packages)
            .with_context(|| format!("resolving {} for {arch}", decl.packages.join(", ")))?;
        tracing::info!(arch, packages = closure.len(), "resolved");
        for p in closure {
            packages.push(Locked {
                arch: (*arch).to_owned(),
                name: p.name.clone(),
                version: p.version.to_string(),
                suite: p.suite.clone(),
                filename: p.filename.clone(),
                size: p.size,
                sha256: p.sha256.clone(),
            });
        }
    }
    packages.sort();
    let mut declared = decl.packages.clone();
    declared.sort();
    let mut arches = decl.architectures.clone();
    arches.sort();
    let date = suites
        .iter()
        .max_by_key(|s| lock::release_date_key(&s.date).ok())
        .map(|s| s.date.clone())
        .expect("at least one suite (validated)");
    let lock = Lock {
        version: lock::LOCK_VERSION,
        source: Source {
            component: decl.component.clone(),
            date,
            packages: declared,
            architectures: arches,
            suites,
        },
        packages,
    };
    lock.validate()?;
    Ok(Resolved { lock, inreleases })
}

/// Write the InRelease files into `lock_dir` (removing those of suites no longer locked),
/// then the lock: each file atomically; the lock last, so an interrupted run leaves a lock
/// that no longer matches its InRelease files and is refused until `lock` runs again.
/// Returns whether any byte changed.
pub fn write(lock_path: &Path, lock_dir: &Path, r: &Resolved) -> anyhow::Result<bool> {
    let mut changed = false;
    for (suite, raw) in &r.inreleases {
        let path = verify::inrelease_path(lock_dir, suite);
        if std::fs::read(&path).ok().as_deref() != Some(&raw[..]) {
            crate::atomic::write(&path, raw)?;
            changed = true;
        }
    }
    let text = r.lock.render()?;
    if std::fs::read_to_string(lock_path).ok().as_deref() != Some(&text[..]) {
        crate::atomic::write(lock_path, text.as_bytes())?;
        changed = true;
    }
    for e in
        std::fs::read_dir(lock_dir).with_context(|| format!("reading {}", lock_dir.display()))?
    {
        let path = e?.path();
        let stale = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".InRelease"))
            .is_some_and(|s| !r.inreleases.iter().any(|(name, _)| name == s));
        if stale {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the stale {}", path.display()))?;
            changed = true;
        }
    }
    Ok(changed)
}

/// The previous lock, read leniently (any format version, even one `Lock::load` refuses):
/// only what the change report and the no-going-back check need.
#[derive(Debug, Default)]
pub struct Previous {
    /// suite -> its release date.
    pub dates: BTreeMap<String, String>,
    /// (arch, name) -> (version, suite).
    pub packages: BTreeMap<(String, String), (String, String)>,
}

impl Previous {
    pub fn parse(text: &str) -> Option<Previous> {
        let t: toml::Table = toml::from_str(text).ok()?;
        let source = t.get("source")?.as_table()?;
        let s = |v: Option<&toml::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
        let mut prev = Previous::default();
        // Format 1 had one suite (`suite = "bookworm"`, `date = ...`); 2 has `[[source.suite]]`.
        let single = s(source.get("suite"));
        match source.get("suite").and_then(|v| v.as_array()) {
            Some(suites) => {
                for x in suites {
                    if let (Some(n), Some(d)) = (s(x.get("name")), s(x.get("date"))) {
                        prev.dates.insert(n, d);
                    }
                }
            }
            None => {
                if let (Some(n), Some(d)) = (single.clone(), s(source.get("date"))) {
                    prev.dates.insert(n, d);
                }
            }
        }
        for p in t.get("package")?.as_array()? {
            let (Some(arch), Some(name), Some(version)) =
                (s(p.get("arch")), s(p.get("name")), s(p.get("version")))
            else {
                continue;
            };
            let suite = s(p.get("suite"))
                .or_else(|| single.clone())
                .unwrap_or_default();
            prev.packages.insert((arch, name), (version, suite));
        }
        Some(prev)
    }
}

/// What changed from `old` to `new`, one line per package (`libc6 2.36-9+deb12u10 →
/// 2.36-9+deb12u13 (bookworm-security)`), with `[arch]` when the arches differ.
pub fn changes(old: &Previous, new: &Lock) -> Vec<String> {
    let mut now: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    for p in &new.packages {
        now.insert(
            (p.arch.clone(), p.name.clone()),
            (p.version.clone(), p.suite.clone()),
        );
    }
    // name -> change -> arches
    let mut by_name: BTreeMap<&str, BTreeMap<String, Vec<&str>>> = BTreeMap::new();
    let keys: std::collections::BTreeSet<&(String, String)> =
        old.packages.keys().chain(now.keys()).collect();
    for key in keys {
        let (arch, name) = key;
        let line = match (old.packages.get(key), now.get(key)) {
            (Some((ov, _)), Some((nv, ns))) if ov != nv => format!("{name} {ov} → {nv} ({ns})"),
            (Some((_, os)), Some((nv, ns))) if os != ns => format!("{name} {nv} ({os} → {ns})"),
            (None, Some((nv, ns))) => format!("+ {name} {nv} ({ns})"),
            (Some((ov, _)), None) => format!("- {name} {ov}"),
            _ => continue,
        };
        by_name
            .entry(name)
            .or_default()
            .entry(line)
            .or_default()
            .push(arch);
    }
    let all_arches = new.source.architectures.len();
    let mut out = Vec::new();
    for lines in by_name.values() {
        for (line, arches) in lines {
            if lines.len() == 1 && arches.len() == all_arches {
                out.push(line.clone());
            } else {
                out.push(format!("{line} [{}]", arches.join(", ")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"version = 1
[source]
suite = "bookworm"
mirror = "http://deb.debian.org/debian"
date = "Sat, 11 Jul 2026 10:16:37 UTC"

[[package]]
arch = "amd64"
name = "libc6"
version = "2.36-9+deb12u10"

[[package]]
arch = "arm64"
name = "libc6"
version = "2.36-9+deb12u10"

[[package]]
arch = "amd64"
name = "mawk"
version = "1.3.4"

[[package]]
arch = "arm64"
name = "mawk"
version = "1.3.4"

[[package]]
arch = "amd64"
name = "gone"
version = "1"
"#;

    fn new_lock() -> Lock {
        let p = |arch: &str, name: &str, version: &str, suite: &str| Locked {
            arch: arch.into(),
            name: name.into(),
            version: version.into(),
            suite: suite.into(),
            filename: format!("pool/main/x/{name}.deb"),
            size: 1,
            sha256: "ab".repeat(32),
        };
        Lock {
            version: lock::LOCK_VERSION,
            source: Source {
                component: "main".into(),
                date: "Mon, 30 Nov 2026 00:22:33 UTC".into(),
                packages: vec!["bash".into()],
                architectures: vec!["amd64".into(), "arm64".into()],
                suites: vec![],
            },
            packages: vec![
                p("amd64", "libc6", "2.36-9+deb12u13", "bookworm-security"),
                p("arm64", "libc6", "2.36-9+deb12u13", "bookworm-security"),
                p("amd64", "mawk", "1.3.4", "bookworm"),
                p("arm64", "mawk", "1.3.4", "bookworm-updates"),
                p("arm64", "new", "2", "bookworm"),
            ],
        }
    }

    #[test]
    fn reports_what_changed_against_a_format_1_lock() {
        let old = Previous::parse(V1).unwrap();
        assert_eq!(old.dates["bookworm"], "Sat, 11 Jul 2026 10:16:37 UTC");
        assert_eq!(
            changes(&old, &new_lock()),
            [
                "- gone 1 [amd64]",
                "libc6 2.36-9+deb12u10 → 2.36-9+deb12u13 (bookworm-security)",
                "mawk 1.3.4 (bookworm → bookworm-updates) [arm64]",
                "+ new 2 (bookworm) [arm64]",
            ]
        );
        // Against itself: nothing.
        let text = new_lock().render().unwrap();
        let same = Previous::parse(&text).unwrap();
        assert!(changes(&same, &new_lock()).is_empty());
        assert!(Previous::parse("not toml [").is_none());
    }
}
