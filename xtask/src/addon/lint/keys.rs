//! The rule table for addon/config.yaml: every key Supervisor or the add-on linter knows, with
//! its type, its default and its status, so `cargo xtask lint` needs no file from outside the
//! checkout.
//!
//! Written from two sources (read, not copied):
//! - Supervisor `supervisor/addons/validate.py` (`_SCHEMA_ADDON_CONFIG`, `_migrate_addon_config`)
//!   and `supervisor/validate.py` (`docker_image`, `docker_ports`, `network_port`): which keys
//!   Supervisor reads, their defaults (`vol.Optional(..., default=...)`) and the constraints it
//!   adds (`timeout` 10..=300, the `webui`/`watchdog` URL templates, the `ports` key format).
//! - The add-on linter (frenck/action-addon-linter `src/config.schema.json` and `src/lint.py`):
//!   the JSON type of each key, its declared `default` (the linter rejects a key set to it) and
//!   `additionalProperties: false` (an unknown key is an error).
//!
//! Where the two disagree the table says so per key ([`Status`], [`KeyDefault::linter`]). The
//! reference copy of the linter's schema is used only by a test, as a cross-check, when
//! `FLUXION_REF_DIR` names it (xtask/tests/lint.rs): same keys, same types, same defaults.
use serde_json::{json, Value};

