//! HQ's read model: SQLite tables projected from the merged documents
//! (`<data>/read.db`), where people's questions are answered (the query
//! API; later the console and the deck) without touching the sync path.
//!
//! - Updated off the sync path: HQ's replica hands over each document as
//!   typed records (the validator's reading of it, so nothing is read
//!   again) once its write is durable ([`ReadModel::durable`]); one
//!   projector thread, at the lowest priority, owns the write connection and
//!   applies the newest version of each document that waits, all in one
//!   transaction. In the end-of-day burst the sessions get the cores first:
//!   past [`MAX_WAITING`] documents waiting, only their ids wait, and the
//!   projector reads those documents again when it gets to them.
//! - Queries ([`query`]) open their own read-only connection (WAL) and
//!   never take the sync sessions' lock.
//! - Each hazard's history, change by change (who signed it, with which
//!   device, when, which fields), is read from the document's change log
//!   ([`sync_core::doc::history`]) as it grows: only changes after the heads
//!   projected last.
//! - What HQ read from each photo (EXIF time and place, size) is kept
//!   beside its copies (`crate::photos`) and handed over here
//!   ([`ReadModel::photo_read`]); the photos each hazard references are
//!   projected with the hazard.
//! - Rebuildable: [`ReadModel::rebuild`] projects every stored document
//!   again (`fieldsync-server reindex`, and at start when the file is new or
//!   of another layout). Each document's projected heads are kept beside
//!   its rows, so at start [`ReadModel::catch_up`] projects again what a
//!   stop or crash left behind.

mod project;
pub(crate) mod query;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use rusqlite::{Connection, OptionalExtension};
use sync_core::automerge::{ActorId, Automerge, ChangeHash};
use sync_core::doc::conflicts::{self, Conflict};
use sync_core::doc::history::{self, HazardChange};
use sync_core::identity::ActorProof;
use sync_core::ids::PhotoId;
use sync_core::ids::{DocId, DocKind};
use sync_core::sync::replica::Replica as _;
use sync_core::validate::{self, Typed};

use crate::photos::{Copies, PhotoMeta};
use crate::register::Holder;

/// The layout of the tables; another value rebuilds them.
const VERSION: i64 = 6;

/// At most this many documents wait with their records; further ones wait
/// as ids (a dossier of 50 findings is about 100 KB as records).
const MAX_WAITING: usize = 16;

/// What the projector reads from HQ's store besides what it is handed.
pub(crate) trait Source: Send + Sync {
    /// A document HQ holds as typed records, with its heads (for one that
    /// waited as an id).
    fn typed(&self, doc: &DocId) -> Option<(Typed, Vec<ChangeHash>)>;
    /// A dossier as HQ holds it now: its conflicts and history are read
    /// from it.
    fn document(&self, doc: &DocId) -> Option<Automerge>;
    /// Who signed changes of `doc`: each author's actor bound to its key.
    fn signers(&self, doc: &DocId) -> Vec<ActorProof>;
}

/// A document to project: as typed records, at these heads.
type Version = (Typed, Vec<ChangeHash>);

/// A document waiting: its write's number, its version if held, and since
/// when it waits.
type Waits = (u64, Option<Version>, Instant);

const SCHEMA: &str = "
CREATE TABLE campaigns (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL,
    start_date TEXT NOT NULL, end_date TEXT NOT NULL, time_zone TEXT NOT NULL);
CREATE TABLE enterprises (
    campaign_id TEXT NOT NULL, code TEXT NOT NULL, name TEXT NOT NULL, domain TEXT NOT NULL,
    project TEXT NOT NULL, address TEXT NOT NULL, dossier_id TEXT NOT NULL,
    PRIMARY KEY (campaign_id, code));
