//! Deterministic simulation of the sync protocol: HQ, one station relay and
//! three inspectors' devices, all running the real sans-IO `Session` over a
//! simulated network with a seeded RNG and no sockets.
//!
//! Each schedule: random offline edits, then random sessions between random
//! pairs (device↔HQ, device↔relay, relay↔HQ, device↔device) whose messages
//! are dropped, duplicated, reordered or cut off, with crashes between
//! receiving changes and storing them. Then every node syncs cleanly.
//! Checked: every receipt any node holds names changes HQ has durably
//! stored (at every step, not only at the end); all replicas converge; each
//! device holds receipts covering all of its own changes.
//!
//! `SIM_SEEDS=N` runs N schedules (default 1,000) from seed `SIM_FROM`
//! (default 0); `SIM_SEED=S` runs one. A failure prints its seed.
//! `scripts/simulate` runs many more than CI does.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_bytes::ByteBuf;
use sync_core::automerge::{Automerge, ChangeHash};
use sync_core::codes::AccidentType;
use sync_core::credential::{Credential, Role, Scope, SignedCredential};
use sync_core::doc::{self, campaign as campaign_doc, dossier};
use sync_core::identity::{ActorProof, DeviceKey, DevicePublicKey, HeadSignature, StoreNonce};
use sync_core::ids::{CreditCode, DocId, DocKind, DocTag, EntityId};
use sync_core::model::{CampaignKind, Domain, Enterprise, Hazard, HazardKind, HazardLevel, Location, Rectification};
use sync_core::sync::batch::{self, Arrived};
use sync_core::sync::message::{Evidence, Message, Receipt, ReceiptBody};
use sync_core::sync::replica::{CatalogEntry, Outgoing, Replica, Whole};
use sync_core::sync::session::{self, Effect, Input, Session, SessionConfig, open_receipt};

const HQ: usize = 0;
const RELAY: usize = 1;
const NOW: i64 = 1_790_000_000_000;
const CODES: [&str; 2] = ["91640200MA76XYW123", "91640200MA76XYW124"];

/// SplitMix64: small, seedable, good enough to drive schedules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

struct Node {
    key: DeviceKey,
    proof: ActorProof,
    credential: SignedCredential,
    docs: BTreeMap<DocId, Automerge>,
    evidence: HashMap<(DocId, ChangeHash), (HeadSignature, Vec<u8>)>,
    checkpoints: HashMap<([u8; 32], DocId), Vec<ChangeHash>>,
    receipts: BTreeMap<DocId, Vec<(ReceiptBody, Receipt)>>,
    /// Documents that arrived whole, kept as they came with the heads they
    /// had then: passed on as is while the heads stand (`Replica::whole`).
    wholes: BTreeMap<DocId, (Vec<ChangeHash>, Whole)>,
    /// HQ only: the receipt log's last hash and length.
    log: (Vec<u8>, u64),
}

impl Node {
    fn new(hq: &DeviceKey, seed: u8, role: Role) -> Self {
        let key = DeviceKey::from_seed([seed; 32]);
        let proof = ActorProof { key: key.public(), nonce: StoreNonce([seed; 16]) };
        let credential = SignedCredential::issue(
            hq,
            Credential {
                serial: u64::from(seed),
                device: ByteBuf::from(key.public().to_bytes().to_vec()),
                name: format!("节点{seed}"),
                role,
                scope: Scope::default(),
                not_before: 0,
                not_after: i64::MAX,
            },
        );
        Node {
            key,
            proof,
            credential,
            docs: BTreeMap::new(),
            evidence: HashMap::new(),
            checkpoints: HashMap::new(),
            receipts: BTreeMap::new(),
            wholes: BTreeMap::new(),
            log: (vec![0; 32], 0),
        }
    }

