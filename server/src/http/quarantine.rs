//! HQ's quarantine over HTTP: the work it kept aside, and a person's
//! decision on one entry (accept as work from before its author's
//! revocation, or reject). Listing reads HQ's store read-only; a decision
//! goes through HQ's replica, as a sync session's write does.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sync_core::doc::rfc3339;
use utoipa::ToSchema;

use super::api::{Admin, ApiError, ApiState, ErrorBody};
use crate::sync::{DecideError, Verdict, outcome_label};

pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/quarantine", get(list))
        .route("/api/v1/quarantine/{id}/decision", post(decide))
        .with_state(state)
}

/// Work HQ kept aside, oldest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct Quarantine {
    entries: Vec<Entry>,
}

/// One batch of signed work kept aside.
#[derive(Serialize, ToSchema)]
pub(crate) struct Entry {
    id: i64,
    /// The document it belongs to.
    doc: String,
    /// The device that delivered it (hex public key).
    source: String,
    /// Why HQ kept it aside (Chinese).
    reason: String,
    /// How many changes were kept aside (absent: the whole batch, kept
    /// before this was recorded).
    changes: Option<usize>,
    /// When it arrived (RFC 3339, UTC).
    received_at: String,
    /// What was decided; absent while it waits for a person.
    decision: Option<DecisionView>,
}

/// A decision on kept-aside work.
#[derive(Serialize, ToSchema)]
pub(crate) struct DecisionView {
    /// `accepted`, `rejected`, or `stored` (the same work later arrived in a
    /// way HQ could take: nothing left to decide).
    outcome: String,
    /// The outcome in Chinese.
    label: String,
    /// Who decided.
    by: String,
    /// Why.
    note: String,
    /// When (RFC 3339, UTC).
    at: String,
}

/// Lists the work HQ kept aside, and what was decided.
#[utoipa::path(
    get,
    path = "/api/v1/quarantine",
    tag = "quarantine",
    responses(
        (status = 200, description = "The quarantine", body = Quarantine),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn list(_: Admin, State(state): State<ApiState>) -> Result<Json<Quarantine>, ApiError> {
    let rows = state.quarantine().await?;
    let entries = rows
        .into_iter()
        .map(|q| Entry {
            id: q.id,
            doc: q.doc,
            source: q.source,
            reason: q.reason,
            changes: q.changes,
            received_at: rfc3339(q.received_at),
            decision: q.decision.map(|d| DecisionView {
                label: outcome_label(&d.outcome).to_owned(),
                outcome: d.outcome,
                by: d.by,
                note: d.note,
                at: rfc3339(d.at),
            }),
        })
        .collect();
    Ok(Json(Quarantine { entries }))
}

/// A person's decision on one entry.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    /// `accept` (the work was made before its author's revocation: HQ
    /// checks it again and stores it, and it flows on) or `reject`.
    #[schema(example = "accept")]
    decision: String,
    /// Who decides (a name, at most 200 characters).
    #[schema(example = "王强")]
    by: String,
    /// Why (at most 5,000 characters).
    #[schema(example = "平板 11 月 25 日遗失，此前的记录经核对属实")]
    note: String,
}

/// What was recorded.
#[derive(Serialize, ToSchema)]
pub(crate) struct Decided {
    id: i64,
    /// `accepted`, `rejected`, or `stored` (accepted work HQ held already).
    outcome: String,
    /// The outcome in Chinese.
    label: String,
}

/// Decides one entry. Accepted work is checked again as a sync session
/// checks what arrives, except for when it was made; work that would make
/// its document invalid cannot be accepted (422), only rejected.
#[utoipa::path(
    post,
    path = "/api/v1/quarantine/{id}/decision",
    tag = "quarantine",
    params(("id" = i64, Path, description = "The entry")),
    request_body = DecisionBody,
    responses(
        (status = 200, description = "Recorded", body = Decided),
        (status = 400, description = "Bad decision, name or reason; nothing changed", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such entry", body = ErrorBody),
        (status = 409, description = "Decided already; nothing changed", body = ErrorBody),
        (status = 422, description = "The work cannot be accepted; nothing changed", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn decide(
    _: Admin,
    State(state): State<ApiState>,
    Path(id): Path<i64>,
    body: Result<Json<DecisionBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Decided>), ApiError> {
    let Json(body) = body?;
    let verdict = match body.decision.as_str() {
        "accept" => Verdict::Accept,
        "reject" => Verdict::Reject,
        other => return Err(ApiError::BadQuery(format!("决定无效：{other}（应为 accept 或 reject）"))),
    };
    let outcome = state.sync.decide(id, verdict, &body.by, &body.note).await.map_err(ApiError::Decide)?;
    let decided = Decided { id, outcome: outcome.to_owned(), label: outcome_label(outcome).to_owned() };
    Ok((StatusCode::OK, Json(decided)))
}

impl ApiError {
    pub(super) fn decide_status(error: &DecideError) -> StatusCode {
        match error {
            DecideError::NotFound(_) => StatusCode::NOT_FOUND,
            DecideError::Decided { .. } => StatusCode::CONFLICT,
            DecideError::Form(_) => StatusCode::BAD_REQUEST,
            DecideError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            DecideError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
