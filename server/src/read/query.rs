//! The questions the read model answers. Each runs on a read-only
//! connection of its own ([`super::ReadModel::reader`]); parameters arrive
//! checked (`http::query` parses them) and are bound, never spliced.

use std::collections::BTreeMap;

use anyhow::Result;
use base64::Engine as _;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter, types::Value};
use serde::Serialize;
use sync_core::codes::{AccidentType, CodeSystem};
use sync_core::doc::conflicts::Conflict;
use sync_core::model::{
    DocumentResult, Domain, HazardKind, HazardLevel, RectificationMode, RectificationStatus, ReviewItemKind,
    ReviewItems, Verdict,
};
use sync_core::zone::Zone;

use crate::photos::PhotoMeta;
use utoipa::ToSchema;

/// The KPI targets of the source project, per enterprise (DOMAIN.md).
pub(crate) const HAZARDS_TARGET: i64 = 50;
/// Recommended hazards (checklist items) recorded, per enterprise.
pub(crate) const RECOMMENDED_TARGET: i64 = 150;
/// Rectification rate.
pub(crate) const RECTIFICATION_TARGET: f64 = 0.8;

/// A campaign, with how much HQ holds of it.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct CampaignSummary {
    /// `cmp-…`.
    pub(crate) id: String,
    pub(crate) name: String,
    /// `construction_joint_inspection`, `mine_survey`, …
    pub(crate) kind: String,
    pub(crate) start_date: String,
    pub(crate) end_date: String,
    /// Its time zone (IANA name), in which its dates are days.
    pub(crate) time_zone: String,
    /// Enterprises in the campaign.
    pub(crate) enterprises: i64,
    /// Hazards recorded (deleted ones left out).
    pub(crate) hazards: i64,
}

