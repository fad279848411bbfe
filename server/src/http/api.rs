//! The admin HTTP API: issue and list credentials, revoke, read HQ's key.
//!
//! [`router`] serves `/api/v1/…` and the OpenAPI document at
//! `/api/openapi.json`. The document is generated from the annotations on
//! the handlers below (utoipa) and checked in as `schemas/openapi.json`.
//! Every operation except `GET /api/v1/hq` needs `Authorization: Bearer
//! <token>` with the token from `<data>/admin.token`; [`Admin`] checks it
//! against the SHA-256 in `hq.db` on each request, so `fieldsync-server
//! admin-token` takes effect at once in a running server.
//!
//! Requests are parsed and checked by `register`, the same code the CLI
//! uses. A refusal is an [`ApiError`]: `{ "error": code, "message": 中文 }`,
//! and nothing is written. The register is a synchronous SQLite connection
//! behind the server's shared lock, so handlers use it on the blocking pool.

use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sync_core::credential::{Credential, Enrollment, RevocationList};
use sync_core::doc::rfc3339;
use utoipa::ToSchema;

use crate::metrics::Metrics;
use crate::photos::Copies;
use crate::read::ReadModel;
use crate::register::{self, Hq, HqError, IssueForm, RequestError, RevokeForm};
use crate::sync::{DecideError, HqReplica};

/// Largest request body accepted, in bytes. A credential request is well
/// under 4 KiB.
const MAX_BODY: usize = 64 * 1024;

/// What the handlers share: HQ's register, the same one the sync sessions
/// read, the read model, and HQ's replica (for decisions on quarantined
/// work, written as a sync session writes).
#[derive(Clone)]
pub(crate) struct ApiState {
    hq: Arc<Mutex<Hq>>,
    public_key: sync_core::identity::DevicePublicKey,
    pub(crate) read: Arc<ReadModel>,
    pub(crate) sync: HqReplica,
    /// HQ's store directory, whose blobs are the photos.
    pub(crate) photos: std::path::PathBuf,
    pub(crate) metrics: Arc<Metrics>,
    /// What HQ derived from photos (`<data>/photos`, beside the store).
    pub(crate) copies: Copies,
    /// The console's accounts and sessions.
    pub(crate) accounts: Arc<crate::accounts::Accounts>,
}

impl ApiState {
    pub(crate) fn new(
        hq: Arc<Mutex<Hq>>,
        read: Arc<ReadModel>,
        sync: HqReplica,
        photos: std::path::PathBuf,
        metrics: Arc<Metrics>,
        accounts: Arc<crate::accounts::Accounts>,
    ) -> Self {
        let public_key = hq.lock().unwrap_or_else(std::sync::PoisonError::into_inner).public_key();
        let copies = Copies::at(photos.parent().unwrap_or(&photos));
        Self { hq, public_key, read, sync, photos, metrics, copies, accounts }
    }

    /// HQ's state in a fresh data directory `dir` (with an admin token),
    /// for tests of the routes.
    #[cfg(test)]
    pub(crate) fn scratch(dir: &std::path::Path) -> Self {
        let mut hq = Hq::open(dir).expect("a fresh register");
        hq.ensure_admin_token(dir, 0).expect("an admin token");
        let (read, _) = ReadModel::open(dir).expect("a fresh read model");
        let hq = Arc::new(Mutex::new(hq));
        let sync =
            HqReplica::scratch(&dir.join("sync"), hq.lock().expect("the register").seed()).with_register(hq.clone());
        let metrics = Arc::new(Metrics::new(read.lag()));
        let accounts = Arc::new(crate::accounts::Accounts::open(dir).expect("the accounts"));
        ApiState::new(hq, Arc::new(read), sync, dir.join("sync"), metrics, accounts)
    }

    /// Runs `f` on the register on the blocking pool: its SQLite calls are
    /// synchronous, and admin calls are rare enough to take the lock whole.
    pub(crate) async fn with_hq<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Hq) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let hq = self.hq.clone();
        blocking(move || f(&mut hq.lock().unwrap_or_else(std::sync::PoisonError::into_inner))).await
    }

    /// HQ's quarantine as listed, read on the blocking pool.
    pub(crate) async fn quarantine(&self) -> Result<Vec<field_client::Quarantined>, ApiError> {
        let store = self.photos.clone();
        blocking(move || field_client::quarantined(&store).map_err(|e| ApiError::Internal(e.into()))).await
    }
}

