//! Sync over real QUIC between real processes: the server binary on
//! loopback, devices as field-client stores in temp dirs.
//!
//! Three inspectors enroll, share a campaign through HQ, record findings
//! offline and sync; the server is killed with SIGKILL and restarted in
//! between. Checked: all replicas converge, every device ends with HQ
//! receipts covering all its work, nothing receipted is lost across the
//! kill, and a device of another HQ is refused while others keep syncing.

mod common;

use common::{
    CODE, OTHER_CODE, Server, enroll, enroll_as, free_udp_port, hazard, heads, joint_campaign, revoke, spawn_relay,
    spawn_relay_reporting,
};
use field_client::net::NetError;
use field_client::{RelayEvent, Store, new_entity_id};
use sync_core::doc::dossier;

#[tokio::test(flavor = "current_thread")]
async fn inspectors_sync_through_hq_across_a_server_kill() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let mut devices: Vec<Store> =
        ["张三", "李四", "王五"].iter().map(|n| Store::init(&dir.path().join(n), n).unwrap()).collect();
    let server = Server::start(&data);
    for d in &devices {
        enroll(&data, d);
    }
    let addr = Some(server.addr);

    // The lead creates the campaign and shares it through HQ.
    let c = joint_campaign(&mut devices[0]);
    for d in devices.iter_mut() {
        d.sync_with_hq(addr).await.unwrap();
    }

    // Day 1, offline: everyone records findings in the same dossier.
    for (i, d) in devices.iter_mut().enumerate() {
        let dossier_id = d.open_dossier(&c, CODE).unwrap();
        for n in 0..3 {
            let id = new_entity_id().unwrap();
            d.edit(&dossier_id, |tx| dossier::add_hazard(tx, &id, &hazard(&format!("检查员{i}的隐患{n}")))).unwrap();
        }
        assert!(!d.unreceipted().unwrap().is_empty());
    }
    // Two of them sync; then the server is killed mid-day and restarted.
    devices[0].sync_with_hq(addr).await.unwrap();
    devices[1].sync_with_hq(addr).await.unwrap();
    assert!(devices[0].unreceipted().unwrap().is_empty(), "receipted after sync");
    server.kill();
    let server = Server::start(&data);
    let addr = Some(server.addr);

    // A device enrolled with another HQ is refused at the handshake, and
    // the server keeps serving the others. (Forged, expired and revoked
    // credentials are refused in the session: sync-core's session tests.)
    let stranger = Store::init(&dir.path().join("stranger"), "陌生人").unwrap();
    let foreign_hq = tempfile::TempDir::new().unwrap();
    enroll(foreign_hq.path(), &stranger);
    let mut stranger = stranger;
    let refused = stranger.sync_with_hq(addr).await.unwrap_err();
    assert!(matches!(refused, NetError::Connection(_) | NetError::Sync(_)), "{refused}");

    // Evening: everyone syncs until nothing moves.
    for _ in 0..2 {
        for d in devices.iter_mut() {
            d.sync_with_hq(addr).await.unwrap();
        }
    }
    let reference = heads(&mut devices[0]);
    assert_eq!(reference.len(), 3, "campaign, dossier and briefing");
    for d in devices.iter_mut() {
        assert_eq!(heads(d), reference, "{} differs", d.device_name());
        assert!(d.unreceipted().unwrap().is_empty(), "{} has unreceipted work", d.device_name());
        let dossier_id = d.open_dossier(&c, CODE).unwrap();
        assert_eq!(d.dossier(&dossier_id).unwrap().hazards.len(), 9);
    }
    // Receipted before the kill, still at HQ after it: a fresh device pulls all.
    let mut fresh = Store::init(&dir.path().join("新设备"), "赵六").unwrap();
    enroll(&data, &fresh);
    let summary = fresh.sync_with_hq(addr).await.unwrap();
    assert!(summary.received.values().sum::<usize>() >= 9 + 3);
    assert_eq!(heads(&mut fresh), reference);
    server.kill();
}

/// A document HQ received whole is passed to a fresh HQ client as the
/// batch it arrived in; once the document moves on, that batch is dropped
/// and the document is bundled anew. Both pulls end with HQ's heads.
#[tokio::test(flavor = "current_thread")]
async fn a_document_received_whole_is_passed_on_as_is_until_it_changes() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let addr = Some(server.addr);
    let mut inspector = Store::init(&dir.path().join("张三"), "张三").unwrap();
    enroll(&data, &inspector);
    let c = joint_campaign(&mut inspector);
    let dossier_id = inspector.open_dossier(&c, CODE).unwrap();
    for n in 0..3 {
        let id = new_entity_id().unwrap();
        inspector.edit(&dossier_id, |tx| dossier::add_hazard(tx, &id, &hazard(&format!("隐患{n}")))).unwrap();
    }
    inspector.sync_with_hq(addr).await.unwrap();
    let kept = |path: &std::path::Path| -> Vec<String> {
        let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut stmt = db.prepare("SELECT doc_id FROM whole_batches ORDER BY doc_id").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    };
    // Kept once: the change log holds each batch as it arrived.
    let copies = |path: &std::path::Path| -> i64 {
        let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        db.query_row("SELECT count(*) FROM whole_batches WHERE length(batch) > 0", [], |r| r.get(0)).unwrap()
    };
    let hq_db = data.join("sync/store.db");
    assert_eq!(kept(&hq_db).len(), 3, "campaign, dossier and briefing arrived whole");
    assert_eq!(copies(&hq_db), 0);

    let pull = |name: &str| {
        let store = Store::init(&dir.path().join(name), name).unwrap();
        enroll_as(&data, &store, "hq", &server.addr.to_string());
        store
    };
    let mut first = pull("分析员甲");
    let summary = first.sync_with_hq(addr).await.unwrap();
    assert_eq!(summary.received.get(&dossier_id), Some(&4), "genesis and three findings");
    assert_eq!(heads(&mut first), heads(&mut inspector));
    // What arrived whole here is kept here too, for passing on.
    assert_eq!(kept(&dir.path().join("分析员甲/store.db")).len(), 3);
    assert_eq!(copies(&dir.path().join("分析员甲/store.db")), 0);

    // The dossier moves on: HQ no longer holds it as one batch.
    let id = new_entity_id().unwrap();
    inspector.edit(&dossier_id, |tx| dossier::add_hazard(tx, &id, &hazard("隐患3"))).unwrap();
    inspector.sync_with_hq(addr).await.unwrap();
    assert!(!kept(&hq_db).contains(&dossier_id.to_string()));
    let mut second = pull("分析员乙");
    second.sync_with_hq(addr).await.unwrap();
    assert_eq!(heads(&mut second), heads(&mut inspector));
    assert_eq!(second.dossier(&dossier_id).unwrap().hazards.len(), 4);
    server.kill();
}

