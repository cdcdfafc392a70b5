//! The `fluxion-main` binary as the container runs it: version line, options errors, health
//! endpoint and prompt, clean exit on SIGTERM/SIGINT, and what a real SIGTERM (or SIGKILL and a
//! restart) leaves the inverter in, against the fake Home Assistant (core 2024.3).

mod support;

use std::time::{Duration, Instant};

use support::fake_ha::{FakeHa, TOKEN};
use support::process::{http_get, Service};

const PRICE: &str = "sensor.current_spot_electricity_price_15min";
const SOC: &str = "sensor.solax_battery_capacity";
const USE_MODE: &str = "select.solax_charger_use_mode";
const MANUAL: &str = "select.solax_manual_mode_select";

#[test]
fn version_is_one_line_with_name_version_and_target() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fluxion-main"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let expected = format!(
        "fluxion-main {} ({})\n",
        env!("CARGO_PKG_VERSION"),
        current_target()
    );
    assert_eq!(text, expected);
}

/// The triple the test binary itself was built for, which is the binary's too.
fn current_target() -> String {
    let arch = std::env::consts::ARCH;
    let env = if cfg!(target_env = "musl") {
        "musl"
    } else {
        "gnu"
    };
    format!("{arch}-unknown-linux-{env}")
}

#[test]
fn malformed_options_json_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let opts = dir.path().join("options.json");
    std::fs::write(&opts, "{\"battery\": ").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fluxion-main"))
        .arg("--options")
        .arg(&opts)
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("options.json is not valid JSON"), "{err}");
}

#[test]
fn invalid_values_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let opts = dir.path().join("options.json");
    std::fs::write(
        &opts,
        r#"{"battery": {"min_soc": 95, "max_soc": 90, "capacity_kwh": 0}}"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fluxion-main"))
        .arg("--options")
        .arg(&opts)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("battery.min_soc (95) must be below battery.max_soc (90)"),
        "{err}"
    );
    assert!(
        err.contains("battery.capacity_kwh (0) must be above 0"),
        "{err}"
    );
}

fn stops_on(sig: nix::sys::signal::Signal) {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(dir.path(), &[]);
    let health = http_get(service.addr, "/health").unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let sent = Instant::now();
    service.signal(sig);
    let status = service
        .wait(Duration::from_secs(10))
        .expect("fluxion-main did not exit");
    let took = sent.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(2), "took {took:?} to stop");
}

