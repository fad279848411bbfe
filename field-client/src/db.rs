//! The SQLite store, on its own thread.
//!
//! One thread owns the `Connection`; callers send it closures over a channel
//! and wait for the reply ([`Db::call`]). All SQL of the client lives in this
//! module, so the storage can move to another engine without touching the
//! rest. Writes come in batches ([`Write`]) applied in one transaction with
//! `synchronous = FULL`: when [`Db::persist`] returns, the batch is on disk.
//!
//! Group commit: batches that queue up while the thread is busy (many
//! sessions at HQ) are written in one transaction, one fsync for all, and
//! each caller is answered after that commit. Jobs run in the order they
//! were sent, so a batch is never durable before an earlier one. After a
//! failed commit every later write fails too: what callers hold in memory
//! may then run ahead of the disk, and only a restart (reload) is safe.

use std::path::Path;
use std::sync::mpsc;
use std::thread;

use rusqlite::{Connection, OptionalExtension, params};
use serde_bytes::ByteBuf;
use sync_core::sync::message::Receipt;

use crate::StoreError;

enum Job {
    Call(Box<dyn FnOnce(&mut Connection) + Send>),
    Write(Vec<Write>, Box<dyn FnOnce(Result<(), StoreError>) + Send>),
}

/// The most batches one transaction takes.
const GROUP_MAX: usize = 512;

const MIGRATIONS: &[&str] = &[
    include_str!("../../schemas/migrations/client/0001_init.sql"),
    include_str!("../../schemas/migrations/client/0002_sync.sql"),
    include_str!("../../schemas/migrations/client/0003_doc_heads.sql"),
    include_str!("../../schemas/migrations/client/0004_quarantine.sql"),
    include_str!("../../schemas/migrations/client/0005_doc_photos.sql"),
    include_str!("../../schemas/migrations/client/0006_whole_batches.sql"),
    include_str!("../../schemas/migrations/client/0007_doc_photo_adds.sql"),
    include_str!("../../schemas/migrations/client/0008_whole_documents.sql"),
    include_str!("../../schemas/migrations/client/0009_whole_batches_in_log.sql"),
    include_str!("../../schemas/migrations/client/0010_photos_at_hq.sql"),
    include_str!("../../schemas/migrations/client/0011_quarantine_decisions.sql"),
];

/// A handle to the store thread. Dropping it closes the database and waits
/// for the thread, so the connection is closed cleanly (WAL checkpointed)
/// before the process exits.
pub(crate) struct Db {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
    /// Opened to look only, while another process holds the store.
    read_only: bool,
}

