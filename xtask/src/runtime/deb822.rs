//! Debian control-file syntax (deb822: `Field: value` paragraphs, continuation lines start
//! with a space; Debian Policy 5.1), as used by Release and Packages files.
use std::collections::BTreeMap;

use anyhow::{bail, Context};

/// One paragraph: field names compared case-insensitively (Policy 5.1), values with the
/// continuation lines joined by `\n` and the leading space removed.
#[derive(Debug, Clone, Default)]
pub struct Paragraph {
    fields: BTreeMap<String, String>,
}

impl Paragraph {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .get(&field.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn require(&self, field: &str) -> anyhow::Result<&str> {
        self.get(field).with_context(|| {
            format!(
                "field {field} missing in the paragraph for {}",
                self.get("Package").unwrap_or("(no Package field)")
            )
        })
    }
}

/// Parse every paragraph of a control file.
pub fn parse(text: &str) -> anyhow::Result<Vec<Paragraph>> {
    let mut out = Vec::new();
    let mut cur = Paragraph::default();
    let mut last: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !cur.fields.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            last = None;
        } else if line.starts_with(' ') || line.starts_with('\t') {
            let Some(key) = &last else {
                bail!("line {}: continuation line without a field", n + 1);
            };
            let v = cur.fields.get_mut(key).expect("last field exists");
            if !v.is_empty() {
                v.push('\n');
            }
            v.push_str(line.trim());
        } else if line.starts_with('#') {
            continue;
        } else {
            let Some((k, v)) = line.split_once(':') else {
                bail!("line {}: expected `Field: value`, got {line:?}", n + 1);
            };
            let key = k.trim().to_ascii_lowercase();
            cur.fields.insert(key.clone(), v.trim().to_owned());
            last = Some(key);
        }
    }
    if !cur.fields.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_and_continuations() {
        let p = parse("Package: a\nDescription: x\n more\n\nPackage: b\nsha256:\n 1 2 f\n 3 4 g\n")
            .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].get("description"), Some("x\nmore"));
        assert_eq!(p[1].get("SHA256"), Some("1 2 f\n3 4 g"));
        assert!(parse(" orphan\n").is_err());
    }
}
