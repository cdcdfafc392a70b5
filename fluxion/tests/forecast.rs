//! A plan that fits a real household, against the fake Home Assistant (core 2024.3): the
//! Solcast PV forecast found by itself, the house load averaged from recorder history (slow
//! and huge history answers survived), prices in EUR/MWh and ENTSO-e lists read, an unknown
//! unit or another currency refused with a message, VAT and a fee schedule applied, the value
//! against Self Use shown and exported, and `sensor.fluxion_*` published.

mod support;

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use fluxion::control::Outcome;
use fluxion::forecast::SOLCAST_ENTITIES;
use serde_json::{json, Value};
use support::fake_ha::FakeHa;
use support::household::{load_history, season, solcast_attributes};

const PRICE: &str = "sensor.current_spot_electricity_price_15min";
const LOAD: &str = "sensor.solax_house_load";
const TZ: chrono_tz::Tz = chrono_tz::Europe::Prague;

/// 08:00 in Prague on the spring fixture day.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-04-10T06:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 4, d).unwrap()
}

/// Keeps the Solax integration fresh at `at` (core 2024.3 judges by its updates).
fn fresh(ha: &FakeHa, soc: &str, at: DateTime<Utc>) {
    ha.set("sensor.solax_battery_capacity", soc, None, at);
    let load = ha.state_json(LOAD)["state"].as_str().unwrap().to_string();
    let next = if load == "612" { "615" } else { "612" };
    ha.set(LOAD, next, None, at);
}

/// A Home Assistant in euros with the spring day's ENTSO-e prices (EUR/MWh), Solcast's two
/// sensors and seven days of house load history.
fn spring_ha() -> FakeHa {
    let ha = FakeHa::start();
    ha.set_currency("EUR");
    ha.set(
        PRICE,
        "95.0",
        Some(support::fixtures::price_attributes("spring_pv")),
        t0(),
    );
    let s = season("spring_pv");
    for (entity, d) in SOLCAST_ENTITIES.iter().zip([10, 11]) {
        ha.set(
            entity,
            "30.0",
            Some(solcast_attributes(day(d), TZ, s)),
            t0(),
        );
    }
    ha.record_history(LOAD, &load_history(day(10), 7, TZ, s));
    fresh(&ha, "40", t0());
    ha
}

fn controller(
    ha: &FakeHa,
    extra: &[(&str, &str)],
) -> (
    fluxion::control::Controller,
    std::sync::Arc<fluxion::control::Shared>,
) {
    support::controller_for(ha, true, extra, StdDuration::from_secs(3))
}

/// Index of the slot starting at local `hh:mm` on the first day.
fn slot_at(plan: &fluxion::control::PlanView, hhmm: &str) -> usize {
    let t = DateTime::parse_from_rfc3339(&format!("2025-04-10T{hhmm}:00+02:00")).unwrap();
    plan.slots.iter().position(|s| s.start == t).unwrap()
}

