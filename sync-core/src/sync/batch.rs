//! The `batch` of a `changes` message: how one document's changes travel.
//!
//! Two forms (`schemas/sync-protocol.md`):
//! - an Automerge bundle chunk: the changes a peer lacks of a document it
//!   already holds part of;
//! - a whole document: Automerge's document chunk, uncompressed, in a zstd
//!   frame compressed with [`DICTIONARY`]. Sent to a peer that holds none
//!   of the document; stores keep it as it arrived.
//!
//! The dictionary is the wording of the recommended hazard checklists
//! (`schemas/checklists/`), which findings quote (`field hazard add
//! --from-checklist`): with it a dossier travels in about a fifth fewer
//! bytes than as Automerge's own DEFLATE-compressed document. It is fixed
//! for the protocol version: a new dictionary needs a new version, and
//! stores keep this one to read what they hold.

use automerge::{Automerge, Change, ChangeHash, ReadDoc};

use crate::ids::{DocId, DocTag};
use crate::validate::{self, Invalid, Typed};
use crate::verify::ChangeInfo;

/// A batch that does not decode (Chinese, for the peer and the log).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct BatchError(pub String);

/// The zstd dictionary of whole-document batches (raw content: the
/// checklists' texts, one per line).
pub const DICTIONARY: &[u8] = include_bytes!("../../../schemas/batch-dictionary-v1.txt");

/// The largest document a whole batch may expand to: a frame's limit (a
/// dossier of 2,000 findings is about 3 MB).
pub const MAX_DOCUMENT: usize = super::message::MAX_FRAME;

/// zstd level: measured on the reference dossier, higher levels save a
/// few percent more bytes for two to four times the CPU.
const LEVEL: i32 = 3;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DOCUMENT_CHUNK: u8 = 0;
const BUNDLE_CHUNK: u8 = 3;

/// A decoded batch.
#[derive(Debug)]
pub enum Arrived {
    /// A bundle's changes, as ordinary change chunks.
    Changes(Vec<Change>),
    /// A whole document, loaded (its heads verified).
    Document {
        /// The document.
        doc: Box<Automerge>,
        /// Its changes (read once: listing them walks the document).
        infos: Vec<ChangeInfo>,
    },
}

impl Arrived {
    /// The changes it holds.
    pub fn infos(&self) -> Vec<ChangeInfo> {
        match self {
            Arrived::Changes(changes) => changes.iter().map(ChangeInfo::from).collect(),
            Arrived::Document { infos, .. } => infos.clone(),
        }
    }

    /// The hashes of its changes, sorted.
    pub fn hashes(&self) -> Vec<ChangeHash> {
        let mut hashes: Vec<ChangeHash> = match self {
            Arrived::Changes(changes) => changes.iter().map(Change::hash).collect(),
            Arrived::Document { infos, .. } => infos.iter().map(|i| i.hash).collect(),
        };
        hashes.sort_unstable();
        hashes
    }

    /// How many changes it holds.
    pub fn len(&self) -> usize {
        match self {
            Arrived::Changes(changes) => changes.len(),
            Arrived::Document { infos, .. } => infos.len(),
        }
    }

    /// Whether it holds no change.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One change, rebuilt if it came in a document.
    pub fn change(&self, hash: &ChangeHash) -> Option<Change> {
        match self {
            Arrived::Changes(changes) => changes.iter().find(|c| c.hash() == *hash).cloned(),
            Arrived::Document { doc, .. } => doc.get_change_by_hash(hash),
        }
    }

    /// `held` (none: a document not held) with this applied. Changes that
    /// parsed can still be inconsistent in ways Automerge's apply panics on
    /// (found by fuzzing): contained here, and refused.
    pub fn applied_to(&self, held: Option<Automerge>) -> Result<Automerge, String> {
        let apply = || -> Result<Automerge, automerge::AutomergeError> {
            Ok(match (held, self) {
                (None, Arrived::Document { doc, .. }) => (**doc).clone(),
                (held, Arrived::Changes(changes)) => {
                    let mut doc = held.unwrap_or_default();
                    doc.apply_changes(changes.iter().cloned())?;
                    doc
                }
                (Some(mut doc), Arrived::Document { doc: whole, .. }) => {
                    doc.merge(&mut (**whole).clone())?;
                    doc
                }
            })
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(apply)) {
            Ok(applied) => applied.map_err(|e| e.to_string()),
            Err(_) => Err("修改内容自相矛盾，无法合并".into()),
        }
    }

