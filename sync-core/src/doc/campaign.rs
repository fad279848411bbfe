//! The campaign document: dates, team, enterprises, schedule, checklists.
//!
//! A campaign is created by one device (the team lead's, or HQ's) and shared
//! before the team goes out; the dossiers of its enterprises are derived
//! documents every device can open offline ([`crate::doc::dossier::create`]).

use automerge::ROOT;
use automerge::ReadDoc;
use automerge::transaction::Transaction;
use serde_json::{Value as Json, json};

use super::{ModelError, check_date, from_json, insert_record, map_at, put_value};
use crate::ids::{CreditCode, DocId, EntityId};
use crate::model::{Campaign, CampaignKind, Enterprise, SCHEMA_VERSION, ScheduleEntry, TeamMember};
use crate::zone::Zone;

/// Days between the last inspection day and the briefing meeting deadline.
pub const BRIEFING_DAYS: i8 = 3;

/// Writes a new campaign into an empty document.
pub fn create(
    tx: &mut Transaction<'_>,
    id: &DocId,
    name: &str,
    kind: CampaignKind,
    start_date: &str,
    end_date: &str,
) -> Result<(), ModelError> {
    if name.trim().is_empty() {
        return Err(ModelError::Empty("检查活动名称"));
    }
    if check_date(end_date)? < check_date(start_date)? {
        return Err(ModelError::Rule(format!("结束日期 {end_date} 早于开始日期 {start_date}")));
    }
    if tx.get(ROOT, "kind")?.is_some() {
        return Err(ModelError::Duplicate { what: "检查活动", id: id.to_string() });
    }
    let root = json!({
        "kind": "campaign",
        "schema_version": SCHEMA_VERSION,
        "id": id.as_str(),
        "name": name.trim(),
        "campaign_kind": kind.as_str(),
        "start_date": start_date,
        "end_date": end_date,
        "team": {},
        "enterprises": {},
        "schedule": {},
        "checklists": {},
    });
    crate::schema::document(crate::ids::DocKind::Campaign, &root).map_err(ModelError::Schema)?;
    if let Json::Object(fields) = root {
        for (key, value) in &fields {
            put_value(tx, &ROOT, key, value)?;
        }
    }
    Ok(())
}

/// Reads the campaign; the briefing deadline is derived from the end date.
pub fn read(doc: &impl ReadDoc) -> Result<Campaign, ModelError> {
    from_document(super::document_json(doc)?)
}

/// The campaign a document's JSON holds.
pub(crate) fn from_document(mut json: Json) -> Result<Campaign, ModelError> {
    super::known_version(&json)?;
    let end = json
        .get("end_date")
        .and_then(Json::as_str)
        .ok_or_else(|| ModelError::Malformed("检查活动缺少结束日期".into()))?;
    let deadline = check_date(end)?
        .checked_add(jiff::Span::new().days(BRIEFING_DAYS))
        .map_err(|_| ModelError::InvalidDate(end.to_owned()))?;
    if let Some(fields) = json.as_object_mut() {
        fields.insert("briefing_deadline".into(), Json::String(deadline.to_string()));
    }
    let campaign: Campaign = from_json(json)?;
    if campaign.kind != "campaign" {
        return Err(ModelError::Malformed(format!("不是检查活动：{}", campaign.kind)));
    }
    check_date(&campaign.start_date)?;
    for entry in campaign.schedule.values() {
        check_date(&entry.date)?;
    }
    zone(&campaign.time_zone)?;
    Ok(campaign)
}

/// The zone of IANA name `name`, or why it is refused.
fn zone(name: &str) -> Result<Zone, ModelError> {
    Zone::named(name).ok_or_else(|| {
        let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        ModelError::Rule(format!("时区无效：“{shown}”（应为时区数据库中的名称，如 Asia/Shanghai）"))
    })
}

/// Sets the time zone dates people read are shown in (an IANA name, e.g.
/// Asia/Shanghai).
pub fn set_time_zone(tx: &mut Transaction<'_>, name: &str) -> Result<(), ModelError> {
    let name = zone(name.trim())?.name().to_owned();
    put_value(tx, &ROOT, "time_zone", &Json::String(name))
}