#[tokio::test]
async fn solcast_is_found_history_averaged_and_mwh_converted() {
    let ha = spring_ha();
    let (mut c, shared) = controller(&ha, &[]);
    let outcome = c.tick(t0()).await;
    assert!(!matches!(outcome, Outcome::Blocked(_)), "{outcome:?}");
    let status = shared.status.borrow().clone();
    assert!(status.notes.is_empty(), "{:?}", status.notes);
    let plan = status.plan.unwrap();
    // 08:00 on the 10th to the end of the 11th.
    assert_eq!(plan.slots.len(), 16 * 4 + 96);
    // 128 EUR/MWh (08:00) is 0.128 EUR/kWh.
    assert!(
        (plan.slots[0].spot - 0.128).abs() < 1e-12,
        "{:?}",
        plan.slots[0]
    );
    assert_eq!(plan.currency.as_ref().unwrap().symbol, "€");
    assert!(
        plan.pv_source.contains(SOLCAST_ENTITIES[0]),
        "{}",
        plan.pv_source
    );
    // Noon: PV from the Solcast half hour, a surplus over the house.
    let noon = slot_at(&plan, "13:00");
    let solcast = solcast_attributes(day(10), TZ, season("spring_pv"));
    let half_hour = solcast["detailedForecast"][26]["pv_estimate"]
        .as_f64()
        .unwrap();
    assert!((plan.slots[noon].pv_kwh - half_hour * 0.25).abs() < 1e-9);
    assert!(
        plan.slots[noon].net_load_kwh < -0.5,
        "{:?}",
        plan.slots[noon]
    );
    // The load of 13:00-13:15 is the mean of that quarter hour over the seven days: here
    // every minute is one row, so the plain mean of the rows is the time-weighted one.
    let rows = load_history(day(10), 7, TZ, season("spring_pv"));
    let mut watts = Vec::new();
    for (t, w) in &rows {
        let local = t.with_timezone(&TZ).format("%H:%M").to_string();
        if ("13:00".."13:15").contains(&local.as_str()) {
            watts.push(w.parse::<f64>().unwrap());
        }
    }
    assert_eq!(watts.len(), 7 * 15);
    let expected = watts.iter().sum::<f64>() / watts.len() as f64 / 1000.0 * 0.25;
    let got = plan.slots[noon].load_kwh;
    assert!((got - expected).abs() < 1e-9, "{got} vs {expected}");
    assert!(plan.load_source.contains("7 days"), "{}", plan.load_source);
    // One request per day, as the recorder API is asked.
    let requests = ha.history_requests();
    assert_eq!(requests.len(), 7, "{requests:?}");
    for r in &requests {
        for key in [
            "filter_entity_id=sensor.solax_house_load",
            "end_time=",
            "minimal_response=",
            "no_attributes=",
        ] {
            assert!(r.contains(key), "{r}");
        }
    }
    assert!(
        requests[0].starts_with("2025-04-08T22:00:00+00:00?"),
        "{}",
        requests[0]
    );
    // The next ticks use the cached days; the next day reads only the new one.
    for at in [t0() + Duration::seconds(60), t0() + Duration::hours(2)] {
        fresh(&ha, "41", at);
        c.tick(at).await;
    }
    assert_eq!(ha.history_requests().len(), 7);
    let tomorrow = t0() + Duration::hours(24);
    fresh(&ha, "41", tomorrow);
    c.tick(tomorrow).await;
    let requests = ha.history_requests();
    assert_eq!(requests.len(), 8);
    assert!(
        requests[7].starts_with("2025-04-09T22:00:00+00:00?"),
        "{}",
        requests[7]
    );
}

#[tokio::test]
async fn a_slow_history_falls_back_with_a_note_and_is_retried_after_an_hour() {
    let ha = spring_ha();
    // The client waits 300 ms, a history request twice that; the recorder takes 2 s.
    ha.slow_history(StdDuration::from_secs(2));
    let (mut c, shared) = support::controller_for(
        &ha,
        true,
        &[("FLUXION_PLAN_EXPECTED_NET_LOAD_KW", "0.8")],
        StdDuration::from_millis(300),
    );
    let started = std::time::Instant::now();
    assert!(!matches!(c.tick(t0()).await, Outcome::Blocked(_)));
    assert!(started.elapsed() < StdDuration::from_millis(1800));
    let status = shared.status.borrow().clone();
    let note = status.notes.join("\n");
    assert!(
        note.contains("no load forecast (history of sensor.solax_house_load for 2025-04-09: home assistant at")
            && note.contains("did not answer within 0.6 s")
            && note.contains("planning with plan.expected_net_load_kw (0.8 kW)"),
        "{note}"
    );
    let plan = status.plan.unwrap();
    assert!((plan.slots[0].load_kwh - 0.2).abs() < 1e-12);
    assert_eq!(ha.history_requests().len(), 1);
    // Not asked again within the hour; after it, and answered quickly, the profile is used.
    let t1 = t0() + Duration::minutes(30);
    fresh(&ha, "41", t1);
    c.tick(t1).await;
    assert_eq!(ha.history_requests().len(), 1);
    ha.state.lock().unwrap().history_delay = None;
    // Each tick reads for at most 0.6 s (twice the client's timeout): the rest follows on the
    // next ticks.
    for i in 0..4 {
        let t = t0() + Duration::seconds(3600 + 60 * i);
        fresh(&ha, "41", t);
        c.tick(t).await;
    }
    assert_eq!(ha.history_requests().len(), 1 + 7);
    let status = shared.status.borrow().clone();
    assert!(status.notes.is_empty(), "{:?}", status.notes);
    assert!((status.plan.unwrap().slots[0].load_kwh - 0.2).abs() > 1e-6);
}

