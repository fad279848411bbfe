//! Photos over sync: the driver of [`sync_core::sync::photo`] on the
//! connection of a document session that ended well.
//!
//! [`exchange`] runs on both sides at once: the connecting side opens one
//! bidirectional stream for the negotiation (offer, want, done), and every
//! photo travels on its own unidirectional stream, so documents are never
//! held up by photos and photos never share a stream. Both what a side
//! offers and what it accepts are the photos referenced by the dossiers it
//! holds that the peer's credential may see: after the session, both sides
//! hold those dossiers.
//!
//! Files: a photo is `<home>/blobs/<first two hex digits>/<sha256>`, and
//! exists there only once its SHA-256 was verified. Bytes arrive in
//! `<home>/blobs/partial/<sha256>`, which survives a cut; the next session
//! asks to resume from its length. A partial copy is locked (`flock`) while
//! a session writes it, so two sessions at HQ never write the same one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sync_core::credential::{Credential, Role};
use sync_core::ids::DocTag;
use sync_core::ids::{DocKind, PhotoId};
use sync_core::sync::message::FrameReader;
use sync_core::sync::photo::{self, Expected, HEADER_LEN, PhotoError, PhotoMessage, Plan, StreamHeader, Upload};
use sync_core::sync::session::may_see;

use crate::db::Write as DbWrite;
use crate::net::NetError;
use crate::{Store, StoreError};

/// How long the exchange waits for the peer before giving up.
const IDLE: Duration = crate::net::IDLE;

/// Bytes read or written at a time.
const CHUNK: usize = 64 * 1024;

/// What a photo exchange did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PhotoReport {
    /// Photos the peer verified and stored.
    pub sent: usize,
    /// Photos received, verified and stored here.
    pub received: usize,
    /// Photo bytes sent (a resumed photo counts only what was resent).
    pub bytes_sent: u64,
    /// Photo bytes received.
    pub bytes_received: u64,
    /// Photos that failed (too large, hash mismatch, …), each with why.
    pub failed: Vec<String>,
    /// The photos the peer holds after the exchange: those it offered and
    /// those it confirmed storing.
    #[serde(skip)]
    pub peer_holds: Vec<String>,
    /// Photos of ours that HQ holds, as a station relay (or HQ) said.
    #[serde(skip)]
    pub hq_holds: Vec<String>,
}

/// Progress of a photo exchange, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PhotoProgress {
    /// The exchange is planned: photos and bytes to move, both ways.
    Planned {
        /// Photos.
        photos: usize,
        /// Bytes.
        bytes: u64,
    },
    /// Bytes moved, either way.
    Moved(u64),
}

/// Receives [`PhotoProgress`] as a photo exchange goes.
pub type Progress<'a> = dyn Fn(PhotoProgress) + Send + Sync + 'a;

/// A photo's file in the blob store under `home` (a store directory).
/// `sha` is a checked name.
pub fn blob_path(home: &Path, sha: &str) -> PathBuf {
    home.join("blobs").join(sha.get(..2).unwrap_or_default()).join(sha)
}

/// The blob directory of a store.
#[derive(Clone)]
pub struct Blobs {
    home: PathBuf,
}

impl Blobs {
    fn complete(&self, photo: &PhotoId) -> PathBuf {
        blob_path(&self.home, &photo.to_string())
    }

    fn partial(&self, photo: &PhotoId) -> PathBuf {
        self.home.join("blobs").join("partial").join(photo.to_string())
    }

    /// The size of a photo held here (verified), if it is.
    fn size(&self, photo: &PhotoId) -> Option<u64> {
        fs::metadata(self.complete(photo)).ok().filter(|m| m.is_file()).map(|m| m.len())
    }

    fn partial_len(&self, photo: &PhotoId) -> Option<u64> {
        fs::metadata(self.partial(photo)).ok().map(|m| m.len())
    }