impl Drop for Db {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One row to write; a batch of them is one transaction.
pub(crate) enum Write {
    Meta {
        key: &'static str,
        value: Vec<u8>,
    },
    Doc {
        id: String,
        kind: &'static str,
    },
    /// One change chunk, or a whole document as it arrived (`count`
    /// changes; migration 0008).
    Change {
        doc: String,
        hash: Vec<u8>,
        actor: Vec<u8>,
        bytes: Vec<u8>,
        source: String,
        count: i64,
    },
    Evidence {
        doc: String,
        head: Vec<u8>,
        key: Vec<u8>,
        nonce: Vec<u8>,
        sig: Vec<u8>,
    },
    /// A saved document covering every change logged for it so far.
    Snapshot {
        doc: String,
        bytes: Vec<u8>,
    },
    Trust {
        key: String,
        name: String,
    },
    Blob {
        sha256: String,
        size: u64,
    },
    /// Photos HQ holds.
    AtHq(Vec<String>),
    AuthorCredential {
        key: Vec<u8>,
        credential: Vec<u8>,
    },
    Receipt {
        seq: i64,
        doc: String,
        body: Vec<u8>,
        sig: Vec<u8>,
        hash: Vec<u8>,
    },
    Checkpoint {
        peer: Vec<u8>,
        doc: String,
        heads: Vec<u8>,
    },
    /// Signed changes kept aside for review.
    Quarantine {
        doc: String,
        source: String,
        reason: String,
        batch: Vec<u8>,
        evidence: Vec<u8>,
        /// The changes kept aside (sorted 32-byte hashes).
        changes: Vec<u8>,
    },
    /// A person's decision on a quarantine row (only on one not yet decided).
    Decide {
        id: i64,
        decision: &'static str,
        by: String,
        note: String,
        at: i64,
    },
    /// A document's current heads and where it belongs.
    Heads {
        doc: String,
        heads: Vec<u8>,
        campaign: Option<String>,
        enterprise: Option<String>,
    },
    /// The photos a dossier references (sorted 32-byte digests): all of
    /// them, or (`add`) ones to add to those recorded (appended, so an
    /// edit's cost does not grow with the dossier).
    Photos {
        doc: String,
        digests: Vec<u8>,
        add: bool,
    },
    /// A document's whole history as the batch it arrived in (empty: the
    /// change-log row whose hash is `heads` holds it).
    Whole {
        doc: String,
        heads: Vec<u8>,
        batch: Vec<u8>,
        evidence: Vec<u8>,
        changes: usize,
    },
}

/// A stored whole batch: heads, batch, evidence (CBOR), number of changes.
pub(crate) type WholeRow = (Vec<u8>, Vec<u8>, Vec<u8>, i64);

/// One row of the document index.
pub(crate) struct IndexRow {
    pub(crate) id: String,
    /// `None` until recorded (stores from before the index).
    pub(crate) heads: Option<Vec<u8>>,
    pub(crate) campaign: Option<String>,
    pub(crate) enterprise: Option<String>,
    /// Whether the referenced photos are recorded.
    pub(crate) photos: bool,
}

/// What is stored for one document: its snapshot and the log rows after
/// it (change chunks, or whole documents as they arrived).
pub(crate) struct StoredDoc {
    pub(crate) snapshot: Option<Vec<u8>>,
    pub(crate) changes: Vec<Vec<u8>>,
}

/// A stored signature.
pub(crate) struct EvidenceRow {
    pub(crate) key: Vec<u8>,
    pub(crate) nonce: Vec<u8>,
    pub(crate) sig: Vec<u8>,
}

impl Db {
    /// Opens (creating if needed) the database and starts its thread.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Self::serving(conn, false)
    }

