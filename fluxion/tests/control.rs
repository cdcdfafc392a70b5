//! The control loop against the fake Home Assistant: start-up, plan changes on new prices, the
//! exact select writes, debug mode, debounce, stale data and clear HA errors.

mod support;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use fluxion::config::{Config, Sources};
use fluxion::control::{Controller, Outcome, Shared};
use fluxion::ha::{HaClient, HaError};
use fluxion::plan::Mode;
use serde_json::{json, Value};
use support::fake_ha::{FakeHa, ServiceCall, TOKEN};

const PRICE: &str = "sensor.current_spot_electricity_price";
const USE_MODE: &str = "select.solax_charger_use_mode";
const MANUAL: &str = "select.solax_manual_mode_select";

/// 07:00 in Prague, 30 s after the recorded states were reported.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-01-15T06:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn config(ha: &FakeHa, debug: bool) -> Config {
    let env = [
        ("HA_URL".to_string(), format!("http://{}", ha.addr)),
        ("HA_TOKEN".to_string(), TOKEN.to_string()),
        ("FLUXION_CONTROL_DEBUG_MODE".to_string(), debug.to_string()),
    ];
    Config::load(&Sources::default(), env).unwrap()
}

fn controller(ha: &FakeHa, debug: bool) -> (Controller, Arc<Shared>) {
    let cfg = config(ha, debug);
    let shared = Shared::new(cfg.control.debug_mode);
    (Controller::new(cfg, shared.clone()), shared)
}

/// Hourly `forecast` attributes from `from`: each (hours, price) pair in turn.
fn forecast(from: DateTime<Utc>, parts: &[(i64, f64)]) -> Value {
    let mut t = from;
    let mut list = Vec::new();
    for &(hours, price) in parts {
        for _ in 0..hours {
            list.push(json!({"start": t.to_rfc3339(), "end": (t + Duration::hours(1)).to_rfc3339(), "price": price}));
            t += Duration::hours(1);
        }
    }
    json!({"unit_of_measurement": "EUR/kWh", "forecast": list})
}

fn cheap_now(ha: &FakeHa, at: DateTime<Utc>) {
    ha.set(
        PRICE,
        "0.01",
        Some(forecast(t0(), &[(1, 0.01), (23, 0.30)])),
        at,
    );
}

fn dear_now(ha: &FakeHa, at: DateTime<Utc>) {
    ha.set(
        PRICE,
        "0.50",
        Some(forecast(t0(), &[(1, 0.50), (23, 0.01)])),
        at,
    );
}

/// Keeps the SOC sensor fresh at `at`.
fn soc(ha: &FakeHa, value: &str, at: DateTime<Utc>) {
    ha.set("sensor.solax_battery_capacity", value, None, at);
}

fn select(entity: &str, option: &str) -> ServiceCall {
    ServiceCall {
        domain: "select".into(),
        service: "select_option".into(),
        data: json!({"entity_id": entity, "option": option}),
    }
}

