//! What HQ holds, for people: campaigns, progress against the KPIs,
//! hazards. Answered from the read model on the blocking pool, each query on
//! its own read-only connection: never through the sync sessions' lock.
//! Parameters are checked here; a bad one is a 400 that names it in Chinese.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use sync_core::codes::AccidentType;
use sync_core::ids::{CreditCode, DocId};
use sync_core::model::{HazardLevel, RectificationStatus};

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::api::{Admin, ApiError, ApiState, ErrorBody};
use crate::export::{self, ExportFormat};
use crate::read::query::{
    self, CampaignSummary, ConflictView, Cursor, CutOff, DocumentCheckView, HazardDetail, HazardFilter, HazardPage,
    Progress, ReviewView, Sort,
};

/// A page holds at most this many hazards.
const MAX_PAGE: u32 = 500;
/// Text searched for is at most this many characters.
const MAX_TEXT: usize = 100;

/// The query routes.
pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/campaigns", get(campaigns))
        .route("/api/v1/campaigns/{id}/progress", get(progress))
        .route("/api/v1/campaigns/{id}/register", get(register))
        .route("/api/v1/campaigns/{id}/reviews", get(reviews))
        .route("/api/v1/campaigns/{id}/document-checks", get(document_checks))
        .route("/api/v1/campaigns/{id}/conflicts", get(conflicts))
        .route("/api/v1/hazards", get(hazards))
        .route("/api/v1/hazards/{id}", get(hazard))
        .with_state(state)
}

/// Runs `f` on a read-only connection of the read model, on the blocking pool.
pub(super) async fn read<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&rusqlite::Connection) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let read = state.read.clone();
    super::api::blocking(move || read.reader().and_then(|conn| f(&conn)).map_err(ApiError::Internal)).await
}

/// Every campaign.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Campaigns {
    campaigns: Vec<CampaignSummary>,
}

/// Lists the campaigns HQ holds.
///
/// The latest first, with how many enterprises and hazards HQ holds of each.
#[utoipa::path(
    get,
    path = "/api/v1/campaigns",
    tag = "read",
    responses(
        (status = 200, description = "The campaigns", body = Campaigns),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn campaigns(_: Admin, State(state): State<ApiState>) -> Result<Json<Campaigns>, ApiError> {
    let campaigns = read(&state, query::campaigns).await?;
    Ok(Json(Campaigns { campaigns }))
}

pub(super) fn campaign_id(text: &str) -> Result<String, ApiError> {
    text.parse::<DocId>()
        .ok()
        .filter(|id| id.kind() == sync_core::ids::DocKind::Campaign)
        .map(|id| id.to_string())
        .ok_or_else(|| ApiError::BadQuery(format!("检查活动编号无效：{}（应为 cmp- 开头）", shown(text))))
}

/// A value shown back in a message: at most 40 characters, control
/// characters left out.
pub(super) fn shown(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(40).collect()
}

/// A cut-off: `YYYY-MM-DD` (the end of that day in the campaign's zone) or
/// RFC 3339.
fn cut_off(text: &str) -> Result<CutOff, ApiError> {
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return Ok(CutOff::Day(date));
    }
    let at: jiff::Timestamp = text
        .parse()
        .map_err(|_| ApiError::BadQuery(format!("截止时间无效：{}（应为 YYYY-MM-DD 或 RFC 3339）", shown(text))))?;
    Ok(CutOff::At(at))
}

