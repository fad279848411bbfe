//! The sync session: one connection between two peers, as a state machine.
//!
//! `Session::handle(now, replica, input) -> Vec<Effect>`: messages received,
//! storage results and the start signal go in; messages to send, documents
//! to load, changes to persist, receipts to store and the outcome come out.
//! The session reads the local documents through [`Replica`] (in memory, no
//! IO) and never writes them. A document it is about to send or receive is
//! asked for first ([`Effect::Load`], answered by [`Input::Loaded`]); writes
//! are [`Effect::Persist`], answered by [`Input::Persisted`] once durable.
//! Checking what arrived (apply to a copy, validate) is pure and happens
//! here; the driver is handed the checked document with the write.
//!
//! Flow, the same on both sides:
//! 1. `Hello` with the sender's HQ-signed credential (and revocation list).
//!    The peer's credential must verify against the pinned HQ key, be valid
//!    now, not revoked, and name the key the transport authenticated.
//! 2. `Catalog`: the documents the sender holds that the peer's scope
//!    allows, with their heads — one round trip reconciles all documents.
//! 3. For each document, `Changes` with everything the peer lacks: the
//!    changes not reachable from the peer's heads that we hold, nor from the
//!    checkpoint of our last completed session with that peer. One signature
//!    per author (and the author's credential) travels with them. Then
//!    `Receipts` we hold, then `Sent`.
//! 4. Received changes are verified (credentials, signatures, actor
//!    coverage, scope, document validity) before anything is persisted.
//! 5. `Done` once everything received is durable (HQ sends a receipt for
//!    each document first). When both sides said `Done`, the session emits
//!    [`Effect::Finished`] with the new checkpoints.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ActorId, ChangeHash};
use serde_bytes::ByteBuf;

use super::batch::{self, Arrived, BatchError, Checked};
use super::message::{DocHeads, Evidence, FrameError, Message, PROTOCOL_VERSION, Receipt, ReceiptBody, RefusalCode};
use super::replica::{Aside, Outgoing, Replica};
use crate::credential::{Credential, CredentialError, Role, SignedCredential, SignedRevocations};
use crate::identity::{ActorProof, DevicePublicKey, HeadSignature, StoreNonce};
use crate::ids::{DocId, DocTag};
use crate::rectification::Signer;
use crate::validate;
use crate::verify::{self, VerifyError};

const RECEIPT_DOMAIN: &[u8] = b"fieldsync/receipt/v1";

/// What goes into a session.
#[derive(Debug)]
pub enum Input {
    /// The connection is up: send our hello.
    Start,
    /// A message arrived.
    Message(Message),
    /// A `changes` message whose batch the driver already decoded with
    /// [`batch::decode`] (a pure function of the bytes), on another thread
    /// while the session handled earlier messages: handled as
    /// [`Input::Message`] would be, without decoding again.
    Decoded(Message, Result<Arrived, BatchError>),
    /// The bytes that arrived are not a frame (malformed, or a length over
    /// the limit): the session refuses the peer, saying why, and closes.
    BadFrame(FrameError),
    /// Answer to [`Effect::Load`]: the document is ready to read (or is
    /// not held here).
    Loaded(DocId),
    /// The driver durably stored the changes of `token`; HQ's driver also
    /// hands over the receipt it signed for them.
    Persisted {
        /// The token of the [`Effect::Persist`].
        token: u64,
        /// HQ's receipt, on the HQ side.
        receipt: Option<Receipt>,
    },
    /// The driver could not store them (the document would be invalid).
    PersistFailed {
        /// The token.
        token: u64,
        /// Why, for the peer and the log.
        reason: String,
    },
}

/// What comes out of a session.
#[derive(Debug)]
pub enum Effect {
    /// Send a message.
    Send(Message),
    /// Carry out the effects so far (send them), make `doc` ready to read
    /// ([`super::replica::Local::load`]), then answer [`Input::Loaded`].
    /// Inputs fed before that answer wait. Documents are asked for one at a
    /// time, so the peer works on one while the next is loaded.
    Load {
        /// The document.
        doc: DocId,
        /// The session will send it to a peer that holds none of it: a
        /// replica that keeps it whole need not load it.
        whole: bool,
    },
    /// Store verified changes with their evidence, durably, then answer
    /// [`Input::Persisted`].
    Persist {
        /// Answer with this token.
        token: u64,
        /// Document.
        doc: DocId,
        /// Changes not yet held.
        changes: Arrived,
        /// The document with them applied, as the session checked it (from
        /// what [`Replica::held_copy`] gave).
        checked: Box<Checked>,
        /// Evidence for them, with author credentials.
        evidence: Vec<(HeadSignature, Vec<u8>)>,
        /// The batch as received, when every change in it is new here: if
        /// this side held nothing of the document, the batch is its whole
        /// history, worth keeping for [`Replica::whole`].
        batch: Option<Vec<u8>>,
    },
    /// Keep signed work aside for a person to decide (it would make the
    /// document invalid, or its author's credential was revoked before it
    /// can be shown to be made); it is not applied.
    Quarantine(Aside),
    /// Store receipts (HQ's signatures already checked).
    StoreReceipts(Vec<(ReceiptBody, Receipt)>),
    /// Store a newer revocation list (HQ's signature already checked).
    StoreRevocations(SignedRevocations),
    /// The session ended well.
    Finished(Summary),
    /// The session failed; close the connection.
    Close(SyncError),
}

/// The outcome of a session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Changes sent, per document.
    pub sent: BTreeMap<DocId, usize>,
    /// Changes received and stored, per document.
    pub received: BTreeMap<DocId, usize>,
    /// Changes of ours the peer stored, as its `done` said (`None`: a
    /// peer of an earlier version did not say): fewer than [`Self::sent`]
    /// where the peer held some already.
    pub peer_stored: Option<usize>,
    /// Receipts received that are newer than any held for their document.
    pub receipts: usize,
    /// Heads both sides now hold, per document: store as checkpoints.
    pub checkpoints: BTreeMap<DocId, Vec<ChangeHash>>,
    /// Documents whose changes we could not send, and why: work of an
    /// author whose evidence or credential this replica lacks, or whose
    /// credential the peer would refuse (expired, revoked, out of scope).
    pub withheld: BTreeMap<DocId, String>,
    /// Documents whose changes the peer kept aside for review instead of
    /// storing (all of them if the document would be invalid, else one
    /// author's work), and why.
    pub quarantined: BTreeMap<DocId, String>,
    /// Documents whose changes HQ has already rejected, and why: decided,
    /// nobody need act.
    pub rejected: BTreeMap<DocId, String>,
}

impl Summary {
    /// Changes that went to the peer and were new to it, counted as the
    /// peer counts what it received: what it said it stored, else (an
    /// earlier version's peer) what was sent.
    pub fn delivered(&self) -> usize {
        self.peer_stored.unwrap_or_else(|| self.sent.values().sum())
    }

    /// Changes that came from the peer and were new here, stored.
    pub fn stored(&self) -> usize {
        self.received.values().sum()
    }
}

/// Why a session failed. Each closes only that session.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncError {
    /// The peer speaks another protocol version.
    #[error("对方的协议版本 {0} 不受支持")]
    Version(u32),
    /// The peer's credential was refused.
    #[error("对方凭证无效：{0}")]
    Credential(#[from] CredentialError),
    /// The peer's credential names another key than the connection's.
    #[error("对方凭证与其连接密钥不符")]
    WrongPeerKey,
    /// Something outside the allowed scope was sent.
    #[error("文档 {0} 不在允许的范围内")]
    Scope(String),
    /// Signature evidence failed.
    #[error(transparent)]
    Signature(#[from] VerifyError),
    /// The changes would make a document invalid; they were not stored.
    #[error("文档 {doc} 的修改无效，已隔离：{reason}")]
    Invalid {
        /// The document.
        doc: String,
        /// Why.
        reason: String,
    },
    /// A message out of order or malformed.
    #[error("协议错误：{0}")]
    Protocol(String),
    /// The peer refused us.
    #[error("对方拒绝同步：{message}")]
    Refused {
        /// Its code.
        code: RefusalCode,
        /// Its message.
        message: String,
    },
}

impl From<BatchError> for SyncError {
    fn from(error: BatchError) -> Self {
        SyncError::Protocol(error.0)
    }
}

impl SyncError {
    fn refusal(&self) -> Option<Message> {
        let code = match self {
            SyncError::Version(_) => RefusalCode::Version,
            SyncError::Credential(_) | SyncError::WrongPeerKey => RefusalCode::Credential,
            SyncError::Scope(_) => RefusalCode::Scope,
            SyncError::Signature(_) => RefusalCode::Signature,
            SyncError::Invalid { .. } => RefusalCode::Invalid,
            SyncError::Protocol(_) => RefusalCode::Protocol,
            SyncError::Refused { .. } => return None,
        };
        Some(Message::Refused { code, message: self.to_string() })
    }
}

/// Session configuration.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Our own credential.
    pub credential: SignedCredential,
    /// The pinned HQ key.
    pub hq: DevicePublicKey,
    /// The newest revocation list we hold.
    pub revocations: Option<SignedRevocations>,
    /// The peer's key, as the transport authenticated it.
    pub peer_key: DevicePublicKey,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    New,
    AwaitHello,
    AwaitCatalog,
    Exchanging,
    Closed,
}