#[tokio::test]
async fn start_up_reads_time_zone_states_and_prices_and_plans() {
    let ha = FakeHa::start();
    ha.set(
        PRICE,
        "0.092",
        Some(support::fixtures::price_attributes("winter")),
        t0(),
    );
    let (mut c, shared) = controller(&ha, true);
    let outcome = c.tick(t0()).await;
    assert!(
        matches!(outcome, Outcome::Unchanged(_) | Outcome::Changed(_)),
        "{outcome:?}"
    );
    let status = shared.status.borrow().clone();
    assert_eq!(status.time_zone.as_deref(), Some("Europe/Prague"));
    assert_eq!(status.soc, Some(52.0));
    assert_eq!(status.current_mode, Some(Mode::SelfUse));
    assert!(status.blocked.is_none());
    let plan = status.plan.unwrap();
    // 07:00 on the 15th to the end of the 16th (local), in quarter hours.
    assert_eq!(plan.slots.len(), 17 * 4 + 96);
    assert_eq!(plan.slots[0].start, t0());
    // The hardware minimum read from HA (15 %) is above the configured 10 %.
    assert_eq!(plan.min_soc, 15.0);
    assert!(plan.slots.iter().all(|s| s.soc_end >= 15.0 - 1e-9));
    assert!(
        ha.calls().is_empty(),
        "debug mode is the default: nothing may be written"
    );
    assert_eq!(shared.history.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn non_debug_mode_writes_exactly_the_differing_selects() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    let (mut c, _) = controller(&ha, false);
    assert_eq!(c.tick(t0()).await, Outcome::Changed(Mode::ForceCharge));
    assert_eq!(
        ha.calls(),
        vec![
            select(MANUAL, "Force Charge"),
            select(USE_MODE, "Manual Mode")
        ]
    );
    assert_eq!(ha.state_of(USE_MODE), "Manual Mode");
    // Already in the wanted mode: no write at all.
    let t1 = t0() + Duration::seconds(60);
    soc(&ha, "55", t1);
    assert_eq!(c.tick(t1).await, Outcome::Unchanged(Mode::ForceCharge));
    assert_eq!(ha.calls().len(), 2);
}

#[tokio::test]
async fn a_price_update_changes_the_plan_and_the_mode() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    let (mut c, shared) = controller(&ha, false);
    assert_eq!(c.tick(t0()).await, Outcome::Changed(Mode::ForceCharge));
    let before = shared.status.borrow().plan.clone().unwrap();
    ha.clear_calls();
    let later = t0() + Duration::seconds(301);
    soc(&ha, "58", later);
    dear_now(&ha, later);
    assert_eq!(c.tick(later).await, Outcome::Changed(Mode::ForceDischarge));
    // Only the manual command differs; the use mode already is Manual Mode.
    assert_eq!(ha.calls(), vec![select(MANUAL, "Force Discharge")]);
    let after = shared.status.borrow().plan.clone().unwrap();
    assert_ne!(before.slots[0].mode, after.slots[0].mode);
    assert_eq!(after.start_soc, 58.0);
}

#[tokio::test]
async fn debug_mode_sends_nothing_but_records_what_it_would_send() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    let (mut c, shared) = controller(&ha, true);
    assert_eq!(c.tick(t0()).await, Outcome::Changed(Mode::ForceCharge));
    assert!(ha.calls().is_empty());
    assert_eq!(ha.state_of(USE_MODE), "Self Use Mode");
    let would: Vec<_> = c
        .commands()
        .map(|c| (c.entity_id.as_str(), c.option.as_str(), c.sent))
        .collect();
    assert_eq!(
        would,
        [
            (MANUAL, "Force Charge", false),
            (USE_MODE, "Manual Mode", false)
        ]
    );
    let status = shared.status.borrow().clone();
    assert!(status.debug_mode);
    assert_eq!(status.wanted_mode, Some(Mode::ForceCharge));
}

#[tokio::test]
async fn mode_changes_are_debounced() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    let (mut c, _) = controller(&ha, false);
    assert_eq!(c.tick(t0()).await, Outcome::Changed(Mode::ForceCharge));
    ha.clear_calls();
    let t1 = t0() + Duration::seconds(60);
    soc(&ha, "55", t1);
    dear_now(&ha, t1);
    assert_eq!(
        c.tick(t1).await,
        Outcome::Held {
            wanted: Mode::ForceDischarge,
            until: t0() + Duration::seconds(300)
        }
    );
    assert!(ha.calls().is_empty());
    let t2 = t0() + Duration::seconds(300);
    soc(&ha, "55", t2);
    assert_eq!(c.tick(t2).await, Outcome::Changed(Mode::ForceDischarge));
    assert_eq!(ha.calls(), vec![select(MANUAL, "Force Discharge")]);
}

