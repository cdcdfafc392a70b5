//! `push` as users meet it, against a real registry (Debian `docker-registry` on 127.0.0.1):
//! credentials from a docker credential helper (`credHelpers`, `credsStore`), a flaky
//! connection (resets, 503 with Retry-After) survived within the retry bound and reported past
//! it, `--per-arch-repos` mounting blobs instead of uploading them again (and uploading when
//! the registry will not mount), a registry that rewrites the manifest on the tag PUT, and a
//! manifest `lint` rejects never reaching the registry. The faults come from a small proxy in
//! front of the registry (this file), on loopback.
mod support;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use support::*;
use xtask::image::index::MultiArch;
use xtask::publish::registry::{self, Env};

/// What the proxy does with the next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Forward it to the registry.
    Pass,
    /// Read it, then reset the connection (RST, no answer).
    Reset,
    /// Answer 503 Service Unavailable, with `Retry-After: <s>` when given.
    Unavailable(Option<u64>),
}

/// How the proxy changes what it forwards.
#[derive(Clone, Copy, Debug, Default)]
struct Rewrites {
    /// Drop `?mount=&from=` from upload POSTs: the registry then opens an upload session (202),
    /// as one that does not mount would.
    strip_mount: bool,
    /// Re-serialise the manifest of a PUT by tag (pretty-printed JSON): a registry that
    /// rewrites what it is sent, on the tag PUT only.
    pretty_tags: bool,
}

#[derive(Debug, Default)]
struct Seen {
    /// `METHOD /path` (`?mount` kept, other queries dropped) and the fault applied, in order.
    log: Vec<String>,
    /// Body bytes of the blob uploads forwarded (PUT/PATCH under `/blobs/uploads/`).
    upload_bytes: u64,
}

/// A proxy on 127.0.0.1 in front of `upstream`: applies `plan` to the first requests (one
/// fault each, in order), forwards the rest; one upstream connection per request.
struct Proxy {
    addr: String,
    seen: Arc<Mutex<Seen>>,
}

impl Proxy {
    fn start(upstream: &str, plan: Vec<Fault>, rewrites: Rewrites) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let plan = Arc::new(Mutex::new(VecDeque::from(plan)));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (upstream, s) = (upstream.to_owned(), seen.clone());
        // The accept loop ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let (upstream, plan, seen) = (upstream.clone(), plan.clone(), s.clone());
                std::thread::spawn(move || serve(stream, &upstream, &plan, &seen, rewrites));
            }
        });
        Proxy { addr, seen }
    }

    fn log(&self) -> Vec<String> {
        self.seen.lock().unwrap().log.clone()
    }

    fn upload_bytes(&self) -> u64 {
        self.seen.lock().unwrap().upload_bytes
    }
}

/// One HTTP/1.1 request as read off the wire (Content-Length bodies only: the client sets one
/// on every request with a body).
struct Raw {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_raw(reader: &mut BufReader<TcpStream>) -> Option<Raw> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let (mut headers, mut len) = (Vec::new(), 0usize);
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
        assert_ne!(k, "transfer-encoding", "the client sent a chunked body");
        if k == "content-length" {
            len = v.parse().unwrap();
        }
        headers.push((k, v));
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Raw {
        method,
        target,
        headers,
        body,
    })
}