/// A device loads each document only as its session reaches it. Here the
/// briefing (sent first, nothing new) is followed by the campaign, whose
/// latest change came from a colleague through the station: the device must
/// load it and carry that change to HQ, though it did not load it at start.
#[tokio::test(flavor = "current_thread")]
async fn a_device_carries_what_it_received_to_hq_without_loading_at_start() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let addr = Some(server.addr);
    let unreachable = format!("127.0.0.1:{}", free_udp_port());
    let station = Store::init(&dir.path().join("安监站"), "安监站").unwrap();
    enroll_as(&data, &station, "station", &unreachable);
    let (relay_addr, stop_relay, relay) = spawn_relay(station, std::time::Duration::from_secs(60)).await;
    let mut lead = Store::init(&dir.path().join("张三"), "张三").unwrap();
    let mut colleague = Store::init(&dir.path().join("李四"), "李四").unwrap();
    enroll(&data, &lead);
    enroll(&data, &colleague);

    let c = joint_campaign(&mut lead);
    lead.sync_with_hq(addr).await.unwrap();
    colleague.sync_with_hq(addr).await.unwrap();
    // The lead adds a team member; it reaches the colleague through the
    // station only.
    let member =
        sync_core::model::TeamMember { name: "王五".into(), role: "检查员".into(), organization: String::new() };
    lead.edit(&c, |tx| sync_core::doc::campaign::add_member(tx, &new_entity_id().unwrap(), &member)).unwrap();
    lead.sync_with_peer(relay_addr).await.unwrap();
    colleague.sync_with_peer(relay_addr).await.unwrap();
    drop(colleague);

    let mut colleague = Store::open(&dir.path().join("李四")).unwrap();
    let summary = colleague.sync_with_hq(addr).await.unwrap();
    assert_eq!(summary.sent.get(&c), Some(&1), "{summary:?}");
    let mut analyst = Store::init(&dir.path().join("分析员"), "分析员").unwrap();
    enroll_as(&data, &analyst, "hq", &server.addr.to_string());
    analyst.sync_with_hq(addr).await.unwrap();
    assert_eq!(analyst.campaign(&c).unwrap().team.len(), lead.campaign(&c).unwrap().team.len());
    stop_relay.send(()).unwrap();
    relay.await.unwrap().unwrap();
    server.kill();
}

/// A server stopped by its service manager (SIGTERM) tells the devices
/// connected to it why, at once, and exits cleanly.
#[tokio::test(flavor = "current_thread")]
async fn a_stopping_server_tells_connected_devices_why() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let device = Store::init_with_seed(&dir.path().join("tablet"), "张三", [7; 32]).unwrap();
    enroll(&data, &device);
    let hq = device.enrollment().unwrap().unwrap().hq;
    let key = sync_core::identity::DeviceKey::from_seed([7; 32]);
    let (_endpoint, connection) = field_client::net::connect(&key, Some(hq), server.addr).await.unwrap();

    assert!(server.terminate().success(), "a clean exit");
    assert_eq!(close_reason(&connection).await, "总部服务器正在关闭，请稍后再同步");
}

/// Why the peer closed `connection`, which it must do within 5 s.
async fn close_reason(connection: &quinn::Connection) -> String {
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(5), connection.closed()).await.expect("told at once");
    let quinn::ConnectionError::ApplicationClosed(close) = closed else { panic!("{closed}") };
    String::from_utf8_lossy(&close.reason).into_owned()
}

/// A station relay stopped by its clerk stops at once, even with a device
/// connected and silent, and tells that device why.
#[tokio::test(flavor = "current_thread")]
async fn a_stopping_relay_does_not_wait_for_a_silent_device() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let station = Store::init(&dir.path().join("station"), "安监站").unwrap();
    enroll_as(&data, &station, "station", "127.0.0.1:9");
    let (relay_addr, stop, relay) = spawn_relay(station, std::time::Duration::from_secs(60)).await;
    let key = sync_core::identity::DeviceKey::from_seed([7; 32]);
    let (_endpoint, connection) = field_client::net::connect(&key, None, relay_addr).await.unwrap();
    // The relay now waits for this device's hello, which never comes.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    stop.send(()).unwrap();
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(5), relay).await.expect("stopped at once");
    stopped.unwrap().unwrap();
    assert_eq!(close_reason(&connection).await, "安监站中转已停止");
}

