//! Helpers shared by the end-to-end tests in `server/tests/`: the real
//! `fieldsync-server` process, enrollment through its `issue` command, a
//! station relay task, and sample records.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use field_client::net::NetError;
use field_client::{RelayEvent, Store};
use sync_core::automerge::ChangeHash;
use sync_core::codes::AccidentType;
use sync_core::credential::Enrollment;
use sync_core::doc::campaign;
use sync_core::ids::{CreditCode, DocId, DocKind};
use sync_core::model::{CampaignKind, Domain, Enterprise, Hazard, HazardKind, HazardLevel, Location, Rectification};

/// A UDP port nobody listens on now, for a server started later.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `field` binary, built beside this test by `cargo test --workspace`.
pub fn field_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join(format!("field{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} not built: run `cargo test --workspace`", bin.display());
    bin
}

/// Runs `fieldsync-server --data <data> <args>` to completion.
pub fn server_command(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fieldsync-server")).arg("--data").arg(data).args(args).output().unwrap()
}

/// Issues a credential for `store` with `fieldsync-server issue` (role,
/// HQ address in the enrollment string, and any further `issue` arguments
/// such as `--campaign`), without enrolling the store.
pub fn issue(data: &Path, store: &Store, role: &str, server: &str, extra: &[&str]) -> Enrollment {
    let key = store.public_key().to_string();
    let mut args = vec!["issue", "--device", &key, "--name", store.device_name(), "--role", role, "--server", server];
    args.extend_from_slice(extra);
    let out = server_command(data, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

/// Issues a credential for `store` and enrolls it.
pub fn enroll_as(data: &Path, store: &Store, role: &str, server: &str) {
    store.enroll(&issue(data, store, role, server, &[])).unwrap();
}

/// Enrolls `store` as an inspector with the default HQ address.
pub fn enroll(data: &Path, store: &Store) {
    enroll_as(data, store, "inspector", "127.0.0.1:4433");
}

/// Revokes credential `serial` with `fieldsync-server revoke`.
pub fn revoke(data: &Path, serial: u64) {
    let out = server_command(data, &["revoke", "--serial", &serial.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Runs a station relay on `store` in its own task; returns its address, a
/// stop switch and the task.
pub async fn spawn_relay(
    store: Store,
    every: Duration,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Result<(), NetError>>) {
    let (addr, stop, task, _) = spawn_relay_reporting(store, every).await;
    (addr, stop, task)
}

/// As [`spawn_relay`], also returning what the relay reports.
pub async fn spawn_relay_reporting(
    store: Store,
    every: Duration,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), NetError>>,
    tokio::sync::mpsc::UnboundedReceiver<RelayEvent>,
) {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut store = store;
        store
            .relay(
                "127.0.0.1:0".parse().unwrap(),
                every,
                |addr| {
                    let _ = ready_tx.send(addr);
                },
                |event| {
                    let _ = events_tx.send(event);
                },
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
    });
    (ready_rx.await.unwrap(), stop_tx, task, events_rx)
}

/// The real server process. Dropping it kills it, so a failing test leaves
/// no server behind.
pub struct Server {
    child: Child,
    /// Its QUIC sync address.
    pub addr: SocketAddr,
    /// Its HTTP address (health, admin and read API).
    pub http: SocketAddr,
}

impl Server {
    /// Starts the server on a free port.
    pub fn start(data: &Path) -> Self {
        Self::start_at(data, "127.0.0.1:0")
    }

    /// Starts the server with its QUIC endpoint on `quic`.
    pub fn start_at(data: &Path, quic: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fieldsync-server"))
            .arg("--data")
            .arg(data)
            .args(["serve", "--quic", quic, "--http", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let (mut addr, mut http) = (None, None);
        while addr.is_none() || http.is_none() {
            let line = lines.next().expect("server exited").unwrap();
            if let Some(quic) = line.strip_prefix("同步地址：") {
                addr = Some(quic.parse().unwrap());
            }
            if let Some(rest) = line.strip_prefix("健康检查：http://") {
                http = rest.strip_suffix("/health").map(|a| a.parse().unwrap());
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr: addr.unwrap(), http: http.unwrap() }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Asks the process to stop, as a service manager does (SIGTERM), and
    /// waits for it to exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_raw(self.child.id().try_into().unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        self.child.wait().unwrap()
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already reaped after `kill`; then both calls fail harmlessly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A valid general hazard with `title`.
/// The enterprise the single-site tests use.
pub const CODE: &str = "91640200MA76XYW123";

/// Creates a joint-inspection campaign on `store` with one construction
/// site (`CODE`); returns the campaign.
pub fn joint_campaign(store: &mut Store) -> DocId {
    let c = store
        .create_campaign("联合检查", CampaignKind::ConstructionJointInspection, "2026-11-24", "2026-11-25")
        .unwrap();
    add_enterprise(store, &c, CODE, "某建设集团");
    c
}

/// A second site in tests that need two dossiers.
pub const OTHER_CODE: &str = "91640300MA76XYW125";

/// Adds the construction enterprise `code` named `name` to campaign `c`.
pub fn add_enterprise(store: &mut Store, c: &DocId, code: &str, name: &str) {
    let code: CreditCode = code.parse().unwrap();
    let enterprise = Enterprise {
        name: name.into(),
        unified_social_credit_code: code.clone(),
        domain: Domain::Construction,
        project: String::new(),
        address: String::new(),
        dossier_id: DocId::dossier(c, &code),
    };
    store.edit(c, |tx| campaign::add_enterprise(tx, c, &enterprise)).unwrap();
}

pub fn hazard(title: &str) -> Hazard {
    Hazard {
        subcontractor: String::new(),
        title: title.into(),
        description: "现场发现".into(),
        hazard_kind: HazardKind::UnsafeCondition,
        accident_type: AccidentType::gb6441_1986("09").unwrap(),
        level: HazardLevel::General,
        major_hazard_criterion: None,
        location: Location { text: "1号楼".into(), gps: None },
        legal_basis: String::new(),
        photos: Default::default(),
        inspector: String::new(),
        found_at: "2026-11-24T01:00:00Z".into(),
        found_on: String::new(),
        checklist_item: None,
        deleted: false,
        rectification: Rectification::default(),
    }
}

/// Every synced document `store` holds, with its heads.
pub fn heads(store: &mut Store) -> Vec<(DocId, Vec<ChangeHash>)> {
    let mut out = Vec::new();
    for kind in [DocKind::Campaign, DocKind::EnterpriseDossier, DocKind::Briefing] {
        for id in store.doc_ids(kind).unwrap() {
            let heads = store.document(&id).unwrap().get_heads();
            out.push((id, heads));
        }
    }
    out
}

/// A small JPEG, as a camera writes one.
pub fn jpeg() -> Vec<u8> {
    let image = image::RgbImage::from_fn(160, 120, |x, y| image::Rgb([(x * 3) as u8, (y * 2) as u8, 120]));
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg)
        .unwrap();
    bytes
}
