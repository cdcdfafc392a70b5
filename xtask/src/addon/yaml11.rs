//! YAML as Supervisor reads it: PyYAML's `SafeLoader` (YAML 1.1), giving the Python type of
//! every value, so a check can say what voluptuous would see.
//!
//! Why not serde_yaml_ng's values: it resolves plain scalars by YAML 1.2, where `yes`,
//! `2024-01-01` and `1_000` are strings; PyYAML (supervisor/utils/yaml.py, `CSafeLoader`)
//! makes them a bool, a date and an int, and a voluptuous `str` field then refuses them. The
//! scalar's style (plain or quoted) decides, which only an event parser reports: the events come
//! from `saphyr-parser`; the YAML 1.1 implicit resolvers are PyYAML's (`yaml/resolver.py`), since
//! no maintained Rust crate resolves YAML 1.1 types.
use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use saphyr_parser::{Event, Parser, ScalarStyle, Tag};

/// A value as Python holds it after `yaml.load(..., Loader=SafeLoader)`.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    Str(String),
    Bool(bool),
    /// The scalar's text (the number itself is never needed here).
    Int(String),
    Float(String),
    Null,
    /// `datetime.date` / `datetime.datetime` (`!!timestamp`).
    Timestamp(String),
    /// `bytes` (`!!binary`).
    Bytes,
    /// `set` (`!!set`).
    Set,
    List(Vec<PyValue>),
    /// A dict in document order; a repeated key keeps its last value, as in Python.
    Dict(Vec<(PyValue, PyValue)>),
}

