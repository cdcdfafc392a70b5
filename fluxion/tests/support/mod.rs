//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod cdp;
pub mod fake_ha;
pub mod fixtures;
pub mod household;
pub mod ingress;
pub mod process;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use fluxion::config::{Config, Sources};
use fluxion::control::{Controller, Shared};
use fluxion::ha::HaClient;
use serde_json::{json, Value};

/// The configuration for a service talking to `ha`, debug mode as given, plus `extra`
/// environment settings (`FLUXION_<SECTION>_<KEY>`).
pub fn config_for(ha: &fake_ha::FakeHa, debug: bool, extra: &[(&str, &str)]) -> Config {
    let mut env = vec![
        ("HA_URL".to_string(), format!("http://{}", ha.addr)),
        ("HA_TOKEN".to_string(), fake_ha::TOKEN.to_string()),
        ("FLUXION_CONTROL_DEBUG_MODE".to_string(), debug.to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::load(&Sources::default(), env).unwrap()
}

/// A controller for `ha` whose client gives up after `timeout` and retries reads quickly.
pub fn controller_for(
    ha: &fake_ha::FakeHa,
    debug: bool,
    extra: &[(&str, &str)],
    timeout: std::time::Duration,
) -> (Controller, Arc<Shared>) {
    let cfg = config_for(ha, debug, extra);
    let shared = Shared::new(cfg.control.debug_mode);
    let mut client = HaClient::new(&ha.api_url(), fake_ha::TOKEN).unwrap();
    client.timeout = timeout;
    client.backoff = std::time::Duration::from_millis(5);
    (
        Controller::with_client(cfg, Some(client), shared.clone()),
        shared,
    )
}

/// A fake HA (core 2024.3) whose prices make the plan force-charge now, the SOC at `soc`.
pub fn charging_ha(soc: &str) -> fake_ha::FakeHa {
    let ha = fake_ha::FakeHa::start();
    let now = chrono::Utc::now();
    ha.set(
        "sensor.current_spot_electricity_price_15min",
        "0.01",
        Some(charge_now_prices(now, 4, 92)),
        now,
    );
    ha.set("sensor.solax_battery_capacity", soc, None, now);
    ha
}

/// Quarter-hour `forecast` attributes from the slot containing `now`: `cheap` slots at 0.01,
/// then `dear` slots at 0.30, so the plan force-charges now.
pub fn charge_now_prices(now: DateTime<Utc>, cheap: usize, dear: usize) -> Value {
    prices_from_now(now, &[(cheap, 0.01), (dear, 0.30)])
}

/// Quarter-hour `forecast` attributes from the slot containing `now`: each (slots, price) in
/// turn.
pub fn prices_from_now(now: DateTime<Utc>, parts: &[(usize, f64)]) -> Value {
    let mut t = fluxion::price::slot_start(now);
    let mut list = Vec::new();
    for &(count, price) in parts {
        for _ in 0..count {
            let end = t + Duration::minutes(15);
            list.push(json!({"start": t.to_rfc3339(), "end": end.to_rfc3339(), "price": price}));
            t = end;
        }
    }
    json!({"unit_of_measurement": "CZK/kWh", "forecast": list})
}
