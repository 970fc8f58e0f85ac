//! Kalshi's wire protocol: WebSocket frames to fixed-size events, commands to request bytes.
//!
//! The pure, allocation-free translation layer; sockets, TLS, framing and signing live outside
//! it and call into it. [`ws`] reads and writes the WebSocket side, [`rest`] the REST side;
//! the interner, number parsing and writers are shared by both.

pub mod error;
pub mod interner;
pub mod numbers;
pub mod rest;
pub mod write;
pub mod ws;
