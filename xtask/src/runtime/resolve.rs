//! The dependency resolver: the closure of the declared packages over Depends and Pre-Depends,
//! choosing what apt chooses (issue 3; Debian Policy 7.1 for the relationship syntax).
//!
//! apt's choices, reproduced:
//! - a dependency already satisfied by a chosen package needs nothing more;
//! - otherwise, of `a | b | c` the first satisfiable alternative wins (not every alternative:
//!   following all of them is how a resolver ends up with 28 packages instead of 14);
//! - a real package beats a virtual one; a virtual package (Provides) is satisfied by the
//!   provider apt would pick: Essential first, then by Priority (required < important <
//!   standard < optional < extra), then by name — which gives `mawk` for `awk`;
//! - `:any` and `:native` qualifiers are stripped (one architecture per image);
//! - when a name appears more than once, the highest version that satisfies wins, whichever
//!   suite lists it (apt with one `deb` line per suite, all at the default pin priority 500);
//!   the same version in two suites is taken from the suite listed first.
//!
//! Conflicts/Breaks/Recommends are not followed: we only unpack data and run no maintainer
//! scripts, so nothing is "installed" that could break.
use std::collections::{BTreeMap, VecDeque};

use anyhow::{bail, Context};

use super::deb822;
use super::version::Version;

/// One binary package from a Packages index.
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: Version,
    pub arch: String,
    pub depends: Vec<Vec<Relation>>,
    pub provides: Vec<(String, Option<Version>)>,
    pub essential: bool,
    pub priority: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// The suite whose index listed it, and that suite's place in the declaration.
    pub suite: String,
    pub suite_rank: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    pub constraint: Option<(Op, Version)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Op {
    fn holds(self, have: &Version, want: &Version) -> bool {
        let o = have.cmp(want);
        match self {
            Op::Lt => o.is_lt(),
            Op::Le => o.is_le(),
            Op::Eq => o.is_eq(),
            Op::Ge => o.is_ge(),
            Op::Gt => o.is_gt(),
        }
    }
}

impl std::fmt::Display for Relation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.constraint {
            None => write!(f, "{}", self.name),
            Some((op, v)) => {
                let op = match op {
                    Op::Lt => "<<",
                    Op::Le => "<=",
                    Op::Eq => "=",
                    Op::Ge => ">=",
                    Op::Gt => ">>",
                };
                write!(f, "{} ({op} {v})", self.name)
            }
        }
    }
}

/// `a (>= 1) | b:any, c [amd64] <!nocheck>` -> [[a>=1, b], [c]].
pub fn parse_relations(field: &str) -> anyhow::Result<Vec<Vec<Relation>>> {
    let mut out = Vec::new();
    for group in field.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let mut alts = Vec::new();
        for alt in group.split('|').map(str::trim) {
            alts.push(parse_relation(alt).with_context(|| format!("in the relation {group:?}"))?);
        }
        out.push(alts);
    }
    Ok(out)
}

fn parse_relation(s: &str) -> anyhow::Result<Relation> {
    // Architecture restrictions `[...]` and build profiles `<...>` only occur in source
    // packages; drop them if present.
    let s = match s.find(['[', '<']) {
        Some(i) if !s[..i].contains('(') => &s[..i],
        _ => s,
    };
    let (name, constraint) = match s.split_once('(') {
        None => (s.trim(), None),
        Some((name, rest)) => {
            let inner = rest
                .split_once(')')
                .map(|x| x.0)
                .with_context(|| format!("unclosed `(` in {s:?}"))?
                .trim();
            let op_len = inner
                .find(|c: char| !"<>=".contains(c))
                .with_context(|| format!("no version in {s:?}"))?;
            let op = match &inner[..op_len] {
                "<<" => Op::Lt,
                "<=" | "<" => Op::Le, // `<` and `>` are the obsolete forms of `<=` and `>=`
                "=" => Op::Eq,
                ">=" | ">" => Op::Ge,
                ">>" => Op::Gt,
                o => bail!("unknown relation operator {o:?} in {s:?}"),
            };
            (
                name.trim(),
                Some((op, Version::parse(inner[op_len..].trim())?)),
            )
        }
    };
    // `libc6:any` means "any architecture's libc6"; an image has one architecture.
    let name = name
        .strip_suffix(":any")
        .or_else(|| name.strip_suffix(":native"))
        .unwrap_or(name);
    if name.is_empty() || name.contains(char::is_whitespace) {
        bail!("bad package name in relation {s:?}");
    }
    Ok(Relation {
        name: name.to_owned(),
        constraint,
    })
}

