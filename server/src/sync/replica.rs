//! HQ's side of every sync session: its store, shared by the sessions it
//! serves at once, and its receipt log.
//!
//! Every storage call takes the lock only for its own duration, so sessions
//! interleave at message granularity instead of waiting for each other to
//! finish. Heads only grow, so what one session read stays a valid "have"
//! set while another writes. Sessions check what arrives outside the lock,
//! on a copy taken under it (`Replica::held_copy`).
//!
//! Every durable write of synced changes carries a receipt: HQ's signature
//! over the document's heads, the device that sent them and the time,
//! chained to the previous receipt by its hash (`seq`, `prev`). It is
//! written in the same transaction as the changes and sent only once that
//! transaction is durable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use field_client::{Blobs, PhotoSide, Store, StoreError, Synced};
use serde_bytes::ByteBuf;
use sync_core::automerge::{Automerge, ChangeHash};
use sync_core::credential::SignedRevocations;
use sync_core::identity::{ActorProof, StoreNonce};
use sync_core::identity::{DeviceKey, DevicePublicKey, HeadSignature};
use sync_core::ids::{DocId, DocTag, PhotoId};
use sync_core::sync::batch::{Arrived, Checked};
use sync_core::sync::message::{Receipt, ReceiptBody};
use sync_core::sync::replica::{
    Aside, CatalogEntry, Durable, Local, Outgoing, PendingWrite, Replica, StorageError, Whole,
};
use sync_core::sync::session;
use sync_core::validate::{Invalid, Typed};

/// HQ's store and receipt log, shared by its sessions.
#[derive(Clone)]
pub(crate) struct HqReplica {
    hq: Arc<Mutex<Hq>>,
    durable: Durably,
    /// HQ's register, where authors' credentials are looked up.
    register: Option<Arc<Mutex<crate::register::Hq>>>,
    /// The console's device identity, which signs HQ's own edits.
    console: Option<Arc<Console>>,
    /// Held by a decision on quarantined work from its reading of the entry
    /// to its write, so two people deciding one entry at once cannot both
    /// act (one accepting while the other rejects).
    pub(super) deciding: Arc<tokio::sync::Mutex<()>>,
    /// Told of each photo once it is held, verified (HQ's photo copies).
    photo_arrived: Option<PhotoArrived>,
    /// The store's directory, for readers with connections of their own.
    home: std::path::PathBuf,
}

/// Told of each photo HQ now holds, verified.
pub(crate) type PhotoArrived = Arc<dyn Fn(&PhotoId) + Send + Sync>;

/// Told of each write of synced changes once it is durable: its number (a
/// later write of a document has a higher one), the document, and the
/// document as typed records as that write left it (the validator's
/// reading, so nothing is read again). The read model listens.
pub(crate) type Durably = Arc<dyn Fn(u64, DocId, Typed, Vec<ChangeHash>) + Send + Sync>;

struct Hq {
    store: Store,
    /// Signs receipts: HQ's key.
    key: DeviceKey,
    /// The receipt log's last entry (seq, hash), kept in memory: receipts
    /// are signed before earlier ones are durable.
    tail: (i64, Vec<u8>),
    /// Writes of synced changes so far.
    writes: u64,
    /// Documents with quarantined work no one has decided yet: a write
    /// to one of them settles what it now holds (see `settle`).
    aside: BTreeSet<DocId>,
    /// Documents with writes queued but not yet durable, and their heads
    /// as last made durable: the catalog lists those, so a peer never
    /// leaves HQ's catalog believing HQ safely holds what a crash could
    /// still lose (it sends it, and gets its receipt once it is durable).
    in_flight: BTreeMap<DocId, InFlight>,
}

struct InFlight {
    /// Writes queued and not yet durable.
    writes: usize,
    /// Heads as last made durable (`None`: nothing of it is durable yet).
    durable: Option<Vec<ChangeHash>>,
}

/// Ends one queued write of `doc` in `Hq::in_flight`, however it ends:
/// durable at `heads` (`done` set), failed, or dropped with its session.
struct Landing {
    hq: Arc<Mutex<Hq>>,
    doc: DocId,
    done: Option<Vec<ChangeHash>>,
}

