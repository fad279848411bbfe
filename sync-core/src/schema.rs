//! The JSON Schemas of `schemas/`, enforced. Every door data enters by (a
//! local edit, a bundle import, a sync session at HQ, at a relay, at a peer)
//! checks here, through [`crate::validate`] for whole documents and the
//! record writers of [`crate::doc`] for local edits: key patterns, UTC
//! timestamps, enums, lengths, unknown fields and the text hygiene of
//! [`crate::text`] (the schemas' formats `line` and `text`). A refusal names
//! the place and the reason in Chinese.
//!
//! Stored documents omit empty strings and `false` (readers default them),
//! so the schemas require only what a document always holds; an export,
//! written from the typed records, holds every field.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::{Value as Json, json};

use crate::ids::DocKind;
use crate::text::{self, Kind};

/// Why a document or record breaks its schema (Chinese, shown to people).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("{place}{reason}")]
pub struct Breach {
    /// Where, e.g. `隐患 01J…的 found_at：` (empty at the root).
    pub place: String,
    /// What is wrong there.
    pub reason: String,
}

/// Where records are kept (their path, `*` for each id), the definition of
/// each record, and its name.
const COLLECTIONS: &[(&str, DocKind, &str, &str)] = &[
    ("hazards/*", DocKind::EnterpriseDossier, "hazard", "隐患"),
    ("site_visits/*", DocKind::EnterpriseDossier, "site_visit", "现场检查"),
    ("accident_reviews/*", DocKind::EnterpriseDossier, "accident_review", "四不放过核查"),
    ("document_checks/*", DocKind::EnterpriseDossier, "document_check", "资料检查"),
    ("team/*", DocKind::Campaign, "team_member", "检查组成员"),
    ("enterprises/*", DocKind::Campaign, "enterprise", "企业"),
    ("schedule/*", DocKind::Campaign, "schedule_entry", "日程"),
    ("accident_reviews/*/items/*", DocKind::EnterpriseDossier, "review_item", "四不放过核查项"),
    ("hazards/*/rectification/steps/*", DocKind::EnterpriseDossier, "step", "整改步骤"),
    ("sections/*", DocKind::Briefing, "briefing_section", "章节"),
    ("picks/*", DocKind::Briefing, "pick", "典型隐患"),
    ("items/*", DocKind::Checklist, "checklist_item", "检查项"),
];

/// The name of the map a collection's records are kept in (`steps`).
fn collection_name(pattern: &str) -> &str {
    pattern.rsplit('/').nth(1).unwrap_or_default()
}

/// The collection whose records are kept at `path` (ids included).
fn collection_at(path: &[&str]) -> Option<usize> {
    COLLECTIONS.iter().position(|c| {
        let pattern: Vec<&str> = c.0.split('/').collect();
        pattern.len() == path.len() && pattern.iter().zip(path).all(|(p, s)| *p == "*" || p == s)
    })
}

/// Maps keyed by something other than a record id: a bad key there is a
/// bad key, not an unknown field.
const KEYED: &[(&str, &str)] =
    &[("photos", "照片"), ("photos_after", "照片"), ("findings", "隐患"), ("checklists", "检查清单")];

fn source(kind: DocKind) -> &'static str {
    match kind {
        DocKind::Campaign => include_str!("../../schemas/campaign.schema.json"),
        DocKind::EnterpriseDossier => include_str!("../../schemas/enterprise_dossier.schema.json"),
        DocKind::Briefing => include_str!("../../schemas/briefing.schema.json"),
        DocKind::Checklist => include_str!("../../schemas/checklist.schema.json"),
    }
}

fn build(schema: &Json) -> Validator {
    jsonschema::options()
        // The schemas' patterns need no backtracking: the linear-time
        // engine, whatever a peer's strings hold.
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .with_format("line", |s: &str| text::check(s, Kind::Line).is_ok())
        .with_format("text", |s: &str| text::check(s, Kind::Text).is_ok())
        .should_validate_formats(true)
        .build(schema)
        // The schemas are part of this crate; a test builds them all.
        .expect("the embedded schemas compile")
}

const KINDS: [DocKind; 4] = [DocKind::Campaign, DocKind::EnterpriseDossier, DocKind::Briefing, DocKind::Checklist];

