//! The briefing training meeting's deck (通报培训会): what it shows, from
//! the merged documents, slide by slide in `DOMAIN.md`'s outline — as plain
//! content that the writers (.pptx, HTML) lay out alike. Pure: HQ hands over
//! the documents, who signed each hazard and which photos it can show.
//!
//! Which typical hazards get a slide of their own is people's choice (the
//! briefing's picks, in their order, with their speaker notes). With none
//! chosen, [`default_picks`] chooses: every major hazard, then for each
//! enterprise its two most frequent kinds of general hazard, each shown by
//! its earliest finding with a photo.
//!
//! Long tables go over several slides, [`ROWS`] rows each, so that every
//! slide fits a 16:9 page.

use std::collections::{BTreeMap, BTreeSet};

use crate::codes;
use crate::knowledge::Knowledge;
use crate::model::{Briefing, Campaign, DocumentResult, Dossier, Hazard, HazardLevel, RectificationStatus, Verdict};
use crate::rectification::{Loop, Rate};
use crate::zone::Zone;

/// Table rows per slide.
pub const ROWS: usize = 8;

/// Empty rows of the sign-in sheet.
const SIGN_IN_ROWS: usize = 12;

/// Questions in the quiz.
const QUESTIONS: usize = 5;

/// Standards named on the overview; the rest are counted.
const BASIS: usize = 6;

/// What the deck is built from.
pub struct Input<'a> {
    /// The campaign.
    pub campaign: &'a Campaign,
    /// The campaign's dossiers, by enterprise code.
    pub dossiers: &'a [Dossier],
    /// Its briefing document: the picks.
    pub briefing: &'a Briefing,
    /// Each checklist item's section (脚手架, 临时用电, …): a hazard's
    /// specialty, when it was raised from a checklist.
    pub sections: &'a BTreeMap<String, String>,
    /// The standards the checklists in use are drawn from.
    pub basis: &'a [String],
    /// Who signed changes to each hazard (`<dossier>/<hazard>`): the name on
    /// the credential and the device key.
    pub signers: &'a BTreeMap<String, Vec<(String, String)>>,
    /// Photos HQ can show (decodable images), by SHA-256.
    pub viewable: &'a BTreeSet<String>,
    /// Policy, prevention and quiz texts.
    pub knowledge: &'a Knowledge,
}

/// The deck.
#[derive(Clone, Debug, PartialEq)]
pub struct Deck {
    /// The title slide: 「campaign」通报培训会.
    pub title: String,
    /// Under it: dates and the briefing's deadline.
    pub subtitle: String,
    /// The slides after the title slide.
    pub slides: Vec<Slide>,
}

/// One slide after the title.
#[derive(Clone, Debug, PartialEq)]
pub struct Slide {
    /// Its title.
    pub title: String,
    /// What it shows.
    pub body: Body,
    /// Speaker notes.
    pub notes: String,
}

/// What a slide shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// Lines of text.
    Bullets(Vec<String>),
    /// A native chart.
    Chart(Chart),
    /// A table.
    Table(Table),
    /// A typical hazard: photo, clause, likely accident, fix.
    Hazard(Box<Typical>),
}

/// A native chart: categories, and one value per category in each series.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// Its kind.
    pub kind: ChartKind,
    /// The categories, in order.
    pub categories: Vec<String>,
    /// The series.
    pub series: Vec<Series>,
}

/// How a chart draws its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChartKind {
    /// Vertical bars, series side by side.
    Column,
    /// Horizontal bars.
    Bar,
    /// One series as shares of a whole.
    Pie,
}

/// One series of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Its name (the legend).
    pub name: String,
    /// One value per category.
    pub values: Vec<u64>,
}

/// A table: a header row and the rows under it.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The column names.
    pub header: Vec<String>,
    /// The rows, as many cells as the header.
    pub rows: Vec<Vec<String>>,
}

/// A typical hazard's slide.
#[derive(Clone, Debug, PartialEq)]
pub struct Typical {
    /// `<dossier id>/<hazard id>`.
    pub hazard: String,
    /// The enterprise's name.
    pub enterprise: String,
    /// The hazard's title.
    pub title: String,
    /// Its description.
    pub description: String,
    /// Where it is.
    pub location: String,
    /// 一般隐患 / 重大隐患.
    pub level: String,
    /// The clause it breaks: the major-hazard criterion, else the legal basis.
    pub clause: String,
    /// The accident it could lead to (GB 6441-1986).
    pub likely_accident: String,
    /// How to fix it.
    pub fix: String,
    /// The photo shown (SHA-256), if it has one HQ can show.
    pub photo: Option<String>,
    /// Found when (local date) and by whom.
    pub found: String,
}

/// A hazard with where it belongs.
struct Found<'a> {
    key: String,
    enterprise: &'a str,
    hazard: &'a Hazard,
    state: Loop,
}