impl Drop for Landing {
    fn drop(&mut self) {
        let mut hq = self.hq.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = hq.in_flight.get_mut(&self.doc) {
            if let Some(heads) = self.done.take() {
                flight.durable = Some(heads);
            }
            flight.writes -= 1;
            if flight.writes == 0 {
                hq.in_flight.remove(&self.doc);
            }
        }
    }
}

impl HqReplica {
    /// Shares `store`, whose receipts `key` signs; `durable` hears of each
    /// write of synced changes once it is durable.
    pub(crate) fn new(store: Store, key: DeviceKey, durable: Durably) -> Result<Self, StoreError> {
        let home = store.home().to_path_buf();
        let tail = store.receipt_tail()?;
        let aside = store.undecided_docs()?.into_iter().collect();
        let hq = Hq { store, key, tail, writes: 0, aside, in_flight: BTreeMap::new() };
        let deciding = Arc::new(tokio::sync::Mutex::new(()));
        Ok(Self {
            hq: Arc::new(Mutex::new(hq)),
            durable,
            register: None,
            console: None,
            deciding,
            photo_arrived: None,
            home,
        })
    }

    /// A replica in a fresh store at `dir` signing with `seed`, heard by no
    /// one: for tests of what lies around it.
    #[cfg(test)]
    pub(crate) fn scratch(dir: &std::path::Path, seed: [u8; 32]) -> Self {
        let store = Store::init_with_seed(dir, "总部", seed).expect("a fresh store");
        Self::new(store, DeviceKey::from_seed(seed), Arc::new(|_, _, _, _| {})).expect("a fresh replica")
    }

    /// Tells `arrived` of each photo once it is held, verified.
    pub(crate) fn with_photo_hook(self, arrived: PhotoArrived) -> Self {
        Self { photo_arrived: Some(arrived), ..self }
    }

    /// Looks authors' credentials up in `register` (for work whose carrier
    /// lacks them).
    pub(crate) fn with_register(self, register: Arc<Mutex<crate::register::Hq>>) -> Self {
        Self { register: Some(register), ..self }
    }

    /// Signs HQ's own edits ([`Self::edit_for`]) as `console`.
    pub(crate) fn with_console(self, console: Console) -> Self {
        Self { console: Some(Arc::new(console)), ..self }
    }

    pub(super) fn console(&self) -> Option<Arc<Console>> {
        self.console.clone()
    }