/// A Packages index, by name and by what is provided.
pub struct Index {
    packages: Vec<Package>,
    by_name: BTreeMap<String, Vec<usize>>,
    providers: BTreeMap<String, Vec<(usize, Option<Version>)>>,
}

impl Index {
    /// One Packages index, of a suite without a name.
    pub fn parse(text: &str) -> anyhow::Result<Index> {
        Index::parse_suites(&[("", text)])
    }

    /// The Packages indexes of several suites (name, text), in declaration order, as one.
    pub fn parse_suites(suites: &[(&str, &str)]) -> anyhow::Result<Index> {
        let mut packages = Vec::new();
        for (rank, (suite, text)) in suites.iter().enumerate() {
            parse_into(&mut packages, suite, rank, text)
                .with_context(|| format!("reading the Packages index of {suite}"))?;
        }
        Ok(Index::of(packages))
    }

    /// Every entry for `name`.
    pub fn named(&self, name: &str) -> impl Iterator<Item = &Package> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| &self.packages[i])
    }

    fn of(packages: Vec<Package>) -> Index {
        let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut providers: BTreeMap<String, Vec<(usize, Option<Version>)>> = BTreeMap::new();
        for (i, p) in packages.iter().enumerate() {
            by_name.entry(p.name.clone()).or_default().push(i);
            for (v, ver) in &p.provides {
                providers
                    .entry(v.clone())
                    .or_default()
                    .push((i, ver.clone()));
            }
        }
        Index {
            packages,
            by_name,
            providers,
        }
    }

    pub fn len(&self) -> usize {
        self.packages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// The highest version of a real package `r.name` satisfying `r`.
    fn best_real(&self, r: &Relation) -> Option<usize> {
        self.by_name
            .get(&r.name)?
            .iter()
            .copied()
            .filter(|&i| satisfies(&self.packages[i].version, r))
            .max_by(|&a, &b| {
                let (pa, pb) = (&self.packages[a], &self.packages[b]);
                pa.version
                    .cmp(&pb.version)
                    .then_with(|| pb.suite_rank.cmp(&pa.suite_rank))
            })
    }

    /// The provider of virtual `r.name` apt would pick (see the module doc).
    fn best_provider(&self, r: &Relation) -> Option<usize> {
        self.providers
            .get(&r.name)?
            .iter()
            .filter(|(_, pv)| match (&r.constraint, pv) {
                (None, _) => true,
                (Some((op, want)), Some(have)) => op.holds(have, want),
                // An unversioned Provides never satisfies a versioned dependency (Policy 7.5).
                (Some(_), None) => false,
            })
            .map(|(i, _)| *i)
            .min_by(|&a, &b| {
                let (pa, pb) = (&self.packages[a], &self.packages[b]);
                pb.essential
                    .cmp(&pa.essential)
                    .then_with(|| priority_rank(&pa.priority).cmp(&priority_rank(&pb.priority)))
                    .then_with(|| pa.name.cmp(&pb.name))
                    .then_with(|| pb.version.cmp(&pa.version))
                    .then_with(|| pa.suite_rank.cmp(&pb.suite_rank))
            })
    }

    fn candidate(&self, r: &Relation) -> Option<usize> {
        self.best_real(r).or_else(|| self.best_provider(r))
    }

    /// Resolve the closure of `roots`; returns the chosen packages sorted by name.
    pub fn resolve(&self, roots: &[String]) -> anyhow::Result<Vec<&Package>> {
        let mut chosen: BTreeMap<String, usize> = BTreeMap::new();
        let mut queue = VecDeque::new();
        for root in roots {
            let r = Relation {
                name: root.clone(),
                constraint: None,
            };
            let i = self
                .best_real(&r)
                .with_context(|| format!("package {root} is not in the index"))?;
            if chosen.insert(root.clone(), i).is_none() {
                queue.push_back(i);
            }
        }
        while let Some(i) = queue.pop_front() {
            let pkg = &self.packages[i];
            for group in &pkg.depends {
                if group.iter().any(|r| self.satisfied_by(&chosen, r)) {
                    continue;
                }
                // First satisfiable alternative whose name is not already taken by another
                // version (an image holds one version of each package).
                let pick = group
                    .iter()
                    .filter_map(|r| self.candidate(r))
                    .find(|&c| !chosen.contains_key(&self.packages[c].name));
                let Some(c) = pick else {
                    let alts: Vec<String> = group.iter().map(ToString::to_string).collect();
                    bail!(
                        "cannot satisfy `{}` (a dependency of {} {}): no alternative is in the \
                         index at a matching version",
                        alts.join(" | "),
                        pkg.name,
                        pkg.version
                    );
                };
                tracing::debug!(from = %pkg.name, to = %self.packages[c].name, "dependency");
                chosen.insert(self.packages[c].name.clone(), c);
                queue.push_back(c);
            }
        }
        Ok(chosen.values().map(|&i| &self.packages[i]).collect())
    }

    fn satisfied_by(&self, chosen: &BTreeMap<String, usize>, r: &Relation) -> bool {
        if let Some(&i) = chosen.get(&r.name) {
            if satisfies(&self.packages[i].version, r) {
                return true;
            }
        }
        chosen.values().any(|&i| {
            self.packages[i].provides.iter().any(|(n, pv)| {
                n == &r.name
                    && match (&r.constraint, pv) {
                        (None, _) => true,
                        (Some((op, want)), Some(have)) => op.holds(have, want),
                        (Some(_), None) => false,
                    }
            })
        })
    }
}

