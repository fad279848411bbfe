//! Work-injury insurance policy and prevention knowledge for the briefing
//! (`schemas/work-injury-knowledge.json`, written for this product, each
//! point naming the instrument and clause it summarises), read at build
//! time like the code tables.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

/// The knowledge file.
#[derive(Clone, Debug, Deserialize)]
pub struct Knowledge {
    /// The instruments cited, by id.
    pub sources: BTreeMap<String, Source>,
    /// Points of work-injury insurance policy.
    pub policy: Vec<Policy>,
    /// Prevention points by GB 6441-1986 accident type code.
    pub prevention: BTreeMap<String, Prevention>,
    /// Quiz questions.
    pub quiz: Vec<Question>,
}

/// An instrument cited (a regulation, a standard).
#[derive(Clone, Debug, Deserialize)]
pub struct Source {
    /// Its title.
    pub title: String,
    /// Its document number, e.g. 国务院令第586号.
    pub document_no: String,
}

/// One point of policy.
#[derive(Clone, Debug, Deserialize)]
pub struct Policy {
    /// Short title.
    pub title: String,
    /// The point, in plain words.
    pub text: String,
    /// The instrument.
    pub source: String,
    /// The clause, if one is cited.
    #[serde(default)]
    pub clause: Option<String>,
}

/// Prevention knowledge for one accident type.
#[derive(Clone, Debug, Deserialize)]
pub struct Prevention {
    /// The accident type's name.
    pub name: String,
    /// What prevents it.
    pub points: Vec<Point>,
}

/// One prevention point.
#[derive(Clone, Debug, Deserialize)]
pub struct Point {
    /// The point.
    pub text: String,
    /// The instrument.
    pub source: String,
    /// The clause, if one is cited.
    #[serde(default)]
    pub clause: Option<String>,
}

/// A multiple-choice question.
#[derive(Clone, Debug, Deserialize)]
pub struct Question {
    /// Stable id.
    pub id: String,
    /// The question.
    pub question: String,
    /// Four choices.
    pub choices: Vec<String>,
    /// The right choice (0–3).
    pub answer: usize,
    /// Why.
    pub explanation: String,
    /// The instrument.
    pub source: String,
    /// The accident type it is about, if any.
    #[serde(default)]
    pub accident_type: Option<String>,
}

impl Knowledge {
    /// The file bundled into the build.
    pub fn bundled() -> &'static Knowledge {
        static KNOWLEDGE: OnceLock<Knowledge> = OnceLock::new();
        KNOWLEDGE.get_or_init(|| {
            serde_json::from_str(include_str!("../../schemas/work-injury-knowledge.json"))
                .expect("schemas/work-injury-knowledge.json is checked by the tests")
        })
    }

    /// How a point's source reads: 《title》（document number）clause.
    pub fn cite(&self, source: &str, clause: Option<&str>) -> String {
        let named = match self.sources.get(source) {
            Some(s) if s.document_no.is_empty() => format!("《{}》", s.title),
            Some(s) => format!("《{}》（{}）", s.title, s.document_no),
            None => source.to_owned(),
        };
        match clause {
            Some(clause) => format!("{named}{clause}"),
            None => named,
        }
    }
}
