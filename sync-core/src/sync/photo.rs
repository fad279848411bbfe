//! Photos over sync, sans-IO: the negotiation that follows a completed
//! document session on the same connection.
//!
//! Photos are content-addressed (SHA-256) and referenced from hazards. Each
//! side sends one [`PhotoMessage::Offer`]: the photos it holds that documents
//! in the peer's scope reference ([`offer`]). Each side answers with
//! [`PhotoMessage::Want`]: the offered photos that the same documents (which
//! after the session both sides hold) reference and that it lacks, each with the length of the partial copy it
//! already holds ([`plan`]). The sender checks the request against its
//! offer ([`uploads`]) and sends every photo on its own unidirectional
//! stream: a [`StreamHeader`] (SHA-256 and offset), then the bytes from the
//! offset to the end. The receiver accepts a stream only for a photo it
//! asked for, at the offset it named ([`Plan::accept`]), takes at most the
//! offered size, verifies the whole file's SHA-256 and only then keeps it.
//! Last, each side sends [`PhotoMessage::Done`] naming the photos it stored.
//!
//! The driver (`field-client/src/photos.rs`) owns the streams and the files;
//! this module decides what may be offered, asked for and accepted. Spec:
//! `schemas/sync-protocol.md`, "Photos".

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::message::{FrameError, RefusalCode};
use crate::ids::{IdError, PhotoId};

/// The largest photo accepted (a phone camera's JPEG is a few MiB).
pub const MAX_PHOTO: u64 = 32 * 1024 * 1024;

/// Length of a [`StreamHeader`] on the wire.
pub const HEADER_LEN: usize = 40;

/// Why a photo, or the photo exchange, was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PhotoError {
    /// A name that is not 64 lowercase hex digits (a path trick, say).
    #[error("照片名称无效：{0}")]
    BadName(String),
    /// A photo over [`MAX_PHOTO`]; it is not requested.
    #[error("照片 {photo} 过大（{size} 字节，上限 {MAX_PHOTO} 字节），未接收")]
    TooLarge {
        /// The photo.
        photo: PhotoId,
        /// Its offered size.
        size: u64,
    },
    /// The peer asked for a photo that was not offered to it.
    #[error("对方请求了未提供给它的照片 {0}")]
    NotOffered(String),
    /// The peer asked to resume past a photo's end.
    #[error("照片 {photo} 的续传位置 {offset} 超出其大小")]
    BadOffset {
        /// The photo.
        photo: PhotoId,
        /// The offset asked for.
        offset: u64,
    },
    /// Bytes arrived for a photo not asked for, or at another offset.
    #[error("收到未请求的照片数据：{0}")]
    Unexpected(PhotoId),
    /// More bytes arrived than the photo's offered size; the partial copy
    /// was deleted.
    #[error("照片 {0} 的数据超出其声明的大小，已丢弃")]
    Overrun(PhotoId),
    /// The received bytes do not hash to the photo's name; the partial copy
    /// was deleted.
    #[error("照片 {0} 校验失败（SHA-256 不符），已丢弃")]
    Mismatch(PhotoId),
    /// A photo message was malformed or oversized.
    #[error("照片消息无效：{0}")]
    Frame(#[from] FrameError),
    /// A message out of order, or a repeated entry.
    #[error("照片协议错误：{0}")]
    Protocol(String),
    /// The peer refused the exchange.
    #[error("对方拒绝照片同步：{0}")]
    Refused(String),
}

impl From<IdError> for PhotoError {
    fn from(error: IdError) -> Self {
        match error {
            IdError::InvalidPhotoId(name) => PhotoError::BadName(name),
            other => PhotoError::Protocol(other.to_string()),
        }
    }
}

impl PhotoError {
    /// The refusal to send the peer when this error ends the exchange.
    pub fn refusal(&self) -> Option<PhotoMessage> {
        let code = match self {
            PhotoError::NotOffered(_) | PhotoError::TooLarge { .. } => RefusalCode::Scope,
            PhotoError::Refused(_) => return None,
            _ => RefusalCode::Protocol,
        };
        Some(PhotoMessage::Refused { code, message: self.to_string() })
    }
}

/// One photo offered: its name and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoOffer {
    /// SHA-256, 64 lowercase hex digits.
    pub sha: String,
    /// Size in bytes.
    pub size: u64,
}

