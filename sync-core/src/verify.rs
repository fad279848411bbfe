//! Signature coverage: whether every change of a document is vouched for
//! by a trusted author's signature, or is the document's deterministic
//! genesis. Shared by the bundle format ([`crate::bundle`]) and the online
//! protocol ([`crate::sync`]); pure, as both are: the caller says which keys
//! it trusts and which changes it already holds.

use std::collections::{BTreeSet, HashMap};

use automerge::{ActorId, Automerge, Change, ChangeHash};

use crate::doc::{self, genesis_actor};
use crate::identity::{DevicePublicKey, HeadSignature};
use crate::ids::{DocId, DocKind};

/// Why changes were refused. None of them changes anything.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// An author of changes is not trusted here.
    #[error("文档 {doc} 含有未受信任设备 {key} 的修改；如确认来源，请先执行 field trust add {key}")]
    UntrustedAuthor {
        /// The document.
        doc: String,
        /// The author's key.
        key: String,
    },
    /// A signature over a document head does not verify.
    #[error("文档 {0} 的修改签名无效（可能被伪造）")]
    ForgedEvidence(String),
    /// A change is not covered by a signature of the device its actor belongs to.
    #[error("文档 {doc} 中有修改冒用了其他设备的身份（操作者 {actor} 没有对应设备的签名）")]
    ActorSpoofed {
        /// The document.
        doc: String,
        /// The actor id (hex).
        actor: String,
    },
    /// A change claims the genesis actor but is not the genesis change.
    #[error("文档 {0} 的初始记录与文档编号不符")]
    BadGenesis(String),
    /// Someone other than HQ changed a checklist.
    #[error("检查清单 {0} 为只读，数据包中含有对它的修改")]
    ReadOnly(String),
    /// Changes depend on changes neither in the bundle nor held here.
    #[error("文档 {doc} 缺少 {count} 个前置修改，请让对方导出完整数据包")]
    MissingDependencies {
        /// The document.
        doc: String,
        /// How many are missing.
        count: usize,
    },
    /// Two signatures by one author in one document.
    #[error("文档 {0} 中同一作者有多个签名")]
    DuplicateAuthor(String),
}

/// What verification needs to know of one change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeInfo {
    /// Its hash.
    pub hash: ChangeHash,
    /// Its actor.
    pub actor: ActorId,
    /// The changes it depends on.
    pub deps: Vec<ChangeHash>,
}

impl From<&Change> for ChangeInfo {
    fn from(change: &Change) -> Self {
        Self { hash: change.hash(), actor: change.actor_id().clone(), deps: change.deps().to_vec() }
    }
}

