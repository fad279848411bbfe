//! The body of each fuzz target: feeds bytes to one decoder that reads what
//! a peer or a USB stick sends, and to the checks that follow it.
//!
//! Shared by the libFuzzer targets (`fuzz/fuzz_targets/`) and by the stable
//! regression test (`sync-core/tests/fuzz_regressions.rs`, which includes
//! this file by path), so it uses only `sync-core`'s public API and crates
//! that `sync-core` itself depends on. A panic that escapes a function here
//! is a bug; errors are the expected answer to bad bytes.
//!
//! Each function says how far the input got ([`Reached`]), so the test can
//! check that the seed corpus reaches past the decoder.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use sync_core::automerge::Automerge;
use sync_core::bundle;
use sync_core::credential::{Enrollment, SignedCredential, SignedRevocations};
use sync_core::identity::{DeviceKey, DevicePublicKey};
use sync_core::ids::{CreditCode, DocId, PhotoId};
use sync_core::sync::batch;
use sync_core::sync::message::{FrameReader, Message, ReceiptBody};
use sync_core::sync::photo::{self, HEADER_LEN, PhotoMessage, PhotoOffer, StreamHeader};

/// How far an input got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reached {
    /// The decoder refused it.
    Refused,
    /// It decoded; the checks after decoding refused it.
    Decoded,
    /// It decoded and passed the checks that follow (verification,
    /// validation, a re-encoding round trip).
    Checked,
}

/// A target: what it does with one input.
pub type Target = fn(&[u8]) -> Reached;

/// The targets, by name (the names of `fuzz/fuzz_targets/*.rs` and of the
/// folders under `fuzz/corpus/` and `fuzz/regressions/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("frame", frame),
    ("message", message),
    ("batch", batch),
    ("bundle", bundle),
    ("enrollment", enrollment),
    ("photo_header", photo_header),
];

/// The campaign whose documents the batch target checks arriving batches
/// against (the seeds are documents of it).
pub fn campaign() -> DocId {
    DocId::new_campaign([3; 16])
}

/// The enterprise of the dossier the batch target checks against.
pub fn enterprise() -> CreditCode {
    "91640200MA76XYW123".parse().expect("a valid credit code")
}

/// The key that signs bundle bodies in mode 1 of the bundle target.
pub fn exporter() -> DeviceKey {
    DeviceKey::from_seed([0x42; 32])
}

/// Domain tag of a bundle's envelope signature (`schemas/bundle.md`).
pub const BUNDLE_DOMAIN: &[u8] = b"fieldsync/bundle/v1";

