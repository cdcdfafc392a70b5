//! The check every binary passes before packaging: ELF for the right machine, fully static.
use anyhow::{bail, Context};
use goblin::elf::Elf;

use crate::arch::Arch;

pub fn check(bytes: &[u8], arch: Arch) -> anyhow::Result<()> {
    let elf = Elf::parse(bytes).context("not an ELF executable")?;
    let machine = elf.header.e_machine;
    if machine != arch.elf_machine() {
        bail!(
            "wrong architecture: ELF machine is {} but {arch} needs {}",
            goblin::elf::header::machine_to_str(machine),
            goblin::elf::header::machine_to_str(arch.elf_machine()),
        );
    }
    if !elf.is_64 || !elf.little_endian {
        bail!("expected a 64-bit little-endian ELF for {arch}");
    }
    // A dynamic executable names its loader in PT_INTERP and its libraries in DT_NEEDED; the
    // image has no libc for it, so either is fatal at run time.
    if let Some(interp) = elf.interpreter {
        bail!("dynamically linked (interpreter {interp}); build for the musl target, static");
    }
    if !elf.libraries.is_empty() {
        bail!(
            "dynamically linked against {:?}; build it static",
            elf.libraries
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_elf() {
        assert!(check(b"#!/bin/sh\necho hi\n", Arch::Amd64).is_err());
    }

    #[test]
    fn rejects_dynamic_host_binary() {
        // The test runner itself is a dynamically linked glibc executable for the host.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let host = if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::Amd64
        };
        let other = if host == Arch::Amd64 {
            Arch::Aarch64
        } else {
            Arch::Amd64
        };
        let err = check(&me, host).unwrap_err().to_string();
        assert!(err.contains("dynamically linked"), "{err}");
        let err = check(&me, other).unwrap_err().to_string();
        assert!(err.contains("wrong architecture"), "{err}");
    }
}
