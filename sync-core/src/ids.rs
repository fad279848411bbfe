//! Identifiers: document ids (one per Automerge document) and entity ids
//! (keys of the maps inside a document).
//!
//! Collections inside documents are maps keyed by ULIDs, never list
//! positions, so two devices adding findings offline never collide. Dossier
//! and briefing ids are derived from the campaign (and enterprise), so every
//! device opens the same document for the same campaign × enterprise.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Errors from parsing an id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// Not a document id of a known kind.
    #[error("文档编号无效：{0}")]
    InvalidDocId(String),
    /// Not an entity id (26-character ULID).
    #[error("记录编号无效：{0}")]
    InvalidEntityId(String),
    /// Not an 18-character unified social credit code.
    #[error("统一社会信用代码无效：{0}（应为 18 位）")]
    InvalidCreditCode(String),
    /// Not a photo name (64 lowercase hex digits: a SHA-256).
    #[error("照片名称无效：{0}")]
    InvalidPhotoId(String),
}

/// The kind of an Automerge document, named by its id prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    /// An inspection campaign (`cmp-`).
    Campaign,
    /// An enterprise dossier, one per campaign × enterprise (`dos-`).
    EnterpriseDossier,
    /// The briefing deck of a campaign (`brf-`).
    Briefing,
    /// A published checklist / recommended hazard library (`chk-`).
    Checklist,
}

impl DocKind {
    fn prefix(self) -> &'static str {
        match self {
            DocKind::Campaign => "cmp",
            DocKind::EnterpriseDossier => "dos",
            DocKind::Briefing => "brf",
            DocKind::Checklist => "chk",
        }
    }

    /// The identifier used in documents and exports.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Campaign => "campaign",
            DocKind::EnterpriseDossier => "enterprise_dossier",
            DocKind::Briefing => "briefing",
            DocKind::Checklist => "checklist",
        }
    }
}

/// A document id such as `cmp-…`, `dos-…`, `brf-…` or `chk-…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocId(String);

impl DocId {
    /// A new campaign id from 16 random bytes (randomness is an input).
    pub fn new_campaign(random: [u8; 16]) -> Self {
        Self(format!("cmp-{}", hex::encode(random)))
    }

    /// The dossier of `enterprise` in `campaign`: the same on every device.
    pub fn dossier(campaign: &DocId, enterprise: &CreditCode) -> Self {
        Self(format!("dos-{}", derive(b"fieldsync/dossier/v1", &[campaign.as_str(), enterprise.as_str()])))
    }

    /// The briefing of `campaign`: the same on every device.
    pub fn briefing(campaign: &DocId) -> Self {
        Self(format!("brf-{}", derive(b"fieldsync/briefing/v1", &[campaign.as_str()])))
    }

    /// The document holding version `version` of checklist `id`.
    pub fn checklist(id: &str, version: u64) -> Result<Self, IdError> {
        format!("chk-{id}-v{version}").parse()
    }

