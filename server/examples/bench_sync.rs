//! End-of-day burst benchmark (DESIGN.md §10), run by `scripts/bench-sync D S F`.
//!
//! Starts the real `fieldsync-server` process, enrolls D devices, and on each
//! device (offline, through the real store) creates S dossiers with F
//! findings each: one change per finding (~30-character title, ~200-character
//! description, accident type, level, location, 3 photo hashes, status),
//! then 2 small edits per finding, each its own change. Then all devices sync
//! at once over QUIC. The burst ends when every device holds HQ receipts
//! covering all its work (checked, not assumed). Then a fresh HQ-role client
//! pulls everything. Prints readable lines, then one JSON object.

use std::path::Path;
use std::time::Instant;

#[path = "bench/mod.rs"]
mod bench;

use bench::{burst, copy_tree, enroll, prepare_devices, proc_stats, round, serve};
use field_client::Store;

/// The devices use the allocator of the `field` binary they stand in for.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let devices: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let dossiers: usize = args.next().map_or(Ok(4), |a| a.parse())?;
    let findings: usize = args.next().map_or(Ok(50), |a| a.parse())?;
    let server_bin = std::env::var("FIELDSYNC_SERVER_BIN")?;
    let dir = tempfile::TempDir::new()?;
    let data = dir.path().join("hq");

    let homes: Vec<_> = (0..devices).map(|i| dir.path().join(format!("d{i}"))).collect();
    // BENCH_PREPARED=<dir> keeps the prepared devices and HQ register there
    // and starts later runs from a copy (preparing 1,000 devices takes a
    // quarter of an hour). Preparation is never part of the figures.
    let cache = std::env::var_os("BENCH_PREPARED")
        .map(|d| std::path::PathBuf::from(d).join(format!("{devices}-{dossiers}-{findings}")));
    let started = Instant::now();
    match &cache {
        Some(cache) if cache.exists() => {
            copy_tree(cache, dir.path())?;
            // Stores kept by an older build migrate when opened: here, not
            // in the burst (a device migrates once, not at every sync).
            for home in &homes {
                drop(Store::open(home)?);
            }
        }
        _ => {
            prepare_devices(&server_bin, &data, &homes, dossiers, findings)?;
            if let Some(cache) = &cache {
                std::fs::create_dir_all(cache)?;
                copy_tree(dir.path(), cache)?;
            }
        }
    }
    let changes = devices * (dossiers * (1 + findings * 3) + 1 + dossiers);
    eprintln!("prepared {devices} devices ({changes} changes) in {:.1}s", started.elapsed().as_secs_f64());

    // The server, fresh.
    let (child, addr, _) = serve(&server_bin, &data)?;
    let pid = child.0.id();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(8).enable_all().build()?;
    let (_, devices_cpu_before) = proc_stats(std::process::id())?;
    let (burst_wall_s, bytes_total, finished) = runtime.block_on(burst(&homes, addr))?;
    eprintln!(
        "devices done syncing after: first {:.2}s, median {:.2}s, last {:.2}s",
        finished[0],
        finished[finished.len() / 2],
        finished[finished.len() - 1]
    );
    let (rss_mb, cpu_s) = proc_stats(pid)?;
    let devices_cpu_s = proc_stats(std::process::id())?.1 - devices_cpu_before;

    // A fresh HQ-role client pulls everything.
    let puller = dir.path().join("hq-analyst");
    let store = Store::init(&puller, "分析员")?;
    enroll(&server_bin, &data, &store, &["--role", "hq"])?;
    drop(store);
    // On one thread, as the `field` CLI runs.
    let cli = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let hq_pull_wall_s = cli.block_on(async {
        let mut store = Store::open(&puller)?;
        let started = Instant::now();
        let summary = store.sync_with_hq(Some(addr)).await?;
        let received: usize = summary.received.values().sum();
        anyhow::ensure!(received >= devices * dossiers * findings * 3, "pulled only {received} changes");
        anyhow::Ok(started.elapsed().as_secs_f64())
    })?;
    let (rss_after_pull, cpu_after_pull) = proc_stats(pid)?;
    drop(child);
    let stages = dossier_stages(&homes[0])?;

    println!("D={devices} S={dossiers} F={findings}: {changes} changes");
    println!("burst: {burst_wall_s:.2}s until every device held receipts for all its work");
    println!("bytes on the wire (both ways, UDP payload): {:.2} MB", bytes_total as f64 / 1e6);
    println!("server: peak RSS {:.1} MB, CPU {cpu_s:.2}s during the burst", rss_mb.max(0.0));
    println!("devices (all in this process): CPU {devices_cpu_s:.2}s during the burst");
    println!("HQ pull: {hq_pull_wall_s:.2}s (server peak RSS then {rss_after_pull:.1} MB, CPU {cpu_after_pull:.2}s)");
    println!(
        "one dossier of device 0, ms on one thread: {}",
        stages.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    );
    println!(
        "{}",
        serde_json::json!({
            "devices": devices, "dossiers": dossiers, "findings": findings, "changes": changes,
            "burst_wall_s": round(burst_wall_s), "bytes_total": bytes_total,
            "server_peak_rss_mb": round(rss_after_pull.max(rss_mb)), "server_cpu_s": round(cpu_s),
            "devices_cpu_s": round(devices_cpu_s),
            "hq_pull_wall_s": round(hq_pull_wall_s),
            "dossier_ms": stages,
        })
    );
    Ok(())
}