/// Runs `f` on the blocking pool: file and SQLite reads stay off the async
/// workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(anyhow::anyhow!("request task failed: {e}")))?
}

/// The admin API's routes, with a body size limit.
pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/hq", get(hq_key))
        .route("/api/v1/credentials", get(list_credentials).post(issue_credential))
        .route("/api/v1/devices", get(devices))
        .route("/api/v1/revocations", get(current_revocations).post(revoke))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// What `serve` prints about the admin token: where it is, or how to get
/// a new one when its file is gone (an operator may have moved it away).
pub(crate) fn token_notice(data: &std::path::Path, created: bool) -> String {
    let path = register::admin_token_path(data);
    if created {
        format!("管理令牌：{}（首次启动已生成，仅所有者可读）", path.display())
    } else if path.exists() {
        format!("管理令牌：{}", path.display())
    } else {
        format!("管理令牌：文件 {} 已不在；如令牌遗失，请执行 fieldsync-server admin-token 重新生成", path.display())
    }
}

/// Proof that a request carries the current admin token: a handler that
/// takes it runs only for the admin.
pub(crate) struct Admin;

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
            .map(|(_, token)| token.trim().to_owned())
            .ok_or(ApiError::MissingToken)?;
        if state.with_hq(move |hq| Ok(hq.admin_token_matches(&token)?)).await? {
            Ok(Admin)
        } else {
            Err(ApiError::BadToken)
        }
    }
}

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// No `Authorization: Bearer` header.
    #[error("缺少管理令牌：请在请求头中加 Authorization: Bearer <令牌>（令牌在数据目录的 admin.token 中）")]
    MissingToken,
    /// A token that is not the current admin token.
    #[error("管理令牌无效或已被更换")]
    BadToken,
    /// The body is not the JSON the operation takes.
    #[error("请求内容无效（应为 JSON，字段见 /api/openapi.json）：{0}")]
    BadJson(String),
    /// The body is larger than [`MAX_BODY`].
    #[error("请求内容过大（上限 {} KiB）", MAX_BODY / 1024)]
    TooLarge,
    /// HQ refused the request.
    #[error(transparent)]
    Refused(#[from] RequestError),
    /// A query parameter is not acceptable; the text says which and why.
    #[error("{0}")]
    BadQuery(String),
    /// Nothing by that id.
    #[error("{0}")]
    NotFound(String),
    /// The request (with its body) took too long.
    #[error("请求超时：{0} 秒内没有收完请求内容")]
    Timeout(u64),
    /// The path exists, not with this method.
    #[error("该地址不支持此请求方法，见 /api/openapi.json")]
    MethodNotAllowed,
    /// A decision on quarantined work was not recorded.
    #[error(transparent)]
    Decide(DecideError),
    /// Storage failed; the details are logged, not sent.
    #[error("服务器内部错误，详情见服务器日志")]
    Internal(anyhow::Error),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingToken | ApiError::BadToken => StatusCode::UNAUTHORIZED,
            ApiError::BadJson(_) | ApiError::Refused(_) | ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Decide(error) => ApiError::decide_status(error),
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            ApiError::MissingToken => ErrorCode::MissingToken,
            ApiError::BadToken => ErrorCode::InvalidToken,
            ApiError::BadJson(_) => ErrorCode::InvalidJson,
            ApiError::TooLarge => ErrorCode::BodyTooLarge,
            ApiError::Internal(_) => ErrorCode::Internal,
            ApiError::BadQuery(_) => ErrorCode::InvalidQuery,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::Timeout(_) => ErrorCode::RequestTimeout,
            ApiError::Decide(error) => match error {
                DecideError::NotFound(_) => ErrorCode::NotFound,
                DecideError::Decided { .. } => ErrorCode::AlreadyDecided,
                DecideError::Form(_) => ErrorCode::InvalidDecision,
                DecideError::Refused { .. } => ErrorCode::CannotAccept,
                DecideError::Failed(_) => ErrorCode::Internal,
            },
            ApiError::Refused(refusal) => match refusal {
                RequestError::DeviceKey | RequestError::HqKey => ErrorCode::InvalidDeviceKey,
                RequestError::Name | RequestError::NameText(_) => ErrorCode::InvalidName,
                RequestError::Role(_) => ErrorCode::InvalidRole,
                RequestError::Campaign(_) => ErrorCode::InvalidCampaign,
                RequestError::Enterprise(_) => ErrorCode::InvalidEnterprise,
                RequestError::ScopeTooLarge => ErrorCode::ScopeTooLarge,
                RequestError::EnterpriseScope => ErrorCode::EnterpriseScopeRequired,
                RequestError::Days(_) => ErrorCode::InvalidDays,
                RequestError::Server(_) => ErrorCode::InvalidServer,
                RequestError::NothingToRevoke => ErrorCode::NothingToRevoke,
                RequestError::RevokesHq => ErrorCode::RevokesHq,
                RequestError::UnknownSerial(_) => ErrorCode::UnknownSerial,
                RequestError::UnknownDevice(_) => ErrorCode::UnknownDevice,
            },
        }
    }
}

