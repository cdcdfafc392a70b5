//! The add-on folder's other files: the AppArmor profile parses (apparmor_parser, Debian
//! `apparmor`) and grants what the image's programs need and nothing that writes or runs
//! elsewhere, the images have the sizes Home Assistant asks for, the changelog covers the
//! current version.
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;

fn addon() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../addon")
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn icon_and_logo() {
    // developers.home-assistant.io, "Presenting your add-on": icon 1:1, 128x128 recommended.
    assert_eq!(png_size(&addon().join("icon.png")), (128, 128));
    let (w, h) = png_size(&addon().join("logo.png"));
    assert!(w > h && w <= 500 && h <= 200, "logo.png is {w}x{h}");
}

#[test]
fn changelog_has_the_current_version() {
    let cfg = xtask::addon::AddonConfig::load(&addon().join("config.yaml")).unwrap();
    let log = std::fs::read_to_string(addon().join("CHANGELOG.md")).unwrap();
    assert!(
        log.contains(&format!("## [{}]", cfg.version)),
        "CHANGELOG.md has no ## [{}]",
        cfg.version
    );
    let docs = std::fs::read_to_string(addon().join("DOCS.md")).unwrap();
    assert!(docs.contains("## Configuration") && docs.contains("## Installation"));
}

#[test]
fn apparmor_profile_parses() {
    if !support::have("apparmor_parser") {
        return;
    }
    // -Q: do not load into the kernel; -K/-T: no cache. Parsing still needs the includes.
    let parse = |path: &Path| {
        Command::new("apparmor_parser")
            .args(["-Q", "-K", "-T"])
            .arg(path)
            .output()
            .unwrap()
    };
    let out = parse(&addon().join("apparmor.txt"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(addon().join("apparmor.txt")).unwrap();
    assert!(
        text.contains("profile fluxion "),
        "the profile is named after the slug"
    );
    // A profile with a broken rule is refused, so the check above can fail.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("apparmor.txt");
    std::fs::write(&bad, text.replace("/data/** rwk,", "/data/** rwz,")).unwrap();
    assert!(!parse(&bad).status.success());
}

/// The profile as the kernel would get it: `apparmor_parser -p` expands the includes
/// (tunables, abstractions/base), so the checks below see every rule, ours and the base's.
struct Profile {
    vars: BTreeMap<String, Vec<String>>,
    /// (deny, path glob, permissions) of every file rule.
    rules: Vec<(bool, String, String)>,
    /// The same rules' globs, variables expanded, as regexes.
    compiled: Vec<(bool, Vec<Regex>, String)>,
    /// Every other rule (network, signal, ptrace, unix, capability, mount ...), trimmed.
    other: Vec<String>,
}

impl Profile {
    fn load(path: &Path) -> Profile {
        let out = support::run(Command::new("apparmor_parser").arg("-p").arg(path));
        let (mut vars, mut rules, mut other) = (BTreeMap::new(), Vec::new(), Vec::new());
        let mut inside = false;
        for line in out.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !inside {
                if let Some((name, values)) =
                    line.strip_prefix("@{").and_then(|l| l.split_once('='))
                {
                    let name = name.trim().trim_end_matches('}').to_owned();
                    let values = values
                        .split_whitespace()
                        .map(|v| v.trim_matches('"').to_owned());
                    vars.insert(name, values.collect());
                }
                inside = line.starts_with("profile ");
                continue;
            }
            if line == "}" {
                break;
            }
            let rule = line.trim_end_matches(',');
            let mut words: Vec<&str> = rule.split_whitespace().collect();
            let deny = words.first() == Some(&"deny");
            words.retain(|w| !matches!(*w, "deny" | "owner" | "audit"));
            match words.as_slice() {
                [path, perms] if path.starts_with('/') || path.starts_with("@{") => {
                    rules.push((deny, path.to_string(), perms.to_string()))
                }
                _ => other.push(rule.to_owned()),
            }
        }
        let mut p = Profile {
            vars,
            rules,
            other,
            compiled: Vec::new(),
        };
        p.compiled = p
            .rules
            .iter()
            .map(|(deny, glob, perms)| {
                let res = p.expand(glob).iter().map(|g| glob_regex(g)).collect();
                (*deny, res, perms.clone())
            })
            .collect();
        p
    }

    /// Every spelling of `glob` with its variables replaced.
    fn expand(&self, glob: &str) -> Vec<String> {
        let Some(start) = glob.find("@{") else {
            return vec![glob.replace("//", "/")];
        };
        let end = start + glob[start..].find('}').unwrap();
        let values = &self.vars[&glob[start + 2..end]];
        values
            .iter()
            .flat_map(|v| self.expand(&format!("{}{v}{}", &glob[..start], &glob[end + 1..])))
            .collect()
    }

    /// The permissions the profile grants on `path`: allow rules less deny rules.
    fn perms(&self, path: &str) -> String {
        let mut allow = String::new();
        let mut deny = String::new();
        for (is_deny, globs, perms) in &self.compiled {
            if globs.iter().any(|g| g.is_match(path)) {
                if *is_deny {
                    deny.push_str(perms)
                } else {
                    allow.push_str(perms)
                }
            }
        }
        let mut out: Vec<char> = allow.chars().filter(|c| !deny.contains(*c)).collect();
        out.sort();
        out.dedup();
        out.into_iter().collect()
    }
}

/// An AppArmor path glob as a regex (apparmor.d(5), "Globbing"): `*` any characters but `/`,
/// `**` any characters, both matching at least one character right after a `/` (so `/d/*`
/// and `/d/**` do not match `/d/` itself), `?` one character but `/`, `{a,b}` alternatives,
/// `[...]` a class.
fn glob_regex(glob: &str) -> Regex {
    let mut re = String::from("^");
    let chars: Vec<char> = glob.chars().collect();
    let mut i = 0;
    let after_slash =
        |i: usize| chars[..i].iter().rev().find(|c| !matches!(c, '{' | ',')) == Some(&'/');
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                re.push_str(if after_slash(i) { "[^/].*" } else { ".*" });
                i += 1;
            }
            '*' => re.push_str(if after_slash(i) { "[^/]+" } else { "[^/]*" }),
            '?' => re.push_str("[^/]"),
            '{' => re.push_str("(?:"),
            '}' => re.push(')'),
            ',' => re.push('|'),
            '[' => {
                let end = i + chars[i..].iter().position(|c| *c == ']').unwrap();
                re.extend(&chars[i..=end]);
                i = end;
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Regex::new(&re).unwrap_or_else(|e| panic!("{glob}: {e}"))
}

/// A shared object or the dynamic loader (`libc.so.6`, `ld-linux-aarch64.so.1`, `x.so`).
fn is_library(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap();
    let lib_dir = ["/lib/", "/lib64/", "/usr/lib/", "/usr/libexec/"]
        .iter()
        .any(|d| path.starts_with(d));
    lib_dir && (name.ends_with(".so") || name.contains(".so."))
}

/// `{a,b}` groups (nested) spelled out: every alternative of `glob`.
fn alternatives(glob: &str) -> Vec<String> {
    let Some(open) = glob.find('{') else {
        return vec![glob.replace("//", "/")];
    };
    let (mut depth, mut close, mut cuts) = (0, 0, vec![open]);
    for (i, c) in glob.char_indices().skip_while(|(i, _)| *i < open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = i;
                    break;
                }
            }
            ',' if depth == 1 => cuts.push(i),
            _ => {}
        }
    }
    cuts.push(close);
    cuts.windows(2)
        .flat_map(|w| {
            let spelled = format!(
                "{}{}{}",
                &glob[..open],
                &glob[w[0] + 1..w[1]],
                &glob[close + 1..]
            );
            alternatives(&spelled)
        })
        .collect()
}

