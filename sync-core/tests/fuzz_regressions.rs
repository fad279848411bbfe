//! The fuzz targets' inputs, replayed on stable: every file under
//! `fuzz/corpus/<target>/` (the seed corpus) and `fuzz/regressions/<target>/`
//! (inputs that once crashed a target) goes through the same body as the
//! target (`fuzz/src/targets.rs`), which must return without panicking,
//! aborting, or going past a memory and CPU limit (each input is replayed
//! in a child process).
//!
//! The seeds are made here: valid inputs that must get past each decoder.
//! Set `FIELDSYNC_WRITE_FUZZ_SEEDS=1` to write them to `fuzz/corpus/`.

mod fixtures;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_bytes::ByteBuf;
use sync_core::bundle::{self, Bundle, BundleDoc};
use sync_core::credential::{Enrollment, RevocationList, SignedRevocations};
use sync_core::doc::{campaign, dossier, edit};
use sync_core::identity::{ActorProof, DeviceKey, StoreNonce};
use sync_core::ids::{DocId, EntityId, PhotoId, sha256_hex};
use sync_core::model::{CampaignKind, RectificationMode, Step, StepKind};
use sync_core::rectification::Signer;
use sync_core::sync::batch;
use sync_core::sync::message::{DocHeads, Evidence, Message, PROTOCOL_VERSION, ReceiptBody, RefusalCode};
use sync_core::sync::photo::{PhotoMessage, PhotoOffer, PhotoWant, StreamHeader};
use sync_core::sync::session::sign_receipt;

#[allow(dead_code, unreachable_pub)]
#[path = "../../fuzz/src/targets.rs"]
mod targets;

use targets::Reached;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Set in the child process that replays one input: `<target>\t<path>`.
const REPLAY: &str = "FIELDSYNC_FUZZ_REPLAY";