impl From<HqError> for ApiError {
    fn from(error: HqError) -> Self {
        match error {
            HqError::Refused(refusal) => ApiError::Refused(refusal),
            HqError::Storage(error) => ApiError::Internal(error),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        ApiError::Internal(error)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::TooLarge;
        }
        // The innermost error is serde_json's, which names the field and
        // the position; the outer ones only repeat it.
        let mut cause: &dyn std::error::Error = &rejection;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        ApiError::BadJson(cause.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "admin API request failed");
        }
        if let ApiError::Decide(DecideError::Failed(error)) = &self {
            tracing::error!(%error, "a quarantine decision was not stored");
        }
        let status = self.status();
        let body = ErrorBody { error: self.code(), message: self.to_string() };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// An error: a stable code for programs and a message for people (Chinese).
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What kind of error.
    error: ErrorCode,
    /// What went wrong, in Chinese.
    #[schema(example = "设备公钥格式无效（应为 64 位十六进制，即设备上 field whoami 显示的公钥）")]
    message: String,
}

/// The stable error codes programs match on.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorCode {
    MissingToken,
    InvalidToken,
    InvalidJson,
    BodyTooLarge,
    InvalidDeviceKey,
    InvalidName,
    InvalidRole,
    InvalidCampaign,
    InvalidEnterprise,
    ScopeTooLarge,
    EnterpriseScopeRequired,
    InvalidDays,
    InvalidServer,
    NothingToRevoke,
    RevokesHq,
    UnknownSerial,
    UnknownDevice,
    InvalidQuery,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    InvalidDecision,
    AlreadyDecided,
    CannotAccept,
    Internal,
}

/// HQ's identity.
#[derive(Serialize, ToSchema)]
pub(crate) struct HqView {
    /// HQ's Ed25519 public key (64 hex digits), which devices pin at enrollment.
    public_key: String,
}

/// HQ's public key.
///
/// The key devices pin at enrollment. No token needed.
#[utoipa::path(get, path = "/api/v1/hq", tag = "hq", responses((status = 200, description = "HQ's key", body = HqView)))]
pub(crate) async fn hq_key(State(state): State<ApiState>) -> Json<HqView> {
    Json(HqView { public_key: state.public_key.to_string() })
}

/// A credential to issue.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueBody {
    /// The device's Ed25519 public key: 64 hex digits, as `field whoami` shows it.
    #[schema(example = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")]
    device: String,
    /// The person or station (at most 64 characters).
    #[schema(example = "张三")]
    name: String,
    /// `inspector`, `station`, `hq` or `enterprise` (the Chinese labels 检查员, 安监站, 总部, 企业 also work).
    #[schema(example = "inspector")]
    role: String,
    /// Campaign ids (`cmp-…`) the credential is limited to, at most 16. Empty or absent: every campaign.
    #[serde(default)]
    campaigns: Vec<String>,
    /// Unified social credit codes the credential is limited to, at most 16. Empty or absent: every
    /// enterprise. Required for role `enterprise`.
    #[serde(default)]
    enterprises: Vec<String>,
    /// Validity in days from now, 1 to 3650.
    #[schema(example = 30)]
    days: i64,
    /// HQ's sync (QUIC) address as devices reach it, `host:port`; written into the enrollment string.
    #[schema(example = "192.0.2.1:4433")]
    server: String,
}