/// Every campaign HQ holds, the latest first.
pub(crate) fn campaigns(conn: &Connection) -> Result<Vec<CampaignSummary>> {
    let mut statement = conn.prepare(
        "SELECT c.id, c.name, c.kind, c.start_date, c.end_date, c.time_zone,
                (SELECT COUNT(*) FROM enterprises e WHERE e.campaign_id = c.id),
                (SELECT COUNT(*) FROM hazards h WHERE h.campaign_id = c.id AND NOT h.deleted)
         FROM campaigns c ORDER BY c.start_date DESC, c.id",
    )?;
    let rows = statement.query_map([], |r| {
        Ok(CampaignSummary {
            id: r.get(0)?,
            name: r.get(1)?,
            kind: r.get(2)?,
            start_date: r.get(3)?,
            end_date: r.get(4)?,
            time_zone: r.get(5)?,
            enterprises: r.get(6)?,
            hazards: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How each KPI is counted, returned beside the numbers.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct Definitions {
    pub(crate) hazards_found: String,
    pub(crate) recommended_recorded: String,
    pub(crate) rectification_rate: String,
}

/// One enterprise against the KPIs, as of a cut-off.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct EnterpriseProgress {
    /// 统一社会信用代码.
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) hazards_found: i64,
    pub(crate) hazards_target: i64,
    pub(crate) recommended_recorded: i64,
    pub(crate) recommended_target: i64,
    /// Hazards closed (销号) by the cut-off.
    pub(crate) closed: i64,
    /// `closed / hazards_found`; absent when nothing was found.
    pub(crate) rectification_rate: Option<f64>,
    pub(crate) rectification_target: f64,
}

/// A campaign's enterprises against the KPIs.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct Progress {
    pub(crate) campaign: String,
    /// The cut-off (RFC 3339, UTC): what was found and closed by then counts.
    pub(crate) as_of: String,
    /// The campaign's time zone (IANA name): a day given as the cut-off
    /// ends at its midnight there, and the definitions show the time there.
    pub(crate) time_zone: String,
    pub(crate) definitions: Definitions,
    pub(crate) enterprises: Vec<EnterpriseProgress>,
}

/// A cut-off for progress.
#[derive(Debug)]
pub(crate) enum CutOff {
    /// The end of this day in the campaign's zone.
    Day(jiff::civil::Date),
    /// This instant.
    At(jiff::Timestamp),
}

/// `campaign`'s progress as of `cut`; `None` if HQ holds no such campaign.
pub(crate) fn progress(conn: &Connection, campaign: &str, cut: &CutOff) -> Result<Option<Progress>> {
    let zone: Option<String> =
        conn.query_row("SELECT time_zone FROM campaigns WHERE id = ?1", [campaign], |r| r.get(0)).optional()?;
    let Some(zone) = zone else { return Ok(None) };
    let zone = Zone::named(&zone).unwrap_or_default();
    let at = match cut {
        CutOff::At(at) => *at,
        CutOff::Day(day) => {
            let next = day.tomorrow().ok().and_then(|d| zone.start_of(d));
            next.ok_or_else(|| anyhow::anyhow!("截止日期超出范围：{day}"))? - jiff::SignedDuration::from_millis(1)
        }
    };
    let as_of = sync_core::doc::rfc3339(at.as_millisecond());
    let shown = format!("{}（{}）", zone.minute(&as_of), zone.name());
    // One pass over the campaign's hazards, grouped by enterprise.
    let mut statement = conn.prepare(
        "SELECT e.code, e.name, COALESCE(s.found, 0), COALESCE(s.recommended, 0), COALESCE(s.closed, 0)
         FROM enterprises e
         LEFT JOIN (
             SELECT enterprise_code, COUNT(*) AS found, COUNT(DISTINCT checklist_item) AS recommended,
                    SUM(status = 'closed' AND verified_at IS NOT NULL AND verified_at <= ?2) AS closed
             FROM hazards
             WHERE campaign_id = ?1 AND NOT deleted AND found_at <= ?2
             GROUP BY enterprise_code
         ) s ON s.enterprise_code = e.code
         WHERE e.campaign_id = ?1
         ORDER BY e.name, e.code",
    )?;
    let rows = statement.query_map([campaign, &as_of], |r| {
        let found: i64 = r.get(2)?;
        let closed: i64 = r.get(4)?;
        Ok(EnterpriseProgress {
            code: r.get(0)?,
            name: r.get(1)?,
            hazards_found: found,
            hazards_target: HAZARDS_TARGET,
            recommended_recorded: r.get(3)?,
            recommended_target: RECOMMENDED_TARGET,
            closed,
            rectification_rate: (found > 0).then(|| closed as f64 / found as f64),
            rectification_target: RECTIFICATION_TARGET,
        })
    })?;
    let definitions = Definitions {
        hazards_found: format!("截至 {shown} 发现并记录、未删除的隐患条数（目标每家企业不少于 {HAZARDS_TARGET} 条）"),
        recommended_recorded: format!(
            "截至 {shown} 从推荐隐患清单带入、未删除的隐患所涉及的不同清单条目数（目标不少于 {RECOMMENDED_TARGET} 条）"
        ),
        rectification_rate: format!(
            "分子：截至 {shown} 已销号（复查通过且复查时间不晚于截止时间；其后重新打开的不计）的隐患条数；分母：截至 {shown} 发现并记录、未删除的隐患条数（目标不低于 {}%）",
            RECTIFICATION_TARGET * 100.0
        ),
    };
    Ok(Some(Progress {
        campaign: campaign.to_owned(),
        time_zone: zone.name().to_owned(),
        as_of,
        definitions,
        enterprises: rows.collect::<Result<_, _>>()?,
    }))
}

/// What to list: every field optional, already checked.
#[derive(Debug, Default)]
pub(crate) struct HazardFilter {
    pub(crate) campaign: Option<String>,
    pub(crate) enterprise: Option<String>,
    pub(crate) level: Option<HazardLevel>,
    pub(crate) status: Option<RectificationStatus>,
    pub(crate) accident_type: Option<String>,
    pub(crate) inspector: Option<String>,
    /// Found on or after this day (YYYY-MM-DD) in its campaign's zone.
    pub(crate) from: Option<String>,
    /// Found on or before this day (YYYY-MM-DD) in its campaign's zone.
    pub(crate) to: Option<String>,
    /// Words in the title, description or location.
    pub(crate) text: Option<String>,
    pub(crate) include_deleted: bool,
    /// In which order.
    pub(crate) sort: Sort,
    /// At most this many (1–500).
    pub(crate) limit: u32,
    /// After this cursor (from the previous page's `next`, of the same sort).
    pub(crate) after: Option<Cursor>,
}

/// The orders a hazard list comes in; each is one key, with the dossier
/// and hazard ids to break ties, so a cursor can resume it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Sort {
    /// The latest found first.
    #[default]
    Newest,
    /// The earliest found first.
    Oldest,
    /// Major hazards first, each group the latest found first.
    Major,
    /// The earliest rectification deadline first; those without one last.
    Deadline,
}

impl Sort {
    /// Every sort: its name in the API, in Chinese, its key and whether it
    /// descends.
    const ALL: [(Sort, &'static str, &'static str, &'static str, bool); 4] = [
        (Sort::Newest, "newest", "最新发现在前", "h.found_at", true),
        (Sort::Oldest, "oldest", "最早发现在前", "h.found_at", false),
        (Sort::Major, "major", "重大隐患在前", "(CASE h.level WHEN 'major' THEN '1' ELSE '0' END || h.found_at)", true),
        (Sort::Deadline, "deadline", "整改期限最早在前", "COALESCE(h.deadline, '9999-12-31')", false),
    ];

    fn entry(self) -> (Sort, &'static str, &'static str, &'static str, bool) {
        Sort::ALL.into_iter().find(|e| e.0 == self).unwrap_or(Sort::ALL[0])
    }

    /// A sort by its API name or Chinese label.
    pub(crate) fn parse(text: &str) -> Option<Sort> {
        Sort::ALL.into_iter().find(|e| e.1 == text || e.2 == text).map(|e| e.0)
    }

    /// Every sort: its API name and Chinese label.
    pub(crate) fn choices() -> [(&'static str, &'static str); 4] {
        Sort::ALL.map(|e| (e.1, e.2))
    }

    /// The API names, for a message.
    pub(crate) fn names() -> String {
        Sort::ALL.map(|e| format!("{}（{}）", e.1, e.2)).join("、")
    }
}

/// Where a page ends: its sort and the last hazard's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    sort: Sort,
    key: String,
    dossier: String,
    id: String,
}

impl Cursor {
    /// The cursor as the API hands it out.
    fn encode(&self) -> String {
        let text = format!("{}\n{}\n{}\n{}", self.sort.entry().1, self.key, self.dossier, self.id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    /// A cursor from the API; `None` if it is not one this server made.
    pub(crate) fn decode(text: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.split('\n');
        let cursor = Cursor {
            sort: Sort::parse(parts.next()?)?,
            key: parts.next()?.to_owned(),
            dossier: parts.next()?.to_owned(),
            id: parts.next()?.to_owned(),
        };
        parts.next().is_none().then_some(cursor)
    }

    /// Whether it resumes a list in `sort`.
    pub(crate) fn sorts(&self, sort: Sort) -> bool {
        self.sort == sort
    }
}

/// A photo a hazard references.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct PhotoRef {
    /// SHA-256 of the photo, its name at HQ.
    pub(crate) sha256: String,
    /// The file name on the device that took it.
    pub(crate) file_name: String,
}

/// A GPS point.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct Gps {
    pub(crate) lat: f64,
    pub(crate) lon: f64,
    /// `wgs84` or `gcj02`.
    pub(crate) crs: String,
}

/// One hazard as HQ holds it (merged from every device).
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct HazardView {
    /// The hazard's id (a ULID).
    pub(crate) id: String,
    pub(crate) dossier_id: String,
    pub(crate) campaign_id: String,
    /// 统一社会信用代码.
    pub(crate) enterprise_code: String,
    pub(crate) enterprise_name: Option<String>,
    pub(crate) title: String,
    pub(crate) description: String,
    /// `unsafe_condition`, …; `hazard_kind_label` in Chinese.
    pub(crate) hazard_kind: String,
    pub(crate) hazard_kind_label: String,
    /// GB 6441-1986 code; `accident_type_name` in Chinese.
    pub(crate) accident_type: String,
    pub(crate) accident_type_name: String,
    /// `general` or `major`; `level_label` in Chinese.
    pub(crate) level: String,
    pub(crate) level_label: String,
    pub(crate) criterion: Option<String>,
    pub(crate) location: String,
    pub(crate) gps: Option<Gps>,
    pub(crate) legal_basis: String,
    pub(crate) inspector: String,
    /// RFC 3339, UTC.
    pub(crate) found_at: String,
    pub(crate) checklist_item: Option<String>,
    pub(crate) deleted: bool,
    /// `open`, …, `closed`; `status_label` in Chinese.
    pub(crate) status: String,
    pub(crate) status_label: String,
    pub(crate) mode: Option<String>,
    pub(crate) deadline: Option<String>,
    pub(crate) owner: String,
    pub(crate) measures: String,
    pub(crate) rectified_by: Option<String>,
    pub(crate) rectified_at: Option<String>,
    pub(crate) verifier: Option<String>,
    pub(crate) verified_at: Option<String>,
    pub(crate) photos: Vec<PhotoRef>,
    pub(crate) photos_after: Vec<PhotoRef>,
}

/// One hazard with its rectification loop, step by step.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct HazardDetail {
    #[serde(flatten)]
    pub(crate) hazard: HazardView,
    /// The loop's steps in its order (`register::STEP_COLUMNS` as fields).
    pub(crate) steps: Vec<StepView>,
    /// Where steps two devices took at once disagree (the graver reading is
    /// shown until a step that saw both decides), in Chinese.
    pub(crate) disputes: Vec<String>,
    /// What HQ read from each of its photos (by SHA-256), once it has:
    /// copies at `/api/v1/photos/{sha}?size=thumb|screen`.
    pub(crate) photo_meta: std::collections::BTreeMap<String, crate::photos::PhotoMeta>,
    /// Every signed change that touched it, in causal order.
    pub(crate) history: Vec<HistoryEntry>,
}

