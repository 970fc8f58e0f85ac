//! kmm: a low-latency hybrid maker/taker market-making engine for Kalshi's binary contracts.
//!
//! The engine is three threads joined by lock-free rings: the io thread owns every socket and
//! turns bytes into [`event::Event`]s and [`event::Command`]s into request bytes; the strategy
//! thread is a pure state machine (`on_event(&Event, now) -> commands`) holding the books, the
//! queue estimator and the taker; the log thread formats everything off the hot path.

pub mod app;
pub mod config;
pub mod connector;
pub mod embedded;
pub mod event;
pub mod execution;
pub mod ladder;
pub mod logger;
pub mod metrics;
pub mod orderbook;
pub mod poll;
pub mod report;
pub mod risk;
pub mod runtime;
pub mod stoikov;
pub mod strategy;
pub mod testkit;
