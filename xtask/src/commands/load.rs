//! `cargo xtask load <arch>`: build one image and load it into docker, else podman.
use xshell::Shell;

use crate::flags;
use crate::pipeline::{self, ImageOutputs};
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
            &self.build.options(
                sh,
                vec![self.arch],
                Default::default(),
                vec![&outputs.layouts, &daemon],
            )?,
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