impl PyValue {
    /// The Python type name, for messages ("expected str, got bool").
    pub fn type_name(&self) -> &'static str {
        match self {
            PyValue::Str(_) => "str",
            PyValue::Bool(_) => "bool",
            PyValue::Int(_) => "int",
            PyValue::Float(_) => "float",
            PyValue::Null => "None",
            PyValue::Timestamp(_) => "datetime",
            PyValue::Bytes => "bytes",
            PyValue::Set => "set",
            PyValue::List(_) => "list",
            PyValue::Dict(_) => "dict",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// `dict.get(key)` for a str key.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        match self {
            PyValue::Dict(items) => items
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// JSON as Python's json/orjson gives it (Supervisor reads `.json` files that way).
    pub fn from_json(v: &serde_json::Value) -> PyValue {
        use serde_json::Value as J;
        match v {
            J::Null => PyValue::Null,
            J::Bool(b) => PyValue::Bool(*b),
            J::Number(n) if n.is_f64() => PyValue::Float(n.to_string()),
            J::Number(n) => PyValue::Int(n.to_string()),
            J::String(s) => PyValue::Str(s.clone()),
            J::Array(items) => PyValue::List(items.iter().map(PyValue::from_json).collect()),
            J::Object(map) => PyValue::Dict(
                map.iter()
                    .map(|(k, v)| (PyValue::Str(k.clone()), PyValue::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// PyYAML's implicit resolvers (`Resolver` in yaml/resolver.py, YAML 1.1), in its order.
static RESOLVERS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    [
        (
            "bool",
            r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
        ),
        (
            "float",
            r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        ),
        (
            "int",
            r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
        ),
        ("merge", r"^(?:<<)$"),
        ("null", r"^(?:~|null|Null|NULL|)$"),
        (
            "timestamp",
            r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
        ),
        ("value", r"^(?:=)$"),
    ]
    .into_iter()
    .map(|(tag, re)| (tag, Regex::new(re).unwrap()))
    .collect()
});

/// The tag PyYAML gives a plain scalar (`Resolver.resolve`): the first resolver that matches,
/// else `str`. Every regex is anchored and PyYAML indexes them by first character, which
/// changes nothing for anchored patterns.
pub fn resolve_plain(text: &str) -> &'static str {
    RESOLVERS
        .iter()
        .find(|(_, re)| re.is_match(text))
        .map_or("str", |(tag, _)| tag)
}

/// Parse one document into Python values; an empty stream is `None` (Supervisor turns that
/// into `{}`). Errors read like PyYAML's: what failed and where.
pub fn load(text: &str) -> Result<PyValue, String> {
    let mut events = Vec::new();
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| {
            format!(
                "not valid YAML: {} at line {}, column {}",
                e.info(),
                e.marker().line(),
                e.marker().col() + 1
            )
        })?;
        events.push((ev, span.start.line()));
    }
    let mut b = Builder {
        events: events.into_iter(),
        anchors: BTreeMap::new(),
    };
    let mut docs = Vec::new();
    while let Some((ev, line)) = b.events.next() {
        match ev {
            Event::DocumentStart(_) => {
                if !docs.is_empty() {
                    return Err(format!(
                        "expected a single document in the stream, but found another at line {line}"
                    ));
                }
                docs.push(b.node()?);
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            other => return Err(format!("unexpected YAML event {other:?} at line {line}")),
        }
    }
    Ok(docs.pop().unwrap_or(PyValue::Null))
}

struct Builder<'a> {
    events: std::vec::IntoIter<(Event<'a>, usize)>,
    anchors: BTreeMap<usize, PyValue>,
}

impl Builder<'_> {
    fn node(&mut self) -> Result<PyValue, String> {
        let Some((ev, line)) = self.events.next() else {
            return Err("the YAML document ends early".into());
        };
        let (value, anchor) = match ev {
            Event::Alias(id) => {
                let v = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| format!("found undefined alias at line {line}"))?;
                return Ok(v);
            }
            Event::Scalar(text, style, anchor, tag) => {
                (scalar(&text, style, tag.as_deref(), line)?, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                let mut items = Vec::new();
                while !matches!(
                    self.events.as_slice().first(),
                    Some((Event::SequenceEnd, _))
                ) {
                    items.push(self.node()?);
                }
                self.events.next();
                let v = match tag.as_deref().map(core_suffix) {
                    None | Some(Some("seq" | "omap" | "pairs")) => PyValue::List(items),
                    Some(t) => return Err(unknown_tag(t, line)),
                };
                (v, anchor)
            }
            Event::MappingStart(anchor, tag) => {
                let mut items: Vec<(PyValue, PyValue)> = Vec::new();
                let mut merged: Vec<(PyValue, PyValue)> = Vec::new();
                while !matches!(self.events.as_slice().first(), Some((Event::MappingEnd, _))) {
                    let is_merge = matches!(
                        self.events.as_slice().first(),
                        Some((Event::Scalar(k, ScalarStyle::Plain, _, None), _)) if k == "<<"
                    );
                    if is_merge {
                        self.events.next();
                        let value = self.node()?;
                        // SafeConstructor.flatten_mapping: merged keys come first, and the
                        // mapping's own keys win.
                        match value {
                            PyValue::Dict(m) => merged.extend(m),
                            PyValue::List(maps) => {
                                for m in maps.into_iter().rev() {
                                    let PyValue::Dict(m) = m else {
                                        return Err(format!(
                                            "expected a mapping for merging at line {line}"
                                        ));
                                    };
                                    merged.extend(m);
                                }
                            }
                            _ => {
                                return Err(format!(
                                "expected a mapping or list of mappings for merging at line {line}"
                            ))
                            }
                        }
                        continue;
                    }
                    let key = self.node()?;
                    let value = self.node()?;
                    if matches!(key, PyValue::List(_) | PyValue::Dict(_) | PyValue::Set) {
                        return Err(format!(
                            "found unhashable key ({}) in a mapping at line {line}",
                            key.type_name()
                        ));
                    }
                    items.push((key, value));
                }
                self.events.next();
                merged.extend(items);
                let v = match tag.as_deref().map(core_suffix) {
                    None | Some(Some("map")) => PyValue::Dict(merged),
                    Some(Some("set")) => PyValue::Set,
                    Some(t) => return Err(unknown_tag(t, line)),
                };
                (v, anchor)
            }
            other => return Err(format!("unexpected YAML event {other:?} at line {line}")),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }
}

/// `!!x` -> `Some("x")`; any other tag -> `None`.
fn core_suffix(tag: &Tag) -> Option<&str> {
    tag.is_yaml_core_schema().then_some(tag.suffix.as_str())
}

fn unknown_tag(tag: Option<&str>, line: usize) -> String {
    format!(
        "could not determine a constructor for the tag {} at line {line} (SafeLoader builds only \
         the YAML 1.1 types)",
        tag.map_or("(non-core)".to_owned(), |t| format!("!!{t}"))
    )
}

fn scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    line: usize,
) -> Result<PyValue, String> {
    let kind = match tag {
        // `!` alone, the non-specific tag (saphyr-parser: handle "", suffix "!"): PyYAML
        // resolves the text as if plain even when quoted (`! '42'` is an int; checked against
        // PyYAML 6 by tests/store.rs).
        Some(t) if t.handle.is_empty() && t.suffix == "!" => resolve_plain(text),
        Some(t) => match core_suffix(t) {
            Some(s) => s,
            None => return Err(unknown_tag(None, line)),
        },
        None if style == ScalarStyle::Plain => resolve_plain(text),
        None => "str",
    };
    Ok(match kind {
        "str" => PyValue::Str(text.to_owned()),
        "bool" => PyValue::Bool(matches!(
            text,
            "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON"
        )),
        "int" => PyValue::Int(text.to_owned()),
        "float" => PyValue::Float(text.to_owned()),
        "null" => PyValue::Null,
        "timestamp" => PyValue::Timestamp(text.to_owned()),
        "binary" => PyValue::Bytes,
        // `<<` as a plain key is handled by the mapping; elsewhere it, and `=` (`!!value`),
        // have no SafeConstructor constructor.
        t => return Err(unknown_tag(Some(t), line)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(doc: &str) -> PyValue {
        load(doc).unwrap().get("name").cloned().unwrap()
    }

    #[test]
    fn plain_scalars_resolve_as_yaml_1_1() {
        for (text, ty) in [
            ("yes", "bool"),
            ("Off", "bool"),
            ("1_000", "int"),
            ("0x1F", "int"),
            ("1:30", "int"),
            ("010", "int"),
            ("1.5", "float"),
            (".inf", "float"),
            ("~", "None"),
            ("", "None"),
            ("2024-01-01", "datetime"),
            ("FluxION", "str"),
            // PyYAML's float needs a dot: 1e5 stays a str.
            ("1e5", "str"),
            ("y", "str"),
            ("0o17", "str"),
        ] {
            let doc = format!("name: {text}\n");
            assert_eq!(name_of(&doc).type_name(), ty, "{doc:?}");
        }
    }

    #[test]
    fn quoted_and_tagged_scalars() {
        assert_eq!(name_of("name: \"yes\"\n"), PyValue::Str("yes".into()));
        assert_eq!(
            name_of("name: '2024-01-01'\n"),
            PyValue::Str("2024-01-01".into())
        );
        assert_eq!(name_of("name: !!str 42\n"), PyValue::Str("42".into()));
        assert_eq!(name_of("name: ! 42\n").type_name(), "int");
        assert_eq!(name_of("name: ! '42'\n").type_name(), "int");
        assert_eq!(name_of("name: ! abc\n"), PyValue::Str("abc".into()));
        assert_eq!(name_of("name: !!int \"42\"\n").type_name(), "int");
        assert_eq!(name_of("name: |\n  x\n"), PyValue::Str("x\n".into()));
        assert!(load("name: !custom x\n").is_err());
        assert!(
            load("name: =\n").is_err(),
            "!!value has no SafeLoader constructor"
        );
        assert!(load("name: <<\n").is_err(), "nor has !!merge outside a key");
    }

    #[test]
    fn documents_anchors_merges_and_duplicates() {
        assert_eq!(load("").unwrap(), PyValue::Null);
        assert_eq!(load("# only a comment\n").unwrap(), PyValue::Null);
        assert!(load("a: 1\n---\nb: 2\n")
            .unwrap_err()
            .contains("single document"));
        let d = load("base: &b {name: x}\nother:\n  <<: *b\n  url: u\n").unwrap();
        assert_eq!(
            d.get("other").unwrap().get("name"),
            Some(&PyValue::Str("x".into()))
        );
        let d = load("<<: {name: a}\nname: b\n").unwrap();
        assert_eq!(
            d.get("name"),
            Some(&PyValue::Str("b".into())),
            "own keys win"
        );
        let d = load("name: a\nname: b\n").unwrap();
        assert_eq!(
            d.get("name"),
            Some(&PyValue::Str("b".into())),
            "last duplicate wins"
        );
        assert!(load("? [a]\n: x\n").unwrap_err().contains("unhashable"));
        assert!(load("name: [unclosed\n").unwrap_err().contains("line"));
        assert_eq!(load("- a\n").unwrap().type_name(), "list");
    }

    #[test]
    fn json_maps_to_python_types() {
        let v = PyValue::from_json(&serde_json::json!({"name": "x", "n": 1, "f": 1.5, "b": true}));
        assert_eq!(v.get("name"), Some(&PyValue::Str("x".into())));
        assert_eq!(v.get("n").unwrap().type_name(), "int");
        assert_eq!(v.get("f").unwrap().type_name(), "float");
        assert_eq!(v.get("b").unwrap().type_name(), "bool");
    }
}
