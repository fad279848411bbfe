//! Conflicts needing review (待审核冲突).
//!
//! Automerge keeps every concurrent value of a field; [`ReadDoc::get`] picks
//! a deterministic winner, which is fine for a title but not for a hazard
//! level or a sign-off. For the safety-critical fields this module lists
//! every field holding more than one distinct concurrent value, and
//! [`resolve`] writes the reviewer's choice, which supersedes all of them.
//!
//! It also lists rule issues: a merge of two valid concurrent edits can
//! break a rule that ties fields together (see [`super::dossier::check_rules`]).

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value};
use serde::Serialize;

use super::{ModelError, map_at};
use crate::codes;
use crate::model::{HazardLevel, RectificationStatus, ReviewItemKind, Verdict};

/// A safety-critical field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticalField {
    /// `hazards/<id>/level`.
    Level,
    /// `hazards/<id>/major_hazard_criterion`.
    Criterion,
    /// `hazards/<id>/rectification/status`.
    Status,
    /// `hazards/<id>/rectification/verifier` (the verification sign-off).
    Verifier,
    /// `accident_reviews/<id>/items/<item>/verdict`.
    Verdict,
}

impl CriticalField {
    /// Chinese label.
    pub fn label(self) -> &'static str {
        match self {
            CriticalField::Level => "隐患等级",
            CriticalField::Criterion => "重大隐患判定条款",
            CriticalField::Status => "整改状态",
            CriticalField::Verifier => "复查签认",
            CriticalField::Verdict => "四不放过结论",
        }
    }

    /// Parses and checks a value a reviewer chose for this field.
    fn check_value(self, value: &str) -> Result<(), ModelError> {
        let ok = match self {
            CriticalField::Level => HazardLevel::parse(value).is_some(),
            CriticalField::Status => RectificationStatus::parse(value).is_some(),
            CriticalField::Verdict => Verdict::parse(value).is_some(),
            CriticalField::Criterion => codes::criterion(value).is_ok(),
            CriticalField::Verifier => !value.trim().is_empty(),
        };
        if ok {
            Ok(())
        } else {
            Err(ModelError::Rule(format!(
                "“{value}”不是{}的有效取值",
                self.label()
            )))
        }
    }

    /// Normalises a value typed as a Chinese label to its stored identifier.
    fn normalise(self, value: &str) -> String {
        let id = match self {
            CriticalField::Level => HazardLevel::parse(value).map(HazardLevel::as_str),
            CriticalField::Status => {
                RectificationStatus::parse(value).map(RectificationStatus::as_str)
            }
            CriticalField::Verdict => Verdict::parse(value).map(Verdict::as_str),
            CriticalField::Criterion | CriticalField::Verifier => None,
        };
        id.map_or_else(|| value.trim().to_owned(), str::to_owned)
    }
}

/// A critical field holding several concurrent values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// Path inside the document, e.g. `hazards/<id>/level`; names the conflict.
    pub path: String,
    /// The hazard or review it belongs to.
    pub record: String,
    /// Which field.
    pub field: CriticalField,
    /// The distinct concurrent values (stored identifiers), sorted.
    pub values: Vec<String>,
}

/// A rule broken by a merge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleIssue {
    /// The hazard.
    pub hazard: String,
    /// What is wrong, in Chinese.
    pub message: String,
}

fn field_of(path: &[&str]) -> Option<CriticalField> {
    match path {
        ["hazards", _, "level"] => Some(CriticalField::Level),
        ["hazards", _, "major_hazard_criterion"] => Some(CriticalField::Criterion),
        ["hazards", _, "rectification", "status"] => Some(CriticalField::Status),
        ["hazards", _, "rectification", "verifier"] => Some(CriticalField::Verifier),
        ["accident_reviews", _, "items", item, "verdict"] => {
            ReviewItemKind::parse(item).map(|_| CriticalField::Verdict)
        }
        _ => None,
    }
}

/// Lists the conflicts of a dossier, in path order.
pub fn conflicts(doc: &impl ReadDoc) -> Result<Vec<Conflict>, ModelError> {
    let mut out = Vec::new();
    let hazards = map_at(doc, &["hazards"])?;
    for id in doc.keys(&hazards) {
        let Some((Value::Object(ObjType::Map), hazard)) = doc.get(&hazards, id.as_str())? else {
            continue;
        };
        check(doc, &hazard, &["hazards", &id, "level"], &id, &mut out)?;
        check(
            doc,
            &hazard,
            &["hazards", &id, "major_hazard_criterion"],
            &id,
            &mut out,
        )?;
        if let Some((Value::Object(ObjType::Map), rect)) = doc.get(&hazard, "rectification")? {
            check(
                doc,
                &rect,
                &["hazards", &id, "rectification", "status"],
                &id,
                &mut out,
            )?;
            check(
                doc,
                &rect,
                &["hazards", &id, "rectification", "verifier"],
                &id,
                &mut out,
            )?;
        }
    }
    let reviews = map_at(doc, &["accident_reviews"])?;
    for id in doc.keys(&reviews) {
        let Ok(items) = map_at(doc, &["accident_reviews", &id, "items"]) else {
            continue;
        };
        for kind in ReviewItemKind::ALL {
            if let Some((Value::Object(ObjType::Map), item)) = doc.get(&items, kind.as_str())? {
                let path = ["accident_reviews", &id, "items", kind.as_str(), "verdict"];
                check(doc, &item, &path, &id, &mut out)?;
            }
        }
    }
    Ok(out)
}