/// A key's type, as the linter's schema states it (JSON Schema draft 7 terms), small enough to
/// check a value directly and to render back to a schema fragment for the cross-check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ty {
    Str,
    Bool,
    /// An integer, with inclusive bounds.
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    /// A string from a fixed list.
    Enum(&'static [&'static str]),
    /// A string or a boolean (`apparmor: my-profile`, `tmpfs` in its old string format).
    StrOrBool,
    /// A string matching the pattern (anchored in the pattern itself).
    Pattern(&'static str),
    /// Any value, but a string must match the pattern (the schema gives `pattern` without
    /// `type`, so a non-string passes: `machine`, `services`).
    PatternIfStr(&'static str),
    List(&'static Ty),
    /// A mapping whose every value has this type.
    Map(&'static Ty),
    /// A mapping with exactly these fields (no others), the `required` ones present.
    Record {
        fields: &'static [(&'static str, Ty)],
        required: &'static [&'static str],
    },
    /// Valid under at least one of these.
    AnyOf(&'static [Ty]),
    /// A list whose items all take exactly one of these forms (the schema's
    /// `{"type": "array", "oneOf": [{"items": ...}, ...]}`): an empty list matches every form
    /// and so fails, and a list mixing forms matches none (the `map` quirks in the ref README).
    ListOf(&'static [Ty]),
    /// A string with a JSON Schema `format` the linter does not enforce (it runs without a
    /// format checker): `url` (uri-reference), `codenotary` (email).
    StrFormat(&'static str),
    Null,
    /// Anything (`{}` in the schema).
    Any,
}

/// A default value: Supervisor fills it in when the key is absent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    Bool(bool),
    Int(i64),
    Str(&'static str),
    EmptyList,
    EmptyMap,
}

impl DefaultValue {
    pub fn to_json(self) -> Value {
        match self {
            DefaultValue::Bool(b) => json!(b),
            DefaultValue::Int(i) => json!(i),
            DefaultValue::Str(s) => json!(s),
            DefaultValue::EmptyList => json!([]),
            DefaultValue::EmptyMap => json!({}),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyDefault {
    pub value: DefaultValue,
    /// The linter's schema declares this default too. When false only Supervisor has it
    /// (`default=list` on `map` and `breaking_versions`); the rule still applies, since a key
    /// set to what Supervisor fills in anyway says nothing.
    pub linter: bool,
}

/// Where a key stands with Supervisor and the linter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Read by Supervisor and known to the linter.
    Current,
    /// Known to the linter's schema, but replaced or ignored by Supervisor; the linter
    /// rejects its presence (lint.py). The text says what to do instead.
    Deprecated(&'static str),
    /// Read by Supervisor, unknown to the linter's schema (its `additionalProperties: false`
    /// rejects it); a warning, since Supervisor does use it.
    SupervisorOnly,
    /// Renamed by Supervisor's migration and unknown to the linter (error).
    Renamed(&'static str),
}

/// Supervisor's constraints beyond the linter's JSON types.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Extra {
    None,
    /// `vol.Range(min, max)` on an integer (`timeout`).
    Range(i64, i64),
    /// `vol.Match(...)` on a string (`webui`, `watchdog`); Supervisor refuses the add-on.
    Matches(&'static str),
    /// `docker_ports`: keys `<port>[/tcp|/udp]`.
    PortKeys,
    /// `vol.Url()`: a scheme and a host.
    Url,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Key {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub default: Option<KeyDefault>,
    pub status: Status,
    pub extra: Extra,
}

const fn key(name: &'static str, ty: Ty) -> Key {
    Key {
        name,
        ty,
        required: false,
        default: None,
        status: Status::Current,
        extra: Extra::None,
    }
}

impl Key {
    const fn required(self) -> Key {
        Key {
            required: true,
            ..self
        }
    }
    const fn default(self, value: DefaultValue) -> Key {
        Key {
            default: Some(KeyDefault {
                value,
                linter: true,
            }),
            ..self
        }
    }
    const fn supervisor_default(self, value: DefaultValue) -> Key {
        Key {
            default: Some(KeyDefault {
                value,
                linter: false,
            }),
            ..self
        }
    }
    const fn status(self, status: Status) -> Key {
        Key { status, ..self }
    }
    const fn extra(self, extra: Extra) -> Key {
        Key { extra, ..self }
    }
}

use DefaultValue::{Bool as B, EmptyList, EmptyMap, Int as I, Str as S};

const fn flag(name: &'static str, default: bool) -> Key {
    key(name, Ty::Bool).default(B(default))
}

/// Supervisor's `ARCH_ALL`; the linter's enum is the same list. This project builds only
/// aarch64 and amd64 (a separate rule).
pub const ARCH_ALL: &[&str] = &["aarch64", "amd64", "armhf", "armv7", "i386"];

/// Supervisor `docker/const.py` `Capabilities`, the linter's `privileged` enum.
const CAPABILITIES: &[&str] = &[
    "BPF",
    "DAC_READ_SEARCH",
    "IPC_LOCK",
    "NET_ADMIN",
    "NET_RAW",
    "PERFMON",
    "SYS_ADMIN",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
];

/// The folders a `map` entry can name: Supervisor's `RE_VOLUME` without `data` (the linter's
/// string pattern), and `MappingType` for the object form (with `data`).
const MAP_STRING: &str = "^(addon_config|all_addon_configs|config|homeassistant_config|ssl|addons|backup|share|media)(:(rw|ro))?$";
const MAP_TYPES: &[&str] = &[
    "addon_config",
    "addons",
    "all_addon_configs",
    "backup",
    "config",
    "data",
    "homeassistant_config",
    "media",
    "share",
    "ssl",
];

/// The linter's `machine` list (Supervisor's `RE_MACHINE` differs a little: it also knows
/// odroid-m1, raspberrypi5-64 and green, and not generic-aarch64 or khadas-vim3).
const MACHINE: &str = "^!?(?:generic-aarch64|generic-x86-64|intel-nuc|khadas-vim3|odroid-c2|odroid-c4|odroid-n2|odroid-xu|qemuarm|qemuarm-64|qemux86|qemux86-64|raspberrypi|raspberrypi2|raspberrypi3|raspberrypi3-64|raspberrypi4|raspberrypi4-64|tinker|yellow)$";

/// Supervisor `RE_SERVICE`. Python's `(?P<name>...)` groups, which Rust's regex reads too.
const SERVICE: &str = "^(?P<service>mqtt|mysql):(?P<rights>provide|want|need)$";

/// Supervisor's `webui` template (validate.py).
const WEBUI: &str = r"^(?:https?|\[PROTO:\w+\]):\/\/\[HOST\]:\[PORT:\d+\].*$";
/// Supervisor's `watchdog` template (validate.py).
const WATCHDOG: &str = r"^(?:https?|\[PROTO:\w+\]|tcp):\/\/\[HOST\]:(\[PORT:\d+\]|\d+).*$";

const STRINGS: Ty = Ty::List(&Ty::Str);
const PORT_OR_NULL: &[Ty] = &[
    Ty::Int {
        min: Some(1),
        max: Some(65535),
    },
    Ty::Null,
];
const ULIMIT: &[Ty] = &[
    Ty::Int {
        min: None,
        max: None,
    },
    Ty::Record {
        fields: &[
            (
                "soft",
                Ty::Int {
                    min: None,
                    max: None,
                },
            ),
            (
                "hard",
                Ty::Int {
                    min: None,
                    max: None,
                },
            ),
        ],
        required: &["soft", "hard"],
    },
];
const MAP_ENTRY: &[Ty] = &[
    Ty::Pattern(MAP_STRING),
    Ty::Record {
        fields: &[
            ("type", Ty::Enum(MAP_TYPES)),
            ("read_only", Ty::Bool),
            ("path", Ty::Str),
        ],
        required: &["type"],
    },
];

/// Every key, sorted by name.
pub const KEYS: &[Key] = &[
    flag("advanced", false),
    key("apparmor", Ty::StrOrBool).default(B(true)),
    key("arch", Ty::List(&Ty::Enum(ARCH_ALL))).required(),
    flag("audio", false),
    flag("auth_api", false),
    flag("auto_uart", false).status(Status::Deprecated(
        "Supervisor migrates it to `uart` (2021-01); use uart",
    )),
    key("backup", Ty::Enum(&["hot", "cold"])).default(S("hot")),
    key("backup_exclude", STRINGS),
    key("backup_post", Ty::Str),
    key("backup_pre", Ty::Str),
    key("boot", Ty::Enum(&["auto", "manual", "manual_only"])).default(S("auto")),
    key("breaking_versions", STRINGS).supervisor_default(EmptyList),
    key("codenotary", Ty::StrFormat("email")).status(Status::Deprecated(
        "Supervisor no longer uses it and ignores it; remove it",
    )),
    key("description", Ty::Str).required(),
    key("devices", STRINGS),
    flag("devicetree", false),
    key("discovery", STRINGS),
    flag("docker_api", false),
    key("environment", Ty::Map(&Ty::Any)),
    flag("full_access", false),
    flag("gpio", false),
    flag("hassio_api", false),
    key(
        "hassio_role",
        Ty::Enum(&["admin", "backup", "default", "homeassistant", "manager"]),
    )
    .default(S("default")),
    // The minimum Home Assistant version; the linter's schema also declares `default: false`
    // on this string key, a default that can never match (ref README, quirks): not a default.
    key("homeassistant", Ty::Str),
    flag("homeassistant_api", false),
    flag("host_dbus", false),
    flag("host_ipc", false),
    flag("host_network", false),
    flag("host_pid", false),
    flag("host_uts", false),
    key("image", Ty::Str),
    flag("ingress", false),
    key("ingress_entry", Ty::Str),
    // Supervisor: `network_port` (1..=65535) or 0.
    key(
        "ingress_port",
        Ty::Int {
            min: Some(0),
            max: Some(65535),
        },
    )
    .default(I(8099)),
    flag("ingress_stream", false),
    flag("init", true),
    flag("journald", false),
    flag("kernel_modules", false),
    flag("legacy", false),
    key("machine", Ty::List(&Ty::PatternIfStr(MACHINE))),
    // Supervisor also takes `map: []` (its default), the linter's `oneOf` does not.
    key("map", Ty::ListOf(MAP_ENTRY)).supervisor_default(EmptyList),
    key("name", Ty::Str).required(),
    key("options", Ty::Map(&Ty::Any)).default(EmptyMap),
    flag("panel_admin", true),
    key("panel_icon", Ty::Str).default(S("mdi:puzzle")),
    key("panel_title", Ty::Str),
    key("ports", Ty::Map(&Ty::AnyOf(PORT_OR_NULL))).extra(Extra::PortKeys),
    key("ports_description", Ty::Map(&Ty::Str)).extra(Extra::PortKeys),
    key("privileged", Ty::List(&Ty::Enum(CAPABILITIES))),
    flag("realtime", false),
    key("restore_post", Ty::Str).status(Status::SupervisorOnly),
    key("restore_pre", Ty::Str).status(Status::SupervisorOnly),
    // Supervisor also takes `schema: false` (no validation of the options); the linter's
    // schema wants a mapping.
    key("schema", Ty::Map(&Ty::Any)).default(EmptyMap),
    key("services", Ty::List(&Ty::PatternIfStr(SERVICE))),
    key("slug", Ty::Str).required(),
    key("snapshot", Ty::Str).status(Status::Renamed("backup")),
    key("snapshot_exclude", STRINGS).status(Status::Renamed("backup_exclude")),
    key("snapshot_post", Ty::Str).status(Status::Renamed("backup_post")),
    key("snapshot_pre", Ty::Str).status(Status::Renamed("backup_pre")),
    key("stage", Ty::Enum(&["deprecated", "experimental", "stable"])).default(S("stable")),
    key(
        "startup",
        Ty::Enum(&["application", "initialize", "once", "services", "system"]),
    )
    .default(S("application")),
    flag("stdin", false),
    key(
        "timeout",
        Ty::Int {
            min: None,
            max: None,
        },
    )
    .default(I(10))
    .extra(Extra::Range(10, 300)),
    key("tmpfs", Ty::StrOrBool).default(B(false)),
    flag("uart", false),
    flag("udev", false),
    key("ulimits", Ty::Map(&Ty::AnyOf(ULIMIT))).default(EmptyMap),
    key("url", Ty::StrFormat("uri-reference")).extra(Extra::Url),
    flag("usb", false),
    key("version", Ty::Str).required(),
    flag("video", false),
    key("watchdog", Ty::Str).extra(Extra::Matches(WATCHDOG)),
    key("webui", Ty::Str).extra(Extra::Matches(WEBUI)),
];

pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The keys the linter's schema declares (everything but Supervisor-only and renamed keys).
pub fn linter_keys() -> impl Iterator<Item = &'static Key> {
    KEYS.iter()
        .filter(|k| !matches!(k.status, Status::SupervisorOnly | Status::Renamed(_)))
}

impl Ty {
    /// The JSON Schema (draft 7) fragment for this type, in the linter schema's spelling; the
    /// cross-check test compares it with the reference schema key by key.
    pub fn json_schema(&self) -> Value {
        match self {
            Ty::Str => json!({"type": "string"}),
            Ty::Bool => json!({"type": "boolean"}),
            Ty::Int { min, max } => {
                let mut v = json!({"type": "integer"});
                if let Some(m) = min {
                    v["minimum"] = json!(m);
                }
                if let Some(m) = max {
                    v["maximum"] = json!(m);
                }
                v
            }
            Ty::Enum(values) => json!({"type": "string", "enum": values}),
            Ty::StrOrBool => json!({"type": ["string", "boolean"]}),
            Ty::Pattern(p) => json!({"type": "string", "pattern": p}),
            Ty::PatternIfStr(p) => json!({ "pattern": p }),
            Ty::List(item) => json!({"type": "array", "items": item.json_schema()}),
            Ty::Map(value) => {
                json!({"type": "object", "additionalProperties": value.json_schema()})
            }
            Ty::Record { fields, required } => {
                let props: serde_json::Map<String, Value> = fields
                    .iter()
                    .map(|(k, t)| ((*k).to_owned(), t.json_schema()))
                    .collect();
                json!({"type": "object", "properties": props, "required": required,
                       "additionalProperties": false})
            }
            Ty::AnyOf(tys) => {
                json!({"anyOf": tys.iter().map(Ty::json_schema).collect::<Vec<_>>()})
            }
            Ty::ListOf(tys) => json!({"type": "array", "oneOf": tys
                .iter()
                .map(|t| json!({"items": t.json_schema()}))
                .collect::<Vec<_>>()}),
            Ty::StrFormat(f) => json!({"type": "string", "format": f}),
            Ty::Null => json!({"type": "null"}),
            Ty::Any => json!({}),
        }
    }

    /// Why `value` is not of this type (`None` when it is), as "must be ..." text; `at` gets
    /// the path inside the value (`[2]`, `.soft`) of the first offending part.
    pub fn check(&self, value: &Value) -> Option<(String, String)> {
        let bad = |what: String| Some((String::new(), what));
        match self {
            Ty::Str if !value.is_string() => bad(format!(
                "must be a string (quote it: \"{}\")",
                super::plain(value)
            )),
            Ty::Bool if !value.is_boolean() => bad("must be true or false".into()),
            Ty::Int { min, max } => {
                // JSON Schema draft 7 (and Python's jsonschema) counts 10.0 as an integer.
                let n = value
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && !value.is_boolean());
                match n {
                    None => bad("must be an integer".into()),
                    Some(n) if min.is_some_and(|m| n < m as f64) => {
                        bad(format!("must be at least {}", min.unwrap()))
                    }
                    Some(n) if max.is_some_and(|m| n > m as f64) => {
                        bad(format!("must be at most {}", max.unwrap()))
                    }
                    Some(_) => None,
                }
            }
            Ty::Enum(values) => match value.as_str() {
                Some(s) if values.contains(&s) => None,
                _ => bad(format!("must be one of {}", values.join(", "))),
            },
            Ty::StrOrBool if !(value.is_string() || value.is_boolean()) => {
                bad("must be a string or true/false".into())
            }
            Ty::Pattern(p) => match value.as_str() {
                Some(s) if matches(p, s) => None,
                Some(s) => bad(format!("{s:?} must match {p}")),
                None => bad(format!("must be a string matching {p}")),
            },
            Ty::PatternIfStr(p) => match value.as_str() {
                Some(s) if !matches(p, s) => bad(format!("{s:?} must match {p}")),
                _ => None,
            },
            Ty::List(item) => {
                let Some(items) = value.as_array() else {
                    return bad("must be a list".into());
                };
                items
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| item.check(v).map(|(at, why)| (format!("[{i}]{at}"), why)))
            }
            Ty::Map(of) => {
                let Some(map) = value.as_object() else {
                    return bad("must be a mapping".into());
                };
                map.iter()
                    .find_map(|(k, v)| of.check(v).map(|(at, why)| (format!(".{k}{at}"), why)))
            }
            Ty::Record { fields, required } => {
                let Some(map) = value.as_object() else {
                    return bad("must be a mapping".into());
                };
                if let Some(missing) = required.iter().find(|r| !map.contains_key(**r)) {
                    return bad(format!("needs `{missing}`"));
                }
                map.iter()
                    .find_map(|(k, v)| match fields.iter().find(|(f, _)| f == k) {
                        None => Some((
                            String::new(),
                            format!("has an unknown key `{k}` (allowed: {})", names(fields)),
                        )),
                        Some((_, t)) => t.check(v).map(|(at, why)| (format!(".{k}{at}"), why)),
                    })
            }
            Ty::AnyOf(tys) => {
                let errors: Vec<_> = tys.iter().filter_map(|t| t.check(value)).collect();
                if errors.len() < tys.len() {
                    None
                } else {
                    bad(format!("must be {}", one_of_text(tys)))
                }
            }
            Ty::ListOf(tys) => {
                let Some(items) = value.as_array() else {
                    return bad("must be a list".into());
                };
                let fits = |t: &Ty| items.iter().all(|v| t.check(v).is_none());
                match tys.iter().filter(|t| fits(t)).count() {
                    1 => None,
                    0 => bad(format!(
                        "must be a list of {}, all items of one form",
                        tys.iter()
                            .map(Ty::describe_plural)
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )),
                    _ => bad(
                        "is empty, which the linter's schema refuses (it fits every \
                              form); leave the key out"
                            .into(),
                    ),
                }
            }
            Ty::StrFormat(_) if !value.is_string() => bad(format!(
                "must be a string (quote it: \"{}\")",
                super::plain(value)
            )),
            Ty::Null if !value.is_null() => bad("must be empty (null)".into()),
            _ => None,
        }
    }

    /// A short name for messages.
    fn describe(&self) -> String {
        match self {
            Ty::Str | Ty::StrFormat(_) | Ty::Pattern(_) | Ty::PatternIfStr(_) | Ty::Enum(_) => {
                "a string".into()
            }
            Ty::Bool => "true/false".into(),
            Ty::Int { min, max } => match (min, max) {
                (Some(a), Some(b)) => format!("an integer {a}..={b}"),
                _ => "an integer".into(),
            },
            Ty::StrOrBool => "a string or true/false".into(),
            Ty::List(item) => format!("a list of {}", item.describe_plural()),
            Ty::ListOf(t) => format!(
                "a list of {}",
                t.iter()
                    .map(Ty::describe_plural)
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            Ty::Map(_) | Ty::Record { .. } => "a mapping".into(),
            Ty::AnyOf(t) => one_of_text(t),
            Ty::Null => "null".into(),
            Ty::Any => "anything".into(),
        }
    }

    fn describe_plural(&self) -> String {
        match self {
            Ty::Record { fields, .. } => format!("mappings ({})", names(fields)),
            Ty::Pattern(p) | Ty::PatternIfStr(p) => format!("strings matching {p}"),
            t => format!(
                "{}s",
                t.describe()
                    .trim_start_matches("a ")
                    .trim_start_matches("an ")
            ),
        }
    }
}

fn names(fields: &[(&str, Ty)]) -> String {
    fields
        .iter()
        .map(|(f, _)| *f)
        .collect::<Vec<_>>()
        .join(", ")
}

fn one_of_text(tys: &[Ty]) -> String {
    tys.iter()
        .map(Ty::describe)
        .collect::<Vec<_>>()
        .join(" or ")
}

fn matches(pattern: &str, s: &str) -> bool {
    // The table's patterns are constants; a bad one is a bug caught by the unit tests.
    regex::Regex::new(pattern)
        .expect("the rule table's patterns compile")
        .is_match(s)
}

/// Supervisor's `vol.Url()`: urlparse must find a scheme and a host.
pub fn is_url(s: &str) -> bool {
    match s.split_once("://") {
        Some((scheme, rest)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && rest
                    .split(['/', '?', '#'])
                    .next()
                    .is_some_and(|host| !host.is_empty())
        }
        None => false,
    }
}
