//! The dashboard in a real browser: headless Chromium opens it through a stand-in ingress
//! proxy under a path prefix (without the trailing slash, so only `X-Ingress-Path` can make
//! the relative URLs work) and the plan chart must have been drawn.

mod support;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use support::cdp::Browser;

use support::fake_ha::TOKEN;
use support::ingress::Ingress;
use support::process::{http_get, Service};

/// Chromium on PATH; without it the test is skipped with a printed reason, except under
/// `FLUXION_REQUIRE_TOOLS=1` (.ci/run, the GitLab `integration` job), where it fails.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("FLUXION_REQUIRE_TOOLS").is_ok_and(|v| v == "1" || v == "true") {
            panic!(
                "chromium is not on PATH, and FLUXION_REQUIRE_TOOLS=1 requires this test: \
                 install it with .ci/install-tools (apt-get install chromium)"
            );
        }
        // To the stderr handle, not eprintln!: libtest captures that for a passing test, and
        // the reason would be missing from the job log.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIP browser tests: chromium is not on PATH (apt-get install chromium); this \
             fails under FLUXION_REQUIRE_TOOLS=1"
        );
    }
    found
}

/// fluxion-main against `ha` with `env` added, behind the stand-in ingress proxy.
fn dashboard(
    ha: &support::fake_ha::FakeHa,
    env: &[(&str, &str)],
) -> (tempfile::TempDir, Service, Ingress) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}", ha.addr);
    let mut all = vec![("HA_URL", url.as_str()), ("HA_TOKEN", TOKEN)];
    all.extend_from_slice(env);
    let service = Service::start(dir.path(), &all);
    let ingress = Ingress::start(service.addr);
    (dir, service, ingress)
}

