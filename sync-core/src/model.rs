//! The typed view of every document kind: plain serde structs whose JSON is
//! the export format and is validated against `schemas/*.schema.json`.
//!
//! The Automerge documents have exactly this shape (maps keyed by ids, text
//! fields as Automerge text); [`crate::doc`] reads and writes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codes::AccidentType;
use crate::ids::{CreditCode, DocId};

/// Current version of the document layout, stored in every document.
pub const SCHEMA_VERSION: u64 = 1;

/// A date field's value (`YYYY-MM-DD`, a day of the calendar), if it is one.
pub fn calendar_date(date: &str) -> Option<jiff::civil::Date> {
    date.parse().ok().filter(|_| date.len() == 10)
}

macro_rules! labelled_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $id:literal / $zh:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $id)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The identifier stored in documents.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $id,)+ }
            }

            /// The Chinese label shown to users.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $zh,)+ }
            }

            /// Parses an identifier or a Chinese label.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s || v.label() == s)
            }
        }
    };
}

labelled_enum! {
    /// What kind of campaign this is.
    CampaignKind {
        /// Two-day joint inspection of construction sites with the station.
        ConstructionJointInspection = "construction_joint_inspection" / "建筑施工联合检查",
        /// Survey of a mine enterprise.
        MineSurvey = "mine_survey" / "矿山企业调研",
        /// An enterprise's self-inspection.
        SelfInspection = "self_inspection" / "企业自查",
    }
}

labelled_enum! {
    /// Hazard kind (隐患类别).
    HazardKind {
        /// 物的不安全状态.
        UnsafeCondition = "unsafe_condition" / "物的不安全状态",
        /// 人的不安全行为.
        UnsafeAct = "unsafe_act" / "人的不安全行为",
        /// 管理缺陷.
        ManagementDeficiency = "management_deficiency" / "管理缺陷",
    }
}

labelled_enum! {
    /// Hazard level (隐患等级).
    HazardLevel {
        /// 一般事故隐患.
        General = "general" / "一般",
        /// 重大事故隐患: requires a criterion clause.
        Major = "major" / "重大",
    }
}

labelled_enum! {
    /// Rectification mode (整改方式).
    RectificationMode {
        /// 立即整改.
        Immediate = "immediate" / "立即整改",
        /// 限期整改: has a deadline.
        Deadline = "deadline" / "限期整改",
    }
}

labelled_enum! {
    /// Rectification status (整改状态).
    RectificationStatus {
        /// 未整改.
        Open = "open" / "未整改",
        /// 整改中.
        Rectifying = "rectifying" / "整改中",
        /// 待复查.
        AwaitingVerification = "awaiting_verification" / "待复查",
        /// 已销号.
        Closed = "closed" / "已销号",
    }
}

impl Default for RectificationStatus {
    /// Every hazard starts open.
    fn default() -> Self {
        RectificationStatus::Open
    }
}

labelled_enum! {
    /// A 四不放过 verdict.
    Verdict {
        /// 符合.
        Pass = "pass" / "符合",
        /// 不符合.
        Fail = "fail" / "不符合",
        /// 不适用.
        NotApplicable = "not_applicable" / "不适用",
    }
}

labelled_enum! {
    /// The four items of 四不放过.
    ReviewItemKind {
        /// 事故原因未查清不放过.
        CauseIdentified = "cause_identified" / "事故原因未查清不放过",
        /// 责任人员未处理不放过.
        ResponsibleHandled = "responsible_handled" / "责任人员未处理不放过",
        /// 整改措施未落实不放过.
        MeasuresImplemented = "measures_implemented" / "整改措施未落实不放过",
        /// 有关人员未受到教育不放过.
        PersonnelEducated = "personnel_educated" / "有关人员未受到教育不放过",
    }
}

labelled_enum! {
    /// Result of a document-compliance check.
    DocumentResult {
        /// 合规.
        Compliant = "compliant" / "合规",
        /// 不合规.
        NonCompliant = "non_compliant" / "不合规",
        /// 缺失.
        Missing = "missing" / "缺失",
        /// 过期.
        Expired = "expired" / "过期",
    }
}

labelled_enum! {
    /// Coordinate reference system of a GPS point.
    Crs {
        /// WGS-84 (raw GNSS).
        Wgs84 = "wgs84" / "WGS-84",
        /// GCJ-02 (Chinese map apps).
        Gcj02 = "gcj02" / "GCJ-02",
    }
}

labelled_enum! {
    /// The industry a checklist or enterprise belongs to.
    Domain {
        /// 建筑施工.
        Construction = "construction" / "建筑施工",
        /// 煤矿.
        CoalMine = "coal_mine" / "煤矿",
        /// 金属非金属矿山.
        MetalNonmetalMine = "metal_nonmetal_mine" / "金属非金属矿山",
        /// 其他.
        Other = "other" / "其他",
    }
}

