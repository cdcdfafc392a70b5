//! The HTTP side: dashboard, JSON API, server-sent events and export, all with relative URLs so
//! they work behind Home Assistant ingress (`X-Ingress-Path`).

use std::{convert::Infallible, net::IpAddr, net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{header, HeaderMap, StatusCode},
    middleware::{self, Next},
    response::{
        sse::{Event, KeepAlive, Sse},
        Html, IntoResponse, Response,
    },
    routing::get,
    Json, Router,
};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use tokio_stream::wrappers::WatchStream;

use crate::config::Config;
use crate::control::Shared;

const INDEX: &str = include_str!("dashboard.html");
const SCRIPT: &str = include_str!("dashboard.js");

/// The only non-loopback peer the Supervisor's ingress proxy connects from.
pub const INGRESS_PROXY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(172, 30, 32, 2));

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    config: Arc<Config>,
}

/// All routes. As an add-on (`config.ha.supervisor`), only the ingress proxy and loopback may
/// connect; serve with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(shared: Arc<Shared>, config: Arc<Config>) -> Router {
    let addon = config.ha.supervisor;
    let app = App { shared, config };
    let router = Router::new()
        .route("/", get(index))
        .route("/app.js", get(script))
        .route("/api/status", get(status))
        .route("/api/plan", get(plan))
        .route("/stream", get(stream))
        .route("/export", get(export))
        .route("/health", get(health))
        .with_state(app);
    if addon {
        router.layer(middleware::from_fn(only_ingress))
    } else {
        router
    }
}

/// True for peers allowed to reach the add-on's web server.
pub fn peer_allowed(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    ip == INGRESS_PROXY || ip.is_loopback()
}

async fn only_ingress(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    if peer_allowed(peer.ip()) {
        next.run(req).await
    } else {
        tracing::warn!(%peer, "refused a connection from outside the ingress proxy");
        (
            StatusCode::FORBIDDEN,
            "only Home Assistant ingress may open this page\n",
        )
            .into_response()
    }
}

/// The ingress prefix from `X-Ingress-Path` (Supervisor sends `/api/hassio_ingress/<token>`).
/// It becomes the page's `<base href>`, so it must be a plain absolute path: one leading `/`,
/// no `//` (`//evil.example` is a host to a browser), no scheme, no `.`/`..` segments and
/// only unreserved characters. Anything else is ignored with a warning.
pub fn ingress_path(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-ingress-path")?;
    let path = value.to_str().ok().filter(|raw| plain_path(raw));
    if path.is_none() {
        tracing::warn!(header = ?value, "ignoring an X-Ingress-Path that is not a plain path");
    }
    path.map(|raw| raw.trim_end_matches('/').to_string())
}

fn plain_path(raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix('/') else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.is_empty()
        || rest.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c))
        })
}

async fn index(headers: HeaderMap) -> Response {
    // A <base> makes every relative URL resolve under the ingress prefix even when the
    // page was opened without a trailing slash; without ingress, the page's own URL is used.
    let base = match ingress_path(&headers) {
        Some(path) => format!("<base href=\"{path}/\">"),
        None => String::new(),
    };
    let html = INDEX.replace("<!--BASE-->", &base);
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        SCRIPT,
    )
        .into_response()
}

async fn status(State(app): State<App>) -> Response {
    Json(app.shared.status.borrow().clone()).into_response()
}

async fn plan(State(app): State<App>) -> Response {
    match app.shared.status.borrow().plan.clone() {
        Some(plan) => Json(plan).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "no plan yet: waiting for state of charge and prices from home assistant"})),
        )
            .into_response(),
    }
}

async fn stream(State(app): State<App>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut stop = app.shared.shutdown.subscribe();
    let stopping = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    // Ending the stream on shutdown lets graceful shutdown finish instead of waiting on it.
    let updates = WatchStream::new(app.shared.status.subscribe())
        .take_until(stopping)
        .map(|status| {
            Ok(Event::default()
                .event("status")
                .json_data(&status)
                .unwrap_or_else(|_| {
                    Event::default()
                        .event("error")
                        .data("status not serialisable")
                }))
        });
    Sse::new(updates).keep_alive(KeepAlive::default())
}

async fn export(State(app): State<App>) -> Response {
    let status = app.shared.status.borrow().clone();
    let telemetry: Vec<_> = app
        .shared
        .history
        .lock()
        .expect("history lock")
        .iter()
        .cloned()
        .collect();
    let body = json!({
        "version": crate::VERSION,
        "config": &*app.config,
        "status": status,
        "plan": status.plan,
        "telemetry": telemetry,
    });
    (
        [(
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"fluxion-export.json\"",
        )],
        Json(body),
    )
        .into_response()
}

async fn health() -> &'static str {
    "ok\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ingress_proxy_and_loopback() {
        assert!(peer_allowed("172.30.32.2".parse().unwrap()));
        assert!(peer_allowed("127.0.0.1".parse().unwrap()));
        assert!(peer_allowed("::1".parse().unwrap()));
        assert!(peer_allowed("::ffff:172.30.32.2".parse().unwrap()));
        assert!(!peer_allowed("172.30.32.1".parse().unwrap()));
        assert!(!peer_allowed("192.168.1.20".parse().unwrap()));
    }

    #[test]
    fn ingress_path_must_be_a_plain_path() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-ingress-path",
            "/api/hassio_ingress/abc-DEF_1".parse().unwrap(),
        );
        assert_eq!(
            ingress_path(&h).as_deref(),
            Some("/api/hassio_ingress/abc-DEF_1")
        );
        h.insert("x-ingress-path", "/x\"><script>".parse().unwrap());
        assert_eq!(ingress_path(&h), None);
        for bad in [
            "//evil.example",
            "//evil.example/x",
            "/a//b",
            "http://evil.example/",
            "javascript:alert(1)",
            "api/hassio_ingress/x",
            "/a/../b",
            "/./a",
            "",
        ] {
            h.insert("x-ingress-path", bad.parse().unwrap());
            assert_eq!(ingress_path(&h), None, "{bad:?}");
        }
        h.insert("x-ingress-path", "/".parse().unwrap());
        assert_eq!(ingress_path(&h).as_deref(), Some(""));
        h.insert("x-ingress-path", "/api/hassio_ingress/t/".parse().unwrap());
        assert_eq!(ingress_path(&h).as_deref(), Some("/api/hassio_ingress/t"));
    }

    /// Absolute URLs broke upstream FluxION under ingress: none may creep back in.
    #[test]
    fn dashboard_uses_only_relative_urls() {
        for (name, text) in [("dashboard.html", INDEX), ("dashboard.js", SCRIPT)] {
            for bad in [
                "src=\"/",
                "href=\"/",
                "fetch('/",
                "fetch(\"/",
                "EventSource('/",
                "EventSource(\"/",
                "http://",
                "https://",
            ] {
                assert!(!text.contains(bad), "{name} contains {bad:?}");
            }
        }
        assert!(INDEX.contains("<!--BASE-->"));
        assert!(INDEX.contains("src=\"app.js\""));
        assert!(SCRIPT.contains("fetch('api/plan')"));
    }
}