#[test]
fn dashboard_renders_the_plan_under_an_ingress_prefix() {
    let Some(chromium) = chromium() else { return };
    let ha = support::charging_ha("40");
    let (_dir, _service, ingress) = dashboard(&ha, &[]);
    // Wait until the first plan exists, through the proxy.
    let deadline = Instant::now() + Duration::from_secs(30);
    let plan_path = format!("{}/api/plan", support::ingress::PREFIX);
    while !http_get(ingress.addr, &plan_path)
        .unwrap()
        .starts_with("HTTP/1.1 200")
    {
        assert!(Instant::now() < deadline, "no plan within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    // No trailing slash: relative URLs resolve only thanks to the <base> from X-Ingress-Path.
    let mut browser = Browser::launch(&chromium);
    let page = browser.open(&ingress.url());
    let rendered = browser.wait_for(
        &page,
        "document.getElementById('chart') && document.getElementById('chart').dataset.rendered",
        Duration::from_secs(60),
    );
    let dom = browser.eval(&page, "document.documentElement.outerHTML");
    let dom = dom.as_str().unwrap_or_default();
    assert_eq!(
        rendered, "96",
        "the chart must show every planned slot:\n{dom}"
    );
    assert!(
        dom.contains(&format!("<base href=\"{}/\">", support::ingress::PREFIX)),
        "{dom}"
    );
    assert_eq!(
        browser.eval(&page, "document.getElementById('soc').textContent"),
        "40.0 %"
    );
    assert_eq!(
        browser.eval(&page, "document.getElementById('wanted').textContent"),
        "Force charge"
    );
    // Money in the sensor's currency (Kč = CZK), and what the plan saves against Self Use.
    let value = browser.eval(&page, "document.getElementById('value').textContent");
    assert!(
        value.as_str().unwrap_or_default().ends_with(" Kč"),
        "{value}"
    );
    let savings = browser.eval(&page, "document.getElementById('savings').textContent");
    let savings = savings.as_str().unwrap_or_default();
    assert!(
        savings.starts_with("saves ")
            && savings.ends_with(" Kč over the next 24 h against Self Use only"),
        "{savings}"
    );
    // The canvas really has ink on it, not just the attribute.
    let painted = browser.eval(
        &page,
        "(() => { const c = document.getElementById('chart'); \
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
          let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()",
    );
    assert!(
        painted.as_u64().unwrap_or(0) > 1000,
        "canvas is nearly empty: {painted}"
    );
    // A picture for people: FLUXION_SCREENSHOT=path.png keeps one.
    if let Ok(path) = std::env::var("FLUXION_SCREENSHOT") {
        browser.screenshot(&page, std::path::Path::new(&path));
    }
}

#[test]
fn a_failed_write_shows_a_banner_with_the_time() {
    let Some(chromium) = chromium() else { return };
    let ha = support::charging_ha("40");
    // The manual select does not offer Force Charge: core 2024.3 answers 500.
    ha.set_options(
        "select.solax_manual_mode_select",
        &["Stop Charge and Discharge", "Force Discharge"],
    );
    let (_dir, _service, ingress) = dashboard(&ha, &[("FLUXION_CONTROL_DEBUG_MODE", "false")]);
    let status_path = format!("{}/api/status", support::ingress::PREFIX);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let answer = http_get(ingress.addr, &status_path).unwrap();
        if answer.contains("\"failure\":{") {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "no failure in /api/status: {answer}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let body: serde_json::Value =
        serde_json::from_str(status.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let message = body["failure"]["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with(
            "inverter is in Self Use Mode / Stop Charge and Discharge, FluxION wanted Force \
             Charge: select.solax_manual_mode_select answered 500"
        ),
        "{message}"
    );
    assert_eq!(
        ha.state_of("select.solax_charger_use_mode"),
        "Self Use Mode"
    );

    let mut browser = Browser::launch(&chromium);
    let page = browser.open(&ingress.url());
    let banner = browser.wait_for(
        &page,
        "(() => { const b = document.getElementById('failure'); \
          return b && getComputedStyle(b).display !== 'none' ? b.textContent : ''; })()",
        Duration::from_secs(60),
    );
    let banner = banner.as_str().unwrap_or_default().to_string();
    let dom = browser.eval(&page, "document.documentElement.outerHTML");
    assert!(banner.contains(&message), "banner {banner:?}\n{dom}");
    // It says when: the page's clock text (weekday and HH:MM) comes first.
    let when = browser.eval(
        &page,
        "document.querySelector('#failure .when').textContent",
    );
    let when = when.as_str().unwrap_or_default();
    assert!(
        when.len() >= 5 && when.contains(':') && banner.starts_with(when),
        "{when:?} / {banner:?}"
    );
    assert!(banner.contains("(attempt 1, next at "), "{banner}");
    assert_eq!(
        browser.eval(&page, "document.getElementById('mode').textContent"),
        "Self use"
    );
    assert_eq!(
        browser.eval(&page, "document.getElementById('wanted').textContent"),
        "Force charge"
    );
    if let Ok(path) = std::env::var("FLUXION_SCREENSHOT_FAILURE") {
        browser.screenshot(&page, std::path::Path::new(&path));
    }
}

#[test]
fn the_dashboard_shows_pv_and_load_and_refuses_an_unknown_unit() {
    let Some(chromium) = chromium() else { return };
    let ha = support::charging_ha("40");
    // Solcast for today and tomorrow, and a week of house load, around the real clock.
    let tz = chrono_tz::Europe::Prague;
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let s = support::household::season("spring_pv");
    for (entity, d) in fluxion::forecast::SOLCAST_ENTITIES.iter().zip([0, 1]) {
        let attrs =
            support::household::solcast_attributes(today + chrono::Duration::days(d), tz, s);
        ha.set(entity, "30", Some(attrs), chrono::Utc::now());
    }
    ha.record_history(
        "sensor.solax_house_load",
        &support::household::load_history(today, 7, tz, s),
    );
    let (_dir, _service, ingress) = dashboard(&ha, &[("FLUXION_CONTROL_UPDATE_INTERVAL_S", "5")]);
    let mut browser = Browser::launch(&chromium);
    let page = browser.open(&ingress.url());
    let pv = browser.wait_for(
        &page,
        "(() => { const c = document.getElementById('chart'); \
          return c && c.dataset.pv && c.dataset.pv !== '0' ? c.dataset.pv : ''; })()",
        Duration::from_secs(60),
    );
    let pv: usize = pv.as_str().unwrap_or_default().parse().unwrap();
    assert!(pv >= 20, "PV in {pv} slots");
    let note = browser.eval(&page, "document.getElementById('chart-note').textContent");
    let note = note.as_str().unwrap_or_default();
    assert!(
        note.contains("PV: sensor.solcast_pv_forecast_forecast_today")
            && note.contains("load: sensor.solax_house_load history, 7 days"),
        "{note}"
    );
    // The price sensor switches to a unit FluxION cannot read: the banner says so.
    let mut attrs = support::charge_now_prices(chrono::Utc::now(), 4, 92);
    attrs["unit_of_measurement"] = serde_json::json!("EUR/kW");
    ha.set(
        "sensor.current_spot_electricity_price_15min",
        "0.01",
        Some(attrs),
        chrono::Utc::now(),
    );
    let banner = browser.wait_for(
        &page,
        "(() => { const b = document.getElementById('blocked'); \
          return b && getComputedStyle(b).display !== 'none' ? b.textContent : ''; })()",
        Duration::from_secs(60),
    );
    let banner = banner.as_str().unwrap_or_default();
    assert!(
        banner.starts_with("Not following the plan: no price for the current slot: spot price entity sensor.current_spot_electricity_price_15min is in \"EUR/kW\""),
        "{banner}"
    );
}