#[tokio::test(flavor = "current_thread")]
async fn a_device_pinned_to_another_hq_key_fails_the_handshake() {
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start(&dir.path().join("hq"));
    let mut device = Store::init(&dir.path().join("tablet"), "张三").unwrap();
    // Enrolled with another HQ: its pinned key is not the server's.
    enroll(&dir.path().join("other-hq"), &device);
    let error = device.sync_with_hq(Some(server.addr)).await.unwrap_err();
    assert!(matches!(error, NetError::Connection(_)), "{error}");
    // Told in Chinese, with the reason the device's own check gave.
    assert_eq!(error.to_string(), "无法连接或连接中断：安全握手或传输出错：服务器密钥与绑定的总部密钥不符");
    server.kill();
}

/// Day 1 the station has no link to HQ: inspectors sync with the station's
/// relay. Day 2 HQ is reachable: the relay forwards, HQ's receipts come back
/// through the relay, and every inspector ends with receipts for its work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_relay_stores_and_forwards_and_carries_receipts_back() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let hq_addr = format!("127.0.0.1:{}", free_udp_port());
    let relay_store = Store::init(&dir.path().join("station"), "安监站").unwrap();
    enroll_as(&data, &relay_store, "station", &hq_addr);
    let mut devices: Vec<Store> =
        ["张三", "李四"].iter().map(|n| Store::init(&dir.path().join(n), n).unwrap()).collect();
    for d in &devices {
        enroll_as(&data, d, "inspector", &hq_addr);
    }

    // The station's relay runs in its own task until told to stop.
    let (relay_addr, stop_tx, relay, mut events) =
        spawn_relay_reporting(relay_store, std::time::Duration::from_secs(1)).await;

    // Day 1: the lead creates the campaign; both record findings and sync
    // with the station only.
    let c = joint_campaign(&mut devices[0]);
    devices[0].sync_with_peer(relay_addr).await.unwrap();
    devices[1].sync_with_peer(relay_addr).await.unwrap();
    for (i, d) in devices.iter_mut().enumerate() {
        let dossier_id = d.open_dossier(&c, CODE).unwrap();
        let id = new_entity_id().unwrap();
        d.edit(&dossier_id, |tx| dossier::add_hazard(tx, &id, &hazard(&format!("检查员{i}的隐患")))).unwrap();
        d.sync_with_peer(relay_addr).await.unwrap();
        assert!(!d.unreceipted().unwrap().is_empty(), "no HQ yet, so no receipt");
    }

    // Day 2: HQ comes up; the relay forwards on its own.
    let server = Server::start_at(&data, &hq_addr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        for d in devices.iter_mut() {
            d.sync_with_peer(relay_addr).await.unwrap();
        }
        if devices.iter_mut().all(|d| d.unreceipted().unwrap().is_empty()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "receipts never came back through the relay");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    // HQ holds everything: a fresh HQ-side pull sees both findings.
    let mut fresh = Store::init(&dir.path().join("总部分析员"), "分析员").unwrap();
    enroll_as(&data, &fresh, "hq", &hq_addr);
    fresh.sync_with_hq(None).await.unwrap();
    let dossier_id = fresh.open_dossier(&c, CODE).unwrap();
    assert_eq!(fresh.dossier(&dossier_id).unwrap().hazards.len(), 2);
    stop_tx.send(()).unwrap();
    relay.await.unwrap().unwrap();
    server.kill();

    // What the station's clerk was told: each inspector's syncs, by name,
    // and the forwards that brought HQ's receipts. (Day 1's first attempt
    // to reach HQ was still waiting for an answer when HQ came up.)
    let mut served = std::collections::BTreeSet::new();
    let (mut forwarded, mut receipts) = (0, 0);
    while let Ok(event) = events.try_recv() {
        match event {
            RelayEvent::Served { device, result } => {
                assert!(result.is_ok(), "{result:?}");
                served.extend(device);
            }
            RelayEvent::ForwardFailed(_) => {}
            RelayEvent::Forwarded { summary, .. } => {
                forwarded += summary.sent.values().sum::<usize>();
                receipts += summary.receipts;
            }
        }
    }
    assert_eq!(served, ["张三".to_owned(), "李四".to_owned()].into());
    assert!(forwarded > 0 && receipts > 0, "forwarded {forwarded} changes, {receipts} receipts");
}

/// A revoked tablet is refused by HQ at once, and by a station relay with no
/// link to HQ once the relay has seen HQ's newer revocation list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_hq_sessions_and_relays() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let addr = server.addr.to_string();
    let mut honest = Store::init(&dir.path().join("张三"), "张三").unwrap();
    let mut stolen = Store::init(&dir.path().join("李四"), "李四").unwrap();
    let relay_store = Store::init(&dir.path().join("station"), "安监站").unwrap();
    enroll_as(&data, &honest, "inspector", &addr);
    enroll_as(&data, &stolen, "inspector", &addr);
    enroll_as(&data, &relay_store, "station", &addr);
    stolen.sync_with_hq(None).await.unwrap();

    let serial = stolen.enrollment().unwrap().unwrap().credential.credential().serial;
    revoke(&data, serial);

    let refused = stolen.sync_with_hq(None).await.unwrap_err();
    assert!(refused.to_string().contains("吊销"), "{refused}");
    honest.sync_with_hq(None).await.unwrap();
    assert!(honest.revocations().unwrap().is_some(), "the list travels to devices");

    // The relay learns the list from HQ, then HQ goes away.
    let (relay_addr, stop_tx, relay) = spawn_relay(relay_store, std::time::Duration::from_millis(200)).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    server.kill();
    let refused = stolen.sync_with_peer(relay_addr).await.unwrap_err();
    assert!(refused.to_string().contains("吊销"), "{refused}");
    honest.sync_with_peer(relay_addr).await.unwrap();
    stop_tx.send(()).unwrap();
    relay.await.unwrap().unwrap();
}

