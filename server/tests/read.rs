//! HQ's read model and read API across real processes: a device records
//! hazards and syncs with the server binary over QUIC; an analyst reads them
//! over HTTP within a second of the device holding HQ's receipt, filters and
//! pages through them, and gets a Chinese 400 for every bad parameter.
//! `fieldsync-server reindex` rebuilds the same tables the sync path wrote.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Request, StatusCode, header};
use common::{CODE, Server, enroll_as, hazard, joint_campaign, server_command};
use field_client::{Store, new_entity_id};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use sync_core::doc::dossier;
use sync_core::model::{HazardLevel, RectificationMode, Step, StepKind};

struct Http {
    client: Client<HttpConnector, Empty<Bytes>>,
    base: String,
    token: String,
}

impl Http {
    fn new(server: &Server, data: &Path) -> Self {
        let token = std::fs::read_to_string(data.join("admin.token")).unwrap().trim().to_owned();
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{}", server.http),
            token,
        }
    }

    async fn get_as(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = self.client.request(request.body(Empty::new()).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// The body as bytes, with the content type and disposition.
    async fn download(&self, path: &str) -> (StatusCode, String, String, Vec<u8>) {
        let request = Request::get(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Empty::new())
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        let header = |name| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let (kind, disposition) = (header(header::CONTENT_TYPE), header(header::CONTENT_DISPOSITION));
        let bytes = response.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, kind, disposition, bytes)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.get_as(path, Some(&self.token)).await
    }

    /// The ids of a hazard list.
    async fn ids(&self, path: &str) -> Vec<String> {
        let (status, page) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        page["hazards"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_owned()).collect()
    }
}

fn is_chinese(message: &Value) -> bool {
    message.as_str().is_some_and(|m| m.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)))
}

