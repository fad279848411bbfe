//! The briefing in seconds: a tablet records a campaign with camera-sized
//! photos (3–4 MB JPEGs made here) and syncs it with the real server; then
//! `fieldsync-server briefing` runs beside the serving process, timed from
//! the end of that sync to every file written and signed. Two cases:
//! (a) 4 enterprises × 200 hazards with 600 photos (`deck_small_s`, and the
//! deck's size `pptx_mb`); (b) 30 enterprises × 200 hazards with 2 photos
//! per enterprise (`deck_wall_s`). The last line printed is one JSON object.

mod bench;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use bench::{Findings, enroll, record_site, serve};
use field_client::Store;
use sync_core::codes::AccidentType;
use sync_core::model::{CampaignKind, HazardLevel, RectificationStatus};

/// One case: `enterprises` × `hazards`, the first `photos` hazards of the
/// campaign with a photo each; every 25th hazard major.
struct Case {
    enterprises: usize,
    hazards: usize,
    photos: usize,
}

/// What one case measured.
struct Measured {
    sync_s: f64,
    deck_s: f64,
    pptx_bytes: u64,
    slides: String,
}

fn main() -> anyhow::Result<()> {
    let server_bin = std::env::var("FIELDSYNC_SERVER_BIN")?;
    let temporary = tempfile::TempDir::new()?;
    // BENCH_KEEP=<dir>: the data stays there, to look at afterwards.
    let dir = std::env::var_os("BENCH_KEEP").map_or_else(|| temporary.path().to_path_buf(), std::path::PathBuf::from);
    let started = Instant::now();
    let bases = base_photos()?;
    let sizes: Vec<String> = bases.iter().map(|b| format!("{:.1} MB", b.len() as f64 / 1e6)).collect();
    eprintln!("made camera-sized JPEGs to vary ({}) in {:.1}s", sizes.join(", "), started.elapsed().as_secs_f64());
    let small = run(&server_bin, &dir.join("small"), &Case { enterprises: 4, hazards: 200, photos: 600 }, &bases)?;
    eprintln!(
        "(a) 4 × 200 hazards, 600 photos: sync {:.1}s, then the briefing in {:.2}s ({}), deck {:.1} MB",
        small.sync_s,
        small.deck_s,
        small.slides,
        small.pptx_bytes as f64 / 1e6
    );
    let wall = run(&server_bin, &dir.join("wall"), &Case { enterprises: 30, hazards: 200, photos: 60 }, &bases)?;
    eprintln!(
        "(b) 30 × 200 hazards, 60 photos: sync {:.1}s, then the briefing in {:.2}s ({})",
        wall.sync_s, wall.deck_s, wall.slides
    );
    println!(
        "{}",
        serde_json::json!({
            "deck_small_s": round(small.deck_s),
            "pptx_mb": round(small.pptx_bytes as f64 / 1e6),
            "deck_wall_s": round(wall.deck_s),
            "sync_small_s": round(small.sync_s),
            "sync_wall_s": round(wall.sync_s),
        })
    );
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Four 4000 × 3000 photos of 3–4 MB (a gradient under noise, as a
/// camera's sensor gives).
fn base_photos() -> anyhow::Result<Vec<Vec<u8>>> {
    let mut noise = Findings::new(0x9e37)?;
    (0..4u32)
        .map(|k| {
            let image = image::RgbImage::from_fn(4000, 3000, |x, y| {
                let n = noise.next(48) as u32;
                image::Rgb([
                    ((x / 16 + k * 40) % 200 + n) as u8,
                    ((y / 12) % 200 + n) as u8,
                    ((x + y) / 28 % 200 + n) as u8,
                ])
            });
            let mut bytes = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 80).encode_image(&image)?;
            Ok(bytes)
        })
        .collect()
}

/// Photo `n`: base photo `n % 4` with a comment naming it, so each has a
/// hash of its own and decodes as its base does.
fn photo(bases: &[Vec<u8>], n: usize) -> Vec<u8> {
    let base = &bases[n % bases.len()];
    let comment = format!("FieldSync bench photo {n}");
    let length = (comment.len() + 2) as u16;
    let mut out = Vec::with_capacity(base.len() + comment.len() + 4);
    out.extend_from_slice(&base[..2]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(comment.as_bytes());
    out.extend_from_slice(&base[2..]);
    out
}

fn run(server_bin: &str, dir: &Path, case: &Case, bases: &[Vec<u8>]) -> anyhow::Result<Measured> {
    let data = dir.join("hq");
    std::fs::create_dir_all(&data)?;
    Command::new(server_bin).arg("--data").arg(&data).arg("key").output()?;
    let mut tablet = Store::init(&dir.join("tablet"), "张三")?;
    let mut shas = Vec::with_capacity(case.photos);
    for n in 0..case.photos {
        let path = dir.join(format!("IMG_{n:04}.jpg"));
        std::fs::write(&path, photo(bases, n))?;
        shas.push(tablet.add_photo(&path)?);
        std::fs::remove_file(&path)?;
    }
    let c =
        tablet.create_campaign("通报基准", CampaignKind::ConstructionJointInspection, "2026-11-24", "2026-11-25")?;
    let mut texts = Findings::new(0x5eed)?;
    let criterion = sync_core::codes::criteria()[0].id.clone();
    let mut n = 0;
    for e in 0..case.enterprises {
        let site = (format!("91640200MA76X{e:05}").parse()?, format!("建设集团{e}"), format!("{e}号地块"));
        record_site(&mut tablet, &c, site, case.hazards, &mut texts, |_, texts, hazard| {
            hazard.accident_type = AccidentType::gb6441_1986(&format!("{:02}", 1 + texts.next(20)))?;
            hazard.checklist_item = Some(format!("construction-jgj59/scaffold-0{}", 1 + texts.next(3)));
            hazard.photos.clear();
            if case.photos > 0 {
                // Spread over the enterprises: every one has some.
                let per = case.photos.div_ceil(case.enterprises);
                let own = n % case.hazards;
                if own < per && e * per + own < case.photos {
                    hazard.photos.insert(shas[e * per + own].clone(), format!("IMG_{own:04}.jpg"));
                }
            }
            if n % 25 == 0 {
                hazard.level = HazardLevel::Major;
                hazard.major_hazard_criterion = Some(criterion.clone());
            }
            n += 1;
            Ok(RectificationStatus::Open)
        })?;
    }
    enroll(server_bin, &data, &tablet, &["--role", "inspector", "--campaign", c.as_str()])?;
    let (_server, quic, _) = serve(server_bin, &data)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let synced = Instant::now();
    runtime.block_on(tablet.sync_with_hq(Some(quic)))?;
    let sync_s = synced.elapsed().as_secs_f64();
    let started = Instant::now();
    let out = dir.join("briefing");
    let made = Command::new(server_bin)
        .arg("--data")
        .arg(&data)
        .args(["briefing", c.as_str(), "--out"])
        .arg(&out)
        .env("RUST_LOG", "fieldsync_server::briefing=info")
        .env("NO_COLOR", "1")
        .output()?;
    let deck_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(made.status.success(), "briefing: {}", String::from_utf8_lossy(&made.stderr));
    let said = String::from_utf8_lossy(&made.stdout);
    // Where the time went: the briefing logs the end of each phase.
    let phases: Vec<&str> = said.lines().filter_map(|l| l.split_once("phase=")).map(|(_, p)| p).collect();
    eprintln!("  phases: {}", phases.join(", "));
    let slides = said.lines().find(|l| l.starts_with("已生成")).unwrap_or_default().to_owned();
    let pptx_bytes = std::fs::metadata(out.join("通报培训会.pptx"))?.len();
    Ok(Measured { sync_s, deck_s, pptx_bytes, slides })
}
