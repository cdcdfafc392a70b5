//! Fixture `.deb`s built in Rust (ar + tar, like dpkg-deb), and a tiny HTTP mirror on
//! 127.0.0.1 that serves them.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// One data.tar entry. Paths are written verbatim into the header (no validation), so a
/// fixture can carry the `../` and absolute paths a hostile package would.
pub enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    CharDev(&'a str),
}

pub enum Comp {
    Gz,
    Xz,
    Zst,
}

fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let name = &mut h.as_gnu_mut().unwrap().name;
    name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_600_000_000); // packaged mtimes differ from the epoch: they must not leak
    h.set_uid(1000);
    h.set_gid(1000);
    h
}

pub fn data_tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::Dir(p, m) => {
                let mut h = header(p, tar::EntryType::Directory, *m, 0);
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
            E::File(p, m, data) => {
                let mut h = header(p, tar::EntryType::Regular, *m, data.len() as u64);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            E::Symlink(p, t) | E::Hardlink(p, t) => {
                let kind = if matches!(e, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                let mut h = header(p, kind, 0o777, 0);
                let ln = &mut h.as_gnu_mut().unwrap().linkname;
                ln[..t.len()].copy_from_slice(t.as_bytes());
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
            E::CharDev(p) => {
                let mut h = header(p, tar::EntryType::Char, 0o666, 0);
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// A `.deb`: debian-binary, control.tar.gz, data.tar.{gz,xz,zst}.
pub fn deb(name: &str, entries: &[E<'_>], comp: Comp) -> Vec<u8> {
    let data = data_tar(entries);
    let (member, bytes) = match comp {
        Comp::Gz => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            gz.write_all(&data).unwrap();
            ("data.tar.gz", gz.finish().unwrap())
        }
        Comp::Xz => {
            let mut out = Vec::new();
            lzma_rs::xz_compress(&mut &data[..], &mut out).unwrap();
            ("data.tar.xz", out)
        }
        Comp::Zst => (
            "data.tar.zst",
            ruzstd::encoding::compress_to_vec(
                &data[..],
                ruzstd::encoding::CompressionLevel::Fastest,
            ),
        ),
    };
    let control = format!("Package: {name}\nVersion: 1.0-1\nArchitecture: amd64\n");
    let ctar = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(control.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "./control", control.as_bytes())
            .unwrap();
        let t = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(&t).unwrap();
        gz.finish().unwrap()
    };
    let mut ar = ar::Builder::new(Vec::new());
    for (n, b) in [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", ctar),
        (member, bytes),
    ] {
        ar.append(
            &ar::Header::new(n.as_bytes().to_vec(), b.len() as u64),
            &b[..],
        )
        .unwrap();
    }
    ar.into_inner().unwrap()
}

pub fn sha256_hex(b: &[u8]) -> String {
    format!("{:x}", Sha256::digest(b))
}

/// A mirror on 127.0.0.1: serves `files` (path -> bytes) over HTTP/1.1, counting requests.
pub struct Mirror {
    pub url: String,
    pub files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    pub hits: Arc<Mutex<Vec<String>>>,
}

impl Mirror {
    pub fn start() -> Mirror {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/debian", listener.local_addr().unwrap());
        let files: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let (f, h) = (files.clone(), hits.clone());
        // The thread ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut line = String::new();
                let mut r = BufReader::new(s.try_clone().unwrap());
                // A bare connect (the reachability probe) sends no request line.
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let path = path.trim_start_matches("/debian/").to_owned();
                h.lock().unwrap().push(path.clone());
                let body = f.lock().unwrap().get(&path).cloned();
                let _ = match body {
                    Some(b) => s
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                b.len()
                            )
                            .as_bytes(),
                        )
                        .and_then(|_| s.write_all(&b)),
                    None => s.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                };
            }
        });
        Mirror { url, files, hits }
    }

    pub fn serve(&self, path: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_owned(), bytes);
    }
}

/// A minimal cargo workspace in `dir`: a `fluxion` package of `crate_version` (a stub binary
/// `fluxion-main`) and `addon/config.yaml`.
pub fn workspace_files(dir: &std::path::Path, crate_version: &str, config_yaml: &str) {
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "Cargo.toml",
        "[workspace]\nresolver = \"2\"\nmembers = [\"fluxion\"]\n",
    );
    write(
        "fluxion/Cargo.toml",
        &format!(
            "[package]\nname = \"fluxion\"\nversion = \"{crate_version}\"\nedition = \"2021\"\n\n\
             [[bin]]\nname = \"fluxion-main\"\npath = \"src/main.rs\"\n"
        ),
    );
    write("fluxion/src/main.rs", "fn main() {}\n");
    write("addon/config.yaml", config_yaml);
}
