//! The io thread's side of the wire: turning Kalshi's WebSocket frames into [`crate::event::Event`]s
//! and [`crate::event::Command`]s into request bytes.
//!
//! [`kalshi`] is the pure, allocation-free translation layer (JSON in, fixed-size events out;
//! commands in, JSON bodies and paths out). Sockets, TLS, WebSocket framing, HTTP framing and
//! request signing live beside it and call into it.

pub mod io;
pub mod kalshi;
pub mod net;
pub mod oracle_feed;
pub mod oracle_wire;
pub mod pacing;
pub mod presign;
pub mod venue;
pub mod warm;
pub mod ws;
