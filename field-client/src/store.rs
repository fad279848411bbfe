//! The device's local store: identity, documents, photos, trust.
//!
//! A store is a directory (`FIELD_HOME`) holding `device.key` (the Ed25519
//! seed, owner-only), `store.db` (SQLite, see [`crate::db`]), `blobs/`
//! (photos by SHA-256) and a lock file that keeps a second process out — two
//! writers on one store would reuse the same actor sequence numbers.
//!
//! Every edit runs as one Automerge transaction; the change it makes is
//! signed and written durably before [`Store::edit`] returns. If the write
//! fails, the in-memory document is dropped and reloaded from disk, so memory
//! never runs ahead of the store.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sync_core::automerge::transaction::Transaction;
use sync_core::automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc};
use sync_core::bundle::{self, Bundle, BundleDoc};
use sync_core::credential::{Credential, Enrollment, SignedCredential};
use sync_core::doc::{self, ModelError, briefing, campaign, checklist, dossier};
use sync_core::identity::{ActorProof, DeviceKey, DevicePublicKey, HeadSignature, StoreNonce};
use sync_core::ids::DocTag;
use sync_core::ids::PhotoId;
use sync_core::ids::{DocId, DocKind, EntityId};
use sync_core::model::{Campaign, Checklist, Dossier};
use sync_core::rectification::Signer;
use sync_core::sync::batch::Arrived;
use sync_core::sync::replica::{Outgoing, Replica};
use sync_core::sync::session;
use sync_core::validate;

use crate::StoreError;
use crate::db::{Db, Write};

/// A local edit writes a snapshot of its document once the log after the
/// last one has at least this many rows and is as large, in bytes, as that
/// snapshot: replaying the log then costs about as much as loading the
/// snapshot, so loading never reads much more than twice the snapshot,
/// and snapshots come at least a fifth of the document apart (the edits
/// that write them stay rare enough for the p99).
const SNAPSHOT_MIN_ROWS: usize = 64;
/// ... and at the latest after this many rows (replaying them costs a
/// 2,000-finding dossier's load about 10 ms).
const SNAPSHOT_MAX_ROWS: usize = 500;

/// A local edit keeps its document whole, ready to send
/// (`Store::whole_at_edit`), while the document's last snapshot and the
/// log after it are each at most this large. Encoding grows with the
/// document: measured (`scripts/bench-local`), a 32 KB snapshot costs an
/// edit about 3 ms more, a 64 KB one 6 ms. A day's dossier (50 findings)
/// is about 13 KB.
const WHOLE_AT_EDIT_MAX: usize = 32 * 1024;

/// An open local store. Only one process may hold it.
pub struct Store {
    home: PathBuf,
    pub(crate) db: Db,
    pub(crate) key: DeviceKey,
    pub(crate) proof: ActorProof,
    name: String,
    pub(crate) docs: HashMap<DocId, Loaded>,
    /// Every stored document's heads and place, kept with every write: what
    /// a sync catalog offers, without the documents in memory.
    pub(crate) index: BTreeMap<DocId, Indexed>,
    /// At most this many documents stay in memory (HQ); `None`: all.
    cache_limit: Option<usize>,
    /// Use counter, for evicting the least recently used document.
    tick: u64,
    /// A document `warm` found kept whole for a peer that holds none of
    /// it: the session's next reads of it (`checkpoint`, `whole`) use this
    /// instead of reading the store again.
    pub(crate) warmed: std::cell::RefCell<Option<Warmed>>,
    /// The lock that keeps a second writer out (`None`: opened to look only).
    _lock: Option<File>,
}

/// What `warm` read of a document about to go whole to `peer`.
pub(crate) struct Warmed {
    pub(crate) doc: DocId,
    pub(crate) peer: DevicePublicKey,
    /// The heads the kept batch holds (32 bytes each).
    pub(crate) heads: Vec<u8>,
    pub(crate) whole: sync_core::sync::replica::Whole,
}

pub(crate) struct Loaded {
    pub(crate) doc: Automerge,
    pub(crate) tail: Tail,
    used: u64,
}

impl Loaded {
    pub(crate) fn new(doc: Automerge, tail: Tail) -> Self {
        Self { doc, tail, used: 0 }
    }
}

/// A document's change log after its snapshot.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tail {
    rows: usize,
    bytes: usize,
    /// Bytes of the snapshot (0: none).
    snapshot: usize,
}

impl Tail {
    /// `rows` more rows, of `bytes` in all.
    pub(crate) fn grown(self, rows: usize, bytes: usize) -> Self {
        Self { rows: self.rows + rows, bytes: self.bytes + bytes, ..self }
    }

    fn snapshot_due(&self) -> bool {
        self.rows >= SNAPSHOT_MAX_ROWS || (self.rows >= SNAPSHOT_MIN_ROWS && self.bytes >= self.snapshot)
    }
}

/// A document's entry in the index.
#[derive(Clone, Debug)]
pub(crate) struct Indexed {
    /// Where it belongs (`None` for checklists, which are not synced).
    pub(crate) tag: Option<DocTag>,
    /// Its heads.
    pub(crate) heads: Vec<ChangeHash>,
}

/// What an import brought in.
#[derive(Debug, Default, serde::Serialize)]
pub struct ImportReport {
    /// The device that signed the bundle.
    pub exporter: String,
    /// New changes per document.
    pub changes: BTreeMap<String, usize>,
    /// Photos added.
    pub photos: usize,
}

/// Where a record (hazard, review) lives.
#[derive(Clone, Debug)]
pub struct RecordRef {
    /// The dossier.
    pub dossier: DocId,
    /// The record.
    pub record: EntityId,
}

impl Store {
    /// Creates a new store in `home` with a fresh device key.
    pub fn init(home: &Path, name: &str) -> Result<Self, StoreError> {
        Self::init_with_seed(home, name, random()?)
    }

    /// Creates a new store whose device key is `seed` (HQ's server store
    /// uses HQ's key, so the receipts it signs verify under the pinned key).
    pub fn init_with_seed(home: &Path, name: &str, seed: [u8; 32]) -> Result<Self, StoreError> {
        if name.trim().is_empty() {
            return Err(StoreError::Invalid("设备使用人姓名不能为空（--name）".into()));
        }
        fs::create_dir_all(home.join("blobs")).map_err(StoreError::Io)?;
        let key_path = home.join("device.key");
        if key_path.exists() {
            return Err(StoreError::AlreadyInitialized(home.to_path_buf()));
        }
        let lock = lock(home)?;
        let nonce: [u8; 16] = random()?;
        write_owner_only(&key_path, hex::encode(seed).as_bytes())?;
        let db = Db::open(&home.join("store.db"))?;
        db.persist(vec![
            Write::Meta { key: "nonce", value: nonce.to_vec() },
            Write::Meta { key: "name", value: name.trim().as_bytes().to_vec() },
        ])?;
        Self::assemble(home, db, seed, nonce, name.trim().to_owned(), Some(lock))
    }

