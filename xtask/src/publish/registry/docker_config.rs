//! docker's `config.json` as `docker login` leaves it, read as the docker CLI reads it
//! (docker/cli `cli/config/configfile/file.go` `GetCredentialsStore`, `credentials/
//! native_store.go`, `credentials/file_store.go`): the registry's `credHelpers` entry, else
//! `credsStore`, each a `docker-credential-<name>` program spoken to with the credential-helpers
//! protocol (docker/docker-credential-helpers `client/client.go`: `get`, the server URL on
//! stdin, `{"ServerURL","Username","Secret"}` JSON on stdout, the username `<token>` meaning
//! the secret is an identity token; a failure is a non-zero exit with the message on stdout);
//! else the `auths` entry (`auth`: base64 `user:password`, or `identitytoken`).
//!
//! Hand-written rather than taken from the `docker_credential` crate (1.4, evaluated for this):
//! it asks `auths` before `credsStore`, where docker asks the store first (`docker login` with a
//! store leaves `auths` entries empty or stale, so the crate finds the wrong ones); it turns a
//! helper's "credentials not found" into an error where docker carries on anonymously; and its
//! `HelperCommunicationError` drops the cause (helper not on PATH, cannot start), so the
//! message could not say what to fix. What it does is ~100 lines here.
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use base64::Engine as _;
use serde::Deserialize;

use super::auth::{Credentials, Secret};
use crate::host;

/// A helper's answer when it holds nothing for the server (docker-credential-helpers
/// `credentials.errCredentialsNotFoundMessage`): docker then goes on without credentials.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// The parts of config.json that hold credentials.
#[derive(Debug, Default, Deserialize)]
pub struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(rename = "credsStore", default)]
    creds_store: Option<String>,
    #[serde(rename = "credHelpers", default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(skip)]
    path: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl DockerConfig {
    /// `<dir>/config.json`, or None when there is none.
    pub fn load(dir: &Path) -> anyhow::Result<Option<DockerConfig>> {
        let path = dir.join("config.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => DockerConfig::parse(&text, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// config.json's text, read from `path` (named in messages).
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<DockerConfig> {
        let mut c: DockerConfig = serde_json::from_str(text).with_context(|| {
            format!(
                "{} is not a docker config (JSON with auths, credsStore, credHelpers)",
                path.display()
            )
        })?;
        c.path = path.to_owned();
        Ok(c)
    }

    /// The credentials docker would use for `key` (`Reference::credential_key`), helpers
    /// looked up on `search_path` (a PATH value).
    pub fn credentials(
        &self,
        key: &str,
        search_path: Option<&OsStr>,
    ) -> anyhow::Result<Option<Credentials>> {
        let shown = self.path.display();
        // docker: the registry's credHelpers entry, even an empty one (which means "the file",
        // overriding credsStore); else credsStore; else the file's auths.
        let helper = match self.cred_helpers.get(key) {
            Some(h) => Some((h.as_str(), format!("credHelpers[{key:?}] in {shown}"))),
            None => self
                .creds_store
                .as_deref()
                .map(|s| (s, format!("credsStore in {shown}"))),
        };
        match helper {
            Some((name, why)) if !name.is_empty() => helper_get(name, key, search_path, &why),
            _ => self.auths_entry(key),
        }
    }

    /// The `auths` entry for `key`: exact, else the first whose key names the same host
    /// (`https://host/v1/` as older tools wrote it; docker/cli `ConvertToHostname`).
    pub fn auths_entry(&self, key: &str) -> anyhow::Result<Option<Credentials>> {
        let host_of = |k: &str| {
            k.trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        let entry = self.auths.get(key).or_else(|| {
            self.auths
                .iter()
                .find(|(k, _)| host_of(k) == key)
                .map(|e| e.1)
        });
        let Some(entry) = entry else {
            return Ok(None);
        };
        let source = format!("auths[{key:?}] in {}", self.path.display());
        if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials {
                secret: Secret::IdentityToken(token.to_owned()),
                source,
            }));
        }
        let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
            // `{}`: what `docker login` leaves beside a credential store.
            return Ok(None);
        };
        let fix = format!("run `docker login {key}` again");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .with_context(|| format!("{source}: `auth` is not base64; {fix}"))?;
        let raw = String::from_utf8(raw)
            .with_context(|| format!("{source}: `auth` is not UTF-8; {fix}"))?;
        let Some((username, password)) = raw.split_once(':') else {
            bail!("{source}: `auth` is not `user:password`; {fix}");
        };
        Ok(Some(Credentials::password(username, password, &source)))
    }
}

