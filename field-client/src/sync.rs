//! The store as one side of a sync session: [`Replica`] reads from the
//! documents in memory, [`Local`] writes what a session verified
//! ([`Store::synced`], then [`Store::queue`]: HQ's replica adds its receipt
//! between the two). Then the device's drivers: sync with HQ or a peer, the
//! station relay, and [`serve`], the accepting side of one connection.

use std::net::SocketAddr;

use std::collections::BTreeMap;

use serde_bytes::ByteBuf;
use sync_core::automerge::{Automerge, ChangeHash};
use sync_core::credential::{SignedCredential, SignedRevocations};
use sync_core::identity::{DevicePublicKey, HeadSignature};
use sync_core::ids::{DocId, DocKind};
use sync_core::sync::batch::{self, Arrived, Checked};
use sync_core::sync::message::{Evidence, Receipt, ReceiptBody};
use sync_core::sync::replica::{
    Aside, CatalogEntry, Durable, Local, Outgoing, PendingWrite, Replica, StorageError, Whole,
};
use sync_core::sync::session::{Session, SessionConfig, Summary};
use sync_core::validate;

use crate::db::Write;
use crate::net::{self, NetError};
use crate::photos::{self, PhotoReport, PhotoSide, Progress};
use crate::store::Warmed;
use crate::{Store, StoreError};

fn failed(e: impl std::fmt::Display) -> StorageError {
    StorageError::Failed(e.to_string())
}

/// How long a finished client waits for the serving side to close, and
/// then for its own close notice to be confirmed.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

fn receipt_writes(receipts: Vec<(ReceiptBody, Receipt)>) -> Vec<Write> {
    receipts
        .into_iter()
        .map(|(body, receipt)| Write::Receipt {
            seq: i64::try_from(body.seq).unwrap_or(i64::MAX),
            doc: body.doc,
            hash: sync_core::ids::sha256_hex(&receipt.body).into_bytes(),
            body: receipt.body.into_vec(),
            sig: receipt.sig.into_vec(),
        })
        .collect()
}

fn hashes(bytes: &[u8]) -> Vec<ChangeHash> {
    bytes.chunks_exact(32).filter_map(|c| c.try_into().ok().map(ChangeHash)).collect()
}

/// Whether credential bytes `a` are a later credential than `b` (valid
/// longer, then a higher serial); unreadable ones are never later.
fn newer(a: &[u8], b: &[u8]) -> bool {
    let order = |bytes: &[u8]| {
        SignedCredential::from_bytes(bytes).ok().map(|c| (c.credential().not_after, c.credential().serial))
    };
    order(a) > order(b)
}

impl Replica for Store {
    fn catalog(&self) -> Vec<CatalogEntry> {
        self.index
            .iter()
            .filter_map(|(id, i)| Some(CatalogEntry { id: id.clone(), tag: i.tag.clone()?, heads: i.heads.clone() }))
            .collect()
    }

    fn has_change(&self, doc: &DocId, hash: &ChangeHash) -> bool {
        self.docs.get(doc).is_some_and(|l| l.doc.get_change_meta_by_hash(hash).is_some())
    }

    fn changes_since(&self, doc: &DocId, have: &[ChangeHash]) -> Vec<Outgoing> {
        self.docs
            .get(doc)
            .map(|l| l.doc.get_changes_meta(have).into_iter().map(Outgoing::from).collect())
            .unwrap_or_default()
    }

    fn batch(&self, doc: &DocId, hashes: &[ChangeHash], whole: bool) -> Option<Vec<u8>> {
        let doc = &self.docs.get(doc)?.doc;
        // A document too large to go whole goes as a bundle.
        if whole && let Ok(encoded) = batch::encode_document(doc) {
            return Some(encoded);
        }
        Some(doc.bundle(hashes.iter().copied()).ok()?.bytes().to_vec())
    }

    fn evidence(&self, doc: &DocId, head: &ChangeHash) -> Option<(HeadSignature, Vec<u8>)> {
        let row = self.db.evidence(doc.to_string(), vec![head.0.to_vec()]).ok()?.pop()??;
        let signature = crate::store::evidence_of(*head, row).ok()?;
        let credential = if signature.actor.key == self.key.public() {
            self.db.meta("credential").ok()??
        } else {
            self.db.author_credential(signature.actor.key.to_bytes().to_vec()).ok()?.unwrap_or_default()
        };
        Some((signature, credential))
    }