/// Builds the deck.
pub fn build(input: &Input<'_>) -> Deck {
    let campaign = input.campaign;
    let zone = Zone::of(campaign);
    let found = hazards(input);
    let mut slides = vec![overview(input), summary(campaign, &found, &zone)];
    slides.extend(charts(input, &found));
    slides.extend(paged(
        "重大事故隐患",
        &["企业", "隐患", "部位", "判定依据", "整改状态"],
        found.iter().filter(|f| f.hazard.level == HazardLevel::Major).map(|f| {
            vec![
                f.enterprise.to_owned(),
                f.hazard.title.clone(),
                f.hazard.location.text.clone(),
                clause(f.hazard),
                f.state.state.status.label().to_owned(),
            ]
        }),
        "本次检查未发现重大事故隐患。",
    ));
    slides.extend(paged(
        "企业排名",
        &["排名", "企业", "隐患", "重大隐患", "已销号"],
        ranking(input, &found),
        "暂无受检企业。",
    ));
    let picks = chosen(input, &found);
    if picks.is_empty() {
        slides.push(bullets("典型隐患", vec!["本次检查未发现可作为典型的隐患。".into()]));
    }
    for (f, notes) in picks {
        slides.push(typical(input, f, &notes, &zone));
    }
    slides.extend(reviews(input));
    slides.extend(paged(
        "证照资料缺失",
        &["企业", "资料", "名称", "情况", "有效期至"],
        input.dossiers.iter().flat_map(|d| {
            let name = enterprise_name(campaign, &d.enterprise);
            d.document_checks.values().filter(|c| c.result != DocumentResult::Compliant).map(move |c| {
                vec![
                    name.to_owned(),
                    c.document_type.clone(),
                    c.name.clone(),
                    c.result.label().to_owned(),
                    c.expires_on.clone().unwrap_or_default(),
                ]
            })
        }),
        "本次检查未发现证照资料缺失。",
    ));
    slides.push(cases(input));
    slides.extend(deadlines(input, &found));
    slides.extend(policy(input.knowledge));
    slides.extend(prevention(input.knowledge, &found));
    slides.push(next_steps(campaign));
    let (quiz, key) = quiz(input.knowledge, &found);
    slides.push(quiz);
    slides.push(key);
    slides.push(Slide {
        title: "签到表".into(),
        body: Body::Table(Table {
            header: ["序号", "姓名", "单位", "职务", "联系电话", "签名"].map(String::from).to_vec(),
            rows: (1..=SIGN_IN_ROWS)
                .map(|i| vec![i.to_string(), String::new(), String::new(), String::new(), String::new(), String::new()])
                .collect(),
        }),
        notes: "参会人员签到，作为培训记录留存。".into(),
    });
    Deck {
        title: format!("{}通报培训会", campaign.name),
        subtitle: format!(
            "检查时间 {} 至 {} · 通报培训会须于 {} 前召开",
            campaign.start_date, campaign.end_date, campaign.briefing_deadline
        ),
        slides,
    }
}

/// Every hazard not deleted, by enterprise (code order), then when found.
fn hazards<'a>(input: &'a Input<'_>) -> Vec<Found<'a>> {
    let mut out = Vec::new();
    for d in input.dossiers {
        let enterprise = enterprise_name(input.campaign, &d.enterprise);
        let mut own: Vec<Found<'a>> = d
            .hazards
            .iter()
            .filter(|(_, h)| !h.deleted)
            .map(|(id, h)| Found {
                key: format!("{}/{id}", d.id),
                enterprise,
                hazard: h,
                state: Loop::of(&h.rectification),
            })
            .collect();
        own.sort_by(|a, b| (&a.hazard.found_at, &a.key).cmp(&(&b.hazard.found_at, &b.key)));
        out.extend(own);
    }
    out
}

fn enterprise_name<'a>(campaign: &'a Campaign, code: &'a str) -> &'a str {
    match campaign.enterprises.get(code) {
        Some(e) if !e.name.is_empty() => &e.name,
        _ => code,
    }
}

fn bullets(title: &str, lines: Vec<String>) -> Slide {
    Slide { title: title.into(), body: Body::Bullets(lines), notes: String::new() }
}

/// A table over as many slides as it needs; `empty` when it has no rows.
fn paged(title: &str, header: &[&str], rows: impl IntoIterator<Item = Vec<String>>, empty: &str) -> Vec<Slide> {
    let rows: Vec<Vec<String>> = rows.into_iter().collect();
    if rows.is_empty() {
        return vec![bullets(title, vec![empty.into()])];
    }
    let pages = rows.len().div_ceil(ROWS);
    rows.chunks(ROWS)
        .enumerate()
        .map(|(i, chunk)| Slide {
            title: if pages > 1 { format!("{title}（{}/{pages}）", i + 1) } else { title.into() },
            body: Body::Table(Table { header: header.iter().map(|h| (*h).to_owned()).collect(), rows: chunk.to_vec() }),
            notes: String::new(),
        })
        .collect()
}