/// A path that a brace-free glob matches: `**` -> `x/y`, `*` and `?` -> `x`, a class -> its
/// first character.
fn sample(glob: &str) -> String {
    let mut out = String::new();
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str("x/y");
            }
            '*' | '?' => out.push('x'),
            '[' => {
                let class: String = chars.by_ref().take_while(|c| *c != ']').collect();
                out.push(class.chars().next().unwrap());
            }
            c => out.push(c),
        }
    }
    out
}

/// One image's merged file system (both layers, the app layer on top): path -> (tar entry
/// type, mode, link target).
fn image_tree(arch: &str) -> ImageTree {
    let row = support::built(arch);
    let manifest: serde_json::Value =
        serde_json::from_slice(&support::tar_member(&row.archive_path(), "manifest.json")).unwrap();
    let mut tree = BTreeMap::new();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let blob = support::tar_member(&row.archive_path(), layer.as_str().unwrap());
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let path = format!(
                "/{}",
                e.path().unwrap().to_str().unwrap().trim_end_matches('/')
            );
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            tree.insert(
                path,
                (e.header().entry_type(), e.header().mode().unwrap(), link),
            );
        }
    }
    tree
}

/// The path the kernel sees for `path` (symlinks followed, in every component).
fn resolve(tree: &ImageTree, path: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut todo: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                parts.pop();
                continue;
            }
            _ => {}
        }
        parts.push(part);
        let here = format!("/{}", parts.join("/"));
        if let Some((tar::EntryType::Symlink, _, target)) = tree.get(&here) {
            hops += 1;
            assert!(hops < 40, "symlink loop at {path}");
            parts.pop();
            if target.starts_with('/') {
                parts.clear();
            }
            todo.extend(target.split('/').rev().map(str::to_owned));
        }
    }
    format!("/{}", parts.join("/"))
}

