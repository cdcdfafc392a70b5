//! Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`,
//! fds 3 and 4): no WebSocket client and no port. Waits for a condition in the page with a
//! bound, which `--dump-dom` cannot do for a page that keeps an event stream open.

use std::{
    fs::File,
    io::{BufRead, BufReader, Write},
    os::fd::{FromRawFd, RawFd},
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

pub struct Browser {
    child: Child,
    to: File,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // CLOEXEC so only the dup2'ed copies reach Chromium.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2 failed");
    (fds[0], fds[1])
}

impl Browser {
    pub fn launch(chromium: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (chrome_in, ours_out) = pipe();
        let (ours_in, chrome_out) = pipe();
        let mut cmd = Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--remote-debugging-pipe",
            "--window-size=1200,800",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe dup2 calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(chrome_in, 3) < 0 || libc::dup2(chrome_out, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("starting chromium");
        // SAFETY: each fd is owned by exactly one File from here on.
        let (to, from, c_in, c_out) = unsafe {
            (
                File::from_raw_fd(ours_out),
                File::from_raw_fd(ours_in),
                File::from_raw_fd(chrome_in),
                File::from_raw_fd(chrome_out),
            )
        };
        drop((c_in, c_out));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from);
            let mut buf = Vec::new();
            while reader
                .read_until(0, &mut buf)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                buf.pop();
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        Browser {
            child,
            to,
            from: rx,
            next_id: 1,
            _profile: profile,
        }
    }

    /// One protocol call (in `session` if given); panics on a protocol error or after `limit`.
    pub fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
        limit: Duration,
    ) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("writing to chromium");
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("chromium did not answer {method} within {limit:?}"));
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Opens `url` in a new tab and returns the session to talk to it.
    pub fn open(&mut self, url: &str) -> String {
        let t = Duration::from_secs(30);
        let target = self.call(None, "Target.createTarget", json!({"url": url}), t);
        let id = target["targetId"].as_str().unwrap().to_string();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": id, "flatten": true}),
            t,
        );
        attached["sessionId"].as_str().unwrap().to_string()
    }

    /// Evaluates `expr` in the page, returning its value.
    pub fn eval(&mut self, session: &str, expr: &str) -> Value {
        let r = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
            Duration::from_secs(30),
        );
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is truthy or `limit` passes; returns its last value.
    pub fn wait_for(&mut self, session: &str, expr: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.eval(session, expr);
            let truthy = !(v.is_null()
                || v == json!(false)
                || v == json!("")
                || v == json!(0)
                || v == json!("0"));
            if truthy || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG of the page.
    pub fn screenshot(&mut self, session: &str, path: &Path) {
        let r = self.call(
            Some(session),
            "Page.captureScreenshot",
            json!({"format": "png"}),
            Duration::from_secs(30),
        );
        let data = r["data"].as_str().unwrap();
        std::fs::write(path, base64_decode(data)).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Only our own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
