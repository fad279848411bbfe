//! Local-store benchmark (run by `scripts/bench-local`): one dossier grows
//! to N hazards with E edits each, through the same `Store` API the `field`
//! CLI uses. Every timed operation includes its signature and durable
//! SQLite commit. Prints readable lines, then one JSON object.

use std::time::Instant;

use field_client::{Store, new_entity_id, now_ms};
use sync_core::automerge::transaction::Transactable;
use sync_core::automerge::{Automerge, ROOT, ReadDoc};
use sync_core::codes::AccidentType;
use sync_core::doc::edit;
use sync_core::doc::rfc3339;
use sync_core::doc::{campaign, dossier};
use sync_core::ids::{CreditCode, DocId};
use sync_core::model::{
    CampaignKind, Domain, Enterprise, Hazard, HazardKind, HazardLevel, Location, Rectification, RectificationMode,
    Step, StepKind,
};
use sync_core::sync::batch::Arrived;

/// The allocator of the `field` binary this stands in for.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let hazards: usize = args.next().map_or(Ok(2000), |a| a.parse())?;
    let edits: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let dir = tempfile::TempDir::new()?;
    let home = dir.path().join("device");

    let mut store = Store::init(&home, "基准测试")?;
    let campaign_id =
        store.create_campaign("基准", CampaignKind::ConstructionJointInspection, "2026-11-24", "2026-11-25")?;
    let code: CreditCode = "91640200MA76XYW123".parse()?;
    let enterprise = Enterprise {
        name: "宁夏某建设集团有限公司".into(),
        unified_social_credit_code: code.clone(),
        domain: Domain::Construction,
        project: "教学楼".into(),
        address: String::new(),
        dossier_id: DocId::dossier(&campaign_id, &code),
    };
    store.edit(&campaign_id, |tx| campaign::add_enterprise(tx, &campaign_id, &enterprise))?;
    let dossier_id = store.open_dossier(&campaign_id, code.as_str())?;

    let signer = store.signer()?;
    let mut add_ms = Vec::with_capacity(hazards);
    let mut edit_ms = Vec::with_capacity(hazards * edits);
    let started = Instant::now();
    for i in 0..hazards {
        let id = new_entity_id()?;
        let hazard = sample(i)?;
        let t = Instant::now();
        store.edit(&dossier_id, |tx| dossier::add_hazard(tx, &id, &hazard))?;
        add_ms.push(t.elapsed().as_secs_f64() * 1e3);
        for e in 0..edits {
            // A description edit, then the rectification loop's steps.
            let step = match e % 3 {
                0 => None,
                1 => Some(Step {
                    mode: Some(RectificationMode::Deadline),
                    deadline: Some("2026-12-01".into()),
                    owner: "项目安全员".into(),
                    measures: format!("按方案整改第{e}项"),
                    ..Step::new(StepKind::Plan)
                }),
                _ => Some(Step::new(StepKind::Start)),
            };
            let step_id = new_entity_id()?;
            let t = Instant::now();
            store.edit(&dossier_id, |tx| match step {
                None => dossier::modify_hazard(tx, &id, |h| {
                    h.description.push_str("，现场已拍照取证");
                    Ok(())
                }),
                Some(step) => dossier::add_step(tx, &id, &step_id, step, &signer, rfc3339(now_ms())).map(drop),
            })?;
            edit_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        if (i + 1) % 500 == 0 {
            eprintln!("  {} hazards, {:.1}s", i + 1, started.elapsed().as_secs_f64());
        }
    }
    let total_s = started.elapsed().as_secs_f64();
    drop(store);

    // Opening is measured five times from a closed store; the median is
    // reported, and the slowest beside it.
    let mut loads = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut store = Store::open(&home)?;
        store.document(&dossier_id)?;
        loads.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (load_ms, load_max_ms) = (percentile(&mut loads, 0.5), percentile(&mut loads, 1.0));
    let mut store = Store::open(&home)?;
    store.document(&dossier_id)?;
    let t = Instant::now();
    let read = store.dossier(&dossier_id)?;
    let read_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(read.hazards.len(), hazards);
    // The door: the last hundred hazards' changes (their adds, edits and
    // steps) arriving at a device that holds the rest, checked as a bundle
    // import or a sync session checks them (each step at its own point).
    let doc = store.document(&dossier_id)?;
    let changes = doc.get_changes(&[]);
    let arriving = (100 * (1 + edits)).min(changes.len() - 1);
    let split = changes.len() - arriving;
    let base = doc.fork_at(&[changes[split - 1].hash()])?;
    let t = Instant::now();
    let checked = Arrived::Changes(changes[split..].to_vec()).checked(&dossier_id, Some(base))?;
    let door_ms = t.elapsed().as_secs_f64() * 1e3;
    let door_steps = checked.steps.len();
    let door_broken_ms = door_after_a_broken_merge(doc, &dossier_id, hazards)?;
    drop(store);

    let store_bytes = dir_size(&home)?;
    let mut all = add_ms.clone();
    all.extend_from_slice(&edit_ms);
    let (add_p50, add_p99) = (percentile(&mut add_ms, 0.50), percentile(&mut add_ms, 0.99));
    let (edit_p50, edit_p99, edit_max) =
        (percentile(&mut edit_ms, 0.50), percentile(&mut edit_ms, 0.99), percentile(&mut edit_ms, 1.0));
    println!("hazards {hazards}, edits per hazard {edits}, {} timed commits in {total_s:.1}s", all.len());
    println!("add hazard: p50 {add_p50:.2} ms, p99 {add_p99:.2} ms");
    println!("edit hazard: p50 {edit_p50:.2} ms, p99 {edit_p99:.2} ms, max {edit_max:.2} ms");
    println!(
        "open store + load dossier: median {load_ms:.1} ms, max {load_max_ms:.1} ms of 5; read typed dossier: {read_ms:.1} ms"
    );
    println!("door check of {arriving} arriving changes ({door_steps} rectification steps): {door_ms:.1} ms");
    println!("door check of one title edit to a hazard whose rule a merge broke: {door_broken_ms:.1} ms");
    println!("store on disk: {:.2} MB", store_bytes as f64 / 1e6);
    println!(
        "{}",
        serde_json::json!({
            "hazards": hazards, "edits_per_hazard": edits,
            "edit_p50_ms": round(edit_p50), "edit_p99_ms": round(edit_p99), "edit_max_ms": round(edit_max),
            "add_p50_ms": round(add_p50), "add_p99_ms": round(add_p99),
            "load_ms": round(load_ms), "load_max_ms": round(load_max_ms), "read_ms": round(read_ms), "store_bytes": store_bytes,
            "door_changes": arriving, "door_steps": door_steps, "door_ms": round(door_ms),
            "door_broken_ms": round(door_broken_ms),
        })
    );
    Ok(())
}

