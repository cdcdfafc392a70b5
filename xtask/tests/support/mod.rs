//! Test support: the real tools a test needs (found on PATH, started privately, stopped by PID
//! in `Drop`), the reference schemas (only where `FLUXION_REF_DIR` names them), and a small
//! two-arch image fixture built through the library — the same assemble/publish code
//! `cargo xtask image` runs, without compiling fluxion.
//!
//! Tests never write the user's outputs: every `cargo xtask` they run gets `FLUXION_OUT_DIR`
//! (a scratch dir under cargo's target dir, see `out_dir`), so `target/images` and `result-*`
//! of the checkout stay as the user left them.
#![allow(dead_code)] // each test binary uses a different part of this module
pub mod fixture;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xtask::addon::AddonConfig;
use xtask::arch::Arch;
use xtask::build::Binary;
use xtask::epoch::Epoch;
use xtask::image::index::{self, MultiArch};
use xtask::image::layer::{Data, Node, Tree};
use xtask::image::store::BlobStore;
use xtask::image::{app, Image};
use xtask::publish::hybrid_archive::HybridArchive;
use xtask::publish::oci_layout::{MultiArchLayout, PerArchLayouts};
use xtask::publish::{full_name, Assembled, Publisher, Written};

pub const EPOCH: Epoch = Epoch(1_700_000_000);

/// A test that needs what is missing: skip with a printed reason, except under
/// `FLUXION_REQUIRE_TOOLS=1` (set by `.ci/run` and the GitLab `integration` jobs), where it
/// fails. Returns false when the caller should return early.
pub fn require(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    let switch = xtask::workspace::REQUIRE_TOOLS_ENV;
    if xtask::workspace::tools_required() {
        panic!("{what} is required under {switch}=1 (install it with .ci/install-tools)");
    }
    skip(&format!(
        "{what} is missing; skipping (this fails under {switch}=1)"
    ));
    false
}

/// Print why a test skips where the job log shows it: libtest captures `eprintln!` of a
/// passing test (the reason would be lost), not writes to the stderr handle itself. Names the
/// test (libtest runs each on a thread named after it).
pub fn skip(why: &str) {
    use std::io::Write as _;
    let current = std::thread::current();
    let test = current.name().unwrap_or("?");
    let _ = writeln!(std::io::stderr().lock(), "SKIP {test}: {why}");
}

pub fn have(tool: &str) -> bool {
    require(
        &format!("`{tool}` on PATH"),
        xtask::host::which(tool).is_some(),
    )
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

pub fn addon() -> AddonConfig {
    AddonConfig::load(&workspace().join("addon/config.yaml")).unwrap()
}

/// Run a command, panic with its output unless it succeeds; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    check(cmd, &out);
    String::from_utf8(out.stdout).unwrap()
}