fn serve(
    stream: TcpStream,
    upstream: &str,
    plan: &Mutex<VecDeque<Fault>>,
    seen: &Mutex<Seen>,
    rewrites: Rewrites,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    while let Some(mut req) = read_raw(&mut reader) {
        let fault = plan.lock().unwrap().pop_front().unwrap_or(Fault::Pass);
        let path = req.target.split('?').next().unwrap_or_default().to_owned();
        let mount = req.target.contains("mount=");
        seen.lock().unwrap().log.push(format!(
            "{} {path}{} {fault:?}",
            req.method,
            if mount { "?mount" } else { "" }
        ));
        match fault {
            Fault::Reset => {
                // SO_LINGER 0: closing sends RST instead of FIN.
                socket2::SockRef::from(&stream)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                return;
            }
            Fault::Unavailable(after) => {
                let body = "injected by the test proxy\n";
                let after = after
                    .map(|s| format!("retry-after: {s}\r\n"))
                    .unwrap_or_default();
                let resp = format!(
                    "HTTP/1.1 503 Service Unavailable\r\n{after}content-type: text/plain\r\n\
                     content-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(resp.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
            Fault::Pass => {}
        }
        if rewrites.strip_mount && req.method == "POST" && mount {
            req.target = path.clone();
        }
        let by_tag = req.method == "PUT"
            && path.contains("/manifests/")
            && !path.rsplit('/').next().unwrap().starts_with("sha256:");
        if rewrites.pretty_tags && by_tag {
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            req.body = serde_json::to_vec_pretty(&v).unwrap();
        }
        if path.contains("/blobs/uploads/") && (req.method == "PUT" || req.method == "PATCH") {
            seen.lock().unwrap().upload_bytes += req.body.len() as u64;
        }
        let mut up = TcpStream::connect(upstream).unwrap();
        let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
        for (k, v) in &req.headers {
            if k != "connection" && k != "content-length" {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        head.push_str(&format!(
            "connection: close\r\ncontent-length: {}\r\n\r\n",
            req.body.len()
        ));
        up.write_all(head.as_bytes()).unwrap();
        up.write_all(&req.body).unwrap();
        // The registry answers `connection: close` and closes: the answer is all it sends.
        let mut answer = Vec::new();
        up.read_to_end(&mut answer).unwrap();
        let _ = stream.write_all(&answer);
        return;
    }
}

/// Push `multi` to `<addr>/<repo>` under `tags` (with `per_arch`, to the per-arch
/// repositories too), with the tests' short back-off.
fn push_to(
    addr: &str,
    repo: &str,
    multi: &MultiArch,
    tags: &[String],
    per_arch: bool,
    creds: Option<registry::Credentials>,
) -> anyhow::Result<registry::Report> {
    let to = registry::Reference::parse(&format!("{addr}/{repo}")).unwrap();
    registry::push(&to, multi, tags, per_arch, &access(creds))
}

/// The digest `repo:reference` names on the registry at `addr`, None when it names nothing.
fn head_digest(addr: &str, repo: &str, reference: &str) -> Option<String> {
    head_digest_as(addr, repo, reference, None)
}

/// `head_digest` with an `Authorization` value.
fn head_digest_as(
    addr: &str,
    repo: &str,
    reference: &str,
    authorization: Option<&str>,
) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent
        .head(format!("http://{addr}/v2/{repo}/manifests/{reference}"))
        .header(
            "accept",
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        );
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let resp = req.call().unwrap();
    match resp.status().as_u16() {
        404 => None,
        200 => Some(
            resp.headers()["docker-content-digest"]
                .to_str()
                .unwrap()
                .to_owned(),
        ),
        s => panic!("HEAD {repo}:{reference} answered {s}"),
    }
}

/// A fake `docker-credential-test` in `<tmp>/bin` (returned): `get` reads the server URL on
/// stdin (and notes it in `bin/asked`); for 127.0.0.1 it answers the test registry's user,
/// else "not found"; with `bin/fail` present it fails as a locked keychain would.
fn credential_helper(tmp: &Path) -> std::path::PathBuf {
    let dir = tmp.join("bin");
    std::fs::create_dir(&dir).unwrap();
    let script = r#"#!/bin/sh
# A fake docker credential helper (docker-credential-helpers protocol).
here=$(dirname "$0")
[ "$1" = get ] || { echo "unsupported action $1"; exit 1; }
read -r server
printf '%s\n' "$server" >> "$here/asked"
if [ -e "$here/fail" ]; then
  echo "error getting credentials - err: exit status 2, out: gpg: decryption failed: No secret key"
  exit 1
fi
case "$server" in
  127.0.0.1:*) printf '{"ServerURL":"%s","Username":"ci-user","Secret":"s3cret"}\n' "$server" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#;
    let path = dir.join("docker-credential-test");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The `Authorization` value for the basic-auth test registry's user.
fn basic_auth() -> String {
    let pair = base64::engine::general_purpose::STANDARD.encode("ci-user:s3cret");
    format!("Basic {pair}")
}

fn docker_config(dir: &Path, json: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), json).unwrap();
    dir.to_owned()
}

#[test]
fn credential_helpers_named_in_config_json_are_used_and_their_failure_is_clear() {
    let Some(reg) = Registry::start_with(true) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bin = credential_helper(tmp.path());
    let (m, _) = publish(&tmp.path().join("images"), "v1");
    let tags = vec![addon().version];
    let wrong = base64::engine::general_purpose::STANDARD.encode("ci-user:stale");
    let env = |config: std::path::PathBuf| Env {
        ci: None,
        docker_config: Some(config),
        path: Some(bin.clone().into_os_string()),
    };

    // credHelpers for this registry, over a stale `auths` entry (docker asks the helper).
    let helpers = docker_config(
        &tmp.path().join("helpers"),
        &format!(
            r#"{{"auths":{{"{0}":{{"auth":"{wrong}"}}}},"credHelpers":{{"{0}":"test"}}}}"#,
            reg.addr
        ),
    );
    let creds = registry::credentials_in(&env(helpers), &reg.addr, None, None)
        .unwrap()
        .expect("the helper's credentials");
    assert!(
        creds.source.contains("docker-credential-test") && creds.source.contains("credHelpers"),
        "{}",
        creds.source
    );
    let report = push_to(&reg.addr, "fluxion", &m.multi, &tags, false, Some(creds)).unwrap();
    assert_eq!(report.uploaded.len(), 5, "{report:?}");
    assert_eq!(
        head_digest_as(&reg.addr, "fluxion", &tags[0], Some(&basic_auth())),
        Some(m.multi.index.digest.clone())
    );

    // credsStore: the same helper for every registry; a registry it holds nothing for is
    // anonymous, as in docker.
    let store = docker_config(
        &tmp.path().join("store"),
        r#"{"auths":{},"credsStore":"test"}"#,
    );
    let creds = registry::credentials_in(&env(store.clone()), &reg.addr, None, None)
        .unwrap()
        .expect("the store's credentials");
    assert!(creds.source.contains("credsStore"), "{}", creds.source);
    let r2 = push_to(&reg.addr, "other", &m.multi, &tags, false, Some(creds)).unwrap();
    assert_eq!(r2.uploaded.len(), 5, "{r2:?}");
    assert_eq!(
        registry::credentials_in(&env(store.clone()), "ghcr.io", None, None).unwrap(),
        None
    );
    // The helper was asked for the server as docker names it (host:port, no scheme).
    let asked = std::fs::read_to_string(bin.join("asked")).unwrap();
    assert_eq!(
        asked.lines().collect::<Vec<_>>(),
        [reg.addr.as_str(), &reg.addr, "ghcr.io"]
    );

    // The helper fails: the error names it, the config entry, what it said, and the way out.
    std::fs::write(bin.join("fail"), "").unwrap();
    let e = registry::credentials_in(&env(store.clone()), &reg.addr, None, None).unwrap_err();
    let msg = format!("{e:#}");
    for needle in [
        "docker-credential-test",
        "credsStore in",
        "config.json",
        "No secret key",
        "--password-stdin",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing: {msg}");
    }
    // GitLab CI's variables win over the broken store (it is not even asked).
    let ci = Env {
        ci: Some(("ci-user".into(), "s3cret".into())),
        ..env(store)
    };
    let c = registry::credentials_in(&ci, &reg.addr, None, None)
        .unwrap()
        .unwrap();
    assert_eq!(c.source, "CI_REGISTRY_USER/CI_REGISTRY_PASSWORD");
    assert_eq!(
        std::fs::read_to_string(bin.join("asked"))
            .unwrap()
            .lines()
            .count(),
        4
    );
}

#[test]
fn the_push_command_asks_the_credential_store_found_on_path() {
    // `cargo xtask push` as a user runs it after `docker login` with a credential store:
    // $DOCKER_CONFIG/config.json names it, the helper is found on PATH.
    let Some(reg) = Registry::start_with(true) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bin = credential_helper(tmp.path());
    let cfg = docker_config(
        &tmp.path().join("cfg"),
        &format!(r#"{{"auths":{{"{}":{{}}}},"credsStore":"test"}}"#, reg.addr),
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = output(
        xtask()
            .args(["push", &format!("{}/fluxion", reg.addr)])
            .env("DOCKER_CONFIG", &cfg)
            .env("PATH", path)
            .env_remove("CI_REGISTRY_USER")
            .env_remove("CI_REGISTRY_PASSWORD"),
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    let version = addon().version;
    let tagged = format!("tagged   {}/fluxion:{version} -> ", reg.addr);
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&tagged))
        .unwrap_or_else(|| panic!("no {tagged:?} in:\n{stdout}"));
    assert_eq!(
        head_digest_as(&reg.addr, "fluxion", &version, Some(&basic_auth())).as_deref(),
        Some(&line[tagged.len()..])
    );
    assert_eq!(
        std::fs::read_to_string(bin.join("asked")).unwrap().trim(),
        reg.addr
    );
}

#[test]
fn resets_and_503s_are_retried_within_the_bound() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (m, _) = publish(tmp.path(), "v1");
    // The first requests: GET /v2/ is reset, then answered 503 Retry-After: 1, then passes;
    // the first blob's HEAD and POST pass and its upload PUT is reset (the upload restarts
    // from a new POST).
    use Fault::*;
    let proxy = Proxy::start(
        &reg.addr,
        vec![Reset, Unavailable(Some(1)), Pass, Pass, Pass, Reset],
        Rewrites::default(),
    );
    let tags = vec![addon().version];
    let report = push_to(&proxy.addr, "fluxion", &m.multi, &tags, false, None).unwrap();
    let log = proxy.log();
    for r in &report.retries {
        eprintln!("retried: {r}");
    }
    assert_eq!(report.retries.len(), 3, "{:#?}\n{log:#?}", report.retries);
    let r = &report.retries;
    assert!(
        r[0].contains("reaching the registry") && r[0].contains("GET"),
        "{}",
        r[0]
    );
    assert!(
        r[1].contains("503 Service Unavailable")
            && r[1].contains("Retry-After: 1")
            && r[1].contains("trying again in 1 s"),
        "the registry's Retry-After is what is waited: {}",
        r[1]
    );
    assert!(
        r[2].contains("uploading blob") && r[2].contains("PUT"),
        "{}",
        r[2]
    );
    // The reset upload was restarted from its POST.
    assert_eq!(
        log[..8]
            .iter()
            .map(|l| l.split(' ').next().unwrap())
            .collect::<Vec<_>>(),
        ["GET", "GET", "GET", "HEAD", "POST", "PUT", "POST", "PUT"],
        "{log:#?}"
    );
    assert_eq!(report.uploaded.len(), 5);
    assert_eq!(
        head_digest(&reg.addr, "fluxion", &tags[0]).as_deref(),
        Some(m.multi.index.digest.as_str())
    );
}

#[test]
fn past_the_bound_the_push_stops_naming_the_request_and_its_last_answer() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (m, _) = publish(tmp.path(), "v1");
    let tags = vec![addon().version];
    // GET /v2/ passes; the first blob's HEAD fails 5 times (the bound, tests' short back-off).
    use Fault::*;
    let mut plan = vec![Pass];
    plan.extend([Unavailable(None); 5]);
    let proxy = Proxy::start(&reg.addr, plan, Rewrites::default());
    let e = push_to(&proxy.addr, "fluxion", &m.multi, &tags, false, None).unwrap_err();
    let msg = format!("{e:#}");
    for needle in [
        "gave up after 5 tries",
        &format!("HEAD http://{}/v2/fluxion/blobs/sha256:", proxy.addr),
        "answered 503 Service Unavailable",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing: {msg}");
    }
    assert_eq!(proxy.log().len(), 6, "{:#?}", proxy.log());
    assert_eq!(
        head_digest(&reg.addr, "fluxion", &tags[0]),
        None,
        "a tag was written"
    );

    // A Retry-After beyond what we wait ends the push at once, saying so.
    let proxy = Proxy::start(
        &reg.addr,
        vec![Unavailable(Some(3600))],
        Rewrites::default(),
    );
    let e = push_to(&proxy.addr, "fluxion", &m.multi, &tags, false, None).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("retry after 3600 s") && msg.contains("run the push again later"),
        "{msg}"
    );
    assert_eq!(proxy.log().len(), 1);
}

