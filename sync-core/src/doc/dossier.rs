//! The enterprise dossier (一企一档): hazards with their rectification,
//! 四不放过 reviews, document checks and site visits.
//!
//! Edits are functions over an open [`Transaction`]; run them inside
//! [`super::edit`]. Each validates the record it produces, so a bad edit
//! rolls the whole transaction back.

use automerge::transaction::{Transactable, Transaction};
use automerge::{Automerge, ReadDoc};
use serde_json::json;

use super::{ModelError, check_date, genesis, insert_record, map_at, modify_record, read_at};
use crate::codes;
use crate::codes::AccidentType;
use crate::ids::{CreditCode, DocId, EntityId};
use crate::model::{
    AccidentReview, ChecklistItem, DocumentCheck, Dossier, GeoPoint, Hazard, HazardKind, HazardLevel, Location,
    Rectification, RectificationStatus, ReviewItemKind, SCHEMA_VERSION, SiteVisit, Step,
};
use crate::rectification::{self, Loop, Signer};
use crate::zone::Zone;

/// What an inspector says of a hazard, each part optional: the fields of
/// `field hazard add` and `field hazard edit`.
#[derive(Clone, Debug, Default)]
pub struct HazardInput {
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Kind.
    pub kind: Option<HazardKind>,
    /// GB 6441-1986 accident type code (01–20).
    pub accident_type: Option<String>,
    /// Level.
    pub level: Option<HazardLevel>,
    /// Major-hazard criterion clause id.
    pub criterion: Option<String>,
    /// Where, in words.
    pub location: Option<String>,
    /// The sub-contractor whose work it is in.
    pub subcontractor: Option<String>,
    /// Where, as a GPS point.
    pub gps: Option<GeoPoint>,
    /// The clause it breaks.
    pub basis: Option<String>,
}

impl HazardInput {
    /// Applies what was given to `h`. Lowering the level to general drops
    /// the criterion, unless one is given.
    pub fn apply(self, h: &mut Hazard) -> Result<(), ModelError> {
        if let Some(v) = self.title {
            h.title = v;
        }
        if let Some(v) = self.description {
            h.description = v;
        }
        if let Some(v) = self.kind {
            h.hazard_kind = v;
        }
        if let Some(v) = self.accident_type {
            h.accident_type = AccidentType::gb6441_1986(&v)?;
        }
        if let Some(v) = self.level {
            h.level = v;
            if v == HazardLevel::General && self.criterion.is_none() {
                h.major_hazard_criterion = None;
            }
        }
        if let Some(v) = self.criterion {
            codes::criterion(&v)?;
            h.major_hazard_criterion = Some(v);
        }
        if let Some(v) = self.location {
            h.location.text = v;
        }
        if let Some(v) = self.subcontractor {
            h.subcontractor = v;
        }
        if let Some(v) = self.gps {
            h.location.gps = Some(v);
        }
        if let Some(v) = self.basis {
            h.legal_basis = v;
        }
        Ok(())
    }

    /// Writes hazard `id`'s safety-critical fields this input gives (level,
    /// criterion) even where they already hold that value. A write of the
    /// same value is otherwise no write at all, so an inspector confirming
    /// 一般 while a colleague writes 重大 would leave no trace and the
    /// colleague's value would stand unreviewed; written, the two are
    /// concurrent values of the field, a conflict to decide. (Automerge
    /// skips a put of the value a field holds, so the field is cleared and
    /// written again, in the same change.)
    pub fn confirm(&self, tx: &mut Transaction<'_>, id: &EntityId) -> Result<(), ModelError> {
        let obj = map_at(tx, &["hazards", id.as_str()])?;
        let critical =
            [("level", self.level.map(|l| l.as_str().to_owned())), ("major_hazard_criterion", self.criterion.clone())];
        for (key, value) in critical {
            if let Some(value) = value {
                tx.delete(&obj, key)?;
                tx.put(&obj, key, value)?;
            }
        }
        Ok(())
    }
}

