//! The control loop against the fake Home Assistant (core 2024.3 unless said): start-up, plan
//! changes on new prices, the exact select writes, debug mode, debounce, freshness without
//! `last_reported`, writes as checked transactions (500, `[]`, timeouts), back-off, fallback
//! until it holds, recovery at start, Hold, the stop's hand-back and clear HA errors.

mod support;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use fluxion::config::{Config, Sources};
use fluxion::control::{Controller, HandBack, Outcome, Shared};
use fluxion::ha::{HaClient, HaError};
use fluxion::plan::Mode;
use serde_json::{json, Value};
use support::fake_ha::{Core, FakeHa, ServiceCall, TOKEN};

const PRICE: &str = "sensor.current_spot_electricity_price_15min";
const USE_MODE: &str = "select.solax_charger_use_mode";
const MANUAL: &str = "select.solax_manual_mode_select";

/// 07:00 in Prague, 30 s after the recorded states were reported.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-01-15T06:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn controller(ha: &FakeHa, debug: bool) -> (Controller, Arc<Shared>) {
    controller_with(ha, debug, &[])
}

/// A controller whose client gives up after 300 ms and retries reads quickly.
fn controller_with(ha: &FakeHa, debug: bool, extra: &[(&str, &str)]) -> (Controller, Arc<Shared>) {
    support::controller_for(ha, debug, extra, std::time::Duration::from_millis(300))
}

/// Puts the two selects into `use_mode` / `manual` as the integration would report them.
fn selects(ha: &FakeHa, use_mode: &str, manual: &str, at: DateTime<Utc>) {
    ha.set(USE_MODE, use_mode, None, at);
    ha.set(MANUAL, manual, None, at);
}

/// The prices of `evening_prices`: two cheaper hours now, three dear ones, cheaper again.
fn hold_now(ha: &FakeHa, at: DateTime<Utc>) {
    ha.set(
        PRICE,
        "0.20",
        Some(forecast(t0(), &[(2, 0.20), (3, 0.50), (19, 0.20)])),
        at,
    );
}

/// Settings under which `hold_now` plans Hold: a 1 kW house, selling pays nothing (fees) and
/// energy left at the end is worth nothing.
const HOLD_SETTINGS: [(&str, &str); 3] = [
    ("FLUXION_PLAN_EXPECTED_NET_LOAD_KW", "1"),
    ("FLUXION_PRICING_GRID_FEE_SELL", "0.5"),
    ("FLUXION_PLAN_TERMINAL_VALUE_PER_KWH", "0"),
];

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
    json!({"unit_of_measurement": "Kč/kWh", "forecast": list})
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
    // The winter fixture is in EUR/kWh: a Home Assistant set to euros.
    ha.set_currency("EUR");
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
async fn mode_changes_are_debounced_and_the_plan_shows_it() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    let (mut c, shared) = controller(&ha, false);
    assert_eq!(c.tick(t0()).await, Outcome::Changed(Mode::ForceCharge));
    ha.clear_calls();
    let t1 = t0() + Duration::seconds(60);
    soc(&ha, "55", t1);
    dear_now(&ha, t1);
    // Discharging now would pay, but the last change was 60 s ago (debounce 300 s): the plan
    // itself keeps Force Charge for this slot, so what it shows is what is followed.
    assert_eq!(c.tick(t1).await, Outcome::Unchanged(Mode::ForceCharge));
    let plan = shared.status.borrow().plan.clone().unwrap();
    assert_eq!(plan.slots[0].mode, Mode::ForceCharge);
    assert_eq!(plan.slots[1].mode, Mode::ForceDischarge);
    assert!(ha.calls().is_empty());
    let t2 = t0() + Duration::seconds(300);
    soc(&ha, "55", t2);
    assert_eq!(c.tick(t2).await, Outcome::Changed(Mode::ForceDischarge));
    assert_eq!(ha.calls(), vec![select(MANUAL, "Force Discharge")]);
    // The controller's own guard still holds when the plan cannot know the mode: someone set
    // Feedin Priority right after FluxION's change.
    let t3 = t2 + Duration::seconds(30);
    ha.set(USE_MODE, "Feedin Priority", None, t3);
    soc(&ha, "50", t3);
    ha.clear_calls();
    let Outcome::Held { until, .. } = c.tick(t3).await else {
        panic!("a change 30 s ago must hold")
    };
    assert_eq!(until, t2 + Duration::seconds(300));
    assert!(ha.calls().is_empty());
}

