//! Bounds on what unpacking a `.deb` may produce (issue 14): a decompression bomb or a tar
//! header that declares 64 GiB must fail with the package and the limit named, never exhaust
//! memory. `[limits]` in addon/runtime.toml sets them; the defaults are far above the real
//! closure (its biggest package, libc6 for arm64, unpacks to 23 MiB; a whole arch to 53 MiB).
//!
//! `Capped` counts bytes as they come out of a decompressor (it wraps the decoder's reader:
//! liblzma, ruzstd, flate2), against the package's own limit and the layer's shared `Budget`
//! (the packages of one layer are unpacked concurrently), and refuses the chunk that would
//! cross either. A package served by the unpacked-package cache (runtime/unpacked.rs) is not
//! decompressed again: it is charged the size its data.tar unpacked to when it was cached
//! (`Budget::charge_cached`), so the cache can never take a layer past its limits.
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

const MIB: u64 = 1 << 20;

/// `[limits]` in addon/runtime.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most bytes one package's data.tar may unpack to (decompressed), in MiB.
    pub package_unpacked_mib: u64,
    /// Most bytes all packages of one arch's layer may unpack to together, in MiB.
    pub layer_unpacked_mib: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            package_unpacked_mib: 256,
            layer_unpacked_mib: 512,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.package_unpacked_mib > 0 && self.layer_unpacked_mib > 0,
            "[limits] in addon/runtime.toml: limits must be at least 1 MiB"
        );
        anyhow::ensure!(
            self.package_unpacked_mib <= 1 << 20 && self.layer_unpacked_mib <= 1 << 20,
            "[limits] in addon/runtime.toml: limits above 1 TiB are not limits"
        );
        Ok(())
    }
}

/// Which limit a package crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Package(u64),
    Layer(u64),
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exceeded::Package(mib) => write!(
                f,
                "unpacks to more than {mib} MiB, the per-package limit (`package_unpacked_mib` \
                 in `[limits]` of addon/runtime.toml); refusing it as a decompression bomb"
            ),
            Exceeded::Layer(mib) => write!(
                f,
                "takes the runtime layer's unpacked packages past {mib} MiB, the per-layer limit \
                 (`layer_unpacked_mib` in `[limits]` of addon/runtime.toml)"
            ),
        }
    }
}

impl std::error::Error for Exceeded {}

/// What one layer may still unpack, shared by the threads unpacking its packages.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    used: AtomicU64,
}

impl Budget {
    pub fn new(limits: Limits) -> Budget {
        Budget {
            limits,
            used: AtomicU64::new(0),
        }
    }

    /// The most one package may unpack to, in bytes: also a bound for buffers sized from it.
    pub fn package_bytes(&self) -> u64 {
        self.limits.package_unpacked_mib * MIB
    }

    /// Charge a package the unpacked-package cache served: `unpacked` bytes, what its data.tar
    /// unpacked to when it was cached, against both limits, as if it were decompressed now.
    pub fn charge_cached(&self, unpacked: u64) -> Result<(), Exceeded> {
        self.charge(0, unpacked)
    }

    /// Charge `n` more bytes of a package that has already produced `before`.
    fn charge(&self, before: u64, n: u64) -> Result<(), Exceeded> {
        if before + n > self.package_bytes() {
            return Err(Exceeded::Package(self.limits.package_unpacked_mib));
        }
        let total = self.used.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.limits.layer_unpacked_mib * MIB {
            return Err(Exceeded::Layer(self.limits.layer_unpacked_mib));
        }
        Ok(())
    }
}

/// A reader that counts the bytes passing through against a `Budget`; the first
/// chunk past a limit is an error and `exceeded()` says which limit it was.
pub struct Capped<'b, T> {
    inner: T,
    budget: &'b Budget,
    count: u64,
    exceeded: Option<Exceeded>,
}

impl<'b, T> Capped<'b, T> {
    pub fn new(inner: T, budget: &'b Budget) -> Self {
        Capped {
            inner,
            budget,
            count: 0,
            exceeded: None,
        }
    }

    /// The limit crossed, if any (decoders wrap our error in their own; this is how to tell).
    pub fn exceeded(&self) -> Option<Exceeded> {
        self.exceeded
    }

    fn charge(&mut self, n: usize) -> io::Result<()> {
        if let Some(e) = self.exceeded {
            return Err(io::Error::other(e));
        }
        match self.budget.charge(self.count, n as u64) {
            Ok(()) => {
                self.count += n as u64;
                Ok(())
            }
            Err(e) => {
                self.exceeded = Some(e);
                Err(io::Error::other(e))
            }
        }
    }
}

impl<T: Read> Read for Capped<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.charge(n)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(package: u64, layer: u64) -> Limits {
        Limits {
            package_unpacked_mib: package,
            layer_unpacked_mib: layer,
        }
    }

    #[test]
    fn a_package_stops_at_its_limit() {
        let budget = Budget::new(limits(1, 10));
        let mut r = Capped::new(std::io::repeat(0).take(2 * MIB), &budget);
        let mut sink = Vec::new();
        assert!(r.read_to_end(&mut sink).is_err());
        assert_eq!(r.exceeded(), Some(Exceeded::Package(1)));
        assert!(
            sink.len() as u64 <= MIB + 64 * 1024,
            "stopped near the limit"
        );
        assert!(r.read(&mut [0; 8]).is_err(), "stays refused");

        let budget = Budget::new(limits(1, 10));
        let mut r = Capped::new(std::io::repeat(0).take(MIB), &budget);
        assert_eq!(std::io::copy(&mut r, &mut std::io::sink()).unwrap(), MIB);
        assert_eq!(r.exceeded(), None, "exactly the limit is within it");
    }

    #[test]
    fn packages_share_the_layer_budget() {
        let budget = Budget::new(limits(2, 3));
        let mut a = Capped::new(std::io::repeat(0).take(2 * MIB), &budget);
        std::io::copy(&mut a, &mut std::io::sink()).unwrap();
        let mut b = Capped::new(std::io::repeat(0).take(MIB + 1), &budget);
        assert!(std::io::copy(&mut b, &mut std::io::sink()).is_err());
        assert_eq!(b.exceeded(), Some(Exceeded::Layer(3)));
        assert!(b
            .exceeded()
            .unwrap()
            .to_string()
            .contains("per-layer limit"));
    }

    #[test]
    fn cached_packages_are_charged_what_they_unpacked_to() {
        let budget = Budget::new(limits(2, 3));
        assert_eq!(budget.charge_cached(2 * MIB + 1), Err(Exceeded::Package(2)));
        budget.charge_cached(2 * MIB).unwrap();
        let mut r = Capped::new(std::io::repeat(0).take(MIB + 1), &budget);
        assert!(std::io::copy(&mut r, &mut std::io::sink()).is_err());
        assert_eq!(r.exceeded(), Some(Exceeded::Layer(3)));
    }

    #[test]
    fn defaults_and_validation() {
        let d = Limits::default();
        assert_eq!((d.package_unpacked_mib, d.layer_unpacked_mib), (256, 512));
        assert!(d.validate().is_ok());
        assert!(limits(0, 1).validate().is_err());
        let parsed: Limits = toml::from_str("package_unpacked_mib = 8").unwrap();
        assert_eq!(parsed, limits(8, 512));
        assert!(toml::from_str::<Limits>("package_mib = 8").is_err());
    }
}