    /// The register's newest revocation list (none without a register).
    pub(super) fn revocations(&self) -> Option<sync_core::credential::RevocationList> {
        let register = self.register.as_ref()?.lock().unwrap_or_else(PoisonError::into_inner);
        register.revocation_list().unwrap_or_else(|error| {
            tracing::error!(%error, "the register could not be read");
            None
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Hq) -> T) -> T {
        f(&mut self.hq.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Like [`Self::with`], with `doc` in memory if it is stored: HQ holds
    /// every campaign, and keeps only the most recently used documents in
    /// memory, so a document a session asked for may have left meanwhile.
    fn with_doc<T>(&self, doc: &DocId, f: impl FnOnce(&mut Store) -> T) -> T {
        self.with(|hq| {
            if let Err(error) = Local::load(&mut hq.store, doc, None) {
                tracing::error!(%doc, %error, "stored document does not load");
            }
            f(&mut hq.store)
        })
    }
}

/// The console's device identity (HQ's own edits, `edit.rs`): its key, and
/// the nonce of the actor it writes as.
pub(crate) struct Console {
    key: DeviceKey,
    /// A fresh actor per process, and again after a write that failed: a
    /// change that never became durable may have been seen by a session,
    /// and its actor's sequence number is not to be used for another.
    nonce: Mutex<StoreNonce>,
}

impl Console {
    pub(crate) fn new(key: DeviceKey) -> Result<Self, getrandom::Error> {
        Ok(Self { key, nonce: Mutex::new(fresh_nonce()?) })
    }

    /// The device key, which signs.
    pub(super) fn key(&self) -> &DeviceKey {
        &self.key
    }

    /// The actor it writes as now.
    pub(super) fn proof(&self) -> ActorProof {
        ActorProof { key: self.key.public(), nonce: *self.nonce.lock().unwrap_or_else(PoisonError::into_inner) }
    }

    /// A fresh actor, after a write that failed.
    pub(super) fn renew(&self) {
        if let Ok(nonce) = fresh_nonce() {
            *self.nonce.lock().unwrap_or_else(PoisonError::into_inner) = nonce;
        }
    }
}

fn fresh_nonce() -> Result<StoreNonce, getrandom::Error> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce)?;
    Ok(StoreNonce(nonce))
}

/// Changes to store, as a session or a decision checked them.
pub(super) struct Arriving {
    pub(super) changes: Arrived,
    pub(super) checked: Checked,
    pub(super) evidence: Vec<(HeadSignature, Vec<u8>)>,
    pub(super) batch: Option<Vec<u8>>,
    /// The device that delivered them, named in the receipt.
    pub(super) from: DevicePublicKey,
}

impl HqReplica {
    /// Stores `arriving` with HQ's receipt in one transaction, queued under
    /// the lock so that the log's order is the order of the writes; with
    /// `decided`, the quarantine row (id, who, why) it accepts, in the same
    /// transaction. Quarantined work of `doc` that is now all held is
    /// settled there too.
    pub(super) fn write(&self, doc: &DocId, arriving: Arriving, decided: Option<(i64, &str, &str)>) -> PendingWrite {
        let Arriving { changes, checked, evidence, batch, from } = arriving;
        let queued = self.with(|hq| {
            let before = hq.store.indexed_heads(doc);
            let mut synced = hq.store.synced(doc, changes, checked, evidence, batch, &from)?;
            let now = field_client::now_ms();
            if let Some((id, by, note)) = decided {
                synced.decide(id, "accepted", by, note, now);
            }
            hq.settle(doc, &mut synced, decided.map(|(id, _, _)| id))?;
            hq.in_flight.entry(doc.clone()).or_insert(InFlight { writes: 0, durable: before }).writes += 1;
            let (body, receipt) = hq.receipt(doc, synced.heads(), &from);
            synced.add_receipt(body, receipt.clone());
            hq.writes += 1;
            let typed = synced.take_typed();
            let heads = synced.heads().to_vec();
            Ok::<_, StoreError>((hq.store.queue(synced), receipt, hq.writes, typed, heads))
        });
        match queued {
            Ok((written, receipt, seq, typed, heads)) => {
                let (durable, doc) = (self.durable.clone(), doc.clone());
                let mut landing = Landing { hq: self.hq.clone(), doc: doc.clone(), done: None };
                Box::pin(async move {
                    written.await.map_err(|_| failed(StoreError::StoreThreadGone))?.map_err(failed)?;
                    landing.done = Some(heads.clone());
                    drop(landing);
                    if let Some(typed) = typed {
                        durable(seq, doc, typed, heads);
                    }
                    Ok(Some(receipt))
                })
            }
            Err(StoreError::Rejected { reason, .. }) => Box::pin(std::future::ready(Err(Invalid(reason).into()))),
            Err(error) => Box::pin(std::future::ready(Err(failed(error)))),
        }
    }

    /// Runs `f` on HQ's store, under the lock.
    pub(super) fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        self.with(|hq| f(&mut hq.store))
    }

    /// HQ's key, which signs its receipts.
    pub(super) fn hq_key(&self) -> DevicePublicKey {
        self.with(|hq| hq.key.public())
    }
}

/// The read model reads documents from HQ's store without making sessions
/// wait: a document in memory is copied under the lock (cheap), one that
/// is not is read from disk on a connection of the reader's own, outside
/// it (loading it into the store under the lock would hold every session
/// for the load).
impl crate::read::Source for HqReplica {
    fn typed(&self, doc: &DocId) -> Option<(Typed, Vec<ChangeHash>)> {
        let copy = self.copy_for_reading(doc)?;
        let typed = sync_core::validate::document(doc, &copy).ok()?.typed;
        Some((typed, copy.get_heads()))
    }

    fn document(&self, doc: &DocId) -> Option<Automerge> {
        self.copy_for_reading(doc)
    }

    fn signers(&self, doc: &DocId) -> Vec<ActorProof> {
        field_client::stored_signers(&self.home, doc).unwrap_or_else(|error| {
            tracing::error!(%doc, %error, "signers of a stored document do not read");
            Vec::new()
        })
    }
}

