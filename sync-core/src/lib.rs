//! FieldSync core: the typed inspection documents over Automerge, device
//! identity and signed changes, and the signed bundle format.
//!
//! This crate does no IO: time, randomness and bytes come in as arguments,
//! and the callers (`field-client`, `server`) own files, sockets and
//! databases. CI checks that it depends on no tokio, quinn, rusqlite or axum.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod bundle;
pub mod codes;
pub mod credential;
pub mod deck;
pub mod doc;
pub mod identity;
pub mod ids;
pub mod knowledge;
pub mod model;
pub mod rectification;
pub mod register;
pub mod schema;
pub mod sync;
pub mod text;
pub mod validate;
pub mod verify;
pub mod zone;

pub use automerge;
