//! Exports of a campaign: the whole merged state as JSON, and the hazard
//! register (隐患排查治理台账) as CSV (columns and rows from
//! `sync_core::register`).
//!
//! Both are deterministic functions of the documents, so two devices that
//! hold the same changes produce byte-identical exports.

use serde::Serialize;
use sync_core::ids::DocId;
use sync_core::model::{Briefing, Campaign, Dossier};
use sync_core::register;

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

/// Writes the hazard register of a campaign as CSV (UTF-8 with BOM, so
/// Excel and WPS open it as Chinese text). Deleted findings are left out;
/// rows are ordered by enterprise, then by when they were found.
pub fn register_csv(export: &CampaignExport) -> Result<Vec<u8>, StoreError> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        let csv_err = |e: csv::Error| StoreError::Invalid(format!("CSV 写入失败：{e}"));
        w.write_record(register::REGISTER_COLUMNS).map_err(csv_err)?;
        for row in register::rows(&export.campaign, &export.dossiers) {
            w.write_record(&row).map_err(csv_err)?;
        }
        w.flush().map_err(StoreError::Io)?;
    }
    Ok(out)
}
