//! HQ's exports of a campaign's hazard register (from the read model):
//! CSV (UTF-8 with BOM, so Excel and WPS on a Chinese Windows read it),
//! XLSX (a summary sheet, then one sheet per enterprise: frozen header,
//! filters, column widths), JSON, and a ZIP of the XLSX with every photo
//! the register names, under names a person can find. Columns and rows are
//! `sync_core::register`'s, the same a device's `field export csv` writes.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use rust_xlsxwriter::{Format, FormatAlign, Workbook, Worksheet};
use sync_core::register::{REGISTER_COLUMNS, STEP_COLUMNS};

use crate::read::query::Register;

/// The formats an export is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExportFormat {
    /// CSV, UTF-8 with BOM.
    Csv,
    /// An Excel workbook.
    Xlsx,
    /// JSON: the columns and the rows.
    Json,
    /// A ZIP: the XLSX, and the photos.
    Zip,
}

impl ExportFormat {
    /// From its name (`csv`, `xlsx`, `json`).
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "csv" => Some(Self::Csv),
            "xlsx" => Some(Self::Xlsx),
            "json" => Some(Self::Json),
            "zip" => Some(Self::Zip),
            _ => None,
        }
    }

    /// The file name extension.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
            Self::Json => "json",
            Self::Zip => "zip",
        }
    }

    /// The media type.
    pub(crate) fn media_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Json => "application/json",
            Self::Zip => "application/zip",
        }
    }
}

/// The register written as `format`; photos (for a ZIP) from the store
/// directory `photos` (HQ's `<data>/sync`).
pub(crate) fn register(register: &Register, format: ExportFormat, photos: &Path) -> Result<Vec<u8>> {
    match format {
        ExportFormat::Csv => csv(register),
        ExportFormat::Xlsx => xlsx(register),
        ExportFormat::Zip => zip(register, photos),
        ExportFormat::Json => {
            let rows: Vec<&Vec<String>> = register.enterprises.iter().flat_map(|(_, rows)| rows).collect();
            let body = serde_json::json!({ "campaign": register.name, "columns": REGISTER_COLUMNS, "rows": rows });
            Ok(serde_json::to_vec_pretty(&body)?)
        }
    }
}

/// A file name a person can find: `隐患台账-<campaign>.<ext>`, with
/// characters file systems refuse replaced.
pub(crate) fn file_name(register: &Register, format: ExportFormat) -> String {
    let name = sync_core::register::file_name(&register.name);
    format!("隐患台账-{}.{}", if name.is_empty() { "检查活动" } else { &name }, format.extension())
}

/// `name` made safe as a file name in an archive.
/// The XLSX, then each photo the register names, at the path its cell
/// gives (`照片/<隐患编号>/<文件名>`), stored as it is (photos are
/// compressed already). A photo HQ does not hold (yet) is listed in
/// `缺少的照片.txt`.
fn zip(register: &Register, photos: &Path) -> Result<Vec<u8>> {
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    archive.start_file(file_name(register, ExportFormat::Xlsx), stored)?;
    archive.write_all(&xlsx(register)?)?;
    let mut missing = Vec::new();
    let rows = register.enterprises.iter().flat_map(|(_, rows)| rows);
    for (row, row_photos) in rows.zip(&register.photos) {
        let number = &row[0];
        for photo in row_photos {
            let file = sync_core::ids::is_blob_name(&photo.sha).then(|| field_client::blob_path(photos, &photo.sha));
            let Some(bytes) = file.and_then(|f| std::fs::read(f).ok()) else {
                missing.push(format!("{number}\t{}\t{}", photo.sha, photo.path));
                continue;
            };
            archive.start_file(photo.path.as_str(), stored)?;
            archive.write_all(&bytes)?;
        }
    }
    if !missing.is_empty() {
        archive.start_file("缺少的照片.txt", stored)?;
        let text = format!("总部尚未收到以下照片（序号、SHA-256、台账中的文件名）：\n{}\n", missing.join("\n"));
        archive.write_all(text.as_bytes())?;
    }
    Ok(archive.finish()?.into_inner())
}

fn csv(register: &Register) -> Result<Vec<u8>> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record(REGISTER_COLUMNS)?;
        for row in register.enterprises.iter().flat_map(|(_, rows)| rows) {
            w.write_record(row)?;
        }
        w.flush()?;
    }
    Ok(out)
}

/// The index of `column` in the register.
fn column(name: &str) -> usize {
    REGISTER_COLUMNS.iter().position(|c| *c == name).unwrap_or_default()
}

