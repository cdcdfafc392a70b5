//! `cargo xtask`: parse the command line, set up tracing, dispatch to one command.
use clap::Parser;
use xtask::flags::{Cmd, Xtask};

fn main() -> anyhow::Result<()> {
    let flags = Xtask::parse();
    let default = if flags.verbose { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("XTASK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Logs go to stderr: stdout is reserved for results (`--json`).
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();

    // Ctrl-C / SIGTERM: remove this run's temp files, exit 130 (atomic.rs).
    xtask::atomic::exit_on_signals()?;
    let sh = xshell::Shell::new()?;
    let ws = xtask::workspace::Workspace::discover(&sh)?;
    sh.change_dir(&ws.root);
    match flags.cmd {
        Cmd::Image(cmd) => cmd.run(&sh, &ws),
        Cmd::Load(cmd) => cmd.run(&sh, &ws),
        Cmd::Push(cmd) => cmd.run(&sh, &ws),
        Cmd::Ci(cmd) => cmd.run(&sh, &ws),
        Cmd::Lint(cmd) => cmd.run(&sh, &ws),
        Cmd::Meta(cmd) => cmd.run(&sh, &ws),
        Cmd::Lock(cmd) => cmd.run(&sh, &ws),
        Cmd::Fetch(cmd) => cmd.run(&sh, &ws),
        Cmd::Sbom(cmd) => cmd.run(&sh, &ws),
        Cmd::Bench(cmd) => cmd.run(&sh, &ws),
        Cmd::Clean(cmd) => cmd.run(&sh, &ws),
    }
}
