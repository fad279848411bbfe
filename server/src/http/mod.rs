//! HQ's HTTP surface: health and the admin API ([`api`]).

pub(crate) mod api;

use axum::{Json, Router, routing::get};
use serde_json::{Value, json};

/// Every HTTP route the server serves.
pub(crate) fn router(api: api::ApiState) -> Router {
    Router::new().route("/health", get(health)).merge(api::router(api))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    #[tokio::test]
    async fn health_answers_ok() {
        let dir = tempfile::TempDir::new().unwrap();
        let hq = crate::register::Hq::open(dir.path()).unwrap();
        let api = api::ApiState::new(std::sync::Arc::new(std::sync::Mutex::new(hq)));
        let response = router(api).oneshot(Request::get("/health").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["status"], "ok");
    }
}
