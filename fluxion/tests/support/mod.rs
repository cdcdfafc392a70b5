//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod cdp;
pub mod fake_ha;
pub mod fixtures;
pub mod ingress;
pub mod process;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

/// Quarter-hour `forecast` attributes from the slot containing `now`: `cheap` slots at 0.01,
/// then `dear` slots at 0.30, so the plan force-charges now.
pub fn charge_now_prices(now: DateTime<Utc>, cheap: usize, dear: usize) -> Value {
    let mut t = fluxion::price::slot_start(now);
    let mut list = Vec::new();
    for i in 0..cheap + dear {
        let price = if i < cheap { 0.01 } else { 0.30 };
        let end = t + Duration::minutes(15);
        list.push(json!({"start": t.to_rfc3339(), "end": end.to_rfc3339(), "price": price}));
        t = end;
    }
    json!({"unit_of_measurement": "EUR/kWh", "forecast": list})
}