fn parse_into(
    packages: &mut Vec<Package>,
    suite: &str,
    rank: usize,
    text: &str,
) -> anyhow::Result<()> {
    for p in deb822::parse(text).context("parsing the Packages index")? {
        let name = p.require("Package")?.to_owned();
        let ctx = || format!("reading the index entry of {name}");
        let mut depends = Vec::new();
        for field in ["Pre-Depends", "Depends"] {
            if let Some(v) = p.get(field) {
                depends.extend(parse_relations(v).with_context(ctx)?);
            }
        }
        let provides = match p.get("Provides") {
            None => Vec::new(),
            Some(v) => parse_relations(v)
                .with_context(ctx)?
                .into_iter()
                .flatten()
                .map(|r| {
                    let ver = match r.constraint {
                        Some((Op::Eq, v)) => Some(v),
                        _ => None,
                    };
                    (r.name, ver)
                })
                .collect(),
        };
        packages.push(Package {
            version: Version::parse(p.require("Version")?).with_context(ctx)?,
            arch: p.require("Architecture")?.to_owned(),
            depends,
            provides,
            essential: p.get("Essential") == Some("yes"),
            priority: p.get("Priority").unwrap_or("optional").to_owned(),
            filename: p.require("Filename")?.to_owned(),
            size: p.require("Size")?.parse().with_context(ctx)?,
            sha256: p.require("SHA256")?.to_owned(),
            suite: suite.to_owned(),
            suite_rank: rank,
            name,
        });
    }
    Ok(())
}

fn satisfies(v: &Version, r: &Relation) -> bool {
    r.constraint
        .as_ref()
        .is_none_or(|(op, want)| op.holds(v, want))
}

