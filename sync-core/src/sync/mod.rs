//! The sync protocol, sans-IO: messages and framing ([`message`]), how a
//! document's changes travel ([`batch`]), the storage port ([`replica`]),
//! the session state machine ([`session`]) and the photo negotiation that
//! follows a session ([`photo`]); HQ's decisions on work it kept aside
//! ([`decide`]). Drivers (the QUIC endpoints of the server
//! and the field client, the simulation in `tests/`) own the sockets,
//! clocks and storage; the session only sees them as inputs and effects.

pub mod batch;
pub mod decide;
pub mod message;
pub mod photo;
pub mod replica;
pub mod session;
