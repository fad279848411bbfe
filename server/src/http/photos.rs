//! Photos at HQ over HTTP: the original (the evidence, byte for byte), its
//! thumbnail and screen-size copy, and what HQ read from it (EXIF time and
//! place, size; or why it is no image).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use sync_core::ids::PhotoId;

use super::api::{Admin, ApiError, ApiState, ErrorBody, blocking};
use crate::photos::{PhotoMeta, Size};

pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/photos/{sha}", get(photo))
        .route("/api/v1/photos/{sha}/meta", get(meta))
        .with_state(state)
}

fn photo_id(sha: &str) -> Result<PhotoId, ApiError> {
    sha.parse().map_err(|_| ApiError::BadQuery("照片编号无效（应为 64 位小写十六进制 SHA-256）".into()))
}

/// A photo.
///
/// The original as the device took it (`size` absent), or a JPEG copy
/// (`size=thumb`: at most 320 pixels a side; `size=screen`: at most 1600).
/// Copies are made shortly after the photo arrives; a photo that is not a
/// decodable image has none.
#[utoipa::path(
    get,
    path = "/api/v1/photos/{sha}",
    tag = "read",
    params(
        ("sha" = String, Path, description = "The photo's SHA-256 (64 lowercase hex digits)"),
        ("size" = Option<String>, Query, description = "`thumb` or `screen`; absent: the original"),
    ),
    responses(
        (status = 200, description = "The image", content_type = "image/jpeg", body = Vec<u8>),
        (status = 400, description = "Bad name or size", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "HQ does not hold it, or it has no such copy (yet)", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn photo(
    _: Admin,
    State(state): State<ApiState>,
    Path(sha): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    photo_bytes(&state, &sha, &params).await
}

/// Photo `sha` (or its copy of the size `params` asks), whoever may see it
/// asked: the API's photo call, and the console's.
pub(super) async fn photo_bytes(
    state: &ApiState,
    sha: &str,
    params: &HashMap<String, String>,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let photo = photo_id(sha)?;
    if let Some(unknown) = params.keys().find(|k| *k != "size") {
        return Err(ApiError::BadQuery(format!("不支持的参数：{}", super::query::shown(unknown))));
    }
    let size = match params.get("size") {
        None => None,
        Some(text) => Some(Size::parse(text).ok_or_else(|| {
            ApiError::BadQuery(format!("尺寸无效：{}（应为 thumb 或 screen）", super::query::shown(text)))
        })?),
    };
    let (store, copies) = (state.photos.clone(), state.copies.clone());
    let read = move || -> Result<Vec<u8>, ApiError> {
        let original = field_client::blob_path(&store, &photo.to_string());
        if !original.exists() {
            return Err(ApiError::NotFound(format!("总部没有照片 {photo}")));
        }
        let Some(size) = size else {
            return std::fs::read(&original).map_err(|e| ApiError::Internal(e.into()));
        };
        match (std::fs::read(copies.path(&photo, size)), copies.meta(&photo)) {
            (Ok(bytes), _) => Ok(bytes),
            (Err(_), Some(meta)) => {
                Err(ApiError::NotFound(meta.note.unwrap_or_else(|| "这张照片没有缩略图，仅有原件".into())))
            }
            (Err(_), None) => Err(ApiError::NotFound("缩略图尚未生成，请稍后再试".into())),
        }
    };
    let bytes = blocking(read).await?;
    let kind = match image::guess_format(&bytes) {
        Ok(image::ImageFormat::Jpeg) => "image/jpeg",
        Ok(image::ImageFormat::Png) => "image/png",
        _ => "application/octet-stream",
    };
    Ok(([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "private, max-age=31536000, immutable")], bytes))
}

/// What HQ read from a photo.
///
/// Whether it is a decodable image, its size, and the capture time and GPS
/// its EXIF carries (when present).
#[utoipa::path(
    get,
    path = "/api/v1/photos/{sha}/meta",
    tag = "read",
    params(("sha" = String, Path, description = "The photo's SHA-256 (64 lowercase hex digits)")),
    responses(
        (status = 200, description = "What was read", body = PhotoMeta),
        (status = 400, description = "Bad name", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "Not read (yet), or not held", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn meta(
    _: Admin,
    State(state): State<ApiState>,
    Path(sha): Path<String>,
) -> Result<Json<PhotoMeta>, ApiError> {
    let photo = photo_id(&sha)?;
    let copies = state.copies.clone();
    let meta = blocking(move || Ok(copies.meta(&photo))).await?;
    meta.map(Json).ok_or_else(|| ApiError::NotFound(format!("总部尚未读取照片 {photo}（未收到，或稍后再试）")))
}
