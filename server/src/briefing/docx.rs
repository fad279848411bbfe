//! The rectification notice (整改通知书) HQ hands each inspected enterprise
//! after a campaign: who was inspected, when and by whom, the enterprise's
//! hazards with their basis and what the rectification loop requires of
//! each, the requirements, and room for the enterprise's reply (整改回复),
//! the re-inspection (复查意见) and the receipt. Written as .docx with
//! docx-rs, as a pure function of the campaign and the dossier.
//!
//! - Every run names its typeface for Latin and East Asian text (宋体 for
//!   the body, 黑体 for the title and headings), and so do the document
//!   defaults, so WPS and Word on a Chinese Windows never fall back to a
//!   Western face.
//! - The same input gives the same bytes: paragraph ids are numbered here
//!   (docx-rs takes them from a per-thread counter, so they would depend on
//!   what the thread built before), the document properties are dated by the
//!   campaign's last day, and the package is written again with its parts in
//!   docx-rs's order at a fixed time ([`super::pptx::zip`]) rather than
//!   trusting the time the ZIP crate would stamp.
//! - Inspectors' texts go in as text (docx-rs escapes them); the characters
//!   XML 1.0 cannot hold are dropped, and line breaks are kept.

use std::io::Read as _;

use anyhow::{Context as _, Result, anyhow, bail};
use docx_rs::{
    AlignmentType, BreakType, Docx, LineSpacing, PageMargin, Paragraph, Run, RunFonts, Shading, SpecialIndentType,
    Table, TableCell, TableCellMargins, TableLayoutType, TableRow, VAlignType, WidthType,
};
use sync_core::model::{Campaign, Dossier, Hazard, HazardLevel, calendar_date};
use sync_core::rectification::Loop;

/// The typeface of the body text.
const SONG: &str = "宋体";
/// The typeface of the title and the headings.
const HEI: &str = "黑体";

/// A4 portrait and its margins (2.5 cm), in twentieths of a point.
const PAGE_WIDTH: u32 = 11_906;
const PAGE_HEIGHT: u32 = 16_838;
const MARGIN: i32 = 1_417;
/// The width between the margins.
const TEXT_WIDTH: usize = PAGE_WIDTH as usize - 2 * MARGIN as usize;
/// The hazard table's columns: 序号, 隐患部位, 隐患描述, 等级, 依据,
/// 整改要求与期限. They add up to [`TEXT_WIDTH`].
const COLUMNS: [usize; 6] = [700, 1_300, 3_172, 700, 1_500, 1_700];
/// The reply and re-inspection tables: label, value, label, value.
const FORM_COLUMNS: [usize; 4] = [2_000, 2_536, 2_000, 2_536];
/// A cell's padding: top and bottom, left and right.
const CELL_PADDING: [usize; 2] = [40, 108];
/// The width of a Chinese character in body text (12 pt) and in table
/// text (10.5 pt).
const BODY_CHAR: i32 = 240;
const CELL_CHAR: usize = 210;
/// A hazard's row is kept on one page when no cell takes more lines than
/// this (about a third of a page); a longer row breaks across pages, or it
/// could not fit at all.
const KEPT_LINES: usize = 15;

/// What a notice says when a hazard has no plan yet.
const NO_PLAN: &str = "限期整改，期限由检查组另行通知";
/// An empty field.
const DASH: &str = "—";

/// One enterprise's rectification notice: the campaign and the dossier of
/// the enterprise in it, and the serial number the caller gives it.
pub(crate) struct Notice<'a> {
    /// The serial number (文号), e.g. 石工风检〔2026〕第3号.
    pub(crate) serial: String,
    /// The campaign the enterprise was inspected in.
    pub(crate) campaign: &'a Campaign,
    /// The enterprise's dossier in that campaign.
    pub(crate) dossier: &'a Dossier,
}