/// One sync session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    peer: Option<Credential>,
    /// The peer's credential as it came in its hello: evidence of the
    /// peer's own changes refers to it instead of repeating it.
    peer_credential: Vec<u8>,
    revocations: Option<SignedRevocations>,
    offered: BTreeMap<DocId, Vec<ChangeHash>>,
    /// Where each offered document belongs, to judge its authors' scope.
    tags: BTreeMap<DocId, DocTag>,
    /// Authors' credentials judged while sending, by their bytes (a pull
    /// from HQ carries the same few credentials for thousands of documents).
    judged: BTreeMap<Vec<u8>, Result<Credential, String>>,
    peer_heads: BTreeMap<DocId, Vec<ChangeHash>>,
    /// Documents whose changes are still to be sent.
    to_send: std::collections::VecDeque<DocId>,
    /// `Changes` messages sent so far.
    sent_count: u32,
    /// Whether `Sent` went out (everything was sent).
    sent_all: bool,
    next_token: u64,
    pending: BTreeMap<u64, (DocId, usize)>,
    /// How many `Changes` the peer said it sent, once it said so.
    peer_sent: Option<u32>,
    /// Which of the peer's `Changes` arrived (duplicates are ignored).
    received: BTreeSet<u32>,
    sent_done: bool,
    peer_done: bool,
    summary: Summary,
    /// The document asked for with [`Effect::Load`], and what waits for it.
    loading: Option<Loading>,
    /// Inputs fed while a document was being loaded, handled after it.
    deferred: std::collections::VecDeque<Input>,
    /// HQ's receipts that arrived in this session, by document: they show
    /// which work of a since-revoked author HQ held before its revocation.
    receipts_seen: BTreeMap<DocId, Vec<ReceiptBody>>,
}

/// What waits for a document the session asked for.
#[derive(Debug)]
enum Loading {
    /// Sending it.
    Send(DocId),
    /// Receiving changes of it.
    Receive(Incoming),
}

fn hash_of(bytes: &[u8]) -> Result<ChangeHash, SyncError> {
    bytes.try_into().map(ChangeHash).map_err(|_| SyncError::Protocol("修改哈希长度错误".into()))
}

/// Whether `target` is among `from` or their ancestors in `doc`.
fn reaches(doc: &automerge::Automerge, from: &[ChangeHash], target: ChangeHash) -> bool {
    let mut stack = from.to_vec();
    let mut seen = BTreeSet::new();
    while let Some(hash) = stack.pop() {
        if hash == target {
            return true;
        }
        if seen.insert(hash)
            && let Some(meta) = doc.get_change_meta_by_hash(&hash)
        {
            stack.extend(meta.deps);
        }
    }
    false
}

fn heads_bytes(heads: &[ChangeHash]) -> Vec<ByteBuf> {
    heads.iter().map(|h| ByteBuf::from(h.0.to_vec())).collect()
}

/// Verifies HQ's signature on a receipt and decodes it.
pub fn open_receipt(receipt: &Receipt, hq: &DevicePublicKey) -> Result<ReceiptBody, SyncError> {
    let sig: [u8; 64] =
        receipt.sig.as_slice().try_into().map_err(|_| SyncError::Protocol("回执签名长度错误".into()))?;
    hq.verify_with_domain(RECEIPT_DOMAIN, &receipt.body, &sig)
        .map_err(|_| SyncError::Signature(VerifyError::ForgedEvidence("回执".into())))?;
    ciborium::from_reader(receipt.body.as_slice()).map_err(|e| SyncError::Protocol(format!("回执无法解析：{e}")))
}

/// HQ signs a receipt body.
pub fn sign_receipt(hq: &crate::identity::DeviceKey, body: &ReceiptBody) -> Receipt {
    let mut bytes = Vec::new();
    let _ = ciborium::into_writer(body, &mut bytes);
    let sig = hq.sign_with_domain(RECEIPT_DOMAIN, &bytes);
    Receipt { body: ByteBuf::from(bytes), sig: ByteBuf::from(sig.to_vec()) }
}

impl Session {
    /// A session over a connection to `config.peer_key`.
    pub fn new(config: SessionConfig) -> Self {
        Self {
            revocations: config.revocations.clone(),
            config,
            phase: Phase::New,
            peer: None,
            peer_credential: Vec::new(),
            offered: BTreeMap::new(),
            tags: BTreeMap::new(),
            judged: BTreeMap::new(),
            peer_heads: BTreeMap::new(),
            to_send: std::collections::VecDeque::new(),
            sent_count: 0,
            sent_all: false,
            next_token: 0,
            pending: BTreeMap::new(),
            peer_sent: None,
            received: BTreeSet::new(),
            sent_done: false,
            peer_done: false,
            summary: Summary::default(),
            loading: None,
            deferred: std::collections::VecDeque::new(),
            receipts_seen: BTreeMap::new(),
        }
    }

    /// The peer's credential, once its hello was accepted: the photo
    /// exchange after the session is scoped by it.
    pub fn peer_credential(&self) -> Option<&Credential> {
        self.peer.as_ref()
    }

    /// Whether the session has ended (well or not).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Feeds one input; returns the effects to carry out, in order. While
    /// a document is being loaded ([`Effect::Load`]), other inputs wait and
    /// are handled after [`Input::Loaded`].
    pub fn handle(&mut self, now_ms: i64, replica: &impl Replica, input: Input) -> Vec<Effect> {
        let mut out = Vec::new();
        let mut next = Some(input);
        while let Some(input) = next.take() {
            if self.phase == Phase::Closed {
                break;
            }
            if self.loading.is_some() && !matches!(input, Input::Loaded(_)) {
                self.deferred.push_back(input);
                break;
            }
            if let Err(error) = self.step(now_ms, replica, input, &mut out) {
                if let Some(refusal) = error.refusal() {
                    out.push(Effect::Send(refusal));
                }
                out.push(Effect::Close(error));
                self.phase = Phase::Closed;
            }
            if self.loading.is_none() {
                next = self.deferred.pop_front();
            }
        }
        out
    }

    fn step(&mut self, now: i64, replica: &impl Replica, input: Input, out: &mut Vec<Effect>) -> Result<(), SyncError> {
        match input {
            Input::Start if self.phase == Phase::New => {
                out.push(Effect::Send(Message::Hello {
                    version: PROTOCOL_VERSION,
                    credential: ByteBuf::from(self.config.credential.to_bytes()),
                    revocations: self.revocations.as_ref().map(|r| ByteBuf::from(r.to_bytes())),
                }));
                self.phase = Phase::AwaitHello;
            }
            Input::Start => return Err(SyncError::Protocol("重复开始".into())),
            Input::Message(message) => self.on_message(now, replica, message, None, out)?,
            Input::Decoded(message, arrived) => self.on_message(now, replica, message, Some(arrived), out)?,
            Input::BadFrame(error) => return Err(SyncError::Protocol(error.to_string())),
            Input::Loaded(doc) => match self.loading.take() {
                Some(Loading::Send(asked)) if asked == doc => {
                    self.send_doc(now, replica, doc, out)?;
                    self.load_next(out);
                }
                Some(Loading::Receive(incoming)) if incoming.doc == doc => {
                    self.receive_changes(now, replica, incoming, out)?
                }
                _ => return Err(SyncError::Protocol(format!("未请求载入文档 {doc}"))),
            },
            Input::Persisted { token, receipt } => {
                let (doc, count) =
                    self.pending.remove(&token).ok_or_else(|| SyncError::Protocol("未知的存储结果".into()))?;
                *self.summary.received.entry(doc).or_default() += count;
                if let Some(receipt) = receipt {
                    out.push(Effect::Send(Message::Receipts { receipts: vec![receipt] }));
                }
            }
            Input::PersistFailed { token, reason } => {
                let (doc, _) =
                    self.pending.remove(&token).ok_or_else(|| SyncError::Protocol("未知的存储结果".into()))?;
                return Err(SyncError::Invalid { doc: doc.to_string(), reason });
            }
        }
        self.maybe_finish(out);
        Ok(())
    }