/// Revocation judges the future, not the past (issue: revoking one tablet
/// froze every dossier it ever touched). Inspectors b and c record findings
/// in one dossier and sync; HQ revokes c. A fresh HQ device then gets the
/// dossier with c's earlier findings; b keeps recording and other devices
/// receive it; through a station relay, which can show with HQ's receipts
/// that c's work predates the revocation, a new inspector gets it too. c
/// itself is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_tablets_earlier_work_keeps_flowing_and_nothing_else_is_held_back() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let addr = server.addr.to_string();
    let open = |name: &str| Store::init(&dir.path().join(name), name).unwrap();
    let (mut lead, mut b, mut c) = (open("张三"), open("李四"), open("王五"));
    for store in [&lead, &b, &c] {
        enroll_as(&data, store, "inspector", &addr);
    }
    let campaign = joint_campaign(&mut lead);
    let site = lead.open_dossier(&campaign, CODE).unwrap();
    lead.sync_with_hq(None).await.unwrap();
    let record = |store: &mut Store, title: &str| {
        let id = new_entity_id().unwrap();
        store.open_dossier(&campaign, CODE).unwrap();
        store.edit(&site, |tx| dossier::add_hazard(tx, &id, &hazard(title))).unwrap();
        id
    };
    for store in [&mut b, &mut c] {
        store.sync_with_hq(None).await.unwrap();
    }
    let by_b = record(&mut b, "李四发现的隐患");
    let by_c = record(&mut c, "王五发现的隐患");
    for store in [&mut b, &mut c] {
        store.sync_with_hq(None).await.unwrap();
        assert!(store.unreceipted().unwrap().is_empty());
    }
    let c_serial = c.enrollment().unwrap().unwrap().credential.credential().serial;
    revoke(&data, c_serial);
    let hazards = |store: &mut Store| store.dossier(&site).unwrap().hazards.keys().cloned().collect::<Vec<_>>();

    // A fresh HQ device gets c's earlier work, and nothing is withheld.
    let mut analyst = open("分析员");
    enroll_as(&data, &analyst, "hq", &addr);
    let summary = analyst.sync_with_hq(None).await.unwrap();
    assert!(summary.withheld.is_empty(), "{summary:?}");
    assert!(summary.received.contains_key(&site), "{summary:?}");
    assert!(hazards(&mut analyst).contains(&by_c.to_string()), "c's earlier finding reaches HQ's analyst");

    // b keeps recording; the analyst receives it.
    let later = record(&mut b, "李四后来发现的隐患");
    b.sync_with_hq(None).await.unwrap();
    assert!(b.unreceipted().unwrap().is_empty());
    let summary = analyst.sync_with_hq(None).await.unwrap();
    assert!(summary.withheld.is_empty(), "{summary:?}");
    let seen = hazards(&mut analyst);
    assert!([&by_b, &by_c, &later].iter().all(|h| seen.contains(&h.to_string())), "{seen:?}");

    // A station relay pulls the dossier from HQ with HQ's receipts; a new
    // inspector syncing only with the relay gets c's earlier work too.
    let station = open("安监站");
    enroll_as(&data, &station, "station", &addr);
    let (relay_addr, stop, relay) = spawn_relay(station, std::time::Duration::from_millis(200)).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let mut newcomer = open("赵六");
    enroll_as(&data, &newcomer, "inspector", &addr);
    let summary = newcomer.sync_with_peer(relay_addr).await.unwrap();
    assert!(summary.withheld.is_empty(), "{summary:?}");
    let seen = hazards(&mut newcomer);
    assert!([&by_b, &by_c, &later].iter().all(|h| seen.contains(&h.to_string())), "{seen:?}");
    stop.send(()).unwrap();
    relay.await.unwrap().unwrap();

    // c itself is refused, and its work after the revocation goes nowhere.
    record(&mut c, "吊销后记录的隐患");
    let refused = c.sync_with_hq(None).await.unwrap_err();
    assert!(refused.to_string().contains("吊销"), "{refused}");
}