fn overview(input: &Input<'_>) -> Slide {
    let c = input.campaign;
    let team: Vec<String> = c
        .team
        .values()
        .map(|m| match (m.role.is_empty(), m.organization.is_empty()) {
            (true, true) => m.name.clone(),
            (false, true) => format!("{}（{}）", m.name, m.role),
            (true, false) => format!("{}（{}）", m.name, m.organization),
            (false, false) => format!("{}（{}，{}）", m.name, m.organization, m.role),
        })
        .collect();
    let enterprises: Vec<&str> = c.enterprises.keys().map(|code| enterprise_name(c, code)).collect();
    let mut basis = vec!["《企业职工伤亡事故分类》GB 6441-1986".to_owned()];
    basis.extend(input.basis.iter().take(BASIS - 1).cloned());
    if input.basis.len() >= BASIS {
        basis.push(format!("等 {} 项标准规范", input.basis.len() + 1));
    }
    let mut lines = vec![
        format!("检查类型：{}", c.campaign_kind.label()),
        format!("检查时间：{} 至 {}", c.start_date, c.end_date),
        format!("检查组：{}", if team.is_empty() { "（未登记）".into() } else { team.join("、") }),
        format!("受检企业（{} 家）：{}", enterprises.len(), enterprises.join("、")),
    ];
    lines.push(format!("检查依据：{}", basis.join("；")));
    Slide { title: "检查概况".into(), body: Body::Bullets(lines), notes: String::new() }
}

fn summary(campaign: &Campaign, found: &[Found<'_>], zone: &Zone) -> Slide {
    if found.is_empty() {
        return bullets("总体情况", vec!["本次检查未发现事故隐患。".into()]);
    }
    let major = found.iter().filter(|f| f.hazard.level == HazardLevel::Major).count();
    // As of the end of the briefing's deadline day, in the campaign's zone.
    let next = crate::doc::check_date(&campaign.briefing_deadline).ok().and_then(|d| d.tomorrow().ok());
    let end = next.and_then(|d| zone.start_of(d)).map_or(i64::MAX / 2, |t| t.as_millisecond() - 1);
    let cut_off = crate::doc::rfc3339(end);
    let rate = Rate::of(found.iter().map(|f| (f.hazard.found_at.as_str(), false, &f.state)), &cut_off);
    let enterprises: BTreeSet<&str> = found.iter().map(|f| f.enterprise).collect();
    let mut lines = vec![
        format!(
            "共发现事故隐患 {} 条，其中重大事故隐患 {major} 条、一般事故隐患 {} 条。",
            found.len(),
            found.len() - major
        ),
        format!("涉及受检企业 {} 家。", enterprises.len()),
        format!("已销号 {} 条，整改率 {}。", rate.closed, percent(rate.closed, rate.found)),
    ];
    let mut types: BTreeMap<&str, usize> = BTreeMap::new();
    for f in found {
        *types.entry(f.hazard.accident_type.name()).or_default() += 1;
    }
    let mut types: Vec<(&str, usize)> = types.into_iter().collect();
    types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = types.iter().take(3).map(|(name, n)| format!("{name} {n} 条")).collect();
    lines.push(format!("可能导致的事故类型以{}为主。", top.join("、")));
    Slide { title: "总体情况".into(), body: Body::Bullets(lines), notes: rate.definition }
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 { "—".into() } else { format!("{:.1}%", part as f64 * 100.0 / whole as f64) }
}

/// The four charts: by enterprise (general and major), by level, by
/// specialty, by accident type.
fn charts(input: &Input<'_>, found: &[Found<'_>]) -> Vec<Slide> {
    if found.is_empty() {
        return Vec::new();
    }
    let mut by_enterprise: Vec<(&str, u64, u64)> = Vec::new();
    for code in input.campaign.enterprises.keys() {
        by_enterprise.push((enterprise_name(input.campaign, code), 0, 0));
    }
    for f in found {
        let at = match by_enterprise.iter().position(|(name, _, _)| *name == f.enterprise) {
            Some(at) => at,
            None => {
                by_enterprise.push((f.enterprise, 0, 0));
                by_enterprise.len() - 1
            }
        };
        match f.hazard.level {
            HazardLevel::General => by_enterprise[at].1 += 1,
            HazardLevel::Major => by_enterprise[at].2 += 1,
        }
    }
    let general: u64 = by_enterprise.iter().map(|e| e.1).sum();
    let major: u64 = by_enterprise.iter().map(|e| e.2).sum();
    let chart = |title: &str, kind, categories: Vec<String>, series: Vec<Series>, notes: String| Slide {
        title: title.into(),
        body: Body::Chart(Chart { kind, categories, series }),
        notes,
    };
    vec![
        chart(
            "各企业隐患数量",
            ChartKind::Column,
            by_enterprise.iter().map(|e| e.0.to_owned()).collect(),
            vec![
                Series { name: "一般事故隐患".into(), values: by_enterprise.iter().map(|e| e.1).collect() },
                Series { name: "重大事故隐患".into(), values: by_enterprise.iter().map(|e| e.2).collect() },
            ],
            "按受检企业统计未删除的隐患条数。".into(),
        ),
        chart(
            "隐患等级",
            ChartKind::Pie,
            vec!["一般事故隐患".into(), "重大事故隐患".into()],
            vec![Series { name: "隐患条数".into(), values: vec![general, major] }],
            String::new(),
        ),
        counted("专业分布", found.iter().map(|f| specialty(input, f.hazard))),
        counted("可能导致的事故类型", found.iter().map(|f| f.hazard.accident_type.name().to_owned())),
    ]
}

