//! A protocol-faithful local Kalshi exchange.
//!
//! Serves Kalshi's Trade API v2 (REST under `/trade-api/v2`, WebSocket under
//! `/trade-api/ws/v2`) over TLS or plain TCP on loopback, matches orders on one YES book per
//! market with price-time priority, charges Kalshi's fees, and runs a seeded population of
//! simulated traders driven by a hidden true-probability path. kmm embeds it as its default
//! venue; Kalshi's official clients work against it unchanged.

#![recursion_limit = "256"]

pub mod book;
pub mod cli;
pub mod engine;
pub mod faults;
pub mod flow;
pub mod ids;
pub mod rng;
pub mod scenario;
pub mod server;
pub mod sim;
pub mod tls;
pub mod wire;
