//! `cargo xtask clean --cache`: remove orphans from the images dir and the caches, print what
//! was freed.
use xshell::Shell;

use crate::flags;
use crate::gc;
use crate::runtime::cache::Cache;
use crate::units::human;
use crate::workspace::Workspace;

impl flags::Clean {
    pub fn run(self, _sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        debug_assert!(self.cache, "clap requires --cache");
        let freed = gc::clean(ws, &Cache::open_default()?)?;
        for (why, items) in &freed.groups {
            let bytes: u64 = items.iter().map(|s| s.bytes).sum();
            println!("removed {} {why} ({})", items.len(), human(bytes));
            for s in items {
                println!("  {}", s.path.display());
            }
        }
        if freed.files() == 0 {
            println!("nothing to free: no orphaned temp files, cache entries or blobs");
        } else {
            println!("freed {} in {} files", human(freed.bytes()), freed.files());
        }
        Ok(())
    }
}