impl HqReplica {
    fn copy_for_reading(&self, doc: &DocId) -> Option<Automerge> {
        if let Some(copy) = self.with(|hq| hq.store.held_copy(doc)) {
            return Some(copy);
        }
        field_client::stored_document(&self.home, doc).unwrap_or_else(|error| {
            tracing::error!(%doc, %error, "stored document does not read");
            None
        })
    }
}

impl Hq {
    /// Marks `stored` the undecided quarantine rows of `doc` (but `except`)
    /// whose changes the store holds once `synced` is written: that work
    /// arrived again in a way HQ could take (its author's credential
    /// issued meanwhile, say), and there is nothing left to decide.
    fn settle(&mut self, doc: &DocId, synced: &mut Synced, except: Option<i64>) -> Result<(), StoreError> {
        if !self.aside.contains(doc) {
            return Ok(());
        }
        let rows = self.store.undecided_aside(doc)?;
        for (id, _) in rows.iter().filter(|(id, held)| *held && Some(*id) != except) {
            synced.decide(*id, "stored", "总部", "同样的修改后来已正常收到", field_client::now_ms());
        }
        if rows.iter().all(|(_, held)| *held) {
            self.aside.remove(doc);
        }
        Ok(())
    }

    /// The receipt for `doc` now standing at `heads`, as sent by `from`:
    /// the next entry of the log.
    fn receipt(&mut self, doc: &DocId, heads: &[ChangeHash], from: &DevicePublicKey) -> (ReceiptBody, Receipt) {
        let (seq, prev) = std::mem::take(&mut self.tail);
        let body = ReceiptBody {
            doc: doc.to_string(),
            heads: heads.iter().map(|h| ByteBuf::from(h.0.to_vec())).collect(),
            device: ByteBuf::from(from.to_bytes().to_vec()),
            server_time: field_client::now_ms(),
            seq: u64::try_from(seq + 1).unwrap_or_default(),
            prev: ByteBuf::from(prev),
        };
        let receipt = session::sign_receipt(&self.key, &body);
        self.tail = (seq + 1, sync_core::ids::sha256_hex(&receipt.body).into_bytes());
        (body, receipt)
    }
}

fn failed(e: impl std::fmt::Display) -> StorageError {
    StorageError::Failed(e.to_string())
}

impl Replica for HqReplica {
    /// What HQ holds durably: a document being written is listed at its
    /// heads as last made durable, or not at all if none are yet.
    fn catalog(&self) -> Vec<CatalogEntry> {
        self.with(|hq| {
            let mut entries = hq.store.catalog();
            entries.retain_mut(|entry| match hq.in_flight.get(&entry.id) {
                None => true,
                Some(InFlight { durable: Some(heads), .. }) => {
                    entry.heads = heads.clone();
                    true
                }
                Some(InFlight { durable: None, .. }) => false,
            });
            entries
        })
    }
    fn has_change(&self, doc: &DocId, hash: &ChangeHash) -> bool {
        self.with_doc(doc, |s| s.has_change(doc, hash))
    }
    fn changes_since(&self, doc: &DocId, have: &[ChangeHash]) -> Vec<Outgoing> {
        self.with_doc(doc, |s| s.changes_since(doc, have))
    }
    fn batch(&self, doc: &DocId, hashes: &[ChangeHash], whole: bool) -> Option<Vec<u8>> {
        self.with_doc(doc, |s| s.batch(doc, hashes, whole))
    }
    fn evidence(&self, doc: &DocId, head: &ChangeHash) -> Option<(HeadSignature, Vec<u8>)> {
        self.with(|hq| hq.store.evidence(doc, head))
    }
    fn checkpoint(&self, peer: &DevicePublicKey, doc: &DocId) -> Vec<ChangeHash> {
        self.with(|hq| hq.store.checkpoint(peer, doc))
    }
    /// Only the copy is made under the lock (cheap: Automerge shares its
    /// columns); the session applies and validates outside it, so HQ's
    /// sessions check documents in parallel.
    fn held_copy(&self, doc: &DocId) -> Option<Automerge> {
        self.with_doc(doc, |s| s.held_copy(doc))
    }
    fn receipts(&self, doc: &DocId) -> Vec<Receipt> {
        self.with(|hq| hq.store.receipts(doc))
    }
    fn whole(&self, doc: &DocId) -> Option<Whole> {
        self.with(|hq| hq.store.whole(doc))
    }
    fn received_at(&self, doc: &DocId, head: &ChangeHash) -> Option<i64> {
        self.with(|hq| hq.store.received_at(doc, head))
    }
    fn rejected(&self, doc: &DocId, changes: &[ChangeHash]) -> Option<String> {
        self.with(|hq| hq.store.rejected(doc, changes))
    }
    fn author_credential(&self, author: &DevicePublicKey) -> Option<Vec<u8>> {
        let register = self.register.as_ref()?.lock().unwrap_or_else(PoisonError::into_inner);
        register.credential_of(author).unwrap_or_else(|error| {
            tracing::error!(%error, "the register could not be read");
            None
        })
    }
}

