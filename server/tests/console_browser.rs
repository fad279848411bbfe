//! The web console in a real browser: Debian's Chromium, driven through
//! chromedriver, against the real server process holding what a real device
//! synced. An HQ analyst logs in, opens the campaign, filters the hazards,
//! opens one with its photo, decides two inspectors' conflicting clauses
//! (which a tablet then holds), and logs out; a hazard whose title and
//! description carry `<script>` and HTML attributes, recorded on the device,
//! is shown as text on every page.
//!
//! Without chromedriver on the PATH this test says so and passes, unless
//! `FIELDSYNC_REQUIRE_BROWSER=1` (as `.ci/run` sets, after installing
//! `chromium` and `chromium-driver`).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{CODE, Server, enroll_as, hazard, joint_campaign, jpeg};
use fantoccini::{Client, ClientBuilder, Locator};
use field_client::{Store, new_entity_id};
use sync_core::doc::dossier;
use sync_core::model::HazardLevel;

/// The markup an inspector typed, to be shown as text.
const HOSTILE_TITLE: &str = "<script>window.__xss = 1</script>临边<b>无</b>防护";
const HOSTILE_TEXT: &str = "<img src=x onerror=\"window.__xss = 2\"> 楼板\" onmouseover=\"window.__xss = 3";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver on a free port, if it is installed.
fn chromedriver() -> Option<(Driver, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let driver = Driver(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((driver, port))
}

async fn browser(port: u16) -> Client {
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1366,768",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ];
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector).capabilities(caps).connect(&format!("http://127.0.0.1:{port}")).await.unwrap()
}

