//! The validator: whether a document, as it stands after a merge, is a
//! valid document of its kind that names itself, and what the stores index
//! of it (where it belongs, the photos a dossier references). Every door
//! data comes in by (a bundle, a sync session) asks it, and so does every
//! store that persists what came in.

use std::collections::BTreeSet;

use automerge::legacy::{Key, OpType};
use automerge::{Automerge, Change, ObjId, ROOT, ReadDoc, Value};
use serde_json::Value as Json;

use crate::doc::{self, briefing, campaign, checklist, dossier};
use crate::ids::{DocId, DocKind, DocTag, EntityId, PhotoId};
use crate::model::{Briefing, Campaign, Checklist, Dossier};
use crate::schema;

/// Why a document is not valid (Chinese, shown to people).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Invalid(pub String);

/// What the validator read of a valid document.
#[derive(Clone, Debug, PartialEq)]
pub struct Validated {
    /// Where it belongs (`None` for a checklist, which is not synced).
    pub tag: Option<DocTag>,
    /// The document as typed records, as the validator read it.
    pub typed: Typed,
}

/// A valid document as typed records, by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Typed {
    /// A campaign.
    Campaign(Campaign),
    /// An enterprise dossier.
    Dossier(Box<Dossier>),
    /// A briefing.
    Briefing(Briefing),
    /// A checklist.
    Checklist(Checklist),
    /// A document of a newer layout (its `schema_version`) than this build
    /// knows: kept as it is, not read, until the program is updated.
    Newer(u64),
}

impl Typed {
    /// The photos a dossier references (`None` for other kinds).
    pub fn photos(&self) -> Option<BTreeSet<PhotoId>> {
        match self {
            Typed::Dossier(dossier) => Some(referenced_by(dossier)),
            _ => None,
        }
    }
}

/// Checks that `doc` has the shape of its kind (its schema, then what a
/// schema cannot say: codes exist, dates are days) and names itself `id`.
/// A document of a newer layout than this build knows is valid as
/// [`Typed::Newer`].
pub fn document(id: &DocId, doc: &Automerge) -> Result<Validated, Invalid> {
    let invalid = |e: &dyn std::fmt::Display| Invalid(e.to_string());
    let json = doc::document_json(doc).map_err(|e| invalid(&e))?;
    if let Some(version) = doc::newer_version(&json) {
        // A newer layout's rules are not ours: kept, never quarantined.
        if json.get("id").and_then(Json::as_str) != Some(id.as_str()) {
            return Err(Invalid("文档内容记载的编号与文档不符".into()));
        }
        return Ok(Validated { tag: tag_of(id, doc), typed: Typed::Newer(version) });
    }
    schema::document(id.kind(), &json).map_err(|e| invalid(&e))?;
    let (own_id, typed) = match id.kind() {
        DocKind::Campaign => {
            let c = campaign::from_document(json).map_err(|e| invalid(&e))?;
            (c.id.clone(), Typed::Campaign(c))
        }
        DocKind::EnterpriseDossier => {
            let d = dossier::from_document(json).map_err(|e| invalid(&e))?;
            dossier::check_dossier(&d).map_err(|e| invalid(&e))?;
            (d.id.clone(), Typed::Dossier(Box::new(d)))
        }
        DocKind::Briefing => {
            let b = briefing::from_document(json).map_err(|e| invalid(&e))?;
            (b.id.clone(), Typed::Briefing(b))
        }
        DocKind::Checklist => {
            let c = checklist::from_document(json).map_err(|e| invalid(&e))?;
            (DocId::checklist(&c.id, c.version).map_err(|e| invalid(&e))?, Typed::Checklist(c))
        }
    };
    if own_id != *id {
        return Err(Invalid(format!("文档内容记载的编号是 {own_id}")));
    }
    Ok(Validated { tag: tag_of(id, doc), typed })
}

/// Refuses arriving changes that themselves break a rule tying a hazard's
/// fields together (a major hazard names its criterion, a deadline mode has
/// a deadline, the verifier is not the rectifier). A merge of two valid
/// concurrent changes can break such a rule as well, and that is listed for
/// review, not refused; so a change is refused only if the hazard keeps the
/// rule just before it (at its dependencies) and breaks it just after.
/// `merged` is the document with what arrived applied and `dossier` its
/// typed reading; only hazards that break a rule there, and only the
/// changes that write them, are looked at (`arrived` gives the changes,
/// asked for only then).
pub fn rules_kept(merged: &Automerge, dossier: &Dossier, arrived: impl FnOnce() -> Vec<Change>) -> Result<(), Invalid> {
    let broken: Vec<&String> =
        dossier.hazards.iter().filter(|(_, h)| dossier::check_rules(h).is_err()).map(|(id, _)| id).collect();
    if broken.is_empty() {
        return Ok(());
    }
    let breaks =
        |doc: &Automerge, id: &EntityId| dossier::hazard(doc, id).ok().and_then(|h| dossier::check_rules(&h).err());
    let arrived = arrived();
    for key in broken {
        let Ok(id) = key.parse::<EntityId>() else { continue };
        let objects = hazard_objects(merged, key);
        for change in arrived.iter().filter(|c| writes(c, &objects, key)) {
            let fork = |heads: &[automerge::ChangeHash]| merged.fork_at(heads).map_err(|e| Invalid(e.to_string()));
            let Some(rule) = breaks(&fork(&[change.hash()])?, &id) else { continue };
            let before = if change.deps().is_empty() { Automerge::new() } else { fork(change.deps())? };
            if breaks(&before, &id).is_none() {
                return Err(Invalid(format!("隐患 {key}：{rule}")));
            }
        }
    }
    Ok(())
}