    /// Opens the database to read only, beside the process that holds the
    /// store and writes it (WAL: each read sees what was committed when it
    /// began). Writes are refused.
    pub(crate) fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        let version = user_version(&conn)?;
        if version > MIGRATIONS.len() {
            return Err(StoreError::NewerStore { found: version, supported: MIGRATIONS.len() });
        }
        if version < MIGRATIONS.len() {
            return Err(StoreError::Invalid(
                "本地数据库需要升级后才能查看，请等正在使用它的 field 程序结束后再试".into(),
            ));
        }
        Self::serving(conn, true)
    }

    fn serving(conn: Connection, read_only: bool) -> Result<Self, StoreError> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let thread =
            thread::Builder::new().name("field-store".into()).spawn(move || serve(conn, rx)).map_err(StoreError::Io)?;
        Ok(Self { jobs: Some(jobs), thread: Some(thread), read_only })
    }

    /// Whether this database was opened to read only.
    pub(crate) fn read_only(&self) -> bool {
        self.read_only
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs.as_ref().ok_or(StoreError::StoreThreadGone)?.send(job).map_err(|_| StoreError::StoreThreadGone)
    }

    /// Runs `f` on the store thread and waits for its result.
    pub(crate) fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job::Call(Box::new(move |conn| {
            let _ = tx.send(f(conn));
        })))?;
        rx.recv().map_err(|_| StoreError::StoreThreadGone)?
    }

    /// Runs `f` in one read transaction: many point queries then share one
    /// snapshot instead of each taking and releasing the WAL's read lock
    /// (thirty thousand photo lookups in a full pull).
    pub(crate) fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let out = f(&tx)?;
            tx.finish()?;
            Ok(out)
        })
    }

    /// Writes a batch in one durable transaction.
    pub(crate) fn persist(&self, batch: Vec<Write>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job::Write(
            batch,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        ))?;
        rx.recv().map_err(|_| StoreError::StoreThreadGone)?
    }

    /// Queues a batch; the returned receiver answers once it is durable
    /// (possibly in one transaction with other queued batches). Batches
    /// become durable in the order they were queued.
    pub(crate) fn persist_later(&self, batch: Vec<Write>) -> tokio::sync::oneshot::Receiver<Result<(), StoreError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let reply: Box<dyn FnOnce(Result<(), StoreError>) + Send> = Box::new(move |result| {
            let _ = tx.send(result);
        });
        if self.read_only {
            reply(Err(StoreError::ReadOnly));
            return rx;
        }
        // A gone thread drops `reply`, and the receiver reports that.
        let _ = self.send(Job::Write(batch, reply));
        rx
    }

    pub(crate) fn meta(&self, key: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        self.call(move |conn| {
            Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
        })
    }

    /// All document ids with their kind, in id order.
    pub(crate) fn docs(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn.prepare("SELECT id, kind FROM docs ORDER BY id")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Every document with its recorded heads and place.
    pub(crate) fn index(&self) -> Result<Vec<IndexRow>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn.prepare("SELECT id, heads, campaign, enterprise, photos IS NOT NULL FROM docs")?;
            let rows = stmt.query_map([], |r| {
                Ok(IndexRow {
                    id: r.get(0)?,
                    heads: r.get(1)?,
                    campaign: r.get(2)?,
                    enterprise: r.get(3)?,
                    photos: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The whole batch kept for `doc`, if any. An empty `batch` in the row
    /// means the change log holds it: the row of a document that arrived
    /// whole, whose `hash` is the heads (`Write::Whole`).
    pub(crate) fn whole(&self, doc: String) -> Result<Option<WholeRow>, StoreError> {
        self.call(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT w.heads, CASE WHEN length(w.batch) > 0 THEN w.batch \
                       ELSE (SELECT c.bytes FROM changes c WHERE c.doc_id = w.doc_id AND c.hash = w.heads) END, \
                     w.evidence, w.changes FROM whole_batches w WHERE w.doc_id = ?1",
                )?
                .query_row([doc], |r| Ok((r.get(0)?, r.get::<_, Option<Vec<u8>>>(1)?, r.get(2)?, r.get(3)?)))
                .optional()?;
            Ok(row.and_then(|(heads, batch, evidence, changes)| Some((heads, batch?, evidence, changes))))
        })
    }

    /// When the change `head` of `doc` was stored here: its own row, or a
    /// whole document that arrived with it among its heads.
    pub(crate) fn received_at(&self, doc: String, head: Vec<u8>) -> Result<Option<i64>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT received_at, hash FROM changes WHERE doc_id = ?1 AND (hash = ?2 OR length(hash) > 32) ORDER BY seq",
            )?;
            let mut rows = stmt.query(rusqlite::params![doc, head])?;
            while let Some(row) = rows.next()? {
                let hash: Vec<u8> = row.get(1)?;
                if hash.chunks_exact(32).any(|h| h == head.as_slice()) {
                    return Ok(Some(row.get(0)?));
                }
            }
            Ok(None)
        })
    }

    /// Which of `shas` the `blobs` table records as held.
    pub(crate) fn recorded_blobs(&self, shas: Vec<String>) -> Result<Vec<String>, StoreError> {
        self.listed("SELECT 1 FROM blobs WHERE sha256 = ?1", shas)
    }

    /// Which of `shas` HQ is known to hold.
    pub(crate) fn at_hq(&self, shas: Vec<String>) -> Result<Vec<String>, StoreError> {
        self.listed("SELECT 1 FROM photos_at_hq WHERE sha256 = ?1", shas)
    }

    /// Which of `shas` the query `exists` (one parameter) finds.
    fn listed(&self, exists: &'static str, shas: Vec<String>) -> Result<Vec<String>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(exists)?;
            let mut out = Vec::new();
            for sha in shas {
                if stmt.exists([&sha])? {
                    out.push(sha);
                }
            }
            Ok(out)
        })
    }

    /// The photos each of `docs` references (as recorded in its index row
    /// and the edits' additions: 32-byte digests, concatenated, possibly
    /// repeated); documents without any are left out.
    pub(crate) fn photos(&self, docs: Vec<String>) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read(move |conn| {
            let mut listed = conn.prepare_cached("SELECT photos FROM docs WHERE id = ?1 AND photos IS NOT NULL")?;
            let mut added = conn.prepare_cached("SELECT digests FROM doc_photo_adds WHERE doc_id = ?1")?;
            let mut out = Vec::new();
            for doc in &docs {
                if let Some(photos) = listed.query_row([doc], |r| r.get(0)).optional()? {
                    out.push(photos);
                    for digests in added.query_map([doc], |r| r.get(0))? {
                        out.push(digests?);
                    }
                }
            }
            Ok(out)
        })
    }

    /// The snapshot of a document and the changes logged after it, or `None`
    /// if the document is not stored.
    pub(crate) fn load(&self, doc: String) -> Result<Option<StoredDoc>, StoreError> {
        self.call(move |conn| stored_doc(conn, &doc))
    }

    /// The stored signature over `head` in `doc`, if any.
    pub(crate) fn evidence(&self, doc: String, heads: Vec<Vec<u8>>) -> Result<Vec<Option<EvidenceRow>>, StoreError> {
        self.call(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT key, nonce, sig FROM evidence WHERE doc_id = ?1 AND head = ?2")?;
            heads
                .iter()
                .map(|head| {
                    Ok(stmt
                        .query_row(params![doc, head], |r| {
                            Ok(EvidenceRow { key: r.get(0)?, nonce: r.get(1)?, sig: r.get(2)? })
                        })
                        .optional()?)
                })
                .collect()
        })
    }

    /// The credential stored for an author's key.
    pub(crate) fn author_credential(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached("SELECT credential FROM author_credentials WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()?)
        })
    }

    /// The newest receipt held for a document.
    pub(crate) fn latest_receipt(&self, doc: String) -> Result<Option<Receipt>, StoreError> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached("SELECT body, sig FROM receipts WHERE doc_id = ?1 ORDER BY seq DESC LIMIT 1")?
                .query_row([doc], |r| {
                    Ok(Receipt {
                        body: ByteBuf::from(r.get::<_, Vec<u8>>(0)?),
                        sig: ByteBuf::from(r.get::<_, Vec<u8>>(1)?),
                    })
                })
                .optional()?)
        })
    }

    /// The last entry of the receipt log: (seq, hash).
    pub(crate) fn receipt_tail(&self) -> Result<(i64, Vec<u8>), StoreError> {
        self.call(|conn| {
            Ok(conn
                .query_row("SELECT seq, hash FROM receipts ORDER BY seq DESC LIMIT 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?
                .unwrap_or((0, vec![0; 32])))
        })
    }

    /// The checkpoint with `peer` for `doc`: concatenated 32-byte hashes.
    pub(crate) fn checkpoint(&self, peer: Vec<u8>, doc: String) -> Result<Option<Vec<u8>>, StoreError> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached("SELECT heads FROM checkpoints WHERE peer = ?1 AND doc_id = ?2")?
                .query_row(params![peer, doc], |r| r.get(0))
                .optional()?)
        })
    }

    /// Trusted keys (hex) with their names.
    /// One quarantine row, with the batch, evidence and changes kept.
    pub(crate) fn quarantine_entry(&self, id: i64) -> Result<Option<AsideRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!("{QUARANTINE_ROW} WHERE id = ?1"))?;
            let Some(listed) = stmt.query_row([id], quarantine_row).optional()? else {
                return Ok(None);
            };
            let (batch, evidence) =
                conn.query_row("SELECT batch, evidence FROM quarantine WHERE id = ?1", [id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            Ok(Some(AsideRow { listed, batch, evidence }))
        })
    }

    /// The rows of `doc` no one has decided yet: id, and the changes kept
    /// aside (sorted 32-byte hashes; `None` for a row kept before they were).
    pub(crate) fn undecided(&self, doc: String) -> Result<Vec<Undecided>, StoreError> {
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT id, changes FROM quarantine WHERE doc_id = ?1 AND decision IS NULL")?;
            let rows = stmt.query_map([doc], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The documents with quarantine rows no one has decided yet.
    pub(crate) fn undecided_docs(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT DISTINCT doc_id FROM quarantine WHERE decision IS NULL")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The rejected rows of `doc`: changes kept aside, who decided, why.
    pub(crate) fn rejections(&self, doc: String) -> Result<Vec<(Vec<u8>, String, String)>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT changes, decided_by, note FROM quarantine
                 WHERE doc_id = ?1 AND decision = 'rejected' AND changes IS NOT NULL",
            )?;
            let rows = stmt.query_map([doc], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    pub(crate) fn trusted(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn.prepare("SELECT key, name FROM trusted_keys ORDER BY added_at, key")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Counts of changes by source: (local, received).
    pub(crate) fn change_counts(&self) -> Result<(i64, i64), StoreError> {
        self.call(|conn| {
            Ok(conn.query_row(
                "SELECT COALESCE(SUM(count * (source = 'local')), 0),
                        COALESCE(SUM(count * (source NOT IN ('local', 'genesis'))), 0) FROM changes",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
    }
}

/// One quarantined batch, as listed for review.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Quarantined {
    /// Row id.
    pub id: i64,
    /// Document.
    pub doc: String,
    /// Hex key of the delivering device.
    pub source: String,
    /// Why it was refused.
    pub reason: String,
    /// Size of the batch kept.
    pub batch_bytes: usize,
    /// How many changes were kept aside (`None`: a row kept before this
    /// was recorded, the whole batch).
    pub changes: Option<usize>,
    /// When it arrived (ms since the epoch).
    pub received_at: i64,
    /// What was decided, if anything.
    pub decision: Option<Decision>,
}

/// A decision on quarantined work.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Decision {
    /// `accepted`, `rejected` or `stored`.
    pub outcome: String,
    /// Who decided (`stored`: HQ itself).
    pub by: String,
    /// Why, as they wrote it.
    pub note: String,
    /// When (ms since the epoch).
    pub at: i64,
}

const QUARANTINE_ROW: &str = "SELECT id, doc_id, source, reason, length(batch), length(changes) / 32, received_at, \
     decision, decided_by, note, decided_at FROM quarantine";

fn quarantine_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Quarantined> {
    let decision = match r.get::<_, Option<String>>(7)? {
        Some(outcome) => Some(Decision {
            outcome,
            by: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
            note: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
            at: r.get::<_, Option<i64>>(10)?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(Quarantined {
        id: r.get(0)?,
        doc: r.get(1)?,
        source: r.get(2)?,
        reason: r.get(3)?,
        batch_bytes: r.get::<_, i64>(4)? as usize,
        changes: r.get::<_, Option<i64>>(5)?.map(|n| n as usize),
        received_at: r.get(6)?,
        decision,
    })
}

/// An undecided quarantine row: its id and the changes it kept aside.
pub(crate) type Undecided = (i64, Option<Vec<u8>>);

/// One quarantine row as kept.
pub(crate) struct AsideRow {
    pub(crate) listed: Quarantined,
    pub(crate) batch: Vec<u8>,
    pub(crate) evidence: Vec<u8>,
}

/// Document `doc` as stored (its snapshot and the log after it), in
/// one read.
fn stored_doc(conn: &Connection, doc: &str) -> Result<Option<StoredDoc>, StoreError> {
    let known: Option<String> = conn.query_row("SELECT id FROM docs WHERE id = ?1", [doc], |r| r.get(0)).optional()?;
    if known.is_none() {
        return Ok(None);
    }
    let snapshot: Option<(Vec<u8>, i64)> = conn
        .query_row("SELECT bytes, upto FROM snapshots WHERE doc_id = ?1", [doc], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let upto = snapshot.as_ref().map_or(0, |s| s.1);
    let mut stmt = conn.prepare_cached("SELECT seq, bytes FROM changes WHERE doc_id = ?1 AND seq > ?2 ORDER BY seq")?;
    let changes = stmt.query_map(params![doc, upto], |r| r.get::<_, Vec<u8>>(1))?.collect::<Result<Vec<_>, _>>()?;
    Ok(Some(StoredDoc { snapshot: snapshot.map(|s| s.0), changes }))
}

/// Document `doc` of the store in `home` as stored, read-only (the store
/// may be open elsewhere: HQ's running server), in one transaction.
pub(crate) fn stored_at(home: &Path, doc: &str) -> Result<Option<StoredDoc>, StoreError> {
    let mut conn = Connection::open_with_flags(home.join("store.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let tx = conn.transaction()?;
    stored_doc(&tx, doc)
}

/// An actor's proof as stored beside its signatures: (device key, store nonce).
pub(crate) type ProofRow = (Vec<u8>, Vec<u8>);

/// The distinct proofs of the actors that signed changes of `doc` in the
/// store in `home`, read-only like [`stored_at`].
pub(crate) fn signers_at(home: &Path, doc: &str) -> Result<Vec<ProofRow>, StoreError> {
    let conn = Connection::open_with_flags(home.join("store.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mut stmt = conn.prepare("SELECT DISTINCT key, nonce FROM evidence WHERE doc_id = ?1")?;
    let rows = stmt.query_map([doc], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Lists the quarantine of the store in `home`, read-only, so it works
/// while the store is open elsewhere (HQ's running server); none while the
/// store is not made yet.
pub fn quarantined(home: &Path) -> Result<Vec<Quarantined>, StoreError> {
    if !home.join("store.db").exists() {
        return Ok(Vec::new());
    }
    let conn = Connection::open_with_flags(home.join("store.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare(&format!("{QUARANTINE_ROW} ORDER BY id"))?;
    let rows = stmt.query_map([], quarantine_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The store thread: runs jobs in order, committing queued writes together.
fn serve(mut conn: Connection, jobs: mpsc::Receiver<Job>) {
    let mut failed: Option<String> = None;
    let mut next = jobs.recv().ok();
    while let Some(job) = next.take() {
        match job {
            Job::Call(f) => f(&mut conn),
            Job::Write(batch, reply) => {
                let mut group = vec![(batch, reply)];
                while group.len() < GROUP_MAX {
                    match jobs.try_recv() {
                        Ok(Job::Write(batch, reply)) => group.push((batch, reply)),
                        Ok(call) => {
                            next = Some(call);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let (batches, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
                if failed.is_none()
                    && let Err(e) = write_all(&mut conn, batches)
                {
                    tracing::error!(error = %e, "store write failed; refusing further writes");
                    failed = Some(e.to_string());
                }
                for reply in replies {
                    reply(failed.as_ref().map_or(Ok(()), |e| Err(StoreError::WriteFailed(e.clone()))));
                }
            }
        }
        if next.is_none() {
            next = jobs.recv().ok();
        }
    }
}

/// Writes batches in one transaction.
fn write_all(conn: &mut Connection, batches: Vec<Vec<Write>>) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let now = crate::now_ms();
    for write in batches.into_iter().flatten() {
        match write {
            Write::Meta { key, value } => {
                tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", params![key, value])?;
            }
            Write::Doc { id, kind } => {
                tx.execute(
                    "INSERT OR IGNORE INTO docs (id, kind, created_at) VALUES (?1, ?2, ?3)",
                    params![id, kind, now],
                )?;
            }
            Write::Change { doc, hash, actor, bytes, source, count } => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO changes (doc_id, hash, actor, bytes, source, received_at, count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![doc, hash, actor, bytes, source, now, count])?;
            }
            Write::Evidence { doc, head, key, nonce, sig } => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO evidence (doc_id, head, key, nonce, sig) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![doc, head, key, nonce, sig])?;
            }
            Write::Snapshot { doc, bytes } => {
                tx.execute(
                    "INSERT OR REPLACE INTO snapshots (doc_id, bytes, upto)
                 VALUES (?1, ?2, (SELECT COALESCE(MAX(seq), 0) FROM changes WHERE doc_id = ?1))",
                    params![doc, bytes],
                )?;
            }
            Write::Trust { key, name } => {
                tx.execute(
                    "INSERT OR REPLACE INTO trusted_keys (key, name, added_at) VALUES (?1, ?2, ?3)",
                    params![key, name, now],
                )?;
            }
            Write::AuthorCredential { key, credential } => {
                tx.prepare_cached("INSERT OR REPLACE INTO author_credentials (key, credential) VALUES (?1, ?2)")?
                    .execute(params![key, credential])?;
            }
            Write::Receipt { seq, doc, body, sig, hash } => {
                tx.execute(
                    "INSERT OR IGNORE INTO receipts (seq, doc_id, body, sig, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![seq, doc, body, sig, hash],
                )?;
            }
            Write::Quarantine { doc, source, reason, batch, evidence, changes } => {
                // A carrier sends what was kept aside again each time it
                // syncs: one row is enough to decide it.
                tx.execute(
                    "INSERT INTO quarantine (doc_id, source, reason, batch, evidence, received_at, changes)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
                     WHERE NOT EXISTS (SELECT 1 FROM quarantine WHERE doc_id = ?1 AND (changes = ?7 OR batch = ?4))",
                    params![doc, source, reason, batch, evidence, now, changes],
                )?;
            }
            Write::Decide { id, decision, by, note, at } => {
                tx.execute(
                    "UPDATE quarantine SET decision = ?2, decided_by = ?3, note = ?4, decided_at = ?5
                     WHERE id = ?1 AND decision IS NULL",
                    params![id, decision, by, note, at],
                )?;
            }
            Write::Heads { doc, heads, campaign, enterprise } => {
                tx.prepare_cached("UPDATE docs SET heads = ?2, campaign = ?3, enterprise = ?4 WHERE id = ?1")?
                    .execute(params![doc, heads, campaign, enterprise])?;
                tx.prepare_cached("DELETE FROM whole_batches WHERE doc_id = ?1 AND heads <> ?2")?
                    .execute(params![doc, heads])?;
            }
            // Not recorded yet (`photos` NULL): the next open records them all.
            Write::Photos { doc, digests, add: true } => {
                tx.prepare_cached(
                    "INSERT INTO doc_photo_adds (doc_id, digests) \
                     SELECT id, ?2 FROM docs WHERE id = ?1 AND photos IS NOT NULL",
                )?
                .execute(params![doc, digests])?;
            }
            Write::Photos { doc, digests, add: false } => {
                tx.prepare_cached("UPDATE docs SET photos = ?2 WHERE id = ?1")?.execute(params![doc, digests])?;
                tx.prepare_cached("DELETE FROM doc_photo_adds WHERE doc_id = ?1")?.execute([doc])?;
            }
            Write::Whole { doc, heads, batch, evidence, changes } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO whole_batches (doc_id, heads, batch, evidence, changes) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![doc, heads, batch, evidence, changes as i64])?;
            }
            Write::Checkpoint { peer, doc, heads } => {
                tx.prepare_cached("INSERT OR REPLACE INTO checkpoints (peer, doc_id, heads) VALUES (?1, ?2, ?3)")?
                    .execute(params![peer, doc, heads])?;
            }
            Write::Blob { sha256, size } => {
                tx.execute(
                    "INSERT OR IGNORE INTO blobs (sha256, size, added_at) VALUES (?1, ?2, ?3)",
                    params![sha256, size as i64, now],
                )?;
            }
            Write::AtHq(shas) => {
                let mut insert = tx.prepare_cached("INSERT OR IGNORE INTO photos_at_hq (sha256) VALUES (?1)")?;
                for sha in shas {
                    insert.execute([sha])?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// The schema version the database is at (migrations applied).
fn user_version(conn: &Connection) -> Result<usize, StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(usize::try_from(version).unwrap_or(usize::MAX))
}

/// Brings the schema to the newest version; each migration runs once, in
/// its own transaction, tracked by `PRAGMA user_version`.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version = user_version(conn)?;
    if version > MIGRATIONS.len() {
        return Err(StoreError::NewerStore { found: version, supported: MIGRATIONS.len() });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
