//! The hazard register (隐患排查治理台账): its columns (DOMAIN.md) and one
//! hazard's row. Every export of the register — a device's CSV, HQ's CSV and
//! XLSX — takes its columns and rows from here, so they agree; a later
//! column is added here once.

use std::collections::{BTreeMap, BTreeSet};

use crate::doc::conflicts::{self, Conflict};
use crate::ids::DocId;
use crate::model::{Campaign, CampaignKind, Dossier, Hazard};
use crate::rectification::{self, Loop};
use crate::zone::Zone;

/// The register's columns, in order.
pub const REGISTER_COLUMNS: &[&str] = &[
    "序号",
    "隐患编号",
    "被检查单位",
    "统一社会信用代码",
    "工程项目",
    "分包单位",
    "发现日期",
    "排查类型",
    "检查人员",
    "隐患部位",
    "GPS纬度",
    "GPS经度",
    "坐标系",
    "隐患标题",
    "隐患描述",
    "隐患类别",
    "事故类型代码",
    "事故类型",
    "隐患等级",
    "重大隐患判定条款",
    "依据条款",
    "整改前照片",
    "整改措施",
    "整改责任单位",
    "整改责任人",
    "整改方式",
    "整改期限",
    "临时管控措施",
    "整改人",
    "完成日期",
    "整改后照片",
    "复查人",
    "复查日期",
    "复查结论",
    "复查意见",
    "整改状态",
    "待裁定冲突",
    "整改记录",
];

/// The columns of the register's companion list of rectification steps
/// (整改步骤), one row per step, in the loop's order.
pub const STEP_COLUMNS: &[&str] = &[
    "序号",
    "隐患编号",
    "被检查单位",
    "隐患标题",
    "步骤",
    "时间",
    "记录人",
    "记录人身份",
    "整改方式",
    "整改期限",
    "整改责任单位",
    "整改责任人",
    "整改措施",
    "临时管控措施",
    "整改人",
    "复查结论",
    "意见或理由",
    "照片数",
    "是否计入",
];

fn screening_type(kind: CampaignKind) -> &'static str {
    match kind {
        CampaignKind::ConstructionJointInspection => "联合",
        CampaignKind::MineSurvey => "专项",
        CampaignKind::SelfInspection => "自查",
    }
}

/// Where a hazard was found, as the register names it.
#[derive(Clone, Debug)]
pub struct Place {
    /// The enterprise's name (its code when the campaign does not list it).
    pub enterprise: String,
    /// 统一社会信用代码.
    pub code: String,
    /// The project (工程项目), if any.
    pub project: String,
    /// The campaign's kind, which says the screening type.
    pub kind: CampaignKind,
    /// The campaign's time zone: the dates people read are its days.
    pub zone: Zone,
}

impl Place {
    /// Where the hazards of `dossier` in `campaign` were found.
    pub fn of(campaign: &Campaign, dossier: &Dossier) -> Self {
        let enterprise = campaign.enterprises.get(&dossier.enterprise);
        Place {
            enterprise: enterprise.map_or_else(|| dossier.enterprise.clone(), |e| e.name.clone()),
            code: dossier.enterprise.clone(),
            project: enterprise.map(|e| e.project.clone()).unwrap_or_default(),
            kind: campaign.campaign_kind,
            zone: Zone::of(campaign),
        }
    }
}

/// A photo as an export folder holds it beside the register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhotoFile {
    /// Its SHA-256, its name in a store.
    pub sha: String,
    /// Where it goes, relative to the register, as the register's photo
    /// cells name it: `照片/<隐患编号>/<file name>`.
    pub path: String,
    /// Taken after rectification (its file name begins `整改后-`).
    pub after: bool,
}

