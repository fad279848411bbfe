//! The briefing deck from what real devices synced to a real server: an
//! inspector records findings (one with a photo that is not an image, texts
//! at the schema's limits, markup and XML's special characters) and picks
//! the typical hazards; `fieldsync-server briefing` writes the .pptx beside
//! the running server. Read back: every part is well-formed XML, each
//! chosen hazard has its slide (with its photo when it has one that shows),
//! speaker notes name the hazard and who signed it, the charts' numbers
//! are the read model's counts; the same documents give the same bytes; the
//! signature verifies, and a changed slide is named.

mod common;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{CODE, OTHER_CODE, Server, add_enterprise, enroll_as, hazard, joint_campaign, jpeg, server_command};
use field_client::{Store, new_entity_id};
use sync_core::doc::{briefing, dossier};
use sync_core::ids::DocId;
use sync_core::model::{HazardLevel, Pick};

const MARKUP: &str = "<b>连墙件&\"缺失\"</b> ]]> '整层'";

/// Every part of a ZIP, by name.
fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        out.insert(entry.name().unwrap().into_owned(), content);
    }
    out
}

/// The text of every `a:t`, `c:v` and `w:t` of an XML part, in order; panics if
/// the part is not well-formed.
fn texts(xml: &[u8]) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let (mut out, mut inside, mut buf) = (Vec::new(), false, Vec::new());
    loop {
        match reader.read_event_into(&mut buf).unwrap_or_else(|e| panic!("not well-formed XML: {e}")) {
            quick_xml::events::Event::Start(e) => inside = matches!(e.name().as_ref(), "a:t" | "c:v" | "w:t"),
            quick_xml::events::Event::Text(t) if inside => out.push(t.xml10_content().into_owned()),
            quick_xml::events::Event::GeneralRef(r) if inside => {
                let c = match r.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("unexpected entity {other}"),
                };
                match out.last_mut() {
                    Some(last) => last.push_str(c),
                    None => out.push(c.into()),
                }
            }
            quick_xml::events::Event::End(_) => inside = false,
            quick_xml::events::Event::Eof => return out,
            _ => {}
        }
        buf.clear();
    }
}

/// The XML text of part `name`, joined.
fn text_of(parts: &BTreeMap<String, Vec<u8>>, name: &str) -> String {
    texts(&parts[name]).concat()
}