    fn checkpoint(&self, peer: &DevicePublicKey, doc: &DocId) -> Vec<ChangeHash> {
        if self.warmed.borrow().as_ref().is_some_and(|w| w.doc == *doc && w.peer == *peer) {
            return Vec::new();
        }
        self.db
            .checkpoint(peer.to_bytes().to_vec(), doc.to_string())
            .ok()
            .flatten()
            .map(|b| hashes(&b))
            .unwrap_or_default()
    }

    fn held_copy(&self, doc: &DocId) -> Option<Automerge> {
        self.docs.get(doc).map(|l| l.doc.clone())
    }

    fn receipts(&self, doc: &DocId) -> Vec<Receipt> {
        self.db.latest_receipt(doc.to_string()).ok().flatten().into_iter().collect()
    }

    fn received_at(&self, doc: &DocId, head: &ChangeHash) -> Option<i64> {
        self.db.received_at(doc.to_string(), head.0.to_vec()).ok().flatten()
    }

    fn rejected(&self, doc: &DocId, changes: &[ChangeHash]) -> Option<String> {
        let rejections = self.db.rejections(doc.to_string()).ok()?;
        let covers = |kept: &[u8]| changes.iter().all(|c| kept.chunks_exact(32).any(|h| h == c.0));
        let (_, by, note) = rejections.iter().find(|(kept, _, _)| covers(kept))?;
        Some(format!("总部已拒收这些修改（{by}：{note}），无需再处理"))
    }

    fn whole(&self, doc: &DocId) -> Option<Whole> {
        let warmed = self.warmed.borrow_mut().take_if(|w| w.doc == *doc);
        match warmed {
            // Still current: nothing was written to it since `warm`.
            Some(warmed) => (Some(warmed.heads) == self.current_heads(doc)).then_some(warmed.whole),
            None => self.kept_whole(doc),
        }
    }
}

impl Store {
    /// `doc`'s heads as the index holds them (`None`: not held).
    pub fn indexed_heads(&self, doc: &DocId) -> Option<Vec<ChangeHash>> {
        Some(self.index.get(doc)?.heads.clone())
    }

    /// `doc`'s heads as the index holds them (32 bytes each).
    fn current_heads(&self, doc: &DocId) -> Option<Vec<u8>> {
        Some(self.index.get(doc)?.heads.iter().flat_map(|h| h.0).collect())
    }

    /// The batch `doc` is kept whole in, if it holds the document's current
    /// heads, with the authors' latest credentials.
    fn kept_whole(&self, doc: &DocId) -> Option<Whole> {
        let (heads, batch, evidence, changes) = self.db.whole(doc.to_string()).ok()??;
        if Some(heads) != self.current_heads(doc) {
            return None;
        }
        let mut evidence: Vec<Evidence> = ciborium::from_reader(evidence.as_slice()).ok()?;
        // An author's credential renewed since the batch was kept replaces
        // the one kept with it (the peer judges the credential, not the
        // signature's age).
        for e in evidence.iter_mut().filter(|e| !e.credential.is_empty()) {
            let held = self.db.author_credential(e.key.to_vec()).ok().flatten();
            if let Some(held) = held.filter(|h| newer(h, &e.credential)) {
                e.credential = ByteBuf::from(held);
            }
        }
        Some(Whole { batch, evidence, changes: usize::try_from(changes).ok()? })
    }
}

impl Local for Store {
    fn quarantine(&mut self, aside: Aside, from: &DevicePublicKey) -> Result<(), StorageError> {
        let evidence: Vec<Evidence> =
            aside.evidence.iter().map(|(s, credential)| Evidence::new(s, credential.clone())).collect();
        let mut encoded = Vec::new();
        ciborium::into_writer(&evidence, &mut encoded).map_err(failed)?;
        let mut changes = aside.changes;
        changes.sort();
        let write = Write::Quarantine {
            doc: aside.doc.to_string(),
            source: from.to_string(),
            reason: aside.reason,
            batch: aside.batch,
            evidence: encoded,
            changes: changes.iter().flat_map(|h| h.0).collect(),
        };
        self.db.persist(vec![write]).map_err(failed)
    }

    fn store_revocations(&mut self, list: SignedRevocations) -> Result<(), StorageError> {
        self.db.persist(vec![Write::Meta { key: "revocations", value: list.to_bytes() }]).map_err(failed)
    }

