//! The schema at every door: for each constraint of
//! `schemas/enterprise_dossier.schema.json`, `campaign.schema.json` and
//! `briefing.schema.json`, a signed change that breaks
//! exactly that constraint is refused through a bundle (nothing imported)
//! and through a real sync with a real `fieldsync-server` (quarantined at
//! HQ, nothing stored, the session goes on and the device is told), each
//! time with a Chinese reason that names it.
//!
//! The cases are generated from the schema file and a dossier that holds
//! every optional field, so a constraint added to the schema is tested
//! here without a new line of test.

mod common;

use std::path::Path;

use common::{Server, issue};
use field_client::{Store, new_entity_id};
use serde_json::{Value as Json, json};
use sync_core::automerge::transaction::{Transactable, Transaction};
use sync_core::automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use sync_core::doc::{briefing, campaign, dossier};
use sync_core::ids::{CreditCode, DocId};
use sync_core::model::{
    AccidentReview, BriefingSection, CampaignKind, DocumentCheck, Domain, Enterprise, Hazard, HazardLevel,
    RectificationMode, RectificationStatus, ScheduleEntry, SiteVisit, Step, StepKind, TeamMember, VerifyResult,
};
use sync_core::rectification::Loop;

const SITE: &str = "91640200MA76XYW123";

/// One way to break the schema: write `value` at `path` (or delete it), and
/// the words the refusal must contain.
#[derive(Debug)]
struct Case {
    path: Vec<String>,
    value: Option<Json>,
    expect: &'static str,
}

impl Case {
    fn name(&self) -> String {
        let what = self.value.as_ref().map_or("删除".to_owned(), |v| v.to_string());
        format!("{} = {what}", self.path.join("/"))
    }
}

/// Every case the schema gives for `instance` (the dossier as stored).
fn cases(schema: &Json, node: &Json, instance: &Json, path: &mut Vec<String>, out: &mut Vec<Case>) {
    let node = resolve(schema, node);
    let at = |key: &str, path: &[String]| path.iter().cloned().chain([key.to_owned()]).collect::<Vec<_>>();
    // The layout version decides which rules apply; it is not a fault.
    if path.last().is_some_and(|p| p == "schema_version") {
        return;
    }
    if let (Some(fields), Json::Object(values)) = (node.get("properties").and_then(Json::as_object), instance) {
        for (key, sub) in fields {
            if let Some(value) = values.get(key) {
                path.push(key.clone());
                cases(schema, sub, value, path, out);
                path.pop();
            }
        }
        for required in node.get("required").and_then(Json::as_array).into_iter().flatten() {
            let key = required.as_str().unwrap();
            if values.contains_key(key) {
                out.push(Case { path: at(key, path), value: None, expect: "缺少必填字段" });
            }
        }
        // A rule tying fields together (a major hazard names its clause),
        // where the record meets its condition.
        let condition = node.pointer("/if/properties").and_then(Json::as_object);
        let met = condition.is_some_and(|c| c.iter().all(|(k, v)| values.get(k) == v.get("const")));
        for required in node.pointer("/then/required").and_then(Json::as_array).into_iter().flatten().filter(|_| met) {
            let key = required.as_str().unwrap();
            if values.contains_key(key) {
                out.push(Case { path: at(key, path), value: None, expect: "必须引用判定条款" });
            }
        }
        if node.get("additionalProperties") == Some(&Json::Bool(false)) {
            out.push(Case { path: at("unexpected", path), value: Some(json!("x")), expect: "未定义的字段" });
        }
    }
    if let (Some(patterns), Json::Object(values)) = (node.get("patternProperties").and_then(Json::as_object), instance)
    {
        // Every record: each holds different optional fields. Cases of the
        // same constraint at the same place are kept once (`generated`).
        let sub = patterns.values().next().unwrap();
        for (key, value) in values {
            path.push(key.clone());
            cases(schema, sub, value, path, out);
            path.pop();
        }
        out.push(Case { path: at("坏 键", path), value: Some(json!("x")), expect: "格式无效" });
    }
    if path.is_empty() {
        return;
    }
    let here = || path.clone();
    let mut push = |value: Json, expect| out.push(Case { path: here(), value: Some(value), expect });
    match node.get("type").and_then(Json::as_str) {
        Some("string") => push(json!(1.5), "类型不对"),
        Some("number") => push(json!("north"), "类型不对"),
        Some("boolean") => push(json!("yes"), "类型不对"),
        Some("object" | "array") => push(json!("x"), "类型不对"),
        _ => {}
    }
    if node.get("pattern").is_some() {
        push(json!("昨天下午"), "格式无效");
    }
    if node.get("enum").is_some() {
        push(json!("bogus"), "不是允许的取值");
    }
    if node.get("const").is_some() {
        push(json!("x"), "应为");
    }
    match node.get("format").and_then(Json::as_str) {
        Some("line") => push(json!("张三\u{202e}gnp.exe"), "双向文字控制字符"),
        Some("text") => push(json!("整改\u{7}完成"), "控制字符"),
        _ => {}
    }
    if let Some(limit) = node.get("maxLength").and_then(Json::as_u64) {
        push(json!("字".repeat(limit as usize + 1)), "超过上限");
    }
    if node.get("minLength").is_some() {
        push(json!(""), "不能为空");
    }
    for extra in ["minimum", "maximum"] {
        if let Some(limit) = node.get(extra).and_then(Json::as_f64) {
            push(json!(if extra == "minimum" { limit - 1.0 } else { limit + 1.0 }), "超出允许范围");
        }
    }
}

