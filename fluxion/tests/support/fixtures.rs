//! Loads the committed price-day fixtures into optimiser problems (shared with the bench).

use chrono::{DateTime, Utc};
use fluxion::config::PricingConfig;
use fluxion::plan::{Battery, Problem, SlotInput};
use fluxion::price;
use serde_json::Value;

pub const DAYS: [&str; 3] = ["winter", "summer_negative", "flat"];

pub fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The 15-minute price slots of a fixture, from its first priced slot to its last.
pub fn price_slots(day: &str) -> Vec<price::PriceSlot> {
    let text = std::fs::read_to_string(fixture_path(&format!("prices/{day}.json"))).unwrap();
    let state: Value = serde_json::from_str(&text).unwrap();
    let updated: DateTime<chrono::FixedOffset> =
        DateTime::parse_from_rfc3339(state["last_updated"].as_str().unwrap()).unwrap();
    let tz = chrono_tz::Europe::Berlin;
    let points = price::parse_attributes(
        "sensor.spot_price",
        &state["attributes"],
        tz,
        updated.date_naive(),
    )
    .unwrap();
    let first: DateTime<Utc> = points.first().unwrap().start;
    price::horizon(&points, &PricingConfig::default(), tz, first)
}

/// The reference battery of the comparison: 10 kWh, 5 kW both ways, 90 % round trip,
/// 10-100 % SOC, starting empty (at 10 %), no fees or wear, default terminal value.
pub fn problem(day: &str) -> Problem {
    let slots = price_slots(day)
        .iter()
        .map(|s| SlotInput {
            buy: s.buy,
            sell: s.sell,
            net_load_kwh: 0.0,
        })
        .collect();
    Problem {
        battery: Battery {
            capacity_kwh: 10.0,
            max_charge_kw: 5.0,
            max_discharge_kw: 5.0,
            efficiency: 0.9,
            min_soc: 10.0,
            max_soc: 100.0,
            wear_cost_per_kwh: 0.0,
        },
        slots,
        slot_hours: 0.25,
        start_soc: 10.0,
        soc_step_percent: 0.5,
        terminal_value_per_kwh: None,
    }
}

/// The `attributes` of a price fixture, as the fake HA serves them.
pub fn price_attributes(day: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(&format!("prices/{day}.json"))).unwrap();
    let state: Value = serde_json::from_str(&text).unwrap();
    state["attributes"].clone()
}
