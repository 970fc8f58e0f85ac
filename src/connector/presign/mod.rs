//! Request signatures prepared ahead, so signing never sits between a tick and its order.
//!
//! Kalshi signs `timestamp_ms + METHOD + path` (no body, no query string), so a signature for
//! a path kmm will certainly use can be made before the request exists. One RSA-PSS signature
//! costs ~260 us here and an Ed25519 one ~30 us; a background thread pays that, the io thread
//! only copies a ready header.
//!
//! Two halves joined by rtrb rings:
//!
//! - the **worker** thread (spawned by [`Presigner::spawn`]) keeps a stock of signatures for
//!   the four fixed order paths (V2 create, batch create, batch cancel, cancel all) and for the
//!   per-order paths (cancel, amend, decrease of one order id) the io thread asked for with
//!   [`Presigner::prepare`]. It sleeps, and wakes on [`Presigner::wake`] or every
//!   [`PresignConfig::poll_ms`];
//! - the io-side [`Presigner`] hands out one signature per request with [`Presigner::take`]
//!   (allocation-free, lock-free, no syscall) and signs inline only when the stock is empty or
//!   too old, counting a miss.
//!
//! A signature is consumed by the request that takes it and never handed out twice. Kalshi
//! checks the timestamp against its clock (the local exchange allows +-30 s; Kalshi documents
//! +-30 s for FIX logon); stock older than [`PresignConfig::max_age_ms`] is never handed out,
//! and [`Presigner::maintain`] retires stock older than [`PresignConfig::refresh_age_ms`] so
//! the worker replaces it long before it would be refused.
//!
//! Secrets: the private key stays inside [`kalshi_proto::auth::Signer`]; signatures are
//! short-lived bearer credentials, so `Debug` output shows their timestamps and lengths only.
//!
//! Files: `stock` is the io side (what the io thread takes), `worker` the signer thread,
//! `shared` what the two halves pass and share, `paths` which request paths are signed ahead,
//! `clock` the timestamp source and `config` the knobs. The signed head lines themselves are
//! the protocol's, in [`crate::connector::kalshi::rest::head`], which needs nothing from here.

mod clock;
mod config;
mod paths;
mod shared;
mod stock;
#[cfg(test)]
mod tests;
mod worker;

pub use clock::WallClock;
pub use config::PresignConfig;
pub use paths::{classify, FixedPath, OrderOp, StockKey};
pub use shared::sign;
pub use stock::{PresignStats, Presigner, Stamped};