/// A case's place with record ids as `*`: one constraint at one place,
/// whichever record shows it.
fn shape(path: &[String]) -> String {
    let id = |s: &str| s.len() == 26 && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    path.iter().map(|s| if id(s) { "*" } else { s.as_str() }).collect::<Vec<_>>().join("/")
}

/// `node` with its local `$ref` followed and merged with its own keywords.
fn resolve(schema: &Json, node: &Json) -> Json {
    let Some(reference) = node.get("$ref").and_then(Json::as_str) else { return node.clone() };
    let name = reference.strip_prefix("#/$defs/").unwrap();
    let mut target = resolve(schema, &schema["$defs"][name]);
    for (key, value) in node.as_object().unwrap() {
        if key != "$ref" && key != "description" {
            target[key] = value.clone();
        }
    }
    target
}

/// The document as JSON, as stored (what the schema checks).
fn stored(doc: &Automerge, obj: &ObjId, kind: ObjType) -> Json {
    if kind == ObjType::Text {
        return json!(doc.text(obj).unwrap());
    }
    if kind == ObjType::List {
        let item = |i| match doc.get(obj, i).unwrap().unwrap() {
            (Value::Scalar(s), _) => json!(s.as_str().unwrap()),
            other => panic!("{other:?}"),
        };
        return Json::Array((0..doc.length(obj)).map(item).collect());
    }
    let mut out = serde_json::Map::new();
    for key in doc.keys(obj) {
        let value = match doc.get(obj, &key).unwrap().unwrap() {
            (Value::Object(kind), id) => stored(doc, &id, kind),
            (Value::Scalar(s), _) => match s.as_ref() {
                ScalarValue::Str(s) => json!(s.to_string()),
                ScalarValue::Boolean(b) => json!(b),
                ScalarValue::F64(f) => json!(f),
                ScalarValue::Uint(u) => json!(u),
                ScalarValue::Int(i) => json!(i),
                other => panic!("{other:?}"),
            },
        };
        out.insert(key, value);
    }
    Json::Object(out)
}

/// Writes the case into the document, past the model's checks, as a
/// tampered client could.
fn apply(tx: &mut Transaction<'_>, case: &Case) {
    let (last, parents) = case.path.split_last().unwrap();
    let obj = parents.iter().fold(ROOT, |obj, key| match tx.get(&obj, key.as_str()).unwrap() {
        Some((Value::Object(_), id)) => id,
        other => panic!("{key}: {other:?}"),
    });
    match &case.value {
        None => tx.delete(&obj, last.as_str()).unwrap(),
        Some(Json::String(s)) => tx.put(&obj, last.as_str(), s.as_str()).unwrap(),
        Some(Json::Bool(b)) => tx.put(&obj, last.as_str(), *b).unwrap(),
        Some(Json::Number(n)) => tx.put(&obj, last.as_str(), n.as_f64().unwrap()).unwrap(),
        Some(other) => panic!("{other}"),
    }
}

