//! An in-process fake Home Assistant (axum on 127.0.0.1, port 0) that answers like the real
//! core, not one that forgives. By default it is core 2024.3:
//! - `GET /api/states/<entity>`: the state without `last_reported` (added in 2024.4);
//!   `last_changed` moves only when the value changes, `last_updated` when the value or an
//!   attribute changes, and a write of the same value and attributes moves nothing.
//! - `POST /api/services/select/select_option`: 200 with the list of states the call changed
//!   (`[]` for an unknown entity, or when the option already was set); 500 (text/plain) for
//!   an option the select does not offer (`async_select_option` raises ValueError).
//! - 401 is text/plain; while "core is down" every call answers 502 as the Supervisor proxy
//!   does during a core restart.
//!
//! `start_core(Core::V2024_4)` adds `last_reported`, which moves on every write.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

pub const TOKEN: &str = "fake-long-lived-token";

/// Which core's REST answers to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Core {
    /// No `last_reported` in states.
    V2024_3,
    /// `last_reported` on every state, moved by every write.
    V2024_4,
}

impl Core {
    fn version(self) -> &'static str {
        match self {
            Core::V2024_3 => "2024.3.3",
            Core::V2024_4 => "2024.4.0",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceCall {
    pub domain: String,
    pub service: String,
    pub data: Value,
}

#[derive(Debug)]
pub struct FakeState {
    pub core: Core,
    pub time_zone: String,
    pub states: BTreeMap<String, Value>,
    /// Every service call received, answered or not.
    pub calls: Vec<ServiceCall>,
    /// While true every request answers 502 (Supervisor's proxy during a core restart).
    pub core_down: bool,
    /// Service calls for these entities wait this long before HA acts on them (a Modbus write
    /// that hangs); the write is applied after the wait.
    pub slow_writes: BTreeMap<String, Duration>,
    /// Service calls for these entities are answered 200 `[]` and change nothing (an
    /// integration whose write does not take).
    pub ignored_writes: std::collections::BTreeSet<String>,
    /// The latest time a test reported a state at: the time service calls are stamped with.
    clock: Option<DateTime<Utc>>,
}

pub struct FakeHa {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<FakeState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeHa {
    /// Core 2024.3, started on its own thread and runtime, so sync and async tests can both
    /// use it.
    pub fn start() -> FakeHa {
        FakeHa::start_core(Core::V2024_3)
    }

    pub fn start_core(core: Core) -> FakeHa {
        let text =
            std::fs::read_to_string(super::fixtures::fixture_path("ha_states.json")).unwrap();
        let recorded: Vec<Value> = serde_json::from_str(&text).unwrap();
        let states = recorded
            .into_iter()
            .map(|mut s| {
                if core == Core::V2024_3 {
                    s.as_object_mut().unwrap().remove("last_reported");
                }
                (s["entity_id"].as_str().unwrap().to_string(), s)
            })
            .collect();
        let state = Arc::new(Mutex::new(FakeState {
            core,
            time_zone: "Europe/Prague".into(),
            states,
            calls: Vec::new(),
            core_down: false,
            slow_writes: BTreeMap::new(),
            ignored_writes: Default::default(),
            clock: None,
        }));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app_state = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new()
                    .route("/api/config", get(config))
                    .route("/api/states/{entity}", get(entity))
                    .route("/api/services/{domain}/{service}", post(service))
                    .with_state(app_state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        FakeHa {
            addr: addr_rx.recv().unwrap(),
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    pub fn calls(&self) -> Vec<ServiceCall> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.state.lock().unwrap().calls.clear();
    }

    /// The integration writes `value` (and `attributes`, when given) at `at`, with core's
    /// timestamp rules for the imitated version.
    pub fn set(&self, entity: &str, value: &str, attributes: Option<Value>, at: DateTime<Utc>) {
        let mut s = self.state.lock().unwrap();
        s.clock = Some(s.clock.map_or(at, |c| c.max(at)));
        let core = s.core;
        write_state(&mut s.states, core, entity, value, attributes, at);
    }

    /// Replaces an entity's options (e.g. a select without `Force Charge`).
    pub fn set_options(&self, entity: &str, options: &[&str]) {
        let mut s = self.state.lock().unwrap();
        s.states.get_mut(entity).unwrap()["attributes"]["options"] = json!(options);
    }

    /// Removes an entity, as when the integration does not provide it.
    pub fn remove(&self, entity: &str) {
        self.state.lock().unwrap().states.remove(entity);
    }

    pub fn set_core_down(&self, down: bool) {
        self.state.lock().unwrap().core_down = down;
    }

    pub fn slow_writes(&self, entity: &str, delay: Duration) {
        self.state
            .lock()
            .unwrap()
            .slow_writes
            .insert(entity.into(), delay);
    }

    pub fn ignore_writes(&self, entity: &str) {
        self.state
            .lock()
            .unwrap()
            .ignored_writes
            .insert(entity.into());
    }

    pub fn state_of(&self, entity: &str) -> String {
        self.state.lock().unwrap().states[entity]["state"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The whole state object as `GET /api/states/<entity>` would return it.
    pub fn state_json(&self, entity: &str) -> Value {
        self.state.lock().unwrap().states[entity].clone()
    }
}

impl Drop for FakeHa {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Core's state machine write (`StateMachine.async_set`): an unchanged write is dropped
/// before 2024.4 and only moves `last_reported` from 2024.4; returns whether the state changed.
fn write_state(
    states: &mut BTreeMap<String, Value>,
    core: Core,
    entity: &str,
    value: &str,
    attributes: Option<Value>,
    at: DateTime<Utc>,
) -> bool {
    let stamp = json!(at.to_rfc3339());
    let e = states.entry(entity.to_string()).or_insert_with(|| {
        json!({"entity_id": entity, "state": null, "attributes": {},
               "context": {"id": "01JHM6R5ZB8Q9YQ3J5V0K2T6XW", "parent_id": null, "user_id": null}})
    });
    let value_changed = e["state"] != json!(value);
    let attrs_changed = attributes.as_ref().is_some_and(|a| &e["attributes"] != a);
    if let Some(a) = attributes {
        e["attributes"] = a;
    }
    if value_changed {
        e["state"] = json!(value);
        e["last_changed"] = stamp.clone();
    }
    if value_changed || attrs_changed {
        e["last_updated"] = stamp.clone();
    }
    if core == Core::V2024_4 {
        e["last_reported"] = stamp;
    }
    value_changed || attrs_changed
}

type Shared = Arc<Mutex<FakeState>>;

fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// The answer every request gets before routing: 502 while core is down, 401 without the
/// token (text/plain, as core's auth middleware sends it).
fn gate(s: &Shared, headers: &HeaderMap) -> Option<Response> {
    if s.lock().unwrap().core_down {
        return Some(text(StatusCode::BAD_GATEWAY, "502: Bad Gateway"));
    }
    let ok = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    (!ok).then(|| text(StatusCode::UNAUTHORIZED, "401: Unauthorized"))
}

async fn config(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(r) = gate(&s, &headers) {
        return r;
    }
    let s = s.lock().unwrap();
    Json(
        json!({"time_zone": s.time_zone, "version": s.core.version(),
                "unit_system": {"temperature": "°C"}}),
    )
    .into_response()
}

async fn entity(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = gate(&s, &headers) {
        return r;
    }
    match s.lock().unwrap().states.get(&id) {
        Some(v) => Json(v.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Entity not found."})),
        )
            .into_response(),
    }
}

async fn service(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((domain, service)): Path<(String, String)>,
    Json(data): Json<Value>,
) -> Response {
    if let Some(r) = gate(&s, &headers) {
        return r;
    }
    let id = data["entity_id"].as_str().unwrap_or_default().to_string();
    let delay = {
        let mut st = s.lock().unwrap();
        st.calls.push(ServiceCall {
            domain: domain.clone(),
            service: service.clone(),
            data: data.clone(),
        });
        st.slow_writes.get(&id).copied()
    };
    // Core goes on with the call when the client gives up waiting: run it apart from the
    // connection, so a dropped request still lands after the delay.
    let call = tokio::spawn(async move {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        select_option(&s, &domain, &service, &data)
    });
    call.await.unwrap()
}

fn select_option(s: &Shared, domain: &str, service: &str, data: &Value) -> Response {
    let id = data["entity_id"].as_str().unwrap_or_default().to_string();
    if domain != "select" || service != "select_option" {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "Service not found."})),
        )
            .into_response();
    }
    let option = data["option"].as_str().unwrap_or_default().to_string();
    let mut st = s.lock().unwrap();
    let core = st.core;
    let at = st.clock.unwrap_or_else(Utc::now);
    let Some(e) = st.states.get(&id) else {
        // Core resolves entity ids to no entity and calls nothing: nothing changed.
        return Json(json!([])).into_response();
    };
    let allowed = e["attributes"]["options"]
        .as_array()
        .is_some_and(|o| o.iter().any(|v| v == &json!(option)));
    if !allowed {
        // aiohttp's answer to the unhandled ValueError.
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error\n\nServer got itself in trouble",
        );
    }
    if st.ignored_writes.contains(&id) {
        return Json(json!([])).into_response();
    }
    let changed = write_state(&mut st.states, core, &id, &option, None, at);
    if changed {
        Json(json!([st.states[&id].clone()])).into_response()
    } else {
        Json(json!([])).into_response()
    }
}