/// One enterprise's rectification notice (整改通知书) as .docx bytes.
pub(crate) fn notice(n: &Notice<'_>) -> Result<Vec<u8>> {
    let (campaign, dossier) = (n.campaign, n.dossier);
    if dossier.campaign_id != campaign.id {
        bail!("企业档案 {} 不属于检查活动 {}，无法生成整改通知书", dossier.id, campaign.id);
    }
    let enterprise = campaign.enterprises.get(&dossier.enterprise).ok_or_else(|| {
        anyhow!("检查活动 {} 中没有被检查单位 {}，无法生成整改通知书", campaign.id, dossier.enterprise)
    })?;
    let mut hazards: Vec<(&String, &Hazard)> = dossier.hazards.iter().filter(|(_, h)| !h.deleted).collect();
    hazards.sort_by(|(a, ha), (b, hb)| (&ha.found_at, a).cmp(&(&hb.found_at, b)));

    let mut w = Writer::new(campaign);
    w.title();
    let serial = w.para().align(AlignmentType::Center).add_run(run(&n.serial, BODY));
    w.push(serial.line_spacing(LineSpacing::new().after(240)));
    w.field("被检查单位", &enterprise.name);
    w.field("统一社会信用代码", enterprise.unified_social_credit_code.as_str());
    w.field("工程项目", &enterprise.project);
    w.field("地址", &enterprise.address);
    w.field("检查时间", &period(&campaign.start_date, &campaign.end_date));
    w.field("检查人员", &inspectors(campaign, &hazards));
    if hazards.is_empty() {
        w.sentence("本次检查未发现事故隐患。");
    } else {
        w.sentence("经检查，你单位存在下列事故隐患，现责令限期整改：");
        w.hazards(&hazards);
        w.requirements(hazards.iter().any(|(_, h)| h.level == HazardLevel::Major));
        w.reply();
        w.review();
    }
    w.signature(&campaign.end_date);
    w.finish()
}

/// A run's typeface, size (half-points) and weight.
#[derive(Clone, Copy)]
struct Face {
    /// The typeface, for Latin and East Asian text alike.
    font: &'static str,
    /// The size in half-points.
    size: usize,
    /// Whether bold.
    bold: bool,
}

/// The title: 黑体 22 pt.
const TITLE: Face = Face { font: HEI, size: 44, bold: true };
/// A block's heading: 黑体 14 pt.
const HEADING: Face = Face { font: HEI, size: 28, bold: false };
/// Body text: 宋体 12 pt (小四).
const BODY: Face = Face { font: SONG, size: 24, bold: false };
/// A field's label.
const LABEL: Face = Face { bold: true, ..BODY };
/// Table text: 宋体 10.5 pt (五号).
const CELL: Face = Face { font: SONG, size: 21, bold: false };
/// A table's header and a hazard's title.
const CELL_BOLD: Face = Face { bold: true, ..CELL };

/// `font` for Latin and East Asian text alike.
fn fonts(font: &str) -> RunFonts {
    RunFonts::new().ascii(font).hi_ansi(font).east_asia(font).cs(font).hint("eastAsia")
}

/// A run of `text` in `face`, its line breaks kept.
fn run(text: &str, face: Face) -> Run {
    let mut run = Run::new().fonts(fonts(face.font)).size(face.size);
    if face.bold {
        run = run.bold();
    }
    for (i, line) in clean(text).split('\n').enumerate() {
        if i > 0 {
            run = run.add_break(BreakType::TextWrapping);
        }
        run = run.add_text(line);
    }
    run
}

/// `text` as XML 1.0 can hold it: line ends as `\n`, tabs as spaces, no
/// other control characters and no U+FFFE or U+FFFF.
fn clean(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    text.chars()
        .filter_map(|c| match c {
            '\n' | '\r' => Some('\n'),
            '\t' => Some(' '),
            c if c.is_control() || matches!(c, '\u{FFFE}' | '\u{FFFF}') => None,
            c => Some(c),
        })
        .collect()
}

/// `text` trimmed, or a dash if that leaves nothing.
fn or_dash(text: &str) -> &str {
    match text.trim() {
        "" => DASH,
        text => text,
    }
}

/// `2026-11-25` as 2026年11月25日; anything else as written.
fn chinese_date(date: &str) -> String {
    match calendar_date(date) {
        Some(d) => format!("{}年{}月{}日", d.year(), d.month(), d.day()),
        None => date.trim().to_owned(),
    }
}

/// The inspection's days: one day, or first 至 last.
fn period(start: &str, end: &str) -> String {
    match (chinese_date(start), chinese_date(end)) {
        (start, end) if start.is_empty() || end.is_empty() || start == end => format!("{start}{end}"),
        (start, end) => format!("{start} 至 {end}"),
    }
}

