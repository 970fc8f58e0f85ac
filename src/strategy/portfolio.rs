//! Our account in each market, booked from our own fills: the position, the cash it cost,
//! fees, and the mark-to-market P&L. The exchange's own view of the position is kept beside
//! it, so the summary (and later reconciliation) can compare the two.

use crate::event::{Money, Price, Qty, Side};

/// Our account in one market, from our own fills.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarketAccount {
    /// Contracts: YES long positive, NO long (YES short) negative.
    pub position: Qty,
    /// Cash paid and received for contracts, fees included.
    pub cash: Money,
    pub fees: Money,
    pub fills: u32,
    pub volume: Qty,
    /// The exchange's view of our position (from `market_positions` or a resync).
    pub exchange_position: Option<Qty>,
    /// Set when the market resolved: the payout per YES contract (0 or 1 dollar).
    pub settled_yes: Option<bool>,
}

impl MarketAccount {
    /// Mark-to-market value: cash plus the position at `mark` (or at the payout once resolved).
    pub fn pnl(&self, mark: Option<Price>) -> Money {
        let mark = match self.settled_yes {
            Some(true) => Some(Price(10_000)),
            Some(false) => Some(Price(0)),
            None => mark,
        };
        match mark {
            Some(p) => Money(self.cash.0 + i64::from(p.0) * self.position.0),
            None => self.cash,
        }
    }

    /// Books one of our fills: `side` is the side our order was on.
    #[inline]
    pub fn book_fill(&mut self, side: Side, yes_price: Price, qty: Qty, fee: Money) {
        let notional = Money::notional(yes_price, qty).0;
        match side {
            Side::Bid => {
                self.position = Qty(self.position.0 + qty.0);
                self.cash = Money(self.cash.0 - notional);
            }
            Side::Ask => {
                self.position = Qty(self.position.0 - qty.0);
                self.cash = Money(self.cash.0 + notional);
            }
        }
        self.cash = Money(self.cash.0 - fee.0);
        self.fees = Money(self.fees.0 + fee.0);
        self.fills += 1;
        self.volume = Qty(self.volume.0 + qty.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_books_the_spread_less_fees() {
        let mut a = MarketAccount::default();
        a.book_fill(Side::Bid, Price(4_000), Qty::from_contracts(10), Money::from_cents(7));
        assert_eq!(a.position, Qty::from_contracts(10));
        a.book_fill(Side::Ask, Price(4_200), Qty::from_contracts(10), Money::from_cents(7));
        assert_eq!(a.position, Qty(0));
        // 10 contracts x 2 cents, less two 7-cent fees.
        assert_eq!(a.pnl(None), Money::from_cents(20 - 14));
        assert_eq!((a.fills, a.volume, a.fees), (2, Qty::from_contracts(20), Money::from_cents(14)));
    }

    #[test]
    fn resolution_marks_at_the_payout_not_the_mid() {
        let mut a = MarketAccount::default();
        a.book_fill(Side::Bid, Price(3_000), Qty::from_contracts(1), Money(0));
        assert_eq!(a.pnl(Some(Price(5_000))), Money::from_cents(20));
        a.settled_yes = Some(true);
        assert_eq!(a.pnl(Some(Price(5_000))), Money::from_cents(70));
        a.settled_yes = Some(false);
        assert_eq!(a.pnl(Some(Price(5_000))), Money::from_cents(-30));
    }
}
