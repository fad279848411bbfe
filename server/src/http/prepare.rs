//! Preparing the briefing in the console: the typical hazards the deck
//! will show — people's picks in their order, with speaker notes, else the
//! default rule's — and the files to download. Choosing, moving, taking off
//! and annotating are edits of the briefing document, signed by the
//! console's device for the signed-in account (`HqReplica::edit_for`), so
//! two people preparing it at once merge like any two devices; each is in
//! the audit log.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sync_core::deck::Body;
use sync_core::doc::{self, ModelError};
use sync_core::ids::{DocId, EntityId};
use sync_core::model::Pick;

use super::api::{ApiError, ApiState, blocking};
use super::console::{PageForm, Viewer, carries_token, page_error, rendered, stale_form};
use super::query::campaign_id;
use crate::accounts::Session;
use crate::sync::EditError;

pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/campaigns/{id}/briefing", get(page))
        .route("/campaigns/{id}/briefing/picks", post(change))
        .with_state(state)
}

/// A typical hazard as the page lists it.
struct Row {
    /// The pick's id, when people chose it.
    pick: Option<String>,
    /// The hazard's id.
    hazard_id: String,
    title: String,
    enterprise: String,
    level: String,
    notes: String,
    photo: Option<String>,
}

#[derive(Template)]
#[template(path = "briefing_prepare.html")]
struct PreparePage {
    viewer: Session,
    id: String,
    name: String,
    /// Whether people chose (else the default rule did).
    chosen: bool,
    rows: Vec<Row>,
    slides: usize,
}

/// The briefing's typical hazards and downloads.
async fn page(State(state): State<ApiState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let campaign = match campaign_id(id.as_str()).and_then(|id| id.parse::<DocId>().map_err(|_| ApiError::BadQuery(id)))
    {
        Ok(campaign) => campaign,
        Err(error) => return page_error(&error),
    };
    let data = data_dir(&state);
    let built = blocking(move || {
        let sources = crate::briefing::gather(&data, &campaign).map_err(|e| ApiError::NotFound(format!("{e:#}")))?;
        let deck = crate::briefing::deck(&sources);
        let chosen = sources.briefing.picks.values().any(|p| !p.removed);
        let rows = deck
            .slides
            .iter()
            .filter_map(|s| match &s.body {
                Body::Hazard(t) => Some(t),
                _ => None,
            })
            .map(|t| {
                let pick = sources
                    .briefing
                    .picks
                    .iter()
                    .filter(|(_, p)| !p.removed && p.hazard == t.hazard)
                    .min_by(|a, b| a.1.position.total_cmp(&b.1.position).then(a.0.cmp(b.0)));
                Row {
                    pick: pick.map(|(id, _)| id.clone()),
                    hazard_id: t.hazard.rsplit('/').next().unwrap_or_default().to_owned(),
                    title: t.title.clone(),
                    enterprise: t.enterprise.clone(),
                    level: t.level.clone(),
                    notes: pick.map(|(_, p)| p.notes.clone()).unwrap_or_default(),
                    photo: t.photo.clone(),
                }
            })
            .collect();
        Ok((sources.campaign.name.clone(), chosen, rows, deck.slides.len() + 1))
    });
    match built.await {
        Ok((name, chosen, rows, slides)) => {
            rendered(StatusCode::OK, &PreparePage { viewer: viewer.session, id, name, chosen, rows, slides })
        }
        Err(error) => page_error(&error),
    }
}

fn data_dir(state: &ApiState) -> std::path::PathBuf {
    state.photos.parent().map(std::path::Path::to_path_buf).unwrap_or_default()
}

#[derive(Deserialize)]
struct PickForm {
    #[serde(default)]
    csrf: String,
    /// `add`, `up`, `down`, `remove`, or `notes`.
    #[serde(default)]
    action: String,
    /// The hazard (`<dossier>/<hazard>`), to add.
    #[serde(default)]
    hazard: String,
    /// The pick, for the others.
    #[serde(default)]
    pick: String,
    #[serde(default)]
    notes: String,
}

