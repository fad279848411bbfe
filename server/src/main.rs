//! `fieldsync-server`: the HQ server.
//!
//! This build serves only its health endpoint over HTTP; the QUIC sync
//! endpoint, the SQLite store, the admin API and the console arrive with the
//! sync issue. With no arguments it uses `./data` and `127.0.0.1:8080`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use axum::{Json, Router, routing::get};
use clap::Parser;
use serde_json::{Value, json};

/// FieldSync 总部服务器
#[derive(Parser)]
#[command(name = "fieldsync-server", version)]
struct Config {
    /// 数据目录
    #[arg(long, env = "FIELDSYNC_DATA", default_value = "data")]
    data: PathBuf,
    /// HTTP 监听地址
    #[arg(long, env = "FIELDSYNC_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
}

fn router() -> Router {
    Router::new().route("/health", get(health))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let config = Config::parse();
    std::fs::create_dir_all(&config.data).with_context(|| format!("无法创建数据目录 {}", config.data.display()))?;
    let listener =
        tokio::net::TcpListener::bind(config.http).await.with_context(|| format!("无法监听 {}", config.http))?;
    println!(
        "FieldSync 总部服务器已启动：http://{}/health，数据目录 {}",
        listener.local_addr()?,
        config.data.display()
    );
    axum::serve(listener, router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    #[tokio::test]
    async fn health_answers_ok() {
        let response = router().oneshot(Request::get("/health").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["status"], "ok");
    }
}