    /// Opens and locks the partial copy to append from `offset`. `None`
    /// when another session holds it or it changed since it was measured.
    fn open_partial(&self, photo: &PhotoId, offset: u64) -> Result<Option<File>, StoreError> {
        let path = self.partial(photo);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(StoreError::Io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(StoreError::Io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(StoreError::Io(e)),
        }
        let len = file.metadata().map_err(StoreError::Io)?.len();
        if offset > 0 && len != offset {
            return Ok(None);
        }
        file.set_len(offset).and_then(|()| file.seek(SeekFrom::End(0))).map_err(StoreError::Io)?;
        Ok(Some(file))
    }

    /// Verifies a complete partial copy and moves it into place. A copy
    /// whose hash is not its name is deleted.
    fn settle(&self, photo: &PhotoId, file: File) -> Result<Result<(), PhotoError>, StoreError> {
        let partial = self.partial(photo);
        file.sync_all().map_err(StoreError::Io)?;
        let mut hasher = Sha256::new();
        let mut reader = File::open(&partial).map_err(StoreError::Io)?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = reader.read(&mut buf).map_err(StoreError::Io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let digest: [u8; 32] = hasher.finalize().into();
        if digest != *photo.digest() {
            fs::remove_file(&partial).map_err(StoreError::Io)?;
            return Ok(Err(PhotoError::Mismatch(*photo)));
        }
        let target = self.complete(photo);
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).map_err(StoreError::Io)?;
        }
        fs::rename(&partial, &target).map_err(StoreError::Io)?;
        drop(file);
        Ok(Ok(()))
    }
}

/// A store's photos, as one side of an exchange.
pub trait PhotoSide {
    /// Photos referenced by held dossiers whose place `scope` admits.
    fn referenced(&mut self, scope: &dyn Fn(&DocTag) -> bool) -> Result<BTreeSet<PhotoId>, StoreError>;
    /// Which of `photos` the store records as held (each is then looked
    /// for on disk: the record alone is not trusted).
    fn recorded(&self, photos: &BTreeSet<PhotoId>) -> Result<BTreeSet<PhotoId>, StoreError>;
    /// The blob directory.
    fn blobs(&self) -> Blobs;
    /// Records a verified photo in the `blobs` table.
    fn record(&self, photo: &PhotoId, size: u64) -> Result<(), StoreError>;
    /// Which of `photos` HQ is known to hold.
    fn at_hq(&self, photos: &BTreeSet<PhotoId>) -> Result<BTreeSet<PhotoId>, StoreError>;
}

impl PhotoSide for Store {
    fn referenced(&mut self, scope: &dyn Fn(&DocTag) -> bool) -> Result<BTreeSet<PhotoId>, StoreError> {
        // The index says where each document belongs, and each dossier's
        // row records its photos: no dossier is loaded (HQ holds thousands).
        let dossiers: Vec<String> = self
            .index
            .iter()
            .filter(|(id, i)| id.kind() == DocKind::EnterpriseDossier && i.tag.as_ref().is_some_and(scope))
            .map(|(id, _)| id.to_string())
            .collect();
        let mut out = BTreeSet::new();
        for photos in self.db.photos(dossiers)? {
            out.extend(photos.chunks_exact(32).filter_map(|d| d.try_into().ok().map(PhotoId::from_digest)));
        }
        Ok(out)
    }

    fn recorded(&self, photos: &BTreeSet<PhotoId>) -> Result<BTreeSet<PhotoId>, StoreError> {
        let recorded = self.db.recorded_blobs(photos.iter().map(PhotoId::to_string).collect())?;
        Ok(recorded.iter().filter_map(|sha| sha.parse().ok()).collect())
    }

    fn blobs(&self) -> Blobs {
        Blobs { home: self.home().to_path_buf() }
    }

    fn record(&self, photo: &PhotoId, size: u64) -> Result<(), StoreError> {
        self.db.persist(vec![DbWrite::Blob { sha256: photo.to_string(), size }])
    }

    fn at_hq(&self, photos: &BTreeSet<PhotoId>) -> Result<BTreeSet<PhotoId>, StoreError> {
        let known = self.db.at_hq(photos.iter().map(PhotoId::to_string).collect())?;
        Ok(known.iter().filter_map(|sha| sha.parse().ok()).collect())
    }
}

