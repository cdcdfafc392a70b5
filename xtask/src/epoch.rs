//! The one time source for image content: `SOURCE_DATE_EPOCH`, else the last commit time, else 1.
use anyhow::{bail, Context};
use xshell::{cmd, Shell};

/// Seconds since the Unix epoch that every timestamp in an image is set to. Never `now()`:
/// the same sources must give the same bytes (reproducible-builds.org SOURCE_DATE_EPOCH spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(pub u64);

impl Epoch {
    pub fn discover(sh: &Shell) -> anyhow::Result<Epoch> {
        if let Ok(raw) = std::env::var("SOURCE_DATE_EPOCH") {
            return Epoch::parse(&raw);
        }
        let last_commit = cmd!(sh, "git log -1 --format=%ct")
            .quiet()
            .ignore_stderr()
            .read();
        match last_commit {
            Ok(s) if !s.trim().is_empty() => Epoch::parse(s.trim())
                .context("reading the last commit time from `git log -1 --format=%ct`"),
            _ => {
                tracing::warn!("no SOURCE_DATE_EPOCH and no git history: timestamps set to 1");
                Ok(Epoch(1))
            }
        }
    }

    pub fn parse(raw: &str) -> anyhow::Result<Epoch> {
        match raw.trim().parse::<u64>() {
            Ok(secs) if secs <= 253_402_300_799 => Ok(Epoch(secs)),
            _ => bail!(
                "SOURCE_DATE_EPOCH={raw:?} is not a number of seconds between 0 and year 9999; \
                 unset it or set it to e.g. `git log -1 --format=%ct`"
            ),
        }
    }

    /// RFC 3339 in UTC (`2024-05-01T12:00:00Z`), as the OCI config `created` field wants.
    pub fn rfc3339(self) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp(self.0 as i64)
            .expect("epoch range checked in Epoch::parse");
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("an in-range UTC time always formats as RFC 3339")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(Epoch(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Epoch(1_700_000_000).rfc3339(), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn rejects_garbage() {
        assert!(Epoch::parse("yesterday").is_err());
        assert!(Epoch::parse("-5").is_err());
        assert_eq!(Epoch::parse(" 42\n").unwrap(), Epoch(42));
    }
}
