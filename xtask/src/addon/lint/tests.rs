//! One bad config per rule: each must produce exactly the finding it is about.
use std::path::PathBuf;

use super::*;

const GOOD: &str = "\
name: FluxION
version: \"0.1.0\"
slug: fluxion
description: Schedules a home battery
url: https://gitlab.com/fluxion/fluxion-ha
arch:
  - aarch64
  - amd64
image: ghcr.io/fluxion-ha/fluxion
init: false
ingress: true
homeassistant_api: true
panel_icon: mdi:home-battery
options:
  battery:
    capacity_kwh: 10
  pricing:
    fixed_buy_prices: []
  control:
    debug_mode: true
schema:
  battery:
    capacity_kwh: float(0.1,)
    efficiency: float?
  pricing:
    fixed_buy_prices:
      - float
  control:
    debug_mode: bool
  notes: str?
";

fn ctx() -> Context<'static> {
    Context::new("0.1.0")
}

/// Lint `GOOD` with one line replaced (or appended when `from` is empty).
fn lint_with(from: &str, to: &str) -> Vec<Finding> {
    let text = if from.is_empty() {
        format!("{GOOD}{to}\n")
    } else {
        assert!(GOOD.contains(from), "fixture has no {from:?}");
        GOOD.replacen(from, to, 1)
    };
    lint(&text, None, &ctx())
}

fn errors(findings: &[Finding]) -> Vec<(String, &'static str)> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| (f.key.clone(), f.rule))
        .collect()
}