/// The `auths` entry for `registry` in a docker config.json's text.
pub fn docker_config_auth(text: &str, registry: &str) -> anyhow::Result<Option<Credentials>> {
    DockerConfig::parse(text, Path::new("config.json"))?.auths_entry(registry)
}

/// `docker-credential-<name> get` for `server`; `why` says which config entry named it.
pub fn helper_get(
    name: &str,
    server: &str,
    search_path: Option<&OsStr>,
    why: &str,
) -> anyhow::Result<Option<Credentials>> {
    let program = format!("docker-credential-{name}");
    let Some(exe) = search_path.and_then(|p| host::which_in(&program, p)) else {
        bail!(
            "{why} names the credential helper {name:?}, but {program} is not on PATH: install \
             it, or `docker login {server}` without it, or pass --username and --password-stdin"
        );
    };
    let mut child = Command::new(&exe)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} get ({why})", exe.display()))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // A helper that exits without reading closes the pipe; its exit status tells the rest.
    if let Err(e) = stdin.write_all(server.as_bytes()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).with_context(|| format!("writing to {program} get"));
        }
    }
    drop(stdin);
    let out = child
        .wait_with_output()
        .with_context(|| format!("running {program} get"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if stdout.trim() == NOT_FOUND {
            tracing::debug!(helper = %program, server, "the credential helper holds nothing");
            return Ok(None);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said: Vec<&str> = [stdout.trim(), stderr.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        bail!(
            "the credential helper {program} ({why}) failed for {server} ({}){}; fix the \
             helper or `docker login {server}` again, or pass --username and --password-stdin",
            out.status,
            if said.is_empty() {
                String::new()
            } else {
                format!(": {}", said.join(" / "))
            }
        );
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let a: Answer = serde_json::from_str(&stdout).with_context(|| {
        format!(
            "the credential helper {program} ({why}) printed no {{\"Username\", \"Secret\"}} \
             JSON for {server}"
        )
    })?;
    if a.secret.is_empty() {
        return Ok(None);
    }
    let source = format!("{program} ({why})");
    // docker-credential-helpers: the username `<token>` marks an identity token.
    Ok(Some(if a.username == "<token>" {
        Credentials {
            secret: Secret::IdentityToken(a.secret),
            source,
        }
    } else {
        Credentials::password(&a.username, &a.secret, &source)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn reads_auths_as_docker_writes_them() {
        let text = format!(
            r#"{{"auths":{{"https://ghcr.io":{{"auth":"{}"}},"other.io":{{}},
                "tok.io":{{"identitytoken":"rt"}}}}}}"#,
            b64("bob:s3cr:et")
        );
        let c = docker_config_auth(&text, "ghcr.io").unwrap().unwrap();
        assert_eq!(c, Credentials::password("bob", "s3cr:et", &c.source));
        assert_eq!(docker_config_auth(&text, "other.io").unwrap(), None);
        assert_eq!(docker_config_auth(&text, "quay.io").unwrap(), None);
        let t = docker_config_auth(&text, "tok.io").unwrap().unwrap();
        assert_eq!(t.secret, Secret::IdentityToken("rt".into()));
        assert!(docker_config_auth(r#"{"auths":{"q.io":{"auth":"!!"}}}"#, "q.io").is_err());
        assert!(!format!("{c:?}").contains("s3cr"), "password in Debug");
    }

    #[test]
    fn helpers_come_before_auths_as_in_docker() {
        let text = format!(
            r#"{{"auths":{{"a.io":{{"auth":"{}"}},"b.io":{{"auth":"{}"}}}},
                "credsStore":"nope","credHelpers":{{"b.io":""}}}}"#,
            b64("a:1"),
            b64("b:2")
        );
        let c = DockerConfig::parse(&text, Path::new("/x/config.json")).unwrap();
        // credsStore wins over auths: its helper is looked for (and is not on this PATH).
        let e = c.credentials("a.io", Some(OsStr::new(""))).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("docker-credential-nope is not on PATH")
                && msg.contains("credsStore in /x/config.json"),
            "{msg}"
        );
        // An empty credHelpers entry means the file, even with a credsStore.
        let b = c.credentials("b.io", None).unwrap().unwrap();
        assert_eq!(b.secret, Credentials::password("b", "2", "").secret);
    }
}
