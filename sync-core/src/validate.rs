//! The validator: whether a document, as it stands after a merge, is a
//! valid document of its kind that names itself, and what the stores index
//! of it (where it belongs, the photos a dossier references). Every door
//! data comes in by (a bundle, a sync session) asks it, and so does every
//! store that persists what came in.

use std::collections::{BTreeSet, HashMap};

use automerge::legacy::{Key, ObjectId, OpId, OpType};
use automerge::{ActorId, Automerge, Change, ObjId, ROOT, ReadDoc, Value};
use serde_json::Value as Json;

use crate::doc::{self, briefing, campaign, checklist, dossier};
use crate::ids::{DocId, DocKind, DocTag, EntityId, PhotoId};
use crate::model::{Briefing, Campaign, Checklist, Dossier};
use crate::rectification::{self, Loop, Signer};
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
/// `merged` is the document with what arrived applied, `held` the one it
/// was applied to, and `dossier` its typed reading; only hazards that break
/// a rule there, and only the changes that write their rule fields, are
/// looked at (`arrived` gives the changes, asked for only then).
pub fn rules_kept(
    merged: &Automerge,
    held: Option<&Automerge>,
    dossier: &Dossier,
    arrived: impl FnOnce() -> Vec<Change>,
) -> Result<(), Invalid> {
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
        let Some(objects) = rule_objects(merged, key) else { continue };
        for change in arrived.iter().filter(|c| writes(c, &objects, key)) {
            // The document at the change's dependencies (what was held, if
            // the change was made on exactly that), and with it.
            let invalid = |e: automerge::AutomergeError| Invalid(e.to_string());
            let held = held.filter(|h| same_heads(&h.get_heads(), change.deps()));
            let before = match (change.deps(), held) {
                ([], _) => Automerge::new(),
                (_, Some(held)) => held.clone(),
                (deps, None) => merged.fork_at(deps).map_err(invalid)?,
            };
            let mut after = before.clone();
            after.apply_changes([change.clone()]).map_err(invalid)?;
            let Some(rule) = breaks(&after, &id) else { continue };
            if breaks(&before, &id).is_none() {
                return Err(Invalid(format!("隐患 {key}：{rule}")));
            }
        }
    }
    Ok(())
}

/// A rectification step that arrived: the actor of the change carrying it
/// and whom the step names as its author. Each door checks the names
/// against the credentials it holds ([`authorship`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrivedStep {
    /// The actor of the change.
    pub actor: ActorId,
    /// The step's `author`.
    pub author: String,
    /// The step's `author_role`.
    pub role: Option<String>,
    /// Where it is, for a refusal (`隐患 … 的整改步骤 …`).
    pub place: String,
}

/// What an object of a hazard is, for [`steps_kept`].
#[derive(Clone)]
enum Part {
    Hazard,
    Rectification,
    Steps,
    /// A step, or an object inside it (its `after`, its photos).
    Step(String),
}

