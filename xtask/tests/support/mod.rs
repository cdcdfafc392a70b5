//! Test support: skip-or-fail for missing tools and network, found on PATH; a private dockerd
//! stopped by PID in Drop.
#![allow(dead_code)]
pub mod fixture;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Locally a missing prerequisite skips the test (with the reason printed); under CI=true it
/// fails it.
pub fn skip_or_fail(reason: &str) {
    if in_ci() {
        panic!("CI=true and a prerequisite is missing: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|f| f.is_file())
    })
}

/// The tool's path, or None after skip_or_fail.
pub fn require(tool: &str) -> Option<PathBuf> {
    let found = which(tool);
    if found.is_none() {
        skip_or_fail(&format!("`{tool}` is not on PATH"));
    }
    found
}

/// A private dockerd (vfs storage, no iptables, no bridge) in a temp dir, stopped by PID.
pub struct Dockerd {
    child: Child,
    pub host: String,
    _dir: tempfile::TempDir,
}

impl Dockerd {
    pub fn start() -> Option<Dockerd> {
        let dockerd = require("dockerd")?;
        require("docker")?;
        let dir = tempfile::Builder::new()
            .prefix("fxd")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        let sock = d.join("d.sock");
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new(dockerd)
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--storage-driver=vfs"])
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("d.pid"))
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let me = Dockerd {
            child,
            host: format!("unix://{}", sock.display()),
            _dir: dir,
        };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if me.docker(&["version", "--format", "{{.Server.Version}}"]).0 {
                return Some(me);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let log = std::fs::read_to_string(me._dir.path().join("dockerd.log")).unwrap_or_default();
        skip_or_fail(&format!(
            "the private dockerd did not come up; its log:\n{log}"
        ));
        None
    }

    /// Run `docker args...` against this daemon: (success, stdout + stderr).
    pub fn docker(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("docker")
            .env("DOCKER_HOST", &self.host)
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    pub fn load(&self, archive: &Path) -> String {
        let (ok, out) = self.docker(&["load", "-i", archive.to_str().unwrap()]);
        assert!(ok, "docker load failed: {out}");
        out
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM by PID, then wait; never by name.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// qemu-user for arm64 binaries via binfmt_misc: present, or registered here under CI=true
/// (from qemu-user-static's /usr/lib/binfmt.d/qemu-aarch64.conf), else skip.
pub fn arm64_binfmt() -> bool {
    let entry = Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64");
    if entry.exists() {
        return true;
    }
    if in_ci() {
        let reg = Path::new("/proc/sys/fs/binfmt_misc/register");
        if !reg.exists() {
            let _ = Command::new("mount")
                .args([
                    "-t",
                    "binfmt_misc",
                    "binfmt_misc",
                    "/proc/sys/fs/binfmt_misc",
                ])
                .status();
        }
        if let Ok(conf) = std::fs::read_to_string("/usr/lib/binfmt.d/qemu-aarch64.conf") {
            if let Some(line) = conf.lines().find(|l| l.starts_with(':')) {
                let _ = std::fs::write(reg, line);
            }
        }
        if entry.exists() {
            return true;
        }
    }
    skip_or_fail("binfmt_misc has no qemu-aarch64 entry (install qemu-user-static)");
    false
}