/// A dossier with every optional field: a site visit, a major hazard with
/// GPS, photo, clause and checklist item, a closed hazard, a 四不放过
/// review and a document check.
fn fill(store: &mut Store, site: &DocId, photo: &str) {
    let hazard: Hazard = serde_json::from_value(json!({
        "title": "外架连墙件缺失", "description": "3号楼外架第12层连墙件缺失", "hazard_kind": "unsafe_condition",
        "accident_type": {"code_system": "gb6441_1986", "code": "09"}, "level": "major",
        "major_hazard_criterion": sync_core::codes::criteria()[0].id,
        "location": {"text": "3号楼东侧", "gps": {"lat": 38.48, "lon": 106.23, "crs": "wgs84"}},
        "legal_basis": "JGJ 59-2011", "photos": {photo: "IMG_0001.jpg"}, "inspector": "张三",
        "found_at": "2026-11-24T01:00:00Z", "checklist_item": "construction-jgj59/scaffold-01", "deleted": false,
        "rectification": {"status": "open", "photos_after": {}},
    }))
    .unwrap();
    let (major, closed) = (new_entity_id().unwrap(), new_entity_id().unwrap());
    store.edit(site, |tx| dossier::add_hazard(tx, &major, &hazard)).unwrap();
    // The major hazard's loop as an earlier version recorded it: fields.
    store
        .edit(site, |tx| {
            let r = match tx.get(&ROOT, "hazards").unwrap() {
                Some((_, hazards)) => match tx.get(&hazards, major.as_str()).unwrap() {
                    Some((_, h)) => tx.get(&h, "rectification").unwrap().unwrap().1,
                    None => unreachable!(),
                },
                None => unreachable!(),
            };
            for (key, value) in [
                ("mode", "deadline"),
                ("deadline", "2026-12-01"),
                ("owner", "王五"),
                ("measures", "补设连墙件"),
                ("interim_control", "停止作业"),
                ("status", "awaiting_verification"),
                ("rectified_by", "王五"),
                ("rectified_at", "2026-11-25T02:00:00Z"),
                ("verifier", "钱七"),
                ("verified_at", "2026-11-25T08:00:00Z"),
                ("verification_note", "首次复查未通过"),
            ] {
                tx.put(&r, key, value)?;
            }
            let after = tx.get(&r, "photos_after")?.unwrap().1;
            tx.put(&after, photo, "IMG_0002.jpg")?;
            Ok(())
        })
        .unwrap();
    // The general one closed step by step.
    let general = Hazard { level: HazardLevel::General, major_hazard_criterion: None, ..hazard.clone() };
    store.edit(site, |tx| dossier::add_hazard(tx, &closed, &general)).unwrap();
    let photos = || [(photo.to_owned(), "IMG_0003.jpg".to_owned())].into();
    let steps = [
        Step {
            mode: Some(RectificationMode::Deadline),
            deadline: Some("2026-12-01".into()),
            owner: "王五".into(),
            measures: "补设连墙件".into(),
            interim_control: "停止作业".into(),
            ..Step::new(StepKind::Plan)
        },
        Step::new(StepKind::Start),
        Step { rectified_by: Some("王五".into()), photos: photos(), ..Step::new(StepKind::Done) },
        Step {
            result: Some(VerifyResult::Pass),
            note: "已整改到位".into(),
            photos: photos(),
            ..Step::new(StepKind::Verify)
        },
    ];
    let signer = store.signer().unwrap();
    for step in steps {
        let id = new_entity_id().unwrap();
        let at = "2026-11-26T02:00:00Z".to_owned();
        store.edit(site, |tx| dossier::add_step(tx, &closed, &id, step, &signer, at)).unwrap();
    }
    let visit: SiteVisit =
        serde_json::from_value(json!({"date": "2026-11-24", "inspectors": "张三、李四", "note": "首日"})).unwrap();
    let review: AccidentReview = serde_json::from_value(json!({
        "accident_date": "2025-06-01", "accident_summary": "高处坠落一人受伤", "report_ref": "石安委〔2025〕3号",
        "items": {
            "cause_identified": {"verdict": "pass", "evidence": "调查报告", "note": "原因清楚"},
            "responsible_handled": {"verdict": "fail", "evidence": "无", "note": "未处理"},
            "measures_implemented": {"verdict": "pass", "evidence": "整改记录", "note": ""},
            "personnel_educated": {"verdict": "not_applicable", "evidence": "", "note": ""},
        },
    }))
    .unwrap();
    let check: DocumentCheck = serde_json::from_value(json!({
        "document_type": "安全生产许可证", "name": "安全生产许可证（建筑施工）", "result": "expired",
        "expires_on": "2026-10-01", "note": "已过期",
    }))
    .unwrap();
    let (v, r, c) = (new_entity_id().unwrap(), new_entity_id().unwrap(), new_entity_id().unwrap());
    store.edit(site, |tx| dossier::add_site_visit(tx, &v, &visit)).unwrap();
    store.edit(site, |tx| dossier::add_review(tx, &r, &review)).unwrap();
    store.edit(site, |tx| dossier::add_document_check(tx, &c, &check)).unwrap();
}