    fn on_message(
        &mut self,
        now: i64,
        replica: &impl Replica,
        message: Message,
        decoded: Option<Result<Arrived, BatchError>>,
        out: &mut Vec<Effect>,
    ) -> Result<(), SyncError> {
        match (&self.phase, message) {
            (_, Message::Refused { code, message }) => return Err(SyncError::Refused { code, message }),
            (Phase::AwaitHello, Message::Hello { version, credential, revocations }) => {
                if version != PROTOCOL_VERSION {
                    return Err(SyncError::Version(version));
                }
                if let Some(bytes) = revocations {
                    self.adopt_revocations(&bytes, out)?;
                }
                let credential = SignedCredential::from_bytes(&credential)?;
                let peer = self.verify_credential(&credential, now)?.clone();
                if peer.device_key()? != self.config.peer_key {
                    return Err(SyncError::WrongPeerKey);
                }
                let docs: Vec<DocHeads> = replica
                    .catalog()
                    .into_iter()
                    .filter(|e| may_see(&peer, &e.tag))
                    .map(|e| {
                        let entry = DocHeads { id: e.id.to_string(), heads: heads_bytes(&e.heads) };
                        self.tags.insert(e.id.clone(), e.tag);
                        self.offered.insert(e.id, e.heads);
                        entry
                    })
                    .collect();
                self.peer = Some(peer);
                self.peer_credential = credential.to_bytes();
                out.push(Effect::Send(Message::Catalog { docs }));
                self.phase = Phase::AwaitCatalog;
            }
            (Phase::AwaitCatalog, Message::Catalog { docs }) => {
                for entry in docs {
                    let id: DocId =
                        entry.id.parse().map_err(|_| SyncError::Protocol(format!("文档编号无效：{}", entry.id)))?;
                    let heads = entry.heads.iter().map(|h| hash_of(h)).collect::<Result<Vec<_>, _>>()?;
                    self.peer_heads.insert(id, heads);
                }
                self.to_send = self.offered.keys().cloned().collect();
                self.phase = Phase::Exchanging;
                self.load_next(out);
            }
            (Phase::Exchanging, Message::Changes { n, doc, batch, evidence }) => {
                if self.peer_sent.is_some_and(|count| n >= count) {
                    return Err(SyncError::Protocol(format!("修改消息编号 {n} 超出对方声明的数量")));
                }
                if self.received.insert(n) {
                    let arrived = match decoded {
                        Some(arrived) => arrived?,
                        None => batch::decode(&batch)?,
                    };
                    let id: DocId = doc.parse().map_err(|_| SyncError::Protocol(format!("文档编号无效：{doc}")))?;
                    let incoming = Incoming { doc: id.clone(), batch: batch.into_vec(), arrived, evidence };
                    self.loading = Some(Loading::Receive(incoming));
                    out.push(Effect::Load { doc: id, whole: false });
                }
            }
            (Phase::Exchanging, Message::Receipts { receipts }) => {
                let mut opened = Vec::new();
                for receipt in receipts {
                    let body = open_receipt(&receipt, &self.config.hq)?;
                    if let Ok(doc) = body.doc.parse::<DocId>() {
                        // Counted when newer than any held: HQ passes on its
                        // latest receipt of a document at every session. (What
                        // is held was checked when it was stored.)
                        let newest_held = replica
                            .receipts(&doc)
                            .iter()
                            .filter_map(|held| ciborium::from_reader::<ReceiptBody, _>(held.body.as_slice()).ok())
                            .map(|held| held.seq)
                            .max();
                        if newest_held.is_none_or(|seq| seq < body.seq) {
                            self.summary.receipts += 1;
                        }
                        self.receipts_seen.entry(doc).or_default().push(body.clone());
                    }
                    opened.push((body, receipt));
                }
                out.push(Effect::StoreReceipts(opened));
            }
            (Phase::Exchanging, Message::Sent { count }) if self.peer_sent.is_none_or(|c| c == count) => {
                if self.received.iter().any(|n| *n >= count) {
                    return Err(SyncError::Protocol("对方声明的修改消息数量与已收到的不符".into()));
                }
                self.peer_sent = Some(count);
            }
            (Phase::Exchanging, Message::Quarantined { doc, message, rejected }) => {
                let id: DocId = doc.parse().map_err(|_| SyncError::Protocol(format!("文档编号无效：{doc}")))?;
                if !self.summary.sent.contains_key(&id) {
                    return Err(SyncError::Protocol(format!("对方隔离了未发送的文档 {doc}")));
                }
                match rejected {
                    true => self.summary.rejected.insert(id, message),
                    false => self.summary.quarantined.insert(id, message),
                };
            }
            // The peer stored all we sent; our own writes may still be under way.
            (Phase::Exchanging, Message::Done { stored }) if self.peer_sent.is_some() => {
                // It cannot have stored more of ours than we sent.
                let sent: usize = self.summary.sent.values().sum();
                self.summary.peer_stored = stored.map(|n| (n as usize).min(sent));
                self.peer_done = true;
            }
            (_, other) => return Err(SyncError::Protocol(format!("此时不应收到 {}", kind(&other)))),
        }
        Ok(())
    }

    fn adopt_revocations(&mut self, bytes: &[u8], out: &mut Vec<Effect>) -> Result<(), SyncError> {
        let list = SignedRevocations::from_bytes(bytes)?;
        let version = list.verify(&self.config.hq)?.version;
        let current = self.revocations.as_ref().and_then(|r| r.verify(&self.config.hq).ok()).map(|l| l.version);
        if current.is_none_or(|v| version > v) {
            self.revocations = Some(list.clone());
            out.push(Effect::StoreRevocations(list));
        }
        Ok(())
    }

