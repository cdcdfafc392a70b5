//! An in-process fake Home Assistant (axum on 127.0.0.1, port 0): `/api/config`,
//! `/api/states/<entity>` from recorded states, and `/api/services/<domain>/<service>`, which
//! it records and applies to `select` entities as HA does.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};

pub const TOKEN: &str = "fake-long-lived-token";

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceCall {
    pub domain: String,
    pub service: String,
    pub data: Value,
}

#[derive(Debug)]
pub struct FakeState {
    pub time_zone: String,
    pub states: BTreeMap<String, Value>,
    pub calls: Vec<ServiceCall>,
}

pub struct FakeHa {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<FakeState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeHa {
    /// Starts on its own thread and runtime, so sync and async tests can both use it.
    pub fn start() -> FakeHa {
        let text =
            std::fs::read_to_string(super::fixtures::fixture_path("ha_states.json")).unwrap();
        let recorded: Vec<Value> = serde_json::from_str(&text).unwrap();
        let states = recorded
            .into_iter()
            .map(|s| (s["entity_id"].as_str().unwrap().to_string(), s))
            .collect();
        let state = Arc::new(Mutex::new(FakeState {
            time_zone: "Europe/Prague".into(),
            states,
            calls: Vec::new(),
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

    /// Sets an entity's state (and attributes, when given) as reported at `at`.
    pub fn set(
        &self,
        entity: &str,
        value: &str,
        attributes: Option<Value>,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        let mut s = self.state.lock().unwrap();
        let e = s
            .states
            .entry(entity.to_string())
            .or_insert_with(|| json!({"entity_id": entity, "attributes": {}}));
        e["state"] = json!(value);
        if let Some(a) = attributes {
            e["attributes"] = a;
        }
        for k in ["last_updated", "last_reported", "last_changed"] {
            e[k] = json!(at.to_rfc3339());
        }
    }

    pub fn state_of(&self, entity: &str) -> String {
        self.state.lock().unwrap().states[entity]["state"]
            .as_str()
            .unwrap()
            .to_string()
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

type Shared = Arc<Mutex<FakeState>>;

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

fn unauthorised() -> (StatusCode, Json<Value>) {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "401: Unauthorized"})),
    )
}

async fn config(State(s): State<Shared>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return unauthorised();
    }
    let tz = s.lock().unwrap().time_zone.clone();
    (
        StatusCode::OK,
        Json(json!({"time_zone": tz, "version": "2025.1.0", "unit_system": {"temperature": "°C"}})),
    )
}

async fn entity(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return unauthorised();
    }
    match s.lock().unwrap().states.get(&id) {
        Some(v) => (StatusCode::OK, Json(v.clone())),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Entity not found."})),
        ),
    }
}

async fn service(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((domain, service)): Path<(String, String)>,
    Json(data): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return unauthorised();
    }
    let mut s = s.lock().unwrap();
    s.calls.push(ServiceCall {
        domain: domain.clone(),
        service: service.clone(),
        data: data.clone(),
    });
    if domain == "select" && service == "select_option" {
        let id = data["entity_id"].as_str().unwrap_or_default().to_string();
        let option = data["option"].as_str().unwrap_or_default().to_string();
        let Some(e) = s.states.get_mut(&id) else {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"message": format!("Entity {id} not found")})),
            );
        };
        let allowed = e["attributes"]["options"]
            .as_array()
            .is_some_and(|o| o.iter().any(|v| v == &json!(option)));
        if !allowed {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"message": format!("Invalid option {option}")})),
            );
        }
        e["state"] = json!(option);
        return (StatusCode::OK, Json(json!([e.clone()])));
    }
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"message": "Service not found."})),
    )
}