fn priority_rank(p: &str) -> u8 {
    match p {
        "required" => 0,
        "important" => 1,
        "standard" => 2,
        "optional" => 3,
        "extra" => 4,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza(name: &str, version: &str, extra: &str) -> String {
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: arm64\n{extra}Filename: pool/main/{name}.deb\nSize: 1\nSHA256: {}\n\n",
            "0".repeat(64)
        )
    }

    #[test]
    fn parses_relations() {
        let r = parse_relations("libc6 (>= 2.34), a:any | b (<< 2) , c [amd64]").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0][0].to_string(), "libc6 (>= 2.34)");
        assert_eq!(r[1][0].name, "a");
        assert_eq!(r[1][1].to_string(), "b (<< 2)");
        assert_eq!(r[2][0].name, "c");
        assert!(parse_relations("x (>= )").is_err());
    }

    #[test]
    fn resolves_like_apt() {
        let idx = Index::parse(
            &[
                stanza(
                    "top",
                    "1",
                    "Depends: dep (>= 2), alt-one | alt-two, awk, missing | dep\n",
                ),
                stanza("dep", "1", ""),
                stanza("dep", "3", "Pre-Depends: lib:any\n"),
                stanza("lib", "1", ""),
                stanza("alt-one", "1", ""),
                stanza("alt-two", "1", ""),
                stanza("gawk", "1", "Provides: awk\nPriority: optional\n"),
                stanza("mawk", "1", "Provides: awk\nPriority: required\n"),
                stanza("original-awk", "1", "Provides: awk\nPriority: optional\n"),
            ]
            .concat(),
        )
        .unwrap();
        let got: Vec<String> = idx
            .resolve(&["top".into()])
            .unwrap()
            .iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect();
        assert_eq!(got, ["alt-one=1", "dep=3", "lib=1", "mawk=1", "top=1"]);
    }

    #[test]
    fn essential_provider_wins_and_versions_are_checked() {
        let idx = Index::parse(
            &[
                stanza("top", "1", "Depends: sh, old (>= 5)\n"),
                stanza("a-sh", "1", "Provides: sh\nPriority: required\n"),
                stanza(
                    "z-sh",
                    "1",
                    "Provides: sh\nPriority: optional\nEssential: yes\n",
                ),
                stanza("old", "4", ""),
            ]
            .concat(),
        )
        .unwrap();
        let err = idx.resolve(&["top".into()]).unwrap_err().to_string();
        assert!(err.contains("old (>= 5)") && err.contains("top 1"), "{err}");
        let idx = Index::parse(
            &[
                stanza("top", "1", "Depends: sh\n"),
                stanza("a-sh", "1", "Provides: sh\nPriority: required\n"),
                stanza(
                    "z-sh",
                    "1",
                    "Provides: sh\nPriority: optional\nEssential: yes\n",
                ),
            ]
            .concat(),
        )
        .unwrap();
        let names: Vec<&str> = idx
            .resolve(&["top".into()])
            .unwrap()
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["top", "z-sh"]);
        assert!(idx.resolve(&["nope".into()]).is_err());
    }

    #[test]
    fn the_highest_version_in_any_suite_wins_and_ties_go_to_the_first() {
        let main = [
            stanza("top", "1", "Depends: libc (>= 2), tie\n"),
            stanza("libc", "2.36-9+deb12u10", ""),
            stanza("tie", "1", ""),
            stanza("old", "2", ""),
        ]
        .concat();
        let security = [
            stanza("libc", "2.36-9+deb12u13", ""),
            stanza("tie", "1", ""),
            stanza("old", "1", ""),
        ]
        .concat();
        let idx =
            Index::parse_suites(&[("bookworm", &main), ("bookworm-security", &security)]).unwrap();
        let got: Vec<String> = idx
            .resolve(&["top".into(), "old".into()])
            .unwrap()
            .iter()
            .map(|p| format!("{}={} ({})", p.name, p.version, p.suite))
            .collect();
        assert_eq!(
            got,
            [
                "libc=2.36-9+deb12u13 (bookworm-security)",
                "old=2 (bookworm)",
                "tie=1 (bookworm)",
                "top=1 (bookworm)"
            ]
        );
        assert_eq!(idx.named("libc").count(), 2);
    }
}
