//! Sync protocol messages and their framing.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of
//! CBOR (one [`Message`]). Frames larger than [`MAX_FRAME`] are refused
//! before they are buffered. The encoding is specified, with test vectors,
//! in `schemas/sync-protocol.md`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Protocol version; also named by the ALPN string `fieldsync/3`.
pub const PROTOCOL_VERSION: u32 = 3;

/// The largest frame accepted (a day's changes of one dossier fit easily).
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix exceeds [`MAX_FRAME`].
    #[error("消息过大（{0} 字节）")]
    TooLarge(usize),
    /// The bytes are not a message.
    #[error("消息格式无效：{0}")]
    Malformed(String),
}

/// One author's signature over the latest of their changes being sent,
/// with the author's credential so the receiver can check enrollment (left
/// empty when the author is the sender, whose credential came in its hello).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Author's public key.
    pub key: ByteBuf,
    /// Author's store nonce (actor proof).
    pub nonce: ByteBuf,
    /// The change hash signed.
    pub head: ByteBuf,
    /// Signature over (doc id, head).
    pub sig: ByteBuf,
    /// The author's HQ-signed credential (`SignedCredential::to_bytes`);
    /// empty when the author is the sender.
    pub credential: ByteBuf,
    /// When the sender stored `head` (ms, the sender's clock): stated for
    /// an author whose credential has been revoked, so the receiver can
    /// tell work done before the revocation from work done after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<i64>,
    /// The sender lacks this author's credential (`credential` is empty):
    /// HQ, which issued it, looks it up in its register. Sent to HQ only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lookup: bool,
}

impl Evidence {
    /// The evidence of a stored signature and its author's credential bytes
    /// (empty: the sender's own, which came in its hello).
    pub fn new(signature: &crate::identity::HeadSignature, credential: Vec<u8>) -> Self {
        Self {
            key: ByteBuf::from(signature.actor.key.to_bytes().to_vec()),
            nonce: ByteBuf::from(signature.actor.nonce.0.to_vec()),
            head: ByteBuf::from(signature.head.0.to_vec()),
            sig: ByteBuf::from(signature.signature.to_vec()),
            credential: ByteBuf::from(credential),
            received: None,
            lookup: false,
        }
    }
}

/// A document and its heads, as offered in a catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocHeads {
    /// Document id.
    pub id: String,
    /// Its heads (32-byte change hashes).
    pub heads: Vec<ByteBuf>,
}

/// HQ's signed statement that it durably holds a document at some heads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBody {
    /// Document id.
    pub doc: String,
    /// Heads HQ holds (all their ancestors are stored too).
    pub heads: Vec<ByteBuf>,
    /// The device that delivered the changes.
    pub device: ByteBuf,
    /// HQ's clock when it committed (ms).
    pub server_time: i64,
    /// Position in HQ's receipt log.
    pub seq: u64,
    /// SHA-256 of the previous receipt in the log (the hash chain).
    pub prev: ByteBuf,
}

/// A receipt: the body's CBOR bytes and HQ's signature over them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// CBOR of [`ReceiptBody`].
    pub body: ByteBuf,
    /// HQ's signature.
    pub sig: ByteBuf,
}

