//! Pushing images to a registry over the OCI distribution API (distribution-spec spec.md):
//! HEAD each blob and upload only what is missing, then manifests by digest, then the index,
//! tags last — an interrupted push never leaves a tag pointing at something incomplete, and
//! re-running it finishes the job.
//!
//! Why reqwest (blocking) and not the `oci-client` crate: we push *our* bytes — the canonical
//! JSON whose digests `image` printed and the layouts carry — streamed from the blob store,
//! and we must count what a HEAD let us skip. oci-client is async-only (tokio for a strictly
//! sequential job), holds whole layers in memory and its high-level push re-serialises
//! manifests; the raw distribution calls it would leave us are the few requests below.
use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine as _;
use reqwest::blocking::{Body, Client as Http, RequestBuilder, Response};
use reqwest::header::{
    HeaderMap, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};

use crate::image::index::MultiArch;
use crate::image::store::Blob;

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

/// A client for one repository on one registry.
pub struct Repo {
    http: Http,
    base: String,
    pub reference: Reference,
    creds: Option<Credentials>,
    auth: Option<String>,
}

impl Repo {
    pub fn connect(
        reference: &Reference,
        creds: Option<Credentials>,
        insecure: bool,
    ) -> anyhow::Result<Repo> {
        let http = Http::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(600))
            .build()
            .context("creating the HTTP client")?;
        let mut repo = Repo {
            http,
            base: format!("{}://{}", reference.scheme(insecure), reference.registry),
            reference: reference.clone(),
            creds,
            auth: None,
        };
        // distribution-spec "end-1": GET /v2/ answers 200 or 401 with the auth challenge;
        // answering the challenge up front lets upload bodies stream without a retry.
        let ping = repo
            .http
            .get(format!("{}/v2/", repo.base))
            .send()
            .with_context(|| format!("cannot reach the registry at {}/v2/ (is it running? https-only registries need no --insecure)", repo.base))?;
        if ping.status() == StatusCode::UNAUTHORIZED {
            repo.authenticate(ping.headers())?;
        } else if !ping.status().is_success() {
            bail!(
                "{}/v2/ answered {}; is this an OCI registry?",
                repo.base,
                ping.status()
            );
        }
        Ok(repo)
    }

    fn authenticate(&mut self, headers: &HeaderMap) -> anyhow::Result<()> {
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
                self.reference.registry, self.reference.registry
            )
        };
        self.auth = Some(match challenge {
            Challenge::Basic => {
                let c = self.creds.as_ref().with_context(need_creds)?;
                basic(c)
            }
            Challenge::Bearer(params) => {
                let realm = params
                    .get("realm")
                    .context("bearer challenge without realm")?;
                let scope = format!("repository:{}:pull,push", self.reference.repository);
                let mut req = self.http.get(realm).query(&[("scope", scope.as_str())]);
                if let Some(service) = params.get("service") {
                    req = req.query(&[("service", service.as_str())]);
                }
                if let Some(c) = &self.creds {
                    req = req.header(AUTHORIZATION, basic(c));
                }
                let resp = req
                    .send()
                    .with_context(|| format!("requesting a token from {realm}"))?;
                if !resp.status().is_success() {
                    let status = resp.status();
                    if self.creds.is_none() {
                        bail!(
                            "token request to {realm} failed ({status}); {}",
                            need_creds()
                        );
                    }
                    bail!("token request to {realm} failed ({status}); check the credentials and that they may push to {}", self.reference);
                }
                let body: serde_json::Value = serde_json::from_str(&resp.text()?)
                    .context("the token response is not JSON")?;
                let token = body
                    .get("token")
                    .or_else(|| body.get("access_token"))
                    .and_then(|t| t.as_str())
                    .context("the token response holds no token")?;
                format!("Bearer {token}")
            }
        });
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.reference.repository)
    }

    /// Send a request (rebuilt by `make` for the retry); a 401 triggers one re-authentication.
    fn send(
        &mut self,
        make: &dyn Fn(&Http) -> anyhow::Result<RequestBuilder>,
    ) -> anyhow::Result<Response> {
        for attempt in 0..2 {
            let mut req = make(&self.http)?;
            if let Some(a) = &self.auth {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = req.send()?;
            if resp.status() == StatusCode::UNAUTHORIZED {
                if attempt == 0 {
                    // A bearer token may have expired or lack this scope: ask again, once.
                    self.authenticate(resp.headers())?;
                    continue;
                }
                bail!(
                    "{} refused the credentials (401 after authenticating); check the user \
                     and password/token and that they may push to {}",
                    self.reference.registry,
                    self.reference
                );
            }
            return Ok(resp);
        }
        unreachable!("the loop returns on its second pass")
    }

    /// HEAD /v2/<name>/blobs/<digest>: does the registry have it?
    pub fn has_blob(&mut self, blob: &Blob) -> anyhow::Result<bool> {
        let url = self.url(&format!("blobs/{}", blob.digest));
        let resp = self
            .send(&|h| Ok(h.head(&url)))
            .with_context(|| format!("checking blob {} on {}", blob.digest, self.reference))?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => bail!("HEAD {url} answered {s}"),
        }
    }

    /// Monolithic upload (distribution-spec "POST then PUT"): POST opens a session, PUT with
    /// `?digest=` streams the bytes from the store and closes it.
    pub fn upload_blob(&mut self, blob: &Blob) -> anyhow::Result<()> {
        let name = self.reference.to_string();
        let what = || format!("uploading blob {} to {name}", blob.digest);
        let start = self.url("blobs/uploads/");
        let resp = self
            .send(&|h| Ok(h.post(&start).header(CONTENT_LENGTH, 0)))
            .with_context(what)?;
        if resp.status() != StatusCode::ACCEPTED {
            bail!(
                "{}: POST {start} answered {}: {}",
                what(),
                resp.status(),
                body_text(resp)
            );
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .with_context(|| format!("{}: no Location in the upload session answer", what()))?;
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_owned()
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={}", blob.digest);
        let path = blob.path.clone();
        let size = blob.size;
        let resp = self
            .send(&|h| {
                let file = std::fs::File::open(&path)
                    .with_context(|| format!("opening blob {}", path.display()))?;
                Ok(h.put(&put)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(Body::sized(file, size)))
            })
            .with_context(what)?;
        created_with_digest(resp, &blob.digest).with_context(what)
    }

    /// PUT /v2/<name>/manifests/<reference> with the manifest's own media type; the
    /// registry's Docker-Content-Digest must be ours (else it rewrote or mis-hashed it).
    pub fn put_manifest(&mut self, reference: &str, manifest: &Blob) -> anyhow::Result<()> {
        let name = self.reference.to_string();
        let what = || format!("putting manifest {} as {name}:{reference}", manifest.digest);
        let bytes = std::fs::read(&manifest.path)
            .with_context(|| format!("reading manifest {}", manifest.path.display()))?;
        let url = self.url(&format!("manifests/{reference}"));
        let media_type = manifest.media_type.clone();
        let resp = self
            .send(&|h| {
                Ok(h.request(Method::PUT, &url)
                    .header(CONTENT_TYPE, &media_type)
                    .body(bytes.clone()))
            })
            .with_context(what)?;
        created_with_digest(resp, &manifest.digest).with_context(what)
    }
}

