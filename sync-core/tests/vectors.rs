//! Test vectors for the wire formats (`schemas/sync-vectors.json`): fixed
//! inputs, their exact bytes. A Kotlin or Swift implementation checks itself
//! against the same file. Set `FIELDSYNC_WRITE_VECTORS=1` to regenerate
//! after a deliberate format change.

mod fixtures;

use serde_bytes::ByteBuf;
use serde_json::{Value, json};
use sync_core::credential::Enrollment;
use sync_core::identity::{ActorProof, DeviceKey, StoreNonce};
use sync_core::ids::DocId;
use sync_core::ids::PhotoId;
use sync_core::model::Rectification;
use sync_core::rectification::Loop;
use sync_core::sync::message::{DocHeads, Message, PROTOCOL_VERSION, RefusalCode};
use sync_core::sync::photo::{PhotoMessage, PhotoOffer, PhotoWant, StreamHeader};

fn vectors() -> Value {
    let hq = DeviceKey::from_seed([1; 32]);
    let tablet = DeviceKey::from_seed([2; 32]);
    let campaign = DocId::new_campaign([3; 16]);
    let credential = fixtures::inspector_credential(&hq, &tablet, &campaign);
    let proof = ActorProof { key: tablet.public(), nonce: StoreNonce([4; 16]) };
    let head = sync_core::automerge::ChangeHash([5; 32]);
    let signed_head = tablet.sign_head(&campaign, &proof, head);
    let enrollment = Enrollment { hq: hq.public(), server: "127.0.0.1:4433".into(), credential: credential.clone() };
    let messages = [
        (
            "hello",
            Message::Hello {
                version: PROTOCOL_VERSION,
                credential: ByteBuf::from(credential.to_bytes()),
                revocations: None,
            },
        ),
        (
            "catalog",
            Message::Catalog {
                docs: vec![DocHeads { id: campaign.to_string(), heads: vec![ByteBuf::from(vec![5; 32])] }],
            },
        ),
        ("sent", Message::Sent { count: 1 }),
        ("done", Message::Done { stored: Some(3) }),
        // As a peer of an earlier version sends it: no count.
        ("done_uncounted", Message::Done { stored: None }),
        (
            "quarantined",
            Message::Quarantined { doc: campaign.to_string(), message: "文档结构无效".into(), rejected: false },
        ),
        (
            "quarantined_rejected",
            Message::Quarantined { doc: campaign.to_string(), message: "总部已拒收".into(), rejected: true },
        ),
        ("refused", Message::Refused { code: RefusalCode::Credential, message: "凭证已过期".into() }),
    ];
    let frames: serde_json::Map<String, Value> =
        messages.iter().map(|(name, m)| (name.to_string(), Value::String(hex::encode(m.to_frame())))).collect();
    // A photo: the SHA-256 of the bytes "fieldsync".
    let photo: PhotoId = "f84171f2f1bb54c27fedb0193d4ecf600e9765a00b6fe31b64c93fac2ea06647".parse().unwrap();
    let sha = photo.to_string();
    let photo_messages = [
        ("photo_offer", PhotoMessage::Offer { photos: vec![PhotoOffer { sha: sha.clone(), size: 3_145_728 }] }),
        ("photo_want", PhotoMessage::Want { photos: vec![PhotoWant { sha: sha.clone(), offset: 1_048_576 }] }),
        ("photo_done", PhotoMessage::Done { stored: vec![sha], at_hq: Vec::new() }),
        ("photo_refused", PhotoMessage::Refused { code: RefusalCode::Protocol, message: "照片名称无效".into() }),
    ];
    let photo_frames: serde_json::Map<String, Value> =
        photo_messages.iter().map(|(name, m)| (name.to_string(), Value::String(hex::encode(m.to_frame())))).collect();
    let header = StreamHeader { photo, offset: 1_048_576 };
    json!({
        "rectification": rectification(),
        "keys": {
            "hq_seed": hex::encode([1u8; 32]),
            "hq_public": hq.public().to_string(),
            "tablet_seed": hex::encode([2u8; 32]),
            "tablet_public": tablet.public().to_string(),
        },
        "actor_id": { "nonce": hex::encode([4u8; 16]), "actor": proof.actor_id().to_hex_string() },
        "head_signature": {
            "doc": campaign.to_string(),
            "head": hex::encode([5u8; 32]),
            "signature": hex::encode(signed_head.signature),
        },
        "credential": hex::encode(credential.to_bytes()),
        "enrollment": enrollment.to_string(),
        "frames": frames,
        "photo_frames": photo_frames,
        "photo_stream_header": hex::encode(header.encode()),
    })
}

/// A hazard's rectification loop as stored (two devices verified at once:
/// one passed, one failed) and the state every implementation must derive
/// from it (`sync-core/src/rectification.rs`).
fn rectification() -> Value {
    let step = |kind: &str, at: &str, author: &str, after: &[&str], extra: Value| {
        let mut s = json!({"kind": kind, "at": at, "author": author, "author_role": "inspector"});
        if !after.is_empty() {
            s["after"] = json!(after.join(" "));
        }
        s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        s
    };
    let [plan, start, done, pass, fail] = [
        "01KBQ3Y5Z8V6JX0S5T8E4R2M91",
        "01KBQ3Y5Z8V6JX0S5T8E4R2M92",
        "01KBQ3Y5Z8V6JX0S5T8E4R2M93",
        "01KBQ3Y5Z8V6JX0S5T8E4R2M94",
        "01KBQ3Y5Z8V6JX0S5T8E4R2M95",
    ];
    let stored = json!({
        "status": "open",
        "photos_after": {},
        "steps": {
            plan: step("plan", "2026-11-24T02:00:00Z", "张三", &[], json!({"mode": "deadline", "deadline": "2026-12-01", "owner": "王五", "measures": "补设连墙件"})),
            start: step("start", "2026-11-24T03:00:00Z", "张三", &[plan], json!({})),
            done: step("done", "2026-11-25T02:00:00Z", "张三", &[start], json!({"rectified_by": "王五"})),
            pass: step("verify", "2026-11-26T02:00:00Z", "钱七", &[done], json!({"result": "pass"})),
            fail: step("verify", "2026-11-26T02:30:00Z", "孙八", &[done], json!({"result": "fail", "note": "连墙件间距超标"})),
        },
    });
    let r: Rectification = serde_json::from_value(stored.clone()).unwrap();
    let derived = Loop::of(&r);
    json!({
        "stored": stored,
        "derived": {
            "status": derived.state.status,
            "deadline": derived.state.plan.as_ref().and_then(|p| p.deadline.clone()),
            "order": derived.history.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
            "heads": derived.heads,
            "disputes": derived.disputes,
        },
    })
}

#[test]
fn wire_formats_match_the_published_vectors() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/sync-vectors.json");
    let current = vectors();
    if std::env::var_os("FIELDSYNC_WRITE_VECTORS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&current).unwrap() + "\n").unwrap();
    }
    let published: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(current, published, "wire format changed: update schemas/sync-protocol.md and the vectors deliberately");
    for frame in published["frames"].as_object().unwrap().values() {
        let bytes = hex::decode(frame.as_str().unwrap()).unwrap();
        Message::from_body(&bytes[4..]).unwrap();
    }
    for frame in published["photo_frames"].as_object().unwrap().values() {
        let bytes = hex::decode(frame.as_str().unwrap()).unwrap();
        PhotoMessage::from_body(&bytes[4..]).unwrap();
    }
}