impl From<IssueBody> for IssueForm {
    fn from(body: IssueBody) -> Self {
        IssueForm {
            device: body.device,
            name: body.name,
            role: body.role,
            campaigns: body.campaigns,
            enterprises: body.enterprises,
            days: body.days,
            server: body.server,
        }
    }
}

/// Which documents a credential covers.
#[derive(Serialize, ToSchema)]
pub(crate) struct ScopeView {
    /// Campaign ids; null means every campaign.
    campaigns: Option<Vec<String>>,
    /// Enterprise credit codes; null means every enterprise.
    enterprises: Option<Vec<String>>,
}

/// A credential as HQ signed it.
#[derive(Serialize, ToSchema)]
pub(crate) struct CredentialView {
    /// Serial number, unique at this HQ; revocations name it.
    #[schema(example = 2)]
    pub(crate) serial: u64,
    /// The device's public key (hex).
    pub(crate) device: String,
    /// The person or station.
    pub(crate) name: String,
    /// `inspector`, `station`, `hq` or `enterprise`.
    #[schema(example = "inspector")]
    pub(crate) role: String,
    /// What it covers.
    pub(crate) scope: ScopeView,
    /// Valid from (RFC 3339).
    #[schema(example = "2026-11-24T01:00:00Z")]
    pub(crate) not_before: String,
    /// Valid until (RFC 3339).
    #[schema(example = "2026-12-24T01:00:00Z")]
    pub(crate) not_after: String,
}

impl From<&Credential> for CredentialView {
    fn from(c: &Credential) -> Self {
        CredentialView {
            serial: c.serial,
            device: hex::encode(&c.device),
            name: c.name.clone(),
            role: c.role.as_str().to_owned(),
            scope: ScopeView {
                campaigns: c.scope.campaigns.as_ref().map(|set| set.iter().map(|id| id.as_str().to_owned()).collect()),
                enterprises: c
                    .scope
                    .enterprises
                    .as_ref()
                    .map(|set| set.iter().map(|code| code.as_str().to_owned()).collect()),
            },
            not_before: rfc3339(c.not_before),
            not_after: rfc3339(c.not_after),
        }
    }
}

/// A new credential and the enrollment string the device imports.
#[derive(Serialize, ToSchema)]
pub(crate) struct Issued {
    /// The credential.
    credential: CredentialView,
    /// `FS1:…`, for `field enroll` (short enough for a QR code).
    #[schema(example = "FS1:o2JocVgg…")]
    enrollment: String,
}

impl From<&Enrollment> for Issued {
    fn from(enrollment: &Enrollment) -> Self {
        Issued { credential: enrollment.credential.credential().into(), enrollment: enrollment.to_string() }
    }
}