    /// `held` (none: not held) with this applied and checked by the
    /// validator: what a store persists, if nothing else changed the
    /// document meanwhile (else it applies and checks again).
    pub fn checked(&self, id: &DocId, held: Option<Automerge>) -> Result<Checked, Invalid> {
        let base = held.as_ref().map(Automerge::get_heads).unwrap_or_default();
        // Kept for the rules' judgement of a change made on exactly what is
        // held (a clone shares the document's columns).
        let before = held.clone();
        let result = self.applied_to(held).map_err(Invalid)?;
        if !result.get_missing_deps(&[]).is_empty() {
            return Err(Invalid("缺少前置修改".into()));
        }
        let validated = validate::document(id, &result)?;
        let mut steps = Vec::new();
        if let Typed::Dossier(dossier) = &validated.typed {
            // A whole document's changes are built once, in one pass, if asked for.
            let whole = std::cell::OnceCell::new();
            let changes = || match self {
                Arrived::Changes(changes) => changes.as_slice(),
                Arrived::Document { doc, .. } => whole.get_or_init(|| doc.get_changes(&[])).as_slice(),
            };
            validate::rules_kept(&result, before.as_ref(), dossier, || changes().to_vec())?;
            steps = validate::steps_kept(&result, dossier, changes)?;
        }
        let tag = validated.tag.ok_or_else(|| Invalid("无法确定文档所属的检查活动".into()))?;
        Ok(Checked { base, arrived: self.hashes(), result, tag, typed: validated.typed, steps })
    }

    /// Leaves out the changes `held` already. A document of which anything
    /// is held becomes its changes that are not (rebuilt: the slow path,
    /// for a peer that sent whole what we partly hold).
    pub fn without(self, held: impl Fn(&ChangeHash) -> bool) -> Arrived {
        match self {
            Arrived::Changes(changes) => Arrived::Changes(changes.into_iter().filter(|c| !held(&c.hash())).collect()),
            Arrived::Document { doc, infos } => {
                if infos.iter().all(|i| held(&i.hash)) {
                    Arrived::Changes(Vec::new())
                } else if infos.iter().any(|i| held(&i.hash)) {
                    Arrived::Changes(doc.get_changes(&[]).into_iter().filter(|c| !held(&c.hash())).collect())
                } else {
                    Arrived::Document { doc, infos }
                }
            }
        }
    }
}

/// A document with what arrived applied and checked.
#[derive(Debug)]
pub struct Checked {
    /// The heads it had before (none: not held).
    pub base: Vec<ChangeHash>,
    /// What was applied to `base` ([`Arrived::hashes`]): another session
    /// may have applied other changes to the same base.
    pub arrived: Vec<ChangeHash>,
    /// The document as it now stands.
    pub result: Automerge,
    /// Where it belongs.
    pub tag: DocTag,
    /// The document as typed records.
    pub typed: Typed,
    /// The rectification steps that arrived, whose authors the door checks
    /// against the signers it knows ([`validate::authorship`]).
    pub steps: Vec<validate::ArrivedStep>,
}

/// The whole of `doc` as a batch; an error for a document past
/// [`MAX_DOCUMENT`] (send a bundle instead).
pub fn encode_document(doc: &Automerge) -> Result<Vec<u8>, String> {
    let plain = doc.save_nocompress();
    if plain.len() > MAX_DOCUMENT {
        return Err(format!("文档展开后 {} 字节，超过整份发送的上限 {MAX_DOCUMENT}", plain.len()));
    }
    compress(&plain)
}

/// Compresses with [`DICTIONARY`] into one zstd frame that records its
/// expanded size.
fn compress(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use std::sync::OnceLock;
    static DICT: OnceLock<Result<zstd::dict::EncoderDictionary<'static>, String>> = OnceLock::new();
    let dict = DICT
        .get_or_init(|| zstd::dict::EncoderDictionary::try_copy(DICTIONARY, LEVEL).map_err(|e| e.to_string()))
        .as_ref()?;
    zstd::bulk::Compressor::with_prepared_dictionary(dict)
        .and_then(|mut c| c.compress(bytes))
        .map_err(|e| e.to_string())
}