/// One signed change of a hazard, from the document's change log.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct HistoryEntry {
    /// The change's hash.
    pub(crate) change: String,
    /// When, by the signing device's clock (RFC 3339, UTC).
    pub(crate) at: String,
    /// The device that signed it (its key, hex).
    pub(crate) device: Option<String>,
    /// The name HQ issued that device's credential to.
    pub(crate) author: Option<String>,
    /// For a change HQ's console made: the account of the person who made
    /// it (a decision), named in the signed change.
    pub(crate) account: Option<String>,
    /// Whether this change recorded the hazard.
    pub(crate) created: bool,
    /// The fields it wrote, by key (`level`, `steps`, `photos`, …).
    pub(crate) fields: Vec<String>,
    /// The same in Chinese, without repeats.
    pub(crate) labels: Vec<String>,
}

/// One rectification step, as its author's signed change recorded it.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct StepView {
    pub(crate) id: String,
    /// `plan`, `start`, `done`, `verify` or `reopen`; `kind_label` in Chinese.
    pub(crate) kind: String,
    pub(crate) kind_label: String,
    /// RFC 3339, UTC.
    pub(crate) at: String,
    /// The holder of the device that signed it, and their role.
    pub(crate) author: String,
    pub(crate) author_role: Option<String>,
    pub(crate) mode: Option<String>,
    pub(crate) deadline: Option<String>,
    pub(crate) owner: String,
    pub(crate) measures: String,
    pub(crate) interim_control: String,
    pub(crate) rectified_by: Option<String>,
    /// `pass` or `fail`.
    pub(crate) result: Option<String>,
    /// The verifier's opinion, or the reason for reopening.
    pub(crate) note: String,
    pub(crate) photos: Vec<PhotoRef>,
    /// False for a step that broke the loop's rules at its own point (only
    /// in a document no door let in): shown, but it changed nothing.
    pub(crate) counted: bool,
}

