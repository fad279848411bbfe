//! The deck as an editable .pptx (PowerPoint's and WPS's format), written
//! by hand: no crate here sets the East Asian typeface of a run, links a
//! chart to its data workbook as "Edit data" needs, and writes the same
//! bytes for the same deck (the `pptx` and `ppt-rs` crates were tried;
//! see the commit that added this file). What is written:
//!
//! - one slide master and one blank layout; every shape placed explicitly,
//!   every run naming 微软雅黑 for Latin and East Asian text;
//! - charts as native charts (`ppt/charts/`), each with its data as an
//!   embedded workbook (rust_xlsxwriter) that "Edit data" opens;
//! - tables as native tables, photos as pictures, speaker notes as notes
//!   slides;
//! - a ZIP with its entries in a fixed order and a fixed time, stored, so
//!   the same deck gives the same bytes.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::{Context, Result};
use sync_core::deck::{Body, Chart, ChartKind, Deck, Slide, Table, Typical};

/// The typeface every run names, for Latin and East Asian text.
const FONT: &str = "微软雅黑";

/// Slide size, 16:9 (EMU).
const WIDTH: i64 = 12_192_000;
const HEIGHT: i64 = 6_858_000;
/// Margins and the title's band.
const MARGIN: i64 = 457_200;
const TITLE_TOP: i64 = 228_600;
const TITLE_HEIGHT: i64 = 777_240;
const BODY_TOP: i64 = 1_143_000;
const BODY_HEIGHT: i64 = HEIGHT - BODY_TOP - 365_760;

const DARK: &str = "1F3864";
const TEXT: &str = "262626";
const MUTED: &str = "595959";
const WARN: &str = "C00000";

