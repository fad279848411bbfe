//! The briefing's files over HTTP: built on request from what HQ holds now
//! into `<data>/briefings/<campaign>/` (the same documents give the same
//! bytes, so a file fetched twice is the same file), and served with its
//! signed manifest and signature beside it. The API's call takes the token;
//! the console serves the same files to a signed-in person.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::api::{Admin, ApiError, ApiState, ErrorBody, blocking};
use super::query::{campaign_id, percent, read, shown};
use sync_core::ids::DocId;

/// The files of a briefing: the name in the URL, the file's own name, its
/// media type.
const FILES: &[(&str, &str, &str)] = &[
    ("deck.pptx", "通报培训会.pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
    ("deck.html", "通报培训会.html", "text/html; charset=utf-8"),
    ("notices.zip", "整改通知书.zip", "application/zip"),
];

/// One briefing built at a time: two would write the same files.
static BUILDING: Mutex<()> = Mutex::new(());

pub(crate) fn router(state: ApiState) -> Router {
    Router::new().route("/api/v1/campaigns/{id}/briefing/{file}", get(file)).with_state(state)
}

/// A file of a campaign's briefing (通报培训会), built from what HQ holds now.
///
/// `deck.pptx` (editable; charts are native charts with their data),
/// `deck.html` (one self-contained page; the browser's print gives a 16:9
/// PDF), `notices.zip` (a rectification notice per enterprise, .docx); each
/// also as `<file>.manifest.json` (the heads of every document it
/// was built from, the SHA-256 of the file and of its parts) and
/// `<file>.sig` (HQ's signature over the manifest, hex).
#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{id}/briefing/{file}",
    tag = "read",
    params(
        ("id" = String, Path, description = "The campaign (cmp-…)"),
        ("file" = String, Path, description = "deck.pptx, deck.html, notices.zip, or one of them followed by .manifest.json or .sig"),
    ),
    responses(
        (status = 200, description = "The file (Content-Disposition names it)",
            content(("application/vnd.openxmlformats-officedocument.presentationml.presentation"), ("text/html"), ("application/zip"), ("application/json"), ("text/plain"))),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such campaign at HQ, or no such file", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn file(
    _: Admin,
    State(state): State<ApiState>,
    Path((id, file)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if let Some(key) = params.keys().next() {
        return Err(ApiError::BadQuery(format!("不支持的参数：{}", shown(key))));
    }
    briefing_file(&state, &id, &file).await
}

/// File `file` of campaign `id`'s briefing, built now: the API's call, and
/// the console's.
pub(super) async fn briefing_file(state: &ApiState, id: &str, file: &str) -> Result<Response, ApiError> {
    let id = campaign_id(id)?;
    let (base, suffix) = match file.strip_suffix(".manifest.json") {
        Some(base) => (base, ".manifest.json"),
        None => file.strip_suffix(".sig").map_or((file, ""), |base| (base, ".sig")),
    };
    let Some((_, name, media)) = FILES.iter().find(|(url, _, _)| *url == base) else {
        return Err(ApiError::NotFound(format!(
            "通报材料中没有文件 {}（可下载 deck.pptx、deck.html、notices.zip）",
            shown(file)
        )));
    };
    let asked = id.clone();
    let held = read(state, move |conn| {
        Ok(conn.query_row("SELECT 1 FROM campaigns WHERE id = ?1", [&asked], |_| Ok(())).is_ok())
    });
    if !held.await? {
        return Err(ApiError::NotFound(format!("总部没有检查活动 {id}")));
    }
    let data = state.photos.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let campaign: DocId = id.parse().map_err(|_| ApiError::BadQuery(format!("检查活动编号无效：{id}")))?;
    let path = format!("{name}{suffix}");
    let bytes = blocking(move || {
        let _alone = BUILDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let out = data.join("briefings").join(campaign.as_str());
        crate::briefing::write(&data, &campaign, &out).map_err(ApiError::Internal)?;
        std::fs::read(out.join(&path)).map_err(|e| ApiError::Internal(e.into()))
    })
    .await?;
    let media = match suffix {
        ".manifest.json" => "application/json",
        ".sig" => "text/plain; charset=utf-8",
        _ => media,
    };
    let own = format!("{name}{suffix}");
    let disposition = format!("attachment; filename=\"{file}\"; filename*=UTF-8''{}", percent(&own));
    Ok(([(header::CONTENT_TYPE, media.to_owned()), (header::CONTENT_DISPOSITION, disposition)], bytes).into_response())
}