type ImageTree = BTreeMap<String, (tar::EntryType, u32, String)>;

/// Everything the profile at `path` gets wrong for the images `trees`: what the programs of
/// the image need and are not granted, and any write, program run, capability, mount or
/// network access beyond the service's.
fn profile_problems(path: &Path, trees: &[(&str, ImageTree)]) -> Vec<String> {
    let profile = Profile::load(path);
    let mut problems = Vec::new();
    let mut has = |path: &str, want: &str| {
        let got = profile.perms(path);
        if !want.chars().all(|c| got.contains(c)) {
            problems.push(format!("grants {got:?} on {path}, needs {want:?}"));
        }
    };
    let programs = ["/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/"];
    for (arch, tree) in trees {
        for (path, (kind, _, _)) in tree {
            let in_bin = programs
                .iter()
                .any(|d| path.strip_prefix(d).is_some_and(|rest| !rest.contains('/')));
            let real = resolve(tree, path);
            let target = tree.get(&real).map(|t| (t.0, t.1));
            let regular = |exec: bool| {
                target
                    .is_some_and(|(k, m)| k == tar::EntryType::Regular && (!exec || m & 0o111 != 0))
            };
            match kind {
                // Directories may be listed.
                tar::EntryType::Directory => has(&format!("{path}/"), "r"),
                // Programs run in this profile (ix), through their symlinks too (/bin/sh).
                _ if in_bin && regular(true) => has(&real, "mrix"),
                // Libraries and the dynamic loader are mapped.
                _ if is_library(&real) && regular(false) => has(&real, "mr"),
                _ if real.starts_with("/etc/") || real.starts_with("/usr/share/") => {
                    has(&real, "r")
                }
                _ => {}
            }
        }
        for p in [
            "/bin/sh",
            "/bin/bash",
            "/bin/ls",
            "/bin/cat",
            "/usr/bin/sha256sum",
            "/bin/date",
            "/usr/bin/id",
        ] {
            assert!(tree.contains_key(p), "{arch}: {p} is in the image");
            has(&resolve(tree, p), "mrix");
        }
        let loader = if *arch == "amd64" {
            "/lib64/ld-linux-x86-64.so.2"
        } else {
            "/lib/ld-linux-aarch64.so.1"
        };
        has(&resolve(tree, loader), "mr");
    }
    has("/data/options.json", "rwk");
    has("/tmp/scratch/x", "rwk");
    has("/etc/passwd", "r");
    has("/usr/share/terminfo/x/xterm", "r");
    has("/dev/pts/0", "rw");

    // Nothing written runs: no x or m where anything may be written.
    for p in [
        "/data/x",
        "/data/a/b",
        "/tmp/x",
        "/tmp/a/b",
        "/root/.Private/x",
        "/var/tmp/x",
        "/dev/shm/x",
    ] {
        let got = profile.perms(p);
        if got.contains(['x', 'm']) {
            problems.push(format!("grants {got:?} on {p}: a written file could run"));
        }
    }
    // Every rule that lets a process write (or link) is under /data, /tmp or the devices and
    // log sockets of the base, and every rule that lets it run a program is under the image's
    // program folders, unless a deny rule takes the permission back.
    let writable = ["/data/", "/tmp/", "/dev/", "/run/", "/var/run/"];
    for (deny, glob, perms) in &profile.rules {
        if *deny {
            continue;
        }
        for alt in profile.expand(glob).iter().flat_map(|g| alternatives(g)) {
            let p = sample(&alt);
            assert!(glob_regex(&alt).is_match(&p), "{alt} vs {p}");
            let got = profile.perms(&p);
            if perms.contains(['w', 'a', 'l'])
                && got.contains(['w', 'a', 'l'])
                && !writable.iter().any(|w| alt.starts_with(w))
            {
                problems.push(format!("lets a process write {alt} ({glob} {perms})"));
            }
            if perms.contains('x')
                && got.contains('x')
                && !programs.iter().any(|d| alt.starts_with(d))
            {
                problems.push(format!("lets {alt} run ({glob} {perms})"));
            }
        }
    }
    // No capabilities, mounts, tracing of others, profile changes; only TCP and UDP.
    let allowed = [
        "ptrace (readby)",
        "ptrace (tracedby)",
        "ptrace (read) peer=@{profile_name}",
        "network inet stream",
        "network inet6 stream",
        "network inet dgram",
        "network inet6 dgram",
    ];
    for rule in &profile.other {
        let word = rule.split([' ', '(']).next().unwrap();
        if !matches!(word, "abi" | "signal" | "unix") && !allowed.contains(&rule.as_str()) {
            problems.push(format!("has a rule it should not: {rule}"));
        }
    }
    problems
}

