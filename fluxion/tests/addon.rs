//! `addon/config.yaml` options and schema agree with the service: the same keys, defaults equal
//! to the built-in ones, and a translation for every option.

use std::collections::BTreeSet;
use std::path::Path;

use fluxion::config::{Config, Sources};
use serde_json::Value;

fn yaml(path: &str) -> Value {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    serde_yaml_ng::from_str(&text).unwrap()
}

/// Dotted leaf keys, with the optional marker `?` of schema keys removed.
fn leaves(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Value::Object(map) = v {
        for (k, v) in map {
            let k = k.trim_end_matches('?');
            if v.is_object() {
                leaves(v, &format!("{prefix}{k}."), out);
            } else {
                out.insert(format!("{prefix}{k}"));
            }
        }
    }
}

/// The schema keys without a value in `options`: optional ones whose built-in default is
/// "unset" (a value would be a default FluxION does not have).
const UNSET_BY_DEFAULT: [&str; 2] = ["plan.mode_switch_cost", "plan.terminal_value_per_kwh"];

#[test]
fn options_and_schema_name_the_same_keys_and_translations_cover_them() {
    let config = yaml("addon/config.yaml");
    let (mut options, mut schema, mut labels) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    leaves(&config["options"], "", &mut options);
    leaves(&config["schema"], "", &mut schema);
    let only_schema: Vec<&String> = schema.difference(&options).collect();
    assert_eq!(only_schema, UNSET_BY_DEFAULT.iter().collect::<Vec<_>>());
    assert!(options.is_subset(&schema));
    for key in UNSET_BY_DEFAULT {
        let (section, field) = key.split_once('.').unwrap();
        let typ = config["schema"][section][field].as_str().unwrap();
        assert!(typ.ends_with('?'), "{key} must be optional: {typ}");
        let defaults = serde_json::to_value(Config::default()).unwrap();
        assert!(
            defaults[section][field].is_null(),
            "{key} has a built-in default"
        );
    }
    let translations = yaml("addon/translations/en.yaml");
    for (section, v) in translations["configuration"].as_object().unwrap() {
        for field in v["fields"].as_object().unwrap().keys() {
            labels.insert(format!("{section}.{field}"));
        }
    }
    assert_eq!(schema, labels);
}

#[test]
fn addon_defaults_are_the_built_in_defaults() {
    let config = yaml("addon/config.yaml");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("options.json");
    std::fs::write(&path, serde_json::to_string(&config["options"]).unwrap()).unwrap();
    let loaded = Config::load(
        &Sources {
            toml: None,
            options_json: Some(&path),
        },
        Vec::new(),
    )
    .unwrap();
    assert_eq!(loaded, Config::default());
    assert!(
        loaded.control.debug_mode,
        "the add-on must start in debug mode"
    );
}