    fn verify_credential<'c>(&self, credential: &'c SignedCredential, now: i64) -> Result<&'c Credential, SyncError> {
        let list = self.revocations.as_ref().map(|r| r.verify(&self.config.hq)).transpose()?;
        Ok(credential.verify(&self.config.hq, now, list)?)
    }

    /// The evidence, if the peer will accept every author's credential in
    /// it: HQ's signature, valid now, not revoked, and allowed to write this
    /// document. Otherwise the authors it would refuse, and why (Chinese).
    /// Our own credential went in the hello.
    fn vouched(
        &mut self,
        now: i64,
        replica: &impl Replica,
        doc: &DocId,
        mut evidence: Vec<Evidence>,
    ) -> Result<Vec<Evidence>, BTreeMap<ActorId, String>> {
        let own = self.config.credential.credential().device.clone();
        let mut refused = BTreeMap::new();
        for e in evidence.iter_mut().filter(|e| e.key != own) {
            if let Err(why) = self.vouch_for(now, replica, doc, e) {
                let actor = head_signature(e).map(|s| s.actor.actor_id()).map_err(|_| BTreeMap::new())?;
                refused.insert(actor, why);
            }
        }
        if refused.is_empty() { Ok(evidence) } else { Err(refused) }
    }

    /// Whether the peer will accept one author's evidence (see `vouched`).
    fn vouch_for(&mut self, now: i64, replica: &impl Replica, doc: &DocId, e: &mut Evidence) -> Result<(), String> {
        // An author whose credential is not held here: HQ, which issued
        // it, looks it up; no one else can judge the work.
        if e.lookup {
            if self.config.peer_key == self.config.hq {
                return Ok(());
            }
            let key = hex::encode(&e.key);
            return Err(format!("本机没有作者（设备 {key}）的凭证，只能送往总部核对"));
        }
        let verdict = match self.judged.get(e.credential.as_slice()) {
            Some(verdict) => verdict.clone(),
            None => {
                let verdict = self.judge(now, &e.credential);
                self.judged.insert(e.credential.to_vec(), verdict.clone());
                verdict
            }
        };
        let author = match verdict {
            Ok(author) => author,
            // A revoked author's work still goes where it can be shown
            // to be from before the revocation, and to HQ in any case,
            // which keeps the rest aside for a person to decide.
            Err(why) => {
                let head = hash_of(&e.head).map_err(|_| why.clone())?;
                let Some((author, since)) = self.revoked_author(now, replica, doc, &e.credential, head) else {
                    return Err(why);
                };
                e.received = replica.received_at(doc, &head);
                let before = self.covered_by_receipt(replica, doc, head)
                    || self.issues_receipts()
                    || e.received.is_some_and(|t| t < since);
                if !before && self.config.peer_key != self.config.hq {
                    return Err(why);
                }
                author
            }
        };
        if self.tags.get(doc).is_some_and(|tag| !may_write(&author, tag)) {
            return Err(format!("作者 {} 的凭证不含此文档所属的检查活动或企业", author.name));
        }
        Ok(())
    }

    /// The credential of an author whose change `head` of `doc` is held
    /// here, if HQ signed it and it is valid but for its revocation, with
    /// when the revocation took effect.
    fn revoked_author(
        &self,
        now: i64,
        replica: &impl Replica,
        doc: &DocId,
        credential: &[u8],
        head: ChangeHash,
    ) -> Option<(Credential, i64)> {
        let signed = SignedCredential::from_bytes(credential).ok()?;
        let author = signed.verify(&self.config.hq, now, None).ok()?.clone();
        let since = self.revocations.as_ref()?.verify(&self.config.hq).ok()?.revoked_since(&author)?;
        replica.has_change(doc, &head).then_some((author, since))
    }

    /// Whether one of HQ's receipts for `doc` (held, or received in this
    /// session) covers the held change `head`. HQ never takes a revoked
    /// author's new work, so such a change was at HQ before the revocation.
    fn covered_by_receipt(&self, replica: &impl Replica, doc: &DocId, head: ChangeHash) -> bool {
        let held = replica.receipts(doc).into_iter().filter_map(|r| open_receipt(&r, &self.config.hq).ok());
        let seen = self.receipts_seen.get(doc).into_iter().flatten().cloned();
        held.chain(seen).any(|b| {
            let heads: Vec<ChangeHash> = b.heads.iter().filter_map(|h| hash_of(h).ok()).collect();
            heads.iter().all(|h| replica.has_change(doc, h))
                && !replica.changes_since(doc, &heads).iter().any(|c| c.hash == head)
        })
    }

    /// Whether HQ holds a revoked author's change `head` of `doc` (now in
    /// `merged`), and so took it before the revocation: it came from HQ; or
    /// this is HQ and holds it already; or one of HQ's receipts covers it.
    fn held_by_hq(&self, replica: &impl Replica, doc: &DocId, merged: &automerge::Automerge, head: ChangeHash) -> bool {
        if self.config.peer_key == self.config.hq {
            return true;
        }
        if self.issues_receipts() {
            return replica.has_change(doc, &head);
        }
        let held = replica.receipts(doc).into_iter().filter_map(|r| open_receipt(&r, &self.config.hq).ok());
        let seen = self.receipts_seen.get(doc).into_iter().flatten().cloned();
        held.chain(seen).any(|b| {
            let heads: Vec<ChangeHash> = b.heads.iter().filter_map(|h| hash_of(h).ok()).collect();
            reaches(merged, &heads, head)
        })
    }

    /// Whether this side is HQ, whose writes of received changes are
    /// answered with receipts.
    fn issues_receipts(&self) -> bool {
        self.config.credential.credential().device_key().is_ok_and(|key| key == self.config.hq)
    }

    /// An author's credential as the peer will judge it.
    fn judge(&self, now: i64, credential: &[u8]) -> Result<Credential, String> {
        let signed = SignedCredential::from_bytes(credential).map_err(|err| format!("作者凭证无法解析：{err}"))?;
        let name = &signed.credential().name;
        let author = self.verify_credential(&signed, now).map_err(|err| match err {
            SyncError::Credential(why) => format!("作者 {name} 的{why}"),
            other => other.to_string(),
        })?;
        Ok(author.clone())
    }

    /// Asks for the next document to send; after the last, sends `Sent`.
    fn load_next(&mut self, out: &mut Vec<Effect>) {
        match self.to_send.pop_front() {
            Some(doc) => {
                let whole = self.peer_heads.get(&doc).is_none_or(|h| h.is_empty());
                self.loading = Some(Loading::Send(doc.clone()));
                out.push(Effect::Load { doc, whole });
            }
            None => {
                out.push(Effect::Send(Message::Sent { count: self.sent_count }));
                self.sent_all = true;
            }
        }
    }

    /// Sends the changes (and receipts) of `doc`, if it has any the peer lacks.
    fn send_doc(
        &mut self,
        now: i64,
        replica: &impl Replica,
        doc: DocId,
        out: &mut Vec<Effect>,
    ) -> Result<(), SyncError> {
        let peer_key = self.config.peer_key;
        let mut have: Vec<ChangeHash> = self
            .peer_heads
            .get(&doc)
            .into_iter()
            .flatten()
            .chain(replica.checkpoint(&peer_key, &doc).iter())
            .filter(|h| replica.has_change(&doc, h))
            .copied()
            .collect();
        have.sort();
        have.dedup();
        // HQ signed every receipt there is: none go back to it.
        let to_hq = self.config.peer_key == self.config.hq;
        let receipts = if to_hq { Vec::new() } else { replica.receipts(&doc) };
        let whole = if have.is_empty() { replica.whole(&doc) } else { None };
        let (changes, hashes, evidence) = match &whole {
            Some(whole) => (whole.changes, Vec::new(), Ok(whole.evidence.clone())),
            None => {
                let changes = replica.changes_since(&doc, &have);
                let evidence = evidence_for(|h| replica.evidence(&doc, h), &doc, &changes);
                (changes.len(), changes.iter().map(|c| c.hash).collect(), evidence)
            }
        };
        // HQ's receipts go first: they show the peer what HQ held before
        // an author's revocation (see `before_revocation`).
        if !receipts.is_empty() {
            out.push(Effect::Send(Message::Receipts { receipts }));
        }
        if changes == 0 {
            return Ok(());
        }
        // Work we cannot vouch for as the peer will judge it (imported
        // without its author's credential, or the author's credential has
        // expired, been revoked or does not cover the document) stays here:
        // that author's work and what depends on it. The rest goes.
        let refused = match evidence.map(|e| self.vouched(now, replica, &doc, e)) {
            Err(reason) => {
                self.summary.withheld.insert(doc, reason);
                return Ok(());
            }
            Ok(Ok(evidence)) => {
                let batch = match whole {
                    Some(whole) => whole.batch,
                    None => replica
                        .batch(&doc, &hashes, have.is_empty())
                        .ok_or_else(|| SyncError::Protocol(format!("{doc}: 无法打包要发送的修改")))?,
                };
                self.send_changes(doc, changes, batch, evidence, out);
                return Ok(());
            }
            Ok(Err(refused)) => refused,
        };
        // Our own evidence, malformed: nothing of the document can go.
        if refused.is_empty() {
            self.summary.withheld.insert(doc, "本机保存的签名证据格式错误，此文档暂不发送".into());
            return Ok(());
        }
        let mut reason = reasons(&refused);
        if let Some((count, batch, evidence)) = self.without_refused(now, replica, &doc, &have, whole, &refused) {
            reason.push_str("；其他作者的修改照常发送");
            self.send_changes(doc.clone(), count, batch, evidence, out);
        }
        self.summary.withheld.insert(doc, reason);
        Ok(())
    }

    /// What of `doc` the peer lacks once the work of `refused` authors (and
    /// what depends on it) is cut out: the number of changes, the batch and
    /// its evidence, if anything remains that the peer will accept.
    fn without_refused(
        &mut self,
        now: i64,
        replica: &impl Replica,
        doc: &DocId,
        have: &[ChangeHash],
        whole: Option<super::replica::Whole>,
        refused: &BTreeMap<ActorId, String>,
    ) -> Option<(usize, Vec<u8>, Vec<Evidence>)> {
        // A document kept whole and not loaded is read from that batch.
        let decoded = match whole {
            Some(whole) => Some(batch::decode(&whole.batch).ok()?.applied_to(None).ok()?),
            None => None,
        };
        let outgoing = match &decoded {
            Some(doc) => doc.get_changes_meta(&[]).into_iter().map(Outgoing::from).collect(),
            None => replica.changes_since(doc, have),
        };
        let infos: Vec<verify::ChangeInfo> = outgoing
            .iter()
            .map(|c| verify::ChangeInfo { hash: c.hash, actor: c.actor.clone(), deps: c.deps.clone() })
            .collect();
        let gone = verify::cut_out(&infos, &[], &refused.keys().cloned().collect());
        let rest: Vec<Outgoing> = outgoing.into_iter().filter(|c| !gone.contains(&c.hash)).collect();
        if rest.is_empty() {
            return None;
        }
        let evidence = evidence_for(|h| replica.evidence(doc, h), doc, &rest).ok()?;
        let evidence = self.vouched(now, replica, doc, evidence).ok()?;
        let hashes: Vec<ChangeHash> = rest.iter().map(|c| c.hash).collect();
        let batch = match &decoded {
            Some(decoded) => decoded.bundle(hashes).ok()?.bytes().to_vec(),
            None => replica.batch(doc, &hashes, false)?,
        };
        Some((rest.len(), batch, evidence))
    }

    /// Sends `count` changes of `doc` as one `changes` message.
    fn send_changes(
        &mut self,
        doc: DocId,
        count: usize,
        batch: Vec<u8>,
        evidence: Vec<Evidence>,
        out: &mut Vec<Effect>,
    ) {
        let own = self.config.credential.credential().device.clone();
        let evidence = evidence.into_iter().map(|e| without_own_credential(e, &own)).collect();
        self.summary.sent.insert(doc.clone(), count);
        out.push(Effect::Send(Message::Changes {
            n: self.sent_count,
            doc: doc.to_string(),
            batch: ByteBuf::from(batch),
            evidence,
        }));
        self.sent_count += 1;
    }

    fn receive_changes(
        &mut self,
        now: i64,
        replica: &impl Replica,
        incoming: Incoming,
        out: &mut Vec<Effect>,
    ) -> Result<(), SyncError> {
        let Incoming { doc: id, batch, arrived: decoded, evidence } = incoming;
        let peer = self.peer.clone().ok_or_else(|| SyncError::Protocol("尚未握手".into()))?;
        let count = decoded.len();
        let arrived = decoded.without(|h| replica.has_change(&id, h));
        let infos = arrived.infos();
        // Authors: each signature must come with a valid credential for its
        // key. HQ looks up, once, the credential of each author the carrier
        // lacks; the work of an author HQ never issued one to is cut out and
        // kept aside for a person to look at, the other authors' work goes on.
        let mut authors: BTreeMap<[u8; 32], Credential> = BTreeMap::new();
        let mut signatures = Vec::with_capacity(evidence.len());
        let mut refused: BTreeMap<ActorId, String> = BTreeMap::new();
        // Revoked authors: name, signed head, when the revocation took
        // effect, and when the peer says it stored that head.
        let mut revoked: Vec<(String, HeadSignature, i64, Option<i64>)> = Vec::new();
        for e in &evidence {
            let signature = head_signature(e)?;
            let bytes = match e.lookup {
                false => e.credential.to_vec(),
                true if !self.issues_receipts() => {
                    return Err(SyncError::Protocol("只有总部可以查找作者凭证".into()));
                }
                true => match replica.author_credential(&signature.actor.key) {
                    Some(credential) => credential,
                    None => {
                        let reason = format!("总部从未给作者设备 {} 签发过凭证", hex::encode(&e.key));
                        refused.insert(signature.actor.actor_id(), reason);
                        signatures.push((signature, Vec::new()));
                        continue;
                    }
                },
            };
            // No credential: the author is the peer, checked at its hello.
            let (author, credential) = if bytes.is_empty() {
                (peer.clone(), self.peer_credential.clone())
            } else {
                let credential = SignedCredential::from_bytes(&bytes)?;
                let author = match self.verify_credential(&credential, now) {
                    Ok(author) => author.clone(),
                    // Work from before a revocation is still valid, if it
                    // is shown to be from before: checked once applied.
                    Err(SyncError::Credential(CredentialError::Revoked(_))) => {
                        let author = credential.verify(&self.config.hq, now, None)?.clone();
                        let list = self.revocations.as_ref().map(|r| r.verify(&self.config.hq)).transpose()?;
                        let since = list.and_then(|l| l.revoked_since(&author)).unwrap_or(i64::MIN);
                        revoked.push((author.name.clone(), signature.clone(), since, e.received));
                        author
                    }
                    Err(error) => return Err(error),
                };
                (author, bytes)
            };
            if author.device_key()? != signature.actor.key {
                return Err(SyncError::Signature(VerifyError::ForgedEvidence(id.to_string())));
            }
            authors.insert(signature.actor.key.to_bytes(), author);
            signatures.push((signature, credential));
        }
        let heads: Vec<HeadSignature> = signatures.iter().map(|(s, _)| s.clone()).collect();
        let mut gone = verify::cut_out(&infos, &heads, &refused.keys().cloned().collect());
        let kept = arrived.without(|h| gone.contains(h));
        let kept_infos: Vec<_> = infos.iter().filter(|c| !gone.contains(&c.hash)).cloned().collect();
        // The signatures that vouch for what is kept: not the refused
        // authors', nor those over a head cut out with their work.
        let vouching: Vec<HeadSignature> = heads
            .iter()
            .filter(|s| !refused.contains_key(&s.actor.actor_id()) && !gone.contains(&s.head))
            .cloned()
            .collect();
        let accepted = verify::verify_changes(
            &id,
            &kept_infos,
            &vouching,
            |k| authors.contains_key(&k.to_bytes()),
            |h| replica.has_change(&id, h),
            |h| kept.change(h),
        )?;
        // All of it held already: delivered meanwhile by another session
        // (a relay forwarding the same work, say), perhaps not yet durable.
        // HQ still answers with a receipt, written after that delivery, so
        // the sender learns its work is safe in this session, not the next.
        if infos.is_empty() && !self.issues_receipts() {
            return Ok(());
        }
        let aside = |gone: &BTreeSet<ChangeHash>, reason: String| Aside {
            doc: id.clone(),
            batch: batch.clone(),
            evidence: signatures.clone(),
            changes: gone.iter().copied().collect(),
            reason,
        };
        if kept.is_empty() && !gone.is_empty() {
            self.keep_aside(replica, aside(&gone, reasons(&refused)), out);
            return Ok(());
        }
        // Each rectification step names its signer's holder as its author.
        let signer = |actor: &ActorId| {
            let (signature, _) = signatures.iter().find(|(s, _)| s.actor.actor_id() == *actor)?;
            let author = authors.get(&signature.actor.key.to_bytes())?;
            Some(Signer { name: author.name.clone(), role: Some(author.role.as_str().to_owned()) })
        };
        let check = |arrived: &Arrived| {
            arrived
                .checked(&id, replica.held_copy(&id))
                .and_then(|checked| validate::authorship(&checked.steps, signer).map(|()| checked))
        };
        // Signed by enrolled authors, but the document would be invalid:
        // all of it kept aside for review, never applied. The peer is
        // told, and the other documents go on.
        let invalid = |out: &mut Vec<Effect>, this: &mut Self, reason: String| {
            let all = infos.iter().map(|c| c.hash).collect();
            this.keep_aside(replica, aside(&all, reason), out);
        };
        let mut checked = match check(&kept) {
            Ok(checked) => checked,
            Err(error) => {
                invalid(out, self, error.0);
                return Ok(());
            }
        };
        // A revoked author's work counts if HQ held it, or the peer (whose
        // own credential is valid) stored it before the revocation; the
        // rest is cut out and kept aside for a person to decide, and the
        // other authors' work goes on.
        let when = |ms: i64| crate::doc::rfc3339(ms);
        let mut late = BTreeSet::new();
        for (name, head, since, received) in &revoked {
            if self.held_by_hq(replica, &id, &checked.result, head.head) || received.is_some_and(|t| t < *since) {
                continue;
            }
            let stored =
                received.map_or("收到时间不明".to_owned(), |t| format!("{} 才由送来的设备收到", when(t)));
            let reason = format!(
                "作者 {name} 的凭证已于 {} 被总部吊销，其修改{stored}，无法证明早于吊销，已隔离待审核",
                when(*since)
            );
            refused.insert(head.actor.actor_id(), reason);
            late.insert(head.actor.actor_id());
        }
        let mut kept = kept;
        if !late.is_empty() {
            let later = verify::cut_out(&kept_infos, &heads, &late);
            kept = kept.without(|h| later.contains(h));
            gone.extend(later);
            if kept.is_empty() {
                self.keep_aside(replica, aside(&gone, reasons(&refused)), out);
                return Ok(());
            }
            checked = match check(&kept) {
                Ok(checked) => checked,
                Err(error) => {
                    invalid(out, self, error.0);
                    return Ok(());
                }
            };
        }
        if !gone.is_empty() {
            self.keep_aside(replica, aside(&gone, reasons(&refused)), out);
        }
        let tag = &checked.tag;
        // The delivering peer and every author must have this document in scope.
        let writers: BTreeSet<&ActorId> =
            kept_infos.iter().filter(|c| !gone.contains(&c.hash)).map(|c| &c.actor).collect();
        let outside = !may_see(&peer, tag)
            || accepted.iter().any(|s| {
                writers.contains(&s.actor.actor_id())
                    && authors.get(&s.actor.key.to_bytes()).is_none_or(|a| !may_write(a, tag))
            });
        if outside {
            return Err(SyncError::Scope(id.to_string()));
        }
        let token = self.next_token;
        self.next_token += 1;
        self.pending.insert(token, (id.clone(), kept.len()));
        let evidence =
            signatures.into_iter().filter(|(s, _)| accepted.contains(s) && !gone.contains(&s.head)).collect();
        let batch = (kept.len() == count).then_some(batch);
        out.push(Effect::Persist { token, doc: id, changes: kept, checked: Box::new(checked), evidence, batch });
        Ok(())
    }

    /// Keeps `aside` for review and tells the peer, unless HQ has already
    /// rejected all of it: then the peer is told so, and nothing is kept.
    fn keep_aside(&mut self, replica: &impl Replica, aside: Aside, out: &mut Vec<Effect>) {
        let doc = aside.doc.to_string();
        match replica.rejected(&aside.doc, &aside.changes) {
            Some(message) => out.push(Effect::Send(Message::Quarantined { doc, message, rejected: true })),
            None => {
                let message = aside.reason.clone();
                out.push(Effect::Quarantine(aside));
                out.push(Effect::Send(Message::Quarantined { doc, message, rejected: false }));
            }
        }
    }

    fn maybe_finish(&mut self, out: &mut Vec<Effect>) {
        let all_arrived = self.peer_sent.is_some_and(|count| self.received.len() == count as usize);
        // `Done` goes after our `Sent`: the peer must know our count first.
        let busy = self.loading.is_some() || !self.pending.is_empty();
        if self.phase != Phase::Exchanging || !all_arrived || busy || !self.sent_all {
            return;
        }
        if !self.sent_done {
            let stored = u32::try_from(self.summary.stored()).unwrap_or(u32::MAX);
            out.push(Effect::Send(Message::Done { stored: Some(stored) }));
            self.sent_done = true;
        }
        if self.peer_done {
            let mut summary = std::mem::take(&mut self.summary);
            for (doc, heads) in &self.offered {
                // What we withheld, or the peer kept aside, it does not hold.
                let held_back = [&summary.withheld, &summary.quarantined, &summary.rejected]
                    .iter()
                    .any(|held| held.contains_key(doc));
                let ours = if held_back { &[][..] } else { &heads[..] };
                let mut both: Vec<ChangeHash> = ours.to_vec();
                both.extend(self.peer_heads.get(doc).into_iter().flatten().copied());
                both.sort();
                both.dedup();
                summary.checkpoints.insert(doc.clone(), both);
            }
            out.push(Effect::Finished(summary));
            self.phase = Phase::Closed;
        }
    }
}

