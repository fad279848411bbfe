//! The deck as one self-contained HTML file: the same slides as the .pptx,
//! charts drawn as inline SVG, photos inlined, nothing fetched from
//! outside; a print stylesheet makes the browser's print a clean 16:9 PDF,
//! one slide per page.

use std::fmt::Write as _;

use anyhow::Result;
use askama::Template;
use base64::Engine as _;
use sync_core::deck::{Body, Chart, ChartKind, Deck, Table, Typical};

use super::pptx::{Picture, esc};

#[derive(Template)]
#[template(path = "briefing.html")]
struct Page<'a> {
    title: &'a str,
    subtitle: &'a str,
    slides: Vec<Shown<'a>>,
}

/// A slide as the page shows it.
struct Shown<'a> {
    title: &'a str,
    notes: &'a str,
    body: View<'a>,
}

enum View<'a> {
    Bullets(&'a [String]),
    Table(&'a Table),
    /// The chart drawn as SVG (built here, its texts escaped).
    Chart(String),
    Hazard(&'a Typical, Option<String>),
}

/// Writes `deck` as HTML; `photo` as for the .pptx.
pub(crate) fn write(deck: &Deck, photo: &dyn Fn(&str) -> Option<Picture>) -> Result<Vec<u8>> {
    let slides = deck
        .slides
        .iter()
        .map(|s| Shown {
            title: &s.title,
            notes: &s.notes,
            body: match &s.body {
                Body::Bullets(lines) => View::Bullets(lines),
                Body::Table(table) => View::Table(table),
                Body::Chart(chart) => View::Chart(svg(chart)),
                Body::Hazard(t) => {
                    let inlined = t.photo.as_deref().and_then(photo).map(|p| {
                        format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(p.jpeg))
                    });
                    View::Hazard(t, inlined)
                }
            },
        })
        .collect();
    let page = Page { title: &deck.title, subtitle: &deck.subtitle, slides };
    Ok(page.render()?.into_bytes())
}

const COLORS: [&str; 4] = ["#2F5597", "#C00000", "#ED7D31", "#70AD47"];
const FONT: &str = r#"font-family="Microsoft YaHei, 微软雅黑, Noto Sans CJK SC, sans-serif""#;

/// A chart as SVG, 960 × 440 user units.
fn svg(chart: &Chart) -> String {
    let mut s = format!(r#"<svg viewBox="0 0 960 440" role="img" {FONT} font-size="14">"#);
    match chart.kind {
        ChartKind::Pie => pie(&mut s, chart),
        ChartKind::Column => columns(&mut s, chart),
        ChartKind::Bar => bars(&mut s, chart),
    }
    s.push_str("</svg>");
    s
}

fn legend(s: &mut String, names: &[&str], y: u32) {
    let mut x = 480 - names.iter().map(|n| 28 + 16 * n.chars().count() as u32).sum::<u32>() / 2;
    for (i, name) in names.iter().enumerate() {
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{y}">{}</text>"#,
            y - 11,
            COLORS[i % COLORS.len()],
            x + 18,
            esc(name)
        );
        x += 28 + 16 * name.chars().count() as u32;
    }
}

fn columns(s: &mut String, chart: &Chart) {
    let (left, top, width, height) = (60.0, 20.0, 880.0, 340.0);
    let max = chart.series.iter().flat_map(|x| &x.values).copied().max().unwrap_or(0).max(1) as f64;
    let n = chart.categories.len().max(1) as f64;
    let group = width / n;
    let bar = (group * 0.7) / chart.series.len().max(1) as f64;
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#888"/>"##,
        top + height,
        left + width,
        top + height
    );
    for (c, category) in chart.categories.iter().enumerate() {
        let x0 = left + group * c as f64 + group * 0.15;
        for (i, series) in chart.series.iter().enumerate() {
            let v = series.values.get(c).copied().unwrap_or(0);
            let h = height * v as f64 / max;
            let x = x0 + bar * i as f64;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{v}</text>"#,
                top + height - h,
                bar * 0.92,
                COLORS[i % COLORS.len()],
                x + bar * 0.46,
                top + height - h - 6.0
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            left + group * (c as f64 + 0.5),
            top + height + 22.0,
            esc(category)
        );
    }
    let names: Vec<&str> = chart.series.iter().map(|x| x.name.as_str()).collect();
    legend(s, &names, 425);
}

fn bars(s: &mut String, chart: &Chart) {
    let (left, top, width, height) = (200.0, 10.0, 700.0, 410.0);
    let values = chart.series.first().map(|x| x.values.as_slice()).unwrap_or_default();
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let row = height / chart.categories.len().max(1) as f64;
    let thick = (row * 0.7).min(36.0);
    for (c, category) in chart.categories.iter().enumerate() {
        let v = values.get(c).copied().unwrap_or(0);
        let y = top + row * c as f64 + (row - thick) / 2.0;
        let w = width * v as f64 / max;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{left}" y="{y:.1}" width="{w:.1}" height="{thick:.1}" fill="{}"/><text x="{:.1}" y="{:.1}">{v}</text>"#,
            left - 8.0,
            y + thick / 2.0 + 5.0,
            esc(category),
            COLORS[0],
            left + w + 6.0,
            y + thick / 2.0 + 5.0
        );
    }
}

fn pie(s: &mut String, chart: &Chart) {
    let values = chart.series.first().map(|x| x.values.as_slice()).unwrap_or_default();
    let total: u64 = values.iter().sum();
    let (cx, cy, r) = (330.0f64, 210.0f64, 180.0f64);
    let mut angle = -std::f64::consts::FRAC_PI_2;
    for (i, v) in values.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        if total == 0 || *v == 0 {
            continue;
        }
        let sweep = std::f64::consts::TAU * *v as f64 / total as f64;
        if *v == total {
            let _ = write!(s, r#"<circle cx="{cx}" cy="{cy}" r="{r}" fill="{color}"/>"#);
        } else {
            let (x1, y1) = (cx + r * angle.cos(), cy + r * angle.sin());
            let (x2, y2) = (cx + r * (angle + sweep).cos(), cy + r * (angle + sweep).sin());
            let large = u8::from(sweep > std::f64::consts::PI);
            let _ = write!(
                s,
                r#"<path d="M{cx},{cy} L{x1:.1},{y1:.1} A{r},{r} 0 {large} 1 {x2:.1},{y2:.1} Z" fill="{color}"/>"#
            );
        }
        angle += sweep;
    }
    for (i, (category, v)) in chart.categories.iter().zip(values).enumerate() {
        let share = if total == 0 { 0.0 } else { *v as f64 * 100.0 / total as f64 };
        let y = 150 + 36 * i as u32;
        let _ = write!(
            s,
            r#"<rect x="580" y="{}" width="16" height="16" fill="{}"/><text x="604" y="{y}" font-size="18">{}：{v} 条（{share:.1}%）</text>"#,
            y - 14,
            COLORS[i % COLORS.len()],
            esc(category)
        );
    }
}