#[tokio::test]
async fn a_silent_integration_blocks_plan_writes_and_falls_back_to_self_use_once() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    let (mut c, shared) = controller(&ha, false);
    assert_eq!(c.tick(t0()).await, Outcome::Changed(Mode::ForceCharge));
    ha.clear_calls();
    // No Solax sensor updated for 901 s: more than control.max_data_age_s (900 s).
    let t1 = t0() - Duration::seconds(30) + Duration::seconds(901);
    let Outcome::Blocked(reason) = c.tick(t1).await else {
        panic!("a silent integration must block")
    };
    assert!(
        reason.contains("sensor.solax_battery_capacity is stale: no last_reported"),
        "{reason}"
    );
    assert_eq!(
        ha.calls(),
        vec![
            select(USE_MODE, "Self Use Mode"),
            select(MANUAL, "Stop Charge and Discharge")
        ]
    );
    let status = shared.status.borrow().clone();
    assert_eq!(status.blocked.as_deref(), Some(reason.as_str()));
    assert!(status.failure.is_none(), "{status:?}");
    // Still stale: the inverter reads Self Use, so nothing more is written.
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
async fn a_soc_that_holds_still_without_last_reported_keeps_planning() {
    let ha = FakeHa::start();
    assert!(ha
        .state_json("sensor.solax_battery_capacity")
        .get("last_reported")
        .is_none());
    cheap_now(&ha, t0());
    let (mut c, shared) = controller(&ha, true);
    // Ten update intervals (and more than the old 3-interval limit) with the SOC written at
    // the same value: core 2024.3 moves none of its timestamps. The house load moves.
    for i in 0..10 {
        let at = t0() + Duration::seconds(60 * i);
        soc(&ha, "52", at);
        ha.set("sensor.solax_house_load", &(600 + i).to_string(), None, at);
        let outcome = c.tick(at).await;
        assert!(
            !matches!(outcome, Outcome::Blocked(_)),
            "interval {i}: {outcome:?}"
        );
    }
    assert_eq!(
        ha.state_json("sensor.solax_battery_capacity")["last_updated"],
        "2025-01-15T05:59:30+00:00"
    );
    let status = shared.status.borrow().clone();
    let rule = status.freshness.unwrap();
    assert!(
        rule.contains("no last_reported (core before 2024.4)")
            && rule.contains("updated sensor.solax_house_load 0 s ago"),
        "{rule}"
    );
    assert_eq!(status.core_version.as_deref(), Some("2024.3.3"));
    // `unavailable` still falls back.
    let at = t0() + Duration::seconds(660);
    soc(&ha, "unavailable", at);
    let Outcome::Blocked(reason) = c.tick(at).await else {
        panic!("unavailable must block")
    };
    assert!(reason.contains("is \"unavailable\""), "{reason}");
}