/// A photo for a slide: JPEG bytes and pixel size.
pub(crate) struct Picture {
    pub(crate) jpeg: Vec<u8>,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

/// Writes `deck` as .pptx bytes; `photo` gives the picture of a photo
/// (SHA-256), or `None` if it cannot be shown.
pub(crate) fn write(deck: &Deck, photo: &dyn Fn(&str) -> Option<Picture>) -> Result<Vec<u8>> {
    let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
    let mut types = ContentTypes::default();
    let mut slide_ids = String::new();
    let mut presentation_rels = String::from(RELS_HEAD);
    rel(&mut presentation_rels, "rId1", "slideMaster", "slideMasters/slideMaster1.xml");
    rel(&mut presentation_rels, "rId2", "notesMaster", "notesMasters/notesMaster1.xml");
    rel(&mut presentation_rels, "rId3", "presProps", "presProps.xml");
    rel(&mut presentation_rels, "rId4", "viewProps", "viewProps.xml");
    rel(&mut presentation_rels, "rId5", "theme", "theme/theme1.xml");
    rel(&mut presentation_rels, "rId6", "tableStyles", "tableStyles.xml");
    let (mut charts, mut images) = (0usize, 0usize);
    let title =
        Slide { title: deck.title.clone(), body: Body::Bullets(vec![deck.subtitle.clone()]), notes: String::new() };
    for (i, slide) in std::iter::once(&title).chain(&deck.slides).enumerate() {
        let n = i + 1;
        let mut shapes = Shapes::default();
        let mut rels = String::from(RELS_HEAD);
        rel(&mut rels, "rId1", "slideLayout", "../slideLayouts/slideLayout1.xml");
        rel(&mut rels, "rId2", "notesSlide", &format!("../notesSlides/notesSlide{n}.xml"));
        if n == 1 {
            title_slide(&mut shapes, &deck.title, &deck.subtitle);
        } else {
            shapes.text(MARGIN, TITLE_TOP, WIDTH - 2 * MARGIN, TITLE_HEIGHT, &[Para::title(&slide.title)]);
            match &slide.body {
                Body::Bullets(lines) => bullets(&mut shapes, lines),
                Body::Table(table) => shapes.table(MARGIN, BODY_TOP, WIDTH - 2 * MARGIN, table),
                Body::Chart(chart) => {
                    charts += 1;
                    rel(&mut rels, "rId3", "chart", &format!("../charts/chart{charts}.xml"));
                    shapes.chart(MARGIN, BODY_TOP, WIDTH - 2 * MARGIN, BODY_HEIGHT, "rId3");
                    parts.push((format!("ppt/charts/chart{charts}.xml"), chart_xml(chart).into_bytes()));
                    let mut chart_rels = String::from(RELS_HEAD);
                    let workbook = format!("../embeddings/Microsoft_Excel_Worksheet{charts}.xlsx");
                    rel(&mut chart_rels, "rId1", "package", &workbook);
                    parts.push((format!("ppt/charts/_rels/chart{charts}.xml.rels"), close_rels(chart_rels)));
                    parts.push((format!("ppt/embeddings/Microsoft_Excel_Worksheet{charts}.xlsx"), workbook_of(chart)?));
                    types.chart(charts);
                }
                Body::Hazard(typical) => {
                    let picture = typical.photo.as_deref().and_then(photo);
                    if let Some(picture) = &picture {
                        images += 1;
                        rel(&mut rels, "rId3", "image", &format!("../media/image{images}.jpeg"));
                        parts.push((format!("ppt/media/image{images}.jpeg"), picture.jpeg.clone()));
                    }
                    hazard(&mut shapes, typical, picture.as_ref().map(|p| (p.width, p.height)));
                }
            }
        }
        parts.push((format!("ppt/slides/slide{n}.xml"), slide_xml(&shapes.xml).into_bytes()));
        parts.push((format!("ppt/slides/_rels/slide{n}.xml.rels"), close_rels(rels)));
        parts.push((format!("ppt/notesSlides/notesSlide{n}.xml"), notes_xml(&slide.notes).into_bytes()));
        let mut notes_rels = String::from(RELS_HEAD);
        rel(&mut notes_rels, "rId1", "notesMaster", "../notesMasters/notesMaster1.xml");
        rel(&mut notes_rels, "rId2", "slide", &format!("../slides/slide{n}.xml"));
        parts.push((format!("ppt/notesSlides/_rels/notesSlide{n}.xml.rels"), close_rels(notes_rels)));
        types.slide(n);
        let id = format!("rId{}", 10 + n);
        rel(&mut presentation_rels, &id, "slide", &format!("slides/slide{n}.xml"));
        let _ = write!(slide_ids, r#"<p:sldId id="{}" r:id="{id}"/>"#, 255 + n);
    }
    let mut fixed: Vec<(String, Vec<u8>)> = vec![
        ("[Content_Types].xml".into(), types.xml().into_bytes()),
        ("_rels/.rels".into(), ROOT_RELS.as_bytes().to_vec()),
        ("docProps/app.xml".into(), app_xml(deck.slides.len() + 1).into_bytes()),
        ("docProps/core.xml".into(), core_xml(&deck.title).into_bytes()),
        ("ppt/presentation.xml".into(), presentation_xml(&slide_ids).into_bytes()),
        ("ppt/_rels/presentation.xml.rels".into(), close_rels(presentation_rels)),
        ("ppt/presProps.xml".into(), PRES_PROPS.as_bytes().to_vec()),
        ("ppt/viewProps.xml".into(), VIEW_PROPS.as_bytes().to_vec()),
        ("ppt/tableStyles.xml".into(), TABLE_STYLES.as_bytes().to_vec()),
        ("ppt/theme/theme1.xml".into(), theme_xml("FieldSync").into_bytes()),
        ("ppt/theme/theme2.xml".into(), theme_xml("FieldSync 备注").into_bytes()),
        ("ppt/slideMasters/slideMaster1.xml".into(), SLIDE_MASTER.as_bytes().to_vec()),
        (
            "ppt/slideMasters/_rels/slideMaster1.xml.rels".into(),
            master_rels("slideLayout", "../slideLayouts/slideLayout1.xml", "theme1"),
        ),
        ("ppt/slideLayouts/slideLayout1.xml".into(), SLIDE_LAYOUT.as_bytes().to_vec()),
        ("ppt/slideLayouts/_rels/slideLayout1.xml.rels".into(), {
            let mut r = String::from(RELS_HEAD);
            rel(&mut r, "rId1", "slideMaster", "../slideMasters/slideMaster1.xml");
            close_rels(r)
        }),
        ("ppt/notesMasters/notesMaster1.xml".into(), NOTES_MASTER.as_bytes().to_vec()),
        ("ppt/notesMasters/_rels/notesMaster1.xml.rels".into(), {
            let mut r = String::from(RELS_HEAD);
            rel(&mut r, "rId1", "theme", "../theme/theme2.xml");
            close_rels(r)
        }),
    ];
    fixed.append(&mut parts);
    zip(fixed)
}

/// The parts as a ZIP, in the order given, stored, at a fixed time.
pub(crate) fn zip(parts: Vec<(String, Vec<u8>)>) -> Result<Vec<u8>> {
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in parts {
        archive.start_file(name.as_str(), options).with_context(|| format!("无法写入 {name}"))?;
        archive.write_all(&bytes)?;
    }
    Ok(archive.finish()?.into_inner())
}

/// Text for XML: escaped, and without the characters XML cannot hold.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {}
            c => out.push(c),
        }
    }
    out
}

const RELS_HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#;

