//! Credentials and authentication: where a push's credentials come from (flags, GitLab CI's
//! variables, docker's config.json with its credential helpers), and answering a registry's
//! challenge (RFC 7235 Basic, or distribution's bearer-token flow, with a password or with
//! docker's identity token) with an `Authorization` value. The HTTP exchange itself is the
//! caller's (`client::Repo`, which retries it).
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use base64::Engine as _;

use super::docker_config::DockerConfig;
use super::reference::credential_key;

/// What authenticates us.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// A user and password, or an access token used as the password (GitLab's job token, a
    /// personal access token).
    Password { username: String, password: String },
    /// docker's identity token: an OAuth2 refresh token (a credential helper's username
    /// `<token>`, or `identitytoken` in config.json), exchanged at the token endpoint.
    IdentityToken(String),
}

/// Credentials, and where they came from (named when a registry refuses them).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub secret: Secret,
    /// `--password-stdin`, `CI_REGISTRY_USER/CI_REGISTRY_PASSWORD`, `docker-credential-pass
    /// (credsStore in /home/u/.docker/config.json)`, ...
    pub source: String,
}

impl Credentials {
    pub fn password(username: &str, password: &str, source: &str) -> Credentials {
        Credentials {
            secret: Secret::Password {
                username: username.to_owned(),
                password: password.to_owned(),
            },
            source: source.to_owned(),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Password { username, .. } => {
                write!(
                    f,
                    "Password {{ username: {username:?}, password: <redacted> }}"
                )
            }
            Secret::IdentityToken(_) => write!(f, "IdentityToken(<redacted>)"),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.secret {
            Secret::Password { username, .. } => write!(
                f,
                "Credentials {{ username: {username:?}, password: <redacted>, source: {:?} }}",
                self.source
            ),
            Secret::IdentityToken(_) => write!(
                f,
                "Credentials {{ identity token: <redacted>, source: {:?} }}",
                self.source
            ),
        }
    }
}

/// What `credentials` reads besides the command line: the process environment
/// (`Env::from_process`), or in tests one made up without touching it.
#[derive(Clone, Default)]
pub struct Env {
    /// `CI_REGISTRY_USER`, `CI_REGISTRY_PASSWORD` (both set and non-empty).
    pub ci: Option<(String, String)>,
    /// docker's config directory: `$DOCKER_CONFIG`, else `~/.docker`.
    pub docker_config: Option<PathBuf>,
    /// Where `docker-credential-<name>` helpers are looked for: `$PATH`.
    pub path: Option<OsString>,
}

impl Env {
    pub fn from_process() -> Env {
        let var = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        Env {
            ci: var("CI_REGISTRY_USER").zip(var("CI_REGISTRY_PASSWORD")),
            docker_config: std::env::var_os("DOCKER_CONFIG")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker"))),
            path: std::env::var_os("PATH"),
        }
    }
}

/// Where credentials for `registry` (`host[:port]`) come from, first match wins:
/// `--username` + `--password-stdin`, then GitLab CI's `CI_REGISTRY_USER`/
/// `CI_REGISTRY_PASSWORD`, then docker's config.json as `docker login` left it (its
/// `credHelpers` entry for the registry, else `credsStore`, else `auths`: docker_config.rs).
/// None: anonymous.
pub fn credentials(
    registry: &str,
    username: Option<String>,
    password_stdin: Option<&mut dyn Read>,
) -> anyhow::Result<Option<Credentials>> {
    credentials_in(&Env::from_process(), registry, username, password_stdin)
}

/// `credentials` with the environment given.
pub fn credentials_in(
    env: &Env,
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
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                bail!("--password-stdin read an empty password; pipe the token in");
            }
            return Ok(Some(Credentials::password(
                &username,
                password,
                "--username/--password-stdin",
            )));
        }
        (Some(_), None) => {
            bail!("--username needs --password-stdin (passwords never go on the command line)")
        }
        (None, Some(_)) => bail!("--password-stdin needs --username"),
        (None, None) => {}
    }
    if let Some((user, password)) = &env.ci {
        return Ok(Some(Credentials::password(
            user,
            password,
            "CI_REGISTRY_USER/CI_REGISTRY_PASSWORD",
        )));
    }
    let Some(dir) = &env.docker_config else {
        return Ok(None);
    };
    let Some(config) = DockerConfig::load(dir)? else {
        return Ok(None);
    };
    config.credentials(&credential_key(registry), env.path.as_deref())
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
pub fn basic(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// A request to a bearer challenge's token endpoint, for the caller to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest {
    /// distribution token auth (docker/distribution docs/spec/auth/token.md):
    /// `GET <realm>?service=&scope=...`, Basic credentials when we have a password.
    Get {
        realm: String,
        query: Vec<(String, String)>,
        authorization: Option<String>,
    },
    /// OAuth2 refresh-token grant (docs/spec/auth/oauth.md), as docker sends an identity
    /// token: `POST <realm>`, form `grant_type=refresh_token&refresh_token=..&service=..&
    /// scope=..&client_id=docker`.
    RefreshToken {
        realm: String,
        form: Vec<(String, String)>,
    },
}