/// Each input is replayed in a child process (this test binary, running
/// [`replay_one`]) with its memory and CPU time limited: an input that makes
/// a decoder allocate without bound, or loop, fails the test instead of
/// taking the machine or the run with it.
#[test]
fn every_corpus_and_regression_input_returns_without_panicking() {
    let exe = std::env::current_exe().expect("the test binary");
    let mut failed = Vec::new();
    let mut count = 0;
    for (name, _) in targets::TARGETS {
        for kind in ["corpus", "regressions"] {
            for path in files(&fuzz_dir().join(kind).join(name)) {
                count += 1;
                // 2 GiB of address space (libFuzzer's default limit), two minutes of CPU.
                let output = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(r#"ulimit -v 2097152 && ulimit -t 120 && exec "$0" "$@""#)
                    .arg(&exe)
                    .args(["--exact", "replay_one", "--nocapture", "--test-threads=1"])
                    .env(REPLAY, format!("{name}\t{}", path.display()))
                    .output()
                    .expect("a child process");
                if !output.status.success() {
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    let head: Vec<&str> =
                        stderr.lines().filter(|l| !l.trim_start().starts_with("at /rustc")).take(24).collect();
                    failed.push(format!("{} ({}):\n{}", path.display(), output.status, head.join("\n")));
                }
            }
        }
    }
    assert!(failed.is_empty(), "inputs that panic, abort or run out of limits:\n\n{}", failed.join("\n\n"));
    assert!(count > 0, "no corpus under {}", fuzz_dir().display());
}

/// Replays the one input [`REPLAY`] names (nothing when it is unset).
#[test]
fn replay_one() {
    let Some(spec) = std::env::var_os(REPLAY) else { return };
    let spec = spec.into_string().expect("a UTF-8 spec");
    let (name, path) = spec.split_once('\t').expect("target and path");
    let body = targets::TARGETS.iter().find(|(t, _)| *t == name).expect("a target").1;
    let data = std::fs::read(path).expect("a readable input");
    let reached = body(&data);
    eprintln!("{path}: {reached:?}");
}

#[test]
fn seeds_get_past_every_decoder() {
    let seeds = seeds();
    for (target, name, data) in &seeds {
        let body = targets::TARGETS.iter().find(|(t, _)| t == target).expect("a target").1;
        assert_eq!(body(data), Reached::Checked, "seed {target}/{name}");
    }
    for (target, _) in targets::TARGETS {
        assert!(seeds.iter().any(|(t, ..)| t == target), "no seed for {target}");
    }
    if std::env::var_os("FIELDSYNC_WRITE_FUZZ_SEEDS").is_some() {
        for (target, name, data) in &seeds {
            let dir = fuzz_dir().join("corpus").join(target);
            std::fs::create_dir_all(&dir).expect("the corpus folder");
            std::fs::write(dir.join(name), data).expect("a seed written");
        }
    }
}

/// Valid inputs of each target: (target, file name, bytes).
fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let hq = DeviceKey::from_seed([1; 32]);
    let tablet = DeviceKey::from_seed([2; 32]);
    let proof = ActorProof { key: tablet.public(), nonce: StoreNonce([4; 16]) };
    let campaign_id = targets::campaign();
    let enterprise = targets::enterprise();
    let dossier_id = DocId::dossier(&campaign_id, &enterprise);
    let credential = fixtures::inspector_credential(&hq, &tablet, &campaign_id);
    let mut list = RevocationList { version: 2, issued_at: 1_790_000_000_000, ..RevocationList::default() };
    list.serials.insert(9);
    list.serials_at.insert(9, 1_790_000_000_000);
    list.devices.insert(ByteBuf::from(vec![8; 32]));
    let revocations = SignedRevocations::issue(&hq, list);

    // The dossier: its genesis, a hazard, a step of its rectification.
    let genesis = dossier::create(&campaign_id, &enterprise).expect("genesis");
    let mut doc = genesis.fork().with_actor(proof.actor_id());
    let hazard_id = EntityId::new(1_790_000_000_000, 1);
    let input = dossier::HazardInput {
        title: Some("临边防护缺失".into()),
        description: Some("外架连墙件缺失".into()),
        accident_type: Some("10".into()),
        location: Some("3号楼东侧".into()),
        basis: Some("JGJ 59-2011 第3.3.3条".into()),
        ..Default::default()
    };
    let zone = sync_core::zone::Zone::default();
    let hazard =
        dossier::new_hazard(input, None, "张三".into(), "2026-11-23T02:00:00Z".into(), &zone).expect("a hazard");
    edit(&mut doc, 1_790_000_000_000, |tx| dossier::add_hazard(tx, &hazard_id, &hazard)).expect("hazard added");
    let step = Step {
        mode: Some(RectificationMode::Deadline),
        deadline: Some("2026-12-01".into()),
        owner: "项目安全员".into(),
        measures: "补设防护".into(),
        ..Step::new(StepKind::Plan)
    };
    let signer = Signer { name: "张三".into(), role: Some("inspector".into()) };
    let at = "2026-11-24T08:00:00Z".to_owned();
    let step_id = EntityId::new(1_790_000_000_001, 2);
    let last = edit(&mut doc, 1_790_000_000_001, |tx| dossier::add_step(tx, &hazard_id, &step_id, step, &signer, at))
        .expect("step added")
        .hash
        .expect("a change");
    let since_genesis: Vec<_> = doc.get_changes(&genesis.get_heads()).iter().map(|c| c.hash()).collect();
    let bundle_chunk = doc.bundle(since_genesis).expect("a bundle chunk").bytes().to_vec();

    // The campaign, created by the tablet.
    let mut campaign_doc = sync_core::automerge::Automerge::new().with_actor(proof.actor_id());
    edit(&mut campaign_doc, 1_790_000_000_000, |tx| {
        campaign::create(
            tx,
            &campaign_id,
            "联合检查",
            CampaignKind::ConstructionJointInspection,
            "2026-11-23",
            "2026-11-24",
        )
    })
    .expect("campaign created");

    // Batches: whole documents (compressed, and plain for the target to
    // compress), and the changes after the genesis.
    let mut seeds: Vec<(&'static str, String, Vec<u8>)> = vec![
        ("batch", "dossier-whole".into(), batch::encode_document(&doc).expect("encoded")),
        ("batch", "dossier-plain".into(), doc.save_nocompress()),
        ("batch", "dossier-changes".into(), bundle_chunk.clone()),
        ("batch", "campaign-whole".into(), batch::encode_document(&campaign_doc).expect("encoded")),
    ];

    // Messages, as frame bodies.
    let evidence = Evidence::new(&tablet.sign_head(&dossier_id, &proof, last), credential.to_bytes());
    let receipt = sign_receipt(
        &hq,
        &ReceiptBody {
            doc: dossier_id.to_string(),
            heads: vec![ByteBuf::from(last.0.to_vec())],
            device: ByteBuf::from(tablet.public().to_bytes().to_vec()),
            server_time: 1_790_000_000_500,
            seq: 3,
            prev: ByteBuf::from(vec![6; 32]),
        },
    );
    let messages = [
        (
            "hello",
            Message::Hello {
                version: PROTOCOL_VERSION,
                credential: ByteBuf::from(credential.to_bytes()),
                revocations: Some(ByteBuf::from(revocations.to_bytes())),
            },
        ),
        (
            "catalog",
            Message::Catalog {
                docs: vec![DocHeads { id: dossier_id.to_string(), heads: vec![ByteBuf::from(last.0.to_vec())] }],
            },
        ),
        (
            "changes",
            Message::Changes {
                n: 0,
                doc: dossier_id.to_string(),
                batch: ByteBuf::from(bundle_chunk),
                evidence: vec![Evidence { received: Some(1_790_000_000_100), lookup: true, ..evidence }],
            },
        ),
        ("receipts", Message::Receipts { receipts: vec![receipt] }),
        ("sent", Message::Sent { count: 1 }),
        ("done", Message::Done { stored: Some(1) }),
        (
            "quarantined",
            Message::Quarantined { doc: dossier_id.to_string(), message: "总部已拒收".into(), rejected: true },
        ),
        ("refused", Message::Refused { code: RefusalCode::Credential, message: "凭证已过期".into() }),
    ];
    let mut stream = vec![0x06];
    for (name, message) in &messages {
        let frame = message.to_frame();
        seeds.push(("message", (*name).into(), frame[4..].to_vec()));
        stream.extend_from_slice(&frame);
    }
    seeds.push(("frame", "documents".into(), stream));

    // Photo negotiation, behind a stream header.
    let photo: PhotoId = sha256_hex(b"fieldsync").parse().expect("a photo id");
    let header = StreamHeader { photo, offset: 1_048_576 }.encode();
    let sha = photo.to_string();
    let photo_messages = [
        ("offer", PhotoMessage::Offer { photos: vec![PhotoOffer { sha: sha.clone(), size: 3_145_728 }] }),
        ("want", PhotoMessage::Want { photos: vec![PhotoWant { sha: sha.clone(), offset: 1_048_576 }] }),
        ("done", PhotoMessage::Done { stored: vec![sha.clone()], at_hq: vec![sha] }),
        ("refused", PhotoMessage::Refused { code: RefusalCode::Protocol, message: "照片名称无效".into() }),
    ];
    let mut stream = vec![0x80 | 0x0f];
    for (name, message) in &photo_messages {
        let frame = message.to_frame();
        seeds.push(("photo_header", (*name).into(), [&header[..], &frame[4..]].concat()));
        stream.extend_from_slice(&frame);
    }
    seeds.push(("frame", "photos".into(), stream));

    // A bundle: the dossier whole, its author's signature and credential,
    // a photo.
    let file = bundle::encode(
        &Bundle {
            exporter: targets::exporter().public(),
            created_at: 1_790_000_000_200,
            docs: vec![BundleDoc {
                id: dossier_id.clone(),
                changes: doc.get_changes(&[]),
                evidence: vec![tablet.sign_head(&dossier_id, &proof, last)],
            }],
            blobs: BTreeMap::from([(sha256_hex(b"fieldsync"), b"fieldsync".to_vec())]),
            credentials: vec![credential.clone()],
        },
        &targets::exporter(),
    )
    .expect("a bundle");
    assert_eq!(targets::envelope(&file[48..file.len() - 64]), file, "the target signs bodies as bundle::encode does");
    seeds.push(("bundle", "file".into(), [&[0][..], &file].concat()));
    seeds.push(("bundle", "body".into(), [&[1][..], &file[48..file.len() - 64]].concat()));

    // Enrollment: the string, its body, a revocation list, a credential.
    let enrollment = Enrollment { hq: hq.public(), server: "127.0.0.1:4433".into(), credential: credential.clone() };
    let text = enrollment.to_string();
    let body = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &text[4..]).expect("base64");
    seeds.push(("enrollment", "string".into(), [&[0][..], text.as_bytes()].concat()));
    seeds.push(("enrollment", "body".into(), [&[1][..], &body].concat()));
    seeds.push(("enrollment", "revocations".into(), [&[2][..], &revocations.to_bytes()].concat()));
    seeds.push(("enrollment", "credential".into(), [&[3][..], &credential.to_bytes()].concat()));
    seeds
}