#[test]
fn sigterm_stops_cleanly_within_two_seconds() {
    stops_on(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn sigint_stops_cleanly_within_two_seconds() {
    stops_on(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn controls_the_fake_ha_and_stops_on_sigterm_with_a_stream_open() {
    use support::process::http_stream_first_event;
    let ha = support::charging_ha("40");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}", ha.addr);
    let mut service = Service::start(
        dir.path(),
        &[
            ("HA_URL", &url),
            ("HA_TOKEN", TOKEN),
            ("FLUXION_CONTROL_DEBUG_MODE", "false"),
            ("FLUXION_CONTROL_UPDATE_INTERVAL_S", "5"),
        ],
    );
    service
        .wait_for_log("option=\"Manual Mode\"", Duration::from_secs(30))
        .expect("fluxion-main never switched to Manual Mode");
    let calls: Vec<_> = ha
        .calls()
        .into_iter()
        .map(|c| (c.data["entity_id"].clone(), c.data["option"].clone()))
        .collect();
    assert_eq!(
        calls,
        [
            (
                serde_json::json!("select.solax_manual_mode_select"),
                serde_json::json!("Force Charge")
            ),
            (
                serde_json::json!("select.solax_charger_use_mode"),
                serde_json::json!("Manual Mode")
            ),
        ]
    );
    // The status is published right after the writes; wait for it before streaming.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http_get(service.addr, "/api/status")
        .unwrap()
        .contains("\"wanted_mode\":\"ForceCharge\"")
    {
        assert!(
            Instant::now() < deadline,
            "status never showed the plan's mode"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A dashboard's open event stream must not hold up shutdown.
    let (event, _stream) = http_stream_first_event(service.addr, "/stream").unwrap();
    assert!(event.contains("event: status"), "{event}");
    assert!(event.contains("\"wanted_mode\":\"ForceCharge\""), "{event}");
    let sent = Instant::now();
    service.signal(nix::sys::signal::Signal::SIGTERM);
    let status = service
        .wait(Duration::from_secs(10))
        .expect("fluxion-main did not exit");
    assert!(status.success(), "{status:?}");
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
}

/// Starts `fluxion-main` in control mode against `ha`, plus `extra` settings.
fn control_service(ha: &FakeHa, dir: &std::path::Path, extra: &[(&str, &str)]) -> Service {
    let url = format!("http://{}", ha.addr);
    let mut env = vec![
        ("HA_URL", url.as_str()),
        ("HA_TOKEN", TOKEN),
        ("FLUXION_CONTROL_DEBUG_MODE", "false"),
        ("FLUXION_CONTROL_UPDATE_INTERVAL_S", "5"),
    ];
    env.extend_from_slice(extra);
    Service::start(dir, &env)
}

/// Sends SIGTERM, waits for a successful exit and returns how long it took.
fn terminate(service: &mut Service) -> Duration {
    stop_with(service, nix::sys::signal::Signal::SIGTERM)
}

fn stop_with(service: &mut Service, sig: nix::sys::signal::Signal) -> Duration {
    let sent = Instant::now();
    service.signal(sig);
    let status = service
        .wait(Duration::from_secs(10))
        .expect("fluxion-main did not exit");
    assert!(status.success(), "{status:?}");
    sent.elapsed()
}

fn selects(ha: &FakeHa) -> (String, String) {
    (ha.state_of(USE_MODE), ha.state_of(MANUAL))
}

fn self_use() -> (String, String) {
    ("Self Use Mode".into(), "Stop Charge and Discharge".into())
}

/// SIGTERM for the forced modes, SIGINT (Ctrl-C in a terminal) for Hold: the same stop.
#[test]
fn sigterm_hands_back_to_self_use_from_every_forced_mode_within_five_seconds() {
    use nix::sys::signal::Signal::{SIGINT, SIGTERM};
    let now = chrono::Utc::now();
    let hold = [
        ("FLUXION_PLAN_EXPECTED_NET_LOAD_KW", "1"),
        ("FLUXION_PRICING_GRID_FEE_SELL", "0.5"),
        ("FLUXION_PLAN_TERMINAL_VALUE_PER_KWH", "0"),
    ];
    for (manual, prices, soc, extra, sig) in [
        (
            "Force Charge",
            vec![(4, 0.01), (92, 0.30)],
            "40",
            &[][..],
            SIGTERM,
        ),
        (
            "Force Discharge",
            vec![(4, 0.50), (92, 0.01)],
            "60",
            &[],
            SIGTERM,
        ),
        // A cheaper night with a 1 kW house before a dear evening: keep the charge.
        (
            "Stop Charge and Discharge",
            vec![(8, 0.20), (12, 0.50), (76, 0.20)],
            "45",
            &hold,
            SIGINT,
        ),
    ] {
        let ha = FakeHa::start();
        ha.set(
            PRICE,
            "0.2",
            Some(support::prices_from_now(now, &prices)),
            now,
        );
        ha.set(SOC, soc, None, now);
        let dir = tempfile::tempdir().unwrap();
        let mut service = control_service(&ha, dir.path(), extra);
        service
            .wait_for_log("option=\"Manual Mode\"", Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{manual}: never switched to Manual Mode"));
        assert_eq!(selects(&ha), ("Manual Mode".into(), manual.into()));
        let took = stop_with(&mut service, sig);
        assert!(
            took < Duration::from_secs(5),
            "{manual}: took {took:?} to stop"
        );
        assert_eq!(selects(&ha), self_use(), "{manual}: not handed back");
        let line = service
            .wait_for_log("stop: handed back", Duration::from_secs(2))
            .unwrap_or_else(|| panic!("{manual}: no hand-back log line"));
        assert!(
            line.contains("the selects read back Self Use Mode / Stop Charge and Discharge"),
            "{line}"
        );
    }
}

#[test]
fn sigterm_with_stop_mode_keep_leaves_the_inverter() {
    let ha = support::charging_ha("40");
    let dir = tempfile::tempdir().unwrap();
    let mut service = control_service(&ha, dir.path(), &[("FLUXION_CONTROL_STOP_MODE", "keep")]);
    service
        .wait_for_log("option=\"Manual Mode\"", Duration::from_secs(30))
        .expect("never switched to Manual Mode");
    let writes = ha.calls().len();
    terminate(&mut service);
    assert_eq!(ha.calls().len(), writes, "keep must write nothing on stop");
    assert_eq!(selects(&ha), ("Manual Mode".into(), "Force Charge".into()));
    service
        .wait_for_log("stop: control.stop_mode is keep", Duration::from_secs(2))
        .expect("no keep log line");
}

#[test]
fn sigterm_in_debug_mode_writes_nothing() {
    let ha = support::charging_ha("40");
    let now = chrono::Utc::now();
    ha.set(USE_MODE, "Manual Mode", None, now);
    ha.set(MANUAL, "Force Discharge", None, now);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}", ha.addr);
    // Debug mode is the default.
    let mut service = Service::start(dir.path(), &[("HA_URL", &url), ("HA_TOKEN", TOKEN)]);
    service
        .wait_for_log("debug mode: would call", Duration::from_secs(30))
        .expect("no plan");
    terminate(&mut service);
    assert!(ha.calls().is_empty(), "{:?}", ha.calls());
    assert_eq!(
        selects(&ha),
        ("Manual Mode".into(), "Force Discharge".into())
    );
    service
        .wait_for_log(
            "stop: debug mode, nothing is written",
            Duration::from_secs(2),
        )
        .expect("no debug-mode stop line");
}

#[test]
fn after_a_crash_the_restart_hands_back_until_there_is_a_plan() {
    let ha = support::charging_ha("40");
    let dir = tempfile::tempdir().unwrap();
    let mut service = control_service(&ha, dir.path(), &[]);
    service
        .wait_for_log("option=\"Manual Mode\"", Duration::from_secs(30))
        .expect("never switched to Manual Mode");
    // A crash: nothing runs to hand back, the inverter keeps its last mode (Solax's own
    // behaviour).
    service.signal(nix::sys::signal::Signal::SIGKILL);
    service.wait(Duration::from_secs(5)).expect("SIGKILL");
    assert_eq!(selects(&ha), ("Manual Mode".into(), "Force Charge".into()));
    // Restarted with no prices (the price sensor lost its forecast).
    ha.set(
        PRICE,
        "unknown",
        Some(serde_json::json!({})),
        chrono::Utc::now(),
    );
    let mut service = control_service(&ha, dir.path(), &[]);
    let line = service
        .wait_for_log("with no plan yet", Duration::from_secs(30))
        .expect("no recovery at start");
    assert!(
        line.contains("inverter found in Manual Mode / Force Charge"),
        "{line}"
    );
    service
        .wait_for_log(
            "option=\"Stop Charge and Discharge\"",
            Duration::from_secs(10),
        )
        .expect("hand-back not written");
    assert_eq!(selects(&ha), self_use());
    terminate(&mut service);
}

#[test]
fn sigterm_is_bounded_when_home_assistant_hangs() {
    // Accepts connections and never answers, like a core stuck at start-up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            match stream {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}");
    let mut service = Service::start(
        dir.path(),
        &[
            ("HA_URL", &url),
            ("HA_TOKEN", TOKEN),
            ("FLUXION_CONTROL_DEBUG_MODE", "false"),
        ],
    );
    // Let the first tick get stuck waiting for /api/config.
    std::thread::sleep(Duration::from_millis(300));
    let took = terminate(&mut service);
    assert!(took < Duration::from_secs(5), "took {took:?} to stop");
    service
        .wait_for_log("abandoned a tick", Duration::from_secs(2))
        .expect("the stuck tick was not abandoned");
}
