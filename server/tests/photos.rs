//! Photos over sync, end to end: the real `fieldsync-server` process, real
//! stores in temp dirs, loopback QUIC.
//!
//! An inspector's photos reach HQ and a fresh HQ-role analyst, byte for
//! byte; an upload cut by killing the server resumes from what HQ kept;
//! photos reach HQ through a station relay; and a peer that lies in the
//! photo exchange (path tricks, photos not offered, oversize, bytes that
//! do not match their hash, more bytes than offered) is refused and leaves
//! nothing at HQ.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{CODE, Server, enroll, enroll_as, hazard, joint_campaign, spawn_relay};
use field_client::{PhotoProgress, PhotosOwed, Store, new_entity_id};
use sync_core::doc::dossier;
use sync_core::identity::{DeviceKey, DevicePublicKey};
use sync_core::ids::DocId;
use sync_core::ids::PhotoId;
use sync_core::sync::message::{FrameReader, RefusalCode};
use sync_core::sync::photo::{MAX_PHOTO, PhotoMessage, PhotoOffer, PhotoWant, StreamHeader};
use sync_core::sync::session::{Session, SessionConfig};

fn crc32(bytes: &[u8]) -> u32 {
    let table: Vec<u32> =
        (0..256u32).map(|n| (0..8).fold(n, |c, _| if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 })).collect();
    !bytes.iter().fold(!0u32, |c, b| table[((c ^ u32::from(*b)) & 0xFF) as usize] ^ (c >> 8))
}

/// A real PNG (8-bit RGB, zlib with stored blocks) of pseudo-random pixels:
/// any size, decodable by any viewer, recognised by its magic bytes.
fn png(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut raw = Vec::with_capacity(((width * 3 + 1) * height) as usize);
    for _ in 0..height {
        // Each scanline: filter type 0 (none), then its pixels.
        let pixels = (0..width * 3).map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 16) as u8
        });
        raw.extend(std::iter::once(0).chain(pixels));
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (a, b) = raw.iter().fold((1u32, 0u32), |(a, b), x| {
        let a = (a + u32::from(*x)) % 65_521;
        (a, (b + a) % 65_521)
    });
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", ihdr), (b"IDAT", zlib), (b"IEND", Vec::new())] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(&data);
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    out
}

/// A campaign with one construction site; returns the site's dossier.
fn site(store: &mut Store) -> DocId {
    let c = joint_campaign(store);
    store.open_dossier(&c, CODE).unwrap()
}

/// Records a hazard whose photos are `names` (SHA-256 → file name).
fn hazard_with(store: &mut Store, dossier_id: &DocId, names: &[(String, String)]) {
    let mut h = hazard("脚手架连墙件缺失");
    h.photos = names.iter().cloned().collect();
    let id = new_entity_id().unwrap();
    store.edit(dossier_id, |tx| dossier::add_hazard(tx, &id, &h)).unwrap();
}

/// Saves `bytes` as a photo file, attaches it to a new hazard the way
/// `field hazard photo` does; returns its SHA-256.
fn attach(store: &mut Store, dossier_id: &DocId, bytes: &[u8]) -> String {
    let file = store.home().join("相机.png");
    std::fs::write(&file, bytes).unwrap();
    let sha = store.add_photo(&file).unwrap();
    hazard_with(store, dossier_id, &[(sha.clone(), "相机.png".into())]);
    sha
}

fn blob(home: &Path, sha: &str) -> PathBuf {
    home.join("blobs").join(&sha[..2]).join(sha)
}

/// Every file under HQ's blob directory (photos and partial copies).
fn hq_files(data: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                walk(&entry.path(), out);
            } else {
                out.push(entry.path());
            }
        }
    }
    let mut out = Vec::new();
    walk(&data.join("sync/blobs"), &mut out);
    out
}