fn rel(rels: &mut String, id: &str, kind: &str, target: &str) {
    let base = if kind == "package" {
        "http://schemas.openxmlformats.org/officeDocument/2006/relationships/package"
    } else {
        ""
    };
    let kind = if base.is_empty() {
        format!("http://schemas.openxmlformats.org/officeDocument/2006/relationships/{kind}")
    } else {
        base.to_owned()
    };
    let _ = write!(rels, r#"<Relationship Id="{id}" Type="{kind}" Target="{target}"/>"#);
}

fn close_rels(mut rels: String) -> Vec<u8> {
    rels.push_str("</Relationships>");
    rels.into_bytes()
}

fn master_rels(kind: &str, target: &str, theme: &str) -> Vec<u8> {
    let mut r = String::from(RELS_HEAD);
    rel(&mut r, "rId1", kind, target);
    rel(&mut r, "rId2", "theme", &format!("../theme/{theme}.xml"));
    close_rels(r)
}

const ROOT_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="ppt/presentation.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties" Target="docProps/app.xml"/></Relationships>"#;

/// `[Content_Types].xml`: the parts beyond the fixed ones.
#[derive(Default)]
struct ContentTypes {
    slides: usize,
    charts: Vec<usize>,
}

impl ContentTypes {
    fn slide(&mut self, n: usize) {
        self.slides = self.slides.max(n);
    }

    fn chart(&mut self, n: usize) {
        self.charts.push(n);
    }

    fn xml(&self) -> String {
        let mut x = String::from(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Default Extension="jpeg" ContentType="image/jpeg"/><Default Extension="xlsx" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"/>"#,
        );
        let over = |x: &mut String, part: &str, kind: &str| {
            let _ = write!(
                x,
                r#"<Override PartName="/{part}" ContentType="application/vnd.openxmlformats-officedocument.{kind}+xml"/>"#
            );
        };
        over(&mut x, "ppt/presentation.xml", "presentationml.presentation.main");
        over(&mut x, "ppt/slideMasters/slideMaster1.xml", "presentationml.slideMaster");
        over(&mut x, "ppt/slideLayouts/slideLayout1.xml", "presentationml.slideLayout");
        over(&mut x, "ppt/notesMasters/notesMaster1.xml", "presentationml.notesMaster");
        over(&mut x, "ppt/theme/theme1.xml", "theme");
        over(&mut x, "ppt/theme/theme2.xml", "theme");
        over(&mut x, "ppt/presProps.xml", "presentationml.presProps");
        over(&mut x, "ppt/viewProps.xml", "presentationml.viewProps");
        over(&mut x, "ppt/tableStyles.xml", "presentationml.tableStyles");
        over(&mut x, "docProps/app.xml", "extended-properties");
        for n in 1..=self.slides {
            over(&mut x, &format!("ppt/slides/slide{n}.xml"), "presentationml.slide");
            over(&mut x, &format!("ppt/notesSlides/notesSlide{n}.xml"), "presentationml.notesSlide");
        }
        for n in &self.charts {
            over(&mut x, &format!("ppt/charts/chart{n}.xml"), "drawingml.chart");
        }
        x.push_str(r#"<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/></Types>"#);
        x
    }
}

fn app_xml(slides: usize) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"><Application>FieldSync</Application><PresentationFormat>宽屏</PresentationFormat><Slides>{slides}</Slides><Notes>{slides}</Notes></Properties>"#
    )
}

/// Core properties: the title only, no times (the same deck, the same bytes).
fn core_xml(title: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:title>{}</dc:title><dc:creator>FieldSync 总部</dc:creator><dc:language>zh-CN</dc:language></cp:coreProperties>"#,
        esc(title)
    )
}

const NS: &str = r#"xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main""#;

fn presentation_xml(slide_ids: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<p:presentation {NS} saveSubsetFonts="1"><p:sldMasterIdLst><p:sldMasterId id="2147483648" r:id="rId1"/></p:sldMasterIdLst><p:notesMasterIdLst><p:notesMasterId r:id="rId2"/></p:notesMasterIdLst><p:sldIdLst>{slide_ids}</p:sldIdLst><p:sldSz cx="{WIDTH}" cy="{HEIGHT}"/><p:notesSz cx="6858000" cy="9144000"/><p:defaultTextStyle><a:lvl1pPr marL="0" algn="l" defTabSz="914400" eaLnBrk="1" latinLnBrk="0" hangingPunct="1"><a:defRPr sz="1800" kern="1200"><a:solidFill><a:schemeClr val="tx1"/></a:solidFill><a:latin typeface="+mn-lt"/><a:ea typeface="+mn-ea"/><a:cs typeface="+mn-cs"/></a:defRPr></a:lvl1pPr></p:defaultTextStyle></p:presentation>"#
    )
}

const PRES_PROPS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<p:presentationPr xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"/>"#;

const VIEW_PROPS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<p:viewPr xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"><p:normalViewPr><p:restoredLeft sz="15620"/><p:restoredTop sz="80000"/></p:normalViewPr><p:gridSpacing cx="72008" cy="72008"/></p:viewPr>"#;

/// PowerPoint's built-in "Medium Style 2 - Accent 1", by its id.
const TABLE_STYLE: &str = "{5C22544A-7EE6-4342-B048-85BDC9FD1C3A}";

const TABLE_STYLES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<a:tblStyleLst xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" def="{5C22544A-7EE6-4342-B048-85BDC9FD1C3A}"/>"#;

