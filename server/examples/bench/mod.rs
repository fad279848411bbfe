//! What the benchmarks share: finding texts as inspectors write them, the
//! server process and enrollment through its `issue` command, devices
//! prepared offline and their end-of-day burst, and /proc readings.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use field_client::{Store, new_entity_id};
use sync_core::codes::AccidentType;
use sync_core::credential::Enrollment;
use sync_core::doc::{campaign, dossier};
use sync_core::ids::{CreditCode, DocId, EntityId};
use sync_core::model::{
    CampaignKind, Domain, Enterprise, Hazard, HazardKind, HazardLevel, Location, Rectification, RectificationMode,
    RectificationStatus, Step, StepKind,
};

/// Finding texts: an item of the construction checklist (JGJ 59) and what
/// was seen on site, about 200 characters, as inspectors write them. Each
/// finding draws its item, place and figures from a seeded generator, so
/// texts vary the way real ones do (shared vocabulary, different details).
pub(crate) struct Findings {
    items: Vec<serde_json::Value>,
    state: u64,
}

impl Findings {
    pub(crate) fn new(seed: u64) -> anyhow::Result<Self> {
        let checklist: serde_json::Value =
            serde_json::from_str(include_str!("../../../schemas/checklists/construction-jgj59.json"))?;
        let items = checklist["items"].as_object().map(|m| m.values().cloned().collect()).unwrap_or_default();
        Ok(Self { items, state: seed | 1 })
    }

    pub(crate) fn next(&mut self, below: u64) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % below
    }

    /// (title, description, location, legal basis, photo hashes) of one finding.
    pub(crate) fn finding(&mut self) -> (String, String, String, String, Vec<String>) {
        let pick = self.next(self.items.len() as u64) as usize;
        let item = self.items[pick].clone();
        let text = |key: &str| item[key].as_str().unwrap_or_default().to_owned();
        let side = ["东侧", "西侧", "南侧", "北侧", "中部"][self.next(5) as usize];
        let (building, floor) = (self.next(12) + 1, self.next(30) + 1);
        let (seen, bad, days) = (self.next(9) + 2, self.next(2) + 1, self.next(7) + 1);
        let location = format!("{building}号楼{side}{floor}层");
        let description = format!(
            "{location}检查发现：{}。现场抽查{seen}处，其中{bad}处不符合要求，施工单位未能提供相应的检查验收记录和班前安全交底记录。\
             问题为：{}。要求施工单位立即组织整改，{days}日内完成整改并报项目监理单位复查，\
             整改期间停止相关区域作业并设置警戒区，项目负责人对整改结果签字确认，安监站跟踪复查销号。",
            text("description"),
            text("title"),
        );
        let photos = (0..3).map(|_| sync_core::ids::sha256_hex(&self.next(u64::MAX).to_le_bytes())).collect();
        (text("title"), description, location, text("legal_basis"), photos)
    }
}

pub(crate) fn enroll(server_bin: &str, data: &Path, store: &Store, extra: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(server_bin)
        .arg("--data")
        .arg(data)
        .args(["issue", "--device", &store.public_key().to_string(), "--name", store.device_name()])
        .args(extra)
        .output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let enrollment: Enrollment = String::from_utf8(out.stdout)?.trim().parse()?;
    store.enroll(&enrollment)?;
    Ok(())
}

/// An immediate rectification plan with `owner` responsible.
pub(crate) fn plan(owner: &str) -> Step {
    Step {
        mode: Some(RectificationMode::Immediate),
        owner: owner.into(),
        measures: "按规范整改".into(),
        ..Step::new(StepKind::Plan)
    }
}

/// Records `step` of hazard `id` of dossier `d` on `store`, signed by its holder.
pub(crate) fn take_step(store: &mut Store, d: &DocId, id: &EntityId, step: Step) -> anyhow::Result<()> {
    let signer = store.signer()?;
    let step_id = new_entity_id()?;
    let at = sync_core::doc::rfc3339(field_client::now_ms());
    store.edit(d, |tx| dossier::add_step(tx, id, &step_id, step, &signer, at))?;
    Ok(())
}

