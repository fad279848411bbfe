//! Typed access to the Automerge documents.
//!
//! Every edit is an explicit Automerge transaction ([`edit`]) so the caller
//! learns the change hash at commit time and can sign it. Inside a
//! transaction, an edit reads the typed record, changes it, validates the
//! result, and writes back only the leaves that changed ([`write_diff`]):
//! two inspectors editing different fields of one finding never overwrite
//! each other, and a critical field is only written when it really changes.
//!
//! Layout rules that make concurrent edits safe (see ARCHITECTURE.md):
//! - collections are maps keyed by ids, never lists;
//! - every nested map and text object is created once, together with its
//!   parent record, by the device that creates the record; later edits only
//!   put scalars or splice text into existing objects;
//! - dossiers and briefings start from a deterministic genesis change
//!   ([`genesis`]) so devices that open the same document offline share its
//!   root objects instead of creating competing ones.

pub mod briefing;
pub mod campaign;
pub mod checklist;
pub mod conflicts;
pub mod dossier;
pub mod history;

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{
    ActorId, Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, ScalarValueRef, Value, ValueRef,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::codes::CodeError;
use crate::ids::DocId;

/// Keys whose string values are Automerge text (character-merged) rather
/// than single values. Only the briefing's notes, which HQ edits at length:
/// in dossiers every character of a text would be an operation, and a
/// 2,000-finding dossier would take seconds to load. Concurrent writes to a
/// dossier's strings are kept by Automerge and listed for review instead
/// ([`conflicts`]).
const TEXT_FIELDS: &[&str] = &["notes"];

/// Maps that two devices may create at once under the same key, read as
/// the union of their concurrent copies: the rectification steps of a
/// hazard recorded before steps existed, whose map the first step creates.
/// Every other nested map is created with its parent record.
const UNION_MAPS: &[&str] = &["steps", "picks"];

/// The concurrent copies of the map at `obj[key]`, if it is one of
/// [`UNION_MAPS`] and has several.
fn union_copies(doc: &impl ReadDoc, obj: &ObjId, key: &str, conflict: bool) -> Option<Vec<ObjId>> {
    if !conflict || !UNION_MAPS.contains(&key) {
        return None;
    }
    let all = doc.get_all(obj, key).ok()?;
    let maps = all.into_iter().filter(|(v, _)| matches!(v, Value::Object(ObjType::Map))).map(|(_, id)| id);
    Some(maps.collect())
}

/// Errors from reading or editing a document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Automerge refused an operation.
    #[error("文档操作失败：{0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// A record that an edit names does not exist.
    #[error("未找到{what}：{id}")]
    NotFound {
        /// What was looked for, in Chinese.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// A record with this id already exists.
    #[error("{what}已存在：{id}")]
    Duplicate {
        /// What, in Chinese.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The document does not have the shape of its kind.
    #[error("文档结构无效：{0}")]
    Malformed(String),
    /// A coded value is unknown.
    #[error(transparent)]
    Code(#[from] CodeError),
    /// A major hazard needs a criterion clause.
    #[error("重大事故隐患必须引用判定条款（--criterion），不能自由填写")]
    MajorWithoutCriterion,
    /// A required field is empty.
    #[error("{0}不能为空")]
    Empty(&'static str),
    /// A date is not YYYY-MM-DD.
    #[error("日期格式无效：“{0}”（应为 YYYY-MM-DD，如 2026-11-23）")]
    InvalidDate(String),
    /// A GPS point is out of range.
    #[error("GPS 坐标超出范围：纬度 {lat}，经度 {lon}")]
    InvalidGps {
        /// Latitude.
        lat: f64,
        /// Longitude.
        lon: f64,
    },
    /// A record breaks its kind's schema.
    #[error(transparent)]
    Schema(crate::schema::Breach),
    /// The document was written by a newer version of FieldSync.
    #[error("文档 {id} 的结构版本为 {found}，本程序只认识到 {known}：数据已保留，请更新程序后再查看")]
    NewerVersion {
        /// The document.
        id: String,
        /// Its `schema_version`.
        found: u64,
        /// [`SCHEMA_VERSION`](crate::model::SCHEMA_VERSION).
        known: u64,
    },
    /// A rule of the workflow is not met; the text says which.
    #[error("{0}")]
    Rule(String),
}

/// The outcome of an edit that changed something.
#[derive(Debug)]
pub struct Committed<T> {
    /// What the edit returned.
    pub value: T,
    /// The change it made, or `None` if it wrote nothing.
    pub hash: Option<ChangeHash>,
}

/// Runs `f` in one transaction stamped with `now_ms`; commits on success,
/// rolls back (leaving `doc` untouched) on error.
pub fn edit<T>(
    doc: &mut Automerge,
    now_ms: i64,
    f: impl FnOnce(&mut Transaction<'_>) -> Result<T, ModelError>,
) -> Result<Committed<T>, ModelError> {
    doc.transact_with(|_| CommitOptions::default().with_time(now_ms), f)
        .map(|ok| Committed { value: ok.result, hash: ok.hash })
        .map_err(|failed| failed.error)
}

/// Like [`edit`], made by HQ's console for a signed-in person: the change's
/// message names their account ([`history::HazardChange::account`]), so the
/// signed change says who decided as well as which device signed it.
pub fn edit_for<T>(
    doc: &mut Automerge,
    now_ms: i64,
    account: &str,
    f: impl FnOnce(&mut Transaction<'_>) -> Result<T, ModelError>,
) -> Result<Committed<T>, ModelError> {
    doc.transact_with(|_| CommitOptions::default().with_time(now_ms).with_message(account.to_owned()), f)
        .map(|ok| Committed { value: ok.result, hash: ok.hash })
        .map_err(|failed| failed.error)
}

/// The actor of a document's genesis change, derived from the document id.
pub fn genesis_actor(id: &DocId) -> ActorId {
    let mut hasher = Sha256::new();
    hasher.update(b"fieldsync/genesis/v1");
    hasher.update(id.as_str().as_bytes());
    ActorId::from(&hasher.finalize()[..16])
}

/// Builds the deterministic first change of a derived document: the same
/// bytes, and so the same hash, on every device.
fn genesis(id: &DocId, root: &Map<String, Json>) -> Result<Automerge, ModelError> {
    let mut doc = Automerge::new().with_actor(genesis_actor(id));
    edit(&mut doc, 0, |tx| {
        for (key, value) in root {
            put_value(tx, &ROOT, key, value)?;
        }
        Ok(())
    })?;
    Ok(doc)
}

/// Writes `value` as a new object or scalar at `obj[key]`.
fn put_value(tx: &mut Transaction<'_>, obj: &ObjId, key: &str, value: &Json) -> Result<(), ModelError> {
    match value {
        Json::Object(fields) => {
            let child = tx.put_object(obj, key, ObjType::Map)?;
            for (k, v) in fields {
                put_value(tx, &child, k, v)?;
            }
        }
        Json::Array(items) => {
            let list = tx.put_object(obj, key, ObjType::List)?;
            for (i, item) in items.iter().enumerate() {
                match item {
                    Json::String(s) => tx.insert(&list, i, s.as_str())?,
                    other => {
                        return Err(ModelError::Malformed(format!("列表只能包含文本：{other}")));
                    }
                }
            }
        }
        Json::String(s) if TEXT_FIELDS.contains(&key) => {
            let text = tx.put_object(obj, key, ObjType::Text)?;
            tx.splice_text(&text, 0, 0, s)?;
        }
        Json::Null => {}
        scalar => tx.put(obj, key, scalar_of(scalar))?,
    }
    Ok(())
}

fn scalar_of(value: &Json) -> ScalarValue {
    match value {
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => ScalarValue::Uint(u),
            (_, Some(i), _) => ScalarValue::Int(i),
            (_, _, f) => ScalarValue::F64(f.unwrap_or_default()),
        },
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        _ => ScalarValue::Null,
    }
}

/// Writes the difference between `old` and `new` (two JSON objects) into
/// `obj`: changed leaves are put, text is spliced, removed keys deleted.
fn write_diff(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    old: &Map<String, Json>,
    new: &Map<String, Json>,
) -> Result<(), ModelError> {
    for (key, new_value) in new {
        let old_value = old.get(key);
        if old_value == Some(new_value) {
            continue;
        }
        match (old_value, new_value, tx.get(obj, key.as_str())?) {
            (Some(Json::Object(o)), Json::Object(n), Some((Value::Object(ObjType::Map), child))) => {
                write_diff(tx, &child, o, n)?;
            }
            (_, Json::String(s), Some((Value::Object(ObjType::Text), text))) => {
                tx.update_text(&text, s)?;
            }
            (_, Json::Null, _) => tx.delete(obj, key.as_str())?,
            _ => put_value(tx, obj, key, new_value)?,
        }
    }
    for key in old.keys().filter(|k| !new.contains_key(*k)) {
        tx.delete(obj, key.as_str())?;
    }
    Ok(())
}

/// How deep objects may nest. Our documents nest at most six levels; a
/// deeper document comes from a broken or hostile peer and is refused rather
/// than followed into a stack overflow.
pub(crate) const MAX_DEPTH: usize = 12;

/// Reads the object at `obj` as JSON (text as strings, the winning value of
/// any conflict).
fn read_json(doc: &impl ReadDoc, obj: &ObjId, kind: ObjType) -> Result<Json, ModelError> {
    read_json_at(doc, obj, kind, 0)
}

fn read_json_at(doc: &impl ReadDoc, obj: &ObjId, kind: ObjType, depth: usize) -> Result<Json, ModelError> {
    if depth > MAX_DEPTH {
        return Err(ModelError::Malformed(format!("对象嵌套超过 {MAX_DEPTH} 层")));
    }
    Ok(match kind {
        ObjType::Text => Json::String(doc.text(obj)?),
        ObjType::List => {
            let mut items = Vec::new();
            for i in 0..doc.length(obj) {
                if let Some((value, id)) = doc.get(obj, i)? {
                    items.push(match value {
                        Value::Object(kind) => read_json_at(doc, &id, kind, depth + 1)?,
                        Value::Scalar(s) => scalar_json(s.into_owned().into()),
                    });
                }
            }
            Json::Array(items)
        }
        ObjType::Map | ObjType::Table => {
            let mut fields = Map::new();
            for item in doc.map_range(obj, ..) {
                let json = match (item.value.clone(), union_copies(doc, obj, &item.key, item.conflict)) {
                    (_, Some(copies)) => {
                        let mut union = Map::new();
                        for copy in copies {
                            if let Json::Object(fields) = read_json_at(doc, &copy, ObjType::Map, depth + 1)? {
                                fields.into_iter().for_each(|(k, v)| _ = union.entry(k).or_insert(v));
                            }
                        }
                        Json::Object(union)
                    }
                    (ValueRef::Object(kind), None) => read_json_at(doc, &item.id(), kind, depth + 1)?,
                    (ValueRef::Scalar(s), None) => scalar_json(s),
                };
                fields.insert(item.key.into_owned(), json);
            }
            Json::Object(fields)
        }
    })
}

fn scalar_json(value: ScalarValueRef<'_>) -> Json {
    match value {
        ScalarValueRef::Str(s) => Json::String(s.into_owned()),
        ScalarValueRef::Int(i) | ScalarValueRef::Timestamp(i) | ScalarValueRef::Counter(i) => Json::from(i),
        ScalarValueRef::Uint(u) => Json::from(u),
        ScalarValueRef::F64(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        ScalarValueRef::Boolean(b) => Json::Bool(b),
        ScalarValueRef::Bytes(_) | ScalarValueRef::Unknown { .. } | ScalarValueRef::Null => Json::Null,
    }
}

/// Finds the map at `path` below the root.
pub(crate) fn map_at(doc: &impl ReadDoc, path: &[&str]) -> Result<ObjId, ModelError> {
    let mut obj = ROOT;
    for (depth, key) in path.iter().enumerate() {
        obj = match doc.get(&obj, *key)? {
            Some((Value::Object(ObjType::Map), id)) => id,
            _ => {
                return Err(ModelError::NotFound { what: "记录", id: path[..=depth].join("/") });
            }
        };
    }
    Ok(obj)
}

/// Reads the whole document as JSON, as stored: empty strings and `false`
/// are absent ([`prune_defaults`]).
pub(crate) fn document_json(doc: &impl ReadDoc) -> Result<Json, ModelError> {
    read_document(doc)
}

/// The layout version a document's JSON names, if it is newer than this
/// build knows: its rules are not ours to apply.
pub fn newer_version(json: &Json) -> Option<u64> {
    json.get("schema_version").and_then(Json::as_u64).filter(|v| *v > crate::model::SCHEMA_VERSION)
}

/// Refuses to read a document of a newer layout as this one.
fn known_version(json: &Json) -> Result<(), ModelError> {
    match newer_version(json) {
        Some(found) => Err(ModelError::NewerVersion {
            id: json.get("id").and_then(Json::as_str).unwrap_or_default().to_owned(),
            found,
            known: crate::model::SCHEMA_VERSION,
        }),
        None => Ok(()),
    }
}

/// Reads the map at `path` as a typed record.
fn read_at<T: DeserializeOwned>(doc: &impl ReadDoc, path: &[&str]) -> Result<T, ModelError> {
    if path.is_empty() {
        return from_json(read_document(doc)?);
    }
    let obj = map_at(doc, path)?;
    from_json(read_json(doc, &obj, ObjType::Map)?)
}

/// Where each map object of a document sits (its parent and key) and which
/// map keys hold concurrent values, read in one pass over its operations
/// like [`read_document`]: asking object by object (`keys`, `get_all`)
/// took ten times as long on a dossier of 200 findings. The losing copies
/// of [`UNION_MAPS`], which the pass does not enter, are placed too.
pub(crate) struct Tree {
    parents: std::collections::HashMap<ObjId, (ObjId, String)>,
    /// Map keys holding more than one concurrent value: (object, key).
    pub(crate) conflicted: Vec<(ObjId, String)>,
}

impl Tree {
    pub(crate) fn of(doc: &impl ReadDoc) -> Tree {
        use automerge::iter::DocItem;
        let mut tree = Tree { parents: Default::default(), conflicted: Vec::new() };
        for item in doc.iter() {
            let DocItem::Map(m) = item.item else { continue };
            let obj = &*item.obj;
            if m.conflict {
                tree.conflicted.push((obj.clone(), m.key.to_string()));
            }
            if let Some(copies) = union_copies(doc, obj, &m.key, m.conflict) {
                let winner = m.id();
                for copy in copies {
                    if copy != winner {
                        tree.place_below(doc, &copy, 0);
                    }
                    tree.parents.insert(copy, (obj.clone(), m.key.to_string()));
                }
            } else if let ValueRef::Object(ObjType::Map) = m.value {
                tree.parents.insert(m.id(), (obj.clone(), m.key.to_string()));
            }
        }
        tree
    }

    /// Places the maps below `obj`, which the pass did not enter.
    fn place_below(&mut self, doc: &impl ReadDoc, obj: &ObjId, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for key in doc.keys(obj) {
            for (value, child) in doc.get_all(obj, &key).unwrap_or_default() {
                if let Value::Object(ObjType::Map) = value {
                    self.place_below(doc, &child, depth + 1);
                    self.parents.insert(child, (obj.clone(), key.clone()));
                }
            }
        }
    }

    /// Every map object placed (the root is not).
    pub(crate) fn objects(&self) -> impl Iterator<Item = &ObjId> {
        self.parents.keys()
    }

    /// The keys from the root down to `obj` (none for the root); `None` if
    /// it is not placed; an error deeper than [`MAX_DEPTH`].
    pub(crate) fn path(&self, obj: &ObjId) -> Result<Option<Vec<&str>>, ModelError> {
        let mut keys = Vec::new();
        let mut at = obj;
        while *at != ROOT {
            let Some((parent, key)) = self.parents.get(at) else { return Ok(None) };
            keys.push(key.as_str());
            if keys.len() > MAX_DEPTH {
                return Err(ModelError::Malformed(format!("对象嵌套超过 {MAX_DEPTH} 层")));
            }
            at = parent;
        }
        keys.reverse();
        Ok(Some(keys))
    }
}

/// A value of an object, read in [`read_document`]'s pass.
enum Slot {
    Scalar(Json),
    Object(ObjType, ObjId),
    /// The concurrent copies of one of [`UNION_MAPS`].
    Union(Vec<ObjId>),
}

/// An object's values (keyed in a map, in order in a list).
type Slots = Vec<(Option<String>, Slot)>;

/// Reads the whole document as JSON, like `read_json` at the root, in one
/// pass over its operations (`ReadDoc::iter`). Reading object by object
/// seeks into the operation columns once per object, which made reading a
/// dossier of fifty findings twice as slow (`scripts/bench-sync`'s
/// `dossier_ms.validate`). Text is read whole, as `read_json` does.
fn read_document(doc: &impl ReadDoc) -> Result<Json, ModelError> {
    use automerge::iter::DocItem;
    let mut objects: std::collections::HashMap<ObjId, Slots> = Default::default();
    // The items of one object come together: gathered here, then filed
    // (one lookup per object rather than per item).
    let mut current: Option<(std::sync::Arc<ObjId>, Slots)> = None;
    for item in doc.iter() {
        // An item's id is made only for an object (it costs a lookup).
        let slot = |value, id: &dyn Fn() -> ObjId| match value {
            ValueRef::Object(kind) => Slot::Object(kind, id()),
            ValueRef::Scalar(s) => Slot::Scalar(scalar_json(s)),
        };
        let (key, slot) = match item.item {
            DocItem::Map(m) => match union_copies(doc, &item.obj, &m.key, m.conflict) {
                Some(copies) => (Some(m.key.to_string()), Slot::Union(copies)),
                None => (Some(m.key.to_string()), slot(m.value.clone(), &|| m.id())),
            },
            DocItem::List(l) => (None, slot(l.value.clone(), &|| l.id())),
            DocItem::Text(_) => continue,
        };
        match &mut current {
            Some((obj, slots)) if **obj == *item.obj => slots.push((key, slot)),
            _ => {
                if let Some((obj, mut slots)) = current.replace((item.obj, vec![(key, slot)])) {
                    objects.entry((*obj).clone()).or_default().append(&mut slots);
                }
            }
        }
    }
    if let Some((obj, mut slots)) = current {
        objects.entry((*obj).clone()).or_default().append(&mut slots);
    }
    build(doc, &mut objects, &ROOT, ObjType::Map, 0)
}

fn build(
    doc: &impl ReadDoc,
    objects: &mut std::collections::HashMap<ObjId, Slots>,
    obj: &ObjId,
    kind: ObjType,
    depth: usize,
) -> Result<Json, ModelError> {
    if depth > MAX_DEPTH {
        return Err(ModelError::Malformed(format!("对象嵌套超过 {MAX_DEPTH} 层")));
    }
    if kind == ObjType::Text {
        return Ok(Json::String(doc.text(obj)?));
    }
    let slots = objects.remove(obj).unwrap_or_default();
    let mut value = |slot| match slot {
        Slot::Scalar(json) => Ok(json),
        Slot::Object(kind, id) => build(doc, objects, &id, kind, depth + 1),
        Slot::Union(copies) => {
            let mut union = Map::new();
            for copy in copies {
                // The one pass visits only the copy that wins the key.
                let fields = if objects.contains_key(&copy) {
                    build(doc, objects, &copy, ObjType::Map, depth + 1)?
                } else {
                    read_json_at(doc, &copy, ObjType::Map, depth + 1)?
                };
                if let Json::Object(fields) = fields {
                    fields.into_iter().for_each(|(k, v)| _ = union.entry(k).or_insert(v));
                }
            }
            Ok(Json::Object(union))
        }
    };
    Ok(match kind {
        ObjType::List => Json::Array(slots.into_iter().map(|(_, slot)| value(slot)).collect::<Result<_, _>>()?),
        _ => Json::Object(
            slots
                .into_iter()
                .filter_map(|(key, slot)| Some((key?, slot)))
                .map(|(key, slot)| Ok((key, value(slot)?)))
                .collect::<Result<_, ModelError>>()?,
        ),
    })
}

fn from_json<T: DeserializeOwned>(json: Json) -> Result<T, ModelError> {
    serde_json::from_value(json).map_err(|e| ModelError::Malformed(e.to_string()))
}

fn to_object<T: Serialize>(value: &T) -> Result<Map<String, Json>, ModelError> {
    match serde_json::to_value(value) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(_) => Err(ModelError::Malformed("记录必须是对象".into())),
        Err(e) => Err(ModelError::Malformed(e.to_string())),
    }
}

/// Inserts a new record at `collection[id]`; refuses to overwrite.
pub(crate) fn insert_record<T: Serialize>(
    tx: &mut Transaction<'_>,
    collection: &[&str],
    id: &str,
    what: &'static str,
    record: &T,
) -> Result<(), ModelError> {
    let parent = map_at(tx, collection)?;
    if tx.get(&parent, id)?.is_some() {
        return Err(ModelError::Duplicate { what, id: id.to_owned() });
    }
    let mut json = Json::Object(to_object(record)?);
    prune_defaults(&mut json);
    normalize_text(&mut json);
    let at: Vec<&str> = collection.iter().copied().chain([id]).collect();
    crate::schema::record(&at, &json).map_err(ModelError::Schema)?;
    put_value(tx, &parent, id, &json)
}

/// Drops empty strings and `false` from a new record: readers default them
/// (`#[serde(default)]`), and every value written is an operation that each
/// device loads. Maps are kept, even empty: nested objects are created once,
/// with their parent.
fn prune_defaults(json: &mut Json) {
    if let Json::Object(fields) = json {
        // Text objects are kept even when empty: they are nested objects too.
        fields.retain(|k, v| {
            TEXT_FIELDS.contains(&k.as_str())
                || !(matches!(v, Json::Bool(false)) || matches!(v, Json::String(s) if s.is_empty()))
        });
        fields.values_mut().for_each(prune_defaults);
    }
}

/// Stores what a person typed in normalization form C (the schemas refuse
/// other forms), so text typed on any keyboard compares equal.
fn normalize_text(json: &mut Json) {
    match json {
        Json::String(s) => *s = crate::text::normalize(s),
        Json::Object(fields) => fields.values_mut().for_each(normalize_text),
        Json::Array(items) => items.iter_mut().for_each(normalize_text),
        _ => {}
    }
}

/// Reads the record at `path`, lets `change` modify it, checks the result
/// with `check(old, new)`, and writes back only what changed.
fn modify_record<T, R>(
    tx: &mut Transaction<'_>,
    path: &[&str],
    what: &'static str,
    change: impl FnOnce(&mut T) -> Result<R, ModelError>,
    check: impl FnOnce(&T, &T) -> Result<(), ModelError>,
) -> Result<R, ModelError>
where
    T: Serialize + DeserializeOwned + Clone,
{
    let obj = map_at(tx, path)
        .map_err(|_| ModelError::NotFound { what, id: path.last().copied().unwrap_or_default().to_owned() })?;
    let old: T = from_json(read_json(tx, &obj, ObjType::Map)?)?;
    let mut new = old.clone();
    let out = change(&mut new)?;
    check(&old, &new)?;
    let mut written = to_object(&new)?;
    written.values_mut().for_each(normalize_text);
    crate::schema::record(path, &Json::Object(written.clone())).map_err(ModelError::Schema)?;
    write_diff(tx, &obj, &to_object(&old)?, &written)?;
    Ok(out)
}

/// Checks a YYYY-MM-DD date.
pub fn check_date(date: &str) -> Result<jiff::civil::Date, ModelError> {
    crate::model::calendar_date(date).ok_or_else(|| ModelError::InvalidDate(date.to_owned()))
}

/// Formats milliseconds since the Unix epoch as RFC 3339 (UTC).
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    /// The one-pass reader gives what reading object by object gives, on a
    /// document with concurrent writes to one key, deleted keys, nested
    /// maps, lists (inserts and deletes), text and an empty map.
    #[test]
    fn reading_in_one_pass_equals_reading_object_by_object() {
        let mut a = Automerge::new();
        let mut tx = a.transaction();
        let hazards = tx.put_object(ROOT, "hazards", ObjType::Map).unwrap();
        for i in 0..5 {
            let h = tx.put_object(&hazards, format!("h{i}"), ObjType::Map).unwrap();
            tx.put(&h, "level", i).unwrap();
            tx.put(&h, "gone", "x").unwrap();
            tx.delete(&h, "gone").unwrap();
            let photos = tx.put_object(&h, "photos", ObjType::List).unwrap();
            for j in 0..4 {
                tx.insert(&photos, j, format!("p{j}")).unwrap();
            }
            tx.delete(&photos, 1).unwrap();
            let inner = tx.insert_object(&photos, 0, ObjType::Map).unwrap();
            tx.put(&inner, "deep", true).unwrap();
            let text = tx.put_object(&h, "note", ObjType::Text).unwrap();
            tx.splice_text(&text, 0, 0, "塔吊限位失效").unwrap();
        }
        tx.put_object(ROOT, "empty", ObjType::Map).unwrap();
        tx.put(ROOT, "kind", "enterprise_dossier").unwrap();
        tx.commit();
        let mut b = a.fork().with_actor(ActorId::from([7; 16]));
        for (doc, value) in [(&mut a, "甲"), (&mut b, "乙")] {
            let mut tx = doc.transaction();
            tx.put(ROOT, "owner", value).unwrap();
            let (_, hazards) = tx.get(ROOT, "hazards").unwrap().unwrap();
            let (_, h) = tx.get(&hazards, "h1").unwrap().unwrap();
            tx.put(&h, "level", value).unwrap();
            tx.commit();
        }
        a.merge(&mut b).unwrap();
        let expected = read_json(&a, &ROOT, ObjType::Map).unwrap();
        assert_eq!(read_document(&a).unwrap(), expected);
        assert_eq!(expected["hazards"]["h2"]["photos"].as_array().unwrap().len(), 4);
        assert_eq!(expected["hazards"]["h2"]["note"], "塔吊限位失效");
        assert!(expected["hazards"]["h0"].get("gone").is_none());
    }

    #[test]
    fn reading_refuses_a_document_nested_too_deep() {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        let mut obj = ROOT;
        for _ in 0..=MAX_DEPTH + 1 {
            obj = tx.put_object(&obj, "inner", ObjType::Map).unwrap();
        }
        tx.commit();
        assert!(matches!(read_document(&doc), Err(ModelError::Malformed(_))));
    }
}