/// A campaign's enterprises against the KPIs.
///
/// Per enterprise: hazards found (target ≥ 50), recommended checklist items
/// recorded (≥ 150) and the rectification rate (≥ 80%), as of a cut-off
/// (`as_of`, default now), each with its definition.
#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{id}/progress",
    tag = "read",
    params(
        ("id" = String, Path, description = "The campaign (cmp-…)"),
        ("as_of" = Option<String>, Query, description = "Cut-off: YYYY-MM-DD (the end of that day in the campaign's time zone) or RFC 3339; default now"),
    ),
    responses(
        (status = 200, description = "Progress", body = Progress),
        (status = 400, description = "Bad id or cut-off", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such campaign at HQ", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn progress(
    _: Admin,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Progress>, ApiError> {
    known_params(&params, &["as_of"])?;
    let id = campaign_id(&id)?;
    let as_of = match params.get("as_of") {
        Some(text) => cut_off(text)?,
        None => CutOff::At(jiff::Timestamp::now()),
    };
    let campaign = id.clone();
    match read(&state, move |conn| query::progress(conn, &campaign, &as_of)).await? {
        Some(progress) => Ok(Json(progress)),
        None => Err(ApiError::NotFound(format!("总部没有检查活动 {id}"))),
    }
}

/// Answers `question` about campaign `id` from the read model: 400 for a
/// bad id, 404 if HQ holds no such campaign.
async fn per_campaign<T: Send + 'static>(
    state: &ApiState,
    id: &str,
    question: fn(&rusqlite::Connection, &str) -> anyhow::Result<Option<T>>,
) -> Result<T, ApiError> {
    let id = campaign_id(id)?;
    let campaign = id.clone();
    let answer = read(state, move |conn| question(conn, campaign.as_str())).await?;
    answer.ok_or_else(|| ApiError::NotFound(format!("总部没有检查活动 {id}")))
}

/// A campaign's 四不放过 reviews.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Reviews {
    reviews: Vec<ReviewView>,
}

/// A campaign's 四不放过 reviews of past accidents.
///
/// By enterprise, then accident date; each with its four items, how many
/// were judged 不符合 and how many are not judged yet.
#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{id}/reviews",
    tag = "read",
    params(("id" = String, Path, description = "The campaign (cmp-…)")),
    responses(
        (status = 200, description = "The reviews", body = Reviews),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such campaign at HQ", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn reviews(
    _: Admin,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Reviews>, ApiError> {
    Ok(Json(Reviews { reviews: per_campaign(&state, &id, query::reviews).await? }))
}

/// A campaign's document checks.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct DocumentChecks {
    checks: Vec<DocumentCheckView>,
}

/// A campaign's document-compliance checks (证照资料检查).
///
/// By enterprise, then document type; `gap` marks every result but 合规.
#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{id}/document-checks",
    tag = "read",
    params(("id" = String, Path, description = "The campaign (cmp-…)")),
    responses(
        (status = 200, description = "The checks", body = DocumentChecks),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such campaign at HQ", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn document_checks(
    _: Admin,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<DocumentChecks>, ApiError> {
    Ok(Json(DocumentChecks { checks: per_campaign(&state, &id, query::document_checks).await? }))
}

/// A campaign's conflicts needing review.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Conflicts {
    conflicts: Vec<ConflictView>,
}