/// Whether `bytes` are a zstd frame (a whole document, as sent or stored).
pub fn is_compressed(bytes: &[u8]) -> bool {
    bytes.starts_with(&ZSTD_MAGIC)
}

/// Expands one zstd frame made by [`compress`]. Its recorded size must be
/// at most [`MAX_DOCUMENT`]; no more than that is allocated.
pub fn expand(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use std::sync::OnceLock;
    use zstd::bulk::Decompressor;
    static DICT: OnceLock<Result<zstd::dict::DecoderDictionary<'static>, String>> = OnceLock::new();
    let size = Decompressor::upper_bound(bytes).ok_or("压缩块损坏或未注明展开后的长度")?;
    if size > MAX_DOCUMENT {
        return Err(format!("压缩块展开后 {size} 字节，超过上限 {MAX_DOCUMENT}"));
    }
    let dict =
        DICT.get_or_init(|| zstd::dict::DecoderDictionary::try_copy(DICTIONARY).map_err(|e| e.to_string())).as_ref()?;
    Decompressor::with_prepared_dictionary(dict).and_then(|mut d| d.decompress(bytes, size)).map_err(|e| e.to_string())
}

/// Decodes a batch: a bundle chunk, or a zstd frame holding exactly one
/// document chunk.
///
/// Automerge's parsers are not hardened against hostile input: they have
/// panicked on malformed input (an `unwrap` in a column decoder, found by
/// the damaged-batch test below). The parse is a pure function of `bytes`,
/// so a panic is contained here and becomes a protocol error like any other
/// bad input.
pub fn decode(bytes: &[u8]) -> Result<Arrived, BatchError> {
    let malformed = |e: &dyn std::fmt::Display| BatchError(format!("修改无法解析：{e}"));
    if is_compressed(bytes) {
        let expanded = expand(bytes).map_err(|e| malformed(&e))?;
        if chunk_type(&expanded) != Some(DOCUMENT_CHUNK) || chunk_len(&expanded) != Some(expanded.len()) {
            return Err(BatchError("整份文档应为一个 Automerge 文档块".into()));
        }
        let load = || -> Result<Arrived, BatchError> {
            let doc = Automerge::load(&expanded).map_err(|e| malformed(&e))?;
            let infos = doc
                .get_changes_meta(&[])
                .into_iter()
                .map(|m| ChangeInfo { hash: m.hash, actor: m.actor.into_owned(), deps: m.deps })
                .collect();
            Ok(Arrived::Document { doc: Box::new(doc), infos })
        };
        return std::panic::catch_unwind(load).map_err(|_| malformed(&"文档块损坏"))?;
    }
    if chunk_type(bytes) != Some(BUNDLE_CHUNK) {
        return Err(BatchError("修改不是 Automerge 打包块".into()));
    }
    let parse = || -> Result<Vec<Change>, BatchError> {
        let bundle = automerge::Bundle::try_from(bytes).map_err(|e| malformed(&e))?;
        bundle.to_changes().map_err(|e| malformed(&e))
    };
    let changes = std::panic::catch_unwind(parse).map_err(|_| malformed(&"打包块损坏"))??;
    if changes.iter().any(|c| c.raw_bytes().get(8) != Some(&1)) {
        return Err(BatchError("只接受未压缩的修改块".into()));
    }
    Ok(Arrived::Changes(changes))
}

/// The type byte of an Automerge chunk: magic, 4-byte checksum, type.
fn chunk_type(bytes: &[u8]) -> Option<u8> {
    if bytes.get(..4)? != CHUNK_MAGIC {
        return None;
    }
    bytes.get(8).copied()
}