#[tokio::test]
async fn a_huge_history_is_not_read() {
    let ha = spring_ha();
    // About 18 MB of rows in one day's answer: more than the 16 MiB FluxION reads.
    ha.huge_history(300_000);
    let (mut c, shared) = support::controller_for(&ha, true, &[], StdDuration::from_secs(10));
    assert!(!matches!(c.tick(t0()).await, Outcome::Blocked(_)));
    let note = shared.status.borrow().notes.join("\n");
    assert!(
        note.contains("answered more than 16 MiB; not read"),
        "{note}"
    );
    assert!(
        note.contains("planning with plan.expected_net_load_kw"),
        "{note}"
    );
}

#[tokio::test]
async fn no_history_and_no_solcast_plan_with_notes() {
    let ha = FakeHa::start();
    ha.set(
        PRICE,
        "2.0",
        Some(support::prices_from_now(t0(), &[(96, 2.0)])),
        t0(),
    );
    fresh(&ha, "40", t0());
    let (mut c, shared) = controller(&ha, &[]);
    assert!(!matches!(c.tick(t0()).await, Outcome::Blocked(_)));
    let notes = shared.status.borrow().notes.join("\n");
    assert!(
        notes.contains(
            "no PV forecast: sensor.solcast_pv_forecast_forecast_today (Solcast) does not exist"
        ),
        "{notes}"
    );
    // The fake's recorder has the few changes this test made: not 12 hours.
    assert!(
        notes.contains(
            "sensor.solax_house_load has less than 12 hours of history in the last 7 days"
        ),
        "{notes}"
    );
}

