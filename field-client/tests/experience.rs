//! The field experience, over the real `field` binary: what an inspector
//! stumbled on when the product was tried as a new user would.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use tempfile::TempDir;

#[path = "../../tests/tests/common/mod.rs"]
mod common;
use common::{Device, field_bin};

const CODE: &str = "91640200MA76XYW123";

/// A device with one campaign; returns it and the campaign's id.
fn inspector(root: &Path) -> (Device, String) {
    inspector_in(root, sync_core::zone::DEFAULT)
}

/// As [`inspector`], the campaign kept in time zone `zone`.
fn inspector_in(root: &Path, zone: &str) -> (Device, String) {
    let device = Device::new(root, "张三");
    let campaign = device.create_campaign(Some(zone));
    (device, campaign)
}

/// An export or a bundle never replaces a file that is there already (a
/// decoy standing in for a file that mattered) unless `--force` is given;
/// with it, the file is replaced whole.
#[test]
fn files_are_never_overwritten_unasked() {
    let root = TempDir::new().unwrap();
    let (device, campaign) = inspector(root.path());
    let decoy = root.path().join("decoy.txt");
    let decoy_arg = decoy.to_str().unwrap();
    for args in [
        vec!["export", "csv", &campaign, "--out", decoy_arg],
        vec!["export", "json", &campaign, "--out", decoy_arg],
        vec!["bundle", "export", "--out", decoy_arg],
    ] {
        fs::write(&decoy, "重要文件").unwrap();
        let said = device.fails(&args);
        assert!(said.contains("已存在") && said.contains("--force"), "{args:?}: {said}");
        assert_eq!(fs::read_to_string(&decoy).unwrap(), "重要文件", "{args:?} touched the file");

        let forced: Vec<&str> = args.iter().copied().chain(["--force"]).collect();
        let told = device.ok(&forced);
        assert!(told.contains(&*root.path().canonicalize().unwrap().to_string_lossy()), "says where: {told}");
        assert_ne!(fs::read_to_string(&decoy).unwrap_or_default(), "重要文件");
    }
    // Nothing half-written is left beside it.
    let left: Vec<_> = fs::read_dir(root.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A folder the path names that is not there yet is made.
    let register = root.path().join("导出").join("隐患台账.csv");
    device.ok(&["export", "csv", &campaign, "--out", register.to_str().unwrap()]);
    assert!(fs::read_to_string(&register).unwrap().contains("隐患编号"));
}

/// A file that cannot be written or read is told in Chinese, naming it.
#[test]
fn file_errors_are_told_in_chinese() {
    let root = TempDir::new().unwrap();
    let (device, campaign) = inspector(root.path());
    // A folder in the path that is a file.
    fs::write(root.path().join("报告"), "重要文件").unwrap();
    let blocked = root.path().join("报告").join("台账.csv");
    let said = device.fails(&["export", "csv", &campaign, "--out", blocked.to_str().unwrap()]);
    assert!(said.contains("不是目录") && said.contains("台账.csv"), "{said}");
    assert!(!said.contains("os error") && !said.contains("Not a directory"), "{said}");

    let said = device.fails(&["bundle", "import", root.path().join("none.fsb").to_str().unwrap()]);
    assert!(said.contains("无法读取") && said.contains("none.fsb") && !said.contains("os error"), "{said}");
}

/// Output piped into a reader that has gone (`field … | head`) ends the
/// program quietly, for every kind of output.
#[test]
fn a_closed_pipe_ends_quietly() {
    let root = TempDir::new().unwrap();
    let (device, campaign) = inspector(root.path());
    for args in [
        vec!["checklist", "show", "construction-jgj59"],
        vec!["--json", "checklist", "show", "construction-jgj59"],
        vec!["export", "json", &campaign],
        vec!["status"],
    ] {
        let mut child = Command::new(field_bin())
            .env("FIELD_HOME", &device.home)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes before anything is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && said.is_empty(), "{args:?}: {:?} {said}", out.status);
    }
}

