//! Convergence property test: 3–5 replicas (real stores, real SQLite, real
//! signed bundles) make random concurrent edits and exchange bundles in
//! random orders. After a final all-to-all exchange:
//! - all replicas export identical JSON and list identical conflicts;
//! - every export validates against the JSON Schemas;
//! - no accepted edit is lost: every hazard, deletion and rectification step
//!   is there (each step counts in its loop), and for every field written
//!   (level, description, 四不放过 verdicts) the writes no replica
//!   superseded are exactly the values reported as a conflict — or the
//!   single final value;
//! - conflicts on safety-critical fields are flagged critical.
//!
//! The oracle tracks causal knowledge: a replica knows every write it made
//! or received in a bundle; a write supersedes the writes on the same field
//! that its author knew.

use std::collections::{BTreeMap, BTreeSet};

use field_client::{Store, export};
use proptest::prelude::*;
use sync_core::codes::AccidentType;
use sync_core::doc::{campaign as campaign_doc, dossier};
use sync_core::ids::{CreditCode, DocId, EntityId};
use sync_core::model::{
    AccidentReview, CampaignKind, Domain, Enterprise, Hazard, HazardKind, HazardLevel, Location, Rectification,
    RectificationMode, RectificationStatus, ReviewItemKind, ReviewItems, Step, StepKind, Verdict, VerifyResult,
};
use sync_core::rectification::Loop;
use tempfile::TempDir;

mod common;

#[derive(Clone, Debug)]
enum Op {
    AddHazard { r: usize },
    EditDescription { r: usize, h: usize },
    ToggleLevel { r: usize, h: usize },
    Step { r: usize, h: usize, alt: bool },
    Delete { r: usize, h: usize },
    AddReview { r: usize },
    SetVerdict { r: usize, v: usize, item: usize, verdict: usize },
    Exchange { from: usize, to: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let i = || 0usize..64;
    prop_oneof![
        3 => i().prop_map(|r| Op::AddHazard { r }),
        2 => (i(), i()).prop_map(|(r, h)| Op::EditDescription { r, h }),
        3 => (i(), i()).prop_map(|(r, h)| Op::ToggleLevel { r, h }),
        3 => (i(), i(), any::<bool>()).prop_map(|(r, h, alt)| Op::Step { r, h, alt }),
        1 => (i(), i()).prop_map(|(r, h)| Op::Delete { r, h }),
        1 => i().prop_map(|r| Op::AddReview { r }),
        2 => (i(), i(), i(), i()).prop_map(|(r, v, item, verdict)| Op::SetVerdict { r, v, item, verdict }),
        4 => (i(), i()).prop_map(|(from, to)| Op::Exchange { from, to }),
    ]
}

struct Write {
    path: String,
    value: String,
}

struct Sim {
    stores: Vec<Store>,
    _dirs: Vec<TempDir>,
    dossier: DocId,
    campaign: DocId,
    knows: Vec<BTreeSet<usize>>,
    writes: Vec<Write>,
    superseded: BTreeSet<usize>,
    hazards: Vec<EntityId>,
    deleted: BTreeSet<EntityId>,
    /// Every rectification step taken.
    steps: BTreeSet<String>,
    next_token: usize,
}

const CODE: &str = "91640200MA76XYW123";

impl Sim {
    fn new(n: usize) -> Self {
        let dirs: Vec<TempDir> = (0..n).map(|_| TempDir::new().unwrap()).collect();
        let mut stores: Vec<Store> =
            dirs.iter().enumerate().map(|(i, d)| Store::init(d.path(), &format!("检查员{i}")).unwrap()).collect();
        let keys: Vec<_> = stores.iter().map(|s| s.public_key()).collect();
        for (i, store) in stores.iter().enumerate() {
            for (j, key) in keys.iter().enumerate() {
                if i != j {
                    store.trust(key, &format!("检查员{j}")).unwrap();
                }
            }
        }
        let campaign = stores[0]
            .create_campaign("联合检查", CampaignKind::ConstructionJointInspection, "2026-11-24", "2026-11-25")
            .unwrap();
        let code: CreditCode = CODE.parse().unwrap();
        let enterprise = Enterprise {
            name: "宁夏某建设集团有限公司".into(),
            unified_social_credit_code: code.clone(),
            domain: Domain::Construction,
            project: "教学楼".into(),
            address: String::new(),
            dossier_id: DocId::dossier(&campaign, &code),
        };
        stores[0].edit(&campaign, |tx| campaign_doc::add_enterprise(tx, &campaign, &enterprise)).unwrap();
        let dossier = stores[0].open_dossier(&campaign, CODE).unwrap();
        let setup = stores[0].export_bundle().unwrap();
        for store in &mut stores[1..] {
            store.import_bundle(&setup).unwrap();
        }
        Sim {
            stores,
            _dirs: dirs,
            dossier,
            campaign,
            knows: vec![BTreeSet::new(); n],
            writes: Vec::new(),
            superseded: BTreeSet::new(),
            hazards: Vec::new(),
            deleted: BTreeSet::new(),
            steps: BTreeSet::new(),
            next_token: 0,
        }
    }

