//! One document's rows in the read model: a campaign's row and its
//! enterprises, or a dossier's hazards, 四不放过 reviews, document checks
//! and conflicts. Projecting replaces every row the document had, so
//! applying the newest version of a document is enough; its hazards'
//! history only grows (a change already there is left as it is).

use std::collections::BTreeMap;

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};
use sync_core::doc::conflicts;
use sync_core::ids::DocId;
use sync_core::model::{Campaign, Dossier};
use sync_core::rectification::{self, Loop};
use sync_core::validate::Typed;
use sync_core::zone::Zone;

use super::Read;
use crate::photos::PhotoMeta;

/// Replaces the rows of `doc` with its current ones; for a dossier, `read`
/// holds what is read from the document itself (conflicts, history).
/// Briefings and checklists have none.
pub(super) fn document(conn: &Connection, doc: &Typed, read: &Read) -> Result<()> {
    match doc {
        Typed::Campaign(campaign) => campaign_rows(conn, campaign),
        Typed::Dossier(dossier) => {
            conflict_rows(conn, dossier, read)?;
            history_rows(conn, dossier, read)?;
            dossier_rows(conn, dossier)
        }
        Typed::Briefing(_) | Typed::Checklist(_) => Ok(()),
        // Kept by the store; projected once HQ's server knows its layout.
        Typed::Newer(version) => {
            tracing::warn!(version, "a document of a newer layout is kept but not shown; update the server");
            Ok(())
        }
    }
}

/// Records that document `id` is projected as of `heads`.
pub(super) fn heads(conn: &Connection, id: &DocId, heads: &[u8]) -> Result<()> {
    conn.execute("INSERT OR REPLACE INTO projected (doc_id, heads) VALUES (?1, ?2)", params![id.as_str(), heads])?;
    Ok(())
}

