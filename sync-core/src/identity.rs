//! Device identity: Ed25519 keys, actor ids bound to them, and signed heads.
//!
//! A device holds one [`DeviceKey`]. Each local store draws a random
//! [`StoreNonce`] when it is created; the Automerge actor id the store writes
//! with is `SHA-256("fieldsync/actor/v1" ‖ public key ‖ nonce)[..16]`. Anyone
//! holding the public key and the nonce (an [`ActorProof`]) can check that an
//! actor belongs to that key, so a device cannot write under another device's
//! actor, and a reinstall with the same key gets a fresh actor (new nonce)
//! instead of reusing old sequence numbers.
//!
//! Every change is signed when it is committed: the signature covers the
//! document id and the change hash ([`HeadSignature`]). Because a change hash
//! commits to all of the change's ancestors, the signature on an actor's
//! latest change vouches for every earlier change by that actor — which is
//! what lets a bundle or a sync carry one signature per author per document.
//! The scheme is specified in `schemas/signatures.md`.

use std::fmt;
use std::str::FromStr;

use automerge::{ActorId, ChangeHash};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::DocId;

const ACTOR_DOMAIN: &[u8] = b"fieldsync/actor/v1";
const HEAD_DOMAIN: &[u8] = b"fieldsync/head/v1";

/// Errors from parsing or checking identity material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityError {
    /// A public key is not 64 hex digits or not a valid Ed25519 point.
    #[error("公钥格式无效（应为 64 位十六进制）")]
    InvalidPublicKey,
    /// A signature does not verify against the claimed key.
    #[error("签名无效")]
    BadSignature,
    /// An actor id is not derived from the key and nonce that claim it.
    #[error("操作者标识与设备密钥不匹配")]
    ActorMismatch,
}

/// The secret half of a device identity. Never leaves the device.
pub struct DeviceKey(SigningKey);

impl DeviceKey {
    /// Builds a key from 32 secret bytes (drawn by the caller: randomness is an input).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// The 32 secret bytes, for writing the key file.
    pub fn to_seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key as PKCS#8 DER, for a TLS certificate made from it (so the
    /// certificate key is the identity key).
    pub fn pkcs8_der(&self) -> Vec<u8> {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        self.0.to_pkcs8_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default()
    }

    /// The public half.
    pub fn public(&self) -> DevicePublicKey {
        DevicePublicKey(self.0.verifying_key())
    }

    /// Signs a change hash of a document: the evidence stored with every local change.
    pub fn sign_head(&self, doc: &DocId, actor: &ActorProof, head: ChangeHash) -> HeadSignature {
        let sig = self.0.sign(&head_message(doc, head));
        HeadSignature { actor: actor.clone(), head, signature: sig.to_bytes() }
    }

    /// Signs arbitrary bytes under a domain tag (used for bundle envelopes).
    pub fn sign_with_domain(&self, domain: &[u8], message: &[u8]) -> [u8; 64] {
        self.0.sign(&domain_message(domain, message)).to_bytes()
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DeviceKey").field(&self.public()).finish()
    }
}

/// A device's Ed25519 public key; shown and typed as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DevicePublicKey(VerifyingKey);

impl DevicePublicKey {
    /// Parses the 32 raw bytes of a key. A point of small order (the
    /// all-zero key among them) is refused: no device has one, and
    /// signatures under it prove nothing.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| IdentityError::InvalidPublicKey)?;
        match VerifyingKey::from_bytes(&bytes) {
            Ok(key) if !key.is_weak() => Ok(Self(key)),
            _ => Err(IdentityError::InvalidPublicKey),
        }
    }

    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Checks a signature made by [`DeviceKey::sign_with_domain`].
    pub fn verify_with_domain(&self, domain: &[u8], message: &[u8], signature: &[u8; 64]) -> Result<(), IdentityError> {
        self.0
            .verify_strict(&domain_message(domain, message), &Signature::from_bytes(signature))
            .map_err(|_| IdentityError::BadSignature)
    }
}

impl fmt::Display for DevicePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_bytes()))
    }
}

impl fmt::Debug for DevicePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DevicePublicKey({self})")
    }
}