/// The team's names, then those of the inspectors who recorded a hazard and
/// are not on the team, each person once.
fn inspectors(campaign: &Campaign, hazards: &[(&String, &Hazard)]) -> String {
    let mut names: Vec<&str> = Vec::new();
    let team = campaign.team.values().map(|m| m.name.as_str());
    for name in team.chain(hazards.iter().map(|(_, h)| h.inspector.as_str())) {
        let name = name.trim();
        if !name.is_empty() && !names.iter().any(|n| sync_core::text::same_person(n, name)) {
            names.push(name);
        }
    }
    names.join("、")
}

/// A hazard's basis (依据): for a major hazard the criterion clause it meets
/// (发文字号 and clause), and the legal basis the inspector wrote.
fn basis(h: &Hazard) -> String {
    let criterion = h
        .major_hazard_criterion
        .as_deref()
        .filter(|_| h.level == HazardLevel::Major)
        .and_then(|id| sync_core::codes::criterion(id).ok())
        .map(|c| format!("{} {}", c.document_no, c.clause));
    let legal = Some(h.legal_basis.trim()).filter(|b| !b.is_empty());
    match (criterion, legal) {
        (Some(c), Some(l)) => format!("{c}\n{l}"),
        (Some(c), None) => c,
        (None, Some(l)) => l.to_owned(),
        (None, None) => DASH.to_owned(),
    }
}

/// What a hazard's rectification loop requires (整改要求与期限): the plan in
/// force, or that the deadline will follow.
fn requirement(h: &Hazard) -> String {
    let Some(plan) = Loop::of(&h.rectification).state.plan else { return NO_PLAN.to_owned() };
    let mut out = match &plan.deadline {
        Some(d) => format!("{}，期限：{}", plan.mode.label(), chinese_date(d)),
        None => plan.mode.label().to_owned(),
    };
    if !plan.measures.trim().is_empty() {
        out.push_str(&format!("\n整改措施：{}", plan.measures.trim()));
    }
    if !plan.interim_control.trim().is_empty() {
        out.push_str(&format!("\n临时管控措施：{}", plan.interim_control.trim()));
    }
    out
}

/// The document as it is written, with the paragraph ids given so far.
struct Writer {
    /// The document so far.
    docx: Docx,
    /// How many paragraphs have an id: the last id given.
    paragraphs: u32,
}

impl Writer {
    /// An empty A4 page with the body's typeface as the document default,
    /// dated by `campaign`'s last day.
    fn new(campaign: &Campaign) -> Writer {
        let margin = PageMargin::new().top(MARGIN).bottom(MARGIN).left(MARGIN).right(MARGIN).header(851).footer(992);
        let mut docx = Docx::new()
            .page_size(PAGE_WIDTH, PAGE_HEIGHT)
            .page_margin(margin)
            .default_fonts(fonts(SONG))
            .default_size(BODY.size);
        if let Some(day) = calendar_date(&campaign.end_date) {
            let at = format!("{day}T00:00:00Z");
            docx = docx.created_at(&at).updated_at(&at);
        }
        Writer { docx, paragraphs: 0 }
    }

    /// A new paragraph with the next id.
    fn para(&mut self) -> Paragraph {
        self.paragraphs += 1;
        Paragraph::new().id(format!("{:08X}", self.paragraphs))
    }

    /// A paragraph in a table cell: single spacing, nothing after.
    fn cell_para(&mut self, text: &str, face: Face) -> Paragraph {
        self.para().line_spacing(LineSpacing::new().line(240).after(0)).add_run(run(text, face))
    }

    /// Adds paragraph `p` to the body.
    fn push(&mut self, p: Paragraph) {
        self.docx = std::mem::take(&mut self.docx).add_paragraph(p);
    }

    /// Adds table `t` to the body.
    fn push_table(&mut self, t: Table) {
        self.docx = std::mem::take(&mut self.docx).add_table(t);
    }

    /// The title, centred.
    fn title(&mut self) {
        let p = self.para().align(AlignmentType::Center).line_spacing(LineSpacing::new().before(240).after(120));
        self.push(p.add_run(run("整改通知书", TITLE)));
    }

    /// `label：value`, a dash for an empty value.
    fn field(&mut self, label: &str, value: &str) {
        let p = self.para().line_spacing(LineSpacing::new().line(360).after(0));
        self.push(p.add_run(run(&format!("{label}："), LABEL)).add_run(run(or_dash(value), BODY)));
    }

    /// A sentence of the body, its first line indented by two characters.
    fn sentence(&mut self, text: &str) {
        let p = self.para().line_spacing(LineSpacing::new().line(360).after(0));
        let p = p.indent(None, Some(SpecialIndentType::FirstLine(2 * BODY_CHAR)), None, None);
        self.push(p.add_run(run(text, BODY)));
    }

