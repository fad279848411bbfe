//! Deterministic simulation of the sync protocol: HQ, one station relay and
//! three inspectors' devices, all running the real sans-IO `Session` over a
//! simulated network with a seeded RNG and no sockets.
//!
//! Each schedule: random offline edits, then random sessions between random
//! pairs (device↔HQ, device↔relay, relay↔HQ, device↔device) whose messages
//! are lost with their connection, duplicated or reordered, with crashes
//! between receiving changes and storing them. Then every node syncs cleanly.
//! Schedules also draw, each at random, the kinds of trouble the field
//! brings: HQ revoking an inspector's credential mid-day (the list spreads
//! by hellos; the revoked device goes on working and syncing with whoever
//! still talks to it); work handed over on USB sticks without its authors'
//! credentials, some of it by a device HQ never enrolled; and the relay
//! forwarding to HQ in the same moments as authors sync with HQ directly
//! (sessions interleaved message by message).
//! Checked: every receipt any node holds names changes HQ has durably
//! stored (at every step, not only at the end); all replicas converge with
//! HQ, except for work HQ must refuse (a revoked author's, an author HQ never
//! enrolled, and what depends on it) — nothing else is held back; each
//! enrolled device holds receipts covering all of its own work HQ takes.
//!
//! `SIM_SEEDS=N` runs N schedules (default 1,000) from seed `SIM_FROM`
//! (default 0); `SIM_SEED=S` runs one. A failure prints its seed.
//! `scripts/simulate` runs many more than CI does.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde_bytes::ByteBuf;
use sync_core::automerge::{ActorId, Automerge, ChangeHash};
use sync_core::codes::AccidentType;
use sync_core::credential::{Credential, RevocationList, Role, Scope, SignedCredential, SignedRevocations};
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
    /// HQ only: the register of credentials it issued, by device key.
    register: HashMap<[u8; 32], Vec<u8>>,
    /// The newest revocation list this node holds.
    revocations: Option<SignedRevocations>,
    /// When each change arrived here.
    received: HashMap<(DocId, ChangeHash), i64>,
    /// Whether HQ enrolled this device: an unenrolled one signs its work
    /// but holds no credential, and never syncs (it hands work on by USB).
    enrolled: bool,
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
            register: HashMap::new(),
            revocations: None,
            received: HashMap::new(),
            enrolled: true,
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
            let credential = if self.enrolled { self.credential.to_bytes() } else { Vec::new() };
            self.evidence.insert((id.clone(), hash), (sig, credential));
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
        now: i64,
        doc: &DocId,
        changes: Arrived,
        evidence: Vec<(HeadSignature, Vec<u8>)>,
        batch: Option<Vec<u8>>,
    ) {
        let held = self.docs.contains_key(doc);
        let count = changes.len();
        let before = self.docs.get(doc).map(Automerge::get_heads).unwrap_or_default();
        let applied = changes.applied_to(self.docs.get(doc).cloned()).unwrap();
        for change in applied.get_changes_meta(&before) {
            self.received.entry((doc.clone(), change.hash)).or_insert(now);
        }
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
    fn received_at(&self, doc: &DocId, head: &ChangeHash) -> Option<i64> {
        self.received.get(&(doc.clone(), *head)).copied()
    }
    fn author_credential(&self, author: &DevicePublicKey) -> Option<Vec<u8>> {
        self.register.get(&author.to_bytes()).cloned()
    }
}

/// The trouble one schedule brings, drawn from its seed.
#[derive(Debug)]
struct Trouble {
    /// The step at which HQ revokes the first inspector's credential.
    revoke_at: Option<usize>,
    /// Work goes round on USB sticks, without its authors' credentials.
    handoffs: bool,
    /// The last device was never enrolled (HQ's register lacks it): its work
    /// only travels by USB stick. Only with `handoffs`.
    unenrolled: bool,
    /// The relay forwards to HQ while a device syncs with HQ directly.
    concurrent: bool,
}

/// What the schedules exercised, summed over a run.
#[derive(Default)]
struct Seen {
    revoked: usize,
    handoffs: usize,
    unenrolled: usize,
    concurrent: usize,
    quarantined: usize,
    withheld: usize,
    refused: usize,
}