fn check(
    doc: &impl ReadDoc,
    obj: &ObjId,
    path: &[&str],
    record: &str,
    out: &mut Vec<Conflict>,
) -> Result<(), ModelError> {
    let Some(field) = field_of(path) else {
        return Ok(());
    };
    let key = path.last().copied().unwrap_or_default();
    let mut values: Vec<String> = doc
        .get_all(obj, key)?
        .into_iter()
        .map(|(value, _)| match value {
            Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Str(s) => s.to_string(),
                other => other.to_string(),
            },
            Value::Object(kind) => kind.to_string(),
        })
        .collect();
    values.sort();
    values.dedup();
    if values.len() > 1 {
        out.push(Conflict {
            path: path.join("/"),
            record: record.to_owned(),
            field,
            values,
        });
    }
    Ok(())
}

/// Lists hazards whose merged state breaks a rule.
pub fn rule_issues(dossier: &crate::model::Dossier) -> Vec<RuleIssue> {
    dossier
        .hazards
        .iter()
        .filter_map(|(id, hazard)| {
            super::dossier::check_rules(hazard)
                .err()
                .map(|e| RuleIssue {
                    hazard: id.clone(),
                    message: e.to_string(),
                })
        })
        .collect()
}

/// Resolves the conflict at `path` by writing `value` (an identifier or a
/// Chinese label); the write supersedes every concurrent value.
pub fn resolve(tx: &mut Transaction<'_>, path: &str, value: &str) -> Result<(), ModelError> {
    let parts: Vec<&str> = path.split('/').collect();
    let field = field_of(&parts).ok_or_else(|| ModelError::NotFound {
        what: "需审核字段",
        id: path.to_owned(),
    })?;
    field.check_value(value)?;
    let (key, parent) = parts.split_last().ok_or_else(|| ModelError::NotFound {
        what: "需审核字段",
        id: path.to_owned(),
    })?;
    let obj = map_at(tx, parent)?;
    tx.put(&obj, *key, field.normalise(value))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::dossier::{add_hazard, create, modify_hazard};
    use crate::doc::edit;
    use crate::ids::{DocId, EntityId};
    use automerge::{ActorId, Automerge};

    #[test]
    fn concurrent_level_writes_are_conflicts_until_resolved() {
        let campaign = DocId::new_campaign([2; 16]);
        let mut a = create(&campaign, &"91640200MA76XYW123".parse().unwrap()).unwrap();
        a.set_actor(ActorId::from(&[1u8; 16][..]));
        let id = EntityId::new(1, 1);
        let mut hazard = crate::doc::dossier::tests::sample_hazard("临边防护缺失");
        hazard.accident_type.code = "09".into();
        edit(&mut a, 1, |tx| add_hazard(tx, &id, &hazard)).unwrap();
        let mut b: Automerge = a.fork().with_actor(ActorId::from(&[2u8; 16][..]));

        edit(&mut a, 2, |tx| {
            modify_hazard(tx, &id, |h| {
                h.level = HazardLevel::Major;
                h.major_hazard_criterion = codes::criteria().first().map(|c| c.id.clone());
                Ok(())
            })
        })
        .unwrap();
        edit(&mut b, 2, |tx| {
            modify_hazard(tx, &id, |h| {
                h.title = "临边防护缺失（已核实）".into();
                Ok(())
            })
        })
        .unwrap();
        // Different fields: no conflict.
        a.merge(&mut b.clone()).unwrap();
        assert!(conflicts(&a).unwrap().is_empty());

        let mut c = a.fork().with_actor(ActorId::from(&[3u8; 16][..]));
        edit(&mut a, 3, |tx| {
            modify_hazard(tx, &id, |h| {
                h.rectification.status = RectificationStatus::Rectifying;
                Ok(())
            })
        })
        .unwrap();
        edit(&mut c, 3, |tx| {
            modify_hazard(tx, &id, |h| {
                h.rectification.status = RectificationStatus::AwaitingVerification;
                h.rectification.rectified_by = Some("王五".into());
                Ok(())
            })
        })
        .unwrap();
        a.merge(&mut c).unwrap();
        let found = conflicts(&a).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].field, CriticalField::Status);
        assert_eq!(found[0].values, vec!["awaiting_verification", "rectifying"]);

        edit(&mut a, 4, |tx| resolve(tx, &found[0].path, "待复查")).unwrap();
        assert!(conflicts(&a).unwrap().is_empty());
        let err = edit(&mut a, 5, |tx| resolve(tx, &found[0].path, "bogus")).unwrap_err();
        assert!(matches!(err, ModelError::Rule(_)));
    }
}
