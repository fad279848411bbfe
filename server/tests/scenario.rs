//! The two-day joint inspection of issue 4, end to end: the real
//! `fieldsync-server` process and real field stores over loopback QUIC.
//!
//! Two campaigns cover four enterprises (two construction sites, two
//! mines). Six inspectors are enrolled with scopes matching their
//! assignment; one of them works in both campaigns. The station's relay has
//! no link to HQ on day 1: HQ is not running. Inspectors record hazards,
//! rectification steps, 四不放过 reviews and document checks offline, often
//! in the same dossier at the same time, and sync through the station in
//! the evening. The station's laptop is off overnight and keeps what it
//! stored. At the end of day 2 HQ is up: two inspectors sync with it
//! directly, the others through the station, which forwards to HQ and
//! carries the receipts back.
//!
//! Checked at the end: HQ holds every change any replica holds (a fresh
//! HQ-role device pulls everything), every inspector holds HQ receipts
//! covering all its own work, and every replica of a document has the same
//! heads and the same export.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, free_udp_port, hazard, heads, issue, spawn_relay};
use field_client::{Store, new_entity_id};
use sync_core::automerge::ChangeHash;
use sync_core::doc::{campaign, dossier};
use sync_core::ids::{CreditCode, DocId, DocKind, EntityId};
use sync_core::model::{
    AccidentReview, CampaignKind, DocumentCheck, DocumentResult, Domain, Enterprise, Hazard, HazardLevel,
    RectificationMode, RectificationStatus, ReviewItemKind, ReviewItems, SiteVisit, Step, StepKind, Verdict,
};
use sync_core::rectification::Loop;

/// The four enterprises: two construction sites (campaign A) and two mines
/// (campaign B).
const SITE_1: &str = "91640200MA76XYW123";
const SITE_2: &str = "91640200MA76XYW124";
const MINE_1: &str = "91640300MA76XYW125";
const MINE_2: &str = "91640300MA76XYW126";

struct Inspector {
    store: Store,
    /// Syncs with HQ directly at the end of day 2; the others only ever
    /// sync with the station.
    direct: bool,
}

fn add_enterprise(store: &mut Store, c: &DocId, name: &str, code: &str, domain: Domain) {
    let code: CreditCode = code.parse().unwrap();
    let enterprise = Enterprise {
        name: name.into(),
        unified_social_credit_code: code.clone(),
        domain,
        project: String::new(),
        address: String::new(),
        dossier_id: DocId::dossier(c, &code),
    };
    store.edit(c, |tx| campaign::add_enterprise(tx, c, &enterprise)).unwrap();
}

fn add_hazard(store: &mut Store, dossier_id: &DocId, record: Hazard) -> EntityId {
    let id = new_entity_id().unwrap();
    store.edit(dossier_id, |tx| dossier::add_hazard(tx, &id, &record)).unwrap();
    id
}

fn major(title: &str, criterion: &str) -> Hazard {
    Hazard { level: HazardLevel::Major, major_hazard_criterion: Some(criterion.into()), ..hazard(title) }
}

fn modify_hazard(store: &mut Store, dossier_id: &DocId, id: &EntityId, change: impl FnOnce(&mut Hazard)) {
    store
        .edit(dossier_id, |tx| {
            dossier::modify_hazard(tx, id, |h| {
                change(h);
                Ok(())
            })
        })
        .unwrap();
}

/// Records a step of a hazard's rectification loop, signed by `store`'s holder.
fn take_step(store: &mut Store, dossier_id: &DocId, id: &EntityId, step: Step) {
    let signer = store.signer().unwrap();
    let at = sync_core::doc::rfc3339(field_client::now_ms());
    let step_id = new_entity_id().unwrap();
    store.edit(dossier_id, |tx| dossier::add_step(tx, id, &step_id, step, &signer, at)).unwrap();
}

fn plan(mode: RectificationMode, deadline: Option<&str>, measures: &str) -> Step {
    Step {
        mode: Some(mode),
        deadline: deadline.map(str::to_owned),
        owner: "项目安全员".into(),
        measures: measures.into(),
        ..Step::new(StepKind::Plan)
    }
}