    /// Records that replica `r` wrote `value` at `path`.
    fn write(&mut self, r: usize, path: String, value: &str) {
        for &w in &self.knows[r] {
            if self.writes[w].path == path {
                self.superseded.insert(w);
            }
        }
        self.writes.push(Write { path, value: value.to_owned() });
        self.knows[r].insert(self.writes.len() - 1);
    }

    fn known_hazard(&mut self, r: usize, h: usize) -> Option<(EntityId, Hazard)> {
        let d = self.stores[r].dossier(&self.dossier).unwrap();
        let (id, hazard) = d.hazards.into_iter().nth(h % 8)?;
        Some((id.parse().unwrap(), hazard))
    }

    fn edit_hazard(&mut self, r: usize, id: &EntityId, f: impl FnOnce(&mut Hazard)) -> bool {
        let dossier = self.dossier.clone();
        self.stores[r]
            .edit(&dossier, |tx| {
                dossier::modify_hazard(tx, id, |h| {
                    f(h);
                    Ok(())
                })
            })
            .is_ok()
    }

    fn apply(&mut self, op: Op) {
        let n = self.stores.len();
        match op {
            Op::AddHazard { r } => {
                let r = r % n;
                let id = field_client::new_entity_id().unwrap();
                let hazard = new_hazard(&format!("隐患{}", self.hazards.len()));
                let dossier = self.dossier.clone();
                self.stores[r].edit(&dossier, |tx| dossier::add_hazard(tx, &id, &hazard)).unwrap();
                let base = format!("hazards/{id}");
                self.write(r, format!("{base}/level"), "general");
                self.hazards.push(id);
            }
            Op::EditDescription { r, h } => {
                let r = r % n;
                let Some((id, hazard)) = self.known_hazard(r, h) else {
                    return;
                };
                let description = format!("{}〔补充{}〕", hazard.description, self.next_token);
                self.next_token += 1;
                let d = description.clone();
                if self.edit_hazard(r, &id, |h| h.description = d) {
                    self.write(r, format!("hazards/{id}/description"), &description);
                }
            }
            Op::ToggleLevel { r, h } => {
                let r = r % n;
                let Some((id, hazard)) = self.known_hazard(r, h) else {
                    return;
                };
                let major = hazard.level == HazardLevel::General;
                let accepted = self.edit_hazard(r, &id, |h| {
                    if major {
                        h.level = HazardLevel::Major;
                        h.major_hazard_criterion = Some("jianzhi-2022-2/art7-2".into());
                    } else {
                        h.level = HazardLevel::General;
                        h.major_hazard_criterion = None;
                    }
                });
                if accepted {
                    let value = if major { "major" } else { "general" };
                    self.write(r, format!("hazards/{id}/level"), value);
                }
            }
            Op::Step { r, h, alt } => {
                let r = r % n;
                let Some((id, hazard)) = self.known_hazard(r, h) else {
                    return;
                };
                if hazard.deleted {
                    return;
                }
                use RectificationStatus::*;
                let state = Loop::of(&hazard.rectification).state;
                let plan = |deadline: &str| Step {
                    mode: Some(RectificationMode::Deadline),
                    deadline: Some(deadline.into()),
                    owner: "项目安全员".into(),
                    measures: "补设防护".into(),
                    ..Step::new(StepKind::Plan)
                };
                let step = match (state.status, state.plan.is_some(), alt) {
                    (Open, false, _) | (Rectifying, _, true) => plan(&format!("2026-12-{:02}", 1 + r)),
                    (Open, true, _) => Step::new(StepKind::Start),
                    (Rectifying, _, false) => {
                        Step { rectified_by: Some(format!("整改人{r}")), ..Step::new(StepKind::Done) }
                    }
                    (AwaitingVerification, _, alt) => Step {
                        result: Some(if alt { VerifyResult::Fail } else { VerifyResult::Pass }),
                        ..Step::new(StepKind::Verify)
                    },
                    (Closed, _, _) => Step { note: "复查发现反弹".into(), ..Step::new(StepKind::Reopen) },
                };
                let signer = self.stores[r].signer().unwrap();
                let step_id = field_client::new_entity_id().unwrap();
                let dossier = self.dossier.clone();
                let at = sync_core::doc::rfc3339(field_client::now_ms());
                self.stores[r].edit(&dossier, |tx| dossier::add_step(tx, &id, &step_id, step, &signer, at)).unwrap();
                self.steps.insert(step_id.to_string());
            }
            Op::Delete { r, h } => {
                let r = r % n;
                let Some((id, hazard)) = self.known_hazard(r, h) else {
                    return;
                };
                if !hazard.deleted && self.edit_hazard(r, &id, |h| h.deleted = true) {
                    self.deleted.insert(id);
                }
            }
            Op::AddReview { r } => {
                let r = r % n;
                let id = field_client::new_entity_id().unwrap();
                let review = AccidentReview {
                    accident_date: "2025-06-01".into(),
                    accident_summary: "高处坠落死亡事故".into(),
                    report_ref: "石安委〔2025〕1号".into(),
                    items: ReviewItems::default(),
                };
                let dossier = self.dossier.clone();
                self.stores[r].edit(&dossier, |tx| dossier::add_review(tx, &id, &review)).unwrap();
            }
            Op::SetVerdict { r, v, item, verdict } => {
                let r = r % n;
                let d = self.stores[r].dossier(&self.dossier).unwrap();
                let Some((id, review)) = d.accident_reviews.into_iter().nth(v % 4) else {
                    return;
                };
                let id: EntityId = id.parse().unwrap();
                let kind = ReviewItemKind::ALL[item % 4];
                let current = review.items.item(kind).verdict;
                let choices: Vec<Verdict> = Verdict::ALL.iter().copied().filter(|v| Some(*v) != current).collect();
                let chosen = choices[verdict % choices.len()];
                let dossier = self.dossier.clone();
                self.stores[r]
                    .edit(&dossier, |tx| {
                        dossier::modify_review_item(tx, &id, kind, |i| {
                            i.verdict = Some(chosen);
                            Ok(())
                        })
                    })
                    .unwrap();
                self.write(r, format!("accident_reviews/{id}/items/{}/verdict", kind.as_str()), chosen.as_str());
            }
            Op::Exchange { from, to } => {
                let (from, to) = (from % n, to % n);
                if from != to {
                    self.exchange(from, to);
                }
            }
        }
    }

