//! The sync protocol, sans-IO: messages and framing ([`message`]), the
//! session state machine ([`session`]) and the photo negotiation that
//! follows a session ([`photo`]). Drivers (the QUIC endpoint of the
//! server, the field client, the simulation in `tests/`) own the sockets,
//! clocks and storage; the session only sees them as inputs and effects.

pub mod batch;
pub mod message;
pub mod photo;
pub mod session;