/// The first inspector: the one a revocation names.
const REVOKED: usize = 2;

struct World {
    hq_key: DeviceKey,
    nodes: Vec<Node>,
    campaign: DocId,
    rng: Rng,
    trouble: Trouble,
    /// HQ's clock: a minute a step.
    now: i64,
    /// When the revocation took effect, once it has.
    revoked_since: Option<i64>,
    seen: Seen,
}

/// One session under way: its two ends, each end's session, the messages
/// in flight each way, and inputs waiting to be handled.
struct Live {
    ends: [usize; 2],
    sessions: [Session; 2],
    queues: [VecDeque<Message>; 2],
    finished: [bool; 2],
    inputs: Vec<(usize, Input)>,
}

impl World {
    fn new(seed: u64) -> Self {
        let hq_key = DeviceKey::from_seed([0; 32]);
        let mut nodes = vec![Node::new(&hq_key, 0, Role::Hq), Node::new(&hq_key, 1, Role::Station)];
        for d in 0..3 {
            nodes.push(Node::new(&hq_key, 2 + d, Role::Inspector));
        }
        let mut rng = Rng(seed);
        let handoffs = rng.chance(50);
        let trouble = Trouble {
            revoke_at: rng.chance(50).then(|| rng.below(40)),
            handoffs,
            unenrolled: handoffs && rng.chance(50),
            concurrent: rng.chance(50),
        };
        let last = nodes.len() - 1;
        nodes[last].enrolled = !trouble.unenrolled;
        let register =
            nodes.iter().filter(|n| n.enrolled).map(|n| (n.key.public().to_bytes(), n.credential.to_bytes())).collect();
        nodes[HQ].register = register;
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
        World { hq_key, nodes, campaign, rng, trouble, now: NOW, revoked_since: None, seen: Seen::default() }
    }