fn quarantined(data: &Path) -> Vec<field_client::Quarantined> {
    field_client::quarantined(&data.join("sync")).unwrap()
}

/// A real HQ and the lead's store, enrolled, holding a dossier of every
/// optional field that HQ holds too.
struct World {
    data: std::path::PathBuf,
    server: Server,
    addr: String,
    lead: Store,
    campaign_id: DocId,
    site: DocId,
}

impl World {
    async fn start(dir: &Path) -> World {
        let data = dir.join("hq");
        let server = Server::start(&data);
        let addr = server.addr.to_string();
        let mut lead = Store::init_with_seed(&dir.join("lead"), "张三", [1; 32]).unwrap();
        let campaign_id = lead
            .create_campaign("联合检查", CampaignKind::ConstructionJointInspection, "2026-11-24", "2026-11-25")
            .unwrap();
        let code: CreditCode = SITE.parse().unwrap();
        let enterprise = Enterprise {
            name: "宁夏某建设工程有限公司".into(),
            unified_social_credit_code: code.clone(),
            domain: Domain::Construction,
            project: "某住宅小区3号楼".into(),
            address: "银川市".into(),
            dossier_id: DocId::dossier(&campaign_id, &code),
        };
        lead.edit(&campaign_id, |tx| campaign::add_enterprise(tx, &campaign_id, &enterprise)).unwrap();
        let member = TeamMember { name: "张三".into(), role: "组长".into(), organization: "市人社局".into() };
        let entry = ScheduleEntry { date: "2026-11-24".into(), enterprise: SITE.into(), note: "首日".into() };
        let (m, e) = (new_entity_id().unwrap(), new_entity_id().unwrap());
        lead.edit(&campaign_id, |tx| campaign::add_member(tx, &m, &member)).unwrap();
        lead.edit(&campaign_id, |tx| campaign::add_schedule(tx, &e, &entry)).unwrap();
        let site = lead.open_dossier(&campaign_id, SITE).unwrap();
        let photo_file = dir.join("IMG_0001.jpg");
        std::fs::write(&photo_file, b"\xff\xd8\xff\xe0 a photo").unwrap();
        let photo = lead.add_photo(&photo_file).unwrap();
        let scope = ["--campaign", campaign_id.as_str()];
        lead.enroll(&issue(&data, &lead, "inspector", &addr, &scope)).unwrap();
        fill(&mut lead, &site, &photo);
        let section = BriefingSection {
            title: "典型隐患".into(),
            position: 1.0,
            notes: "先讲外架".into(),
            findings: [(format!("{site}/{}", new_entity_id().unwrap()), true)].into(),
        };
        let brief = DocId::briefing(&campaign_id);
        lead.edit(&brief, |tx| briefing::add_section(tx, &new_entity_id().unwrap(), &section)).unwrap();
        lead.sync_with_hq(None).await.unwrap();
        World { data, server, addr, lead, campaign_id, site }
    }

    /// A new inspector's tablet, enrolled in the campaign and synced.
    async fn tablet(&self, home: &Path, name: &str) -> Store {
        let mut tablet = Store::init(home, name).unwrap();
        let scope = ["--campaign", self.campaign_id.as_str()];
        tablet.enroll(&issue(&self.data, &tablet, "inspector", &self.addr, &scope)).unwrap();
        tablet.sync_with_hq(None).await.unwrap_or_else(|e| panic!("{name}: first sync: {e}"));
        tablet
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_schema_constraint_is_enforced_through_a_bundle_and_a_real_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path()).await;
    let (site, campaign_id) = (world.site.clone(), world.campaign_id.clone());
    let dossier_schema = include_str!("../../schemas/enterprise_dossier.schema.json");
    let mut tablets = 0;
    let count = enforced(&mut world, dir.path(), &mut tablets, dossier_schema, &site).await;
    assert!(count > 100, "{count} dossier cases");
    let campaign_schema = include_str!("../../schemas/campaign.schema.json");
    let count = enforced(&mut world, dir.path(), &mut tablets, campaign_schema, &campaign_id).await;
    assert!(count > 30, "{count} campaign cases");
    let briefing_schema = include_str!("../../schemas/briefing.schema.json");
    let count = enforced(&mut world, dir.path(), &mut tablets, briefing_schema, &DocId::briefing(&campaign_id)).await;
    assert!(count > 10, "{count} briefing cases");
    assert!(world.server.is_running());
}