    /// Opens the store in `home`.
    pub fn open(home: &Path) -> Result<Self, StoreError> {
        let key_path = home.join("device.key");
        if !key_path.exists() {
            return Err(StoreError::NotInitialized(home.to_path_buf()));
        }
        let lock = lock(home)?;
        Self::opened(home, Db::open(&home.join("store.db"))?, Some(lock))
    }

    /// Opens the store in `home` to look only, beside the process that
    /// holds it (a station relay): reads see what that process has
    /// committed; every write is refused with [`StoreError::ReadOnly`].
    pub fn open_read_only(home: &Path) -> Result<Self, StoreError> {
        if !home.join("device.key").exists() {
            return Err(StoreError::NotInitialized(home.to_path_buf()));
        }
        Self::opened(home, Db::open_read_only(&home.join("store.db"))?, None)
    }

    fn opened(home: &Path, db: Db, lock: Option<File>) -> Result<Self, StoreError> {
        let key_path = home.join("device.key");
        let seed_hex = fs::read_to_string(&key_path).map_err(StoreError::Io)?;
        let seed: [u8; 32] = hex::decode(seed_hex.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| StoreError::Invalid(format!("设备密钥文件 {} 已损坏", key_path.display())))?;
        let nonce: [u8; 16] = db
            .meta("nonce")?
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| StoreError::Invalid("本地数据库缺少设备信息，请重新初始化".into()))?;
        let name = db.meta("name")?.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        Self::assemble(home, db, seed, nonce, name, lock)
    }

    fn assemble(
        home: &Path,
        db: Db,
        seed: [u8; 32],
        nonce: [u8; 16],
        name: String,
        lock: Option<File>,
    ) -> Result<Self, StoreError> {
        let key = DeviceKey::from_seed(seed);
        let proof = ActorProof { key: key.public(), nonce: StoreNonce(nonce) };
        let mut store = Self {
            home: home.to_path_buf(),
            db,
            key,
            proof,
            name,
            docs: HashMap::new(),
            index: BTreeMap::new(),
            cache_limit: None,
            tick: 0,
            warmed: std::cell::RefCell::default(),
            _lock: lock,
        };
        store.read_index()?;
        Ok(store)
    }

    /// Reads the document index; documents stored before it (or before it
    /// recorded photos) are loaded once to record what is missing.
    fn read_index(&mut self) -> Result<(), StoreError> {
        let mut missing = Vec::new();
        for row in self.db.index()? {
            let Ok(id) = row.id.parse::<DocId>() else { continue };
            match row.heads {
                Some(heads) if row.photos || id.kind() != DocKind::EnterpriseDossier => {
                    let tag = row
                        .campaign
                        .and_then(|c| c.parse().ok())
                        .map(|campaign| DocTag { campaign, enterprise: row.enterprise.and_then(|e| e.parse().ok()) });
                    let heads = heads.chunks_exact(32).filter_map(|c| c.try_into().ok().map(ChangeHash)).collect();
                    self.index.insert(id, Indexed { tag, heads });
                }
                _ => missing.push(id),
            }
        }
        for id in missing {
            // Looking only: the index stays in memory; the holder writes it.
            if self.db.read_only() {
                self.loaded(&id)?;
                self.reindex(&id);
                continue;
            }
            let doc = &self.loaded(&id)?.doc;
            let mut writes = vec![heads_write(&id, doc)];
            if id.kind() == DocKind::EnterpriseDossier {
                writes.push(photos_write(&id, &validate::dossier_photos(doc), false));
            }
            self.db.persist(writes)?;
            self.reindex(&id);
        }
        Ok(())
    }

    /// Keeps at most `limit` documents in memory (the least recently used
    /// go first). For HQ, which holds every campaign.
    pub fn set_cache_limit(&mut self, limit: usize) {
        self.cache_limit = Some(limit.max(1));
    }

    /// Records the heads of a document in memory in the index.
    pub(crate) fn reindex(&mut self, id: &DocId) {
        if let Some(loaded) = self.docs.get(id) {
            let entry = Indexed { tag: validate::tag_of(id, &loaded.doc), heads: loaded.doc.get_heads() };
            self.index.insert(id.clone(), entry);
        }
    }

    /// Puts a document in memory and in the index, evicting the least
    /// recently used one if over the limit.
    pub(crate) fn keep(&mut self, id: &DocId, loaded: Loaded) {
        self.docs.insert(id.clone(), loaded);
        self.reindex(id);
        self.touch(id);
    }

    fn touch(&mut self, id: &DocId) {
        self.tick += 1;
        if let Some(loaded) = self.docs.get_mut(id) {
            loaded.used = self.tick;
        }
        let Some(limit) = self.cache_limit else { return };
        while self.docs.len() > limit {
            let oldest = self.docs.iter().filter(|(k, _)| *k != id).min_by_key(|(_, l)| l.used).map(|(k, _)| k.clone());
            match oldest {
                Some(oldest) => self.docs.remove(&oldest),
                None => break,
            };
        }
    }

    /// This device's public key.
    pub fn public_key(&self) -> DevicePublicKey {
        self.key.public()
    }

    /// The name of the person using this device.
    pub fn device_name(&self) -> &str {
        &self.name
    }

    /// The store directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Trusts another device's key (until HQ credentials exist, trust is explicit).
    pub fn trust(&self, key: &DevicePublicKey, name: &str) -> Result<(), StoreError> {
        self.db.persist(vec![Write::Trust { key: key.to_string(), name: name.trim().to_owned() }])
    }

    /// Imports an enrollment: pins HQ's key, records the server address and
    /// this device's credential. The credential must verify under that key
    /// and name this device.
    pub fn enroll(&self, enrollment: &Enrollment) -> Result<Credential, StoreError> {
        let credential = enrollment.verify(&self.key.public(), crate::now_ms())?.clone();
        if let Some(pinned) = self.db.meta("hq_key")?
            && pinned.as_slice() != enrollment.hq.to_bytes().as_slice()
        {
            return Err(StoreError::Invalid("本设备已绑定另一个总部，不能用此入网码".into()));
        }
        self.db.persist(vec![
            Write::Meta { key: "hq_key", value: enrollment.hq.to_bytes().to_vec() },
            Write::Meta { key: "server", value: enrollment.server.as_bytes().to_vec() },
            Write::Meta { key: "credential", value: enrollment.credential.to_bytes() },
        ])?;
        Ok(credential)
    }

    /// This device's enrollment, if it has one.
    pub fn enrollment(&self) -> Result<Option<Enrollment>, StoreError> {
        let (Some(hq), Some(server), Some(credential)) =
            (self.db.meta("hq_key")?, self.db.meta("server")?, self.db.meta("credential")?)
        else {
            return Ok(None);
        };
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("入网信息：{e}"));
        Ok(Some(Enrollment {
            hq: DevicePublicKey::from_bytes(&hq).map_err(|e| corrupt(&e))?,
            server: String::from_utf8(server).map_err(|e| corrupt(&e))?,
            credential: SignedCredential::from_bytes(&credential).map_err(|e| corrupt(&e))?,
        }))
    }

    /// Who records a rectification step on this device: the holder named
    /// by its credential, with its role (before enrollment, the name given
    /// at `field init`, no role).
    pub fn signer(&self) -> Result<Signer, StoreError> {
        Ok(match self.enrollment()? {
            Some(e) => {
                let c = e.credential.credential();
                Signer { name: c.name.clone(), role: Some(c.role.as_str().to_owned()) }
            }
            None => Signer { name: self.name.clone(), role: None },
        })
    }

    /// Trusted devices: (key, name).
    pub fn trusted(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.db.trusted()
    }

    fn trusted_set(&self) -> Result<HashSet<[u8; 32]>, StoreError> {
        let mut set: HashSet<[u8; 32]> = self
            .db
            .trusted()?
            .into_iter()
            .filter_map(|(k, _)| k.parse::<DevicePublicKey>().ok())
            .map(|k| k.to_bytes())
            .collect();
        set.insert(self.key.public().to_bytes());
        Ok(set)
    }

    /// All stored document ids of a kind.
    pub fn doc_ids(&self, kind: DocKind) -> Result<Vec<DocId>, StoreError> {
        Ok(self
            .db
            .docs()?
            .into_iter()
            .filter(|(_, k)| k == kind.as_str())
            .filter_map(|(id, _)| id.parse().ok())
            .collect())
    }

    /// Loads a document into memory (snapshot + later changes). Unknown
    /// derived documents (dossiers, briefings) are not created here.
    pub(crate) fn loaded(&mut self, id: &DocId) -> Result<&mut Loaded, StoreError> {
        if !self.docs.contains_key(id) {
            let stored = self
                .db
                .load(id.to_string())?
                .ok_or_else(|| StoreError::NotFound { what: "文档", id: id.to_string() })?;
            let tail = Tail {
                rows: stored.changes.len(),
                bytes: stored.changes.iter().map(Vec::len).sum(),
                snapshot: stored.snapshot.as_ref().map_or(0, Vec::len),
            };
            let mut doc = rebuilt(id, stored)?;
            doc.set_actor(self.proof.actor_id());
            self.docs.insert(id.clone(), Loaded::new(doc, tail));
        }
        self.touch(id);
        self.docs.get_mut(id).ok_or_else(|| StoreError::NotFound { what: "文档", id: id.to_string() })
    }

    /// Read access to a stored document.
    pub fn document(&mut self, id: &DocId) -> Result<&Automerge, StoreError> {
        Ok(&self.loaded(id)?.doc)
    }

    /// Makes sure a derived document (its genesis) is stored.
    fn ensure_genesis(
        &mut self,
        id: &DocId,
        genesis: impl FnOnce() -> Result<Automerge, ModelError>,
    ) -> Result<(), StoreError> {
        if self.db.load(id.to_string())?.is_some() {
            return Ok(());
        }
        let mut doc = genesis()?;
        // Looking only: the empty document is shown, not stored.
        if self.db.read_only() {
            self.keep(id, Loaded::new(doc, Tail::default()));
            return Ok(());
        }
        let mut writes = vec![Write::Doc { id: id.to_string(), kind: id.kind().as_str() }];
        writes.extend(doc.get_changes(&[]).iter().map(|c| change_write(id, c, "genesis")));
        writes.push(heads_write(id, &doc));
        if id.kind() == DocKind::EnterpriseDossier {
            writes.push(photos_write(id, &BTreeSet::new(), false));
        }
        self.db.persist(writes)?;
        doc.set_actor(self.proof.actor_id());
        self.keep(id, Loaded::new(doc, Tail::default().grown(1, 0)));
        Ok(())
    }

    /// Runs `f` as one transaction on document `id`, then signs and durably
    /// stores the change it made. Returns what `f` returned.
    pub fn edit<T>(
        &mut self,
        id: &DocId,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, ModelError>,
    ) -> Result<T, StoreError> {
        if id.kind() == DocKind::Checklist {
            return Err(StoreError::Model(ModelError::Rule("检查清单为只读，由总部发布".into())));
        }
        let now = crate::now_ms();
        self.loaded(id)?;
        let loaded =
            self.docs.get_mut(id).ok_or_else(|| StoreError::NotFound { what: "文档", id: id.to_string() })?;
        let committed = doc::edit(&mut loaded.doc, now, f)?;
        let Some(hash) = committed.hash else {
            return Ok(committed.value);
        };
        let Some(change) = loaded.doc.get_change_by_hash(&hash) else {
            self.docs.remove(id);
            return Err(StoreError::Corrupt(format!("{id}: 刚提交的修改不存在")));
        };
        let signature = self.key.sign_head(id, &self.proof, hash);
        let mut batch =
            vec![change_write(id, &change, "local"), evidence_write(id, &signature), heads_write(id, &loaded.doc)];
        if id.kind() == DocKind::EnterpriseDossier {
            let added = validate::added_by(&change);
            if !added.is_empty() {
                batch.push(photos_write(id, &added, true));
            }
        }
        loaded.tail = loaded.tail.grown(1, change.raw_bytes().len());
        // The snapshot holds exactly what the log holds once this batch is
        // in: the document in memory never runs ahead of the log.
        if loaded.tail.snapshot_due() {
            let bytes = loaded.doc.save();
            loaded.tail = Tail { snapshot: bytes.len(), ..Tail::default() };
            batch.push(Write::Snapshot { doc: id.to_string(), bytes });
        }
        if loaded.tail.snapshot.max(loaded.tail.bytes) <= WHOLE_AT_EDIT_MAX {
            batch.extend(self.whole_at_edit(id, &signature));
        }
        if let Err(e) = self.db.persist(batch) {
            self.docs.remove(id);
            return Err(e);
        }
        self.reindex(id);
        Ok(committed.value)
    }

    /// The document whole, as a peer holding none of it gets it, with its
    /// evidence (`own`: the signature just made over its new head, not yet
    /// stored): kept (`whole_batches`, until its heads move), so the
    /// end-of-day sync sends it without loading it. `None` when an author's
    /// evidence is missing (the sync then works it out and says why).
    fn whole_at_edit(&self, id: &DocId, own: &HeadSignature) -> Option<Write> {
        let doc = &self.docs.get(id)?.doc;
        let changes: Vec<Outgoing> = doc.get_changes_meta(&[]).into_iter().map(Outgoing::from).collect();
        let lookup = |head: &ChangeHash| {
            if *head == own.head {
                // Our own credential travels in the hello, not with evidence.
                Some((own.clone(), Vec::new()))
            } else {
                Replica::evidence(self, id, head)
            }
        };
        let evidence = session::evidence_for(lookup, id, &changes).ok()?;
        let batch = sync_core::sync::batch::encode_document(doc).ok()?;
        whole_write(id, doc, batch, &evidence, changes.len()).ok()
    }

    /// Creates a campaign; returns its id.
    pub fn create_campaign(
        &mut self,
        name: &str,
        kind: sync_core::model::CampaignKind,
        start: &str,
        end: &str,
    ) -> Result<DocId, StoreError> {
        let id = DocId::new_campaign(random()?);
        let mut doc = Automerge::new().with_actor(self.proof.actor_id());
        let committed = doc::edit(&mut doc, crate::now_ms(), |tx| campaign::create(tx, &id, name, kind, start, end))?;
        let hash = committed.hash.ok_or_else(|| StoreError::Corrupt("新检查活动没有产生修改".into()))?;
        let change =
            doc.get_change_by_hash(&hash).ok_or_else(|| StoreError::Corrupt("新检查活动的修改不存在".into()))?;
        let signature = self.key.sign_head(&id, &self.proof, hash);
        self.db.persist(vec![
            Write::Doc { id: id.to_string(), kind: DocKind::Campaign.as_str() },
            change_write(&id, &change, "local"),
            evidence_write(&id, &signature),
            heads_write(&id, &doc),
        ])?;
        self.keep(&id, Loaded::new(doc, Tail::default().grown(1, 0)));
        self.ensure_genesis(&DocId::briefing(&id), || briefing::create(&id))?;
        Ok(id)
    }

    /// Reads a campaign.
    pub fn campaign(&mut self, id: &DocId) -> Result<Campaign, StoreError> {
        Ok(campaign::read(self.document(id)?)?)
    }

    /// Opens the dossier of an enterprise of a campaign, creating its genesis
    /// if this device has not opened it before.
    pub fn open_dossier(&mut self, campaign: &DocId, enterprise: &str) -> Result<DocId, StoreError> {
        let info = self.campaign(campaign)?;
        let entry = info
            .enterprises
            .get(enterprise)
            .or_else(|| info.enterprises.values().find(|e| e.name == enterprise))
            .ok_or_else(|| StoreError::NotFound { what: "企业", id: enterprise.to_owned() })?;
        let code = entry.unified_social_credit_code.clone();
        let id = DocId::dossier(campaign, &code);
        self.ensure_genesis(&id, || dossier::create(campaign, &code))?;
        Ok(id)
    }

    /// Reads a dossier.
    pub fn dossier(&mut self, id: &DocId) -> Result<Dossier, StoreError> {
        Ok(dossier::read(self.document(id)?)?)
    }

    /// Finds a hazard by id or unique id prefix (at least 6 characters).
    pub fn find_hazard(&mut self, prefix: &str) -> Result<RecordRef, StoreError> {
        self.find_record("hazards", "隐患", prefix)
    }

    /// Finds a 四不放过 review by id or unique id prefix.
    pub fn find_review(&mut self, prefix: &str) -> Result<RecordRef, StoreError> {
        self.find_record("accident_reviews", "四不放过核查", prefix)
    }

    fn find_record(&mut self, collection: &str, what: &'static str, prefix: &str) -> Result<RecordRef, StoreError> {
        let prefix = prefix.trim().to_ascii_uppercase();
        if prefix.len() < 6 {
            return Err(StoreError::Invalid(format!("{what}编号至少输入前 6 位")));
        }
        let mut found = Vec::new();
        for id in self.doc_ids(DocKind::EnterpriseDossier)? {
            for record in dossier::record_ids(self.document(&id)?, collection)? {
                if record.starts_with(&prefix) {
                    found.push(RecordRef { dossier: id.clone(), record: record.parse()? });
                }
            }
        }
        match found.len() {
            0 => Err(StoreError::NotFound { what, id: prefix }),
            1 => Ok(found.remove(0)),
            n => Err(StoreError::Invalid(format!("编号前缀 {prefix} 对应 {n} 条{what}，请输入更长的编号"))),
        }
    }

    /// Copies a photo into the content-addressed blob store; returns its
    /// SHA-256. The same photo twice is stored once.
    pub fn add_photo(&self, path: &Path) -> Result<String, StoreError> {
        let bytes = fs::read(path).map_err(|e| StoreError::Photo(path.to_path_buf(), e))?;
        if bytes.len() as u64 > sync_core::sync::photo::MAX_PHOTO {
            return Err(StoreError::Invalid(format!("{} 超过 32 MiB，无法同步，请压缩后再添加", path.display())));
        }
        if !looks_like_image(&bytes) {
            return Err(StoreError::Invalid(format!("{} 不是 JPEG/PNG/WebP/HEIC 图片", path.display())));
        }
        let sha = sync_core::ids::sha256_hex(&bytes);
        self.put_blob(&sha, &bytes)?;
        Ok(sha)
    }

    fn blob_path(&self, sha: &str) -> PathBuf {
        crate::photos::blob_path(&self.home, sha)
    }

    /// Whether a photo's bytes are held here.
    pub fn has_blob(&self, sha: &str) -> bool {
        sync_core::ids::is_blob_name(sha) && self.blob_path(sha).exists()
    }

    fn put_blob(&self, sha: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.write_blob_file(sha, bytes)?;
        self.db.persist(vec![Write::Blob { sha256: sha.to_owned(), size: bytes.len() as u64 }])
    }

    /// Writes a photo file durably (temp file, fsync, rename) if absent.
    fn write_blob_file(&self, sha: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.blob_path(sha);
        if !path.exists() {
            let dir = path.parent().ok_or_else(|| StoreError::Corrupt("照片路径无效".into()))?;
            fs::create_dir_all(dir).map_err(StoreError::Io)?;
            let tmp = dir.join(format!(".{sha}.tmp"));
            let mut file = File::create(&tmp).map_err(StoreError::Io)?;
            file.write_all(bytes).and_then(|_| file.sync_all()).map_err(StoreError::Io)?;
            fs::rename(&tmp, &path).map_err(StoreError::Io)?;
        }
        Ok(())
    }

    /// Loads the embedded starter checklists (read-only, as HQ publishes them).
    pub fn checklists() -> Result<Vec<Checklist>, StoreError> {
        crate::STARTER_CHECKLISTS
            .iter()
            .map(|text| {
                let c: Checklist = serde_json::from_str(text).map_err(|e| StoreError::Invalid(e.to_string()))?;
                checklist::validate(&c)?;
                Ok(c)
            })
            .collect()
    }

    /// All conflicts and rule issues needing review, per dossier.
    pub fn review_items(&mut self) -> Result<Vec<ReviewEntry>, StoreError> {
        let mut out = Vec::new();
        for id in self.doc_ids(DocKind::EnterpriseDossier)? {
            let doc = self.document(&id)?;
            let conflicts = doc::conflicts::conflicts(doc)?;
            let rules = doc::conflicts::rule_issues(&dossier::read(doc)?);
            if !conflicts.is_empty() || !rules.is_empty() {
                out.push(ReviewEntry { dossier: id, conflicts, rules });
            }
        }
        Ok(out)
    }

    /// Counts for `field status`: (local changes, received changes).
    pub fn change_counts(&self) -> Result<(i64, i64), StoreError> {
        self.db.change_counts()
    }

    /// Builds a signed bundle of every document (and the photos they
    /// reference that this device holds).
    pub fn export_bundle(&mut self) -> Result<Vec<u8>, StoreError> {
        let mut docs = Vec::new();
        let mut blobs = BTreeMap::new();
        let ids: Vec<DocId> = self.db.docs()?.into_iter().filter_map(|(id, _)| id.parse().ok()).collect();
        for id in ids {
            self.loaded(&id)?;
            let doc = &self.docs.get(&id).ok_or_else(|| StoreError::NotFound { what: "文档", id: id.to_string() })?.doc;
            let changes = doc.get_changes(&[]);
            // The latest change of each author; its signature covers the rest.
            let mut latest: BTreeMap<Vec<u8>, (u64, ChangeHash)> = BTreeMap::new();
            let genesis = doc::genesis_actor(&id);
            for c in changes.iter().filter(|c| *c.actor_id() != genesis) {
                let entry = latest.entry(c.actor_id().to_bytes().to_vec()).or_insert((0, c.hash()));
                if c.seq() >= entry.0 {
                    *entry = (c.seq(), c.hash());
                }
            }
            let heads: Vec<ChangeHash> = latest.values().map(|(_, h)| *h).collect();
            let rows = self.db.evidence(id.to_string(), heads.iter().map(|h| h.0.to_vec()).collect())?;
            let mut evidence = Vec::new();
            for (head, row) in heads.iter().zip(rows) {
                let row = row.ok_or_else(|| StoreError::Corrupt(format!("{id}: 修改 {head} 缺少签名证据")))?;
                evidence.push(evidence_of(*head, row)?);
            }
            // Read without the model: a backup never fails on content.
            if id.kind() == DocKind::EnterpriseDossier {
                for sha in validate::dossier_photos(doc).iter().map(PhotoId::to_string) {
                    if self.has_blob(&sha) && !blobs.contains_key(&sha) {
                        let bytes = fs::read(self.blob_path(&sha)).map_err(StoreError::Io)?;
                        blobs.insert(sha, bytes);
                    }
                }
            }
            docs.push(BundleDoc { id, changes, evidence });
        }
        // The authors' credentials go along, so the importer can pass their
        // work on to HQ before they sync themselves.
        let authors: BTreeSet<[u8; 32]> =
            docs.iter().flat_map(|d| d.evidence.iter().map(|e| e.actor.key.to_bytes())).collect();
        let mut credentials = Vec::new();
        for author in authors {
            let stored = if author == self.key.public().to_bytes() {
                self.db.meta("credential")?
            } else {
                self.db.author_credential(author.to_vec())?
            };
            if let Some(bytes) = stored {
                credentials.push(SignedCredential::from_bytes(&bytes)?);
            }
        }
        let bundle = Bundle { exporter: self.key.public(), created_at: crate::now_ms(), docs, blobs, credentials };
        Ok(bundle::encode(&bundle, &self.key)?)
    }

    /// Verifies and imports a bundle. Either everything in it is stored or
    /// nothing is: any bad signature, untrusted author, spoofed actor,
    /// missing dependency or invalid resulting document refuses the whole file.
    pub fn import_bundle(&mut self, bytes: &[u8]) -> Result<ImportReport, StoreError> {
        let trusted = self.trusted_set()?;
        let is_trusted = |k: &DevicePublicKey| trusted.contains(&k.to_bytes());
        let bundle = bundle::decode(bytes, is_trusted)?;
        let source = bundle.exporter.to_string();
        let mut report = ImportReport { exporter: source.clone(), ..ImportReport::default() };
        let mut batch = Vec::new();
        let mut staged = Vec::new();
        let mut photos = BTreeSet::new();
        batch.extend(self.credential_writes(&bundle.credentials)?);
        // Who signed, as this store knows them: looked up once per bundle.
        let signers = self.signers(bundle.docs.iter().flat_map(|d| &d.evidence), &bundle.credentials)?;
        for incoming in bundle.docs {
            let id = incoming.id.clone();
            let current = match self.loaded(&id) {
                Ok(l) => Some(l.doc.clone()),
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            let is_new = current.is_none();
            let held = |h: &ChangeHash| current.as_ref().is_some_and(|d| d.get_change_meta_by_hash(h).is_some());
            let fresh: Vec<Change> = incoming.changes.into_iter().filter(|c| !held(&c.hash())).collect();
            let check = BundleDoc { id: id.clone(), changes: fresh, evidence: incoming.evidence };
            let evidence = bundle::verify_document(&check, is_trusted, held)?;
            if check.changes.is_empty() {
                continue;
            }
            // The same check as a sync session's: the door is different,
            // the rules are not.
            let signer = |actor: &ActorId| {
                let e = evidence.iter().find(|e| e.actor.actor_id() == *actor)?;
                signers.get(&e.actor.key.to_bytes()).cloned()
            };
            let checked = Arrived::Changes(check.changes.clone())
                .checked(&id, current)
                .and_then(|checked| validate::authorship(&checked.steps, signer).map(|()| checked))
                .map_err(|e| StoreError::Rejected { doc: id.to_string(), reason: e.0 })?;
            let referenced = checked.typed.photos();
            let mut doc = checked.result;
            if is_new {
                batch.push(Write::Doc { id: id.to_string(), kind: id.kind().as_str() });
            }
            batch.extend(check.changes.iter().map(|c| change_write(&id, c, &source)));
            batch.extend(evidence.iter().map(|e| evidence_write(&id, e)));
            batch.push(heads_write(&id, &doc));
            if let Some(referenced) = referenced {
                batch.push(photos_write(&id, &referenced, false));
                photos.extend(referenced);
            }
            report.changes.insert(id.to_string(), check.changes.len());
            doc.set_actor(self.proof.actor_id());
            let bytes = check.changes.iter().map(|c| c.raw_bytes().len()).sum();
            staged.push((id, doc, check.changes.len(), bytes));
        }
        // Only photos the imported dossiers reference are kept. Files go
        // first: they are content-addressed, so if the transaction below
        // fails they are unreferenced copies, never wrong data.
        let referenced = |sha: &str| sha.parse::<PhotoId>().is_ok_and(|p| photos.contains(&p));
        for (sha, bytes) in bundle.blobs.iter().filter(|(sha, _)| referenced(sha)) {
            if !self.has_blob(sha) {
                self.write_blob_file(sha, bytes)?;
                batch.push(Write::Blob { sha256: sha.clone(), size: bytes.len() as u64 });
                report.photos += 1;
            }
        }
        self.db.persist(batch)?;
        for (id, doc, rows, bytes) in staged {
            let tail = self.docs.get(&id).map(|l| l.tail).unwrap_or_default().grown(rows, bytes);
            self.keep(&id, Loaded::new(doc, tail));
        }
        Ok(report)
    }

    /// The authors' credentials from a bundle worth keeping. An enrolled
    /// store keeps those issued by its HQ, valid now, not revoked, and newer
    /// than a valid one already held; the others are left out rather than
    /// refused: the bundle's trust rests on its signatures, and work without
    /// a credential is only held back at sync (`Summary::withheld`), where a
    /// stale credential would refuse it all. A store not yet enrolled cannot
    /// check them and keeps, of each author, the one that expires last: every
    /// credential is judged again when the work it vouches for is sent, so
    /// one that turns out forged or stale holds back only that work, and a
    /// valid one imported after enrollment replaces it. (A forged one with a
    /// later expiry, from a trusted device, displaces a valid one imported
    /// before enrollment: that author's work waits for the next bundle that
    /// carries the valid one, or for its author's own sync.)
    /// Who holds each device that signed `evidence`, as this store knows:
    /// from the credentials a bundle carries (HQ-signed, when enrolled) or
    /// holds, else the name the device is trusted under.
    fn signers<'a>(
        &self,
        evidence: impl IntoIterator<Item = &'a HeadSignature>,
        carried: &[SignedCredential],
    ) -> Result<HashMap<[u8; 32], Signer>, StoreError> {
        let hq = self.enrollment()?.map(|e| e.hq);
        let now = crate::now_ms();
        let of = |signed: &SignedCredential| {
            let c = match &hq {
                Some(hq) => signed.verify(hq, now, None).ok()?,
                None => signed.credential(),
            };
            Some(Signer { name: c.name.clone(), role: Some(c.role.as_str().to_owned()) })
        };
        let trusted: HashMap<String, String> = self.db.trusted()?.into_iter().collect();
        let mut out = HashMap::new();
        for key in evidence.into_iter().map(|e| e.actor.key) {
            let bytes = key.to_bytes();
            if out.contains_key(&bytes) {
                continue;
            }
            let carried = carried.iter().find(|c| c.credential().device_key().is_ok_and(|k| k == key));
            let held = match carried {
                Some(_) => None,
                None => self.db.author_credential(bytes.to_vec())?.and_then(|b| SignedCredential::from_bytes(&b).ok()),
            };
            let signer = carried
                .and_then(of)
                .or_else(|| held.as_ref().and_then(of))
                .or_else(|| trusted.get(&key.to_string()).map(|name| Signer { name: name.clone(), role: None }));
            if let Some(signer) = signer {
                out.insert(bytes, signer);
            }
        }
        Ok(out)
    }

    fn credential_writes(&self, credentials: &[SignedCredential]) -> Result<Vec<Write>, StoreError> {
        let hq = self.enrollment()?.map(|e| e.hq);
        let revocations = self.revocations()?;
        let revocations = match (&hq, &revocations) {
            (Some(hq), Some(list)) => Some(list.verify(hq)?),
            _ => None,
        };
        let now = crate::now_ms();
        let usable = |signed: &SignedCredential| match &hq {
            Some(hq) => signed.verify(hq, now, revocations).ok().cloned(),
            None => Some(signed.credential().clone()),
        };
        let mut writes = Vec::new();
        for signed in credentials {
            let Some(credential) = usable(signed) else { continue };
            let key = credential.device_key()?;
            if key == self.key.public() {
                continue;
            }
            let held = self.db.author_credential(key.to_bytes().to_vec())?;
            let order = |c: &Credential| (c.not_after, c.serial);
            let newer = held
                .and_then(|b| SignedCredential::from_bytes(&b).ok())
                .and_then(|held| usable(&held))
                .is_none_or(|held| order(&credential) > order(&held));
            if newer {
                writes.push(Write::AuthorCredential { key: key.to_bytes().to_vec(), credential: signed.to_bytes() });
            }
        }
        Ok(writes)
    }
}

