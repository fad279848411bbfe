//! Signed bundles: a file of document changes (and photos) that another
//! device imports — the USB-stick path between devices with no network.
//!
//! Layout (`schemas/bundle.md`): `"FSBUNDL1"` ‖ exporter public key (32) ‖
//! CBOR body ‖ Ed25519 signature (64) over the domain tag, magic, key and
//! body. The envelope signature is checked before the body is parsed. The
//! body carries, per document, every change and one [`HeadSignature`] per
//! author: the signature the author made when committing their latest change
//! in the bundle, which vouches for all their earlier ones.
//!
//! [`decode`] checks the envelope and the shape; [`verify_document`] checks
//! that every change is covered by a trusted author's signature (or is the
//! document's deterministic genesis). Both are pure: the caller supplies
//! which keys it trusts and which changes it already holds.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{Change, ChangeHash};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::credential::SignedCredential;
use crate::identity::{ActorProof, DeviceKey, DevicePublicKey, HeadSignature, StoreNonce};
use crate::ids::{DocId, is_blob_name, sha256_hex};
use crate::verify::{self, ChangeInfo, VerifyError};

const MAGIC: &[u8; 8] = b"FSBUNDL1";
const DOMAIN: &[u8] = b"fieldsync/bundle/v1";
const FORMAT: u32 = 1;
/// Automerge chunk type of an uncompressed change (byte 8 of a chunk).
const CHUNK_CHANGE: u8 = 1;
/// Magic, exporter key, body length.
const HEADER: usize = 8 + 32 + 8;

/// The largest bundle file accepted (photos included).
pub const MAX_BUNDLE_BYTES: u64 = 256 * 1024 * 1024;

/// Errors from reading or verifying a bundle. None of them changes anything.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BundleError {
    /// Bigger than the limit.
    #[error("数据包过大（{size} 字节，上限 {limit} 字节）")]
    TooLarge {
        /// Size of the file.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Not a FieldSync bundle at all.
    #[error("不是 FieldSync 数据包（文件头不符）")]
    NotABundle,
    /// Shorter than its envelope, or its body ends early.
    #[error("数据包不完整（可能复制时被截断），请重新导出")]
    Truncated,
    /// The envelope signature does not match: the file was altered.
    #[error("数据包签名无效：文件已被改动或损坏，未导入任何内容")]
    BadSignature,
    /// The exporting device is not trusted here.
    #[error("数据包由未受信任的设备 {0} 签名；如确认来源，请先执行 field trust add {0}")]
    UntrustedExporter(String),
    /// The body is not valid CBOR of the expected shape.
    #[error("数据包内容无效：{0}")]
    Malformed(String),
    /// The changes of a document are not all covered by trusted signatures.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A photo's bytes do not match its hash.
    #[error("照片 {0} 的内容与其哈希不符")]
    BlobMismatch(String),
}

/// A decoded bundle.
#[derive(Debug)]
pub struct Bundle {
    /// The device that signed the envelope.
    pub exporter: DevicePublicKey,
    /// When it was made (ms since the Unix epoch).
    pub created_at: i64,
    /// The documents.
    pub docs: Vec<BundleDoc>,
    /// Photos, by SHA-256 hex; hashes already checked.
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// HQ-issued credentials of authors in the bundle, so the importer can
    /// pass their work on to HQ. Each names a key with evidence here; HQ's
    /// signature is for the importer to check.
    pub credentials: Vec<SignedCredential>,
}

/// The changes of one document and the signatures covering them.
#[derive(Debug)]
pub struct BundleDoc {
    /// The document.
    pub id: DocId,
    /// Its changes, in causal order.
    pub changes: Vec<Change>,
    /// One signature per author.
    pub evidence: Vec<HeadSignature>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    format: u32,
    created_at: i64,
    docs: Vec<DocBody>,
    blobs: Vec<BlobBody>,
    /// Absent in bundles from before credentials travelled with them.
    #[serde(default)]
    credentials: Vec<ByteBuf>,
}

