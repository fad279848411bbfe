//! Evidence under faults (`scripts/crash [N] [M] [SEED]`): the promise "when
//! it says safe to leave, HQ has it", tried at hundreds of kill points.
//!
//! HQ — the real server process — serves three tablets and a station relay
//! (a real `field relay` process). Two tablets sync with HQ directly, the
//! third only through the relay; each records hazards with photos in the
//! same dossiers, plans their rectification and syncs, over and over. HQ is
//! killed with SIGKILL at N seeded random moments and restarted at the same
//! address each time. After each kill, with HQ down, what HQ holds on disk
//! is compared with what the devices were told: every change a device or
//! the relay holds an HQ receipt for, every photo HQ said it holds, and all
//! the work of every tablet that found itself safe to leave; HQ's SQLite
//! files must pass their integrity check and HQ must start again. Then a
//! tablet's store is killed with SIGKILL mid-edit (`field hazard add` with a
//! photo) and mid-import (`field bundle import`) at M more points: it must
//! open, pass its integrity check and hold the edit or the import whole or
//! not at all. The last line printed is one JSON object.

mod bench;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench::{Findings, KillOnDrop, copy_tree, plan, serve_at, take_step};
use field_client::{Store, new_entity_id};
use sync_core::automerge::{Automerge, ChangeHash};
use sync_core::codes::AccidentType;
use sync_core::doc::{campaign, dossier};
use sync_core::ids::{DocId, sha256_hex};
use sync_core::model::{CampaignKind, Domain, Enterprise, Hazard, HazardKind, HazardLevel, Location, Rectification};
use sync_core::sync::message::ReceiptBody;

/// The longest HQ runs between two kills (ms).
const RUN_MS: u64 = 1500;

/// How long a tablet waits for one sync before giving up on it (and, like
/// an inspector restarting the app, opening its store again).
const SYNC_LIMIT: Duration = Duration::from_secs(20);

/// The enterprises whose dossiers every tablet writes to.
const SITES: [&str; 2] = ["91640200MA76XYW123", "91640200MA76XYW456"];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let hq_kills: usize = args.get(1).map_or(Ok(200), |a| a.parse())?;
    let device_kills: usize = args.get(2).map_or(Ok(200), |a| a.parse())?;
    let seed: u64 = match args.get(3) {
        Some(a) => a.parse()?,
        None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64,
    };
    eprintln!("seed {seed} (scripts/crash {hq_kills} {device_kills} {seed} repeats this run)");
    let temporary = tempfile::TempDir::new()?;
    let dir = std::env::var_os("BENCH_KEEP").map_or_else(|| temporary.path().to_path_buf(), PathBuf::from);
    let lab = Lab::new(&dir)?;
    let started = Instant::now();
    let mut rng = Findings::new(seed)?;

    let mut tally = Tally::default();
    let bundle = lab.hq_phase(hq_kills, &mut rng, &mut tally)?;
    lab.device_phase(device_kills, &bundle, &mut rng, &mut tally)?;

    println!(
        "{}",
        serde_json::json!({
            "kill_points": tally.hq_kills,
            "receipted_lost": tally.receipted_lost,
            "false_safe": tally.false_safe,
            "corrupt_stores": tally.corrupt_stores,
            "seed": seed,
            "receipted_heads_checked": tally.receipted_heads,
            "receipted_photos_checked": tally.receipted_photos,
            "safe_claims_checked": tally.claims,
            "settled": tally.settled,
            "device_kill_points": tally.device_kills,
            "device_kills_mid_operation": tally.device_kills_mid,
            "torn_device_writes": tally.torn,
            "wall_s": bench::round(started.elapsed().as_secs_f64()),
        })
    );
    Ok(())
}

/// What the run found.
#[derive(Default)]
struct Tally {
    hq_kills: usize,
    receipted_lost: usize,
    false_safe: usize,
    corrupt_stores: usize,
    receipted_heads: usize,
    receipted_photos: usize,
    claims: usize,
    settled: bool,
    device_kills: usize,
    device_kills_mid: usize,
    torn: usize,
}