/// A new hazard that `inspector` found at `found_at` (RFC 3339), in a
/// campaign kept in `zone` (the day it was found is recorded in it): from
/// the checklist item `template` (its id and the item) or from scratch,
/// when the accident type must be given; then `input` applies. An item's
/// major-hazard criterion is offered, not imposed: it is taken only when the
/// inspector judges the hazard major and names no criterion.
pub fn new_hazard(
    input: HazardInput,
    template: Option<(String, ChecklistItem)>,
    inspector: String,
    found_at: String,
    zone: &Zone,
) -> Result<Hazard, ModelError> {
    let found_on = zone.day(&found_at).ok_or_else(|| ModelError::InvalidDate(found_at.clone()))?;
    let mut hazard = Hazard {
        subcontractor: String::new(),
        title: String::new(),
        description: String::new(),
        hazard_kind: HazardKind::UnsafeCondition,
        accident_type: AccidentType::gb6441_1986("20")?,
        level: HazardLevel::General,
        major_hazard_criterion: None,
        location: Location { text: String::new(), gps: None },
        legal_basis: String::new(),
        photos: Default::default(),
        inspector,
        found_at,
        found_on,
        checklist_item: None,
        deleted: false,
        rectification: Rectification::default(),
    };
    match template {
        Some((item_id, t)) => {
            hazard.title = t.title;
            hazard.description = t.description;
            hazard.hazard_kind = t.hazard_kind;
            hazard.accident_type = t.accident_type;
            hazard.legal_basis = t.legal_basis;
            hazard.checklist_item = Some(item_id);
            if input.level == Some(HazardLevel::Major) && input.criterion.is_none() {
                hazard.major_hazard_criterion = t.major_hazard_criterion;
            }
        }
        None if input.accident_type.is_none() => {
            return Err(ModelError::Rule(
                "请用 --accident-type 填写事故类型代码（01–20），或用 --from-checklist 从清单带入".into(),
            ));
        }
        None => {}
    }
    input.apply(&mut hazard)?;
    Ok(hazard)
}

/// How many hazards a dossier records (deleted ones left out) and how many
/// of those are not yet closed (销号).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Hazards recorded.
    pub hazards: usize,
    /// Of them, not closed.
    pub open: usize,
}

/// The [`Tally`] of `dossier`.
pub fn tally(dossier: &Dossier) -> Tally {
    let live = dossier.hazards.values().filter(|h| !h.deleted);
    live.fold(Tally::default(), |t, h| Tally {
        hazards: t.hazards + 1,
        open: t.open + usize::from(Loop::of(&h.rectification).state.status != RectificationStatus::Closed),
    })
}

/// The deterministic first state of the dossier of `enterprise` in `campaign`.
pub fn create(campaign: &DocId, enterprise: &CreditCode) -> Result<Automerge, ModelError> {
    let id = DocId::dossier(campaign, enterprise);
    let root = json!({
        "kind": "enterprise_dossier",
        "schema_version": SCHEMA_VERSION,
        "id": id.as_str(),
        "campaign_id": campaign.as_str(),
        "enterprise": enterprise.as_str(),
        "site_visits": {},
        "hazards": {},
        "accident_reviews": {},
        "document_checks": {},
    });
    genesis(&id, root.as_object().ok_or_else(|| ModelError::Malformed("root".into()))?)
}

/// Reads the whole dossier.
pub fn read(doc: &impl ReadDoc) -> Result<Dossier, ModelError> {
    from_document(super::document_json(doc)?)
}

/// The dossier a document's JSON holds.
pub(crate) fn from_document(json: serde_json::Value) -> Result<Dossier, ModelError> {
    super::known_version(&json)?;
    let dossier: Dossier = super::from_json(json)?;
    if dossier.kind != "enterprise_dossier" {
        return Err(ModelError::Malformed(format!("不是企业档案：{}", dossier.kind)));
    }
    Ok(dossier)
}

/// Reads one hazard.
pub fn hazard(doc: &impl ReadDoc, id: &EntityId) -> Result<Hazard, ModelError> {
    read_at(doc, &["hazards", id.as_str()]).map_err(|_| ModelError::NotFound { what: "隐患", id: id.to_string() })
}

/// Ids of the records of a collection (`hazards`, `accident_reviews`, …),
/// without reading them.
pub fn record_ids(doc: &impl ReadDoc, collection: &str) -> Result<Vec<String>, ModelError> {
    let records = map_at(doc, &[collection])?;
    Ok(doc.keys(&records).collect())
}

