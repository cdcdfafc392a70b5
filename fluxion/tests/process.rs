//! The `fluxion-main` binary as the container runs it: version line, options errors, health
//! endpoint and prompt, clean exit on SIGTERM/SIGINT.

mod support;

use std::time::{Duration, Instant};

use support::process::{http_get, Service};

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
    use support::fake_ha::{FakeHa, TOKEN};
    use support::process::http_stream_first_event;
    let ha = FakeHa::start();
    let now = chrono::Utc::now();
    ha.set(
        "sensor.current_spot_electricity_price",
        "0.01",
        Some(support::charge_now_prices(now, 4, 92)),
        now,
    );
    ha.set("sensor.solax_battery_capacity", "40", None, now);
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
        sent.elapsed() < Duration::from_secs(2),
        "took {:?}",
        sent.elapsed()
    );
}