#[test]
fn per_arch_repos_mount_blobs_from_the_main_repository() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (m, _) = publish(tmp.path(), "v1");
    let tags = vec![addon().version];
    let main_bytes: u64 = {
        let mut seen = std::collections::BTreeSet::new();
        m.multi
            .images
            .iter()
            .flat_map(|i| i.layers.iter().map(|l| &l.blob).chain([&i.config]))
            .filter(|b| seen.insert(b.digest.clone()))
            .map(|b| b.size)
            .sum()
    };
    let arch_bytes: u64 = m
        .multi
        .images
        .iter()
        .map(|i| i.compressed_size() + i.config.size)
        .sum();

    // Mounted: the per-arch repositories get every blob without a byte sent.
    let proxy = Proxy::start(&reg.addr, vec![], Rewrites::default());
    let report = push_to(&proxy.addr, "fluxion", &m.multi, &tags, true, None).unwrap();
    assert_eq!(
        (report.uploaded.len(), report.mounted.len()),
        (5, 6),
        "{report:?}"
    );
    assert_eq!(report.bytes, main_bytes);
    assert_eq!(proxy.upload_bytes(), main_bytes, "bytes on the wire");
    let log = proxy.log();
    assert!(
        !log.iter()
            .any(|l| l.starts_with("PUT /v2/amd64-fluxion/blobs/")
                || l.starts_with("PUT /v2/aarch64-fluxion/blobs/")),
        "a per-arch repository was uploaded to: {log:#?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.contains("?mount")).count(),
        6,
        "{log:#?}"
    );
    for image in &m.multi.images {
        let repo = format!("{}-fluxion", image.arch.hass_arch());
        assert_eq!(
            head_digest(&reg.addr, &repo, &tags[0]).as_deref(),
            Some(image.manifest.digest.as_str())
        );
    }

    // A registry that does not mount (202: an upload session instead): uploaded as before.
    let Some(reg2) = Registry::start() else {
        return;
    };
    let proxy = Proxy::start(
        &reg2.addr,
        vec![],
        Rewrites {
            strip_mount: true,
            ..Rewrites::default()
        },
    );
    let report = push_to(&proxy.addr, "fluxion", &m.multi, &tags, true, None).unwrap();
    assert_eq!(
        (report.uploaded.len(), report.mounted.len()),
        (11, 0),
        "{report:?}"
    );
    assert_eq!(report.bytes, main_bytes + arch_bytes);
    assert_eq!(proxy.upload_bytes(), main_bytes + arch_bytes);
    eprintln!(
        "--per-arch-repos, test images: {} bytes uploaded with mounts, {} without",
        main_bytes,
        main_bytes + arch_bytes
    );
}