/// Hazard `id`'s photos as an export folder holds them, in the order its
/// register row lists them: before rectification, then after. A file name
/// taken twice in one hazard gets `-2`, `-3` before its extension; a name
/// that cannot be a file name (empty, a path) is made one.
pub fn photo_files(id: &str, h: &Hazard) -> Vec<PhotoFile> {
    let mut taken = BTreeSet::new();
    let before = h.photos.iter().map(|(sha, name)| (sha, name, false));
    let after = rectification::photos_after(&h.rectification).map(|(sha, name)| (sha, name, true));
    before
        .chain(after)
        .map(|(sha, name, after)| {
            let mut name = file_name(name);
            if name.is_empty() {
                name = format!("照片-{}", sha.get(..12).unwrap_or(sha));
            }
            let name = format!("{}{name}", if after { "整改后-" } else { "" });
            let (stem, extension) = match name.rsplit_once('.') {
                Some((stem, extension)) if !stem.is_empty() => (stem.to_owned(), format!(".{extension}")),
                _ => (name.clone(), String::new()),
            };
            let mut path = format!("照片/{id}/{name}");
            let mut n = 1;
            while !taken.insert(path.clone()) {
                n += 1;
                path = format!("照片/{id}/{stem}-{n}{extension}");
            }
            PhotoFile { sha: sha.clone(), path, after }
        })
        .collect()
}

/// `name` as a file name in any system: no path separators, control or
/// reserved characters, no leading dot; empty when nothing is left.
pub fn file_name(name: &str) -> String {
    let clean: String =
        name.chars().map(|c| if c.is_control() || "/\\:*?\"<>|".contains(c) { '_' } else { c }).collect();
    clean.trim().trim_start_matches('.').to_owned()
}

/// The photos of the register of `dossiers` (as [`rows`] lists them).
pub fn photos(dossiers: &[Dossier]) -> Vec<PhotoFile> {
    dossiers
        .iter()
        .flat_map(|d| d.hazards.iter().filter(|(_, h)| !h.deleted).flat_map(|(id, h)| photo_files(id, h)))
        .collect()
}

/// The row of hazard `id`, found at `place`, in the register, without its
/// sequence number (the first column, given by whoever lists the rows).
/// `open` are the conflicts of its dossier: while one is open on this
/// hazard the row reads its graver value ([`conflicts::graver`]) and names
/// the fields to decide.
pub fn row(place: &Place, id: &str, h: &Hazard, open: &[Conflict]) -> Vec<String> {
    let mut h = h.clone();
    let undecided: Vec<&str> = conflicts::graver(&mut h, id, open).iter().map(|c| c.label).collect();
    let h = &h;
    let lp = Loop::of(&h.rectification);
    let state = &lp.state;
    let plan = state.plan.as_ref();
    let gps = h.location.gps;
    let rectifiers: Vec<&str> = state.reports.iter().map(|r| r.rectified_by.as_str()).collect();
    let done_on = state.reports.iter().filter_map(|r| r.at.as_deref()).max();
    let verification = state.verification.as_ref();
    let files = photo_files(id, h);
    let photos = |after: bool| files.iter().filter(|f| f.after == after).map(|f| f.path.as_str()).collect::<Vec<_>>();
    let mut status = state.status.label().to_owned();
    if !lp.disputes.is_empty() {
        status.push_str("（有分歧待审核）");
    }
    vec![
        id.to_owned(),
        place.enterprise.clone(),
        place.code.clone(),
        place.project.clone(),
        h.subcontractor.clone(),
        day(&place.zone, &h.found_at),
        screening_type(place.kind).to_owned(),
        h.inspector.clone(),
        h.location.text.clone(),
        gps.map(|g| g.lat.to_string()).unwrap_or_default(),
        gps.map(|g| g.lon.to_string()).unwrap_or_default(),
        gps.map(|g| g.crs.label().to_owned()).unwrap_or_default(),
        h.title.clone(),
        h.description.clone(),
        h.hazard_kind.label().to_owned(),
        h.accident_type.code.clone(),
        h.accident_type.name().to_owned(),
        h.level.label().to_owned(),
        h.major_hazard_criterion.clone().unwrap_or_default(),
        h.legal_basis.clone(),
        photos(false).join(";"),
        plan.map(|p| p.measures.clone()).unwrap_or_default(),
        plan.map(|p| p.responsible_unit.clone()).unwrap_or_default(),
        plan.map(|p| p.owner.clone()).unwrap_or_default(),
        plan.map(|p| p.mode.label().to_owned()).unwrap_or_default(),
        plan.and_then(|p| p.deadline.clone()).unwrap_or_default(),
        plan.map(|p| p.interim_control.clone()).unwrap_or_default(),
        rectifiers.join("、"),
        done_on.map(|at| day(&place.zone, at)).unwrap_or_default(),
        photos(true).join(";"),
        verification.map(|v| v.verifier.clone()).unwrap_or_default(),
        verification.and_then(|v| v.at.as_deref()).map(|at| day(&place.zone, at)).unwrap_or_default(),
        verification.map(|v| v.result.label().to_owned()).unwrap_or_default(),
        verification.map(|v| v.note.clone()).unwrap_or_default(),
        status,
        undecided.join("、"),
        history(&lp, &place.zone),
    ]
}

