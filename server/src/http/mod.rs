//! HQ's HTTP surface: health, the admin API ([`api`]: credentials and
//! revocations, with the token check and the error body every route uses)
//! and the read API ([`query`]: what HQ holds), with their OpenAPI document.

pub(crate) mod api;
mod briefing;
mod console;
pub(crate) mod ops;
mod photos;
mod prepare;
mod quarantine;
mod query;

use std::time::Duration;

use axum::{Json, Router, routing::get};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Every HTTP route the server serves.
pub(crate) fn router(state: api::ApiState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/api/openapi.json", get(openapi_json))
        .with_state(state.clone())
        .merge(ops::router(state.clone()))
        .merge(api::router(state.clone()))
        .merge(query::router(state.clone()))
        .merge(briefing::router(state.clone()))
        .merge(quarantine::router(state.clone()))
        .merge(photos::router(state.clone()))
        .merge(prepare::router(state.clone()))
        .merge(console::router(state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(metrics, crate::metrics::track))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FieldSync HQ admin API",
        description = "Issue device credentials, list the register, revoke; read what HQ holds. \
            Errors are `{ \"error\": code, \"message\": Chinese text }`; a refused request writes nothing."
    ),
    paths(
        api::hq_key,
        api::list_credentials,
        api::devices,
        api::issue_credential,
        api::current_revocations,
        api::revoke,
        query::campaigns,
        query::progress,
        query::register,
        briefing::file,
        query::reviews,
        query::document_checks,
        query::conflicts,
        query::hazards,
        query::hazard,
        photos::photo,
        photos::meta,
        quarantine::list,
        quarantine::decide,
        ops::metrics,
    ),
    modifiers(&AdminToken),
    tags(
        (name = "hq", description = "HQ's identity"),
        (name = "credentials", description = "Device credentials and enrollment strings"),
        (name = "revocations", description = "The signed revocation list"),
        (name = "read", description = "What HQ holds, from its read model"),
        (name = "quarantine", description = "Work HQ kept aside, and decisions on it"),
        (name = "operations", description = "Metrics for monitoring"),
    )
)]
struct ApiDoc;

/// Declares the bearer token the protected operations name.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description =
            Some("The token in `<data>/admin.token`; `fieldsync-server admin-token` replaces it.".into());
        openapi.components.get_or_insert_default().add_security_scheme("admin_token", SecurityScheme::Http(scheme));
    }
}

/// The OpenAPI document of this API.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request that carries a body may take, body included.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves every route on `listener`, and `/metrics` alone on `metrics` if
/// given, on a thread and async runtime of their own (their files and
/// SQLite on its blocking pool), for as long as the process runs. In the
/// end-of-day burst the sync sessions keep the main runtime's workers busy;
/// a person's page must not queue behind them, and the operating system
/// shares the cores between threads.
pub(crate) fn serve_apart(
    listener: std::net::TcpListener,
    metrics: Option<std::net::TcpListener>,
    state: api::ApiState,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (listener, metrics) = {
        let _inside = runtime.enter();
        (tokio::net::TcpListener::from_std(listener)?, metrics.map(tokio::net::TcpListener::from_std).transpose()?)
    };
    std::thread::Builder::new().name("http".into()).spawn(move || {
        runtime.block_on(async move {
            let metrics_only = async {
                match metrics {
                    Some(listener) => serve(listener, ops::metrics_router(state.clone())).await,
                    None => std::future::pending().await,
                }
            };
            tokio::join!(serve(listener, router(state.clone())), metrics_only);
        });
    })?;
    Ok(())
}

/// Serves `router` on `listener` until the task is dropped. Each connection
/// is cut if its request headers take longer than [`HEADER_TIMEOUT`], and a
/// request with a body (anything but GET and HEAD) is answered 408 if it
/// takes longer than [`BODY_TIMEOUT`]: slow clients hold nothing for long.
pub(crate) async fn serve(listener: tokio::net::TcpListener, router: Router) {
    let router = router.layer(axum::middleware::from_fn(body_deadline));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, say: the next accept may work.
                tracing::warn!(%error, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // The console's login limit counts failures per address.
        let peer = stream.peer_addr().map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| a.ip());
        let router = router.clone().layer(axum::Extension(console::Peer(peer)));
        let service = hyper_util::service::TowerToHyperService::new(router);
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            if let Err(error) = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await {
                tracing::debug!(%error, "HTTP connection ended");
            }
        });
    }
}

async fn body_deadline(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    if matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD) {
        return next.run(request).await;
    }
    match tokio::time::timeout(BODY_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => api::ApiError::Timeout(BODY_TIMEOUT.as_secs()).into_response(),
    }
}

/// Every unknown path gets the documented error body.
async fn not_found(uri: axum::http::Uri) -> api::ApiError {
    api::ApiError::NotFound(format!("没有这个地址：{}", uri.path()))
}

async fn method_not_allowed() -> api::ApiError {
    api::ApiError::MethodNotAllowed
}

async fn openapi_json(_: api::Admin) -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
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
        let state = api::ApiState::scratch(dir.path());
        let response = router(state).oneshot(Request::get("/health").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["status"], "ok");
    }
}