/// What needs review in one dossier.
#[derive(Debug, serde::Serialize)]
pub struct ReviewEntry {
    /// The dossier.
    pub dossier: DocId,
    /// Critical fields with concurrent values.
    pub conflicts: Vec<doc::conflicts::Conflict>,
    /// Rules broken by merges.
    pub rules: Vec<doc::conflicts::RuleIssue>,
}

/// The index row of a document: its heads and where it belongs.
pub(crate) fn heads_write(id: &DocId, doc: &Automerge) -> Write {
    let tag = validate::tag_of(id, doc);
    Write::Heads {
        doc: id.to_string(),
        heads: doc.get_heads().iter().flat_map(|h| h.0).collect(),
        campaign: tag.as_ref().map(|t| t.campaign.to_string()),
        enterprise: tag.and_then(|t| t.enterprise).map(|e| e.to_string()),
    }
}

/// The photos a dossier references, for the index: all of them, or (`add`)
/// ones to add to those recorded. Photos once referenced may stay listed
/// after their reference is removed; a listed photo is only ever offered
/// or accepted, never required.
pub(crate) fn photos_write(id: &DocId, photos: &BTreeSet<PhotoId>, add: bool) -> Write {
    Write::Photos { doc: id.to_string(), digests: photos.iter().flat_map(|p| *p.digest()).collect(), add }
}

