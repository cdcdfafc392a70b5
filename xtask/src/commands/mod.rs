//! One file per `cargo xtask` command; each is `impl flags::X { fn run(...) }`.
pub mod bench;
pub mod ci;
pub mod clean;
pub mod fetch;
pub mod image;
pub mod lint;
pub mod load;
pub mod lock;
pub mod meta;
pub mod push;
pub mod sbom;

use xshell::Shell;

use crate::arch::Arch;
use crate::epoch::Epoch;
use crate::flags;
use crate::image::compress::Compression;
use crate::pipeline::Options;
use crate::publish::Publisher;

impl flags::BuildOpts {
    /// The pipeline's options for a building command (`image`, `load`, `sbom`, `push`): the
    /// build flags they share, the one time source, and what the command publishes.
    fn options<'a>(
        &self,
        sh: &Shell,
        arches: Vec<Arch>,
        compression: Compression,
        publishers: Vec<&'a dyn Publisher>,
    ) -> anyhow::Result<Options<'a>> {
        Ok(Options {
            arches,
            builder: self.builder.into(),
            compression,
            downloads: self.downloads(),
            epoch: Epoch::discover(sh)?,
            publishers,
        })
    }
}
