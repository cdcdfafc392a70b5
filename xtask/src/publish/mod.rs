//! Step 3, publish: write assembled images in the formats tools load (one file per format).
pub mod contract;
pub mod daemon;
pub mod docker_archive;
pub mod fresh;
pub mod hybrid_archive;
pub mod oci_layout;
pub mod registry;
