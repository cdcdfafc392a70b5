//! HTTP to the Debian mirror: one ureq agent with a timeout on every phase, and a quick
//! reachability probe so that "no network" means "offline" rather than a long hang.
//!
//! Plain http is enough: nothing fetched is trusted for where it came from, only for its
//! sha256, which chains up to the OpenPGP-verified InRelease (see `trust.rs`).
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};

pub struct Net {
    agent: ureq::Agent,
}

/// The server answered 404: it does not have the file (Debian drops superseded versions),
/// which is when the next mirror is worth asking. The HTTP client's own error types stay in
/// this file, so callers (the mirror fallback in `cache.rs`) survive a change of client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    pub url: String,
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} answered 404 Not Found", self.url)
    }
}

impl std::error::Error for NotFound {}

/// Is `e` (or what it wraps) a `NotFound`?
pub fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<NotFound>().is_some())
}

fn get_error(url: &str, e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::StatusCode(404) => NotFound {
            url: url.to_owned(),
        }
        .into(),
        e => anyhow::Error::new(e).context(format!("downloading {url}")),
    }
}

impl Default for Net {
    fn default() -> Self {
        Net::new()
    }
}

impl Net {
    pub fn new() -> Net {
        let agent = ureq::Agent::config_builder()
            .timeout_resolve(Some(Duration::from_secs(15)))
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_send_request(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            // A stalled transfer fails after 60 s without a byte; a whole request after 15 min.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .timeout_global(Some(Duration::from_secs(900)))
            .user_agent(concat!("fluxion-xtask/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Net { agent }
    }

    /// GET `url` into memory, refusing more than `limit` bytes.
    pub fn get_bytes(&self, url: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
        let mut resp = self.agent.get(url).call().map_err(|e| get_error(url, e))?;
        resp.body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .with_context(|| format!("downloading {url}"))
    }

    /// GET `url` and stream it into `out`, calling `progress` with each chunk's length.
    /// Stops reading after `limit` bytes (the caller knows the expected size).
    pub fn get_to(
        &self,
        url: &str,
        out: &mut impl Write,
        limit: u64,
        mut progress: impl FnMut(u64),
    ) -> anyhow::Result<u64> {
        let resp = self.agent.get(url).call().map_err(|e| get_error(url, e))?;
        let mut body = resp.into_body().into_reader().take(limit + 1);
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = body
                .read(&mut buf)
                .with_context(|| format!("downloading {url}"))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
            total += n as u64;
            progress(n as u64);
        }
        Ok(total)
    }
}

/// Can we open a TCP connection to the mirror's host within a few seconds? When not, the
/// build behaves as if `--offline` was given (issue 3).
pub fn probe(mirror: &str) -> anyhow::Result<()> {
    let rest = mirror
        .strip_prefix("http://")
        .map(|r| (r, 80))
        .or_else(|| mirror.strip_prefix("https://").map(|r| (r, 443)));
    let Some((rest, default_port)) = rest else {
        bail!("mirror {mirror:?} is not an http(s) URL");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse().expect("checked")),
        _ => (authority, default_port),
    };
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}"))?
        .collect();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e).with_context(|| format!("connecting to {host}:{port}")),
        None => bail!("{host} resolved to no address"),
    }
}