/// The photos of this device's own work that HQ is not known to hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PhotosOwed {
    /// How many.
    pub photos: usize,
    /// Their bytes (as held here).
    pub bytes: u64,
}

impl Store {
    /// The photos this device's own changes added to the dossiers (and
    /// still referenced) that HQ is not known to hold: until there are
    /// none, the device's work is not safe at HQ.
    pub fn photos_owed(&mut self) -> Result<PhotosOwed, StoreError> {
        let actor = self.proof.actor_id();
        let mut own = BTreeSet::new();
        for id in self.doc_ids(DocKind::EnterpriseDossier)? {
            let doc = self.document(&id)?;
            let referenced = sync_core::validate::dossier_photos(doc);
            // Only this device's own changes are decoded, not the team's.
            let mine = doc.get_changes_meta(&[]).into_iter().filter(|c| *c.actor == actor).map(|c| c.hash);
            let changes = mine.filter_map(|hash| sync_core::automerge::ReadDoc::get_change_by_hash(doc, &hash));
            own.extend(changes.flat_map(|c| sync_core::validate::added_by(&c)).filter(|p| referenced.contains(p)));
        }
        let at_hq: BTreeSet<String> =
            self.db.at_hq(own.iter().map(PhotoId::to_string).collect())?.into_iter().collect();
        let blobs = self.blobs();
        let owed: Vec<&PhotoId> = own.iter().filter(|p| !at_hq.contains(&p.to_string())).collect();
        Ok(PhotosOwed { photos: owed.len(), bytes: owed.iter().filter_map(|p| blobs.size(p)).sum() })
    }

    /// Records photos HQ holds (after an exchange with HQ).
    pub(crate) fn record_at_hq(&self, shas: Vec<String>) -> Result<(), StoreError> {
        if shas.is_empty() {
            return Ok(());
        }
        self.db.persist(vec![DbWrite::AtHq(shas)])
    }

    /// How many photos the documents held here reference whose bytes are
    /// not here (yet): `field sync` fetches them from a peer that has them.
    pub fn missing_photos(&mut self) -> Result<usize, StoreError> {
        let blobs = self.blobs();
        Ok(self.referenced(&|_| true)?.iter().filter(|p| blobs.size(p).is_none()).count())
    }
}

fn lost(e: impl std::error::Error + 'static) -> NetError {
    crate::net::broken(&e)
}

fn idle(_: tokio::time::error::Elapsed) -> NetError {
    NetError::Connection("对方长时间无响应".into())
}

fn store(e: impl std::fmt::Display) -> NetError {
    NetError::Store(e.to_string())
}

/// Exchanges photos with the peer of a finished document session, whose
/// credential is `peer`. The side that opened the connection `opens` the
/// negotiation stream. Per-photo failures are in the report; an error ends
/// the exchange (what arrived so far stays as partial copies).
pub(crate) async fn exchange(
    side: &mut impl PhotoSide,
    connection: &quinn::Connection,
    opens: bool,
    peer: &Credential,
    progress: &Progress<'_>,
) -> Result<PhotoReport, NetError> {
    let (mut send, mut recv) = if opens {
        connection.open_bi().await.map_err(lost)?
    } else {
        tokio::time::timeout(IDLE, connection.accept_bi()).await.map_err(idle)?.map_err(lost)?
    };
    let result = negotiate(side, connection, &mut send, &mut recv, peer, progress).await;
    if let Err(NetError::Photo(error)) = &result
        && let Some(refusal) = error.refusal()
    {
        let _ = send.write_all(&refusal.to_frame()).await;
    }
    // As in the document session: finish our side, then read the peer's
    // to its end, so the last message is delivered before anyone closes.
    let _ = send.finish();
    let wait = if result.is_ok() { IDLE } else { Duration::from_secs(2) };
    let mut buf = [0u8; 1024];
    let drain = async { while let Ok(Some(_)) = recv.read(&mut buf).await {} };
    let _ = tokio::time::timeout(wait, drain).await;
    result
}

