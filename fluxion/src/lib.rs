//! FluxION library: the service's modules, shared by `fluxion-main`, the tests and the benches.

pub mod config;
pub mod control;
pub mod forecast;
pub mod ha;
pub mod plan;
pub mod price;
pub mod tariff;
pub mod web;

/// `fluxion-main --version` text after the name: version and the target it was built for.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("FLUXION_TARGET"), ")");
