//! `cargo xtask lint`: check addon/config.yaml against Home Assistant's add-on linter schema and
//! Supervisor's own rules, and the repository as Supervisor's store loads it, printing every
//! finding at once; any error fails the command.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use xshell::Shell;

use crate::addon::lint::{self, Severity};
use crate::addon::store;
use crate::flags;
use crate::workspace::Workspace;

/// Where the reference copy of the linter's schema sits: beside the checkout, not in it
/// (see ../shared/ref/README.md).
pub fn default_schema_path(ws: &Workspace) -> PathBuf {
    ws.root
        .join("..")
        .join("shared")
        .join("ref")
        .join("ha-addon-linter")
        .join("config.schema.json")
}

impl flags::Lint {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> anyhow::Result<()> {
        let file = self.file.unwrap_or_else(|| ws.addon_config());
        let schema_path = self.schema.unwrap_or_else(|| default_schema_path(ws));
        let manifest = run(&file, &schema_path, &ws.fluxion_version);
        let store = run_store(sh, &self.store.unwrap_or_else(|| ws.root.clone()), ws);
        manifest.and(store)
    }
}

/// Every finding `cargo xtask lint` reports, the manifest's and the store's, as it prints
/// them: for `push`, which refuses to upload on any error, and `image`, which shows them as
/// warnings. Nothing is printed here (`image --json` keeps stdout for its JSON).
#[derive(Debug, Default)]
pub struct Findings {
    pub lines: Vec<(Severity, String)>,
    /// What was not checked, and why.
    pub notes: Vec<String>,
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
    let schema_path = default_schema_path(ws);
    let schema = if schema_path.exists() {
        load_schema(&schema_path)?
    } else {
        out.notes.push(format!(
            "lint: schema check skipped: {} is absent (Supervisor's rules still run)",
            schema_path.display()
        ));
        None
    };
    let ctx = lint::Context::new(&ws.fluxion_version);
    for f in lint::lint(&text, schema.as_ref(), &ctx) {
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

pub fn run(file: &Path, schema_path: &Path, fluxion_version: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the add-on manifest {}", file.display()))?;
    let schema = load_schema(schema_path)?;
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
        "{shown}: ok ({} rules{}, {warnings} warning(s))",
        if schema.is_some() {
            "linter schema + Supervisor"
        } else {
            "Supervisor"
        },
        if schema.is_some() { "" } else { " only" }
    );
    Ok(())
}

/// The schema, or `None` (with a printed reason) when the reference copy is absent; under
/// `CI=true` an absent schema is an error, so CI can never silently skip the check.
fn load_schema(path: &Path) -> anyhow::Result<Option<serde_json::Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let schema = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            Ok(Some(schema))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var("CI").as_deref() == Ok("true") {
                bail!(
                    "the add-on linter schema {} is missing and CI=true: place the reference \
                     schemas in ../shared/ref beside the checkout (see its README)",
                    path.display()
                );
            }
            println!(
                "lint: schema check skipped: {} is absent (Supervisor's rules still run)",
                path.display()
            );
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}
