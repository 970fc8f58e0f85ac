//! What the strategy keeps per market, in three parts that change for different reasons: the
//! quoting model's state (Stoikov: its per-price risk table, the volatility and fill-intensity
//! estimates and the last quote), our account (see [`super::portfolio`]), and the market's
//! lifecycle (open for trading or not, when it closes). Market data it derives from the book
//! (the mid, when data last arrived) sits beside them.

use crate::event::{MarketStatus, Price};
use crate::ladder::{Fx, MarketLadder, Tick};
use crate::orderbook::Book;
use crate::stoikov::{self, IntensityEstimator, QuoteInput, RiskTable, VolEstimator};
use crate::strategy::portfolio::MarketAccount;

/// What the strategy knows about a market before the first event.
#[derive(Clone, Debug)]
pub struct MarketSetup {
    pub ticker: String,
    pub ladder: MarketLadder,
    /// When the market closes, Unix ms; 0 when unknown (treated as far away).
    pub close_ts_ms: u64,
}

/// The Stoikov model's state for one market.
pub(crate) struct StoikovState {
    pub table: RiskTable,
    pub vol: VolEstimator,
    pub intensity: IntensityEstimator,
    /// The `k` the risk table was last built with.
    pub table_k: f64,
    /// The last quote the model wanted, for the status line.
    pub quote: stoikov::Quote,
    /// What `quote` was computed from (the input and the risk table's generation): order
    /// acks and timer passes decide again with nothing the model reads changed.
    pub quoted_from: Option<(QuoteInput, u64)>,
}

/// Where the market is in its life, as far as quoting cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MarketLife {
    pub close_ts_ms: u64,
    pub status: MarketStatus,
}

impl MarketLife {
    /// Open for trading: quotes are wanted only then.
    #[inline]
    pub fn active(&self) -> bool {
        self.status == MarketStatus::Active
    }

    /// Seconds until the close, infinite when the close is unknown.
    #[inline]
    pub fn seconds_to_close(&self, now_ms: u64) -> f64 {
        if self.close_ts_ms == 0 {
            return f64::INFINITY;
        }
        self.close_ts_ms.saturating_sub(now_ms) as f64 / 1000.0
    }
}

/// The oracle feed's last word on a market (the seed's External_Oracle, for alpha).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OracleReading {
    /// On the price scale: 5213 is 52.13%.
    pub probability: Price,
    /// The vendor's timestamp and ours when it arrived, Unix ms.
    pub publish_ms: u64,
    pub received_ms: u64,
}

pub(crate) struct MarketState {
    pub model: StoikovState,
    pub account: MarketAccount,
    pub life: MarketLife,
    /// The book's mid, `None` while the book is stale or one-sided.
    pub mid: Option<Price>,
    pub last_data_ms: u64,
    pub oracle: Option<OracleReading>,
}

/// The best bid and best ask ticks, and the mid price between them.
#[inline]
pub(crate) fn top(book: &Book) -> Option<(Tick, Tick, Price)> {
    let (bid, ask) = (book.best_tick(crate::event::Side::Bid)?, book.best_tick(crate::event::Side::Ask)?);
    let ladder = book.ladder();
    Some((bid, ask, Price((ladder.price(bid).0 + ladder.price(ask).0) / 2)))
}

/// The logit of the mid, between the two ticks' table values. Only a mid change needs it: the
/// table look-ups and the fixed-point division stay off the other top changes.
#[inline]
pub(crate) fn logit_mid(ladder: &MarketLadder, bid: Tick, ask: Tick) -> Fx {
    (ladder.logit(bid).0 + ladder.logit(ask).0) / Fx::from_num(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_close_is_far_away() {
        let life = MarketLife {
            close_ts_ms: 0,
            status: MarketStatus::Active,
        };
        assert_eq!(life.seconds_to_close(1_000), f64::INFINITY);
        let life = MarketLife {
            close_ts_ms: 10_000,
            status: MarketStatus::Active,
        };
        assert_eq!(life.seconds_to_close(4_000), 6.0);
        assert_eq!(life.seconds_to_close(20_000), 0.0);
    }
}
