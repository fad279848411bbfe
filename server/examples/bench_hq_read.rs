//! HQ's read API benchmark, run by `scripts/bench-hq-read [E] [H] [D]`.
//!
//! One inspector's tablet records a campaign of E enterprises × H hazards
//! (default 30 × 200; one change per finding, then two small edits each),
//! through the real store, and syncs with the real `fieldsync-server`
//! process over QUIC. Then, over HTTP with the admin token, 200 samples of
//! each: a filtered first page of hazards (`list_p95_ms`), the campaign's
//! progress (`progress_p95_ms`) and one hazard (`hazard_p95_ms`). Then 50
//! times: the tablet edits a hazard and syncs; from its holding HQ's receipt
//! until the API shows the edit (`read_lag_p99_ms`). Then, with the server
//! stopped, `fieldsync-server reindex` (`reindex_s`). Last, the same list
//! while D devices (default 200, each 4 dossiers × 50 findings: the burst of
//! `scripts/bench-sync D 4 50`) sync at once, sampled back to back until
//! the burst ends, repeated from the same starting point until there are
//! at least 200 samples (`list_p95_during_burst_ms`). Prints readable lines,
//! then one JSON object. `BENCH_PREPARED=<dir>` keeps what was prepared
//! there and starts later runs from a copy.

#[path = "bench/mod.rs"]
mod bench;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bench::{Findings, copy_tree, enroll, prepare_devices, record_site, round, serve};
use field_client::Store;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sync_core::codes::AccidentType;
use sync_core::ids::{DocId, EntityId};
use sync_core::model::{CampaignKind, RectificationStatus};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// HTTP to the server, as the API (a bearer token) or the console (a
/// signed-in session's cookie).
#[derive(Clone)]
struct Api {
    client: Client<HttpConnector, Empty<axum::body::Bytes>>,
    base: String,
    /// The header that authenticates: its name and value.
    auth: (&'static str, String),
}

impl Api {
    /// GETs `path`; the body, which must be a 200.
    async fn fetch(&self, path: &str) -> anyhow::Result<axum::body::Bytes> {
        let request = axum::http::Request::get(format!("{}{path}", self.base))
            .header(self.auth.0, &self.auth.1)
            .body(Empty::new())?;
        let response = self.client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(status.is_success(), "{path}: {status} {}", String::from_utf8_lossy(&body));
        Ok(body)
    }

    /// GETs `path` as JSON.
    async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.fetch(path).await?)?)
    }

    /// The p-th percentile of 200 timed GETs of `path`, in ms.
    async fn timed(&self, path: &str, p: f64) -> anyhow::Result<f64> {
        let mut ms = Vec::with_capacity(200);
        for _ in 0..200 {
            let started = Instant::now();
            self.fetch(path).await?;
            ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        Ok(percentile(&mut ms, p))
    }
}

/// The console's login as a browser does it (the form's own cookie and
/// token, then the form): the session cookie header.
async fn console_login(base: &str) -> anyhow::Result<String> {
    use http_body_util::Full;
    let client: Client<HttpConnector, Full<axum::body::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let cookie = |response: &axum::http::Response<_>, name: &str| {
        response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
            v.strip_prefix(&format!("{name}=")).and_then(|rest| rest.split(';').next()).map(str::to_owned)
        })
    };
    let page = client.request(axum::http::Request::get(format!("{base}/login")).body(Full::default())?).await?;
    let form_cookie = cookie(&page, "fs_login").ok_or_else(|| anyhow::anyhow!("no login form cookie"))?;
    let html = String::from_utf8(page.into_body().collect().await?.to_bytes().to_vec())?;
    let at = html.find("name=\"csrf\" value=\"").ok_or_else(|| anyhow::anyhow!("no form token"))? + 19;
    let csrf = html[at..].split('"').next().unwrap_or_default();
    let form = format!("csrf={csrf}&name={}&password={CONSOLE_PASSWORD}", percent(CONSOLE_USER));
    let request = axum::http::Request::post(format!("{base}/login"))
        .header("cookie", format!("fs_login={form_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::from(form))?;
    let signed_in = client.request(request).await?;
    let session = cookie(&signed_in, "fs_session").ok_or_else(|| anyhow::anyhow!("login refused"))?;
    Ok(format!("fs_session={session}"))
}

/// `text` percent-encoded for a form.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// The analyst the benchmark signs in as.
const CONSOLE_USER: &str = "基准分析员";
const CONSOLE_PASSWORD: &str = "bench-password";

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let at = ((values.len() as f64 - 1.0) * p).round() as usize;
    round(values[at.min(values.len() - 1)])
}