    /// The kind, from the prefix.
    pub fn kind(&self) -> DocKind {
        match &self.0[..3] {
            "cmp" => DocKind::Campaign,
            "dos" => DocKind::EnterpriseDossier,
            "brf" => DocKind::Briefing,
            _ => DocKind::Checklist,
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn derive(domain: &[u8], parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    for part in parts {
        hasher.update([0]);
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

impl FromStr for DocId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IdError::InvalidDocId(s.to_owned());
        let (prefix, rest) = s.split_once('-').ok_or_else(bad)?;
        let known = [DocKind::Campaign, DocKind::EnterpriseDossier, DocKind::Briefing, DocKind::Checklist]
            .iter()
            .any(|k| k.prefix() == prefix);
        let charset_ok = rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let shape_ok = if prefix == "chk" {
            !rest.is_empty() && rest.len() <= 96
        } else {
            rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit())
        };
        if known && charset_ok && shape_ok { Ok(Self(s.to_owned())) } else { Err(bad()) }
    }
}

impl TryFrom<String> for DocId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DocId> for String {
    fn from(id: DocId) -> Self {
        id.0
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocId({})", self.0)
    }
}

/// The key of an entity inside a document (hazard, review, check, visit…): a ULID.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntityId(String);

impl EntityId {
    /// A new id from the current time in ms and 80 random bits (both inputs).
    pub fn new(now_ms: u64, random: u128) -> Self {
        Self(ulid::Ulid::from_parts(now_ms, random).to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EntityId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(s).map(|u| Self(u.to_string())).map_err(|_| IdError::InvalidEntityId(s.to_owned()))
    }
}

impl TryFrom<String> for EntityId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<EntityId> for String {
    fn from(id: EntityId) -> Self {
        id.0
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntityId({})", self.0)
    }
}

/// A unified social credit code (统一社会信用代码), the key of an enterprise.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CreditCode(String);

impl CreditCode {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CreditCode {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let code = s.trim().to_ascii_uppercase();
        // GB 32100-2015: 18 characters from digits and upper-case letters
        // without I, O, Z, S, V.
        let ok = code.len() == 18
            && code.bytes().all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"IOZSV".contains(&b)));
        if ok { Ok(Self(code)) } else { Err(IdError::InvalidCreditCode(s.to_owned())) }
    }
}

impl TryFrom<String> for CreditCode {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CreditCode> for String {
    fn from(id: CreditCode) -> Self {
        id.0
    }
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a document belongs: its campaign and, for a dossier, its
/// enterprise. Scope checks and the photo exchange judge by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocTag {
    /// The campaign.
    pub campaign: DocId,
    /// The enterprise, for a dossier.
    pub enterprise: Option<CreditCode>,
}

/// SHA-256 of bytes, as lowercase hex: the name of a photo.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `name` is a well-formed blob name (64 lowercase hex digits).
pub fn is_blob_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A photo's name: the SHA-256 of its bytes. Parsed only from 64 lowercase
/// hex digits, so a name can never be a path.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhotoId([u8; 32]);

impl PhotoId {
    /// The id of a SHA-256 digest.
    pub fn from_digest(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for PhotoId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        if !is_blob_name(s) {
            return Err(IdError::InvalidPhotoId(s.chars().take(80).collect()));
        }
        let mut digest = [0u8; 32];
        hex::decode_to_slice(s, &mut digest).map_err(|_| IdError::InvalidPhotoId(s.to_owned()))?;
        Ok(Self(digest))
    }
}

impl fmt::Display for PhotoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PhotoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhotoId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let campaign = DocId::new_campaign([1; 16]);
        let a: CreditCode = "91640200MA76XYW123".parse().unwrap();
        let b: CreditCode = "91640200MA76XYW124".parse().unwrap();
        assert_eq!(DocId::dossier(&campaign, &a), DocId::dossier(&campaign, &a));
        assert_ne!(DocId::dossier(&campaign, &a), DocId::dossier(&campaign, &b));
        assert_eq!(DocId::dossier(&campaign, &a).kind(), DocKind::EnterpriseDossier);
        assert_eq!(DocId::briefing(&campaign).kind(), DocKind::Briefing);
        let parsed: DocId = DocId::briefing(&campaign).as_str().parse().unwrap();
        assert_eq!(parsed, DocId::briefing(&campaign));
    }

    #[test]
    fn bad_ids_are_rejected() {
        assert!("xyz-00".parse::<DocId>().is_err());
        assert!("dos-../../etc".parse::<DocId>().is_err());
        assert!("dos-0123".parse::<DocId>().is_err());
        assert!("chk-construction-jgj59-v1".parse::<DocId>().is_ok());
        assert!("not-a-ulid".parse::<EntityId>().is_err());
        assert!("12345".parse::<CreditCode>().is_err());
        assert!("91640200MA76XYO123".parse::<CreditCode>().is_err());
    }
}
