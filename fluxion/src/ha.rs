//! Home Assistant REST client over plain HTTP/1.1 (hyper, no TLS): states, config, recorder
//! history, FluxION's own states and the `select.select_option` service, with timeouts,
//! bounded answers, retries for reads, checked answers for writes, and errors that name what
//! failed.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::{header, Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum HaError {
    #[error(
        "home assistant rejected the token (401 from {url}): check HA_TOKEN (a long-lived access \
         token) or, as an add-on, that homeassistant_api is enabled"
    )]
    Unauthorized { url: String },
    #[error(
        "entity {entity} does not exist in home assistant (404 from {url}): check the entity id \
         in the configuration"
    )]
    EntityNotFound { entity: String, url: String },
    #[error("{url} was not found (404): check that HA_URL points at home assistant")]
    NotFound { url: String },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("cannot reach home assistant at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("home assistant at {url} did not answer within {} s", seconds(*ms))]
    Timeout { url: String, ms: u64 },
    #[error("unexpected answer from {url}: {reason}")]
    Decode { url: String, reason: String },
    /// The answer was larger than FluxION reads (`HaClient::max_body`).
    #[error("{url} answered more than {} MiB; not read", limit / (1024 * 1024))]
    TooLarge { url: String, limit: usize },
    #[error(
        "{url} uses https, but TLS is not built into fluxion-main: use an http:// URL or a \
         TLS-terminating proxy"
    )]
    Tls { url: String },
    #[error("home assistant url {url} is not usable: {reason}")]
    BadUrl { url: String, reason: String },
    /// A service call for `entity` answered with an error status (core 2024.3 answers 500 for
    /// an option the select does not offer; Supervisor 502 while core restarts).
    #[error("{entity} answered {status}: {body}")]
    ServiceFailed {
        entity: String,
        status: u16,
        body: String,
    },
    #[error("{entity} did not answer within {} s", seconds(*ms))]
    ServiceTimeout { entity: String, ms: u64 },
    /// HA answers 200 with the states the call changed; an unknown entity gives `[]`.
    #[error("{entity} was not set to {option:?}: home assistant answered 200 with {answer}")]
    NotApplied {
        entity: String,
        option: String,
        answer: String,
    },
}

impl HaError {
    /// Worth another try: the network or HA itself, not our request.
    fn transient(&self) -> bool {
        match self {
            HaError::Unreachable { .. } | HaError::Timeout { .. } => true,
            HaError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// An entity state as `GET /api/states/<entity>` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityState {
    pub entity_id: String,
    pub state: String,
    #[serde(default)]
    pub attributes: Value,
    /// Moves when the state's value changes.
    #[serde(default)]
    pub last_changed: Option<DateTime<Utc>>,
    /// Moves when the value or an attribute changes; an unchanged write does not move it.
    #[serde(default)]
    pub last_updated: Option<DateTime<Utc>>,
    /// Moves on every write, even an unchanged one. Only in core 2024.4 and later (core PR
    /// #113511); 2024.3 and older states do not carry the key at all.
    #[serde(default)]
    pub last_reported: Option<DateTime<Utc>>,
}

/// What `GET /api/config` says about the core.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreConfig {
    pub time_zone: String,
    pub version: Option<String>,
    /// The ISO 4217 code set under Settings > System > General (e.g. `CZK`).
    pub currency: Option<String>,
}

/// One row of `GET /api/history/period` with `minimal_response`: the first row of each list
/// is a whole state (its `last_changed` is the period's start when the state began earlier),
/// the rest only `state` and `last_changed`, one per change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HistoryRow {
    pub state: String,
    pub last_changed: DateTime<Utc>,
}

impl EntityState {
    /// False for HA's `unavailable` and `unknown`: the integration has no value.
    pub fn available(&self) -> bool {
        !matches!(self.state.as_str(), "unavailable" | "unknown")
    }

    /// The state as a number; `None` for `unknown`, `unavailable` and text.
    pub fn number(&self) -> Option<f64> {
        self.state
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    }
}