fn add_review(store: &mut Store, dossier_id: &DocId, summary: &str) -> EntityId {
    let id = new_entity_id().unwrap();
    let review = AccidentReview {
        accident_date: "2025-06-01".into(),
        accident_summary: summary.into(),
        report_ref: String::new(),
        items: ReviewItems::default(),
    };
    store.edit(dossier_id, |tx| dossier::add_review(tx, &id, &review)).unwrap();
    id
}

fn judge(store: &mut Store, dossier_id: &DocId, review: &EntityId, item: ReviewItemKind, verdict: Verdict) {
    store
        .edit(dossier_id, |tx| {
            dossier::modify_review_item(tx, review, item, |i| {
                i.verdict = Some(verdict);
                i.evidence = "事故调查报告".into();
                Ok(())
            })
        })
        .unwrap();
}

fn check_document(store: &mut Store, dossier_id: &DocId, document_type: &str, result: DocumentResult) {
    let id = new_entity_id().unwrap();
    let check = DocumentCheck {
        document_type: document_type.into(),
        name: String::new(),
        result,
        expires_on: (result == DocumentResult::Expired).then(|| "2026-06-30".into()),
        note: String::new(),
    };
    store.edit(dossier_id, |tx| dossier::add_document_check(tx, &id, &check)).unwrap();
}

fn visit(store: &mut Store, dossier_id: &DocId, date: &str) {
    let id = new_entity_id().unwrap();
    let visit = SiteVisit { date: date.into(), inspectors: store.device_name().into(), note: String::new() };
    store.edit(dossier_id, |tx| dossier::add_site_visit(tx, &id, &visit)).unwrap();
}

/// Every change hash of every synced document `store` holds.
fn change_hashes(store: &mut Store) -> BTreeMap<DocId, Vec<ChangeHash>> {
    heads(store)
        .into_iter()
        .map(|(id, _)| {
            let hashes = store.document(&id).unwrap().get_changes(&[]).iter().map(|c| c.hash()).collect();
            (id, hashes)
        })
        .collect()
}

fn export_json(store: &mut Store, c: &DocId) -> String {
    serde_json::to_string(&field_client::export::campaign(store, c).unwrap()).unwrap()
}

async fn sync_with_station(store: &mut Store, station: SocketAddr) {
    let name = store.device_name().to_owned();
    store.sync_with_peer(station).await.unwrap_or_else(|e| panic!("{name} ↔ 安监站: {e}"));
}

