//! `cargo xtask lock`: resolve addon/runtime.toml across its verified Debian suites and write
//! addon/runtime.lock (+ the InRelease files beside it), printing what changed; `--check` (CI,
//! no network) checks the lock covers the declaration and agrees with the signed releases.
use xshell::Shell;

use crate::flags;
use crate::runtime::{self, cache::Cache, lock::Declaration, locking, trust::Keyring};
use crate::workspace::Workspace;

impl flags::Lock {
    pub fn run(self, _sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        if self.check {
            println!("{}", check(ws)?);
            return Ok(());
        }
        let decl = Declaration::load(&runtime::declaration_path(&ws.root))?;
        let lock_path = runtime::lock_path(&ws.root);
        // The old lock in any format (even one no longer loadable): its dates (never go back
        // in time) and packages (the change report).
        let old = std::fs::read_to_string(&lock_path)
            .ok()
            .and_then(|t| locking::Previous::parse(&t));
        let keyring = Keyring::load_dir(&runtime::keys_dir(&ws.root))?;
        let cache = Cache::open_default()?;
        let resolved = locking::resolve_lock(&decl, old.as_ref(), &cache, &keyring)?;
        let changes = locking::changes(&old.unwrap_or_default(), &resolved.lock);
        let changed = locking::write(&lock_path, &runtime::lock_dir(&ws.root), &resolved)?;
        let lock = &resolved.lock;
        for a in &decl.architectures {
            let names: Vec<String> = lock
                .packages
                .iter()
                .filter(|p| &p.arch == a)
                .map(|p| match &p.suite {
                    s if s == &lock.base_suite().name => p.name.clone(),
                    s => format!("{} ({s})", p.name),
                })
                .collect();
            println!("{a}: {} packages: {}", names.len(), names.join(" "));
        }
        if changes.is_empty() {
            println!("no package changed");
        } else {
            println!("changed packages:");
            for c in &changes {
                println!("  {c}");
            }
        }
        let dates: Vec<String> = lock
            .source
            .suites
            .iter()
            .map(|s| format!("{} {}", s.name, s.date))
            .collect();
        println!(
            "{} {} ({})",
            if changed { "wrote" } else { "unchanged" },
            lock_path
                .strip_prefix(&ws.root)
                .unwrap_or(&lock_path)
                .display(),
            dates.join("; ")
        );
        Ok(())
    }
}

/// `lock --check` (also a `ci` step): one line saying what was checked.
pub fn check(ws: &Workspace) -> anyhow::Result<String> {
    let (rt, unverified) = runtime::check_lock(&ws.root, &Cache::open_default()?)?;
    let suites: Vec<&str> = rt
        .lock
        .source
        .suites
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let counts: Vec<String> = rt
        .decl
        .architectures
        .iter()
        .map(|a| {
            let n = rt.lock.packages.iter().filter(|p| &p.arch == a).count();
            format!("{a}: {n}")
        })
        .collect();
    let mut out = format!(
        "addon/runtime.lock covers addon/runtime.toml and agrees with the signed releases of {} \
         ({}); packages {}",
        suites.join(", "),
        rt.lock.source.date,
        counts.join(", ")
    );
    if unverified.is_empty() {
        out.push_str("; every package is in its signed index as locked");
    } else {
        out.push_str(&format!(
            "\nnot checked against their signed index (not in the download cache; `cargo xtask \
             fetch` or `image` fetch and check them): the packages of {}",
            unverified.join(", ")
        ));
    }
    Ok(out)
}