    fn config(&self, me: usize, peer: usize) -> SessionConfig {
        SessionConfig {
            credential: self.nodes[me].credential.clone(),
            hq: self.hq_key.public(),
            revocations: self.nodes[me].revocations.clone(),
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

    /// HQ revokes the first inspector's credential, effective now.
    fn revoke(&mut self) {
        let serial = self.nodes[REVOKED].credential.credential().serial;
        let list = RevocationList {
            version: 1,
            issued_at: self.now,
            serials: [serial].into(),
            serials_at: [(serial, self.now)].into(),
            ..RevocationList::default()
        };
        self.nodes[HQ].revocations = Some(SignedRevocations::issue(&self.hq_key, list));
        self.revoked_since = Some(self.now);
        self.seen.revoked += 1;
    }

    /// Everything `from` holds copied to `to` by USB stick: the documents
    /// merged, each signature carried without its author's credential (an
    /// older export, or an author not yet enrolled), so `to` cannot vouch
    /// for that work to anyone but HQ.
    fn handoff(&mut self, from: usize, to: usize) {
        let (docs, evidence) = (self.nodes[from].docs.clone(), self.nodes[from].evidence.clone());
        let now = self.now;
        let node = &mut self.nodes[to];
        for (id, theirs) in docs {
            let before = node.docs.get(&id).map(Automerge::get_heads).unwrap_or_default();
            let mine = node.docs.entry(id.clone()).or_default();
            mine.merge(&mut theirs.clone()).unwrap();
            for change in mine.get_changes_meta(&before) {
                node.received.entry((id.clone(), change.hash)).or_insert(now);
            }
        }
        for (at, (sig, _)) in evidence {
            node.evidence.entry(at).or_insert((sig, Vec::new()));
        }
        self.seen.handoffs += 1;
    }

    fn session(&mut self, a: usize, b: usize, faults: bool) -> Result<bool, String> {
        Ok(self.sessions(&[(a, b)], faults)?[0])
    }

    /// Runs sessions between the given pairs at once, their messages
    /// interleaved at random. With `faults`, messages may be lost,
    /// duplicated, reordered or cut, and a node may crash between receiving
    /// changes and storing them. Whether each ended cleanly.
    fn sessions(&mut self, pairs: &[(usize, usize)], faults: bool) -> Result<Vec<bool>, String> {
        let mut live: Vec<Live> = pairs
            .iter()
            .map(|&(a, b)| Live {
                ends: [a, b],
                sessions: [Session::new(self.config(a, b)), Session::new(self.config(b, a))],
                queues: [VecDeque::new(), VecDeque::new()],
                finished: [false, false],
                inputs: vec![(0, Input::Start), (1, Input::Start)],
            })
            .collect();
        let mut over: Vec<Option<bool>> = vec![None; pairs.len()];
        for _ in 0..10_000 * pairs.len() {
            let open: Vec<usize> = (0..live.len()).filter(|&i| over[i].is_none()).collect();
            if open.is_empty() {
                break;
            }
            let i = open[self.rng.below(open.len())];
            over[i] = self.step(&mut live[i], faults)?;
        }
        over.into_iter().zip(pairs).map(|(o, (a, b))| o.ok_or_else(|| format!("session {a}↔{b} did not end"))).collect()
    }

    /// Handles one session's waiting inputs, then delivers one of its
    /// messages, perhaps badly. `Some` once it has ended.
    fn step(&mut self, live: &mut Live, faults: bool) -> Result<Option<bool>, String> {
        let [a, b] = live.ends;
        for (side, input) in std::mem::take(&mut live.inputs) {
            let node = live.ends[side];
            let effects = live.sessions[side].handle(self.now, &self.nodes[node], input);
            for effect in effects {
                match effect {
                    Effect::Send(m) => live.queues[side].push_back(m),
                    Effect::Persist { token, doc, changes, evidence, batch, .. } => {
                        if faults && self.rng.chance(3) {
                            return Ok(Some(false)); // crashed before the write was durable
                        }
                        self.nodes[node].apply(self.now, &doc, changes, evidence, batch);
                        let receipt = (node == HQ).then(|| {
                            let peer = self.nodes[live.ends[1 - side]].key.public();
                            self.nodes[HQ].receipt(&doc, &peer)
                        });
                        live.inputs.push((side, Input::Persisted { token, receipt }));
                    }
                    Effect::StoreReceipts(receipts) => {
                        for (body, receipt) in receipts {
                            let doc: DocId = body.doc.parse().map_err(|e| format!("{e}"))?;
                            self.nodes[node].keep_receipt(doc, body, receipt);
                        }
                    }
                    Effect::StoreRevocations(list) => self.nodes[node].revocations = Some(list),
                    Effect::Load { doc, .. } => live.inputs.push((side, Input::Loaded(doc))),
                    Effect::Quarantine(_) => self.seen.quarantined += 1,
                    Effect::Finished(summary) => {
                        self.seen.withheld += summary.withheld.len();
                        let peer = self.nodes[live.ends[1 - side]].key.public().to_bytes();
                        for (doc, heads) in summary.checkpoints {
                            self.nodes[node].checkpoints.insert((peer, doc), heads);
                        }
                        live.finished[side] = true;
                    }
                    Effect::Close(error) => {
                        if !faults {
                            return Err(format!("clean session {a}↔{b} failed: {error}"));
                        }
                        self.seen.refused += usize::from(self.revoked_since.is_some() && live.ends.contains(&REVOKED));
                        return Ok(Some(false));
                    }
                }
            }
        }
        if live.finished == [true, true] {
            return Ok(Some(true));
        }
        let from = match (live.queues[0].is_empty(), live.queues[1].is_empty()) {
            (true, true) if live.inputs.is_empty() && faults => return Ok(Some(false)), // stalled: a lost message
            (true, true) if live.inputs.is_empty() => return Err(format!("clean session {a}↔{b} stalled")),
            (true, true) => return Ok(None),
            (false, true) => 0,
            (true, false) => 1,
            (false, false) => self.rng.below(2),
        };
        let Some(message) = live.queues[from].pop_front() else { return Ok(None) };
        if faults {
            match self.rng.below(100) {
                // Lost: QUIC retransmits, so a message is lost only with
                // its connection.
                0..=2 => return Ok(Some(false)),
                3..=4 => live.inputs.push((1 - from, Input::Message(message.clone()))), // duplicated
                // Reordered: the next one overtakes it. Never `Done`, the
                // last thing on the stream: QUIC delivers a stream's data
                // in order, so a peer sees every verdict before `Done`.
                5..=6 if live.queues[from].front().is_some_and(|next| !matches!(next, Message::Done { .. })) => {
                    let next = live.queues[from].pop_front().unwrap();
                    live.queues[from].push_front(message);
                    live.inputs.push((1 - from, Input::Message(next)));
                    return Ok(None);
                }
                7 => return Ok(Some(false)), // connection cut
                _ => {}
            }
        }
        live.inputs.push((1 - from, Input::Message(message)));
        Ok(None)
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

    /// The devices that sync with HQ at the end: enrolled, not revoked.
    fn in_good_standing(&self) -> Vec<usize> {
        (2..self.nodes.len())
            .filter(|&d| self.nodes[d].enrolled && !(self.revoked_since.is_some() && d == REVOKED))
            .collect()
    }

    /// Authors whose work HQ may refuse: the revoked one, and one HQ never
    /// enrolled.
    fn refusable(&self) -> Vec<ActorId> {
        (2..self.nodes.len())
            .filter(|&d| !self.nodes[d].enrolled || (self.revoked_since.is_some() && d == REVOKED))
            .map(|d| self.nodes[d].proof.actor_id())
            .collect()
    }

    fn run(&mut self) -> Result<(), String> {
        let n = self.nodes.len();
        let last = n - 1;
        // Day 1: devices get the campaign (some via the relay), edit offline,
        // and sync in random pairs over a faulty network.
        for step in 0..40 {
            self.now += 60_000;
            if self.trouble.revoke_at == Some(step) {
                self.revoke();
            }
            match self.rng.below(4) {
                0 => {
                    let device = 2 + self.rng.below(n - 2);
                    self.edit(device, step);
                }
                1 if self.trouble.handoffs => {
                    let from = 2 + self.rng.below(n - 2);
                    let to = 2 + self.rng.below(n - 2);
                    if from != to {
                        self.handoff(from, to);
                    }
                }
                1 if self.trouble.concurrent => {
                    // The relay forwards what a device gave it while that
                    // device, back in signal, syncs with HQ itself.
                    let device = 2 + self.rng.below(n - 3);
                    self.session(device, RELAY, true)?;
                    self.sessions(&[(RELAY, HQ), (device, HQ)], true)?;
                    self.seen.concurrent += 1;
                    self.check_receipts()?;
                }
                _ => {
                    let a = self.rng.below(n);
                    let b = self.rng.below(n);
                    let unenrolled = !self.nodes[a].enrolled || !self.nodes[b].enrolled;
                    if a != b && !unenrolled {
                        self.session(a, b, true)?;
                        self.check_receipts()?;
                    }
                }
            }
        }
        if !self.nodes[last].enrolled {
            self.seen.unenrolled += 1;
        }
        // Day 2 evening: everyone in good standing reaches HQ, directly or
        // through the relay (at the same time, in concurrent schedules).
        let devices = self.in_good_standing();
        for _ in 0..2 {
            for &device in &devices {
                self.session(device, RELAY, false)?;
            }
            if self.trouble.concurrent {
                let mut pairs = vec![(RELAY, HQ)];
                pairs.extend(devices.iter().map(|&d| (d, HQ)));
                self.sessions(&pairs, false)?;
            } else {
                self.session(RELAY, HQ, false)?;
                for &device in &devices {
                    self.session(device, HQ, false)?;
                }
            }
        }
        // What reached HQ in that last round at the same time as the relay
        // synced: the relay and the devices pick it up now.
        if self.trouble.concurrent {
            self.session(RELAY, HQ, false)?;
            for &device in &devices {
                self.session(device, HQ, false)?;
            }
        }
        self.check_receipts()?;
        self.check_converged(&devices)
    }

    /// Every node in good standing (and the relay) holds all HQ holds, and
    /// what it holds beyond that is work HQ must refuse or depends on it;
    /// each device in good standing has HQ's receipt for all its own other
    /// work.
    fn check_converged(&self, devices: &[usize]) -> Result<(), String> {
        let hq = &self.nodes[HQ];
        let refusable = self.refusable();
        for i in std::iter::once(RELAY).chain(devices.iter().copied()) {
            let node = &self.nodes[i];
            for (doc, am) in &node.docs {
                let theirs = hq.docs.get(doc);
                let all = theirs.map(|t| t.get_changes_meta(&[])).unwrap_or_default();
                if let Some(change) = all.iter().find(|c| am.get_change_meta_by_hash(&c.hash).is_none()) {
                    return Err(format!("node {i} lacks change {} of {doc} that HQ holds", change.hash));
                }
                let refused = refused_work(am, theirs, &refusable);
                let beyond = am
                    .get_changes(&[])
                    .into_iter()
                    .filter(|c| theirs.is_none_or(|t| t.get_change_meta_by_hash(&c.hash()).is_none()));
                for change in beyond {
                    if !refused.contains(&change.hash()) {
                        return Err(format!(
                            "node {i} holds change {} of {doc} that HQ never took, by an author in good standing",
                            change.hash()
                        ));
                    }
                }
                if i == RELAY {
                    continue;
                }
                let mine = am.get_changes(&[]).into_iter().filter(|c| *c.actor_id() == node.proof.actor_id());
                for change in mine.filter(|c| !refused.contains(&c.hash())) {
                    let covered = node.receipts.get(doc).into_iter().flatten().any(|(body, _)| {
                        let heads: Vec<ChangeHash> =
                            body.heads.iter().filter_map(|h| h.as_slice().try_into().ok().map(ChangeHash)).collect();
                        theirs.is_some_and(|t| t.get_changes(&heads).iter().all(|c| c.hash() != change.hash()))
                    });
                    if !covered {
                        return Err(format!("device {i} has no receipt covering change {} of {doc}", change.hash()));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The changes of `am` that HQ (holding `hq`) does not and may refuse:
/// those written by a `refusable` author, those depending on a refused
/// change, and (one signature over an author's latest change vouches for
/// all of theirs in a batch) all the work of an author with a refused
/// change — until nothing more follows.
fn refused_work(am: &Automerge, hq: Option<&Automerge>, refusable: &[ActorId]) -> HashSet<ChangeHash> {
    let beyond: Vec<_> = am
        .get_changes(&[])
        .into_iter()
        .filter(|c| hq.is_none_or(|h| h.get_change_meta_by_hash(&c.hash()).is_none()))
        .collect();
    let mut refused = HashSet::new();
    let mut authors: HashSet<ActorId> = refusable.iter().cloned().collect();
    loop {
        let before = refused.len();
        // In causal order: a change's dependencies come before it.
        for change in &beyond {
            if authors.contains(change.actor_id()) || change.deps().iter().any(|d| refused.contains(d)) {
                refused.insert(change.hash());
                authors.insert(change.actor_id().clone());
            }
        }
        if refused.len() == before {
            return refused;
        }
    }
}

fn hazard(title: &str) -> Hazard {
    Hazard {
        subcontractor: String::new(),
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
        found_on: String::new(),
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
    let mut seen = Seen::default();
    for seed in seeds.clone() {
        let mut world = World::new(seed);
        if let Err(message) = world.run() {
            panic!(
                "simulation failed with seed {seed} (rerun: SIM_SEED={seed} cargo test --test simulation): {message} \
                 ({:?})",
                world.trouble
            );
        }
        let s = world.seen;
        seen.revoked += s.revoked;
        seen.handoffs += s.handoffs;
        seen.unenrolled += s.unenrolled;
        seen.concurrent += s.concurrent;
        seen.quarantined += s.quarantined;
        seen.withheld += s.withheld;
        seen.refused += s.refused;
    }
    println!(
        "{} schedules converged (seeds {}..{}): {} with a revocation ({} sessions refused the revoked device), \
         {} USB handoffs without credentials ({} schedules with a device HQ never enrolled), \
         {} times the relay and a device synced with HQ at once; {} documents quarantined at HQ, {} withheld",
        seeds.end - seeds.start,
        seeds.start,
        seeds.end,
        seen.revoked,
        seen.refused,
        seen.handoffs,
        seen.unenrolled,
        seen.concurrent,
        seen.quarantined,
        seen.withheld
    );
}