#[test]
fn a_tag_put_answered_with_another_digest_says_where_the_tag_points() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (v1, _) = publish(&tmp.path().join("v1"), "v1");
    let (v2, _) = publish(&tmp.path().join("v2"), "v2");
    let tags = vec![addon().version, "latest".to_owned()];
    push_to(&reg.addr, "fluxion", &v1.multi, &tags, false, None).unwrap();

    // v2 through a proxy that rewrites the manifest on tag PUTs (by digest it is stored as
    // sent, so the push gets as far as the tags).
    let proxy = Proxy::start(
        &reg.addr,
        vec![],
        Rewrites {
            pretty_tags: true,
            ..Rewrites::default()
        },
    );
    let name = format!("{}/fluxion", proxy.addr);
    let e = push_to(&proxy.addr, "fluxion", &v2.multi, &tags, false, None).unwrap_err();
    let msg = format!("{e:#}");
    // What the tag really points at now: the rewritten index, as the registry serves it.
    let now = head_digest(&reg.addr, "fluxion", &tags[0]).unwrap();
    let (ours, before) = (&v2.multi.index.digest, &v1.multi.index.digest);
    assert_ne!(&now, ours);
    for needle in [
        format!(
            "tag PUT of {name}:{} with digest {now}, not {ours}",
            tags[0]
        ),
        format!("now points at {now}"),
        format!("before this push it pointed at {before}"),
        format!(
            "skopeo copy --all --preserve-digests docker://{name}@{before} docker://{name}:{}",
            tags[0]
        ),
        "No further tag was written".to_owned(),
    ] {
        assert!(msg.contains(&needle), "{needle:?} missing: {msg}");
    }
    // No further tag: `latest` still names v1.
    assert_eq!(
        head_digest(&reg.addr, "fluxion", "latest").as_deref(),
        Some(before.as_str())
    );

    // The fix the message gives puts the tag back (on the registry itself, past the proxy).
    if !have("skopeo") {
        return;
    }
    let fix = format!(
        "skopeo copy --all --preserve-digests docker://{name}@{before} docker://{name}:{}",
        tags[0]
    )
    .replace(&proxy.addr, &reg.addr);
    let mut args: Vec<&str> = fix.split(' ').skip(1).collect();
    args.splice(1..1, ["--src-tls-verify=false", "--dest-tls-verify=false"]);
    run(Command::new("skopeo").args(&args));
    assert_eq!(
        head_digest(&reg.addr, "fluxion", &tags[0]).as_deref(),
        Some(before.as_str())
    );
}