/// One photo asked for, from `offset` (the length of the partial copy the
/// asker holds) to its end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoWant {
    /// SHA-256, 64 lowercase hex digits.
    pub sha: String,
    /// First byte wanted.
    pub offset: u64,
}

/// A message of the photo negotiation (its own bidirectional stream, framed
/// like the document protocol, tagged by `"t"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum PhotoMessage {
    /// The photos the sender holds that documents in the receiver's scope
    /// reference.
    #[serde(rename = "photo_offer")]
    Offer {
        /// Photos.
        photos: Vec<PhotoOffer>,
    },
    /// The offered photos the sender lacks and will accept.
    #[serde(rename = "photo_want")]
    Want {
        /// Photos, each with the offset to resume from.
        photos: Vec<PhotoWant>,
    },
    /// The sender has received every photo stream it expected; `stored`
    /// names the photos it verified and kept.
    #[serde(rename = "photo_done")]
    Done {
        /// Photos stored.
        stored: Vec<String>,
        /// Of the photos the receiver offered, those the sender knows HQ
        /// holds (HQ: those it holds; a station relay: those its own
        /// exchanges with HQ showed), so a device that syncs only through a
        /// relay learns when its photos are safe at HQ.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        at_hq: Vec<String>,
    },
    /// The sender refuses to continue.
    #[serde(rename = "photo_refused")]
    Refused {
        /// Why.
        code: RefusalCode,
        /// A readable message (Chinese).
        message: String,
    },
}

impl PhotoMessage {
    /// Encodes the message as one frame (length prefix, CBOR).
    pub fn to_frame(&self) -> Vec<u8> {
        super::message::frame(self)
    }

    /// Decodes a frame body (without its length prefix).
    pub fn from_body(body: &[u8]) -> Result<Self, FrameError> {
        super::message::from_body(body)
    }
}

/// The start of a photo stream: which photo, from which byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// The photo.
    pub photo: PhotoId,
    /// The first byte that follows.
    pub offset: u64,
}

impl StreamHeader {
    /// The 40 header bytes: the raw SHA-256, then the offset (u64, big-endian).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..32].copy_from_slice(self.photo.digest());
        out[32..].copy_from_slice(&self.offset.to_be_bytes());
        out
    }

    /// Reads a header. Every 40 bytes are a header; whether it was asked
    /// for is [`Plan::accept`]'s question.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&bytes[..32]);
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&bytes[32..]);
        Self { photo: PhotoId::from_digest(digest), offset: u64::from_be_bytes(offset) }
    }
}

/// What we offer: each photo referenced by documents in the peer's scope
/// that we hold, with its size (`held` answers `None` for a photo we lack).
pub fn offer(referenced: &BTreeSet<PhotoId>, mut held: impl FnMut(&PhotoId) -> Option<u64>) -> Vec<PhotoOffer> {
    referenced.iter().filter_map(|id| Some(PhotoOffer { sha: id.to_string(), size: held(id)? })).collect()
}

/// A photo we asked for: the offset we named and the offered size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Where the bytes start (the partial copy's length).
    pub offset: u64,
    /// The whole photo's size.
    pub size: u64,
}

impl Expected {
    /// How many bytes the stream may carry.
    pub fn remaining(&self) -> u64 {
        self.size - self.offset
    }
}

/// What we ask the peer for, and what we will accept.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Photos asked for and not yet arrived.
    pub expect: BTreeMap<PhotoId, Expected>,
    /// Offered photos refused (too large), reported to the user.
    pub refused: Vec<PhotoError>,
}

impl Plan {
    /// The `want` message's entries.
    pub fn wants(&self) -> Vec<PhotoWant> {
        self.expect.iter().map(|(id, e)| PhotoWant { sha: id.to_string(), offset: e.offset }).collect()
    }

    /// Stops asking for a photo (its partial copy is busy in another session).
    pub fn withdraw(&mut self, id: &PhotoId) {
        self.expect.remove(id);
    }

    /// Whether every photo asked for has arrived (or failed).
    pub fn is_complete(&self) -> bool {
        self.expect.is_empty()
    }

    /// Accepts a photo stream: it must be for a photo asked for, not yet
    /// begun, at the offset named. Returns what it may carry.
    pub fn accept(&mut self, header: &StreamHeader) -> Result<Expected, PhotoError> {
        match self.expect.get(&header.photo) {
            Some(e) if e.offset == header.offset => {
                let e = *e;
                self.expect.remove(&header.photo);
                Ok(e)
            }
            _ => Err(PhotoError::Unexpected(header.photo)),
        }
    }
}