/// Records site `code` (named `name`, project `project`) of campaign `c`
/// on `store`: the enterprise, then `findings` findings with texts from
/// `texts`, each one change, then its rectification steps, each one change:
/// a plan (王五 responsible), and its start when `vary` says rectifying.
/// `vary(n, texts, hazard)` shapes finding `n` before it is recorded and
/// says the status it then gets (open or rectifying). Returns the dossier
/// and the findings' ids.
pub(crate) fn record_site(
    store: &mut Store,
    c: &DocId,
    (code, name, project): (CreditCode, String, String),
    findings: usize,
    texts: &mut Findings,
    mut vary: impl FnMut(usize, &mut Findings, &mut Hazard) -> anyhow::Result<RectificationStatus>,
) -> anyhow::Result<(DocId, Vec<EntityId>)> {
    let enterprise = Enterprise {
        name,
        unified_social_credit_code: code.clone(),
        domain: Domain::Construction,
        project,
        address: String::new(),
        dossier_id: DocId::dossier(c, &code),
    };
    store.edit(c, |tx| campaign::add_enterprise(tx, c, &enterprise))?;
    let d = store.open_dossier(c, code.as_str())?;
    let mut ids = Vec::with_capacity(findings);
    for n in 0..findings {
        let id = new_entity_id()?;
        let (title, description, location, legal_basis, photos) = texts.finding();
        let mut hazard = Hazard {
            subcontractor: String::new(),
            title,
            description,
            hazard_kind: HazardKind::UnsafeCondition,
            accident_type: AccidentType::gb6441_1986("10")?,
            level: HazardLevel::General,
            major_hazard_criterion: None,
            location: Location { text: location, gps: None },
            legal_basis,
            photos: photos.into_iter().enumerate().map(|(p, sha)| (sha, format!("IMG_{p}.jpg"))).collect(),
            inspector: "张三".into(),
            found_at: "2026-11-24T02:00:00Z".into(),
            found_on: String::new(),
            checklist_item: None,
            deleted: false,
            rectification: Rectification::default(),
        };
        let status = vary(n, texts, &mut hazard)?;
        store.edit(&d, |tx| dossier::add_hazard(tx, &id, &hazard))?;
        take_step(store, &d, &id, plan("王五"))?;
        if status == RectificationStatus::Rectifying {
            take_step(store, &d, &id, Step::new(StepKind::Start))?;
        }
        ids.push(id);
    }
    Ok((d, ids))
}

/// The real server on loopback ports, with HQ's data in `data`: the
/// process, its sync (QUIC) and HTTP addresses.
pub(crate) fn serve(server_bin: &str, data: &Path) -> anyhow::Result<(KillOnDrop, SocketAddr, SocketAddr)> {
    serve_at(server_bin, data, "127.0.0.1:0", Stdio::inherit())
}

