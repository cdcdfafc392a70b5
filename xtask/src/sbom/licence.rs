//! Licences for the SBOM, as SPDX licence expressions (SPDX 2.3 annex D).
//!
//! Debian packages: from `/usr/share/doc/<package>/copyright` when it is machine-readable
//! (DEP-5, `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/`),
//! else `NOASSERTION`. DEP-5 names licences its own way (`GPL-3+`, `Expat`, `BSD-3-clause`,
//! `GFDL-NIV-1.3`; copyright-format 1.0 "License specification"): each name DEP-5 defines is
//! mapped to its SPDX identifier; a name with no SPDX counterpart (`public-domain`,
//! `MIT-like`, `permissive`) becomes a `LicenseRef-<package>-<name>` whose text is the file's stand-alone
//! `License:` paragraph for it (SPDX 2.3 clause 10, other licensing information). The
//! package's declared licence is every licence its `Files:` paragraphs name, joined by `AND`
//! (the package holds files under each).
//!
//! Rust crates: Cargo's `license` field is an SPDX expression already; the old `/` separator
//! (`MIT/Apache-2.0`) means `OR` (Cargo reference, "the license field").
use std::collections::BTreeMap;

use crate::runtime::deb822;

/// `NOASSERTION`: no licence could be determined (SPDX 2.3 clause 7.13).
pub const NOASSERTION: &str = "NOASSERTION";

/// A licence the SPDX list does not have, defined in the document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Extracted {
    /// `LicenseRef-…`.
    pub id: String,
    /// The name the copyright file gives it.
    pub name: String,
    pub text: String,
}

/// A package's declared licence and the `LicenseRef-`s it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub expression: String,
    pub extracted: Vec<Extracted>,
}

impl Declared {
    fn none() -> Declared {
        Declared {
            expression: NOASSERTION.to_owned(),
            extracted: Vec::new(),
        }
    }
}

const DEP5_FORMAT: &str = "://www.debian.org/doc/packaging-manuals/copyright-format/1.0";

