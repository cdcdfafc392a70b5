//! The HTTP side of the service: health check for the Supervisor and the image tests.

use axum::{routing::get, Router};

/// All routes served on the web port.
pub fn router() -> Router {
    Router::new().route("/health", get(health))
}

async fn health() -> &'static str {
    "ok\n"
}