/// A campaign's conflicts needing review (待审核冲突).
///
/// Fields of a dossier holding values two devices wrote at once, and
/// hazards whose merged state breaks a rule or whose rectification steps
/// disagree; safety-critical first.
#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{id}/conflicts",
    tag = "read",
    params(("id" = String, Path, description = "The campaign (cmp-…)")),
    responses(
        (status = 200, description = "The conflicts", body = Conflicts),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such campaign at HQ", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn conflicts(
    _: Admin,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Conflicts>, ApiError> {
    Ok(Json(Conflicts { conflicts: per_campaign(&state, &id, query::conflicts).await? }))
}

/// A campaign's hazard register, as a file.
///
/// CSV (UTF-8 with BOM, default), XLSX (a summary sheet, then one sheet per
/// enterprise), JSON, or a ZIP of the XLSX with every photo the register
/// names; the columns of DOMAIN.md, deleted findings left out.
#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{id}/register",
    tag = "read",
    params(
        ("id" = String, Path, description = "The campaign (cmp-…)"),
        ("format" = Option<String>, Query, description = "csv (default), xlsx, json, or zip (the XLSX with every photo)"),
    ),
    responses(
        (status = 200, description = "The register as a file (Content-Disposition names it)",
            content(("text/csv"), ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), ("application/json"), ("application/zip"))),
        (status = 400, description = "Bad id or format", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such campaign at HQ", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn register(
    _: Admin,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    register_file(&state, &id, &params).await
}

/// Campaign `id`'s register as a file in the format `params` asks, whoever
/// may download it asked: the API's call, and the console's.
pub(super) async fn register_file(
    state: &ApiState,
    id: &str,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    known_params(params, &["format"])?;
    let id = campaign_id(id)?;
    let format = match params.get("format").map(String::as_str) {
        None => ExportFormat::Csv,
        Some(name) => ExportFormat::parse(name).ok_or_else(|| {
            ApiError::BadQuery(format!("导出格式无效：{}（应为 csv / xlsx / json / zip）", shown(name)))
        })?,
    };
    let (campaign, photos) = (id.clone(), state.photos.clone());
    let written = read(state, move |conn| {
        let Some(register) = query::register(conn, &campaign)? else { return Ok(None) };
        Ok(Some((export::register(&register, format, &photos)?, export::file_name(&register, format))))
    })
    .await?;
    let Some((bytes, name)) = written else { return Err(ApiError::NotFound(format!("总部没有检查活动 {id}"))) };
    let ascii = format!("register.{}", format.extension());
    let disposition = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", percent(&name));
    Ok(([(header::CONTENT_TYPE, format.media_type().to_owned()), (header::CONTENT_DISPOSITION, disposition)], bytes)
        .into_response())
}

/// `text` percent-encoded (RFC 3986 unreserved characters kept): for a
/// header's `filename*` (RFC 5987), and a query string.
pub(super) fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Refuses parameters the operation does not take (a misspelt filter
/// would otherwise list everything).
fn known_params(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => {
            Err(ApiError::BadQuery(format!("不支持的查询参数：{}（可用：{}）", shown(unknown), known.join("、"))))
        }
        None => Ok(()),
    }
}

fn date(name: &str, text: &str) -> Result<String, ApiError> {
    text.parse::<jiff::civil::Date>()
        .map(|d| d.to_string())
        .map_err(|_| ApiError::BadQuery(format!("{name} 日期无效：{}（应为 YYYY-MM-DD）", shown(text))))
}

const HAZARD_PARAMS: &[&str] = &[
    "campaign",
    "enterprise",
    "level",
    "status",
    "accident_type",
    "inspector",
    "from",
    "to",
    "q",
    "include_deleted",
    "sort",
    "limit",
    "cursor",
];

/// The filter the query string asks for.
pub(super) fn hazard_filter(params: &HashMap<String, String>) -> Result<HazardFilter, ApiError> {
    known_params(params, HAZARD_PARAMS)?;
    let get = |name: &str| params.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let bad = |what: &str, text: &str| ApiError::BadQuery(format!("{what}无效：{}", shown(text)));
    let sort = match get("sort") {
        None => Sort::default(),
        Some(t) => Sort::parse(t).ok_or_else(|| bad(&format!("排序方式（可用：{}）", Sort::names()), t))?,
    };
    Ok(HazardFilter {
        campaign: get("campaign").map(campaign_id).transpose()?,
        enterprise: get("enterprise")
            .map(|t| t.parse::<CreditCode>().map(|c| c.to_string()).map_err(|_| bad("统一社会信用代码", t)))
            .transpose()?,
        level: get("level")
            .map(|t| HazardLevel::parse(t).ok_or_else(|| bad("隐患等级（general / major）", t)))
            .transpose()?,
        status: get("status").map(|t| RectificationStatus::parse(t).ok_or_else(|| bad("整改状态", t))).transpose()?,
        accident_type: get("accident_type")
            .map(|t| AccidentType::gb6441_1986(t).map(|a| a.code).map_err(|_| bad("事故类型代码（01–20）", t)))
            .transpose()?,
        inspector: get("inspector").map(|t| shown(t).trim().to_owned()),
        from: get("from").map(|t| date("from", t)).transpose()?,
        to: get("to").map(|t| date("to", t)).transpose()?,
        text: get("q")
            .map(|t| match t.chars().count() {
                n if n > MAX_TEXT => Err(ApiError::BadQuery(format!("搜索文字过长（{n} 字，上限 {MAX_TEXT} 字）"))),
                _ => Ok(t.to_owned()),
            })
            .transpose()?,
        include_deleted: match get("include_deleted") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(bad("include_deleted（true / false）", other)),
        },
        limit: match get("limit") {
            None => 50,
            Some(t) => t
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| ApiError::BadQuery(format!("每页条数无效：{}（应为 1–{MAX_PAGE}）", shown(t))))?,
        },
        sort,
        after: get("cursor")
            .map(|t| {
                Cursor::decode(t)
                    .filter(|c| c.sorts(sort))
                    .ok_or_else(|| bad("翻页游标（请使用同一排序下上一页返回的 next）", t))
            })
            .transpose()?,
    })
}