/// A tablet's word that it is safe to leave, and the work that word covers:
/// each change it made itself and each photo it took.
struct Claim {
    tablet: String,
    changes: Vec<(String, Vec<u8>)>,
    photos: Vec<String>,
}

/// What the tablets and the checker share.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    claims: Mutex<Vec<Claim>>,
}

/// The places and programs of one run.
struct Lab {
    dir: PathBuf,
    server_bin: String,
    field_bin: String,
    /// HQ's data directory.
    data: PathBuf,
    /// HQ's sync address, the same after every restart.
    quic: SocketAddr,
    relay: SocketAddr,
}

/// A tablet of the burst: its store and whom it syncs with.
struct Tablet {
    name: &'static str,
    home: PathBuf,
    /// HQ (`true`) or the station's relay.
    to_hq: bool,
}

impl Lab {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        let free = || -> anyhow::Result<SocketAddr> { Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?) };
        let lab = Self {
            dir: dir.to_path_buf(),
            server_bin: std::env::var("FIELDSYNC_SERVER_BIN")?,
            field_bin: std::env::var("FIELD_BIN")?,
            data: dir.join("hq"),
            quic: free()?,
            relay: free()?,
        };
        std::fs::create_dir_all(&lab.data)?;
        Ok(lab)
    }

    fn field(&self, home: &Path) -> Command {
        let mut command = Command::new(&self.field_bin);
        command.arg("--home").arg(home).arg("--json");
        command
    }

    /// HQ up at its address, its log appended to `hq.log`.
    fn start_hq(&self) -> anyhow::Result<KillOnDrop> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("hq.log"))?;
        let (hq, _, _) = serve_at(&self.server_bin, &self.data, &self.quic.to_string(), log.into())?;
        Ok(hq)
    }

    /// Enrolls `store` with HQ as `role`, its credential scoped to `scope`.
    fn enroll(&self, store: &Store, role: &str, scope: &[&str]) -> anyhow::Result<()> {
        bench::enroll(
            &self.server_bin,
            &self.data,
            store,
            &[&["--role", role, "--server", &self.quic.to_string()], scope].concat(),
        )
    }

    /// Sets up HQ, the station and three tablets sharing a campaign, runs the
    /// burst through `kills` kills of HQ, and returns a bundle of everything
    /// the second tablet then holds (for the device phase).
    fn hq_phase(&self, kills: usize, rng: &mut Findings, tally: &mut Tally) -> anyhow::Result<Vec<u8>> {
        Command::new(&self.server_bin).arg("--data").arg(&self.data).arg("key").output()?;
        let tablets = [
            Tablet { name: "张三", home: self.dir.join("zhangsan"), to_hq: true },
            Tablet { name: "李四", home: self.dir.join("lisi"), to_hq: true },
            Tablet { name: "王五", home: self.dir.join("wangwu"), to_hq: false },
        ];
        let station_home = self.dir.join("station");
        let dossiers = self.set_up(&tablets, &station_home)?;

        let mut hq = Some(self.start_hq()?);
        let relay = self.start_relay(&station_home)?;
        let shared = Arc::new(Shared::default());
        let workers: Vec<_> = tablets
            .iter()
            .map(|t| {
                let (home, to_hq, name) = (t.home.clone(), t.to_hq, t.name);
                let target = if to_hq { self.quic } else { self.relay };
                let (shared, dossiers, dir) = (shared.clone(), dossiers.clone(), self.dir.clone());
                let seed = rng.next(u64::MAX);
                std::thread::spawn(move || work(name, &home, target, to_hq, &dossiers, seed, &dir, &shared))
            })
            .collect();

        let holders: Vec<PathBuf> =
            tablets.iter().map(|t| t.home.clone()).chain(std::iter::once(station_home.clone())).collect();
        let mut verified = HashSet::new();
        for kill in 1..=kills {
            let after = rng.next(RUN_MS + 1);
            std::thread::sleep(Duration::from_millis(after));
            hq = None;
            tally.hq_kills += 1;
            let claims = std::mem::take(&mut *shared.claims.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
            let found = self.check_hq(&holders, &claims, &mut verified)?;
            eprintln!(
                "kill {kill}/{kills} after {after} ms: {} receipted heads, {} receipted photos, {} safe claims — \
                 lost {}, false safe {}, corrupt {}",
                found.receipted_heads,
                found.receipted_photos,
                claims.len(),
                found.receipted_lost,
                found.false_safe,
                found.corrupt_stores
            );
            tally.add(&found, claims.len());
            hq = match self.start_hq() {
                Ok(hq) => Some(hq),
                Err(error) => {
                    eprintln!("HQ does not start again after kill {kill}: {error}");
                    tally.corrupt_stores += 1;
                    break;
                }
            };
        }

        shared.stop.store(true, Ordering::SeqCst);
        let mut edits = 0;
        for worker in workers {
            edits += worker.join().map_err(|_| anyhow::anyhow!("a tablet's thread panicked"))??;
        }
        tally.settled = self.settle(&tablets, &shared)?;
        eprintln!(
            "{edits} hazards recorded during the kills; every tablet safe to leave afterwards: {}",
            tally.settled
        );
        drop(hq);
        drop(relay);
        let claims = std::mem::take(&mut *shared.claims.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
        let found = self.check_hq(&holders, &claims, &mut verified)?;
        tally.add(&found, claims.len());
        for home in &holders {
            if !intact(&home.join("store.db")) || Store::open(home).is_err() {
                eprintln!("{} does not open whole", home.display());
                tally.corrupt_stores += 1;
            }
        }
        Ok(Store::open(&tablets[1].home)?.export_bundle()?)
    }
}

impl Lab {
    /// Three tablets with a campaign of two sites (set up by the first,
    /// passed to the others by bundle), enrolled as inspectors of it, and
    /// the station enrolled as a relay. Returns the sites' dossiers.
    fn set_up(&self, tablets: &[Tablet], station: &Path) -> anyhow::Result<Vec<DocId>> {
        let mut stores = tablets.iter().map(|t| Store::init(&t.home, t.name)).collect::<Result<Vec<_>, _>>()?;
        let c = stores[0].create_campaign(
            "断电试验",
            CampaignKind::ConstructionJointInspection,
            "2026-11-24",
            "2026-11-25",
        )?;
        let mut dossiers = Vec::new();
        for (n, code) in SITES.iter().enumerate() {
            let enterprise = Enterprise {
                name: format!("宁夏建设集团第{n}分公司"),
                unified_social_credit_code: code.parse()?,
                domain: Domain::Construction,
                project: format!("{n}号地块"),
                address: String::new(),
                dossier_id: DocId::dossier(&c, &code.parse()?),
            };
            stores[0].edit(&c, |tx| campaign::add_enterprise(tx, &c, &enterprise))?;
            dossiers.push(stores[0].open_dossier(&c, code)?);
        }
        let setup = stores[0].export_bundle()?;
        std::fs::write(self.dir.join("setup.fsb"), &setup)?;
        let first = stores[0].public_key();
        for store in &mut stores[1..] {
            store.trust(&first, tablets[0].name)?;
            store.import_bundle(&setup)?;
        }
        for store in &stores {
            self.enroll(store, "inspector", &["--campaign", c.as_str()])?;
        }
        self.enroll(&Store::init(station, "城关安监站")?, "station", &[])?;
        Ok(dossiers)
    }

    /// The station's relay, a `field relay` process forwarding to HQ every
    /// second, once it listens.
    fn start_relay(&self, home: &Path) -> anyhow::Result<KillOnDrop> {
        let log_path = self.dir.join("relay.log");
        let log = std::fs::File::create(&log_path)?;
        let relay = KillOnDrop(
            Command::new(&self.field_bin)
                .arg("--home")
                .arg(home)
                .args(["relay", "--listen", &self.relay.to_string(), "--forward-every", "1"])
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&log_path)?.contains("安监站中转已启动") {
            anyhow::ensure!(Instant::now() < deadline, "the relay did not start: see {}", log_path.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(relay)
    }

    /// After the kills: each tablet syncs until it is safe to leave (the
    /// last one through the relay, which forwards every second), its word
    /// kept as a claim. Whether all got there.
    fn settle(&self, tablets: &[Tablet], shared: &Shared) -> anyhow::Result<bool> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let mut all = true;
        for tablet in tablets {
            let mut store = Store::open(&tablet.home)?;
            let target = if tablet.to_hq { self.quic } else { self.relay };
            let mut safe = false;
            for _ in 0..60 {
                let _ = runtime.block_on(store.sync_reporting(Some(target), tablet.to_hq, &|_| {}));
                if store.standing()?.safe_to_leave() {
                    safe = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            if safe {
                claim(shared, tablet.name, &tablet.home, held_photos(&store)?)?;
            } else {
                eprintln!("{} is not safe to leave after a minute of syncing: {:?}", tablet.name, store.standing()?);
            }
            all &= safe;
        }
        Ok(all)
    }

    /// With HQ down: its stores and the `holders'` pass SQLite's integrity
    /// check, and it holds every change and photo the `holders` have its
    /// receipt for and all the work of every claim. Photos in `verified`
    /// were read whole at an earlier kill (their files are never rewritten):
    /// their presence is enough.
    fn check_hq(&self, holders: &[PathBuf], claims: &[Claim], verified: &mut HashSet<String>) -> anyhow::Result<Found> {
        let mut found = Found::default();
        for file in ["sync/store.db", "hq.db", "read.db"] {
            let path = self.data.join(file);
            if path.exists() && !intact(&path) {
                eprintln!("HQ's {file} fails its integrity check");
                found.corrupt_stores += 1;
            }
        }
        let mut hq = Held { home: self.data.join("sync"), docs: HashMap::new(), verified };
        for holder in holders {
            // The devices' stores too, read beside the processes using them.
            if !intact(&holder.join("store.db")) {
                eprintln!("{}'s store fails its integrity check", holder.display());
                found.corrupt_stores += 1;
            }
            let db = read_only(&holder.join("store.db"))?;
            let mut receipts = db.prepare("SELECT body FROM receipts")?;
            for body in receipts.query_map([], |r| r.get::<_, Vec<u8>>(0))? {
                let body: ReceiptBody = ciborium::from_reader(body?.as_slice())?;
                for head in &body.heads {
                    found.receipted_heads += 1;
                    if !hq.change(&body.doc, head) {
                        eprintln!(
                            "LOST: {} holds HQ's receipt {} for {} head {}",
                            holder.display(),
                            body.seq,
                            body.doc,
                            hex::encode(head)
                        );
                        found.receipted_lost += 1;
                    }
                }
            }
            let mut photos = db.prepare("SELECT sha256 FROM photos_at_hq")?;
            for sha in photos.query_map([], |r| r.get::<_, String>(0))? {
                let sha = sha?;
                found.receipted_photos += 1;
                if !hq.photo(&sha) {
                    eprintln!("LOST: {} was told HQ holds photo {sha}", holder.display());
                    found.receipted_lost += 1;
                }
            }
        }
        for claim in claims {
            let changes = claim.changes.iter().filter(|(doc, hash)| !hq.change(doc, hash)).count();
            let photos = claim.photos.iter().filter(|sha| !hq.photo(sha)).count();
            if changes + photos > 0 {
                eprintln!(
                    "FALSE SAFE: {} was safe to leave, but HQ lacks {changes} of its changes and {photos} of its photos",
                    claim.tablet
                );
                found.false_safe += 1;
            }
        }
        Ok(found)
    }
}

/// What one check after a kill found.
#[derive(Default)]
struct Found {
    receipted_heads: usize,
    receipted_photos: usize,
    receipted_lost: usize,
    false_safe: usize,
    corrupt_stores: usize,
}

impl Tally {
    fn add(&mut self, found: &Found, claims: usize) {
        self.receipted_heads += found.receipted_heads;
        self.receipted_photos += found.receipted_photos;
        self.receipted_lost += found.receipted_lost;
        self.false_safe += found.false_safe;
        self.corrupt_stores += found.corrupt_stores;
        self.claims += claims;
    }
}

/// What HQ's sync store holds on disk, read as a restarted HQ would.
struct Held<'a> {
    home: PathBuf,
    docs: HashMap<String, Option<Automerge>>,
    verified: &'a mut HashSet<String>,
}

impl Held<'_> {
    fn change(&mut self, doc: &str, hash: &[u8]) -> bool {
        let Ok(hash) = <[u8; 32]>::try_from(hash) else { return false };
        let home = &self.home;
        let held = self.docs.entry(doc.to_owned()).or_insert_with(|| {
            doc.parse::<DocId>().ok().and_then(|id| field_client::stored_document(home, &id).ok().flatten())
        });
        held.as_ref().is_some_and(|d| d.get_change_meta_by_hash(&ChangeHash(hash)).is_some())
    }

    fn photo(&mut self, sha: &str) -> bool {
        let path = field_client::blob_path(&self.home, sha);
        if self.verified.contains(sha) {
            return path.exists();
        }
        let whole = std::fs::read(&path).is_ok_and(|bytes| sha256_hex(&bytes) == sha);
        if whole {
            self.verified.insert(sha.to_owned());
        }
        whole
    }
}

/// One tablet of the burst until told to stop: a hazard with a photo in
/// one of the shared dossiers and its rectification plan, then a sync; when
/// the tablet is then safe to leave, its word becomes a claim. A sync that
/// hangs is abandoned and the store opened again, as an inspector would
/// restart the app. Returns how many hazards it recorded.
#[allow(clippy::too_many_arguments)]
fn work(
    name: &'static str,
    home: &Path,
    target: SocketAddr,
    to_hq: bool,
    dossiers: &[DocId],
    seed: u64,
    dir: &Path,
    shared: &Shared,
) -> anyhow::Result<usize> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut store = Store::open(home)?;
    let mut rng = Findings::new(seed)?;
    let mut recorded = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        let d = &dossiers[rng.next(dossiers.len() as u64) as usize];
        let path = dir.join(format!("{name}-{recorded}.jpg"));
        std::fs::write(&path, jpeg(&mut rng)?)?;
        let sha = store.add_photo(&path)?;
        std::fs::remove_file(&path)?;
        let id = new_entity_id()?;
        let hazard = hazard(&mut rng, name, &sha)?;
        store.edit(d, |tx| dossier::add_hazard(tx, &id, &hazard))?;
        take_step(&mut store, d, &id, plan("王五"))?;
        recorded += 1;
        let sync = store.sync_reporting(Some(target), to_hq, &|_| {});
        let synced = runtime.block_on(async { tokio::time::timeout(SYNC_LIMIT, sync).await });
        match synced {
            Ok(Ok(_)) if store.standing()?.safe_to_leave() => claim(shared, name, home, held_photos(&store)?)?,
            Ok(_) => {}
            Err(_) => {
                drop(store);
                store = reopen(home)?;
            }
        }
        std::thread::sleep(Duration::from_millis(100 + rng.next(400)));
    }
    Ok(recorded)
}

