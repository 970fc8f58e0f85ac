//! What the exchange knows of a market: its static spec from the scenario, its live state
//! (book, status, result, traded volume) and the public trades it prints. Kept apart from
//! orders and accounts: these are public, the same for every client.

use crate::book::MatchingBook;
use kalshi_proto::ladder::{LevelStructure, TickLadder};
use kalshi_proto::market::MarketStatus;
use kalshi_proto::units::{Money, Price, Qty};
use kalshi_proto::Side;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub type MarketId = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FeeType {
    #[default]
    Quadratic,
    QuadraticWithMakerFees,
    Flat,
}

impl FeeType {
    pub fn name(self) -> &'static str {
        match self {
            FeeType::Quadratic => "quadratic",
            FeeType::QuadraticWithMakerFees => "quadratic_with_maker_fees",
            FeeType::Flat => "flat",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketResult {
    Yes,
    No,
}

impl MarketResult {
    pub fn name(self) -> &'static str {
        match self {
            MarketResult::Yes => "yes",
            MarketResult::No => "no",
        }
    }
}

/// Static description of a market, from the scenario.
#[derive(Clone, Debug)]
pub struct MarketSpec {
    pub ticker: String,
    pub event_ticker: String,
    pub series_ticker: String,
    pub title: String,
    pub structure: LevelStructure,
    pub fee_type: FeeType,
    /// Scales the fee formula, in 1e-4 (10_000 = 1.0).
    pub fee_multiplier_e4: i64,
    pub open_ms: u64,
    pub close_ms: u64,
    pub settlement_timer_s: u64,
}

#[derive(Clone, Debug)]
pub struct Market {
    pub id: MarketId,
    pub spec: MarketSpec,
    pub uuid: String,
    pub ladder: Arc<TickLadder>,
    pub book: MatchingBook,
    pub status: MarketStatus,
    pub result: Option<MarketResult>,
    pub last_price: Option<Price>,
    pub previous_price: Option<Price>,
    pub volume: Qty,
    /// Traded notional on the YES leg (sum of price x count).
    pub notional_volume: Money,
    pub open_interest: Qty,
    pub last_trade_qty: Qty,
    pub trade_count: u64,
    /// Last ticker values sent, to emit a ticker only when something changed.
    pub last_ticker: Option<TickerState>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickerState {
    pub last_price: Option<Price>,
    pub yes_bid: Option<(Price, Qty)>,
    pub yes_ask: Option<(Price, Qty)>,
    pub volume: Qty,
    pub notional_volume: Money,
    pub open_interest: Qty,
    pub last_trade_qty: Qty,
}

#[derive(Clone, Debug)]
pub struct TradeRecord {
    pub trade_id: u64,
    pub market: MarketId,
    pub yes_price: Price,
    pub qty: Qty,
    pub taker_side: Side,
    pub ts_ms: u64,
}