/// Each validator is built when first needed (HQ never builds the record
/// validators of local edits; compiled schemas cost memory).
static SOURCES: [OnceLock<Json>; 4] = [const { OnceLock::new() }; 4];
static DOCUMENTS: [OnceLock<Validator>; 4] = [const { OnceLock::new() }; 4];
static RECORDS: [OnceLock<Validator>; COLLECTIONS.len()] = [const { OnceLock::new() }; COLLECTIONS.len()];

fn index(kind: DocKind) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or_default()
}

/// The parsed schema of `kind`.
fn schema_of(kind: DocKind) -> &'static Json {
    SOURCES[index(kind)].get_or_init(|| serde_json::from_str(source(kind)).expect("the embedded schemas are JSON"))
}

fn document_validator(kind: DocKind) -> &'static Validator {
    DOCUMENTS[index(kind)].get_or_init(|| build(schema_of(kind)))
}

/// The validator of the records kept at `COLLECTIONS[i]`.
fn record_validator(i: usize) -> &'static Validator {
    RECORDS[i].get_or_init(|| {
        let (_, kind, def, _) = COLLECTIONS[i];
        let record = json!({ "$defs": schema_of(kind)["$defs"], "$ref": format!("#/$defs/{def}") });
        build(&record)
    })
}

/// Checks a whole document of `kind`, as read from its Automerge form.
/// Rules that tie one field to another (a major hazard names its
/// criterion) are left out: a merge of two valid edits can break them, so
/// merged documents list them for review ([`crate::doc::conflicts`]).
pub fn document(kind: DocKind, json: &Json) -> Result<(), Breach> {
    let validator = document_validator(kind);
    // The common case allocates no error to find there is none.
    if validator.is_valid(json) {
        return Ok(());
    }
    let shape = validator.iter_errors(json).find(|e| !e.schema_path().as_str().contains("/then"));
    shape.map_or(Ok(()), |e| Err(breach(&e, schema_of(kind), &[])))
}

/// Checks a record a local edit writes at `path` (`["hazards", id]`),
/// every rule included.
pub fn record(path: &[&str], json: &Json) -> Result<(), Breach> {
    let Some(i) = collection_at(path) else { return Ok(()) };
    record_validator(i).validate(json).map_err(|e| breach(&e, schema_of(COLLECTIONS[i].1), path))
}

/// The Chinese reading of one error of `schema` in the value at `prefix`.
fn breach(error: &ValidationError<'_>, schema: &Json, prefix: &[&str]) -> Breach {
    let inner = error.instance_path().iter().map(|s| s.to_string());
    let segments: Vec<String> = prefix.iter().map(|s| s.to_string()).chain(inner).collect();
    let value = error.instance();
    let shown = shown(value);
    let schema_path = error.schema_path().as_str();
    let reason = match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let keys = unexpected.join("、");
            // A map keyed by ids (its schema has key patterns) or a record.
            let object = schema_path.strip_suffix("/additionalProperties").and_then(|p| schema.pointer(p));
            let keyed = object.is_some_and(|o| o.get("patternProperties").is_some());
            let last = segments.last().map_or("", String::as_str);
            let names = KEYED.iter().copied().chain(COLLECTIONS.iter().map(|c| (collection_name(c.0), c.3)));
            match names.filter(|_| keyed).find(|k| k.0 == last) {
                Some((_, what)) => format!("{what}编号“{keys}”格式无效"),
                None if keyed => format!("编号“{keys}”格式无效"),
                None => format!("含有未定义的字段：{keys}"),
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            if schema_path.contains("/then") && name == "major_hazard_criterion" {
                "重大事故隐患必须引用判定条款".to_owned()
            } else {
                format!("缺少必填字段 {name}")
            }
        }
        ValidationErrorKind::Type { .. } => format!("{shown} 的类型不对"),
        ValidationErrorKind::Enum { options } => {
            let options = options.as_array().into_iter().flatten().filter_map(Json::as_str);
            format!("{shown} 不是允许的取值（{}）", options.collect::<Vec<_>>().join("、"))
        }
        ValidationErrorKind::Constant { expected_value } => format!("{shown} 应为 {expected_value}"),
        ValidationErrorKind::MaxLength { limit } => {
            let count = value.as_str().map_or(0, |s| s.chars().count());
            format!("共 {count} 个字符，超过上限 {limit}")
        }
        ValidationErrorKind::MinLength { .. } => "不能为空".to_owned(),
        ValidationErrorKind::Format { format } if format == "line" || format == "text" => {
            let kind = if format == "line" { Kind::Line } else { Kind::Text };
            match value.as_str().map(|s| text::check(s, kind)) {
                Some(Err(e)) => e.to_string(),
                _ => "文字不合规".to_owned(),
            }
        }
        ValidationErrorKind::Pattern { .. } | ValidationErrorKind::Format { .. } => {
            format!("{shown} 格式无效{}", hint(schema_path))
        }
        ValidationErrorKind::Minimum { .. }
        | ValidationErrorKind::Maximum { .. }
        | ValidationErrorKind::ExclusiveMinimum { .. }
        | ValidationErrorKind::ExclusiveMaximum { .. } => format!("{shown} 超出允许范围"),
        _ => "不符合文档结构".to_owned(),
    };
    Breach { place: place(&segments), reason }
}