async fn write(send: &mut quinn::SendStream, message: &PhotoMessage) -> Result<(), NetError> {
    send.write_all(&message.to_frame()).await.map_err(lost)
}

async fn read(recv: &mut quinn::RecvStream, reader: &mut FrameReader) -> Result<PhotoMessage, NetError> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match reader.next_as::<PhotoMessage>() {
            Ok(Some(PhotoMessage::Refused { message, .. })) => return Err(PhotoError::Refused(message).into()),
            Ok(Some(message)) => return Ok(message),
            Ok(None) => {}
            Err(e) => return Err(PhotoError::Frame(e).into()),
        }
        match tokio::time::timeout(IDLE, recv.read(&mut buf)).await.map_err(idle)?.map_err(lost)? {
            Some(n) => reader.push(&buf[..n]),
            None => return Err(NetError::Connection("对方关闭了连接".into())),
        }
    }
}

fn out_of_order(message: &PhotoMessage) -> NetError {
    let what = match message {
        PhotoMessage::Offer { .. } => "photo_offer",
        PhotoMessage::Want { .. } => "photo_want",
        PhotoMessage::Done { .. } => "photo_done",
        PhotoMessage::Refused { .. } => "photo_refused",
    };
    PhotoError::Protocol(format!("此时不应收到 {what}")).into()
}

async fn negotiate(
    side: &mut impl PhotoSide,
    connection: &quinn::Connection,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    peer: &Credential,
    progress: &Progress<'_>,
) -> Result<PhotoReport, NetError> {
    let blobs = side.blobs();
    let mut reader = FrameReader::default();
    let mut report = PhotoReport::default();

    // The photos of the documents both sides hold after the session: those
    // the peer may see. We offer those we hold and accept those we lack.
    let referenced = side.referenced(&|tag| may_see(peer, tag)).map_err(store)?;
    // Only photos recorded as held are looked for on disk: at HQ most of
    // a scope's photos may be missing from a pulling tablet, and looking
    // each up in the file system was a fifth of its pull. A file whose
    // record a crash lost is fetched again (photos are content-addressed).
    let recorded = side.recorded(&referenced).map_err(store)?;
    let held = |p: &PhotoId| recorded.contains(p).then(|| blobs.size(p)).flatten();
    let ours = photo::offer(&referenced, held);
    write(send, &PhotoMessage::Offer { photos: ours.clone() }).await?;
    let theirs = match read(recv, &mut reader).await? {
        PhotoMessage::Offer { photos } => photos,
        other => return Err(out_of_order(&other)),
    };
    report.peer_holds = theirs.iter().map(|p| p.sha.clone()).collect();
    let mut plan = photo::plan(&theirs, &referenced, |p| held(p).is_some(), |p| blobs.partial_len(p))?;
    report.failed.extend(plan.refused.drain(..).map(|e| e.to_string()));
    let mut files = BTreeMap::new();
    for (id, expected) in plan.expect.clone() {
        match blobs.open_partial(&id, expected.offset).map_err(store)? {
            Some(file) => {
                files.insert(id, file);
            }
            None => plan.withdraw(&id),
        }
    }
    write(send, &PhotoMessage::Want { photos: plan.wants() }).await?;
    let wants = match read(recv, &mut reader).await? {
        PhotoMessage::Want { photos } => photos,
        other => return Err(out_of_order(&other)),
    };
    let uploads = photo::uploads(&ours, &wants)?;

    let bytes = uploads.iter().map(|u| u.size - u.offset).sum::<u64>()
        + plan.expect.values().map(Expected::remaining).sum::<u64>();
    progress(PhotoProgress::Planned { photos: uploads.len() + plan.expect.len(), bytes });
    let (sent, stored) = tokio::try_join!(
        send_all(connection, &blobs, &uploads, progress),
        receive_all(side, connection, &blobs, &mut plan, files, &mut report, progress),
    )?;
    report.bytes_sent = sent;
    report.received = stored.len();

    let offered: BTreeSet<PhotoId> = report.peer_holds.iter().filter_map(|sha| sha.parse().ok()).collect();
    let at_hq = side.at_hq(&offered).map_err(store)?.iter().map(PhotoId::to_string).collect();
    write(send, &PhotoMessage::Done { stored: stored.iter().map(PhotoId::to_string).collect(), at_hq }).await?;
    let (theirs, at_hq) = match read(recv, &mut reader).await? {
        PhotoMessage::Done { stored, at_hq } => (stored, at_hq),
        other => return Err(out_of_order(&other)),
    };
    // Only HQ and the stations it credentials are taken at their word.
    if matches!(peer.role, Role::Hq | Role::Station) {
        let ours: BTreeSet<&String> = ours.iter().map(|p| &p.sha).collect();
        report.hq_holds = at_hq.into_iter().filter(|sha| ours.contains(sha)).collect();
    }
    let uploaded: BTreeSet<String> = uploads.iter().map(|u| u.photo.to_string()).collect();
    let confirmed: Vec<String> = theirs.into_iter().filter(|s| uploaded.contains(s)).collect();
    report.sent = confirmed.len();
    report.peer_holds.extend(confirmed);
    Ok(report)
}

