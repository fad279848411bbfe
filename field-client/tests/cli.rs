//! End-to-end runs of the real `field` binary: two inspectors on one
//! enterprise, offline, merging by bundle both ways; and bad input, each a
//! clear error that leaves the store unchanged.

use std::fs;
use std::path::Path;

use field_client::Store;
use sync_core::automerge::ReadDoc;
use sync_core::automerge::transaction::Transactable;
use sync_core::bundle::{self, Bundle, BundleDoc};
use sync_core::identity::DeviceKey;
use sync_core::ids::DocId;
use tempfile::TempDir;

#[path = "../../tests/tests/common/mod.rs"]
mod common;
use common::Device;

const CODE: &str = "91640200MA76XYW123";

/// Two trusted devices; A created a campaign with one enterprise and B has it.
fn team(root: &Path) -> (Device, Device, String) {
    let a = Device::new(root, "张三");
    let b = Device::new(root, "李四");
    a.ok(&["trust", "add", &b.key(), "--name", "李四"]);
    b.ok(&["trust", "add", &a.key(), "--name", "张三"]);
    let campaign = a.create_campaign(None);
    a.ok(&[
        "campaign",
        "add-enterprise",
        &campaign,
        "--name",
        "宁夏某建设集团有限公司",
        "--code",
        CODE,
        "--project",
        "教学楼",
    ]);
    let bundle = root.join("setup.fsb");
    a.ok(&["bundle", "export", "--out", bundle.to_str().unwrap()]);
    b.ok(&["bundle", "import", bundle.to_str().unwrap()]);
    (a, b, campaign)
}

fn exchange(from: &Device, to: &Device, root: &Path, name: &str) {
    let path = root.join(name);
    from.ok(&["bundle", "export", "--out", path.to_str().unwrap()]);
    to.ok(&["bundle", "import", path.to_str().unwrap()]);
}