    fn edit(
        &mut self,
        id: &DocId,
        f: impl FnOnce(&mut sync_core::automerge::transaction::Transaction<'_>) -> Result<(), doc::ModelError>,
    ) {
        let am = self.docs.entry(id.clone()).or_default();
        am.set_actor(self.proof.actor_id());
        if let Ok(done) = doc::edit(am, NOW, f)
            && let Some(hash) = done.hash
        {
            let sig = self.key.sign_head(id, &self.proof, hash);
            self.evidence.insert((id.clone(), hash), (sig, self.credential.to_bytes()));
        }
    }

    fn open_dossier(&mut self, campaign: &DocId, code: &str) -> DocId {
        let code: CreditCode = code.parse().unwrap();
        let id = DocId::dossier(campaign, &code);
        if !self.docs.contains_key(&id) {
            self.docs.insert(id.clone(), dossier::create(campaign, &code).unwrap());
        }
        id
    }

    /// Stores what a session persists; `batch` (every change in it new)
    /// is kept whole if nothing of the document was held before.
    fn apply(
        &mut self,
        doc: &DocId,
        changes: Arrived,
        evidence: Vec<(HeadSignature, Vec<u8>)>,
        batch: Option<Vec<u8>>,
    ) {
        let held = self.docs.contains_key(doc);
        let count = changes.len();
        let applied = changes.applied_to(self.docs.get(doc).cloned()).unwrap();
        if let Some(batch) = batch.filter(|_| !held) {
            let kept = evidence.iter().map(|(s, c)| Evidence::new(s, c.clone())).collect();
            self.wholes.insert(doc.clone(), (applied.get_heads(), Whole { batch, evidence: kept, changes: count }));
        }
        self.docs.insert(doc.clone(), applied);
        for (sig, credential) in evidence {
            self.evidence.insert((doc.clone(), sig.head), (sig, credential));
        }
    }

    /// HQ: append a receipt to the hash-chained log and sign it.
    fn receipt(&mut self, doc: &DocId, device: &DevicePublicKey) -> Receipt {
        let heads = self.docs[doc].get_heads();
        let body = ReceiptBody {
            doc: doc.to_string(),
            heads: heads.iter().map(|h| ByteBuf::from(h.0.to_vec())).collect(),
            device: ByteBuf::from(device.to_bytes().to_vec()),
            server_time: NOW,
            seq: self.log.1 + 1,
            prev: ByteBuf::from(self.log.0.clone()),
        };
        let receipt = session::sign_receipt(&self.key, &body);
        self.log = (sync_core::ids::sha256_hex(&receipt.body).into_bytes(), body.seq);
        self.keep_receipt(doc.clone(), body, receipt.clone());
        receipt
    }

    /// Keeps the newest receipt per document: HQ's heads only grow, so it
    /// covers everything older ones did.
    fn keep_receipt(&mut self, doc: DocId, body: ReceiptBody, receipt: Receipt) {
        let held = self.receipts.entry(doc).or_default();
        if held.first().is_none_or(|(b, _)| b.seq < body.seq) {
            *held = vec![(body, receipt)];
        }
    }
}

fn tag_of(id: &DocId, am: &Automerge) -> Result<DocTag, String> {
    match id.kind() {
        DocKind::Campaign => {
            campaign_doc::read(am).map_err(|e| e.to_string())?;
            Ok(DocTag { campaign: id.clone(), enterprise: None })
        }
        DocKind::EnterpriseDossier => {
            let d = dossier::read(am).map_err(|e| e.to_string())?;
            Ok(DocTag { campaign: d.campaign_id, enterprise: d.enterprise.parse().ok() })
        }
        DocKind::Briefing => {
            let b = doc::briefing::read(am).map_err(|e| e.to_string())?;
            Ok(DocTag { campaign: b.campaign_id, enterprise: None })
        }
        DocKind::Checklist => Err("清单不经同步".into()),
    }
}

impl Replica for Node {
    fn catalog(&self) -> Vec<CatalogEntry> {
        self.docs
            .iter()
            .filter_map(|(id, am)| {
                Some(CatalogEntry { id: id.clone(), tag: tag_of(id, am).ok()?, heads: am.get_heads() })
            })
            .collect()
    }
    fn has_change(&self, doc: &DocId, hash: &ChangeHash) -> bool {
        self.docs.get(doc).is_some_and(|am| am.get_change_meta_by_hash(hash).is_some())
    }
    fn changes_since(&self, doc: &DocId, have: &[ChangeHash]) -> Vec<Outgoing> {
        self.docs
            .get(doc)
            .map(|am| am.get_changes_meta(have).into_iter().map(Outgoing::from).collect())
            .unwrap_or_default()
    }
    fn batch(&self, doc: &DocId, hashes: &[ChangeHash], whole: bool) -> Option<Vec<u8>> {
        let am = self.docs.get(doc)?;
        if whole && let Ok(encoded) = batch::encode_document(am) {
            return Some(encoded);
        }
        Some(am.bundle(hashes.iter().copied()).ok()?.bytes().to_vec())
    }
    fn evidence(&self, doc: &DocId, head: &ChangeHash) -> Option<(HeadSignature, Vec<u8>)> {
        self.evidence.get(&(doc.clone(), *head)).cloned()
    }
    fn checkpoint(&self, peer: &DevicePublicKey, doc: &DocId) -> Vec<ChangeHash> {
        self.checkpoints.get(&(peer.to_bytes(), doc.clone())).cloned().unwrap_or_default()
    }
    fn held_copy(&self, doc: &DocId) -> Option<Automerge> {
        self.docs.get(doc).cloned()
    }
    fn receipts(&self, doc: &DocId) -> Vec<Receipt> {
        self.receipts.get(doc).map(|r| r.iter().map(|(_, r)| r.clone()).collect()).unwrap_or_default()
    }
    fn whole(&self, doc: &DocId) -> Option<Whole> {
        let (heads, whole) = self.wholes.get(doc)?;
        (*heads == self.docs.get(doc)?.get_heads()).then(|| whole.clone())
    }
}

struct World {
    hq_key: DeviceKey,
    nodes: Vec<Node>,
    campaign: DocId,
    rng: Rng,
}

impl World {
    fn new(seed: u64) -> Self {
        let hq_key = DeviceKey::from_seed([0; 32]);
        let mut nodes = vec![Node::new(&hq_key, 0, Role::Hq), Node::new(&hq_key, 1, Role::Station)];
        for d in 0..3 {
            nodes.push(Node::new(&hq_key, 2 + d, Role::Inspector));
        }
        let campaign = DocId::new_campaign([7; 16]);
        let hq = &mut nodes[HQ];
        hq.edit(&campaign, |tx| {
            campaign_doc::create(
                tx,
                &campaign,
                "联合检查",
                CampaignKind::ConstructionJointInspection,
                "2026-11-24",
                "2026-11-25",
            )
        });
        for code in CODES {
            let code: CreditCode = code.parse().unwrap();
            let enterprise = Enterprise {
                name: format!("企业{code}"),
                unified_social_credit_code: code.clone(),
                domain: Domain::Construction,
                project: String::new(),
                address: String::new(),
                dossier_id: DocId::dossier(&campaign, &code),
            };
            hq.edit(&campaign, |tx| campaign_doc::add_enterprise(tx, &campaign, &enterprise));
        }
        World { hq_key, nodes, campaign, rng: Rng(seed) }
    }

