//! The side of Kalshi's one YES book an order rests on or takes from.
//!
//! Kalshi quotes YES bids and NO bids; a NO bid at p is a YES ask at 1 - p. Both the engine and
//! the exchange work on the YES book only, so a side is Bid (buy YES) or Ask (sell YES).

use crate::units::Price;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum Side {
    /// Buy YES (equivalently: sell NO).
    Bid,
    /// Sell YES (equivalently: buy NO at the complement price).
    Ask,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Bid => Side::Ask,
            Side::Ask => Side::Bid,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Side::Bid => "bid",
            Side::Ask => "ask",
        }
    }
    /// +1 for bids: the sign of the position change a fill causes.
    pub fn sign(self) -> i64 {
        match self {
            Side::Bid => 1,
            Side::Ask => -1,
        }
    }
    /// Does a resting order at `resting` satisfy an incoming order of this side limited at `limit`?
    pub fn crosses(self, limit: Price, resting: Price) -> bool {
        match self {
            Side::Bid => resting <= limit,
            Side::Ask => resting >= limit,
        }
    }
}