/// Refuses arriving changes that rewrite a hazard's rectification loop or
/// add a step the loop did not accept at that point: each new step is
/// judged against the loop as of its change's dependencies — never against
/// what another device did meanwhile — and must name the steps it followed
/// there. A step is never rewritten or removed; the fields an earlier
/// version kept the loop in are not written once the hazard has steps; one
/// change adds at most one step to a hazard. Returns the steps that arrived,
/// for [`authorship`]. `merged` is the document with what arrived applied,
/// `dossier` its typed reading; a dossier without steps costs nothing.
pub fn steps_kept<'a>(
    merged: &Automerge,
    dossier: &Dossier,
    arrived: impl FnOnce() -> &'a [Change],
) -> Result<Vec<ArrivedStep>, Invalid> {
    let object = |obj: &ObjId, key: &str| match merged.get(obj, key) {
        Ok(Some((Value::Object(_), id))) => Some(id),
        _ => None,
    };
    let hazards = object(&ROOT, "hazards");
    // Nothing to judge while no hazard has steps, unless a loop that had
    // some was replaced: a rectification made by a later change than its
    // hazard.
    let replaced = || {
        let mut objects = dossier.hazards.keys().filter_map(|k| object(hazards.as_ref()?, k));
        objects
            .any(|h| object(&h, "rectification").is_some_and(|r| merged.hash_for_opid(&r) != merged.hash_for_opid(&h)))
    };
    if dossier.hazards.values().all(|h| h.rectification.steps.is_empty()) && !replaced() {
        return Ok(Vec::new());
    }
    // What an object an arriving change writes into is, found from its
    // path (once per object): only hazards' loops matter here.
    let mut parts: HashMap<String, Option<(String, Part, ObjId)>> = HashMap::new();
    let mut part_of = |obj: &str| -> Option<(String, Part, ObjId)> {
        let classify = || {
            let (id, _) = merged.import(obj).ok()?;
            let path = merged.parents(&id).ok()?.path();
            let keys: Vec<String> = path.iter().map(|(_, prop)| prop.to_string()).collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let part = match keys.as_slice() {
                ["hazards", hazard] => (hazard.to_string(), Part::Hazard),
                ["hazards", hazard, "rectification"] => (hazard.to_string(), Part::Rectification),
                ["hazards", hazard, "rectification", "steps"] => (hazard.to_string(), Part::Steps),
                ["hazards", hazard, "rectification", "steps", step, ..] => {
                    (hazard.to_string(), Part::Step(step.to_string()))
                }
                _ => return None,
            };
            Some((part.0, part.1, id))
        };
        parts.entry(obj.to_owned()).or_insert_with(classify).clone()
    };
    let mut out = Vec::new();
    for change in arrived() {
        let (actor, start, deps) = (change.actor_id(), change.start_op().get(), change.deps().to_vec());
        let ops = change.decode().operations;
        let end = start.saturating_add(ops.len() as u64);
        // Whether this change made the object (its id is one of its ops).
        let made_here = |obj: &ObjectId| match obj {
            ObjectId::Id(OpId(n, a)) => a == actor && (start..end).contains(n),
            ObjectId::Root => false,
        };
        // The steps of a loop as of this change's dependencies (steps are
        // never removed, so each copy of the map now holds every step it
        // ever held).
        let steps_then = |rectification: &ObjId| -> BTreeSet<String> {
            let maps = merged.get_all(rectification, "steps").unwrap_or_default();
            maps.into_iter().flat_map(|(_, steps)| merged.keys_at(&steps, &deps).collect::<Vec<_>>()).collect()
        };
        let rectification_of =
            |hazard: &str| hazards.as_ref().and_then(|hs| object(hs, hazard)).and_then(|h| object(&h, "rectification"));
        let mut added: Vec<(String, String)> = Vec::new();
        for op in &ops {
            // Objects this change made matter only as a new hazard's steps
            // map given steps at once (a map put under a record id).
            let record = matches!(&op.key, Key::Map(k) if k.len() == 26);
            let made = made_here(&op.obj) && !(record && matches!(op.action, OpType::Make(automerge::ObjType::Map)));
            if op.obj == ObjectId::Root || made {
                continue;
            }
            let obj = op.obj.to_string();
            let Some((hazard, part, id)) = part_of(&obj) else { continue };
            let (hazard, id) = (hazard.as_str(), &id);
            let key = match &op.key {
                Key::Map(k) => k.to_string(),
                Key::Seq(_) => String::new(),
            };
            let rewrite = |what: String| Err(Invalid(format!("隐患 {hazard}：{what}；整改记录只能逐步追加，不能改写")));
            // An op that names predecessors overwrites what stood there.
            let overwrites = !op.pred.is_empty();
            let has_steps = || dossier.hazards.get(hazard).is_some_and(|h| !h.rectification.steps.is_empty());
            match part {
                Part::Hazard if key == "rectification" && overwrites => {
                    // The loop it replaced: did it hold steps?
                    let replaced = op.pred.iter().filter_map(|p| merged.import(&p.to_string()).ok());
                    let held =
                        replaced.filter_map(|(r, _)| object(&r, "steps")).any(|s| merged.keys(&s).next().is_some());
                    if held {
                        return rewrite("替换了整改记录".into());
                    }
                }
                Part::Rectification if key == "steps" && overwrites => {
                    return rewrite("替换了整改步骤表".into());
                }
                Part::Rectification if key != "steps" && has_steps() && !steps_then(id).is_empty() => {
                    return rewrite(format!("改写了整改字段 {key}"));
                }
                Part::Steps => {
                    if overwrites || !matches!(op.action, OpType::Make(automerge::ObjType::Map)) {
                        return rewrite(format!("改写或删除了整改步骤 {key}"));
                    }
                    if added.iter().any(|(h, _)| h == hazard) {
                        return Err(Invalid(format!("隐患 {hazard}：一次修改只能追加一个整改步骤")));
                    }
                    added.push((hazard.to_owned(), key));
                }
                Part::Step(step) if !made_here(&op.obj) => return rewrite(format!("改写了整改步骤 {step}")),
                _ => {}
            }
        }
        for (hazard, key) in added {
            let hazard = hazard.as_str();
            let place = format!("隐患 {hazard} 的整改步骤 {key}");
            // A step put into the loop of a hazard no longer in the
            // dossier (deleted from the map) is not read as one.
            let Some((h, step)) = dossier.hazards.get(hazard).and_then(|h| Some((h, h.rectification.steps.get(&key)?)))
            else {
                return Err(Invalid(format!("{place}：不是有效的整改步骤")));
            };
            let then = rectification_of(hazard).map(|r| steps_then(&r)).unwrap_or_default();
            let mut before = h.rectification.clone();
            before.steps.retain(|k, _| then.contains(k));
            let at_deps = Loop::of(&before);
            let mut after = step.after.clone();
            after.sort();
            if after != at_deps.heads {
                return Err(Invalid(format!("{place}：所记的前序步骤与它依据的记录不符")));
            }
            rectification::check_step(step, rectification::found_on(h).as_deref())
                .and_then(|()| rectification::admit(&at_deps.state, step))
                .map_err(|why| Invalid(format!("{place}：{why}")))?;
            out.push(ArrivedStep {
                actor: change.actor_id().clone(),
                author: step.author.clone(),
                role: step.author_role.clone(),
                place,
            });
        }
    }
    Ok(out)
}

