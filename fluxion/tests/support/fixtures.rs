//! Loads the committed price-day fixtures into optimiser problems (shared with the bench).

use chrono::{DateTime, Utc};
use fluxion::config::PricingConfig;
use fluxion::plan::{Battery, Problem, SlotInput};
use fluxion::price;
use serde_json::Value;

pub const DAYS: [&str; 5] = [
    "winter",
    "summer_negative",
    "flat",
    "cz_evening_peak",
    "spring_pv",
];

pub fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The 15-minute price slots of a fixture, from its first priced slot to its last.
pub fn price_slots(day: &str) -> Vec<price::PriceSlot> {
    price_slots_with(day, &PricingConfig::default())
}

/// The price slots of a fixture per kWh (read in its unit), with the tariff of `cfg`.
pub fn price_slots_with(day: &str, cfg: &PricingConfig) -> Vec<price::PriceSlot> {
    let text = std::fs::read_to_string(fixture_path(&format!("prices/{day}.json"))).unwrap();
    let state: Value = serde_json::from_str(&text).unwrap();
    let updated: DateTime<chrono::FixedOffset> =
        DateTime::parse_from_rfc3339(state["last_updated"].as_str().unwrap()).unwrap();
    let tz = chrono_tz::Europe::Prague;
    let unit = price::read_unit("sensor.spot_price", &state["attributes"], None).unwrap();
    let mut points = price::parse_attributes(
        "sensor.spot_price",
        &state["attributes"],
        tz,
        updated.date_naive(),
    )
    .unwrap();
    price::scale(&mut points, unit.per_kwh);
    let first: DateTime<Utc> = points.first().unwrap().start;
    price::horizon(&points, cfg, tz, first)
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
        switching: Default::default(),
    }
}

/// A household on `day`: the reference battery, starting empty, a steady 1.2 kW net load in
/// every slot, and grid fees so that buying costs more than selling earns (distribution and
/// taxes on import, the trader's margin on export): 1.8 and 0.3 Kč/kWh on the Czech day,
/// 0.08 and 0.02 EUR/kWh on the others.
pub fn house_problem(day: &str) -> Problem {
    let czk = price_attributes(day)["unit_of_measurement"] == "Kč/kWh";
    let (fee_buy, fee_sell) = if czk { (1.8, 0.3) } else { (0.08, 0.02) };
    let mut p = problem(day);
    for s in &mut p.slots {
        s.buy += fee_buy;
        s.sell -= fee_sell;
        s.net_load_kwh = 1.2 * p.slot_hours;
    }
    p
}

/// The `attributes` of a price fixture, as the fake HA serves them.
pub fn price_attributes(day: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(&format!("prices/{day}.json"))).unwrap();
    let state: Value = serde_json::from_str(&text).unwrap();
    state["attributes"].clone()
}
