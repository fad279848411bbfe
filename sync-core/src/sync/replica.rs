//! The storage port of a session: [`Replica`] reads the local side's
//! documents, [`Local`] carries out the session's writes. Implemented by the
//! device's store (`field-client`), HQ's store (`server`) and the
//! simulation's replicas (`tests/`); the session sees storage only through
//! these two traits.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use automerge::{ActorId, Automerge, ChangeHash};

use super::batch::{Arrived, Checked};
use super::message::{Evidence, Receipt, ReceiptBody};
use crate::credential::SignedRevocations;
use crate::identity::{DevicePublicKey, HeadSignature};
use crate::ids::{DocId, DocTag};
use crate::validate::Invalid;

/// One document a replica holds.
#[derive(Clone, Debug)]
pub struct CatalogEntry {
    /// Id.
    pub id: DocId,
    /// Where it belongs.
    pub tag: DocTag,
    /// Current heads.
    pub heads: Vec<ChangeHash>,
}

/// A change to be sent, without its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Its hash.
    pub hash: ChangeHash,
    /// Its actor.
    pub actor: ActorId,
    /// Its sequence number for that actor.
    pub seq: u64,
    /// The changes it depends on.
    pub deps: Vec<ChangeHash>,
}

impl From<automerge::ChangeMetadata<'_>> for Outgoing {
    fn from(meta: automerge::ChangeMetadata<'_>) -> Self {
        Self { hash: meta.hash, actor: meta.actor.into_owned(), seq: meta.seq, deps: meta.deps }
    }
}

/// A document's whole history as one batch, with its evidence.
#[derive(Clone, Debug)]
pub struct Whole {
    /// The batch (a whole document, or a bundle chunk), as received or as
    /// kept by a local edit.
    pub batch: Vec<u8>,
    /// The evidence received with it.
    pub evidence: Vec<Evidence>,
    /// How many changes it holds.
    pub changes: usize,
}

/// Why a storage call failed. The messages are Chinese: they reach the
/// peer (a refused write) or the person running the sync.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// What arrived would leave the document invalid once applied to what
    /// the store holds now (another session wrote meanwhile).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The store could not read or write.
    #[error("{0}")]
    Failed(String),
}

/// Read access to the local side's documents, in memory (no waiting).
pub trait Replica {
    /// Documents held.
    fn catalog(&self) -> Vec<CatalogEntry>;
    /// Whether a change of `doc` is held.
    fn has_change(&self, doc: &DocId, hash: &ChangeHash) -> bool;
    /// Changes of `doc` not reachable from `have`, in causal order (what
    /// the session needs to know of them; [`Replica::batch`] gives bytes).
    fn changes_since(&self, doc: &DocId, have: &[ChangeHash]) -> Vec<Outgoing>;
    /// The changes of `doc` named by `hashes` as the payload of a `changes`
    /// message ([`batch`](super::batch)): when `whole` (we know of no change
    /// the peer holds, so `hashes` are all the document's changes; the peer
    /// may still hold some we cannot tell) the whole document
    /// ([`super::batch::encode_document`]), else one Automerge bundle chunk
    /// (`Automerge::bundle(..).bytes()`).
    fn batch(&self, doc: &DocId, hashes: &[ChangeHash], whole: bool) -> Option<Vec<u8>>;
    /// The stored signature over `head` and its author's credential bytes
    /// (empty when the signature is held but not the credential: only HQ
    /// is then sent the work, and looks the credential up).
    fn evidence(&self, doc: &DocId, head: &ChangeHash) -> Option<(HeadSignature, Vec<u8>)>;
    /// Heads both this side and `peer` held when their last session ended.
    fn checkpoint(&self, peer: &DevicePublicKey, doc: &DocId) -> Vec<ChangeHash>;
    /// A copy of `doc` as held (`None`: not held), to check what arrived
    /// against. Copying an Automerge document shares its columns.
    fn held_copy(&self, doc: &DocId) -> Option<Automerge>;
    /// Receipts held for `doc`.
    fn receipts(&self, doc: &DocId) -> Vec<Receipt>;
    /// The whole of `doc` as one batch kept as it arrived (see
    /// [`super::session::Effect::Persist`]), if the document's heads are
    /// still that batch's heads: sent as is to a peer that holds none of it.
    fn whole(&self, _doc: &DocId) -> Option<Whole> {
        None
    }
    /// When this replica stored the change `head` of `doc` (ms, its own
    /// clock), if it keeps that: a carrier's record that a since-revoked
    /// author's work reached it before the revocation.
    fn received_at(&self, _doc: &DocId, _head: &ChangeHash) -> Option<i64> {
        None
    }
    /// HQ: the newest credential its register issued to `author` (bytes of
    /// `SignedCredential`), for evidence whose carrier lacks it.
    fn author_credential(&self, _author: &DevicePublicKey) -> Option<Vec<u8>> {
        None
    }
    /// HQ: why it rejected `changes` of `doc`, if a person there decided
    /// against every one of them (kept aside earlier, see [`Local::quarantine`]).
    fn rejected(&self, _doc: &DocId, _changes: &[ChangeHash]) -> Option<String> {
        None
    }
}