    fn config(&self, me: usize, peer: usize) -> SessionConfig {
        SessionConfig {
            credential: self.nodes[me].credential.clone(),
            hq: self.hq_key.public(),
            revocations: None,
            peer_key: self.nodes[peer].key.public(),
        }
    }

    /// A random offline edit on a device.
    fn edit(&mut self, device: usize, n: usize) {
        let campaign = self.campaign.clone();
        let code = CODES[self.rng.below(2)];
        let node = &mut self.nodes[device];
        if !node.docs.contains_key(&campaign) {
            return; // has not received the campaign yet
        }
        let id = node.open_dossier(&campaign, code);
        let existing = dossier::record_ids(&node.docs[&id], "hazards").unwrap_or_default();
        if existing.is_empty() || n.is_multiple_of(3) {
            let hazard = hazard(&format!("设备{device}的第{n}条隐患"));
            let hid = EntityId::new(n as u64 + 1, (device as u128) << 64 | n as u128);
            node.edit(&id, |tx| dossier::add_hazard(tx, &hid, &hazard));
        } else {
            let hid: EntityId = existing[n % existing.len()].parse().unwrap();
            node.edit(&id, |tx| {
                dossier::modify_hazard(tx, &hid, |h| {
                    h.description = format!("设备{device}修改{n}");
                    Ok(())
                })
            });
        }
    }

