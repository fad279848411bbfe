//! Checklists / recommended hazard libraries (推荐隐患清单).
//!
//! A checklist version is published by HQ and is read-only on devices. Its
//! document is a deterministic genesis built from the published content, so
//! every device holding the same version holds the same document, and any
//! other change to a checklist document is refused on import.

use automerge::{Automerge, ReadDoc};

use super::{ModelError, genesis, to_object};
use crate::codes;
use crate::ids::DocId;
use crate::model::Checklist;

/// Checks a checklist's items: known accident types and criterion clauses.
pub fn validate(checklist: &Checklist) -> Result<(), ModelError> {
    if checklist.kind != "checklist" {
        return Err(ModelError::Malformed(format!("不是检查清单：{}", checklist.kind)));
    }
    for (id, item) in &checklist.items {
        let fail = |e: &dyn std::fmt::Display| ModelError::Rule(format!("清单条目 {id}：{e}"));
        item.accident_type.validate().map_err(|e| fail(&e))?;
        if let Some(clause) = &item.major_hazard_criterion {
            codes::criterion(clause).map_err(|e| fail(&e))?;
        }
    }
    Ok(())
}

/// The document of a published checklist version.
pub fn create(checklist: &Checklist) -> Result<Automerge, ModelError> {
    validate(checklist)?;
    let id = DocId::checklist(&checklist.id, checklist.version).map_err(|e| ModelError::Malformed(e.to_string()))?;
    genesis(&id, &to_object(checklist)?)
}

/// Reads a checklist document.
pub fn read(doc: &impl ReadDoc) -> Result<Checklist, ModelError> {
    from_document(super::document_json(doc)?)
}

/// The checklist a document's JSON holds.
pub(crate) fn from_document(json: serde_json::Value) -> Result<Checklist, ModelError> {
    let checklist: Checklist = super::from_json(json)?;
    validate(&checklist)?;
    Ok(checklist)
}
