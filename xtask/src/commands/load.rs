//! `cargo xtask load <arch>`: build one image and load it into docker, else podman.
use xshell::Shell;

use crate::epoch::Epoch;
use crate::flags;
use crate::pipeline::{self, ImageOutputs, Options};
use crate::publish::daemon::Daemon;
use crate::publish::Format;
use crate::workspace::Workspace;

impl flags::Load {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        let outputs = ImageOutputs::new(ws);
        let daemon = Daemon {
            sh,
            archives: outputs.archives.clone(),
        };
        let built = pipeline::run(
            sh,
            ws,
            &Options {
                arches: vec![self.arch],
                builder: self.build.builder.into(),
                compression: Default::default(),
                downloads: self.build.downloads(),
                epoch: Epoch::discover(sh)?,
                publishers: vec![&outputs.layouts, &daemon],
            },
        )?;
        let id = built.images[0].id();
        for o in built.outputs.iter().filter(|o| o.format == Format::Daemon) {
            for name in &o.names {
                println!("loaded {name} ({id}) into {}", o.location);
            }
        }
        Ok(())
    }
}
