//! Bad input over a real socket, against one real `fieldsync-server`
//! process that keeps running across every case.
//!
//! Each case runs a real client session (`sync-core`'s `Session` over a
//! QUIC connection from `field_client::net::connect`) whose outgoing
//! messages pass through a tamper function: the bad message is a legitimate
//! one from the real code path with exactly one fault. For every case the
//! client receives a typed refusal with a readable Chinese reason, the
//! server closes the session, HQ's store holds no row more than before, and
//! a good device then syncs and gets its receipt: the server still serves.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Server, hazard, issue, revoke, server_command, spawn_relay};
use field_client::{Store, new_entity_id};
use serde_bytes::ByteBuf;
use sync_core::automerge::transaction::{CommitOptions, Transactable, Transaction};
use sync_core::automerge::{ActorId, Automerge, AutomergeError, ObjId, ROOT, ReadDoc, Value};
use sync_core::credential::{Enrollment, SignedCredential};
use sync_core::doc::{campaign, dossier};
use sync_core::identity::{DeviceKey, DevicePublicKey};
use sync_core::ids::{CreditCode, DocId, EntityId};
use sync_core::model::{CampaignKind, Domain, Enterprise};
use sync_core::sync::batch;
use sync_core::sync::message::{Evidence, FrameReader, MAX_FRAME, Message, RefusalCode};
use sync_core::sync::session::{Effect, Input, Session, SessionConfig, SyncError};

const SITE: &str = "91640200MA76XYW123";
const MINE: &str = "91640300MA76XYW125";

/// How a session with the server ended.
struct Outcome {
    /// The server's refusal, as the client's session received it; or what
    /// happened instead.
    refusal: Result<(RefusalCode, String), String>,
    /// Why the connection ended; `None` if it was still open 5 s later.
    closed: Option<quinn::ConnectionError>,
}

/// Runs a real client session with HQ at `addr`: TLS with `key` (HQ's key
/// pinned), a hello with `credential`, documents read from `replica`. Every
/// message the session sends goes through `tamper`, which returns the bytes
/// actually written. Runs until the server refuses or ends the connection.
async fn session(
    addr: SocketAddr,
    hq: DevicePublicKey,
    key: &DeviceKey,
    credential: &SignedCredential,
    replica: &mut Store,
    mut tamper: impl FnMut(Message) -> Vec<u8>,
) -> Outcome {
    replica.load_all().unwrap();
    let (_endpoint, connection) = field_client::net::connect(key, Some(hq), addr).await.unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let config = SessionConfig { credential: credential.clone(), hq, revocations: None, peer_key: hq };
    let mut session = Session::new(config);
    let mut reader = FrameReader::default();
    let mut inputs = VecDeque::from([Input::Start]);
    let mut buf = vec![0; 64 * 1024];
    let refusal = 'session: loop {
        while let Some(input) = inputs.pop_front() {
            for effect in session.handle(field_client::now_ms(), &*replica, input) {
                match effect {
                    // A write after the server closed fails; what the server
                    // answered is what the case checks.
                    Effect::Send(message) => {
                        let _ = send.write_all(&tamper(message)).await;
                    }
                    Effect::Persist { token, .. } => inputs.push_back(Input::Persisted { token, receipt: None }),
                    Effect::StoreReceipts(_) | Effect::StoreRevocations(_) => {}
                    Effect::Load { doc, .. } => inputs.push_back(Input::Loaded(doc)),
                    Effect::Quarantine { .. } => {}
                    Effect::Close(SyncError::Refused { code, message }) => break 'session Ok((code, message)),
                    Effect::Close(error) => break 'session Err(format!("the client's own session failed: {error}")),
                    Effect::Finished(_) => break 'session Err("the server completed the session".into()),
                }
            }
        }
        match reader.next_message().expect("the server sends well-formed frames") {
            Some(message) => inputs.push_back(Input::Message(message)),
            None => match recv.read(&mut buf).await {
                Ok(Some(n)) => reader.push(&buf[..n]),
                Ok(None) => break Err("the server ended its stream without a refusal".into()),
                Err(e) => break Err(format!("the connection ended without a refusal: {e}")),
            },
        }
    };
    let _ = send.finish();
    let closed = tokio::time::timeout(Duration::from_secs(5), connection.closed()).await.ok();
    Outcome { refusal, closed }
}