/// The day of an RFC 3339 time in `zone` (what people read in the
/// register); the stored text if it is not a time.
fn day(zone: &Zone, time: &str) -> String {
    zone.day(time).unwrap_or_else(|| time.to_owned())
}

/// The loop's steps in one cell: `2026-12-07 09:04 下达整改要求（张三）；…`
/// (times in `zone`).
pub fn history(lp: &Loop, zone: &Zone) -> String {
    let mut parts = Vec::new();
    if let Some(status) = lp.earlier {
        parts.push(format!("此前记录：{}", status.label()));
    }
    for e in &lp.history {
        let s = &e.step;
        let mut part = format!("{} {}（{}）", zone.minute(&s.at), s.kind.label(), s.author);
        if let Some(result) = s.result {
            part.push_str(&format!("：{}", result.label()));
        }
        if let Some(d) = &s.deadline {
            part.push_str(&format!("：期限 {d}"));
        }
        if let Some(by) = &s.rectified_by {
            part.push_str(&format!("：整改人 {by}"));
        }
        if !e.counted {
            part.push_str("【不合规，未计入】");
        }
        parts.push(part);
    }
    parts.join("；")
}

/// The rows of hazard `id`'s rectification steps, found at `place`, in the
/// loop's order, without their sequence number (the first column).
pub fn step_rows(place: &Place, id: &str, h: &Hazard) -> Vec<Vec<String>> {
    let lp = Loop::of(&h.rectification);
    lp.history
        .iter()
        .map(|e| {
            let s = &e.step;
            let role = s.author_role.as_deref().map(|r| crate::credential::Role::parse(r).map_or(r, |r| r.label()));
            vec![
                id.to_owned(),
                place.enterprise.clone(),
                h.title.clone(),
                s.kind.label().to_owned(),
                place.zone.minute(&s.at),
                s.author.clone(),
                role.unwrap_or_default().to_owned(),
                s.mode.map(|m| m.label().to_owned()).unwrap_or_default(),
                s.deadline.clone().unwrap_or_default(),
                s.responsible_unit.clone(),
                s.owner.clone(),
                s.measures.clone(),
                s.interim_control.clone(),
                s.rectified_by.clone().unwrap_or_default(),
                s.result.map(|r| r.label().to_owned()).unwrap_or_default(),
                s.note.clone(),
                s.photos.len().to_string(),
                if e.counted { "是" } else { "否（不合规）" }.to_owned(),
            ]
        })
        .collect()
}

