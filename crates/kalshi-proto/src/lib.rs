//! The Kalshi vocabulary both sides of the wire speak: kmm (the trading engine) and the local
//! exchange (its venue and test bench) depend on this crate and on nothing of each other's, so
//! a trading binary built without the embedded venue links no HTTP server stack.
//!
//! What lives here is what Kalshi defines, not what either side decides: exact decimal units
//! ([`units`]), the YES-book [`Side`], a market's tick ladder ([`ladder`]), the terms of an
//! order ([`order`]), request signing ([`auth`]), the TLS client set-up both use to reach a
//! venue ([`tls`]), the account tiers and endpoint costs of the rate limits ([`ratelimit`]),
//! and the command-line spelling of durations both binaries accept ([`args`]).

pub mod args;
pub mod auth;
pub mod ladder;
/// A market's lifecycle states as Kalshi names them.
pub mod market;
pub mod order;
pub mod ratelimit;
pub mod side;
pub mod tls;
pub mod units;

pub use side::Side;