/// A received `changes` message, its batch decoded.
#[derive(Debug)]
struct Incoming {
    doc: DocId,
    batch: Vec<u8>,
    arrived: Arrived,
    evidence: Vec<Evidence>,
}

/// The reasons work was cut out, one per author, as one line.
fn reasons(refused: &BTreeMap<ActorId, String>) -> String {
    refused.values().cloned().collect::<Vec<_>>().join("；")
}

fn kind(message: &Message) -> &'static str {
    match message {
        Message::Hello { .. } => "Hello",
        Message::Catalog { .. } => "Catalog",
        Message::Changes { .. } => "Changes",
        Message::Receipts { .. } => "Receipts",
        Message::Sent { .. } => "Sent",
        Message::Done { .. } => "Done",
        Message::Quarantined { .. } => "Quarantined",
        Message::Refused { .. } => "Refused",
    }
}

/// Whether a credential's holder may receive a document (and the photos
/// it references).
pub fn may_see(credential: &Credential, tag: &DocTag) -> bool {
    credential.role == Role::Hq || credential.scope.allows(&tag.campaign, tag.enterprise.as_ref())
}

/// Whether a credential's holder may author changes to a document. A
/// station relays but writes nothing of its own into dossiers.
pub(crate) fn may_write(credential: &Credential, tag: &DocTag) -> bool {
    match credential.role {
        Role::Hq => true,
        Role::Station => false,
        Role::Inspector | Role::Enterprise => credential.scope.allows(&tag.campaign, tag.enterprise.as_ref()),
    }
}