impl Local for HqReplica {
    /// A document to send to a peer that holds none of it is not loaded:
    /// most are kept whole, ready to send (`Replica::whole`), and one that
    /// is not loads when the session first reads it (a fresh analyst's pull
    /// would otherwise load every document HQ holds).
    fn load(&mut self, doc: &DocId, whole_for: Option<&DevicePublicKey>) -> Result<(), StorageError> {
        match whole_for {
            Some(_) => Ok(()),
            None => self.with(|hq| Local::load(&mut hq.store, doc, None)),
        }
    }

    /// The changes and their receipt go in one transaction, queued under
    /// the lock so that the log's order is the order of the writes.
    fn persist(
        &mut self,
        doc: &DocId,
        changes: Arrived,
        checked: Checked,
        evidence: Vec<(HeadSignature, Vec<u8>)>,
        batch: Option<Vec<u8>>,
        from: &DevicePublicKey,
    ) -> PendingWrite {
        self.write(doc, Arriving { changes, checked, evidence, batch, from: *from }, None)
    }

    fn quarantine(&mut self, aside: Aside, from: &DevicePublicKey) -> Result<(), StorageError> {
        self.with(|hq| {
            hq.aside.insert(aside.doc.clone());
            hq.store.quarantine(aside, from)
        })
    }

    /// HQ signed every receipt there is; none come to it.
    fn store_receipts(&mut self, receipts: Vec<(ReceiptBody, Receipt)>) -> Result<(), StorageError> {
        self.with(|hq| hq.store.store_receipts(receipts))
    }

    fn store_revocations(&mut self, list: SignedRevocations) -> Result<(), StorageError> {
        self.with(|hq| hq.store.store_revocations(list))
    }

    /// Queued under the lock, waited for outside it: a session's end does
    /// not hold the others for its commit.
    fn store_finished(
        &mut self,
        receipts: Vec<(ReceiptBody, Receipt)>,
        peer: &DevicePublicKey,
        checkpoints: &BTreeMap<DocId, Vec<ChangeHash>>,
    ) -> Durable {
        self.with(|hq| hq.store.store_finished(receipts, peer, checkpoints))
    }

    /// HQ serves many sessions at once, which keep the cores busy anyway:
    /// documents decoded ahead in each of them would only hold memory.
    fn decode_ahead(&self) -> bool {
        false
    }
}

impl PhotoSide for HqReplica {
    fn referenced(&mut self, scope: &dyn Fn(&DocTag) -> bool) -> Result<BTreeSet<PhotoId>, StoreError> {
        self.with(|hq| hq.store.referenced(scope))
    }

    fn recorded(&self, photos: &BTreeSet<PhotoId>) -> Result<BTreeSet<PhotoId>, StoreError> {
        self.with(|hq| hq.store.recorded(photos))
    }

    fn blobs(&self) -> Blobs {
        self.with(|hq| hq.store.blobs())
    }

    fn record(&self, photo: &PhotoId, size: u64) -> Result<(), StoreError> {
        self.with(|hq| hq.store.record(photo, size))?;
        if let Some(arrived) = &self.photo_arrived {
            arrived(photo);
        }
        Ok(())
    }

