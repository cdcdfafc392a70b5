//! Step 3, publish: write assembled images in the formats tools load (one file per format).
pub mod daemon;
pub mod docker_archive;
pub mod fresh;
