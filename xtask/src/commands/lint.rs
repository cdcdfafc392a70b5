//! `cargo xtask lint`: check addon/config.yaml against the rule table (every key Supervisor and
//! the add-on linter know, with types and defaults) and Supervisor's and the linter's further
//! rules, and the repository as Supervisor's store loads it, printing every finding at once;
//! any error fails the command. Nothing outside the checkout is read unless `--schema` names a
//! copy of the linter's JSON schema.
use std::path::Path;

use anyhow::{bail, Context};
use xshell::Shell;

use crate::addon::lint::{self, Severity};
use crate::addon::store;
use crate::flags;
use crate::workspace::Workspace;

impl flags::Lint {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        let file = self.file.unwrap_or_else(|| ws.addon_config());
        let manifest = run(&file, self.schema.as_deref(), &ws.fluxion_version);
        let store = run_store(sh, &self.store.unwrap_or_else(|| ws.root.clone()), ws);
        manifest.and(store)
    }
}

/// Every finding `cargo xtask lint` (without `--schema`) reports, the manifest's and the
/// store's, as it prints them: for `push`, which refuses to upload on any error, and `image`,
/// which shows them as warnings. Nothing is printed here (`image --json` keeps stdout for its
/// JSON).
#[derive(Debug, Default)]
pub struct Findings {
    pub lines: Vec<(Severity, String)>,
}

impl Findings {
    pub fn errors(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(s, _)| *s == Severity::Error)
            .map(|(_, l)| l.as_str())
            .collect()
    }
}

pub fn findings(sh: &Shell, ws: &Workspace) -> anyhow::Result<Findings> {
    let mut out = Findings::default();
    let file = ws.addon_config();
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("reading the add-on manifest {}", file.display()))?;
    let ctx = lint::Context::new(&ws.fluxion_version);
    for f in lint::lint(&text, None, &ctx) {
        out.lines
            .push((f.severity, format!("{}: {f}", file.display())));
    }
    for f in store::check(sh, &ws.root, &ws.fluxion_version)?.findings {
        out.lines.push((f.severity, format!("store: {f}")));
    }
    Ok(out)
}

/// The repository as Supervisor's store loads it (addon/store.rs), printed like the manifest.
pub fn run_store(sh: &Shell, root: &Path, ws: &Workspace) -> anyhow::Result<()> {
    let report = store::check(sh, root, &ws.fluxion_version)?;
    for f in &report.findings {
        println!("store: {f}");
    }
    let errors = report.errors();
    if errors > 0 {
        bail!(
            "store: {errors} error(s): Supervisor would refuse the repository at {} or show a \
             broken add-on; fix the files named above",
            root.display()
        );
    }
    for line in &report.summary {
        println!("store: {line}");
    }
    println!("store: ok ({})", root.display());
    Ok(())
}

pub fn run(file: &Path, schema_path: Option<&Path>, fluxion_version: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the add-on manifest {}", file.display()))?;
    let schema = schema_path.map(load_schema).transpose()?;
    let findings = lint::lint(&text, schema.as_ref(), &lint::Context::new(fluxion_version));
    let shown = file.display();
    for f in &findings {
        println!("{shown}: {f}");
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    if errors > 0 {
        bail!(
            "{shown}: {errors} error(s), {warnings} warning(s); fix the keys named above \
             (each line names the key and, in brackets, the rule)"
        );
    }
    println!(
        "{shown}: ok ({} keys' types and defaults, Supervisor's and the linter's rules{}; \
         {warnings} warning(s))",
        lint::keys::KEYS.len(),
        if schema.is_some() {
            ", and the given linter schema"
        } else {
            ""
        },
    );
    Ok(())
}

/// The linter schema the user named with `--schema`: asked for, so a missing file is an error.
fn load_schema(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the linter schema {} given with --schema (a copy of \
             frenck/action-addon-linter's src/config.schema.json)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}