/// Clicks what `locator` finds and waits for the page whose path and
/// query contain `next` (`/` alone: the home page) to load.
async fn follow(client: &Client, locator: Locator<'_>, next: &str) {
    client.find(locator).await.unwrap().click().await.unwrap();
    let started = Instant::now();
    loop {
        let url = client.current_url().await.unwrap();
        let at = format!("{}{}", url.path(), url.query().map(|q| format!("?{q}")).unwrap_or_default());
        let arrived = if next == "/" { at == "/" } else { at.contains(next) };
        let ready = client.execute("return document.readyState;", vec![]).await.unwrap();
        if arrived && ready == "complete" {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never reached {next}, at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether any page script ran from field text.
async fn scripted(client: &Client) -> bool {
    let value = client.execute("return window.__xss === undefined ? null : window.__xss;", vec![]).await.unwrap();
    !value.is_null()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_works_through_the_console_in_a_real_browser() {
    let Some((_driver, port)) = chromedriver() else {
        assert!(
            std::env::var_os("FIELDSYNC_REQUIRE_BROWSER").is_none(),
            "chromedriver is not installed: apt-get install chromium chromium-driver"
        );
        eprintln!("skipped: chromedriver is not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let mut add = Command::new(env!("CARGO_BIN_EXE_fieldsync-server"))
        .arg("--data")
        .arg(&data)
        .args(["user", "add", "李分析"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    add.stdin.take().unwrap().write_all("staple-paper-clip\n".as_bytes()).unwrap();
    assert!(add.wait().unwrap().success());

    // A tablet records two findings, one with a photo, one with markup.
    let mut tablet = Store::init(&dir.path().join("tablet"), "张三").unwrap();
    enroll_as(&data, &tablet, "inspector", &server.addr.to_string());
    let campaign = joint_campaign(&mut tablet);
    let dossier_id = tablet.open_dossier(&campaign, CODE).unwrap();
    let photo_file = dir.path().join("IMG_0001.jpg");
    std::fs::write(&photo_file, jpeg()).unwrap();
    let photo = tablet.add_photo(&photo_file).unwrap();
    let criterion = sync_core::codes::criteria()[0].id.clone();
    let pictured = sync_core::model::Hazard {
        level: HazardLevel::Major,
        major_hazard_criterion: Some(criterion),
        photos: [(photo.clone(), "IMG_0001.jpg".to_owned())].into(),
        ..hazard("外架连墙件缺失")
    };
    let hostile = sync_core::model::Hazard { description: HOSTILE_TEXT.into(), ..hazard(HOSTILE_TITLE) };
    let (pictured_id, hostile_id) = (new_entity_id().unwrap(), new_entity_id().unwrap());
    tablet.edit(&dossier_id, |tx| dossier::add_hazard(tx, &pictured_id, &pictured)).unwrap();
    tablet.edit(&dossier_id, |tx| dossier::add_hazard(tx, &hostile_id, &hostile)).unwrap();
    tablet.sync_with_hq(Some(server.addr)).await.unwrap();
    // Its thumbnail is made shortly after the photo arrives.
    let started = Instant::now();
    while !data.join("photos").join(format!("{photo}.json")).exists() {
        assert!(started.elapsed() < Duration::from_secs(10), "the photo was never read at HQ");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let client = browser(port).await;
    let base = format!("http://{}", server.http);
    // Closed without a session.
    client.goto(&format!("{base}/hazards")).await.unwrap();
    assert!(client.current_url().await.unwrap().path().ends_with("/login"));
    // Log in.
    client.find(Locator::Css("input[name=name]")).await.unwrap().send_keys("李分析").await.unwrap();
    client.find(Locator::Css("input[name=password]")).await.unwrap().send_keys("staple-paper-clip").await.unwrap();
    follow(&client, Locator::Css("button[type=submit]"), "/").await;
    let heading = client.find(Locator::Css("h1")).await.unwrap().text().await.unwrap();
    assert_eq!(heading, "检查活动");
    // The campaign: each enterprise against the KPIs, those behind marked.
    follow(&client, Locator::LinkText("联合检查"), "/campaigns/").await;
    let behind = client.find_all(Locator::Css("td.behind")).await.unwrap();
    assert!(!behind.is_empty(), "two findings are behind the target of 50");
    // Hazards, filtered to the major ones through the form.
    follow(&client, Locator::LinkText("查看隐患"), "/hazards?campaign=").await;
    assert_eq!(client.find_all(Locator::Css("tbody tr")).await.unwrap().len(), 2);
    client.find(Locator::Css("select[name=level] option[value=major]")).await.unwrap().click().await.unwrap();
    follow(&client, Locator::Css("form.filters button[type=submit]"), "level=major").await;
    let rows = client.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1, "only the major finding");
    let thumb_loaded = client
        .execute(
            "const i = document.querySelector('td.thumb img'); return i !== null && i.complete && i.naturalWidth > 0;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(thumb_loaded, serde_json::Value::Bool(true), "the thumbnail shows");
    // One hazard with its photo (screen size, the original a click away).
    follow(&client, Locator::LinkText("外架连墙件缺失"), &format!("/hazards/{pictured_id}")).await;
    let shown = client
        .execute(
            "const i = document.querySelector('.photos img'); return i !== null && i.complete && i.naturalWidth > 0;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(shown, serde_json::Value::Bool(true), "the photo shows");
    let history = client.find(Locator::XPath("//h2[contains(., '修改记录')]/following::table[1]")).await.unwrap();
    assert!(history.text().await.unwrap().contains("张三"), "its history names who signed it");

    // The markup from the field is text on every page that shows it.
    for path in ["/hazards".to_owned(), format!("/hazards/{hostile_id}"), format!("/campaigns/{campaign}/conflicts")] {
        client.goto(&format!("{base}{path}")).await.unwrap();
        assert!(!scripted(&client).await, "{path}: a script from the field ran");
        assert_eq!(client.find_all(Locator::Css("main script, main img[src=x]")).await.unwrap().len(), 0, "{path}");
    }
    client.goto(&format!("{base}/hazards/{hostile_id}")).await.unwrap();
    assert_eq!(client.find(Locator::Css("h1")).await.unwrap().text().await.unwrap(), HOSTILE_TITLE);
    let description = client.find(Locator::Css("td.text")).await.unwrap().text().await.unwrap();
    assert_eq!(description, HOSTILE_TEXT);
    client.goto(&format!("{base}/hazards")).await.unwrap();
    client.find(Locator::LinkText(HOSTILE_TITLE)).await.unwrap();
    assert!(!scripted(&client).await);

    // Two inspectors name different major-hazard clauses for the same
    // finding at once: a safety-critical conflict. The analyst decides it;
    // the decision is a change signed by the console's own device, naming
    // the analyst's account, and the other tablet holds it after its sync.
    let mut second = Store::init(&dir.path().join("second"), "李四").unwrap();
    enroll_as(&data, &second, "inspector", &server.addr.to_string());
    second.sync_with_hq(Some(server.addr)).await.unwrap();
    let clause = |i: usize| sync_core::codes::criteria()[i].id.clone();
    for (store, i) in [(&mut tablet, 1), (&mut second, 2)] {
        store
            .edit(&dossier_id, |tx| {
                dossier::modify_hazard(tx, &pictured_id, |h| {
                    h.major_hazard_criterion = Some(clause(i));
                    Ok(())
                })
            })
            .unwrap();
        store.sync_with_hq(Some(server.addr)).await.unwrap();
    }
    client.goto(&format!("{base}/campaigns/{campaign}/conflicts")).await.unwrap();
    let choice = format!("form.decide input[name=choice][value='{}']", clause(1));
    let started = Instant::now();
    while client.find_all(Locator::Css(&choice)).await.unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(5), "the conflict never showed in the console");
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.refresh().await.unwrap();
    }
    let form = client.find(Locator::Css("form.decide")).await.unwrap().text().await.unwrap();
    assert!(form.contains("张三") && form.contains("李四"), "who wrote each value: {form}");
    client.find(Locator::Css(&choice)).await.unwrap().click().await.unwrap();
    follow(&client, Locator::Css("form.decide button[type=submit]"), "decided=1").await;
    client.find(Locator::Css(".notice")).await.unwrap();
    assert!(client.find_all(Locator::Css("form.decide")).await.unwrap().is_empty(), "the conflict is decided");
    second.sync_with_hq(Some(server.addr)).await.unwrap();
    let held = second.dossier(&dossier_id).unwrap();
    assert_eq!(held.hazards[&pictured_id.to_string()].major_hazard_criterion, Some(clause(1)));
    assert!(sync_core::doc::conflicts::conflicts(second.document(&dossier_id).unwrap()).unwrap().is_empty());
    client.goto(&format!("{base}/hazards/{pictured_id}")).await.unwrap();
    let history = client.find(Locator::XPath("//h2[contains(., '修改记录')]/following::table[1]")).await.unwrap();
    let history = history.text().await.unwrap();
    assert!(history.contains("总部控制台") && history.contains("决定人账户：李分析"), "{history}");

    // Preparing the briefing: the analyst picks this hazard as typical and
    // writes the speaker's note; both are signed edits of the briefing
    // document that a tablet receives; the deck downloads.
    follow(&client, Locator::Css("form.inline button[type=submit]"), &format!("/campaigns/{campaign}/briefing")).await;
    let chosen = client.find(Locator::Css("tbody")).await.unwrap().text().await.unwrap();
    assert!(chosen.contains("外架连墙件缺失"), "{chosen}");
    let notes = client.find(Locator::Css("form.notes textarea")).await.unwrap();
    notes.send_keys("讲解时强调连墙件<整层>缺失的后果").await.unwrap();
    follow(&client, Locator::Css("form.notes button[type=submit]"), &format!("/campaigns/{campaign}/briefing")).await;
    let fetched = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.querySelector('a[href$=\"deck.pptx\"]').href)
               .then(r => r.arrayBuffer().then(b => done([r.status, b.byteLength])));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fetched[0], 200, "the deck downloads");
    assert!(fetched[1].as_u64().unwrap() > 10_000);
    second.sync_with_hq(Some(server.addr)).await.unwrap();
    let briefing =
        sync_core::doc::briefing::read(second.document(&sync_core::ids::DocId::briefing(&campaign)).unwrap()).unwrap();
    let pick = briefing.picks.values().next().expect("the tablet holds the pick");
    assert_eq!(pick.hazard, format!("{dossier_id}/{pictured_id}"));
    assert_eq!(pick.notes, "讲解时强调连墙件<整层>缺失的后果");

    // Log out: the pages are closed again.
    follow(&client, Locator::Css("header button[type=submit]"), "/login").await;
    client.goto(&format!("{base}/hazards/{hostile_id}")).await.unwrap();
    assert!(client.current_url().await.unwrap().path().ends_with("/login"));
    client.close().await.unwrap();
}
