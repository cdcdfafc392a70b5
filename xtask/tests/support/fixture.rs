//! Fixture `.deb`s built in Rust (ar + tar, like dpkg-deb), their Packages index, and a tiny
//! HTTP mirror on 127.0.0.1 that serves them.
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
    /// A regular file whose header declares `declared` bytes but carries `data`.
    Lying(&'a str, u64, &'a [u8]),
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
            E::Lying(p, declared, data) => {
                // Written by hand: tar::Builder would (rightly) refuse a short body.
                let mut h = header(p, tar::EntryType::Regular, 0o644, *declared);
                h.set_cksum();
                let out = b.get_mut();
                out.extend_from_slice(h.as_bytes());
                out.extend_from_slice(data);
            }
        }
    }
    b.into_inner().unwrap()
}

/// A `.deb`: debian-binary, control.tar.gz, data.tar.{gz,xz,zst}.
pub fn deb(name: &str, entries: &[E<'_>], comp: Comp) -> Vec<u8> {
    deb_of(name, &data_tar(entries), comp)
}

/// A `.deb` around an already built (or hand-made) `data.tar`.
pub fn deb_of(name: &str, data: &[u8], comp: Comp) -> Vec<u8> {
    let (member, bytes) = match comp {
        Comp::Gz => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            gz.write_all(data).unwrap();
            ("data.tar.gz", gz.finish().unwrap())
        }
        Comp::Xz => {
            let mut out = Vec::new();
            lzma_rs::xz_compress(&mut &data[..], &mut out).unwrap();
            ("data.tar.xz", out)
        }
        Comp::Zst => (
            "data.tar.zst",
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest),
        ),
    };
    let control = format!("Package: {name}\nVersion: 1.0-1\nArchitecture: amd64\n");
    ar_deb(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", control_tar(&control)),
        (member, bytes),
    ])
}

/// An ar archive of `members`, as dpkg-deb writes a .deb.
pub fn ar_deb(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut ar = ar::Builder::new(Vec::new());
    for (n, b) in members {
        ar.append(
            &ar::Header::new(n.as_bytes().to_vec(), b.len() as u64),
            &b[..],
        )
        .unwrap();
    }
    ar.into_inner().unwrap()
}

fn control_tar(control: &str) -> Vec<u8> {
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
}

/// The Packages stanza of a fixture `.deb` (what Debian's index says about it).
pub fn stanza(name: &str, version: &str, filename: &str, bytes: &[u8]) -> String {
    format!(
        "Package: {name}\nVersion: {version}\nArchitecture: amd64\nPriority: optional\n\
         Filename: {filename}\nSize: {}\nSHA256: {}\n\n",
        bytes.len(),
        sha256_hex(bytes)
    )
}

pub fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    lzma_rs::xz_compress(&mut &bytes[..], &mut out).unwrap();
    out
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
    /// A mirror at `http://127.0.0.1:<port>/debian`.
    pub fn start() -> Mirror {
        Mirror::start_at("debian")
    }

    /// A mirror at `http://127.0.0.1:<port>/<prefix>`; `files` and `hits` are relative to it.
    pub fn start_at(prefix: &str) -> Mirror {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/{prefix}", listener.local_addr().unwrap());
        let strip = format!("/{prefix}/");
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
                let path = path.strip_prefix(&strip).unwrap_or(&path).to_owned();
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
    // As a real checkout has it: the build and the SBOM's cargo calls run `--locked`.
    write(
        "Cargo.lock",
        &format!(
            "# This file is automatically @generated by Cargo.\n# It is not intended for manual \
             editing.\nversion = 4\n\n[[package]]\nname = \"fluxion\"\nversion = \"{crate_version}\"\n"
        ),
    );
    write("addon/config.yaml", config_yaml);
}

/// A throwaway archive signing key (Ed25519, signing through a subkey as Debian's keys do),
/// for fixture suites whose InRelease a real `Runtime::load` verifies (a scratch workspace's
/// `xtask/keys/` then holds `public_armored`). No expiry: valid at any release date after it
/// was made (the signature may not predate the key; the release's `Date` may).
pub struct ArchiveKey(pgp::composed::SignedSecretKey);

impl ArchiveKey {
    pub fn generate() -> ArchiveKey {
        use pgp::composed::{EncryptionCaps, KeyType, SecretKeyParamsBuilder, SubkeyParamsBuilder};
        let mut sub = SubkeyParamsBuilder::default();
        sub.key_type(KeyType::Ed25519Legacy)
            .can_sign(true)
            .can_encrypt(EncryptionCaps::None)
            .can_authenticate(false);
        let mut p = SecretKeyParamsBuilder::default();
        p.key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(false)
            .can_encrypt(EncryptionCaps::None)
            .primary_user_id("Fixture Archive Key <fixture@example.invalid>".into())
            .subkeys(vec![sub.build().unwrap()]);
        ArchiveKey(p.build().unwrap().generate(rand::thread_rng()).unwrap())
    }

    /// The public key, ASCII-armored (`xtask/keys/<name>.asc`).
    pub fn public_armored(&self) -> String {
        self.0
            .to_public_key()
            .to_armored_string(Default::default())
            .unwrap()
    }

    /// The signed InRelease of `suite`, dated `date`, listing `indexes` (each a path below
    /// `dists/<suite>/` and its bytes) by size and sha256.
    pub fn inrelease(&self, suite: &str, date: &str, indexes: &[(String, Vec<u8>)]) -> String {
        let mut text = format!(
            "Origin: Fixture\nLabel: Fixture\nSuite: {suite}\nCodename: {suite}\nDate: {date}\n\
             Components: main\nSHA256:\n"
        );
        for (path, bytes) in indexes {
            text += &format!(" {} {} {path}\n", sha256_hex(bytes), bytes.len());
        }
        pgp::composed::CleartextSignedMessage::sign(
            rand::thread_rng(),
            &text,
            &self.0.secret_subkeys[0].key,
            &pgp::types::Password::empty(),
        )
        .unwrap()
        .to_armored_string(Default::default())
        .unwrap()
    }
}