/// What a dossier costs at each step of a sync, in ms (mean of 20 runs on
/// this thread, after the burst): the device loads it from its change log
/// (parse, apply) and encodes it whole (the batch a peer holding none of it
/// gets); the receiver decodes that batch (expands and loads it) and
/// validates the result. For comparison, the bundle of the same changes
/// (the batch for a peer that holds part of the document) and its decoding.
/// These explain the burst's CPU seconds.
fn dossier_stages(home: &Path) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    use sync_core::automerge::{Automerge, Change};
    use sync_core::sync::batch;
    let mut store = Store::open(home)?;
    let id = store.doc_ids(sync_core::ids::DocKind::EnterpriseDossier)?.into_iter().next();
    let id = id.ok_or_else(|| anyhow::anyhow!("device 0 has no dossier"))?;
    let doc = store.document(&id)?.clone();
    let raw: Vec<Vec<u8>> = doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
    let hashes: Vec<_> = doc.get_changes_meta(&[]).iter().map(|m| m.hash).collect();
    let parse = || raw.iter().map(|b| Change::from_bytes(b.clone())).collect::<Result<Vec<_>, _>>();
    let changes = parse()?;
    let whole = batch::encode_document(&doc).map_err(anyhow::Error::msg)?;
    let bundle = doc.bundle(hashes.iter().copied())?.bytes().to_vec();
    let mut out = serde_json::Map::new();
    out.insert("parse".into(), mean_ms(parse)?.into());
    out.insert("apply".into(), mean_ms(|| Automerge::new().apply_changes(changes.clone()))?.into());
    out.insert("encode".into(), mean_ms(|| batch::encode_document(&doc).map_err(anyhow::Error::msg))?.into());
    out.insert("decode".into(), mean_ms(|| batch::decode(&whole))?.into());
    out.insert("validate".into(), mean_ms(|| sync_core::validate::document(&id, &doc))?.into());
    out.insert("bundle".into(), mean_ms(|| doc.bundle(hashes.iter().copied()))?.into());
    out.insert("decode_bundle".into(), mean_ms(|| batch::decode(&bundle))?.into());
    out.insert("changes".into(), raw.len().into());
    out.insert("whole_bytes".into(), whole.len().into());
    out.insert("bundle_bytes".into(), bundle.len().into());
    Ok(out)
}

/// Mean ms of 20 runs of `f` (after one untimed).
fn mean_ms<T, E: Into<anyhow::Error>>(mut f: impl FnMut() -> Result<T, E>) -> anyhow::Result<f64> {
    f().map_err(Into::into)?;
    let started = Instant::now();
    for _ in 0..20 {
        f().map_err(Into::into)?;
    }
    Ok(round(started.elapsed().as_secs_f64() * 1e3 / 20.0))
}