/// Sends each requested photo on its own stream, from the offset asked.
async fn send_all(
    connection: &quinn::Connection,
    blobs: &Blobs,
    uploads: &[Upload],
    progress: &Progress<'_>,
) -> Result<u64, NetError> {
    let mut total = 0u64;
    let mut buf = vec![0u8; CHUNK];
    for upload in uploads {
        let mut file = File::open(blobs.complete(&upload.photo)).map_err(store)?;
        file.seek(SeekFrom::Start(upload.offset)).map_err(store)?;
        let mut stream = connection.open_uni().await.map_err(lost)?;
        let header = StreamHeader { photo: upload.photo, offset: upload.offset };
        stream.write_all(&header.encode()).await.map_err(lost)?;
        let mut left = upload.size - upload.offset;
        while left > 0 {
            let want = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
            let n = file.read(&mut buf[..want]).map_err(store)?;
            if n == 0 {
                break;
            }
            stream.write_all(&buf[..n]).await.map_err(lost)?;
            left -= n as u64;
            total += n as u64;
            progress(PhotoProgress::Moved(n as u64));
        }
        stream.finish().map_err(lost)?;
    }
    Ok(total)
}

/// Why one photo's stream did not complete it.
enum Incomplete {
    /// More bytes than the photo's size: a per-photo failure.
    Overrun,
    /// The stream ended short: the partial copy is kept.
    Short,
}

