//! Conflicts needing review (待审核冲突).
//!
//! Automerge keeps every concurrent value of a field; [`ReadDoc::get`] picks
//! a deterministic winner. For a dossier nothing may be resolved silently, so
//! this module lists every field that holds more than one distinct
//! concurrent value. The safety-critical fields (hazard level, criterion,
//! rectification status, verifier sign-off, 四不放过 verdicts) are flagged as
//! such. [`resolve`] writes the reviewer's choice — one of the concurrent
//! values — which supersedes all of them.
//!
//! It also lists rule issues: a merge of two valid concurrent edits can
//! break a rule that ties fields together (see [`super::dossier::check_rules`]).

use automerge::transaction::{Transactable, Transaction};
use std::collections::BTreeMap;

use automerge::{ActorId, ObjId, ObjType, ReadDoc, ScalarValue, Value};
use serde::Serialize;

use super::{ModelError, Tree, map_at, put_value, read_json};
use crate::model::{Crs, DocumentResult, HazardKind, HazardLevel, RectificationMode, RectificationStatus, Verdict};
use crate::rectification::Loop;

/// A field holding several concurrent values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// Path inside the document, e.g. `hazards/<id>/level`; names the conflict.
    pub path: String,
    /// The record (hazard, review, check, visit) it belongs to.
    pub record: String,
    /// The field's key.
    pub field: String,
    /// Chinese name of the field.
    pub label: &'static str,
    /// Whether it is a safety-critical field.
    pub critical: bool,
    /// The distinct concurrent values, as text, sorted.
    pub values: Vec<String>,
    /// Who wrote each value (by index of `values`): the actors of the
    /// concurrent writes, each bound to a device key by its signatures.
    pub writers: Vec<Vec<ActorId>>,
}

/// A rule broken by a merge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleIssue {
    /// The hazard.
    pub hazard: String,
    /// What is wrong, in Chinese.
    pub message: String,
}

/// Whether the field at `path` is safety-critical.
fn is_critical(path: &[&str]) -> bool {
    matches!(
        path,
        ["hazards", _, "level"]
            | ["hazards", _, "major_hazard_criterion"]
            | ["hazards", _, "rectification", "status"]
            | ["hazards", _, "rectification", "verifier"]
            | ["accident_reviews", _, "items", _, "verdict"]
    )
}

/// The Chinese name of a field key.
pub fn label(key: &str) -> &'static str {
    match key {
        "level" => "隐患等级",
        "major_hazard_criterion" => "重大隐患判定条款",
        "status" => "整改状态",
        "verifier" => "复查人",
        "verdict" => "四不放过结论",
        "title" => "隐患标题",
        "description" => "隐患描述",
        "hazard_kind" => "隐患类别",
        "code" | "code_system" => "事故类型",
        "text" => "隐患部位",
        "gps" | "lat" | "lon" | "crs" => "GPS 坐标",
        "legal_basis" => "依据条款",
        "inspector" => "发现人",
        "found_at" => "发现时间",
        "mode" => "整改方式",
        "deadline" => "整改期限",
        "owner" => "整改责任人",
        "measures" => "整改措施",
        "interim_control" => "临时管控措施",
        "rectified_by" => "整改人",
        "rectified_at" => "整改完成时间",
        "verified_at" => "复查时间",
        "verification_note" => "复查意见",
        "deleted" => "删除标记",
        "photos" => "隐患照片",
        "photos_after" => "整改后照片",
        "steps" => "整改步骤",
        "checklist_item" => "检查表条目",
        "evidence" => "证据",
        "note" => "备注",
        "accident_date" => "事故日期",
        "accident_summary" => "事故概况",
        "report_ref" => "调查报告",
        "document_type" => "资料类型",
        "name" => "名称",
        "result" => "检查结论",
        "expires_on" => "有效期",
        "date" => "日期",
        "inspectors" => "检查人员",
        _ => "字段",
    }
}

/// How a stored value is shown: enumerations as their Chinese label with
/// the identifier, anything else as it is.
pub fn display(field: &str, value: &str) -> String {
    let text = match field {
        "level" => HazardLevel::parse(value).map(HazardLevel::label),
        "status" => RectificationStatus::parse(value).map(RectificationStatus::label),
        "verdict" => Verdict::parse(value).map(Verdict::label),
        "mode" => RectificationMode::parse(value).map(RectificationMode::label),
        "hazard_kind" => HazardKind::parse(value).map(HazardKind::label),
        "result" => DocumentResult::parse(value).map(DocumentResult::label),
        "crs" => Crs::parse(value).map(Crs::label),
        _ => None,
    };
    text.map_or_else(|| value.to_owned(), |l| format!("{l}（{value}）"))
}