pub fn check(cmd: &Command, out: &Output) {
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The app binary's stand-in: distinct bytes per arch and variant (the publish side never
/// looks inside; `build::elf` checks real binaries before they get here).
pub fn app_bytes(arch: Arch, variant: &str) -> Vec<u8> {
    format!("fluxion-main for {arch}, {variant}\n").into_bytes()
}

/// One image as `image::assemble` builds it, but with a base layer below the app layer (as
/// the Debian runtime layer will be), so everything here handles any number of layers.
pub fn image(store: &BlobStore, addon: &AddonConfig, arch: Arch, variant: &str) -> Image {
    let mut base = Tree::new();
    base.insert(
        "etc/fluxion-test-base",
        Node::File {
            mode: 0o644,
            data: Data::Bytes(Arc::from(&b"a base layer shared by both arches\n"[..])),
        },
    )
    .unwrap();
    let base = base.write_layer(store, EPOCH).unwrap();
    let binary = Binary::new(
        arch,
        PathBuf::from("fluxion-main"),
        app_bytes(arch, variant),
    );
    let app = app::tree(&binary)
        .unwrap()
        .write_layer(store, EPOCH)
        .unwrap();
    xtask::image::from_layers(
        store,
        addon,
        arch,
        vec![(base, "xtask tests: base"), (app, "xtask tests: app")],
        EPOCH,
    )
    .unwrap()
}

/// The multi-arch outputs of `publish`, and the index they share.
pub struct MultiBuilt {
    pub multi: MultiArch,
    /// The full reference the layout's index.json names: `docker.io/library/fluxion-ha:<v>`.
    pub name: String,
    pub layout: PathBuf,
    pub archive: PathBuf,
    pub written: Written,
}

/// Both arches written every way into `images_dir` by the publishers `cargo xtask image
/// --arch all` uses (the single-arch layouts, the multi-arch layout, the hybrid archive).
pub fn publish(images_dir: &Path, variant: &str) -> (MultiBuilt, BTreeMap<Arch, PathBuf>) {
    let addon = addon();
    let store = BlobStore::open(&images_dir.join("blobs/sha256")).unwrap();
    let images: Vec<Image> = Arch::ALL
        .iter()
        .map(|&a| image(&store, &addon, a, variant))
        .collect();
    let multi = index::assemble(&store, images.clone()).unwrap();
    let assembled = Assembled {
        images,
        multi: Some(multi.clone()),
        epoch: EPOCH,
        version: addon.version.clone(),
        sboms: Vec::new(),
    };
    let dir = images_dir.to_owned();
    let singles = PerArchLayouts { dir: dir.clone() }
        .publish(&assembled)
        .unwrap()
        .into_iter()
        .map(|o| (o.arch.unwrap(), o.path.unwrap()))
        .collect();
    let layout = MultiArchLayout { dir: dir.clone() }
        .publish(&assembled)
        .unwrap();
    let archive = HybridArchive { dir }.publish(&assembled).unwrap();
    let built = MultiBuilt {
        multi,
        name: full_name(&addon.version),
        layout: layout[0].path.clone().unwrap(),
        archive: archive[0].path.clone().unwrap(),
        written: archive[0].written.clone().unwrap(),
    };
    (built, singles)
}

/// A fresh temp dir with a short path (unix socket paths are limited to 108 bytes).
pub fn short_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .unwrap()
}

