//! `cargo xtask load <arch>`: build one image and load it into docker, else podman.
use xshell::Shell;

use super::image::build_images_mode;
use crate::epoch::Epoch;
use crate::flags;
use crate::publish::daemon;
use crate::workspace::Workspace;

impl flags::Load {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        let epoch = Epoch::discover(sh)?;
        let built = build_images_mode(
            sh,
            ws,
            &[self.arch],
            self.build.builder,
            epoch,
            self.build.cache_mode(),
        )?;
        let (engine, names) = daemon::load(sh, &built[0].archive)?;
        for name in names {
            println!("loaded {name} ({}) into {engine:?}", built[0].image.id());
        }
        Ok(())
    }
}
