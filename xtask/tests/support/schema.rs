//! Validation against the OCI image-spec JSON schemas kept beside the checkout (../shared/ref).
use std::path::PathBuf;

use serde_json::Value;

pub fn ref_dir() -> PathBuf {
    super::workspace_root()
        .join("..")
        .join("shared")
        .join("ref")
}

/// Maps any `https://opencontainers.org/schema/.../<file>.json` to the local file: the ids are
/// URLs where nothing is served, and tests never go online (see shared/ref/README.md).
struct LocalOci(PathBuf);

impl jsonschema::Retrieve for LocalOci {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri
            .as_str()
            .split('#')
            .next()
            .unwrap_or("")
            .rsplit('/')
            .next()
            .unwrap_or("");
        let text = std::fs::read_to_string(self.0.join(name))
            .map_err(|e| format!("no local schema for {}: {e}", uri.as_str()))?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// Validate `instance` against an OCI schema file (e.g. `image-manifest-schema.json`).
/// Returns None (skip) when the schemas are absent outside CI.
pub fn validate_oci(schema_file: &str, instance: &Value) -> Option<Result<(), Vec<String>>> {
    let dir = ref_dir().join("oci-image-spec");
    if !dir.join(schema_file).is_file() {
        super::skip(&format!("reference schemas not found at {}", dir.display()))?;
    }
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(schema_file)).unwrap()).unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .with_retriever(LocalOci(dir))
        .build(&schema)
        .expect("the OCI schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    Some(if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    })
}