impl HazardDetail {
    fn of(hazard: HazardView, record: &sync_core::model::Hazard) -> Self {
        let lp = sync_core::rectification::Loop::of(&record.rectification);
        let steps = lp
            .history
            .iter()
            .map(|e| {
                let s = &e.step;
                StepView {
                    id: e.id.clone(),
                    kind: s.kind.as_str().to_owned(),
                    kind_label: s.kind.label().to_owned(),
                    at: s.at.clone(),
                    author: s.author.clone(),
                    author_role: s.author_role.clone(),
                    mode: s.mode.map(|m| m.as_str().to_owned()),
                    deadline: s.deadline.clone(),
                    owner: s.owner.clone(),
                    measures: s.measures.clone(),
                    interim_control: s.interim_control.clone(),
                    rectified_by: s.rectified_by.clone(),
                    result: s.result.map(|r| r.as_str().to_owned()),
                    note: s.note.clone(),
                    photos: s
                        .photos
                        .iter()
                        .map(|(sha256, file_name)| PhotoRef { sha256: sha256.clone(), file_name: file_name.clone() })
                        .collect(),
                    counted: e.counted,
                }
            })
            .collect();
        let disputes = lp.disputes.iter().map(ToString::to_string).collect();
        HazardDetail { hazard, steps, disputes, photo_meta: Default::default(), history: Vec::new() }
    }

    /// Every photo it names: before, after, and in its steps.
    fn photos(&self) -> Vec<String> {
        let named =
            self.hazard.photos.iter().chain(&self.hazard.photos_after).chain(self.steps.iter().flat_map(|s| &s.photos));
        let mut shas: Vec<String> = named.map(|p| p.sha256.clone()).collect();
        shas.sort();
        shas.dedup();
        shas
    }
}

/// A page of hazards.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct HazardPage {
    pub(crate) hazards: Vec<HazardView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub(crate) next: Option<String>,
}

const HAZARD_COLUMNS: &str = "h.id, h.dossier_id, h.campaign_id, h.enterprise_code, e.name, h.title, h.description,
    h.hazard_kind, h.accident_type, h.level, h.criterion, h.location, h.lat, h.lon, h.crs, h.legal_basis,
    h.inspector, h.found_at, h.checklist_item, h.deleted, h.status, h.mode, h.deadline, h.owner, h.measures,
    h.rectified_by, h.rectified_at, h.verifier, h.verified_at, h.photos, h.photos_after";

fn photos(json: &str) -> Vec<PhotoRef> {
    serde_json::from_str::<std::collections::BTreeMap<String, String>>(json)
        .unwrap_or_default()
        .into_iter()
        .map(|(sha256, file_name)| PhotoRef { sha256, file_name })
        .collect()
}

fn hazard_view(r: &Row<'_>) -> rusqlite::Result<HazardView> {
    let kind: String = r.get(7)?;
    let accident: String = r.get(8)?;
    let level: String = r.get(9)?;
    let status: String = r.get(20)?;
    let (lat, lon, crs): (Option<f64>, Option<f64>, Option<String>) = (r.get(12)?, r.get(13)?, r.get(14)?);
    let accident_type_name =
        AccidentType { code_system: CodeSystem::Gb6441_1986, code: accident.clone() }.name().to_owned();
    Ok(HazardView {
        id: r.get(0)?,
        dossier_id: r.get(1)?,
        campaign_id: r.get(2)?,
        enterprise_code: r.get(3)?,
        enterprise_name: r.get(4)?,
        title: r.get(5)?,
        description: r.get(6)?,
        hazard_kind_label: HazardKind::parse(&kind).map_or(String::new(), |k| k.label().to_owned()),
        hazard_kind: kind,
        accident_type: accident,
        accident_type_name,
        level_label: HazardLevel::parse(&level).map_or(String::new(), |l| l.label().to_owned()),
        level,
        criterion: r.get(10)?,
        location: r.get(11)?,
        gps: match (lat, lon, crs) {
            (Some(lat), Some(lon), Some(crs)) => Some(Gps { lat, lon, crs }),
            _ => None,
        },
        legal_basis: r.get(15)?,
        inspector: r.get(16)?,
        found_at: r.get(17)?,
        checklist_item: r.get(18)?,
        deleted: r.get(19)?,
        status_label: RectificationStatus::parse(&status).map_or(String::new(), |s| s.label().to_owned()),
        status,
        mode: r.get::<_, Option<String>>(21)?.filter(|m| RectificationMode::parse(m).is_some()),
        deadline: r.get(22)?,
        owner: r.get(23)?,
        measures: r.get(24)?,
        rectified_by: r.get(25)?,
        rectified_at: r.get(26)?,
        verifier: r.get(27)?,
        verified_at: r.get(28)?,
        photos: photos(&r.get::<_, String>(29)?),
        photos_after: photos(&r.get::<_, String>(30)?),
    })
}

