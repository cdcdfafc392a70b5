//! The HTTP side of the OCI distribution API for one repository (distribution-spec spec.md):
//! connect (answering the auth challenge up front), HEAD, mount and upload blobs, PUT
//! manifests and tags, and the digest checks on every answer. One request at a time; a 401
//! re-authenticates once. Connection errors and 429/5xx answers are tried again within a bound
//! (retry.rs), logged each time, for requests that are safe to repeat — all of ours: HEAD,
//! GET, a manifest PUT (the same bytes under the same name), and a blob upload, restarted
//! from its POST (a new session: the old one's state is unknown after a failure).
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use ureq::http::{self, Method, Response};
use ureq::{Agent, Body, SendBody};

use super::auth::{self, Credentials, TokenAnswer, TokenRequest};
use super::reference::Reference;
use super::retry::{self, Failure, Retry, Transient};
use crate::image::store::{Blob, VerifyingReader};
use crate::units::human_duration;

/// How a registry is reached: the same for every repository of a push.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub creds: Option<Credentials>,
    /// Plain HTTP to a registry other than localhost/127.0.0.1.
    pub insecure: bool,
    pub retry: Retry,
}

/// The manifest media types we push, for HEAD requests on manifests and tags.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// RFC 3986 query values: everything but the unreserved characters (ALPHA / DIGIT / "-" /
/// "." / "_" / "~", section 2.3) is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `url` with `pairs` appended to its query.
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = url.to_owned();
    for (i, (k, v)) in pairs.iter().enumerate() {
        let sep = if i == 0 && !url.contains('?') {
            '?'
        } else {
            '&'
        };
        out.push(sep);
        out.extend(utf8_percent_encode(k, QUERY_VALUE));
        out.push('=');
        out.extend(utf8_percent_encode(v, QUERY_VALUE));
    }
    out
}

