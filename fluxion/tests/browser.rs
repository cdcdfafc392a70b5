//! The dashboard in a real browser: headless Chromium opens it through a stand-in ingress
//! proxy under a path prefix (without the trailing slash, so only `X-Ingress-Path` can make
//! the relative URLs work) and the plan chart must have been drawn.

mod support;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use support::cdp::Browser;

use support::fake_ha::{FakeHa, TOKEN};
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
        eprintln!(
            "SKIP: chromium is not on PATH (apt-get install chromium); this fails under \
             FLUXION_REQUIRE_TOOLS=1"
        );
    }
    found
}

#[test]
fn dashboard_renders_the_plan_under_an_ingress_prefix() {
    let Some(chromium) = chromium() else { return };
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
    let service = Service::start(dir.path(), &[("HA_URL", &url), ("HA_TOKEN", TOKEN)]);
    let ingress = Ingress::start(service.addr);
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