/// Hazards matching `filter`, the latest found first, a page at a time.
pub(crate) fn hazards(conn: &Connection, filter: &HazardFilter) -> Result<HazardPage> {
    let mut clauses: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut add = |clause: &'static str, value: Option<String>| {
        if let Some(value) = value {
            clauses.push(clause);
            values.push(Value::Text(value));
        }
    };
    add("h.campaign_id = ?", filter.campaign.clone());
    add("h.enterprise_code = ?", filter.enterprise.clone());
    add("h.level = ?", filter.level.map(|l| l.as_str().to_owned()));
    add("h.status = ?", filter.status.map(|s| s.as_str().to_owned()));
    add("h.accident_type = ?", filter.accident_type.clone());
    add("h.inspector = ?", filter.inspector.clone());
    add("h.found_on >= ?", filter.from.clone());
    add("h.found_on <= ?", filter.to.clone());
    if let Some(text) = &filter.text {
        let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let pattern = Value::Text(format!("%{escaped}%"));
        clauses
            .push("(h.title LIKE ? ESCAPE '\\' OR h.description LIKE ? ESCAPE '\\' OR h.location LIKE ? ESCAPE '\\')");
        values.extend([pattern.clone(), pattern.clone(), pattern]);
    }
    if !filter.include_deleted {
        clauses.push("NOT h.deleted");
    }
    let (_, _, _, key, descending) = filter.sort.entry();
    let (before, order) = if descending { ("<", "DESC") } else { (">", "ASC") };
    let after_clause = format!("({key}, h.dossier_id, h.id) {before} (?, ?, ?)");
    if let Some(after) = &filter.after {
        clauses.push(&after_clause);
        values.extend([&after.key, &after.dossier, &after.id].map(|v| Value::Text(v.clone())));
    }
    let sql = format!(
        "SELECT {HAZARD_COLUMNS}, {key} FROM hazards h
         LEFT JOIN enterprises e ON e.campaign_id = h.campaign_id AND e.code = h.enterprise_code
         {} ORDER BY {key} {order}, h.dossier_id {order}, h.id {order} LIMIT {}",
        if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) },
        u64::from(filter.limit) + 1
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(params_from_iter(values), |r| Ok((hazard_view(r)?, r.get::<_, String>(31)?)))?;
    let mut hazards = rows.collect::<Result<Vec<_>, _>>()?;
    let next = (hazards.len() > filter.limit as usize).then(|| {
        hazards.truncate(filter.limit as usize);
        hazards.last().map(|(h, key)| {
            Cursor { sort: filter.sort, key: key.clone(), dossier: h.dossier_id.clone(), id: h.id.clone() }.encode()
        })
    });
    let hazards = hazards.into_iter().map(|(h, _)| h).collect();
    Ok(HazardPage { hazards, next: next.flatten() })
}

/// One hazard by its id, with its loop.
pub(crate) fn hazard(conn: &Connection, id: &str) -> Result<Option<HazardDetail>> {
    let sql = format!(
        "SELECT {HAZARD_COLUMNS}, h.record FROM hazards h
         LEFT JOIN enterprises e ON e.campaign_id = h.campaign_id AND e.code = h.enterprise_code
         WHERE h.id = ?1 ORDER BY h.dossier_id LIMIT 1"
    );
    let found = conn.query_row(&sql, [id], |r| Ok((hazard_view(r)?, r.get::<_, String>(31)?))).optional()?;
    let Some((view, record)) = found else { return Ok(None) };
    let history = history(conn, &view.dossier_id, id)?;
    let detail = HazardDetail::of(view, &serde_json::from_str(&record)?);
    let photo_meta = photo_meta(conn, &detail.photos())?;
    Ok(Some(HazardDetail { history, photo_meta, ..detail }))
}

/// What HQ read from each of `photos` that it has read, by SHA-256.
fn photo_meta(conn: &Connection, photos: &[String]) -> Result<std::collections::BTreeMap<String, PhotoMeta>> {
    let mut statement = conn.prepare_cached(
        "SELECT decodable, format, width, height, taken_at, lat, lon, note FROM photo_meta WHERE sha256 = ?1",
    )?;
    let mut out = std::collections::BTreeMap::new();
    for sha in photos {
        let meta = statement
            .query_row([sha], |r| {
                Ok(PhotoMeta {
                    decodable: r.get(0)?,
                    format: r.get(1)?,
                    width: r.get(2)?,
                    height: r.get(3)?,
                    taken_at: r.get(4)?,
                    lat: r.get(5)?,
                    lon: r.get(6)?,
                    note: r.get(7)?,
                })
            })
            .optional()?;
        out.extend(meta.map(|meta| (sha.clone(), meta)));
    }
    Ok(out)
}