/// The agent for registries: ureq, the xtask's one HTTP stack (see Cargo.toml). 4xx/5xx are
/// answers, judged here, not errors; every phase has a timeout.
fn agent() -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .timeout_resolve(Some(Duration::from_secs(15)))
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_send_request(Some(Duration::from_secs(30)))
        // A registry may hash and move a large blob to its storage before answering the PUT.
        .timeout_recv_response(Some(Duration::from_secs(300)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .user_agent(concat!("fluxion-xtask/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// What a request carries.
#[derive(Clone, Copy)]
enum Payload<'a> {
    None,
    Bytes(&'a [u8]),
    /// Streamed from the store through a hashing reader (opened afresh for each send).
    Blob(&'a Blob),
}

struct Req<'a> {
    method: Method,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Payload<'a>,
}

impl<'a> Req<'a> {
    fn new(method: Method, url: &str) -> Req<'a> {
        Req {
            method,
            url: url.to_owned(),
            headers: Vec::new(),
            body: Payload::None,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Req<'a> {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn body(mut self, body: Payload<'a>) -> Req<'a> {
        self.body = body;
        self
    }

    /// `PUT /v2/x/blobs/uploads/<id>` (the query, an upload session's opaque state, left
    /// out of messages).
    fn shown(&self) -> String {
        let url = self.url.split('?').next().unwrap_or_default();
        format!("{} {url}", self.method)
    }
}

/// A client for one repository on one registry.
pub struct Repo {
    agent: Agent,
    base: String,
    pub reference: Reference,
    creds: Option<Credentials>,
    /// Token scopes: push to this repository, pull from the ones we mount from.
    scopes: Vec<String>,
    auth: Option<String>,
    retry: Retry,
    /// Every retry, as logged.
    pub(super) retries: Vec<String>,
}

/// How a blob got into a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Uploaded,
    /// Cross-repository mount: no bytes sent.
    Mounted,
}

impl Repo {
    /// Reach `reference` (answering its auth challenge up front). `mount_from`: the repository
    /// this one mounts blobs from, whose pull scope is asked for with the token too (a token
    /// scoped to this repository alone would make the registry refuse the mount).
    pub fn connect(
        reference: &Reference,
        access: &Access,
        mount_from: Option<&Reference>,
    ) -> anyhow::Result<Repo> {
        let mut scopes = vec![format!("repository:{}:pull,push", reference.repository)];
        if let Some(from) = mount_from {
            scopes.push(format!("repository:{}:pull", from.repository));
        }
        let mut repo = Repo {
            agent: agent(),
            base: format!(
                "{}://{}",
                reference.scheme(access.insecure),
                reference.api_host()
            ),
            reference: reference.clone(),
            creds: access.creds.clone(),
            scopes,
            auth: None,
            retry: access.retry.clone(),
            retries: Vec::new(),
        };
        // distribution-spec "end-1": GET /v2/ answers 200 or 401 with the auth challenge;
        // answering the challenge up front lets upload bodies stream without a second send.
        let url = format!("{}/v2/", repo.base);
        let what = format!("reaching the registry at {url}");
        repo.retrying(&what, |r| {
            let req = Req::new(Method::GET, &url);
            let resp = r.exchange(&req)?;
            let status = resp.status().as_u16();
            if status == 401 {
                let challenge = header(&resp, "www-authenticate");
                return r.authenticate(challenge.as_deref()).map_err(Failure::Fatal);
            }
            if retry::transient_status(status) {
                return Err(transient(&req, resp));
            }
            if !(200..300).contains(&status) {
                return Err(Failure::Fatal(anyhow!(
                    "{url} answered {}; is this an OCI registry?",
                    answer(resp)
                )));
            }
            Ok(())
        })
        .with_context(|| {
            format!(
                "cannot reach the registry at {url} (is it running? https-only registries need \
                 no --insecure)"
            )
        })?;
        Ok(repo)
    }

    /// The retries so far, one line each as logged.
    pub fn retries(&self) -> &[String] {
        &self.retries
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.reference.repository)
    }

    /// Run `attempt` until it succeeds, fails for good, or the bound is reached: each transient
    /// failure is logged and waited out (back-off or `Retry-After`); past the bound the error
    /// names `what`, the request and its last answer.
    fn retrying<T>(
        &mut self,
        what: &str,
        mut attempt: impl FnMut(&mut Repo) -> Result<T, Failure>,
    ) -> anyhow::Result<T> {
        let mut tries = 0;
        loop {
            tries += 1;
            let last = match attempt(self) {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(t)) => t,
            };
            match self.retry.next(tries, &last) {
                Ok(wait) => {
                    let line = format!(
                        "{what}: {}; trying again in {} (try {} of {})",
                        last.answer,
                        human_duration(wait),
                        tries + 1,
                        self.retry.tries
                    );
                    tracing::warn!("{line}");
                    self.retries.push(line);
                    std::thread::sleep(wait);
                }
                Err(why) => bail!("{what}: {why}; the last answer: {}", last.answer),
            }
        }
    }

    /// One HTTP exchange, with our `Authorization`; transport errors classified.
    fn exchange(&self, req: &Req<'_>) -> Result<Response<Body>, Failure> {
        let mut b = http::Request::builder()
            .method(req.method.clone())
            .uri(&req.url);
        for (k, v) in &req.headers {
            b = b.header(*k, v);
        }
        if let Some(a) = &self.auth {
            b = b.header("authorization", a);
        }
        // Each arm sends its own body type (SendBody's lifetime is invariant).
        fn run(
            agent: &Agent,
            b: http::request::Builder,
            body: impl ureq::AsSendBody,
            req: &Req<'_>,
        ) -> Result<Result<Response<Body>, ureq::Error>, Failure> {
            let request = b
                .body(body)
                .with_context(|| format!("building {}", req.shown()))
                .map_err(Failure::Fatal)?;
            Ok(agent.run(request))
        }
        let result = match req.body {
            Payload::None => {
                if req.method == Method::POST || req.method == Method::PUT {
                    b = b.header("content-length", "0");
                }
                run(&self.agent, b, SendBody::none(), req)?
            }
            // Our Content-Length: ureq then sends the body sized, not chunked, as
            // distribution's monolithic upload wants.
            Payload::Bytes(mut bytes) => {
                b = b.header("content-length", bytes.len().to_string());
                run(&self.agent, b, SendBody::from_reader(&mut bytes), req)?
            }
            Payload::Blob(blob) => {
                let mut reader = VerifyingReader::open(blob)
                    .with_context(|| format!("reading blob {}", blob.digest))
                    .map_err(Failure::Fatal)?;
                b = b.header("content-length", blob.size.to_string());
                run(&self.agent, b, SendBody::from_reader(&mut reader), req)?
            }
        };
        result.map_err(|e| {
            if retry::transient_error(&e) {
                Failure::Transient(Transient {
                    answer: format!("{}: {e}", req.shown()),
                    retry_after: None,
                })
            } else {
                Failure::Fatal(anyhow!(e).context(req.shown()))
            }
        })
    }

    /// `exchange`, answering a 401 by authenticating and sending once more, and turning
    /// 429/5xx into transient failures; any other answer is the caller's to judge.
    fn send(&mut self, req: &Req<'_>) -> Result<Response<Body>, Failure> {
        for attempt in 0..2 {
            let resp = self.exchange(req)?;
            let status = resp.status().as_u16();
            if status == 401 {
                if attempt == 0 {
                    // A bearer token may have expired or lack this scope: ask again, once.
                    let challenge = header(&resp, "www-authenticate");
                    self.authenticate(challenge.as_deref())?;
                    continue;
                }
                return Err(Failure::Fatal(anyhow!(
                    "{} refused the credentials{} (401 after authenticating); check the user \
                     and password/token and that they may push to {}",
                    self.reference.registry,
                    self.creds
                        .as_ref()
                        .map(|c| format!(" from {}", c.source))
                        .unwrap_or_default(),
                    self.reference
                )));
            }
            if retry::transient_status(status) {
                return Err(transient(req, resp));
            }
            return Ok(resp);
        }
        unreachable!("the loop returns on its second pass")
    }

    fn authenticate(&mut self, challenge: Option<&str>) -> anyhow::Result<()> {
        let creds = self.creds.clone();
        let scopes = self.scopes.clone();
        let registry = self.reference.registry.clone();
        let auth = auth::authorize(challenge, &registry, &scopes, creds.as_ref(), |t| {
            self.fetch_token(t)
        })?;
        self.auth = Some(auth);
        Ok(())
    }

    /// Send a token request (retried like the rest), without our registry `Authorization`.
    fn fetch_token(&mut self, t: &TokenRequest) -> anyhow::Result<TokenAnswer> {
        let saved = self.auth.take();
        let what = format!("requesting a token from {}", t.realm());
        let result = self.retrying(&what, |r| {
            let req = match t {
                TokenRequest::Get {
                    realm,
                    query,
                    authorization,
                } => {
                    let pairs: Vec<(&str, &str)> = query
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let req = Req::new(Method::GET, &with_query(realm, &pairs));
                    match authorization {
                        Some(a) => req.header("authorization", a),
                        None => req,
                    }
                }
                TokenRequest::RefreshToken { realm, form } => {
                    let pairs: Vec<(&str, &str)> =
                        form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    // An x-www-form-urlencoded body is a query string without the `?`.
                    let body = with_query("", &pairs)[1..].to_owned();
                    return r.token_post(realm, body);
                }
            };
            let resp = r.exchange(&req)?;
            if retry::transient_status(resp.status().as_u16()) {
                return Err(transient(&req, resp));
            }
            Ok(token_answer(resp))
        });
        self.auth = saved;
        result
    }

    fn token_post(&mut self, realm: &str, form: String) -> Result<TokenAnswer, Failure> {
        let req = Req::new(Method::POST, realm)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Payload::Bytes(form.as_bytes()));
        let resp = self.exchange(&req)?;
        if retry::transient_status(resp.status().as_u16()) {
            return Err(transient(&req, resp));
        }
        Ok(token_answer(resp))
    }

    /// HEAD /v2/<name>/blobs/<digest>: does the registry have it?
    pub fn has_blob(&mut self, blob: &Blob) -> anyhow::Result<bool> {
        let url = self.url(&format!("blobs/{}", blob.digest));
        let what = format!("checking blob {} on {}", blob.digest, self.reference);
        self.retrying(&what, |r| {
            let resp = r.send(&Req::new(Method::HEAD, &url))?;
            match resp.status().as_u16() {
                200..=299 => Ok(true),
                404 => Ok(false),
                _ => Err(Failure::Fatal(anyhow!(
                    "{what}: HEAD {url} answered {}",
                    answer(resp)
                ))),
            }
        })
    }

    /// Put a blob the repository lacks. Without `from`: a monolithic upload (distribution-spec
    /// "POST then PUT": POST opens a session, PUT with `?digest=` streams the bytes from the
    /// store and closes it). With `from`: a cross-repository mount (distribution-spec
    /// "Mounting a blob from another repository": `POST /v2/<name>/blobs/uploads/?mount=
    /// <digest>&from=<repository>`); 201 is a mount, 202 an upload session the registry opened
    /// instead (it may not mount, or the blob is not there), which the blob is then uploaded to.
    pub fn put_blob(&mut self, blob: &Blob, from: Option<&Reference>) -> anyhow::Result<Sent> {
        let name = self.reference.to_string();
        let what = match from {
            None => format!("uploading blob {} to {name}", blob.digest),
            Some(f) => format!("mounting blob {} from {f} into {name}", blob.digest),
        };
        // Refuse a corrupt store blob before opening an upload session for it.
        VerifyingReader::open(blob)?
            .finish()
            .with_context(|| what.clone())?;
        let start = self.url("blobs/uploads/");
        let start = match from {
            None => start,
            Some(f) => with_query(&start, &[("mount", &blob.digest), ("from", &f.repository)]),
        };
        let base = self.base.clone();
        self.retrying(&what, |r| {
            let post = Req::new(Method::POST, &start);
            let resp = r.send(&post)?;
            match resp.status().as_u16() {
                201 if from.is_some() => {
                    // The registry answers the mounted blob's digest (distribution does; the
                    // spec asks only for a Location): it must be the one we asked for.
                    return match header(&resp, "docker-content-digest") {
                        Some(d) if d != blob.digest => Err(Failure::Fatal(anyhow!(
                            "{what}: the registry mounted {d}, not {}",
                            blob.digest
                        ))),
                        _ => Ok(Sent::Mounted),
                    };
                }
                202 => {}
                _ => {
                    return Err(Failure::Fatal(anyhow!(
                        "{what}: {} answered {}",
                        post.shown(),
                        answer(resp)
                    )))
                }
            }
            let location = header(&resp, "location").ok_or_else(|| {
                Failure::Fatal(anyhow!("{what}: no Location in the upload session answer"))
            })?;
            let location = if location.starts_with('/') {
                format!("{base}{location}")
            } else {
                location
            };
            let put = with_query(&location, &[("digest", &blob.digest)]);
            // Hashed as it streams: bytes that are not the blob's end the upload with an
            // error naming the blob (and the registry checks ?digest= itself).
            let req = Req::new(Method::PUT, &put)
                .header("content-type", "application/octet-stream")
                .body(Payload::Blob(blob));
            let resp = r.send(&req)?;
            created_with_digest(resp, &blob.digest)
                .with_context(|| what.clone())
                .map_err(Failure::Fatal)?;
            Ok(Sent::Uploaded)
        })
    }

    /// HEAD /v2/<name>/manifests/<reference>: the digest it names, None when absent. Only a
    /// diagnostic: an answer we cannot read is `Err` for the caller to word.
    fn manifest_digest(&mut self, reference: &str) -> anyhow::Result<Option<String>> {
        let url = self.url(&format!("manifests/{reference}"));
        let what = format!("checking {}:{reference}", self.reference);
        self.retrying(&what, |r| {
            let resp = r.send(&Req::new(Method::HEAD, &url).header("accept", MANIFEST_ACCEPT))?;
            match resp.status().as_u16() {
                404 => Ok(None),
                200..=299 => header(&resp, "docker-content-digest")
                    .map(Some)
                    .ok_or_else(|| Failure::Fatal(anyhow!("no Docker-Content-Digest"))),
                _ => Err(Failure::Fatal(anyhow!("HEAD answered {}", answer(resp)))),
            }
        })
    }

    /// PUT /v2/<name>/manifests/<digest>: an untagged manifest or index. The registry's
    /// Docker-Content-Digest must be ours (else it rewrote or mis-hashed it), which stops the
    /// push before any tag moves.
    pub fn put_manifest(&mut self, digest: &str, manifest: &Blob) -> anyhow::Result<()> {
        let what = format!(
            "putting manifest {} as {}@{digest}",
            manifest.digest, self.reference
        );
        let stored = self.put(digest, manifest, &what)?;
        let ours = &manifest.digest;
        match stored {
            Some(d) if d == *ours => Ok(()),
            Some(theirs) => bail!(
                "{what}: the registry stored digest {theirs} but we sent {ours}; it rewrote the \
                 content, refusing to tag it"
            ),
            None => bail!(
                "{what}: the registry sent no Docker-Content-Digest, so {ours} cannot be verified"
            ),
        }
    }

    /// PUT /v2/<name>/manifests/<tag>: the same bytes, already pushed and checked by digest,
    /// now under a tag. The registry moves the tag before it answers, so a digest that is not
    /// ours is reported with what the tag points at now, what it pointed at before (a HEAD
    /// just before the PUT) and how to put it back.
    pub fn put_tag(&mut self, tag: &str, manifest: &Blob) -> anyhow::Result<()> {
        let name = self.reference.to_string();
        let what = format!("tagging {} as {name}:{tag}", manifest.digest);
        let before = self.manifest_digest(tag);
        let stored = self.put(tag, manifest, &what)?;
        let ours = &manifest.digest;
        match stored {
            Some(d) if d == *ours => Ok(()),
            Some(theirs) => bail!("{}", moved_tag_message(&name, tag, ours, &theirs, before)),
            None => bail!(
                "{what}: the registry sent no Docker-Content-Digest, so what {name}:{tag} now \
                 points at cannot be verified against {ours}; check it with `skopeo inspect \
                 --raw docker://{name}:{tag}`"
            ),
        }
    }

    /// PUT /v2/<name>/manifests/<reference> with the manifest's own media type: the digest
    /// the registry answers (Docker-Content-Digest), if any.
    fn put(
        &mut self,
        reference: &str,
        manifest: &Blob,
        what: &str,
    ) -> anyhow::Result<Option<String>> {
        let mut bytes = Vec::with_capacity(manifest.size as usize);
        std::io::Read::read_to_end(&mut VerifyingReader::open(manifest)?, &mut bytes)
            .with_context(|| what.to_owned())?;
        let url = self.url(&format!("manifests/{reference}"));
        let media_type = manifest.media_type.clone();
        self.retrying(what, |r| {
            let req = Req::new(Method::PUT, &url)
                .header("content-type", &media_type)
                .body(Payload::Bytes(&bytes));
            let resp = r.send(&req)?;
            if resp.status().as_u16() != 201 {
                return Err(Failure::Fatal(anyhow!(
                    "{what}: PUT answered {}",
                    answer(resp)
                )));
            }
            Ok(header(&resp, "docker-content-digest"))
        })
    }
}