    fn persist(
        &mut self,
        doc: &DocId,
        changes: Arrived,
        checked: Checked,
        evidence: Vec<(HeadSignature, Vec<u8>)>,
        batch: Option<Vec<u8>>,
        from: &DevicePublicKey,
    ) -> PendingWrite {
        match self.synced(doc, changes, checked, evidence, batch, from) {
            Ok(synced) => {
                let written = self.queue(synced);
                Box::pin(async move {
                    written.await.map_err(|_| failed(StoreError::StoreThreadGone))?.map_err(failed)?;
                    Ok(None)
                })
            }
            Err(StoreError::Rejected { reason, .. }) => {
                Box::pin(std::future::ready(Err(StorageError::Invalid(validate::Invalid(reason)))))
            }
            Err(e) => Box::pin(std::future::ready(Err(failed(e)))),
        }
    }

    fn store_receipts(&mut self, receipts: Vec<(ReceiptBody, Receipt)>) -> Result<(), StorageError> {
        // Not waited for: writes commit in order, so any later write waited
        // for is durable only after these, and after a failed commit every
        // later write fails. A receipt lost to a crash comes again with the
        // next session.
        drop(self.db.persist_later(receipt_writes(receipts)));
        Ok(())
    }

    fn store_finished(
        &mut self,
        receipts: Vec<(ReceiptBody, Receipt)>,
        peer: &DevicePublicKey,
        checkpoints: &BTreeMap<DocId, Vec<ChangeHash>>,
    ) -> Durable {
        let mut batch = receipt_writes(receipts);
        batch.extend(checkpoints.iter().map(|(doc, heads)| Write::Checkpoint {
            peer: peer.to_bytes().to_vec(),
            doc: doc.to_string(),
            heads: heads.iter().flat_map(|h| h.0).collect(),
        }));
        let written = self.db.persist_later(batch);
        Box::pin(async move { written.await.map_err(|_| failed(StoreError::StoreThreadGone))?.map_err(failed) })
    }

    /// Loads the document, so a device's session loads each document just
    /// before it is sent or changed: HQ works on the first while the
    /// device loads the next.
    fn load(&mut self, doc: &DocId, whole_for: Option<&DevicePublicKey>) -> Result<(), StorageError> {
        if !self.index.contains_key(doc) || self.docs.contains_key(doc) {
            return Ok(());
        }
        // Kept whole and current, for a peer that holds none of it: sent as
        // it is, without loading it (the session asks `whole` next, with the
        // same answer).
        self.warmed.replace(None);
        if let Some(peer) = whole_for
            && Replica::checkpoint(self, peer, doc).is_empty()
            && let Some(whole) = self.kept_whole(doc)
            && let Some(heads) = self.current_heads(doc)
        {
            // What the session reads next, kept so it is not read twice.
            self.warmed.replace(Some(Warmed { doc: doc.clone(), peer: *peer, heads, whole }));
            return Ok(());
        }
        self.loaded(doc).map(|_| ()).map_err(failed)
    }
}

impl Store {
    /// Loads every stored document.
    pub fn load_all(&mut self) -> Result<(), StoreError> {
        for (id, _) in self.db.docs()? {
            if let Ok(id) = id.parse::<DocId>() {
                self.loaded(&id)?;
            }
        }
        Ok(())
    }