/// What a value should look like, from the definition it broke.
fn hint(schema_path: &str) -> &'static str {
    let def = schema_path.strip_prefix("/$defs/").and_then(|rest| rest.split('/').next()).unwrap_or_default();
    match def {
        "timestamp" => "（应为 UTC 时间，如 2026-11-23T02:00:00Z）",
        "date" => "（应为日期 YYYY-MM-DD，如 2026-11-23）",
        "credit_code" => "（应为 18 位统一社会信用代码）",
        "criterion_id" => "（应为判定条款编号，如 jianzhi-2022-2/art8-1）",
        "checklist_item_id" => "（应为检查项编号）",
        d if d.ends_with("_id") => "（文档编号格式无效）",
        _ => "",
    }
}

/// `隐患 01J…的 found_at：` for `/hazards/01J…/found_at`.
fn place(segments: &[String]) -> String {
    let mut out = String::new();
    let mut rest = segments;
    while let [first, tail @ ..] = rest {
        // The collection of that name kept where the path has been.
        let walked = &segments[..segments.len() - rest.len()];
        let within = |c: &&(&str, DocKind, &str, &str)| {
            let pattern: Vec<&str> = c.0.split('/').collect();
            pattern.len() == walked.len() + 2 && pattern.iter().zip(walked).all(|(p, s)| *p == "*" || p == s)
        };
        match (COLLECTIONS.iter().filter(within).find(|c| collection_name(c.0) == first), tail) {
            (Some(c), [id, more @ ..]) => {
                out.push_str(&format!("{} {id}", c.3));
                rest = more;
            }
            _ => {
                out.push_str(if out.is_empty() { "字段 " } else { " 的 " });
                out.push_str(&segments[segments.len() - rest.len()..].join("."));
                break;
            }
        }
    }
    if out.is_empty() { out } else { out + "：" }
}

/// A value as quoted in a reason, cut to 40 characters.
fn shown(value: &Json) -> String {
    let text = match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut cut: String = text.chars().take(40).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("“{cut}”")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_and_record_compiles() {
        for kind in KINDS {
            document_validator(kind);
        }
        for i in 0..COLLECTIONS.len() {
            record_validator(i);
        }
    }

    #[test]
    fn a_breach_names_its_place_and_reason_in_chinese() {
        let hazard = json!({
            "title": "脚手架", "hazard_kind": "unsafe_condition",
            "accident_type": {"code_system": "gb6441_1986", "code": "10"},
            "level": "general", "location": {}, "photos": {}, "found_at": "昨天下午",
            "rectification": {"status": "open", "photos_after": {}},
        });
        let at = ["hazards", "01KBQ3Y5Z8V6JX0S5T8E4R2M9N"];
        let breach = record(&at, &hazard).unwrap_err();
        assert_eq!(
            breach.to_string(),
            "隐患 01KBQ3Y5Z8V6JX0S5T8E4R2M9N 的 found_at：“昨天下午” 格式无效（应为 UTC 时间，如 2026-11-23T02:00:00Z）"
        );
        let mut major = hazard.clone();
        major["found_at"] = json!("2026-12-06T18:50:00Z");
        assert_eq!(record(&at, &major), Ok(()));
        major["level"] = json!("major");
        assert_eq!(record(&at, &major).unwrap_err().reason, "重大事故隐患必须引用判定条款");
    }
}
