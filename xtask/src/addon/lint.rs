//! The add-on linter's rules for addon/config.yaml: the rule table in `keys` (every key
//! Supervisor or the linter knows, its type and default) plus the rules Supervisor and the
//! upstream linter apply beyond types, each reported as a `Finding` that names the key and the
//! rule, so one run shows every problem at once. Needs nothing outside the checkout; a copy of
//! the linter's JSON schema can be given as an extra check (`lint --schema`).
//!
//! A submodule of `addon` (not inline in addon.rs) because the rules and their tests are most of
//! the code, while addon.rs stays the small model the pipeline reads.
//!
//! Sources for the rules (cited per rule below):
//! - Supervisor `supervisor/addons/validate.py` (`_SCHEMA_ADDON_CONFIG`, `_migrate_addon_config`),
//!   `supervisor/addons/options.py` (`RE_SCHEMA_ELEMENT`, `_check_missing_options`),
//!   `supervisor/validate.py` (`docker_image`), `supervisor/addons/const.py` (`RE_SLUG`).
//! - frenck/action-addon-linter `src/config.schema.json` and `src/lint.py`.
use std::collections::BTreeSet;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{json, Value};

use super::{AddonConfig, SERVICE_PORT};
use crate::arch::Arch;
use crate::epoch::Epoch;

pub mod keys;
use keys::{Extra, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem: which key, which rule, what to do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub severity: Severity,
    /// Dotted path of the key (`options.web.port`, `arch[1]`), or `(file)` for the whole file.
    pub key: String,
    /// Short rule id, stable for tests and grep: `schema`, `default-value`, `slug`, ...
    pub rule: &'static str,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: {}: {} [{}]", self.key, self.message, self.rule)
    }
}

fn error(key: impl Into<String>, rule: &'static str, message: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Error,
        key: key.into(),
        rule,
        message: message.into(),
    }
}

fn warning(key: impl Into<String>, rule: &'static str, message: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Warning,
        ..error(key, rule, message)
    }
}

/// What the rules compare the file against, besides the file itself.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// `version` of the fluxion crate (fluxion/Cargo.toml).
    pub fluxion_version: &'a str,
    /// The port fluxion-main listens on by default (its `web.port`).
    pub service_port: u16,
}

impl Context<'_> {
    pub fn new(fluxion_version: &str) -> Context<'_> {
        Context {
            fluxion_version,
            service_port: SERVICE_PORT,
        }
    }
}

/// Parse config.yaml text into a JSON value (what both the schema and the rules look at).
pub fn parse(text: &str) -> Result<Value, Finding> {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .map_err(|e| error("(file)", "yaml", format!("not valid YAML: {e}")))?;
    let json = serde_json::to_value(&yaml).map_err(|e| {
        error(
            "(file)",
            "yaml",
            format!("cannot be read as JSON data (keys must be strings): {e}"),
        )
    })?;
    if !json.is_object() {
        return Err(error(
            "(file)",
            "yaml",
            "must be a mapping of keys (name: ..., version: ...)",
        ));
    }
    Ok(json)
}

/// Every finding for one config.yaml: the rule table's, a given JSON schema's (`lint --schema`)
/// and Supervisor's and the linter's further rules, sorted and without duplicates (the schema
/// and the table can both flag a key).
pub fn lint(text: &str, schema: Option<&Value>, ctx: &Context<'_>) -> Vec<Finding> {
    let doc = match parse(text) {
        Ok(doc) => doc,
        Err(f) => return vec![f],
    };
    let mut out = table_findings(&doc);
    if let Some(schema) = schema {
        out.extend(schema_findings(&doc, schema));
        default_values_from_schema(schema, &doc, "", &mut out);
    }
    out.extend(supervisor_rules(&doc, text, ctx));
    let unique: BTreeSet<Finding> = out.into_iter().collect();
    // Duplicates by (key, rule) with different wording: keep the first.
    let mut seen = BTreeSet::new();
    unique
        .into_iter()
        .filter(|f| seen.insert((f.key.clone(), f.rule)))
        .collect()
}