/// Our own credential went in our hello: evidence of our own changes
/// leaves it out (the peer takes it from the hello).
fn without_own_credential(mut e: Evidence, own: &ByteBuf) -> Evidence {
    if e.key == *own {
        e.credential = ByteBuf::new();
        e.lookup = false;
    }
    e
}

pub(crate) fn head_signature(e: &Evidence) -> Result<HeadSignature, SyncError> {
    let bad = || SyncError::Protocol("签名证据格式错误".into());
    Ok(HeadSignature {
        actor: ActorProof {
            key: DevicePublicKey::from_bytes(&e.key).map_err(|_| bad())?,
            nonce: StoreNonce(e.nonce.as_slice().try_into().map_err(|_| bad())?),
        },
        head: hash_of(&e.head)?,
        signature: e.sig.as_slice().try_into().map_err(|_| bad())?,
    })
}

/// One signature per author: over that author's latest change in
/// `changes` (the ones being sent), each with its author's credential as
/// `evidence` finds them (`Replica::evidence`). Fails with the reason
/// (Chinese) when an author's evidence is missing.
pub fn evidence_for(
    evidence: impl Fn(&ChangeHash) -> Option<(HeadSignature, Vec<u8>)>,
    doc: &DocId,
    changes: &[Outgoing],
) -> Result<Vec<Evidence>, String> {
    let genesis = crate::doc::genesis_actor(doc);
    let mut latest: BTreeMap<Vec<u8>, (u64, ChangeHash)> = BTreeMap::new();
    for c in changes.iter().filter(|c| c.actor != genesis) {
        let entry = latest.entry(c.actor.to_bytes().to_vec()).or_insert((0, c.hash));
        if c.seq >= entry.0 {
            *entry = (c.seq, c.hash);
        }
    }
    latest
        .values()
        .map(|(_, head)| {
            let (sig, credential) = evidence(head).ok_or_else(|| format!("修改 {head} 缺少签名证据"))?;
            // No credential held: only HQ, which looks it up, gets the work.
            let lookup = credential.is_empty();
            Ok(Evidence { lookup, ..Evidence::new(&sig, credential) })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::{RevocationList, Scope};
    use crate::identity::DeviceKey;
    use crate::sync::message::MAX_FRAME;
    use crate::sync::replica::CatalogEntry;

    const NOW: i64 = 1_000_000;

    /// A replica with no documents: enough to exercise the handshake. One
    /// `holding` a document, and every change, stands for a store that
    /// another session has just given all that arrives.
    struct Empty {
        holding: Option<automerge::Automerge>,
    }

    const EMPTY: Empty = Empty { holding: None };

    /// Feeds `input` and answers every document the session asks for, as a
    /// driver does; returns all the effects.
    trait Run {
        fn run(&mut self, replica: &impl Replica, input: Input) -> Vec<Effect>;
    }

    impl Run for Session {
        fn run(&mut self, replica: &impl Replica, input: Input) -> Vec<Effect> {
            let mut effects = Vec::new();
            let mut next = Some(input);
            while let Some(input) = next.take() {
                let step = self.handle(NOW, replica, input);
                if let Some(Effect::Load { doc, .. }) = step.last() {
                    next = Some(Input::Loaded(doc.clone()));
                }
                effects.extend(step);
            }
            effects
        }
    }

    impl Replica for Empty {
        fn catalog(&self) -> Vec<CatalogEntry> {
            Vec::new()
        }
        fn has_change(&self, _: &DocId, _: &ChangeHash) -> bool {
            self.holding.is_some()
        }
        fn changes_since(&self, _: &DocId, _: &[ChangeHash]) -> Vec<Outgoing> {
            Vec::new()
        }
        fn batch(&self, _: &DocId, _: &[ChangeHash], _: bool) -> Option<Vec<u8>> {
            None
        }
        fn evidence(&self, _: &DocId, _: &ChangeHash) -> Option<(HeadSignature, Vec<u8>)> {
            None
        }
        fn checkpoint(&self, _: &DevicePublicKey, _: &DocId) -> Vec<ChangeHash> {
            Vec::new()
        }
        fn held_copy(&self, _: &DocId) -> Option<automerge::Automerge> {
            self.holding.clone()
        }
        fn receipts(&self, _: &DocId) -> Vec<Receipt> {
            Vec::new()
        }
    }

    fn credential(hq: &DeviceKey, device: &DeviceKey, serial: u64, not_after: i64, scope: Scope) -> SignedCredential {
        SignedCredential::issue(
            hq,
            Credential {
                serial,
                device: ByteBuf::from(device.public().to_bytes().to_vec()),
                name: "张三".into(),
                role: Role::Inspector,
                scope,
                not_before: 0,
                not_after,
            },
        )
    }

    struct Setup {
        hq: DeviceKey,
        server: DeviceKey,
        tablet: DeviceKey,
    }

    fn setup() -> Setup {
        Setup {
            hq: DeviceKey::from_seed([1; 32]),
            server: DeviceKey::from_seed([2; 32]),
            tablet: DeviceKey::from_seed([3; 32]),
        }
    }

    /// The server's session, after it has started; `revocations` it holds.
    fn server(s: &Setup, revocations: Option<SignedRevocations>) -> Session {
        let mut session = Session::new(SessionConfig {
            credential: credential(&s.hq, &s.server, 1, i64::MAX, Scope::default()),
            hq: s.hq.public(),
            revocations,
            peer_key: s.tablet.public(),
        });
        session.run(&EMPTY, Input::Start);
        session
    }

    fn hello(credential: &SignedCredential) -> Input {
        Input::Message(Message::Hello {
            version: PROTOCOL_VERSION,
            credential: ByteBuf::from(credential.to_bytes()),
            revocations: None,
        })
    }

    /// Campaign `id` as `author` creates it, and the hash of that change.
    fn campaign_doc(author: &DeviceKey, id: &DocId) -> (automerge::Automerge, ChangeHash) {
        let proof = ActorProof { key: author.public(), nonce: StoreNonce([3; 16]) };
        let mut doc = automerge::Automerge::new().with_actor(proof.actor_id());
        let kind = crate::model::CampaignKind::SelfInspection;
        let committed = crate::doc::edit(&mut doc, 1, |tx| {
            crate::doc::campaign::create(tx, id, "联合检查", kind, "2026-01-01", "2026-01-02")
        });
        let hash = committed.unwrap().hash.unwrap();
        (doc, hash)
    }

    /// A `changes` message creating campaign `id`, signed by `author`, its
    /// evidence carrying `credential` (empty: the sender's own).
    fn campaign_created(author: &DeviceKey, id: &DocId, credential: Vec<u8>) -> Input {
        let proof = ActorProof { key: author.public(), nonce: StoreNonce([3; 16]) };
        let (doc, hash) = campaign_doc(author, id);
        let evidence = Evidence::new(&author.sign_head(id, &proof, hash), credential);
        let batch = ByteBuf::from(doc.bundle([hash]).unwrap().bytes().to_vec());
        Input::Message(Message::Changes { n: 0, doc: id.to_string(), batch, evidence: vec![evidence] })
    }

    fn closed_with(effects: &[Effect]) -> Option<&SyncError> {
        effects.iter().find_map(|e| match e {
            Effect::Close(error) => Some(error),
            _ => None,
        })
    }

    /// A carrier holding one campaign written by another device, whose
    /// credential the carrier keeps (or not), and a receipt for it.
    struct Carried {
        id: DocId,
        doc: automerge::Automerge,
        evidence: (HeadSignature, Vec<u8>),
    }

    impl Carried {
        fn new(author: &DeviceKey, credential: Vec<u8>) -> Self {
            let id = DocId::new_campaign([8; 16]);
            let proof = ActorProof { key: author.public(), nonce: StoreNonce([4; 16]) };
            let mut doc = automerge::Automerge::new().with_actor(proof.actor_id());
            let kind = crate::model::CampaignKind::SelfInspection;
            let committed = crate::doc::edit(&mut doc, 1, |tx| {
                crate::doc::campaign::create(tx, &id, "联合检查", kind, "2026-01-01", "2026-01-02")
            });
            let hash = committed.unwrap().hash.unwrap();
            let evidence = (author.sign_head(&id, &proof, hash), credential);
            Self { id, doc, evidence }
        }
    }

    impl Replica for Carried {
        fn catalog(&self) -> Vec<CatalogEntry> {
            let tag = DocTag { campaign: self.id.clone(), enterprise: None };
            vec![CatalogEntry { id: self.id.clone(), tag, heads: self.doc.get_heads() }]
        }
        fn has_change(&self, _: &DocId, hash: &ChangeHash) -> bool {
            self.doc.get_change_meta_by_hash(hash).is_some()
        }
        fn changes_since(&self, _: &DocId, have: &[ChangeHash]) -> Vec<Outgoing> {
            self.doc.get_changes_meta(have).into_iter().map(Outgoing::from).collect()
        }
        fn batch(&self, _: &DocId, hashes: &[ChangeHash], whole: bool) -> Option<Vec<u8>> {
            if whole && let Ok(encoded) = batch::encode_document(&self.doc) {
                return Some(encoded);
            }
            Some(self.doc.bundle(hashes.iter().copied()).ok()?.bytes().to_vec())
        }
        fn evidence(&self, _: &DocId, head: &ChangeHash) -> Option<(HeadSignature, Vec<u8>)> {
            (self.evidence.0.head == *head).then(|| self.evidence.clone())
        }
        fn checkpoint(&self, _: &DevicePublicKey, _: &DocId) -> Vec<ChangeHash> {
            Vec::new()
        }
        fn held_copy(&self, _: &DocId) -> Option<automerge::Automerge> {
            Some(self.doc.clone())
        }
        fn receipts(&self, _: &DocId) -> Vec<Receipt> {
            vec![Receipt { body: ByteBuf::from(vec![1]), sig: ByteBuf::from(vec![2]) }]
        }
    }

    /// Runs the carrier's side of a session with a peer that holds nothing
    /// (an inspector's tablet); returns what the carrier sent and its summary.
    fn carry(s: &Setup, replica: &Carried) -> (Vec<Message>, Summary) {
        carry_to(s, replica, &s.server, Role::Inspector)
    }

    /// As [`carry`], to the device `peer`, of `role`.
    fn carry_to(s: &Setup, replica: &Carried, peer: &DeviceKey, role: Role) -> (Vec<Message>, Summary) {
        let peer_key = peer.public();
        let mut peer = credential(&s.hq, peer, 1, i64::MAX, Scope::default()).credential().clone();
        peer.role = role;
        let mut session = Session::new(SessionConfig {
            credential: credential(&s.hq, &s.tablet, 2, i64::MAX, Scope::default()),
            hq: s.hq.public(),
            revocations: None,
            peer_key,
        });
        let mut effects = session.run(replica, Input::Start);
        effects.extend(session.run(replica, hello(&SignedCredential::issue(&s.hq, peer))));
        effects.extend(session.run(replica, Input::Message(Message::Catalog { docs: Vec::new() })));
        effects.extend(session.run(replica, Input::Message(Message::Sent { count: 0 })));
        effects.extend(session.run(replica, Input::Message(Message::Done { stored: Some(0) })));
        assert_eq!(closed_with(&effects), None);
        let sent = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send(m) => Some(m.clone()),
                _ => None,
            })
            .collect();
        let summary = effects.into_iter().find_map(|e| match e {
            Effect::Finished(summary) => Some(summary),
            _ => None,
        });
        (sent, summary.expect("the session finished"))
    }

    #[test]
    fn receipts_are_passed_on_to_any_peer_but_hq_itself() {
        let s = setup();
        let author = DeviceKey::from_seed([4; 32]);
        let carried = Carried::new(&author, credential(&s.hq, &author, 3, i64::MAX, Scope::default()).to_bytes());
        let is_receipts = |m: &Message| matches!(m, Message::Receipts { .. });
        // An HQ analyst's laptop may have work of its own carried to HQ.
        for (peer, role, passed) in [
            (&s.server, Role::Inspector, true),
            (&s.server, Role::Station, true),
            (&s.server, Role::Hq, true),
            (&s.hq, Role::Hq, false),
        ] {
            let (sent, _) = carry_to(&s, &carried, peer, role);
            assert_eq!(sent.iter().any(is_receipts), passed, "{role:?}");
        }
    }

    #[test]
    fn work_the_peer_would_refuse_is_withheld_and_not_checkpointed() {
        let s = setup();
        let author = DeviceKey::from_seed([4; 32]);
        let valid = credential(&s.hq, &author, 3, i64::MAX, Scope::default()).to_bytes();
        let expired = credential(&s.hq, &author, 3, NOW - 1, Scope::default()).to_bytes();
        let elsewhere = Scope { campaigns: Some([DocId::new_campaign([7; 16])].into()), enterprises: None };
        let out_of_scope = credential(&s.hq, &author, 3, i64::MAX, elsewhere).to_bytes();
        let is_changes = |m: &Message| matches!(m, Message::Changes { .. });
        let is_receipts = |m: &Message| matches!(m, Message::Receipts { .. });

        let carried = Carried::new(&author, valid);
        let (sent, summary) = carry(&s, &carried);
        assert!(sent.iter().any(is_changes) && summary.withheld.is_empty());
        assert_eq!(summary.checkpoints[&carried.id], carried.doc.get_heads());

        for (credential, why) in [(Vec::new(), "只能送往总部核对"), (expired, "已过期"), (out_of_scope, "不含此文档")]
        {
            let carried = Carried::new(&author, credential);
            let (sent, summary) = carry(&s, &carried);
            assert!(!sent.iter().any(is_changes), "{why}: sent anyway");
            assert!(sent.iter().any(is_receipts), "{why}: HQ's receipts are still passed on");
            assert!(summary.withheld[&carried.id].contains(why), "{:?}", summary.withheld);
            // Not counted as held by the peer: the next session tries again.
            assert_eq!(summary.checkpoints[&carried.id], Vec::new());
        }
    }

    #[test]
    fn a_valid_hello_is_answered_with_a_catalog() {
        let s = setup();
        let mut session = server(&s, None);
        let effects = session.run(&EMPTY, hello(&credential(&s.hq, &s.tablet, 9, i64::MAX, Scope::default())));
        assert!(matches!(effects.as_slice(), [Effect::Send(Message::Catalog { .. })]), "{effects:?}");
    }

    #[test]
    fn bad_credentials_are_refused_with_a_reason() {
        let s = setup();
        let stranger = DeviceKey::from_seed([4; 32]);
        let unenrolled = credential(&stranger, &s.tablet, 9, i64::MAX, Scope::default());
        let expired = credential(&s.hq, &s.tablet, 9, NOW - 1, Scope::default());
        let other_device = credential(&s.hq, &stranger, 9, i64::MAX, Scope::default());
        let cases: Vec<(SignedCredential, Option<SignedRevocations>, &str)> = vec![
            (unenrolled, None, "BadSignature"),
            (expired, None, "Expired"),
            (other_device, None, "WrongPeerKey"),
            (
                credential(&s.hq, &s.tablet, 9, i64::MAX, Scope::default()),
                Some(SignedRevocations::issue(
                    &s.hq,
                    RevocationList { version: 1, issued_at: 0, serials: [9].into(), ..RevocationList::default() },
                )),
                "Revoked",
            ),
        ];
        for (credential, revocations, expected) in cases {
            let mut session = server(&s, revocations);
            let effects = session.run(&EMPTY, hello(&credential));
            let error = closed_with(&effects).unwrap_or_else(|| panic!("{expected}: not refused"));
            assert!(format!("{error:?}").contains(expected), "{expected}: {error:?}");
            assert!(
                effects
                    .iter()
                    .any(|e| matches!(e, Effect::Send(Message::Refused { code: RefusalCode::Credential, .. }))),
                "{expected}: the peer is told why"
            );
            assert!(session.is_closed());
            assert!(session.run(&EMPTY, Input::Start).is_empty(), "a closed session stays closed");
        }
    }

    #[test]
    fn a_replayed_hello_and_out_of_order_messages_close_the_session() {
        let s = setup();
        let good = credential(&s.hq, &s.tablet, 9, i64::MAX, Scope::default());
        let mut session = server(&s, None);
        session.run(&EMPTY, hello(&good));
        let effects = session.run(&EMPTY, hello(&good));
        assert!(matches!(closed_with(&effects), Some(SyncError::Protocol(_))));

        let mut session = server(&s, None);
        let effects = session.run(&EMPTY, Input::Message(Message::Done { stored: Some(0) }));
        assert!(matches!(closed_with(&effects), Some(SyncError::Protocol(_))));
    }

    #[test]
    fn a_bad_frame_is_refused_and_closes_the_session() {
        let s = setup();
        for error in [FrameError::TooLarge(MAX_FRAME + 1), FrameError::Malformed("EOF".into())] {
            let reason = error.to_string();
            let mut session = server(&s, None);
            let effects = session.run(&EMPTY, Input::BadFrame(error));
            assert!(
                matches!(&effects[..], [Effect::Send(Message::Refused { code: RefusalCode::Protocol, message }), Effect::Close(SyncError::Protocol(_))]
                    if message.contains(&reason)),
                "{effects:?}"
            );
            assert!(session.is_closed());
        }
    }

    #[test]
    fn out_of_scope_and_malformed_changes_are_refused_before_anything_is_stored() {
        let s = setup();
        // The tablet may only see another campaign than the one `EMPTY` reports.
        let scope = Scope { campaigns: Some([DocId::new_campaign([1; 16])].into()), enterprises: None };
        let mut session = server(&s, None);
        session.run(&EMPTY, hello(&credential(&s.hq, &s.tablet, 9, i64::MAX, scope)));
        session.run(&EMPTY, Input::Message(Message::Catalog { docs: Vec::new() }));

        // Malformed Automerge bytes.
        let mut bad = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 3];
        bad.extend_from_slice(&[0xff; 16]);
        let effects = session.handle(
            NOW,
            &EMPTY,
            Input::Message(Message::Changes {
                n: 0,
                doc: DocId::new_campaign([9; 16]).to_string(),
                batch: ByteBuf::from(bad),
                evidence: vec![],
            }),
        );
        assert!(matches!(closed_with(&effects), Some(SyncError::Protocol(_))), "{effects:?}");
        assert!(!effects.iter().any(|e| matches!(e, Effect::Persist { .. })));

        // A real, signed change in a campaign outside the tablet's scope.
        let mut session = server(&s, None);
        let tablet_cred = credential(
            &s.hq,
            &s.tablet,
            9,
            i64::MAX,
            Scope { campaigns: Some([DocId::new_campaign([1; 16])].into()), enterprises: None },
        );
        session.run(&EMPTY, hello(&tablet_cred));
        session.run(&EMPTY, Input::Message(Message::Catalog { docs: Vec::new() }));
        let doc_id = DocId::new_campaign([9; 16]);
        let effects = session.run(&EMPTY, campaign_created(&s.tablet, &doc_id, tablet_cred.to_bytes()));
        assert_eq!(closed_with(&effects), Some(&SyncError::Scope(doc_id.to_string())));
        assert!(!effects.iter().any(|e| matches!(e, Effect::Persist { .. })));
    }

    #[test]
    fn a_batch_decoded_by_the_driver_is_handled_as_the_message_would_be() {
        let s = setup();
        let campaign = DocId::new_campaign([9; 16]);
        let scope = Scope { campaigns: Some([campaign.clone()].into()), enterprises: None };
        let tablet_cred = credential(&s.hq, &s.tablet, 9, i64::MAX, scope);
        let started = || {
            let mut session = server(&s, None);
            session.run(&EMPTY, hello(&tablet_cred));
            session.run(&EMPTY, Input::Message(Message::Catalog { docs: Vec::new() }));
            session
        };
        let decoded = |input: Input| {
            let Input::Message(Message::Changes { n, doc, batch, evidence }) = input else {
                panic!("not a changes message: {input:?}")
            };
            let arrived = batch::decode(&batch);
            Input::Decoded(Message::Changes { n, doc, batch, evidence }, arrived)
        };
        let persisted = |effects: &[Effect]| {
            effects
                .iter()
                .find_map(|e| match e {
                    Effect::Persist { doc, changes, evidence, batch, .. } => {
                        Some((doc.clone(), changes.hashes(), evidence.clone(), batch.clone()))
                    }
                    _ => None,
                })
                .expect("persisted")
        };

        let change = || campaign_created(&s.tablet, &campaign, Vec::new());
        let direct = started().run(&EMPTY, change());
        let ahead = started().run(&EMPTY, decoded(change()));
        assert_eq!(persisted(&direct), persisted(&ahead));

        // Another device's change, no credential of its own: refused either way.
        let forged = || campaign_created(&s.server, &campaign, Vec::new());
        let direct = started().run(&EMPTY, forged());
        let ahead = started().run(&EMPTY, decoded(forged()));
        assert_eq!(closed_with(&direct), closed_with(&ahead));
        assert!(matches!(closed_with(&ahead), Some(SyncError::Signature(_))), "{ahead:?}");

        // A batch that failed to decode: the session refuses the peer.
        let bad =
            Message::Changes { n: 0, doc: campaign.to_string(), batch: ByteBuf::from(vec![1, 2, 3]), evidence: vec![] };
        let failed = batch::decode(&[1, 2, 3]);
        let effects = started().run(&EMPTY, Input::Decoded(bad, failed));
        assert!(matches!(closed_with(&effects), Some(SyncError::Protocol(_))), "{effects:?}");
        assert!(!effects.iter().any(|e| matches!(e, Effect::Persist { .. })));
    }

    /// Work another session delivered meanwhile (a relay forwarding it, say)
    /// arrives again from its author: HQ still writes (nothing) so that a
    /// receipt goes back once that delivery is durable. Another side has no
    /// receipt to give and stores nothing.
    #[test]
    fn work_hq_already_holds_is_answered_with_a_receipt() {
        let s = setup();
        let campaign = DocId::new_campaign([9; 16]);
        let scope = Scope { campaigns: Some([campaign.clone()].into()), enterprises: None };
        let tablet_cred = credential(&s.hq, &s.tablet, 9, i64::MAX, scope);
        let holding = Empty { holding: Some(campaign_doc(&s.tablet, &campaign).0) };
        let started = |mut session: Session| {
            session.run(&holding, Input::Start);
            session.run(&holding, hello(&tablet_cred));
            session.run(&holding, Input::Message(Message::Catalog { docs: Vec::new() }));
            session
        };
        let hq = Session::new(SessionConfig {
            credential: credential(&s.hq, &s.hq, 1, i64::MAX, Scope::default()),
            hq: s.hq.public(),
            revocations: None,
            peer_key: s.tablet.public(),
        });
        let effects = started(hq).run(&holding, campaign_created(&s.tablet, &campaign, Vec::new()));
        let written = effects.iter().find_map(|e| match e {
            Effect::Persist { doc, changes, .. } => Some((doc.clone(), changes.len())),
            _ => None,
        });
        assert_eq!(written, Some((campaign.clone(), 0)), "{effects:?}");

        let relay = Session::new(SessionConfig {
            credential: credential(&s.hq, &s.server, 1, i64::MAX, Scope::default()),
            hq: s.hq.public(),
            revocations: None,
            peer_key: s.tablet.public(),
        });
        let effects = started(relay).run(&holding, campaign_created(&s.tablet, &campaign, Vec::new()));
        assert!(!effects.iter().any(|e| matches!(e, Effect::Persist { .. } | Effect::Close(_))), "{effects:?}");
    }

    /// A document is asked for before changes to it are checked; what
    /// comes in meanwhile waits for it, and `Done` waits for the write.
    #[test]
    fn received_changes_wait_for_their_document_and_so_does_what_follows() {
        let s = setup();
        let campaign = DocId::new_campaign([9; 16]);
        let scope = Scope { campaigns: Some([campaign.clone()].into()), enterprises: None };
        let mut session = server(&s, None);
        session.run(&EMPTY, hello(&credential(&s.hq, &s.tablet, 9, i64::MAX, scope)));
        session.run(&EMPTY, Input::Message(Message::Catalog { docs: Vec::new() }));
        let asked = session.handle(NOW, &EMPTY, campaign_created(&s.tablet, &campaign, Vec::new()));
        assert!(matches!(&asked[..], [Effect::Load { doc, whole: false }] if *doc == campaign), "{asked:?}");
        // The peer's count and end arrive before the document is ready.
        assert!(session.handle(NOW, &EMPTY, Input::Message(Message::Sent { count: 1 })).is_empty());
        assert!(session.handle(NOW, &EMPTY, Input::Message(Message::Done { stored: Some(0) })).is_empty());
        let loaded = session.handle(NOW, &EMPTY, Input::Loaded(campaign.clone()));
        let token = match &loaded[..] {
            [Effect::Persist { token, doc, .. }] if *doc == campaign => *token,
            other => panic!("{other:?}"),
        };
        let finished = session.handle(NOW, &EMPTY, Input::Persisted { token, receipt: None });
        assert!(matches!(&finished[..], [Effect::Send(Message::Done { .. }), Effect::Finished(_)]), "{finished:?}");
        // A document nobody asked for is a driver's mistake, refused.
        let mut session = server(&s, None);
        let stray = session.handle(NOW, &EMPTY, Input::Loaded(campaign));
        assert!(matches!(closed_with(&stray), Some(SyncError::Protocol(_))), "{stray:?}");
    }

    #[test]
    fn evidence_without_a_credential_stands_for_the_peer_and_no_one_else() {
        let s = setup();
        let campaign = DocId::new_campaign([9; 16]);
        let scope = Scope { campaigns: Some([campaign.clone()].into()), enterprises: None };
        let tablet_cred = credential(&s.hq, &s.tablet, 9, i64::MAX, scope);
        // A campaign change signed by `author`, its evidence with no credential.
        let changes = |author: &DeviceKey| campaign_created(author, &campaign, Vec::new());
        let started = || {
            let mut session = server(&s, None);
            session.run(&EMPTY, hello(&tablet_cred));
            session.run(&EMPTY, Input::Message(Message::Catalog { docs: Vec::new() }));
            session
        };

        // The tablet's own change: its credential from the hello is stored.
        let effects = started().run(&EMPTY, changes(&s.tablet));
        let stored = effects.iter().find_map(|e| match e {
            Effect::Persist { evidence, .. } => Some(evidence),
            _ => None,
        });
        assert_eq!(stored.map(|e| e[0].1.clone()), Some(tablet_cred.to_bytes()), "{effects:?}");

        // Another device's change: no credential of its own, refused.
        let effects = started().run(&EMPTY, changes(&s.server));
        assert!(matches!(closed_with(&effects), Some(SyncError::Signature(_))), "{effects:?}");
        assert!(!effects.iter().any(|e| matches!(e, Effect::Persist { .. })));
    }
}