    /// A block's heading, kept with what follows.
    fn heading(&mut self, text: &str) {
        let p = self.para().keep_next(true).line_spacing(LineSpacing::new().before(240).after(120));
        self.push(p.add_run(run(text, HEADING)));
    }

    /// The hazards, one row each.
    fn hazards(&mut self, hazards: &[(&String, &Hazard)]) {
        let headers = ["序号", "隐患部位", "隐患描述", "等级", "依据", "整改要求与期限"];
        let mut rows = vec![
            TableRow::new(
                headers
                    .iter()
                    .zip(COLUMNS)
                    .map(|(h, width)| {
                        let p = self.cell_para(h, CELL_BOLD).align(AlignmentType::Center);
                        cell(width).shading(Shading::new().fill("D9D9D9")).add_paragraph(p)
                    })
                    .collect(),
            )
            .cant_split(),
        ];
        for (i, (_, h)) in hazards.iter().enumerate() {
            let number = self.cell_para(&(i + 1).to_string(), CELL).align(AlignmentType::Center);
            let location = self.cell_para(or_dash(&h.location.text), CELL);
            let mut described = cell(COLUMNS[2]);
            if !h.title.trim().is_empty() {
                described = described.add_paragraph(self.cell_para(h.title.trim(), CELL_BOLD));
            }
            if !h.description.trim().is_empty() || h.title.trim().is_empty() {
                described = described.add_paragraph(self.cell_para(or_dash(&h.description), CELL));
            }
            let level = if h.level == HazardLevel::Major { CELL_BOLD } else { CELL };
            let level = self.cell_para(h.level.label(), level).align(AlignmentType::Center);
            let (basis, requirement) = (basis(h), requirement(h));
            let text = format!("{}\n{}", h.title.trim(), h.description.trim());
            let tallest = [(1, h.location.text.as_str()), (2, &text), (4, &basis), (5, &requirement)]
                .into_iter()
                .map(|(column, text)| lines(COLUMNS[column], text))
                .max()
                .unwrap_or(0);
            let row = TableRow::new(vec![
                cell(COLUMNS[0]).vertical_align(VAlignType::Center).add_paragraph(number),
                cell(COLUMNS[1]).add_paragraph(location),
                described,
                cell(COLUMNS[3]).vertical_align(VAlignType::Center).add_paragraph(level),
                cell(COLUMNS[4]).add_paragraph(self.cell_para(&basis, CELL)),
                cell(COLUMNS[5]).add_paragraph(self.cell_para(&requirement, CELL)),
            ]);
            rows.push(if tallest <= KEPT_LINES { row.cant_split() } else { row });
        }
        self.push_table(table(rows, &COLUMNS));
    }

    /// The numbered requirements; the first only when there is a major
    /// hazard.
    fn requirements(&mut self, major: bool) {
        self.heading("整改要求");
        let items = [
            "对重大事故隐患，立即停止相关区域、部位的作业，撤出作业人员，制定隐患治理方案（目标任务、措施、资金、期限、责任人和应急预案），治理完成并经复查合格后方可恢复作业。",
            "对所列隐患逐条整改，在整改期限内将整改情况书面回复检查组，并附整改前后对比照片。",
            "整改期间落实临时管控措施，明确专人负责；无法保证安全的，停止相关作业。",
            "逾期未整改或整改不到位的，依法依规处理。",
        ];
        for (i, item) in items.iter().skip(usize::from(!major)).enumerate() {
            let hanging = SpecialIndentType::Hanging(3 * BODY_CHAR / 2);
            let p = self.para().line_spacing(LineSpacing::new().line(360).after(0));
            let p = p.indent(Some(2 * BODY_CHAR), Some(hanging), None, None);
            self.push(p.add_run(run(&format!("{}. {item}", i + 1), BODY)));
        }
    }

    /// The enterprise's reply: what was done, by whom, when, signed.
    fn reply(&mut self) {
        self.heading("整改回复");
        let rows = vec![
            self.wide_row("整改完成情况\n（逐条说明，附整改前后照片）", 2_400.0),
            self.pair_row(["整改责任人", "回复日期"]),
            self.wide_row("单位负责人签字\n（盖章）", 900.0),
        ];
        self.push_table(table(rows, &FORM_COLUMNS));
    }

