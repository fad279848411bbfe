//! The briefing document (通报培训会): sections that reference findings,
//! with notes and an order chosen by people, and the typical hazards
//! chosen for slides of their own (picks), with speaker notes.
//!
//! Order is a number per section or pick, not a list, so two people moving
//! different ones offline never duplicate or drop one. The picks map is
//! made by the first pick (briefings began without it): two made at once
//! are read as one (`UNION_MAPS`).

use automerge::transaction::{Transactable, Transaction};
use automerge::{Automerge, ObjType, ROOT, ReadDoc};
use serde_json::json;

use super::{ModelError, genesis, insert_record, modify_record};
use crate::ids::{DocId, EntityId};
use crate::model::{Briefing, BriefingSection, Pick, SCHEMA_VERSION};

/// The deterministic first state of the briefing of `campaign`.
pub fn create(campaign: &DocId) -> Result<Automerge, ModelError> {
    let id = DocId::briefing(campaign);
    let root = json!({
        "kind": "briefing",
        "schema_version": SCHEMA_VERSION,
        "id": id.as_str(),
        "campaign_id": campaign.as_str(),
        "sections": {},
    });
    genesis(&id, root.as_object().ok_or_else(|| ModelError::Malformed("root".into()))?)
}

/// Reads the briefing.
pub fn read(doc: &impl ReadDoc) -> Result<Briefing, ModelError> {
    from_document(super::document_json(doc)?)
}

/// The briefing a document's JSON holds.
pub(crate) fn from_document(json: serde_json::Value) -> Result<Briefing, ModelError> {
    super::known_version(&json)?;
    let briefing: Briefing = super::from_json(json)?;
    if briefing.kind != "briefing" {
        return Err(ModelError::Malformed(format!("不是通报材料：{}", briefing.kind)));
    }
    Ok(briefing)
}

/// Adds a section.
pub fn add_section(tx: &mut Transaction<'_>, id: &EntityId, section: &BriefingSection) -> Result<(), ModelError> {
    if section.title.trim().is_empty() {
        return Err(ModelError::Empty("章节标题"));
    }
    insert_record(tx, &["sections"], id.as_str(), "章节", section)
}

/// Changes a section (title, notes, position, findings shown).
pub fn modify_section<R>(
    tx: &mut Transaction<'_>,
    id: &EntityId,
    change: impl FnOnce(&mut BriefingSection) -> Result<R, ModelError>,
) -> Result<R, ModelError> {
    modify_record(tx, &["sections", id.as_str()], "章节", change, |_, new| {
        if new.title.trim().is_empty() { Err(ModelError::Empty("章节标题")) } else { Ok(()) }
    })
}

/// Chooses a typical hazard for a slide of its own.
pub fn add_pick(tx: &mut Transaction<'_>, id: &EntityId, pick: &Pick) -> Result<(), ModelError> {
    if tx.get(ROOT, "picks")?.is_none() {
        tx.put_object(ROOT, "picks", ObjType::Map)?;
    }
    insert_record(tx, &["picks"], id.as_str(), "典型隐患", pick)
}

/// Changes a pick (its position, notes, or taking it off the deck).
pub fn modify_pick<R>(
    tx: &mut Transaction<'_>,
    id: &EntityId,
    change: impl FnOnce(&mut Pick) -> Result<R, ModelError>,
) -> Result<R, ModelError> {
    modify_record(tx, &["picks", id.as_str()], "典型隐患", change, |old, new| {
        if old.hazard == new.hazard {
            Ok(())
        } else {
            Err(ModelError::Rule("不能改变已选典型隐患所指的隐患".into()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::edit;
    use std::collections::BTreeMap;

    #[test]
    fn sections_round_trip_in_position_order() {
        let campaign = DocId::new_campaign([4; 16]);
        let mut doc = create(&campaign).unwrap();
        for (i, title) in ["概况", "典型隐患"].iter().enumerate() {
            let section = BriefingSection {
                title: (*title).into(),
                position: i as f64,
                notes: String::new(),
                findings: BTreeMap::new(),
            };
            edit(&mut doc, 1, |tx| add_section(tx, &EntityId::new(1, i as u128), &section)).unwrap();
        }
        let id = EntityId::new(1, 0);
        edit(&mut doc, 2, |tx| {
            modify_section(tx, &id, |s| {
                s.position = 5.0;
                Ok(())
            })
        })
        .unwrap();
        let mut sections: Vec<_> = read(&doc).unwrap().sections.into_values().collect();
        sections.sort_by(|a, b| a.position.total_cmp(&b.position));
        assert_eq!(sections[0].title, "典型隐患");
    }
}