/// Lists hazards.
///
/// Filtered, in the order `sort` asks (the latest found first by default),
/// a page at a time (`limit`, default 50, at most 500; pass the previous
/// page's `next` as `cursor`). Deleted hazards only with
/// `include_deleted=true`.
#[utoipa::path(
    get,
    path = "/api/v1/hazards",
    tag = "read",
    params(
        ("campaign" = Option<String>, Query, description = "Campaign id (cmp-…)"),
        ("enterprise" = Option<String>, Query, description = "统一社会信用代码"),
        ("level" = Option<String>, Query, description = "general / major (or 一般 / 重大)"),
        ("status" = Option<String>, Query, description = "Rectification status, e.g. open, closed"),
        ("accident_type" = Option<String>, Query, description = "GB 6441-1986 code, 01–20"),
        ("inspector" = Option<String>, Query, description = "Inspector's name, exactly"),
        ("from" = Option<String>, Query, description = "Found on or after (YYYY-MM-DD, in the campaign's time zone)"),
        ("to" = Option<String>, Query, description = "Found on or before (YYYY-MM-DD, in the campaign's time zone)"),
        ("q" = Option<String>, Query, description = "Words in the title, description or location (≤ 100 characters)"),
        ("include_deleted" = Option<bool>, Query, description = "Also deleted hazards"),
        ("sort" = Option<String>, Query, description = "newest (default), oldest, major (major hazards first, then newest) or deadline (earliest rectification deadline first, none last)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The previous page's `next`"),
    ),
    responses(
        (status = 200, description = "A page of hazards", body = HazardPage),
        (status = 400, description = "A bad parameter, named in the message", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn hazards(
    _: Admin,
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<HazardPage>, ApiError> {
    let filter = hazard_filter(&params)?;
    Ok(Json(read(&state, move |conn| query::hazards(conn, &filter)).await?))
}

/// One hazard.
///
/// As HQ holds it, merged from every device, with its photos and its
/// rectification steps.
#[utoipa::path(
    get,
    path = "/api/v1/hazards/{id}",
    tag = "read",
    params(("id" = String, Path, description = "The hazard's id (26-character ULID)")),
    responses(
        (status = 200, description = "The hazard, with its rectification steps", body = HazardDetail),
        (status = 400, description = "Not a hazard id", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such hazard at HQ", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn hazard(
    _: Admin,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<HazardDetail>, ApiError> {
    let id: sync_core::ids::EntityId =
        id.parse().map_err(|_| ApiError::BadQuery(format!("隐患编号无效：{}（应为 26 位）", shown(&id))))?;
    let key = id.to_string();
    match read(&state, move |conn| query::hazard(conn, &key)).await? {
        Some(hazard) => Ok(Json(hazard)),
        None => Err(ApiError::NotFound(format!("总部没有隐患 {id}"))),
    }
}
