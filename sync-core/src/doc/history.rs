//! A dossier's hazards, change by change: which signed change (its actor,
//! its time) touched which hazard and which of its fields, read from the
//! change log itself.
//!
//! Every nested map of a hazard is created once with the hazard ([module
//! rules](super)), so each object a change writes to is still in the
//! document, and its place (hazard, field) is found in one pass over the
//! document ([`Tree`]), a step map two devices created at once in every copy.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::legacy::{Key, OpType};
use automerge::{ActorId, Automerge, ChangeHash, ObjType};

use super::{Tree, map_at};

/// What one change did to one hazard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HazardChange {
    /// The hazard's id.
    pub hazard: String,
    /// The change.
    pub hash: ChangeHash,
    /// Who wrote it: the actor, bound to a device key by the signatures.
    pub actor: ActorId,
    /// When, by the writing device's clock (ms since the epoch, UTC).
    pub at_ms: i64,
    /// Whether this change created the hazard.
    pub created: bool,
    /// The fields it wrote, by key (`level`, `steps`, `photos`, …), sorted.
    pub fields: BTreeSet<String>,
    /// The change's message: the account HQ's console made it for
    /// ([`super::edit_for`]). Anyone can write a message; believe it only
    /// of a change signed by an HQ device.
    pub account: Option<String>,
}

/// Where an object sits: its hazard, and the keys from the hazard down.
type Place = (String, Vec<String>);

/// The hazard changes of `doc` made after `since` (every one, for `&[]`),
/// in causal order, one entry per change and hazard it touched.
pub fn hazard_changes(doc: &Automerge, since: &[ChangeHash]) -> Vec<HazardChange> {
    let Ok(hazards) = map_at(doc, &["hazards"]) else { return Vec::new() };
    let hazards_id = hazards.to_string();
    let places = places(&Tree::of(doc));
    let mut out = Vec::new();
    for change in doc.get_changes(since) {
        let mut touched: BTreeMap<String, (bool, BTreeSet<String>)> = BTreeMap::new();
        for op in change.decode().operations {
            let Key::Map(key) = &op.key else { continue };
            let obj = op.obj.to_string();
            if obj == hazards_id {
                let entry = touched.entry(key.to_string()).or_default();
                entry.0 |= matches!(op.action, OpType::Make(ObjType::Map));
            } else if let Some((hazard, path)) = places.get(&obj) {
                let entry = touched.entry(hazard.clone()).or_default();
                entry.1.insert(field(path, key).to_owned());
            }
        }
        for (hazard, (created, fields)) in touched {
            out.push(HazardChange {
                hazard,
                hash: change.hash(),
                actor: change.actor_id().clone(),
                at_ms: change.timestamp(),
                created,
                fields,
                account: change.message().map(str::to_owned),
            });
        }
    }
    out
}

/// The field a write at `path` (below the hazard), key `key`, belongs to:
/// a collection (photos, steps) or a point counts as one field; else the
/// key written.
fn field<'a>(path: &'a [String], key: &'a str) -> &'a str {
    const WHOLE: [&str; 4] = ["photos", "photos_after", "steps", "gps"];
    path.iter().map(String::as_str).chain([key]).find(|k| WHOLE.contains(k)).unwrap_or(key)
}

/// The place of every object below a hazard, by object id.
fn places(tree: &Tree) -> HashMap<String, Place> {
    let mut out = HashMap::new();
    for obj in tree.objects() {
        if let Ok(Some(["hazards", hazard, below @ ..])) = tree.path(obj).as_ref().map(Option::as_deref) {
            out.insert(obj.to_string(), (hazard.to_string(), below.iter().map(|k| k.to_string()).collect()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;
    use crate::doc::dossier::{add_hazard, create, modify_hazard};
    use crate::doc::edit;
    use crate::ids::{DocId, EntityId};
    use crate::model::HazardLevel;

    fn fields(change: &HazardChange) -> Vec<&str> {
        change.fields.iter().map(String::as_str).collect()
    }

    #[test]
    fn each_change_names_its_author_time_hazard_and_fields() {
        let campaign = DocId::new_campaign([2; 16]);
        let mut a = create(&campaign, &"91640200MA76XYW123".parse().unwrap()).unwrap();
        a.set_actor(ActorId::from(&[1u8; 16][..]));
        let (first, second) = (EntityId::new(1, 1), EntityId::new(1, 2));
        let hazard = crate::doc::dossier::tests::sample_hazard("临边防护缺失");
        edit(&mut a, 1_000, |tx| add_hazard(tx, &first, &hazard)).unwrap();
        edit(&mut a, 1_500, |tx| add_hazard(tx, &second, &hazard)).unwrap();
        let created = a.get_heads();
        let mut b = a.fork().with_actor(ActorId::from(&[2u8; 16][..]));
        edit(&mut a, 2_000, |tx| {
            modify_hazard(tx, &first, |h| {
                h.level = HazardLevel::Major;
                h.major_hazard_criterion = codes::criteria().first().map(|c| c.id.clone());
                h.photos.insert("ab".repeat(32), "现场.jpg".into());
                Ok(())
            })
        })
        .unwrap();
        edit(&mut b, 3_000, |tx| {
            modify_hazard(tx, &first, |h| {
                h.location.text = "5号楼北侧卸料平台".into();
                Ok(())
            })
        })
        .unwrap();
        a.merge(&mut b).unwrap();

        let all = hazard_changes(&a, &[]);
        let of_first: Vec<_> = all.iter().filter(|c| c.hazard == first.as_str()).collect();
        assert_eq!(of_first.len(), 3, "{all:?}");
        assert!(of_first[0].created && of_first[0].fields.contains("title"));
        assert_eq!(of_first[0].at_ms, 1_000);
        assert!(all.iter().any(|c| c.hazard == second.as_str() && c.created && c.at_ms == 1_500));

        let later = hazard_changes(&a, &created);
        assert_eq!(later.len(), 2, "only what came after the heads given: {later:?}");
        let by = |actor: u8| later.iter().find(|c| c.actor == ActorId::from(&[actor; 16][..])).unwrap();
        assert_eq!(fields(by(1)), ["level", "major_hazard_criterion", "photos"]);
        assert_eq!((by(1).at_ms, by(1).created), (2_000, false));
        assert_eq!(fields(by(2)), ["text"]);
        assert_eq!(by(2).at_ms, 3_000);
    }
}