/// Opens a store again once the process's previous handle has let go.
fn reopen(home: &Path) -> anyhow::Result<Store> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open(home) {
            Ok(store) => return Ok(store),
            Err(error) if Instant::now() > deadline => return Err(error.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Records that the tablet at `home` is safe to leave: every change it made
/// itself (the store's own log) and `photos`.
fn claim(shared: &Shared, tablet: &str, home: &Path, photos: Vec<String>) -> anyhow::Result<()> {
    let db = read_only(&home.join("store.db"))?;
    let mut own = db.prepare("SELECT doc_id, hash FROM changes WHERE source = 'local'")?;
    let changes = own.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
    let claim = Claim { tablet: tablet.to_owned(), changes, photos };
    shared.claims.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(claim);
    Ok(())
}

/// Every photo the tablet holds: its own, and any that came to it (which
/// came from HQ, so HQ holds them too).
fn held_photos(store: &Store) -> anyhow::Result<Vec<String>> {
    let db = read_only(&store.home().join("store.db"))?;
    let mut blobs = db.prepare("SELECT sha256 FROM blobs")?;
    let all = blobs.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(all)
}

/// A finding of `inspector` with photo `sha`.
fn hazard(rng: &mut Findings, inspector: &str, sha: &str) -> anyhow::Result<Hazard> {
    let (title, description, location, legal_basis, _) = rng.finding();
    Ok(Hazard {
        subcontractor: String::new(),
        title,
        description,
        hazard_kind: HazardKind::UnsafeCondition,
        accident_type: AccidentType::gb6441_1986(&format!("{:02}", 1 + rng.next(20)))?,
        level: HazardLevel::General,
        major_hazard_criterion: None,
        location: Location { text: location, gps: None },
        legal_basis,
        photos: [(sha.to_owned(), "IMG_0001.jpg".to_owned())].into_iter().collect(),
        inspector: inspector.into(),
        found_at: "2026-11-24T02:00:00Z".into(),
        found_on: String::new(),
        checklist_item: None,
        deleted: false,
        rectification: Rectification::default(),
    })
}

/// A small photo of noise, different every time.
fn jpeg(rng: &mut Findings) -> anyhow::Result<Vec<u8>> {
    let image = image::RgbImage::from_fn(160, 120, |_, _| {
        let n = rng.next(1 << 24);
        image::Rgb([n as u8, (n >> 8) as u8, (n >> 16) as u8])
    });
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85).encode_image(&image)?;
    Ok(bytes)
}

fn read_only(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    db.busy_timeout(Duration::from_secs(10))?;
    Ok(db)
}

/// Whether the SQLite file at `path` opens and passes its integrity check.
fn intact(path: &Path) -> bool {
    let checked =
        read_only(path).and_then(|db| Ok(db.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))?));
    match checked {
        Ok(verdict) if verdict == "ok" => true,
        Ok(verdict) => {
            eprintln!("{}: {verdict}", path.display());
            false
        }
        Err(error) => {
            eprintln!("{}: {error}", path.display());
            false
        }
    }
}