/// Checks a hazard's values on their own: codes, dates, GPS. A merged
/// document must pass this for every hazard or it is not stored.
pub fn check_values(h: &Hazard) -> Result<(), ModelError> {
    h.accident_type.validate()?;
    if let Some(clause) = &h.major_hazard_criterion {
        codes::criterion(clause)?;
    }
    if let Some(gps) = &h.location.gps {
        let ok = (-90.0..=90.0).contains(&gps.lat) && (-180.0..=180.0).contains(&gps.lon);
        if !ok {
            return Err(ModelError::InvalidGps { lat: gps.lat, lon: gps.lon });
        }
    }
    if !h.found_on.is_empty() {
        check_found_on(h)?;
    }
    let r = &h.rectification;
    for deadline in r.deadline.iter().chain(r.steps.values().filter_map(|s| s.deadline.as_ref())) {
        check_date(deadline)?;
    }
    // Photo keys name files in the blob store: only SHA-256 hex is accepted,
    // so no document can smuggle a path.
    if let Some(bad) = photo_keys(h).find(|k| !crate::ids::is_blob_name(k)) {
        return Err(ModelError::Rule(format!("照片编号无效：{bad}")));
    }
    Ok(())
}

/// A hazard's recorded day is a date, and the day of its `found_at` in some
/// time zone (UTC-12 to UTC+14: within a day of the UTC date).
fn check_found_on(h: &Hazard) -> Result<(), ModelError> {
    check_date(&h.found_on)?;
    let day_in = |zone: &str| Zone::named(zone).and_then(|z| z.day(&h.found_at));
    let (earliest, latest) = (day_in("Etc/GMT+12"), day_in("Etc/GMT-14"));
    match (earliest, latest) {
        (Some(earliest), Some(latest)) if earliest <= h.found_on && h.found_on <= latest => Ok(()),
        _ => Err(ModelError::Rule(format!("发现日期 {} 与发现时间 {} 不符", h.found_on, h.found_at))),
    }
}

/// The keys of every photo map of a hazard: before, after (recorded before
/// the steps) and those of its rectification steps.
pub fn photo_keys(h: &Hazard) -> impl Iterator<Item = &String> {
    let r = &h.rectification;
    h.photos.keys().chain(r.photos_after.keys()).chain(r.steps.values().flat_map(|s| s.photos.keys()))
}

/// Checks the rules that tie a hazard's fields together. Local edits must
/// pass them; a merge of two valid concurrent edits can still break one
/// (one inspector raises the level while another clears the criterion), so
/// merged documents report these as needing review ([`super::conflicts`])
/// instead of being refused. The rectification loop's rules are
/// [`crate::rectification`]'s.
pub fn check_rules(h: &Hazard) -> Result<(), ModelError> {
    if h.title.trim().is_empty() {
        return Err(ModelError::Empty("隐患标题"));
    }
    if h.level == HazardLevel::Major && h.major_hazard_criterion.is_none() {
        return Err(ModelError::MajorWithoutCriterion);
    }
    Ok(())
}

/// Checks a hazard as a local edit must leave it.
pub fn validate_hazard(h: &Hazard) -> Result<(), ModelError> {
    check_values(h)?;
    check_rules(h)
}

/// Checks a change of a hazard's own fields: the loop is only appended to,
/// by [`add_step`].
fn check_hazard_change(old: &Hazard, new: &Hazard) -> Result<(), ModelError> {
    if old.rectification != new.rectification {
        return Err(ModelError::Rule("整改记录只能逐步追加（field rectify），不能直接修改".into()));
    }
    validate_hazard(new)
}

/// Adds a new hazard.
pub fn add_hazard(tx: &mut Transaction<'_>, id: &EntityId, hazard: &Hazard) -> Result<(), ModelError> {
    validate_hazard(hazard)?;
    if hazard.rectification != Rectification::default() {
        return Err(ModelError::Rule("新隐患尚无整改记录；整改用 field rectify 逐步记录".into()));
    }
    insert_record(tx, &["hazards"], id.as_str(), "隐患", hazard)
}

/// Changes a hazard through `change`; the result is validated, including the
/// rectification workflow, and only changed fields are written.
pub fn modify_hazard<R>(
    tx: &mut Transaction<'_>,
    id: &EntityId,
    change: impl FnOnce(&mut Hazard) -> Result<R, ModelError>,
) -> Result<R, ModelError> {
    modify_record(tx, &["hazards", id.as_str()], "隐患", change, check_hazard_change)
}

