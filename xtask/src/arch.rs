//! Every name of each architecture we ship (Home Assistant, OCI, Rust target, ELF machine,
//! Debian), in one place: build, assemble, publish, the runtime layer, the add-on checks and the
//! command line all map through here.
use std::fmt;

/// An architecture we ship. Every mapping between its names lives here and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    Amd64,
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Aarch64];

    /// The Rust target triple: musl, so the binary is fully static.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }

    /// GOARCH-style name for the image config and platform (OCI image-index "platform").
    pub fn oci_arch(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// Supervisor pulls with platform linux/arm64 and compares the variant too (`v8`).
    pub fn oci_variant(self) -> Option<&'static str> {
        match self {
            Arch::Amd64 => None,
            Arch::Aarch64 => Some("v8"),
        }
    }

    /// The name Home Assistant uses in config.yaml `arch:` and the `io.hass.arch` label.
    pub fn hass_arch(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// `linux/amd64`, `linux/arm64/v8`: what docker/podman `--platform` take.
    pub fn platform(self) -> String {
        match self.oci_variant() {
            Some(v) => format!("linux/{}/{v}", self.oci_arch()),
            None => format!("linux/{}", self.oci_arch()),
        }
    }

    /// ELF `e_machine` of binaries for this architecture (System V gABI, "Machine").
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::Amd64 => goblin::elf::header::EM_X86_64,
            Arch::Aarch64 => goblin::elf::header::EM_AARCH64,
        }
    }

    /// Debian's architecture name (`dpkg --print-architecture`), used by the runtime layer's
    /// package index paths (`main/binary-arm64/`) and lock file.
    pub fn debian_arch(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    pub fn from_debian(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.debian_arch() == name)
    }

    /// The architecture Home Assistant calls `name` (also what the command line takes).
    pub fn from_hass(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.hass_arch() == name)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hass_arch())
    }
}