pub(crate) fn change_write(id: &DocId, change: &Change, source: &str) -> Write {
    Write::Change {
        doc: id.to_string(),
        hash: change.hash().0.to_vec(),
        actor: change.actor_id().to_bytes().to_vec(),
        bytes: change.raw_bytes().to_vec(),
        source: source.to_owned(),
        count: 1,
    }
}

/// `doc` kept whole as `batch`, with the evidence a peer needs
/// (`whole_batches`, read back by `Replica::whole`).
pub(crate) fn whole_write(
    id: &DocId,
    doc: &Automerge,
    batch: Vec<u8>,
    evidence: &[sync_core::sync::message::Evidence],
    changes: usize,
) -> Result<Write, StoreError> {
    let mut encoded = Vec::new();
    ciborium::into_writer(evidence, &mut encoded).map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(Write::Whole {
        doc: id.to_string(),
        heads: doc.get_heads().iter().flat_map(|h| h.0).collect(),
        batch,
        evidence: encoded,
        changes,
    })
}

/// A whole document as it arrived (`batch`, a zstd frame), one log row.
pub(crate) fn whole_log_write(id: &DocId, doc: &Automerge, batch: Vec<u8>, count: usize, source: &str) -> Write {
    Write::Change {
        doc: id.to_string(),
        hash: doc.get_heads().iter().flat_map(|h| h.0).collect(),
        actor: Vec::new(),
        bytes: batch,
        source: source.to_owned(),
        count: i64::try_from(count).unwrap_or(i64::MAX),
    }
}