/// Signed work kept aside for review instead of being stored
/// ([`super::session::Effect::Quarantine`]).
#[derive(Clone, Debug)]
pub struct Aside {
    /// Document.
    pub doc: DocId,
    /// The batch as received: applying it again gives the work back.
    pub batch: Vec<u8>,
    /// Its evidence, with author credentials.
    pub evidence: Vec<(HeadSignature, Vec<u8>)>,
    /// The changes kept aside; the rest of the batch, if any, was stored.
    pub changes: Vec<ChangeHash>,
    /// Why (Chinese).
    pub reason: String,
}

/// A write a session asked for: durable when it resolves. HQ's carries the
/// receipt it signed, to be sent only then.
pub type PendingWrite = Pin<Box<dyn Future<Output = Result<Option<Receipt>, StorageError>> + Send>>;

/// A write the driver waits for, without holding the store meanwhile:
/// durable when it resolves.
pub type Durable = Pin<Box<dyn Future<Output = Result<(), StorageError>> + Send>>;

/// The writing side of a session's storage: what a driver calls to carry
/// out the session's effects.
pub trait Local: Replica {
    /// Makes `doc` ready to read ([`super::session::Effect::Load`]): a
    /// replica that keeps documents on disk loads it now. With `whole_for`,
    /// the session will send it to that peer, which holds none of it: a
    /// replica that keeps it whole ([`Replica::whole`]) may leave it unloaded.
    fn load(&mut self, doc: &DocId, whole_for: Option<&DevicePublicKey>) -> Result<(), StorageError>;
    /// Starts storing verified changes (`checked`: the document as the
    /// session checked it): later reads see them at once; they are durable
    /// when the returned write resolves. Writes resolve in the order they
    /// were started.
    fn persist(
        &mut self,
        doc: &DocId,
        changes: Arrived,
        checked: Checked,
        evidence: Vec<(HeadSignature, Vec<u8>)>,
        batch: Option<Vec<u8>>,
        from: &DevicePublicKey,
    ) -> PendingWrite;
    /// Keeps signed work aside for a person to decide (never applied), as
    /// delivered by `from`. Work already kept aside is kept once.
    fn quarantine(&mut self, aside: Aside, from: &DevicePublicKey) -> Result<(), StorageError>;
    /// Stores receipts whose signatures were checked, from a session that
    /// ended early: durable before any later write is, not waited for.
    fn store_receipts(&mut self, receipts: Vec<(ReceiptBody, Receipt)>) -> Result<(), StorageError>;
    /// Keeps a newer HQ revocation list (signature and version already checked).
    fn store_revocations(&mut self, list: SignedRevocations) -> Result<(), StorageError>;
    /// Stores, in one write, the receipts a completed session received
    /// (signatures checked) and its checkpoints with `peer`
    /// ([`super::session::Summary::checkpoints`]); durable when the returned
    /// write resolves.
    fn store_finished(
        &mut self,
        receipts: Vec<(ReceiptBody, Receipt)>,
        peer: &DevicePublicKey,
        checkpoints: &BTreeMap<DocId, Vec<ChangeHash>>,
    ) -> Durable;
    /// Whether the driver decodes the documents that arrived behind the
    /// one the session is handling, on other threads
    /// ([`super::session::Input::Decoded`]): a device's pull then uses every
    /// core. A server running many sessions at once keeps the cores busy
    /// anyway, and documents decoded ahead in every session would hold
    /// memory.
    fn decode_ahead(&self) -> bool {
        true
    }
}