/// A campaign (检查活动).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    /// Always `"campaign"`.
    #[serde(default)]
    pub kind: String,
    /// Layout version.
    pub schema_version: u64,
    /// Document id.
    pub id: DocId,
    /// Name, e.g. 2026年石嘴山市建筑施工工伤风险联合检查.
    #[serde(default)]
    pub name: String,
    /// Kind of campaign.
    pub campaign_kind: CampaignKind,
    /// First inspection day (YYYY-MM-DD).
    #[serde(default)]
    pub start_date: String,
    /// Last inspection day (YYYY-MM-DD).
    #[serde(default)]
    pub end_date: String,
    /// End + 3 days: the briefing meeting must be held by then. Derived.
    #[serde(default)]
    pub briefing_deadline: String,
    /// The time zone dates people read are shown in (an IANA name); empty:
    /// [`crate::zone::DEFAULT`], Asia/Shanghai.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time_zone: String,
    /// Team members by member id.
    pub team: BTreeMap<String, TeamMember>,
    /// Inspected enterprises by credit code.
    pub enterprises: BTreeMap<String, Enterprise>,
    /// Schedule entries by id.
    pub schedule: BTreeMap<String, ScheduleEntry>,
    /// Checklists in use: checklist id → version.
    pub checklists: BTreeMap<String, u64>,
}

/// A team member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TeamMember {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Role, e.g. 组长 / 检查员 / 安监站 / 专家.
    #[serde(default)]
    pub role: String,
    /// Organisation.
    #[serde(default)]
    pub organization: String,
}

/// An inspected enterprise (被检查单位).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Enterprise {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// 统一社会信用代码.
    pub unified_social_credit_code: CreditCode,
    /// Industry.
    pub domain: Domain,
    /// Project (工程项目) for construction sites.
    #[serde(default)]
    pub project: String,
    /// Address.
    #[serde(default)]
    pub address: String,
    /// The dossier of this enterprise in this campaign.
    pub dossier_id: DocId,
}

/// One visit in the schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleEntry {
    /// Day (YYYY-MM-DD).
    #[serde(default)]
    pub date: String,
    /// Enterprise credit code.
    #[serde(default)]
    pub enterprise: String,
    /// Note.
    #[serde(default)]
    pub note: String,
}

/// An enterprise dossier (一企一档) for one campaign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dossier {
    /// Always `"enterprise_dossier"`.
    #[serde(default)]
    pub kind: String,
    /// Layout version.
    pub schema_version: u64,
    /// Document id.
    pub id: DocId,
    /// The campaign.
    pub campaign_id: DocId,
    /// The enterprise's credit code.
    #[serde(default)]
    pub enterprise: String,
    /// Site visits by id.
    pub site_visits: BTreeMap<String, SiteVisit>,
    /// Hazards (findings) by id.
    pub hazards: BTreeMap<String, Hazard>,
    /// 四不放过 reviews of past accidents by id.
    pub accident_reviews: BTreeMap<String, AccidentReview>,
    /// Document-compliance checks by id.
    pub document_checks: BTreeMap<String, DocumentCheck>,
}

/// A site visit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteVisit {
    /// Day (YYYY-MM-DD).
    #[serde(default)]
    pub date: String,
    /// Inspectors present.
    #[serde(default)]
    pub inspectors: String,
    /// Note.
    #[serde(default)]
    pub note: String,
}

/// A hazard (事故隐患).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hazard {
    /// Short title.
    #[serde(default)]
    pub title: String,
    /// Description. Concurrent edits are listed for review.
    #[serde(default)]
    pub description: String,
    /// Kind.
    pub hazard_kind: HazardKind,
    /// Accident type with its code system.
    pub accident_type: AccidentType,
    /// Level. Concurrent writes are conflicts needing review.
    pub level: HazardLevel,
    /// Criterion clause id; required when the level is major.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major_hazard_criterion: Option<String>,
    /// Where.
    pub location: Location,
    /// The sub-contractor (分包单位) whose work it is in, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subcontractor: String,
    /// Legal basis (依据条款).
    #[serde(default)]
    pub legal_basis: String,
    /// Before-photos: SHA-256 (hex) → original file name. The bytes, and so
    /// the size, live in the device's blob store under the hash; one value
    /// per photo keeps a 2,000-finding dossier quick to load.
    pub photos: BTreeMap<String, String>,
    /// The inspector who found it.
    #[serde(default)]
    pub inspector: String,
    /// When it was found (RFC 3339, UTC).
    #[serde(default)]
    pub found_at: String,
    /// The day it was found (YYYY-MM-DD) in its campaign's time zone,
    /// recorded with it by the device that found it: the day a deadline may
    /// not precede, read alike at every door without the campaign. Empty in
    /// records made before it was kept: the day in China Standard Time.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub found_on: String,
    /// The checklist item it was raised from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checklist_item: Option<String>,
    /// Soft delete: deleted findings stay in the document for audit and so
    /// that a concurrent edit is never lost.
    #[serde(default)]
    pub deleted: bool,
    /// The rectification sub-record.
    pub rectification: Rectification,
}

