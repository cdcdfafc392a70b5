//! `cargo xtask fetch`: download every .deb the lock lists into the download cache, verified.
use xshell::Shell;

use crate::flags;
use crate::runtime::{self, cache::Cache, cache::Mode};
use crate::workspace::Workspace;

impl flags::Fetch {
    pub fn run(self, _sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        let rt = runtime::Runtime::load(&ws.root)?;
        let cache = Cache::open_default()?;
        let mode = if self.offline {
            Mode::Offline
        } else {
            Mode::Online
        };
        let n = runtime::fetch(&rt, &cache, &self.arch.arches(), mode)?;
        println!(
            "{n} package files cached and verified in {}",
            Cache::default_dir()?.display()
        );
        Ok(())
    }
}