CREATE TABLE hazards (
    id TEXT NOT NULL, dossier_id TEXT NOT NULL, campaign_id TEXT NOT NULL, enterprise_code TEXT NOT NULL,
    title TEXT NOT NULL, description TEXT NOT NULL, hazard_kind TEXT NOT NULL, accident_type TEXT NOT NULL,
    level TEXT NOT NULL, criterion TEXT, location TEXT NOT NULL, lat REAL, lon REAL, crs TEXT,
    legal_basis TEXT NOT NULL, inspector TEXT NOT NULL, found_at TEXT NOT NULL, found_on TEXT NOT NULL,
    checklist_item TEXT,
    deleted INTEGER NOT NULL, status TEXT NOT NULL, mode TEXT, deadline TEXT, owner TEXT NOT NULL,
    measures TEXT NOT NULL, rectified_by TEXT, rectified_at TEXT, verifier TEXT, verified_at TEXT,
    photos TEXT NOT NULL, photos_after TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (dossier_id, id));
CREATE INDEX hazards_by_campaign ON hazards (campaign_id, found_at, dossier_id, id);
CREATE INDEX hazards_by_enterprise ON hazards (campaign_id, enterprise_code, found_at, dossier_id, id);
CREATE TABLE reviews (
    id TEXT NOT NULL, dossier_id TEXT NOT NULL, campaign_id TEXT NOT NULL, enterprise_code TEXT NOT NULL,
    accident_date TEXT NOT NULL, accident_summary TEXT NOT NULL, report_ref TEXT NOT NULL, items TEXT NOT NULL,
    PRIMARY KEY (dossier_id, id));
CREATE INDEX reviews_by_campaign ON reviews (campaign_id, enterprise_code, accident_date);
CREATE TABLE document_checks (
    id TEXT NOT NULL, dossier_id TEXT NOT NULL, campaign_id TEXT NOT NULL, enterprise_code TEXT NOT NULL,
    document_type TEXT NOT NULL, name TEXT NOT NULL, result TEXT NOT NULL, expires_on TEXT, note TEXT NOT NULL,
    PRIMARY KEY (dossier_id, id));
CREATE INDEX document_checks_by_campaign ON document_checks (campaign_id, enterprise_code, document_type);
CREATE TABLE conflicts (
    dossier_id TEXT NOT NULL, n INTEGER NOT NULL, campaign_id TEXT NOT NULL, enterprise_code TEXT NOT NULL,
    kind TEXT NOT NULL, record TEXT NOT NULL, path TEXT, field TEXT, label TEXT NOT NULL,
    critical INTEGER NOT NULL, vals TEXT NOT NULL, writers TEXT NOT NULL, message TEXT NOT NULL,
    PRIMARY KEY (dossier_id, n));
CREATE INDEX conflicts_by_campaign ON conflicts (campaign_id, critical, enterprise_code);
CREATE TABLE history (
    dossier_id TEXT NOT NULL, hazard_id TEXT NOT NULL, change TEXT NOT NULL, at_ms INTEGER NOT NULL,
    device TEXT, author TEXT, account TEXT, created INTEGER NOT NULL, fields TEXT NOT NULL,
    PRIMARY KEY (dossier_id, hazard_id, change));
CREATE TABLE photos (
    dossier_id TEXT NOT NULL, hazard_id TEXT NOT NULL, sha256 TEXT NOT NULL, after INTEGER NOT NULL,
    campaign_id TEXT NOT NULL, enterprise_code TEXT NOT NULL, file_name TEXT NOT NULL,
    PRIMARY KEY (dossier_id, hazard_id, sha256, after));
CREATE INDEX photos_by_sha ON photos (sha256);
CREATE TABLE photo_meta (
    sha256 TEXT PRIMARY KEY, decodable INTEGER NOT NULL, format TEXT, width INTEGER, height INTEGER,
    taken_at TEXT, lat REAL, lon REAL, note TEXT);
CREATE TABLE projected (doc_id TEXT PRIMARY KEY, heads BLOB NOT NULL);
";

/// HQ's read model: the projector and where its file is.
pub(crate) struct ReadModel {
    path: PathBuf,
    queue: Arc<Queue>,
    projector: Option<JoinHandle<()>>,
}