/// Checks that each arrived step names as its author the holder of the
/// device that signed it: `signer` gives, for a change's actor, the holder
/// and role the door knows (from the author's credential or trust entry).
/// A step recorded before its device was enrolled names no role; its
/// author must still be the holder HQ enrolled the device for.
pub fn authorship(steps: &[ArrivedStep], signer: impl Fn(&ActorId) -> Option<Signer>) -> Result<(), Invalid> {
    for step in steps {
        let Some(known) = signer(&step.actor) else {
            return Err(Invalid(format!("{}：无法确认签名设备的持有人", step.place)));
        };
        let role_differs = step.role.is_some() && known.role.is_some() && known.role != step.role;
        if !crate::text::same_person(&step.author, &known.name) || role_differs {
            return Err(Invalid(format!(
                "{}：记载的记录人 {} 与签名设备的持有人 {} 不符",
                step.place, step.author, known.name
            )));
        }
    }
    Ok(())
}

/// The ids (as `counter@actor`) of the hazards map and of hazard `key`'s
/// map and the maps in it.
/// Whether two sets of heads are the same, in any order.
fn same_heads(a: &[automerge::ChangeHash], b: &[automerge::ChangeHash]) -> bool {
    a.len() == b.len() && a.iter().all(|h| b.contains(h))
}

/// The fields of a hazard its rules read (`dossier::check_rules`).
const RULE_FIELDS: [&str; 3] = ["title", "level", "major_hazard_criterion"];

/// Where hazard `key`'s rule fields live in `doc`: the hazard's object (as
/// a string), and the objects held in those fields.
fn rule_objects(doc: &Automerge, key: &str) -> Option<(String, BTreeSet<String>)> {
    let object = |obj: &ObjId, key: &str| match doc.get(obj, key) {
        Ok(Some((Value::Object(_), id))) => Some(id),
        _ => None,
    };
    let hazard = object(&ROOT, "hazards").and_then(|hazards| object(&hazards, key))?;
    let inner = RULE_FIELDS.iter().filter_map(|field| object(&hazard, field)).map(|o| o.to_string()).collect();
    Some((hazard.to_string(), inner))
}

/// Whether `change` creates hazard `key` or writes one of its rule fields
/// (`objects`, from [`rule_objects`]).
fn writes(change: &Change, objects: &(String, BTreeSet<String>), key: &str) -> bool {
    let (hazard, inner) = objects;
    change.decode().operations.iter().any(|op| match &op.key {
        Key::Map(k) if k == key => true,
        Key::Map(k) if op.obj.to_string() == *hazard => RULE_FIELDS.contains(&k.as_str()),
        _ => inner.contains(&op.obj.to_string()),
    })
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
