//! Operations: `/health` (no token: whether the store and the read model
//! answer, and how far behind the read model is) and `/metrics` (the
//! Prometheus text exposition; the token, or the loopback-only listener of
//! `--metrics-listen`, which serves nothing else).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::api::{Admin, ApiError, ApiState, ErrorBody};

/// `/health`: answers while the server runs; says how many documents HQ
/// holds and how many wait to be projected.
pub(super) async fn health(State(state): State<ApiState>) -> Json<Value> {
    let replica = state.sync.clone();
    let documents =
        tokio::task::spawn_blocking(move || sync_core::sync::replica::Replica::catalog(&replica).len()).await.ok();
    let status = if documents.is_some() { "ok" } else { "degraded" };
    Json(json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "store": { "documents": documents },
        "read_model": { "waiting": state.read.waiting() },
    }))
}

/// Prometheus metrics.
///
/// Sync sessions (active, ended by outcome) and their bytes, receipts, the
/// read model's lag from durable to visible, undecided quarantine entries,
/// and HTTP request latency by route. Text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Metrics, text exposition format", content_type = "text/plain", body = String),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn metrics(_: Admin, state: State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    exposition(state).await
}

async fn exposition(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    let undecided = state.quarantine().await?.iter().filter(|q| q.decision.is_none()).count();
    let body = state.metrics.encode(undecided);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body))
}

/// The routes of the main listener.
pub(super) fn router(state: ApiState) -> Router {
    Router::new().route("/health", get(health)).route("/metrics", get(metrics)).with_state(state)
}

/// The loopback-only metrics listener: `/metrics` without a token, nothing else.
pub(crate) fn metrics_router(state: ApiState) -> Router {
    Router::new().route("/metrics", get(exposition)).with_state(state)
}