/// Appends step `id` to hazard `hazard`'s rectification loop, recorded by
/// `signer` at `at` (RFC 3339): it follows the loop's current heads and
/// must be the step the loop accepts next ([`rectification::admit`]).
/// Returns the loop with the step taken.
pub fn add_step(
    tx: &mut Transaction<'_>,
    hazard: &EntityId,
    id: &EntityId,
    mut step: Step,
    signer: &Signer,
    at: String,
) -> Result<Loop, ModelError> {
    let mut h = self::hazard(tx, hazard)?;
    if h.deleted {
        return Err(ModelError::Rule(format!("隐患 {hazard} 已删除，不能再记录整改")));
    }
    let before = Loop::of(&h.rectification);
    step.after = before.heads.clone();
    step.author = signer.name.clone();
    step.author_role = signer.role.clone();
    step.at = at;
    rectification::check_step(&step, rectification::found_on(&h).as_deref()).map_err(ModelError::Rule)?;
    rectification::admit(&before.state, &step).map_err(ModelError::Rule)?;
    // A hazard recorded before the steps has no map for them yet.
    let path = ["hazards", hazard.as_str(), "rectification", "steps"];
    if map_at(tx, &path).is_err() {
        let parent = map_at(tx, &path[..3])?;
        tx.put_object(&parent, "steps", automerge::ObjType::Map)?;
    }
    insert_record(tx, &path, id.as_str(), "整改步骤", &step)?;
    h.rectification.steps.insert(id.to_string(), step);
    Ok(Loop::of(&h.rectification))
}

/// Adds a 四不放过 review of a past accident.
pub fn add_review(tx: &mut Transaction<'_>, id: &EntityId, review: &AccidentReview) -> Result<(), ModelError> {
    check_date(&review.accident_date)?;
    if review.accident_summary.trim().is_empty() {
        return Err(ModelError::Empty("事故概况"));
    }
    insert_record(tx, &["accident_reviews"], id.as_str(), "四不放过核查", review)
}

/// A reviewed accident happened on or before `today` (the day, in the
/// campaign's time zone, when a person records it): a later date is a slip
/// of the keyboard. Checked on local edits; a date valid when written stays
/// valid on every replica.
pub fn check_accident_day(date: &str, today: &str) -> Result<(), ModelError> {
    if check_date(date)? > check_date(today)? {
        return Err(ModelError::Rule(format!("事故日期 {date} 晚于今天（{today}），请核对")));
    }
    Ok(())
}

/// Changes one item of a review.
pub fn modify_review_item<R>(
    tx: &mut Transaction<'_>,
    review: &EntityId,
    item: ReviewItemKind,
    change: impl FnOnce(&mut crate::model::ReviewItem) -> Result<R, ModelError>,
) -> Result<R, ModelError> {
    let path = ["accident_reviews", review.as_str(), "items", item.as_str()];
    modify_record(tx, &path, "四不放过核查", change, |_, _| Ok(()))
}

/// Adds a document-compliance check.
pub fn add_document_check(tx: &mut Transaction<'_>, id: &EntityId, check: &DocumentCheck) -> Result<(), ModelError> {
    if check.document_type.trim().is_empty() {
        return Err(ModelError::Empty("证照资料类型"));
    }
    if let Some(date) = &check.expires_on {
        check_date(date)?;
    }
    insert_record(tx, &["document_checks"], id.as_str(), "资料检查", check)
}

/// Adds a site visit.
pub fn add_site_visit(tx: &mut Transaction<'_>, id: &EntityId, visit: &SiteVisit) -> Result<(), ModelError> {
    check_date(&visit.date)?;
    insert_record(tx, &["site_visits"], id.as_str(), "现场检查", visit)
}

