//! Debian version numbers: parsing and ordering exactly as dpkg does, for the resolver.
//!
//! Hand-written because it is forty lines of a fixed algorithm (Debian Policy 5.6.12) and the
//! crates that carry it come with a package-manager's worth of other code (debian-packaging
//! compiles C; see issue 3).
use std::cmp::Ordering;

/// `[epoch:]upstream[-revision]`, compared per Debian Policy 5.6.12.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub epoch: u64,
    pub upstream: String,
    pub revision: String,
    raw: String,
}

impl Version {
    pub fn parse(raw: &str) -> anyhow::Result<Version> {
        let raw = raw.trim();
        let (epoch, rest) = match raw.split_once(':') {
            Some((e, rest)) => (
                e.parse::<u64>()
                    .map_err(|_| anyhow::anyhow!("bad epoch in Debian version {raw:?}"))?,
                rest,
            ),
            None => (0, raw),
        };
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if upstream.is_empty() || !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            anyhow::bail!("Debian version {raw:?} must start with a digit (after any epoch)");
        }
        Ok(Version {
            epoch,
            upstream: upstream.to_owned(),
            revision: revision.to_owned(),
            raw: raw.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(&self.upstream, &other.upstream))
            .then_with(|| compare_part(&self.revision, &other.revision))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Sort weight of one non-digit character: `~` before the end of the string, the end before
/// letters, letters before everything else.
fn weight(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

/// dpkg's `verrevcmp`: alternate non-digit runs (by `weight`) and digit runs (numerically).
fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ca = a.get(i).copied().filter(|c| !c.is_ascii_digit());
            let cb = b.get(j).copied().filter(|c| !c.is_ascii_digit());
            let (wa, wb) = (weight(ca), weight(cb));
            if wa != wb {
                return wa.cmp(&wb);
            }
            i += usize::from(ca.is_some());
            j += usize::from(cb.is_some());
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let (si, sj) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        // Leading zeros are gone: a longer run is a larger number.
        let ord = (i - si)
            .cmp(&(j - sj))
            .then_with(|| a[si..i].cmp(&b[sj..j]));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        Version::parse(a).unwrap().cmp(&Version::parse(b).unwrap())
    }

    #[test]
    fn orders_like_dpkg() {
        // Cases from dpkg's own test suite (lib/dpkg/t/t-version.c) and Policy 5.6.12.
        assert_eq!(cmp("1.0", "1.0"), Ordering::Equal);
        assert_eq!(cmp("1.0-1", "1.0-2"), Ordering::Less);
        assert_eq!(cmp("1:1.0", "2.0"), Ordering::Greater);
        assert_eq!(cmp("1.0~rc1", "1.0"), Ordering::Less);
        assert_eq!(cmp("1.0", "1.0+b1"), Ordering::Less);
        assert_eq!(cmp("1.0a", "1.0+"), Ordering::Less);
        assert_eq!(cmp("2.36-9+deb12u9", "2.36-9+deb12u10"), Ordering::Less);
        assert_eq!(cmp("5.2.15-2+b9", "5.2.15-2+b2"), Ordering::Greater);
        assert_eq!(cmp("1.001", "1.1"), Ordering::Equal);
        assert_eq!(cmp("1.0-0.1", "1.0-1"), Ordering::Less);
        assert_eq!(cmp("9.1-1", "10.0-1"), Ordering::Less);
        assert_eq!(cmp("1.2.3~~", "1.2.3~"), Ordering::Less);
    }

    #[test]
    fn refuses_garbage() {
        assert!(Version::parse("x1.0").is_err());
        assert!(Version::parse("a:1.0").is_err());
        assert!(Version::parse("").is_err());
    }
}