/// The signed changes of hazard `id` of dossier `dossier`, in the order
/// they were projected (causal).
fn history(conn: &Connection, dossier: &str, id: &str) -> Result<Vec<HistoryEntry>> {
    let mut statement = conn.prepare_cached(
        "SELECT change, at_ms, device, author, account, created, fields FROM history
         WHERE dossier_id = ?1 AND hazard_id = ?2 ORDER BY rowid",
    )?;
    let rows = statement.query_map([dossier, id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get::<_, String>(6)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (change, at_ms, device, author, account, created, fields) = row?;
        let fields: Vec<String> = serde_json::from_str(&fields)?;
        let mut labels: Vec<String> = Vec::new();
        for label in fields.iter().map(|f| sync_core::doc::conflicts::label(f)) {
            if !labels.iter().any(|l| l == label) {
                labels.push(label.to_owned());
            }
        }
        let at = sync_core::doc::rfc3339(at_ms);
        out.push(HistoryEntry { change, at, device, author, account, created, fields, labels });
    }
    Ok(out)
}

/// One of the four 四不放过 items of a review.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct ReviewItemView {
    /// `cause_identified`, …; `label` in Chinese.
    pub(crate) kind: String,
    pub(crate) label: String,
    /// `pass`, `fail` or `not_applicable`; absent until judged.
    pub(crate) verdict: Option<String>,
    pub(crate) verdict_label: Option<String>,
    pub(crate) evidence: String,
    pub(crate) note: String,
}

/// A 四不放过 review of a past accident at an enterprise.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct ReviewView {
    pub(crate) id: String,
    pub(crate) dossier_id: String,
    pub(crate) enterprise_code: String,
    pub(crate) enterprise_name: Option<String>,
    /// YYYY-MM-DD.
    pub(crate) accident_date: String,
    pub(crate) accident_summary: String,
    pub(crate) report_ref: String,
    /// The four items, in their order.
    pub(crate) items: Vec<ReviewItemView>,
    /// Items judged 不符合.
    pub(crate) failed: usize,
    /// Items not judged yet.
    pub(crate) unjudged: usize,
}

/// One enterprise's 四不放过 reviews at a glance.
#[derive(Debug)]
pub(crate) struct ReviewSummary {
    pub(crate) code: String,
    pub(crate) name: String,
    /// Its industry, in Chinese.
    pub(crate) domain: &'static str,
    /// A coal or metal/non-metal mine.
    pub(crate) mine: bool,
    /// Accidents reviewed.
    pub(crate) accidents: usize,
    /// Of them, those with an item judged 不符合.
    pub(crate) failing: usize,
    /// Items judged 不符合, and not judged yet, over all its reviews.
    pub(crate) failed: usize,
    pub(crate) unjudged: usize,
}

/// Every enterprise of `campaign` with its reviews summed up (`reviews`, as
/// [`reviews`] reads them): mines first, then by code.
pub(crate) fn review_summaries(
    conn: &Connection,
    campaign: &str,
    reviews: &[ReviewView],
) -> Result<Vec<ReviewSummary>> {
    let mut statement =
        conn.prepare_cached("SELECT code, name, domain FROM enterprises WHERE campaign_id = ?1 ORDER BY code")?;
    let rows = statement.query_map([campaign], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (code, name, domain) = row?;
        let domain = Domain::parse(&domain).unwrap_or(Domain::Other);
        let own: Vec<&ReviewView> = reviews.iter().filter(|r| r.enterprise_code == code).collect();
        out.push(ReviewSummary {
            code,
            name,
            domain: domain.label(),
            mine: matches!(domain, Domain::CoalMine | Domain::MetalNonmetalMine),
            accidents: own.len(),
            failing: own.iter().filter(|r| r.failed > 0).count(),
            failed: own.iter().map(|r| r.failed).sum(),
            unjudged: own.iter().map(|r| r.unjudged).sum(),
        });
    }
    out.sort_by_key(|s| !s.mine);
    Ok(out)
}

/// A campaign's 四不放过 reviews, by enterprise, then accident date. `None`
/// if HQ holds no such campaign.
pub(crate) fn reviews(conn: &Connection, campaign: &str) -> Result<Option<Vec<ReviewView>>> {
    if !campaign_held(conn, campaign)? {
        return Ok(None);
    }
    let mut statement = conn.prepare(
        "SELECT r.id, r.dossier_id, r.enterprise_code, e.name, r.accident_date, r.accident_summary, r.report_ref,
                r.items
         FROM reviews r LEFT JOIN enterprises e ON e.campaign_id = r.campaign_id AND e.code = r.enterprise_code
         WHERE r.campaign_id = ?1 ORDER BY r.enterprise_code, r.accident_date, r.id",
    )?;
    let mut rows = statement.query([campaign])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let items: ReviewItems = serde_json::from_str(&r.get::<_, String>(7)?)?;
        let items: Vec<ReviewItemView> = ReviewItemKind::ALL
            .iter()
            .map(|kind| {
                let item = items.item(*kind);
                ReviewItemView {
                    kind: kind.as_str().to_owned(),
                    label: kind.label().to_owned(),
                    verdict: item.verdict.map(|v| v.as_str().to_owned()),
                    verdict_label: item.verdict.map(|v| v.label().to_owned()),
                    evidence: item.evidence.clone(),
                    note: item.note.clone(),
                }
            })
            .collect();
        out.push(ReviewView {
            id: r.get(0)?,
            dossier_id: r.get(1)?,
            enterprise_code: r.get(2)?,
            enterprise_name: r.get(3)?,
            accident_date: r.get(4)?,
            accident_summary: r.get(5)?,
            report_ref: r.get(6)?,
            failed: items.iter().filter(|i| i.verdict.as_deref() == Some(Verdict::Fail.as_str())).count(),
            unjudged: items.iter().filter(|i| i.verdict.is_none()).count(),
            items,
        });
    }
    Ok(Some(out))
}