fn jpeg(root: &Path, name: &str, tag: u8) -> String {
    let path = root.join(name);
    fs::write(&path, [0xFF, 0xD8, 0xFF, 0xE0, tag, tag, tag]).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Everything observable about a store: its export and its counts.
fn state(d: &Device, campaign: &str) -> (String, String) {
    let mut status = d.json(&["status"]);
    status.as_object_mut().unwrap().remove("public_key");
    (d.ok(&["export", "json", campaign]), status.to_string())
}

#[test]
fn two_inspectors_merge_offline_both_ways() {
    let root = TempDir::new().unwrap();
    let root = root.path();
    let (a, b, campaign) = team(root);

    // Day 1, no signal: both record hazards on the same enterprise.
    let photo = jpeg(root, "before.jpg", 1);
    let h1 = a.json(&[
        "hazard",
        "add",
        &campaign,
        CODE,
        "--from-checklist",
        "construction-jgj59/scaffold-01",
        "--location",
        "3号楼东侧外架",
        "--gps",
        "39.0153,106.3845",
        "--photo",
        &photo,
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let h2 = b.json(&[
        "hazard",
        "add",
        &campaign,
        CODE,
        "--title",
        "临边防护缺失",
        "--accident-type",
        "09",
        "--level",
        "major",
        "--criterion",
        "jianzhi-2022-2/art13-1",
        "--location",
        "5层楼板临边",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let review =
        b.json(&["review", "add", &campaign, CODE, "--date", "2025-06-01", "--summary", "塔吊司机高处坠落"])["id"]
            .as_str()
            .unwrap()
            .to_owned();
    b.ok(&["review", "set", &review, "cause_identified", "pass", "--evidence", "事故调查报告 石安委〔2025〕3号"]);
    a.ok(&["doccheck", &campaign, CODE, "--type", "安全生产许可证", "--result", "expired", "--expires", "2026-06-30"]);

    exchange(&a, &b, root, "a1.fsb");
    exchange(&b, &a, root, "b1.fsb");

    // Day 2: concurrent edits of the same finding.
    a.ok(&["hazard", "edit", &h1, "--description", "连墙件整层缺失，架体外倾"]);
    b.ok(&["hazard", "edit", &h1, "--location", "3号楼东侧外架12-13层"]);
    // Both act on one hazard's rectification offline.
    let plan = ["rectify", "plan", &h2, "--mode", "deadline", "--deadline", "2030-01-15", "--owner", "王五"];
    a.ok(&[&plan[..], &["--measures", "补设防护栏杆"]].concat());
    a.ok(&["rectify", "start", &h2]);
    b.ok(&["rectify", "plan", &h2, "--mode", "immediate", "--owner", "王五", "--measures", "立即封闭临边"]);
    b.ok(&["rectify", "start", &h2]);
    b.ok(&["rectify", "submit", &h2, "--by", "王五", "--photo", &jpeg(root, "after.jpg", 2)]);
    a.ok(&["review", "set", &review, "measures_implemented", "fail"]);
    b.ok(&["review", "set", &review, "measures_implemented", "pass"]);

    exchange(&a, &b, root, "a2.fsb");
    exchange(&b, &a, root, "b2.fsb");

    let (export_a, _) = state(&a, &campaign);
    let (export_b, _) = state(&b, &campaign);
    assert_eq!(export_a, export_b, "exports differ after merging both ways");
    assert_eq!(a.ok(&["export", "csv", &campaign]), b.ok(&["export", "csv", &campaign]));

    let export: serde_json::Value = serde_json::from_str(&export_a).unwrap();
    common::assert_valid("campaign", &export["campaign"]);
    common::assert_valid("enterprise_dossier", &export["dossiers"][0]);
    let hazard = &export["dossiers"][0]["hazards"][&h1];
    assert_eq!(hazard["description"], "连墙件整层缺失，架体外倾");
    assert_eq!(hazard["location"]["text"], "3号楼东侧外架12-13层");
    assert_eq!(hazard["photos"].as_object().unwrap().len(), 1);

    // The concurrent verdict writes are a conflict needing review.
    let conflicts = a.json(&["conflicts", "list"]);
    let listed = conflicts[0]["conflicts"].as_array().unwrap();
    let verdict = format!("accident_reviews/{review}/items/measures_implemented/verdict");
    assert_eq!(listed.iter().map(|c| c["path"].as_str().unwrap()).collect::<Vec<_>>(), [verdict.as_str()]);
    assert_eq!(listed[0]["critical"], true);
    // The concurrent rectification steps are all kept; where they disagree
    // the graver reading is shown (not yet done; immediate over a deadline)
    // and the hazard is listed until a step that saw both decides.
    let rules: Vec<&str> =
        conflicts[0]["rules"].as_array().unwrap().iter().map(|r| r["message"].as_str().unwrap()).collect();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(rules[0].contains("整改分歧：整改状态") && rules[0].contains("暂按较严的“整改中”"), "{rules:?}");
    assert!(rules[1].contains("整改期限") && rules[1].contains("暂按较严的“立即整改”"), "{rules:?}");
    let shown = a.ok(&["hazard", "show", &h2]);
    assert!(shown.contains("整改状态：整改中\t方式：立即整改"), "{shown}");
    assert_eq!(shown.matches("（记录人 ").count(), 5, "{shown}");
    assert!(shown.contains("整改完成（记录人 李四）：整改人 王五，照片 1 张"), "{shown}");

    // A choice that is not one of the concurrent values is refused.
    let dossier = conflicts[0]["dossier"].as_str().unwrap();
    let err = a.fails(&["conflicts", "resolve", dossier, &verdict, "不适用"]);
    assert!(err.contains("不是该字段当前的值之一"), "{err}");

    // Resolving on one device and syncing clears them everywhere.
    a.ok(&["conflicts", "resolve", dossier, &verdict, "不符合"]);
    let decided = a.ok(&["rectify", "submit", &h2, "--by", "王五"]);
    assert!(
        decided.contains("已记录整改完成（记录人 张三）；当前状态：待复查；下一步：由整改人以外的人复查"),
        "{decided}"
    );
    exchange(&a, &b, root, "a3.fsb");
    assert_eq!(b.json(&["conflicts", "list"]), serde_json::json!([]));
    assert_eq!(state(&a, &campaign).0, state(&b, &campaign).0);

    // Photos travelled with the bundle.
    let sha = hazard["photos"].as_object().unwrap().keys().next().unwrap().clone();
    assert!(b.home.join("blobs").join(&sha[..2]).join(&sha).exists());

    // The CSV register carries the DOMAIN.md columns.
    let csv = a.ok(&["export", "csv", &campaign]);
    let header = csv.trim_start_matches('\u{feff}').lines().next().unwrap();
    for column in ["序号", "隐患部位", "事故类型", "隐患等级", "重大隐患判定条款", "整改期限", "复查人", "整改状态"]
    {
        assert!(header.contains(column), "missing column {column}");
    }
    assert_eq!(csv.lines().count(), 3);
}

#[test]
fn bad_edits_are_refused_and_change_nothing() {
    let root = TempDir::new().unwrap();
    let root = root.path();
    let (a, b, campaign) = team(root);
    let h = a.json(&["hazard", "add", &campaign, CODE, "--title", "配电箱无门锁", "--accident-type", "05"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    a.ok(&["rectify", "plan", &h, "--mode", "immediate", "--owner", "张三", "--measures", "加装门锁"]);
    a.ok(&["rectify", "start", &h]);
    a.ok(&["rectify", "submit", &h, "--by", "张三"]);
    let before = state(&a, &campaign);

    let err = a.fails(&["hazard", "add", &campaign, CODE, "--title", "x", "--accident-type", "33"]);
    assert!(err.contains("未知的事故类型代码"), "{err}");
    let err = a.fails(&["hazard", "add", &campaign, CODE, "--title", "x", "--accident-type", "09", "--level", "major"]);
    assert!(err.contains("重大事故隐患必须引用判定条款"), "{err}");
    let err = a.fails(&["hazard", "edit", &h, "--criterion", "no-such-clause"]);
    assert!(err.contains("未知的重大事故隐患判定条款"), "{err}");
    // The verifier is this device's holder, who rectified.
    let err = a.fails(&["rectify", "verify", &h, "--result", "pass"]);
    assert!(err.contains("复查人 张三 就是整改人"), "{err}");
    let err = a.fails(&["hazard", "add", &campaign, CODE, "--title", "x", "--accident-type", "09", "--gps", "95,106"]);
    assert!(err.contains("GPS"), "{err}");
    let err = a.fails(&["hazard", "photo", &h, root.join("missing.jpg").to_str().unwrap()]);
    assert!(err.contains("无法读取照片"), "{err}");
    let err = a.fails(&["campaign", "add-enterprise", &campaign, "--name", "x", "--code", "123"]);
    assert!(err.contains("统一社会信用代码无效"), "{err}");
    // Command-line mistakes are told in Chinese too, with a way forward.
    let err = a.fails(&["hazard", "add", &campaign, CODE, "--titel", "x"]);
    assert!(err.contains("无法识别的参数“--titel”；是否想用“--title”？"), "{err}");
    assert!(err.contains("查看用法：field hazard add --help"), "{err}");
    let err = a.fails(&["hazard", "ad"]);
    assert!(err.contains("无法识别的命令“ad”"), "{err}");

    assert_eq!(state(&a, &campaign), before, "a refused edit changed the store");
    exchange(&a, &b, root, "a1.fsb");
    let verified = b.ok(&["rectify", "verify", &h, "--result", "pass"]);
    assert!(verified.contains("已记录复查：通过（复查人 李四）；当前状态：已销号"), "{verified}");
}

/// Imports `bytes` on `to` and expects a refusal containing `message`, with
/// the store unchanged.
fn refused(to: &Device, campaign: &str, root: &Path, bytes: &[u8], message: &str) {
    let path = root.join("bad.fsb");
    fs::write(&path, bytes).unwrap();
    let before = state(to, campaign);
    let err = to.fails(&["bundle", "import", path.to_str().unwrap()]);
    assert!(err.contains(message), "expected “{message}”, got: {err}");
    assert_eq!(state(to, campaign), before, "a refused bundle changed the store");
}

#[test]
fn bad_bundles_are_refused_and_change_nothing() {
    let root = TempDir::new().unwrap();
    let root = root.path();
    let (a, b, campaign) = team(root);
    a.ok(&[
        "hazard",
        "add",
        &campaign,
        CODE,
        "--title",
        "基坑无临边防护",
        "--accident-type",
        "09",
        "--photo",
        &jpeg(root, "p.jpg", 3),
    ]);
    let good = root.join("good.fsb");
    a.ok(&["bundle", "export", "--out", good.to_str().unwrap()]);
    let bytes = fs::read(&good).unwrap();

    // One byte flipped anywhere in the body.
    for at in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 10] {
        let mut tampered = bytes.clone();
        tampered[at] ^= 0x20;
        refused(&b, &campaign, root, &tampered, "数据包");
    }
    // Truncated.
    refused(&b, &campaign, root, &bytes[..bytes.len() * 2 / 3], "不完整");
    // Not a bundle at all.
    refused(&b, &campaign, root, b"PK\x03\x04 a zip file", "不是 FieldSync 数据包");

    // Signed by a device B does not trust.
    let stranger = Device::new(root, "陌生人");
    let stranger_bundle = root.join("stranger.fsb");
    stranger.ok(&[
        "campaign",
        "create",
        "--name",
        "x",
        "--kind",
        "self",
        "--start",
        "2026-11-24",
        "--end",
        "2026-11-24",
    ]);
    stranger.ok(&["bundle", "export", "--out", stranger_bundle.to_str().unwrap()]);
    refused(&b, &campaign, root, &fs::read(&stranger_bundle).unwrap(), "未受信任的设备");

    // Oversized: a sparse file past the limit is refused before it is read.
    let big = root.join("big.fsb");
    let file = fs::File::create(&big).unwrap();
    file.set_len(bundle::MAX_BUNDLE_BYTES + 1).unwrap();
    let err = b.fails(&["bundle", "import", big.to_str().unwrap()]);
    assert!(err.contains("数据包过大"), "{err}");

    // The real bundle still imports afterwards.
    b.ok(&["bundle", "import", good.to_str().unwrap()]);
}

#[test]
fn a_change_claiming_another_devices_actor_is_refused() {
    let root = TempDir::new().unwrap();
    let root = root.path();
    let (a, b, campaign) = team(root);
    let good = root.join("a.fsb");
    a.ok(&["bundle", "export", "--out", good.to_str().unwrap()]);
    let mut decoded = bundle::decode(&fs::read(&good).unwrap(), |_| true).unwrap();

    // A third device, trusted by B, writes into A's campaign under A's actor
    // id and signs the envelope with its own key. A's evidence still covers
    // only A's real changes.
    let mallory = Device::new(root, "马六");
    b.ok(&["trust", "add", &mallory.key(), "--name", "马六"]);
    let mallory_key = DeviceKey::from_seed(read_seed(&mallory.home));
    let campaign_id: DocId = campaign.parse().unwrap();
    let doc = decoded.docs.iter_mut().find(|d| d.id == campaign_id).unwrap();
    let a_actor = doc.changes.last().unwrap().actor_id().clone();
    let mut forged = sync_core::automerge::Automerge::new();
    forged.apply_changes(doc.changes.clone()).unwrap();
    forged.set_actor(a_actor);
    let mut tx = forged.transaction();
    tx.put(sync_core::automerge::ROOT, "name", "已篡改的活动名称").unwrap();
    let (hash, _) = tx.commit();
    doc.changes.push(forged.get_change_by_hash(&hash.unwrap()).unwrap());
    let forged_bundle = Bundle {
        exporter: mallory_key.public(),
        created_at: 0,
        docs: decoded.docs.drain(..).filter(|d: &BundleDoc| d.id == campaign_id).collect(),
        blobs: Default::default(),
        credentials: Vec::new(),
    };
    let bytes = bundle::encode(&forged_bundle, &mallory_key).unwrap();
    refused(&b, &campaign, root, &bytes, "冒用了其他设备的身份");

    // Mallory signing the forged head with its own key and A's actor proof
    // fails signature verification instead.
    let mut decoded = bundle::decode(&bytes, |_| true).unwrap();
    let doc = &mut decoded.docs[0];
    let head = doc.changes.last().unwrap().hash();
    let proof = doc.evidence[0].actor.clone();
    doc.evidence = vec![mallory_key.sign_head(&campaign_id, &proof, head)];
    let bytes = bundle::encode(&decoded, &mallory_key).unwrap();
    refused(&b, &campaign, root, &bytes, "签名无效");
}

fn read_seed(home: &Path) -> [u8; 32] {
    // Held only to build a forged bundle in this test; opening the store
    // proves the key file is where the store expects it.
    drop(Store::open(home).unwrap());
    let text = fs::read_to_string(home.join("device.key")).unwrap();
    hex::decode(text.trim()).unwrap().try_into().unwrap()
}

#[test]
fn device_key_is_owner_only() {
    let root = TempDir::new().unwrap();
    let a = Device::new(root.path(), "张三");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(a.home.join("device.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let err = a.fails(&["init", "--name", "张三"]);
    assert!(err.contains("已有设备数据"), "{err}");
}

#[test]
fn enroll_imports_an_hq_credential_and_refuses_bad_codes() {
    use serde_bytes::ByteBuf;
    use sync_core::credential::{Credential, Enrollment, Role, Scope, SignedCredential};
    let root = TempDir::new().unwrap();
    let a = Device::new(root.path(), "张三");
    let hq = DeviceKey::from_seed([7; 32]);
    let device: sync_core::identity::DevicePublicKey = a.key().parse().unwrap();
    let issue = |not_after: i64| {
        let credential = SignedCredential::issue(
            &hq,
            Credential {
                serial: 1,
                device: ByteBuf::from(device.to_bytes().to_vec()),
                name: "张三".into(),
                role: Role::Inspector,
                scope: Scope::default(),
                not_before: 0,
                not_after,
            },
        );
        Enrollment { hq: hq.public(), server: "127.0.0.1:4433".into(), credential }.to_string()
    };
    let expired = a.fails(&["enroll", &issue(1)]);
    assert!(expired.contains("凭证已过期"), "{expired}");
    let garbled = a.fails(&["enroll", "FS1:AAAA"]);
    assert!(garbled.contains("入网码") || garbled.contains("凭证格式无效"), "{garbled}");
    let code = issue(i64::MAX);
    let file = root.path().join("code.txt");
    fs::write(&file, &code).unwrap();
    let out = a.ok(&["enroll", &format!("@{}", file.display())]);
    assert!(out.contains("入网成功") && out.contains("检查员"), "{out}");

    // Another HQ's code is refused once this device is bound.
    let other_hq = DeviceKey::from_seed([8; 32]);
    let credential = SignedCredential::issue(
        &other_hq,
        Credential {
            serial: 1,
            device: ByteBuf::from(device.to_bytes().to_vec()),
            name: "张三".into(),
            role: Role::Inspector,
            scope: Scope::default(),
            not_before: 0,
            not_after: i64::MAX,
        },
    );
    let foreign = Enrollment { hq: other_hq.public(), server: "x:1".into(), credential }.to_string();
    let err = a.fails(&["enroll", &foreign]);
    assert!(err.contains("另一个总部"), "{err}");
}

/// The relay's console tells the station clerk, by name, each tablet that
/// synced with it.
#[test]
fn a_relay_reports_each_tablet_that_syncs() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use sync_core::credential::{Credential, Enrollment, Role, Scope, SignedCredential};

    /// Kills the relay however the test ends.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let root = TempDir::new().unwrap();
    let hq = DeviceKey::from_seed([7; 32]);
    let station = Device::new(root.path(), "城关安监站");
    let inspector = Device::new(root.path(), "张三");
    // HQ's address answers nothing: the relay keeps what it gets.
    for (device, name, role) in [(&station, "城关安监站", Role::Station), (&inspector, "张三", Role::Inspector)]
    {
        let key: sync_core::identity::DevicePublicKey = device.key().parse().unwrap();
        let credential = SignedCredential::issue(
            &hq,
            Credential {
                serial: 1,
                device: serde_bytes::ByteBuf::from(key.to_bytes().to_vec()),
                name: name.into(),
                role,
                scope: Scope::default(),
                not_before: 0,
                not_after: i64::MAX,
            },
        );
        let code = Enrollment { hq: hq.public(), server: "127.0.0.1:9".into(), credential }.to_string();
        device.ok(&["enroll", &code]);
    }

    let mut relay = Running(
        Command::new(common::field_bin())
            .env("FIELD_HOME", &station.home)
            .env_remove("RUST_LOG")
            .args(["relay", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = relay.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait = std::time::Duration::from_secs(30);
    let ready = lines.recv_timeout(wait).unwrap();
    let addr = ready.split_once('：').and_then(|(_, rest)| rest.split_once('（')).map(|(addr, _)| addr).unwrap();

    inspector.ok(&["sync", "--peer", addr]);
    let told = std::iter::from_fn(|| lines.recv_timeout(wait).ok()).find(|l| l.contains("张三"));
    let told = told.expect("the relay said nothing of 张三's sync");
    assert!(told.contains("张三 同步完成：收到修改"), "{told}");

    // Ctrl-C stops it, and it says so.
    let pid = rustix::process::Pid::from_raw(relay.0.id().try_into().unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let last = std::iter::from_fn(|| lines.recv_timeout(wait).ok()).last().unwrap_or_default();
    assert!(last.ends_with("安监站中转已停止"), "{last}");
    assert!(relay.0.wait().unwrap().success());
}

/// The six `field rectify` commands that once exited 0 and rewrote the
/// record: each is now refused with the hazard's state and the step it
/// accepts next, and the store is unchanged.
mod rectify {
    use super::*;

    /// A team and a hazard of 张三's: planned and started when `started`.
    fn hazard(root: &Path, started: bool) -> (Device, Device, String, String) {
        let (a, b, campaign) = team(root);
        let h = a.json(&["hazard", "add", &campaign, CODE, "--title", "配电箱无门锁", "--accident-type", "05"])["id"]
            .as_str()
            .unwrap()
            .to_owned();
        if started {
            a.ok(&["rectify", "plan", &h, "--mode", "immediate", "--owner", "王五", "--measures", "加装门锁"]);
            a.ok(&["rectify", "start", &h]);
        }
        (a, b, campaign, h)
    }

    /// Closed: rectified by 王五, verified by 李四, back on 张三's device.
    fn closed(root: &Path) -> (Device, String, String) {
        let (a, b, campaign, h) = hazard(root, true);
        a.ok(&["rectify", "submit", &h, "--by", "王五"]);
        exchange(&a, &b, root, "a.fsb");
        b.ok(&["rectify", "verify", &h, "--result", "pass"]);
        exchange(&b, &a, root, "b.fsb");
        (a, campaign, h)
    }

    fn refused(d: &Device, campaign: &str, args: &[&str], expect: &str) {
        let before = state(d, campaign);
        let err = d.fails(args);
        assert!(err.contains(expect), "expected “{expect}”, got: {err}");
        assert_eq!(state(d, campaign), before, "{args:?} changed the store");
    }

    #[test]
    fn submit_with_no_plan_and_no_start() {
        let root = TempDir::new().unwrap();
        let (a, _, campaign, h) = hazard(root.path(), false);
        let expect = "隐患当前为“未整改”，不能整改完成；下一步可：下达整改要求（field rectify plan）";
        refused(&a, &campaign, &["rectify", "submit", &h, "--by", "王五"], expect);
    }

    #[test]
    fn submit_again() {
        let root = TempDir::new().unwrap();
        let (a, _, campaign, h) = hazard(root.path(), true);
        a.ok(&["rectify", "submit", &h, "--by", "王五"]);
        let expect = "隐患当前为“待复查”，不能整改完成；下一步可：由整改人以外的人复查";
        refused(&a, &campaign, &["rectify", "submit", &h, "--by", "王五"], expect);
    }

    #[test]
    fn verify_while_rectifying() {
        let root = TempDir::new().unwrap();
        let (a, _, campaign, h) = hazard(root.path(), true);
        let expect = "隐患当前为“整改中”，不能复查；下一步可：整改完成后提交复查";
        refused(&a, &campaign, &["rectify", "verify", &h, "--result", "fail"], expect);
    }

    #[test]
    fn verify_on_a_closed_hazard() {
        let root = TempDir::new().unwrap();
        let (a, campaign, h) = closed(root.path());
        let expect = "隐患当前为“已销号”，已销号的隐患不能再复查，除非先重新打开";
        refused(&a, &campaign, &["rectify", "verify", &h, "--result", "pass"], expect);
    }

    #[test]
    fn plan_on_a_closed_hazard() {
        let root = TempDir::new().unwrap();
        let (a, campaign, h) = closed(root.path());
        let plan = ["rectify", "plan", &h, "--mode", "deadline", "--deadline", "2030-12-01", "--owner", "王五"];
        let expect = "已销号的隐患不能再下达整改要求";
        refused(&a, &campaign, &[&plan[..], &["--measures", "x"]].concat(), expect);
        // A reopening with its reason is the way back.
        let reopened = a.ok(&["rectify", "reopen", &h, "--reason", "门锁被拆除"]);
        assert!(reopened.contains("当前状态：整改中"), "{reopened}");
        assert!(a.ok(&["hazard", "show", &h]).contains("重新打开（记录人 张三）：门锁被拆除"));
    }

    #[test]
    fn the_rectifier_verifies_under_another_spelling() {
        let root = TempDir::new().unwrap();
        let (a, b, campaign, h) = hazard(root.path(), true);
        // Names with hidden characters are not taken at all.
        refused(&a, &campaign, &["rectify", "submit", &h, "--by", "李四\u{200b}"], "不可见字符 U+200B");
        // 李四 is named as rectifier with an ideographic space.
        a.ok(&["rectify", "submit", &h, "--by", "李\u{3000}四"]);
        exchange(&a, &b, root.path(), "a.fsb");
        refused(&b, &campaign, &["rectify", "verify", &h, "--result", "pass"], "复查人 李四 就是整改人");
    }
}
