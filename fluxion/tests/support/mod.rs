//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod fake_ha;
pub mod fixtures;
pub mod process;