/// The ids (as `counter@actor`) of the hazards map and of hazard `key`'s
/// map and the maps in it.
fn hazard_objects(doc: &Automerge, key: &str) -> BTreeSet<String> {
    let object = |obj: &ObjId, key: &str| match doc.get(obj, key) {
        Ok(Some((Value::Object(_), id))) => Some(id),
        _ => None,
    };
    let mut out = BTreeSet::new();
    if let Some(hazard) = object(&ROOT, "hazards").and_then(|hazards| object(&hazards, key)) {
        for field in doc.keys(&hazard) {
            if let Some(inner) = object(&hazard, &field) {
                out.insert(inner.to_string());
            }
        }
        out.insert(hazard.to_string());
    }
    out
}

/// Whether `change` creates hazard `key` or writes into one of `objects`.
fn writes(change: &Change, objects: &BTreeSet<String>, key: &str) -> bool {
    change
        .decode()
        .operations
        .iter()
        .any(|op| objects.contains(&op.obj.to_string()) || matches!(&op.key, Key::Map(k) if k == key))
}

fn root_str(doc: &Automerge, key: &str) -> Option<String> {
    match doc.get(ROOT, key).ok()?? {
        (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
        _ => None,
    }
}

/// Where a document belongs, read from its root.
pub fn tag_of(id: &DocId, doc: &Automerge) -> Option<DocTag> {
    match id.kind() {
        DocKind::Campaign => Some(DocTag { campaign: id.clone(), enterprise: None }),
        DocKind::EnterpriseDossier => Some(DocTag {
            campaign: root_str(doc, "campaign_id")?.parse().ok()?,
            enterprise: root_str(doc, "enterprise")?.parse().ok(),
        }),
        DocKind::Briefing => Some(DocTag { campaign: root_str(doc, "campaign_id")?.parse().ok()?, enterprise: None }),
        DocKind::Checklist => None,
    }
}

/// The photos a dossier references (before and after rectification, and
/// those of its rectification steps).
pub fn referenced_by(dossier: &Dossier) -> BTreeSet<PhotoId> {
    dossier.hazards.values().flat_map(dossier::photo_keys).filter_map(|k| k.parse().ok()).collect()
}

/// The photos a change of a dossier adds. Photo maps are the only maps of a
/// dossier keyed by SHA-256 digests, so every such key put is a photo.
pub fn added_by(change: &Change) -> BTreeSet<PhotoId> {
    let ops = change.decode().operations;
    ops.iter()
        .filter(|op| matches!(op.action, OpType::Put(_)))
        .filter_map(|op| match &op.key {
            Key::Map(key) => key.parse().ok(),
            Key::Seq(_) => None,
        })
        .collect()
}

/// The photos a dossier's hazards reference (before and after
/// rectification), read from the document without building the model.
pub fn dossier_photos(doc: &Automerge) -> BTreeSet<PhotoId> {
    let object = |obj: &ObjId, key: &str| match doc.get(obj, key) {
        Ok(Some((Value::Object(_), id))) => Some(id),
        _ => None,
    };
    let mut out = BTreeSet::new();
    let Some(hazards) = object(&ROOT, "hazards") else { return out };
    for key in doc.keys(&hazards) {
        let Some(hazard) = object(&hazards, &key) else { continue };
        let rectification = object(&hazard, "rectification");
        let after = rectification.as_ref().and_then(|r| object(r, "photos_after"));
        let steps = rectification.as_ref().and_then(|r| object(r, "steps"));
        let of_steps = steps.iter().flat_map(|steps| {
            doc.keys(steps)
                .filter_map(|k| object(steps, &k))
                .filter_map(|step| object(&step, "photos"))
                .collect::<Vec<_>>()
        });
        for map in [object(&hazard, "photos"), after].into_iter().flatten().chain(of_steps) {
            out.extend(doc.keys(&map).filter_map(|k| k.parse::<PhotoId>().ok()));
        }
    }
    out
}
