//! A suite's Release file (the signed text of InRelease): its date and the sha256 of every
//! index, which is how trust flows from the signature down to each `.deb`
//! (Debian wiki "DebianRepository/Format", section "Release").
use std::collections::BTreeMap;

use anyhow::{bail, Context};

use super::deb822;
use super::lock::is_sha256_hex;

#[derive(Debug, Clone)]
pub struct Release {
    pub suite: String,
    pub date: String,
    pub acquire_by_hash: bool,
    /// Index path (`main/binary-arm64/Packages.xz`) -> (size, sha256 hex).
    pub sha256: BTreeMap<String, (u64, String)>,
}

impl Release {
    pub fn parse(text: &str) -> anyhow::Result<Release> {
        let paras = deb822::parse(text).context("parsing the Release file")?;
        let [p] = &paras[..] else {
            bail!(
                "the Release file has {} paragraphs, expected 1",
                paras.len()
            );
        };
        let mut sha256 = BTreeMap::new();
        for line in p
            .require("SHA256")?
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [sha, size, path] = f[..] else {
                bail!("bad SHA256 line in the Release file: {line:?}");
            };
            if !is_sha256_hex(sha) {
                bail!("bad sha256 in the Release file: {line:?}");
            }
            let size = size
                .parse()
                .with_context(|| format!("bad size in the Release file: {line:?}"))?;
            sha256.insert(path.to_owned(), (size, sha.to_owned()));
        }
        Ok(Release {
            suite: p
                .get("Codename")
                .or(p.get("Suite"))
                .unwrap_or_default()
                .to_owned(),
            date: p.require("Date")?.to_owned(),
            acquire_by_hash: p.get("Acquire-By-Hash") == Some("yes"),
            sha256,
        })
    }

    /// The listed (size, sha256) of an index, or an error naming it.
    pub fn index(&self, path: &str) -> anyhow::Result<(u64, String)> {
        self.sha256.get(path).cloned().with_context(|| {
            format!(
                "the signed Release file of {} does not list {path}; is the architecture or \
                 component right?",
                self.suite
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_index_list() {
        let r = Release::parse(&format!(
            "Origin: Debian\nCodename: bookworm\nDate: Sat, 08 Nov 2025 09:46:04 UTC\n\
             Acquire-By-Hash: yes\nSHA256:\n {} 123 main/binary-arm64/Packages.xz\n",
            "a".repeat(64)
        ))
        .unwrap();
        assert!(r.acquire_by_hash);
        assert_eq!(
            r.index("main/binary-arm64/Packages.xz").unwrap(),
            (123, "a".repeat(64))
        );
        assert!(r.index("main/binary-mips/Packages.xz").is_err());
    }
}