    /// HQ holds what it recorded.
    fn at_hq(&self, photos: &BTreeSet<PhotoId>) -> Result<BTreeSet<PhotoId>, StoreError> {
        self.recorded(photos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::doc::campaign;
    use sync_core::ids::CreditCode;
    use sync_core::model::{CampaignKind, Domain, Enterprise};
    use sync_core::sync::session::open_receipt;

    /// A campaign on `store` with one construction site; its id and the
    /// site's credit code.
    fn campaign_with_site(store: &mut Store) -> (DocId, CreditCode) {
        let campaign_id = store
            .create_campaign("联合检查", CampaignKind::ConstructionJointInspection, "2026-11-24", "2026-11-25")
            .unwrap();
        let code: CreditCode = "91640200MA76XYW123".parse().unwrap();
        let enterprise = Enterprise {
            name: "某建设集团".into(),
            unified_social_credit_code: code.clone(),
            domain: Domain::Construction,
            project: String::new(),
            address: String::new(),
            dossier_id: DocId::dossier(&campaign_id, &code),
        };
        store.edit(&campaign_id, |tx| campaign::add_enterprise(tx, &campaign_id, &enterprise)).unwrap();
        (campaign_id, code)
    }

    /// HQ answers work it already holds (delivered meanwhile by another
    /// session) with a receipt for the document as it stands, once
    /// everything before is durable, and stores nothing more; the receipt
    /// log's next entry follows the last one.
    #[test]
    fn hq_receipts_work_it_already_holds() {
        let dir = tempfile::TempDir::new().unwrap();
        let seed = [5; 32];
        let mut store = Store::init_with_seed(dir.path(), "总部", seed).unwrap();
        let (campaign_id, code) = campaign_with_site(&mut store);
        let dossier_id = store.open_dossier(&campaign_id, code.as_str()).unwrap();
        let held = store.document(&dossier_id).unwrap().clone();
        let before = held.get_heads();

        let hq = DeviceKey::from_seed(seed).public();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let listener = heard.clone();
        let durable: Durably = Arc::new(move |seq, doc, _, _| listener.lock().unwrap().push((seq, doc)));
        let mut replica = HqReplica::new(store, DeviceKey::from_seed(seed), durable).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut receipt_for_nothing = || {
            let nothing = Arrived::Changes(Vec::new());
            let checked = nothing.checked(&dossier_id, Some(held.clone())).unwrap();
            let written = replica.persist(&dossier_id, nothing, checked, Vec::new(), None, &hq);
            open_receipt(&runtime.block_on(written).unwrap().expect("a receipt"), &hq).unwrap()
        };
        let first = receipt_for_nothing();
        let named: Vec<ChangeHash> = first.heads.iter().map(|h| ChangeHash(h.as_slice().try_into().unwrap())).collect();
        assert_eq!(named, before);
        let second = receipt_for_nothing();
        assert_eq!(second.seq, first.seq + 1, "the log goes on");
        let heads = replica.catalog().into_iter().find(|e| e.id == dossier_id).unwrap().heads;
        assert_eq!(heads, before, "nothing stored");
        // Each durable write is told, in order.
        assert_eq!(*heard.lock().unwrap(), [(1, dossier_id.clone()), (2, dossier_id)]);
    }

    /// HQ's catalog lists what is durable: a document whose first write is
    /// queued is not in it until that write is durable (a peer that reads
    /// the catalog meanwhile sends its work, and gets its receipt then).
    #[test]
    fn the_catalog_lists_only_what_is_durable() {
        let dir = tempfile::TempDir::new().unwrap();
        let seed = [6; 32];
        let mut tablet = Store::init_with_seed(&dir.path().join("tablet"), "李四", [7; 32]).unwrap();
        let (campaign_id, _) = campaign_with_site(&mut tablet);
        let campaign_doc = tablet.document(&campaign_id).unwrap().clone();

        let store = Store::init_with_seed(&dir.path().join("hq"), "总部", seed).unwrap();
        let durable: Durably = Arc::new(|_, _, _, _| {});
        let mut replica = HqReplica::new(store, DeviceKey::from_seed(seed), durable).unwrap();
        let from = DeviceKey::from_seed([7; 32]).public();
        let arrived = Arrived::Changes(campaign_doc.get_changes(&[]));
        let checked = arrived.checked(&campaign_id, None).unwrap();
        let written = replica.persist(&campaign_id, arrived, checked, Vec::new(), None, &from);
        let listed = |replica: &HqReplica| replica.catalog().into_iter().find(|e| e.id == campaign_id).map(|e| e.heads);
        assert_eq!(listed(&replica), None, "not listed while its first write is in flight");
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(written).unwrap();
        assert_eq!(listed(&replica), Some(campaign_doc.get_heads()), "listed once durable");
    }
}