/// Checks that every change of a document may be applied:
/// - at most one signature per author; each verifies for this document, its
///   key is trusted, and it signs one of `changes` by that author;
/// - each change is the document's genesis, or is reachable from a signed
///   head of the device its actor belongs to;
/// - in a derived document (dossier, briefing, checklist) the only change
///   without dependencies is the genesis, so nobody can start a competing
///   root; checklists take no changes but their genesis;
/// - every dependency is among `changes` or already held (`known`).
///
/// Works on what is known of each change (a document that arrived whole is
/// checked without rebuilding its changes); `change` gives the one change
/// whose bytes are checked, the genesis. Returns the signatures to store:
/// those over changes in `changes`.
pub fn verify_changes(
    id: &DocId,
    changes: &[ChangeInfo],
    evidence: &[HeadSignature],
    trusted: impl Fn(&DevicePublicKey) -> bool,
    known: impl Fn(&ChangeHash) -> bool,
    change: impl Fn(&ChangeHash) -> Option<Change>,
) -> Result<Vec<HeadSignature>, VerifyError> {
    let doc_id = id;
    let id = doc_id.to_string();
    let by_hash: HashMap<ChangeHash, &ChangeInfo> = changes.iter().map(|c| (c.hash, c)).collect();

    let mut covered: BTreeSet<ChangeHash> = BTreeSet::new();
    let mut authors = BTreeSet::new();
    let mut accepted = Vec::new();
    for evidence in evidence {
        evidence.verify(doc_id).map_err(|_| VerifyError::ForgedEvidence(id.clone()))?;
        if !trusted(&evidence.actor.key) {
            return Err(VerifyError::UntrustedAuthor { doc: id.clone(), key: evidence.actor.key.to_string() });
        }
        let actor = evidence.actor.actor_id();
        if !authors.insert(actor.clone()) {
            return Err(VerifyError::DuplicateAuthor(id));
        }
        match by_hash.get(&evidence.head) {
            Some(head) if head.actor == actor => accepted.push(evidence.clone()),
            // A signature over a change held already adds nothing.
            None if known(&evidence.head) => continue,
            _ => return Err(VerifyError::ForgedEvidence(id.clone())),
        }
        // Everything by this actor reachable from its signed head is vouched for.
        let mut stack = vec![evidence.head];
        let mut seen = BTreeSet::new();
        while let Some(hash) = stack.pop() {
            if !seen.insert(hash) {
                continue;
            }
            if let Some(change) = by_hash.get(&hash) {
                if change.actor == actor {
                    covered.insert(hash);
                }
                stack.extend(change.deps.iter().copied());
            }
        }
    }

    let genesis = genesis_actor(doc_id);
    let derived = doc_id.kind() != DocKind::Campaign;
    let mut missing = 0;
    for info in changes {
        if info.actor == genesis {
            let bytes = change(&info.hash).ok_or_else(|| VerifyError::BadGenesis(id.clone()))?;
            check_genesis(doc_id, &bytes)?;
        } else if doc_id.kind() == DocKind::Checklist {
            return Err(VerifyError::ReadOnly(id));
        } else if derived && info.deps.is_empty() {
            return Err(VerifyError::BadGenesis(id));
        } else if !covered.contains(&info.hash) {
            return Err(VerifyError::ActorSpoofed { doc: id, actor: info.actor.to_hex_string() });
        }
        missing += info.deps.iter().filter(|d| !by_hash.contains_key(d) && !known(d)).count();
    }
    if missing > 0 {
        return Err(VerifyError::MissingDependencies { doc: id, count: missing });
    }
    Ok(accepted)
}

/// The changes that go when the work of `refused` authors is cut out of
/// `changes`: theirs, every change that depends on one of them, and the
/// work of any author whose signed head (in `evidence`) goes with them, as
/// nothing else vouches for it. What remains is closed under dependencies
/// and covered by the remaining signatures, so it verifies on its own.
pub fn cut_out(
    changes: &[ChangeInfo],
    evidence: &[HeadSignature],
    refused: &BTreeSet<ActorId>,
) -> BTreeSet<ChangeHash> {
    let mut children: HashMap<ChangeHash, Vec<&ChangeInfo>> = HashMap::new();
    for change in changes {
        for dep in &change.deps {
            children.entry(*dep).or_default().push(change);
        }
    }
    let mut refused = refused.clone();
    let mut gone = BTreeSet::new();
    loop {
        let mut stack: Vec<&ChangeInfo> =
            changes.iter().filter(|c| refused.contains(&c.actor) && !gone.contains(&c.hash)).collect();
        while let Some(change) = stack.pop() {
            if gone.insert(change.hash) {
                stack.extend(children.get(&change.hash).into_iter().flatten().copied());
            }
        }
        let unsigned: Vec<ActorId> = evidence
            .iter()
            .filter(|e| gone.contains(&e.head))
            .map(|e| e.actor.actor_id())
            .filter(|actor| !refused.contains(actor))
            .collect();
        if unsigned.is_empty() {
            return gone;
        }
        refused.extend(unsigned);
    }
}

/// Rebuilds the genesis of `id` from the content the change claims and
/// compares hashes: a genesis is self-certifying.
fn check_genesis(id: &DocId, change: &Change) -> Result<(), VerifyError> {
    let bad = || VerifyError::BadGenesis(id.to_string());
    let mut alone = Automerge::new();
    alone.apply_changes([change.clone()]).map_err(|_| bad())?;
    let rebuilt = match id.kind() {
        DocKind::EnterpriseDossier => {
            let campaign: DocId = read_root_str(&alone, "campaign_id").ok_or_else(bad)?;
            let enterprise = read_root_str(&alone, "enterprise").ok_or_else(bad)?;
            doc::dossier::create(&campaign, &enterprise)
        }
        DocKind::Briefing => {
            let campaign: DocId = read_root_str(&alone, "campaign_id").ok_or_else(bad)?;
            doc::briefing::create(&campaign)
        }
        DocKind::Checklist => doc::checklist::read(&alone).and_then(|c| doc::checklist::create(&c)),
        DocKind::Campaign => return Err(bad()),
    }
    .map_err(|_| bad())?;
    if rebuilt.get_heads() == [change.hash()] { Ok(()) } else { Err(bad()) }
}

