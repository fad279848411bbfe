//! Coded values from standards: accident types (GB 6441) and major-hazard
//! criterion clauses. Every coded value stores its code system beside the
//! code, because the standards change (GB 6441-2025 replaces GB 6441-1986).
//!
//! The tables are the files under `schemas/`, embedded at build time, so the
//! schemas and the code cannot drift apart.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// Errors from checking a coded value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeError {
    /// The accident-type code is not in the table of its code system.
    #[error("未知的事故类型代码“{code}”（{system}），请使用 GB 6441-1986 的 01–20")]
    UnknownAccidentType {
        /// The code system named.
        system: &'static str,
        /// The code given.
        code: String,
    },
    /// The criterion clause id is not in `schemas/major-hazard-criteria.json`.
    #[error("未知的重大事故隐患判定条款：{0}")]
    UnknownCriterion(String),
}

/// The standard an accident-type code comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CodeSystem {
    /// GB 6441-1986 企业职工伤亡事故分类 (20 categories).
    #[serde(rename = "gb6441_1986")]
    Gb6441_1986,
    /// GB 6441-2025 生产安全事故分类与编码 (27 categories; table not yet shipped).
    #[serde(rename = "gb6441_2025")]
    Gb6441_2025,
}

impl CodeSystem {
    /// The identifier stored in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeSystem::Gb6441_1986 => "gb6441_1986",
            CodeSystem::Gb6441_2025 => "gb6441_2025",
        }
    }
}

/// An accident type (事故类型): a code with its code system.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccidentType {
    /// The standard the code comes from.
    pub code_system: CodeSystem,
    /// The code, e.g. `"09"` for 高处坠落.
    pub code: String,
}

#[derive(Deserialize)]
struct AccidentTable {
    types: Vec<AccidentTypeEntry>,
}

/// One row of an accident-type table.
#[derive(Clone, Debug, Deserialize)]
pub struct AccidentTypeEntry {
    /// Two-digit code.
    pub code: String,
    /// Chinese name, e.g. 高处坠落.
    pub name: String,
    /// English identifier, e.g. `fall_from_height`.
    pub id: String,
}

/// The GB 6441-1986 table (`schemas/accident-types/gb6441-1986.json`).
pub fn gb6441_1986() -> &'static [AccidentTypeEntry] {
    static TABLE: OnceLock<Vec<AccidentTypeEntry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        serde_json::from_str::<AccidentTable>(include_str!("../../schemas/accident-types/gb6441-1986.json"))
            .map(|t| t.types)
            .unwrap_or_default()
    })
}

impl AccidentType {
    /// A GB 6441-1986 code, checked against the table.
    pub fn gb6441_1986(code: &str) -> Result<Self, CodeError> {
        let code = if code.len() == 1 { format!("0{code}") } else { code.to_owned() };
        let accident = Self { code_system: CodeSystem::Gb6441_1986, code };
        accident.validate()?;
        Ok(accident)
    }

    /// Checks that the code exists in its code system's table.
    pub fn validate(&self) -> Result<(), CodeError> {
        self.entry().map(|_| ()).ok_or_else(|| CodeError::UnknownAccidentType {
            system: self.code_system.as_str(),
            code: self.code.clone(),
        })
    }

    /// The table row, if the code is known.
    pub fn entry(&self) -> Option<&'static AccidentTypeEntry> {
        match self.code_system {
            CodeSystem::Gb6441_1986 => gb6441_1986().iter().find(|e| e.code == self.code),
            CodeSystem::Gb6441_2025 => None,
        }
    }

    /// The Chinese name, or the raw code when unknown.
    pub fn name(&self) -> &str {
        self.entry().map_or(self.code.as_str(), |e| e.name.as_str())
    }
}

/// A major-hazard criterion clause (重大事故隐患判定条款).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Criterion {
    /// Stable id, e.g. `jianzhi-2022-2/art8-1`.
    pub id: String,
    /// The standard's title.
    pub standard: String,
    /// The issuing document number, e.g. 建质规〔2022〕2号.
    pub document_no: String,
    /// The clause, e.g. 第八条第（一）项.
    pub clause: String,
    /// `construction`, `coal_mine` or `metal_nonmetal_mine`.
    pub domain: String,
    /// The clause text.
    pub text: String,
}

#[derive(Deserialize)]
struct CriteriaTable {
    criteria: Vec<Criterion>,
}

/// All known criterion clauses (`schemas/major-hazard-criteria.json`).
pub fn criteria() -> &'static [Criterion] {
    static TABLE: OnceLock<Vec<Criterion>> = OnceLock::new();
    TABLE.get_or_init(|| {
        serde_json::from_str::<CriteriaTable>(include_str!("../../schemas/major-hazard-criteria.json"))
            .map(|t| t.criteria)
            .unwrap_or_default()
    })
}

/// Looks up a criterion clause by id.
pub fn criterion(id: &str) -> Result<&'static Criterion, CodeError> {
    criteria().iter().find(|c| c.id == id).ok_or_else(|| CodeError::UnknownCriterion(id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_tables_parse() {
        assert_eq!(gb6441_1986().len(), 20);
        assert!(criteria().len() >= 30);
        let ids: std::collections::BTreeSet<_> = criteria().iter().map(|c| &c.id).collect();
        assert_eq!(ids.len(), criteria().len(), "criterion ids are unique");
    }

    #[test]
    fn accident_codes_are_checked() {
        assert_eq!(AccidentType::gb6441_1986("9").unwrap().name(), "高处坠落");
        assert!(matches!(AccidentType::gb6441_1986("21"), Err(CodeError::UnknownAccidentType { .. })));
        let future = AccidentType { code_system: CodeSystem::Gb6441_2025, code: "01".into() };
        assert!(future.validate().is_err());
    }
}