/// Where a hazard is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Free text, e.g. 3号楼东侧外架第12层.
    #[serde(default)]
    pub text: String,
    /// GPS point, if taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gps: Option<GeoPoint>,
}

/// A GPS point with its coordinate reference system.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
    /// WGS-84 or GCJ-02.
    pub crs: Crs,
}

/// The rectification sub-record of a hazard (整改). The default is the
/// record of a new hazard: open, nothing planned.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rectification {
    /// Immediate or by deadline; unset until planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RectificationMode>,
    /// Deadline (YYYY-MM-DD) for mode `deadline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// Responsible person (整改责任人).
    #[serde(default)]
    pub owner: String,
    /// Measures.
    #[serde(default)]
    pub measures: String,
    /// Interim controls (临时管控措施).
    #[serde(default)]
    pub interim_control: String,
    /// Status. Concurrent writes are conflicts needing review.
    pub status: RectificationStatus,
    /// Who carried out the rectification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rectified_by: Option<String>,
    /// When the rectification was reported done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rectified_at: Option<String>,
    /// Verifier (复查人); must differ from the rectifier. Sign-off field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier: Option<String>,
    /// When it was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    /// Verification opinion.
    #[serde(default)]
    pub verification_note: String,
    /// After-photos: SHA-256 (hex) → original file name.
    pub photos_after: BTreeMap<String, String>,
    /// The loop as signed steps, keyed by their ids (ULIDs), appended and
    /// never rewritten. The fields above are what hazards recorded before
    /// the steps: read as an implicit first step
    /// ([`crate::rectification`]), no longer written.
    #[serde(default)]
    pub steps: BTreeMap<String, Step>,
}

labelled_enum! {
    /// What a step of the rectification loop records.
    StepKind {
        /// 下达整改要求: mode, deadline, owner, measures.
        Plan = "plan" / "下达整改要求",
        /// 开始整改.
        Start = "start" / "开始整改",
        /// 整改完成: by whom, photos after.
        Done = "done" / "整改完成",
        /// 复查: pass or fail, by the step's author.
        Verify = "verify" / "复查",
        /// 重新打开: a closed hazard back to rectification, with a reason.
        Reopen = "reopen" / "重新打开",
    }
}

labelled_enum! {
    /// The verdict of a verification (复查结论).
    VerifyResult {
        /// 通过: the hazard is closed (销号).
        Pass = "pass" / "通过",
        /// 不通过: back to rectification.
        Fail = "fail" / "不通过",
    }
}

/// One step of a hazard's rectification loop (整改闭环). The fields a kind
/// does not use stay empty. Who recorded it is the holder of the device that
/// signed the change carrying it (`author`, `author_role`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// What it records.
    pub kind: StepKind,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The holder of the signing device's credential.
    pub author: String,
    /// That credential's role (`inspector`, `enterprise`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_role: Option<String>,
    /// The steps its author saw last (the loop's heads then): the order of
    /// the loop, carried in the data so every replica derives the same state.
    /// Stored as one string of ids separated by spaces (no list object to
    /// load per step).
    #[serde(default, with = "space_separated", skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Plan: immediate or by deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RectificationMode>,
    /// Plan: the deadline (YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// Plan: the responsible person (整改责任人).
    #[serde(default)]
    pub owner: String,
    /// Plan: the unit responsible (整改责任单位), beside the person.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub responsible_unit: String,
    /// Plan: the measures.
    #[serde(default)]
    pub measures: String,
    /// Plan: interim controls (临时管控措施).
    #[serde(default)]
    pub interim_control: String,
    /// Done: who carried out the rectification (often the enterprise's
    /// person, who has no device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rectified_by: Option<String>,
    /// Verify: the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<VerifyResult>,
    /// Verify: the opinion; reopen: the reason.
    #[serde(default)]
    pub note: String,
    /// Done: photos after; verify: photos of the verification. Absent when
    /// none (a step is never written again, so no map is kept for later).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub photos: BTreeMap<String, String>,
}

/// A list of ids stored as one string, separated by spaces.
mod space_separated {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(ids: &[String], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&ids.join(" "))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(String::deserialize(d)?.split_whitespace().map(str::to_owned).collect())
    }
}