/// The declared licence of Debian package `package` from its copyright file `text`.
pub fn debian(package: &str, text: Option<&str>) -> Declared {
    let Some(text) = text else {
        return Declared::none();
    };
    let Ok(paras) = deb822::parse(text) else {
        return Declared::none();
    };
    let machine_readable = paras
        .first()
        .and_then(|p| p.get("Format"))
        .is_some_and(|f| f.trim_end_matches('/').contains(DEP5_FORMAT));
    if !machine_readable {
        return Declared::none();
    }
    // Stand-alone licence paragraphs (a `License:` and no `Files:`): the full texts.
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    for p in &paras[1..] {
        if let (None, Some(l)) = (p.get("Files"), p.get("License")) {
            if let Some((name, body)) = l.split_once('\n') {
                texts.insert(name.trim().to_owned(), body.to_owned());
            }
        }
    }
    let mut terms: Vec<String> = Vec::new();
    let mut extracted: BTreeMap<String, Extracted> = BTreeMap::new();
    for p in paras.iter().filter(|p| p.get("Files").is_some()) {
        let Some(l) = p.get("License") else { continue };
        let short = l.lines().next().unwrap_or_default().trim();
        if short.is_empty() {
            continue;
        }
        let (expr, refs) = expression(package, short, l, &texts);
        for e in refs {
            extracted.entry(e.id.clone()).or_insert(e);
        }
        if !terms.contains(&expr) {
            terms.push(expr);
        }
    }
    if terms.is_empty() {
        return Declared::none();
    }
    terms.sort();
    let expression = if terms.len() == 1 {
        terms.remove(0)
    } else {
        terms
            .iter()
            .map(|t| {
                if t.contains(' ') {
                    format!("({t})")
                } else {
                    t.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    Declared {
        expression,
        extracted: extracted.into_values().collect(),
    }
}

/// One DEP-5 `License:` short name (possibly `A or B`, `A and B`, `A with X exception`) as
/// an SPDX expression, and the `LicenseRef-`s it needed. `field` is the whole field (its
/// text, when the paragraph carries one, is the licence's text).
fn expression(
    package: &str,
    short: &str,
    field: &str,
    texts: &BTreeMap<String, String>,
) -> (String, Vec<Extracted>) {
    let mut refs = Vec::new();
    let mut out = Vec::new();
    // DEP-5: `or` binds looser than `and`; a comma before `and`/`or` only groups for humans.
    for (i, alt) in split_words(short, "or").iter().enumerate() {
        if i > 0 {
            out.push("OR".to_owned());
        }
        let all = split_words(alt, "and");
        let mut conj = Vec::new();
        for t in &all {
            conj.push(term(package, t, field, texts, &mut refs));
        }
        let joined = conj.join(" AND ");
        let several_alts = split_words(short, "or").len() > 1;
        out.push(if conj.len() > 1 && several_alts {
            format!("({joined})")
        } else {
            joined
        });
    }
    (out.join(" "), refs)
}

/// `s` split at the whole word `word` (case-insensitive), commas dropped.
fn split_words(s: &str, word: &str) -> Vec<String> {
    let mut parts = vec![Vec::new()];
    for w in s.split_whitespace() {
        if w.eq_ignore_ascii_case(word) {
            parts.push(Vec::new());
        } else {
            parts.last_mut().expect("never empty").push(w);
        }
    }
    parts
        .into_iter()
        .map(|p| p.join(" ").trim_matches(',').trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// One licence (`GPL-3+`, `GPL-3+ with Bison exception`) as SPDX.
fn term(
    package: &str,
    t: &str,
    field: &str,
    texts: &BTreeMap<String, String>,
    refs: &mut Vec<Extracted>,
) -> String {
    let lower = t.to_ascii_lowercase();
    if let Some(i) = lower.find(" with ") {
        let (name, exception) = (&t[..i], t[i + 6..].trim());
        let exception = exception
            .strip_suffix(" exception")
            .or_else(|| exception.strip_suffix(" Exception"))
            .unwrap_or(exception);
        if let (Some(id), Some(ex)) = (spdx_id(name.trim()), spdx_exception(exception)) {
            return format!("{id} WITH {ex}");
        }
        // SPDX 2.3 has no user-defined exceptions: the whole term is one LicenseRef.
        return licence_ref(package, t, field, texts, refs);
    }
    match spdx_id(t) {
        Some(id) => id,
        None => licence_ref(package, t, field, texts, refs),
    }
}

fn licence_ref(
    package: &str,
    name: &str,
    field: &str,
    texts: &BTreeMap<String, String>,
    refs: &mut Vec<Extracted>,
) -> String {
    // Scoped by package: two packages' `public-domain` paragraphs need not say the same.
    let id = format!("LicenseRef-{}-{}", idstring(package), idstring(name));
    // The licence's text: the paragraph's own, else the stand-alone paragraph of that name.
    let text = field
        .split_once('\n')
        .map(|(_, body)| body.to_owned())
        .filter(|b| !b.trim().is_empty())
        .or_else(|| texts.get(name).cloned())
        .unwrap_or_else(|| format!("{name}: see /usr/share/doc/{package}/copyright in the image"));
    // deb822 continuation lines: a lone `.` is an empty line (copyright-format 1.0).
    let text = text
        .lines()
        .map(|l| if l == "." { "" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    refs.push(Extracted {
        id: id.clone(),
        name: name.to_owned(),
        text,
    });
    id
}

/// `[A-Za-z0-9.-]` only, as SPDX identifiers allow (SPDX 2.3 clause 10.1).
pub fn idstring(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-').to_owned()
}

/// The SPDX identifier of a DEP-5 licence name (copyright-format 1.0's list, and the SPDX
/// names Debian files use verbatim), None when SPDX has none.
fn spdx_id(name: &str) -> Option<String> {
    let (base, later) = match name.strip_suffix('+') {
        Some(b) => (b, true),
        None => (name, false),
    };
    // The GNU family: `GPL-2` is GPL-2.0-only, `GPL-2+` GPL-2.0-or-later (SPDX 3.0 list).
    let gnu = [
        ("GPL", "GPL"),
        ("LGPL", "LGPL"),
        ("AGPL", "AGPL"),
        ("GFDL-NIV", "GFDL"),
        ("GFDL", "GFDL"),
    ];
    for (dep5, spdx) in gnu {
        if let Some(v) = base.strip_prefix(dep5).and_then(|r| r.strip_prefix('-')) {
            let v = if v.contains('.') {
                v.to_owned()
            } else {
                format!("{v}.0")
            };
            let known = match spdx {
                "GPL" => ["1.0", "2.0", "3.0"].contains(&v.as_str()),
                "LGPL" => ["2.0", "2.1", "3.0"].contains(&v.as_str()),
                "AGPL" => ["1.0", "3.0"].contains(&v.as_str()),
                _ => ["1.1", "1.2", "1.3"].contains(&v.as_str()),
            };
            if !known {
                return None;
            }
            let suffix = if later { "or-later" } else { "only" };
            return Some(if dep5 == "GFDL-NIV" {
                format!("GFDL-{v}-no-invariants-{suffix}")
            } else {
                format!("{spdx}-{v}-{suffix}")
            });
        }
    }
    if later {
        // Only the GNU licences have `-or-later` identifiers.
        return None;
    }
    let fixed = match base {
        "Expat" | "MIT" => "MIT",
        "MIT/X11" | "X11" => "X11",
        "BSD-2-clause" | "BSD-2-Clause" => "BSD-2-Clause",
        "BSD-3-clause" | "BSD-3-Clause" => "BSD-3-Clause",
        "BSD-4-clause" | "BSD-4-Clause" => "BSD-4-Clause",
        "BSD-4-clause-UC" | "BSD-4-Clause-UC" => "BSD-4-Clause-UC",
        "ISC" => "ISC",
        "Zlib" | "zlib" => "Zlib",
        "Apache-2.0" | "Apache-2" => "Apache-2.0",
        "Artistic" | "Artistic-1.0" => "Artistic-1.0-Perl",
        "Artistic-2.0" => "Artistic-2.0",
        "CC0" | "CC0-1.0" => "CC0-1.0",
        "CC-BY-3.0" => "CC-BY-3.0",
        "CC-BY-4.0" => "CC-BY-4.0",
        "CC-BY-SA-3.0" => "CC-BY-SA-3.0",
        "CC-BY-SA-4.0" => "CC-BY-SA-4.0",
        "MPL-1.1" => "MPL-1.1",
        "MPL-2.0" => "MPL-2.0",
        "Python-2.0" => "Python-2.0",
        "PSF-2" => "PSF-2.0",
        "Zope-2.1" => "ZPL-2.1",
        "FSFUL" => "FSFUL",
        "FSFULLR" => "FSFULLR",
        "FSFAP" => "FSFAP",
        "Latex2e" => "Latex2e",
        "OpenSSL" => "OpenSSL",
        "curl" => "curl",
        "Unicode-DFS-2016" => "Unicode-DFS-2016",
        "W3C" => "W3C",
        _ => return None,
    };
    Some(fixed.to_owned())
}

/// The SPDX exception for a DEP-5 `with <name> exception`.
fn spdx_exception(name: &str) -> Option<&'static str> {
    Some(match name {
        "Bison" => "Bison-exception-2.2",
        "Autoconf" | "Autoconf-2.0" => "Autoconf-exception-2.0",
        "Autoconf-3.0" => "Autoconf-exception-3.0",
        "GCC-3.1" | "GCC" => "GCC-exception-3.1",
        "Libtool" => "Libtool-exception",
        "Font" => "Font-exception-2.0",
        "OpenSSL" => "openvpn-openssl-exception",
        "Classpath" => "Classpath-exception-2.0",
        _ => return None,
    })
}

/// A crate's `license` field as an SPDX expression (`MIT/Apache-2.0` -> `MIT OR Apache-2.0`),
/// `NOASSERTION` when it has none (a `license-file` only).
pub fn cargo(license: Option<&str>) -> String {
    match license.map(str::trim).filter(|l| !l.is_empty()) {
        None => NOASSERTION.to_owned(),
        Some(l) => l.split('/').map(str::trim).collect::<Vec<_>>().join(" OR "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASH: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: bash

Files: *
Copyright: 1987-2022 Free Software Foundation, Inc.
License: GPL-3+

Files: lib/sh/inet_aton.c
Copyright: 1983, 1990 The Regents of the University of California.
License: BSD-4-clause-UC

Files: y.tab.c
License: GPL-3+ with Bison exception

Files: support/man2html.c
License: permissive
 Permission is granted to anyone.
 .
 No warranty.

Files: lib/termcap/*
License: GPL-2+ or LGPL-3+

Files: doc/*
License: MIT-like

License: MIT-like
 Permission is hereby granted, free of charge.

License: GPL-3+
 This program is free software.
";

    #[test]
    fn dep5_names_become_spdx_expressions() {
        let d = debian("bash", Some(BASH));
        assert_eq!(
            d.expression,
            "BSD-4-Clause-UC AND (GPL-2.0-or-later OR LGPL-3.0-or-later) AND GPL-3.0-or-later AND \
             (GPL-3.0-or-later WITH Bison-exception-2.2) AND LicenseRef-bash-MIT-like AND \
             LicenseRef-bash-permissive"
        );
        let ids: Vec<&str> = d.extracted.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            ["LicenseRef-bash-MIT-like", "LicenseRef-bash-permissive"]
        );
        assert_eq!(
            d.extracted[0].text,
            "Permission is hereby granted, free of charge."
        );
        assert_eq!(
            d.extracted[1].text,
            "Permission is granted to anyone.\n\nNo warranty."
        );
    }

    #[test]
    fn not_machine_readable_is_noassertion() {
        let d = debian(
            "libc6",
            Some("This is the Debian prepackaged version of glibc.\n"),
        );
        assert_eq!(d.expression, NOASSERTION);
        assert_eq!(debian("x", None).expression, NOASSERTION);
    }

    #[test]
    fn gnu_versions_and_unknown_exceptions() {
        assert_eq!(spdx_id("GPL-2").as_deref(), Some("GPL-2.0-only"));
        assert_eq!(spdx_id("LGPL-2.1+").as_deref(), Some("LGPL-2.1-or-later"));
        assert_eq!(
            spdx_id("GFDL-NIV-1.3+").as_deref(),
            Some("GFDL-1.3-no-invariants-or-later")
        );
        assert_eq!(spdx_id("GPL-4"), None);
        assert_eq!(spdx_id("MIT+"), None);
        let mut refs = Vec::new();
        let t = term(
            "p",
            "BSD-3-clause-Cambridge with BINARY LIBRARY-LIKE PACKAGES exception",
            "x",
            &BTreeMap::new(),
            &mut refs,
        );
        assert_eq!(
            t,
            "LicenseRef-p-BSD-3-clause-Cambridge-with-BINARY-LIBRARY-LIKE-PACKAGES-exception"
        );
        assert!(refs[0].text.contains("/usr/share/doc/p/copyright"));
    }

    #[test]
    fn cargo_slashes_are_or() {
        assert_eq!(cargo(Some("MIT/Apache-2.0")), "MIT OR Apache-2.0");
        assert_eq!(cargo(Some("MIT OR Apache-2.0")), "MIT OR Apache-2.0");
        assert_eq!(cargo(None), NOASSERTION);
    }
}