#[tokio::test]
async fn last_reported_decides_on_newer_cores() {
    let ha = FakeHa::start_core(Core::V2024_4);
    cheap_now(&ha, t0());
    let (mut c, shared) = controller(&ha, true);
    // The SOC is reported (unchanged) every interval; nothing else moves for 20 minutes.
    let at = t0() + Duration::minutes(20);
    soc(&ha, "52", at);
    assert!(!matches!(c.tick(at).await, Outcome::Blocked(_)));
    let rule = shared.status.borrow().freshness.clone().unwrap();
    assert!(
        rule.starts_with("last_reported of sensor.solax_battery_capacity: 0 s ago"),
        "{rule}"
    );
    // A SOC not reported for 16 minutes is stale even though the house load moves.
    let later = at + Duration::minutes(16);
    ha.set("sensor.solax_house_load", "700", None, later);
    let Outcome::Blocked(reason) = c.tick(later).await else {
        panic!("stale last_reported must block")
    };
    assert!(reason.contains("is stale: last reported at"), "{reason}");
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
    assert!(reason.contains("is \"unavailable\""), "{reason}");
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

/// The writes the fake HA received, as (entity, option).
fn writes(ha: &FakeHa) -> Vec<(String, String)> {
    ha.calls()
        .into_iter()
        .map(|c| {
            (
                c.data["entity_id"].as_str().unwrap().to_string(),
                c.data["option"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(e: &str, o: &str) -> (String, String) {
    (e.to_string(), o.to_string())
}

#[tokio::test]
async fn a_500_on_the_manual_select_never_enters_manual_mode_and_backs_off() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    // HA 2024.3 answers 500 for an option the select does not offer.
    ha.set_options(MANUAL, &["Stop Charge and Discharge", "Force Discharge"]);
    let (mut c, shared) = controller(&ha, false);
    let Outcome::Failed { wanted, error } = c.tick(t0()).await else {
        panic!("the write must fail")
    };
    assert_eq!(wanted, Mode::ForceCharge);
    assert!(
        error
            .starts_with("select.solax_manual_mode_select answered 500: 500 Internal Server Error"),
        "{error}"
    );
    // One write, never the second: the use mode stays Self Use.
    assert_eq!(writes(&ha), [pair(MANUAL, "Force Charge")]);
    assert_eq!(ha.state_of(USE_MODE), "Self Use Mode");
    let failure = shared.status.borrow().failure.clone().unwrap();
    assert_eq!(
        failure.message,
        format!("inverter is in Self Use Mode / Stop Charge and Discharge, FluxION wanted Force Charge: {error}")
    );
    assert_eq!(failure.at, t0());
    assert_eq!(failure.retry_at, Some(t0() + Duration::seconds(60)));
    // Before the back-off ends nothing is written; then one attempt, then twice as long.
    let t1 = t0() + Duration::seconds(30);
    soc(&ha, "52", t1);
    assert_eq!(
        c.tick(t1).await,
        Outcome::BackingOff {
            wanted: Mode::ForceCharge,
            until: t0() + Duration::seconds(60)
        }
    );
    assert_eq!(ha.calls().len(), 1);
    let t2 = t0() + Duration::seconds(60);
    soc(&ha, "52", t2);
    assert!(matches!(c.tick(t2).await, Outcome::Failed { .. }));
    assert_eq!(ha.calls().len(), 2);
    let failure = shared.status.borrow().failure.clone().unwrap();
    assert_eq!(failure.attempts, 2);
    assert_eq!(failure.retry_at, Some(t2 + Duration::seconds(120)));
    assert_eq!(ha.state_of(USE_MODE), "Self Use Mode");
    // Fixed in HA: the next attempt succeeds and the banner goes.
    ha.set_options(
        MANUAL,
        &[
            "Stop Charge and Discharge",
            "Force Charge",
            "Force Discharge",
        ],
    );
    let t3 = t2 + Duration::seconds(120);
    soc(&ha, "52", t3);
    assert_eq!(c.tick(t3).await, Outcome::Changed(Mode::ForceCharge));
    assert!(shared.status.borrow().failure.is_none());
    assert_eq!(ha.state_of(USE_MODE), "Manual Mode");
}

#[tokio::test]
async fn an_empty_answer_is_a_failed_write() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    // The manual select takes no write: HA answers 200 with no changed state.
    ha.ignore_writes(MANUAL);
    let (mut c, shared) = controller(&ha, false);
    let Outcome::Failed { error, .. } = c.tick(t0()).await else {
        panic!("an empty answer must fail")
    };
    assert_eq!(
        error,
        "select.solax_manual_mode_select was not set to \"Force Charge\": home assistant \
         answered 200 with [] (no state changed: unknown entity?)"
    );
    assert_eq!(writes(&ha), [pair(MANUAL, "Force Charge")]);
    assert_eq!(ha.state_of(USE_MODE), "Self Use Mode");
    assert!(shared.status.borrow().failure.is_some());
    // Straight at the client: an unknown entity answers 200 with [].
    let client = HaClient::new(&ha.api_url(), TOKEN).unwrap();
    let e = client
        .select_option("select.solax_no_such_select", "Force Charge")
        .await
        .unwrap_err();
    assert!(matches!(e, HaError::NotApplied { .. }), "{e}");
}

#[tokio::test]
async fn a_missing_manual_select_is_never_written_around() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    ha.remove(MANUAL);
    let (mut c, shared) = controller(&ha, false);
    let Outcome::Failed { error, .. } = c.tick(t0()).await else {
        panic!("must fail")
    };
    assert!(
        error.contains("entity select.solax_manual_mode_select does not exist"),
        "{error}"
    );
    assert!(ha.calls().is_empty(), "{:?}", ha.calls());
    assert_eq!(ha.state_of(USE_MODE), "Self Use Mode");
    assert!(shared.status.borrow().failure.is_some());
}

#[tokio::test]
async fn a_write_that_times_out_stops_the_transaction() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    // HA acts on the manual select only after 1 s; the client waits 300 ms.
    ha.slow_writes(MANUAL, std::time::Duration::from_millis(1000));
    let (mut c, _) = controller(&ha, false);
    let Outcome::Failed { error, .. } = c.tick(t0()).await else {
        panic!("must fail")
    };
    assert_eq!(
        error,
        "select.solax_manual_mode_select did not answer within 0.3 s"
    );
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(writes(&ha), [pair(MANUAL, "Force Charge")]);
    // The late write lands, but under Self Use it does nothing: never Manual Mode.
    assert_eq!(ha.state_of(MANUAL), "Force Charge");
    assert_eq!(ha.state_of(USE_MODE), "Self Use Mode");
}

#[tokio::test]
async fn a_failed_switch_between_forced_modes_hands_back() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    let (mut c, shared) = controller(&ha, false);
    assert_eq!(c.tick(t0()).await, Outcome::Changed(Mode::ForceCharge));
    ha.clear_calls();
    // Now the plan wants Force Discharge, which the select no longer offers: staying in
    // Force Charge is a mode nobody wants, so FluxION hands back to Self Use.
    ha.set_options(MANUAL, &["Stop Charge and Discharge", "Force Charge"]);
    let later = t0() + Duration::seconds(301);
    soc(&ha, "58", later);
    dear_now(&ha, later);
    let Outcome::Failed { wanted, error } = c.tick(later).await else {
        panic!("must fail")
    };
    assert_eq!(wanted, Mode::ForceDischarge);
    assert!(error.ends_with("; handed back to Self Use Mode"), "{error}");
    assert_eq!(
        writes(&ha),
        [
            pair(MANUAL, "Force Discharge"),
            pair(USE_MODE, "Self Use Mode")
        ]
    );
    assert_eq!(ha.state_of(USE_MODE), "Self Use Mode");
    let failure = shared.status.borrow().failure.clone().unwrap();
    assert_eq!(failure.inverter, "Self Use Mode / Force Charge");
}

#[tokio::test]
async fn the_fallback_is_retried_until_self_use_reads_back() {
    let ha = FakeHa::start();
    selects(&ha, "Manual Mode", "Force Discharge", t0());
    ha.set("sensor.solax_battery_capacity", "unavailable", None, t0());
    // Supervisor answers 502 while core restarts.
    ha.set_core_down(true);
    let (mut c, shared) = controller(&ha, false);
    let Outcome::Blocked(reason) = c.tick(t0()).await else {
        panic!("must block")
    };
    assert!(reason.contains("answered 502"), "{reason}");
    let failure = shared.status.borrow().failure.clone().unwrap();
    assert_eq!(failure.wanted, Mode::SelfUse);
    assert!(
        failure.error.contains("cannot read the mode selects"),
        "{failure:?}"
    );
    assert_eq!(shared.status.borrow().wanted_mode, Some(Mode::SelfUse));
    // Core is back, the SOC still unavailable: once the back-off is over Self Use is sent
    // again, read back, and only then counts as done.
    ha.set_core_down(false);
    let t1 = t0() + Duration::seconds(30);
    assert!(matches!(c.tick(t1).await, Outcome::Blocked(_)));
    assert!(ha.calls().is_empty(), "still backing off");
    let t2 = t0() + Duration::seconds(60);
    assert!(matches!(c.tick(t2).await, Outcome::Blocked(_)));
    assert_eq!(
        writes(&ha),
        [
            pair(USE_MODE, "Self Use Mode"),
            pair(MANUAL, "Stop Charge and Discharge")
        ]
    );
    assert_eq!(ha.state_of(USE_MODE), "Self Use Mode");
    assert!(shared.status.borrow().failure.is_none());
    let t3 = t2 + Duration::seconds(60);
    assert!(matches!(c.tick(t3).await, Outcome::Blocked(_)));
    assert_eq!(ha.calls().len(), 2, "done: nothing more is written");
}

#[tokio::test]
async fn start_in_manual_mode_without_prices_hands_back() {
    let ha = FakeHa::start();
    // A previous run crashed in Force Discharge; the price sensor has no prices yet.
    selects(&ha, "Manual Mode", "Force Discharge", t0());
    ha.set(PRICE, "unknown", Some(json!({})), t0());
    let (mut c, shared) = controller(&ha, false);
    let Outcome::Blocked(reason) = c.tick(t0()).await else {
        panic!("must block")
    };
    assert!(reason.contains("no price for the current slot"), "{reason}");
    assert_eq!(
        writes(&ha),
        [
            pair(USE_MODE, "Self Use Mode"),
            pair(MANUAL, "Stop Charge and Discharge")
        ]
    );
    let status = shared.status.borrow().clone();
    assert_eq!(status.current_mode, Some(Mode::SelfUse));
    assert_eq!(
        status.inverter.as_deref(),
        Some("Self Use Mode / Stop Charge and Discharge")
    );
}

#[tokio::test]
async fn hold_is_planned_and_written_where_it_pays() {
    let ha = FakeHa::start();
    hold_now(&ha, t0());
    soc(&ha, "45", t0());
    let (mut c, shared) = controller_with(&ha, false, &HOLD_SETTINGS);
    assert_eq!(c.tick(t0()).await, Outcome::Changed(Mode::Hold));
    // The manual select already reads Stop Charge and Discharge: only the use mode changes.
    assert_eq!(writes(&ha), [pair(USE_MODE, "Manual Mode")]);
    let status = shared.status.borrow().clone();
    assert_eq!(status.current_mode, Some(Mode::Hold));
    let plan = status.plan.unwrap();
    assert!(
        plan.slots[..8].iter().all(|s| s.mode == Mode::Hold),
        "{plan:?}"
    );
    assert!(
        plan.slots[8..20].iter().all(|s| s.mode == Mode::SelfUse),
        "{plan:?}"
    );
}

#[tokio::test]
async fn the_stop_hands_back_from_every_forced_mode() {
    for (mode, setup, start_soc, settings) in [
        (
            Mode::ForceCharge,
            cheap_now as fn(&FakeHa, DateTime<Utc>),
            "45",
            &[][..],
        ),
        // Enough to sell in every dear slot, so discharging now is not a tie.
        (Mode::ForceDischarge, dear_now, "58", &[]),
        (Mode::Hold, hold_now, "45", &HOLD_SETTINGS),
    ] {
        let ha = FakeHa::start();
        setup(&ha, t0());
        soc(&ha, start_soc, t0());
        let (mut c, _) = controller_with(&ha, false, settings);
        assert_eq!(c.tick(t0()).await, Outcome::Changed(mode));
        ha.clear_calls();
        let HandBack::Done(read_back) = c.hand_back(std::time::Duration::from_secs(3)).await else {
            panic!("{mode}: no hand-back")
        };
        assert_eq!(read_back.mode(), Some(Mode::SelfUse));
        let manual = if mode == Mode::Hold {
            vec![]
        } else {
            vec![pair(MANUAL, "Stop Charge and Discharge")]
        };
        let mut expected = vec![pair(USE_MODE, "Self Use Mode")];
        expected.extend(manual);
        assert_eq!(writes(&ha), expected, "{mode}");
    }
}

#[tokio::test]
async fn the_stop_keeps_or_writes_nothing_when_told() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    let (mut c, _) = controller_with(&ha, false, &[("FLUXION_CONTROL_STOP_MODE", "keep")]);
    assert_eq!(c.tick(t0()).await, Outcome::Changed(Mode::ForceCharge));
    ha.clear_calls();
    assert_eq!(
        c.hand_back(std::time::Duration::from_secs(3)).await,
        HandBack::Kept
    );
    assert!(ha.calls().is_empty());
    assert_eq!(ha.state_of(USE_MODE), "Manual Mode");

    selects(&ha, "Manual Mode", "Force Discharge", t0());
    let (mut c, _) = controller(&ha, true);
    c.tick(t0()).await;
    assert_eq!(
        c.hand_back(std::time::Duration::from_secs(3)).await,
        HandBack::Debug
    );
    assert!(ha.calls().is_empty());

    // Not a mode FluxION sets: left alone.
    selects(&ha, "Feedin Priority", "Stop Charge and Discharge", t0());
    let (mut c, _) = controller(&ha, false);
    assert!(matches!(
        c.hand_back(std::time::Duration::from_secs(3)).await,
        HandBack::NotNeeded(_)
    ));
    assert!(ha.calls().is_empty());
}

#[tokio::test]
async fn the_stop_is_bounded_when_home_assistant_hangs() {
    let ha = FakeHa::start();
    cheap_now(&ha, t0());
    let (mut c, _) = controller(&ha, false);
    assert_eq!(c.tick(t0()).await, Outcome::Changed(Mode::ForceCharge));
    ha.slow_writes(USE_MODE, std::time::Duration::from_secs(30));
    let started = std::time::Instant::now();
    let HandBack::Failed(e) = c.hand_back(std::time::Duration::from_secs(3)).await else {
        panic!("a hung write cannot hand back")
    };
    assert!(
        started.elapsed() < std::time::Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
    assert!(e.contains("did not answer within 1 s"), "{e}");
}