/// Replays logged rows onto `doc` (empty, or loaded from a snapshot), in
/// order: change chunks, and whole documents as they arrived.
/// A document rebuilt from what is stored of it.
fn rebuilt(id: &DocId, stored: crate::db::StoredDoc) -> Result<Automerge, StoreError> {
    let doc = match &stored.snapshot {
        Some(bytes) => Automerge::load(bytes).map_err(|e| StoreError::Corrupt(format!("{id}: {e}")))?,
        None => Automerge::new(),
    };
    let doc = replay(doc, stored.changes).map_err(|e| StoreError::Corrupt(format!("{id}: {e}")))?;
    if !doc.get_missing_deps(&[]).is_empty() {
        return Err(StoreError::Corrupt(format!("{id}: 修改记录不完整")));
    }
    Ok(doc)
}

/// Document `id` of the store in `home`, read from disk on a read-only
/// connection of its own: for a reader beside the process that holds the
/// store (HQ's read model), which must not wait for that process's work.
pub fn stored_document(home: &Path, id: &DocId) -> Result<Option<Automerge>, StoreError> {
    crate::db::stored_at(home, id.as_str())?.map(|stored| rebuilt(id, stored)).transpose()
}

/// Who signed changes of document `id` in the store in `home`: the proofs
/// binding each author's actor to its device key, read from the signature
/// evidence on a read-only connection of its own (like [`stored_document`]).
pub fn stored_signers(home: &Path, id: &DocId) -> Result<Vec<ActorProof>, StoreError> {
    let rows = crate::db::signers_at(home, id.as_str())?;
    rows.into_iter().map(|(key, nonce)| proof(&key, nonce)).collect()
}

