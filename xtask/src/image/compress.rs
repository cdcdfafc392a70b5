//! Layer compression: gzip (the default, every engine reads it) or zstd, pinned and deterministic.
//!
//! A compressed digest depends on the compressor's implementation, version and level, not only
//! on the input, so `Compression::identity` names all three (the versions as Cargo.lock pins
//! them, read by xtask/build.rs); it is part of every layer cache key (image/cache.rs), and a
//! Cargo.lock update that changes a compressor invalidates the cache.
use std::io::{self, Write};

use flate2::write::GzEncoder;
use flate2::GzBuilder;

use crate::locked;

/// OCI image-spec media-types.md / layer.md: the gzip and zstd layer media types.
pub use super::layer::MEDIA_TYPE_TAR_GZIP;
pub const MEDIA_TYPE_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// gzip level 6, what `gzip -6` and Docker use. Backend: flate2 with its pure-Rust zlib-rs
/// backend (no C), the one choice for every gzip layer, app and runtime alike: xtask/Cargo.toml
/// turns it on (pgp does too), flate2 prefers it over miniz_oxide when both are compiled, and
/// `identity` names the zlib-rs version Cargo.lock pins.
pub const GZIP_LEVEL: u32 = 6;
/// zstd level 6: ~14 % smaller than gzip -6 and faster (zstd CLI on the amd64 layer: 0.20 s vs
/// 0.32 s; level 9 is 3 % smaller again but slower than gzip -6). `cargo xtask bench` measures it.
pub const ZSTD_LEVEL: i32 = 6;

/// Which compressor writes layers. zstd layers are read by Docker >= 23, podman, containerd,
/// skopeo and umoci, but not by Docker 20.10 (Debian's docker.io), hence gzip by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

impl Compression {
    pub const ALL: [Compression; 2] = [Compression::Gzip, Compression::Zstd];

    /// The name the command line takes and messages use.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    pub fn from_name(name: &str) -> Option<Compression> {
        Compression::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => MEDIA_TYPE_TAR_GZIP,
            Compression::Zstd => MEDIA_TYPE_TAR_ZSTD,
        }
    }

    /// Algorithm, level and the versions of the code that compresses (from Cargo.lock, which
    /// pins them; the zstd C library version as linked), e.g.
    /// `gzip-6 flate2-1.1.11 zlib-rs-0.6.8 header(mtime=0,os=255)`.
    pub fn identity(self) -> String {
        match self {
            Compression::Gzip => format!(
                "gzip-{GZIP_LEVEL} flate2-{} zlib-rs-{} header(mtime=0,os=255)",
                locked::FLATE2,
                locked::ZLIB_RS
            ),
            Compression::Zstd => format!(
                "zstd-{ZSTD_LEVEL} zstd-{} zstd-safe-{} libzstd-{} checksum=1",
                locked::ZSTD,
                locked::ZSTD_SAFE,
                zstd::zstd_safe::version_number()
            ),
        }
    }

    /// A compressing writer around `out`.
    pub fn encoder<W: Write>(self, out: W) -> io::Result<Encoder<W>> {
        Ok(match self {
            // RFC 1952 2.3.1: no file name, mtime 0, OS 255 (unknown): nothing of the host.
            Compression::Gzip => Encoder::Gzip(
                GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(out, flate2::Compression::new(GZIP_LEVEL)),
            ),
            Compression::Zstd => {
                let mut z = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
                // Pinned frame options: a content checksum, no content size (unknown while
                // streaming), single-threaded (libzstd's multi-threaded frames differ).
                z.include_checksum(true)?;
                z.include_contentsize(false)?;
                Encoder::Zstd(z)
            }
        })
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub enum Encoder<W: Write> {
    Gzip(GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Write the trailer and hand back the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(g) => g.finish(),
            Encoder::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Zstd(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(g) => g.flush(),
            Encoder::Zstd(z) => z.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_names_algorithm_level_and_versions() {
        let g = Compression::Gzip.identity();
        assert!(g.starts_with("gzip-6 flate2-1."), "{g}");
        assert!(g.contains(&format!("zlib-rs-{}", locked::ZLIB_RS)), "{g}");
        let z = Compression::Zstd.identity();
        assert!(z.starts_with("zstd-6 zstd-0."), "{z}");
        assert!(
            z.contains(&format!("zstd-safe-{}", locked::ZSTD_SAFE)),
            "{z}"
        );
    }

    #[test]
    fn both_compressors_round_trip_deterministically() {
        let input: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [Compression::Gzip, Compression::Zstd] {
            let once = |()| {
                let mut e = c.encoder(Vec::new()).unwrap();
                e.write_all(&input).unwrap();
                e.finish().unwrap()
            };
            let (a, b) = (once(()), once(()));
            assert_eq!(a, b, "{c}: same input, same bytes");
            let back = match c {
                Compression::Gzip => {
                    let mut v = Vec::new();
                    io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&a[..]), &mut v)
                        .unwrap();
                    v
                }
                Compression::Zstd => zstd::decode_all(&a[..]).unwrap(),
            };
            assert_eq!(back, input, "{c}");
        }
    }
}
