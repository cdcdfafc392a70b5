//! Inside the running add-on, as a user who opens a shell in it sees it: each image runs under
//! the private dockerd as Supervisor starts it (fluxion-main as PID 1, /data holding
//! options.json, SUPERVISOR_TOKEN set, no Home Assistant to reach), and `docker exec` runs
//! sh, bash and coreutils beside it: amd64 natively, arm64 through qemu binfmt. Where the kernel
//! can load AppArmor profiles, the container is also confined by addon/apparmor.txt.
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use support::{built, run, Dockerd};

/// What Supervisor writes to /data/options.json before it starts the add-on: the options of
/// addon/config.yaml (no user changes) as JSON.
fn options_json() -> String {
    let cfg = support::addon();
    let options = cfg.rest.get("options").expect("config.yaml has options");
    serde_json::to_string(options).unwrap()
}

/// The add-on container: started detached, waited for until fluxion-main listens.
struct Addon<'a> {
    dockerd: &'a Dockerd,
    name: String,
    platform: &'static str,
}

impl<'a> Addon<'a> {
    fn start(dockerd: &'a Dockerd, arch: &str, data: &Path, extra: &[&str]) -> Addon<'a> {
        let platform = if arch == "amd64" {
            "linux/amd64"
        } else {
            "linux/arm64"
        };
        let name = format!("fluxion-exec-{arch}-{}", std::process::id());
        let mut cmd = dockerd.docker();
        cmd.args(["run", "-d", "--name", &name, "--network", "none"])
            .args(["--platform", platform])
            .arg("-v")
            .arg(format!("{}:/data", data.display()))
            // Supervisor gives every add-on with homeassistant_api a token; nothing answers
            // at http://supervisor here, so fluxion-main plans without data (debug mode).
            .args(["-e", "SUPERVISOR_TOKEN=exec-test-token"])
            .args(extra)
            .arg(format!("fluxion-ha:{arch}"));
        run(&mut cmd);
        let addon = Addon {
            dockerd,
            name,
            platform,
        };
        addon.wait_listening();
        addon
    }

    fn wait_listening(&self) {
        let start = Instant::now();
        loop {
            let logs = self.logs();
            if logs.contains("listening") {
                return;
            }
            let state = self.state();
            assert!(
                state.starts_with("true"),
                "{}: the container stopped ({state}):\n{logs}",
                self.name
            );
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{}: fluxion-main did not listen within 60 s:\n{logs}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn logs(&self) -> String {
        let out = support::output(self.dockerd.docker().args(["logs", &self.name]));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `Running Pid ExitCode`.
    fn state(&self) -> String {
        run(self.dockerd.docker().args([
            "inspect",
            "--format",
            "{{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}",
            &self.name,
        ]))
        .trim()
        .to_owned()
    }

    /// `docker exec <container> <args>`: (success, stdout, stderr).
    fn exec(&self, args: &[&str]) -> (bool, String, String) {
        let out = support::output(self.dockerd.docker().arg("exec").arg(&self.name).args(args));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `exec` that must succeed; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.exec(args);
        assert!(
            ok,
            "{} ({}): docker exec {args:?} failed:\n{out}{err}",
            self.name, self.platform
        );
        eprintln!("{} $ {}\n{out}", self.platform, args.join(" "));
        out
    }

    /// `docker stop` (SIGTERM, SIGKILL after 10 s as Supervisor does): the exit status.
    fn stop(&self) -> String {
        run(self
            .dockerd
            .docker()
            .args(["stop", "--time", "10", &self.name]));
        self.state()
    }
}

impl Drop for Addon<'_> {
    fn drop(&mut self) {
        let _ = self
            .dockerd
            .docker()
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// sha256 of /bin/fluxion-main as the image's top layer holds it.
fn binary_sha256(arch: &str) -> String {
    let row = built(arch);
    let manifest: serde_json::Value =
        serde_json::from_slice(&support::tar_member(&row.archive_path(), "manifest.json")).unwrap();
    let top = manifest[0]["Layers"].as_array().unwrap().last().unwrap();
    let layer = support::tar_member(&row.archive_path(), top.as_str().unwrap());
    let (_, bytes) = support::layer_file(&layer, "bin/fluxion-main").unwrap();
    xtask::image::hash::sha256(&bytes)
        .trim_start_matches("sha256:")
        .to_owned()
}

/// PID 1's name, from /proc/1/status (which the profile lets every process read).
fn pid1_name(addon: &Addon<'_>) -> String {
    let (ok, status, err) = addon.exec(&["cat", "/proc/1/status"]);
    assert!(ok, "cat /proc/1/status: {err}");
    let name = status.lines().find_map(|l| l.strip_prefix("Name:"));
    name.unwrap_or_else(|| panic!("{status}")).trim().to_owned()
}

/// The shell session the issue asks for, against one running add-on.
fn shell_session(addon: &Addon<'_>, arch: &str, options: &str) {
    assert_eq!(pid1_name(addon), "fluxion-main", "PID 1 is the service");
    // The arm64 image really runs arm64 code (through qemu on an amd64 host).
    let machine = if arch == "amd64" {
        "x86_64\n"
    } else {
        "aarch64\n"
    };
    assert_eq!(addon.ok(&["uname", "-m"]), machine);

    assert_eq!(addon.ok(&["sh", "-c", "echo ok"]), "ok\n");
    // Called as sh, bash runs in POSIX mode.
    let posix = addon.ok(&["sh", "-c", "if [ -o posix ]; then echo posix; fi"]);
    assert_eq!(posix, "posix\n");
    assert_eq!(addon.ok(&["readlink", "/bin/sh"]), "bash\n");

    let out = addon.ok(&[
        "bash",
        "-c",
        "set -euo pipefail; echo \"${BASH_VERSINFO[0]}\"; arr=(a b c); echo \"${#arr[@]}\"",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.len() == 2 && lines[0] == "5" && lines[1] == "3",
        "{out}"
    );

    let ls = addon.ok(&["ls", "/bin"]);
    let bin: Vec<&str> = ls.lines().collect();
    for want in [
        "bash",
        "sh",
        "fluxion-main",
        "cat",
        "ls",
        "sha256sum",
        "date",
    ] {
        let found = bin.contains(&want) || addon.exec(&["ls", &format!("/usr/bin/{want}")]).0;
        assert!(found, "{want} in /bin or /usr/bin: {ls}");
    }

    assert_eq!(addon.ok(&["cat", "/data/options.json"]), options);
    assert!(addon.ok(&["cat", "/etc/passwd"]).starts_with("root:x:0:0:"));

    let sum = addon.ok(&["sha256sum", "/bin/fluxion-main"]);
    assert_eq!(
        sum,
        format!("{}  /bin/fluxion-main\n", binary_sha256(arch)),
        "sha256sum sees the image's binary"
    );

    let date = addon.ok(&["date", "-u", "+%s %Z"]);
    let (secs, zone) = date.trim().split_once(' ').unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let secs: u64 = secs.parse().unwrap();
    assert!(secs.abs_diff(now) < 300 && zone == "UTC", "{date}");

    // The issue's "done when" line, verbatim.
    let out = addon.ok(&["sh", "-c", "ls /bin | head -3; id -u"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    let mut sorted = lines[..3].to_vec();
    sorted.sort();
    assert_eq!(sorted, lines[..3], "ls sorts: {out}");
    assert!(lines[..3].iter().all(|l| bin.contains(l)), "{out}");
    assert_eq!(lines[3], "0", "{out}");

    // Still the same PID 1, still running, after every exec.
    assert_eq!(pid1_name(addon), "fluxion-main");
    assert!(addon.state().starts_with("true "), "{}", addon.state());
}

#[test]
fn docker_exec_runs_a_shell_and_coreutils_in_both_running_addons() {
    let Some(dockerd) = Dockerd::start(None) else {
        return;
    };
    let options = options_json();
    for arch in ["amd64", "aarch64"] {
        if arch == "aarch64" {
            if let Err(why) = support::ensure_binfmt_aarch64() {
                support::require(
                    &format!("arm64 containers through qemu binfmt ({why})"),
                    false,
                );
                continue;
            }
        }
        dockerd.load(&built(arch).archive_path());
        let data = tempfile::tempdir().unwrap();
        std::fs::write(data.path().join("options.json"), &options).unwrap();
        let addon = Addon::start(&dockerd, arch, data.path(), &[]);
        shell_session(&addon, arch, &options);
        // SIGTERM ends it cleanly well within Supervisor's 10 s.
        let state = addon.stop();
        assert!(
            state.starts_with("false ") && state.ends_with(" 0"),
            "{state}:\n{}",
            addon.logs()
        );
    }
}

/// Is AppArmor in this kernel and may we load profiles? (Why not, otherwise.)
fn apparmor_loadable() -> Result<(), String> {
    let fs = Path::new("/sys/kernel/security/apparmor");
    if !fs.join("profiles").exists() {
        return Err(format!(
            "the kernel has no AppArmor ({} is missing)",
            fs.display()
        ));
    }
    let enabled =
        std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").unwrap_or_default();
    if enabled.trim() != "Y" {
        return Err("AppArmor is not enabled in this kernel".into());
    }
    if std::fs::OpenOptions::new()
        .write(true)
        .open(fs.join(".replace"))
        .is_err()
    {
        return Err(
            "loading profiles is not permitted here (no CAP_MAC_ADMIN, or a container)".into(),
        );
    }
    Ok(())
}

#[test]
fn the_apparmor_profile_confines_the_shell_in_docker_where_the_kernel_allows() {
    if let Err(why) = apparmor_loadable() {
        // Not a missing tool: the kernel decides, so this skips even where tools are required.
        support::skip(&format!("loading addon/apparmor.txt: {why}"));
        return;
    }
    if !support::have("apparmor_parser") {
        return;
    }
    let Some(dockerd) = Dockerd::start(None) else {
        return;
    };
    // As Supervisor does (utils/apparmor.py adjust_profile): rename the one profile line to
    // the add-on's slug, then load it.
    let name = format!("fluxion_exec_test_{}", std::process::id());
    let text = std::fs::read_to_string(support::workspace().join("addon/apparmor.txt")).unwrap();
    let renamed: String = text
        .lines()
        .map(|l| {
            if l.starts_with("profile fluxion ") {
                l.replacen("profile fluxion ", &format!("profile {name} "), 1)
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("apparmor.txt");
    std::fs::write(&profile, renamed + "\n").unwrap();
    run(Command::new("apparmor_parser")
        .args(["-r", "-K"])
        .arg(&profile));
    struct Unload(std::path::PathBuf);
    impl Drop for Unload {
        fn drop(&mut self) {
            let _ = Command::new("apparmor_parser")
                .arg("-R")
                .arg(&self.0)
                .output();
        }
    }
    let _unload = Unload(profile.clone());

    let options = options_json();
    dockerd.load(&built("amd64").archive_path());
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("options.json"), &options).unwrap();
    let opt = format!("apparmor={name}");
    let addon = Addon::start(&dockerd, "amd64", data.path(), &["--security-opt", &opt]);
    let label =
        run(dockerd
            .docker()
            .args(["inspect", "--format", "{{.AppArmorProfile}}", &addon.name]));
    assert_eq!(
        label.trim(),
        name,
        "docker confines the container with the profile"
    );
    shell_session(&addon, "amd64", &options);
    // What the profile forbids, the shell cannot do either.
    for (args, why) in [
        (&["touch", "/etc/x"][..], "write outside /data and /tmp"),
        (
            &["sh", "-c", "cp /bin/true /tmp/t && /tmp/t"][..],
            "run a program from /tmp",
        ),
        (
            &["sh", "-c", "cp /bin/true /data/t && /data/t"][..],
            "run a program from /data",
        ),
        (
            &["cat", "/proc/1/environ"][..],
            "read the service's environment",
        ),
    ] {
        let (ok, out, err) = addon.exec(args);
        assert!(
            !ok,
            "the profile lets the shell {why}: {args:?}\n{out}{err}"
        );
    }
    assert!(
        addon.exec(&["touch", "/data/x", "/tmp/x"]).0,
        "writes to /data and /tmp"
    );
    let state = addon.stop();
    assert!(state.ends_with(" 0"), "{state}");
}