/// Decides what to ask for from the peer's offer: photos our documents
/// reference (`referenced`) that we do not hold, up to [`MAX_PHOTO`] each,
/// resumed from the length of our partial copy (`partial`; a partial copy
/// longer than the photo starts again from 0). A malformed or repeated
/// name refuses the whole offer.
pub fn plan(
    offer: &[PhotoOffer],
    referenced: &BTreeSet<PhotoId>,
    mut held: impl FnMut(&PhotoId) -> bool,
    mut partial: impl FnMut(&PhotoId) -> Option<u64>,
) -> Result<Plan, PhotoError> {
    let mut plan = Plan::default();
    let mut seen = BTreeSet::new();
    for item in offer {
        let id: PhotoId = item.sha.parse()?;
        if !seen.insert(id) {
            return Err(PhotoError::Protocol(format!("照片 {id} 重复提供")));
        }
        if !referenced.contains(&id) || held(&id) {
            continue;
        }
        if item.size > MAX_PHOTO {
            plan.refused.push(PhotoError::TooLarge { photo: id, size: item.size });
            continue;
        }
        let offset = partial(&id).filter(|len| *len <= item.size).unwrap_or(0);
        plan.expect.insert(id, Expected { offset, size: item.size });
    }
    Ok(plan)
}

/// One photo to send: which, from where, its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upload {
    /// The photo.
    pub photo: PhotoId,
    /// First byte to send.
    pub offset: u64,
    /// Its size (the last byte sent is `size - 1`).
    pub size: u64,
}