    /// The re-inspection: the opinion, by whom and when.
    fn review(&mut self) {
        self.heading("复查意见");
        let rows = vec![self.wide_row("复查意见", 2_400.0), self.pair_row(["复查人", "复查日期"])];
        self.push_table(table(rows, &FORM_COLUMNS));
    }

    /// A form row: a label, then blank space across the rest, at least
    /// `height` high (twentieths of a point).
    fn wide_row(&mut self, label: &str, height: f32) -> TableRow {
        let label = self.cell_para(label, CELL_BOLD).align(AlignmentType::Center);
        let blank = self.cell_para("", CELL);
        let width = FORM_COLUMNS[1] + FORM_COLUMNS[2] + FORM_COLUMNS[3];
        TableRow::new(vec![
            cell(FORM_COLUMNS[0]).vertical_align(VAlignType::Center).add_paragraph(label),
            cell(width).grid_span(3).add_paragraph(blank),
        ])
        .row_height(height)
        .cant_split()
    }

    /// A form row of two labels, each with blank space beside it.
    fn pair_row(&mut self, labels: [&str; 2]) -> TableRow {
        let mut cells = Vec::new();
        for (i, label) in labels.into_iter().enumerate() {
            let label = self.cell_para(label, CELL_BOLD).align(AlignmentType::Center);
            let blank = self.cell_para("", CELL);
            cells.push(cell(FORM_COLUMNS[2 * i]).vertical_align(VAlignType::Center).add_paragraph(label));
            cells.push(cell(FORM_COLUMNS[2 * i + 1]).add_paragraph(blank));
        }
        TableRow::new(cells).row_height(600.0).cant_split()
    }

    /// The inspection team's seal and date, and the enterprise's receipt.
    fn signature(&mut self, end_date: &str) {
        let copies = self.para().keep_next(true).line_spacing(LineSpacing::new().before(240).line(360).after(0));
        self.push(copies.add_run(run("本通知书一式两份，检查组和被检查单位各执一份。", BODY)));
        let seal = self.para().keep_next(true).align(AlignmentType::Right).line_spacing(LineSpacing::new().before(480));
        self.push(seal.add_run(run("检查组（盖章）", BODY)));
        let date = self.para().keep_next(true).align(AlignmentType::Right).line_spacing(LineSpacing::new().before(120));
        self.push(date.add_run(run(or_dash(&chinese_date(end_date)), BODY)));
        let receipt = self.para().line_spacing(LineSpacing::new().before(480));
        self.push(receipt.add_run(run("被检查单位签收：________________    日期：________________", BODY)));
    }

    /// The .docx bytes: docx-rs's package written again at a fixed time, its
    /// parts in the same order (directories, which Office needs not, left
    /// out).
    fn finish(self) -> Result<Vec<u8>> {
        let mut packed = std::io::Cursor::new(Vec::new());
        self.docx.pack(&mut packed).context("无法生成整改通知书")?;
        let mut archive =
            zip::ZipArchive::new(std::io::Cursor::new(packed.into_inner())).context("整改通知书的文件包无法读取")?;
        let mut parts = Vec::with_capacity(archive.len());
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).context("整改通知书的文件包无法读取")?;
            if entry.is_dir() {
                continue;
            }
            let name = entry.name().context("整改通知书的文件包无法读取")?.into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).with_context(|| format!("整改通知书的 {name} 无法读取"))?;
            parts.push((name, bytes));
        }
        super::pptx::zip(parts)
    }
}

/// A table cell `width` wide.
fn cell(width: usize) -> TableCell {
    TableCell::new().width(width, WidthType::Dxa)
}

/// About how many lines `text` takes in a table cell `width` wide: every
/// character counted as wide as a Chinese one.
fn lines(width: usize, text: &str) -> usize {
    let per_line = (width.saturating_sub(2 * CELL_PADDING[1]) / CELL_CHAR).max(1);
    text.split('\n').map(|line| line.chars().count().div_ceil(per_line).max(1)).sum()
}