/// Issues a credential for a device.
///
/// Returns the credential and the enrollment string the device imports with
/// `field enroll`. The same as `fieldsync-server issue`.
#[utoipa::path(
    post,
    path = "/api/v1/credentials",
    tag = "credentials",
    request_body = IssueBody,
    responses(
        (status = 201, description = "Issued and recorded", body = Issued),
        (status = 400, description = "Refused; nothing was issued", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn issue_credential(
    _: Admin,
    State(state): State<ApiState>,
    body: Result<Json<IssueBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Issued>), ApiError> {
    let Json(body) = body?;
    let enrollment = state.with_hq(move |hq| Ok(hq.issue(body.into(), crate::now_ms())?)).await?;
    let credential = enrollment.credential.credential();
    tracing::info!(serial = credential.serial, name = %credential.name, "credential issued over the admin API");
    Ok((StatusCode::CREATED, Json(Issued::from(&enrollment))))
}

/// One credential in the register.
#[derive(Serialize, ToSchema)]
pub(crate) struct RegisterEntry {
    /// The credential as issued.
    credential: CredentialView,
    /// When HQ issued it (RFC 3339).
    issued_at: String,
    /// Whether the current revocation list covers it (by serial or device).
    revoked: bool,
}

/// Every credential HQ issued.
#[derive(Serialize, ToSchema)]
pub(crate) struct Register {
    /// By serial, oldest first. Serial 1 is usually HQ's own credential.
    credentials: Vec<RegisterEntry>,
}

/// Lists the register.
///
/// Every credential HQ issued, with its revocation status.
#[utoipa::path(
    get,
    path = "/api/v1/credentials",
    tag = "credentials",
    responses(
        (status = 200, description = "The register", body = Register),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn list_credentials(_: Admin, State(state): State<ApiState>) -> Result<Json<Register>, ApiError> {
    let entries = state.with_hq(|hq| Ok(hq.register()?)).await?;
    let credentials = entries
        .iter()
        .map(|entry| RegisterEntry {
            credential: (&entry.credential).into(),
            issued_at: rfc3339(entry.issued_at),
            revoked: entry.revoked,
        })
        .collect();
    Ok(Json(Register { credentials }))
}

/// A device HQ looks after.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeviceView {
    /// Its newest credential.
    pub(crate) credential: CredentialView,
    /// `valid`, `expired` or `revoked` now; `credential_state_label` in Chinese.
    pub(crate) credential_state: String,
    pub(crate) credential_state_label: String,
    /// When its last sync session with HQ ended (RFC 3339); absent if it never synced.
    pub(crate) last_sync_at: Option<String>,
    /// Why that session failed (Chinese); absent if it ended well.
    pub(crate) last_error: Option<String>,
    /// Sync sessions so far, and how many failed.
    pub(crate) sessions: i64,
    pub(crate) failures: i64,
    /// Batches of work it delivered that HQ keeps aside, undecided
    /// (`GET /api/v1/quarantine`): work not yet taken.
    pub(crate) quarantined: usize,
}

/// Every device, by name.
#[derive(Serialize, ToSchema)]
pub(crate) struct Devices {
    devices: Vec<DeviceView>,
}

/// Lists the devices.
///
/// Every device HQ issued a credential to: its newest credential and
/// whether it is valid, when it last synced and how, and how much of what
/// it delivered waits in the quarantine. A station relay's own sessions are
/// listed; the tablets it serves appear once they sync with HQ directly.
#[utoipa::path(
    get,
    path = "/api/v1/devices",
    tag = "credentials",
    responses(
        (status = 200, description = "The devices", body = Devices),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn devices(_: Admin, State(state): State<ApiState>) -> Result<Json<Devices>, ApiError> {
    Ok(Json(Devices { devices: device_views(&state).await? }))
}

/// Every device HQ issued a credential to, as the API and the console show
/// it.
pub(crate) async fn device_views(state: &ApiState) -> Result<Vec<DeviceView>, ApiError> {
    let found = state.with_hq(|hq| Ok(hq.devices()?)).await?;
    let kept = state.quarantine().await?;
    let now = field_client::now_ms();
    let devices = found
        .iter()
        .map(|d| {
            let c = &d.credential;
            let key = hex::encode(&c.device);
            let (state, label) = if d.revoked {
                ("revoked", "已吊销")
            } else if c.not_after < now {
                ("expired", "已过期")
            } else {
                ("valid", "有效")
            };
            DeviceView {
                credential: c.into(),
                credential_state: state.to_owned(),
                credential_state_label: label.to_owned(),
                last_sync_at: d.last_at.map(rfc3339),
                last_error: d.last_error.clone(),
                sessions: d.sessions,
                failures: d.failures,
                quarantined: kept.iter().filter(|q| q.decision.is_none() && q.source == key).count(),
            }
        })
        .collect();
    Ok(devices)
}

/// What to revoke: credential serials, device keys, or both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeBody {
    /// Credential serials (each must have been issued).
    #[serde(default)]
    #[schema(example = json!([7]))]
    serials: Vec<u64>,
    /// Device public keys (hex): every credential of each device (a lost tablet).
    #[serde(default)]
    devices: Vec<String>,
}

/// HQ's revocation list, which travels to devices and stations with sync.
#[derive(Serialize, ToSchema)]
pub(crate) struct RevocationsView {
    /// Increases with every list; 0 when nothing was ever revoked.
    version: u64,
    /// When HQ signed it (RFC 3339); null when nothing was ever revoked.
    issued_at: Option<String>,
    /// Revoked credential serials.
    serials: Vec<u64>,
    /// Revoked device public keys (hex).
    devices: Vec<String>,
}

impl From<Option<RevocationList>> for RevocationsView {
    fn from(list: Option<RevocationList>) -> Self {
        let Some(list) = list else {
            return RevocationsView { version: 0, issued_at: None, serials: Vec::new(), devices: Vec::new() };
        };
        RevocationsView {
            version: list.version,
            issued_at: Some(rfc3339(list.issued_at)),
            serials: list.serials.into_iter().collect(),
            devices: list.devices.iter().map(hex::encode).collect(),
        }
    }
}

/// The current revocation list.
///
/// Version 0 with empty lists when nothing was ever revoked.
#[utoipa::path(
    get,
    path = "/api/v1/revocations",
    tag = "revocations",
    responses(
        (status = 200, description = "The current list", body = RevocationsView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn current_revocations(
    _: Admin,
    State(state): State<ApiState>,
) -> Result<Json<RevocationsView>, ApiError> {
    let list = state.with_hq(|hq| Ok(hq.revocation_list()?)).await?;
    Ok(Json(list.into()))
}

/// Revokes credentials and/or devices.
///
/// HQ signs a new list holding everything revoked so far. Every sync with HQ
/// uses it from now on; devices and stations receive it with their next
/// sync. The same as `fieldsync-server revoke`.
#[utoipa::path(
    post,
    path = "/api/v1/revocations",
    tag = "revocations",
    request_body = RevokeBody,
    responses(
        (status = 201, description = "The new list", body = RevocationsView),
        (status = 400, description = "Refused; no list was signed", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn revoke(
    _: Admin,
    State(state): State<ApiState>,
    body: Result<Json<RevokeBody>, JsonRejection>,
) -> Result<(StatusCode, Json<RevocationsView>), ApiError> {
    let Json(body) = body?;
    let form = RevokeForm { serials: body.serials, devices: body.devices };
    let list = state.with_hq(move |hq| Ok(hq.revoke(form, crate::now_ms())?)).await?;
    tracing::info!(version = list.version, "revocation list signed over the admin API");
    Ok((StatusCode::CREATED, Json(Some(list).into())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request};
    use serde_json::{Value, json};
    use sync_core::identity::DeviceKey;
    use tower::ServiceExt;

    struct App {
        _dir: tempfile::TempDir,
        router: Router,
        token: String,
        hq_key: String,
    }

    fn app() -> App {
        let dir = tempfile::TempDir::new().unwrap();
        let state = ApiState::scratch(dir.path());
        let token = std::fs::read_to_string(register::admin_token_path(dir.path())).unwrap().trim().to_owned();
        let hq_key = state.public_key.to_string();
        let router = crate::http::router(state);
        App { _dir: dir, router, token, hq_key }
    }

    impl App {
        async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
            let response = self.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
                assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
            }
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
            (status, serde_json::from_slice(&body).unwrap())
        }

        /// `body` is sent as JSON text as given, so tests can send broken JSON.
        async fn call(
            &self,
            method: Method,
            uri: &str,
            token: Option<&str>,
            body: Option<&str>,
        ) -> (StatusCode, Value) {
            let mut request = Request::builder().method(method).uri(uri);
            if let Some(token) = token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let request = match body {
                Some(body) => {
                    request.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_owned()))
                }
                None => request.body(Body::empty()),
            };
            self.send(request.unwrap()).await
        }

        async fn admin(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
            self.call(method, uri, Some(&self.token), body.map(|b| b.to_string()).as_deref()).await
        }

        async fn register(&self) -> Vec<Value> {
            let (status, body) = self.admin(Method::GET, "/api/v1/credentials", None).await;
            assert_eq!(status, StatusCode::OK);
            body["credentials"].as_array().unwrap().clone()
        }
    }

    fn device() -> DeviceKey {
        DeviceKey::from_seed([9; 32])
    }

    fn issue_body() -> Value {
        json!({
            "device": device().public().to_string(),
            "name": "张三",
            "role": "inspector",
            "campaigns": [format!("cmp-{}", "ab".repeat(16))],
            "days": 30,
            "server": "192.0.2.1:4433",
        })
    }

    fn is_chinese(message: &Value) -> bool {
        message.as_str().unwrap().chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    }

    #[tokio::test]
    async fn issue_list_and_revoke() {
        let app = app();
        let (status, hq) = app.call(Method::GET, "/api/v1/hq", None, None).await;
        assert_eq!(status, StatusCode::OK, "HQ's key needs no token");

        let (status, issued) = app.admin(Method::POST, "/api/v1/credentials", Some(issue_body())).await;
        assert_eq!(status, StatusCode::CREATED, "{issued}");
        let enrollment: Enrollment = issued["enrollment"].as_str().unwrap().parse().unwrap();
        assert_eq!(enrollment.hq.to_string(), hq["public_key"].as_str().unwrap());
        assert_eq!(enrollment.server, "192.0.2.1:4433");
        let credential = enrollment.verify(&device().public(), crate::now_ms()).unwrap();
        assert_eq!(issued["credential"]["serial"], credential.serial);
        assert_eq!(issued["credential"]["role"], "inspector");
        assert_eq!(
            issued["credential"]["scope"],
            json!({ "campaigns": [format!("cmp-{}", "ab".repeat(16))], "enterprises": null })
        );

        let register = app.register().await;
        assert_eq!(register.len(), 1);
        assert_eq!(register[0]["credential"], issued["credential"]);
        assert_eq!(register[0]["revoked"], false);

        let (status, list) = app.admin(Method::GET, "/api/v1/revocations", None).await;
        assert_eq!(
            (status, list["version"].clone(), list["issued_at"].clone()),
            (StatusCode::OK, json!(0), Value::Null)
        );
        let (status, list) = app.admin(Method::POST, "/api/v1/revocations", Some(json!({ "serials": [1] }))).await;
        assert_eq!(status, StatusCode::CREATED, "{list}");
        assert_eq!((list["version"].clone(), list["serials"].clone()), (json!(1), json!([1])));
        let device_hex = device().public().to_string();
        let body = json!({ "devices": [device_hex] });
        let (_, list) = app.admin(Method::POST, "/api/v1/revocations", Some(body)).await;
        assert_eq!((list["version"].clone(), list["devices"].clone()), (json!(2), json!([device_hex])));
        let (_, current) = app.admin(Method::GET, "/api/v1/revocations", None).await;
        assert_eq!(current, list);
        assert_eq!(app.register().await[0]["revoked"], true);
    }

    #[tokio::test]
    async fn admin_operations_need_the_current_token() {
        let app = app();
        let operations = [
            (Method::GET, "/api/v1/credentials", None),
            (Method::POST, "/api/v1/credentials", Some(issue_body().to_string())),
            (Method::GET, "/api/v1/revocations", None),
            (Method::POST, "/api/v1/revocations", Some(json!({ "serials": [1] }).to_string())),
        ];
        for (method, uri, body) in operations {
            let (status, error) = app.call(method.clone(), uri, None, body.as_deref()).await;
            assert_eq!((status, error["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("missing_token")), "{uri}");
            assert!(is_chinese(&error["message"]));
            let (status, error) = app.call(method.clone(), uri, Some("not-the-token"), body.as_deref()).await;
            assert_eq!((status, error["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")), "{uri}");
            let basic = Request::builder()
                .method(method)
                .uri(uri)
                .header(header::AUTHORIZATION, format!("Basic {}", app.token))
                .body(Body::empty())
                .unwrap();
            assert_eq!(app.send(basic).await.0, StatusCode::UNAUTHORIZED, "{uri}: only a bearer token");
        }
        assert!(app.register().await.is_empty(), "nothing was issued");
        let (_, list) = app.admin(Method::GET, "/api/v1/revocations", None).await;
        assert_eq!(list["version"], 0, "nothing was revoked");
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_get_the_documented_error_body() {
        let app = app();
        let (status, error) = app.call(Method::GET, "/api/v1/nothing", Some(&app.token), None).await;
        assert_eq!((status, error["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
        assert!(is_chinese(&error["message"]), "{error}");
        let (status, error) = app.call(Method::DELETE, "/api/v1/credentials", Some(&app.token), None).await;
        assert_eq!((status, error["error"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));
        assert!(is_chinese(&error["message"]), "{error}");
    }

    #[tokio::test]
    async fn bad_requests_are_refused_in_chinese_and_write_nothing() {
        let app = app();
        let with = |field: &str, value: Value| {
            let mut body = issue_body();
            body[field] = value;
            body.to_string()
        };
        let without = |field: &str| {
            let mut body = issue_body();
            body.as_object_mut().unwrap().remove(field);
            body.to_string()
        };
        let credentials = "/api/v1/credentials";
        let revocations = "/api/v1/revocations";
        let cases = [
            (credentials, with("device", json!("abc")), "invalid_device_key"),
            (credentials, with("name", json!(" ")), "invalid_name"),
            (credentials, with("name", json!("张三\u{202e}gnp.exe")), "invalid_name"),
            (credentials, with("name", json!("王五\u{200b}")), "invalid_name"),
            (credentials, with("name", json!("李四\u{0}")), "invalid_name"),
            (credentials, with("name", json!("赵六\n管理员")), "invalid_name"),
            (credentials, with("device", json!("00".repeat(32))), "invalid_device_key"),
            (credentials, with("device", json!(app.hq_key.clone())), "invalid_device_key"),
            (credentials, with("role", json!("boss")), "invalid_role"),
            (credentials, with("campaigns", json!(["cmp-nope"])), "invalid_campaign"),
            (credentials, with("enterprises", json!(["12345"])), "invalid_enterprise"),
            (credentials, with("campaigns", json!(vec![""; 17])), "scope_too_large"),
            (credentials, with("role", json!("enterprise")), "enterprise_scope_required"),
            (credentials, with("days", json!(0)), "invalid_days"),
            (credentials, with("days", json!(100_000)), "invalid_days"),
            (credentials, with("server", json!("nowhere")), "invalid_server"),
            (credentials, with("days", json!("30")), "invalid_json"),
            (credentials, with("campaign", json!([])), "invalid_json"),
            (credentials, without("device"), "invalid_json"),
            (credentials, "{\"device\": ".into(), "invalid_json"),
            (credentials, "[]".into(), "invalid_json"),
            (credentials, String::new(), "invalid_json"),
            (revocations, "{}".into(), "nothing_to_revoke"),
            (revocations, json!({ "serials": [1] }).to_string(), "unknown_serial"),
            (revocations, json!({ "serials": [-1] }).to_string(), "invalid_json"),
            (revocations, json!({ "devices": ["xyz"] }).to_string(), "invalid_device_key"),
            (revocations, json!({ "devices": [device().public().to_string()] }).to_string(), "unknown_device"),
        ];
        for (uri, body, code) in cases {
            let (status, error) = app.call(Method::POST, uri, Some(&app.token), Some(&body)).await;
            assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{body}: {error}");
            assert!(is_chinese(&error["message"]), "{error}");
        }
        let no_content_type = Request::post(credentials)
            .header(header::AUTHORIZATION, format!("Bearer {}", app.token))
            .body(Body::from(issue_body().to_string()))
            .unwrap();
        let (status, error) = app.send(no_content_type).await;
        assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")));

        let huge = with("name", json!("名".repeat(MAX_BODY)));
        let (status, error) = app.call(Method::POST, credentials, Some(&app.token), Some(&huge)).await;
        assert_eq!((status, error["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large")));
        assert!(is_chinese(&error["message"]));

        assert!(app.register().await.is_empty(), "nothing was issued");
        let (_, list) = app.admin(Method::GET, revocations, None).await;
        assert_eq!(list["version"], 0, "no list was signed");
        let (status, _) = app.admin(Method::POST, credentials, Some(issue_body())).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(app.register().await[0]["credential"]["serial"], 1, "refusals used no serial");
    }

    #[tokio::test]
    async fn served_openapi_document_matches_the_checked_in_one() {
        let app = app();
        let (status, refused) = app.call(Method::GET, "/api/openapi.json", None, None).await;
        assert_eq!((status, refused["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("missing_token")));
        let (status, served) = app.call(Method::GET, "/api/openapi.json", Some(&app.token), None).await;
        assert_eq!(status, StatusCode::OK);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/openapi.json");
        if std::env::var_os("FIELDSYNC_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, serde_json::to_string_pretty(&served).unwrap() + "\n").unwrap();
        }
        let published: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(served, published, "the API changed: regenerate with FIELDSYNC_WRITE_OPENAPI=1 and review the diff");
        assert_eq!(served["openapi"], "3.1.0");
    }

    /// The document and the router name the same operations: each documented
    /// one is routed (a request without a token reaches its handler).
    #[tokio::test]
    async fn every_documented_operation_is_routed() {
        let app = app();
        let document = serde_json::to_value(crate::http::openapi()).unwrap();
        let mut operations = 0;
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let protected = item[method.as_str().to_lowercase()]["security"].is_array();
                let (status, _) = app.call(method.clone(), path, None, None).await;
                let expected = if protected { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
                assert_eq!(status, expected, "{method} {path}");
                operations += 1;
            }
        }
        assert_eq!(operations, 20);
    }
}