/// What a GET answered: its status and body.
pub struct Got {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Repo {
    /// GET /v2/<name>/<path> accepting `accept` (a manifest by tag, the referrers API): the
    /// status and body (at most 4 MiB), for the caller to judge (referrer.rs); 429/5xx are
    /// retried like every request.
    pub fn get(&mut self, path: &str, accept: &str) -> anyhow::Result<Got> {
        let url = self.url(path);
        let what = format!("GET {url}");
        self.retrying(&what, |r| {
            let mut resp = r.send(&Req::new(Method::GET, &url).header("accept", accept))?;
            let status = resp.status().as_u16();
            let body = resp
                .body_mut()
                .with_config()
                .limit(4 << 20)
                .read_to_vec()
                .map_err(|e| Failure::Fatal(anyhow!("{what}: reading the answer: {e}")))?;
            Ok(Got { status, body })
        })
    }
}

/// The tag PUT was answered with another digest than ours: the tag has moved to what the
/// registry stored instead.
fn moved_tag_message(
    name: &str,
    tag: &str,
    ours: &str,
    theirs: &str,
    before: anyhow::Result<Option<String>>,
) -> String {
    let remove = format!("`skopeo delete docker://{name}@{theirs}` deletes the rewritten manifest");
    let (was, fix) = match before {
        Ok(Some(prev)) if prev == theirs => (
            "it already pointed there before this push".to_owned(),
            remove,
        ),
        Ok(Some(prev)) => (
            format!("before this push it pointed at {prev}"),
            format!(
                "put it back with `skopeo copy --all --preserve-digests docker://{name}@{prev} \
                 docker://{name}:{tag}`, or {remove}"
            ),
        ),
        Ok(None) => (
            "it did not exist before this push".to_owned(),
            format!("remove it: {remove}"),
        ),
        Err(e) => (
            format!("what it pointed at before is unknown ({e:#})"),
            format!("re-point it at the release it should name, or {remove}"),
        ),
    };
    format!(
        "the registry answered the tag PUT of {name}:{tag} with digest {theirs}, not {ours} (the \
         index we built and pushed by digest): it rewrote the manifest, so the tag {name}:{tag} \
         now points at {theirs}, which Supervisor would pull; {was}. No further tag was written. \
         To fix: {fix}; then push to a registry that stores manifests as sent (check what it serves with \
         `skopeo inspect --raw docker://{name}:{tag}`)"
    )
}

fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
}