/// Draft 7 validation against the linter's config.schema.json (as upstream: no format checker).
pub fn schema_findings(doc: &Value, schema: &Value) -> Vec<Finding> {
    let mut schema = schema.clone();
    ecma_named_groups(&mut schema);
    let validator = match jsonschema::draft7::new(&schema) {
        Ok(v) => v,
        Err(e) => {
            return vec![error(
                "(schema)",
                "schema",
                format!("the linter schema itself does not compile: {e}"),
            )]
        }
    };
    validator
        .iter_errors(doc)
        .map(|e| {
            let key = pointer_to_key(e.instance_path().as_str());
            error(key, "schema", e.to_string())
        })
        .collect()
}

/// The `services` pattern uses Python's `(?P<name>...)` groups (ref README, quirks), which the
/// draft-7 meta-schema's `format: regex` (ECMA-262) rejects; `(?<name>...)` means the same in
/// Python 3.11+, ECMA-262 and Rust's regex engines, so rewrite only that spelling.
fn ecma_named_groups(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v {
                    Value::String(p) if k == "pattern" => *p = p.replace("(?P<", "(?<"),
                    v => ecma_named_groups(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(ecma_named_groups),
        _ => {}
    }
}

/// `/options/web/port` -> `options.web.port`, `/arch/1` -> `arch[1]`, `` -> `(top level)`.
fn pointer_to_key(pointer: &str) -> String {
    if pointer.is_empty() {
        return "(top level)".to_owned();
    }
    let mut key = String::new();
    for part in pointer.trim_start_matches('/').split('/') {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.parse::<usize>().is_ok() && !key.is_empty() {
            key.push_str(&format!("[{part}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(&part);
        }
    }
    key
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Upstream lint.py extends the `properties` keyword: a key set to its schema `default` is an
/// error, at every nesting level. Walk the schema's `properties` (and object `items` /
/// `additionalProperties`, which is where nested `properties` live in config.schema.json).
pub fn default_values_from_schema(
    schema: &Value,
    value: &Value,
    path: &str,
    out: &mut Vec<Finding>,
) {
    if let (Some(props), Some(obj)) = (schema.get("properties"), value.as_object()) {
        for (k, sub) in props.as_object().into_iter().flatten() {
            let Some(v) = obj.get(k) else { continue };
            let key = join(path, k);
            if let Some(default) = sub.get("default") {
                if py_eq(v, default) {
                    out.push(default_finding(&key, default));
                }
            }
            default_values_from_schema(sub, v, &key, out);
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        if items.is_object() {
            for (i, v) in list.iter().enumerate() {
                default_values_from_schema(items, v, &format!("{path}[{i}]"), out);
            }
        }
    }
    if let (Some(extra), Some(obj)) = (schema.get("additionalProperties"), value.as_object()) {
        if extra.is_object() {
            for (k, v) in obj {
                default_values_from_schema(extra, v, &join(path, k), out);
            }
        }
    }
}

fn default_finding(key: &str, default: &Value) -> Finding {
    error(
        key,
        "default-value",
        format!(
            "is set to its default value {default}; remove the key (the linter rejects defaults)"
        ),
    )
}

/// Python `==` on JSON data, which upstream uses: `1 == True`, `0 == False`, `1 == 1.0`.
pub fn py_eq(a: &Value, b: &Value) -> bool {
    fn num(v: &Value) -> Option<f64> {
        match v {
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| py_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            (None, None) => a == b,
            _ => false,
        },
    }
}

/// The rule table's findings (keys.rs): required keys, unknown and deprecated keys, each key's
/// type, no key at its default, and Supervisor's constraints beyond the types.
pub fn table_findings(doc: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(obj) = doc.as_object() else {
        return out;
    };
    for key in keys::KEYS.iter().filter(|k| k.required) {
        if !obj.contains_key(key.name) {
            out.push(error(key.name, "required", "is required; add it"));
        }
    }
    for (name, value) in obj {
        // `labels` has its own rule and message (supervisor_rules).
        if name == "labels" {
            continue;
        }
        let Some(key) = keys::find(name) else {
            out.push(error(
                name.as_str(),
                "unknown-key",
                "is not a config.yaml key: Supervisor ignores it and the add-on linter rejects \
                 it (check the spelling)",
            ));
            continue;
        };
        match key.status {
            Status::Current => {}
            Status::Deprecated(what) => out.push(error(
                name.as_str(),
                "deprecated-key",
                format!("is deprecated: {what}"),
            )),
            Status::Renamed(new) => out.push(error(
                name.as_str(),
                "deprecated-key",
                format!("was renamed to `{new}` (Supervisor migrates it, the linter rejects it)"),
            )),
            Status::SupervisorOnly => out.push(warning(
                name.as_str(),
                "linter-unknown",
                "Supervisor reads it, but the add-on linter's schema does not know it and \
                 rejects it",
            )),
        }
        // Python equality, as upstream: `panel_admin: 1` is both a type error and the default.
        if let Some(default) = key.default {
            let default = default.value.to_json();
            if py_eq(value, &default) {
                out.push(default_finding(name, &default));
            }
        }
        match key.ty.check(value) {
            Some((at, why)) => out.push(error(format!("{name}{at}"), "type", why)),
            None => extra_findings(key, value, &mut out),
        }
    }
    out
}

/// Supervisor's constraints beyond the linter's types (it refuses the add-on when they fail).
fn extra_findings(key: &keys::Key, value: &Value, out: &mut Vec<Finding>) {
    let name = key.name;
    match key.extra {
        Extra::None => {}
        Extra::Range(min, max) => {
            if value
                .as_f64()
                .is_some_and(|n| n < min as f64 || n > max as f64)
            {
                out.push(error(
                    name,
                    "range",
                    format!("{value} is outside {min}..={max} (Supervisor vol.Range)"),
                ));
            }
        }
        Extra::Matches(pattern) => {
            let s = value.as_str().unwrap_or_default();
            if !Regex::new(pattern).is_ok_and(|re| re.is_match(s)) {
                out.push(error(
                    name,
                    "template",
                    format!("{s:?} must match Supervisor's template {pattern}"),
                ));
            }
        }
        Extra::PortKeys => {
            for k in value.as_object().into_iter().flat_map(|m| m.keys()) {
                if !PORT_KEY.is_match(k) {
                    out.push(error(
                        format!("{name}.{k}"),
                        "ports",
                        "must be a container port: <number>, <number>/tcp or <number>/udp \
                         (Supervisor docker_ports)",
                    ));
                }
            }
        }
        Extra::Url => {
            let s = value.as_str().unwrap_or_default();
            if !keys::is_url(s) {
                out.push(error(
                    name,
                    "url",
                    format!("{s:?} is not a URL with a scheme and a host (Supervisor vol.Url)"),
                ));
            }
        }
    }
}

/// Supervisor `docker_port` (supervisor/validate.py).
static PORT_KEY: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\d+(?:/tcp|/udp)?$").unwrap());

/// Supervisor `RE_SLUG` (supervisor/addons/const.py), anchored as `RE_SLUG_FIELD` is.
static SLUG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[-_.A-Za-z0-9]+$").unwrap());
/// Supervisor `docker_image` (supervisor/validate.py): `[registry/]namespace/name`, no tag
/// (Supervisor appends `:{version}` itself); `{arch}` and `{machine}` placeholders allowed.
static SUPERVISOR_IMAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([a-zA-Z\-\.:\d{}]+/)*?([\-\w{}]+)/([\-\w{}]+)$").unwrap());
/// The distribution reference grammar (distribution/reference `reference.go`): optional
/// domain[:port], then lowercase path components; docker refuses uppercase repository names.
static REFERENCE_NAME: LazyLock<Regex> = LazyLock::new(|| {
    let component = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
    let domain = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?";
    Regex::new(&format!(r"^(?:{domain}/)?{component}(?:/{component})*$")).unwrap()
});
/// Supervisor `RE_SCHEMA_ELEMENT` (supervisor/addons/options.py): the option types.
static SCHEMA_ELEMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:|bool|email|url|port",
        r"|device(?:\((?:subsystem=[a-z]+)\))?",
        r"|str(?:\((?:\d+)?,(?:\d+)?\))?",
        r"|password(?:\((?:\d+)?,(?:\d+)?\))?",
        r"|int(?:\((?:\d+)?,(?:\d+)?\))?",
        r"|float(?:\((?:[\d\.]+)?,(?:[\d\.]+)?\))?",
        r"|match\((?:.*)\)",
        r"|list\((?:.+)\))\??$"
    ))
    .unwrap()
});

/// Supervisor's and the upstream linter's rules beyond the table's types and defaults.
pub fn supervisor_rules(doc: &Value, text: &str, ctx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let get = |k: &str| doc.get(k);
    let truthy = |k: &str| get(k).is_some_and(|v| py_eq(v, &json!(true)));

    if let Some(slug) = get("slug").and_then(Value::as_str) {
        if !SLUG.is_match(slug) {
            out.push(error(
                "slug",
                "slug",
                format!("{slug:?} must match ^[-_.A-Za-z0-9]+$ (Supervisor RE_SLUG)"),
            ));
        }
    }

    if let Some(arches) = get("arch").and_then(Value::as_array) {
        if arches.is_empty() {
            out.push(error(
                "arch",
                "arch",
                "lists no architecture; add aarch64 and/or amd64",
            ));
        }
        for (i, a) in arches.iter().enumerate() {
            let name = a.as_str().unwrap_or_default();
            if Arch::from_hass(name).is_none() {
                out.push(error(
                    format!("arch[{i}]"),
                    "arch",
                    format!(
                        "{} is not built by this project: only aarch64 and amd64 are allowed",
                        plain(a)
                    ),
                ));
            }
        }
    }

    if get("labels").is_some() {
        out.push(error(
            "labels",
            "labels",
            "config.yaml has no `labels:` key: the pipeline writes the image labels \
             (io.hass.*) from name/version/description/url; remove it",
        ));
    }

    options_vs_schema(doc, &mut out);
    ingress_port(doc, ctx, &mut out);
    version_rule(doc, text, ctx, &mut out);

    if let Some(image) = get("image") {
        match image.as_str() {
            None => out.push(error("image", "image", "must be a string")),
            Some(image) => {
                for problem in image_problems(image) {
                    out.push(error("image", "image", problem));
                }
            }
        }
    }

    upstream_linter_rules(doc, &truthy, &mut out);
    out
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// Why `image` is not a usable reference (empty when it is).
pub fn image_problems(image: &str) -> Vec<String> {
    let mut out = Vec::new();
    if !SUPERVISOR_IMAGE.is_match(image) {
        out.push(format!(
            "{image:?} is not a Supervisor image name: it must be [registry/]namespace/name \
             without a tag (Supervisor pulls {{image}}:{{version}})"
        ));
    }
    // Supervisor substitutes {arch} and {machine}; check what it would pull.
    let concrete = image
        .replace("{arch}", "amd64")
        .replace("{machine}", "qemux86-64");
    if !REFERENCE_NAME.is_match(&concrete) {
        out.push(format!(
            "{image:?} is not a valid image reference name (lowercase [a-z0-9._-] path \
             components after an optional registry host; no tag or digest)"
        ));
    }
    out
}

/// Every `options` key has a `schema` entry and vice versa, at every nesting level; a schema
/// type ending in `?` is optional, and then the option may be absent (Supervisor
/// `_check_missing_options`). `schema: false` turns validation off (Supervisor allows it).
fn options_vs_schema(doc: &Value, out: &mut Vec<Finding>) {
    let options = doc.get("options");
    let schema = doc.get("schema");
    if schema == Some(&Value::Bool(false)) {
        return;
    }
    let empty = json!({});
    let options = options.unwrap_or(&empty);
    let schema = schema.unwrap_or(&empty);
    // A non-mapping `options` or `schema` is the table's `type` finding already.
    compare_level(options, schema, "", out);
}

fn is_optional(schema: &Value) -> bool {
    match schema {
        Value::String(s) => s.ends_with('?'),
        // A list's element type decides: ["str?"] (Supervisor `_check_missing_options`).
        Value::Array(items) => items.first().is_some_and(is_optional),
        _ => false,
    }
}

fn compare_level(options: &Value, schema: &Value, path: &str, out: &mut Vec<Finding>) {
    let (Some(opts), Some(types)) = (options.as_object(), schema.as_object()) else {
        return;
    };
    for (k, v) in opts {
        let key = join(path, k);
        match types.get(k) {
            None => out.push(error(
                format!("options.{key}"),
                "options-schema",
                format!("has no entry in schema (add schema.{key} with its type)"),
            )),
            Some(t) => compare_value(v, t, &key, out),
        }
    }
    for (k, t) in types {
        let key = join(path, k);
        check_schema_type(t, &key, out);
        if !opts.contains_key(k) && !is_optional(t) {
            out.push(error(
                format!("schema.{key}"),
                "options-schema",
                format!(
                    "has no default in options (add options.{key}, or make it optional with a \
                     `?` type such as \"{}?\")",
                    t.as_str().unwrap_or("str")
                ),
            ));
        }
    }
}

/// One option value against its schema entry: dicts recurse, lists check their items.
fn compare_value(value: &Value, typ: &Value, key: &str, out: &mut Vec<Finding>) {
    match (value, typ) {
        (Value::Object(_), Value::Object(_)) => compare_level(value, typ, key, out),
        (Value::Array(items), Value::Array(t)) => {
            let Some(elem) = t.first() else { return };
            if elem.is_object() {
                for (i, item) in items.iter().enumerate() {
                    if item.is_object() {
                        compare_level(item, elem, &format!("{key}[{i}]"), out);
                    } else {
                        out.push(error(
                            format!("options.{key}[{i}]"),
                            "options-schema",
                            "schema says a list of mappings, this item is not a mapping",
                        ));
                    }
                }
            }
        }
        (Value::Object(_), _) => out.push(error(
            format!("options.{key}"),
            "options-schema",
            "is a mapping but schema does not give a mapping of types for it",
        )),
        (Value::Array(_), _) => out.push(error(
            format!("options.{key}"),
            "options-schema",
            "is a list but schema does not give a list type (e.g. [\"str\"]) for it",
        )),
        (_, Value::Object(_)) | (_, Value::Array(_)) if !value.is_null() => out.push(error(
            format!("options.{key}"),
            "options-schema",
            "schema gives a mapping or list type, but the option is a single value",
        )),
        _ => {}
    }
}

/// Schema leaf types must be ones Supervisor knows (`RE_SCHEMA_ELEMENT`), and a list holds
/// exactly one element type, which is not itself a list (`SCHEMA_ELEMENT`).
fn check_schema_type(t: &Value, key: &str, out: &mut Vec<Finding>) {
    match t {
        Value::String(s) if !SCHEMA_ELEMENT.is_match(s) => out.push(error(
            format!("schema.{key}"),
            "schema-type",
            format!("{s:?} is not a Supervisor option type (str, int, float, bool, email, url, port, password, match(...), list(a|b), device; `?` for optional)"),
        )),
        Value::Array(items) if items.len() != 1 || items[0].is_array() => out.push(error(
            format!("schema.{key}"),
            "schema-type",
            "a list type holds exactly one element type (a type string or a mapping), e.g. [\"str\"]",
        )),
        Value::Bool(_) | Value::Number(_) | Value::Null => out.push(error(
            format!("schema.{key}"),
            "schema-type",
            "must be a type string, a mapping or a one-element list",
        )),
        _ => {}
    }
}

/// With ingress on, Supervisor proxies to `ingress_port` (default 8099), which must be where
/// fluxion-main listens: `options.web.port` when the options set it, else its built-in port.
fn ingress_port(doc: &Value, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let ingress = doc.get("ingress").is_some_and(|v| py_eq(v, &json!(true)));
    if !ingress {
        return;
    }
    let port = match doc.get("ingress_port") {
        None => 8099,
        Some(v) => match v.as_u64() {
            Some(p) => p,
            None => {
                out.push(error(
                    "ingress_port",
                    "ingress-port",
                    "must be a port number",
                ));
                return;
            }
        },
    };
    let host_network = doc
        .get("host_network")
        .is_some_and(|v| py_eq(v, &json!(true)));
    if port == 0 && !host_network {
        // Upstream lint.py: port 0 (random) only makes sense with host networking.
        out.push(error(
            "ingress_port",
            "ingress-port",
            "is 0 (a random port) without host_network: true; set the service's port",
        ));
        return;
    }
    let service = doc
        .pointer("/options/web/port")
        .and_then(Value::as_u64)
        .map(|p| (p, "options.web.port"))
        .unwrap_or((
            u64::from(ctx.service_port),
            "fluxion-main's default web.port",
        ));
    if port != 0 && port != service.0 {
        out.push(error(
            "ingress_port",
            "ingress-port",
            format!(
                "is {port} but the service listens on {} ({}); make them equal or ingress \
                 shows a 502",
                service.0, service.1
            ),
        ));
    }
}

/// `version` == the fluxion crate version == the `io.hass.version` label the pipeline writes
/// (labels from `AddonConfig::labels`, the same function `cargo xtask image` and `meta` use).
fn version_rule(doc: &Value, text: &str, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let Some(version) = doc.get("version").and_then(Value::as_str) else {
        return;
    };
    if version != ctx.fluxion_version {
        out.push(error(
            "version",
            "version",
            format!(
                "{version:?} differs from the fluxion crate version {:?} (fluxion/Cargo.toml); \
                 make them equal",
                ctx.fluxion_version
            ),
        ));
    }
    // Only when the manifest parses as the pipeline reads it; otherwise the required-key or
    // arch findings already say why.
    let Ok(cfg) = AddonConfig::parse(text) else {
        return;
    };
    for arch in Arch::ALL {
        let labels = cfg.labels(arch, Epoch(1));
        if labels.get("io.hass.version").map(String::as_str) != Some(version) {
            out.push(error(
                "version",
                "version",
                format!("the io.hass.version label for {arch} would not equal {version:?}"),
            ));
        }
    }
}

/// The upstream linter's config rules beyond the schema (ref README, "Rules the linter applies
/// beyond the JSON schema").
fn upstream_linter_rules(doc: &Value, truthy: &dyn Fn(&str) -> bool, out: &mut Vec<Finding>) {
    let has = |k: &str| doc.get(k).is_some();
    if let Some(arches) = doc.get("arch").and_then(Value::as_array) {
        for (i, a) in arches.iter().enumerate() {
            if let Some(a @ ("armhf" | "armv7" | "i386")) = a.as_str() {
                out.push(warning(
                    format!("arch[{i}]"),
                    "deprecated-arch",
                    format!("{a} is deprecated by Home Assistant"),
                ));
            }
        }
    }
    if truthy("ingress") && has("webui") {
        out.push(error(
            "webui",
            "ingress-webui",
            "is set while ingress is true; remove webui",
        ));
    }
    if truthy("full_access") {
        for k in ["devices", "gpio", "uart", "usb"] {
            if has(k) {
                out.push(error(
                    k,
                    "full-access",
                    "is set while full_access is true; full access already includes it",
                ));
            }
        }
        out.push(warning(
            "full_access",
            "full-access",
            "grants every device; prefer devices/gpio/uart/usb",
        ));
    }
    if truthy("advanced") {
        out.push(warning(
            "advanced",
            "advanced",
            "the flag is expected to be deprecated",
        ));
    }
    if let Some(devices) = doc.get("devices").and_then(Value::as_array) {
        for (i, d) in devices.iter().enumerate() {
            if d.as_str().is_some_and(|d| d.contains(':')) {
                out.push(error(
                    format!("devices[{i}]"),
                    "devices",
                    "uses the old host:container:perm format; list plain paths",
                ));
            }
        }
    }
    if doc.get("tmpfs").is_some_and(|v| !v.is_boolean()) {
        out.push(error(
            "tmpfs",
            "tmpfs",
            "must be true or false (the string format is gone)",
        ));
    }
    if doc.get("backup").and_then(Value::as_str) == Some("cold") {
        for k in ["backup_pre", "backup_post"] {
            if has(k) {
                out.push(error(
                    k,
                    "backup",
                    "cannot run with backup: cold; remove it",
                ));
            }
        }
    }
    if doc.get("watchdog").is_some_and(|v| !v.is_null() && v != "") {
        out.push(error(
            "watchdog",
            "watchdog",
            "is obsolete; use a Docker HEALTHCHECK",
        ));
    }
    if let Some(map) = doc.get("map").and_then(Value::as_array) {
        let folder = |name: &str| {
            map.iter().any(|e| {
                e.as_str().is_some_and(|s| {
                    s == name || s == format!("{name}:rw") || s == format!("{name}:ro")
                })
            })
        };
        if folder("config") {
            out.push(warning(
                "map",
                "map",
                "config is replaced by homeassistant_config",
            ));
            for other in ["homeassistant_config", "addon_config"] {
                if folder(other) {
                    out.push(error(
                        "map",
                        "map",
                        format!("lists both config and {other}"),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