fn read_root_str<T: std::str::FromStr>(doc: &Automerge, key: &str) -> Option<T> {
    use automerge::ReadDoc;
    match doc.get(automerge::ROOT, key).ok()?? {
        (automerge::Value::Scalar(s), _) => s.as_str()?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{ActorProof, DeviceKey, StoreNonce};

    fn hash(n: u8) -> ChangeHash {
        ChangeHash([n; 32])
    }

    /// Cutting out T's work takes T's change, B's change that depends on
    /// it, and (B's only signature being over that change) B's earlier
    /// change too; A's concurrent work stays.
    #[test]
    fn cutting_an_author_out_takes_what_depends_on_them_and_nothing_else() {
        let doc = DocId::new_campaign([1; 16]);
        let proof =
            |seed: u8| ActorProof { key: DeviceKey::from_seed([seed; 32]).public(), nonce: StoreNonce([seed; 16]) };
        let (a, b, t) = (proof(1), proof(2), proof(3));
        let info = |n: u8, who: &ActorProof, deps: &[u8]| ChangeInfo {
            hash: hash(n),
            actor: who.actor_id(),
            deps: deps.iter().copied().map(hash).collect(),
        };
        let changes = [info(1, &a, &[]), info(2, &b, &[1]), info(3, &t, &[1]), info(4, &a, &[1]), info(5, &b, &[2, 3])];
        let refused: BTreeSet<ActorId> = [t.actor_id()].into();
        let gone: Vec<u8> = cut_out(&changes, &[], &refused).iter().map(|h| h.0[0]).collect();
        assert_eq!(gone, [3, 5], "T's change and what depends on it");

        let signed = |seed: u8, who: &ActorProof, n: u8| DeviceKey::from_seed([seed; 32]).sign_head(&doc, who, hash(n));
        let evidence = [signed(1, &a, 4), signed(2, &b, 5), signed(3, &t, 3)];
        let gone: Vec<u8> = cut_out(&changes, &evidence, &refused).iter().map(|h| h.0[0]).collect();
        assert_eq!(gone, [2, 3, 5], "B's signed head went, so nothing vouches for B's earlier change");
        assert!(cut_out(&changes, &evidence, &BTreeSet::new()).is_empty());
    }

    /// A checklist is its genesis: any signed change to one, whatever it
    /// writes, is refused before its schema is looked at.
    #[test]
    fn a_checklist_takes_no_change_but_its_genesis() {
        use automerge::transaction::Transactable;
        let published: crate::model::Checklist =
            serde_json::from_str(include_str!("../../schemas/checklists/construction-jgj59.json")).unwrap();
        let mut doc = doc::checklist::create(&published).unwrap();
        let id = DocId::checklist(&published.id, published.version).unwrap();
        let key = DeviceKey::from_seed([9; 32]);
        let proof = ActorProof { key: key.public(), nonce: StoreNonce([9; 16]) };
        doc.set_actor(proof.actor_id());
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "title", "改过的清单").unwrap();
        let (head, _) = tx.commit();
        let head = head.unwrap();
        let all = doc.get_changes(&[]);
        let changes: Vec<ChangeInfo> = all.iter().map(ChangeInfo::from).collect();
        let evidence = [key.sign_head(&id, &proof, head)];
        let refused = verify_changes(
            &id,
            &changes,
            &evidence,
            |_| true,
            |_| false,
            |h| all.iter().find(|c| c.hash() == *h).cloned(),
        );
        assert_eq!(refused, Err(VerifyError::ReadOnly(id.to_string())));
    }
}