fn theme_xml(name: &str) -> String {
    let font = |tag: &str| {
        format!(r#"<a:{tag}><a:latin typeface="{FONT}"/><a:ea typeface="{FONT}"/><a:cs typeface=""/></a:{tag}>"#)
    };
    let fill = r#"<a:solidFill><a:schemeClr val="phClr"/></a:solidFill>"#;
    let line = |w: u32| format!(r#"<a:ln w="{w}"><a:solidFill><a:schemeClr val="phClr"/></a:solidFill></a:ln>"#);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<a:theme xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" name="{name}"><a:themeElements><a:clrScheme name="FieldSync"><a:dk1><a:srgbClr val="000000"/></a:dk1><a:lt1><a:srgbClr val="FFFFFF"/></a:lt1><a:dk2><a:srgbClr val="{DARK}"/></a:dk2><a:lt2><a:srgbClr val="E7E6E6"/></a:lt2><a:accent1><a:srgbClr val="2F5597"/></a:accent1><a:accent2><a:srgbClr val="C00000"/></a:accent2><a:accent3><a:srgbClr val="ED7D31"/></a:accent3><a:accent4><a:srgbClr val="70AD47"/></a:accent4><a:accent5><a:srgbClr val="FFC000"/></a:accent5><a:accent6><a:srgbClr val="5B9BD5"/></a:accent6><a:hlink><a:srgbClr val="0563C1"/></a:hlink><a:folHlink><a:srgbClr val="954F72"/></a:folHlink></a:clrScheme><a:fontScheme name="FieldSync">{major}{minor}</a:fontScheme><a:fmtScheme name="FieldSync"><a:fillStyleLst>{fill}{fill}{fill}</a:fillStyleLst><a:lnStyleLst>{l1}{l2}{l3}</a:lnStyleLst><a:effectStyleLst><a:effectStyle><a:effectLst/></a:effectStyle><a:effectStyle><a:effectLst/></a:effectStyle><a:effectStyle><a:effectLst/></a:effectStyle></a:effectStyleLst><a:bgFillStyleLst>{fill}{fill}{fill}</a:bgFillStyleLst></a:fmtScheme></a:themeElements><a:objectDefaults/><a:extraClrSchemeLst/></a:theme>"#,
        major = font("majorFont"),
        minor = font("minorFont"),
        l1 = line(6350),
        l2 = line(12700),
        l3 = line(19050),
    )
}

const EMPTY_TREE: &str = r#"<p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="0" cy="0"/><a:chOff x="0" y="0"/><a:chExt cx="0" cy="0"/></a:xfrm></p:grpSpPr>"#;

const SLIDE_MASTER: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<p:sldMaster xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"><p:cSld><p:bg><p:bgRef idx="1001"><a:schemeClr val="bg1"/></p:bgRef></p:bg><p:spTree><p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="0" cy="0"/><a:chOff x="0" y="0"/><a:chExt cx="0" cy="0"/></a:xfrm></p:grpSpPr></p:spTree></p:cSld>"#,
    r#"<p:clrMap bg1="lt1" tx1="dk1" bg2="lt2" tx2="dk2" accent1="accent1" accent2="accent2" accent3="accent3" accent4="accent4" accent5="accent5" accent6="accent6" hlink="hlink" folHlink="folHlink"/>"#,
    r#"<p:sldLayoutIdLst><p:sldLayoutId id="2147483649" r:id="rId1"/></p:sldLayoutIdLst><p:txStyles><p:titleStyle><a:lvl1pPr algn="l"><a:defRPr sz="2800" b="1"><a:solidFill><a:schemeClr val="tx2"/></a:solidFill><a:latin typeface="+mj-lt"/><a:ea typeface="+mj-ea"/><a:cs typeface="+mj-cs"/></a:defRPr></a:lvl1pPr></p:titleStyle><p:bodyStyle><a:lvl1pPr marL="0" indent="0"><a:defRPr sz="2000"><a:solidFill><a:schemeClr val="tx1"/></a:solidFill><a:latin typeface="+mn-lt"/><a:ea typeface="+mn-ea"/><a:cs typeface="+mn-cs"/></a:defRPr></a:lvl1pPr></p:bodyStyle><p:otherStyle><a:lvl1pPr><a:defRPr sz="1800"><a:latin typeface="+mn-lt"/><a:ea typeface="+mn-ea"/><a:cs typeface="+mn-cs"/></a:defRPr></a:lvl1pPr></p:otherStyle></p:txStyles></p:sldMaster>"#
);

const SLIDE_LAYOUT: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<p:sldLayout xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" type="blank" preserve="1"><p:cSld name="空白"><p:spTree><p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="0" cy="0"/><a:chOff x="0" y="0"/><a:chExt cx="0" cy="0"/></a:xfrm></p:grpSpPr></p:spTree></p:cSld><p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sldLayout>"#;

const NOTES_MASTER: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<p:notesMaster xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"><p:cSld><p:bg><p:bgRef idx="1001"><a:schemeClr val="bg1"/></p:bgRef></p:bg><p:spTree><p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="0" cy="0"/><a:chOff x="0" y="0"/><a:chExt cx="0" cy="0"/></a:xfrm></p:grpSpPr>"#,
    r#"<p:sp><p:nvSpPr><p:cNvPr id="2" name="幻灯片图像占位符 1"/><p:cNvSpPr><a:spLocks noGrp="1" noRot="1" noChangeAspect="1"/></p:cNvSpPr><p:nvPr><p:ph type="sldImg" idx="2"/></p:nvPr></p:nvSpPr><p:spPr><a:xfrm><a:off x="381000" y="685800"/><a:ext cx="6096000" cy="3429000"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom><a:noFill/><a:ln w="12700"><a:solidFill><a:prstClr val="black"/></a:solidFill></a:ln></p:spPr></p:sp>"#,
    r#"<p:sp><p:nvSpPr><p:cNvPr id="3" name="备注占位符 2"/><p:cNvSpPr><a:spLocks noGrp="1"/></p:cNvSpPr><p:nvPr><p:ph type="body" sz="quarter" idx="3"/></p:nvPr></p:nvSpPr><p:spPr><a:xfrm><a:off x="685800" y="4343400"/><a:ext cx="5486400" cy="4114800"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr><p:txBody><a:bodyPr/><a:lstStyle/><a:p><a:endParaRPr lang="zh-CN"/></a:p></p:txBody></p:sp></p:spTree></p:cSld>"#,
    r#"<p:clrMap bg1="lt1" tx1="dk1" bg2="lt2" tx2="dk2" accent1="accent1" accent2="accent2" accent3="accent3" accent4="accent4" accent5="accent5" accent6="accent6" hlink="hlink" folHlink="folHlink"/>"#,
    r#"<p:notesStyle><a:lvl1pPr marL="0" algn="l" defTabSz="914400" eaLnBrk="1" latinLnBrk="0" hangingPunct="1"><a:defRPr sz="1200" kern="1200"><a:solidFill><a:schemeClr val="tx1"/></a:solidFill><a:latin typeface="+mn-lt"/><a:ea typeface="+mn-ea"/><a:cs typeface="+mn-cs"/></a:defRPr></a:lvl1pPr></p:notesStyle></p:notesMaster>"#
);