#[test]
fn push_refuses_a_manifest_lint_rejects_before_building_or_connecting() {
    // What `image` and `push` used to build and push: default-valued `boot: auto` and
    // `init: true` (the linter rejects defaults), `labels:` (the pipeline writes the labels), a
    // slug with spaces (Supervisor's RE_SLUG).
    const BAD: &str = "name: FluxION\nversion: \"0.9.0\"\nslug: flux ion\ndescription: test\n\
                       url: https://example.invalid\narch: [aarch64, amd64]\nboot: auto\n\
                       init: true\nlabels:\n  a: b\n";
    let ws = tempfile::tempdir().unwrap();
    fixture::workspace_files(ws.path(), "0.9.0", BAD);
    std::fs::write(ws.path().join("repository.yaml"), "name: test\n").unwrap();
    // A registry that must never be called.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let out = output(
        Command::new(xtask_bin())
            .args(["push", &format!("{addr}/fluxion")])
            .current_dir(ws.path())
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CI_REGISTRY_USER"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    for needle in [
        "refusing to push",
        "boot",
        "init",
        "labels",
        "slug",
        "cargo xtask lint",
    ] {
        assert!(err.contains(needle), "{needle:?} missing: {err}");
    }
    assert!(!err.contains("building"), "it built before refusing: {err}");
    assert!(!ws.path().join("target").exists(), "it wrote target/");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the registry was contacted"
    );
}