    /// This device's changes that no HQ receipt covers yet, per document:
    /// the work that is not yet known to be safe at HQ.
    pub fn unreceipted(&mut self) -> Result<Vec<(DocId, usize)>, StoreError> {
        let actor = self.proof.actor_id();
        let mut out = Vec::new();
        // Checklists are read-only: they hold no work of ours.
        let ids: Vec<(DocId, Vec<ChangeHash>)> = self
            .index
            .iter()
            .filter(|(id, _)| id.kind() != DocKind::Checklist)
            .map(|(id, i)| (id.clone(), i.heads.clone()))
            .collect();
        for (id, heads) in ids {
            let receipted: Vec<ChangeHash> = match self.db.latest_receipt(id.to_string())? {
                Some(receipt) => ciborium::from_reader::<ReceiptBody, _>(receipt.body.as_slice())
                    .map(|b| b.heads.iter().filter_map(|h| h.as_slice().try_into().ok().map(ChangeHash)).collect())
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            // A receipt naming all our heads covers everything: no need to
            // load the document to count.
            if heads.iter().all(|h| receipted.contains(h)) {
                continue;
            }
            let doc = &self.loaded(&id)?.doc;
            let known: Vec<ChangeHash> =
                receipted.into_iter().filter(|h| doc.get_change_meta_by_hash(h).is_some()).collect();
            let mine = doc.get_changes_meta(&known).iter().filter(|c| *c.actor == actor).count();
            if mine > 0 {
                out.push((id, mine));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Applies changes a session verified to the document in memory (it is
    /// read so at once) and returns their writes, with their evidence and
    /// author credentials, for [`Store::queue`]. Queue them before anything
    /// else writes: writes become durable in the order they are queued.
    pub fn synced(
        &mut self,
        id: &DocId,
        changes: Arrived,
        checked: Checked,
        evidence: Vec<(HeadSignature, Vec<u8>)>,
        whole: Option<Vec<u8>>,
        from: &DevicePublicKey,
    ) -> Result<Synced, StoreError> {
        let is_new = !self.index.contains_key(id);
        let current = if is_new { Vec::new() } else { self.loaded(id)?.doc.get_heads() };
        // As the session checked it, unless another session wrote to the
        // document meanwhile: then what arrived is checked again on what
        // is held now.
        let checked = if checked.base == current && checked.arrived == changes.hashes() {
            checked
        } else {
            let held = if is_new { None } else { Some(self.loaded(id)?.doc.clone()) };
            changes.checked(id, held).map_err(|e| StoreError::Rejected { doc: id.to_string(), reason: e.0 })?
        };
        let photos = checked.typed.photos();
        let (mut doc, typed) = (checked.result, checked.typed);
        let source = from.to_string();
        let mut batch = Vec::new();
        if is_new {
            batch.push(Write::Doc { id: id.to_string(), kind: id.kind().as_str() });
        }
        // Another session may have stored some of these meanwhile.
        let held = |h: &ChangeHash| Replica::has_change(self, id, h);
        let count = changes.len();
        // What to keep whole, to be passed on as is (`Replica::whole`): a
        // whole document is logged as it arrived, one row, and the kept row
        // points to it (an empty batch); a bundle is logged change by
        // change, so the kept row holds it.
        let (rows, kept) = match (changes.without(held), &whole) {
            (Arrived::Document { doc: arrived, .. }, Some(bytes)) => {
                (vec![crate::store::whole_log_write(id, &arrived, bytes.clone(), count, &source)], Some(Vec::new()))
            }
            (Arrived::Document { doc: arrived, .. }, None) => {
                let rows =
                    arrived.get_changes(&[]).iter().map(|c| crate::store::change_write(id, c, &source)).collect();
                (rows, None)
            }
            (Arrived::Changes(fresh), _) => {
                let rows = fresh.iter().map(|c| crate::store::change_write(id, c, &source)).collect::<Vec<_>>();
                (rows, whole.clone())
            }
        };
        let bytes = rows.iter().map(|w| if let Write::Change { bytes, .. } = w { bytes.len() } else { 0 }).sum();
        let logged = (rows.len(), bytes);
        batch.extend(rows);
        if let Some(kept) = kept.filter(|_| is_new) {
            let evidence: Vec<Evidence> = evidence.iter().map(|(s, c)| Evidence::new(s, c.clone())).collect();
            batch.push(crate::store::whole_write(id, &doc, kept, &evidence, count)?);
        }
        for (signature, credential) in &evidence {
            batch.push(crate::store::evidence_write(id, signature));
            batch.push(Write::AuthorCredential {
                key: signature.actor.key.to_bytes().to_vec(),
                credential: credential.clone(),
            });
        }
        batch.push(crate::store::heads_write(id, &doc));
        if let Some(photos) = photos {
            batch.push(crate::store::photos_write(id, &photos, false));
        }
        let heads = doc.get_heads();
        doc.set_actor(self.proof.actor_id());
        let tail = self.docs.get(id).map(|l| l.tail).unwrap_or_default().grown(logged.0, logged.1);
        self.keep(id, crate::store::Loaded::new(doc, tail));
        Ok(Synced { writes: batch, heads, typed: Some(typed) })
    }

    /// Queues the writes of [`Store::synced`]; the receiver answers when
    /// they are durable.
    pub fn queue(&self, synced: Synced) -> tokio::sync::oneshot::Receiver<Result<(), StoreError>> {
        self.db.persist_later(synced.writes)
    }

    /// The last receipt of the store's receipt log: its sequence number
    /// (0: none) and hash.
    pub fn receipt_tail(&self) -> Result<(i64, Vec<u8>), StoreError> {
        self.db.receipt_tail()
    }

    /// Syncs with HQ at `addr` (default: the address from enrollment).
    pub async fn sync_with_hq(&mut self, addr: Option<SocketAddr>) -> Result<Summary, NetError> {
        self.sync_with(addr, true).await
    }

    /// Syncs with a station relay or another device at `addr`; the peer is
    /// judged by its HQ-signed credential.
    pub async fn sync_with_peer(&mut self, addr: SocketAddr) -> Result<Summary, NetError> {
        self.sync_with(Some(addr), false).await
    }

    async fn sync_with(&mut self, addr: Option<SocketAddr>, hq: bool) -> Result<Summary, NetError> {
        let report = self.sync_reporting(addr, hq, &|_| {}).await?;
        if let Err(error) = &report.photos {
            tracing::warn!(%error, "photo exchange failed");
        }
        Ok(report.summary)
    }

    /// Syncs with HQ and also returns the bytes that crossed the network
    /// both ways (UDP payload as QUIC counted it), for benchmarks.
    pub async fn sync_with_hq_counting(&mut self, addr: Option<SocketAddr>) -> Result<(Summary, u64), NetError> {
        let report = self.sync_reporting(addr, true, &|_| {}).await?;
        Ok((report.summary, report.bytes))
    }

    /// Syncs documents, then photos, with HQ (`to_hq`: its key is pinned;
    /// `addr` defaults to the address from enrollment) or with a station
    /// relay or another device at `addr`. Photo progress goes to `progress`.
    pub async fn sync_reporting(
        &mut self,
        addr: Option<SocketAddr>,
        to_hq: bool,
        progress: &Progress<'_>,
    ) -> Result<SyncReport, NetError> {
        let (enrollment, addr) = self.sync_target(addr)?;
        let key = sync_core::identity::DeviceKey::from_seed(self.key.to_seed());
        let (endpoint, connection) = net::connect(&key, to_hq.then_some(enrollment.hq), addr).await?;
        let counter = connection.clone();
        let (summary, photos) = self.client_session(endpoint, connection, &enrollment, progress).await?;
        let stored = |e: StoreError| NetError::Store(e.to_string());
        if let Ok(report) = &photos {
            self.record_at_hq(report.hq_holds.clone()).map_err(stored)?;
            if to_hq {
                self.record_at_hq(report.peer_holds.clone()).map_err(stored)?;
            }
        }
        if to_hq {
            self.record_held_back(&summary).map_err(stored)?;
        }
        let stats = counter.stats();
        Ok(SyncReport { summary, photos, bytes: stats.udp_tx.bytes + stats.udp_rx.bytes })
    }

    /// This device's enrollment and the address to reach HQ at.
    fn sync_target(
        &self,
        addr: Option<SocketAddr>,
    ) -> Result<(sync_core::credential::Enrollment, SocketAddr), NetError> {
        let enrollment = self
            .enrollment()
            .map_err(|e| NetError::Store(e.to_string()))?
            .ok_or_else(|| NetError::Store("本设备尚未入网，请先执行 field enroll".into()))?;
        let addr = match addr {
            Some(a) => a,
            None => enrollment
                .server
                .parse()
                .map_err(|_| NetError::Setup(format!("总部地址无效：{}", enrollment.server)))?,
        };
        Ok((enrollment, addr))
    }

    /// Runs the connecting side's session on an established connection,
    /// then, if it ended well, the photo exchange.
    async fn client_session(
        &mut self,
        endpoint: quinn::Endpoint,
        connection: quinn::Connection,
        enrollment: &sync_core::credential::Enrollment,
        progress: &Progress<'_>,
    ) -> Result<(Summary, Result<PhotoReport, NetError>), NetError> {
        let peer = net::peer_key(&connection).ok_or_else(|| NetError::Connection("对方没有出示身份证书".into()))?;
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| net::broken(&e))?;
        let revocations = self.revocations().map_err(|e| NetError::Store(e.to_string()))?;
        let mut session = Session::new(SessionConfig {
            credential: enrollment.credential.clone(),
            hq: enrollment.hq,
            revocations,
            peer_key: peer,
        });
        let result = match net::drive(self, &mut session, peer, &mut send, &mut recv).await {
            Ok(summary) => Ok((summary, exchange_photos(self, &session, &connection, true, progress).await)),
            Err(error) => Err(error),
        };
        // The serving side closes the connection once its side is done
        // (`serve`); its close ends ours at once. Closing first instead means
        // waiting for our close notice to be confirmed (three probe timeouts,
        // a quarter second when a busy server inflated the RTT). Both sides
        // already saw each other's end of stream, so nothing is lost if the
        // notice is never confirmed: the waits are bounded.
        if tokio::time::timeout(CLOSE_GRACE, connection.closed()).await.is_err() {
            connection.close(0u32.into(), b"done");
            let _ = tokio::time::timeout(CLOSE_GRACE, endpoint.wait_idle()).await;
        }
        result
    }

    /// Runs station relay mode: serves devices at `listen` and forwards to
    /// HQ every `forward_every` (when HQ cannot be reached, it keeps what it
    /// has and tries again). What happens goes to `report`. Runs until
    /// `stop` resolves.
    pub async fn relay(
        &mut self,
        listen: SocketAddr,
        forward_every: std::time::Duration,
        ready: impl FnOnce(SocketAddr),
        report: impl Fn(RelayEvent),
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), NetError> {
        let enrollment = self
            .enrollment()
            .map_err(|e| NetError::Store(e.to_string()))?
            .ok_or_else(|| NetError::Store("本站尚未入网，请先执行 field enroll".into()))?;
        let key = sync_core::identity::DeviceKey::from_seed(self.key.to_seed());
        let endpoint = net::server_endpoint(&key, listen)?;
        ready(endpoint.local_addr().map_err(|e| NetError::Setup(e.to_string()))?);
        let mut timer = tokio::time::interval(forward_every);
        // After a forward that took long (HQ out of reach for the connect
        // timeout), the next comes an interval later, not all the missed
        // ones at once.
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Connecting to HQ needs no store, so it waits beside the devices:
        // an unreachable HQ never keeps a device waiting.
        let mut forward: Option<std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>> = None;
        let work = async {
            loop {
                tokio::select! {
                    incoming = endpoint.accept() => {
                        let Some(incoming) = incoming else { return Ok(()) };
                        let Ok(connection) = incoming.await else { continue };
                        let revocations = self.revocations().map_err(|e| NetError::Store(e.to_string()))?;
                        let config = SessionConfig {
                            credential: enrollment.credential.clone(),
                            hq: enrollment.hq,
                            revocations,
                            peer_key: enrollment.hq,
                        };
                        let (device, result) = serve(self, connection, config).await;
                        report(RelayEvent::Served { device, result });
                    }
                    _ = timer.tick(), if forward.is_none() => {
                        let (enrollment, addr) = self.sync_target(None)?;
                        let key = sync_core::identity::DeviceKey::from_seed(self.key.to_seed());
                        forward = Some(Box::pin(async move { net::connect(&key, Some(enrollment.hq), addr).await }));
                    }
                    connected = async { forward.as_mut().expect("guarded").await }, if forward.is_some() => {
                        forward = None;
                        match connected {
                            Ok((hq_endpoint, connection)) => {
                                match self.client_session(hq_endpoint, connection, &enrollment, &|_| {}).await {
                                    Ok((summary, photos)) => {
                                        // What HQ holds, to tell the devices it serves.
                                        if let Ok(held) = &photos {
                                            self.record_at_hq(held.peer_holds.clone())
                                                .map_err(|e| NetError::Store(e.to_string()))?;
                                        }
                                        report(RelayEvent::Forwarded { summary, photos })
                                    }
                                    Err(error) => report(RelayEvent::ForwardFailed(error)),
                                }
                            }
                            Err(error) => report(RelayEvent::ForwardFailed(error)),
                        }
                    }
                }
            }
        };
        // Stopping does not wait for a session under way: one cut off is
        // like a lost link (what was stored stays; the rest comes again).
        // A device is told why, before its session (and with it the
        // connection, which would close without a reason) is dropped. A
        // forward's connection to HQ closes as it is dropped, given a moment
        // to say so, so that HQ frees its place at once too.
        let mut work = Box::pin(work);
        let result = tokio::select! {
            result = &mut work => result,
            () = stop => {
                endpoint.close(1u32.into(), "安监站中转已停止".as_bytes());
                Ok(())
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), endpoint.wait_idle()).await;
        drop(work);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        result
    }

    /// The newest HQ revocation list this store holds.
    pub fn revocations(&self) -> Result<Option<SignedRevocations>, StoreError> {
        self.db.meta("revocations")?.map(|b| SignedRevocations::from_bytes(&b).map_err(StoreError::from)).transpose()
    }
}

/// The writes of changes a session verified, applied in memory and not yet
/// queued ([`Store::synced`]).
pub struct Synced {
    writes: Vec<Write>,
    heads: Vec<ChangeHash>,
    typed: Option<validate::Typed>,
}

/// Work kept aside, as HQ reads it to decide.
#[derive(Debug)]
pub struct AsideEntry {
    /// As listed.
    pub listed: crate::Quarantined,
    /// The document.
    pub doc: DocId,
    /// The batch as received.
    pub batch: Vec<u8>,
    /// Its evidence (`None`: kept by an older version, without signatures).
    pub evidence: Option<Vec<Evidence>>,
}

impl Store {
    /// Quarantine row `id`.
    pub fn aside(&self, id: i64) -> Result<Option<AsideEntry>, StoreError> {
        let Some(row) = self.db.quarantine_entry(id)? else {
            return Ok(None);
        };
        let doc = row.listed.doc.parse().map_err(|_| StoreError::Corrupt(format!("隔离记录 #{id} 的文档编号无效")))?;
        let evidence = ciborium::from_reader(row.evidence.as_slice()).ok();
        Ok(Some(AsideEntry { listed: row.listed, doc, batch: row.batch, evidence }))
    }

    /// The documents with quarantine rows no one has decided yet.
    pub fn undecided_docs(&self) -> Result<Vec<DocId>, StoreError> {
        Ok(self.db.undecided_docs()?.into_iter().filter_map(|d| d.parse().ok()).collect())
    }

    /// Records `by`'s decision on quarantine row `id` (if undecided), with
    /// nothing else to write: `rejected`, or `stored` (all of it is held).
    pub fn decide_aside(
        &self,
        id: i64,
        outcome: &'static str,
        by: &str,
        note: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        self.db.persist(vec![decision(id, outcome, by, note, at)])
    }

    /// The undecided quarantine rows of `doc`, each with whether this
    /// store now holds all its changes (the same work arrived later in a
    /// way it could take; a row kept before changes were recorded never is).
    pub fn undecided_aside(&self, doc: &DocId) -> Result<Vec<(i64, bool)>, StoreError> {
        let rows = self.db.undecided(doc.to_string())?;
        let held = |changes: &[u8]| {
            changes
                .chunks_exact(32)
                .all(|h| ChangeHash::try_from(h).is_ok_and(|hash| Replica::has_change(self, doc, &hash)))
        };
        Ok(rows.into_iter().map(|(id, changes)| (id, changes.as_deref().is_some_and(held))).collect())
    }
}

fn decision(id: i64, decision: &'static str, by: &str, note: &str, at: i64) -> Write {
    Write::Decide { id, decision, by: by.to_owned(), note: note.to_owned(), at }
}

impl Synced {
    /// Records, in the same transaction, a decision on quarantine row
    /// `id`: `accepted` (these are its changes) or `stored`.
    pub fn decide(&mut self, id: i64, outcome: &'static str, by: &str, note: &str, at: i64) {
        self.writes.push(decision(id, outcome, by, note, at));
    }

    /// The document's heads once these are written.
    pub fn heads(&self) -> &[ChangeHash] {
        &self.heads
    }

    /// The document as typed records once these are written (as validated
    /// before them); `None` once taken.
    pub fn take_typed(&mut self) -> Option<validate::Typed> {
        self.typed.take()
    }

    /// Writes `receipt` (HQ's, over these heads) in the same transaction,
    /// at `body.seq` of the receipt log.
    pub fn add_receipt(&mut self, body: ReceiptBody, receipt: Receipt) {
        self.writes.extend(receipt_writes(vec![(body, receipt)]));
    }
}

/// What a station relay did, for whoever runs it (`field relay` prints it).
#[derive(Debug)]
pub enum RelayEvent {
    /// A device's session with the relay ended: the device's name (once
    /// its credential was accepted) and how it went.
    Served {
        /// The name on the device's credential.
        device: Option<String>,
        /// The session, then the photo exchange after it.
        result: Result<(Summary, Result<PhotoReport, NetError>), NetError>,
    },
    /// A session with HQ ended: what went to HQ, the receipts that came
    /// back, what could not be forwarded, and the photo exchange.
    Forwarded {
        /// The session.
        summary: Summary,
        /// The photo exchange after it.
        photos: Result<PhotoReport, NetError>,
    },
    /// HQ could not be reached, or the session with it failed: the relay
    /// keeps what it has and tries again.
    ForwardFailed(NetError),
}

/// Runs the accepting side's session on one connection (a relay's, HQ's):
/// the peer is the key its certificate proved (`config.peer_key` is
/// replaced by it). Returns the name on the peer's credential (once
/// accepted), and the session's summary with the photo exchange that
/// followed it.
pub async fn serve(
    local: &mut (impl Local + PhotoSide),
    connection: quinn::Connection,
    mut config: SessionConfig,
) -> (Option<String>, Result<(Summary, Result<PhotoReport, NetError>), NetError>) {
    let Some(peer) = net::peer_key(&connection) else {
        return (None, Err(NetError::Connection("对方没有出示设备证书".into())));
    };
    let (mut send, mut recv) = match connection.accept_bi().await {
        Ok(streams) => streams,
        Err(e) => return (None, Err(net::broken(&e))),
    };
    config.peer_key = peer;
    let mut session = Session::new(config);
    let result = match net::drive(local, &mut session, peer, &mut send, &mut recv).await {
        Ok(summary) => {
            let photos = exchange_photos(local, &session, &connection, false, &|_| {}).await;
            match &photos {
                Ok(report) => tracing::info!(?report, "photos exchanged"),
                Err(error) => tracing::warn!(%error, "photo exchange failed"),
            }
            Ok((summary, photos))
        }
        Err(error) => Err(error),
    };
    connection.close(0u32.into(), b"done");
    (session.peer_credential().map(|c| c.name.clone()), result)
}

/// The photo exchange after `session` ended well, scoped by the peer's
/// credential from its hello.
async fn exchange_photos(
    side: &mut impl PhotoSide,
    session: &Session,
    connection: &quinn::Connection,
    opens: bool,
    progress: &Progress<'_>,
) -> Result<PhotoReport, NetError> {
    let peer = session
        .peer_credential()
        .ok_or_else(|| sync_core::sync::photo::PhotoError::Protocol("对方尚未出示凭证".into()))?;
    photos::exchange(side, connection, opens, peer, progress).await
}

/// A document the last sync with HQ held back, and why: `field status`
/// names it until a sync sends it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeldBack {
    /// The document.
    pub doc: String,
    /// Whether HQ kept it aside for review (`true`), or this device could
    /// not vouch for one of its authors as HQ will judge them (`false`).
    pub quarantined: bool,
    /// Why (Chinese), naming the author where one is the cause.
    pub reason: String,
}

impl Store {
    fn record_held_back(&self, summary: &Summary) -> Result<(), StoreError> {
        let withheld = summary.withheld.iter().map(|(doc, reason)| (doc, reason, false));
        let quarantined = summary.quarantined.iter().map(|(doc, reason)| (doc, reason, true));
        let held: Vec<HeldBack> = withheld
            .chain(quarantined)
            .map(|(doc, reason, quarantined)| HeldBack { doc: doc.to_string(), quarantined, reason: reason.clone() })
            .collect();
        let value = serde_json::to_vec(&held).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.db.persist(vec![Write::Meta { key: "held_back", value }])
    }

    /// What the last sync with HQ held back.
    pub fn held_back(&self) -> Result<Vec<HeldBack>, StoreError> {
        Ok(self.db.meta("held_back")?.and_then(|v| serde_json::from_slice(&v).ok()).unwrap_or_default())
    }

    /// Where this device's own work stands with HQ.
    pub fn standing(&mut self) -> Result<Standing, StoreError> {
        Ok(Standing {
            enrolled: self.enrollment()?.is_some(),
            unreceipted: self.unreceipted()?.iter().map(|(_, n)| n).sum(),
            owed: self.photos_owed()?,
            held: self.held_back()?,
        })
    }
}

/// Where a device's own work stands with HQ: what "safe to leave" rests on.
#[derive(Debug)]
pub struct Standing {
    /// Whether the device holds an HQ credential at all.
    pub enrolled: bool,
    /// Its own changes no HQ receipt covers yet.
    pub unreceipted: usize,
    /// Its own photos HQ is not known to hold.
    pub owed: photos::PhotosOwed,
    /// Documents the last sync with HQ held back.
    pub held: Vec<HeldBack>,
}

impl Standing {
    /// "Safe to leave": HQ holds all of this device's work — every own
    /// change has HQ's receipt, HQ is known to hold every photo of it, and
    /// nothing was held back.
    pub fn safe_to_leave(&self) -> bool {
        self.enrolled && self.unreceipted == 0 && self.owed.photos == 0 && self.held.is_empty()
    }
}

/// What `sync_reporting` did: the document session, then the photo
/// exchange, which fails on its own (the documents are synced either way).
#[derive(Debug)]
pub struct SyncReport {
    /// The document session.
    pub summary: Summary,
    /// The photo exchange that followed it.
    pub photos: Result<PhotoReport, NetError>,
    /// Bytes on the wire, both ways (UDP payload as QUIC counted it).
    pub bytes: u64,
}