/// A table across the text width, its columns fixed at `columns`.
fn table(rows: Vec<TableRow>, columns: &[usize]) -> Table {
    let [vertical, horizontal] = CELL_PADDING;
    Table::new(rows)
        .set_grid(columns.to_vec())
        .layout(TableLayoutType::Fixed)
        .width(TEXT_WIDTH, WidthType::Dxa)
        .margins(TableCellMargins::new().margin(vertical, horizontal, vertical, horizontal))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sync_core::automerge::Automerge;
    use sync_core::codes::{self, AccidentType};
    use sync_core::doc::{self, edit};
    use sync_core::ids::{DocId, EntityId};
    use sync_core::model::{
        CampaignKind, Domain, Enterprise, HazardKind, Location, Rectification, RectificationMode, Step, StepKind,
        TeamMember,
    };
    use sync_core::rectification::Signer;

    use super::*;

    const CODES: [&str; 2] = ["91640200MA76XYW123", "91640200MA76XYW131"];
    const MARKUP: &str = "<b>&\"'</b>";
    const SERIAL: &str = "石工风检〔2026〕第3号";

    /// A general hazard titled `title`, found at `found_at`, nothing planned.
    fn hazard(title: &str, found_at: &str) -> Hazard {
        Hazard {
            subcontractor: String::new(),
            title: title.into(),
            description: "外架连墙件缺失".into(),
            hazard_kind: HazardKind::UnsafeCondition,
            accident_type: AccidentType::gb6441_1986("10").unwrap(),
            level: HazardLevel::General,
            major_hazard_criterion: None,
            location: Location { text: "3号楼东侧".into(), gps: None },
            legal_basis: "JGJ 59-2011 第3.3.3条".into(),
            photos: BTreeMap::new(),
            inspector: "张三".into(),
            found_at: found_at.into(),
            found_on: String::new(),
            checklist_item: None,
            deleted: false,
            rectification: Rectification::default(),
        }
    }

    /// A campaign of two enterprises with a team of two: the first has a
    /// major hazard with a plan (found by someone not on the team), a
    /// general one found earlier whose title and 5,000-character
    /// description carry markup, and a deleted one; the second has none.
    fn world() -> (Campaign, Vec<Dossier>) {
        let id = DocId::new_campaign([7; 16]);
        let mut c = Automerge::new();
        edit(&mut c, 1, |tx| {
            doc::campaign::create(
                tx,
                &id,
                "石嘴山市建筑施工工伤风险联合检查",
                CampaignKind::ConstructionJointInspection,
                "2026-11-24",
                "2026-11-25",
            )
        })
        .unwrap();
        for (i, name) in ["张三", "李四"].into_iter().enumerate() {
            let member = TeamMember { name: name.into(), role: "检查员".into(), organization: String::new() };
            edit(&mut c, 2, |tx| doc::campaign::add_member(tx, &EntityId::new(2, i as u128 + 1), &member)).unwrap();
        }
        for (i, code) in CODES.iter().enumerate() {
            let code = code.parse().unwrap();
            let e = Enterprise {
                name: format!("宁夏第{}建筑有限公司", i + 1),
                dossier_id: DocId::dossier(&id, &code),
                unified_social_credit_code: code,
                domain: Domain::Construction,
                project: if i == 0 { "星海花园3号楼".into() } else { String::new() },
                address: "石嘴山市大武口区".into(),
            };
            edit(&mut c, 3, |tx| doc::campaign::add_enterprise(tx, &id, &e)).unwrap();
        }
        let campaign = doc::campaign::read(&c).unwrap();

        let major = Hazard {
            level: HazardLevel::Major,
            major_hazard_criterion: Some(codes::criteria()[0].id.clone()),
            inspector: "王五".into(),
            ..hazard("深基坑未按方案开挖", "2026-11-24T06:00:00Z")
        };
        let general = Hazard {
            description: format!("{MARKUP}{}", "脚手架".repeat(1_665)).chars().take(5_000).collect(),
            ..hazard(&format!("外架{MARKUP}连墙件"), "2026-11-24T02:00:00Z")
        };
        let deleted = Hazard { deleted: true, ..hazard("已删除的隐患", "2026-11-24T01:00:00Z") };
        let mut first = doc::dossier::create(&id, &CODES[0].parse().unwrap()).unwrap();
        let ids: Vec<EntityId> = (1..=3).map(|n| EntityId::new(4, n)).collect();
        for (id, h) in ids.iter().zip([&major, &general, &deleted]) {
            edit(&mut first, 4, |tx| doc::dossier::add_hazard(tx, id, h)).unwrap();
        }
        let plan = Step {
            mode: Some(RectificationMode::Deadline),
            deadline: Some("2026-12-01".into()),
            owner: "赵六".into(),
            measures: "按专项方案分层开挖并加设支护".into(),
            ..Step::new(StepKind::Plan)
        };
        let signer = Signer { name: "张三".into(), role: Some("inspector".into()) };
        edit(&mut first, 5, |tx| {
            doc::dossier::add_step(tx, &ids[0], &EntityId::new(5, 1), plan, &signer, "2026-11-24T07:00:00Z".into())
        })
        .unwrap();
        let second = doc::dossier::create(&id, &CODES[1].parse().unwrap()).unwrap();
        let dossiers = [first, second].iter().map(|d| doc::dossier::read(d).unwrap()).collect();
        (campaign, dossiers)
    }

    /// The notice of `dossier`, which must come out.
    fn notice_of(campaign: &Campaign, dossier: &Dossier) -> Vec<u8> {
        notice(&Notice { serial: SERIAL.into(), campaign, dossier }).unwrap()
    }

    /// The parts of a ZIP by name, checking each was stored at the fixed
    /// time.
    fn parts(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("the .docx unzips");
        let mut out = BTreeMap::new();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).unwrap();
            assert_eq!(entry.last_modified(), Some(zip::DateTime::default()), "{}", entry.name().unwrap());
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            out.insert(entry.name().unwrap().into_owned(), content);
        }
        out
    }

    /// The text of `document.xml`, paragraph by paragraph, after checking it
    /// is well-formed and that every run names an East Asian typeface.
    fn paragraphs(xml: &[u8]) -> Vec<String> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_reader(xml);
        let (mut out, mut buf) = (Vec::new(), Vec::new());
        let (mut in_text, mut run_font) = (false, None::<bool>);
        loop {
            match reader.read_event_into(&mut buf).unwrap_or_else(|e| panic!("not well-formed XML: {e}")) {
                Event::Start(e) => match e.name().as_ref() {
                    "w:p" => out.push(String::new()),
                    "w:r" => run_font = Some(false),
                    "w:t" => in_text = true,
                    _ => {}
                },
                Event::Empty(e)
                    if e.name().as_ref() == "w:rFonts"
                        && run_font.is_some()
                        && e.try_get_attribute("w:eastAsia").unwrap().is_some() =>
                {
                    run_font = Some(true);
                }
                Event::Text(t) if in_text => out.last_mut().unwrap().push_str(&t.xml10_content()),
                Event::GeneralRef(r) if in_text => {
                    let c = match r.as_ref() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        other => panic!("unexpected entity {other}"),
                    };
                    out.last_mut().unwrap().push_str(c);
                }
                Event::End(e) => match e.name().as_ref() {
                    "w:t" => in_text = false,
                    "w:r" => assert_eq!(run_font.take(), Some(true), "a run without an East Asian typeface"),
                    _ => {}
                },
                Event::Eof => return out,
                _ => {}
            }
            buf.clear();
        }
    }

    #[test]
    fn a_notice_lists_the_hazards_as_text_with_east_asian_fonts_and_the_same_bytes_each_time() {
        let (campaign, dossiers) = world();
        let bytes = notice_of(&campaign, &dossiers[0]);
        if let Some(path) = std::env::var_os("FIELDSYNC_NOTICE_OUT") {
            std::fs::write(path, &bytes).unwrap();
        }
        let parts = parts(&bytes);
        let document = &parts["word/document.xml"];
        let text = paragraphs(document);
        let all = text.join("\n");

        let general = &dossiers[0].hazards.values().find(|h| h.title.contains(MARKUP)).unwrap();
        assert!(all.contains(&format!("外架{MARKUP}连墙件")), "markup is text");
        assert!(all.contains(&general.description), "the whole description");
        assert_eq!(general.description.chars().count(), 5_000);
        assert!(all.contains("深基坑未按方案开挖"));
        assert!(!all.contains("已删除的隐患"));
        let order = |s: &str| all.find(s).unwrap();
        assert!(order("外架<b>") < order("深基坑"), "hazards in the order found");

        for line in [
            "整改通知书",
            SERIAL,
            "被检查单位：宁夏第1建筑有限公司",
            "统一社会信用代码：91640200MA76XYW123",
            "工程项目：星海花园3号楼",
            "地址：石嘴山市大武口区",
            "检查时间：2026年11月24日 至 2026年11月25日",
            "检查人员：张三、李四、王五",
            "2026年11月25日",
        ] {
            assert!(text.iter().any(|p| p == line), "{line} in {text:#?}");
        }
        let criterion = &codes::criteria()[0];
        assert!(all.contains(&format!("{} {}", criterion.document_no, criterion.clause)));
        assert!(all.contains("限期整改，期限：2026年12月1日"));
        assert!(all.contains("整改措施：按专项方案分层开挖并加设支护"));
        assert!(all.contains(NO_PLAN), "the general hazard has no plan yet");
        assert!(all.contains("对重大事故隐患，立即停止"));
        for block in ["整改要求", "整改回复", "复查意见", "检查组（盖章）", "被检查单位签收："]
        {
            assert!(all.contains(block), "{block}");
        }
        assert!(!all.contains("本次检查未发现事故隐患"));

        let document = String::from_utf8(document.clone()).unwrap();
        assert!(document.contains(r#"w:eastAsia="宋体""#) && document.contains(r#"w:eastAsia="黑体""#));
        assert!(String::from_utf8_lossy(&parts["word/styles.xml"]).contains(r#"w:eastAsia="宋体""#));
        assert!(String::from_utf8_lossy(&parts["docProps/core.xml"]).contains("2026-11-25T00:00:00Z"));

        assert_eq!(notice_of(&campaign, &dossiers[0]), bytes, "the same bytes again");
        let elsewhere = std::thread::spawn(move || {
            // Whatever else the thread built before.
            let _ = docx_rs::Paragraph::new();
            notice_of(&campaign, &dossiers[0])
        });
        assert_eq!(elsewhere.join().unwrap(), bytes, "the same bytes on a thread that built something else");
    }

    #[test]
    fn an_enterprise_without_hazards_is_told_so() {
        let (campaign, dossiers) = world();
        let text = paragraphs(&parts(&notice_of(&campaign, &dossiers[1]))["word/document.xml"]);
        assert!(text.iter().any(|p| p == "本次检查未发现事故隐患。"));
        assert!(text.iter().any(|p| p == "工程项目：—"));
        assert!(text.iter().any(|p| p == "检查人员：张三、李四"));
        assert!(!text.iter().any(|p| p.contains("隐患描述") || p.contains("整改回复")));
        assert!(text.iter().any(|p| p == "检查组（盖章）"));
    }

    #[test]
    fn characters_xml_cannot_hold_are_dropped_and_line_breaks_kept() {
        let (campaign, mut dossiers) = world();
        let h = dossiers[0].hazards.values_mut().find(|h| h.level == HazardLevel::Major).unwrap();
        h.title = "深基坑\u{0}\u{1b}\u{FFFF}未按方案开挖".into();
        h.description = "第一行\r\n第二行\u{7}\t完".into();
        let parts = parts(&notice_of(&campaign, &dossiers[0]));
        let document = String::from_utf8(parts["word/document.xml"].clone()).unwrap();
        let text = paragraphs(document.as_bytes()).join("\n");
        assert!(text.contains("深基坑未按方案开挖"));
        assert!(text.contains("第一行第二行 完"), "a break between the lines, not text");
        assert!(document.contains("第一行</w:t><w:br w:type=\"textWrapping\""), "{document}");
    }

    #[test]
    fn rows_are_measured_in_lines_of_their_column() {
        let per_line = (COLUMNS[2] - 2 * CELL_PADDING[1]) / CELL_CHAR;
        assert_eq!(lines(COLUMNS[2], ""), 1);
        assert_eq!(lines(COLUMNS[2], &"字".repeat(per_line)), 1);
        assert_eq!(lines(COLUMNS[2], &"字".repeat(per_line + 1)), 2);
        assert_eq!(lines(COLUMNS[2], "标题\n描述"), 2);
        assert!(lines(COLUMNS[2], &"字".repeat(5_000)) > KEPT_LINES, "a long description breaks across pages");
    }

    #[test]
    fn a_dossier_outside_the_campaign_is_refused() {
        let (campaign, mut dossiers) = world();
        let mut other = dossiers[1].clone();
        other.campaign_id = DocId::new_campaign([8; 16]);
        let err = notice(&Notice { serial: SERIAL.into(), campaign: &campaign, dossier: &other }).unwrap_err();
        assert!(err.to_string().contains("不属于检查活动"), "{err}");
        dossiers[1].enterprise = "91640200MA76XYW999".into();
        let err = notice(&Notice { serial: SERIAL.into(), campaign: &campaign, dossier: &dossiers[1] }).unwrap_err();
        assert!(err.to_string().contains("没有被检查单位"), "{err}");
    }
}