/// Why a peer was refused, for the user to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// Protocol version not supported.
    Version,
    /// Credential missing, forged, expired, revoked or for another key.
    Credential,
    /// Something out of scope was sent.
    Scope,
    /// A signature or actor check failed.
    Signature,
    /// The message broke the protocol.
    Protocol,
    /// Changes would make a document invalid; quarantined.
    Invalid,
}

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Message {
    /// First message from each side.
    Hello {
        /// [`PROTOCOL_VERSION`].
        version: u32,
        /// The sender's credential.
        credential: ByteBuf,
        /// The newest HQ revocation list the sender holds, if any.
        revocations: Option<ByteBuf>,
    },
    /// The documents the sender holds that the receiver may see, with heads.
    Catalog {
        /// Documents.
        docs: Vec<DocHeads>,
    },
    /// Changes the receiver lacks, with one signature per author.
    Changes {
        /// This message's number among the sender's `Changes` (0, 1, …), so
        /// the receiver knows when it has them all, whatever the order.
        n: u32,
        /// Document id.
        doc: String,
        /// The changes, as one Automerge bundle chunk (columnar, compressed):
        /// see [`encode_batch`](super::session) and `schemas/sync-protocol.md`.
        batch: ByteBuf,
        /// Evidence.
        evidence: Vec<Evidence>,
    },
    /// Receipts the sender holds for documents in the receiver's scope.
    Receipts {
        /// Receipts.
        receipts: Vec<Receipt>,
    },
    /// The sender has sent every change and receipt it will send.
    Sent {
        /// How many `Changes` messages it sent.
        count: u32,
    },
    /// The sender has durably stored everything the receiver sent (and the
    /// receiver's `Sent` arrived). A session ends when both sides sent it.
    Done {
        /// How many of the receiver's changes were new to the sender and
        /// stored: both sides then count what moved alike (the receiver may
        /// have sent changes the sender held already). `None` from a peer
        /// of an earlier version, which did not say.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stored: Option<u32>,
    },
    /// The sender kept changes of one `changes` message aside for review
    /// (its quarantine) instead of storing them: signed, but they would
    /// make the document invalid, or their author's credential was revoked
    /// before the sender can show they were made. The other authors' work
    /// in it may have been stored. The session goes on.
    Quarantined {
        /// Document id.
        doc: String,
        /// Why (Chinese).
        message: String,
        /// HQ has already decided against these changes: sending them
        /// again changes nothing, and nobody need act.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        rejected: bool,
    },
    /// The sender refuses to continue.
    Refused {
        /// Why.
        code: RefusalCode,
        /// A readable message (Chinese).
        message: String,
    },
}

impl Message {
    /// Encodes the message as one frame.
    pub fn to_frame(&self) -> Vec<u8> {
        frame(self)
    }

    /// Decodes a frame body (without its length prefix).
    pub fn from_body(body: &[u8]) -> Result<Self, FrameError> {
        from_body(body)
    }
}

/// Encodes any protocol message (document or photo negotiation) as a frame.
pub(crate) fn frame(message: &impl Serialize) -> Vec<u8> {
    let mut body = Vec::new();
    // Encoding plain structs into a Vec cannot fail.
    let _ = ciborium::into_writer(message, &mut body);
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Decodes a frame body (without its length prefix) as a `T`.
pub(crate) fn from_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    ciborium::from_reader(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Splits a byte stream into frames. Feed it bytes as they arrive; take
/// complete messages out. An oversized length prefix is an error at once.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, if one has arrived.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        self.next_as()
    }

    /// The next complete frame decoded as a `T` (the photo negotiation uses
    /// the same framing with its own messages).
    pub fn next_as<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        let Some(prefix) = self.buf.get(..4) else { return Ok(None) };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let message = from_body(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        message.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let messages = vec![
            Message::Hello { version: 1, credential: ByteBuf::from(vec![1, 2, 3]), revocations: None },
            Message::Catalog { docs: vec![DocHeads { id: "cmp-00".into(), heads: vec![ByteBuf::from(vec![7; 32])] }] },
            Message::Sent { count: 2 },
            Message::Done { stored: Some(2) },
            Message::Done { stored: None },
            Message::Refused { code: RefusalCode::Credential, message: "凭证已过期".into() },
        ];
        let stream: Vec<u8> = messages.iter().flat_map(Message::to_frame).collect();
        let mut reader = FrameReader::default();
        let mut out = Vec::new();
        for chunk in stream.chunks(5) {
            reader.push(chunk);
            while let Some(m) = reader.next_message().unwrap() {
                out.push(m);
            }
        }
        assert_eq!(out, messages);
    }

    #[test]
    fn oversized_prefix_is_refused_before_buffering() {
        let mut reader = FrameReader::default();
        reader.push(&(MAX_FRAME as u32 + 1).to_be_bytes());
        assert_eq!(reader.next_message(), Err(FrameError::TooLarge(MAX_FRAME + 1)));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let mut reader = FrameReader::default();
            reader.push(&bytes);
            for _ in 0..8 {
                match reader.next_message() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            let _ = Message::from_body(&bytes);
        }
    }
}