impl Step {
    /// A step of `kind` with every field empty: who, when and after what
    /// are filled in when it is recorded ([`crate::doc::dossier::add_step`]).
    pub fn new(kind: StepKind) -> Step {
        Step {
            kind,
            at: String::new(),
            author: String::new(),
            author_role: None,
            after: Vec::new(),
            mode: None,
            deadline: None,
            owner: String::new(),
            responsible_unit: String::new(),
            measures: String::new(),
            interim_control: String::new(),
            rectified_by: None,
            result: None,
            note: String::new(),
            photos: BTreeMap::new(),
        }
    }
}

/// A 四不放过 review of one past accident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccidentReview {
    /// When the accident happened (YYYY-MM-DD).
    #[serde(default)]
    pub accident_date: String,
    /// What happened.
    #[serde(default)]
    pub accident_summary: String,
    /// Investigation report / decision reference.
    #[serde(default)]
    pub report_ref: String,
    /// The four items.
    pub items: ReviewItems,
}

/// The four 四不放过 items. The default is four items not yet judged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReviewItems {
    /// 事故原因未查清不放过.
    pub cause_identified: ReviewItem,
    /// 责任人员未处理不放过.
    pub responsible_handled: ReviewItem,
    /// 整改措施未落实不放过.
    pub measures_implemented: ReviewItem,
    /// 有关人员未受到教育不放过.
    pub personnel_educated: ReviewItem,
}

impl ReviewItems {
    /// The item of a kind.
    pub fn item(&self, kind: ReviewItemKind) -> &ReviewItem {
        match kind {
            ReviewItemKind::CauseIdentified => &self.cause_identified,
            ReviewItemKind::ResponsibleHandled => &self.responsible_handled,
            ReviewItemKind::MeasuresImplemented => &self.measures_implemented,
            ReviewItemKind::PersonnelEducated => &self.personnel_educated,
        }
    }
}

/// One 四不放过 item.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    /// Verdict; unset until judged. Concurrent writes are conflicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Evidence seen (documents, photo hashes).
    #[serde(default)]
    pub evidence: String,
    /// Note.
    #[serde(default)]
    pub note: String,
}

/// A document-compliance check (证照资料检查).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocumentCheck {
    /// Kind of document, e.g. 安全生产许可证.
    #[serde(default)]
    pub document_type: String,
    /// Its name or number.
    #[serde(default)]
    pub name: String,
    /// Result.
    pub result: DocumentResult,
    /// Expiry (YYYY-MM-DD), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
    /// Note.
    #[serde(default)]
    pub note: String,
}

/// The briefing deck of a campaign (通报培训会).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Briefing {
    /// Always `"briefing"`.
    #[serde(default)]
    pub kind: String,
    /// Layout version.
    pub schema_version: u64,
    /// Document id.
    pub id: DocId,
    /// The campaign.
    pub campaign_id: DocId,
    /// Sections by id; shown in `position` order.
    pub sections: BTreeMap<String, BriefingSection>,
    /// Typical hazards chosen for the deck, by pick id; none: the default
    /// rule chooses ([`crate::deck`]).
    #[serde(default)]
    pub picks: BTreeMap<String, Pick>,
}

/// A typical hazard chosen for a slide of its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pick {
    /// The hazard: `"<dossier id>/<hazard id>"`.
    pub hazard: String,
    /// Sort key among the picks.
    pub position: f64,
    /// Speaker notes for its slide (Automerge text).
    #[serde(default)]
    pub notes: String,
    /// Taken off the deck; picks are never deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

/// One section of the briefing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BriefingSection {
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Sort key; a move writes one number, so concurrent moves never duplicate.
    pub position: f64,
    /// Notes (Automerge text).
    #[serde(default)]
    pub notes: String,
    /// Findings shown: `"<dossier id>/<hazard id>"` → true.
    pub findings: BTreeMap<String, bool>,
}

/// A checklist / recommended hazard library (推荐隐患清单), published by HQ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checklist {
    /// Always `"checklist"`.
    #[serde(default)]
    pub kind: String,
    /// Stable id, e.g. `construction-jgj59`.
    #[serde(default)]
    pub id: String,
    /// Version; a new version is a new document.
    pub version: u64,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Industry.
    pub domain: Domain,
    /// Standards it is drawn from.
    pub basis: Vec<String>,
    /// Items by id.
    pub items: BTreeMap<String, ChecklistItem>,
}

/// One recommended hazard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    /// Section, e.g. 脚手架.
    #[serde(default)]
    pub section: String,
    /// Short title.
    #[serde(default)]
    pub title: String,
    /// What the hazard is.
    #[serde(default)]
    pub description: String,
    /// Kind.
    pub hazard_kind: HazardKind,
    /// Accident type.
    pub accident_type: AccidentType,
    /// The clause it comes from.
    #[serde(default)]
    pub legal_basis: String,
    /// The major-hazard criterion it meets when found, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major_hazard_criterion: Option<String>,
}