/// Assert `findings` hold an error for `key` under `rule`, and print them for the log.
#[track_caller]
fn assert_has(findings: &[Finding], key: &str, rule: &str) {
    assert!(
        findings
            .iter()
            .any(|f| f.severity == Severity::Error && f.key == key && f.rule == rule),
        "expected an error for {key} [{rule}], got:\n{}",
        findings
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn good_config_is_clean() {
    let f = lint(GOOD, None, &ctx());
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn the_real_config_is_clean() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../addon/config.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let version = fluxion::VERSION.split(' ').next().unwrap();
    let f = lint(&text, None, &Context::new(version));
    assert!(
        errors(&f).is_empty(),
        "{}",
        f.iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn required_keys() {
    let f = lint_with("slug: fluxion\n", "");
    assert_has(&f, "slug", "required");
    let f = lint_with("name: FluxION\n", "name: 3\n");
    assert_has(&f, "name", "type");
}

#[test]
fn slug_pattern() {
    assert_has(
        &lint_with("slug: fluxion", "slug: flux ion/x"),
        "slug",
        "slug",
    );
    assert!(errors(&lint_with("slug: fluxion", "slug: flux_ion-2.x")).is_empty());
}

#[test]
fn arch_only_aarch64_and_amd64() {
    let f = lint_with("  - amd64\n", "  - amd64\n  - armv7\n");
    assert_has(&f, "arch[2]", "arch");
    assert!(f.iter().any(|f| f.rule == "deprecated-arch"));
    assert_has(
        &lint_with("  - aarch64\n  - amd64\n", "  - riscv\n"),
        "arch[0]",
        "arch",
    );
}

#[test]
fn no_key_at_its_default() {
    for (from, to, key) in [
        ("init: false", "init: true", "init"),
        ("", "boot: auto", "boot"),
        ("", "timeout: 10", "timeout"),
        ("", "ingress_port: 8099", "ingress_port"),
        ("", "panel_admin: 1", "panel_admin"), // Python equality: 1 == True
        (
            "panel_icon: mdi:home-battery",
            "panel_icon: mdi:puzzle",
            "panel_icon",
        ),
    ] {
        assert_has(&lint_with(from, to), key, "default-value");
    }
    // `options: {}` is a default too (with no schema left, the pair is consistent).
    let text = GOOD.split("options:").next().unwrap().to_owned() + "options: {}\n";
    assert_has(&lint(&text, None, &ctx()), "options", "default-value");
}

#[test]
fn no_labels_key() {
    let f = lint_with("", "labels:\n  a: b");
    assert_has(&f, "labels", "labels");
}

#[test]
fn every_option_has_a_schema_entry() {
    let f = lint_with(
        "    debug_mode: true\n",
        "    debug_mode: true\n    dry_run: false\n",
    );
    assert_has(&f, "options.control.dry_run", "options-schema");
    // Top level too.
    let f = lint_with("schema:\n", "  extra: 1\nschema:\n");
    assert_has(&f, "options.extra", "options-schema");
}

#[test]
fn every_required_schema_entry_has_an_option() {
    let f = lint_with(
        "    debug_mode: bool\n",
        "    debug_mode: bool\n    interval: int\n",
    );
    assert_has(&f, "schema.control.interval", "options-schema");
    // Optional (`?`) entries may be absent: `efficiency: float?` and `notes: str?` are.
    assert!(errors(&lint(GOOD, None, &ctx())).is_empty());
    // Optional list element type: ["str?"].
    let f = lint_with("  notes: str?\n", "  notes:\n    - str?\n");
    assert!(errors(&f).is_empty(), "{f:#?}");
    let f = lint_with("  notes: str?\n", "  notes:\n    - str\n");
    assert_has(&f, "schema.notes", "options-schema");
}

#[test]
fn nested_lists_of_mappings_are_compared() {
    let text = format!(
        "{GOOD}  tariffs:\n    - name: str\n      price: float\n"
    )
    .replacen(
        "options:\n",
        "options:\n  tariffs:\n    - name: day\n      price: 1.0\n    - name: night\n      cost: 2\n",
        1,
    );
    let f = lint(&text, None, &ctx());
    assert_has(&f, "options.tariffs[1].cost", "options-schema");
    assert_has(&f, "schema.tariffs[1].price", "options-schema");
    assert!(!f.iter().any(|f| f.key.contains("tariffs[0]")), "{f:#?}");
}

#[test]
fn shapes_and_types_of_schema_entries() {
    let f = lint_with(
        "    capacity_kwh: float(0.1,)\n",
        "    capacity_kwh: number\n",
    );
    assert_has(&f, "schema.battery.capacity_kwh", "schema-type");
    let f = lint_with("    debug_mode: bool\n", "    debug_mode:\n      x: bool\n");
    assert_has(&f, "options.control.debug_mode", "options-schema");
}

#[test]
fn ingress_port_matches_the_service() {
    let f = lint_with("", "ingress_port: 8080");
    assert_has(&f, "ingress_port", "ingress-port");
    // When the options move the service, ingress_port must follow.
    let f = lint_with(
        "    capacity_kwh: 10\n",
        "    capacity_kwh: 10\n  web:\n    port: 9000\n",
    )
    .into_iter()
    .filter(|f| f.rule == "ingress-port")
    .collect::<Vec<_>>();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0].message.contains("options.web.port"), "{}", f[0]);
    let f = lint_with("", "ingress_port: 0");
    assert_has(&f, "ingress_port", "ingress-port");
}

#[test]
fn service_port_is_fluxions_default() {
    assert_eq!(
        SERVICE_PORT,
        fluxion::config::Config::default().web.port,
        "addon::SERVICE_PORT must equal fluxion-main's default web.port"
    );
}

#[test]
fn version_matches_the_crate() {
    let f = lint(GOOD, None, &Context::new("0.2.0"));
    assert_has(&f, "version", "version");
    assert!(f[0].message.contains("\"0.2.0\""), "{}", f[0]);
}

#[test]
fn image_is_a_valid_reference() {
    for bad in [
        "ghcr.io/Fluxion-HA/fluxion",
        "fluxion",
        "ghcr.io/fluxion-ha/fluxion:0.1.0",
        "ghcr.io/fluxion-ha/fluxion@sha256:00",
        "ghcr.io//fluxion",
    ] {
        let f = lint_with(
            "image: ghcr.io/fluxion-ha/fluxion",
            &format!("image: \"{bad}\""),
        );
        assert_has(&f, "image", "image");
    }
    for good in [
        "ghcr.io/fluxion-ha/{arch}-fluxion",
        "localhost:5000/a/b",
        "fluxion/fluxion",
    ] {
        assert!(
            image_problems(good).is_empty(),
            "{good}: {:?}",
            image_problems(good)
        );
    }
}

#[test]
fn upstream_linter_rules() {
    assert_has(
        &lint_with("", "webui: http://[HOST]:[PORT:8099]/"),
        "webui",
        "ingress-webui",
    );
    assert_has(
        &lint_with("", "full_access: true\nusb: true"),
        "usb",
        "full-access",
    );
    assert_has(
        &lint_with("", "auto_uart: true"),
        "auto_uart",
        "deprecated-key",
    );
    assert_has(
        &lint_with("", "devices:\n  - /dev/ttyUSB0:/dev/ttyUSB0:rwm"),
        "devices[0]",
        "devices",
    );
    assert_has(&lint_with("", "tmpfs: size=10m"), "tmpfs", "tmpfs");
    assert_has(
        &lint_with("", "backup: cold\nbackup_pre: /x.sh"),
        "backup_pre",
        "backup",
    );
    assert_has(
        &lint_with("", "watchdog: tcp://[HOST]:[PORT:8099]"),
        "watchdog",
        "watchdog",
    );
    assert_has(
        &lint_with("", "codenotary: a@b.c"),
        "codenotary",
        "deprecated-key",
    );
    assert_has(
        &lint_with("", "map:\n  - config:rw\n  - addon_config"),
        "map",
        "map",
    );
    let f = lint_with("", "advanced: true");
    assert!(f
        .iter()
        .any(|f| f.rule == "advanced" && f.severity == Severity::Warning));
}

#[test]
fn unknown_keys_and_wrong_types() {
    let f = lint(&format!("{GOOD}frobnicate: 1\n"), None, &ctx());
    assert_has(&f, "frobnicate", "unknown-key");
    assert_has(&lint_with("init: false", "init: nope"), "init", "type");
    for (line, key) in [
        ("boot: sometimes", "boot"),
        ("ingress_port: 70000", "ingress_port"),
        ("privileged:\n  - SYS_CHEESE", "privileged[0]"),
        ("ulimits:\n  nofile:\n    soft: 1", "ulimits.nofile"),
        ("ports:\n  8099/tcp: 0", "ports.8099/tcp"),
    ] {
        assert_has(&lint_with("", line), key, "type");
    }
    // `map`: strings or mappings, not both, and not an empty list.
    assert!(errors(&lint_with("", "map:\n  - share:rw\n  - ssl")).is_empty());
    assert!(errors(&lint_with(
        "",
        "map:\n  - type: share\n    read_only: false"
    ))
    .is_empty());
    assert_has(
        &lint_with("", "map:\n  - share\n  - type: ssl"),
        "map",
        "type",
    );
    assert_has(&lint_with("", "map: []"), "map", "type");
    assert_has(&lint_with("", "map:\n  - sharez"), "map", "type");
    // Renamed, deprecated and Supervisor-only keys.
    assert_has(
        &lint_with("", "snapshot: cold"),
        "snapshot",
        "deprecated-key",
    );
    let f = lint_with("", "restore_pre: /x.sh");
    assert!(errors(&f).is_empty(), "{f:#?}");
    assert!(f
        .iter()
        .any(|f| f.key == "restore_pre" && f.rule == "linter-unknown"));
}

#[test]
fn supervisors_constraints_beyond_the_types() {
    assert_has(&lint_with("", "timeout: 5"), "timeout", "range");
    assert_has(&lint_with("", "timeout: 301"), "timeout", "range");
    assert!(errors(&lint_with("", "timeout: 300")).is_empty());
    assert_has(
        &lint_with("", "webui: http://localhost:8099/"),
        "webui",
        "template",
    );
    assert_has(&lint_with("", "ports:\n  web: 8080"), "ports.web", "ports");
    assert!(errors(&lint_with("", "ports:\n  8080/tcp: 8080\n  53/udp: null")).is_empty());
    assert_has(
        &lint_with(
            "url: https://gitlab.com/fluxion/fluxion-ha",
            "url: gitlab.com/fluxion",
        ),
        "url",
        "url",
    );
}

#[test]
fn the_rule_table_is_sound() {
    let names: Vec<&str> = keys::KEYS.iter().map(|k| k.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted, "KEYS is sorted by name, without repeats");
    for k in keys::KEYS {
        // Every pattern compiles (checking a value compiles them).
        k.ty.check(&json!("x"));
        k.ty.check(&json!(["x"]));
        // A default is a valid value of its own type.
        if let Some(d) = k.default {
            let v = d.value.to_json();
            if k.name != "map" {
                assert_eq!(
                    k.ty.check(&v),
                    None,
                    "{}: default {v} fails its type",
                    k.name
                );
            }
        }
        if let Extra::Matches(p) = k.extra {
            Regex::new(p).unwrap();
        }
    }
    for k in ["name", "version", "slug", "description", "arch"] {
        assert!(keys::find(k).unwrap().required, "{k}");
    }
}

#[test]
fn all_findings_at_once() {
    let text = GOOD
        .replace("slug: fluxion", "slug: \"bad slug\"")
        .replace("  - amd64\n", "  - i386\n")
        .replace("init: false", "init: true")
        + "labels: {}\n";
    let f = lint(&text, None, &ctx());
    for (key, rule) in [
        ("slug", "slug"),
        ("arch[1]", "arch"),
        ("init", "default-value"),
        ("labels", "labels"),
    ] {
        assert_has(&f, key, rule);
    }
}

#[test]
fn nested_defaults_from_the_schema() {
    let schema = json!({"properties": {"ulimits": {"additionalProperties":
        {"properties": {"soft": {"default": 5}}}}}});
    let mut out = Vec::new();
    let doc = json!({"ulimits": {"nofile": {"soft": 5.0, "hard": 9}}});
    default_values_from_schema(&schema, &doc, "", &mut out);
    assert_eq!(
        errors(&out),
        vec![("ulimits.nofile.soft".to_owned(), "default-value")]
    );
}

#[test]
fn yaml_errors_are_findings() {
    let f = lint("name: [unclosed\n", None, &ctx());
    assert_eq!(errors(&f), vec![("(file)".to_owned(), "yaml")]);
    let f = lint("- a\n- b\n", None, &ctx());
    assert_eq!(errors(&f), vec![("(file)".to_owned(), "yaml")]);
}

#[test]
fn python_named_groups_match() {
    // The `services` pattern uses Python's `(?P<name>...)` groups: our table reads it as is...
    assert!(errors(&lint(
        &format!("{GOOD}services:\n  - mqtt:need\n"),
        None,
        &ctx()
    ))
    .is_empty());
    assert_has(
        &lint(&format!("{GOOD}services:\n  - mqtt:steal\n"), None, &ctx()),
        "services[0]",
        "type",
    );
    // ...and a given draft-7 schema with them is rewritten so the validator accepts it.
    let schema = json!({"properties": {"services": {"items": {"pattern": keys::find("services")
        .map(|k| k.ty.json_schema()["items"]["pattern"].clone()).unwrap()}}}});
    let doc = json!({"services": ["mqtt:want", "mysql:steal"]});
    let f = schema_findings(&doc, &schema);
    assert_eq!(
        errors(&f),
        vec![("services[1]".to_owned(), "schema")],
        "{f:#?}"
    );
}