fn replay(mut doc: Automerge, rows: Vec<Vec<u8>>) -> Result<Automerge, String> {
    // Nothing applied yet (not even changes queued for missing
    // dependencies): a whole document can simply be loaded.
    let mut untouched = doc.get_heads().is_empty();
    let mut changes = Vec::new();
    for row in rows {
        if !sync_core::sync::batch::is_compressed(&row) {
            changes.push(Change::from_bytes(row).map_err(|e| e.to_string())?);
            untouched = false;
            continue;
        }
        doc.apply_changes(std::mem::take(&mut changes)).map_err(|e| e.to_string())?;
        let whole = sync_core::sync::batch::expand(&row)?;
        if untouched {
            doc = Automerge::load(&whole).map_err(|e| e.to_string())?;
            untouched = false;
        } else {
            doc.load_incremental(&whole).map_err(|e| e.to_string())?;
        }
    }
    doc.apply_changes(changes).map_err(|e| e.to_string())?;
    Ok(doc)
}

pub(crate) fn evidence_write(id: &DocId, sig: &HeadSignature) -> Write {
    Write::Evidence {
        doc: id.to_string(),
        head: sig.head.0.to_vec(),
        key: sig.actor.key.to_bytes().to_vec(),
        nonce: sig.actor.nonce.0.to_vec(),
        sig: sig.signature.to_vec(),
    }
}

