//! `cargo xtask bench`: run the bench scenarios (bench/scenarios.rs), print the table, write
//! target/bench/report.json.
use xshell::Shell;

use crate::bench::scenarios;
use crate::image::json;
use crate::workspace::Workspace;
use crate::{atomic, flags};

impl flags::Bench {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        let dir = ws.target_dir.join("bench");
        let report = scenarios::run(sh, ws, &dir, self.runs as usize)?;
        scenarios::print_table(&report);
        let path = dir.join("report.json");
        atomic::write(&path, json::to_pretty(&report).as_bytes())?;
        println!("\nreport: {}", path.display());
        Ok(())
    }
}