fn campaign_rows(conn: &Connection, c: &Campaign) -> Result<()> {
    let id = c.id.to_string();
    let zone = Zone::of(c);
    let before: Option<String> =
        conn.query_row("SELECT time_zone FROM campaigns WHERE id = ?1", [&id], |r| r.get(0)).optional()?;
    conn.execute(
        "INSERT INTO campaigns (id, name, kind, start_date, end_date, time_zone) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET name = ?2, kind = ?3, start_date = ?4, end_date = ?5, time_zone = ?6",
        params![id, c.name, c.campaign_kind.as_str(), c.start_date, c.end_date, zone.name()],
    )?;
    if before.as_deref() != Some(zone.name()) {
        found_on_again(conn, &id, &zone)?;
    }
    conn.execute("DELETE FROM enterprises WHERE campaign_id = ?1", [&id])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO enterprises (campaign_id, code, name, domain, project, address, dossier_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for e in c.enterprises.values() {
        insert.execute(params![
            id,
            e.unified_social_credit_code.as_str(),
            e.name,
            e.domain.as_str(),
            e.project,
            e.address,
            e.dossier_id.as_str()
        ])?;
    }
    Ok(())
}

/// The days the hazards of campaign `id` were found on, read again in
/// `zone`: its dossiers may have been projected before the campaign (in
/// the default zone), or the campaign's zone changed.
fn found_on_again(conn: &Connection, id: &str, zone: &Zone) -> Result<()> {
    let mut select = conn.prepare_cached("SELECT dossier_id, id, found_at FROM hazards WHERE campaign_id = ?1")?;
    let rows =
        select.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
    let mut update = conn.prepare_cached("UPDATE hazards SET found_on = ?3 WHERE dossier_id = ?1 AND id = ?2")?;
    for row in rows {
        let (dossier, hazard, found_at) = row?;
        update.execute(params![dossier, hazard, day(zone, &found_at)])?;
    }
    Ok(())
}

/// The day of `time` in `zone`; the stored text if it is not a time.
fn day(zone: &Zone, time: &str) -> String {
    zone.day(time).unwrap_or_else(|| time.to_owned())
}

/// What in a dossier waits for a person: fields holding concurrent values
/// (`kind` `field`), and hazards whose merged state breaks a rule or whose
/// rectification steps disagree (`rule`).
fn conflict_rows(conn: &Connection, d: &Dossier, read: &Read) -> Result<()> {
    let dossier_id = d.id.to_string();
    conn.execute("DELETE FROM conflicts WHERE dossier_id = ?1", [&dossier_id])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO conflicts (dossier_id, n, campaign_id, enterprise_code, kind, record, path, field, label,
             critical, vals, writers, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    let (campaign, enterprise) = (d.campaign_id.as_str(), d.enterprise.as_str());
    let mut n = 0;
    for c in &read.conflicts {
        n += 1;
        let values = serde_json::to_string(&c.values)?;
        let writers: Vec<Vec<String>> = c
            .writers
            .iter()
            .map(|actors| {
                let shown = |a| read.signers.get(a).map_or_else(|| "未知作者".to_owned(), super::Author::shown);
                actors.iter().map(shown).collect()
            })
            .collect();
        let writers = serde_json::to_string(&writers)?;
        let shown: Vec<String> = c.values.iter().map(|v| conflicts::display(&c.field, v)).collect();
        let message = format!("{}有同时写入的不同值：{}", c.label, shown.join(" / "));
        insert.execute(params![
            dossier_id, n, campaign, enterprise, "field", c.record, c.path, c.field, c.label, c.critical, values,
            writers, message
        ])?;
    }
    for issue in conflicts::rule_issues(d) {
        n += 1;
        insert.execute(params![
            dossier_id,
            n,
            campaign,
            enterprise,
            "rule",
            issue.hazard,
            None::<String>,
            None::<String>,
            "规则",
            true,
            "[]",
            "[]",
            issue.message
        ])?;
    }
    Ok(())
}

/// Adds the hazard changes `read` holds that are not there yet.
fn history_rows(conn: &Connection, d: &Dossier, read: &Read) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO history (dossier_id, hazard_id, change, at_ms, device, author, account, created,
             fields) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let dossier_id = d.id.as_str();
    for c in &read.changes {
        let signer = read.signers.get(&c.actor);
        let device = signer.map(|s| s.device.as_str());
        let holder = signer.and_then(|s| s.holder.as_ref());
        let author = holder.map(|h| h.name.as_str());
        // Anyone can write a message: only an HQ device's names an account.
        let account = c.account.as_deref().filter(|_| holder.is_some_and(|h| h.hq));
        let fields = serde_json::to_string(&c.fields)?;
        insert.execute(params![
            dossier_id,
            c.hazard,
            c.hash.to_string(),
            c.at_ms,
            device,
            author,
            account,
            c.created,
            fields
        ])?;
    }
    Ok(())
}

/// A dossier's 四不放过 reviews and document checks.
fn review_rows(conn: &Connection, d: &Dossier) -> Result<()> {
    let dossier_id = d.id.to_string();
    conn.execute("DELETE FROM reviews WHERE dossier_id = ?1", [&dossier_id])?;
    conn.execute("DELETE FROM document_checks WHERE dossier_id = ?1", [&dossier_id])?;
    let mut review = conn.prepare_cached(
        "INSERT INTO reviews (id, dossier_id, campaign_id, enterprise_code, accident_date, accident_summary,
             report_ref, items) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (id, r) in &d.accident_reviews {
        let (date, summary, report) = (&r.accident_date, &r.accident_summary, &r.report_ref);
        let items = serde_json::to_string(&r.items)?;
        review.execute(params![id, dossier_id, d.campaign_id.as_str(), d.enterprise, date, summary, report, items])?;
    }
    let mut check = conn.prepare_cached(
        "INSERT INTO document_checks (id, dossier_id, campaign_id, enterprise_code, document_type, name, result,
             expires_on, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (id, c) in &d.document_checks {
        check.execute(params![
            id,
            dossier_id,
            d.campaign_id.as_str(),
            d.enterprise,
            c.document_type,
            c.name,
            c.result.as_str(),
            c.expires_on,
            c.note
        ])?;
    }
    Ok(())
}

/// Keeps what was read from photo `sha`.
pub(super) fn photo_meta(conn: &Connection, sha: &str, m: &PhotoMeta) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO photo_meta (sha256, decodable, format, width, height, taken_at, lat, lon, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![sha, m.decodable, m.format, m.width, m.height, m.taken_at, m.lat, m.lon, m.note],
    )?;
    Ok(())
}

fn dossier_rows(conn: &Connection, d: &Dossier) -> Result<()> {
    review_rows(conn, d)?;
    let dossier_id = d.id.to_string();
    conn.execute("DELETE FROM hazards WHERE dossier_id = ?1", [&dossier_id])?;
    conn.execute("DELETE FROM photos WHERE dossier_id = ?1", [&dossier_id])?;
    let mut photo = conn.prepare_cached(
        "INSERT OR IGNORE INTO photos (dossier_id, hazard_id, sha256, after, campaign_id, enterprise_code, file_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    // The campaign's zone once it is projected; the default until then.
    let zone: Option<String> = conn
        .query_row("SELECT time_zone FROM campaigns WHERE id = ?1", [d.campaign_id.as_str()], |r| r.get(0))
        .optional()?;
    let zone = zone.and_then(|z| Zone::named(&z)).unwrap_or_default();
    let mut insert = conn.prepare_cached(
        "INSERT INTO hazards (id, dossier_id, campaign_id, enterprise_code, title, description, hazard_kind,
             accident_type, level, criterion, location, lat, lon, crs, legal_basis, inspector, found_at,
             checklist_item, deleted, status, mode, deadline, owner, measures, rectified_by, rectified_at,
             verifier, verified_at, photos, photos_after, record, found_on)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
             ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)",
    )?;
    for (hazard_id, h) in &d.hazards {
        let lp = Loop::of(&h.rectification);
        let (state, plan) = (&lp.state, lp.state.plan.as_ref());
        let verification = state.verification.as_ref();
        let after: BTreeMap<&String, &String> = rectification::photos_after(&h.rectification).collect();
        let taken = h.photos.iter().map(|p| (p, false)).chain(after.iter().map(|(s, f)| ((*s, *f), true)));
        for ((sha, file_name), after) in taken {
            photo.execute(params![
                dossier_id,
                hazard_id,
                sha,
                after,
                d.campaign_id.as_str(),
                d.enterprise,
                file_name
            ])?;
        }
        let gps = h.location.gps.as_ref();
        insert.execute(params![
            hazard_id,
            dossier_id,
            d.campaign_id.as_str(),
            d.enterprise,
            h.title,
            h.description,
            h.hazard_kind.as_str(),
            h.accident_type.code,
            h.level.as_str(),
            h.major_hazard_criterion,
            h.location.text,
            gps.map(|g| g.lat),
            gps.map(|g| g.lon),
            gps.map(|g| g.crs.as_str()),
            h.legal_basis,
            h.inspector,
            h.found_at,
            h.checklist_item,
            h.deleted,
            state.status.as_str(),
            plan.map(|p| p.mode.as_str()),
            plan.and_then(|p| p.deadline.as_deref()),
            plan.map_or("", |p| p.owner.as_str()),
            plan.map_or("", |p| p.measures.as_str()),
            (!state.reports.is_empty()).then(|| state
                .reports
                .iter()
                .map(|r| r.rectified_by.as_str())
                .collect::<Vec<_>>()
                .join("、")),
            state.reports.iter().filter_map(|r| r.at.as_deref()).max(),
            verification.map(|v| v.verifier.as_str()),
            verification.and_then(|v| v.at.as_deref()),
            serde_json::to_string(&h.photos)?,
            serde_json::to_string(&after)?,
            serde_json::to_string(h)?,
            day(&zone, &h.found_at),
        ])?;
    }
    Ok(())
}