pub(crate) fn evidence_of(head: ChangeHash, row: crate::db::EvidenceRow) -> Result<HeadSignature, StoreError> {
    let signature = row.sig.try_into().map_err(|_| StoreError::Corrupt("签名证据格式错误".into()))?;
    Ok(HeadSignature { actor: proof(&row.key, row.nonce)?, head, signature })
}

/// An actor's proof as stored beside a signature.
fn proof(key: &[u8], nonce: Vec<u8>) -> Result<ActorProof, StoreError> {
    let corrupt = || StoreError::Corrupt("签名证据格式错误".into());
    Ok(ActorProof {
        key: DevicePublicKey::from_bytes(key).map_err(|_| corrupt())?,
        nonce: StoreNonce(nonce.try_into().map_err(|_| corrupt())?),
    })
}

fn lock(home: &Path) -> Result<File, StoreError> {
    let file =
        OpenOptions::new().create(true).truncate(false).write(true).open(home.join("lock")).map_err(StoreError::Io)?;
    file.try_lock().map_err(|_| StoreError::Locked(home.to_path_buf()))?;
    Ok(file)
}

fn write_owner_only(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(StoreError::Io)?;
    file.write_all(bytes).and_then(|_| file.sync_all()).map_err(StoreError::Io)
}

/// Random bytes from the operating system.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Invalid(format!("无法获取随机数：{e}")))?;
    Ok(bytes)
}

/// A new entity id (ULID) from the clock and the OS's randomness.
pub fn new_entity_id() -> Result<EntityId, StoreError> {
    let r: [u8; 16] = random()?;
    Ok(EntityId::new(crate::now_ms().max(0) as u64, u128::from_le_bytes(r)))
}