/// The door's cost when a merge broke a rule on the hazard an arriving
/// change writes: two devices each made a valid edit (one raised the level
/// to major, the other cleared the clause), and a later edit of a field the
/// rules read (its title) arrives. `validate::rules_kept` then judges it at
/// its own point, forking the history at the change's dependencies (the
/// worst case: an edit of another field is not judged again). Returns the
/// check's time (ms).
fn door_after_a_broken_merge(doc: &Automerge, dossier_id: &DocId, n: usize) -> anyhow::Result<f64> {
    let id = new_entity_id()?;
    let mut merged = doc.fork();
    let mut hazard = sample(n)?;
    hazard.major_hazard_criterion = Some(sync_core::codes::criteria()[0].id.to_owned());
    edit(&mut merged, now_ms(), |tx| dossier::add_hazard(tx, &id, &hazard))?;
    let mut other = merged.fork();
    edit(&mut merged, now_ms(), |tx| {
        dossier::modify_hazard(tx, &id, |h| {
            h.level = HazardLevel::Major;
            Ok(())
        })
    })?;
    edit(&mut other, now_ms(), |tx| {
        dossier::modify_hazard(tx, &id, |h| {
            h.major_hazard_criterion = None;
            Ok(())
        })
    })?;
    merged.merge(&mut other)?;
    // The later edit writes the title as any device's would, though the
    // merged hazard breaks a rule (a local edit would refuse it).
    let mut later = merged.fork();
    let mut tx = later.transaction();
    let hazards = tx.get(ROOT, "hazards")?.map(|(_, o)| o).ok_or_else(|| anyhow::anyhow!("no hazards"))?;
    let hazard = tx.get(&hazards, id.as_str())?.map(|(_, o)| o).ok_or_else(|| anyhow::anyhow!("no hazard"))?;
    tx.put(&hazard, "title", "连墙件缺失（复查）")?;
    tx.commit();
    let arriving = later.get_changes(&merged.get_heads());
    let t = Instant::now();
    let checked = Arrived::Changes(arriving).checked(dossier_id, Some(merged))?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let issues = sync_core::doc::conflicts::rule_issues(&dossier::read(&checked.result)?);
    assert_eq!(issues.len(), 1, "the merge's broken rule is kept, the later edit not blamed");
    Ok(ms)
}

fn sample(i: usize) -> anyhow::Result<Hazard> {
    Ok(Hazard {
        subcontractor: String::new(),
        title: format!("第{i}处：脚手架连墙件设置不符合规范要求，存在架体失稳风险"),
        description:
            "外脚手架连墙件未按专项施工方案设置，东侧12至13层整层缺失，部分连墙件采用柔性连接，架体有外倾迹象，\
            立杆基础局部积水，扫地杆缺失，剪刀撑未沿高度连续设置，作业层脚手板未满铺，存在坍塌和高处坠落风险。"
                .into(),
        hazard_kind: HazardKind::UnsafeCondition,
        accident_type: AccidentType::gb6441_1986("10")?,
        level: HazardLevel::General,
        major_hazard_criterion: None,
        location: Location { text: format!("{}号楼东侧外架", i % 12 + 1), gps: None },
        legal_basis: "JGJ 59-2011 第3.3.3条".into(),
        photos: (0..3)
            .map(|p| (sync_core::ids::sha256_hex(format!("{i}-{p}").as_bytes()), format!("IMG_{i}_{p}.jpg")))
            .collect(),
        inspector: "张三".into(),
        found_at: "2026-11-24T02:00:00Z".into(),
        found_on: String::new(),
        checklist_item: Some("construction-jgj59/scaffold-02".into()),
        deleted: false,
        rectification: Rectification::default(),
    })
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    values.get(i).copied().unwrap_or_default()
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn dir_size(path: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { dir_size(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}