fn noop(_: PhotoProgress) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inspectors_photos_reach_hq_and_a_fresh_hq_analyst() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let mut inspector = Store::init(&dir.path().join("inspector"), "张三").unwrap();
    enroll(&data, &inspector);
    let dossier_id = site(&mut inspector);
    let photos: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| {
            let bytes = png(64 + i, 48, i);
            (attach(&mut inspector, &dossier_id, &bytes), bytes)
        })
        .collect();
    assert_eq!(inspector.missing_photos().unwrap(), 0);
    let total: u64 = photos.iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(inspector.photos_owed().unwrap(), PhotosOwed { photos: 3, bytes: total });

    let up = inspector.sync_reporting(Some(server.addr), true, &noop).await.unwrap().photos.unwrap();
    assert_eq!((up.sent, up.received, up.failed.len()), (3, 0, 0), "{up:?}");
    assert_eq!(inspector.photos_owed().unwrap(), PhotosOwed::default(), "HQ holds them all");
    assert_eq!(up.bytes_sent, photos.iter().map(|(_, b)| b.len() as u64).sum::<u64>());
    for (sha, bytes) in &photos {
        assert_eq!(std::fs::read(blob(&data.join("sync"), sha)).unwrap(), *bytes);
    }
    // Held on both sides: nothing moves the next time.
    let again = inspector.sync_reporting(Some(server.addr), true, &noop).await.unwrap().photos.unwrap();
    assert_eq!((again.sent, again.received, again.bytes_sent), (0, 0, 0));

    // A fresh HQ analyst pulls the documents, then the photos they reference.
    let mut analyst = Store::init(&dir.path().join("analyst"), "总部分析员").unwrap();
    enroll_as(&data, &analyst, "hq", "127.0.0.1:4433");
    let moved = AtomicU64::new(0);
    let planned = AtomicU64::new(0);
    let progress = |p: PhotoProgress| match p {
        PhotoProgress::Planned { bytes, .. } => planned.store(bytes, Ordering::Relaxed),
        PhotoProgress::Moved(n) => {
            moved.fetch_add(n, Ordering::Relaxed);
        }
        _ => {}
    };
    let down = analyst.sync_reporting(Some(server.addr), true, &progress).await.unwrap().photos.unwrap();
    assert_eq!((down.sent, down.received, down.failed.len()), (0, 3, 0), "{down:?}");
    assert_eq!(moved.load(Ordering::Relaxed), planned.load(Ordering::Relaxed));
    assert_eq!(moved.load(Ordering::Relaxed), down.bytes_received);
    for (sha, bytes) in &photos {
        assert!(analyst.has_blob(sha));
        assert_eq!(std::fs::read(blob(analyst.home(), sha)).unwrap(), *bytes);
    }
    assert_eq!(analyst.missing_photos().unwrap(), 0);
    assert!(std::fs::read_dir(analyst.home().join("blobs/partial")).unwrap().next().is_none());

    // For people at HQ: each photo's size read, a thumbnail and a
    // screen-size copy made, off the sync path; the original unchanged.
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap().trim().to_owned();
    let (sha, bytes) = &photos[0];
    let deadline = Instant::now() + Duration::from_secs(10);
    let meta = loop {
        let (status, body) = http_get(&server, &token, &format!("/api/v1/photos/{sha}/meta")).await;
        if status == 200 {
            break serde_json::from_slice::<serde_json::Value>(&body).unwrap();
        }
        assert!(Instant::now() < deadline, "no copies made: {}", String::from_utf8_lossy(&body));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (meta["decodable"].as_bool(), meta["width"].as_u64(), meta["format"].as_str()),
        (Some(true), Some(64), Some("png"))
    );
    let (status, thumb) = http_get(&server, &token, &format!("/api/v1/photos/{sha}?size=thumb")).await;
    assert_eq!(status, 200);
    assert!(thumb.starts_with(&[0xFF, 0xD8]), "a JPEG thumbnail");
    let (status, original) = http_get(&server, &token, &format!("/api/v1/photos/{sha}")).await;
    assert_eq!((status, &original), (200, bytes), "the original, byte for byte");
    for bad in [
        "/api/v1/photos/../../hq.key",
        &format!("/api/v1/photos/{sha}?size=huge"),
        &format!("/api/v1/photos/{}", "0".repeat(64)),
    ] {
        let (status, body) = http_get(&server, &token, bad).await;
        assert!(matches!(status, 400 | 404), "{bad}: {status}");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(body["message"].as_str().is_some_and(|m| !m.is_ascii()), "{bad}: {body}");
    }
    assert_eq!(http_get(&server, "wrong", &format!("/api/v1/photos/{sha}")).await.0, 401);
}