    /// Runs one session between `a` and `b`. With `faults`, messages may be
    /// dropped, duplicated, reordered or cut, and a node may crash between
    /// receiving changes and storing them.
    fn session(&mut self, a: usize, b: usize, faults: bool) -> Result<bool, String> {
        let mut sessions = [Session::new(self.config(a, b)), Session::new(self.config(b, a))];
        let ends = [a, b];
        let mut queues: [VecDeque<Message>; 2] = [VecDeque::new(), VecDeque::new()];
        let mut finished = [false, false];
        let mut inputs: Vec<(usize, Input)> = vec![(0, Input::Start), (1, Input::Start)];
        for _ in 0..10_000 {
            for (side, input) in std::mem::take(&mut inputs) {
                let node = ends[side];
                let effects = sessions[side].handle(NOW, &self.nodes[node], input);
                for effect in effects {
                    match effect {
                        Effect::Send(m) => queues[side].push_back(m),
                        Effect::Persist { token, doc, changes, evidence, batch, .. } => {
                            if faults && self.rng.chance(3) {
                                return Ok(false); // crashed before the write was durable
                            }
                            self.nodes[node].apply(&doc, changes, evidence, batch);
                            let receipt = (node == HQ).then(|| {
                                let peer = self.nodes[ends[1 - side]].key.public();
                                self.nodes[HQ].receipt(&doc, &peer)
                            });
                            inputs.push((side, Input::Persisted { token, receipt }));
                        }
                        Effect::StoreReceipts(receipts) => {
                            for (body, receipt) in receipts {
                                let doc: DocId = body.doc.parse().map_err(|e| format!("{e}"))?;
                                self.nodes[node].keep_receipt(doc, body, receipt);
                            }
                        }
                        Effect::StoreRevocations(_) => {}
                        Effect::Load { doc, .. } => inputs.push((side, Input::Loaded(doc))),
                        Effect::Quarantine { .. } => {}
                        Effect::Finished(summary) => {
                            let peer = self.nodes[ends[1 - side]].key.public().to_bytes();
                            for (doc, heads) in summary.checkpoints {
                                self.nodes[node].checkpoints.insert((peer, doc), heads);
                            }
                            finished[side] = true;
                        }
                        Effect::Close(error) => {
                            if !faults {
                                return Err(format!("clean session {a}↔{b} failed: {error}"));
                            }
                            return Ok(false);
                        }
                    }
                }
            }
            if finished == [true, true] {
                return Ok(true);
            }
            // Deliver one message, perhaps badly.
            let from = match (queues[0].is_empty(), queues[1].is_empty()) {
                (true, true) if inputs.is_empty() && faults => return Ok(false), // stalled: a lost message
                (true, true) if inputs.is_empty() => return Err(format!("clean session {a}↔{b} stalled")),
                (true, true) => continue,
                (false, true) => 0,
                (true, false) => 1,
                (false, false) => self.rng.below(2),
            };
            let Some(message) = queues[from].pop_front() else { continue };
            if faults {
                match self.rng.below(100) {
                    0..=2 => continue,                                                 // dropped
                    3..=4 => inputs.push((1 - from, Input::Message(message.clone()))), // duplicated
                    5..=6 if !queues[from].is_empty() => {
                        // reordered: the next one overtakes it
                        let next = queues[from].pop_front().unwrap();
                        queues[from].push_front(message);
                        inputs.push((1 - from, Input::Message(next)));
                        continue;
                    }
                    7 => return Ok(false), // connection cut
                    _ => {}
                }
            }
            inputs.push((1 - from, Input::Message(message)));
        }
        Err(format!("session {a}↔{b} did not end"))
    }

