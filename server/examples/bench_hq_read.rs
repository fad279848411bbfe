//! HQ's read API benchmark, run by `scripts/bench-hq-read [E] [H]`.
//!
//! One inspector's tablet records a campaign of E enterprises × H hazards
//! (default 30 × 200; one change per finding, then two small edits each),
//! through the real store, and syncs with the real `fieldsync-server`
//! process over QUIC. Then, over HTTP with the admin token, 200 samples of
//! each: a filtered first page of hazards (`list_p95_ms`), the campaign's
//! progress (`progress_p95_ms`) and one hazard (`hazard_p95_ms`). Then 50
//! times: the tablet edits a hazard and syncs; from its holding HQ's receipt
//! until the API shows the edit (`read_lag_p99_ms`). Last, with the server
//! stopped, `fieldsync-server reindex` (`reindex_s`). Prints readable lines,
//! then one JSON object.

#[path = "bench/mod.rs"]
mod bench;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench::{Findings, KillOnDrop, enroll, record_site, round};
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

struct Api {
    client: Client<HttpConnector, Empty<axum::body::Bytes>>,
    base: String,
    token: String,
}

impl Api {
    /// GETs `path`; the body, which must be a 200.
    async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let request = axum::http::Request::get(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
            .body(Empty::new())?;
        let response = self.client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(status.is_success(), "{path}: {status} {}", String::from_utf8_lossy(&body));
        Ok(serde_json::from_slice(&body)?)
    }

    /// The p-th percentile of 200 timed GETs of `path`, in ms.
    async fn timed(&self, path: &str, p: f64) -> anyhow::Result<f64> {
        let mut ms = Vec::with_capacity(200);
        for _ in 0..200 {
            let started = Instant::now();
            self.get(path).await?;
            ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        Ok(percentile(&mut ms, p))
    }
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let at = ((values.len() as f64 - 1.0) * p).round() as usize;
    round(values[at.min(values.len() - 1)])
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let enterprises: usize = args.next().map_or(Ok(30), |a| a.parse())?;
    let hazards: usize = args.next().map_or(Ok(200), |a| a.parse())?;
    let server_bin = std::env::var("FIELDSYNC_SERVER_BIN")?;
    let dir = tempfile::TempDir::new()?;
    let data = dir.path().join("hq");
    let home = dir.path().join("tablet");

    let started = Instant::now();
    Command::new(&server_bin).arg("--data").arg(&data).arg("key").output()?;
    let mut tablet = Store::init(&home, "检查员")?;
    let (campaign_id, ids) = prepare(&mut tablet, enterprises, hazards)?;
    enroll(&server_bin, &data, &tablet, &["--role", "inspector", "--campaign", campaign_id.as_str()])?;
    eprintln!("prepared {} hazards in {:.1}s", enterprises * hazards, started.elapsed().as_secs_f64());

    let mut child = KillOnDrop(
        Command::new(&server_bin)
            .arg("--data")
            .arg(&data)
            .args(["serve", "--quic", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let mut lines = BufReader::new(child.0.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?).lines();
    let (mut quic, mut http) = (None::<SocketAddr>, None::<SocketAddr>);
    while quic.is_none() || http.is_none() {
        let line = lines.next().ok_or_else(|| anyhow::anyhow!("server exited"))??;
        if let Some(addr) = line.strip_prefix("同步地址：") {
            quic = Some(addr.parse()?);
        }
        if let Some(rest) = line.strip_prefix("健康检查：http://") {
            http = rest.strip_suffix("/health").map(str::parse).transpose()?;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let (quic, http) = (quic.unwrap_or(([127, 0, 0, 1], 0).into()), http.unwrap_or(([127, 0, 0, 1], 0).into()));

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let figures = runtime.block_on(async {
        let api = Api {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{http}"),
            token: std::fs::read_to_string(data.join("admin.token"))?.trim().to_owned(),
        };
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
        let list = format!("/api/v1/hazards?campaign={campaign_id}&enterprise={}&status=rectifying&limit=50", code(0));
        let list_p95_ms = api.timed(&list, 0.95).await?;
        let progress_p95_ms = api.timed(&progress, 0.95).await?;
        let (_, hazard_id) = &ids[ids.len() / 2];
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
        anyhow::Ok((sync_s, visible_s, list_p95_ms, progress_p95_ms, hazard_p95_ms, read_lag_p99_ms))
    })?;
    let (sync_s, visible_s, list_p95_ms, progress_p95_ms, hazard_p95_ms, read_lag_p99_ms) = figures;
    drop(child);

    let started = Instant::now();
    let out = Command::new(&server_bin).arg("--data").arg(&data).arg("reindex").output()?;
    anyhow::ensure!(out.status.success(), "reindex: {}", String::from_utf8_lossy(&out.stderr));
    let reindex_s = started.elapsed().as_secs_f64();

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
        "{}",
        serde_json::json!({
            "enterprises": enterprises, "hazards": total,
            "list_p95_ms": list_p95_ms, "progress_p95_ms": progress_p95_ms, "hazard_p95_ms": hazard_p95_ms,
            "read_lag_p99_ms": round(read_lag_p99_ms), "reindex_s": round(reindex_s),
            "initial_sync_s": round(sync_s), "initial_visible_s": round(visible_s),
        })
    );
    Ok(())
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