const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Rewrites the checksum of every Automerge chunk found in `bytes` (magic,
/// 4-byte checksum, type, LEB128 length, data) that fits, innermost first,
/// so that mutated chunks get past the checksum to the parsers behind it.
/// The checksum is the first 4 bytes of SHA-256(type, LEB128 length, data).
pub fn fix_chunk_checksums(bytes: &mut [u8]) {
    let starts: Vec<usize> = bytes.windows(4).enumerate().filter(|(_, w)| *w == CHUNK_MAGIC).map(|(i, _)| i).collect();
    for &start in starts.iter().rev() {
        let Some(&kind) = bytes.get(start + 8) else { continue };
        let mut len: u64 = 0;
        let mut end_of_len = None;
        for (i, byte) in bytes.iter().skip(start + 9).take(10).enumerate() {
            len |= u64::from(byte & 0x7f).checked_shl(7 * i as u32).unwrap_or(0);
            if byte & 0x80 == 0 {
                end_of_len = Some(start + 9 + i + 1);
                break;
            }
        }
        let Some(data_start) = end_of_len else { continue };
        let Some(data_end) = usize::try_from(len).ok().and_then(|l| data_start.checked_add(l)) else { continue };
        if data_end > bytes.len() {
            continue;
        }
        let mut hasher = Sha256::new();
        hasher.update([kind]);
        hasher.update(leb128(len));
        hasher.update(&bytes[data_start..data_end]);
        let hash = hasher.finalize();
        bytes[start + 4..start + 8].copy_from_slice(&hash[..4]);
    }
}

fn leb128(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Target 1: Framing: byte 0 chooses the message kind (bit 7: photo negotiation
/// messages, else document messages) and how many bytes arrive at a time
/// (bits 0–5, plus one); the rest is the byte stream, pushed into a
/// [`FrameReader`] piece by piece, taking out every message that completes.
pub fn frame(data: &[u8]) -> Reached {
    let Some((&control, stream)) = data.split_first() else { return Reached::Refused };
    let photo = control & 0x80 != 0;
    let piece = usize::from(control & 0x3f) + 1;
    let mut reader = FrameReader::default();
    let mut messages = 0usize;
    for chunk in stream.chunks(piece) {
        reader.push(chunk);
        loop {
            let next = if photo {
                reader.next_as::<PhotoMessage>().map(|m| m.is_some())
            } else {
                reader.next_message().map(|m| m.is_some())
            };
            match next {
                Ok(true) => messages += 1,
                Ok(false) => break,
                // A stream is dropped at its first bad frame.
                Err(_) => return if messages > 0 { Reached::Decoded } else { Reached::Refused },
            }
        }
    }
    if messages > 0 { Reached::Checked } else { Reached::Refused }
}

/// Target 2: A document protocol message (a frame body), then what a session
/// decodes from its fields before any signature can be checked:
/// credentials, revocation lists, receipt bodies. A message that decodes
/// must encode to a frame that decodes to the same message.
pub fn message(data: &[u8]) -> Reached {
    let Ok(message) = Message::from_body(data) else { return Reached::Refused };
    match &message {
        Message::Hello { credential, revocations, .. } => {
            let _ = SignedCredential::from_bytes(credential);
            if let Some(list) = revocations {
                let _ = SignedRevocations::from_bytes(list);
            }
        }
        Message::Changes { evidence, .. } => {
            for e in evidence {
                let _ = SignedCredential::from_bytes(&e.credential);
            }
        }
        Message::Receipts { receipts } => {
            for r in receipts {
                let _ = ciborium::from_reader::<ReceiptBody, _>(r.body.as_slice());
            }
        }
        _ => {}
    }
    let frame = message.to_frame();
    let again = Message::from_body(&frame[4..]);
    assert_eq!(again.as_ref(), Ok(&message), "a decoded message re-encodes to itself");
    Reached::Checked
}

/// Target 3: A `changes` message's batch: [`batch::decode`], then what arrived
/// checked ([`batch::Arrived::checked`]) as the dossier, held and not, and
/// as the campaign. An input that is a plain Automerge document chunk is
/// first compressed with the protocol's dictionary (what a peer sends
/// whole), so the fuzzer mutates the document, not the zstd frame. Chunk
/// checksums are fixed up first ([`fix_chunk_checksums`]).
pub fn batch(data: &[u8]) -> Reached {
    let mut bytes = data.to_vec();
    fix_chunk_checksums(&mut bytes);
    if bytes.starts_with(&CHUNK_MAGIC) && bytes.get(8) == Some(&0) {
        match compress(&bytes) {
            Some(compressed) => bytes = compressed,
            None => return Reached::Refused,
        }
    }
    let Ok(arrived) = batch::decode(&bytes) else { return Reached::Refused };
    let hashes = arrived.hashes();
    let _ = arrived.infos();
    let _ = (arrived.len(), arrived.is_empty());
    if let Some(first) = hashes.first() {
        let _ = arrived.change(first);
    }
    let fixtures = fixtures();
    let mut reached = Reached::Decoded;
    for (id, held) in fixtures {
        if arrived.checked(id, held.clone()).is_ok() {
            reached = Reached::Checked;
        }
    }
    // What a store does with a batch it partly holds.
    if let Some(first) = hashes.first() {
        let _ = arrived.without(|h| h == first);
    }
    reached
}

fn fixtures() -> &'static [(DocId, Option<Automerge>)] {
    static FIXTURES: OnceLock<Vec<(DocId, Option<Automerge>)>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let campaign = campaign();
        let enterprise = enterprise();
        let dossier = DocId::dossier(&campaign, &enterprise);
        let genesis = sync_core::doc::dossier::create(&campaign, &enterprise).expect("the dossier's genesis");
        assert!(!genesis.get_heads().is_empty());
        vec![(dossier.clone(), None), (dossier, Some(genesis)), (campaign, None)]
    })
}

/// One zstd frame with the protocol's dictionary, recording its size (as
/// `batch::encode_document` makes).
fn compress(bytes: &[u8]) -> Option<Vec<u8>> {
    static DICT: OnceLock<Option<zstd::dict::EncoderDictionary<'static>>> = OnceLock::new();
    let dict = DICT.get_or_init(|| zstd::dict::EncoderDictionary::try_copy(batch::DICTIONARY, 1).ok()).as_ref()?;
    zstd::bulk::Compressor::with_prepared_dictionary(dict).and_then(|mut c| c.compress(bytes)).ok()
}

/// Target 4: A `.fsb` bundle. Byte 0 is the mode: 0, the rest is a whole bundle
/// file (every exporter trusted); 1, the rest is a bundle body, which is
/// put in an envelope signed by [`exporter`] (the envelope signature is
/// checked before the body is parsed, so mutated files rarely get further).
/// In mode 1, change chunk checksums are fixed up first. Every document
/// that decodes is then verified ([`bundle::verify_document`]), nothing
/// held, every author trusted.
pub fn bundle(data: &[u8]) -> Reached {
    let Some((&mode, rest)) = data.split_first() else { return Reached::Refused };
    let file = match mode {
        0 => rest.to_vec(),
        1 => {
            let mut body = rest.to_vec();
            fix_chunk_checksums(&mut body);
            envelope(&body)
        }
        _ => return Reached::Refused,
    };
    let Ok(decoded) = bundle::decode(&file, |_: &DevicePublicKey| true) else { return Reached::Refused };
    let mut verified = true;
    for doc in &decoded.docs {
        verified &= bundle::verify_document(doc, |_| true, |_| false).is_ok();
    }
    for credential in &decoded.credentials {
        let _ = credential.credential().device_key();
    }
    if verified { Reached::Checked } else { Reached::Decoded }
}