/// A bar chart of how many hazards fall in each group, largest first.
fn counted(title: &str, groups: impl Iterator<Item = String>) -> Slide {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for group in groups {
        *counts.entry(group).or_default() += 1;
    }
    let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Slide {
        title: title.into(),
        body: Body::Chart(Chart {
            kind: ChartKind::Bar,
            categories: counts.iter().map(|c| c.0.clone()).collect(),
            series: vec![Series { name: "隐患条数".into(), values: counts.iter().map(|c| c.1).collect() }],
        }),
        notes: String::new(),
    }
}

/// A hazard's specialty: its checklist item's section, else 其他.
pub fn specialty(input: &Input<'_>, h: &Hazard) -> String {
    h.checklist_item.as_ref().and_then(|item| input.sections.get(item)).cloned().unwrap_or_else(|| "其他".into())
}

/// The clause a hazard breaks, as people cite it.
fn clause(h: &Hazard) -> String {
    if let Some(id) = &h.major_hazard_criterion {
        return match codes::criterion(id) {
            Ok(c) => format!("{} {}", c.document_no, c.clause),
            Err(_) => id.clone(),
        };
    }
    if h.legal_basis.is_empty() { "—".into() } else { h.legal_basis.clone() }
}

fn ranking(input: &Input<'_>, found: &[Found<'_>]) -> Vec<Vec<String>> {
    let mut rows: Vec<(&str, usize, usize, usize)> = input
        .campaign
        .enterprises
        .keys()
        .map(|code| {
            let name = enterprise_name(input.campaign, code);
            let own: Vec<&Found<'_>> = found.iter().filter(|f| f.enterprise == name).collect();
            let major = own.iter().filter(|f| f.hazard.level == HazardLevel::Major).count();
            let closed = own.iter().filter(|f| f.state.state.status == RectificationStatus::Closed).count();
            (name, own.len(), major, closed)
        })
        .collect();
    rows.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)).then(a.0.cmp(b.0)));
    rows.into_iter()
        .enumerate()
        .map(|(i, (name, total, major, closed))| {
            vec![
                (i + 1).to_string(),
                name.to_owned(),
                total.to_string(),
                major.to_string(),
                format!("{closed}（{}）", percent(closed, total)),
            ]
        })
        .collect()
}