/// Samples taken of the list during bursts.
const BURST_SAMPLES: usize = 200;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let enterprises: usize = args.next().map_or(Ok(30), |a| a.parse())?;
    let hazards: usize = args.next().map_or(Ok(200), |a| a.parse())?;
    let burst_devices: usize = args.next().map_or(Ok(200), |a| a.parse())?;
    // What is sampled during the burst: the API's list, or the console's pages.
    let console_burst = match args.next().as_deref() {
        None | Some("api") => false,
        Some("console") => true,
        Some(other) => anyhow::bail!("unknown sample kind {other} (api or console)"),
    };
    let server_bin = std::env::var("FIELDSYNC_SERVER_BIN")?;
    let dir = tempfile::TempDir::new()?;
    let data = dir.path().join("hq");
    let home = dir.path().join("tablet");
    let homes: Vec<_> = (0..burst_devices).map(|i| dir.path().join(format!("d{i}"))).collect();

    let started = Instant::now();
    let cache = std::env::var_os("BENCH_PREPARED")
        .map(|d| PathBuf::from(d).join(format!("hq-read-{enterprises}-{hazards}-{burst_devices}")));
    let prepared = dir.path().join("prepared.json");
    match &cache {
        Some(cache) if cache.exists() => copy_tree(cache, dir.path())?,
        _ => {
            Command::new(&server_bin).arg("--data").arg(&data).arg("key").output()?;
            let mut tablet = Store::init(&home, "检查员")?;
            let (campaign_id, ids) = prepare(&mut tablet, enterprises, hazards)?;
            enroll(&server_bin, &data, &tablet, &["--role", "inspector", "--campaign", campaign_id.as_str()])?;
            prepare_devices(&server_bin, &data, &homes, 4, 50)?;
            let ids: Vec<(String, String)> = ids.iter().map(|(d, h)| (d.to_string(), h.to_string())).collect();
            std::fs::write(&prepared, serde_json::to_vec(&(campaign_id.to_string(), ids))?)?;
            if let Some(cache) = cache.as_ref() {
                std::fs::create_dir_all(cache)?;
                copy_tree(dir.path(), cache)?;
            }
        }
    }
    let (campaign_id, ids): (String, Vec<(String, String)>) = serde_json::from_slice(&std::fs::read(&prepared)?)?;
    let ids: Vec<(DocId, EntityId)> =
        ids.iter().map(|(d, h)| Ok((d.parse()?, h.parse()?))).collect::<anyhow::Result<_>>()?;
    let mut tablet = Store::open(&home)?;
    eprintln!(
        "prepared {} hazards and {burst_devices} devices in {:.1}s",
        enterprises * hazards,
        started.elapsed().as_secs_f64()
    );

    let mut add = Command::new(&server_bin)
        .arg("--data")
        .arg(&data)
        .args(["user", "add", CONSOLE_USER])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(
        &mut add.stdin.take().ok_or_else(|| anyhow::anyhow!("no stdin"))?,
        CONSOLE_PASSWORD.as_bytes(),
    )?;
    let added = add.wait_with_output()?;
    anyhow::ensure!(
        added.status.success() || String::from_utf8_lossy(&added.stderr).contains("已存在"),
        "user add: {}",
        String::from_utf8_lossy(&added.stderr)
    );

    let (child, quic, http) = serve(&server_bin, &data)?;
    let token = std::fs::read_to_string(data.join("admin.token"))?.trim().to_owned();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let api = Api { client, base: format!("http://{http}"), auth: ("authorization", format!("Bearer {token}")) };
    let (_, hazard_id) = &ids[ids.len() / 2];
    let pages = [
        format!("/campaigns/{campaign_id}"),
        format!("/hazards?campaign={campaign_id}&enterprise={}&status=rectifying", code(0)),
        format!("/hazards/{hazard_id}"),
    ];
    let list = format!("/api/v1/hazards?campaign={campaign_id}&enterprise={}&status=rectifying&limit=50", code(0));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(8).enable_all().build()?;
    let figures = runtime.block_on(async {
        let synced = Instant::now();
        tablet.sync_with_hq(Some(quic)).await?;
        let sync_s = synced.elapsed().as_secs_f64();
        // Everything visible before timing the queries.
        let progress = format!("/api/v1/campaigns/{campaign_id}/progress");
        loop {
            let found: i64 = api.get(&progress).await?["enterprises"]
                .as_array()
                .map(|all| all.iter().filter_map(|e| e["hazards_found"].as_i64()).sum())
                .unwrap_or_default();
            if found as usize == enterprises * hazards {
                break;
            }
            anyhow::ensure!(synced.elapsed() < Duration::from_secs(120), "the read model did not catch up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let visible_s = synced.elapsed().as_secs_f64();
        let list_p95_ms = api.timed(&list, 0.95).await?;
        let progress_p95_ms = api.timed(&progress, 0.95).await?;
        let hazard_p95_ms = api.timed(&format!("/api/v1/hazards/{hazard_id}"), 0.95).await?;

        // Receipt to visible: an edit, a sync, then the API until it shows.
        let mut lags = Vec::new();
        for n in 0..50 {
            let owner = format!("整改负责人{n}");
            let (d, h) = &ids[(n * 7919) % ids.len()];
            bench::take_step(&mut tablet, d, h, bench::plan(&owner))?;
            tablet.sync_with_hq(Some(quic)).await?;
            let receipted = Instant::now();
            let path = format!("/api/v1/hazards/{h}");
            while api.get(&path).await?["owner"] != owner.as_str() {
                anyhow::ensure!(receipted.elapsed() < Duration::from_secs(30), "edit {n} never became visible");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            lags.push(receipted.elapsed().as_secs_f64() * 1e3);
        }
        let read_lag_p99_ms = percentile(&mut lags, 0.99);
        // The console's pages, signed in.
        let console = Api { auth: ("cookie", console_login(&api.base).await?), ..api.clone() };
        let mut page_ms = Vec::new();
        for page in &pages {
            page_ms.push(console.timed(page, 0.95).await?);
        }
        anyhow::Ok((sync_s, visible_s, list_p95_ms, progress_p95_ms, hazard_p95_ms, read_lag_p99_ms, console, page_ms))
    })?;
    let (sync_s, visible_s, list_p95_ms, progress_p95_ms, hazard_p95_ms, read_lag_p99_ms, console, page_ms) = figures;
    let page_p95_ms = page_ms.iter().copied().fold(0.0, f64::max);
    drop(child);

    let started = Instant::now();
    let out = Command::new(&server_bin).arg("--data").arg(&data).arg("reindex").output()?;
    anyhow::ensure!(out.status.success(), "reindex: {}", String::from_utf8_lossy(&out.stderr));
    let reindex_s = started.elapsed().as_secs_f64();

    let (sampler, sampled_paths) = if console_burst { (&console, pages.to_vec()) } else { (&api, vec![list.clone()]) };
    let (during, sampled, bursts, burst_s) =
        during_bursts(&runtime, &server_bin, &data, &homes, sampler, &sampled_paths)?;
    let during_key = if console_burst { "page_p95_during_burst_ms" } else { "list_p95_during_burst_ms" };

    let total = enterprises * hazards;
    println!(
        "{enterprises} enterprises × {hazards} hazards = {total}, synced in {sync_s:.2}s, all visible after {visible_s:.2}s"
    );
    println!(
        "p95 over 200 GETs: filtered list page {list_p95_ms} ms, progress {progress_p95_ms} ms, one hazard {hazard_p95_ms} ms"
    );
    println!(
        "receipt to visible, p99 of 50 edits: {read_lag_p99_ms} ms; reindex (process, from the store): {reindex_s:.2}s"
    );
    println!(
        "console pages signed in, p95 over 200 GETs each: campaign {} ms, filtered hazard list {} ms, one hazard {} ms",
        page_ms[0], page_ms[1], page_ms[2]
    );
    let sampled_what = if console_burst { "the console's three pages in turn" } else { "the same list" };
    println!(
        "{sampled_what} while {burst_devices} devices sync at once: p95 {during} ms over {sampled} samples in {bursts} burst(s), the last {burst_s:.2}s"
    );
    let mut figures = serde_json::json!({
        "enterprises": enterprises, "hazards": total,
        "list_p95_ms": list_p95_ms, "progress_p95_ms": progress_p95_ms, "hazard_p95_ms": hazard_p95_ms,
        "page_p95_ms": page_p95_ms, "campaign_page_p95_ms": page_ms[0], "list_page_p95_ms": page_ms[1],
        "hazard_page_p95_ms": page_ms[2],
        "burst_samples": sampled, "burst_devices": burst_devices, "bursts": bursts,
        "read_lag_p99_ms": round(read_lag_p99_ms), "reindex_s": round(reindex_s),
        "initial_sync_s": round(sync_s), "initial_visible_s": round(visible_s),
    });
    figures[during_key] = during.into();
    println!("{figures}");
    Ok(())
}

/// The p95 of `paths` (in turn) taken back to back while the devices at
/// `homes` sync at once with HQ at `data`, each burst from the same
/// starting point (HQ and the devices as they are now), until at least
/// [`BURST_SAMPLES`] were taken; with how many were, in how many bursts,
/// and the last one's wall time.
fn during_bursts(
    runtime: &tokio::runtime::Runtime,
    server_bin: &str,
    data: &Path,
    homes: &[PathBuf],
    api: &Api,
    paths: &[String],
) -> anyhow::Result<(f64, usize, usize, f64)> {
    let start = data.with_file_name("before-burst");
    std::fs::create_dir_all(start.join("hq"))?;
    copy_tree(data, &start.join("hq"))?;
    for home in homes {
        let kept = start.join(home.file_name().unwrap_or_default());
        std::fs::create_dir_all(&kept)?;
        copy_tree(home, &kept)?;
    }
    let (mut samples, mut bursts, mut burst_s) = (Vec::new(), 0, 0.0);
    while samples.len() < BURST_SAMPLES {
        if bursts > 0 {
            for dir in homes.iter().map(PathBuf::as_path).chain([data]) {
                std::fs::remove_dir_all(dir)?;
                std::fs::create_dir_all(dir)?;
                copy_tree(&start.join(dir.file_name().unwrap_or_default()), dir)?;
            }
        }
        let (child, quic, http) = serve(server_bin, data)?;
        let api = Api { base: format!("http://{http}"), ..api.clone() };
        let (taken, wall) = runtime.block_on(async {
            let bursting = std::sync::atomic::AtomicBool::new(true);
            let devices = async {
                let result = bench::burst(homes, quic).await;
                bursting.store(false, std::sync::atomic::Ordering::Relaxed);
                result
            };
            let sampler = async {
                let mut ms = Vec::new();
                for path in paths.iter().cycle() {
                    if !bursting.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let started = Instant::now();
                    api.fetch(path).await?;
                    ms.push(started.elapsed().as_secs_f64() * 1e3);
                }
                anyhow::Ok(ms)
            };
            let (devices, sampled) = tokio::join!(devices, sampler);
            anyhow::Ok((sampled?, devices?.0))
        })?;
        drop(child);
        eprintln!("burst {}: {} samples in {wall:.2}s", bursts + 1, taken.len());
        samples.extend(taken);
        bursts += 1;
        burst_s = wall;
    }
    let count = samples.len();
    Ok((percentile(&mut samples, 0.95), count, bursts, burst_s))
}

fn code(n: usize) -> String {
    format!("91640200MA76X{n:05}")
}

/// One campaign of `enterprises` sites, `hazards` findings each, every
/// finding added then edited twice. Returns the campaign and every
/// (dossier, hazard).
fn prepare(store: &mut Store, enterprises: usize, hazards: usize) -> anyhow::Result<(DocId, Vec<(DocId, EntityId)>)> {
    let mut texts = Findings::new(0x5eed)?;
    let c = store.create_campaign("读取基准", CampaignKind::ConstructionJointInspection, "2026-11-24", "2026-11-25")?;
    let mut ids = Vec::new();
    for e in 0..enterprises {
        let site = (code(e).parse()?, format!("建设集团{e}"), format!("{e}号地块"));
        let (d, recorded) = record_site(store, &c, site, hazards, &mut texts, |n, texts, hazard| {
            hazard.accident_type = AccidentType::gb6441_1986(&format!("{:02}", 1 + texts.next(20)))?;
            hazard.found_at = format!("2026-11-24T{:02}:{:02}:00Z", n / 60 % 24, n % 60);
            Ok(if n % 2 == 0 { RectificationStatus::Rectifying } else { RectificationStatus::Open })
        })?;
        ids.extend(recorded.into_iter().map(|id| (d.clone(), id)));
    }
    Ok((c, ids))
}