/// Runs every case `schema` gives for document `id` as the lead holds it
/// (through a bundle to the lead, through a real sync to HQ); returns how
/// many there were. HQ's copy is the lead's at the end.
async fn enforced(world: &mut World, dir: &Path, tablets: &mut usize, schema: &str, id: &DocId) -> usize {
    let schema: Json = serde_json::from_str(schema).unwrap();
    let instance = stored(world.lead.document(id).unwrap(), &ROOT, ObjType::Map);
    let mut all = Vec::new();
    cases(&schema, &schema, &instance, &mut Vec::new(), &mut all);
    let mut generated = std::collections::BTreeSet::new();
    all.retain(|case| generated.insert(format!("{}|{:?}|{}", shape(&case.path), case.value, case.expect)));
    let held = world.lead.document(id).unwrap().get_heads();
    for case in &all {
        let name = format!("{id}: {}", case.name());
        *tablets += 1;
        let n = *tablets;
        let mut tablet = world.tablet(&dir.join(format!("tablet-{n}")), &format!("检查员{n}")).await;
        tablet
            .edit(id, |tx| {
                apply(tx, case);
                Ok(())
            })
            .unwrap();

        // Through a bundle: refused whole, nothing imported.
        let bundle = tablet.export_bundle().unwrap();
        world.lead.trust(&tablet.public_key(), tablet.device_name()).unwrap();
        let refused = world.lead.import_bundle(&bundle).expect_err(&name).to_string();
        assert!(refused.contains(case.expect), "{name}: bundle refusal says {refused:?}");
        assert_eq!(world.lead.document(id).unwrap().get_heads(), held, "{name}: the bundle changed it");

        // Through a real sync: quarantined at HQ with its Chinese reason. A
        // device does not offer a document whose campaign and enterprise it
        // cannot read (the root's own fields), so those go by bundle only.
        if ["id", "campaign_id", "enterprise", "kind"].contains(&case.path.join("/").as_str()) {
            continue;
        }
        let before = quarantined(&world.data).len();
        let summary = tablet.sync_with_hq(None).await.unwrap_or_else(|e| panic!("{name}: the session goes on: {e}"));
        let told = summary.quarantined.get(id).unwrap_or_else(|| panic!("{name}: not quarantined: {summary:?}"));
        assert!(told.contains(case.expect), "{name}: HQ says {told:?}");
        let kept = quarantined(&world.data);
        assert_eq!(kept.len(), before + 1, "{name}: quarantined once");
        let last = kept.last().unwrap();
        assert!(last.reason.contains(case.expect) && last.doc == id.to_string(), "{name}: {last:?}");
    }
    // HQ's copy is the lead's: nothing of any case reached it.
    let mut check = Store::init(&dir.join(format!("check-{id}")), "核对").unwrap();
    check.enroll(&issue(&world.data, &check, "hq", &world.addr, &[])).unwrap();
    check.sync_with_hq(None).await.unwrap();
    assert_eq!(check.document(id).unwrap().get_heads(), held, "{id}");
    all.len()
}

/// A document written by a newer FieldSync (a higher `schema_version`,
/// with a field this build does not know) is not ours to judge: a bundle
/// of it is imported and kept, reading it says to update, and HQ stores it
/// and answers with a receipt instead of quarantining it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_of_a_newer_layout_is_kept_and_says_to_update() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path()).await;
    let site = world.site.clone();
    let mut newer = world.tablet(&dir.path().join("newer"), "新版平板").await;
    newer
        .edit(&site, |tx| {
            tx.put(ROOT, "schema_version", 2u64)?;
            tx.put(ROOT, "weather", "小雨")?;
            Ok(())
        })
        .unwrap();

    let bundle = newer.export_bundle().unwrap();
    world.lead.trust(&newer.public_key(), newer.device_name()).unwrap();
    let report = world.lead.import_bundle(&bundle).expect("a newer layout is kept");
    assert_eq!(report.changes[site.as_str()], 1);
    let told = world.lead.dossier(&site).unwrap_err().to_string();
    assert!(told.contains("结构版本为 2") && told.contains("请更新程序"), "{told}");

    let quarantined_before = quarantined(&world.data).len();
    newer.sync_with_hq(None).await.expect("HQ keeps it");
    assert!(newer.unreceipted().unwrap().is_empty(), "HQ's receipt covers it");
    assert_eq!(quarantined(&world.data).len(), quarantined_before);
}