fn enroll(data: &Path, store: &Store, role: &str, hq: &str, campaigns: &[&DocId]) {
    let scope: Vec<String> = campaigns.iter().flat_map(|c| ["--campaign".to_owned(), c.to_string()]).collect();
    let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
    store.enroll(&issue(data, store, role, hq, &scope)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_days_four_enterprises_six_inspectors_one_station() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    // HQ's address is known from enrollment, but nothing listens there
    // until the end of day 2.
    let hq_addr = format!("127.0.0.1:{}", free_udp_port());
    let names = ["张三", "李四", "王五", "赵六", "钱七", "孙八"];
    let mut team: Vec<Inspector> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Inspector { store: Store::init(&dir.path().join(n), n).unwrap(), direct: i == 2 || i == 4 })
        .collect();

    // The two team leads set up their campaigns before leaving HQ.
    let a = team[0]
        .store
        .create_campaign("建筑施工联合检查", CampaignKind::ConstructionJointInspection, "2026-11-24", "2026-11-25")
        .unwrap();
    add_enterprise(&mut team[0].store, &a, "某建设集团一号工地", SITE_1, Domain::Construction);
    add_enterprise(&mut team[0].store, &a, "某建设集团二号工地", SITE_2, Domain::Construction);
    let b =
        team[3].store.create_campaign("矿山企业调研", CampaignKind::MineSurvey, "2026-11-24", "2026-11-25").unwrap();
    add_enterprise(&mut team[3].store, &b, "某煤业公司", MINE_1, Domain::CoalMine);
    add_enterprise(&mut team[3].store, &b, "某金属矿业公司", MINE_2, Domain::MetalNonmetalMine);

    // Scopes follow the assignment: 张三, 李四, 王五 on the sites; 赵六 and
    // 钱七 in the mines; 孙八 in both campaigns. The station relays all.
    let scopes: [&[&DocId]; 6] = [&[&a], &[&a], &[&a], &[&b], &[&b], &[&a, &b]];
    for (inspector, scope) in team.iter().zip(scopes) {
        enroll(&data, &inspector.store, "inspector", &hq_addr, scope);
    }
    let station_home = dir.path().join("安监站");
    let station = Store::init(&station_home, "安监站").unwrap();
    enroll(&data, &station, "station", &hq_addr, &[]);
    let (station_addr, stop_station, relay) = spawn_relay(station, Duration::from_secs(1)).await;

    // Day 1 morning, at the station: the leads share their campaigns and
    // everyone opens the dossiers of their assignment.
    for i in [0, 3, 1, 2, 4, 5] {
        sync_with_station(&mut team[i].store, station_addr).await;
    }
    let mut dossiers = BTreeMap::new();
    let assignments = [
        (0, &a, SITE_1),
        (1, &a, SITE_1),
        (2, &a, SITE_2),
        (5, &a, SITE_2),
        (3, &b, MINE_1),
        (4, &b, MINE_1),
        (4, &b, MINE_2),
        (5, &b, MINE_2),
    ];
    for (i, c, code) in assignments {
        let id = team[i].store.open_dossier(c, code).unwrap();
        dossiers.insert(code, id);
    }
    let [site_1, site_2, mine_1, mine_2] = [SITE_1, SITE_2, MINE_1, MINE_2].map(|code| dossiers[code].clone());

    // Day 1, offline: several inspectors in the same dossiers.
    let h1 = add_hazard(&mut team[0].store, &site_1, major("脚手架连墙件缺失", "jianzhi-2022-2/art4-1"));
    let h2 = add_hazard(&mut team[0].store, &site_1, hazard("临边无防护栏杆"));
    visit(&mut team[0].store, &site_1, "2026-11-24");
    add_hazard(&mut team[1].store, &site_1, hazard("配电箱未上锁"));
    check_document(&mut team[1].store, &site_1, "安全生产许可证", DocumentResult::Expired);
    add_hazard(&mut team[2].store, &site_2, hazard("塔吊限位失灵"));
    let review = add_review(&mut team[2].store, &site_2, "2025年塔吊司机高处坠落");
    add_hazard(&mut team[5].store, &site_2, hazard("安全网破损"));
    let h5 = add_hazard(&mut team[3].store, &mine_1, major("瓦斯检查空班", "kuangan-2022-88/ug-01"));
    add_hazard(&mut team[4].store, &mine_1, hazard("皮带机防护罩缺失"));
    check_document(&mut team[4].store, &mine_2, "采矿许可证", DocumentResult::Compliant);
    add_hazard(&mut team[5].store, &mine_2, hazard("尾矿库排洪设施堵塞"));

    // Day 1 evening: everyone syncs with the station, twice, so each gets
    // what the others brought. No receipts: HQ is not running.
    for _ in 0..2 {
        for inspector in team.iter_mut() {
            sync_with_station(&mut inspector.store, station_addr).await;
        }
    }
    for inspector in team.iter_mut() {
        let pending = inspector.store.unreceipted().unwrap();
        assert!(!pending.is_empty(), "{} cannot hold HQ receipts on day 1", inspector.store.device_name());
    }
    let site_1_day_1 = team[1].store.dossier(&site_1).unwrap();
    assert_eq!(site_1_day_1.hazards.len(), 3, "李四 has 张三's findings through the station");
    // The station's laptop is switched off for the night.
    stop_station.send(()).unwrap();
    relay.await.unwrap().unwrap();

    // Day 2, offline again, starting from the merged day 1.
    // 张三 moves H1 while 李四 orders its rectification: different fields.
    modify_hazard(&mut team[0].store, &site_1, &h1, |h| h.location.text = "3号楼东侧外架".into());
    take_step(
        &mut team[1].store,
        &site_1,
        &h1,
        plan(RectificationMode::Deadline, Some("2026-12-01"), "按方案补设连墙件"),
    );
    // Both move H2's rectification on, differently: kept both, for review.
    take_step(&mut team[0].store, &site_1, &h2, plan(RectificationMode::Immediate, None, "立即封闭"));
    take_step(&mut team[0].store, &site_1, &h2, Step::new(StepKind::Start));
    take_step(
        &mut team[0].store,
        &site_1,
        &h2,
        Step { rectified_by: Some("王师傅".into()), ..Step::new(StepKind::Done) },
    );
    take_step(&mut team[1].store, &site_1, &h2, plan(RectificationMode::Deadline, Some("2026-12-03"), "搭设防护"));
    take_step(&mut team[1].store, &site_1, &h2, Step::new(StepKind::Start));
    // 王五 and 孙八 judge different items of the same 四不放过 review.
    judge(&mut team[2].store, &site_2, &review, ReviewItemKind::CauseIdentified, Verdict::Pass);
    judge(&mut team[5].store, &site_2, &review, ReviewItemKind::PersonnelEducated, Verdict::Fail);
    take_step(&mut team[3].store, &mine_1, &h5, plan(RectificationMode::Immediate, None, "停用并更换"));
    take_step(&mut team[3].store, &mine_1, &h5, Step::new(StepKind::Start));
    add_hazard(&mut team[4].store, &mine_1, hazard("井下避险设施未检测"));
    check_document(&mut team[4].store, &mine_1, "安全生产许可证", DocumentResult::Compliant);
    visit(&mut team[5].store, &mine_2, "2026-11-25");

    // Day 2 evening: HQ is up, and so is the station's laptop, with what
    // it stored on day 1. 王五 and 钱七 sync with HQ directly; the others
    // sync with the station, which forwards on its own.
    let server = Server::start_at(&data, &hq_addr);
    for inspector in team.iter_mut().filter(|i| i.direct) {
        inspector.store.sync_with_hq(None).await.unwrap();
        assert!(inspector.store.unreceipted().unwrap().is_empty(), "receipted by HQ at once");
    }
    // The station's laptop comes up after them. (Had its first forward
    // raced theirs with the same day-1 work, HQ could have been storing it
    // as their catalogs were made: they would not resend it, and the
    // receipts for it would come with their next sync.)
    let station = Store::open(&station_home).unwrap();
    let (station_addr, stop_station, relay) = spawn_relay(station, Duration::from_secs(1)).await;
    for inspector in team.iter_mut().filter(|i| !i.direct) {
        sync_with_station(&mut inspector.store, station_addr).await;
    }
    // The station forwards on its own timer; an inspector learns of it from
    // the receipts its next sync with the station brings back. The
    // forwarding that carried them ran after 王五's and 钱七's sync with HQ,
    // so it also brought the station their work: a sync that brings the
    // receipts brings everything else too.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut waiting: Vec<&mut Inspector> = team.iter_mut().filter(|i| !i.direct).collect();
    while !waiting.is_empty() {
        assert!(Instant::now() < deadline, "no HQ receipts through the station for {} inspectors", waiting.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
        for inspector in waiting.iter_mut() {
            sync_with_station(&mut inspector.store, station_addr).await;
        }
        waiting.retain_mut(|i| !i.store.unreceipted().unwrap().is_empty());
    }
    // HQ now has everything: the direct inspectors' last sync brings them
    // the rest.
    for inspector in team.iter_mut().filter(|i| i.direct) {
        inspector.store.sync_with_hq(None).await.unwrap();
    }
    stop_station.send(()).unwrap();
    relay.await.unwrap().unwrap();
    let mut station = Store::open(&station_home).unwrap();

    // A fresh HQ-role device pulls everything HQ holds.
    let mut hq = Store::init(&dir.path().join("总部分析员"), "分析员").unwrap();
    enroll(&data, &hq, "hq", &hq_addr, &[]);
    hq.sync_with_hq(None).await.unwrap();
    let at_hq = change_hashes(&mut hq);
    assert_eq!(at_hq.len(), 2 * 2 + 4, "two campaigns, their briefings and four dossiers");

    let mut replicas: Vec<&mut Store> = team.iter_mut().map(|i| &mut i.store).collect();
    replicas.push(&mut station);
    for replica in replicas.iter_mut() {
        let name = replica.device_name().to_owned();
        assert!(replica.unreceipted().unwrap().is_empty(), "{name} has work without an HQ receipt");
        for (doc, hashes) in change_hashes(replica) {
            let missing = hashes.iter().filter(|h| !at_hq[&doc].contains(h)).count();
            assert_eq!(missing, 0, "HQ lacks {missing} changes of {doc} that {name} holds");
        }
    }
    // Every replica of a document equals HQ's: same heads, same export.
    let hq_heads: BTreeMap<DocId, Vec<ChangeHash>> = heads(&mut hq).into_iter().collect();
    let hq_exports = [export_json(&mut hq, &a), export_json(&mut hq, &b)];
    for replica in replicas.iter_mut() {
        let name = replica.device_name().to_owned();
        let held = heads(replica);
        for (doc, heads) in &held {
            assert_eq!(heads, &hq_heads[doc], "{name}'s {doc} differs from HQ's");
        }
        for (c, expected) in [&a, &b].into_iter().zip(&hq_exports) {
            if held.iter().any(|(doc, _)| doc == c) {
                assert_eq!(&export_json(replica, c), expected, "{name}'s export of {c} differs from HQ's");
            }
        }
    }
    let held_by = |i: usize, kind| team[i].store.doc_ids(kind).unwrap().len();
    assert_eq!(
        (held_by(0, DocKind::Campaign), held_by(3, DocKind::Campaign), held_by(5, DocKind::Campaign)),
        (1, 1, 2)
    );
    assert_eq!(held_by(0, DocKind::EnterpriseDossier), 2, "张三 holds both sites' dossiers, no mine's");

    // What HQ holds is the merged two days, with nothing resolved silently.
    let site_1_at_hq = hq.dossier(&site_1).unwrap();
    assert_eq!(site_1_at_hq.hazards.len(), 3);
    assert_eq!(site_1_at_hq.document_checks.len(), 1);
    let h1_at_hq = &site_1_at_hq.hazards[h1.as_str()];
    assert_eq!(h1_at_hq.location.text, "3号楼东侧外架");
    let h1_plan = Loop::of(&h1_at_hq.rectification).state.plan.unwrap();
    assert_eq!(h1_plan.measures, "按方案补设连墙件");
    let items = &hq.dossier(&site_2).unwrap().accident_reviews[review.as_str()].items;
    assert_eq!(
        (items.cause_identified.verdict, items.personnel_educated.verdict),
        (Some(Verdict::Pass), Some(Verdict::Fail))
    );
    let hazards_at_hq: usize =
        [&site_1, &site_2, &mine_1, &mine_2].iter().map(|d| hq.dossier(d).unwrap().hazards.len()).sum();
    assert_eq!(hazards_at_hq, 9);
    let review_items = hq.review_items().unwrap();
    let disputes: Vec<&str> = review_items
        .iter()
        .filter(|e| e.dossier == site_1)
        .flat_map(|e| &e.rules)
        .filter(|r| r.hazard == h2.as_str())
        .map(|r| r.message.as_str())
        .collect();
    assert_eq!(disputes.len(), 2, "H2's concurrent steps are listed for review at HQ: {disputes:?}");
    assert!(disputes[0].contains("整改状态") && disputes[0].contains("暂按较严的“整改中”"), "{disputes:?}");
    let h2_loop = Loop::of(&site_1_at_hq.hazards[h2.as_str()].rectification);
    assert_eq!((h2_loop.state.status, h2_loop.history.len()), (RectificationStatus::Rectifying, 5));
    server.kill();
}
