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
//! - `GET /api/config` carries `currency` (CZK by default, as for a Czech install).
//! - `GET /api/history/period/<start>?filter_entity_id=..&end_time=..&minimal_response
//!   &no_attributes`: a list with one list per entity that has states in the period, `[]`
//!   when none; the first row is a whole state whose `last_changed` is the start when the
//!   state began earlier, the rest `{state, last_changed}`, one per change (the recorder's
//!   `_sorted_states_to_dict`). Every value change written through `set` is recorded; older
//!   history is added with `record_history`. The answer can be made slow or huge.
//! - `POST /api/states/<entity_id>`: 201 with the state for a new entity, 200 for an update;
//!   400 with a JSON message for a missing or too long state or a bad entity id.
//!
//! `start_core(Core::V2024_4)` adds `last_reported`, which moves on every write.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{Path, Query, State},
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
    /// `currency` in `/api/config`.
    pub currency: String,
    /// Recorded value changes per entity, oldest first.
    pub history: BTreeMap<String, Vec<(DateTime<Utc>, String)>>,
    /// Query strings of the history requests received.
    pub history_requests: Vec<String>,
    /// History answers wait this long.
    pub history_delay: Option<Duration>,
    /// History answers carry this many extra rows (alternating values in the period).
    pub history_padding: usize,
    /// Every `POST /api/states` received: (entity, body).
    pub posted: Vec<(String, Value)>,
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
            currency: "CZK".into(),
            history: BTreeMap::new(),
            history_requests: Vec::new(),
            history_delay: None,
            history_padding: 0,
            posted: Vec::new(),
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
                    .route("/api/states/{entity}", get(entity).post(post_state))
                    .route("/api/history/period/{start}", get(history))
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
        let st = &mut *s;
        write_state(
            &mut st.states,
            &mut st.history,
            core,
            entity,
            value,
            attributes,
            at,
        );
    }

    /// Adds recorded changes (time, value) for `entity`, as if the recorder had them.
    pub fn record_history(&self, entity: &str, rows: &[(DateTime<Utc>, String)]) {
        let mut s = self.state.lock().unwrap();
        let h = s.history.entry(entity.to_string()).or_default();
        h.extend(rows.iter().cloned());
        h.sort_by_key(|r| r.0);
    }

    pub fn set_currency(&self, currency: &str) {
        self.state.lock().unwrap().currency = currency.into();
    }

    pub fn slow_history(&self, delay: Duration) {
        self.state.lock().unwrap().history_delay = Some(delay);
    }

    pub fn huge_history(&self, extra_rows: usize) {
        self.state.lock().unwrap().history_padding = extra_rows;
    }

    pub fn history_requests(&self) -> Vec<String> {
        self.state.lock().unwrap().history_requests.clone()
    }

    /// The `POST /api/states` bodies received for `entity`, oldest first.
    pub fn posted(&self, entity: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .posted
            .iter()
            .filter(|(e, _)| e == entity)
            .map(|(_, v)| v.clone())
            .collect()
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
/// The recorder keeps every value change.
fn write_state(
    states: &mut BTreeMap<String, Value>,
    history: &mut BTreeMap<String, Vec<(DateTime<Utc>, String)>>,
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
        history
            .entry(entity.to_string())
            .or_default()
            .push((at, value.to_string()));
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
                "currency": s.currency, "unit_system": {"temperature": "°C"}}),
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
    let st = &mut *st;
    let changed = write_state(
        &mut st.states,
        &mut st.history,
        core,
        &id,
        &option,
        None,
        at,
    );
    if changed {
        Json(json!([st.states[&id].clone()])).into_response()
    } else {
        Json(json!([])).into_response()
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "message": text }))).into_response()
}

/// `HistoryPeriodView.get` over the recorded changes.
async fn history(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(start): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = gate(&s, &headers) {
        return r;
    }
    let delay = {
        let mut st = s.lock().unwrap();
        let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        st.history_requests.push(format!("{start}?{}", q.join("&")));
        st.history_delay
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let Ok(start) = DateTime::parse_from_rfc3339(&start).map(|t| t.with_timezone(&Utc)) else {
        return message(StatusCode::BAD_REQUEST, "Invalid datetime");
    };
    let end = match query.get("end_time") {
        Some(e) => match DateTime::parse_from_rfc3339(e) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => return message(StatusCode::BAD_REQUEST, "Invalid end_time"),
        },
        None => start + chrono::Duration::days(1),
    };
    let Some(entity) = query.get("filter_entity_id") else {
        return message(StatusCode::BAD_REQUEST, "filter_entity_id is missing");
    };
    let minimal = query.contains_key("minimal_response");
    let st = s.lock().unwrap();
    let Some(rows) = st.history.get(entity) else {
        return Json(json!([])).into_response();
    };
    // The state at the start (its last change before it), then the changes in the period.
    let mut picked: Vec<(DateTime<Utc>, String)> = Vec::new();
    if let Some(before) = rows.iter().rev().find(|r| r.0 < start) {
        picked.push((start, before.1.clone()));
    }
    picked.extend(rows.iter().filter(|r| r.0 >= start && r.0 < end).cloned());
    if st.history_padding > 0 && end > start {
        let step = (end - start) / (st.history_padding as i32 + 1);
        for i in 0..st.history_padding {
            picked.push((start + step * (i as i32 + 1), format!("{}", 500 + i % 2)));
        }
        picked.sort_by_key(|r| r.0);
    }
    if picked.is_empty() {
        return Json(json!([])).into_response();
    }
    let full = |t: DateTime<Utc>, v: &str| {
        json!({"entity_id": entity, "state": v, "attributes": {},
               "last_changed": t.to_rfc3339(), "last_updated": t.to_rfc3339()})
    };
    let mut out = vec![full(picked[0].0, &picked[0].1)];
    let mut prev = picked[0].1.clone();
    for (t, v) in &picked[1..] {
        if minimal {
            if *v != prev {
                out.push(json!({"state": v, "last_changed": t.to_rfc3339()}));
            }
        } else {
            out.push(full(*t, v));
        }
        prev = v.clone();
    }
    Json(json!([out])).into_response()
}

/// `APIEntityStateView.post`.
async fn post_state(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = gate(&s, &headers) {
        return r;
    }
    let Ok(data) = serde_json::from_slice::<Value>(&body) else {
        return message(StatusCode::BAD_REQUEST, "Invalid JSON specified.");
    };
    let Some(state) = data.get("state").filter(|v| !v.is_null()) else {
        return message(StatusCode::BAD_REQUEST, "No state specified.");
    };
    let state = match state {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let valid_id = id.split_once('.').is_some_and(|(d, o)| {
        !d.is_empty()
            && !o.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
    });
    if !valid_id {
        return message(StatusCode::BAD_REQUEST, "Invalid entity ID specified.");
    }
    if state.chars().count() > 255 {
        return message(StatusCode::BAD_REQUEST, "Invalid state specified.");
    }
    let mut st = s.lock().unwrap();
    st.posted.push((id.clone(), data.clone()));
    let core = st.core;
    let at = st.clock.unwrap_or_else(Utc::now);
    let is_new = !st.states.contains_key(&id);
    let attributes = data.get("attributes").cloned().unwrap_or(json!({}));
    let st = &mut *st;
    write_state(
        &mut st.states,
        &mut st.history,
        core,
        &id,
        &state,
        Some(attributes),
        at,
    );
    let status = if is_new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (
        status,
        [(header::LOCATION, format!("/api/states/{id}"))],
        Json(st.states[&id].clone()),
    )
        .into_response()
}
