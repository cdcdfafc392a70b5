//! Credentials and authentication: where a push's credentials come from (flags, GitLab CI's
//! variables, docker's config.json), and answering a registry's challenge (RFC 7235 Basic, or
//! distribution's bearer-token flow) with an `Authorization` value.
use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{bail, Context};
use base64::Engine as _;
use reqwest::blocking::Client as Http;
use reqwest::header::{HeaderMap, AUTHORIZATION, WWW_AUTHENTICATE};

use super::reference::Reference;

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: <redacted> }}",
            self.username
        )
    }
}

/// Where credentials come from, first match wins: `--username` + `--password-stdin`, then
/// GitLab CI's `CI_REGISTRY_USER`/`CI_REGISTRY_PASSWORD`, then `auths` in docker's
/// config.json (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`). None: anonymous.
pub fn credentials(
    registry: &str,
    username: Option<String>,
    password_stdin: Option<&mut dyn Read>,
) -> anyhow::Result<Option<Credentials>> {
    match (username, password_stdin) {
        (Some(username), Some(stdin)) => {
            let mut password = String::new();
            stdin
                .read_to_string(&mut password)
                .context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']).to_owned();
            if password.is_empty() {
                bail!("--password-stdin read an empty password; pipe the token in");
            }
            return Ok(Some(Credentials { username, password }));
        }
        (Some(_), None) => {
            bail!("--username needs --password-stdin (passwords never go on the command line)")
        }
        (None, Some(_)) => bail!("--password-stdin needs --username"),
        (None, None) => {}
    }
    if let (Ok(username), Ok(password)) = (
        std::env::var("CI_REGISTRY_USER"),
        std::env::var("CI_REGISTRY_PASSWORD"),
    ) {
        if !username.is_empty() && !password.is_empty() {
            return Ok(Some(Credentials { username, password }));
        }
    }
    let config = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => std::path::PathBuf::from(dir).join("config.json"),
        None => match std::env::var_os("HOME") {
            Some(home) => std::path::PathBuf::from(home)
                .join(".docker")
                .join("config.json"),
            None => return Ok(None),
        },
    };
    let Ok(text) = std::fs::read_to_string(&config) else {
        return Ok(None);
    };
    docker_config_auth(&text, registry)
        .with_context(|| format!("reading auths in {}", config.display()))
}

/// The `auths` entry for `registry` in a docker config.json: `auth` is base64 `user:password`.
pub fn docker_config_auth(text: &str, registry: &str) -> anyhow::Result<Option<Credentials>> {
    let v: serde_json::Value = serde_json::from_str(text).context("it is not valid JSON")?;
    let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    // Keys are written as `host`, `https://host` or `https://host/v1/` depending on the tool.
    let entry = auths.iter().find(|(k, _)| {
        let k = k
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        k.split('/').next() == Some(registry)
    });
    let Some(auth) = entry
        .and_then(|(_, e)| e.get("auth"))
        .and_then(|a| a.as_str())
    else {
        return Ok(None);
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .with_context(|| format!("the auth for {registry} is not base64"))?;
    let raw =
        String::from_utf8(raw).with_context(|| format!("the auth for {registry} is not UTF-8"))?;
    let Some((username, password)) = raw.split_once(':') else {
        bail!("the auth for {registry} is not `user:password`");
    };
    Ok(Some(Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    }))
}

/// A parsed `WWW-Authenticate` challenge (RFC 7235; distribution "token" auth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer(BTreeMap<String, String>),
}

pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    // key="value" pairs; values may contain commas (scope="repository:a:pull,push").
    let mut params = BTreeMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(key, value.to_owned());
        s = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer(params))
}

/// The `Authorization` value of HTTP Basic (RFC 7617).
pub fn basic(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The `Authorization` value that answers the registry's 401 `headers` for pushing to
/// `reference`: Basic with `creds`, or a bearer token fetched from the challenge's realm
/// (distribution "token" auth, scope `repository:<name>:pull,push`).
pub fn authorize(
    http: &Http,
    headers: &HeaderMap,
    reference: &Reference,
    creds: Option<&Credentials>,
) -> anyhow::Result<String> {
    let header = headers
        .get(WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .context("the registry asked for authentication (401) but sent no WWW-Authenticate")?;
    let challenge = parse_challenge(header)
        .with_context(|| format!("unsupported authentication challenge {header:?}"))?;
    let need_creds = || {
        format!(
            "{} needs credentials: pass --username and --password-stdin, set \
             CI_REGISTRY_USER/CI_REGISTRY_PASSWORD, or `docker login {}`",
            reference.registry, reference.registry
        )
    };
    Ok(match challenge {
        Challenge::Basic => basic(creds.with_context(need_creds)?),
        Challenge::Bearer(params) => {
            let realm = params
                .get("realm")
                .context("bearer challenge without realm")?;
            let scope = format!("repository:{}:pull,push", reference.repository);
            let mut req = http.get(realm).query(&[("scope", scope.as_str())]);
            if let Some(service) = params.get("service") {
                req = req.query(&[("service", service.as_str())]);
            }
            if let Some(c) = creds {
                req = req.header(AUTHORIZATION, basic(c));
            }
            let resp = req
                .send()
                .with_context(|| format!("requesting a token from {realm}"))?;
            if !resp.status().is_success() {
                let status = resp.status();
                if creds.is_none() {
                    bail!(
                        "token request to {realm} failed ({status}); {}",
                        need_creds()
                    );
                }
                bail!("token request to {realm} failed ({status}); check the credentials and that they may push to {reference}");
            }
            let body: serde_json::Value =
                serde_json::from_str(&resp.text()?).context("the token response is not JSON")?;
            let token = body
                .get("token")
                .or_else(|| body.get("access_token"))
                .and_then(|t| t.as_str())
                .context("the token response holds no token")?;
            format!("Bearer {token}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges_with_commas_in_quotes() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        let Challenge::Bearer(p) = c else {
            panic!("{c:?}")
        };
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn reads_docker_config_auths() {
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:s3cr:et");
        let text =
            format!(r#"{{"auths":{{"https://ghcr.io":{{"auth":"{auth}"}},"other.io":{{}}}}}}"#);
        let c = docker_config_auth(&text, "ghcr.io").unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("bob", "s3cr:et")
        );
        assert_eq!(docker_config_auth(&text, "other.io").unwrap(), None);
        assert_eq!(docker_config_auth(&text, "quay.io").unwrap(), None);
        assert!(docker_config_auth(r#"{"auths":{"q.io":{"auth":"!!"}}}"#, "q.io").is_err());
        assert!(
            !format!("{c:?}").contains("s3cr"),
            "password leaked into Debug"
        );
    }

    #[test]
    fn password_stdin_rules() {
        let mut input: &[u8] = b"tok\n";
        let c = credentials("r.io", Some("u".into()), Some(&mut input))
            .unwrap()
            .unwrap();
        assert_eq!(c.password, "tok");
        assert!(credentials("r.io", Some("u".into()), None).is_err());
        let mut empty: &[u8] = b"\n";
        assert!(credentials("r.io", Some("u".into()), Some(&mut empty)).is_err());
    }
}
