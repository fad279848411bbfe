//! Exports of a campaign: the whole merged state as JSON, and the hazard
//! register (隐患排查治理台账) as CSV (columns and rows from
//! `sync_core::register`), with the photos it names beside it.
//!
//! Both are deterministic functions of the documents, so two devices that
//! hold the same changes produce byte-identical exports.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use sync_core::doc::conflicts::{self, Conflict};
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

/// The conflicts open on each dossier of `export`, which the register
/// marks (and reads the graver value of).
pub fn open_conflicts(
    store: &mut Store,
    export: &CampaignExport,
) -> Result<BTreeMap<DocId, Vec<Conflict>>, StoreError> {
    let mut open = BTreeMap::new();
    for dossier in &export.dossiers {
        open.insert(dossier.id.clone(), conflicts::conflicts(store.document(&dossier.id)?)?);
    }
    Ok(open)
}

/// Writes the photos the register of `export` names into `dir`, at the
/// paths its cells give (`照片/<隐患编号>/<文件名>`): each written whole, an
/// existing file kept unless `overwrite`. Returns how many were written and
/// the paths of those this device does not hold.
pub fn register_photos(
    store: &Store,
    export: &CampaignExport,
    dir: &Path,
    overwrite: bool,
) -> Result<(usize, Vec<String>), StoreError> {
    let (mut written, mut missing) = (0, Vec::new());
    for photo in register::photos(&export.dossiers) {
        let Ok(bytes) = std::fs::read(crate::blob_path(store.home(), &photo.sha)) else {
            missing.push(photo.path);
            continue;
        };
        let target = dir.join(&photo.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Invalid(format!("无法创建 {}：{}", parent.display(), crate::words::io(&e))))?;
        }
        crate::files::write_new(&target, &bytes, overwrite)?;
        written += 1;
    }
    Ok((written, missing))
}

/// Writes the hazard register of a campaign as CSV (UTF-8 with BOM, so
/// Excel and WPS open it as Chinese text), with the conflicts `open` on
/// each dossier marked. Deleted findings are left out; rows are ordered by
/// enterprise, then by when they were found.
pub fn register_csv(export: &CampaignExport, open: &BTreeMap<DocId, Vec<Conflict>>) -> Result<Vec<u8>, StoreError> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        let csv_err = |e: csv::Error| StoreError::Invalid(format!("CSV 写入失败：{e}"));
        w.write_record(register::REGISTER_COLUMNS).map_err(csv_err)?;
        for row in register::rows(&export.campaign, &export.dossiers, open) {
            w.write_record(&row).map_err(csv_err)?;
        }
        w.flush().map_err(StoreError::Io)?;
    }
    Ok(out)
}