/// Documents waiting to be projected: the newest copy of each.
struct Queue {
    state: Mutex<Waiting>,
    wake: Condvar,
    source: std::sync::OnceLock<Box<dyn Source>>,
    /// From a write being durable to its document being visible.
    lag: Histogram,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            state: Mutex::default(),
            wake: Condvar::new(),
            source: std::sync::OnceLock::new(),
            // 1 ms to about 16 s.
            lag: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        }
    }
}

#[derive(Default)]
struct Waiting {
    /// By document: the write's number (a later write has a higher one),
    /// the document as that write left it (`None`: read it again), and
    /// when the oldest write of it not yet visible became durable.
    docs: HashMap<DocId, Waits>,
    /// What was read from photos, to keep.
    photos: Vec<(PhotoId, PhotoMeta)>,
    /// How many of `docs` hold their records.
    held: usize,
    stop: bool,
}

impl ReadModel {
    /// Opens `<data>/read.db` and starts its projector. Returns whether the
    /// tables are new (created, or of another layout and made again): then
    /// they must be [rebuilt](Self::rebuild) from the store.
    pub(crate) fn open(data: &Path) -> Result<(Self, bool)> {
        let path = data.join("read.db");
        let data = data.to_path_buf();
        let mut conn = Connection::open(&path).with_context(|| format!("无法打开读模型 {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Rebuildable from the store: a commit lost to a crash is made
        // again by the next write of that document, or by `reindex`.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // The projector writes; readers have their own caches.
        conn.pragma_update(None, "cache_size", -512)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let fresh = version != VERSION;
        if fresh {
            let tx = conn.transaction()?;
            tx.execute_batch(
                "DROP TABLE IF EXISTS hazards; DROP TABLE IF EXISTS enterprises; DROP TABLE IF EXISTS campaigns;
                 DROP TABLE IF EXISTS reviews; DROP TABLE IF EXISTS document_checks; DROP TABLE IF EXISTS conflicts;
                 DROP TABLE IF EXISTS history; DROP TABLE IF EXISTS photos; DROP TABLE IF EXISTS photo_meta;
                 DROP TABLE IF EXISTS projected;",
            )?;
            tx.execute_batch(SCHEMA)?;
            tx.pragma_update(None, "user_version", VERSION)?;
            tx.commit()?;
        }
        let queue = Arc::new(Queue::default());
        let worker = queue.clone();
        let projector = std::thread::Builder::new()
            .name("read-model".into())
            .spawn(move || project_while_running(conn, &worker, &data))
            .context("无法启动读模型线程")?;
        Ok((Self { path, queue, projector: Some(projector) }, fresh))
    }

    /// Reads documents that waited as ids: set once HQ's replica exists.
    pub(crate) fn set_source(&self, source: Box<dyn Source>) {
        let _ = self.queue.source.set(source);
    }

    /// Takes document `id` as write number `seq` left it, once that write
    /// is durable; the projector applies the newest of each document.
    pub(crate) fn durable(&self, seq: u64, id: DocId, doc: Typed, heads: Vec<ChangeHash>) {
        if !matches!(doc, Typed::Campaign(_) | Typed::Dossier(_)) {
            return;
        }
        let mut waiting = self.queue.state.lock().unwrap_or_else(PoisonError::into_inner);
        if waiting.add(seq, id, (doc, heads)) {
            self.queue.wake.notify_one();
        }
    }

    /// Keeps what was read from `photo`.
    pub(crate) fn photo_read(&self, photo: PhotoId, meta: PhotoMeta) {
        let mut waiting = self.queue.state.lock().unwrap_or_else(PoisonError::into_inner);
        waiting.photos.push((photo, meta));
        self.queue.wake.notify_one();
    }

    /// Projects every campaign and dossier `store` holds again, in one
    /// transaction, replacing the tables' rows. Returns how many documents.
    pub(crate) fn rebuild(&self, store: &mut field_client::Store) -> Result<usize> {
        self.project_stored(store, true)
    }

    /// Projects again the documents whose heads differ from those projected
    /// (a stop or crash may have left some behind). Returns how many.
    pub(crate) fn catch_up(&self, store: &mut field_client::Store) -> Result<usize> {
        self.project_stored(store, false)
    }

    fn project_stored(&self, store: &mut field_client::Store, all: bool) -> Result<usize> {
        let mut conn = Connection::open(&self.path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let tx = conn.transaction()?;
        if all {
            tx.execute_batch(
                "DELETE FROM hazards; DELETE FROM enterprises; DELETE FROM campaigns; DELETE FROM reviews;
                 DELETE FROM document_checks; DELETE FROM conflicts; DELETE FROM history; DELETE FROM photos;
                 DELETE FROM photo_meta; DELETE FROM projected;",
            )?;
        }
        let names = crate::register::holders_at(self.data())?;
        let mut count = 0;
        for entry in store.catalog() {
            if !matches!(entry.id.kind(), DocKind::Campaign | DocKind::EnterpriseDossier) {
                continue;
            }
            let since = projected_heads(&tx, &entry.id)?;
            if heads_bytes(&since) == heads_bytes(&entry.heads) {
                continue;
            }
            let signers = field_client::stored_signers(store.home(), &entry.id)?;
            let doc = store.document(&entry.id)?;
            let typed = validate::document(&entry.id, doc).with_context(|| format!("文档 {}", entry.id))?.typed;
            let read = match &typed {
                Typed::Dossier(_) => Read::of(doc, (&since, &doc.get_heads()), signers, &names),
                _ => Read::default(),
            };
            project::document(&tx, &typed, &read)?;
            project::heads(&tx, &entry.id, &heads_bytes(&doc.get_heads()))?;
            count += 1;
        }
        // What was read from photos before (or while the server was
        // stopped), from beside their copies.
        let copies = Copies::at(self.data());
        let mut unread = tx.prepare(
            "SELECT DISTINCT sha256 FROM photos WHERE sha256 NOT IN (SELECT sha256 FROM photo_meta) ORDER BY sha256",
        )?;
        let shas: Vec<String> = unread.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        drop(unread);
        for sha in shas {
            if let Some(meta) = sha.parse().ok().and_then(|photo| copies.meta(&photo)) {
                project::photo_meta(&tx, &sha, &meta)?;
            }
        }
        tx.commit()?;
        Ok(count)
    }

    /// The histogram of how long durable writes waited to be visible.
    pub(crate) fn lag(&self) -> Histogram {
        self.queue.lag.clone()
    }

    /// How many documents wait to be projected now.
    pub(crate) fn waiting(&self) -> usize {
        self.queue.state.lock().unwrap_or_else(PoisonError::into_inner).docs.len()
    }

    /// The data directory the read model lives in.
    fn data(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// A read-only connection for one query.
    pub(crate) fn reader(&self) -> Result<Connection> {
        read_only(&self.path)
    }
}

/// A read-only connection to the read model under `data`, for a command
/// run beside the server.
pub(crate) fn reader_at(data: &Path) -> Result<Connection> {
    let path = data.join("read.db");
    if !path.exists() {
        anyhow::bail!(
            "{} 中还没有读模型：请先启动服务（fieldsync-server serve）或执行 fieldsync-server reindex",
            data.display()
        );
    }
    read_only(&path)
}

fn read_only(path: &Path) -> Result<Connection> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

impl Drop for ReadModel {
    fn drop(&mut self) {
        self.queue.state.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        self.queue.wake.notify_one();
        if let Some(projector) = self.projector.take() {
            let _ = projector.join();
        }
    }
}

impl Waiting {
    /// Adds write `seq` of `id`, unless a later one waits already; past
    /// [`MAX_WAITING`] documents with records, only the id waits. Returns
    /// whether it was added.
    fn add(&mut self, seq: u64, id: DocId, version: Version) -> bool {
        let (held_before, since) = match self.docs.get(&id) {
            Some((newer, _, _)) if *newer > seq => return false,
            Some((_, held, since)) => (held.is_some(), *since),
            None => (false, Instant::now()),
        };
        let keep = held_before || self.held < MAX_WAITING;
        self.held = self.held + usize::from(keep) - usize::from(held_before);
        self.docs.insert(id, (seq, keep.then_some(version), since));
        true
    }
}

/// What a dossier's rows need beyond its records, read from the document
/// as HQ holds it: its conflicts, and its hazards' changes after the heads
/// projected last, up to the durable version being projected (a copy may
/// hold changes another session is still writing, whose signatures are
/// not on disk yet), with who signed each.
#[derive(Default)]
pub(super) struct Read {
    pub(super) conflicts: Vec<Conflict>,
    pub(super) changes: Vec<HazardChange>,
    /// Who each author is.
    pub(super) signers: HashMap<ActorId, Author>,
}

/// A change's author: the device key (hex) and who HQ issued it a
/// credential to.
pub(super) struct Author {
    pub(super) device: String,
    pub(super) holder: Option<Holder>,
}

impl Author {
    /// How a person reads the author: the name on its credential, else
    /// its device key.
    pub(super) fn shown(&self) -> String {
        match &self.holder {
            Some(holder) => holder.name.clone(),
            None => format!("未登记的设备 {}", &self.device[..self.device.len().min(12)]),
        }
    }
}

impl Read {
    fn of(
        doc: &Automerge,
        (since, until): (&[ChangeHash], &[ChangeHash]),
        signers: Vec<ActorProof>,
        names: &Names,
    ) -> Self {
        let signers = signers
            .into_iter()
            .map(|proof| {
                let holder = names.get(&proof.key.to_bytes()).cloned();
                (proof.actor_id(), Author { device: proof.key.to_string(), holder })
            })
            .collect();
        let beyond: std::collections::HashSet<ChangeHash> = doc.get_changes(until).iter().map(|c| c.hash()).collect();
        let mut changes = history::hazard_changes(doc, since);
        changes.retain(|c| !beyond.contains(&c.hash));
        Read { conflicts: conflicts::conflicts(doc).unwrap_or_default(), changes, signers }
    }
}

/// The name on each device's credential, by key.
type Names = HashMap<[u8; 32], Holder>;

/// The heads document `id` was projected at last (none if never).
fn projected_heads(conn: &Connection, id: &DocId) -> Result<Vec<ChangeHash>> {
    let bytes: Option<Vec<u8>> =
        conn.query_row("SELECT heads FROM projected WHERE doc_id = ?1", [id.as_str()], |r| r.get(0)).optional()?;
    let bytes = bytes.unwrap_or_default();
    Ok(bytes.chunks_exact(32).filter_map(|h| ChangeHash::try_from(h).ok()).collect())
}

/// Projects `docs` in one transaction; a document that does not project
/// (logged) leaves its rows as they were and the others go in.
fn apply(
    conn: &mut Connection,
    docs: HashMap<DocId, Waits>,
    photos: Vec<(PhotoId, PhotoMeta)>,
    queue: &Queue,
    data: &Path,
) -> Result<()> {
    let source = queue.source.get();
    let names = crate::register::holders_at(data)?;
    let mut tx = conn.transaction()?;
    let mut waited = Vec::with_capacity(docs.len());
    for (id, (_, doc, since)) in docs {
        waited.push(since);
        let Some((doc, heads)) = doc.or_else(|| source.and_then(|source| source.typed(&id))) else {
            tracing::error!(%id, "document to project could not be read");
            continue;
        };
        let read = match (&doc, source) {
            (Typed::Dossier(_), Some(source)) => match source.document(&id) {
                Some(copy) => {
                    let since = projected_heads(&tx, &id)?;
                    Read::of(&copy, (&since, &heads), source.signers(&id), &names)
                }
                None => {
                    // Its history would be skipped for good: left for the
                    // next write of it.
                    tracing::error!(%id, "dossier to project could not be read");
                    continue;
                }
            },
            _ => Read::default(),
        };
        let savepoint = tx.savepoint()?;
        let projected = project::document(&savepoint, &doc, &read)
            .and_then(|()| project::heads(&savepoint, &id, &heads_bytes(&heads)));
        match projected {
            Ok(()) => savepoint.commit()?,
            Err(error) => tracing::error!(%id, error = format!("{error:#}"), "document not projected"),
        }
    }
    for (photo, meta) in photos {
        project::photo_meta(&tx, &photo.to_string(), &meta)?;
    }
    tx.commit()?;
    for since in waited {
        queue.lag.observe(since.elapsed().as_secs_f64());
    }
    Ok(())
}

fn heads_bytes(heads: &[ChangeHash]) -> Vec<u8> {
    let mut sorted = heads.to_vec();
    sorted.sort();
    sorted.iter().flat_map(|h| h.0).collect()
}

/// The projector thread: waits for documents, applies all that wait in one
/// transaction, until stopped (what waits then is applied first). It runs
/// at the lowest priority: in the end-of-day burst the cores go to the
/// sessions first, and the read model catches up as they end.
fn project_while_running(mut conn: Connection, queue: &Queue, data: &Path) {
    // Linux's nice value is per thread: this one only.
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(None, 19) {
        tracing::warn!(%error, "read model thread keeps normal priority");
    }
    loop {
        let (docs, photos, stop) = {
            let mut waiting = queue.state.lock().unwrap_or_else(PoisonError::into_inner);
            while waiting.docs.is_empty() && waiting.photos.is_empty() && !waiting.stop {
                waiting = queue.wake.wait(waiting).unwrap_or_else(PoisonError::into_inner);
            }
            waiting.held = 0;
            (std::mem::take(&mut waiting.docs), std::mem::take(&mut waiting.photos), waiting.stop)
        };
        if (!docs.is_empty() || !photos.is_empty())
            && let Err(error) = apply(&mut conn, docs, photos, queue, data)
        {
            tracing::error!(
                error = format!("{error:#}"),
                "read model not updated; `fieldsync-server reindex` rebuilds it"
            );
        }
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::model::{Campaign, CampaignKind};

    fn campaign(n: u8) -> (DocId, Version) {
        let id = DocId::new_campaign([n; 16]);
        let typed = Typed::Campaign(Campaign {
            kind: "campaign".into(),
            schema_version: 1,
            id: id.clone(),
            name: format!("活动{n}"),
            campaign_kind: CampaignKind::ConstructionJointInspection,
            start_date: "2026-11-24".into(),
            end_date: "2026-11-25".into(),
            briefing_deadline: String::new(),
            time_zone: String::new(),
            team: Default::default(),
            enterprises: Default::default(),
            schedule: Default::default(),
            checklists: Default::default(),
        });
        (id, (typed, Vec::new()))
    }

    #[test]
    fn the_newest_write_waits_and_past_the_bound_only_ids_do() {
        let mut waiting = Waiting::default();
        let (first, version) = campaign(0);
        assert!(waiting.add(2, first.clone(), version.clone()));
        assert!(!waiting.add(1, first.clone(), version.clone()), "an older write never replaces a newer one");
        assert!(waiting.add(3, first.clone(), version));
        for n in 1..=(MAX_WAITING as u8 + 5) {
            let (id, version) = campaign(n);
            assert!(waiting.add(u64::from(n) + 10, id, version));
        }
        assert_eq!(waiting.held, MAX_WAITING);
        let with_records = waiting.docs.values().filter(|(_, v, _)| v.is_some()).count();
        assert_eq!((waiting.docs.len(), with_records), (MAX_WAITING + 6, MAX_WAITING));
        assert_eq!(waiting.docs[&first].0, 3);
    }
}