    /// Every receipt anyone holds names changes HQ has stored.
    fn check_receipts(&self) -> Result<(), String> {
        for (n, node) in self.nodes.iter().enumerate() {
            for (doc, receipts) in &node.receipts {
                for (body, receipt) in receipts {
                    open_receipt(receipt, &self.hq_key.public()).map_err(|e| format!("node {n}: {e}"))?;
                    for head in &body.heads {
                        let hash = ChangeHash(head.as_slice().try_into().map_err(|_| "bad head".to_string())?);
                        if !self.nodes[HQ].has_change(doc, &hash) {
                            return Err(format!("node {n} holds a receipt for {doc} naming a change HQ lacks"));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn run(&mut self) -> Result<(), String> {
        let n = self.nodes.len();
        // Day 1: devices get the campaign (some via the relay), edit offline,
        // and sync in random pairs over a faulty network.
        for step in 0..40 {
            match self.rng.below(3) {
                0 => {
                    let device = 2 + self.rng.below(n - 2);
                    self.edit(device, step);
                }
                _ => {
                    let a = self.rng.below(n);
                    let b = self.rng.below(n);
                    if a != b {
                        self.session(a, b, true)?;
                        self.check_receipts()?;
                    }
                }
            }
        }
        // Day 2 evening: everyone reaches HQ, directly or through the relay.
        for _ in 0..2 {
            for device in 2..n {
                self.session(device, RELAY, false)?;
            }
            self.session(RELAY, HQ, false)?;
            for device in 2..n {
                self.session(device, HQ, false)?;
            }
        }
        self.check_receipts()?;
        let hq = &self.nodes[HQ];
        for (i, node) in self.nodes.iter().enumerate() {
            for (doc, am) in &node.docs {
                let theirs = am.get_heads();
                let ours = hq.docs.get(doc).map(Automerge::get_heads).unwrap_or_default();
                if theirs != ours {
                    return Err(format!("node {i} differs from HQ on {doc}"));
                }
            }
            if i >= 2 {
                for (doc, am) in &node.docs {
                    let mine = am.get_changes(&[]).into_iter().filter(|c| *c.actor_id() == node.proof.actor_id());
                    for change in mine {
                        let covered = node.receipts.get(doc).into_iter().flatten().any(|(body, _)| {
                            let heads: Vec<ChangeHash> = body
                                .heads
                                .iter()
                                .filter_map(|h| h.as_slice().try_into().ok().map(ChangeHash))
                                .collect();
                            hq.docs[doc].get_changes(&heads).iter().all(|c| c.hash() != change.hash())
                        });
                        if !covered {
                            return Err(format!(
                                "device {i} has no receipt covering change {} of {doc}",
                                change.hash()
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn hazard(title: &str) -> Hazard {
    Hazard {
        title: title.into(),
        description: String::new(),
        hazard_kind: HazardKind::UnsafeCondition,
        accident_type: AccidentType::gb6441_1986("09").unwrap(),
        level: HazardLevel::General,
        major_hazard_criterion: None,
        location: Location { text: String::new(), gps: None },
        legal_basis: String::new(),
        photos: BTreeMap::new(),
        inspector: String::new(),
        found_at: "2026-11-24T01:00:00Z".into(),
        checklist_item: None,
        deleted: false,
        rectification: Rectification::default(),
    }
}

#[test]
fn devices_relay_and_hq_converge_under_faults() {
    let var = |name| std::env::var(name).ok().map(|v: String| v.parse::<u64>().expect(name));
    let seeds = match (var("SIM_SEED"), var("SIM_SEEDS"), var("SIM_FROM")) {
        (Some(seed), ..) => seed..seed + 1,
        (None, count, from) => {
            let from = from.unwrap_or(0);
            from..from + count.unwrap_or(1_000)
        }
    };
    for seed in seeds.clone() {
        if let Err(message) = World::new(seed).run() {
            panic!(
                "simulation failed with seed {seed} (rerun: SIM_SEED={seed} cargo test --test simulation): {message}"
            );
        }
    }
    println!("{} schedules converged (seeds {}..{})", seeds.end - seeds.start, seeds.start, seeds.end);
}
