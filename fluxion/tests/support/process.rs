//! Starts `fluxion-main` as a child process on a free loopback port and stops it by PID.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

pub struct Service {
    child: Child,
    pub addr: SocketAddr,
    /// Every stderr line the service printed so far (drained by a thread).
    pub log: mpsc::Receiver<String>,
}

impl Service {
    /// Starts the binary with a clean environment plus `env`, options read from `dir`, and
    /// port 0; waits for its "listening" log line to learn the port.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fluxion-main"));
        cmd.arg("--options")
            .arg(dir.join("options.json"))
            .env_clear()
            .env("RUST_LOG", "info")
            .env("FLUXION_WEB_PORT", "0")
            .env("FLUXION_WEB_BIND", "127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawning fluxion-main");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[fluxion-main] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "fluxion-main printed no 'listening' line: {:?}",
                        child.wait()
                    );
                }
            };
            if line.contains("listening") {
                if let Some(addr) = line.split("addr=").nth(1) {
                    let addr = addr.split_whitespace().next().unwrap();
                    break addr.parse().expect("listening address");
                }
            }
        };
        Service {
            child,
            addr,
            log: rx,
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).expect("sending a signal to fluxion-main");
    }

    /// Waits for exit up to `limit`; `None` if it is still running then.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Log lines printed so far that contain `needle`, waiting up to `limit` for the first.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Only our own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET over loopback; returns the whole response (status line first).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    Ok(out)
}

/// Opens a server-sent event stream and returns the text up to the end of the first event,
/// with the still-open connection (the caller decides when it closes).
pub fn http_stream_first_event(
    addr: SocketAddr,
    path: &str,
) -> std::io::Result<(String, TcpStream)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        // Headers end, then an event ends with a blank line.
        if let Some(body) = text.split("\r\n\r\n").nth(1) {
            if body.contains("\n\n") {
                break;
            }
        }
        if Instant::now() > deadline {
            break;
        }
    }
    Ok((String::from_utf8_lossy(&out).into_owned(), stream))
}
