//! HQ's decisions on work it kept aside (its quarantine). A person who
//! judges a revoked author's work to be from before the revocation accepts
//! it: it is checked again as a session checks what arrives — signatures,
//! credentials, scope, the document's rules — except for when it was made.
//! Work that breaks the document's rules cannot be accepted, only rejected.
//!
//! The same check takes in a change HQ's console makes (a person's decision
//! of a conflict), signed by the console's own device key: it is stored only
//! as a device's work would be, with the console's credential judged now and
//! against the revocation list.

use std::collections::BTreeMap;

use automerge::ActorId;

use super::batch::{self, Arrived, Checked};
use super::message::Evidence;
use super::replica::Replica;
use super::session::{head_signature, may_write};
use crate::credential::{Credential, RevocationList, SignedCredential};
use crate::identity::{DevicePublicKey, HeadSignature};
use crate::ids::DocId;
use crate::rectification::Signer;
use crate::validate;
use crate::verify;

/// Kept-aside work, checked and ready to store.
#[derive(Debug)]
pub struct Accepted {
    /// The changes not yet held.
    pub changes: Arrived,
    /// The document with them applied.
    pub checked: Checked,
    /// Their evidence, with author credentials.
    pub evidence: Vec<(HeadSignature, Vec<u8>)>,
}

/// Checks work of `doc` that did not arrive by a session (its `batch` and
/// `evidence`) for storing on `replica` (HQ's, signed by `hq`), with
/// authors' credentials judged as valid at `at` and against `revocations`
/// (none: whatever their revocation, for kept-aside work a person judged to
/// be from before it). `None`: every change of it is held already. The
/// refusal says why, in Chinese.
pub fn accept(
    doc: &DocId,
    batch: &[u8],
    evidence: &[Evidence],
    hq: &DevicePublicKey,
    (at, revocations): (i64, Option<&RevocationList>),
    replica: &impl Replica,
) -> Result<Option<Accepted>, String> {
    let arrived = batch::decode(batch).map_err(|e| format!("隔离的修改无法解码：{e}"))?;
    let arrived = arrived.without(|h| replica.has_change(doc, h));
    if arrived.is_empty() {
        return Ok(None);
    }
    let mut authors: BTreeMap<ActorId, Credential> = BTreeMap::new();
    let mut signatures = Vec::with_capacity(evidence.len());
    for e in evidence {
        let signature = head_signature(e).map_err(|e| e.to_string())?;
        let key = signature.actor.key;
        let bytes = match e.credential.is_empty() {
            false => e.credential.to_vec(),
            true => replica
                .author_credential(&key)
                .ok_or_else(|| format!("总部从未给作者设备 {key} 签发过凭证，不能接收"))?,
        };
        let signed = SignedCredential::from_bytes(&bytes).map_err(|e| format!("作者凭证无法解析：{e}"))?;
        let author = signed.verify(hq, at, revocations).map_err(|e| format!("作者设备 {key} 的{e}"))?.clone();
        if author.device_key().ok() != Some(key) {
            return Err(format!("作者设备 {key} 的凭证属于另一台设备"));
        }
        authors.insert(signature.actor.actor_id(), author);
        signatures.push((signature, bytes));
    }
    let heads: Vec<HeadSignature> = signatures.iter().map(|(s, _)| s.clone()).collect();
    let trusted = |k: &DevicePublicKey| authors.values().any(|a| a.device_key().ok() == Some(*k));
    let accepted = verify::verify_changes(
        doc,
        &arrived.infos(),
        &heads,
        trusted,
        |h| replica.has_change(doc, h),
        |h| arrived.change(h),
    )
    .map_err(|e| e.to_string())?;
    let signer = |actor: &ActorId| {
        let author = authors.get(actor)?;
        Some(Signer { name: author.name.clone(), role: Some(author.role.as_str().to_owned()) })
    };
    let checked = arrived
        .checked(doc, replica.held_copy(doc))
        .and_then(|checked| validate::authorship(&checked.steps, signer).map(|()| checked))
        .map_err(|invalid| format!("这些修改会使文档不符合规则，不能接收：{}", invalid.0))?;
    let writers: Vec<ActorId> = arrived.infos().into_iter().map(|c| c.actor).collect();
    if let Some(outside) = writers.iter().filter_map(|w| authors.get(w)).find(|a| !may_write(a, &checked.tag)) {
        return Err(format!("作者 {} 的凭证不含此文档所属的检查活动或企业，不能接收", outside.name));
    }
    let evidence = signatures.into_iter().filter(|(s, _)| accepted.contains(s)).collect();
    Ok(Some(Accepted { changes: arrived, checked, evidence }))
}