/// `503 Service Unavailable: <the start of the body>` (the body consumed).
fn answer(mut resp: Response<Body>) -> String {
    let status = resp.status();
    let mut s = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    );
    if let Some(after) = header(&resp, "retry-after") {
        s.push_str(&format!(" (Retry-After: {after})"));
    }
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    let body = body.trim();
    if !body.is_empty() {
        let cut: String = body.chars().take(300).collect();
        s.push_str(": ");
        s.push_str(&cut);
    }
    s
}

fn transient(req: &Req<'_>, resp: Response<Body>) -> Failure {
    let retry_after = header(&resp, "retry-after")
        .and_then(|v| retry::parse_retry_after(&v, std::time::SystemTime::now()));
    Failure::Transient(Transient {
        answer: format!("{} answered {}", req.shown(), answer(resp)),
        retry_after,
    })
}

fn token_answer(mut resp: Response<Body>) -> TokenAnswer {
    TokenAnswer {
        status: resp.status().as_u16(),
        body: resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default(),
    }
}

/// A PUT of content (blob or manifest) must answer 201 Created with our digest.
fn created_with_digest(resp: Response<Body>, digest: &str) -> anyhow::Result<()> {
    if resp.status().as_u16() != 201 {
        bail!("PUT answered {}", answer(resp));
    }
    match header(&resp, "docker-content-digest") {
        Some(d) if d == digest => Ok(()),
        Some(d) => bail!(
            "the registry stored digest {d} but we sent {digest}; it rewrote the content, \
             refusing to tag it"
        ),
        None => {
            bail!("the registry sent no Docker-Content-Digest, so {digest} cannot be verified")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            with_query(
                "http://r/v2/a/blobs/uploads/",
                &[("mount", "sha256:ab"), ("from", "owner/fluxion")]
            ),
            "http://r/v2/a/blobs/uploads/?mount=sha256%3Aab&from=owner%2Ffluxion"
        );
        assert_eq!(
            with_query("/u/1?_state=x", &[("digest", "sha256:0")]),
            "/u/1?_state=x&digest=sha256%3A0"
        );
        assert_eq!(
            with_query("", &[("scope", "repository:a:pull push")]),
            "?scope=repository%3Aa%3Apull%20push"
        );
    }

    #[test]
    fn a_moved_tag_says_where_it_points_and_how_to_put_it_back() {
        let m = moved_tag_message(
            "r/x",
            "1.0",
            "sha256:ours",
            "sha256:theirs",
            Ok(Some("sha256:prev".into())),
        );
        for needle in [
            "now points at sha256:theirs",
            "before this push it pointed at sha256:prev",
            "skopeo copy --all --preserve-digests docker://r/x@sha256:prev docker://r/x:1.0",
            "skopeo delete docker://r/x@sha256:theirs",
            "No further tag",
        ] {
            assert!(m.contains(needle), "{needle:?} missing: {m}");
        }
        let m = moved_tag_message("r/x", "1.0", "sha256:o", "sha256:t", Ok(None));
        assert!(m.contains("did not exist before"), "{m}");
        assert!(m.contains("remove it: `skopeo delete"), "{m}");
    }
}