/// Enrolls `device` as `name` in `role` with an HQ at `server` (a
/// credential signed here with a stand-in HQ key).
fn enroll_as(device: &Device, name: &str, role: sync_core::credential::Role, server: &str) {
    use serde_bytes::ByteBuf;
    use sync_core::credential::{Credential, Enrollment, Scope, SignedCredential};
    use sync_core::identity::DeviceKey;
    let hq = DeviceKey::from_seed([7; 32]);
    let key: sync_core::identity::DevicePublicKey = device.key().parse().unwrap();
    let credential = SignedCredential::issue(
        &hq,
        Credential {
            serial: 1,
            device: ByteBuf::from(key.to_bytes().to_vec()),
            name: name.into(),
            role,
            scope: Scope::default(),
            not_before: 0,
            not_after: i64::MAX,
        },
    );
    device.ok(&["enroll", &Enrollment { hq: hq.public(), server: server.into(), credential }.to_string()]);
}

/// Enrolls `device` as the inspector 张三.
fn enroll(device: &Device, server: &str) {
    enroll_as(device, "张三", sync_core::credential::Role::Inspector, server);
}

/// Where HQ's address has nothing listening, `field sync` run from a
/// script (standard error not a terminal) says whom it is connecting to
/// and fails at once with the reason, in Chinese, instead of waiting out
/// the 30 s a silent network would take.
#[test]
fn sync_says_whom_it_waits_for_and_fails_fast_when_refused() {
    let root = TempDir::new().unwrap();
    let (device, _) = inspector(root.path());
    // A port nothing listens on.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = format!("127.0.0.1:{port}");
    enroll(&device, &server);
    let started = std::time::Instant::now();
    let said = device.fails(&["sync"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "waited {:?}", started.elapsed());
    assert!(said.contains(&format!("正在连接总部 {server}")), "{said}");
    assert!(said.contains("没有同步服务在运行"), "{said}");
    assert!(!said.contains("os error") && !said.contains("refused"), "{said}");
}

/// The help for `--criterion` points to `field checklist criteria`, which
/// lists the major-hazard criteria by industry and finds them by keyword —
/// before any store exists, as on a new tablet.
#[test]
fn the_criteria_the_help_points_to_can_be_listed() {
    let root = TempDir::new().unwrap();
    let field = |args: &[&str]| {
        Command::new(field_bin()).env("FIELD_HOME", root.path().join("none")).args(args).output().unwrap()
    };
    let help = String::from_utf8(field(&["hazard", "add", "--help"]).stdout).unwrap();
    assert!(help.contains("field checklist criteria"), "{help}");

    let out = field(&["--json", "checklist", "criteria", "脚手架", "--industry", "建筑施工"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = found.as_array().unwrap();
    assert!(!found.is_empty());
    for c in found {
        assert_eq!(c["domain"], "construction");
        assert!(c["text"].as_str().unwrap().contains("脚手架"), "{c}");
        // Each id is one `--criterion` takes.
        sync_core::codes::criterion(c["id"].as_str().unwrap()).unwrap();
    }
    let coal = field(&["checklist", "criteria", "--industry", "coal_mine"]);
    assert!(String::from_utf8(coal.stdout).unwrap().contains("瓦斯超限作业"));
    let none = field(&["checklist", "criteria", "不存在的条文"]);
    assert!(!none.status.success() && String::from_utf8(none.stderr).unwrap().contains("没有找到"));
}

/// Texts have the schema's limits at the door, told in Chinese; a long
/// description comes from a file (`@path`) or standard input (`-`).
#[test]
fn long_texts_come_from_files_within_the_limits() {
    use std::io::Write;
    let root = TempDir::new().unwrap();
    let (device, campaign) = inspector(root.path());
    device.ok(&["campaign", "add-enterprise", &campaign, "--name", "宁夏某建设集团有限公司", "--code", CODE]);
    let add = |extra: &[&str]| -> Vec<String> {
        ["hazard", "add", &campaign, CODE, "--accident-type", "09"].iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let long_title = "高".repeat(201);
    let said = device.fails(&add(&["--title", &long_title]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(said.contains("超过上限 200"), "{said}");

    let file = root.path().join("描述.txt");
    fs::write(&file, "5层楼板东侧临边无防护栏杆。\n现场已拉警戒线。\n").unwrap();
    let from_file = format!("@{}", file.display());
    let added = device.json(
        &add(&["--title", "临边无防护", "--description", &from_file]).iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let shown = device.ok(&["hazard", "show", added["id"].as_str().unwrap()]);
    assert!(shown.contains("5层楼板东侧临边无防护栏杆。\n现场已拉警戒线。"), "{shown}");

    let mut child = Command::new(field_bin())
        .env("FIELD_HOME", &device.home)
        .args(add(&["--title", "洞口无盖板", "--description", "-", "--json"]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all("电梯井口未设置防护门。".as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"].as_str().unwrap().to_owned();
    assert!(device.ok(&["hazard", "show", &id]).contains("电梯井口未设置防护门。"));

    fs::write(&file, "描".repeat(5001)).unwrap();
    let before = device.json(&["status"])["hazards"].clone();
    let said = device
        .fails(&add(&["--title", "过长", "--description", &from_file]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(said.contains("超过上限 5000"), "{said}");
    assert_eq!(device.json(&["status"])["hazards"], before);
}

/// Times people read are in the campaign's time zone, not UTC; an accident
/// dated after today is refused when recorded.
#[test]
fn dates_people_read_are_local() {
    let root = TempDir::new().unwrap();
    // UTC+14: its day is not UTC's for ten hours of every day.
    let (device, campaign) = inspector_in(root.path(), "Pacific/Kiritimati");
    device.ok(&["campaign", "add-enterprise", &campaign, "--name", "宁夏某建设集团有限公司", "--code", CODE]);
    let id = device.json(&["hazard", "add", &campaign, CODE, "--title", "临边无防护", "--accident-type", "09"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = device.ok(&["hazard", "show", &id]);
    let found = shown.lines().find_map(|l| l.split_once("发现时间：")).map(|(_, t)| t.trim().to_owned()).unwrap();
    assert!(!found.contains('T') && !found.ends_with('Z'), "{shown}");
    let csv = device.ok(&["export", "csv", &campaign]);
    assert!(csv.contains(&found[..10]), "the register's 发现日期 is the same day as shown: {found} / {csv}");

    let said =
        device.fails(&["review", "add", &campaign, CODE, "--date", "2099-01-01", "--summary", "高处坠落一人死亡"]);
    assert!(said.contains("晚于今天"), "{said}");
    device.ok(&["review", "add", &campaign, CODE, "--date", "2025-06-01", "--summary", "高处坠落一人死亡"]);
}

/// Two inspectors on one enterprise, each trusting the other, both holding
/// the campaign (passed by bundle).
fn team(root: &Path) -> (Device, Device, String) {
    let (a, campaign) = inspector(root);
    let b = Device::new(root, "李四");
    a.ok(&["trust", "add", &b.key(), "--name", "李四"]);
    b.ok(&["trust", "add", &a.key(), "--name", "张三"]);
    a.ok(&["campaign", "add-enterprise", &campaign, "--name", "宁夏某建设集团有限公司", "--code", CODE]);
    exchange(&a, &b, root, "setup.fsb");
    (a, b, campaign)
}

fn exchange(from: &Device, to: &Device, root: &Path, name: &str) {
    let path = root.join(name);
    from.ok(&["bundle", "export", "--out", path.to_str().unwrap(), "--force"]);
    to.ok(&["bundle", "import", path.to_str().unwrap()]);
}

/// An inspector who explicitly sets a hazard's level to the value it has
/// (confirming 一般) while a colleague raises it to 重大 leaves a trace:
/// the merge holds a conflict to decide rather than the colleague's value
/// standing unreviewed. Until it is decided, every device shows the graver
/// value, marked; it is decided by the field's Chinese name and value.
#[test]
fn confirming_a_safety_critical_value_surfaces_the_disagreement() {
    let root = TempDir::new().unwrap();
    let (a, b, campaign) = team(root.path());
    let added = a.json(&["hazard", "add", &campaign, CODE, "--title", "外架连墙件缺失", "--accident-type", "09"]);
    let id = added["id"].as_str().unwrap().to_owned();
    exchange(&a, &b, root.path(), "a1.fsb");

    a.ok(&["hazard", "edit", &id, "--level", "major", "--criterion", "jianzhi-2022-2/art7-1"]);
    b.ok(&["hazard", "edit", &id, "--level", "一般"]);
    exchange(&a, &b, root.path(), "a2.fsb");
    exchange(&b, &a, root.path(), "b2.fsb");

    let listed = b.json(&["conflicts", "list"]);
    let level = listed
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["conflicts"].as_array().unwrap().clone())
        .find(|c| c["field"] == "level")
        .unwrap_or_else(|| panic!("no level conflict: {listed}"));
    assert_eq!(level["critical"], true);
    let dossier = b.json(&["hazard", "show", &id])["dossier"].as_str().unwrap().to_owned();
    // Until someone decides, both show the graver value, marked, and so
    // does the register.
    for device in [&a, &b] {
        let shown = device.ok(&["hazard", "show", &id]);
        assert!(shown.contains("等级：重大") && shown.contains("【冲突待裁定】隐患等级"), "{shown}");
        let listed = device.ok(&["hazard", "list"]);
        assert!(listed.contains("重大【冲突待裁定】"), "{listed}");
        let row = register_row(device, &campaign, &id);
        assert_eq!((row["隐患等级"].as_str(), row["待裁定冲突"].as_str()), ("重大", "隐患等级"), "{row:?}");
    }

    b.ok(&["conflicts", "resolve", &dossier, &format!("{}/隐患等级", &id[..10]), "重大"]);
    assert_eq!(b.json(&["hazard", "show", &id])["hazard"]["level"], "major");
    let left = b.json(&["conflicts", "list"]);
    assert!(!left.to_string().contains("\"level\""), "{left}");
}

/// The register's row of hazard `id` as exported by `device`, by column.
fn register_row(device: &Device, campaign: &str, id: &str) -> std::collections::BTreeMap<String, String> {
    let csv = device.ok(&["export", "csv", campaign]);
    let mut reader = csv::Reader::from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
    let columns: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let row = reader.records().map(Result::unwrap).find(|r| &r[1] == id).unwrap();
    columns.into_iter().zip(row.iter().map(str::to_owned)).collect()
}

/// The register names photos by where an export folder holds them, and
/// `field export csv --photos` writes them there, beside the register; the
/// sub-contractor and the responsible unit (DOMAIN.md) have columns, and
/// the verification's verdict one of its own.
#[test]
fn the_register_names_photos_a_person_can_find() {
    let root = TempDir::new().unwrap();
    let (device, campaign) = inspector(root.path());
    device.ok(&["campaign", "add-enterprise", &campaign, "--name", "宁夏某建设集团有限公司", "--code", CODE]);
    let photo = root.path().join("IMG_0001.jpg");
    fs::write(&photo, [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]).unwrap();
    let added = device.json(&[
        "hazard",
        "add",
        &campaign,
        CODE,
        "--title",
        "临边无防护",
        "--accident-type",
        "09",
        "--photo",
        photo.to_str().unwrap(),
    ]);
    let id = added["id"].as_str().unwrap().to_owned();
    device.ok(&["hazard", "edit", &id, "--subcontractor", "宁夏某劳务分包有限公司"]);
    device.ok(&[
        "rectify",
        "plan",
        &id,
        "--mode",
        "immediate",
        "--owner",
        "王五",
        "--unit",
        "宁夏某劳务分包有限公司",
        "--measures",
        "补设栏杆",
    ]);
    device.ok(&["rectify", "start", &id]);
    device.ok(&["rectify", "submit", &id, "--by", "王五"]);
    let row = register_row(&device, &campaign, &id);
    let path = format!("照片/{id}/IMG_0001.jpg");
    assert_eq!(row["整改前照片"], path);
    assert!(row.contains_key("复查结论") && row.contains_key("复查意见"), "{row:?}");
    assert_eq!(
        (row["分包单位"].as_str(), row["整改责任单位"].as_str()),
        ("宁夏某劳务分包有限公司", "宁夏某劳务分包有限公司")
    );

    let out = root.path().join("导出");
    fs::create_dir(&out).unwrap();
    let register = out.join("台账.csv");
    let told = device.ok(&["export", "csv", &campaign, "--out", register.to_str().unwrap(), "--photos"]);
    assert!(told.contains("照片 1 张"), "{told}");
    assert_eq!(fs::read(out.join(&path)).unwrap(), fs::read(&photo).unwrap());
    // Again: the register and its photos are kept unless --force.
    let said = device.fails(&["export", "csv", &campaign, "--out", register.to_str().unwrap(), "--photos"]);
    assert!(said.contains("已存在"), "{said}");
    device.ok(&["export", "csv", &campaign, "--out", register.to_str().unwrap(), "--photos", "--force"]);
}

/// A station relay running as `field --json relay`, its console read line
/// by line; stopped however the test ends.
struct Relay {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Where it listens.
    addr: String,
}

impl Relay {
    fn start(station: &Device, forward_every: u64) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(field_bin())
            .env("FIELD_HOME", &station.home)
            .env_remove("RUST_LOG")
            .args(["--json", "relay", "--listen", "127.0.0.1:0", "--forward-every", &forward_every.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let ready = lines.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
        let addr = ready.split_once('：').and_then(|(_, rest)| rest.split_once('（')).unwrap().0.to_owned();
        Self { child, lines, addr }
    }

    /// The console's next event (a JSON line) within `wait`, if any.
    fn event(&self, wait: std::time::Duration) -> Option<serde_json::Value> {
        let line = self.lines.recv_timeout(wait).ok()?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}")))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tablet and the station's relay count the changes of their sync the
/// same way, as what the other side did not have: a tablet does not count
/// as sent the colleague's work it carries that the relay already holds.
#[test]
fn the_relay_and_the_tablets_count_changes_alike() {
    use sync_core::credential::Role;
    let root = TempDir::new().unwrap();
    let (a, b, campaign) = team(root.path());
    let station = Device::new(root.path(), "城关安监站");
    // HQ's address answers nothing: the relay keeps what it gets.
    for (device, name, role) in
        [(&a, "张三", Role::Inspector), (&b, "李四", Role::Inspector), (&station, "城关安监站", Role::Station)]
    {
        enroll_as(device, name, role, "127.0.0.1:9");
    }
    let relay = Relay::start(&station, 3600);
    let served = |name: &str| loop {
        let event = relay.event(std::time::Duration::from_secs(30)).expect("the relay fell silent");
        if event["event"] == "served" && event["device"] == name {
            return event;
        }
    };
    // 张三's morning reaches 李四 on a USB stick; 张三 goes on, then syncs
    // first; 李四 adds one finding of his own and syncs after.
    a.ok(&["hazard", "add", &campaign, CODE, "--title", "配电箱无门锁", "--accident-type", "05"]);
    exchange(&a, &b, root.path(), "morning.fsb");
    a.ok(&["hazard", "add", &campaign, CODE, "--title", "洞口未设防护栏", "--accident-type", "06"]);
    // Syncs `device` (named `name`) with the relay: what it says, checked
    // against what the relay says of it.
    let sync = |device: &Device, name: &str| {
        let tablet = device.json(&["sync", "--peer", &relay.addr]);
        let at_relay = served(name);
        let each_way = (&tablet["sent"], &tablet["received"]);
        assert_eq!(each_way, (&at_relay["received"], &at_relay["sent"]), "{tablet} {at_relay}");
        tablet
    };
    sync(&a, "张三");
    b.ok(&["hazard", "add", &campaign, CODE, "--title", "塔吊限位失效", "--accident-type", "04"]);
    let tablet = sync(&b, "李四");
    // What moved: 李四's one finding went up, 张三's later one came down.
    assert_eq!((tablet["sent"].as_u64(), tablet["received"].as_u64()), (Some(1), Some(1)), "{tablet}");
}

/// While the station's relay holds its store all day, the clerk can still
/// look: `field status`, the hazard list and an export run read-only and
/// show what the relay has stored; an edit is refused, in Chinese, and
/// changes nothing.
#[test]
fn the_station_can_look_while_its_relay_runs() {
    use sync_core::credential::Role;
    let root = TempDir::new().unwrap();
    let (a, campaign) = inspector(root.path());
    let station = Device::new(root.path(), "城关安监站");
    enroll_as(&a, "张三", Role::Inspector, "127.0.0.1:9");
    enroll_as(&station, "城关安监站", Role::Station, "127.0.0.1:9");
    a.ok(&["campaign", "add-enterprise", &campaign, "--name", "宁夏某建设集团有限公司", "--code", CODE]);
    a.ok(&["hazard", "add", &campaign, CODE, "--title", "配电箱无门锁", "--accident-type", "05"]);
    let relay = Relay::start(&station, 3600);
    a.ok(&["sync", "--peer", &relay.addr]);
    relay.event(std::time::Duration::from_secs(30)).expect("the relay said nothing of the sync");

    let out = station.run(&["status"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("只读查看"), "{stderr}");
    assert!(stdout.contains("隐患 1 条"), "{stdout}");
    let listed = station.ok(&["hazard", "list", "--campaign", &campaign]);
    assert!(listed.contains("配电箱无门锁"), "{listed}");
    let csv = root.path().join("台账.csv");
    station.ok(&["export", "csv", &campaign, "--out", csv.to_str().unwrap()]);
    assert!(fs::read_to_string(&csv).unwrap().contains("配电箱无门锁"));

    let said = station.fails(&["hazard", "add", &campaign, CODE, "--title", "临边无防护", "--accident-type", "06"]);
    assert!(said.contains("另一个 field 程序正在使用"), "{said}");
    drop(relay);
    let listed = station.ok(&["hazard", "list", "--campaign", &campaign]);
    assert!(!listed.contains("临边无防护"), "{listed}");
}

/// A deadline may not precede the day a finding was made, read in the
/// campaign's time zone — which the dossier carries, so every door reads
/// it alike — not in China Standard Time. The zones are chosen so that,
/// whatever the hour, at least one campaign's day differs from Beijing's.
#[test]
fn a_deadline_is_checked_against_the_local_day_of_the_finding() {
    use sync_core::zone::Zone;
    let root = TempDir::new().unwrap();
    let mut checked = 0;
    for zone in ["Pacific/Pago_Pago", "Pacific/Kiritimati"] {
        let (device, campaign) = inspector_in(&root.path().join(zone.replace('/', "-")), zone);
        device.ok(&["campaign", "add-enterprise", &campaign, "--name", "宁夏某建设集团有限公司", "--code", CODE]);
        let id =
            device.json(&["hazard", "add", &campaign, CODE, "--title", "临边无防护", "--accident-type", "09"])["id"]
                .as_str()
                .unwrap()
                .to_owned();
        let found_at = device.json(&["hazard", "show", &id])["hazard"]["found_at"].as_str().unwrap().to_owned();
        let local = Zone::named(zone).unwrap().day(&found_at).unwrap();
        let beijing = Zone::default().day(&found_at).unwrap();
        let plan = |deadline: &str| {
            let args = ["rectify", "plan", &id, "--mode", "deadline", "--deadline", deadline];
            let mut args = args.to_vec();
            args.extend(["--owner", "王五", "--measures", "设置防护栏杆"]);
            device.run(&args)
        };
        if local < beijing {
            // The finding's own day, already past in Beijing: allowed.
            let out = plan(&local);
            assert!(out.status.success(), "{zone}: {}", String::from_utf8_lossy(&out.stderr));
            checked += 1;
        } else if local > beijing {
            // Beijing's day is the day before the finding, here.
            let out = plan(&beijing);
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success() && said.contains("早于隐患的发现日期"), "{zone}: {said}");
            assert!(plan(&local).status.success());
            checked += 1;
        }
    }
    assert!(checked > 0, "one of the zones always differs from Beijing's day");
}