fn looks_like_image(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
        || bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        || (bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP")
        || (bytes.len() > 12 && &bytes[4..8] == b"ftyp")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::model::{CampaignKind, Domain, Enterprise};

    /// Adds construction enterprise `code` to the campaign; returns its code.
    fn add_enterprise(store: &mut Store, campaign_id: &DocId, code: &str, name: &str) -> sync_core::ids::CreditCode {
        let code: sync_core::ids::CreditCode = code.parse().unwrap();
        let enterprise = Enterprise {
            name: name.into(),
            unified_social_credit_code: code.clone(),
            domain: Domain::Construction,
            project: String::new(),
            address: String::new(),
            dossier_id: DocId::dossier(campaign_id, &code),
        };
        store.edit(campaign_id, |tx| campaign::add_enterprise(tx, campaign_id, &enterprise)).unwrap();
        code
    }

    fn store_with_dossier(home: &Path) -> (Store, DocId, DocId) {
        let mut store = Store::init(home, "张三").unwrap();
        let campaign_id = store
            .create_campaign("联合检查", CampaignKind::ConstructionJointInspection, "2026-11-24", "2026-11-25")
            .unwrap();
        let code = add_enterprise(&mut store, &campaign_id, "91640200MA76XYW123", "某建设集团");
        let dossier_id = store.open_dossier(&campaign_id, code.as_str()).unwrap();
        (store, campaign_id, dossier_id)
    }

    #[test]
    fn dossier_rows_record_their_photos_and_old_stores_are_filled_in() {
        use crate::photos::PhotoSide as _;
        use sync_core::codes::AccidentType;
        use sync_core::ids::PhotoId;
        use sync_core::model::{Hazard, HazardKind, HazardLevel, Location, Rectification};

        let dir = tempfile::TempDir::new().unwrap();
        let (mut store, _, dossier_id) = store_with_dossier(dir.path());
        let photo = PhotoId::from_digest([7; 32]);
        let hazard = Hazard {
            subcontractor: String::new(),
            title: "临边未设防护栏杆".into(),
            description: "3号楼5层东侧临边未设防护栏杆".into(),
            hazard_kind: HazardKind::UnsafeCondition,
            accident_type: AccidentType::gb6441_1986("09").unwrap(),
            level: HazardLevel::General,
            major_hazard_criterion: None,
            location: Location { text: "3号楼".into(), gps: None },
            legal_basis: String::new(),
            photos: [(photo.to_string(), "IMG_1.jpg".to_owned())].into(),
            inspector: "张三".into(),
            found_at: "2026-11-24T01:00:00Z".into(),
            found_on: String::new(),
            checklist_item: None,
            deleted: false,
            rectification: Rectification::default(),
        };
        let id = new_entity_id().unwrap();
        store.edit(&dossier_id, |tx| dossier::add_hazard(tx, &id, &hazard)).unwrap();
        // A later edit adds a photo; another adds none.
        let second = PhotoId::from_digest([8; 32]);
        store
            .edit(&dossier_id, |tx| {
                dossier::modify_hazard(tx, &id, |h| {
                    h.photos.insert(second.to_string(), "IMG_2.jpg".into());
                    Ok(())
                })
            })
            .unwrap();
        store
            .edit(&dossier_id, |tx| {
                dossier::modify_hazard(tx, &id, |h| {
                    h.title = "临边防护缺失".into();
                    Ok(())
                })
            })
            .unwrap();
        // Read from the row, with no document in memory.
        store.docs.clear();
        assert_eq!(store.referenced(&|_| true).unwrap(), [photo, second].into());
        assert!(store.docs.is_empty());
        // Each photo-adding edit appended its photos; none rewrote the list.
        let adds = |store: &Store| {
            store.db.call(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM doc_photo_adds", [], |r| r.get::<_, i64>(0))?))
        };
        assert_eq!(adds(&store).unwrap(), 2);

        // A store from before photos were recorded: filled in on opening.
        store.db.call(|conn| Ok(conn.execute("UPDATE docs SET photos = NULL", [])?)).unwrap();
        drop(store);
        let mut store = Store::open(dir.path()).unwrap();
        store.docs.clear();
        assert_eq!(store.referenced(&|_| true).unwrap(), [photo, second].into());
        assert_eq!(adds(&store).unwrap(), 0, "the whole list, written again, replaces the additions");
    }

    #[test]
    fn one_process_per_store() {
        let dir = tempfile::TempDir::new().unwrap();
        let _store = Store::init(dir.path(), "张三").unwrap();
        assert!(matches!(Store::open(dir.path()), Err(StoreError::Locked(_))));
    }

    /// Beside the process that holds a store, another may look: it reads
    /// what was committed, an enterprise's dossier not yet stored reads as
    /// empty (and stays unstored), and every write is refused.
    #[test]
    fn a_second_process_may_only_look() {
        let dir = tempfile::TempDir::new().unwrap();
        let (mut holder, campaign_id, _) = store_with_dossier(dir.path());
        let code = add_enterprise(&mut holder, &campaign_id, "91640200MA76XYW124", "某劳务公司");

        let mut looker = Store::open_read_only(dir.path()).unwrap();
        assert_eq!(looker.campaign(&campaign_id).unwrap().enterprises.len(), 2);
        let unopened = looker.open_dossier(&campaign_id, code.as_str()).unwrap();
        assert!(looker.dossier(&unopened).unwrap().hazards.is_empty());
        assert!(holder.db.load(unopened.to_string()).unwrap().is_none(), "looking stores nothing");
        let member =
            sync_core::model::TeamMember {
                name: "王五".into(), role: "检查员".into(), organization: String::new()
            };
        let refused = looker.edit(&campaign_id, |tx| campaign::add_member(tx, &new_entity_id().unwrap(), &member));
        assert!(matches!(refused, Err(StoreError::ReadOnly)), "{refused:?}");
    }

    /// `n` local edits, each its own change.
    fn add_members(store: &mut Store, campaign_id: &DocId, n: usize) {
        for i in 0..n {
            let member = sync_core::model::TeamMember {
                name: format!("成员{i}"),
                role: "检查员".into(),
                organization: String::new(),
            };
            let id = new_entity_id().unwrap();
            store.edit(campaign_id, |tx| campaign::add_member(tx, &id, &member)).unwrap();
        }
    }

    #[test]
    fn a_days_edits_leave_a_short_log_after_the_snapshot() {
        let dir = tempfile::TempDir::new().unwrap();
        let (mut store, campaign_id, _) = store_with_dossier(dir.path());
        add_members(&mut store, &campaign_id, 150);
        let heads = store.document(&campaign_id).unwrap().get_heads();
        let tail: i64 = store
            .db
            .call(move |conn| {
                Ok(conn.query_row(
                    "SELECT COUNT(*) FROM changes WHERE doc_id = ?1
                     AND seq > (SELECT upto FROM snapshots WHERE doc_id = ?1)",
                    [campaign_id.to_string()],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert!((1..SNAPSHOT_MIN_ROWS as i64).contains(&tail), "{tail} rows after the snapshot");
        drop(store);
        let mut store = Store::open(dir.path()).unwrap();
        let campaign_id = store.doc_ids(DocKind::Campaign).unwrap().remove(0);
        assert_eq!(store.document(&campaign_id).unwrap().get_heads(), heads);
    }

    #[test]
    fn an_edit_keeps_a_small_document_whole_for_sync() {
        let dir = tempfile::TempDir::new().unwrap();
        let (mut store, campaign_id, _) = store_with_dossier(dir.path());
        let member =
            sync_core::model::TeamMember {
                name: "王五".into(), role: "检查员".into(), organization: String::new()
            };
        store.edit(&campaign_id, |tx| campaign::add_member(tx, &new_entity_id().unwrap(), &member)).unwrap();
        let doc = store.document(&campaign_id).unwrap().clone();
        let whole = Replica::whole(&store, &campaign_id).expect("kept whole");
        assert_eq!(whole.changes, doc.get_changes(&[]).len());
        let Ok(sync_core::sync::batch::Arrived::Document { doc: sent, .. }) =
            sync_core::sync::batch::decode(&whole.batch)
        else {
            panic!("not a whole document")
        };
        assert_eq!(sent.get_heads(), doc.get_heads());
        // One signature: this device's, over its latest change.
        assert_eq!(whole.evidence.len(), 1);
        assert_eq!(whole.evidence[0].head.as_slice(), doc.get_heads()[0].0.as_slice());
    }

    #[test]
    fn reopening_reads_snapshot_plus_later_changes() {
        let dir = tempfile::TempDir::new().unwrap();
        let (mut store, campaign_id, dossier_id) = store_with_dossier(dir.path());
        // Cross the snapshot threshold, then add a few changes after it.
        add_members(&mut store, &campaign_id, SNAPSHOT_MAX_ROWS + 5);
        let heads = store.document(&campaign_id).unwrap().get_heads();
        let exported = store.export_bundle().unwrap();
        drop(store);

        let mut store = Store::open(dir.path()).unwrap();
        let snapshots: i64 =
            store.db.call(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM snapshots", [], |r| r.get(0))?)).unwrap();
        assert_eq!(snapshots, 1);
        assert_eq!(store.document(&campaign_id).unwrap().get_heads(), heads);
        assert_eq!(store.campaign(&campaign_id).unwrap().team.len(), SNAPSHOT_MAX_ROWS + 5);
        assert!(store.dossier(&dossier_id).is_ok());
        // The reopened store exports the same signed history.
        assert_eq!(
            bundle::decode(&store.export_bundle().unwrap(), |_| true).unwrap().docs.len(),
            bundle::decode(&exported, |_| true).unwrap().docs.len()
        );
        // And keeps editing as the same actor with fresh sequence numbers.
        let id = new_entity_id().unwrap();
        let member =
            sync_core::model::TeamMember {
                name: "新成员".into(), role: "专家".into(), organization: String::new()
            };
        store.edit(&campaign_id, |tx| campaign::add_member(tx, &id, &member)).unwrap();
    }
}