/// A bundle file around `body`, signed by [`exporter`] (`schemas/bundle.md`).
pub fn envelope(body: &[u8]) -> Vec<u8> {
    static KEY: OnceLock<DeviceKey> = OnceLock::new();
    let key = KEY.get_or_init(exporter);
    let mut out = Vec::with_capacity(8 + 32 + 8 + body.len() + 64);
    out.extend_from_slice(b"FSBUNDL1");
    out.extend_from_slice(&key.public().to_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let signature = key.sign_with_domain(BUNDLE_DOMAIN, &out);
    out.extend_from_slice(&signature);
    out
}

/// Target 5: Enrollment strings and what travels with them. Byte 0 is the mode:
/// 0, the rest is the string (`FS1:…`, UTF-8); 1, the rest is the CBOR
/// body, which is base64-encoded behind `FS1:`; 2, the rest is a signed
/// revocation list (as a hello carries); 3, a signed credential. An
/// enrollment that parses is verified (against its own credential's key)
/// and must print as a string that parses to the same enrollment.
pub fn enrollment(data: &[u8]) -> Reached {
    let Some((&mode, rest)) = data.split_first() else { return Reached::Refused };
    let text = match mode {
        0 => match std::str::from_utf8(rest) {
            Ok(text) => text.to_owned(),
            Err(_) => return Reached::Refused,
        },
        1 => format!("FS1:{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rest)),
        2 => {
            let Ok(list) = SignedRevocations::from_bytes(rest) else { return Reached::Refused };
            let again = SignedRevocations::from_bytes(&list.to_bytes());
            assert_eq!(again.as_ref(), Ok(&list), "a revocation list re-encodes to itself");
            return Reached::Checked;
        }
        3 => {
            let Ok(credential) = SignedCredential::from_bytes(rest) else { return Reached::Refused };
            let again = SignedCredential::from_bytes(&credential.to_bytes());
            assert_eq!(again.as_ref(), Ok(&credential), "a credential re-encodes to itself");
            return Reached::Checked;
        }
        _ => return Reached::Refused,
    };
    let Ok(enrollment) = text.parse::<Enrollment>() else { return Reached::Refused };
    let device = enrollment.credential.credential().device_key().expect("a parsed credential names a key");
    let _ = enrollment.verify(&device, 0);
    let printed = enrollment.to_string();
    // A string longer than the limit is refused as such; re-encoding may
    // lengthen a non-canonical body, so only a string within it is parsed.
    if printed.len() <= 2_900 {
        assert_eq!(printed.parse::<Enrollment>().as_ref(), Ok(&enrollment), "an enrollment prints as itself");
    }
    Reached::Checked
}

/// Target 6: A photo stream's header (its first [`HEADER_LEN`] bytes), then the
/// negotiation message that decides whether it is accepted (the rest, a
/// frame body): an offer is planned and the header accepted against the
/// plan; a want is checked against an offer of the header's photo.
pub fn photo_header(data: &[u8]) -> Reached {
    let Some((head, body)) = data.split_first_chunk::<HEADER_LEN>() else { return Reached::Refused };
    let header = StreamHeader::decode(head);
    assert_eq!(&header.encode(), head, "a stream header re-encodes to itself");
    let Ok(message) = PhotoMessage::from_body(body) else { return Reached::Decoded };
    let again = PhotoMessage::from_body(&message.to_frame()[4..]);
    assert_eq!(again.as_ref(), Ok(&message), "a photo message re-encodes to itself");
    match &message {
        PhotoMessage::Offer { photos } => {
            // We reference the header's photo and every other offered one
            // whose name parses; hold those with an odd first byte; hold
            // a partial copy of the header's offset.
            let mut referenced: BTreeSet<PhotoId> = photos.iter().filter_map(|p| p.sha.parse().ok()).collect();
            referenced.insert(header.photo);
            let plan = photo::plan(photos, &referenced, |p| p.digest()[0] & 1 == 1, |_| Some(header.offset));
            let Ok(mut plan) = plan else { return Reached::Decoded };
            let _ = plan.wants();
            if let Ok(expected) = plan.accept(&header) {
                assert!(expected.offset <= expected.size, "an accepted stream starts within its photo");
                let _ = expected.remaining();
            }
            let _ = plan.is_complete();
        }
        PhotoMessage::Want { photos } => {
            let offered = [PhotoOffer { sha: header.photo.to_string(), size: header.offset }];
            if let Ok(uploads) = photo::uploads(&offered, photos) {
                assert!(uploads.iter().all(|u| u.offset <= u.size), "an upload starts within its photo");
            }
        }
        PhotoMessage::Done { stored, at_hq } => {
            for sha in stored.iter().chain(at_hq) {
                let _ = sha.parse::<PhotoId>();
            }
        }
        PhotoMessage::Refused { .. } => {}
    }
    Reached::Checked
}