fn basic(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn body_text(resp: Response) -> String {
    let mut s = resp.text().unwrap_or_default();
    s.truncate(500);
    s
}

/// A PUT of content (blob or manifest) must answer 201 Created with our digest.
fn created_with_digest(resp: Response, digest: &str) -> anyhow::Result<()> {
    if resp.status() != StatusCode::CREATED {
        bail!("PUT answered {}: {}", resp.status(), body_text(resp));
    }
    check_digest(&resp, digest)
}

fn check_digest(resp: &Response, ours: &str) -> anyhow::Result<()> {
    let theirs = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|h| h.to_str().ok());
    match theirs {
        Some(d) if d == ours => Ok(()),
        Some(d) => bail!("the registry stored digest {d} but we sent {ours}; it rewrote the content, refusing to tag it"),
        None => bail!("the registry sent no Docker-Content-Digest, so {ours} cannot be verified"),
    }
}

/// What a push did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Digests uploaded, in order (repository-qualified duplicates counted once per repo).
    pub uploaded: Vec<String>,
    pub skipped: Vec<String>,
    pub bytes: u64,
    /// `repo@digest` of every manifest and index put, in order.
    pub manifests: Vec<String>,
    /// `repo:tag` -> digest, written last.
    pub tags: Vec<(String, String)>,
}