impl TokenRequest {
    pub fn realm(&self) -> &str {
        match self {
            TokenRequest::Get { realm, .. } | TokenRequest::RefreshToken { realm, .. } => realm,
        }
    }
}

/// How the token endpoint answered.
pub struct TokenAnswer {
    pub status: u16,
    pub body: String,
}

/// The `Authorization` value that answers a registry's 401 `WWW-Authenticate` header (`None`
/// when it sent none) for `scopes` (`repository:<name>:pull,push`, and `repository:<from>:pull`
/// for a repository we mount from): Basic with a password, or a bearer token from the
/// challenge's realm, fetched with `fetch`.
pub fn authorize(
    www_authenticate: Option<&str>,
    registry: &str,
    scopes: &[String],
    creds: Option<&Credentials>,
    fetch: impl FnOnce(&TokenRequest) -> anyhow::Result<TokenAnswer>,
) -> anyhow::Result<String> {
    let header = www_authenticate
        .context("the registry asked for authentication (401) but sent no WWW-Authenticate")?;
    let challenge = parse_challenge(header)
        .with_context(|| format!("unsupported authentication challenge {header:?}"))?;
    let need_creds = || {
        format!(
            "{registry} needs credentials: pass --username and --password-stdin, set \
             CI_REGISTRY_USER/CI_REGISTRY_PASSWORD, or `docker login {registry}`"
        )
    };
    let params = match challenge {
        Challenge::Basic => {
            return match creds.map(|c| (&c.secret, &c.source)) {
                None => bail!("{}", need_creds()),
                Some((Secret::Password { username, password }, _)) => Ok(basic(username, password)),
                Some((Secret::IdentityToken(_), source)) => bail!(
                    "{registry} asks for a user and password (Basic), but the credentials from \
                     {source} are an identity token, which only a token service takes; log in \
                     with a password (`docker login {registry}`) or pass --username and \
                     --password-stdin"
                ),
            };
        }
        Challenge::Bearer(params) => params,
    };
    let realm = params
        .get("realm")
        .context("bearer challenge without realm")?
        .clone();
    let service = params.get("service");
    let request = match creds.map(|c| &c.secret) {
        Some(Secret::IdentityToken(token)) => {
            let mut form = vec![
                ("grant_type".to_owned(), "refresh_token".to_owned()),
                ("refresh_token".to_owned(), token.clone()),
            ];
            if let Some(s) = service {
                form.push(("service".to_owned(), s.clone()));
            }
            // The OAuth2 scope parameter is space-separated (RFC 6749 section 3.3).
            form.push(("scope".to_owned(), scopes.join(" ")));
            // docker's client id (moby registry/auth.go `AuthClientID`); the endpoint
            // requires one.
            form.push(("client_id".to_owned(), "docker".to_owned()));
            TokenRequest::RefreshToken { realm, form }
        }
        secret => {
            let mut query: Vec<(String, String)> = scopes
                .iter()
                .map(|s| ("scope".to_owned(), s.clone()))
                .collect();
            if let Some(s) = service {
                query.push(("service".to_owned(), s.clone()));
            }
            let authorization = match secret {
                Some(Secret::Password { username, password }) => Some(basic(username, password)),
                _ => None,
            };
            TokenRequest::Get {
                realm,
                query,
                authorization,
            }
        }
    };
    let realm = request.realm().to_owned();
    let answer = fetch(&request).with_context(|| format!("requesting a token from {realm}"))?;
    if answer.status != 200 {
        let status = answer.status;
        match creds {
            None => bail!(
                "token request to {realm} failed ({status}); {}",
                need_creds()
            ),
            Some(c) => bail!(
                "token request to {realm} failed ({status}) with the credentials from {}; check \
                 them and that they may push to {registry} ({})",
                c.source,
                scopes.join(", ")
            ),
        }
    }
    let body: serde_json::Value =
        serde_json::from_str(&answer.body).context("the token response is not JSON")?;
    let token = body
        .get("token")
        .or_else(|| body.get("access_token"))
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .context("the token response holds no token")?;
    Ok(format!("Bearer {token}"))
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
    fn password_stdin_rules() {
        let env = Env::default();
        let mut input: &[u8] = b"tok\n";
        let c = credentials_in(&env, "r.io", Some("u".into()), Some(&mut input))
            .unwrap()
            .unwrap();
        assert_eq!(c, Credentials::password("u", "tok", &c.source));
        assert!(credentials_in(&env, "r.io", Some("u".into()), None).is_err());
        let mut empty: &[u8] = b"\n";
        assert!(credentials_in(&env, "r.io", Some("u".into()), Some(&mut empty)).is_err());
        assert_eq!(credentials_in(&env, "r.io", None, None).unwrap(), None);
    }

    #[test]
    fn flags_then_ci_variables_win_over_docker_config() {
        // A docker config that would fail if it were read: flags and CI variables come first.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "not json").unwrap();
        let env = Env {
            ci: Some(("ci-user".into(), "ci-pass".into())),
            docker_config: Some(dir.path().to_owned()),
            path: None,
        };
        let mut stdin: &[u8] = b"flag-pass";
        let c = credentials_in(&env, "r.io", Some("flag-user".into()), Some(&mut stdin))
            .unwrap()
            .unwrap();
        assert_eq!(
            c.secret,
            Credentials::password("flag-user", "flag-pass", "").secret
        );
        let c = credentials_in(&env, "r.io", None, None).unwrap().unwrap();
        assert_eq!(
            c.secret,
            Credentials::password("ci-user", "ci-pass", "").secret
        );
        assert_eq!(c.source, "CI_REGISTRY_USER/CI_REGISTRY_PASSWORD");
        let env = Env { ci: None, ..env };
        let e = credentials_in(&env, "r.io", None, None).unwrap_err();
        assert!(format!("{e:#}").contains("config.json"), "{e:#}");
        assert!(!format!("{c:?}").contains("ci-pass"), "password in Debug");
    }

    fn bearer(service: bool) -> String {
        let s = if service { r#",service="reg""# } else { "" };
        format!(r#"Bearer realm="https://auth/token"{s}"#)
    }

    #[test]
    fn a_password_asks_for_a_token_with_basic_and_every_scope() {
        let creds = Credentials::password("u", "p", "test");
        let scopes = [
            "repository:a/amd64-x:pull,push".to_owned(),
            "repository:a/x:pull".to_owned(),
        ];
        let mut seen = None;
        let auth = authorize(Some(&bearer(true)), "reg", &scopes, Some(&creds), |r| {
            seen = Some(r.clone());
            Ok(TokenAnswer {
                status: 200,
                body: r#"{"token":"t1"}"#.into(),
            })
        })
        .unwrap();
        assert_eq!(auth, "Bearer t1");
        assert_eq!(
            seen.unwrap(),
            TokenRequest::Get {
                realm: "https://auth/token".into(),
                query: vec![
                    ("scope".into(), scopes[0].clone()),
                    ("scope".into(), scopes[1].clone()),
                    ("service".into(), "reg".into()),
                ],
                authorization: Some(basic("u", "p")),
            }
        );
    }

    #[test]
    fn an_identity_token_is_exchanged_as_docker_does() {
        let creds = Credentials {
            secret: Secret::IdentityToken("refresh-1".into()),
            source: "docker-credential-test".into(),
        };
        let scopes = ["repository:a/x:pull,push".to_owned()];
        let mut seen = None;
        let auth = authorize(Some(&bearer(true)), "reg", &scopes, Some(&creds), |r| {
            seen = Some(r.clone());
            Ok(TokenAnswer {
                status: 200,
                body: r#"{"access_token":"acc","refresh_token":"refresh-2"}"#.into(),
            })
        })
        .unwrap();
        assert_eq!(auth, "Bearer acc");
        let TokenRequest::RefreshToken { realm, form } = seen.unwrap() else {
            panic!("an identity token must be exchanged by POST")
        };
        assert_eq!(realm, "https://auth/token");
        let form: BTreeMap<_, _> = form.into_iter().collect();
        assert_eq!(form["grant_type"], "refresh_token");
        assert_eq!(form["refresh_token"], "refresh-1");
        assert_eq!(form["service"], "reg");
        assert_eq!(form["scope"], scopes[0]);
        assert_eq!(form["client_id"], "docker");

        // Basic cannot take an identity token: say so instead of sending it as a password.
        let e = authorize(
            Some("Basic realm=x"),
            "reg",
            &scopes,
            Some(&creds),
            |_| unreachable!(),
        )
        .unwrap_err();
        assert!(
            format!("{e}").contains("identity token") && format!("{e}").contains("test"),
            "{e}"
        );
    }

    #[test]
    fn refused_tokens_say_what_to_do() {
        let scopes = ["repository:a/x:pull,push".to_owned()];
        let refuse = |_: &TokenRequest| {
            Ok(TokenAnswer {
                status: 401,
                body: String::new(),
            })
        };
        let e = authorize(Some(&bearer(false)), "reg", &scopes, None, refuse).unwrap_err();
        assert!(format!("{e}").contains("--password-stdin"), "{e}");
        let creds = Credentials::password("u", "p", "auths in /x/config.json");
        let e = authorize(Some(&bearer(false)), "reg", &scopes, Some(&creds), refuse).unwrap_err();
        assert!(format!("{e}").contains("auths in /x/config.json"), "{e}");
        let e = authorize(None, "reg", &scopes, None, refuse).unwrap_err();
        assert!(format!("{e}").contains("WWW-Authenticate"), "{e}");
    }
}