/// A revoked tablet's work that only a station relay holds is not stuck
/// there, and HQ learns of all of it (issue: the relay logged "暂未转发" every
/// cycle and HQ never knew). HQ is down; tablet T records a finding and
/// syncs with the relay; then HQ revokes T and tablet U. U, not yet told,
/// records a finding and syncs with the relay. HQ comes back: the relay's
/// record that T's work reached it before T's revocation makes that work
/// valid, and HQ stores it; U's work, which reached the relay after U's
/// revocation, is quarantined at HQ with the reason, and the relay is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_tablets_work_at_a_relay_reaches_hq_as_valid_or_quarantined() {
    use std::time::{Duration, Instant};
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let addr = server.addr.to_string();
    let open = |name: &str| Store::init(&dir.path().join(name), name).unwrap();
    let (mut lead, mut t, mut u, station) = (open("张三"), open("李四"), open("王五"), open("安监站"));
    for store in [&lead, &t, &u] {
        enroll_as(&data, store, "inspector", &addr);
    }
    enroll_as(&data, &station, "station", &addr);
    let campaign = joint_campaign(&mut lead);
    common::add_enterprise(&mut lead, &campaign, OTHER_CODE, "某矿业公司");
    lead.sync_with_hq(None).await.unwrap();
    for store in [&mut t, &mut u] {
        store.sync_with_hq(None).await.unwrap();
    }
    let (relay_addr, stop, relay) = spawn_relay(station, Duration::from_millis(200)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.kill();

    let record = |store: &mut Store, code: &str, title: &str| {
        let site = store.open_dossier(&campaign, code).unwrap();
        let id = new_entity_id().unwrap();
        store.edit(&site, |tx| dossier::add_hazard(tx, &id, &hazard(title))).unwrap();
        (site, id)
    };
    let (t_site, t_hazard) = record(&mut t, CODE, "李四在吊销前发现的隐患");
    t.sync_with_peer(relay_addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    for store in [&t, &u] {
        revoke(&data, store.enrollment().unwrap().unwrap().credential.credential().serial);
    }
    let (u_site, _) = record(&mut u, OTHER_CODE, "王五在吊销后记录的隐患");
    u.sync_with_peer(relay_addr).await.unwrap();

    // HQ comes back; the relay forwards.
    let server = Server::start_at(&data, &addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    while field_client::quarantined(&data.join("sync")).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "nothing of U's reached HQ's quarantine");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = field_client::quarantined(&data.join("sync")).unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].doc == u_site.to_string() && kept[0].reason.contains("王五") && kept[0].reason.contains("吊销"));

    let mut analyst = open("分析员");
    enroll_as(&data, &analyst, "hq", &addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        analyst.sync_with_hq(None).await.unwrap();
        let has = analyst.dossier(&t_site).is_ok_and(|d| d.hazards.contains_key(t_hazard.as_str()));
        if has {
            break;
        }
        assert!(Instant::now() < deadline, "T's earlier finding never reached HQ");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let u_findings = analyst.dossier(&u_site).map(|d| d.hazards.len()).unwrap_or_default();
    assert_eq!(u_findings, 0, "U's later work is not in HQ's documents");
    stop.send(()).unwrap();
    relay.await.unwrap().unwrap();
    drop(server);
}

/// Work recorded before its author enrolled, carried by another device
/// that lacks the author's credential, reaches HQ: HQ looks the credential
/// up in its register (issue: work bundled before enrollment deadlocked at
/// a carrier, each withholding the other's author). Work of an author HQ
/// never issued a credential to is kept aside at HQ with the reason, and
/// the rest of the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_bundled_before_its_author_enrolled_reaches_hq_through_a_carrier() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let addr = server.addr.to_string();
    let open = |name: &str| Store::init(&dir.path().join(name), name).unwrap();
    let mut carrier = open("张三");
    enroll_as(&data, &carrier, "inspector", &addr);
    let campaign = joint_campaign(&mut carrier);
    common::add_enterprise(&mut carrier, &campaign, OTHER_CODE, "某矿业公司");
    carrier.sync_with_hq(None).await.unwrap();

    // Two tablets, not enrolled, record findings from the carrier's campaign
    // and hand them over by bundle; HQ has issued a credential to one only.
    let campaign_bundle = carrier.export_bundle().unwrap();
    let mut hazards = Vec::new();
    let mut authors = Vec::new();
    for (name, code) in [("李四", CODE), ("王五", OTHER_CODE)] {
        let mut author = open(name);
        author.trust(&carrier.public_key(), "张三").unwrap();
        author.import_bundle(&campaign_bundle).unwrap();
        let site = author.open_dossier(&campaign, code).unwrap();
        let id = new_entity_id().unwrap();
        author.edit(&site, |tx| dossier::add_hazard(tx, &id, &hazard(&format!("{name}入网前发现的隐患")))).unwrap();
        carrier.trust(&author.public_key(), name).unwrap();
        carrier.import_bundle(&author.export_bundle().unwrap()).unwrap();
        hazards.push((site, id));
        authors.push(author);
    }
    common::issue(&data, &authors[0], "inspector", &addr, &[]);

    let summary = carrier.sync_with_hq(None).await.unwrap();
    assert!(summary.withheld.is_empty(), "{summary:?}");
    let (known, unknown) = (&hazards[0], &hazards[1]);
    assert_eq!(summary.quarantined.keys().collect::<Vec<_>>(), [&unknown.0], "{summary:?}");
    assert!(summary.quarantined[&unknown.0].contains("从未"), "{summary:?}");

    let mut analyst = open("分析员");
    enroll_as(&data, &analyst, "hq", &addr);
    analyst.sync_with_hq(None).await.unwrap();
    assert!(
        analyst.dossier(&known.0).unwrap().hazards.contains_key(known.1.as_str()),
        "the known author's work is at HQ"
    );
    let unknown_findings = analyst.dossier(&unknown.0).map(|d| d.hazards.len()).unwrap_or_default();
    assert_eq!(unknown_findings, 0, "the unknown author's work is not");
    let kept = common_quarantined(&data);
    assert!(kept.len() == 1 && kept[0].doc == unknown.0.to_string() && kept[0].decision.is_none(), "{kept:?}");

    // Once HQ issues that author a credential, the carrier's next sync
    // brings the work in, and the entry is settled: nothing left to decide.
    common::issue(&data, &authors[1], "inspector", &addr, &[]);
    let summary = carrier.sync_with_hq(None).await.unwrap();
    assert!(summary.quarantined.is_empty() && summary.withheld.is_empty(), "{summary:?}");
    analyst.sync_with_hq(None).await.unwrap();
    assert!(analyst.dossier(&unknown.0).unwrap().hazards.contains_key(unknown.1.as_str()));
    let kept = common_quarantined(&data);
    assert_eq!(kept[0].decision.as_ref().map(|d| d.outcome.as_str()), Some("stored"), "{kept:?}");
}