/// Changes the typical hazards: a signed edit of the briefing document for
/// the signed-in account, recorded in the audit log.
async fn change(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(id): Path<String>,
    PageForm(form): PageForm<PickForm>,
) -> Response {
    if !carries_token(&viewer, &form.csrf) {
        return stale_form();
    }
    let campaign = match campaign_id(&id).and_then(|id| id.parse::<DocId>().map_err(|_| ApiError::BadQuery(id))) {
        Ok(campaign) => campaign,
        Err(error) => return page_error(&error),
    };
    let account = viewer.session.user.clone();
    let briefing = DocId::briefing(&campaign);
    let new_id = match field_client::new_entity_id() {
        Ok(id) => id,
        Err(e) => return page_error(&ApiError::Internal(e.into())),
    };
    let action = form.action.clone();
    let (hazard, pick, notes) = (form.hazard.trim().to_owned(), form.pick.clone(), form.notes.clone());
    if action == "add" && !hazard_in(&state, &campaign, &hazard).await {
        return page_error(&ApiError::BadQuery("这条隐患不属于本检查活动，未做任何更改。".into()));
    }
    let detail = match action.as_str() {
        "add" => format!("选为典型隐患：{hazard}"),
        "remove" => format!("移出典型隐患：{pick}"),
        "up" | "down" => format!("调整典型隐患顺序：{pick}"),
        _ => format!("修改典型隐患备注：{pick}"),
    };
    let edited = state
        .sync
        .edit_for(&briefing, &account, move |tx| {
            let current = doc::briefing::read(tx)?;
            let live: Vec<(&String, &Pick)> = {
                let mut live: Vec<_> = current.picks.iter().filter(|(_, p)| !p.removed).collect();
                live.sort_by(|a, b| a.1.position.total_cmp(&b.1.position).then(a.0.cmp(b.0)));
                live
            };
            let find = |pick: &str| -> Result<(usize, EntityId), ModelError> {
                let at = live.iter().position(|(id, _)| id.as_str() == pick);
                let id: Option<EntityId> = pick.parse().ok();
                at.zip(id).ok_or_else(|| ModelError::NotFound { what: "典型隐患", id: pick.to_owned() })
            };
            match action.as_str() {
                "add" => {
                    if live.iter().any(|(_, p)| p.hazard == hazard) {
                        return Err(ModelError::Rule("这条隐患已是典型隐患".into()));
                    }
                    let position = live.last().map_or(1.0, |(_, p)| p.position + 1.0);
                    let pick = Pick { hazard, position, notes: String::new(), removed: false };
                    doc::briefing::add_pick(tx, &new_id, &pick)
                }
                "remove" => doc::briefing::modify_pick(tx, &find(&pick)?.1, |p| {
                    p.removed = true;
                    Ok(())
                }),
                "up" | "down" => {
                    let (at, id) = find(&pick)?;
                    // Between the two neighbours it moves past: one number
                    // written, so concurrent moves never drop a pick.
                    let position = match action.as_str() {
                        "up" if at >= 2 => (live[at - 2].1.position + live[at - 1].1.position) / 2.0,
                        "up" if at == 1 => live[0].1.position - 1.0,
                        "down" if at + 2 < live.len() => (live[at + 1].1.position + live[at + 2].1.position) / 2.0,
                        "down" if at + 1 < live.len() => live[at + 1].1.position + 1.0,
                        _ => return Ok(()),
                    };
                    doc::briefing::modify_pick(tx, &id, |p| {
                        p.position = position;
                        Ok(())
                    })
                }
                "notes" => doc::briefing::modify_pick(tx, &find(&pick)?.1, |p| {
                    p.notes = notes;
                    Ok(())
                }),
                other => Err(ModelError::Rule(format!("未知的操作：{other}"))),
            }
        })
        .await;
    match edited {
        Ok(()) => {}
        Err(EditError::Model(e)) => return page_error(&ApiError::BadQuery(format!("{e}，未做任何更改。"))),
        Err(EditError::NotFound(_)) => {
            return page_error(&ApiError::NotFound(format!("总部没有检查活动 {campaign} 的通报材料文档")));
        }
        Err(e @ EditError::Refused(_)) => return page_error(&ApiError::BadQuery(e.to_string())),
        Err(e) => return page_error(&ApiError::Internal(e.into())),
    }
    let (accounts, user) = (state.accounts.clone(), viewer.session.user.clone());
    let recorded = blocking(move || {
        accounts.record(&user, "准备通报材料", &detail, field_client::now_ms()).map_err(ApiError::Internal)
    });
    if let Err(error) = recorded.await {
        return page_error(&error);
    }
    Redirect::to(&format!("/campaigns/{campaign}/briefing")).into_response()
}

/// Whether `hazard` (`<dossier>/<hazard>`) is a finding of `campaign` HQ holds.
async fn hazard_in(state: &ApiState, campaign: &DocId, hazard: &str) -> bool {
    let Some((dossier, id)) = hazard.split_once('/') else { return false };
    let asked = (campaign.to_string(), dossier.to_owned(), id.to_owned());
    let found = super::query::read(state, move |conn| {
        Ok(conn
            .query_row(
                "SELECT 1 FROM hazards WHERE campaign_id = ?1 AND dossier_id = ?2 AND id = ?3 AND NOT deleted",
                [&asked.0, &asked.1, &asked.2],
                |_| Ok(()),
            )
            .is_ok())
    });
    found.await.unwrap_or(false)
}