/// The whole length of the first chunk: its header, then a LEB128 length
/// of what follows.
fn chunk_len(bytes: &[u8]) -> Option<usize> {
    let mut len: u64 = 0;
    for (i, byte) in bytes.get(9..)?.iter().take(10).enumerate() {
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return usize::try_from(len).ok()?.checked_add(9 + i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, ROOT, ReadDoc};

    use super::*;

    fn doc() -> Automerge {
        let mut doc = Automerge::new().with_actor(ActorId::from([7; 16]));
        for (key, value) in [("title", "脚手架连墙件缺失"), ("level", "一般"), ("title", "临边防护缺失")]
        {
            doc.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, key, value).map(|_| ())).unwrap();
        }
        doc
    }

    #[test]
    fn a_whole_document_round_trips() {
        let doc = doc();
        let batch = encode_document(&doc).unwrap();
        assert!(is_compressed(&batch));
        let Ok(arrived @ Arrived::Document { .. }) = decode(&batch) else { panic!("not a document") };
        let Arrived::Document { doc: back, .. } = &arrived else { unreachable!() };
        assert_eq!(back.get_heads(), doc.get_heads());
        assert_eq!(back.get(ROOT, "title").unwrap().unwrap().0.to_string(), "\"临边防护缺失\"");
        assert_eq!(arrived.len(), 3);
        let infos = arrived.infos();
        assert!(infos.iter().all(|i| i.actor == ActorId::from([7; 16])));
        // Holding the first change turns the rest into ordinary changes.
        let first = infos.iter().find(|i| i.deps.is_empty()).unwrap().hash;
        let Arrived::Changes(rest) = arrived.without(|h| *h == first) else { panic!("still whole") };
        assert_eq!(rest.len(), 2);
    }

    #[test]
    fn a_whole_batch_holds_exactly_one_document_chunk() {
        let doc = doc();
        let plain = doc.save_nocompress();
        // Trailing bytes (an extra chunk), a change chunk, a bundle: refused.
        let mut extra = plain.clone();
        extra.extend(doc.get_changes(&[])[0].raw_bytes());
        let change = doc.get_changes(&[])[0].raw_bytes().to_vec();
        let bundle = doc.bundle(doc.get_heads()).unwrap().bytes().to_vec();
        for bytes in [extra, change, bundle] {
            assert!(matches!(decode(&compress(&bytes).unwrap()), Err(BatchError(_))));
        }
        // Damaged bytes anywhere: an error, never a panic.
        let batch = encode_document(&doc).unwrap();
        for i in 0..batch.len() {
            let mut damaged = batch.clone();
            damaged[i] ^= 0x55;
            let _ = decode(&damaged);
        }
        let mut plain_damaged = plain;
        for i in 0..plain_damaged.len() {
            plain_damaged[i] ^= 0x55;
            let _ = decode(&compress(&plain_damaged).unwrap());
            plain_damaged[i] ^= 0x55;
        }
    }

    #[test]
    fn an_expansion_past_the_limit_is_refused() {
        let huge = compress(&vec![0u8; MAX_DOCUMENT + 1]).unwrap();
        assert!(huge.len() < 64 * 1024);
        assert!(expand(&huge).is_err());
        assert!(matches!(decode(&huge), Err(BatchError(_))));
    }

    #[test]
    fn batches_round_trip_and_damaged_batches_are_errors() {
        let mut doc = automerge::Automerge::new().with_actor(ActorId::from([7; 16]));
        let mut hashes = Vec::new();
        for name in ["一", "二", "三"] {
            let committed = doc.transact::<_, _, automerge::AutomergeError>(|tx| {
                automerge::transaction::Transactable::put(tx, automerge::ROOT, "name", name)
            });
            hashes.push(committed.unwrap().hash.unwrap());
        }
        let batch = doc.bundle(hashes.clone()).unwrap().bytes().to_vec();
        let decoded = match decode(&batch).unwrap() {
            Arrived::Changes(changes) => changes,
            Arrived::Document { .. } => panic!("a bundle is changes"),
        };
        assert_eq!(decoded.iter().map(Change::hash).collect::<Vec<_>>(), hashes);
        for i in 0..batch.len() {
            let mut damaged = batch.clone();
            damaged[i] ^= 0x55;
            // An error, or changes whose hashes say what they are (a change
            // with a signed hash has the signed content); never a panic.
            for change in decode(&damaged)
                .ok()
                .and_then(|a| if let Arrived::Changes(c) = a { Some(c) } else { None })
                .unwrap_or_default()
            {
                if let Some(original) = decoded.iter().find(|c| c.hash() == change.hash()) {
                    assert_eq!(original.raw_bytes(), change.raw_bytes(), "byte {i}");
                }
            }
        }
        assert!(decode(&batch[..batch.len() / 2]).is_err());
    }

    /// A rule that ties a hazard's fields together (a major hazard names its
    /// clause) broken by one change is refused; broken by a merge of two
    /// valid changes it is kept (and listed for review).
    #[test]
    fn a_change_that_breaks_a_hazard_rule_is_refused_a_merge_that_does_is_kept() {
        use crate::doc::{dossier, edit};
        use crate::ids::EntityId;
        use crate::model::HazardLevel;
        let campaign = DocId::new_campaign([1; 16]);
        let code = "91640200MA76XYW123".parse().unwrap();
        let id = DocId::dossier(&campaign, &code);
        let mut base = dossier::create(&campaign, &code).unwrap().with_actor(ActorId::from([1; 16]));
        let hazard = EntityId::new(1, 1);
        let mut general = dossier::tests::sample_hazard("临边防护缺失");
        general.major_hazard_criterion = Some(crate::codes::criteria()[0].id.to_owned());
        edit(&mut base, 1, |tx| dossier::add_hazard(tx, &hazard, &general)).unwrap();
        let key = hazard.as_str();
        let since = |doc: &Automerge| Arrived::Changes(doc.get_changes(&base.get_heads()));

        // One inspector raises the level (the clause is there); another,
        // meanwhile, clears the clause (the level is general).
        let mut raised = base.fork().with_actor(ActorId::from([2; 16]));
        edit(&mut raised, 2, |tx| {
            dossier::modify_hazard(tx, &hazard, |h| {
                h.level = HazardLevel::Major;
                Ok(())
            })
        })
        .unwrap();
        let mut cleared = base.fork().with_actor(ActorId::from([3; 16]));
        edit(&mut cleared, 3, |tx| {
            dossier::modify_hazard(tx, &hazard, |h| {
                h.major_hazard_criterion = None;
                Ok(())
            })
        })
        .unwrap();
        let merged = since(&cleared).checked(&id, Some(raised.clone())).expect("a merge of valid edits is kept");
        let Typed::Dossier(d) = &merged.typed else { panic!("a dossier") };
        assert_eq!((d.hazards[key].level, d.hazards[key].major_hazard_criterion.as_ref()), (HazardLevel::Major, None));
        // A later change to another field of that hazard is not blamed.
        let mut later = merged.result.fork().with_actor(ActorId::from([5; 16]));
        later
            .transact::<_, _, automerge::AutomergeError>(|tx| {
                let (_, hazards) = tx.get(ROOT, "hazards")?.expect("the hazards map");
                let (_, record) = tx.get(&hazards, key)?.expect("the hazard");
                tx.put(&record, "legal_basis", "JGJ 80-2016")
            })
            .unwrap();
        let after = Arrived::Changes(later.get_changes(&merged.result.get_heads()));
        assert!(after.checked(&id, Some(merged.result.clone())).is_ok());
        // Nor is one to a field the rules read (judged at its own point).
        let mut retitled = merged.result.fork().with_actor(ActorId::from([6; 16]));
        retitled
            .transact::<_, _, automerge::AutomergeError>(|tx| {
                let (_, hazards) = tx.get(ROOT, "hazards")?.expect("the hazards map");
                let (_, record) = tx.get(&hazards, key)?.expect("the hazard");
                tx.put(&record, "title", "临边防护缺失（复查）")
            })
            .unwrap();
        let after = Arrived::Changes(retitled.get_changes(&merged.result.get_heads()));
        assert!(after.checked(&id, Some(merged.result.clone())).is_ok());

        // A tampered client raises the level and drops the clause at once.
        let mut tampered = base.fork().with_actor(ActorId::from([4; 16]));
        tampered
            .transact::<_, _, automerge::AutomergeError>(|tx| {
                let (_, hazards) = tx.get(ROOT, "hazards")?.expect("the hazards map");
                let (_, record) = tx.get(&hazards, key)?.expect("the hazard");
                tx.put(&record, "level", "major")?;
                tx.delete(&record, "major_hazard_criterion")
            })
            .unwrap();
        let refused = since(&tampered).checked(&id, Some(base.clone())).unwrap_err();
        assert!(refused.0.contains("判定条款") && refused.0.contains(key), "{refused}");
        let refused = since(&tampered).checked(&id, Some(raised)).unwrap_err();
        assert!(refused.0.contains("判定条款"), "{refused}");
    }
}