/// Checks the peer's `want` against our offer: only photos offered, each
/// once, from an offset within the photo.
pub fn uploads(offered: &[PhotoOffer], wants: &[PhotoWant]) -> Result<Vec<Upload>, PhotoError> {
    let sizes: BTreeMap<&str, u64> = offered.iter().map(|o| (o.sha.as_str(), o.size)).collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(wants.len());
    for want in wants {
        let photo: PhotoId = want.sha.parse()?;
        let size = *sizes.get(want.sha.as_str()).ok_or_else(|| PhotoError::NotOffered(want.sha.clone()))?;
        if !seen.insert(photo) {
            return Err(PhotoError::Protocol(format!("照片 {photo} 重复请求")));
        }
        if want.offset > size {
            return Err(PhotoError::BadOffset { photo, offset: want.offset });
        }
        out.push(Upload { photo, offset: want.offset, size });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::message::FrameReader;

    fn id(n: u8) -> PhotoId {
        PhotoId::from_digest([n; 32])
    }

    fn offered(n: u8, size: u64) -> PhotoOffer {
        PhotoOffer { sha: id(n).to_string(), size }
    }

    #[test]
    fn names_are_64_lowercase_hex_only() {
        let good = "ab".repeat(32);
        assert_eq!(good.parse::<PhotoId>().unwrap().to_string(), good);
        for bad in [
            "../../etc/passwd".to_owned(),
            "AB".repeat(32),
            "ab".repeat(31),
            format!("{}/", "a".repeat(63)),
            format!("../{}", "a".repeat(61)),
            String::new(),
        ] {
            assert!(matches!(bad.parse::<PhotoId>().map_err(PhotoError::from), Err(PhotoError::BadName(_))), "{bad}");
        }
    }

    #[test]
    fn offer_names_only_referenced_photos_held() {
        let referenced: BTreeSet<PhotoId> = [id(1), id(2), id(3)].into();
        let held = |p: &PhotoId| (*p != id(2)).then_some(u64::from(p.digest()[0]) * 10);
        assert_eq!(offer(&referenced, held), vec![offered(1, 10), offered(3, 30)]);
    }

    #[test]
    fn plan_asks_for_referenced_photos_it_lacks_resuming_partials() {
        let referenced: BTreeSet<PhotoId> = [id(1), id(2), id(3), id(4), id(5)].into();
        let offer = [
            offered(1, 100),
            offered(2, 100),
            offered(3, 100),
            offered(4, MAX_PHOTO + 1),
            offered(6, 5),
            offered(5, 50),
        ];
        let held = |p: &PhotoId| *p == id(2);
        let partial = |p: &PhotoId| match p.digest()[0] {
            3 => Some(40),
            5 => Some(70),
            _ => None,
        };
        let plan = plan(&offer, &referenced, held, partial).unwrap();
        // 2 is held, 6 is referenced by nothing we hold, 4 is too large,
        // 3 resumes at 40, and 5's partial copy is longer than the photo.
        assert_eq!(
            plan.expect,
            BTreeMap::from([
                (id(1), Expected { offset: 0, size: 100 }),
                (id(3), Expected { offset: 40, size: 100 }),
                (id(5), Expected { offset: 0, size: 50 }),
            ])
        );
        assert_eq!(plan.refused, vec![PhotoError::TooLarge { photo: id(4), size: MAX_PHOTO + 1 }]);
        assert_eq!(plan.wants()[1], PhotoWant { sha: id(3).to_string(), offset: 40 });
    }

    #[test]
    fn a_bad_name_or_a_repeat_refuses_the_offer() {
        let referenced = BTreeSet::new();
        let trick = [PhotoOffer { sha: "../../../../etc/passwd".into(), size: 1 }];
        assert!(matches!(plan(&trick, &referenced, |_| false, |_| None), Err(PhotoError::BadName(_))));
        let twice = [offered(1, 1), offered(1, 1)];
        assert!(matches!(plan(&twice, &referenced, |_| false, |_| None), Err(PhotoError::Protocol(_))));
    }

    #[test]
    fn streams_are_accepted_once_at_the_offset_asked() {
        let referenced: BTreeSet<PhotoId> = [id(1)].into();
        let mut plan = plan(&[offered(1, 100)], &referenced, |_| false, |_| Some(30)).unwrap();
        let wrong_offset = StreamHeader { photo: id(1), offset: 0 };
        assert_eq!(plan.accept(&wrong_offset), Err(PhotoError::Unexpected(id(1))));
        let unasked = StreamHeader { photo: id(9), offset: 0 };
        assert_eq!(plan.accept(&unasked), Err(PhotoError::Unexpected(id(9))));
        let header = StreamHeader { photo: id(1), offset: 30 };
        assert_eq!(plan.accept(&header).unwrap().remaining(), 70);
        assert!(plan.is_complete());
        assert_eq!(plan.accept(&header), Err(PhotoError::Unexpected(id(1))));
    }

    #[test]
    fn uploads_serve_only_what_was_offered() {
        let offer = [offered(1, 100), offered(2, 10)];
        let want = |n: u8, offset| PhotoWant { sha: id(n).to_string(), offset };
        assert_eq!(uploads(&offer, &[want(1, 60)]).unwrap(), vec![Upload { photo: id(1), offset: 60, size: 100 }]);
        assert_eq!(uploads(&offer, &[want(3, 0)]), Err(PhotoError::NotOffered(id(3).to_string())));
        assert_eq!(uploads(&offer, &[want(2, 11)]), Err(PhotoError::BadOffset { photo: id(2), offset: 11 }));
        assert!(matches!(uploads(&offer, &[want(1, 0), want(1, 5)]), Err(PhotoError::Protocol(_))));
        let trick = PhotoWant { sha: "../store.db".into(), offset: 0 };
        assert!(matches!(uploads(&offer, &[trick]), Err(PhotoError::BadName(_))));
    }

    #[test]
    fn headers_and_messages_round_trip() {
        let header = StreamHeader { photo: id(7), offset: 1 << 40 };
        assert_eq!(StreamHeader::decode(&header.encode()), header);
        let messages = vec![
            PhotoMessage::Offer { photos: vec![offered(1, 3)] },
            PhotoMessage::Want { photos: vec![PhotoWant { sha: id(1).to_string(), offset: 2 }] },
            PhotoMessage::Done { stored: vec![id(1).to_string()], at_hq: vec![id(2).to_string()] },
            PhotoMessage::Refused { code: RefusalCode::Scope, message: "照片不在范围内".into() },
        ];
        let mut reader = FrameReader::default();
        reader.push(&messages.iter().flat_map(PhotoMessage::to_frame).collect::<Vec<u8>>());
        let mut out = Vec::new();
        while let Some(m) = reader.next_as::<PhotoMessage>().unwrap() {
            out.push(m);
        }
        assert_eq!(out, messages);
        // A document message is not a photo message.
        let done = crate::sync::message::Message::Done { stored: Some(1) }.to_frame();
        assert!(PhotoMessage::from_body(&done[4..]).is_err());
    }
}