/// Adds an enterprise; its dossier id is derived from the campaign and code.
pub fn add_enterprise(tx: &mut Transaction<'_>, campaign: &DocId, enterprise: &Enterprise) -> Result<(), ModelError> {
    if enterprise.name.trim().is_empty() {
        return Err(ModelError::Empty("企业名称"));
    }
    let code: &CreditCode = &enterprise.unified_social_credit_code;
    if enterprise.dossier_id != DocId::dossier(campaign, code) {
        return Err(ModelError::Rule("企业档案编号与检查活动不符".into()));
    }
    insert_record(tx, &["enterprises"], code.as_str(), "企业", enterprise)
}

/// Adds a team member.
pub fn add_member(tx: &mut Transaction<'_>, id: &EntityId, member: &TeamMember) -> Result<(), ModelError> {
    if member.name.trim().is_empty() {
        return Err(ModelError::Empty("姓名"));
    }
    insert_record(tx, &["team"], id.as_str(), "检查组成员", member)
}

/// Adds a schedule entry; the enterprise must be in the campaign.
pub fn add_schedule(tx: &mut Transaction<'_>, id: &EntityId, entry: &ScheduleEntry) -> Result<(), ModelError> {
    check_date(&entry.date)?;
    let enterprises = map_at(tx, &["enterprises"])?;
    if tx.get(&enterprises, entry.enterprise.as_str())?.is_none() {
        return Err(ModelError::NotFound { what: "企业", id: entry.enterprise.clone() });
    }
    insert_record(tx, &["schedule"], id.as_str(), "日程", entry)
}

/// Records that the campaign uses version `version` of a checklist.
pub fn use_checklist(tx: &mut Transaction<'_>, checklist: &str, version: u64) -> Result<(), ModelError> {
    let checklists = map_at(tx, &["checklists"])?;
    put_value(tx, &checklists, checklist, &Json::from(version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::edit;
    use automerge::Automerge;

    #[test]
    fn briefing_deadline_is_end_plus_three_days() {
        let id = DocId::new_campaign([3; 16]);
        let mut doc = Automerge::new();
        edit(&mut doc, 0, |tx| {
            create(tx, &id, "联合检查", CampaignKind::ConstructionJointInspection, "2026-11-30", "2026-12-01")
        })
        .unwrap();
        assert_eq!(read(&doc).unwrap().briefing_deadline, "2026-12-04");
        let mut other = Automerge::new();
        let err = edit(&mut other, 0, |tx| create(tx, &id, "x", CampaignKind::MineSurvey, "2026-12-02", "2026-12-01"));
        assert!(err.is_err());
    }

    #[test]
    fn the_time_zone_is_asia_shanghai_unless_set_and_only_a_known_one_is_taken() {
        let id = DocId::new_campaign([4; 16]);
        let mut doc = Automerge::new();
        edit(&mut doc, 0, |tx| create(tx, &id, "矿山调研", CampaignKind::MineSurvey, "2026-11-30", "2026-12-01"))
            .unwrap();
        assert_eq!(Zone::of(&read(&doc).unwrap()).name(), "Asia/Shanghai");
        edit(&mut doc, 1, |tx| set_time_zone(tx, "Asia/Urumqi")).unwrap();
        assert_eq!(read(&doc).unwrap().time_zone, "Asia/Urumqi");
        let err = edit(&mut doc, 2, |tx| set_time_zone(tx, "Mars/Olympus")).unwrap_err();
        assert!(err.to_string().contains("时区无效"), "{err}");
        assert_eq!(read(&doc).unwrap().time_zone, "Asia/Urumqi", "a refused zone changes nothing");
        // A document naming an unknown zone does not pass the validator.
        edit(&mut doc, 3, |tx| put_value(tx, &ROOT, "time_zone", &Json::String("Mars/Olympus".into()))).unwrap();
        let err = crate::validate::document(&id, &doc).unwrap_err();
        assert!(err.to_string().contains("时区无效"), "{err}");
    }
}
