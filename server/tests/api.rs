//! The admin HTTP API across real processes: the server binary on loopback,
//! an HTTP client holding the token from `<data>/admin.token`, and a device
//! as a field-client store in a temp dir.
//!
//! A credential issued over HTTP enrolls a real device that then syncs with
//! HQ over QUIC; revoked over HTTP, its next sync is refused. Requests
//! without the token, with a wrong one, or with bad input are refused and
//! change nothing; `fieldsync-server admin-token` replaces the token in the
//! running server.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, header};
use field_client::Store;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sync_core::credential::Enrollment;

/// The server process; killed when dropped, so a failed test leaves none behind.
struct Server {
    child: Child,
    sync: SocketAddr,
    http: SocketAddr,
}

impl Server {
    fn start(data: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fieldsync-server"))
            .arg("--data")
            .arg(data)
            .args(["serve", "--quic", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut sync, mut http) = (None, None);
        while sync.is_none() || http.is_none() {
            let line = lines.next().expect("server exited").unwrap();
            if let Some(addr) = line.strip_prefix("同步地址：") {
                sync = Some(addr.parse().unwrap());
            }
            if let Some(rest) = line.strip_prefix("健康检查：http://") {
                http = rest.strip_suffix("/health").map(|addr| addr.parse().unwrap());
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Server { child, sync: sync.unwrap(), http: http.unwrap() }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    fn new(server: &Server) -> Self {
        Http { client: Client::builder(TokioExecutor::new()).build_http(), base: format!("http://{}", server.http) }
    }

    /// Sends `body` as JSON text exactly as given.
    async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<String>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default()))).unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        self.send(method, path, token, body.map(|b| b.to_string())).await
    }

    async fn register(&self, token: &str) -> Value {
        let (status, body) = self.call(Method::GET, "/api/v1/credentials", Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_issued_and_revoked_over_http_work_for_real_devices() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let http = Http::new(&server);
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap().trim().to_owned();
    let mut device = Store::init(&dir.path().join("tablet"), "张三").unwrap();
    let issue = json!({
        "device": device.public_key().to_string(),
        "name": "张三",
        "role": "inspector",
        "days": 30,
        "server": server.sync.to_string(),
    });
    let before = http.register(&token).await;

    // No token, a wrong token: refused, nothing issued.
    let (status, error) = http.call(Method::POST, "/api/v1/credentials", None, Some(issue.clone())).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("missing_token")));
    let (status, error) = http.call(Method::POST, "/api/v1/credentials", Some("wrong"), Some(issue.clone())).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")));
    let (status, _) = http.call(Method::GET, "/api/v1/credentials", Some("wrong"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Bad input: refused with a reason in Chinese, nothing issued.
    let spoiled = |field: &str, value: Value| {
        let mut body = issue.clone();
        body[field] = value;
        body.to_string()
    };
    for (body, code) in [
        (spoiled("device", json!("not-a-key")), "invalid_device_key"),
        (spoiled("role", json!("superuser")), "invalid_role"),
        (spoiled("campaigns", json!(["cmp-x"])), "invalid_campaign"),
        (spoiled("enterprises", json!(["91640200MA76XYW12"])), "invalid_enterprise"),
        (spoiled("days", json!(0)), "invalid_days"),
        (spoiled("days", json!(-1)), "invalid_days"),
        ("{\"device\":".to_owned(), "invalid_json"),
    ] {
        let (status, error) = http.send(Method::POST, "/api/v1/credentials", Some(&token), Some(body)).await;
        assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{error}");
        assert!(error["message"].as_str().unwrap().chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)));
    }
    let oversized = spoiled("name", json!("x".repeat(100_000)));
    let (status, _) = http.send(Method::POST, "/api/v1/credentials", Some(&token), Some(oversized)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(http.register(&token).await, before, "refused requests changed nothing");

    // Issued over HTTP, the credential enrolls the device and HQ accepts it.
    let (status, issued) = http.call(Method::POST, "/api/v1/credentials", Some(&token), Some(issue)).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let enrollment: Enrollment = issued["enrollment"].as_str().unwrap().parse().unwrap();
    let (_, hq) = http.call(Method::GET, "/api/v1/hq", None, None).await;
    assert_eq!(enrollment.hq.to_string(), hq["public_key"].as_str().unwrap());
    let credential = device.enroll(&enrollment).unwrap();
    assert_eq!(issued["credential"]["serial"], credential.serial);
    device.sync_with_hq(None).await.unwrap();

    // HQ's own credential (serial 1, issued at first start) cannot be revoked.
    let own = json!({ "serials": [1] });
    let (status, error) = http.call(Method::POST, "/api/v1/revocations", Some(&token), Some(own)).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("revokes_hq")));

    // Revoked over HTTP, its next sync is refused.
    let revoke = json!({ "serials": [credential.serial] });
    let (status, list) = http.call(Method::POST, "/api/v1/revocations", Some(&token), Some(revoke)).await;
    assert_eq!((status, list["version"].clone()), (StatusCode::CREATED, json!(1)), "{list}");
    let refused = device.sync_with_hq(None).await.unwrap_err();
    assert!(refused.to_string().contains("吊销"), "{refused}");
    let register = http.register(&token).await;
    let entry = register["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["credential"]["serial"] == credential.serial)
        .unwrap();
    assert_eq!(entry["revoked"], true);

    // A new token replaces the old one in the running server.
    let out = Command::new(env!("CARGO_BIN_EXE_fieldsync-server"))
        .arg("--data")
        .arg(&data)
        .arg("admin-token")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "the token is printed only with --print");
    let rotated = std::fs::read_to_string(data.join("admin.token")).unwrap().trim().to_owned();
    assert_ne!(rotated, token);
    let printed = Command::new(env!("CARGO_BIN_EXE_fieldsync-server"))
        .arg("--data")
        .arg(&data)
        .args(["admin-token", "--print"])
        .output()
        .unwrap();
    let rotated = String::from_utf8(printed.stdout).unwrap().trim().to_owned();
    assert_eq!(std::fs::read_to_string(data.join("admin.token")).unwrap().trim(), rotated);
    let (status, _) = http.call(Method::GET, "/api/v1/revocations", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old token stopped working");
    assert_eq!(http.register(&rotated).await, register);
}

/// A client that sends its request headers slowly (a slowloris) is cut
/// after the header timeout; the server keeps answering others meanwhile.
#[test]
fn a_client_that_sends_headers_slowly_is_cut() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start(&dir.path().join("hq"));
    let mut slow = std::net::TcpStream::connect(server.http).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: hq\r\n").unwrap();
    let started = Instant::now();

    let mut fast = std::net::TcpStream::connect(server.http).unwrap();
    fast.write_all(b"GET /health HTTP/1.1\r\nHost: hq\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    fast.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut rest = Vec::new();
    let read = slow.read_to_end(&mut rest);
    assert!(read.is_ok(), "the slow connection was still open after 20 s: {read:?}");
    assert!(started.elapsed() >= Duration::from_secs(9), "cut too early: {:?}", started.elapsed());
}