/// A document-compliance check (证照资料检查) at an enterprise.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct DocumentCheckView {
    pub(crate) id: String,
    pub(crate) dossier_id: String,
    pub(crate) enterprise_code: String,
    pub(crate) enterprise_name: Option<String>,
    /// e.g. 安全生产许可证.
    pub(crate) document_type: String,
    pub(crate) name: String,
    /// `compliant`, `non_compliant`, `missing` or `expired`; `result_label`
    /// in Chinese.
    pub(crate) result: String,
    pub(crate) result_label: String,
    /// YYYY-MM-DD, if it has one.
    pub(crate) expires_on: Option<String>,
    pub(crate) note: String,
    /// Anything but compliant: a gap for the briefing and the notice.
    pub(crate) gap: bool,
}

/// A campaign's document checks, by enterprise, then document type. `None`
/// if HQ holds no such campaign.
pub(crate) fn document_checks(conn: &Connection, campaign: &str) -> Result<Option<Vec<DocumentCheckView>>> {
    if !campaign_held(conn, campaign)? {
        return Ok(None);
    }
    let mut statement = conn.prepare(
        "SELECT c.id, c.dossier_id, c.enterprise_code, e.name, c.document_type, c.name, c.result, c.expires_on, c.note
         FROM document_checks c LEFT JOIN enterprises e ON e.campaign_id = c.campaign_id AND e.code = c.enterprise_code
         WHERE c.campaign_id = ?1 ORDER BY c.enterprise_code, c.document_type, c.id",
    )?;
    let checks = statement.query_map([campaign], |r| {
        let result: String = r.get(6)?;
        let parsed = DocumentResult::parse(&result);
        Ok(DocumentCheckView {
            id: r.get(0)?,
            dossier_id: r.get(1)?,
            enterprise_code: r.get(2)?,
            enterprise_name: r.get(3)?,
            document_type: r.get(4)?,
            name: r.get(5)?,
            result_label: parsed.map_or(String::new(), |p| p.label().to_owned()),
            gap: parsed != Some(DocumentResult::Compliant),
            result,
            expires_on: r.get(7)?,
            note: r.get(8)?,
        })
    })?;
    Ok(Some(checks.collect::<Result<_, _>>()?))
}

/// Something in a dossier that waits for a person to decide.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct ConflictView {
    pub(crate) dossier_id: String,
    pub(crate) enterprise_code: String,
    pub(crate) enterprise_name: Option<String>,
    /// `field`: a field holding values two devices wrote at once (decided
    /// by writing one of them); `rule`: a hazard whose merged state breaks
    /// a rule, or whose rectification steps disagree.
    pub(crate) kind: String,
    /// The record (hazard, review, check, visit) it belongs to.
    pub(crate) record: String,
    /// The hazard's title, when the record is a hazard.
    pub(crate) hazard_title: Option<String>,
    /// The field's path in the dossier, e.g. `hazards/<id>/level` (`field` only).
    pub(crate) path: Option<String>,
    pub(crate) field: Option<String>,
    /// The field's Chinese name.
    pub(crate) label: String,
    /// A safety-critical field (level, clause, loop, verdicts); rules always are.
    pub(crate) critical: bool,
    /// The competing values as stored (`field` only).
    pub(crate) values: Vec<String>,
    /// Who wrote each value, by index of `values`: the names on their
    /// devices' credentials.
    pub(crate) writers: Vec<Vec<String>>,
    /// What waits, in Chinese.
    pub(crate) message: String,
}

/// A campaign's conflicts needing review, safety-critical first. `None` if
/// HQ holds no such campaign.
pub(crate) fn conflicts(conn: &Connection, campaign: &str) -> Result<Option<Vec<ConflictView>>> {
    if !campaign_held(conn, campaign)? {
        return Ok(None);
    }
    let mut statement = conn.prepare(
        "SELECT c.dossier_id, c.enterprise_code, e.name, c.kind, c.record, c.path, c.field, c.label, c.critical,
                c.vals, c.writers, c.message, h.title
         FROM conflicts c LEFT JOIN enterprises e ON e.campaign_id = c.campaign_id AND e.code = c.enterprise_code
         LEFT JOIN hazards h ON h.dossier_id = c.dossier_id AND h.id = c.record
         WHERE c.campaign_id = ?1 ORDER BY c.critical DESC, c.enterprise_code, c.n",
    )?;
    let conflicts = statement.query_map([campaign], |r| {
        Ok(ConflictView {
            dossier_id: r.get(0)?,
            enterprise_code: r.get(1)?,
            enterprise_name: r.get(2)?,
            kind: r.get(3)?,
            record: r.get(4)?,
            hazard_title: r.get(12)?,
            path: r.get(5)?,
            field: r.get(6)?,
            label: r.get(7)?,
            critical: r.get(8)?,
            values: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
            writers: serde_json::from_str(&r.get::<_, String>(10)?).unwrap_or_default(),
            message: r.get(11)?,
        })
    })?;
    Ok(Some(conflicts.collect::<Result<_, _>>()?))
}