    fn exchange(&mut self, from: usize, to: usize) {
        let bundle = self.stores[from].export_bundle().unwrap();
        self.stores[to].import_bundle(&bundle).unwrap();
        let known = self.knows[from].clone();
        self.knows[to].extend(known);
    }

    fn converge(&mut self) {
        let n = self.stores.len();
        for _ in 0..2 {
            for from in 0..n {
                for to in 0..n {
                    if from != to {
                        self.exchange(from, to);
                    }
                }
            }
        }
    }

    fn check(&mut self) {
        let exports: Vec<String> = (0..self.stores.len())
            .map(|r| {
                let e = export::campaign(&mut self.stores[r], &self.campaign).unwrap();
                serde_json::to_string_pretty(&e).unwrap()
            })
            .collect();
        for (r, e) in exports.iter().enumerate() {
            assert_eq!(e, &exports[0], "replica {r} diverged from replica 0");
        }
        let reviews: Vec<String> = (0..self.stores.len())
            .map(|r| serde_json::to_string(&self.stores[r].review_items().unwrap()).unwrap())
            .collect();
        assert!(reviews.iter().all(|c| c == &reviews[0]), "replicas list different conflicts");

        let export = export::campaign(&mut self.stores[0], &self.campaign).unwrap();
        common::assert_schema_valid(&export);
        let d = &export.dossiers[0];
        for id in &self.hazards {
            assert!(d.hazards.contains_key(id.as_str()), "hazard {id} lost");
        }
        for id in &self.deleted {
            assert!(d.hazards[id.as_str()].deleted, "deletion of {id} lost");
        }
        // Every step taken is in its hazard's loop and counts there.
        let counted: BTreeSet<String> = d
            .hazards
            .values()
            .flat_map(|h| Loop::of(&h.rectification).history)
            .filter(|e| e.counted)
            .map(|e| e.id)
            .collect();
        assert_eq!(counted, self.steps, "a rectification step was lost or stopped counting");

        let listed: Vec<_> = self.stores[0].review_items().unwrap().into_iter().flat_map(|e| e.conflicts).collect();
        for c in &listed {
            let critical = ["level", "verdict", "major_hazard_criterion"].contains(&c.field.as_str());
            assert_eq!(c.critical, critical, "{} flagged wrongly", c.path);
        }
        let conflicts: BTreeMap<String, Vec<String>> = listed.into_iter().map(|c| (c.path, c.values)).collect();
        let mut live: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (i, w) in self.writes.iter().enumerate() {
            if !self.superseded.contains(&i) {
                live.entry(w.path.as_str()).or_default().insert(w.value.as_str());
            }
        }
        for (path, values) in &live {
            let expected: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            if values.len() > 1 {
                assert_eq!(conflicts.get(*path), Some(&expected), "concurrent writes at {path} not reported");
            } else {
                assert_eq!(conflicts.get(*path), None, "spurious conflict at {path}");
                assert_eq!(final_value(d, path).as_deref(), Some(expected[0].as_str()), "write at {path} lost");
            }
        }
        assert_eq!(conflicts.len(), live.values().filter(|v| v.len() > 1).count());
    }
}

fn final_value(d: &sync_core::model::Dossier, path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["hazards", id, "level"] => Some(d.hazards[*id].level.as_str().to_owned()),
        ["hazards", id, "description"] => Some(d.hazards[*id].description.clone()),
        ["accident_reviews", id, "items", item, "verdict"] => {
            let kind = ReviewItemKind::parse(item)?;
            d.accident_reviews[*id].items.item(kind).verdict.map(|v| v.as_str().to_owned())
        }
        _ => None,
    }
}

fn new_hazard(title: &str) -> Hazard {
    Hazard {
        subcontractor: String::new(),
        title: title.into(),
        description: "现场发现：".into(),
        hazard_kind: HazardKind::UnsafeCondition,
        accident_type: AccidentType::gb6441_1986("09").unwrap(),
        level: HazardLevel::General,
        major_hazard_criterion: None,
        location: Location { text: "1号楼".into(), gps: None },
        legal_basis: "JGJ 59-2011".into(),
        photos: BTreeMap::new(),
        inspector: "检查员".into(),
        found_at: "2026-11-24T01:00:00Z".into(),
        found_on: String::new(),
        checklist_item: None,
        deleted: false,
        rectification: Rectification::default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_with_nothing_lost(n in 3usize..=5, ops in prop::collection::vec(op(), 10..45)) {
        let mut sim = Sim::new(n);
        for op in ops {
            sim.apply(op);
        }
        sim.converge();
        sim.check();
    }
}