#[derive(Serialize, Deserialize)]
struct DocBody {
    id: String,
    changes: Vec<ByteBuf>,
    evidence: Vec<EvidenceBody>,
}

#[derive(Serialize, Deserialize)]
struct EvidenceBody {
    key: ByteBuf,
    nonce: ByteBuf,
    head: ByteBuf,
    sig: ByteBuf,
}

#[derive(Serialize, Deserialize)]
struct BlobBody {
    sha256: String,
    bytes: ByteBuf,
}

/// Encodes and signs a bundle with the exporting device's key.
pub fn encode(bundle: &Bundle, key: &DeviceKey) -> Result<Vec<u8>, BundleError> {
    let body = Body {
        format: FORMAT,
        created_at: bundle.created_at,
        docs: bundle
            .docs
            .iter()
            .map(|d| DocBody {
                id: d.id.to_string(),
                changes: d.changes.iter().map(|c| ByteBuf::from(c.raw_bytes().to_vec())).collect(),
                evidence: d
                    .evidence
                    .iter()
                    .map(|e| EvidenceBody {
                        key: ByteBuf::from(e.actor.key.to_bytes().to_vec()),
                        nonce: ByteBuf::from(e.actor.nonce.0.to_vec()),
                        head: ByteBuf::from(e.head.0.to_vec()),
                        sig: ByteBuf::from(e.signature.to_vec()),
                    })
                    .collect(),
            })
            .collect(),
        blobs: bundle
            .blobs
            .iter()
            .map(|(sha256, bytes)| BlobBody { sha256: sha256.clone(), bytes: ByteBuf::from(bytes.clone()) })
            .collect(),
        credentials: bundle.credentials.iter().map(|c| ByteBuf::from(c.to_bytes())).collect(),
    };
    let mut encoded = Vec::new();
    ciborium::into_writer(&body, &mut encoded).map_err(|e| BundleError::Malformed(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER + encoded.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&key.public().to_bytes());
    out.extend_from_slice(&(encoded.len() as u64).to_le_bytes());
    out.extend_from_slice(&encoded);
    let signature = key.sign_with_domain(DOMAIN, &out);
    out.extend_from_slice(&signature);
    Ok(out)
}

/// Checks the envelope, its signature and the trust in its exporter, then
/// parses the body. `trusted` says whether a key is trusted here.
pub fn decode(bytes: &[u8], trusted: impl Fn(&DevicePublicKey) -> bool) -> Result<Bundle, BundleError> {
    if bytes.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge { size: bytes.len() as u64, limit: MAX_BUNDLE_BYTES });
    }
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(if MAGIC.starts_with(bytes) { BundleError::Truncated } else { BundleError::NotABundle });
    }
    // The header says how long the body is, so a cut-off file is told from
    // an altered one without parsing anything unauthenticated.
    let header: &[u8; HEADER] = bytes.get(..HEADER).and_then(|h| h.try_into().ok()).ok_or(BundleError::Truncated)?;
    let body_len = u64::from_le_bytes(header[40..48].try_into().map_err(|_| BundleError::Truncated)?);
    let expected = (HEADER as u64).saturating_add(body_len).saturating_add(64);
    if (bytes.len() as u64) < expected {
        return Err(BundleError::Truncated);
    }
    if bytes.len() as u64 > expected {
        return Err(BundleError::BadSignature);
    }
    let (signed, signature) = bytes.split_at(bytes.len() - 64);
    let exporter = DevicePublicKey::from_bytes(&header[8..40]).map_err(|_| BundleError::BadSignature)?;
    let signature: [u8; 64] = signature.try_into().map_err(|_| BundleError::Truncated)?;
    if exporter.verify_with_domain(DOMAIN, signed, &signature).is_err() {
        return Err(BundleError::BadSignature);
    }
    if !trusted(&exporter) {
        return Err(BundleError::UntrustedExporter(exporter.to_string()));
    }
    let body: Body = ciborium::from_reader(&signed[HEADER..]).map_err(|e| BundleError::Malformed(e.to_string()))?;
    if body.format != FORMAT {
        return Err(BundleError::Malformed(format!("不支持的数据包版本 {}", body.format)));
    }
    let mut docs = Vec::with_capacity(body.docs.len());
    let mut seen = BTreeSet::new();
    for d in body.docs {
        let id: DocId = d.id.parse().map_err(|e: crate::ids::IdError| BundleError::Malformed(e.to_string()))?;
        if !seen.insert(id.clone()) {
            return Err(BundleError::Malformed(format!("文档 {id} 在数据包中出现了两次")));
        }
        let changes = d
            .changes
            .into_iter()
            .map(|bytes| {
                // Only uncompressed change chunks (type 1) are accepted: a
                // compressed chunk would be inflated without a size bound.
                if bytes.get(8) != Some(&CHUNK_CHANGE) {
                    return Err(BundleError::Malformed(format!("文档 {id} 含有非普通修改块")));
                }
                Change::from_bytes(bytes.into_vec())
                    .map_err(|e| BundleError::Malformed(format!("文档 {id} 的修改无法解析：{e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let evidence = d.evidence.into_iter().map(|e| evidence_of(&id, e)).collect::<Result<_, _>>()?;
        docs.push(BundleDoc { id, changes, evidence });
    }
    let mut blobs = BTreeMap::new();
    for blob in body.blobs {
        if !is_blob_name(&blob.sha256) || sha256_hex(&blob.bytes) != blob.sha256 {
            return Err(BundleError::BlobMismatch(blob.sha256));
        }
        blobs.insert(blob.sha256, blob.bytes.into_vec());
    }
    let authors: BTreeSet<[u8; 32]> =
        docs.iter().flat_map(|d| d.evidence.iter().map(|e| e.actor.key.to_bytes())).collect();
    let mut credentials = Vec::with_capacity(body.credentials.len());
    for bytes in body.credentials {
        let credential = SignedCredential::from_bytes(&bytes)
            .map_err(|e| BundleError::Malformed(format!("数据包中的凭证无法解析：{e}")))?;
        let key = credential.credential().device_key().map_err(|e| BundleError::Malformed(e.to_string()))?;
        if !authors.contains(&key.to_bytes()) {
            return Err(BundleError::Malformed(format!("数据包中设备 {key} 的凭证不属于其中任何作者")));
        }
        if credentials.iter().any(|c: &SignedCredential| c.credential().device == credential.credential().device) {
            return Err(BundleError::Malformed(format!("数据包中设备 {key} 的凭证出现了两次")));
        }
        credentials.push(credential);
    }
    Ok(Bundle { exporter, created_at: body.created_at, docs, blobs, credentials })
}

fn evidence_of(doc: &DocId, e: EvidenceBody) -> Result<HeadSignature, BundleError> {
    let bad = || BundleError::Verify(VerifyError::ForgedEvidence(doc.to_string()));
    let key = DevicePublicKey::from_bytes(&e.key).map_err(|_| bad())?;
    let nonce: [u8; 16] = e.nonce.as_slice().try_into().map_err(|_| bad())?;
    let head: [u8; 32] = e.head.as_slice().try_into().map_err(|_| bad())?;
    let signature: [u8; 64] = e.sig.as_slice().try_into().map_err(|_| bad())?;
    Ok(HeadSignature { actor: ActorProof { key, nonce: StoreNonce(nonce) }, head: ChangeHash(head), signature })
}

/// Checks that every change of `doc` in the bundle may be applied
/// ([`verify::verify_changes`]); returns the signatures to store: those
/// over changes in the bundle.
pub fn verify_document(
    doc: &BundleDoc,
    trusted: impl Fn(&DevicePublicKey) -> bool,
    known: impl Fn(&ChangeHash) -> bool,
) -> Result<Vec<HeadSignature>, BundleError> {
    let infos: Vec<ChangeInfo> = doc.changes.iter().map(ChangeInfo::from).collect();
    let change = |h: &ChangeHash| doc.changes.iter().find(|c| c.hash() == *h).cloned();
    Ok(verify::verify_changes(&doc.id, &infos, &doc.evidence, trusted, known, change)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::dossier;
    use crate::doc::edit;
    use crate::ids::EntityId;
    use automerge::Automerge;

    struct Device {
        key: DeviceKey,
        proof: ActorProof,
    }

    fn device(seed: u8) -> Device {
        let key = DeviceKey::from_seed([seed; 32]);
        let proof = ActorProof { key: key.public(), nonce: StoreNonce([seed; 16]) };
        Device { key, proof }
    }

    /// A dossier with one hazard by `author`, and the bundle doc for it.
    fn signed_doc(author: &Device) -> BundleDoc {
        let campaign = DocId::new_campaign([9; 16]);
        let mut am = dossier::create(&campaign, &"91640200MA76XYW123".parse().unwrap()).unwrap();
        am.set_actor(author.proof.actor_id());
        let id = DocId::dossier(&campaign, &"91640200MA76XYW123".parse().unwrap());
        let mut evidence = None;
        for i in 0..3u128 {
            let hazard = crate::doc::dossier::tests::sample_hazard(&format!("隐患{i}"));
            let hash =
                edit(&mut am, 1, |tx| dossier::add_hazard(tx, &EntityId::new(1, i), &hazard)).unwrap().hash.unwrap();
            evidence = Some(author.key.sign_head(&id, &author.proof, hash));
        }
        BundleDoc { id, changes: am.get_changes(&[]), evidence: evidence.into_iter().collect() }
    }

    fn round_trip(doc: BundleDoc, signer: &Device) -> Vec<u8> {
        let bundle = Bundle {
            exporter: signer.key.public(),
            created_at: 5,
            docs: vec![doc],
            blobs: BTreeMap::new(),
            credentials: Vec::new(),
        };
        encode(&bundle, &signer.key).unwrap()
    }

    #[test]
    fn one_signature_covers_an_authors_history() {
        let a = device(1);
        let bytes = round_trip(signed_doc(&a), &a);
        let bundle = decode(&bytes, |_| true).unwrap();
        assert_eq!(bundle.docs[0].changes.len(), 4);
        assert_eq!(verify_document(&bundle.docs[0], |_| true, |_| false).map(|e| e.len()), Ok(1));
        assert!(matches!(
            verify_document(&bundle.docs[0], |k| *k != a.key.public(), |_| false),
            Err(BundleError::Verify(VerifyError::UntrustedAuthor { .. }))
        ));
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let a = device(1);
        let bytes = round_trip(signed_doc(&a), &a);
        for i in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad, |_| true).is_err(), "byte {i} flipped was accepted");
        }
        assert_eq!(decode(&bytes[..bytes.len() / 2], |_| true).unwrap_err(), BundleError::Truncated);
        assert!(matches!(decode(&bytes, |_| false), Err(BundleError::UntrustedExporter(_))));
    }

    #[test]
    fn spoofed_actor_and_unsigned_changes_are_refused() {
        let a = device(1);
        let b = device(2);
        // B signs A's changes as if they were B's: the proof's actor differs.
        let mut doc = signed_doc(&a);
        let head = doc.evidence[0].head;
        doc.evidence = vec![b.key.sign_head(&doc.id, &b.proof, head)];
        assert_eq!(
            verify_document(&doc, |_| true, |_| false),
            Err(BundleError::Verify(VerifyError::ForgedEvidence(doc.id.to_string())))
        );
        // B claims A's actor proof but cannot sign with A's key.
        doc.evidence = vec![b.key.sign_head(&doc.id, &a.proof, head)];
        assert_eq!(
            verify_document(&doc, |_| true, |_| false),
            Err(BundleError::Verify(VerifyError::ForgedEvidence(doc.id.to_string())))
        );
        // No evidence at all.
        doc.evidence.clear();
        assert!(matches!(
            verify_document(&doc, |_| true, |_| false),
            Err(BundleError::Verify(VerifyError::ActorSpoofed { .. }))
        ));
    }

    #[test]
    fn credentials_travel_only_for_authors_in_the_bundle() {
        let hq = DeviceKey::from_seed([7; 32]);
        let (a, b) = (device(1), device(2));
        let issue = |d: &Device| {
            let credential = crate::credential::Credential {
                serial: 1,
                device: ByteBuf::from(d.key.public().to_bytes().to_vec()),
                name: "检查员".into(),
                role: crate::credential::Role::Inspector,
                scope: crate::credential::Scope::default(),
                not_before: 0,
                not_after: 10,
            };
            SignedCredential::issue(&hq, credential)
        };
        let with = |credentials| Bundle {
            exporter: a.key.public(),
            created_at: 5,
            docs: vec![signed_doc(&a)],
            blobs: BTreeMap::new(),
            credentials,
        };
        let bundle = decode(&encode(&with(vec![issue(&a)]), &a.key).unwrap(), |_| true).unwrap();
        assert_eq!(bundle.credentials, vec![issue(&a)]);
        let twice = decode(&encode(&with(vec![issue(&a), issue(&a)]), &a.key).unwrap(), |_| true);
        assert!(matches!(twice, Err(BundleError::Malformed(m)) if m.contains("两次")));
        // B wrote nothing here: its credential has no business in the file.
        let stray = decode(&encode(&with(vec![issue(&b)]), &a.key).unwrap(), |_| true);
        assert!(matches!(stray, Err(BundleError::Malformed(m)) if m.contains("不属于")));
    }

    #[test]
    fn duplicate_documents_and_evidence_are_refused() {
        let a = device(1);
        let doc = signed_doc(&a);
        let twice = Bundle {
            exporter: a.key.public(),
            created_at: 0,
            docs: vec![
                BundleDoc { id: doc.id.clone(), changes: doc.changes.clone(), evidence: doc.evidence.clone() },
                BundleDoc { id: doc.id.clone(), changes: doc.changes.clone(), evidence: doc.evidence.clone() },
            ],
            blobs: BTreeMap::new(),
            credentials: Vec::new(),
        };
        assert!(matches!(decode(&encode(&twice, &a.key).unwrap(), |_| true), Err(BundleError::Malformed(_))));
        let mut doubled = signed_doc(&a);
        doubled.evidence.push(doubled.evidence[0].clone());
        assert!(matches!(
            verify_document(&doubled, |_| true, |_| false),
            Err(BundleError::Verify(VerifyError::DuplicateAuthor(_)))
        ));
    }

    #[test]
    fn a_derived_document_cannot_get_a_competing_root() {
        let a = device(1);
        let real = signed_doc(&a);
        // A signed change with no dependencies in a dossier: a second root
        // that would shadow the genesis maps.
        let mut rogue = Automerge::new().with_actor(a.proof.actor_id());
        let hash = edit(&mut rogue, 1, |tx| {
            use automerge::transaction::Transactable;
            tx.put_object(automerge::ROOT, "hazards", automerge::ObjType::Map)?;
            Ok(())
        })
        .unwrap()
        .hash
        .unwrap();
        let doc = BundleDoc {
            id: real.id.clone(),
            changes: rogue.get_changes(&[]),
            evidence: vec![a.key.sign_head(&real.id, &a.proof, hash)],
        };
        assert_eq!(
            verify_document(&doc, |_| true, |_| false),
            Err(BundleError::Verify(VerifyError::BadGenesis(real.id.to_string())))
        );
    }
}
