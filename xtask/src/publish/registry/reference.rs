//! Where a push goes: `<registry>/<repository>` as the command line gives it, the per-arch
//! repositories, the scheme, and tag syntax (distribution-spec "Pulling manifests": <name>
//! and <reference> grammar).
use anyhow::bail;

/// `<registry>/<repository>`, without tag or digest: `ghcr.io/fluxion-ha/fluxion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// host[:port]
    pub registry: String,
    pub repository: String,
}

impl Reference {
    pub fn parse(s: &str) -> anyhow::Result<Reference> {
        let usage = "give the target as <registry>/<repository>, e.g. ghcr.io/owner/fluxion or \
                     127.0.0.1:5000/fluxion (tags go in --tag)";
        let Some((registry, repository)) = s.split_once('/') else {
            bail!("{s:?} names no registry: {usage}");
        };
        // The docker rule: the first component is a registry only if it looks like a host.
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            bail!("{s:?} names no registry ({registry:?} is not a host): {usage}");
        }
        if repository.contains('@') || repository.rsplit('/').next().unwrap_or("").contains(':') {
            bail!("{s:?} carries a tag or digest: {usage}");
        }
        // distribution-spec: <name> components are [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        };
        if !repository.split('/').all(component_ok) {
            bail!(
                "repository {repository:?} is not a valid name (lowercase letters, digits and \
                 separators . _ - between path components): {usage}"
            );
        }
        Ok(Reference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
        })
    }

    /// The per-arch repository older Supervisor setups pull (`image: .../{arch}-fluxion`).
    pub fn per_arch(&self, hass_arch: &str) -> Reference {
        let (dir, name) = match self.repository.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), self.repository.as_str()),
        };
        Reference {
            registry: self.registry.clone(),
            repository: format!("{dir}{hass_arch}-{name}"),
        }
    }

    /// The host the distribution API answers on: Docker Hub's is `registry-1.docker.io`
    /// whichever of its names the user gave; any other registry's is the name given.
    pub fn api_host(&self) -> &str {
        if is_docker_hub(&self.registry) {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    pub fn credential_key(&self) -> String {
        credential_key(&self.registry)
    }

    /// Plain HTTP only to the local machine, or when asked for (`--insecure`).
    pub fn scheme(&self, insecure: bool) -> &'static str {
        let host = self
            .registry
            .rsplit_once(':')
            .map_or(self.registry.as_str(), |(h, _)| h);
        if insecure || host == "localhost" || host == "127.0.0.1" || host == "[::1]" {
            "http"
        } else {
            "https"
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

/// Docker Hub's names (`docker.io`, `index.docker.io`, `registry-1.docker.io`).
fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// The key docker stores a registry's credentials under (config.json `auths` and
/// `credHelpers`, and the server URL a credential helper is asked for): Docker Hub's is
/// `https://index.docker.io/v1/`, any other registry's its `host[:port]` (docker/cli
/// `ResolveAuthConfig`: `registry.IndexServer` for the official index, else `index.Name`).
pub fn credential_key(registry: &str) -> String {
    if is_docker_hub(registry) {
        "https://index.docker.io/v1/".to_owned()
    } else {
        registry.to_owned()
    }
}

/// distribution-spec: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn check_tag(tag: &str) -> anyhow::Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && (tag.as_bytes()[0].is_ascii_alphanumeric() || tag.starts_with('_'))
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        bail!("tag {tag:?} is not valid: use letters, digits, `_`, `.` and `-` (at most 128, not starting with . or -)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r = Reference::parse("ghcr.io/fluxion-ha/fluxion").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("ghcr.io", "fluxion-ha/fluxion")
        );
        assert_eq!(r.scheme(false), "https");
        assert_eq!(
            r.per_arch("aarch64").to_string(),
            "ghcr.io/fluxion-ha/aarch64-fluxion"
        );
        assert_eq!(r.api_host(), "ghcr.io");
        assert_eq!(r.credential_key(), "ghcr.io");
        let hub = Reference::parse("docker.io/owner/fluxion").unwrap();
        assert_eq!(hub.api_host(), "registry-1.docker.io");
        assert_eq!(hub.credential_key(), "https://index.docker.io/v1/");
        let local = Reference::parse("127.0.0.1:5000/fluxion").unwrap();
        assert_eq!(local.credential_key(), "127.0.0.1:5000");
        assert_eq!(local.scheme(false), "http");
        assert_eq!(local.per_arch("amd64").repository, "amd64-fluxion");
        assert_eq!(
            Reference::parse("localhost/x").unwrap().scheme(false),
            "http"
        );
        assert_eq!(
            Reference::parse("reg.lan:5000/x").unwrap().scheme(false),
            "https"
        );
        assert_eq!(
            Reference::parse("reg.lan:5000/x").unwrap().scheme(true),
            "http"
        );
        for bad in [
            "fluxion",
            "fluxion-ha/fluxion",
            "ghcr.io/x/fluxion:1.0",
            "ghcr.io/x@sha256:ab",
            "ghcr.io/Upper",
            "ghcr.io/a//b",
            "ghcr.io/-a",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn checks_tags() {
        for good in ["0.1.0", "latest", "v1_2-rc.3", "_x"] {
            check_tag(good).unwrap();
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"x".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad} accepted");
        }
    }
}
