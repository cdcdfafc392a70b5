//! The HTTP side of the OCI distribution API for one repository (distribution-spec spec.md):
//! connect (answering the auth challenge up front), HEAD/upload blobs, PUT manifests, and the
//! digest checks on every answer. One request at a time; a 401 re-authenticates once.
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::blocking::{Body, Client as Http, RequestBuilder, Response};
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};

use super::auth::{self, Credentials};
use super::reference::Reference;
use crate::image::store::{Blob, VerifyingReader};

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
        self.auth = Some(auth::authorize(
            &self.http,
            headers,
            &self.reference,
            self.creds.as_ref(),
        )?);
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
        // Refuse a corrupt store blob before opening an upload session for it.
        VerifyingReader::open(blob)?.finish().with_context(what)?;
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
        let size = blob.size;
        let resp = self
            .send(&|h| {
                // Hashed as it streams: bytes that are not the blob's end the upload with an
                // error naming the blob, before the registry can commit them.
                let body = VerifyingReader::open(blob)?;
                Ok(h.put(&put)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(Body::sized(body, size)))
            })
            .with_context(what)?;
        created_with_digest(resp, &blob.digest).with_context(what)
    }

    /// PUT /v2/<name>/manifests/<reference> with the manifest's own media type; the
    /// registry's Docker-Content-Digest must be ours (else it rewrote or mis-hashed it).
    pub fn put_manifest(&mut self, reference: &str, manifest: &Blob) -> anyhow::Result<()> {
        let name = self.reference.to_string();
        let what = || format!("putting manifest {} as {name}:{reference}", manifest.digest);
        let mut bytes = Vec::with_capacity(manifest.size as usize);
        std::io::Read::read_to_end(&mut VerifyingReader::open(manifest)?, &mut bytes)
            .with_context(what)?;
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