fn wait_until(what: &str, child: &mut Child, log: &Path, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before it was ready:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if start.elapsed() > Duration::from_secs(90) {
            panic!(
                "{what} not ready after 90 s:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// SIGTERM by PID, wait, SIGKILL if it lingers.
fn stop(child: &mut Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A private dockerd (vfs storage, no networking setup, own socket and roots).
pub struct Dockerd {
    child: Child,
    pub host: String,
    dir: tempfile::TempDir,
}

impl Dockerd {
    /// None (after printing why) when docker is not installed (a panic under
    /// FLUXION_REQUIRE_TOOLS=1).
    pub fn start(insecure_registry: Option<&str>) -> Option<Dockerd> {
        if !(have("dockerd") && have("docker")) {
            return None;
        }
        let dir = short_tempdir("dk");
        let d = dir.path();
        let host = format!("unix://{}", d.join("s").display());
        let log = d.join("log");
        let mut cmd = Command::new("dockerd");
        cmd.args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--storage-driver=vfs"])
            .arg(format!("--data-root={}", d.join("data").display()))
            .arg(format!("--exec-root={}", d.join("e").display()))
            .arg(format!("--pidfile={}", d.join("pid").display()))
            .arg(format!("--host={host}"));
        if let Some(r) = insecure_registry {
            cmd.arg(format!("--insecure-registry={r}"));
        }
        let f = std::fs::File::create(&log).unwrap();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("starting dockerd");
        let probe_host = host.clone();
        let cfg = d.join("cli");
        wait_until("dockerd", &mut child, &log, || {
            Command::new("docker")
                .env("DOCKER_CONFIG", &cfg)
                .args(["-H", &probe_host, "version"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
        Some(Dockerd { child, host, dir })
    }

    pub fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .args(["-H", &self.host]);
        c
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Debian's `docker-registry` (distribution 2.8) on 127.0.0.1:<free port>, storage in a temp dir.
pub struct Registry {
    child: Child,
    pub addr: String,
    dir: tempfile::TempDir,
}

/// A bcrypt (cost 4) htpasswd line for user `ci-user`, password `s3cret` (made once with
/// Python's crypt.crypt; distribution's htpasswd auth reads only bcrypt).
pub const HTPASSWD: &str = "ci-user:$2b$04$82O9G489XVM4vxmaHzFbHestXqf2iEqTNqoNYIEXPaBQow.0gaSYG\n";

impl Registry {
    pub fn start() -> Option<Registry> {
        Registry::start_with(false)
    }

    /// With `basic_auth`, every request needs `ci-user`/`s3cret` (Basic).
    pub fn start_with(basic_auth: bool) -> Option<Registry> {
        if !have("docker-registry") {
            return None;
        }
        let dir = short_tempdir("reg");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("config.yml");
        let mut yml = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if basic_auth {
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, HTPASSWD).unwrap();
            yml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: fluxion-test\n    path: {}\n",
                file.display()
            ));
        }
        std::fs::write(&cfg, yml).unwrap();
        let log = dir.path().join("log");
        let f = std::fs::File::create(&log).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("starting docker-registry");
        let probe = addr.clone();
        wait_until("docker-registry", &mut child, &log, || {
            std::net::TcpStream::connect(&probe).is_ok()
        });
        Some(Registry { child, addr, dir })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// podman with private vfs storage.
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Option<Podman> {
        have("podman").then(|| Podman {
            dir: short_tempdir("pm"),
        })
    }

    pub fn podman(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.arg(format!("--root={}", d.join("root").display()))
            .arg(format!("--runroot={}", d.join("run").display()))
            .args([
                "--storage-driver=vfs",
                "--cgroup-manager=cgroupfs",
                "--events-backend=file",
            ])
            .env("TMPDIR", d);
        c
    }

    /// `podman run --rm --network none` with the ulimits rootful podman needs on these
    /// machines; append the image and its command.
    pub fn run_container(&self) -> Command {
        let mut c = self.podman();
        c.args(["run", "--rm", "--network", "none"]).args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ]);
        c
    }
}

/// Names the folder of reference files (`oci-image-spec/`, `ha-addon-linter/`, as in
/// /work/shared/ref); `.ci/run` sets it. Nothing else makes a test read files from outside
/// the checkout.
pub const REF_DIR_ENV: &str = "FLUXION_REF_DIR";

/// `<FLUXION_REF_DIR>/<rel>`, or `None` with a printed reason when the variable is unset (an
/// optional cross-check, also under FLUXION_REQUIRE_TOOLS=1: GitLab runners have no copy). A
/// variable that names a folder without `rel` is a mistake and fails. A relative value is
/// taken from the workspace root.
pub fn reference(rel: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os(REF_DIR_ENV).filter(|d| !d.is_empty()) else {
        skip(&format!(
            "{REF_DIR_ENV} is not set, so the cross-check against the reference {rel} \
             is skipped (set it to the folder holding oci-image-spec/ and ha-addon-linter/; \
             .ci/run does)"
        ));
        return None;
    };
    let path = workspace().join(dir).join(rel);
    assert!(
        path.exists(),
        "{REF_DIR_ENV} names {}, which has no {rel}",
        workspace()
            .join(std::env::var_os(REF_DIR_ENV).unwrap())
            .display()
    );
    Some(path)
}

/// The OCI image-spec schemas (`<FLUXION_REF_DIR>/oci-image-spec`), when named.
pub fn oci_schemas() -> Option<PathBuf> {
    let dir = reference("oci-image-spec")?;
    assert!(
        dir.join("image-index-schema.json").is_file(),
        "{} lacks image-index-schema.json",
        dir.display()
    );
    Some(dir)
}

/// Resolve every `$ref` URL by its last path segment to the local file (ref/README.md): the
/// schemas' `https://opencontainers.org/...` ids are never fetched.
struct LocalSchemas(PathBuf);

impl jsonschema::Retrieve for LocalSchemas {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let s = uri.as_str();
        let name = s
            .split('#')
            .next()
            .unwrap_or(s)
            .rsplit('/')
            .next()
            .unwrap_or(s);
        let text = std::fs::read_to_string(self.0.join(name))
            .map_err(|e| format!("no local schema for {s}: {e}"))?;
        Ok(serde_json::from_str(&text)?)
    }
}

pub fn validator(dir: &Path, schema_file: &str) -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(schema_file)).unwrap()).unwrap();
    jsonschema::draft4::options()
        .with_retriever(LocalSchemas(dir.to_owned()))
        .build(&schema)
        .unwrap_or_else(|e| panic!("compiling {schema_file}: {e}"))
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A tool on PATH (its path), or None after a skip notice (a panic under
/// FLUXION_REQUIRE_TOOLS=1).
pub fn tool(name: &str) -> Option<PathBuf> {
    if have(name) {
        xtask::host::which(name)
    } else {
        None
    }
}

pub fn xtask_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xtask"))
}

pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"))
}

/// The workspace as the xtask sees it (cargo's target dir honours CARGO_TARGET_DIR), with
/// its outputs redirected to the tests' scratch dir (`out_dir`).
pub fn ws() -> &'static xtask::workspace::Workspace {
    static WS: std::sync::OnceLock<xtask::workspace::Workspace> = std::sync::OnceLock::new();
    WS.get_or_init(|| {
        let sh = xshell::Shell::new().unwrap();
        sh.change_dir(workspace());
        let mut ws = xtask::workspace::Workspace::discover(&sh).unwrap();
        ws.out_dir = Some(ws.target_dir.join("xtask-tests"));
        ws
    })
}