/// Every row of the read model's tables, in a stable order.
fn tables(data: &Path) -> Vec<Vec<String>> {
    let conn = rusqlite::Connection::open(data.join("read.db")).unwrap();
    let mut out = Vec::new();
    let all = [
        "campaigns",
        "enterprises",
        "hazards",
        "reviews",
        "document_checks",
        "conflicts",
        "history",
        "photos",
        "photo_meta",
        "projected",
    ];
    for table in all {
        let mut statement = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let columns = statement.column_count();
        let rows = statement
            .query_map([], |r| {
                (0..columns)
                    .map(|i| r.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap();
        let mut rows: Vec<Vec<String>> = rows.map(Result::unwrap).collect();
        rows.sort();
        out.push(vec![table.to_owned()]);
        out.extend(rows);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_devices_sync_is_read_over_http_and_reindex_rebuilds_the_same_tables() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let http = Http::new(&server, &data);
    let mut tablet = Store::init(&dir.path().join("tablet"), "张三").unwrap();
    enroll_as(&data, &tablet, "inspector", &server.addr.to_string());
    let campaign = joint_campaign(&mut tablet);
    let dossier_id = tablet.open_dossier(&campaign, CODE).unwrap();
    let criterion = sync_core::codes::criteria()[0].id.clone();
    // A photo the tablet took, and one whose file it never had.
    let jpeg = dir.path().join("IMG_0001.jpg");
    std::fs::write(&jpeg, [&[0xFF, 0xD8, 0xFF, 0xE0][..], "临边照片".as_bytes()].concat()).unwrap();
    let photo = tablet.add_photo(&jpeg).unwrap();
    let lost = sync_core::ids::sha256_hex(b"never taken");
    let records = [
        ("脚手架连墙件缺失%", HazardLevel::General, None, "2026-11-24T01:00:00Z"),
        ("临边无防护", HazardLevel::Major, Some(criterion), "2026-11-24T02:00:00Z"),
        // 01:00 on the 25th in Beijing, the campaign's zone: found on the 25th.
        ("配电箱无门锁", HazardLevel::General, None, "2026-11-24T17:00:00Z"),
    ];
    let mut ids = Vec::new();
    for (n, (title, level, criterion, found_at)) in records.into_iter().enumerate() {
        let photos = match n {
            1 => [(photo.clone(), "IMG_0001.jpg".to_owned())].into(),
            2 => [(lost.clone(), "IMG_LOST.jpg".to_owned())].into(),
            _ => Default::default(),
        };
        let h = sync_core::model::Hazard {
            level,
            major_hazard_criterion: criterion,
            found_at: found_at.into(),
            found_on: String::new(),
            inspector: "张三".into(),
            photos,
            ..hazard(title)
        };
        let id = new_entity_id().unwrap();
        tablet.edit(&dossier_id, |tx| dossier::add_hazard(tx, &id, &h)).unwrap();
        ids.push(id.to_string());
    }
    tablet.sync_with_hq(Some(server.addr)).await.unwrap();
    assert_eq!(tablet.unreceipted().unwrap(), Vec::new(), "HQ receipted everything");

    // Visible within a second of the receipt.
    let listed = format!("/api/v1/hazards?campaign={campaign}");
    let receipted = Instant::now();
    while http.ids(&listed).await.len() < 3 {
        assert!(receipted.elapsed() < Duration::from_secs(1), "not visible a second after the receipt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The latest found first; filters.
    assert_eq!(http.ids(&listed).await, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    assert_eq!(http.ids(&format!("{listed}&level=major")).await, [ids[1].clone()]);
    assert_eq!(http.ids(&format!("{listed}&level=%E9%87%8D%E5%A4%A7")).await, [ids[1].clone()], "重大");
    assert_eq!(http.ids(&format!("{listed}&from=2026-11-25")).await, [ids[2].clone()], "days of the campaign's zone");
    assert_eq!(http.ids(&format!("{listed}&to=2026-11-24")).await, [ids[1].clone(), ids[0].clone()]);
    assert_eq!(http.ids(&format!("{listed}&enterprise={CODE}&accident_type=09&status=open")).await.len(), 3);
    // `%` is a character like any other; SQL and HTML in text find nothing.
    assert_eq!(http.ids("/api/v1/hazards?q=%E7%BC%BA%E5%A4%B1%25").await, [ids[0].clone()], "缺失%");
    assert_eq!(http.ids("/api/v1/hazards?q=%25").await, [ids[0].clone()]);
    for text in ["%27%20OR%201%3D1%20--", "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "%22%3B%20DROP%20TABLE%20hazards"] {
        assert_eq!(http.ids(&format!("/api/v1/hazards?q={text}")).await, Vec::<String>::new(), "{text}");
    }
    // Pages: one at a time, by cursor, each hazard once.
    let mut paged = Vec::new();
    let mut path = format!("{listed}&limit=1");
    loop {
        let (status, page) = http.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        paged.extend(page["hazards"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => path = format!("{listed}&limit=1&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(paged, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    // Other orders, paged the same way; a cursor resumes only its own sort.
    assert_eq!(http.ids(&format!("{listed}&sort=major")).await, [ids[1].clone(), ids[2].clone(), ids[0].clone()]);
    let (_, first) = http.get(&format!("{listed}&sort=oldest&limit=2")).await;
    let next = first["next"].as_str().unwrap().to_owned();
    assert_eq!(http.ids(&format!("{listed}&sort=oldest&limit=2&cursor={next}")).await, [ids[2].clone()]);
    let (status, body) = http.get(&format!("{listed}&sort=newest&cursor={next}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = http.get(&format!("{listed}&sort=%E9%9A%8F%E4%BE%BF")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().is_some_and(|m| m.contains("排序方式") && m.contains("deadline")), "{body}");

    // One hazard, as merged at HQ.
    let (status, one) = http.get(&format!("/api/v1/hazards/{}", ids[1])).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!((one["title"].as_str(), one["level_label"].as_str()), (Some("临边无防护"), Some("重大")));
    assert_eq!(one["enterprise_name"], "某建设集团");
    let (status, missing) = http.get(&format!("/api/v1/hazards/{}", new_entity_id().unwrap())).await;
    assert_eq!((status, missing["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    // A deleted hazard leaves the list (and the counts) but can be asked for.
    tablet
        .edit(&dossier_id, |tx| {
            dossier::modify_hazard(tx, &ids[0].parse().unwrap(), |h| {
                h.deleted = true;
                Ok(())
            })
        })
        .unwrap();
    tablet.sync_with_hq(Some(server.addr)).await.unwrap();
    let receipted = Instant::now();
    while http.ids(&listed).await.len() != 2 {
        assert!(receipted.elapsed() < Duration::from_secs(1), "the deletion not visible a second after the receipt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(http.ids(&format!("{listed}&include_deleted=true")).await.len(), 3);

    // A rectification plan for one of them, for the register's steps sheet.
    let signer = tablet.signer().unwrap();
    let plan = Step {
        deadline: Some("2026-11-30".into()),
        owner: "项目安全员".into(),
        measures: "补设临边防护栏杆".into(),
        mode: Some(RectificationMode::Deadline),
        ..Step::new(StepKind::Plan)
    };
    let planned: sync_core::ids::EntityId = ids[1].parse().unwrap();
    let step_id = new_entity_id().unwrap();
    tablet
        .edit(&dossier_id, |tx| dossier::add_step(tx, &planned, &step_id, plan, &signer, "2026-11-24T02:00:00Z".into()))
        .unwrap();
    tablet.sync_with_hq(Some(server.addr)).await.unwrap();
    let receipted = Instant::now();
    while http.get(&format!("/api/v1/hazards/{}", ids[1])).await.1["deadline"] != "2026-11-30" {
        assert!(receipted.elapsed() < Duration::from_secs(1), "the plan not visible a second after the receipt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, detail) = http.get(&format!("/api/v1/hazards/{}", ids[1])).await;
    let step = &detail["steps"][0];
    assert_eq!(
        (step["kind"].as_str(), step["author"].as_str()),
        (Some("plan"), Some(tablet.device_name())),
        "{detail}"
    );
    assert_eq!((step["deadline"].as_str(), step["counted"].as_bool()), (Some("2026-11-30"), Some(true)));
    assert_eq!(detail["disputes"].as_array().map(Vec::len), Some(0));

    // A 四不放过 review and a document check, by enterprise.
    let review: sync_core::model::AccidentReview = serde_json::from_value(serde_json::json!({
        "accident_date": "2025-06-03", "accident_summary": "高处坠落，一人受伤", "report_ref": "银安调〔2025〕12号",
        "items": {
            "cause_identified": {"verdict": "pass", "evidence": "调查报告", "note": ""},
            "responsible_handled": {"verdict": "fail", "evidence": "", "note": "未见处理决定"},
            "measures_implemented": {"evidence": "", "note": ""},
            "personnel_educated": {"verdict": "not_applicable", "evidence": "", "note": ""},
        },
    }))
    .unwrap();
    let check: sync_core::model::DocumentCheck = serde_json::from_value(serde_json::json!({
        "document_type": "安全生产许可证", "name": "安全生产许可证（建筑施工）", "result": "expired",
        "expires_on": "2026-10-01", "note": "已过期",
    }))
    .unwrap();
    let (r, c) = (new_entity_id().unwrap(), new_entity_id().unwrap());
    tablet.edit(&dossier_id, |tx| dossier::add_review(tx, &r, &review)).unwrap();
    tablet.edit(&dossier_id, |tx| dossier::add_document_check(tx, &c, &check)).unwrap();
    tablet.sync_with_hq(Some(server.addr)).await.unwrap();
    let receipted = Instant::now();
    let reviews = loop {
        let (status, body) = http.get(&format!("/api/v1/campaigns/{campaign}/reviews")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["reviews"].as_array().is_some_and(|r| !r.is_empty()) {
            break body;
        }
        assert!(receipted.elapsed() < Duration::from_secs(1), "the review not visible a second after the receipt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let one = &reviews["reviews"][0];
    assert_eq!((one["failed"].as_u64(), one["unjudged"].as_u64()), (Some(1), Some(1)), "{one}");
    assert_eq!(one["items"][1]["label"], "责任人员未处理不放过");
    assert_eq!(one["enterprise_name"], "某建设集团");
    let (status, checks) = http.get(&format!("/api/v1/campaigns/{campaign}/document-checks")).await;
    assert_eq!(status, StatusCode::OK);
    let gap = &checks["checks"][0];
    assert_eq!((gap["result_label"].as_str(), gap["gap"].as_bool()), (Some("过期"), Some(true)), "{checks}");
    for path in ["reviews", "document-checks"] {
        let (status, body) = http.get(&format!("/api/v1/campaigns/cmp-{}/{path}", "0".repeat(32))).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{body}");
        let (status, body) = http.get(&format!("/api/v1/campaigns/%3Cscript%3E/{path}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(is_chinese(&body["message"]), "{body}");
    }

    // Two inspectors write the same fields of a finding at once: both
    // values are kept, and listed for review, the safety-critical first.
    let mut other = Store::init(&dir.path().join("tablet-2"), "李四").unwrap();
    enroll_as(&data, &other, "inspector", &server.addr.to_string());
    other.sync_with_hq(Some(server.addr)).await.unwrap();
    let clauses = sync_core::codes::criteria();
    let disputed: sync_core::ids::EntityId = ids[2].parse().unwrap();
    for (store, place, clause) in
        [(&mut tablet, "3号楼东侧", &clauses[0].id), (&mut other, "3号楼西侧", &clauses[1].id)]
    {
        store
            .edit(&dossier_id, |tx| {
                dossier::modify_hazard(tx, &disputed, |h| {
                    h.location.text = place.into();
                    h.major_hazard_criterion = Some(clause.clone());
                    Ok(())
                })
            })
            .unwrap();
    }
    tablet.sync_with_hq(Some(server.addr)).await.unwrap();
    other.sync_with_hq(Some(server.addr)).await.unwrap();
    let receipted = Instant::now();
    let conflicts = loop {
        let (status, body) = http.get(&format!("/api/v1/campaigns/{campaign}/conflicts")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["conflicts"].as_array().is_some_and(|c| c.len() >= 2) {
            break body;
        }
        assert!(receipted.elapsed() < Duration::from_secs(1), "the conflict not visible a second after the receipt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let listed = conflicts["conflicts"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{conflicts}");
    let (first, second) = (&listed[0], &listed[1]);
    assert_eq!((first["field"].as_str(), first["critical"].as_bool()), (Some("major_hazard_criterion"), Some(true)));
    assert_eq!(
        (second["label"].as_str(), second["critical"].as_bool()),
        (Some("隐患部位"), Some(false)),
        "{conflicts}"
    );
    assert_eq!(second["values"].as_array().unwrap().len(), 2);
    assert!(is_chinese(&first["message"]) && first["record"] == ids[2], "{first}");
    let (status, _) = http.get(&format!("/api/v1/campaigns/cmp-{}/conflicts", "0".repeat(32))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Its history, from the signed change log: who signed each change,
    // with which device, when, and which fields it wrote.
    let (_, detail) = http.get(&format!("/api/v1/hazards/{}", ids[2])).await;
    let history = detail["history"].as_array().unwrap();
    assert_eq!(history.len(), 3, "recorded, then one change by each: {detail}");
    let made = &history[0];
    assert_eq!((made["created"].as_bool(), made["author"].as_str()), (Some(true), Some("张三")), "{made}");
    assert_eq!(made["device"].as_str(), Some(tablet.public_key().to_string().as_str()));
    assert!(made["at"].as_str().is_some_and(|at| at.ends_with('Z')), "{made}");
    let mut authors: Vec<&str> = history[1..].iter().map(|h| h["author"].as_str().unwrap()).collect();
    authors.sort();
    assert_eq!(authors, ["张三", "李四"]);
    for change in &history[1..] {
        assert_eq!(change["created"], false);
        assert_eq!(change["fields"], serde_json::json!(["major_hazard_criterion", "text"]), "{change}");
        assert_eq!(change["labels"], serde_json::json!(["重大隐患判定条款", "隐患部位"]), "{change}");
    }

    // A photo that is no image is kept as evidence, and says so.
    let receipted = Instant::now();
    let detail = loop {
        let (_, detail) = http.get(&format!("/api/v1/hazards/{}", ids[1])).await;
        if detail["photo_meta"][&photo].is_object() {
            break detail;
        }
        assert!(receipted.elapsed() < Duration::from_secs(5), "the photo never read: {detail}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let meta = &detail["photo_meta"][&photo];
    assert_eq!(meta["decodable"], false, "{meta}");
    // The read model knows every photo the hazards name, and which of
    // them HQ holds and has read: the lost one is named but not read.
    let conn = rusqlite::Connection::open(data.join("read.db")).unwrap();
    let named: Vec<(String, String)> = conn
        .prepare("SELECT p.sha256, p.file_name FROM photos p ORDER BY p.file_name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(named, [(photo.clone(), "IMG_0001.jpg".to_owned()), (lost.clone(), "IMG_LOST.jpg".to_owned())]);
    let read: Vec<String> = conn
        .prepare("SELECT sha256 FROM photo_meta")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(read, std::slice::from_ref(&photo));
    drop(conn);
    assert!(meta["note"].as_str().is_some_and(|n| n.contains("原件")), "{meta}");
    let (status, _, _, _) = http.download(&format!("/api/v1/photos/{photo}?size=thumb")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _, original) = http.download(&format!("/api/v1/photos/{photo}")).await;
    assert_eq!((status, sync_core::ids::sha256_hex(&original)), (StatusCode::OK, photo.clone()));

    // Progress against the KPIs, each with its definition.
    let (status, progress) = http.get(&format!("/api/v1/campaigns/{campaign}/progress")).await;
    assert_eq!(status, StatusCode::OK, "{progress}");
    let site = &progress["enterprises"][0];
    assert_eq!((site["code"].as_str(), site["hazards_found"].as_i64()), (Some(CODE), Some(2)));
    assert_eq!((site["closed"].as_i64(), site["rectification_rate"].as_f64()), (Some(0), Some(0.0)));
    assert_eq!((site["hazards_target"].as_i64(), site["recommended_target"].as_i64()), (Some(50), Some(150)));
    for definition in progress["definitions"].as_object().unwrap().values() {
        assert!(is_chinese(definition), "{definition}");
    }
    let (_, early) = http.get(&format!("/api/v1/campaigns/{campaign}/progress?as_of=2026-11-24")).await;
    assert_eq!(early["enterprises"][0]["hazards_found"], 1, "only what was found by the cut-off");
    // The cut-off day ends at midnight in the campaign's zone.
    assert_eq!(
        (early["time_zone"].as_str(), early["as_of"].as_str()),
        (Some("Asia/Shanghai"), Some("2026-11-24T15:59:59.999Z"))
    );
    let definition = early["definitions"]["hazards_found"].as_str().unwrap();
    assert!(definition.contains("截至 2026-11-24 23:59（Asia/Shanghai）"), "{definition}");
    let (status, campaigns) = http.get("/api/v1/campaigns").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(campaigns["campaigns"][0]["hazards"], 2);
    assert_eq!(campaigns["campaigns"][0]["enterprises"], 1);

    // The register as files: CSV with BOM (the default), XLSX read back,
    // JSON; the same columns as a device's `field export csv`.
    let register = format!("/api/v1/campaigns/{campaign}/register");
    let (status, kind, disposition, csv) = http.download(&register).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/csv") && disposition.contains("filename*=UTF-8''"), "{kind} {disposition}");
    assert!(csv.starts_with(b"\xEF\xBB\xBF"), "BOM");
    let csv_text = String::from_utf8(csv[3..].to_vec()).unwrap();
    let lines: Vec<&str> = csv_text.lines().collect();
    assert_eq!(lines[0], sync_core::register::REGISTER_COLUMNS.join(","));
    assert_eq!(lines.len(), 3, "two findings; the deleted one is left out");
    assert!(lines[1].starts_with(&format!("1,{}", ids[1])) && lines[2].starts_with(&format!("2,{}", ids[2])));
    // Photos by the file names an export folder holds them under, not hashes.
    assert!(lines[1].contains(&format!("照片/{}/IMG_0001.jpg", ids[1])) && !lines[1].contains(&photo), "{}", lines[1]);
    let (status, _, _, xlsx) = http.download(&format!("{register}?format=xlsx")).await;
    assert_eq!(status, StatusCode::OK);
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(xlsx)).unwrap();
    use calamine::Reader as _;
    assert_eq!(book.sheet_names(), ["汇总", "某建设集团", "整改步骤"]);
    let summary = book.worksheet_range("汇总").unwrap();
    let cell = |range: &calamine::Range<calamine::Data>, r: u32, c: u32| range.get_value((r, c)).unwrap().to_string();
    assert_eq!(
        (cell(&summary, 1, 0), cell(&summary, 1, 1), cell(&summary, 1, 2)),
        ("某建设集团".into(), "2".into(), "1".into())
    );
    let site = book.worksheet_range("某建设集团").unwrap();
    assert_eq!(site.height(), 3);
    let title = sync_core::register::REGISTER_COLUMNS.iter().position(|c| *c == "隐患标题").unwrap() as u32;
    assert_eq!(cell(&site, 0, title), "隐患标题");
    assert_eq!(cell(&site, 1, title), "临边无防护");
    let steps = book.worksheet_range("整改步骤").unwrap();
    assert_eq!(steps.height(), 2, "one step");
    assert_eq!((cell(&steps, 0, 4), cell(&steps, 1, 1)), ("步骤".into(), ids[1].clone()));
    assert_eq!((cell(&steps, 1, 5), cell(&steps, 1, 9)), ("2026-11-24 10:00".into(), "2026-11-30".into()));
    let (status, kind, _, json) = http.download(&format!("{register}?format=json")).await;
    assert_eq!((status, kind.as_str()), (StatusCode::OK, "application/json"));
    let json: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 2);
    // The register with its photos: every photo HQ holds, byte for byte
    // (its SHA-256 is its name), and the one it never received listed.
    let (status, kind, _, zipped) = http.download(&format!("{register}?format=zip")).await;
    assert_eq!((status, kind.as_str()), (StatusCode::OK, "application/zip"));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zipped)).unwrap();
    let names: Vec<String> = archive.file_names().map(|n| n.unwrap().into_owned()).collect();
    assert!(names.contains(&"隐患台账-联合检查.xlsx".to_owned()), "{names:?}");
    let mut bytes = Vec::new();
    // Where the register's cell says it is.
    let path = format!("照片/{}/IMG_0001.jpg", ids[1]);
    std::io::Read::read_to_end(&mut archive.by_name(&path).unwrap(), &mut bytes).unwrap();
    assert_eq!(sync_core::ids::sha256_hex(&bytes), photo);
    let mut listed = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("缺少的照片.txt").unwrap(), &mut listed).unwrap();
    assert!(listed.contains(&lost) && listed.contains("IMG_LOST.jpg"), "{listed}");
    assert_eq!(names.len(), 3, "{names:?}");

    // The command line writes the same file from the read model, with the
    // server running.
    let out = dir.path().join("台账.csv");
    let exported = server_command(
        &data,
        &["export", "--campaign", campaign.as_str(), "--format", "csv", "--out", out.to_str().unwrap()],
    );
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), csv);

    // Bad parameters: a 400 naming the problem in Chinese.
    for path in [
        "/api/v1/hazards?limit=1000000000".to_owned(),
        "/api/v1/hazards?limit=0".to_owned(),
        "/api/v1/hazards?from=2026-13-01".to_owned(),
        "/api/v1/hazards?to=yesterday".to_owned(),
        "/api/v1/hazards?level=critical".to_owned(),
        "/api/v1/hazards?status=%27".to_owned(),
        "/api/v1/hazards?accident_type=33".to_owned(),
        "/api/v1/hazards?campaign=cmp-x".to_owned(),
        "/api/v1/hazards?enterprise=123".to_owned(),
        "/api/v1/hazards?cursor=not-a-cursor".to_owned(),
        "/api/v1/hazards?include_deleted=yes".to_owned(),
        "/api/v1/hazards?levle=major".to_owned(),
        format!("/api/v1/hazards?q={}", "字".repeat(101)),
        "/api/v1/hazards/not-an-id".to_owned(),
        "/api/v1/campaigns/cmp-x/progress".to_owned(),
        format!("/api/v1/campaigns/{campaign}/progress?as_of=soon"),
        format!("/api/v1/campaigns/{campaign}/register?format=pdf"),
    ] {
        let (status, error) = http.get(&path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {error}");
        assert_eq!(error["error"], "invalid_query", "{path}");
        assert!(is_chinese(&error["message"]), "{path}: {error}");
    }
    let unknown = format!("/api/v1/campaigns/cmp-{}/progress", "ab".repeat(16));
    assert_eq!(http.get(&unknown).await.0, StatusCode::NOT_FOUND);
    // No token, a wrong one.
    for path in ["/api/v1/campaigns", "/api/v1/hazards"] {
        assert_eq!(http.get_as(path, None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(http.get_as(path, Some("wrong")).await.0, StatusCode::UNAUTHORIZED);
    }

    // What the sync path wrote is what a rebuild from the stored documents
    // writes.
    let incremental = tables(&data);
    let refused = server_command(&data, &["reindex"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("请先停止服务"), "{refused:?}");
    assert_eq!(tables(&data), incremental, "a refused reindex changes nothing");
    assert_eq!(server.terminate().code(), Some(0));
    let rebuilt = server_command(&data, &["reindex"]);
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    assert!(String::from_utf8_lossy(&rebuilt.stdout).contains("读模型已重建"));
    assert_eq!(tables(&data), incremental);

    // A stop that left the read model behind (here: a dossier's rows lost)
    // is made up at the next start.
    let conn = rusqlite::Connection::open(data.join("read.db")).unwrap();
    conn.execute_batch("DELETE FROM hazards; DELETE FROM projected WHERE doc_id LIKE 'dos-%';").unwrap();
    drop(conn);
    let server = Server::start(&data);
    assert_eq!(tables(&data), incremental);
    drop(server);
}

/// SplitMix64: small and seedable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// The hazard columns the comparison reads, per (dossier, hazard), and the
/// hazard's history: (change, created, fields JSON).
type Rows = (
    std::collections::BTreeMap<(String, String), (String, String, String, bool)>,
    std::collections::BTreeSet<(String, String, String, bool, String)>,
);

/// What the read model holds.
fn projected(data: &Path) -> Rows {
    let conn = rusqlite::Connection::open(data.join("read.db")).unwrap();
    let mut statement = conn.prepare("SELECT dossier_id, id, title, owner, status, deleted FROM hazards").unwrap();
    let hazards = statement
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut statement = conn.prepare("SELECT dossier_id, hazard_id, change, created, fields FROM history").unwrap();
    let history = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (hazards, history)
}

/// What the merged documents say, as a replica holding all of them reads them.
fn merged(store: &mut Store) -> Rows {
    let mut rows = Rows::default();
    for id in store.doc_ids(sync_core::ids::DocKind::EnterpriseDossier).unwrap() {
        for (hazard, h) in store.dossier(&id).unwrap().hazards {
            let state = sync_core::rectification::Loop::of(&h.rectification).state;
            let owner = state.plan.map(|p| p.owner).unwrap_or_default();
            let value = (h.title, owner, state.status.as_str().to_owned(), h.deleted);
            rows.0.insert((id.to_string(), hazard), value);
        }
        for c in sync_core::doc::history::hazard_changes(store.document(&id).unwrap(), &[]) {
            let fields = serde_json::to_string(&c.fields).unwrap();
            rows.1.insert((id.to_string(), c.hazard, c.hash.to_string(), c.created, fields));
        }
    }
    rows
}

/// Three inspectors add, edit and delete findings on two sites offline and
/// sync with HQ in random order, for several seeds: HQ's read model always
/// ends equal to the merged documents, as an analyst who pulls them all
/// reads them (the hazards and each one's history), and `reindex` rebuilds
/// the same tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_model_equals_the_merged_documents() {
    for seed in 1..=4u64 {
        let dir = tempfile::TempDir::new().unwrap();
        let data = dir.path().join("hq");
        let server = Server::start(&data);
        let mut devices: Vec<Store> = (0..3)
            .map(|i| {
                let store = Store::init(&dir.path().join(format!("tablet{i}")), &format!("检查员{i}")).unwrap();
                enroll_as(&data, &store, "inspector", &server.addr.to_string());
                store
            })
            .collect();
        let campaign = joint_campaign(&mut devices[0]);
        let second: sync_core::ids::CreditCode = "91640200MA76XYW124".parse().unwrap();
        let site = sync_core::model::Enterprise {
            name: "第二工地".into(),
            unified_social_credit_code: second.clone(),
            domain: sync_core::model::Domain::Construction,
            project: String::new(),
            address: String::new(),
            dossier_id: sync_core::ids::DocId::dossier(&campaign, &second),
        };
        devices[0].edit(&campaign, |tx| sync_core::doc::campaign::add_enterprise(tx, &campaign, &site)).unwrap();
        for device in devices.iter_mut() {
            device.sync_with_hq(Some(server.addr)).await.unwrap();
        }
        let mut rng = Rng(seed);
        let mut known: Vec<(usize, sync_core::ids::DocId, sync_core::ids::EntityId)> = Vec::new();
        for step in 0..40 {
            let d = rng.below(3) as usize;
            let device = &mut devices[d];
            match rng.below(5) {
                0 | 1 => {
                    let code = [CODE, second.as_str()][rng.below(2) as usize];
                    let dossier_id = device.open_dossier(&campaign, code).unwrap();
                    let id = new_entity_id().unwrap();
                    let h = hazard(&format!("设备{d}第{step}步"));
                    device.edit(&dossier_id, |tx| dossier::add_hazard(tx, &id, &h)).unwrap();
                    known.push((d, dossier_id, id));
                }
                2 | 3 if !known.is_empty() => {
                    // Any device that holds the finding may edit it.
                    let (_, dossier_id, id) = known[rng.below(known.len() as u64) as usize].clone();
                    let held = device.document(&dossier_id).ok().and_then(|doc| dossier::hazard(doc, &id).ok());
                    if held.is_some_and(|h| !h.deleted) {
                        let signer = device.signer().unwrap();
                        let plan = sync_core::model::Step {
                            mode: Some(sync_core::model::RectificationMode::Immediate),
                            owner: format!("负责人{step}"),
                            measures: "立即整改".into(),
                            ..sync_core::model::Step::new(sync_core::model::StepKind::Plan)
                        };
                        let at = sync_core::doc::rfc3339(field_client::now_ms());
                        let delete = rng.below(4) == 0;
                        device
                            .edit(&dossier_id, |tx| {
                                dossier::add_step(tx, &id, &new_entity_id().unwrap(), plan, &signer, at)?;
                                dossier::modify_hazard(tx, &id, |h| {
                                    h.deleted |= delete;
                                    Ok(())
                                })
                            })
                            .unwrap();
                    }
                }
                _ => {
                    device.sync_with_hq(Some(server.addr)).await.unwrap();
                }
            }
        }
        for device in devices.iter_mut() {
            device.sync_with_hq(Some(server.addr)).await.unwrap();
        }
        let mut analyst = Store::init(&dir.path().join("analyst"), "分析员").unwrap();
        enroll_as(&data, &analyst, "hq", &server.addr.to_string());
        analyst.sync_with_hq(Some(server.addr)).await.unwrap();
        let expected = merged(&mut analyst);
        assert!(!expected.0.is_empty() && expected.1.len() > expected.0.len());
        let started = Instant::now();
        while projected(&data) != expected {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "seed {seed}: the read model differs from the documents"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Every change is signed by one of the three, and named so.
        let conn = rusqlite::Connection::open(data.join("read.db")).unwrap();
        let unnamed: i64 = conn
            .query_row("SELECT COUNT(*) FROM history WHERE author NOT LIKE '检查员_' OR device IS NULL", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(unnamed, 0, "seed {seed}");
        // A rebuild from the stored documents gives the same tables.
        let incremental = tables(&data);
        assert_eq!(server.terminate().code(), Some(0));
        let rebuilt = server_command(&data, &["reindex"]);
        assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
        assert_eq!(tables(&data), incremental, "seed {seed}: reindex differs from the incremental tables");
    }
}

/// Operations: `/metrics` counts a real session and its receipt and needs
/// the token on the main listener; `--metrics-listen` serves it alone on a
/// loopback port without one (and refuses any other address); `/health`
/// says what the store holds; `--log-format json` writes one JSON object
/// per log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_json_logs() {
    use std::io::BufRead as _;
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let exe = env!("CARGO_BIN_EXE_fieldsync-server");
    let wide = std::process::Command::new(exe)
        .arg("--data")
        .arg(&data)
        .args(["serve", "--quic", "127.0.0.1:0", "--http", "127.0.0.1:0", "--metrics-listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!wide.status.success() && String::from_utf8_lossy(&wide.stderr).contains("回环"), "{wide:?}");

    let mut child = std::process::Command::new(exe)
        .arg("--data")
        .arg(&data)
        .args(["--log-format", "json", "serve", "--quic", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let (mut quic, mut main, mut metrics) = (None, None, None);
    let mut seen = Vec::new();
    while quic.is_none() || main.is_none() || metrics.is_none() {
        let line = lines.recv_timeout(Duration::from_secs(30)).expect("the server printed its addresses");
        if let Some(addr) = line.strip_prefix("同步地址：") {
            quic = Some(addr.to_owned());
        }
        if let Some(rest) = line.strip_prefix("健康检查：http://") {
            main = rest.strip_suffix("/health").map(str::to_owned);
        }
        if let Some(rest) = line.strip_prefix("指标：http://") {
            metrics = rest.split_once('/').map(|(addr, _)| addr.to_owned());
        }
        seen.push(line);
    }
    let (quic, main, metrics) = (quic.unwrap(), main.unwrap(), metrics.unwrap());
    let mut tablet = Store::init(&dir.path().join("tablet"), "张三").unwrap();
    enroll_as(&data, &tablet, "inspector", &quic);
    joint_campaign(&mut tablet);
    tablet.sync_with_hq(None).await.unwrap();

    let token = std::fs::read_to_string(data.join("admin.token")).unwrap().trim().to_owned();
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let get = |url: String, token: Option<&str>| {
        let mut request = Request::get(url);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = client.request(request.body(Empty::new()).unwrap());
        async move {
            let response = response.await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    // Once the campaign is visible in the read model, its wait is counted.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let text = loop {
        let (status, text) = get(format!("http://{metrics}/metrics"), None).await;
        assert_eq!(status, StatusCode::OK);
        if text.contains("fieldsync_read_model_lag_seconds_count 1") || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let value = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '));
        line.and_then(|l| l[name.len()..].trim().parse::<f64>().ok())
    };
    assert_eq!(value("fieldsync_sync_sessions_total{outcome=\"ok\"}"), Some(1.0), "{text}");
    // The campaign and its briefing: a durable write, and a receipt, each.
    assert_eq!(value("fieldsync_receipts_total"), Some(2.0), "{text}");
    assert_eq!(value("fieldsync_quarantine_undecided"), Some(0.0), "{text}");
    assert!(value("fieldsync_sync_bytes_total{direction=\"received\"}").is_some_and(|b| b > 1000.0), "{text}");
    assert_eq!(value("fieldsync_read_model_lag_seconds_count"), Some(1.0), "the campaign was projected: {text}");
    assert_eq!(get(format!("http://{metrics}/health"), None).await.0, StatusCode::NOT_FOUND, "nothing else there");
    assert_eq!(get(format!("http://{main}/metrics"), None).await.0, StatusCode::UNAUTHORIZED);
    let (status, text) = get(format!("http://{main}/metrics"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("route=\"/metrics\""), "requests are counted by route: {text}");
    let (status, health) = get(format!("http://{main}/health"), None).await;
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!((status, health["status"].as_str()), (StatusCode::OK, Some("ok")), "{health}");
    assert!(health["store"]["documents"].as_u64().is_some_and(|n| n >= 2), "{health}");

    // The session's log line, as JSON.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let logged = loop {
        if let Some(line) = seen.iter().find(|l| l.contains("session finished")) {
            break line.clone();
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        seen.push(lines.recv_timeout(left).expect("the session was logged"));
    };
    let logged: Value = serde_json::from_str(&logged).unwrap();
    assert_eq!(logged["fields"]["message"], "session finished", "{logged}");
    let _ = child.kill();
    let _ = child.wait();
}