#[derive(Debug, Clone)]
pub struct HaClient {
    /// e.g. `http://supervisor/core/api`, no trailing slash.
    base: String,
    host: String,
    port: u16,
    authority: String,
    path: String,
    token: String,
    pub timeout: Duration,
    pub attempts: u32,
    pub backoff: Duration,
    /// The largest answer read; a larger one is `HaError::TooLarge`.
    pub max_body: usize,
}

impl HaClient {
    /// `base` is the API root ending in `/api`; only `http://` is supported.
    pub fn new(base: &str, token: &str) -> Result<HaClient, HaError> {
        let base = base.trim_end_matches('/').to_string();
        if base.starts_with("https://") {
            return Err(HaError::Tls { url: base });
        }
        let bad = |reason: &str| HaError::BadUrl {
            url: base.clone(),
            reason: reason.into(),
        };
        let uri: Uri = base.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("must start with http://"));
        }
        let authority = uri.authority().ok_or_else(|| bad("has no host"))?.clone();
        Ok(HaClient {
            host: authority.host().trim_matches(['[', ']']).to_string(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.to_string(),
            path: uri.path().trim_end_matches('/').to_string(),
            base,
            token: token.to_string(),
            timeout: Duration::from_secs(10),
            attempts: 3,
            backoff: Duration::from_millis(500),
            max_body: 4 * 1024 * 1024,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The HA time zone and core version from `GET /api/config`.
    pub async fn core_config(&self) -> Result<CoreConfig, HaError> {
        let url = format!("{}/config", self.base);
        let v = self
            .request(Method::GET, "/config", None, None, self.attempts)
            .await?;
        let time_zone = v
            .get("time_zone")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(HaError::Decode {
                url,
                reason: "no time_zone in the config".into(),
            })?;
        Ok(CoreConfig {
            time_zone,
            version: v.get("version").and_then(Value::as_str).map(str::to_string),
            currency: v
                .get("currency")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    /// The recorded changes of `entity` from `start` to `end` (`GET /api/history/period/<start>
    /// ?filter_entity_id=<entity>&end_time=<end>&minimal_response&no_attributes`), tried once
    /// with this client's timeout and size bound. An entity without history answers `[]`.
    pub async fn history(
        &self,
        entity: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<HistoryRow>, HaError> {
        // `+` means a space in a query: the offset is written percent-encoded.
        let stamp = |t: DateTime<Utc>| format!("{}%2B00:00", t.format("%Y-%m-%dT%H:%M:%S"));
        let path = format!(
            "/history/period/{}?filter_entity_id={entity}&end_time={}&minimal_response&no_attributes",
            stamp(start),
            stamp(end)
        );
        let v = self.request(Method::GET, &path, None, None, 1).await?;
        let lists: Vec<Vec<HistoryRow>> =
            serde_json::from_value(v).map_err(|e| HaError::Decode {
                url: format!("{}{path}", self.base),
                reason: format!("not a list of state lists: {e}"),
            })?;
        Ok(lists.into_iter().next().unwrap_or_default())
    }

    /// Sets a state of FluxION's own (`POST /api/states/<entity>`); core answers 201 for a new
    /// entity and 200 for an update, both with the state written.
    pub async fn post_state(
        &self,
        entity: &str,
        state: &str,
        attributes: &Value,
    ) -> Result<(), HaError> {
        let body = serde_json::json!({ "state": state, "attributes": attributes });
        let path = format!("/states/{entity}");
        let answer = self
            .request(Method::POST, &path, Some(body), Some(entity), 1)
            .await?;
        if answer.get("state").and_then(Value::as_str) == Some(state) {
            Ok(())
        } else {
            Err(HaError::Decode {
                url: format!("{}{path}", self.base),
                reason: format!("the answer is not the state written: {answer:.100}"),
            })
        }
    }

    pub async fn state(&self, entity: &str) -> Result<EntityState, HaError> {
        let path = format!("/states/{entity}");
        let v = self
            .request(Method::GET, &path, None, Some(entity), self.attempts)
            .await?;
        serde_json::from_value(v).map_err(|e| HaError::Decode {
            url: format!("{}{path}", self.base),
            reason: format!("not an entity state: {e}"),
        })
    }

    /// `select.select_option` on `entity`, sent once (a write is never repeated blindly: the
    /// caller reads back and decides). Succeeds only when HA's answer, the list of states the
    /// call changed, holds `entity` at `option`; an unknown entity answers 200 with `[]`.
    pub async fn select_option(&self, entity: &str, option: &str) -> Result<(), HaError> {
        let body = serde_json::json!({ "entity_id": entity, "option": option });
        let answer = self
            .request(
                Method::POST,
                "/services/select/select_option",
                Some(body),
                Some(entity),
                1,
            )
            .await
            .map_err(|e| match e {
                HaError::Status { status, body, .. } => HaError::ServiceFailed {
                    entity: entity.into(),
                    status,
                    body,
                },
                HaError::Timeout { ms, .. } => HaError::ServiceTimeout {
                    entity: entity.into(),
                    ms,
                },
                other => other,
            })?;
        let applied = answer.as_array().is_some_and(|changed| {
            changed.iter().any(|s| {
                s.get("entity_id").and_then(Value::as_str) == Some(entity)
                    && s.get("state").and_then(Value::as_str) == Some(option)
            })
        });
        if applied {
            Ok(())
        } else {
            Err(HaError::NotApplied {
                entity: entity.into(),
                option: option.into(),
                answer: describe_answer(&answer, entity),
            })
        }
    }

    /// One API call with up to `attempts` tries and backoff on transient failures; `entity`
    /// makes 404s name the entity.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        entity: Option<&str>,
        attempts: u32,
    ) -> Result<Value, HaError> {
        let url = format!("{}{path}", self.base);
        let mut delay = self.backoff;
        let mut attempt = 1;
        loop {
            let result = tokio::time::timeout(self.timeout, self.once(&method, path, &body))
                .await
                .unwrap_or(Err(HaError::Timeout {
                    url: url.clone(),
                    ms: self.timeout.as_millis() as u64,
                }));
            let result =
                result.and_then(|(status, bytes)| self.interpret(&url, status, &bytes, entity));
            match result {
                Err(e) if e.transient() && attempt < attempts => {
                    tracing::debug!(error = %e, attempt, "retrying home assistant request");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn once(
        &self,
        method: &Method,
        path: &str,
        body: &Option<Value>,
    ) -> Result<(StatusCode, Bytes), HaError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |reason: String| HaError::Unreachable {
            url: url.clone(),
            reason,
        };
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        // One connection per request: a call a minute does not need a pool, and no pooled
        // connection can go stale across HA restarts.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let bytes = body
            .as_ref()
            .map(|b| Bytes::from(b.to_string()))
            .unwrap_or_default();
        let req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.path))
            .header(header::HOST, &self.authority)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes))
            .map_err(|e| HaError::BadUrl {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status();
        let limit = self.max_body;
        let bytes = http_body_util::Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    HaError::TooLarge {
                        url: url.clone(),
                        limit,
                    }
                } else {
                    unreachable(format!("reading the answer: {e}"))
                }
            })?
            .to_bytes();
        Ok((status, bytes))
    }

    fn interpret(
        &self,
        url: &str,
        status: StatusCode,
        bytes: &[u8],
        entity: Option<&str>,
    ) -> Result<Value, HaError> {
        let url = url.to_string();
        match status {
            s if s.is_success() => {
                if bytes.is_empty() {
                    return Ok(Value::Null);
                }
                serde_json::from_slice(bytes).map_err(|e| HaError::Decode {
                    url,
                    reason: format!("not JSON: {e}"),
                })
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(HaError::Unauthorized { url }),
            StatusCode::NOT_FOUND => match entity {
                Some(entity) => Err(HaError::EntityNotFound {
                    entity: entity.into(),
                    url,
                }),
                None => Err(HaError::NotFound { url }),
            },
            // An invalid select option: 500 from core 2024.3 (`select.async_select_option`
            // raises ValueError); 502 from the Supervisor proxy while core restarts.
            // One line for the log and the dashboard banner.
            s => Err(HaError::Status {
                url,
                status: s.as_u16(),
                body: String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            }),
        }
    }
}

/// `1500` ms as `1.5`, `10000` as `10`.
fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        format!("{:.1}", ms as f64 / 1000.0)
    }
}

/// A short description of a service call's answer for an error message.
fn describe_answer(answer: &Value, entity: &str) -> String {
    match answer.as_array() {
        Some(list) if list.is_empty() => "[] (no state changed: unknown entity?)".into(),
        Some(list) => {
            match list
                .iter()
                .find(|s| s.get("entity_id").and_then(Value::as_str) == Some(entity))
            {
                Some(s) => format!(
                    "{entity} at {}",
                    s.get("state").map(Value::to_string).unwrap_or_default()
                ),
                None => format!("{} changed states, none of them {entity}", list.len()),
            }
        }
        None => format!("{:.100}", answer.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_refused_clearly() {
        let e = HaClient::new("https://ha.local:8123/api", "t").unwrap_err();
        assert!(
            e.to_string().contains("TLS is not built into fluxion-main"),
            "{e}"
        );
    }

    #[test]
    fn url_parts() {
        let c = HaClient::new("http://supervisor/core/api/", "t").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.path.as_str()),
            ("supervisor", 80, "/core/api")
        );
        assert_eq!(c.base(), "http://supervisor/core/api");
        let c = HaClient::new("http://127.0.0.1:8123/api", "t").unwrap();
        assert_eq!((c.authority.as_str(), c.port), ("127.0.0.1:8123", 8123));
        assert!(HaClient::new("ftp://x/api", "t").is_err());
    }

    #[tokio::test]
    async fn unreachable_names_the_url_after_retries() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = HaClient::new(&format!("http://127.0.0.1:{port}/api"), "t").unwrap();
        c.backoff = Duration::from_millis(1);
        let e = c.state("sensor.x").await.unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "cannot reach home assistant at http://127.0.0.1:{port}/api/states/sensor.x"
            )),
            "{e}"
        );
    }

    #[test]
    fn states_with_and_without_last_reported() {
        let s: EntityState = serde_json::from_value(serde_json::json!({
            "entity_id": "sensor.a", "state": "55",
            "last_changed": "2025-01-15T06:00:00+00:00",
            "last_updated": "2025-01-15T06:00:00+00:00",
            "last_reported": "2025-01-15T06:59:00+00:00"
        }))
        .unwrap();
        assert_eq!(
            s.last_reported.unwrap().to_rfc3339(),
            "2025-01-15T06:59:00+00:00"
        );
        assert_eq!(s.number(), Some(55.0));
        assert!(s.available());
        // Core 2024.3: no last_reported key at all.
        let s: EntityState = serde_json::from_value(serde_json::json!({
            "entity_id": "sensor.a", "state": "unavailable",
            "last_changed": "2025-01-15T06:00:00+00:00",
            "last_updated": "2025-01-15T06:00:00+00:00",
        }))
        .unwrap();
        assert_eq!(s.last_reported, None);
        assert!(!s.available());
    }

    #[test]
    fn service_answers_are_described() {
        let e = "select.m";
        assert_eq!(
            describe_answer(&serde_json::json!([]), e),
            "[] (no state changed: unknown entity?)"
        );
        assert_eq!(
            describe_answer(
                &serde_json::json!([{"entity_id": "select.m", "state": "Force Charge"}]),
                e
            ),
            "select.m at \"Force Charge\""
        );
        assert_eq!(
            describe_answer(
                &serde_json::json!([{"entity_id": "select.x", "state": "a"}]),
                e
            ),
            "1 changed states, none of them select.m"
        );
    }
}