fn slide_xml(shapes: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<p:sld {NS}><p:cSld><p:spTree>{EMPTY_TREE}{shapes}</p:spTree></p:cSld><p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sld>"#
    )
}

fn notes_xml(notes: &str) -> String {
    let paragraphs: String = if notes.trim().is_empty() {
        r#"<a:p><a:endParaRPr lang="zh-CN"/></a:p>"#.to_owned()
    } else {
        notes.lines().map(|line| Para::plain(line, 1200, TEXT).xml()).collect()
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<p:notes {NS}><p:cSld><p:spTree>{EMPTY_TREE}<p:sp><p:nvSpPr><p:cNvPr id="2" name="幻灯片图像占位符 1"/><p:cNvSpPr><a:spLocks noGrp="1" noRot="1" noChangeAspect="1"/></p:cNvSpPr><p:nvPr><p:ph type="sldImg"/></p:nvPr></p:nvSpPr><p:spPr/></p:sp><p:sp><p:nvSpPr><p:cNvPr id="3" name="备注占位符 2"/><p:cNvSpPr><a:spLocks noGrp="1"/></p:cNvSpPr><p:nvPr><p:ph type="body" idx="1"/></p:nvPr></p:nvSpPr><p:spPr/><p:txBody><a:bodyPr/><a:lstStyle/>{paragraphs}</p:txBody></p:sp></p:spTree></p:cSld><p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:notes>"#
    )
}

/// A paragraph of runs.
struct Para {
    runs: Vec<Run>,
    bullet: bool,
    align: &'static str,
    /// Space after, in points.
    after: u32,
}

struct Run {
    text: String,
    size: u32,
    bold: bool,
    color: &'static str,
}

impl Para {
    fn plain(text: &str, size: u32, color: &'static str) -> Para {
        Para {
            runs: vec![Run { text: text.to_owned(), size, bold: false, color }],
            bullet: false,
            align: "l",
            after: 0,
        }
    }

    fn title(text: &str) -> Para {
        Para {
            runs: vec![Run { text: text.to_owned(), size: 2800, bold: true, color: DARK }],
            bullet: false,
            align: "l",
            after: 0,
        }
    }

