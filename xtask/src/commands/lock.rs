//! `cargo xtask lock`: resolve addon/runtime.toml against the verified Debian release and write
//! addon/runtime.lock; `--check` (CI, no network) only checks the lock covers the declaration.
use xshell::Shell;

use crate::flags;
use crate::runtime::{self, cache::Cache, lock::Declaration, lock::Lock, trust::Keyring};
use crate::workspace::Workspace;

impl flags::Lock {
    pub fn run(self, _sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        if self.check {
            let rt = runtime::Runtime::load(&ws.root)?;
            println!(
                "addon/runtime.lock covers addon/runtime.toml: {} ({}), {} packages",
                rt.lock.source.suite,
                rt.lock.source.date,
                rt.decl
                    .architectures
                    .iter()
                    .map(|a| format!(
                        "{a}: {}",
                        rt.lock.packages.iter().filter(|p| &p.arch == a).count()
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Ok(());
        }
        let decl = Declaration::load(&runtime::declaration_path(&ws.root))?;
        let lock_path = runtime::lock_path(&ws.root);
        // An unreadable old lock is replaced; only its date is used (never go back in time).
        let old = lock_path
            .exists()
            .then(|| Lock::load(&lock_path).ok())
            .flatten();
        let keyring = Keyring::load_dir(&runtime::keys_dir(&ws.root))?;
        let cache = Cache::open_default()?;
        let lock = runtime::resolve_lock(&decl, old.as_ref(), &cache, &keyring)?;
        let text = lock.render()?;
        let unchanged = std::fs::read_to_string(&lock_path).ok().as_deref() == Some(&text[..]);
        crate::atomic::write(&lock_path, text.as_bytes())?;
        for a in &decl.architectures {
            let names: Vec<&str> = lock
                .packages
                .iter()
                .filter(|p| &p.arch == a)
                .map(|p| p.name.as_str())
                .collect();
            println!("{a}: {} packages: {}", names.len(), names.join(" "));
        }
        println!(
            "{} {} ({})",
            if unchanged { "unchanged" } else { "wrote" },
            lock_path
                .strip_prefix(&ws.root)
                .unwrap_or(&lock_path)
                .display(),
            lock.source.date
        );
        Ok(())
    }
}
