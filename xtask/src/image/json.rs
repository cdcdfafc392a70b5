//! The only place JSON is serialised: canonical form, keys sorted at every level, no spaces.
//!
//! Digests are taken over these bytes, so they must not depend on map iteration order
//! (oci-spec keeps labels and annotations in HashMaps) nor on whether serde_json's
//! `preserve_order` feature happens to be on in this build: keys are sorted here, explicitly.
use serde::Serialize;
use serde_json::Value;

pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("pipeline types serialise to JSON");
    let mut out = Vec::with_capacity(1024);
    write(&value, &mut out);
    out
}

/// Canonical JSON, pretty-printed for humans (summaries on stdout); still sorted.
pub fn to_pretty<T: Serialize + ?Sized>(value: &T) -> String {
    let value = serde_json::to_value(value).expect("pipeline types serialise to JSON");
    let sorted = sort(value);
    serde_json::to_string_pretty(&sorted).expect("a JSON value always prints")
}

fn sort(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort).collect()),
        v => v,
    }
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("writing to a Vec cannot fail");
                out.push(b':');
                write(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(v, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec cannot fail"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn sorts_keys_at_every_level() {
        let mut inner = HashMap::new();
        for k in ["zeta", "alpha", "mid"] {
            inner.insert(k, vec![1, 2]);
        }
        let v = serde_json::json!({"b": inner, "a": [{"y": 1, "x": "\u{e9}"}]});
        assert_eq!(
            String::from_utf8(to_canonical(&v)).unwrap(),
            r#"{"a":[{"x":"é","y":1}],"b":{"alpha":[1,2],"mid":[1,2],"zeta":[1,2]}}"#
        );
    }
}