    fn xml(&self) -> String {
        let mut x = String::from("<a:p>");
        let spacing = if self.after > 0 {
            format!(r#"<a:spcAft><a:spcPts val="{}"/></a:spcAft>"#, self.after * 100)
        } else {
            String::new()
        };
        if self.bullet {
            let _ = write!(
                x,
                r#"<a:pPr marL="342900" indent="-342900" algn="{}">{spacing}<a:buClr><a:srgbClr val="2F5597"/></a:buClr><a:buFont typeface="Arial"/><a:buChar char="•"/></a:pPr>"#,
                self.align
            );
        } else {
            let _ = write!(x, r#"<a:pPr algn="{}">{spacing}<a:buNone/></a:pPr>"#, self.align);
        }
        for run in &self.runs {
            let _ = write!(
                x,
                r#"<a:r><a:rPr lang="zh-CN" altLang="en-US" sz="{}" b="{}" dirty="0"><a:solidFill><a:srgbClr val="{}"/></a:solidFill><a:latin typeface="{FONT}"/><a:ea typeface="{FONT}"/></a:rPr><a:t>{}</a:t></a:r>"#,
                run.size,
                u8::from(run.bold),
                run.color,
                esc(&run.text)
            );
        }
        x.push_str("</a:p>");
        x
    }
}

/// The shapes of one slide, numbered from 2 (1 is the slide's own group).
#[derive(Default)]
struct Shapes {
    xml: String,
    next: u32,
}

impl Shapes {
    fn id(&mut self) -> u32 {
        self.next = self.next.max(1) + 1;
        self.next
    }

    fn text(&mut self, x: i64, y: i64, cx: i64, cy: i64, paragraphs: &[Para]) {
        let id = self.id();
        let body: String = paragraphs.iter().map(Para::xml).collect();
        let _ = write!(
            self.xml,
            r#"<p:sp><p:nvSpPr><p:cNvPr id="{id}" name="文本 {id}"/><p:cNvSpPr txBox="1"/><p:nvPr/></p:nvSpPr><p:spPr><a:xfrm><a:off x="{x}" y="{y}"/><a:ext cx="{cx}" cy="{cy}"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom><a:noFill/></p:spPr><p:txBody><a:bodyPr wrap="square" lIns="91440" tIns="45720" rIns="91440" bIns="45720" anchor="t"><a:normAutofit/></a:bodyPr><a:lstStyle/>{body}</p:txBody></p:sp>"#
        );
    }

    fn rule(&mut self, y: i64) {
        let id = self.id();
        let _ = write!(
            self.xml,
            r#"<p:cxnSp><p:nvCxnSpPr><p:cNvPr id="{id}" name="线 {id}"/><p:cNvCxnSpPr/><p:nvPr/></p:nvCxnSpPr><p:spPr><a:xfrm><a:off x="{MARGIN}" y="{y}"/><a:ext cx="{}" cy="0"/></a:xfrm><a:prstGeom prst="line"><a:avLst/></a:prstGeom><a:ln w="19050"><a:solidFill><a:srgbClr val="2F5597"/></a:solidFill></a:ln></p:spPr></p:cxnSp>"#,
            WIDTH - 2 * MARGIN
        );
    }

    fn picture(&mut self, x: i64, y: i64, cx: i64, cy: i64, rel: &str) {
        let id = self.id();
        let _ = write!(
            self.xml,
            r#"<p:pic><p:nvPicPr><p:cNvPr id="{id}" name="照片 {id}"/><p:cNvPicPr><a:picLocks noChangeAspect="1"/></p:cNvPicPr><p:nvPr/></p:nvPicPr><p:blipFill><a:blip r:embed="{rel}"/><a:stretch><a:fillRect/></a:stretch></p:blipFill><p:spPr><a:xfrm><a:off x="{x}" y="{y}"/><a:ext cx="{cx}" cy="{cy}"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr></p:pic>"#
        );
    }

    fn chart(&mut self, x: i64, y: i64, cx: i64, cy: i64, rel: &str) {
        let id = self.id();
        let _ = write!(
            self.xml,
            r#"<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id="{id}" name="图表 {id}"/><p:cNvGraphicFramePr/><p:nvPr/></p:nvGraphicFramePr><p:xfrm><a:off x="{x}" y="{y}"/><a:ext cx="{cx}" cy="{cy}"/></p:xfrm><a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/chart"><c:chart xmlns:c="http://schemas.openxmlformats.org/drawingml/2006/chart" r:id="{rel}"/></a:graphicData></a:graphic></p:graphicFrame>"#
        );
    }

    fn table(&mut self, x: i64, y: i64, cx: i64, table: &Table) {
        let id = self.id();
        let weights: Vec<i64> = (0..table.header.len())
            .map(|c| {
                let longest = std::iter::once(&table.header[c])
                    .chain(table.rows.iter().filter_map(|r| r.get(c)))
                    .map(|t| t.chars().count())
                    .max()
                    .unwrap_or(1);
                longest.clamp(5, 30) as i64
            })
            .collect();
        let total: i64 = weights.iter().sum::<i64>().max(1);
        let widths: Vec<i64> = weights.iter().map(|w| cx * w / total).collect();
        let size = if table.rows.iter().flatten().any(|t| t.chars().count() > 40) { 1200 } else { 1400 };
        let mut grid = String::new();
        for w in &widths {
            let _ = write!(grid, r#"<a:gridCol w="{w}"/>"#);
        }
        let cell = |text: &str, bold: bool| {
            let run = Run { text: text.to_owned(), size, bold, color: if bold { "FFFFFF" } else { TEXT } };
            let p = Para { runs: vec![run], bullet: false, align: "l", after: 0 };
            format!(
                r#"<a:tc><a:txBody><a:bodyPr/><a:lstStyle/>{}</a:txBody><a:tcPr marL="72000" marR="72000" marT="36000" marB="36000"/></a:tc>"#,
                p.xml()
            )
        };
        let mut rows = String::new();
        let _ = write!(
            rows,
            r#"<a:tr h="411480">{}</a:tr>"#,
            table.header.iter().map(|h| cell(h, true)).collect::<String>()
        );
        for row in &table.rows {
            let cells: String =
                (0..table.header.len()).map(|c| cell(row.get(c).map_or("", String::as_str), false)).collect();
            let _ = write!(rows, r#"<a:tr h="411480">{cells}</a:tr>"#);
        }
        let cy = 411_480 * (table.rows.len() as i64 + 1);
        let _ = write!(
            self.xml,
            r#"<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id="{id}" name="表格 {id}"/><p:cNvGraphicFramePr><a:graphicFrameLocks noGrp="1"/></p:cNvGraphicFramePr><p:nvPr/></p:nvGraphicFramePr><p:xfrm><a:off x="{x}" y="{y}"/><a:ext cx="{cx}" cy="{cy}"/></p:xfrm><a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/table"><a:tbl><a:tblPr firstRow="1" bandRow="1"><a:tableStyleId>{TABLE_STYLE}</a:tableStyleId></a:tblPr><a:tblGrid>{grid}</a:tblGrid>{rows}</a:tbl></a:graphicData></a:graphic></p:graphicFrame>"#
        );
    }
}

fn title_slide(shapes: &mut Shapes, title: &str, subtitle: &str) {
    let mut heading = Para::title(title);
    heading.align = "ctr";
    heading.runs[0].size = 4000;
    shapes.text(MARGIN, 2_286_000, WIDTH - 2 * MARGIN, 1_371_600, &[heading]);
    shapes.rule(3_749_040);
    let mut under = Para::plain(subtitle, 2000, MUTED);
    under.align = "ctr";
    let mut by = Para::plain("工伤风险检查 · 通报培训会", 1800, MUTED);
    by.align = "ctr";
    shapes.text(MARGIN, 3_931_920, WIDTH - 2 * MARGIN, 914_400, &[under, by]);
}

/// Bullets sized by how much they say.
fn bullets(shapes: &mut Shapes, lines: &[String]) {
    let chars: usize = lines.iter().map(|l| l.chars().count()).sum();
    let size = match chars {
        0..=240 => 2000,
        241..=420 => 1800,
        421..=640 => 1600,
        _ => 1400,
    };
    let paragraphs: Vec<Para> = lines
        .iter()
        .map(|l| Para {
            runs: vec![Run { text: l.clone(), size, bold: false, color: TEXT }],
            bullet: true,
            align: "l",
            after: 8,
        })
        .collect();
    shapes.text(MARGIN, BODY_TOP, WIDTH - 2 * MARGIN, BODY_HEIGHT, &paragraphs);
}

/// A typical hazard: the photo on the left, what it is on the right.
fn hazard(shapes: &mut Shapes, t: &Typical, picture: Option<(u32, u32)>) {
    let (box_w, box_h) = (5_486_400i64, BODY_HEIGHT);
    let text_x = MARGIN + box_w + 274_320;
    match picture {
        Some((w, h)) if w > 0 && h > 0 => {
            let scale = (box_w as f64 / f64::from(w)).min(box_h as f64 / f64::from(h));
            let (cx, cy) = ((f64::from(w) * scale) as i64, (f64::from(h) * scale) as i64);
            shapes.picture(MARGIN + (box_w - cx) / 2, BODY_TOP + (box_h - cy) / 2, cx, cy, "rId3");
        }
        _ => {
            let mut none = Para::plain("（无可显示的照片）", 1600, MUTED);
            none.align = "ctr";
            shapes.text(MARGIN, BODY_TOP + box_h / 2 - 228_600, box_w, 457_200, &[none]);
        }
    }
    let field = |label: &str, value: &str, color: &'static str| Para {
        runs: vec![
            Run { text: format!("{label}："), size: 1500, bold: true, color: DARK },
            Run { text: value.to_owned(), size: 1500, bold: false, color },
        ],
        bullet: false,
        align: "l",
        after: 6,
    };
    let level_color = if t.level.starts_with("重大") { WARN } else { TEXT };
    let mut paragraphs = vec![
        field("企业", &t.enterprise, TEXT),
        field("部位", &t.location, TEXT),
        field("等级", &t.level, level_color),
        field("依据", &t.clause, TEXT),
        field("可能导致", &t.likely_accident, TEXT),
        field("整改措施", &t.fix, TEXT),
        field("发现", &t.found, MUTED),
    ];
    if !t.description.trim().is_empty() {
        paragraphs.push(field("描述", &t.description, TEXT));
    }
    shapes.text(text_x, BODY_TOP, WIDTH - MARGIN - text_x, BODY_HEIGHT, &paragraphs);
}

/// The categories and series as a chart draws them: a horizontal bar
/// chart lists from the bottom, so its largest group goes last.
fn drawn(chart: &Chart) -> (Vec<&str>, Vec<(&str, Vec<u64>)>) {
    let mut categories: Vec<&str> = chart.categories.iter().map(String::as_str).collect();
    let mut series: Vec<(&str, Vec<u64>)> = chart.series.iter().map(|s| (s.name.as_str(), s.values.clone())).collect();
    if chart.kind == ChartKind::Bar {
        categories.reverse();
        for (_, values) in &mut series {
            values.reverse();
        }
    }
    (categories, series)
}

/// Column letters of the data sheet: A for categories, B… for series.
fn column(i: usize) -> char {
    (b'B' + i as u8) as char
}

fn chart_xml(chart: &Chart) -> String {
    let (categories, series) = drawn(chart);
    let last = categories.len() + 1;
    let font = format!(r#"<a:latin typeface="{FONT}"/><a:ea typeface="{FONT}"/>"#);
    let text_props = |size: u32| {
        format!(
            r#"<c:txPr><a:bodyPr/><a:lstStyle/><a:p><a:pPr><a:defRPr sz="{size}">{font}</a:defRPr></a:pPr><a:endParaRPr lang="zh-CN"/></a:p></c:txPr>"#
        )
    };
    let mut cats = format!(
        r#"<c:cat><c:strRef><c:f>Sheet1!$A$2:$A${last}</c:f><c:strCache><c:ptCount val="{}"/>"#,
        categories.len()
    );
    for (i, c) in categories.iter().enumerate() {
        let _ = write!(cats, r#"<c:pt idx="{i}"><c:v>{}</c:v></c:pt>"#, esc(c));
    }
    cats.push_str("</c:strCache></c:strRef></c:cat>");
    let colors = ["2F5597", "C00000", "ED7D31", "70AD47"];
    let pie = chart.kind == ChartKind::Pie;
    let mut sers = String::new();
    for (i, (name, values)) in series.iter().enumerate() {
        let col = column(i);
        let _ = write!(
            sers,
            r#"<c:ser><c:idx val="{i}"/><c:order val="{i}"/><c:tx><c:strRef><c:f>Sheet1!${col}$1</c:f><c:strCache><c:ptCount val="1"/><c:pt idx="0"><c:v>{}</c:v></c:pt></c:strCache></c:strRef></c:tx>"#,
            esc(name)
        );
        if pie {
            for (p, color) in colors.iter().enumerate().take(values.len()) {
                let color = if p == 1 { "C00000" } else { color };
                let _ = write!(
                    sers,
                    r#"<c:dPt><c:idx val="{p}"/><c:bubble3D val="0"/><c:spPr><a:solidFill><a:srgbClr val="{color}"/></a:solidFill></c:spPr></c:dPt>"#
                );
            }
            let _ = write!(
                sers,
                r#"<c:dLbls>{}<c:showLegendKey val="0"/><c:showVal val="1"/><c:showCatName val="1"/><c:showSerName val="0"/><c:showPercent val="1"/><c:showBubbleSize val="0"/><c:separator>，</c:separator><c:showLeaderLines val="1"/></c:dLbls>"#,
                text_props(1400)
            );
        } else {
            let _ = write!(
                sers,
                r#"<c:spPr><a:solidFill><a:srgbClr val="{}"/></a:solidFill></c:spPr><c:invertIfNegative val="0"/><c:dLbls>{}<c:showLegendKey val="0"/><c:showVal val="1"/><c:showCatName val="0"/><c:showSerName val="0"/><c:showPercent val="0"/><c:showBubbleSize val="0"/></c:dLbls>"#,
                colors[i % colors.len()],
                text_props(1200)
            );
        }
        sers.push_str(&cats);
        let _ = write!(
            sers,
            r#"<c:val><c:numRef><c:f>Sheet1!${col}$2:${col}${last}</c:f><c:numCache><c:formatCode>General</c:formatCode><c:ptCount val="{}"/>"#,
            values.len()
        );
        for (p, v) in values.iter().enumerate() {
            let _ = write!(sers, r#"<c:pt idx="{p}"><c:v>{v}</c:v></c:pt>"#);
        }
        sers.push_str("</c:numCache></c:numRef></c:val></c:ser>");
    }
    let plot = if pie {
        format!(r#"<c:pieChart><c:varyColors val="1"/>{sers}<c:firstSliceAng val="0"/></c:pieChart>"#)
    } else {
        let (dir, cat_pos, val_pos) = if chart.kind == ChartKind::Bar { ("bar", "l", "b") } else { ("col", "b", "l") };
        format!(
            r#"<c:barChart><c:barDir val="{dir}"/><c:grouping val="clustered"/><c:varyColors val="0"/>{sers}<c:gapWidth val="60"/><c:axId val="50010001"/><c:axId val="50010002"/></c:barChart><c:catAx><c:axId val="50010001"/><c:scaling><c:orientation val="minMax"/></c:scaling><c:delete val="0"/><c:axPos val="{cat_pos}"/><c:numFmt formatCode="General" sourceLinked="0"/><c:majorTickMark val="none"/><c:minorTickMark val="none"/><c:tickLblPos val="nextTo"/>{}<c:crossAx val="50010002"/><c:crosses val="autoZero"/><c:auto val="1"/><c:lblAlgn val="ctr"/><c:lblOffset val="100"/><c:noMultiLvlLbl val="0"/></c:catAx><c:valAx><c:axId val="50010002"/><c:scaling><c:orientation val="minMax"/></c:scaling><c:delete val="0"/><c:axPos val="{val_pos}"/><c:majorGridlines><c:spPr><a:ln w="6350"><a:solidFill><a:srgbClr val="D9D9D9"/></a:solidFill></a:ln></c:spPr></c:majorGridlines><c:numFmt formatCode="0" sourceLinked="0"/><c:majorTickMark val="none"/><c:minorTickMark val="none"/><c:tickLblPos val="nextTo"/>{}<c:crossAx val="50010001"/><c:crosses val="autoZero"/><c:crossBetween val="between"/></c:valAx>"#,
            text_props(1200),
            text_props(1100)
        )
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<c:chartSpace xmlns:c="http://schemas.openxmlformats.org/drawingml/2006/chart" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><c:date1904 val="0"/><c:lang val="zh-CN"/><c:roundedCorners val="0"/><c:chart><c:autoTitleDeleted val="1"/><c:plotArea><c:layout/>{plot}</c:plotArea><c:legend><c:legendPos val="b"/><c:overlay val="0"/>{}</c:legend><c:plotVisOnly val="1"/><c:dispBlanksAs val="gap"/></c:chart>{}<c:externalData r:id="rId1"><c:autoUpdate val="0"/></c:externalData></c:chartSpace>"#,
        text_props(1300),
        text_props(1300)
    )
}

/// The chart's data as the workbook "Edit data" opens: categories in
/// column A, each series in the next column, names in row 1.
fn workbook_of(chart: &Chart) -> Result<Vec<u8>> {
    use rust_xlsxwriter::{DocProperties, ExcelDateTime, Workbook};
    let (categories, series) = drawn(chart);
    let mut workbook = Workbook::new();
    // A fixed creation time: the same chart, the same bytes.
    let created = ExcelDateTime::from_ymd(2000, 1, 1).map_err(|e| anyhow::anyhow!("{e}"))?;
    workbook.set_properties(&DocProperties::new().set_creation_datetime(&created));
    let sheet = workbook.add_worksheet();
    sheet.set_name("Sheet1").map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, c) in categories.iter().enumerate() {
        sheet.write_string(i as u32 + 1, 0, *c).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    for (s, (name, values)) in series.iter().enumerate() {
        let col = s as u16 + 1;
        sheet.write_string(0, col, *name).map_err(|e| anyhow::anyhow!("{e}"))?;
        for (i, v) in values.iter().enumerate() {
            sheet.write_number(i as u32 + 1, col, *v as f64).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    sheet.set_column_width(0, 24).map_err(|e| anyhow::anyhow!("{e}"))?;
    workbook.save_to_buffer().map_err(|e| anyhow::anyhow!("图表数据表无法生成：{e}"))
}