#[tokio::test]
async fn a_template_pv_list_in_watts_is_read() {
    let ha = spring_ha();
    let start = t0();
    let list: Vec<Value> = (0..8)
        .map(|h| json!({"start": (start + Duration::hours(h)).to_rfc3339(), "value": 1000.0 * h as f64}))
        .collect();
    ha.set(
        "sensor.pv_template",
        "ok",
        Some(json!({"unit_of_measurement": "W", "forecast": list})),
        t0(),
    );
    let (mut c, shared) = controller(
        &ha,
        &[("FLUXION_FORECAST_PV_ENTITIES", r#"["sensor.pv_template"]"#)],
    );
    c.tick(t0()).await;
    let plan = shared.status.borrow().plan.clone().unwrap();
    // 3 kW from 11:00: 0.75 kWh a quarter hour.
    assert!((plan.slots[slot_at(&plan, "11:15")].pv_kwh - 0.75).abs() < 1e-9);
    assert_eq!(plan.pv_source, "sensor.pv_template (pv_estimate)");
}

#[tokio::test]
async fn entso_e_prices_are_read() {
    let ha = spring_ha();
    let (mut c, shared) = controller(&ha, &[]);
    c.tick(t0()).await;
    let plan = shared.status.borrow().plan.clone().unwrap();
    // The hourly ENTSO-e price of 13:00 (15 EUR/MWh) in each of its four quarter hours.
    let i = slot_at(&plan, "13:00");
    for s in &plan.slots[i..i + 4] {
        assert!((s.spot - 0.015).abs() < 1e-12, "{s:?}");
    }
}

#[tokio::test]
async fn an_unknown_unit_or_another_currency_is_refused_with_a_message() {
    for (unit, currency, says) in [
        (
            "EUR/kW",
            "EUR",
            "is in \"EUR/kW\": \"kw\" is not an energy unit FluxION reads",
        ),
        (
            "EUR/kWh",
            "CZK",
            "is in \"EUR/kWh\": prices in EUR, but Home Assistant's currency is CZK",
        ),
    ] {
        let ha = spring_ha();
        ha.set_currency(currency);
        let mut attrs = support::fixtures::price_attributes("spring_pv");
        attrs["unit_of_measurement"] = json!(unit);
        ha.set(PRICE, "95.0", Some(attrs), t0());
        let (mut c, shared) = controller(&ha, &[]);
        let Outcome::Blocked(reason) = c.tick(t0()).await else {
            panic!("{unit} in {currency} must not be planned")
        };
        assert!(
            reason.starts_with("no price for the current slot: spot price entity"),
            "{reason}"
        );
        assert!(reason.contains(says), "{reason}");
        assert_eq!(
            shared.status.borrow().blocked.as_deref(),
            Some(reason.as_str())
        );
        assert!(shared.status.borrow().plan.is_none());
    }
}

#[tokio::test]
async fn vat_and_the_fee_schedule_are_applied() {
    let ha = spring_ha();
    let schedule = r#"[{"from": "06:00", "to": "22:00", "buy_fee": 0.05, "days": "mon-fri"}]"#;
    let (mut c, shared) = controller(
        &ha,
        &[
            ("FLUXION_PRICING_VAT_PERCENT", "21"),
            ("FLUXION_PRICING_GRID_FEE_BUY", "0.02"),
            ("FLUXION_PRICING_GRID_FEE_SELL", "0.01"),
            ("FLUXION_PRICING_GRID_FEE_SCHEDULE", schedule),
        ],
    );
    c.tick(t0()).await;
    let plan = shared.status.borrow().plan.clone().unwrap();
    // Thursday 08:00: in the window.
    let s = &plan.slots[0];
    assert!(
        (s.buy - (0.128 + 0.02 + 0.05) * 1.21).abs() < 1e-12,
        "{s:?}"
    );
    assert!((s.sell - (0.128 - 0.01)).abs() < 1e-12, "{s:?}");
    // 23:00: outside it.
    let s = &plan.slots[slot_at(&plan, "23:00")];
    assert!((s.buy - (s.spot + 0.02) * 1.21).abs() < 1e-12, "{s:?}");
}

#[tokio::test]
async fn the_value_against_self_use_is_shown_and_exported() {
    let ha = spring_ha();
    let (mut c, shared) = controller(&ha, &[]);
    c.tick(t0()).await;
    let status = shared.status.borrow().clone();
    let plan = status.plan.clone().unwrap();
    let value = status.value.clone().unwrap();
    assert!((value.savings - (plan.value - plan.self_use_value)).abs() < 1e-12);
    assert!(value.savings > 0.0, "{value:?}");
    assert_eq!(
        value.text,
        format!(
            "saves {:.2} € over the next 40 h against Self Use only",
            value.savings
        )
    );
    // The plan's own slots add up to its value.
    let summed = plan.slots.iter().map(|s| s.cash).sum::<f64>() + plan.terminal_value;
    assert!((summed - plan.value).abs() < 1e-9);
    // /export carries both.
    let config = std::sync::Arc::new(support::config_for(&ha, true, &[]));
    let app = fluxion::web::router(shared.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let body =
        tokio::task::spawn_blocking(move || support::process::http_get(addr, "/export").unwrap())
            .await
            .unwrap();
    let json: Value = serde_json::from_str(body.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["status"]["value"]["text"], json!(value.text));
    assert_eq!(json["plan"]["self_use_value"], json!(plan.self_use_value));
    assert_eq!(json["plan"]["savings"], json!(plan.savings));
}

#[tokio::test]
async fn fluxion_entities_are_published_each_tick_in_debug_mode_too() {
    let ha = spring_ha();
    let (mut c, shared) = controller(&ha, &[]);
    c.tick(t0()).await;
    let t1 = t0() + Duration::seconds(60);
    fresh(&ha, "41", t1);
    c.tick(t1).await;
    let status = shared.status.borrow().clone();
    let modes = ha.posted("sensor.fluxion_mode");
    assert_eq!(modes.len(), 2);
    assert_eq!(
        modes[1]["state"],
        json!(status.wanted_mode.unwrap().label())
    );
    assert_eq!(modes[1]["attributes"]["debug_mode"], json!(true));
    let savings = ha.posted("sensor.fluxion_plan_savings");
    assert_eq!(savings.len(), 2);
    let last = &savings[1];
    let value = status.value.unwrap();
    assert_eq!(last["state"], json!(format!("{:.2}", value.savings)));
    assert_eq!(last["attributes"]["unit_of_measurement"], "EUR");
    assert_eq!(last["attributes"]["summary"], json!(value.text));
    let runs = last["attributes"]["plan"].as_array().unwrap();
    let slots: u64 = runs.iter().map(|r| r["slots"].as_u64().unwrap()).sum();
    assert_eq!(slots as usize, status.plan.unwrap().slots.len());
    assert!(serde_json::to_string(&last["attributes"]).unwrap().len() < 16384);
    let next = ha.posted("sensor.fluxion_next_change");
    assert_eq!(next[1]["attributes"]["device_class"], "timestamp");
    match status.next_changes.first() {
        Some(c) => assert_eq!(next[1]["state"], json!(c.at.to_rfc3339())),
        None => assert_eq!(next[1]["state"], "unknown"),
    }
    // Home Assistant now has them, as any entity.
    assert_eq!(
        ha.state_json("sensor.fluxion_plan_savings")["state"],
        last["state"]
    );
    // Turned off: nothing is written.
    let ha = spring_ha();
    let (mut c, _) = controller(&ha, &[("FLUXION_PUBLISH_ENTITIES", "false")]);
    c.tick(t0()).await;
    assert!(ha.posted("sensor.fluxion_mode").is_empty());
}

#[test]
fn a_long_plan_is_cut_to_fit_the_recorder() {
    use fluxion::control::{published_states, PlanSlotView, PlanView, Status, ValueSummary};
    use fluxion::plan::Mode;
    // A plan switching every slot for four days: 384 runs.
    let slots: Vec<PlanSlotView> = (0..384)
        .map(|i| PlanSlotView {
            start: t0() + Duration::minutes(15 * i),
            mode: if i % 2 == 0 {
                Mode::ForceCharge
            } else {
                Mode::Hold
            },
            spot: 0.1,
            buy: 0.1,
            sell: 0.1,
            fixed_price: false,
            pv_kwh: 0.0,
            load_kwh: 0.0,
            net_load_kwh: 0.0,
            grid_kwh: 0.0,
            soc_start: 50.0,
            soc_end: 50.0,
            cash: 0.0,
        })
        .collect();
    let plan = PlanView {
        generated_at: t0(),
        start_soc: 50.0,
        min_soc: 10.0,
        max_soc: 100.0,
        currency: None,
        cash: 0.0,
        terminal_value: 0.0,
        terminal_value_per_kwh: 0.0,
        value: 1.0,
        self_use_value: 0.0,
        savings: 1.0,
        hours: 96.0,
        switches: 384,
        switch_cost: 0.0,
        pv_source: "none".into(),
        load_source: "none".into(),
        slots,
    };
    let status = Status {
        value: Some(ValueSummary {
            plan: 1.0,
            self_use: 0.0,
            savings: 1.0,
            hours: 96.0,
            currency: None,
            text: "saves 1.00 over the next 96 h against Self Use only".into(),
        }),
        plan: Some(plan),
        ..Status::default()
    };
    let states = published_states(&status);
    let (_, state, attrs) = &states[2];
    assert_eq!(state, "1.00");
    let text = serde_json::to_string(attrs).unwrap();
    assert!(text.len() <= 8 * 1024, "{}", text.len());
    let runs = attrs["plan"].as_array().unwrap().len();
    assert!(runs > 20 && runs < 384, "{runs}");
    assert_eq!(
        attrs["plan_truncated"],
        json!(format!("first {runs} of 384 runs"))
    );
}