/// One document that would be invalid holds back only itself: in the same
/// session the tablet's valid work on another document is stored and
/// receipted, and the tablet is told which document was kept aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invalid_document_does_not_hold_back_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(dir.path()).await;
    let (site, campaign_id) = (world.site.clone(), world.campaign_id.clone());
    let mut tablet = world.tablet(&dir.path().join("tablet"), "李四").await;
    let entry = ScheduleEntry { date: "2026-11-25".into(), enterprise: SITE.into(), note: "复查".into() };
    let entry_id = new_entity_id().unwrap();
    tablet.edit(&campaign_id, |tx| campaign::add_schedule(tx, &entry_id, &entry)).unwrap();
    let bad =
        Case { path: vec!["site_visits".into(), "hazard-1".into()], value: Some(json!("x")), expect: "格式无效" };
    tablet
        .edit(&site, |tx| {
            apply(tx, &bad);
            Ok(())
        })
        .unwrap();

    let summary = tablet.sync_with_hq(None).await.expect("the session goes on");
    assert_eq!(summary.quarantined.keys().collect::<Vec<_>>(), [&site], "{summary:?}");
    assert_eq!(summary.sent.get(&campaign_id), Some(&1), "{summary:?}");
    let unreceipted = tablet.unreceipted().unwrap();
    assert_eq!(unreceipted.iter().map(|(doc, _)| doc).collect::<Vec<_>>(), [&site], "only the dossier waits");
    let held = tablet.held_back().unwrap();
    assert!(
        held.len() == 1 && held[0].quarantined && held[0].doc == site.to_string(),
        "field status names it: {held:?}"
    );
    assert!(held[0].reason.contains("格式无效"), "{held:?}");
    let ours = tablet.document(&site).unwrap().get_heads();
    assert!(summary.checkpoints[&site].iter().all(|h| !ours.contains(h)), "what HQ kept aside is not checkpointed");

    // HQ holds the schedule entry: a fresh HQ device sees it.
    let mut check = Store::init(&dir.path().join("check"), "核对").unwrap();
    check.enroll(&issue(&world.data, &check, "hq", &world.addr, &[])).unwrap();
    check.sync_with_hq(None).await.unwrap();
    assert!(check.campaign(&campaign_id).unwrap().schedule.contains_key(entry_id.as_str()));

    // Work that breaks the schema cannot be accepted, whoever decides: it
    // can only be rejected. With the server stopped, through the CLI.
    let World { data, server, .. } = world;
    let running = common::server_command(&data, &["quarantine", "reject", "1", "--by", "王强", "--note", "格式错误"]);
    assert!(!running.status.success(), "the running server holds the store");
    assert!(String::from_utf8_lossy(&running.stderr).contains("管理接口"), "{running:?}");
    drop(server);
    let accept = common::server_command(&data, &["quarantine", "accept", "1", "--by", "王强", "--note", "核对"]);
    let said = String::from_utf8_lossy(&accept.stderr);
    assert!(!accept.status.success() && said.contains("不能接收") && said.contains("格式无效"), "{said}");
    let reject = common::server_command(&data, &["quarantine", "reject", "1", "--by", "王强", "--note", "格式错误"]);
    assert!(reject.status.success(), "{reject:?}");
    let listed = String::from_utf8_lossy(&common::server_command(&data, &["quarantine"]).stdout).into_owned();
    assert!(listed.contains("#1 [已拒收（王强") && listed.contains("格式错误"), "{listed}");
    let again = common::server_command(&data, &["quarantine", "accept", "1", "--by", "王强", "--note", "核对"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("已于"), "decided once: {again:?}");
}