/// A sheet name Excel accepts: at most 31 characters, none of `[]:*?/\`,
/// unique in the workbook.
fn sheet_name(name: &str, taken: &mut BTreeSet<String>) -> String {
    let clean: String = name.chars().filter(|c| !"[]:*?/\\".contains(*c) && !c.is_control()).take(28).collect();
    let clean = if clean.trim().is_empty() { "企业".to_owned() } else { clean.trim().to_owned() };
    let mut candidate = clean.clone();
    let mut n = 1;
    while !taken.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{clean}{n}");
    }
    candidate
}

fn write_rows(sheet: &mut Worksheet, header: &[&str], rows: &[Vec<String>], (bold, wrap): Styles) -> Result<()> {
    for (c, title) in header.iter().enumerate() {
        let c = u16::try_from(c)?;
        sheet.write_string_with_format(0, c, *title, bold)?;
        let widest = rows.iter().map(|r| r.get(usize::from(c)).map_or(0, |v| shown_width(v))).max().unwrap_or(0);
        let width = (widest.max(shown_width(title)) + 2).clamp(6, 40);
        sheet.set_column_width(c, width as f64)?;
    }
    for (r, row) in rows.iter().enumerate() {
        let r = u32::try_from(r + 1)?;
        for (c, value) in row.iter().enumerate() {
            sheet.write_string_with_format(r, u16::try_from(c)?, value, wrap)?;
        }
    }
    let last_column = u16::try_from(header.len().saturating_sub(1))?;
    sheet.set_freeze_panes(1, 0)?;
    // Printed as registers are filed: A3 landscape, the header row and the
    // first two columns (number, id) on every page, long texts wrapped.
    sheet.set_paper_size(PAPER_A3).set_landscape();
    sheet.set_repeat_rows(0, 0)?;
    sheet.set_repeat_columns(0, 1.min(last_column))?;
    let last_row = u32::try_from(rows.len())?;
    sheet.autofilter(0, 0, last_row, last_column)?;
    Ok(())
}

/// How many columns `text` takes: Chinese characters about two, others
/// one.
fn shown_width(text: &str) -> usize {
    text.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

/// The header's format, and the cells' (wrapped, top-aligned).
type Styles<'a> = (&'a Format, &'a Format);

/// Excel's number for A3 paper.
const PAPER_A3: u8 = 8;

/// The last sheet: every rectification step of the register's hazards.
const STEPS_SHEET: &str = "整改步骤";

fn xlsx(register: &Register) -> Result<Vec<u8>> {
    let mut workbook = Workbook::new();
    let (bold, wrap) = (Format::new().set_bold(), Format::new().set_text_wrap().set_align(FormatAlign::Top));
    let styles = (&bold, &wrap);
    let (level, status) = (column("隐患等级"), column("整改状态"));
    let summary_header = ["被检查单位", "隐患条数", "重大隐患", "已销号", "整改率"];
    let summary: Vec<Vec<String>> = register
        .enterprises
        .iter()
        .map(|(name, rows)| {
            let major = rows.iter().filter(|r| r[level] == "重大").count();
            let closed = rows.iter().filter(|r| r[status] == "已销号").count();
            let rate = if rows.is_empty() {
                String::new()
            } else {
                format!("{:.1}%", closed as f64 * 100.0 / rows.len() as f64)
            };
            vec![name.clone(), rows.len().to_string(), major.to_string(), closed.to_string(), rate]
        })
        .collect();
    let mut taken = BTreeSet::from(["汇总".to_owned(), STEPS_SHEET.to_owned()]);
    write_rows(workbook.add_worksheet().set_name("汇总")?, &summary_header, &summary, styles)?;
    for (name, rows) in &register.enterprises {
        let sheet = workbook.add_worksheet().set_name(sheet_name(name, &mut taken))?;
        write_rows(sheet, REGISTER_COLUMNS, rows, styles)?;
    }
    write_rows(workbook.add_worksheet().set_name(STEPS_SHEET)?, STEP_COLUMNS, &register.steps, styles)?;
    workbook.save_to_buffer().context("XLSX 写入失败")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_are_what_excel_takes_and_unique() {
        let mut taken = BTreeSet::from(["汇总".to_owned()]);
        assert_eq!(sheet_name("某建设集团[东区]/3号楼", &mut taken), "某建设集团东区3号楼");
        assert_eq!(sheet_name("某建设集团[东区]/3号楼", &mut taken), "某建设集团东区3号楼2");
        assert_eq!(sheet_name("汇总", &mut taken), "汇总2");
        assert_eq!(sheet_name("::", &mut taken), "企业");
        assert!(sheet_name(&"很长的企业名称".repeat(10), &mut taken).chars().count() <= 31);
    }
}