/// A GET to HQ's API with `token`: status and body.
async fn http_get(server: &Server, token: &str, path: &str) -> (u16, Vec<u8>) {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let request = hyper::Request::get(format!("http://{}{path}", server.http))
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::<hyper::body::Bytes>::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    (status, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_upload_cut_by_killing_the_server_resumes_where_it_stopped() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let addr = server.addr;
    let mut inspector = Store::init(&dir.path().join("inspector"), "张三").unwrap();
    enroll(&data, &inspector);
    let dossier_id = site(&mut inspector);
    let big = png(2600, 2600, 7);
    let size = big.len() as u64;
    assert!(size > 20_000_000 && size < MAX_PHOTO);
    let sha = attach(&mut inspector, &dossier_id, &big);

    // Kill the server as soon as it holds part of the photo.
    let partial = data.join("sync/blobs/partial").join(&sha);
    let upload = tokio::spawn(async move {
        let result = inspector.sync_reporting(Some(addr), true, &noop).await;
        (inspector, result)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) == 0 {
        assert!(!upload.is_finished(), "the upload ended before it could be cut");
        assert!(Instant::now() < deadline, "the upload never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill();
    // Back on the same port: the old connection is reset at once.
    let server = Server::start_at(&data, &addr.to_string());
    let (mut inspector, first) = upload.await.unwrap();
    let first = first.expect("the document session had ended well before the photos");
    assert!(first.photos.is_err(), "{:?}", first.photos);
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept < size, "kept {kept} of {size}");
    assert!(!blob(&data.join("sync"), &sha).exists(), "a partial photo is never a photo");
    // Every change has HQ's receipt, yet the photo is not at HQ: not safe
    // to leave.
    assert!(inspector.unreceipted().unwrap().is_empty());
    assert_eq!(inspector.photos_owed().unwrap(), PhotosOwed { photos: 1, bytes: size });

    let second = inspector.sync_reporting(Some(server.addr), true, &noop).await.unwrap().photos.unwrap();
    assert_eq!((second.sent, second.failed.len()), (1, 0), "{second:?}");
    assert_eq!(second.bytes_sent, size - kept, "only the rest is sent");
    assert_eq!(std::fs::read(blob(&data.join("sync"), &sha)).unwrap(), big);
    assert!(!partial.exists());
    assert_eq!(inspector.photos_owed().unwrap(), PhotosOwed::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_reach_hq_through_a_station_relay_and_the_device_learns_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let relay_store = Store::init(&dir.path().join("station"), "安监站").unwrap();
    enroll_as(&data, &relay_store, "station", &server.addr.to_string());
    let (relay_addr, stop, relay) = spawn_relay(relay_store, Duration::from_millis(200)).await;

    let mut inspector = Store::init(&dir.path().join("inspector"), "张三").unwrap();
    enroll(&data, &inspector);
    let dossier_id = site(&mut inspector);
    let photos: Vec<(String, Vec<u8>)> = (0..2)
        .map(|i| {
            let bytes = png(100, 80 + i, 40 + i);
            (attach(&mut inspector, &dossier_id, &bytes), bytes)
        })
        .collect();
    let up = inspector.sync_reporting(Some(relay_addr), false, &noop).await.unwrap().photos.unwrap();
    assert_eq!((up.sent, up.failed.len()), (2, 0), "{up:?}");
    // The station holds them, not HQ: the device does not count them as safe.
    assert_eq!(inspector.photos_owed().unwrap().photos, 2);

    // The relay forwards documents, then the photos they reference.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !photos.iter().all(|(sha, _)| blob(&data.join("sync"), sha).exists()) {
        assert!(Instant::now() < deadline, "the photos never reached HQ through the relay");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (sha, bytes) in &photos {
        assert_eq!(std::fs::read(blob(&data.join("sync"), sha)).unwrap(), *bytes);
    }
    // The station tells the device, at its next sync, which of its photos
    // HQ holds: a device that syncs only through the relay learns it is safe.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        inspector.sync_reporting(Some(relay_addr), false, &noop).await.unwrap();
        if inspector.photos_owed().unwrap() == PhotosOwed::default() {
            break;
        }
        assert!(Instant::now() < deadline, "the relay never said HQ holds the photos");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(inspector.unreceipted().unwrap().is_empty(), "and its changes carry HQ's receipts");
    stop.send(()).unwrap();
    relay.await.unwrap().unwrap();
}

/// What a scripted peer does in the photo exchange.
struct Script {
    offer: Vec<PhotoOffer>,
    want: Vec<PhotoWant>,
    streams: Vec<(StreamHeader, Vec<u8>)>,
}

/// Syncs documents with HQ through the real session, then plays `script`
/// in the photo exchange; returns every message HQ sent in it.
async fn scripted(
    device: &mut Store,
    key: &DeviceKey,
    hq: DevicePublicKey,
    addr: SocketAddr,
    script: Script,
) -> Vec<PhotoMessage> {
    device.load_all().unwrap();
    let credential = device.enrollment().unwrap().unwrap().credential;
    let (endpoint, connection) = field_client::net::connect(key, Some(hq), addr).await.unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let mut session = Session::new(SessionConfig { credential, hq, revocations: None, peer_key: hq });
    field_client::net::drive(device, &mut session, hq, &mut send, &mut recv).await.unwrap();

    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&PhotoMessage::Offer { photos: script.offer }.to_frame()).await.unwrap();
    send.write_all(&PhotoMessage::Want { photos: script.want }.to_frame()).await.unwrap();
    let mut reader = FrameReader::default();
    let mut got = Vec::new();
    let mut streams = Some(script.streams);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while let Some(message) = reader.next_as::<PhotoMessage>().unwrap() {
            got.push(message);
        }
        if got.iter().any(|m| matches!(m, PhotoMessage::Want { .. }))
            && let Some(streams) = streams.take()
        {
            // HQ may stop a stream it refuses: writes then fail, as they should.
            for (header, bytes) in streams {
                let mut stream = connection.open_uni().await.unwrap();
                let _ = stream.write_all(&header.encode()).await;
                let _ = stream.write_all(&bytes).await;
                let _ = stream.finish();
            }
            let _ = send.write_all(&PhotoMessage::Done { stored: Vec::new(), at_hq: Vec::new() }.to_frame()).await;
        }
        if got.iter().any(|m| matches!(m, PhotoMessage::Done { .. } | PhotoMessage::Refused { .. })) {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(20), recv.read(&mut buf)).await.expect("HQ answers") {
            Ok(Some(n)) => reader.push(&buf[..n]),
            _ => break,
        }
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(5), connection.closed()).await;
    endpoint.wait_idle().await;
    got
}

fn refusal(messages: &[PhotoMessage]) -> (RefusalCode, String) {
    match messages.last() {
        Some(PhotoMessage::Refused { code, message }) => (*code, message.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_photo_input_is_refused_and_nothing_is_stored() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let server = Server::start(&data);
    let seed = [7u8; 32];
    let mut device = Store::init_with_seed(&dir.path().join("device"), "张三", seed).unwrap();
    enroll(&data, &device);
    let key = DeviceKey::from_seed(seed);
    let hq = device.enrollment().unwrap().unwrap().hq;
    let dossier_id = site(&mut device);
    let bytes = png(80, 60, 1);
    let size = bytes.len() as u64;
    let sha = attach(&mut device, &dossier_id, &bytes);
    // A photo the dossier references that is far too large, and one that
    // no document references.
    let huge = "cd".repeat(32);
    hazard_with(&mut device, &dossier_id, &[(huge.clone(), "全景.jpg".into())]);
    let stray = "ef".repeat(32);
    let offer = |sha: &str, size| PhotoOffer { sha: sha.to_owned(), size };
    let header = |sha: &str| StreamHeader { photo: sha.parse::<PhotoId>().unwrap(), offset: 0 };

    // Path tricks, in an offer and in a request, end the exchange.
    let trick = "../../hq.key";
    let got = scripted(
        &mut device,
        &key,
        hq,
        server.addr,
        Script { offer: vec![offer(trick, 10)], want: vec![], streams: vec![] },
    )
    .await;
    let (code, message) = refusal(&got);
    assert_eq!(code, RefusalCode::Protocol);
    assert!(message.contains("照片名称无效"), "{message}");
    let want_trick = PhotoWant { sha: format!("../{}", "a".repeat(61)), offset: 0 };
    let got =
        scripted(&mut device, &key, hq, server.addr, Script { offer: vec![], want: vec![want_trick], streams: vec![] })
            .await;
    assert!(refusal(&got).1.contains("照片名称无效"));
    // A photo HQ did not offer (HQ holds none yet).
    let unknown = PhotoWant { sha: sha.clone(), offset: 0 };
    let got =
        scripted(&mut device, &key, hq, server.addr, Script { offer: vec![], want: vec![unknown], streams: vec![] })
            .await;
    assert_eq!(refusal(&got).0, RefusalCode::Scope);
    assert!(hq_files(&data).is_empty(), "{:?}", hq_files(&data));

    // Oversize and unreferenced photos are not asked for; bytes that do not
    // hash to the photo's name are thrown away.
    let mut forged = bytes.clone();
    *forged.last_mut().unwrap() ^= 1;
    let got = scripted(
        &mut device,
        &key,
        hq,
        server.addr,
        Script {
            offer: vec![offer(&sha, size), offer(&huge, MAX_PHOTO + 1), offer(&stray, 10)],
            want: vec![],
            streams: vec![(header(&sha), forged)],
        },
    )
    .await;
    assert_eq!(
        got[1],
        PhotoMessage::Want { photos: vec![PhotoWant { sha: sha.clone(), offset: 0 }] },
        "only the referenced photo within the limit is asked for"
    );
    assert_eq!(got.last(), Some(&PhotoMessage::Done { stored: vec![], at_hq: vec![] }));
    assert!(hq_files(&data).is_empty(), "{:?}", hq_files(&data));

    // More bytes than offered are refused for that photo.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 100]);
    let got = scripted(
        &mut device,
        &key,
        hq,
        server.addr,
        Script { offer: vec![offer(&sha, size)], want: vec![], streams: vec![(header(&sha), longer)] },
    )
    .await;
    assert_eq!(got.last(), Some(&PhotoMessage::Done { stored: vec![], at_hq: vec![] }));
    assert!(hq_files(&data).is_empty(), "{:?}", hq_files(&data));

    // The server still serves: the real photo goes up intact.
    let up = device.sync_reporting(Some(server.addr), true, &noop).await.unwrap().photos.unwrap();
    assert_eq!((up.sent, up.failed.len()), (1, 0), "{up:?}");
    assert_eq!(hq_files(&data), vec![blob(&data.join("sync"), &sha)]);
    assert_eq!(std::fs::read(blob(&data.join("sync"), &sha)).unwrap(), bytes);
}