impl FromStr for DevicePublicKey {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s.trim()).map_err(|_| IdentityError::InvalidPublicKey)?;
        Self::from_bytes(&bytes)
    }
}

/// The random per-store value that makes a store's actor id unique.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreNonce(pub [u8; 16]);

/// Proof that an actor id belongs to a device key: the key and the store nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorProof {
    /// The device key the actor belongs to.
    pub key: DevicePublicKey,
    /// The nonce of the store that writes as this actor.
    pub nonce: StoreNonce,
}

impl ActorProof {
    /// The actor id this proof derives.
    pub fn actor_id(&self) -> ActorId {
        let mut hasher = Sha256::new();
        hasher.update(ACTOR_DOMAIN);
        hasher.update(self.key.to_bytes());
        hasher.update(self.nonce.0);
        ActorId::from(&hasher.finalize()[..16])
    }
}

/// A device's signature over one of its changes in one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadSignature {
    /// Who signed, and the actor they wrote as.
    pub actor: ActorProof,
    /// The change hash vouched for (and with it, every ancestor).
    pub head: ChangeHash,
    /// Ed25519 signature over `("fieldsync/head/v1", doc id, head)`.
    pub signature: [u8; 64],
}

impl HeadSignature {
    /// Checks the signature for `doc`; the caller checks that the head is a
    /// change by [`ActorProof::actor_id`].
    pub fn verify(&self, doc: &DocId) -> Result<(), IdentityError> {
        self.actor
            .key
            .0
            .verify_strict(&head_message(doc, self.head), &Signature::from_bytes(&self.signature))
            .map_err(|_| IdentityError::BadSignature)
    }
}

fn head_message(doc: &DocId, head: ChangeHash) -> Vec<u8> {
    let mut message = Vec::with_capacity(64 + doc.as_str().len());
    message.extend_from_slice(doc.as_str().as_bytes());
    message.push(0);
    message.extend_from_slice(&head.0);
    domain_message(HEAD_DOMAIN, &message)
}

fn domain_message(domain: &[u8], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(domain.len() + 1 + message.len());
    out.extend_from_slice(domain);
    out.push(0);
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof(seed: u8, nonce: u8) -> (DeviceKey, ActorProof) {
        let key = DeviceKey::from_seed([seed; 32]);
        let proof = ActorProof { key: key.public(), nonce: StoreNonce([nonce; 16]) };
        (key, proof)
    }

    #[test]
    fn actor_ids_differ_per_store_and_per_key() {
        let (_, a) = proof(1, 1);
        let (_, b) = proof(1, 2);
        let (_, c) = proof(2, 1);
        assert_ne!(a.actor_id(), b.actor_id());
        assert_ne!(a.actor_id(), c.actor_id());
        assert_eq!(a.actor_id().to_bytes().len(), 16);
    }

    #[test]
    fn head_signature_is_bound_to_document_and_head() {
        let (key, proof) = proof(3, 3);
        let doc: DocId = "dos-0123456789abcdef0123456789abcdef".parse().unwrap();
        let other: DocId = "dos-fedcba9876543210fedcba9876543210".parse().unwrap();
        let sig = key.sign_head(&doc, &proof, ChangeHash([7; 32]));
        assert_eq!(sig.verify(&doc), Ok(()));
        assert_eq!(sig.verify(&other), Err(IdentityError::BadSignature));
        let mut moved = sig.clone();
        moved.head = ChangeHash([8; 32]);
        assert_eq!(moved.verify(&doc), Err(IdentityError::BadSignature));
    }

    #[test]
    fn public_key_round_trips_as_hex() {
        let (key, _) = proof(4, 4);
        let text = key.public().to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<DevicePublicKey>(), Ok(key.public()));
        assert!("zz".parse::<DevicePublicKey>().is_err());
    }

    #[test]
    fn small_order_keys_are_not_device_keys() {
        assert!(DevicePublicKey::from_bytes(&[0; 32]).is_err());
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(DevicePublicKey::from_bytes(&identity).is_err());
        let real = DeviceKey::from_seed([7; 32]).public();
        assert_eq!(DevicePublicKey::from_bytes(&real.to_bytes()), Ok(real));
    }
}