/// What `field status` says of a store, as far as the device phase reads it.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Counts {
    hazards: u64,
    received: u64,
}

impl Lab {
    /// A tablet's store killed mid-edit and mid-import, `kills` times in all
    /// (half each): after each kill it opens, passes its integrity check and
    /// holds the edit or the import of `bundle` whole or not at all; a torn
    /// one is counted, a store that no longer opens ends the phase.
    fn device_phase(&self, kills: usize, bundle: &[u8], rng: &mut Findings, tally: &mut Tally) -> anyhow::Result<()> {
        let home = self.dir.join("zhaoliu");
        let base = self.dir.join("zhaoliu-base");
        let bundle_path = self.dir.join("all.fsb");
        std::fs::write(&bundle_path, bundle)?;
        let campaign = {
            let mut store = Store::init(&home, "赵六")?;
            for other in ["zhangsan", "lisi", "wangwu"] {
                store.trust(&Store::open(&self.dir.join(other))?.public_key(), other)?;
            }
            store.import_bundle(&std::fs::read(self.dir.join("setup.fsb"))?)?;
            store.doc_ids(sync_core::ids::DocKind::Campaign)?.remove(0)
        };
        copy_tree(&home, &{
            std::fs::create_dir_all(&base)?;
            base.clone()
        })?;

        // How long each takes when left alone (the quickest of three edits):
        // the kills fall within that.
        let photo = self.dir.join("site.jpg");
        let edit = |rng: &mut Findings| -> anyhow::Result<Command> {
            std::fs::write(&photo, jpeg(rng)?)?;
            let mut command = self.field(&home);
            command.args([
                "hazard",
                "add",
                campaign.as_str(),
                SITES[0],
                "--title",
                "临边防护栏杆缺失",
                "--accident-type",
                "05",
            ]);
            command.arg("--photo").arg(&photo);
            Ok(command)
        };
        let import_into = |home: &Path| -> anyhow::Result<Command> {
            std::fs::remove_dir_all(home)?;
            copy_tree(&base, &{
                std::fs::create_dir_all(home)?;
                home.to_path_buf()
            })?;
            let mut command = self.field(home);
            command.args(["bundle", "import"]).arg(&bundle_path);
            Ok(command)
        };
        let imported = self.dir.join("zhaoliu-import");
        std::fs::create_dir_all(&imported)?;
        let before = self.counts(&base)?;
        let timed = |mut command: Command| -> anyhow::Result<Duration> {
            let started = Instant::now();
            let out = command.output()?;
            anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            Ok(started.elapsed())
        };
        let edit_takes = (0..3)
            .map(|_| timed(edit(rng)?))
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .min()
            .unwrap_or_default();
        let import_takes = timed(import_into(&imported)?)?;
        let after = self.counts(&imported)?;
        eprintln!(
            "device phase: an edit takes {} ms, an import of {} KB {} ms ({before:?} → {after:?})",
            edit_takes.as_millis(),
            bundle.len() / 1000,
            import_takes.as_millis()
        );

        for kill in 0..kills {
            let importing = kill % 2 == 1;
            let (store, command, takes) = if importing {
                (&imported, import_into(&imported)?, import_takes)
            } else {
                (&home, edit(rng)?, edit_takes)
            };
            let was = self.counts(store)?;
            let at = Duration::from_micros(rng.next(takes.as_micros() as u64 + 1));
            let mid = kill_after(command, at)?;
            tally.device_kills += 1;
            tally.device_kills_mid += usize::from(mid);
            if !intact(&store.join("store.db")) {
                tally.corrupt_stores += 1;
            }
            let Ok(now) = self.counts(store) else {
                eprintln!("the store at {} no longer opens after kill {kill}", store.display());
                tally.corrupt_stores += 1;
                break;
            };
            let whole = if importing {
                (now == before && mid) || now == after
            } else {
                (now.hazards == was.hazards && mid) || now.hazards == was.hazards + 1
            };
            let photos_whole = photos_whole(store)?;
            if !whole || !photos_whole {
                eprintln!(
                    "TORN: kill {kill} ({}) after {at:?}: {was:?} → {now:?}, photos whole: {photos_whole}",
                    if importing { "import" } else { "edit" }
                );
                tally.torn += 1;
            }
            if importing && now != after {
                // An import cut short is simply done again.
                let mut again = self.field(store);
                again.args(["bundle", "import"]).arg(&bundle_path);
                let ok = again.output()?.status.success() && self.counts(store)? == after;
                if !ok {
                    eprintln!("TORN: the import cut short at kill {kill} cannot be done again");
                    tally.torn += 1;
                }
            }
        }
        eprintln!("device phase: {} kills, {} of them mid-operation", tally.device_kills, tally.device_kills_mid);
        Ok(())
    }