#[tokio::test]
async fn stale_soc_blocks_plan_writes_and_falls_back_to_self_use_once() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    let (mut c, shared) = controller(&ha, false);
    assert_eq!(c.tick(t0()).await, Outcome::Changed(Mode::ForceCharge));
    ha.clear_calls();
    // No SOC report for 181 s: more than 3 update intervals of 60 s.
    let t1 = t0() - Duration::seconds(30) + Duration::seconds(181);
    let Outcome::Blocked(reason) = c.tick(t1).await else {
        panic!("stale SOC must block")
    };
    assert!(
        reason.contains("sensor.solax_battery_capacity is stale"),
        "{reason}"
    );
    assert_eq!(
        ha.calls(),
        vec![
            select(USE_MODE, "Self Use Mode"),
            select(MANUAL, "Stop Charge and Discharge")
        ]
    );
    assert_eq!(
        shared.status.borrow().blocked.as_deref(),
        Some(reason.as_str())
    );
    // Still stale: the fallback is not repeated, nothing else is written.
    let t2 = t1 + Duration::seconds(60);
    assert!(matches!(c.tick(t2).await, Outcome::Blocked(_)));
    assert_eq!(ha.calls().len(), 2);
    // Fresh again: the plan is followed (the fallback counted as a change, so after 300 s).
    let t3 = t1 + Duration::seconds(300);
    soc(&ha, "50", t3);
    assert_eq!(c.tick(t3).await, Outcome::Changed(Mode::ForceCharge));
    assert!(shared.status.borrow().blocked.is_none());
}

#[tokio::test]
async fn unavailable_soc_and_missing_prices_block() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    ha.set("sensor.solax_battery_capacity", "unavailable", None, t0());
    let (mut c, _) = controller(&ha, false);
    let Outcome::Blocked(reason) = c.tick(t0()).await else {
        panic!("must block")
    };
    assert!(reason.contains("\"unavailable\", not a number"), "{reason}");
    assert!(
        ha.calls().is_empty(),
        "already in Self Use: the fallback writes nothing"
    );

    let later = t0() + Duration::hours(30);
    soc(&ha, "50", later);
    let Outcome::Blocked(reason) = c.tick(later).await else {
        panic!("must block")
    };
    assert!(reason.contains("no price for the current slot"), "{reason}");
    assert!(ha.calls().is_empty());
}

#[tokio::test]
async fn unreachable_home_assistant_blocks_with_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = Config::load(
        &Sources::default(),
        [
            ("HA_URL".to_string(), format!("http://127.0.0.1:{port}")),
            ("HA_TOKEN".to_string(), "t".to_string()),
        ],
    )
    .unwrap();
    let shared = Shared::new(true);
    let mut client = HaClient::new(&cfg.ha_endpoint().unwrap().0, "t").unwrap();
    client.backoff = std::time::Duration::from_millis(1);
    let mut c = Controller::with_client(cfg, Some(client), shared.clone());
    let Outcome::Blocked(reason) = c.tick(t0()).await else {
        panic!("must block")
    };
    assert!(
        reason.contains(&format!(
            "cannot reach home assistant at http://127.0.0.1:{port}/api/config"
        )),
        "{reason}"
    );
}

#[tokio::test]
async fn a_wrong_token_says_401_and_what_to_fix() {
    let ha = FakeHa::start();
    let client = HaClient::new(&ha.api_url(), "wrong").unwrap();
    let e = client
        .state("sensor.solax_battery_capacity")
        .await
        .unwrap_err();
    assert!(matches!(e, HaError::Unauthorized { .. }));
    let text = e.to_string();
    assert!(text.contains("401") && text.contains("HA_TOKEN"), "{text}");
    assert!(text.contains(&ha.api_url()), "{text}");
}

#[tokio::test]
async fn an_unknown_entity_says_404_and_names_it() {
    let ha = FakeHa::start();
    let client = HaClient::new(&ha.api_url(), TOKEN).unwrap();
    let e = client
        .state("sensor.solx_battery_capacity")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "entity sensor.solx_battery_capacity does not exist in home assistant (404 from {}/states/sensor.solx_battery_capacity): check the entity id in the configuration",
            ha.api_url()
        )
    );
    // A wrong prefix surfaces as a blocked controller naming the SOC entity.
    let env = [
        ("HA_URL".to_string(), format!("http://{}", ha.addr)),
        ("HA_TOKEN".to_string(), TOKEN.to_string()),
        (
            "FLUXION_INVERTER_ENTITY_PREFIX".to_string(),
            "solx".to_string(),
        ),
    ];
    let cfg = Config::load(&Sources::default(), env).unwrap();
    let mut c = Controller::new(cfg, Shared::new(true));
    let Outcome::Blocked(reason) = c.tick(t0()).await else {
        panic!("must block")
    };
    assert!(
        reason.contains("entity sensor.solx_battery_capacity does not exist"),
        "{reason}"
    );
}