/// The register of `campaign` from its `dossiers`, each with the conflicts
/// `open` on it: rows numbered from 1, by enterprise as given, then by when
/// found; deleted findings left out.
pub fn rows(campaign: &Campaign, dossiers: &[Dossier], open: &BTreeMap<DocId, Vec<Conflict>>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for dossier in dossiers {
        let place = Place::of(campaign, dossier);
        let open = open.get(&dossier.id).map_or(&[][..], Vec::as_slice);
        let mut hazards: Vec<(&String, &Hazard)> = dossier.hazards.iter().filter(|(_, h)| !h.deleted).collect();
        hazards.sort_by(|a, b| (&a.1.found_at, a.0).cmp(&(&b.1.found_at, b.0)));
        for (id, h) in hazards {
            let mut row = vec![(out.len() + 1).to_string()];
            row.extend(self::row(&place, id, h, open));
            out.push(row);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_has_a_cell_for_every_column_but_the_number() {
        let campaign: Campaign = serde_json::from_value(serde_json::json!({
            "kind": "campaign", "schema_version": 1, "id": format!("cmp-{}", "01".repeat(16)),
            "name": "联合检查", "campaign_kind": "construction_joint_inspection",
            "start_date": "2026-11-24", "end_date": "2026-11-25", "briefing_deadline": "2026-11-28",
            "team": {}, "enterprises": {}, "schedule": {}, "checklists": {}
        }))
        .unwrap();
        let dossier: Dossier = serde_json::from_value(serde_json::json!({
            "kind": "enterprise_dossier", "schema_version": 1, "id": format!("dos-{}", "02".repeat(16)),
            "campaign_id": campaign.id, "enterprise": "91640200MA76XYW123",
            "site_visits": {}, "hazards": {}, "accident_reviews": {}, "document_checks": {}
        }))
        .unwrap();
        let hazard = crate::doc::dossier::tests::sample_hazard("临边无防护");
        assert_eq!(row(&Place::of(&campaign, &dossier), "H1", &hazard, &[]).len() + 1, REGISTER_COLUMNS.len());
        let mut d = dossier.clone();
        d.hazards.insert("H1".into(), hazard.clone());
        d.hazards.insert("H0".into(), Hazard { deleted: true, ..hazard });
        let mut planned = d.hazards["H1"].clone();
        let plan = crate::model::Step {
            at: "2026-11-24T01:30:00Z".into(),
            author: "张三".into(),
            author_role: Some("inspector".into()),
            deadline: Some("2026-11-30".into()),
            ..crate::model::Step::new(crate::model::StepKind::Plan)
        };
        planned.rectification.steps.insert("S1".into(), plan);
        let steps = step_rows(&Place::of(&campaign, &d), "H1", &planned);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].len() + 1, STEP_COLUMNS.len());
        assert_eq!(
            (steps[0][4].as_str(), steps[0][6].as_str(), steps[0][8].as_str()),
            ("2026-11-24 09:30", "检查员", "2026-11-30")
        );
        let rows = rows(&campaign, &[d], &BTreeMap::new());
        assert_eq!(rows.len(), 1, "deleted findings are left out");
        let found = REGISTER_COLUMNS.iter().position(|c| *c == "发现日期").unwrap();
        assert_eq!((rows[0][0].as_str(), rows[0][1].as_str(), rows[0][found].as_str()), ("1", "H1", "2026-11-23"));
    }

    /// Found at 02:47 Beijing time on 12-07: the register says 12-07 (not
    /// UTC's 12-06), and in a campaign kept in UTC it says 12-06.
    #[test]
    fn dates_are_the_days_of_the_campaigns_zone() {
        let hazard = Hazard {
            found_at: "2026-12-06T18:47:00Z".into(),
            found_on: String::new(),
            ..crate::doc::dossier::tests::sample_hazard("夜间作业照明不足")
        };
        let place = |zone: &str| Place {
            enterprise: "某建设集团".into(),
            code: "91640200MA76XYW123".into(),
            project: String::new(),
            kind: CampaignKind::ConstructionJointInspection,
            zone: Zone::named(zone).unwrap(),
        };
        let found_on = |zone: &str| {
            row(&place(zone), "H1", &hazard, &[])[REGISTER_COLUMNS.iter().position(|c| *c == "发现日期").unwrap() - 1]
                .clone()
        };
        assert_eq!(found_on("Asia/Shanghai"), "2026-12-07");
        assert_eq!(found_on(""), "2026-12-07", "the default zone");
        assert_eq!(found_on("UTC"), "2026-12-06");
    }
}