/// The conflicts open on `campaign`'s hazards, by hazard, as the register
/// reads them.
fn open_conflicts(conn: &Connection, campaign: &str) -> Result<BTreeMap<String, Vec<Conflict>>> {
    let mut statement = conn.prepare(
        "SELECT record, path, field, critical, vals FROM conflicts
         WHERE campaign_id = ?1 AND kind = 'field' ORDER BY dossier_id, n",
    )?;
    let mut open: BTreeMap<String, Vec<Conflict>> = BTreeMap::new();
    let mut rows = statement.query([campaign])?;
    while let Some(r) = rows.next()? {
        let (record, path, field): (String, Option<String>, Option<String>) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let field = field.unwrap_or_default();
        let conflict = Conflict {
            path: path.unwrap_or_default(),
            record: record.clone(),
            label: sync_core::doc::conflicts::label(&field),
            field,
            critical: r.get(3)?,
            values: serde_json::from_str(&r.get::<_, String>(4)?)?,
            writers: Vec::new(),
        };
        open.entry(record).or_default().push(conflict);
    }
    Ok(open)
}

fn campaign_held(conn: &Connection, campaign: &str) -> Result<bool> {
    Ok(conn.query_row("SELECT 1 FROM campaigns WHERE id = ?1", [campaign], |_| Ok(())).optional()?.is_some())
}

/// A campaign's hazard register, by enterprise: what HQ's exports write.
#[derive(Debug)]
pub(crate) struct Register {
    /// The campaign's name.
    pub(crate) name: String,
    /// Per enterprise (by code): its name and its rows, numbered from 1
    /// across the whole register.
    pub(crate) enterprises: Vec<(String, Vec<Vec<String>>)>,
    /// The photos of each row, in row order, where the register's cells
    /// say they are.
    pub(crate) photos: Vec<Vec<sync_core::register::PhotoFile>>,
    /// The rectification steps of those hazards (`sync_core::register::
    /// STEP_COLUMNS`), numbered from 1, in the rows' order.
    pub(crate) steps: Vec<Vec<String>>,
}

/// `campaign`'s register (`sync_core::register`): deleted findings left
/// out, by enterprise code, then when found. `None` if HQ holds no such
/// campaign.
pub(crate) fn register(conn: &Connection, campaign: &str) -> Result<Option<Register>> {
    let found: Option<(String, String, String)> = conn
        .query_row("SELECT name, kind, time_zone FROM campaigns WHERE id = ?1", [campaign], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((name, kind, zone)) = found else { return Ok(None) };
    let zone = Zone::named(&zone).unwrap_or_default();
    let kind = sync_core::model::CampaignKind::parse(&kind)
        .ok_or_else(|| anyhow::anyhow!("读模型中的检查活动类型无效：{kind}"))?;
    let open = open_conflicts(conn, campaign)?;
    let mut statement = conn.prepare(
        "SELECT h.enterprise_code, COALESCE(e.name, h.enterprise_code), COALESCE(e.project, ''), h.id, h.record
         FROM hazards h
         LEFT JOIN enterprises e ON e.campaign_id = h.campaign_id AND e.code = h.enterprise_code
         WHERE h.campaign_id = ?1 AND NOT h.deleted
         ORDER BY h.enterprise_code, h.found_at, h.id",
    )?;
    let mut rows = statement.query([campaign])?;
    let mut enterprises: Vec<(String, String, Vec<Vec<String>>)> = Vec::new();
    let mut n = 0;
    let mut photos = Vec::new();
    let mut steps: Vec<Vec<String>> = Vec::new();
    while let Some(r) = rows.next()? {
        let (code, enterprise, project): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let (id, record): (String, String) = (r.get(3)?, r.get(4)?);
        let hazard: sync_core::model::Hazard = serde_json::from_str(&record)?;
        photos.push(sync_core::register::photo_files(&id, &hazard));
        if enterprises.last().is_none_or(|(c, _, _)| *c != code) {
            enterprises.push((code.clone(), enterprise.clone(), Vec::new()));
        }
        let place = sync_core::register::Place { enterprise, code, project, kind, zone: zone.clone() };
        n += 1;
        let mut row = vec![n.to_string()];
        row.extend(sync_core::register::row(&place, &id, &hazard, open.get(&id).map_or(&[], Vec::as_slice)));
        for step in sync_core::register::step_rows(&place, &id, &hazard) {
            steps.push(std::iter::once((steps.len() + 1).to_string()).chain(step).collect());
        }
        if let Some((_, _, sheet)) = enterprises.last_mut() {
            sheet.push(row);
        }
    }
    let enterprises = enterprises.into_iter().map(|(_, name, rows)| (name, rows)).collect();
    Ok(Some(Register { name, enterprises, photos, steps }))
}
