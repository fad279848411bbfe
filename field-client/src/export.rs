//! Exports of a campaign: the whole merged state as JSON, and the hazard
//! register (隐患排查治理台账) as CSV with the columns of DOMAIN.md.
//!
//! Both are deterministic functions of the documents, so two devices that
//! hold the same changes produce byte-identical exports.

use serde::Serialize;
use sync_core::ids::DocId;
use sync_core::model::{Briefing, Campaign, CampaignKind, Dossier, Hazard};

use crate::{Store, StoreError};

/// A campaign with its dossiers and briefing, as exported.
#[derive(Debug, Serialize)]
pub struct CampaignExport {
    /// The campaign.
    pub campaign: Campaign,
    /// Dossiers of its enterprises that this device holds, by enterprise code.
    pub dossiers: Vec<Dossier>,
    /// The briefing, if held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub briefing: Option<Briefing>,
}

/// Gathers a campaign's documents.
pub fn campaign(store: &mut Store, id: &DocId) -> Result<CampaignExport, StoreError> {
    let campaign = store.campaign(id)?;
    let mut dossiers = Vec::new();
    for enterprise in campaign.enterprises.values() {
        match store.dossier(&enterprise.dossier_id) {
            Ok(d) => dossiers.push(d),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let briefing = match store.document(&DocId::briefing(id)) {
        Ok(doc) => Some(sync_core::doc::briefing::read(doc)?),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    Ok(CampaignExport { campaign, dossiers, briefing })
}

/// The register's columns, in order.
pub const REGISTER_COLUMNS: &[&str] = &[
    "序号",
    "隐患编号",
    "被检查单位",
    "统一社会信用代码",
    "工程项目",
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
    "整改责任人",
    "整改方式",
    "整改期限",
    "临时管控措施",
    "整改人",
    "完成日期",
    "整改后照片",
    "复查人",
    "复查日期",
    "复查意见",
    "整改状态",
];

fn screening_type(kind: CampaignKind) -> &'static str {
    match kind {
        CampaignKind::ConstructionJointInspection => "联合",
        CampaignKind::MineSurvey => "专项",
        CampaignKind::SelfInspection => "自查",
    }
}

/// Writes the hazard register of a campaign as CSV (UTF-8 with BOM, so
/// Excel and WPS open it as Chinese text). Deleted findings are left out;
/// rows are ordered by enterprise, then by when they were found.
pub fn register_csv(export: &CampaignExport) -> Result<Vec<u8>, StoreError> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        let csv_err = |e: csv::Error| StoreError::Invalid(format!("CSV 写入失败：{e}"));
        w.write_record(REGISTER_COLUMNS).map_err(csv_err)?;
        let mut n = 0;
        for dossier in &export.dossiers {
            let enterprise = export.campaign.enterprises.get(&dossier.enterprise);
            let mut hazards: Vec<(&String, &Hazard)> = dossier.hazards.iter().filter(|(_, h)| !h.deleted).collect();
            hazards.sort_by(|a, b| (&a.1.found_at, a.0).cmp(&(&b.1.found_at, b.0)));
            for (id, h) in hazards {
                n += 1;
                let r = &h.rectification;
                let gps = h.location.gps;
                let row = [
                    n.to_string(),
                    id.clone(),
                    enterprise.map_or_else(|| dossier.enterprise.clone(), |e| e.name.clone()),
                    dossier.enterprise.clone(),
                    enterprise.map(|e| e.project.clone()).unwrap_or_default(),
                    h.found_at.get(..10).unwrap_or_default().to_owned(),
                    screening_type(export.campaign.campaign_kind).to_owned(),
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
                    h.photos.keys().cloned().collect::<Vec<_>>().join(";"),
                    r.measures.clone(),
                    r.owner.clone(),
                    r.mode.map(|m| m.label().to_owned()).unwrap_or_default(),
                    r.deadline.clone().unwrap_or_default(),
                    r.interim_control.clone(),
                    r.rectified_by.clone().unwrap_or_default(),
                    r.rectified_at.as_deref().and_then(|t| t.get(..10)).unwrap_or_default().to_owned(),
                    r.photos_after.keys().cloned().collect::<Vec<_>>().join(";"),
                    r.verifier.clone().unwrap_or_default(),
                    r.verified_at.as_deref().and_then(|t| t.get(..10)).unwrap_or_default().to_owned(),
                    r.verification_note.clone(),
                    r.status.label().to_owned(),
                ];
                w.write_record(&row).map_err(csv_err)?;
            }
        }
        w.flush().map_err(StoreError::Io)?;
    }
    Ok(out)
}