fn common_quarantined(data: &std::path::Path) -> Vec<field_client::Quarantined> {
    field_client::quarantined(&data.join("sync")).unwrap()
}

/// A tablet not yet enrolled can carry work too: it keeps the credentials a
/// bundle brings without checking them, and they are judged when it syncs
/// after enrolling. A forged one holds back only the work it claims to vouch
/// for.
#[tokio::test(flavor = "current_thread")]
async fn a_carrier_enrolled_after_importing_still_forwards_the_work() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let addr = Some(server.addr);
    let mut author = Store::init(&dir.path().join("张三"), "张三").unwrap();
    let mut carrier = Store::init(&dir.path().join("李四"), "李四").unwrap();
    enroll(&data, &author);
    let c = joint_campaign(&mut author);

    // Another "HQ" issued a credential to a second author, whose work
    // reaches the carrier in a bundle of a device it trusts.
    let mut forged = Store::init(&dir.path().join("赵六"), "赵六").unwrap();
    enroll(&dir.path().join("other-hq"), &forged);
    let orphan = joint_campaign(&mut forged);

    for from in [&mut author, &mut forged] {
        carrier.trust(&from.public_key(), from.device_name()).unwrap();
        carrier.import_bundle(&from.export_bundle().unwrap()).unwrap();
    }
    enroll(&data, &carrier);
    let summary = carrier.sync_with_hq(addr).await.unwrap();
    assert!(summary.sent.contains_key(&c), "{summary:?}");
    assert_eq!(summary.withheld.keys().collect::<Vec<_>>(), vec![&orphan]);
    assert!(summary.withheld[&orphan].contains("作者 赵六"), "{:?}", summary.withheld);
    let held = carrier.held_back().unwrap();
    assert_eq!(held.len(), 1, "field status names it: {held:?}");
    assert!(!held[0].quarantined && held[0].doc == orphan.to_string() && held[0].reason.contains("作者 赵六"));

    // Its author syncs later: HQ already holds the work.
    let summary = author.sync_with_hq(addr).await.unwrap();
    assert_eq!(summary.sent.values().sum::<usize>(), 0);
    assert!(author.unreceipted().unwrap().is_empty(), "{:?}", author.unreceipted().unwrap());
    server.kill();
}

/// Work carried on a USB stick reaches HQ through whoever syncs first: the
/// bundle brings its author's credential along. Work whose author has none
/// (a tablet not yet enrolled) goes to HQ, which finds no credential in its
/// register and keeps it aside with the reason; the rest of the importer's
/// sync goes through, and the work is stored once HQ has issued the
/// credential.
#[tokio::test(flavor = "current_thread")]
async fn work_imported_from_a_bundle_reaches_hq_before_its_author_syncs() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let addr = Some(server.addr);
    let mut author = Store::init(&dir.path().join("张三"), "张三").unwrap();
    let mut carrier = Store::init(&dir.path().join("李四"), "李四").unwrap();
    let mut unenrolled = Store::init(&dir.path().join("王五"), "王五").unwrap();
    enroll(&data, &author);
    enroll(&data, &carrier);

    // On site, no signal: the author's findings go to the carrier by USB,
    // and so does the work of a tablet that was never enrolled.
    let c = joint_campaign(&mut author);
    let dossier_id = author.open_dossier(&c, CODE).unwrap();
    let id = new_entity_id().unwrap();
    author.edit(&dossier_id, |tx| dossier::add_hazard(tx, &id, &hazard("脚手架未设连墙件"))).unwrap();
    let orphan = joint_campaign(&mut unenrolled);
    for from in [&mut author, &mut unenrolled] {
        carrier.trust(&from.public_key(), from.device_name()).unwrap();
        let bundle = from.export_bundle().unwrap();
        carrier.import_bundle(&bundle).unwrap();
    }
    let own = joint_campaign(&mut carrier);

    let summary = carrier.sync_with_hq(addr).await.unwrap();
    assert_eq!(summary.sent.get(&dossier_id), Some(&2), "genesis and the author's finding");
    assert!(summary.sent.contains_key(&own), "the carrier's own work goes too");
    assert!(summary.withheld.is_empty(), "{:?}", summary.withheld);
    assert_eq!(summary.quarantined.keys().collect::<Vec<_>>(), vec![&orphan]);
    assert!(summary.quarantined[&orphan].contains("从未"), "{:?}", summary.quarantined);
    // Kept aside, not forgotten: the next sync sends it again.
    let again = carrier.sync_with_hq(addr).await.unwrap();
    assert!(again.quarantined.contains_key(&orphan));
    assert_eq!(field_client::quarantined(&data.join("sync")).unwrap().len(), 1, "one entry to decide");
    // Once HQ has enrolled that tablet, the work goes.
    enroll(&data, &unenrolled);
    let later = carrier.sync_with_hq(addr).await.unwrap();
    assert!(later.withheld.is_empty() && later.quarantined.is_empty(), "{later:?}");
    assert_eq!(later.sent.get(&orphan), Some(&2), "the campaign's creation and its enterprise");

    // The author syncs later: nothing to send, and HQ's receipts cover it.
    let summary = author.sync_with_hq(addr).await.unwrap();
    assert_eq!(summary.sent.values().sum::<usize>(), 0);
    assert!(author.unreceipted().unwrap().is_empty(), "{:?}", author.unreceipted().unwrap());
    server.kill();
}