/// Receives the photo streams asked for, until each has arrived: verified
/// photos are moved into place and recorded; returns them.
async fn receive_all(
    side: &mut impl PhotoSide,
    connection: &quinn::Connection,
    blobs: &Blobs,
    plan: &mut Plan,
    mut files: BTreeMap<PhotoId, File>,
    report: &mut PhotoReport,
    progress: &Progress<'_>,
) -> Result<Vec<PhotoId>, NetError> {
    let mut stored = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    while !plan.is_complete() {
        let mut stream = tokio::time::timeout(IDLE, connection.accept_uni()).await.map_err(idle)?.map_err(lost)?;
        let mut head = [0u8; HEADER_LEN];
        tokio::time::timeout(IDLE, stream.read_exact(&mut head)).await.map_err(idle)?.map_err(lost)?;
        let header = StreamHeader::decode(&head);
        let expected = plan.accept(&header)?;
        let id = header.photo;
        let mut file = files.remove(&id).ok_or(PhotoError::Unexpected(id))?;
        let mut got = 0u64;
        let outcome = loop {
            match tokio::time::timeout(IDLE, stream.read(&mut buf)).await.map_err(idle)?.map_err(lost)? {
                None if got == expected.remaining() => break Ok(()),
                None => break Err(Incomplete::Short),
                Some(n) if got + n as u64 > expected.remaining() => break Err(Incomplete::Overrun),
                Some(n) => {
                    file.write_all(&buf[..n]).map_err(store)?;
                    got += n as u64;
                    report.bytes_received += n as u64;
                    progress(PhotoProgress::Moved(n as u64));
                }
            }
        };
        match outcome {
            Ok(()) => {
                // Hashing up to 32 MiB would hold up other sessions' tasks.
                let blobs = blobs.clone();
                let settled = tokio::task::spawn_blocking(move || blobs.settle(&id, file))
                    .await
                    .map_err(store)?
                    .map_err(store)?;
                match settled {
                    Ok(()) => {
                        side.record(&id, expected.size).map_err(store)?;
                        tracing::debug!(photo = %id, bytes = got, "photo received");
                        stored.push(id);
                    }
                    Err(mismatch) => report.failed.push(mismatch.to_string()),
                }
            }
            Err(Incomplete::Overrun) => {
                let _ = stream.stop(0u32.into());
                drop(file);
                fs::remove_file(blobs.partial(&id)).map_err(store)?;
                report.failed.push(PhotoError::Overrun(id).to_string());
            }
            Err(Incomplete::Short) => report.failed.push(format!("照片 {id} 未传完，下次同步时续传")),
        }
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_copy_is_written_by_one_session_at_a_time() {
        let dir = tempfile::TempDir::new().unwrap();
        let blobs = Blobs { home: dir.path().to_path_buf() };
        let photo = PhotoId::from_digest([3; 32]);
        let mut first = blobs.open_partial(&photo, 0).unwrap().expect("free");
        first.write_all(b"abc").unwrap();
        assert!(blobs.open_partial(&photo, 3).unwrap().is_none(), "locked by the first");
        drop(first);
        // Measured at another length than it has: not resumed now.
        assert!(blobs.open_partial(&photo, 2).unwrap().is_none());
        assert!(blobs.open_partial(&photo, 3).unwrap().is_some());
    }

    #[test]
    fn only_a_copy_that_hashes_to_its_name_becomes_a_photo() {
        let dir = tempfile::TempDir::new().unwrap();
        let blobs = Blobs { home: dir.path().to_path_buf() };
        let good = PhotoId::from_digest(Sha256::digest(b"photo").into());
        let mut file = blobs.open_partial(&good, 0).unwrap().unwrap();
        file.write_all(b"photo").unwrap();
        blobs.settle(&good, file).unwrap().unwrap();
        assert_eq!(blobs.size(&good), Some(5));
        assert!(!blobs.partial(&good).exists());

        let forged = PhotoId::from_digest([9; 32]);
        let mut file = blobs.open_partial(&forged, 0).unwrap().unwrap();
        file.write_all(b"photo").unwrap();
        assert_eq!(blobs.settle(&forged, file).unwrap(), Err(PhotoError::Mismatch(forged)));
        assert_eq!(blobs.size(&forged), None);
        assert!(!blobs.partial(&forged).exists(), "the bad copy is deleted");
    }

    #[test]
    fn only_recorded_photos_count_as_held() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = Store::init(&dir.path().join("home"), "张三").unwrap();
        let path = dir.path().join("site.jpg");
        fs::write(&path, [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]).unwrap();
        let added: PhotoId = store.add_photo(&path).unwrap().parse().unwrap();
        // A file in place whose record was lost (a crash between the two).
        let unrecorded = PhotoId::from_digest(Sha256::digest(b"other").into());
        let target = store.blobs().complete(&unrecorded);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::write(&target, b"other").unwrap();
        let asked: BTreeSet<PhotoId> = [added, unrecorded, PhotoId::from_digest([5; 32])].into();
        assert_eq!(store.recorded(&asked).unwrap(), [added].into());
    }

    #[test]
    fn photos_over_the_limit_are_not_added() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = Store::init(&dir.path().join("home"), "张三").unwrap();
        let path = dir.path().join("huge.jpg");
        let mut bytes = vec![0u8; usize::try_from(photo::MAX_PHOTO).unwrap() + 1];
        bytes[..3].copy_from_slice(&[0xFF, 0xD8, 0xFF]);
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(store.add_photo(&path), Err(StoreError::Invalid(m)) if m.contains("32 MiB")));
    }
}