/// Cargo's target dir for this workspace.
pub fn target_dir() -> PathBuf {
    ws().target_dir.clone()
}

/// Where the tests' `cargo xtask image` runs put their outputs (`FLUXION_OUT_DIR`): a fixed
/// scratch dir under cargo's target dir, so the layer caches stay warm from one test binary
/// to the next, and never `target/images` or `result-*`.
pub fn out_dir() -> PathBuf {
    ws().out_dir.clone().expect("ws() sets out_dir")
}

/// The images dir of the tests' builds.
pub fn images_dir() -> PathBuf {
    ws().images_dir()
}

/// `cargo xtask` (the binary under test) in the real workspace, writing to `out_dir()`.
pub fn xtask() -> Command {
    let mut c = Command::new(xtask_bin());
    c.current_dir(workspace())
        .env(xtask::workspace::OUT_DIR_ENV, out_dir());
    c
}

/// One row of `cargo xtask image --json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Row {
    pub arch: String,
    pub platform: String,
    pub tag: String,
    pub archive: String,
    pub archive_sha256: String,
    pub image_id: String,
    pub manifest_digest: String,
    pub layers: usize,
}

impl Row {
    pub fn archive_path(&self) -> PathBuf {
        workspace().join(&self.archive)
    }
}

/// The real images: `cargo xtask image --arch all` in the real workspace, into `out_dir()`,
/// once per test binary (cargo and the layer caches make the repeats in other binaries cheap).
pub fn built_images() -> &'static [Row] {
    static ROWS: std::sync::OnceLock<Vec<Row>> = std::sync::OnceLock::new();
    ROWS.get_or_init(|| {
        let out = run(xtask().args(["image", "--arch", "all", "--json"]));
        serde_json::from_str(&out).expect("image --json prints the summary rows")
    })
}

/// The built `fluxion-main` for an arch (after `built_images()`).
pub fn built_binary(arch: Arch) -> PathBuf {
    built_images();
    target_dir()
        .join(arch.rust_target())
        .join("release")
        .join(xtask::build::BIN)
}

pub fn built(arch: &str) -> &'static Row {
    built_images()
        .iter()
        .find(|r| r.arch == arch)
        .expect("both arches are built")
}

/// Read one member of a tar archive.
pub fn tar_member(archive: &Path, name: &str) -> Vec<u8> {
    let mut a = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut buf).unwrap();
            return buf;
        }
    }
    panic!("{name} not in {}", archive.display());
}