#[test]
fn apparmor_profile_grants_the_shell_and_confines_writes() {
    if !support::have("apparmor_parser") {
        return;
    }
    let trees: Vec<(&str, ImageTree)> = ["amd64", "aarch64"]
        .into_iter()
        .map(|a| (a, image_tree(a)))
        .collect();
    for (arch, tree) in &trees {
        let programs = tree
            .iter()
            .filter(|(p, (k, m, _))| {
                p.contains("bin/") && *k == tar::EntryType::Regular && m & 0o111 != 0
            })
            .count();
        assert!(
            programs > 80,
            "{arch}: only {programs} programs in the image"
        );
    }
    let ours = addon().join("apparmor.txt");
    let problems = profile_problems(&ours, &trees);
    assert!(
        problems.is_empty(),
        "addon/apparmor.txt:\n{}",
        problems.join("\n")
    );

    // Each of these edits breaks the profile, and the check says so.
    let text = std::fs::read_to_string(&ours).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (from, to, expect) in [
        (
            "  /{,usr/}{,s}bin/* mrix,\n",
            "",
            "on /bin/bash, needs \"mrix\"",
        ),
        (
            "  /usr/libexec/coreutils/*.so mr,\n",
            "",
            "/usr/libexec/coreutils/libstdbuf.so",
        ),
        (
            "  /tmp/** rwk,\n",
            "  /tmp/** rwkix,\n",
            "on /tmp/x: a written file could run",
        ),
        (
            "  /etc/** r,\n",
            "  /etc/** rw,\n",
            "lets a process write /etc/",
        ),
        (
            "  /data/** rwk,\n",
            "  /data/** rwk,\n  /srv/** ix,\n",
            "lets /srv/",
        ),
        ("  deny @{HOME}/.Private/** mwlx,\n", "", "/root/.Private/x"),
        (
            "  network inet dgram,\n",
            "  network inet dgram,\n  network raw,\n",
            "network raw",
        ),
        (
            "  /data/ r,\n",
            "  capability sys_admin,\n  /data/ r,\n",
            "capability sys_admin",
        ),
        ("  /data/ r,\n", "  mount,\n  /data/ r,\n", "mount"),
    ] {
        assert!(text.contains(from), "the profile has no {from:?}");
        let bad = dir.path().join("apparmor.txt");
        std::fs::write(&bad, text.replacen(from, to, 1)).unwrap();
        let problems = profile_problems(&bad, &trees);
        assert!(
            problems.iter().any(|p| p.contains(expect)),
            "{from:?} -> {to:?}: no problem naming {expect:?} in {problems:#?}"
        );
    }
}
