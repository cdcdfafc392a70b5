//! The SPDX 2.3 JSON document (spdx-spec v2.3, clauses 6-11 and annex "JSON"), the part of
//! the model the SBOM uses: document creation information, packages (with checksums,
//! external references and licences), other licensing information, relationships. Serialised
//! only through image/json.rs (sorted keys), so the bytes are a function of the values.
//!
//! Why our own serde structs and not a crate: `serde-spdx` 0.10 (types generated from the
//! SPDX 2.3 schema by a build script) does not compile on its own — it uses serde's derive
//! macros without enabling serde's `derive` feature, which is also why its docs.rs build
//! failed; `spdx-rs` 0.5.5 (2023, modelled on SPDX 2.2.1) brings chrono, nom, uuid, strum
//! 0.24, spdx-expression and thiserror 1 into the xtask build for the dozen structs below.
//! We only write SPDX, never parse it, and the tests hold every document to the reference
//! validator (`pyspdxtools` from PyPI's spdx-tools).
use serde::{Deserialize, Serialize};

pub const SPDX_VERSION: &str = "SPDX-2.3";
/// Clause 6.2: the document itself is CC0-1.0.
pub const DATA_LICENSE: &str = "CC0-1.0";
pub const DOCUMENT_ID: &str = "SPDXRef-DOCUMENT";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub spdx_version: String,
    pub data_license: String,
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub name: String,
    pub document_namespace: String,
    pub creation_info: CreationInfo,
    pub document_describes: Vec<String>,
    pub packages: Vec<Package>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub has_extracted_licensing_infos: Vec<ExtractedLicence>,
    pub relationships: Vec<Relationship>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreationInfo {
    /// `YYYY-MM-DDThh:mm:ssZ` (clause 6.9).
    pub created: String,
    pub creators: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub name: String,
    pub version_info: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_file_name: Option<String>,
    pub download_location: String,
    /// Clause 7.19: where the package came from, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_info: Option<String>,
    /// Clause 7.8: false — the files of the package are not listed one by one.
    pub files_analyzed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checksums: Vec<Checksum>,
    pub license_concluded: String,
    pub license_declared: String,
    pub copyright_text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_refs: Vec<ExternalRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_package_purpose: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checksum {
    pub algorithm: String,
    pub checksum_value: String,
}

impl Checksum {
    pub fn sha256(hex: &str) -> Checksum {
        Checksum {
            algorithm: "SHA256".to_owned(),
            checksum_value: hex.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRef {
    pub reference_category: String,
    pub reference_type: String,
    pub reference_locator: String,
}

impl ExternalRef {
    /// A package URL (clause 7.21, annex F: category PACKAGE-MANAGER, type purl).
    pub fn purl(purl: String) -> ExternalRef {
        ExternalRef {
            reference_category: "PACKAGE-MANAGER".to_owned(),
            reference_type: "purl".to_owned(),
            reference_locator: purl,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtractedLicence {
    pub license_id: String,
    pub name: String,
    pub extracted_text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relationship {
    pub spdx_element_id: String,
    pub relationship_type: String,
    pub related_spdx_element: String,
}

impl Relationship {
    pub fn new(from: &str, kind: &str, to: &str) -> Relationship {
        Relationship {
            spdx_element_id: from.to_owned(),
            relationship_type: kind.to_owned(),
            related_spdx_element: to.to_owned(),
        }
    }
}