/// Sends every message unchanged.
fn as_is(message: Message) -> Vec<u8> {
    message.to_frame()
}

/// Rows in each table of HQ's sync store, read from the database file.
fn hq_rows(data: &Path) -> BTreeMap<&'static str, i64> {
    let db = rusqlite::Connection::open_with_flags(
        data.join("sync/store.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    ["docs", "changes", "evidence", "author_credentials", "receipts", "checkpoints"]
        .into_iter()
        .map(|table| (table, db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()))
        .collect()
}

/// The real HQ, with campaign A (one construction site) whose lead syncs
/// well; the lead is the good device checked after every case.
struct Hq {
    data: PathBuf,
    server: Server,
    key: DevicePublicKey,
    campaign: DocId,
    good: Store,
    site: DocId,
}

impl Hq {
    /// Starts the server in `dir`; the lead sets up campaign A, records a
    /// finding and syncs.
    async fn start(dir: &Path) -> Self {
        let data = dir.join("hq");
        let server = Server::start(&data);
        let (mut good, _) = device(dir, "张三", 1);
        let (campaign, site) =
            campaign_with(&mut good, CampaignKind::ConstructionJointInspection, "联合检查", SITE, Domain::Construction);
        let key = String::from_utf8(server_command(&data, &["key"]).stdout).unwrap().trim().parse().unwrap();
        let mut hq = Hq { data, server, key, campaign, good, site };
        hq.enroll(&hq.good, "inspector", &[]);
        add_hazard(&mut hq.good, &hq.site, "临边无防护");
        hq.good.sync_with_hq(None).await.unwrap();
        hq
    }

    /// Enrolls `store` with `role`, scoped to campaign A and `more` (more
    /// `issue` arguments).
    fn enroll(&self, store: &Store, role: &str, more: &[&str]) {
        store.enroll(&self.issue(store, role, more)).unwrap();
    }

    /// An enrollment for `store` from `fieldsync-server issue`, scoped to
    /// campaign A and `more`.
    fn issue(&self, store: &Store, role: &str, more: &[&str]) -> Enrollment {
        let campaign = self.campaign.to_string();
        let scope = [&["--campaign", campaign.as_str()][..], more].concat();
        issue(&self.data, store, role, &self.server.addr.to_string(), &scope)
    }

    /// A new inspector's tablet in campaign A, enrolled and synced once.
    async fn tablet(&self, dir: &Path, name: &str, seed: u8) -> (Store, DeviceKey, SignedCredential) {
        let (mut store, key) = device(dir, name, seed);
        self.enroll(&store, "inspector", &[]);
        store.sync_with_hq(None).await.unwrap();
        let credential = credential(&store);
        (store, key, credential)
    }

    /// Runs one bad case: `run` must be refused with `code` and a reason
    /// containing `reason`; the session must be closed, HQ's store
    /// unchanged, and the server must still serve the good device.
    async fn case(
        &mut self,
        name: &str,
        code: RefusalCode,
        reason: &str,
        run: impl AsyncFnOnce(SocketAddr) -> Outcome,
    ) {
        let before = hq_rows(&self.data);
        let outcome = tokio::time::timeout(Duration::from_secs(10), run(self.server.addr))
            .await
            .unwrap_or_else(|_| panic!("{name}: no answer from the server in 10 s"));
        let (got, message) = outcome.refusal.unwrap_or_else(|e| panic!("{name}: not refused: {e}"));
        assert_eq!(got, code, "{name}: {message}");
        assert!(message.contains(reason), "{name}: the reason should say {reason:?}: {message}");
        assert!(
            matches!(&outcome.closed, Some(quinn::ConnectionError::ApplicationClosed(_))),
            "{name}: the server closes the session: {:?}",
            outcome.closed
        );
        assert_eq!(hq_rows(&self.data), before, "{name}: HQ stored nothing of it");
        assert!(self.server.is_running(), "{name}: the server is still running");
        add_hazard(&mut self.good, &self.site, &format!("{name}之后的隐患"));
        self.good.sync_with_hq(None).await.unwrap_or_else(|e| panic!("after {name}: {e}"));
        assert!(self.good.unreceipted().unwrap().is_empty(), "after {name}: the good device is receipted");
    }
}

/// HQ's signing key, read from `<data>/hq.key`; only to craft a credential
/// `fieldsync-server issue` refuses to make.
fn hq_signing_key(data: &Path) -> DeviceKey {
    let text = std::fs::read_to_string(data.join("hq.key")).unwrap();
    DeviceKey::from_seed(hex::decode(text.trim()).unwrap().try_into().unwrap())
}

fn device(dir: &Path, name: &str, seed: u8) -> (Store, DeviceKey) {
    (Store::init_with_seed(&dir.join(name), name, [seed; 32]).unwrap(), DeviceKey::from_seed([seed; 32]))
}

fn credential(store: &Store) -> SignedCredential {
    store.enrollment().unwrap().unwrap().credential
}

/// A new campaign with one enterprise, and that enterprise's dossier.
fn campaign_with(store: &mut Store, kind: CampaignKind, name: &str, code: &str, domain: Domain) -> (DocId, DocId) {
    let c = store.create_campaign(name, kind, "2026-11-24", "2026-11-25").unwrap();
    let code: CreditCode = code.parse().unwrap();
    let enterprise = Enterprise {
        name: format!("{name}的企业"),
        unified_social_credit_code: code.clone(),
        domain,
        project: String::new(),
        address: String::new(),
        dossier_id: DocId::dossier(&c, &code),
    };
    store.edit(&c, |tx| campaign::add_enterprise(tx, &c, &enterprise)).unwrap();
    let dossier_id = store.open_dossier(&c, code.as_str()).unwrap();
    (c, dossier_id)
}

fn add_hazard(store: &mut Store, dossier_id: &DocId, title: &str) -> EntityId {
    let id = new_entity_id().unwrap();
    store.edit(dossier_id, |tx| dossier::add_hazard(tx, &id, &hazard(title))).unwrap();
    id
}

/// Damages a hazard record (given as its object) inside a transaction.
type Corruption = fn(&mut Transaction<'_>, &ObjId);

/// Adds a valid hazard to `dossier_id` and, in the same signed change,
/// damages it with `corrupt`: Automerge written directly, past the model's
/// checks, as a tampered client could.
fn add_corrupt_hazard(store: &mut Store, dossier_id: &DocId, corrupt: Corruption) -> EntityId {
    let id = new_entity_id().unwrap();
    store
        .edit(dossier_id, |tx| {
            dossier::add_hazard(tx, &id, &hazard("被篡改的隐患"))?;
            let record = object(tx, ROOT, &["hazards", id.as_str()]);
            corrupt(tx, &record);
            Ok(())
        })
        .unwrap();
    id
}

/// The object at `path` under `base`.
fn object(doc: &impl ReadDoc, base: ObjId, path: &[&str]) -> ObjId {
    path.iter().fold(base, |obj, key| match doc.get(&obj, *key).unwrap() {
        Some((Value::Object(_), id)) => id,
        other => panic!("{key}: {other:?}"),
    })
}

/// Applies `f` to the first `changes` message; every other message is sent
/// as it is.
fn on_changes(mut f: impl FnMut(&mut ByteBuf, &mut Vec<Evidence>)) -> impl FnMut(Message) -> Vec<u8> {
    let mut done = false;
    move |mut message| {
        if let Message::Changes { batch, evidence, .. } = &mut message
            && !done
        {
            f(batch, evidence);
            done = true;
        }
        message.to_frame()
    }
}

/// Replaces the `catalog` message (sent once the server's hello arrived)
/// by `bytes`.
fn instead_of_catalog(bytes: Vec<u8>) -> impl FnMut(Message) -> Vec<u8> {
    move |message| match message {
        Message::Catalog { .. } => bytes.clone(),
        other => other.to_frame(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_the_server_keeps_serving() {
    let dir = tempfile::TempDir::new().unwrap();
    let dir = dir.path();
    let mut hq = Hq::start(dir).await;
    let (hq_key, data, addr) = (hq.key, hq.data.clone(), hq.server.addr.to_string());

    // Campaign B (a mine), led by an inspector scoped to it, is at HQ too.
    let (mut lead_b, _) = device(dir, "赵六", 2);
    let (c_b, mine) = campaign_with(&mut lead_b, CampaignKind::MineSurvey, "矿山调研", MINE, Domain::CoalMine);
    lead_b.enroll(&issue(&data, &lead_b, "inspector", &addr, &["--campaign", &c_b.to_string()])).unwrap();
    add_hazard(&mut lead_b, &mine, "瓦斯检查空班");
    lead_b.sync_with_hq(None).await.unwrap();

    // Unenrolled: a credential from another HQ, and no credential at all.
    let (mut stranger, stranger_key) = device(dir, "陌生人", 3);
    let foreign = issue(&dir.join("other-hq"), &stranger, "inspector", &addr, &[]).credential;
    hq.case("他处总部的凭证", RefusalCode::Credential, "凭证不是由总部签发的", async |addr| {
        session(addr, hq_key, &stranger_key, &foreign, &mut stranger, as_is).await
    })
    .await;
    let no_credential = |message| match message {
        Message::Hello { version, revocations, .. } => {
            Message::Hello { version, credential: ByteBuf::new(), revocations }.to_frame()
        }
        other => other.to_frame(),
    };
    hq.case("没有凭证", RefusalCode::Credential, "凭证格式无效", async |addr| {
        session(addr, hq_key, &stranger_key, &foreign, &mut stranger, no_credential).await
    })
    .await;

    // Revoked: a tablet that synced yesterday is revoked; its new finding is
    // refused with the session.
    let (mut lost, lost_key, lost_credential) = hq.tablet(dir, "王五", 4).await;
    revoke(&data, lost_credential.credential().serial);
    let lost_site = lost.open_dossier(&hq.campaign, SITE).unwrap();
    add_hazard(&mut lost, &lost_site, "丢失平板上的隐患");
    hq.case("已吊销", RefusalCode::Credential, "吊销", async |addr| {
        session(addr, hq_key, &lost_key, &lost_credential, &mut lost, as_is).await
    })
    .await;

    // Expired: `issue` gives at least a day, so the credential it issued is
    // re-signed with HQ's own key with its validity moved into the past.
    let (mut late, late_key) = device(dir, "钱七", 5);
    let mut old = hq.issue(&late, "inspector", &[]).credential.credential().clone();
    let week = 7 * 86_400_000;
    (old.not_before, old.not_after) = (field_client::now_ms() - 2 * week, field_client::now_ms() - week);
    let expired = SignedCredential::issue(&hq_signing_key(&data), old);
    hq.case("已过期", RefusalCode::Credential, "凭证已过期", async |addr| {
        session(addr, hq_key, &late_key, &expired, &mut late, as_is).await
    })
    .await;

    // Replayed handshake: a second hello in the same session, and a hello
    // carrying someone else's (valid) credential. 孙八 works in both
    // campaigns and has synced both.
    let (mut peer, peer_key) = device(dir, "孙八", 6);
    hq.enroll(&peer, "inspector", &["--campaign", &c_b.to_string()]);
    peer.sync_with_hq(None).await.unwrap();
    let peer_credential = credential(&peer);
    let mut hello = Vec::new();
    let hello_twice = move |message: Message| match message {
        Message::Hello { .. } => {
            hello = message.to_frame();
            hello.clone()
        }
        Message::Catalog { .. } => [hello.clone(), message.to_frame()].concat(),
        other => other.to_frame(),
    };
    hq.case("重复握手", RefusalCode::Protocol, "此时不应收到 Hello", async |addr| {
        session(addr, hq_key, &peer_key, &peer_credential, &mut peer, hello_twice).await
    })
    .await;
    let lead_credential = credential(&hq.good);
    hq.case("他人的凭证", RefusalCode::Credential, "对方凭证与其连接密钥不符", async |addr| {
        session(addr, hq_key, &peer_key, &lead_credential, &mut peer, as_is).await
    })
    .await;

    // Malformed and oversized frames, in place of the catalog.
    let garbage = [&12u32.to_be_bytes()[..], &[0xff; 12]].concat();
    hq.case("消息格式无效", RefusalCode::Protocol, "消息格式无效", async |addr| {
        session(addr, hq_key, &peer_key, &peer_credential, &mut peer, instead_of_catalog(garbage)).await
    })
    .await;
    let oversized = u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes().to_vec();
    hq.case("消息过大", RefusalCode::Protocol, "消息过大", async |addr| {
        session(addr, hq_key, &peer_key, &peer_credential, &mut peer, instead_of_catalog(oversized)).await
    })
    .await;

    // Out of scope: 孙八 is reassigned to campaign A only (a new
    // credential), but still holds the mine's dossier and adds a finding.
    let reassigned = hq.issue(&peer, "inspector", &[]).credential;
    add_hazard(&mut peer, &mine, "越权记录的隐患");
    hq.case("越权文档", RefusalCode::Scope, "不在允许的范围内", async |addr| {
        session(addr, hq_key, &peer_key, &reassigned, &mut peer, as_is).await
    })
    .await;

    // The change-level cases come from a tablet that adds a finding before
    // each; HQ gets none of its work, as every one of its sessions fails.
    let (mut tablet, tablet_key, tablet_credential) = hq.tablet(dir, "周九", 7).await;
    let tablet_site = tablet.open_dossier(&hq.campaign, SITE).unwrap();

    // Forged signature: one byte of the evidence signature flipped.
    let first = add_hazard(&mut tablet, &tablet_site, "签名被改的隐患");
    let flip_signature = on_changes(|_, evidence| evidence[0].sig[10] ^= 1);
    hq.case("伪造签名", RefusalCode::Signature, "签名无效", async |addr| {
        session(addr, hq_key, &tablet_key, &tablet_credential, &mut tablet, flip_signature).await
    })
    .await;

    // Malformed Automerge bytes: the batch cut in half.
    add_hazard(&mut tablet, &tablet_site, "数据被截断的隐患");
    let truncate = on_changes(|batch, _| {
        let half = batch.len() / 2;
        batch.truncate(half);
    });
    hq.case("修改数据损坏", RefusalCode::Protocol, "修改无法解析", async |addr| {
        session(addr, hq_key, &tablet_key, &tablet_credential, &mut tablet, truncate).await
    })
    .await;

    // A relay spoofing another device's actor: the station stored the
    // tablet's findings (with the tablet's signature) as a relay, then adds
    // a change of its own under the tablet's actor id to what it forwards.
    // Its link to HQ is down, so it forwards nothing itself.
    let (station, station_key) = device(dir, "安监站", 8);
    let unreachable = format!("127.0.0.1:{}", common::free_udp_port());
    station.enroll(&issue(&data, &station, "station", &unreachable, &[])).unwrap();
    let station_credential = credential(&station);
    let (relay_addr, stop_relay, relay) = spawn_relay(station, Duration::from_secs(60)).await;
    tablet.sync_with_peer(relay_addr).await.unwrap();
    stop_relay.send(()).unwrap();
    relay.await.unwrap().unwrap();
    let mut station = Store::open(&dir.join("安监站")).unwrap();
    let mut forged = station.document(&tablet_site).unwrap().clone();
    forged.set_actor(tablet.document(&tablet_site).unwrap().get_actor().clone());
    let mut tx = forged.transaction();
    let record = object(&tx, ROOT, &["hazards", first.as_str()]);
    tx.put(&record, "title", "被安监站冒名改写的隐患").unwrap();
    let forged_hash = tx.commit().0.unwrap();
    let spoof = on_changes(|batch, _| {
        let mut hashes: Vec<_> = batch::decode(batch).unwrap().infos().iter().map(|c| c.hash).collect();
        hashes.push(forged_hash);
        *batch = ByteBuf::from(forged.bundle(hashes).unwrap().bytes().to_vec());
    });
    hq.case("冒用他人身份", RefusalCode::Signature, "冒用了其他设备的身份", async |addr| {
        session(addr, hq_key, &station_key, &station_credential, &mut station, spoof).await
    })
    .await;

    // Schema-invalid changes, signed by their author: an accident type not
    // in GB 6441, and a photo key that is a path instead of a SHA-256.
    let corruptions: [(&str, u8, &str, Corruption); 2] = [
        ("事故类型无效", 9, "未知的事故类型代码", |tx, hazard| {
            let accident = object(tx, hazard.clone(), &["accident_type"]);
            tx.put(&accident, "code", "99").unwrap();
        }),
        ("照片路径", 10, "照片编号“../../hq.key”格式无效", |tx, hazard| {
            let photos = object(tx, hazard.clone(), &["photos"]);
            tx.put(&photos, "../../hq.key", "IMG_0001.jpg").unwrap();
        }),
    ];
    for (name, seed, reason, corrupt) in corruptions {
        let (mut rogue, _, _) = hq.tablet(dir, name, seed).await;
        let rogue_site = rogue.open_dossier(&hq.campaign, SITE).unwrap();
        add_corrupt_hazard(&mut rogue, &rogue_site, corrupt);
        let quarantined = field_client::quarantined(&hq.data.join("sync")).unwrap().len();
        // The document is kept aside and the device told; the session goes on.
        let summary = rogue.sync_with_hq(None).await.unwrap();
        assert!(summary.quarantined.get(&rogue_site).is_some_and(|r| r.contains(reason)), "{name}: {summary:?}");
        // Kept aside for review, with who delivered it and why.
        let kept = field_client::quarantined(&hq.data.join("sync")).unwrap();
        assert_eq!(kept.len(), quarantined + 1, "{name}: quarantined");
        let last = kept.last().unwrap();
        assert!(last.reason.contains(reason) && last.source == rogue.public_key().to_string(), "{last:?}");
        assert_eq!(last.doc, rogue_site.to_string());
    }
}

/// A hazard marked 重大 without its criterion clause, in one signed change:
/// the change itself breaks the rule (the hazard kept it just before), so
/// HQ refuses and quarantines it. A merge of two valid edits that breaks it
/// is kept and listed for review (`sync_core::sync::batch` tests that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_makes_a_major_hazard_without_its_criterion_is_quarantined_at_hq() {
    let dir = tempfile::TempDir::new().unwrap();
    let dir = dir.path();
    let hq = Hq::start(dir).await;
    let (mut rogue, _, _) = hq.tablet(dir, "吴十", 11).await;
    let site = rogue.open_dossier(&hq.campaign, SITE).unwrap();
    let before = field_client::quarantined(&hq.data.join("sync")).unwrap().len();
    add_corrupt_hazard(&mut rogue, &site, |tx, hazard| tx.put(hazard, "level", "major").unwrap());
    let summary = rogue.sync_with_hq(None).await.unwrap();
    assert!(summary.quarantined.get(&site).is_some_and(|r| r.contains("判定条款")), "{summary:?}");
    let kept = field_client::quarantined(&hq.data.join("sync")).unwrap();
    assert_eq!(kept.len(), before + 1);
    assert!(kept.last().is_some_and(|q| q.reason.contains("判定条款") && q.doc == site.to_string()));
}

/// Found by this suite: a `changes` batch with one damaged byte makes
/// Automerge's bundle parser loop forever. In hexane 1.0.0-alpha.5,
/// `BoolDecoder::next` calls `advance_run`, which leaves its position where
/// it was when a run length is not valid LEB128, and tries again. The
/// session decodes a batch before checking anything else, so any enrolled
/// device or relay can pin one of the server's worker threads per message,
/// and with two messages (two workers here) the server serves nobody.
/// `batch::decode`'s `catch_unwind` contains panics, not loops; the fix is
/// the patched hexane in `vendor/hexane`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_sends_automerge_into_a_loop_is_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    let dir = dir.path();
    let mut hq = Hq::start(dir).await;
    let hq_key = hq.key;
    for (name, seed) in [("孙八", 6), ("周九", 7)] {
        let (mut tablet, key, credential) = hq.tablet(dir, name, seed).await;
        let site = tablet.open_dossier(&hq.campaign, SITE).unwrap();
        add_hazard(&mut tablet, &site, "隐患");
        let looping = on_changes(|batch, _| *batch = ByteBuf::from(looping_batch()));
        // With the patched decoder the damaged column ends early: what is
        // left are changes no signature covers.
        hq.case(&format!("{name}的损坏打包块"), RefusalCode::Signature, "签名", async |addr| {
            session(addr, hq_key, &key, &credential, &mut tablet, looping).await
        })
        .await;
    }
}

/// Three changes as one Automerge bundle, with byte 99 (a run length of a
/// boolean column) given its continuation bit: no longer valid LEB128.
fn looping_batch() -> Vec<u8> {
    let mut doc = Automerge::new().with_actor(ActorId::from([7; 16]));
    let mut hashes = Vec::new();
    for name in ["一", "二", "三"] {
        let committed = doc.transact_with::<_, _, AutomergeError, _>(
            |_| CommitOptions::default().with_time(0),
            |tx| tx.put(ROOT, "name", name),
        );
        hashes.push(committed.unwrap().hash.unwrap());
    }
    let mut batch = doc.bundle(hashes).unwrap().bytes().to_vec();
    assert_eq!(batch[99], 0x03, "the run length this test damages");
    batch[99] |= 0x80;
    batch
}