/// The typical hazards, in order, with their speaker notes: people's picks
/// when there are any, else [`default_picks`].
fn chosen<'a, 'b>(input: &Input<'_>, found: &'b [Found<'a>]) -> Vec<(&'b Found<'a>, String)> {
    let by_key: BTreeMap<&str, &Found<'a>> = found.iter().map(|f| (f.key.as_str(), f)).collect();
    let mut picks: Vec<(&String, &crate::model::Pick)> =
        input.briefing.picks.iter().filter(|(_, p)| !p.removed && by_key.contains_key(p.hazard.as_str())).collect();
    picks.sort_by(|a, b| a.1.position.total_cmp(&b.1.position).then(a.0.cmp(b.0)));
    let mut seen = BTreeSet::new();
    let people: Vec<(&Found<'a>, String)> = picks
        .into_iter()
        .filter(|(_, p)| seen.insert(p.hazard.as_str()))
        .filter_map(|(_, p)| Some((*by_key.get(p.hazard.as_str())?, p.notes.clone())))
        .collect();
    if !people.is_empty() {
        return people;
    }
    default_picks(input, found).into_iter().map(|f| (f, String::new())).collect()
}

/// The documented default: every major hazard, then for each enterprise
/// its two most frequent kinds of general hazard (a kind: the checklist
/// item it was raised from, else its accident type), each shown by its
/// earliest finding with a photo HQ can show; kinds without one are left
/// out.
fn default_picks<'a, 'b>(input: &Input<'_>, found: &'b [Found<'a>]) -> Vec<&'b Found<'a>> {
    let mut out: Vec<&Found<'a>> = found.iter().filter(|f| f.hazard.level == HazardLevel::Major).collect();
    let mut enterprises: Vec<&str> = Vec::new();
    for f in found {
        if !enterprises.contains(&f.enterprise) {
            enterprises.push(f.enterprise);
        }
    }
    for enterprise in enterprises {
        let mut kinds: BTreeMap<String, Vec<&Found<'a>>> = BTreeMap::new();
        for f in found.iter().filter(|f| f.enterprise == enterprise && f.hazard.level == HazardLevel::General) {
            let kind =
                f.hazard.checklist_item.clone().unwrap_or_else(|| format!("事故类型 {}", f.hazard.accident_type.code));
            kinds.entry(kind).or_default().push(f);
        }
        let mut kinds: Vec<(String, Vec<&Found<'a>>)> = kinds.into_iter().collect();
        kinds.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        let shown = kinds.iter().filter_map(|(_, members)| members.iter().find(|f| photo(input, f.hazard).is_some()));
        out.extend(shown.take(2).copied());
    }
    out
}

/// The photo a slide shows: the first of the hazard's before-photos HQ can
/// show.
fn photo(input: &Input<'_>, h: &Hazard) -> Option<String> {
    h.photos.keys().find(|sha| input.viewable.contains(*sha)).cloned()
}

fn typical(input: &Input<'_>, f: &Found<'_>, chosen_notes: &str, zone: &Zone) -> Slide {
    let h = f.hazard;
    let plan = f.state.state.plan.as_ref();
    let fix = match plan.map(|p| p.measures.trim()).filter(|m| !m.is_empty()) {
        Some(measures) => measures.to_owned(),
        None => input
            .knowledge
            .prevention
            .get(&h.accident_type.code)
            .and_then(|p| p.points.first())
            .map_or_else(|| "按依据条款整改，整改后报复查。".into(), |p| p.text.clone()),
    };
    let clause = match &h.major_hazard_criterion {
        Some(id) => match codes::criterion(id) {
            Ok(c) => format!("{} {}：{}", c.document_no, c.clause, c.text),
            Err(_) => id.clone(),
        },
        None if h.legal_basis.is_empty() => "—".into(),
        None => h.legal_basis.clone(),
    };
    let day = zone.day(&h.found_at).unwrap_or_else(|| h.found_at.chars().take(10).collect());
    let shown = photo(input, h);
    let mut notes =
        vec![format!("隐患编号：{}", f.key), format!("发现：{}，{}", h.inspector, zone.minute(&h.found_at))];
    let signed: Vec<String> = input
        .signers
        .get(&f.key)
        .map(|s| s.iter().map(|(name, device)| format!("{name}（设备 {}）", &device[..device.len().min(16)])).collect())
        .unwrap_or_default();
    notes.push(format!("签名：{}", if signed.is_empty() { "（未知）".into() } else { signed.join("、") }));
    if shown.is_none() && !h.photos.is_empty() {
        notes.push("照片无法显示，原件作为证据保存在总部。".into());
    }
    if !chosen_notes.trim().is_empty() {
        notes.push(chosen_notes.trim().to_owned());
    }
    Slide {
        title: format!("典型隐患：{}", h.title),
        body: Body::Hazard(Box::new(Typical {
            hazard: f.key.clone(),
            enterprise: f.enterprise.to_owned(),
            title: h.title.clone(),
            description: h.description.clone(),
            location: h.location.text.clone(),
            level: match h.level {
                HazardLevel::General => "一般事故隐患".into(),
                HazardLevel::Major => "重大事故隐患".into(),
            },
            clause,
            likely_accident: h.accident_type.name().to_owned(),
            fix,
            photo: shown,
            found: format!("{day}，{}", h.inspector),
        })),
        notes: notes.join("\n"),
    }
}

/// The 四不放过 findings: each accident reviewed, with the items not met.
fn reviews(input: &Input<'_>) -> Vec<Slide> {
    let rows = input.dossiers.iter().flat_map(|d| {
        let name = enterprise_name(input.campaign, &d.enterprise);
        let mut own: Vec<_> = d.accident_reviews.values().collect();
        own.sort_by(|a, b| a.accident_date.cmp(&b.accident_date));
        own.into_iter().map(move |r| {
            let failed: Vec<&str> = crate::model::ReviewItemKind::ALL
                .iter()
                .filter(|k| r.items.item(**k).verdict == Some(Verdict::Fail))
                .map(|k| k.label())
                .collect();
            let unjudged =
                crate::model::ReviewItemKind::ALL.iter().filter(|k| r.items.item(**k).verdict.is_none()).count();
            let verdict = match (failed.is_empty(), unjudged) {
                (true, 0) => "四项均已做到".to_owned(),
                (true, n) => format!("{n} 项未判定"),
                (false, _) => format!("未做到：{}", failed.join("、")),
            };
            vec![name.to_owned(), r.accident_date.clone(), r.accident_summary.clone(), verdict]
        })
    });
    paged(
        "事故“四不放过”核查",
        &["企业", "事故日期", "事故概况", "核查结论"],
        rows,
        "本次检查未核查事故“四不放过”情况。",
    )
}

/// Local work-injury cases: the accidents the reviews looked at.
fn cases(input: &Input<'_>) -> Slide {
    let mut lines: Vec<String> = Vec::new();
    for d in input.dossiers {
        let name = enterprise_name(input.campaign, &d.enterprise);
        for r in d.accident_reviews.values() {
            let reference =
                if r.report_ref.is_empty() { String::new() } else { format!("（调查报告：{}）", r.report_ref) };
            lines.push(format!("{} {}：{}{reference}", r.accident_date, name, r.accident_summary));
        }
    }
    lines.sort();
    if lines.is_empty() {
        lines.push("本次检查未收集到本地工伤事故案例。".into());
    }
    lines.truncate(ROWS);
    Slide {
        title: "本地工伤事故案例".into(),
        body: Body::Bullets(lines),
        notes: "案例取自本次核查的事故调查报告；讲解时结合事故原因和“四不放过”落实情况。".into(),
    }
}

/// Rectification deadlines per enterprise, and what the reply must hold.
fn deadlines(input: &Input<'_>, found: &[Found<'_>]) -> Vec<Slide> {
    let rows = input.campaign.enterprises.keys().filter_map(|code| {
        let name = enterprise_name(input.campaign, code);
        let open: Vec<&Found<'_>> = found
            .iter()
            .filter(|f| f.enterprise == name && f.state.state.status != RectificationStatus::Closed)
            .collect();
        if open.is_empty() {
            return None;
        }
        let immediate =
            open.iter().filter(|f| f.state.state.plan.as_ref().is_some_and(|p| p.deadline.is_none())).count();
        let earliest = open.iter().filter_map(|f| f.state.state.plan.as_ref()?.deadline.clone()).min();
        Some(vec![
            name.to_owned(),
            open.len().to_string(),
            immediate.to_string(),
            earliest.unwrap_or_else(|| "—".into()),
        ])
    });
    let mut slides =
        paged("整改期限", &["企业", "未销号隐患", "其中立即整改", "最早整改期限"], rows, "全部隐患均已销号。");
    slides.push(bullets(
        "整改回复要求",
        vec![
            "重大事故隐患：立即停止相关作业，制定治理方案，落实整改措施、责任、资金、时限和预案。".into(),
            "限期整改的隐患：在期限内完成整改，逐条书面回复整改情况，附整改前后对比照片。".into(),
            "整改回复经企业负责人签字、加盖公章后报检查组，检查组按期复查并销号。".into(),
            "逾期未整改或整改不到位的，依法移交有关部门处理。".into(),
        ],
    ));
    slides
}

fn policy(knowledge: &Knowledge) -> Vec<Slide> {
    knowledge
        .policy
        .chunks(4)
        .map(|chunk| {
            let lines = chunk
                .iter()
                .map(|p| format!("{}：{}（{}）", p.title, p.text, knowledge.cite(&p.source, p.clause.as_deref())))
                .collect();
            bullets("工伤保险政策要点", lines)
        })
        .collect()
}

/// Prevention knowledge for the accident types the findings point to, most
/// frequent first (at most four).
fn prevention(knowledge: &Knowledge, found: &[Found<'_>]) -> Vec<Slide> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for f in found {
        *counts.entry(f.hazard.accident_type.code.as_str()).or_default() += 1;
    }
    let mut codes: Vec<(&str, usize)> =
        counts.into_iter().filter(|(code, _)| knowledge.prevention.contains_key(*code)).collect();
    codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    codes
        .into_iter()
        .take(4)
        .filter_map(|(code, n)| {
            let p = knowledge.prevention.get(code)?;
            let lines = p
                .points
                .iter()
                .map(|pt| format!("{}（{}）", pt.text, knowledge.cite(&pt.source, pt.clause.as_deref())))
                .collect();
            let mut slide = bullets(&format!("事故预防：{}", p.name), lines);
            slide.notes = format!("本次检查中可能导致{}的隐患 {n} 条。", p.name);
            Some(slide)
        })
        .collect()
}

fn next_steps(campaign: &Campaign) -> Slide {
    bullets(
        "下一步工作",
        vec![
            "各企业按整改通知书逐条整改，按期书面回复。".into(),
            "检查组对重大事故隐患和限期整改隐患逐条复查、销号。".into(),
            format!("将本次检查发现纳入{}的工伤预防培训与隐患排查治理台账。", campaign.name),
            "对整改不力的企业列入重点监管，开展“回头看”。".into(),
        ],
    )
}

/// The quiz and its answer key: questions on the accident types found
/// first, then on policy.
fn quiz(knowledge: &Knowledge, found: &[Found<'_>]) -> (Slide, Slide) {
    let types: BTreeSet<&str> = found.iter().map(|f| f.hazard.accident_type.code.as_str()).collect();
    let mut questions: Vec<&crate::knowledge::Question> =
        knowledge.quiz.iter().filter(|q| q.accident_type.as_deref().is_some_and(|t| types.contains(t))).collect();
    questions.extend(knowledge.quiz.iter().filter(|q| q.accident_type.is_none()));
    questions.truncate(QUESTIONS);
    let letters = ['A', 'B', 'C', 'D'];
    let asked = questions
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let choices: Vec<String> = q.choices.iter().zip(letters).map(|(c, l)| format!("{l}. {c}")).collect();
            format!("{}. {}  {}", i + 1, q.question, choices.join("  "))
        })
        .collect();
    let key = questions
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let letter = letters.get(q.answer).copied().unwrap_or('?');
            format!("{}. {letter}：{}（{}）", i + 1, q.explanation, knowledge.cite(&q.source, None))
        })
        .collect();
    (bullets("随堂测验", asked), bullets("测验答案", key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::dossier::tests::sample_hazard;
    use crate::doc::{self, edit};
    use crate::ids::{DocId, EntityId};
    use crate::model::{CampaignKind, Domain, Enterprise, Pick};
    use automerge::Automerge;

    const CODES: [&str; 2] = ["91640200MA76XYW123", "91640200MA76XYW131"];

    struct World {
        campaign: Campaign,
        dossiers: Vec<Dossier>,
        briefing: Briefing,
        viewable: BTreeSet<String>,
    }

    /// Two enterprises; the first has a major hazard and three kinds of
    /// general ones (two with photos HQ can show), the second one general
    /// hazard without a photo and one deleted.
    fn world() -> World {
        let id = DocId::new_campaign([9; 16]);
        let mut c = Automerge::new();
        edit(&mut c, 1, |tx| {
            doc::campaign::create(
                tx,
                &id,
                "联合检查",
                CampaignKind::ConstructionJointInspection,
                "2026-11-24",
                "2026-11-25",
            )
        })
        .unwrap();
        for (i, code) in CODES.iter().enumerate() {
            let code = code.parse().unwrap();
            let e = Enterprise {
                name: format!("企业{}", i + 1),
                dossier_id: DocId::dossier(&id, &code),
                unified_social_credit_code: code,
                domain: Domain::Construction,
                project: String::new(),
                address: String::new(),
            };
            edit(&mut c, 2, |tx| doc::campaign::add_enterprise(tx, &id, &e)).unwrap();
        }
        let campaign = doc::campaign::read(&c).unwrap();
        let photo = |n: u8| crate::ids::sha256_hex(&[n]);
        let mut first = vec![(
            "重大",
            Hazard {
                level: HazardLevel::Major,
                major_hazard_criterion: Some(codes::criteria()[0].id.clone()),
                ..sample_hazard("重大隐患")
            },
        )];
        for (n, (title, item, with_photo)) in [
            ("甲1", "k/a", true),
            ("甲2", "k/a", true),
            ("甲3", "k/a", false),
            ("乙1", "k/b", false),
            ("乙2", "k/b", false),
            ("丙1", "k/c", true),
        ]
        .into_iter()
        .enumerate()
        {
            let mut h = Hazard { checklist_item: Some(item.into()), ..sample_hazard(title) };
            h.found_at = format!("2026-11-24T0{n}:00:00Z");
            if with_photo {
                h.photos.insert(photo(n as u8), format!("{title}.jpg"));
            }
            first.push((title, h));
        }
        let second =
            vec![("无照片", sample_hazard("无照片")), ("已删除", Hazard { deleted: true, ..sample_hazard("已删除") })];
        let mut dossiers = Vec::new();
        for (code, hazards) in CODES.iter().zip([first, second]) {
            let mut d = doc::dossier::create(&id, &code.parse().unwrap()).unwrap();
            for (i, (_, h)) in hazards.iter().enumerate() {
                edit(&mut d, 3, |tx| doc::dossier::add_hazard(tx, &EntityId::new(1, i as u128 + 1), h)).unwrap();
            }
            dossiers.push(doc::dossier::read(&d).unwrap());
        }
        let briefing = doc::briefing::read(&doc::briefing::create(&id).unwrap()).unwrap();
        let viewable = (0..6u8).map(photo).collect();
        World { campaign, dossiers, briefing, viewable }
    }

    fn built(w: &World) -> Deck {
        let (sections, signers) = (BTreeMap::new(), BTreeMap::new());
        build(&Input {
            campaign: &w.campaign,
            dossiers: &w.dossiers,
            briefing: &w.briefing,
            sections: &sections,
            basis: &[],
            signers: &signers,
            viewable: &w.viewable,
            knowledge: Knowledge::bundled(),
        })
    }

    fn typical(deck: &Deck) -> Vec<&Typical> {
        deck.slides
            .iter()
            .filter_map(|s| match &s.body {
                Body::Hazard(t) => Some(t.as_ref()),
                _ => None,
            })
            .collect()
    }

    fn chart<'a>(deck: &'a Deck, title: &str) -> &'a Chart {
        deck.slides
            .iter()
            .find_map(|s| match &s.body {
                Body::Chart(c) if s.title == title => Some(c),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no chart {title}"))
    }

    #[test]
    fn by_default_every_major_hazard_then_two_kinds_per_enterprise_with_photos() {
        let deck = built(&world());
        let titles: Vec<&str> = typical(&deck).iter().map(|t| t.title.as_str()).collect();
        // k/a (3) is the most frequent kind, shown by its earliest finding
        // with a photo; k/b (2) has no photo and is left out; k/c (1) next.
        // The second enterprise's only kind has no photo.
        assert_eq!(titles, ["重大隐患", "甲1", "丙1"]);
        assert!(typical(&deck)[1].photo.is_some());
    }

    #[test]
    fn people_choose_and_order_the_typical_hazards() {
        let mut w = world();
        let key = |d: usize, n: u128| format!("{}/{}", w.dossiers[d].id, EntityId::new(1, n));
        let pick = |hazard: String, position: f64, notes: &str, removed: bool| Pick {
            hazard,
            position,
            notes: notes.into(),
            removed,
        };
        w.briefing.picks = [
            ("01A", pick(key(0, 5), 2.0, "乙1 的讲解", false)),
            ("01B", pick(key(1, 1), 1.0, "先讲这个", false)),
            ("01C", pick(key(1, 1), 3.0, "同一隐患再选一次", false)),
            ("01D", pick(key(0, 1), 0.5, "", true)),
            ("01E", pick(key(1, 2), 0.1, "已删除的隐患", false)),
        ]
        .into_iter()
        .map(|(id, p)| (id.to_owned(), p))
        .collect();
        let deck = built(&w);
        let chosen: Vec<&str> = typical(&deck).iter().map(|t| t.title.as_str()).collect();
        assert_eq!(chosen, ["无照片", "乙1"]);
        let notes: Vec<&str> =
            deck.slides.iter().filter(|s| matches!(s.body, Body::Hazard(_))).map(|s| s.notes.as_str()).collect();
        assert!(notes[0].contains("先讲这个") && !notes[0].contains("再选一次"));
        assert!(notes[0].contains(&format!("隐患编号：{}", key(1, 1))));
        assert!(notes[1].contains("乙1 的讲解"));
    }

    #[test]
    fn charts_count_what_the_dossiers_hold() {
        let deck = built(&world());
        let by_enterprise = chart(&deck, "各企业隐患数量");
        assert_eq!(by_enterprise.categories, ["企业1", "企业2"]);
        assert_eq!(by_enterprise.series[0].values, [6, 1], "general, the deleted one left out");
        assert_eq!(by_enterprise.series[1].values, [1, 0], "major");
        assert_eq!(chart(&deck, "隐患等级").series[0].values, [7, 1]);
        let types = chart(&deck, "可能导致的事故类型");
        assert_eq!(types.categories, ["坍塌"]);
        assert_eq!(types.series[0].values, [8]);
    }

    #[test]
    fn a_campaign_without_findings_says_so() {
        let mut w = world();
        for d in &mut w.dossiers {
            d.hazards.clear();
        }
        let deck = built(&w);
        assert!(typical(&deck).is_empty());
        let said = |title: &str, text: &str| {
            deck.slides
                .iter()
                .any(|s| s.title == title && matches!(&s.body, Body::Bullets(l) if l.iter().any(|l| l.contains(text))))
        };
        assert!(said("总体情况", "未发现事故隐患"));
        assert!(said("典型隐患", "未发现"));
        assert!(said("重大事故隐患", "未发现重大事故隐患"));
        assert!(deck.slides.iter().all(|s| !matches!(s.body, Body::Chart(_))), "no charts of nothing");
    }

    #[test]
    fn long_tables_go_over_several_slides() {
        let rows = (0..(2 * ROWS + 1)).map(|i| vec![i.to_string()]);
        let slides = paged("表", &["序号"], rows, "无");
        assert_eq!(slides.len(), 3);
        assert_eq!(slides[2].title, "表（3/3）");
    }
}