fn text_of(value: &ScalarValue) -> String {
    match value {
        ScalarValue::Str(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// Lists the conflicts of a dossier, in path order.
pub fn conflicts(doc: &impl ReadDoc) -> Result<Vec<Conflict>, ModelError> {
    const COLLECTIONS: [&str; 4] = ["hazards", "accident_reviews", "document_checks", "site_visits"];
    let tree = Tree::of(doc);
    // A document nested deeper than any of ours is refused, not followed.
    for obj in tree.objects() {
        tree.path(obj)?;
    }
    let mut out = Vec::new();
    for (obj, key) in &tree.conflicted {
        let Some(path) = tree.path(obj)? else { continue };
        let parts: Vec<&str> = path.into_iter().chain([key.as_str()]).collect();
        // Below a collection; a union map is read as the union of its
        // copies, and its records are never rewritten.
        if parts.len() < 2 || !COLLECTIONS.contains(&parts[0]) || parts.iter().any(|p| super::UNION_MAPS.contains(p)) {
            continue;
        }
        let mut written: BTreeMap<String, Vec<ActorId>> = BTreeMap::new();
        for (text, _, id) in values_of(doc, obj, key)? {
            let writers = written.entry(text).or_default();
            if let ObjId::Id(_, actor, _) = id
                && !writers.contains(&actor)
            {
                writers.push(actor);
            }
        }
        if written.len() > 1 {
            let (texts, writers) = written.into_iter().unzip();
            out.push(Conflict {
                path: parts.join("/"),
                record: parts[1].to_owned(),
                critical: is_critical(&parts),
                label: label(key),
                field: key.clone(),
                values: texts,
                writers,
            });
        }
    }
    out.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
    Ok(out)
}

/// The concurrent values of `obj[key]` as text: scalars as they are, maps
/// (such as a GPS point two devices set at once) as compact JSON.
fn values_of(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Result<Vec<(String, Value<'static>, ObjId)>, ModelError> {
    let mut out = Vec::new();
    for (value, id) in doc.get_all(obj, key)? {
        let text = match &value {
            Value::Scalar(s) => text_of(s),
            Value::Object(ObjType::Map) => read_json(doc, &id, ObjType::Map)?.to_string(),
            Value::Object(_) => continue,
        };
        out.push((text, value.into_owned(), id));
    }
    Ok(out)
}

/// Lists hazards whose merged state breaks a rule, and those whose
/// rectification loop holds concurrent steps that disagree.
pub fn rule_issues(dossier: &crate::model::Dossier) -> Vec<RuleIssue> {
    let mut out = Vec::new();
    for (id, hazard) in &dossier.hazards {
        if let Err(e) = super::dossier::check_rules(hazard) {
            out.push(RuleIssue { hazard: id.clone(), message: e.to_string() });
        }
        for d in Loop::of(&hazard.rectification).disputes {
            out.push(RuleIssue {
                hazard: id.clone(),
                message: format!("整改分歧：{d}执行；追加一步整改记录（field rectify）即为裁定"),
            });
        }
    }
    out
}

/// Hazard `id` as people should see it while conflicts on it are open:
/// where its level holds concurrent values, the graver (重大 over 一般),
/// whichever one Automerge's deterministic pick is; where it has no
/// criterion but a concurrent value names one, that one. Returns the open
/// conflicts on the hazard, for the reader to mark.
pub fn graver<'a>(hazard: &mut crate::model::Hazard, id: &str, open: &'a [Conflict]) -> Vec<&'a Conflict> {
    let on: Vec<&Conflict> = open.iter().filter(|c| c.record == id).collect();
    for c in &on {
        match c.field.as_str() {
            "level" if c.values.iter().any(|v| v == HazardLevel::Major.as_str()) => {
                hazard.level = HazardLevel::Major;
            }
            "major_hazard_criterion" if hazard.major_hazard_criterion.is_none() => {
                hazard.major_hazard_criterion = c.values.iter().find(|v| crate::codes::criterion(v).is_ok()).cloned();
            }
            _ => {}
        }
    }
    on
}

/// Resolves the conflict at `path` by choosing one of its concurrent values
/// (as listed, or as its Chinese label). The write supersedes every
/// concurrent value and keeps the value's type; a chosen map is written
/// again as a new map.
pub fn resolve(tx: &mut Transaction<'_>, path: &str, choice: &str) -> Result<(), ModelError> {
    let not_found = || ModelError::NotFound { what: "需审核字段", id: path.to_owned() };
    let parts: Vec<&str> = path.split('/').collect();
    let (key, parent) = parts.split_last().ok_or_else(not_found)?;
    if parent.is_empty() {
        return Err(not_found());
    }
    let obj = map_at(tx, parent).map_err(|_| not_found())?;
    let values = values_of(tx, &obj, key)?;
    let choice = choice.trim();
    let chosen =
        values.iter().find(|(text, _, _)| text == choice || display(key, text).starts_with(&format!("{choice}（")));
    match chosen {
        Some((_, Value::Scalar(s), _)) => tx.put(&obj, *key, s.clone().into_owned())?,
        Some((text, Value::Object(_), _)) => {
            let json: serde_json::Value =
                serde_json::from_str(text).map_err(|e| ModelError::Malformed(e.to_string()))?;
            put_value(tx, &obj, key, &json)?;
        }
        None => {
            let current: Vec<String> = values.iter().map(|(t, _, _)| display(key, t)).collect();
            return Err(ModelError::Rule(format!("“{choice}”不是该字段当前的值之一，可选：{}", current.join(" / "))));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;
    use crate::doc::dossier::{add_hazard, create, modify_hazard};
    use crate::doc::edit;
    use crate::ids::{DocId, EntityId};
    use automerge::{ActorId, Automerge};

    #[test]
    fn concurrent_writes_are_conflicts_until_resolved() {
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
        let clause = |i: usize| codes::criteria()[i].id.clone();
        edit(&mut a, 3, |tx| {
            modify_hazard(tx, &id, |h| {
                h.major_hazard_criterion = Some(clause(1));
                h.description = "甲的描述".into();
                Ok(())
            })
        })
        .unwrap();
        edit(&mut c, 3, |tx| {
            modify_hazard(tx, &id, |h| {
                h.major_hazard_criterion = Some(clause(2));
                h.description = "丙的描述".into();
                Ok(())
            })
        })
        .unwrap();
        a.merge(&mut c).unwrap();
        let found = conflicts(&a).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        let criterion = found.iter().find(|c| c.field == "major_hazard_criterion").unwrap();
        assert!(criterion.critical);
        let mut both = vec![clause(1), clause(2)];
        both.sort();
        assert_eq!(criterion.values, both);
        let description = found.iter().find(|c| c.field == "description").unwrap();
        assert!(!description.critical);

        let err = edit(&mut a, 4, |tx| resolve(tx, &criterion.path, &clause(0))).unwrap_err();
        assert!(matches!(err, ModelError::Rule(_)));
        edit(&mut a, 4, |tx| resolve(tx, &criterion.path, &clause(2))).unwrap();
        edit(&mut a, 4, |tx| resolve(tx, &description.path, "丙的描述")).unwrap();
        assert!(conflicts(&a).unwrap().is_empty());
        assert_eq!(crate::doc::dossier::hazard(&a, &id).unwrap().description, "丙的描述");

        // Two devices setting the first GPS point at once create two maps:
        // listed as one conflict, resolved by choosing one.
        let mut d = a.fork().with_actor(ActorId::from(&[4u8; 16][..]));
        let point = |lat| crate::model::GeoPoint { lat, lon: 106.0, crs: crate::model::Crs::Wgs84 };
        edit(&mut a, 5, |tx| {
            modify_hazard(tx, &id, |h| {
                h.location.gps = Some(point(39.0));
                Ok(())
            })
        })
        .unwrap();
        edit(&mut d, 5, |tx| {
            modify_hazard(tx, &id, |h| {
                h.location.gps = Some(point(38.5));
                Ok(())
            })
        })
        .unwrap();
        a.merge(&mut d).unwrap();
        let found = conflicts(&a).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field, "gps");
        let choice = found[0].values.iter().find(|v| v.contains("38.5")).unwrap().clone();
        edit(&mut a, 6, |tx| resolve(tx, &found[0].path, &choice)).unwrap();
        assert!(conflicts(&a).unwrap().is_empty());
        assert_eq!(crate::doc::dossier::hazard(&a, &id).unwrap().location.gps, Some(point(38.5)));
    }
}