/// As [`serve`], syncing (QUIC) at `quic` — a restarted server at the same
/// address is the same HQ to its devices — with its log to `log`.
pub(crate) fn serve_at(
    server_bin: &str,
    data: &Path,
    quic: &str,
    log: Stdio,
) -> anyhow::Result<(KillOnDrop, SocketAddr, SocketAddr)> {
    let mut child = KillOnDrop(
        Command::new(server_bin)
            .arg("--data")
            .arg(data)
            .args(["serve", "--quic", quic, "--http", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(log)
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
    let unset = || SocketAddr::from(([127, 0, 0, 1], 0));
    Ok((child, quic.unwrap_or_else(unset), http.unwrap_or_else(unset)))
}

/// Copies the contents of `from` into `to` (`cp -a`).
pub(crate) fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    let status = Command::new("cp").arg("-a").arg(from.join(".")).arg(to).status()?;
    anyhow::ensure!(status.success(), "copying {} failed", from.display());
    Ok(())
}

/// Devices at `homes`, each an inspector with its own campaign of
/// `dossiers` sites × `findings` findings recorded offline (one change per
/// finding, then two small edits each), enrolled with HQ at `data` one by
/// one (HQ's register issues serials in order). Prepared on eight threads
/// (mostly waiting on fsync).
pub(crate) fn prepare_devices(
    server_bin: &str,
    data: &Path,
    homes: &[PathBuf],
    dossiers: usize,
    findings: usize,
) -> anyhow::Result<()> {
    Command::new(server_bin).arg("--data").arg(data).arg("key").output()?;
    for home in homes {
        Store::init(home, "检查员")?;
    }
    let campaigns = std::thread::scope(|scope| -> anyhow::Result<Vec<DocId>> {
        let chunks: Vec<_> = homes.chunks(homes.len().div_ceil(8).max(1)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(|| {
                    chunk
                        .iter()
                        .map(|home| prepare_device(home, dossiers, findings))
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.join().map_err(|_| anyhow::anyhow!("preparation thread panicked"))??);
        }
        Ok(all)
    })?;
    // Each inspector's credential covers its own campaign, as in the field.
    for (home, campaign) in homes.iter().zip(&campaigns) {
        enroll(server_bin, data, &Store::open(home)?, &["--role", "inspector", "--campaign", campaign.as_str()])?;
    }
    Ok(())
}

fn prepare_device(home: &Path, dossiers: usize, findings: usize) -> anyhow::Result<DocId> {
    let mut store = Store::open(home)?;
    // Each device its own texts, the same on every run.
    let seed = sync_core::ids::sha256_hex(home.file_name().unwrap_or_default().as_encoded_bytes());
    let mut texts = Findings::new(u64::from_str_radix(&seed[..16], 16)?)?;
    let c = store.create_campaign("基准", CampaignKind::ConstructionJointInspection, "2026-11-24", "2026-11-25")?;
    for s in 0..dossiers {
        let site = (format!("91640200MA76XYW{s:03}").parse()?, format!("企业{s}"), String::new());
        record_site(&mut store, &c, site, findings, &mut texts, |_, _, _| Ok(RectificationStatus::Rectifying))?;
    }
    Ok(c)
}

/// The end-of-day burst: every device at `homes` syncs with HQ at `addr` at
/// once, until each holds HQ's receipts for all its work (checked). Returns
/// the wall time (s), the bytes on the wire both ways, and when each device
/// was done (s, sorted).
pub(crate) async fn burst(homes: &[PathBuf], addr: SocketAddr) -> anyhow::Result<(f64, u64, Vec<f64>)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for home in homes {
        let home = home.clone();
        tasks.push(tokio::spawn(async move {
            let mut store = Store::open(&home)?;
            let (_, bytes) = store.sync_with_hq_counting(Some(addr)).await?;
            let synced = started.elapsed().as_secs_f64();
            let pending: usize = store.unreceipted()?.iter().map(|(_, n)| n).sum();
            anyhow::ensure!(pending == 0, "{} still has {pending} unreceipted changes", home.display());
            anyhow::Ok((bytes, synced))
        }));
    }
    let mut bytes = 0;
    let mut finished = Vec::new();
    for task in tasks {
        let (b, synced) = task.await??;
        bytes += b;
        finished.push(synced);
    }
    finished.sort_by(f64::total_cmp);
    Ok((started.elapsed().as_secs_f64(), bytes, finished))
}

/// Kills the server however the benchmark ends.
pub(crate) struct KillOnDrop(pub(crate) std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Peak resident set (MB) and CPU time (s) of a process, from /proc.
pub(crate) fn proc_stats(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or_default()
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or_default();
    Ok((hwm_kb / 1024.0, ticks / 100.0))
}

pub(crate) fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