/// Checks a merged dossier: its shape and every hazard's values. A dossier
/// that fails this is not stored.
/// Checks what the schema cannot: codes and clauses exist, dates are days
/// of the calendar, GPS points are on the globe.
pub(crate) fn check_dossier(dossier: &Dossier) -> Result<(), ModelError> {
    for (id, hazard) in &dossier.hazards {
        check_values(hazard).map_err(|e| ModelError::Rule(format!("隐患 {id}：{e}")))?;
    }
    for review in dossier.accident_reviews.values() {
        check_date(&review.accident_date)?;
    }
    for visit in dossier.site_visits.values() {
        check_date(&visit.date)?;
    }
    for check in dossier.document_checks.values() {
        if let Some(date) = &check.expires_on {
            check_date(date)?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::codes::AccidentType;
    use crate::doc::edit;
    use crate::model::{HazardKind, Location, Rectification};
    use std::collections::BTreeMap;

    pub(crate) fn sample_hazard(title: &str) -> Hazard {
        Hazard {
            subcontractor: String::new(),
            title: title.into(),
            description: "外架连墙件缺失".into(),
            hazard_kind: HazardKind::UnsafeCondition,
            accident_type: AccidentType::gb6441_1986("10").unwrap(),
            level: HazardLevel::General,
            major_hazard_criterion: None,
            location: Location { text: "3号楼东侧".into(), gps: None },
            legal_basis: "JGJ 59-2011 第3.3.3条".into(),
            photos: BTreeMap::new(),
            inspector: "张三".into(),
            found_at: "2026-11-23T02:00:00Z".into(),
            found_on: String::new(),
            checklist_item: None,
            deleted: false,
            rectification: Rectification::default(),
        }
    }

    #[test]
    fn a_new_hazard_needs_an_accident_type_and_takes_a_criterion_only_when_major() {
        let at = || ("2026-11-23T02:00:00Z".to_owned(), "张三".to_owned());
        let (found_at, inspector) = at();
        let bare = new_hazard(HazardInput::default(), None, inspector, found_at, &Zone::default());
        assert!(matches!(bare, Err(ModelError::Rule(why)) if why.contains("事故类型")));

        let item = ChecklistItem {
            section: "脚手架".into(),
            title: "连墙件缺失".into(),
            description: "外架连墙件未按规定设置".into(),
            hazard_kind: HazardKind::UnsafeCondition,
            accident_type: AccidentType::gb6441_1986("10").unwrap(),
            legal_basis: "JGJ 59-2011".into(),
            major_hazard_criterion: Some(codes::criteria()[0].id.clone()),
        };
        let from = |input: HazardInput| {
            let (found_at, inspector) = at();
            let template = Some(("jgj59/scaffold-01".into(), item.clone()));
            new_hazard(input, template, inspector, found_at, &Zone::default()).unwrap()
        };
        let general = from(HazardInput::default());
        assert_eq!((general.level, general.major_hazard_criterion.as_ref()), (HazardLevel::General, None));
        assert_eq!(general.checklist_item.as_deref(), Some("jgj59/scaffold-01"));
        let major = from(HazardInput { level: Some(HazardLevel::Major), ..HazardInput::default() });
        assert_eq!(major.major_hazard_criterion, item.major_hazard_criterion);
        // Back to general: the criterion goes with it.
        let mut edited = major;
        HazardInput { level: Some(HazardLevel::General), ..HazardInput::default() }.apply(&mut edited).unwrap();
        assert_eq!(edited.major_hazard_criterion, None);
    }

    #[test]
    fn the_tally_leaves_out_deleted_hazards_and_counts_those_not_closed() {
        let mut d = read(&dossier()).unwrap();
        let closed = Hazard {
            rectification: Rectification { status: RectificationStatus::Closed, ..Rectification::default() },
            ..sample_hazard("已销号")
        };
        let deleted = Hazard { deleted: true, ..sample_hazard("已删除") };
        for (i, h) in [sample_hazard("未整改"), closed, deleted].into_iter().enumerate() {
            d.hazards.insert(EntityId::new(1, i as u128).to_string(), h);
        }
        assert_eq!(tally(&d), Tally { hazards: 2, open: 1 });
    }

    fn dossier() -> Automerge {
        let campaign = DocId::new_campaign([1; 16]);
        create(&campaign, &"91640200MA76XYW123".parse().unwrap()).unwrap()
    }

    #[test]
    fn genesis_is_identical_on_every_device() {
        assert_eq!(dossier().get_heads(), dossier().get_heads());
        assert_eq!(dossier().save(), dossier().save());
    }

    #[test]
    fn add_edit_and_read_back() {
        let mut doc = dossier();
        let id = EntityId::new(1, 1);
        edit(&mut doc, 1, |tx| add_hazard(tx, &id, &sample_hazard("连墙件缺失"))).unwrap();
        let hash = edit(&mut doc, 2, |tx| {
            modify_hazard(tx, &id, |h| {
                h.description.push_str("，已影响架体稳定");
                Ok(())
            })
        })
        .unwrap()
        .hash;
        assert!(hash.is_some());
        let read = hazard(&doc, &id).unwrap();
        assert_eq!(read.description, "外架连墙件缺失，已影响架体稳定");
        let whole = super::read(&doc).unwrap();
        check_dossier(&whole).unwrap();
        assert_eq!(whole.hazards.len(), 1);
        // An edit that changes nothing writes nothing.
        let noop = edit(&mut doc, 3, |tx| modify_hazard(tx, &id, |_| Ok(()))).unwrap();
        assert!(noop.hash.is_none());
    }

    #[test]
    fn rules_reject_and_roll_back() {
        let mut doc = dossier();
        let id = EntityId::new(1, 1);
        let mut major = sample_hazard("重大");
        major.level = HazardLevel::Major;
        let err = edit(&mut doc, 1, |tx| add_hazard(tx, &id, &major)).unwrap_err();
        assert!(matches!(err, ModelError::MajorWithoutCriterion));
        let mut bad_code = sample_hazard("代码");
        bad_code.accident_type.code = "99".into();
        assert!(matches!(edit(&mut doc, 1, |tx| add_hazard(tx, &id, &bad_code)), Err(ModelError::Code(_))));
        assert!(record_ids(&doc, "hazards").unwrap().is_empty());
        let mut path_trick = sample_hazard("照片");
        path_trick.photos.insert("../../etc/passwd".into(), "x.jpg".into());
        assert!(edit(&mut doc, 1, |tx| add_hazard(tx, &id, &path_trick)).is_err());

        edit(&mut doc, 1, |tx| add_hazard(tx, &id, &sample_hazard("x"))).unwrap();
        let heads = doc.get_heads();
        // The loop is only appended to, step by step.
        let err = edit(&mut doc, 2, |tx| {
            modify_hazard(tx, &id, |h| {
                h.rectification.status = RectificationStatus::Closed;
                Ok(())
            })
        })
        .unwrap_err();
        assert!(err.to_string().contains("整改记录只能逐步追加"), "{err}");
        assert_eq!(doc.get_heads(), heads);
    }

    #[test]
    fn typed_text_is_stored_in_nfc_and_hidden_characters_are_refused() {
        let mut doc = dossier();
        let id = EntityId::new(1, 1);
        edit(&mut doc, 1, |tx| add_hazard(tx, &id, &sample_hazard("Cafe\u{301}临边"))).unwrap();
        assert_eq!(hazard(&doc, &id).unwrap().title, "Caf\u{e9}临边");
        let heads = doc.get_heads();
        let err = edit(&mut doc, 2, |tx| {
            modify_hazard(tx, &id, |h| {
                h.inspector = "王五\u{200b}".into();
                Ok(())
            })
        })
        .unwrap_err();
        assert!(err.to_string().contains("不可见字符 U+200B"), "{err}");
        let err = edit(&mut doc, 2, |tx| add_hazard(tx, &EntityId::new(1, 2), &sample_hazard(&"长".repeat(201))));
        assert!(err.unwrap_err().to_string().contains("超过上限 200"));
        assert_eq!(doc.get_heads(), heads);
    }

    #[test]
    fn over_deep_documents_are_refused_not_followed() {
        use automerge::transaction::Transactable;
        let mut doc = dossier();
        edit(&mut doc, 1, |tx| {
            let mut obj =
                tx.put_object(map_at(tx, &["hazards"])?, "01ARZ3NDEKTSV4RRFFQ69G5FAV", automerge::ObjType::Map)?;
            for _ in 0..64 {
                obj = tx.put_object(&obj, "x", automerge::ObjType::Map)?;
            }
            Ok(())
        })
        .unwrap();
        assert!(matches!(read(&doc), Err(ModelError::Malformed(_))));
        assert!(matches!(crate::doc::conflicts::conflicts(&doc), Err(ModelError::Malformed(_))));
    }
}