    /// `field status` of the store at `home`, which must open.
    fn counts(&self, home: &Path) -> anyhow::Result<Counts> {
        let out = self.field(home).arg("status").output()?;
        anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let status: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        anyhow::ensure!(status["missing_photos"].as_u64() == Some(0), "photos missing: {status}");
        let number = |key: &str| status[key].as_u64().ok_or_else(|| anyhow::anyhow!("no {key} in {status}"));
        Ok(Counts { hazards: number("hazards")?, received: number("received_changes")? })
    }
}

/// Runs `command` and kills it with SIGKILL `after` it started, unless it
/// ended first; whether it was killed mid-operation.
fn kill_after(mut command: Command, after: Duration) -> anyhow::Result<bool> {
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    std::thread::sleep(after);
    let mid = child.try_wait()?.is_none();
    if mid {
        child.kill()?;
    }
    child.wait()?;
    Ok(mid)
}

/// Whether every photo file in the store at `home` is whole: its contents
/// hash to its name (a photo being written sits in a hidden temporary file).
fn photos_whole(home: &Path) -> anyhow::Result<bool> {
    let blobs = home.join("blobs");
    if !blobs.exists() {
        return Ok(true);
    }
    for shelf in std::fs::read_dir(blobs)? {
        for file in std::fs::read_dir(shelf?.path())? {
            let file = file?;
            let name = file.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && sha256_hex(&std::fs::read(file.path())?) != name {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