/// Writes a rectification step into hazard `hazard` directly, past the
/// model's rules, as a tampered client could: `after` the loop's heads.
fn raw_step(tx: &mut Transaction<'_>, hazard: &str, step: &Step) {
    let at = |tx: &Transaction<'_>, obj: &ObjId, key: &str| match tx.get(obj, key).unwrap() {
        Some((Value::Object(_), id)) => id,
        other => panic!("{key}: {other:?}"),
    };
    let hazards = at(tx, &ROOT, "hazards");
    let rectification = at(tx, &at(tx, &hazards, hazard), "rectification");
    let steps = at(tx, &rectification, "steps");
    let id = new_entity_id().unwrap();
    let obj = tx.put_object(&steps, id.as_str(), ObjType::Map).unwrap();
    let Json::Object(fields) = serde_json::to_value(step).unwrap() else { unreachable!() };
    for (key, value) in fields {
        match value {
            Json::String(s) if !s.is_empty() => tx.put(&obj, key.as_str(), s.as_str()).unwrap(),
            _ => {}
        }
    }
}

/// A signed change carrying a rectification step out of order (a plan on a
/// closed hazard), or a step naming someone other than its signer as its
/// author, is refused through a bundle and quarantined at HQ through a real
/// sync, with the reason; valid work of the same device goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_out_of_order_or_in_another_name_is_refused_at_every_door() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path()).await;
    let site = world.site.clone();
    let dossier = world.lead.dossier(&site).unwrap();
    let closed = dossier
        .hazards
        .iter()
        .find(|(_, h)| Loop::of(&h.rectification).state.status == RectificationStatus::Closed)
        .map(|(id, _)| id.clone())
        .unwrap();
    let loop_heads = Loop::of(&dossier.hazards[&closed].rectification).heads;
    let step = |author: &str, kind| Step {
        author: author.into(),
        author_role: Some("inspector".into()),
        at: "2026-11-27T02:00:00Z".into(),
        after: loop_heads.clone(),
        ..Step::new(kind)
    };
    let plan = Step {
        mode: Some(RectificationMode::Immediate),
        owner: "王五".into(),
        measures: "重做".into(),
        ..step("李四", StepKind::Plan)
    };
    let reopen = Step { note: "复查发现反弹".into(), ..step("张三", StepKind::Reopen) };
    for (n, (bad, expect)) in [
        (plan, "隐患当前为“已销号”，已销号的隐患不能再下达整改要求"),
        (reopen, "记载的记录人 张三 与签名设备的持有人 李四 不符"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut tablet = world.tablet(&dir.path().join(format!("tablet-{n}")), "李四").await;
        let held = world.lead.document(&site).unwrap().get_heads();
        tablet
            .edit(&site, |tx| {
                raw_step(tx, &closed, &bad);
                Ok(())
            })
            .unwrap();

        let bundle = tablet.export_bundle().unwrap();
        world.lead.trust(&tablet.public_key(), tablet.device_name()).unwrap();
        let refused = world.lead.import_bundle(&bundle).unwrap_err().to_string();
        assert!(refused.contains(expect) && refused.contains(&closed), "bundle refusal: {refused}");
        assert_eq!(world.lead.document(&site).unwrap().get_heads(), held, "the bundle changed nothing");

        let before = quarantined(&world.data).len();
        let summary = tablet.sync_with_hq(None).await.expect("the session goes on");
        let told = &summary.quarantined[&site];
        assert!(told.contains(expect), "HQ says {told:?}");
        let kept = quarantined(&world.data);
        assert_eq!(kept.len(), before + 1);
        assert!(kept.last().unwrap().reason.contains(expect), "{:?}", kept.last());
    }
    // The same reopening by the device whose holder it names goes in.
    let mut tablet = world.tablet(&dir.path().join("tablet-ok"), "张三").await;
    let signer = tablet.signer().unwrap();
    let at = "2026-11-27T03:00:00Z".to_owned();
    let reopen = Step { note: "复查发现反弹".into(), ..Step::new(StepKind::Reopen) };
    let id = new_entity_id().unwrap();
    let closed_id: sync_core::ids::EntityId = closed.parse().unwrap();
    tablet.edit(&site, |tx| dossier::add_step(tx, &closed_id, &id, reopen, &signer, at)).unwrap();
    let summary = tablet.sync_with_hq(None).await.unwrap();
    assert!(summary.quarantined.is_empty(), "{summary:?}");
    assert!(tablet.unreceipted().unwrap().is_empty(), "receipted by HQ");
}