/// One file (mode, bytes) from a gzip layer blob.
pub fn layer_file(layer_gz: &[u8], name: &str) -> Option<(u32, Vec<u8>)> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(layer_gz));
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            let mode = e.header().mode().unwrap();
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut buf).unwrap();
            return Some((mode, buf));
        }
    }
    None
}

/// Make arm64 binaries run through qemu-user-static via binfmt_misc (needed for
/// `docker run` of arm64 images). Registers from Debian's qemu-aarch64.conf when needed.
pub fn ensure_binfmt_aarch64() -> Result<(), String> {
    let entry = Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64");
    if entry.exists() {
        return Ok(());
    }
    let register = Path::new("/proc/sys/fs/binfmt_misc/register");
    if !register.exists() {
        let st = Command::new("mount")
            .args([
                "-t",
                "binfmt_misc",
                "binfmt_misc",
                "/proc/sys/fs/binfmt_misc",
            ])
            .status()
            .map_err(|e| format!("mount binfmt_misc: {e}"))?;
        if !st.success() {
            return Err("mounting binfmt_misc failed (needs root)".into());
        }
    }
    let conf = std::fs::read_to_string("/usr/lib/binfmt.d/qemu-aarch64.conf")
        .map_err(|e| format!("reading qemu-user-static's binfmt conf: {e}"))?;
    let line = conf
        .lines()
        .find(|l| l.starts_with(':'))
        .ok_or("no registration line")?;
    std::fs::write(register, line).map_err(|e| format!("registering qemu-aarch64: {e}"))?;
    if entry.exists() {
        Ok(())
    } else {
        Err("qemu-aarch64 binfmt entry did not appear".into())
    }
}

impl Dockerd {
    /// `docker load -i archive`, panicking with docker's output when it fails.
    pub fn load(&self, archive: &Path) -> String {
        run(self.docker().arg("load").arg("-i").arg(archive))
    }
}

/// How tests reach a registry: `creds`, and retries that wait milliseconds, not seconds (the
/// bound and the `Retry-After` handling are the real ones).
pub fn access(
    creds: Option<xtask::publish::registry::Credentials>,
) -> xtask::publish::registry::Access {
    xtask::publish::registry::Access {
        creds,
        insecure: false,
        retry: xtask::publish::registry::Retry {
            tries: 5,
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(5),
        },
    }
}

/// The digest `repo:reference` resolves to on the (unauthenticated) registry at `addr`.
pub fn manifest_digest(addr: &str, repo: &str, reference: &str) -> String {
    let resp = ureq::head(format!("http://{addr}/v2/{repo}/manifests/{reference}"))
        .header(
            "accept",
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        )
        .call()
        .unwrap_or_else(|e| panic!("HEAD {repo}:{reference} on {addr}: {e}"));
    resp.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// One HTTP/1.1 request as a minimal fake registry sees it.
pub struct Req {
    pub method: String,
    pub path: String,
    pub auth: Option<String>,
    pub body: Vec<u8>,
}

/// (tests/push.rs, tests/sbom.rs: stand-ins for registries docker-registry cannot play.)
pub fn read_request(stream: &std::net::TcpStream) -> Option<Req> {
    use std::io::{BufRead, BufReader, Read};
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let (mut len, mut auth) = (0usize, None);
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h == "\r\n" || h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        match k.to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().unwrap(),
            "authorization" => auth = Some(v.trim().to_owned()),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let mut p = line.split(' ');
    Some(Req {
        method: p.next()?.to_owned(),
        path: p.next()?.to_owned(),
        auth,
        body,
    })
}

/// Answer one request of a stand-in registry (`connection: close`, one response per stream).
pub fn write_response(
    stream: &mut std::net::TcpStream,
    status: &str,
    headers: &[String],
    body: &str,
) {
    use std::io::Write;
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for h in headers {
        resp.push_str(h);
        resp.push_str("\r\n");
    }
    resp.push_str("\r\n");
    resp.push_str(body);
    stream.write_all(resp.as_bytes()).unwrap();
}