fn briefing(data: &Path, campaign: &str, out: &Path) -> std::process::Output {
    server_command(data, &["briefing", campaign, "--out", out.to_str().unwrap()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deck_from_synced_findings_reads_back_signed_and_the_same_each_time() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let mut tablet = Store::init(&dir.path().join("tablet"), "张三").unwrap();
    enroll_as(&data, &tablet, "inspector", &server.addr.to_string());
    let campaign = joint_campaign(&mut tablet);
    add_enterprise(&mut tablet, &campaign, OTHER_CODE, "另一建设公司");
    let (first, second) =
        (tablet.open_dossier(&campaign, CODE).unwrap(), tablet.open_dossier(&campaign, OTHER_CODE).unwrap());
    let picture = dir.path().join("IMG_0001.jpg");
    std::fs::write(&picture, jpeg()).unwrap();
    let photo = tablet.add_photo(&picture).unwrap();
    let not_image = dir.path().join("IMG_0002.jpg");
    // A JPEG's first bytes, then nothing a decoder can read.
    std::fs::write(&not_image, b"\xff\xd8\xff\xe0 this is not a picture").unwrap();
    let broken = tablet.add_photo(&not_image).unwrap();
    let major = sync_core::model::Hazard {
        level: HazardLevel::Major,
        major_hazard_criterion: Some(sync_core::codes::criteria()[0].id.clone()),
        photos: [(photo.clone(), "IMG_0001.jpg".to_owned())].into(),
        ..hazard(MARKUP)
    };
    let long_title: String = "长".repeat(200);
    let long = sync_core::model::Hazard {
        description: "描述<&>\"'".repeat(500),
        photos: [(broken.clone(), "IMG_0002.jpg".to_owned())].into(),
        ..hazard(&long_title)
    };
    let ids: Vec<_> = (0..4).map(|_| new_entity_id().unwrap()).collect();
    tablet.edit(&first, |tx| dossier::add_hazard(tx, &ids[0], &major)).unwrap();
    tablet.edit(&first, |tx| dossier::add_hazard(tx, &ids[1], &long)).unwrap();
    tablet.edit(&first, |tx| dossier::add_hazard(tx, &ids[2], &hazard("未选的隐患"))).unwrap();
    let other = sync_core::model::Hazard {
        photos: [(photo, "IMG_0001.jpg".to_owned())].into(),
        ..hazard("另一企业的隐患")
    };
    tablet.edit(&second, |tx| dossier::add_hazard(tx, &ids[3], &other)).unwrap();
    // The typical hazards, chosen and ordered on the tablet.
    let key = |d: &DocId, i: usize| format!("{d}/{}", ids[i]);
    let picks = [(key(&first, 1), 1.0, "讲解：<注意>&“照片”"), (key(&first, 0), 2.0, "")];
    for (hazard, position, notes) in picks {
        let pick = Pick { hazard, position, notes: notes.into(), removed: false };
        tablet
            .edit(&DocId::briefing(&campaign), |tx| briefing::add_pick(tx, &new_entity_id().unwrap(), &pick))
            .unwrap();
    }
    tablet.sync_with_hq(Some(server.addr)).await.unwrap();
    let read = rusqlite::Connection::open(data.join("read.db")).unwrap();
    let started = Instant::now();
    while read.query_row("SELECT COUNT(*) FROM hazards", [], |r| r.get::<_, i64>(0)).unwrap_or(0) < 4 {
        assert!(started.elapsed() < Duration::from_secs(5), "the findings never reached the read model");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let out = dir.path().join("briefing");
    let made = briefing(&data, campaign.as_str(), &out);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert!(String::from_utf8_lossy(&made.stdout).contains("典型隐患 2 页"));
    let deck_path = out.join("通报培训会.pptx");
    let bytes = std::fs::read(&deck_path).unwrap();
    let parts = unzip(&bytes);
    for (name, content) in &parts {
        if name.ends_with(".xml") || name.ends_with(".rels") {
            texts(content);
        }
    }
    // The typical hazards, in the order chosen, right after the ranking.
    let slides: Vec<String> =
        (1..).map(|n| format!("ppt/slides/slide{n}.xml")).take_while(|n| parts.contains_key(n)).collect();
    let typical: Vec<(usize, String)> = slides
        .iter()
        .enumerate()
        .map(|(i, name)| (i + 1, text_of(&parts, name)))
        .filter(|(_, text)| text.starts_with("典型隐患："))
        .collect();
    assert_eq!(typical.len(), 2, "{typical:?}");
    assert!(typical[0].1.contains(&long_title) && typical[0].1.contains("描述<&>\"'"));
    assert!(typical[1].1.contains(MARKUP), "the markup is text: {}", typical[1].1);
    let rels = |n: usize| String::from_utf8(parts[&format!("ppt/slides/_rels/slide{n}.xml.rels")].clone()).unwrap();
    assert!(!rels(typical[0].0).contains("/image"), "a photo that is not an image is not shown");
    assert!(text_of(&parts, &format!("ppt/slides/slide{}.xml", typical[0].0)).contains("无可显示的照片"));
    assert!(rels(typical[1].0).contains("../media/image1.jpeg"), "the major hazard's photo");
    assert!(parts.contains_key("ppt/media/image1.jpeg"));
    let notes = text_of(&parts, &format!("ppt/notesSlides/notesSlide{}.xml", typical[0].0));
    assert!(notes.contains(&format!("隐患编号：{}", key(&first, 1))), "{notes}");
    assert!(notes.contains("张三") && notes.contains(&tablet.public_key().to_string()[..16]), "who signed it: {notes}");
    assert!(notes.contains("讲解：<注意>&“照片”") && notes.contains("照片无法显示"));
    // The charts' numbers are the read model's counts.
    let chart = texts(&parts["ppt/charts/chart1.xml"]);
    let counts = |name: &str, level: &str| -> String {
        read.query_row(
            "SELECT COUNT(*) FROM hazards h JOIN enterprises e ON e.campaign_id = h.campaign_id AND e.code = h.enterprise_code
             WHERE e.name = ?1 AND h.level = ?2 AND h.deleted = 0",
            [name, level],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
        .to_string()
    };
    // Series name, two categories, two values — for general, then major.
    let expected = [
        "一般事故隐患",
        "某建设集团",
        "另一建设公司",
        &counts("某建设集团", "general"),
        &counts("另一建设公司", "general"),
        "重大事故隐患",
        "某建设集团",
        "另一建设公司",
        &counts("某建设集团", "major"),
        &counts("另一建设公司", "major"),
    ]
    .map(String::from);
    assert_eq!(chart, expected);
    assert_eq!(&chart[3..5], ["2", "1"]);
    let all = |sql: &str| -> Vec<(String, i64)> {
        let mut statement = read.prepare(sql).unwrap();
        statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    // The pie: general, then major.
    let levels = all("SELECT level, COUNT(*) FROM hazards WHERE NOT deleted GROUP BY level ORDER BY level");
    let pie = texts(&parts["ppt/charts/chart2.xml"]);
    assert_eq!(pie[3..], levels.iter().map(|(_, n)| n.to_string()).collect::<Vec<_>>()[..]);
    // Accident types: a bar chart lists from the bottom, so the largest last.
    let types = all("SELECT accident_type, COUNT(*) FROM hazards WHERE NOT deleted GROUP BY accident_type");
    let bars = texts(&parts["ppt/charts/chart4.xml"]);
    let named: Vec<String> = types
        .iter()
        .map(|(code, _)| sync_core::codes::AccidentType::gb6441_1986(code).unwrap().name().to_owned())
        .collect();
    assert_eq!(bars[1..=named.len()], named[..]);
    assert_eq!(bars[named.len() + 1..], types.iter().map(|(_, n)| n.to_string()).collect::<Vec<_>>()[..]);
    // Each chart's data is a workbook "Edit data" opens.
    let workbook = &parts["ppt/embeddings/Microsoft_Excel_Worksheet1.xlsx"];
    let mut sheet: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(workbook.clone())).unwrap();
    let range = calamine::Reader::worksheet_range(&mut sheet, "Sheet1").unwrap();
    assert_eq!(range.get_value((1, 0)).unwrap().to_string(), "某建设集团");
    assert_eq!(range.get_value((1, 1)).unwrap().to_string(), "2");

    // The same slides as one HTML file: the photo inlined, texts escaped,
    // no script and nothing fetched from outside.
    let html = std::fs::read_to_string(out.join("通报培训会.html")).unwrap();
    assert!(html.contains("data:image/jpeg;base64,"));
    assert!(html.contains("b&#62;连墙件&#38;") && !html.contains("<b>连墙件"), "markup escaped");
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
    assert!(html.contains("<svg") && html.contains("@media print"));

    // A rectification notice per enterprise, listing its hazards, and the
    // ZIP of them all.
    let notice = |n: &str| unzip(&std::fs::read(out.join("整改通知书").join(n)).unwrap());
    let first_notice = texts(&notice("001-某建设集团.docx")["word/document.xml"]).concat();
    assert!(
        first_notice.contains("整改通知书") && first_notice.contains(MARKUP) && first_notice.contains("未选的隐患")
    );
    assert!(first_notice.contains(&long_title) && !first_notice.contains("另一企业的隐患"));
    assert!(texts(&notice("002-另一建设公司.docx")["word/document.xml"]).concat().contains("另一企业的隐患"));
    let zipped = unzip(&std::fs::read(out.join("整改通知书.zip")).unwrap());
    assert_eq!(zipped.keys().collect::<Vec<_>>(), ["001-某建设集团.docx", "002-另一建设公司.docx"]);

    // The same documents, the same bytes.
    let again = dir.path().join("again");
    assert!(briefing(&data, campaign.as_str(), &again).status.success());
    assert_eq!(std::fs::read(again.join("通报培训会.pptx")).unwrap(), bytes, "byte-identical deck");
    let manifest = |dir: &Path| std::fs::read(dir.join("通报培训会.pptx.manifest.json")).unwrap();
    assert_eq!(manifest(&again), manifest(&out));
    assert_eq!(
        std::fs::read(again.join("整改通知书.zip")).unwrap(),
        std::fs::read(out.join("整改通知书.zip")).unwrap()
    );
    assert_eq!(std::fs::read(again.join("通报培训会.html")).unwrap().len(), html.len());
    assert_eq!(std::fs::read_to_string(again.join("通报培训会.html")).unwrap(), html, "byte-identical page");

    // Signed: it verifies; a changed slide is named, and so is a changed manifest.
    let verify = |file: &Path| server_command(&data, &["verify-briefing", file.to_str().unwrap()]);
    let checked = verify(&deck_path);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert!(String::from_utf8_lossy(&checked.stdout).contains("核验通过"));
    let mut changed = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in &parts {
        changed.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).unwrap();
        let content = if name == "ppt/slides/slide3.xml" {
            String::from_utf8(content.clone()).unwrap().replace("共发现", "只发现").into_bytes()
        } else {
            content.clone()
        };
        changed.write_all(&content).unwrap();
    }
    std::fs::write(&deck_path, changed.finish().unwrap().into_inner()).unwrap();
    let refused = verify(&deck_path);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("第 3 页幻灯片（内容被改动）"), "{said}");
    let manifest_path = out.join("通报培训会.pptx.manifest.json");
    let text =
        String::from_utf8(manifest(&out)).unwrap().replace(campaign.as_str(), &format!("cmp-{}", "0".repeat(32)));
    std::fs::write(&manifest_path, text).unwrap();
    assert!(String::from_utf8_lossy(&verify(&deck_path).stderr).contains("签名无效"));

    // A campaign without findings: a deck, a page and a notice that say so.
    let empty = tablet
        .create_campaign(
            "无隐患的检查",
            sync_core::model::CampaignKind::ConstructionJointInspection,
            "2026-11-26",
            "2026-11-27",
        )
        .unwrap();
    add_enterprise(&mut tablet, &empty, CODE, "某建设集团");
    tablet.open_dossier(&empty, CODE).unwrap();
    tablet.sync_with_hq(Some(server.addr)).await.unwrap();
    let quiet = dir.path().join("quiet");
    let made = briefing(&data, empty.as_str(), &quiet);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let deck = unzip(&std::fs::read(quiet.join("通报培训会.pptx")).unwrap());
    assert!(!deck.keys().any(|k| k.starts_with("ppt/charts/")), "no charts of nothing");
    let said: String =
        deck.iter().filter(|(k, _)| k.starts_with("ppt/slides/slide")).map(|(_, v)| texts(v).concat()).collect();
    assert!(said.contains("本次检查未发现事故隐患") && said.contains("签到表"));
    assert!(std::fs::read_to_string(quiet.join("通报培训会.html")).unwrap().contains("本次检查未发现事故隐患"));
    let notice = unzip(&std::fs::read(quiet.join("整改通知书").join("001-某建设集团.docx")).unwrap());
    assert!(texts(&notice["word/document.xml"]).concat().contains("本次检查未发现事故隐患"));

    // Bad requests are told in Chinese and write nothing.
    let nowhere = dir.path().join("nowhere");
    let bad = briefing(&data, "not-a-campaign", &nowhere);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("检查活动编号无效"));
    let unknown = briefing(&data, &format!("cmp-{}", "1".repeat(32)), &nowhere);
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("总部没有检查活动"));
    assert!(!nowhere.exists());
}