/// Push `multi` to `target` under `tags`, and with `per_arch` each image to
/// `<registry>/<dir>/<hass arch>-<name>` too. Order: every blob in every repository, then
/// per-arch manifests by digest, then the index by digest, then the tags.
pub fn push(
    target: &Reference,
    multi: &MultiArch,
    tags: &[String],
    per_arch: bool,
    creds: Option<Credentials>,
    insecure: bool,
) -> anyhow::Result<Report> {
    for t in tags {
        check_tag(t)?;
    }
    let mut report = Report::default();
    let mut main = Repo::connect(target, creds.clone(), insecure)?;
    let mut arch_repos = Vec::new();
    if per_arch {
        for image in &multi.images {
            let r = target.per_arch(image.arch.hass_arch());
            arch_repos.push((image, Repo::connect(&r, creds.clone(), insecure)?));
        }
    }

    // 1. blobs (layers and configs), skipping what each repository already has.
    let all: Vec<&Blob> = multi
        .images
        .iter()
        .flat_map(|i| i.layers.iter().map(|l| &l.blob).chain([&i.config]))
        .collect();
    push_blobs(&mut main, &all, &mut report)?;
    for (image, repo) in &mut arch_repos {
        let blobs: Vec<&Blob> = image
            .layers
            .iter()
            .map(|l| &l.blob)
            .chain([&image.config])
            .collect();
        push_blobs(repo, &blobs, &mut report)?;
    }
    // 2. per-arch manifests, by digest (untagged until step 4).
    for image in &multi.images {
        main.put_manifest(&image.manifest.digest, &image.manifest)?;
        report
            .manifests
            .push(format!("{}@{}", main.reference, image.manifest.digest));
    }
    for (image, repo) in &mut arch_repos {
        repo.put_manifest(&image.manifest.digest, &image.manifest)?;
        report
            .manifests
            .push(format!("{}@{}", repo.reference, image.manifest.digest));
    }
    // 3. the index, by digest: every manifest it lists is now present.
    main.put_manifest(&multi.index.digest, &multi.index)?;
    report
        .manifests
        .push(format!("{}@{}", main.reference, multi.index.digest));
    // 4. tags, last.
    for tag in tags {
        main.put_manifest(tag, &multi.index)?;
        report.tags.push((
            format!("{}:{tag}", main.reference),
            multi.index.digest.clone(),
        ));
    }
    for (image, repo) in &mut arch_repos {
        for tag in tags {
            repo.put_manifest(tag, &image.manifest)?;
            report.tags.push((
                format!("{}:{tag}", repo.reference),
                image.manifest.digest.clone(),
            ));
        }
    }
    Ok(report)
}

fn push_blobs(repo: &mut Repo, blobs: &[&Blob], report: &mut Report) -> anyhow::Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for blob in blobs {
        if !seen.insert(&blob.digest) {
            continue;
        }
        if repo.has_blob(blob)? {
            tracing::debug!(digest = %blob.digest, repo = %repo.reference, "already there");
            report.skipped.push(blob.digest.clone());
        } else {
            tracing::info!(digest = %blob.digest, size = blob.size, repo = %repo.reference, "uploading");
            repo.upload_blob(blob)?;
            report.uploaded.push(blob.digest.clone());
            report.bytes += blob.size;
        }
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
        let local = Reference::parse("127.0.0.1:5000/fluxion").unwrap();
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