/// A JSON request to HQ's API with the admin token: status and body.
async fn api(
    server: &Server,
    data: &std::path::Path,
    post: Option<serde_json::Value>,
    path: String,
) -> (u16, serde_json::Value) {
    use http_body_util::{BodyExt, Full};
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap().trim().to_owned();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let request = hyper::Request::builder()
        .method(if post.is_some() { "POST" } else { "GET" })
        .uri(format!("http://{}{path}", server.http))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(hyper::body::Bytes::from(post.map(|v| v.to_string()).unwrap_or_default())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// One revoked author's work is cut out of a dossier it shares with others
/// (issue 18): at HQ, the other author's work in the same batch is stored
/// and only the revoked author's is kept aside; a relay passes the rest on
/// to a newcomer. Then a person at HQ decides over the API: accepted work
/// is stored and reaches everyone; rejected work stays out, and the relay
/// that keeps sending it is told it was rejected, without a second row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_authors_work_is_cut_out_and_decided_at_hq() {
    use serde_json::json;
    use std::time::{Duration, Instant};
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let addr = server.addr.to_string();
    let open = |name: &str| Store::init(&dir.path().join(name), name).unwrap();
    let (mut lead, mut t, mut b, mut u, station) =
        (open("张三"), open("李四"), open("赵六"), open("王五"), open("安监站"));
    for store in [&lead, &t, &b, &u] {
        enroll_as(&data, store, "inspector", &addr);
    }
    enroll_as(&data, &station, "station", &addr);
    let campaign = joint_campaign(&mut lead);
    common::add_enterprise(&mut lead, &campaign, OTHER_CODE, "某矿业公司");
    lead.sync_with_hq(None).await.unwrap();
    for store in [&mut t, &mut b, &mut u] {
        store.sync_with_hq(None).await.unwrap();
    }
    let (relay_addr, stop, relay, mut events) = spawn_relay_reporting(station, Duration::from_millis(200)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.kill();

    let record = |store: &mut Store, code: &str, title: &str| {
        let site = store.open_dossier(&campaign, code).unwrap();
        let id = new_entity_id().unwrap();
        store.edit(&site, |tx| dossier::add_hazard(tx, &id, &hazard(title))).unwrap();
        (site, id)
    };
    // B's finding reaches the relay first; T's, recorded after T's
    // revocation, joins it in the same dossier.
    let (site, b_hazard) = record(&mut b, CODE, "赵六发现的隐患");
    b.sync_with_peer(relay_addr).await.unwrap();
    for store in [&t, &u] {
        revoke(&data, store.enrollment().unwrap().unwrap().credential.credential().serial);
    }
    let (_, t_hazard) = record(&mut t, CODE, "李四在吊销后记录的隐患");
    t.sync_with_peer(relay_addr).await.unwrap();
    let (u_site, u_hazard) = record(&mut u, OTHER_CODE, "王五在吊销后记录的隐患");
    u.sync_with_peer(relay_addr).await.unwrap();

    let server = Server::start_at(&data, &addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    while common_quarantined(&data).len() < 2 {
        assert!(Instant::now() < deadline, "the revoked authors' work never reached HQ's quarantine");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = common_quarantined(&data);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let t_row = kept.iter().find(|q| q.doc == site.to_string()).expect("T's work kept aside");
    let u_row = kept.iter().find(|q| q.doc == u_site.to_string()).expect("U's work kept aside");
    assert!(t_row.reason.contains("李四") && !t_row.reason.contains("赵六"), "{t_row:?}");
    assert_eq!(t_row.changes, Some(1), "only T's change is kept aside");

    // B's work in the same dossier is at HQ, and a relay passes it on.
    let has = |store: &mut Store, site: &sync_core::ids::DocId, hazard: &str| {
        store.dossier(site).is_ok_and(|d| d.hazards.contains_key(hazard))
    };
    let mut analyst = open("分析员");
    enroll_as(&data, &analyst, "hq", &addr);
    analyst.sync_with_hq(None).await.unwrap();
    assert!(has(&mut analyst, &site, b_hazard.as_str()), "B's finding is at HQ");
    assert!(!has(&mut analyst, &site, t_hazard.as_str()), "T's is not, yet");
    let mut newcomer = open("孙七");
    enroll_as(&data, &newcomer, "inspector", &addr);
    let summary = newcomer.sync_with_peer(relay_addr).await.unwrap();
    assert!(has(&mut newcomer, &site, b_hazard.as_str()), "the relay passes B's finding on: {summary:?}");
    assert!(!has(&mut newcomer, &site, t_hazard.as_str()), "but not T's");

    // The devices HQ looks after: the relay delivered both kept-aside
    // batches; the revoked tablets are marked so; the lead synced well.
    let (status, listed) = api(&server, &data, None, "/api/v1/devices".into()).await;
    assert_eq!(status, 200, "{listed}");
    let device = |name: &str| {
        let devices = listed["devices"].as_array().unwrap();
        devices.iter().find(|d| d["credential"]["name"] == name).cloned().unwrap_or_else(|| panic!("{name}: {listed}"))
    };
    assert_eq!(device("安监站")["quarantined"], 2, "{listed}");
    assert_eq!(device("李四")["credential_state_label"], "已吊销");
    let lead = device("张三");
    assert!(lead["last_sync_at"].is_string() && lead["failures"] == 0 && lead["credential_state"] == "valid", "{lead}");

    // Decisions over the API; a bad one changes nothing.
    let decide = |id: i64, decision: &str, by: &str| {
        let body = json!({ "decision": decision, "by": by, "note": "平板遗失前的记录，经核对属实" });
        api(&server, &data, Some(body), format!("/api/v1/quarantine/{id}/decision"))
    };
    assert_eq!(decide(t_row.id, "maybe", "王强").await.0, 400);
    assert_eq!(decide(t_row.id, "accept", "王强\u{202e}").await.0, 400);
    assert_eq!(decide(99_999, "accept", "王强").await.0, 404);
    let (status, body) = decide(t_row.id, "accept", "王强").await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("accepted")), "{body}");
    let (status, body) = decide(t_row.id, "reject", "王强").await;
    assert_eq!((status, body["error"].as_str()), (409, Some("already_decided")), "{body}");
    let (status, body) = decide(u_row.id, "reject", "王强").await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("rejected")), "{body}");

    analyst.sync_with_hq(None).await.unwrap();
    assert!(has(&mut analyst, &site, t_hazard.as_str()), "accepted work reaches everyone");
    assert!(!has(&mut analyst, &u_site, u_hazard.as_str()), "rejected work does not");
    // The relay is told of the rejection, and HQ keeps no second row.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let event = tokio::time::timeout_at(deadline.into(), events.recv()).await.expect("no rejection told").unwrap();
        if let RelayEvent::Forwarded { summary, .. } = event
            && summary.rejected.contains_key(&u_site)
        {
            assert!(summary.quarantined.is_empty(), "{summary:?}");
            break;
        }
    }
    let (status, listed) = api(&server, &data, None, "/api/v1/quarantine".into()).await;
    assert_eq!(status, 200);
    let outcome = |id: i64| {
        let entries = listed["entries"].as_array().unwrap();
        entries.iter().find(|e| e["id"] == id).map(|e| e["decision"]["outcome"].clone())
    };
    assert_eq!(listed["entries"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!((outcome(t_row.id), outcome(u_row.id)), (Some(json!("accepted")), Some(json!("rejected"))), "{listed}");
    // With HQ's receipt, the relay now vouches for T's accepted work.
    newcomer.sync_with_peer(relay_addr).await.unwrap();
    assert!(has(&mut newcomer, &site, t_hazard.as_str()), "the relay passes accepted work on");
    stop.send(()).unwrap();
    relay.await.unwrap().unwrap();
    drop(server);
}

/// The station clerk's console (the real `field relay`, forwarding every
/// second) reports what moved and nothing else: HQ out of reach is said
/// once, not at every attempt; the forward once HQ is back says what went;
/// idle forwards say nothing.
#[tokio::test(flavor = "current_thread")]
async fn the_relay_console_reports_only_what_moved() {
    use std::io::BufRead;
    use std::time::Duration;
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let hq_addr = format!("127.0.0.1:{}", free_udp_port());
    let station = dir.path().join("station");
    enroll_as(&data, &Store::init(&station, "城关安监站").unwrap(), "station", &hq_addr);
    let mut tablet = Store::init(&dir.path().join("张三"), "张三").unwrap();
    enroll_as(&data, &tablet, "inspector", &hq_addr);

    struct Relay(std::process::Child);
    impl Drop for Relay {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut relay = Relay(
        std::process::Command::new(common::field_bin())
            .env("FIELD_HOME", &station)
            .args(["--json", "relay", "--listen", "127.0.0.1:0", "--forward-every", "1"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = relay.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready = lines.recv_timeout(Duration::from_secs(30)).unwrap();
    let relay_addr = ready.split_once('：').and_then(|(_, rest)| rest.split_once('（')).unwrap().0.parse().unwrap();
    let events = |wait: Duration| -> Vec<serde_json::Value> {
        let until = std::time::Instant::now() + wait;
        std::iter::from_fn(|| lines.recv_timeout(until.saturating_duration_since(std::time::Instant::now())).ok())
            .map(|line| serde_json::from_str(&line).unwrap())
            .collect()
    };

    // HQ is down through four attempts: said once.
    let said = events(Duration::from_millis(3500));
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0]["event"], "forward_failed", "{said:?}");

    joint_campaign(&mut tablet);
    tablet.sync_with_peer(relay_addr).await.unwrap();
    let server = Server::start_at(&data, &hq_addr);
    let mut said = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !said.iter().any(|e: &serde_json::Value| e["event"] == "forwarded") {
        assert!(std::time::Instant::now() < deadline, "never forwarded: {said:?}");
        said.extend(events(Duration::from_millis(200)));
    }
    let forwarded = said.iter().find(|e| e["event"] == "forwarded").unwrap();
    assert!(forwarded["sent"].as_u64().unwrap() > 0 && forwarded["receipts"].as_u64().unwrap() > 0, "{said:?}");
    assert!(said.iter().all(|e| e["event"] == "served" || e["event"] == "forwarded"), "{said:?}");

    // Nothing moves: three more forwards, nothing said.
    let said = events(Duration::from_millis(3500));
    assert!(said.is_empty(), "{said:?}");
    drop(server);
}
